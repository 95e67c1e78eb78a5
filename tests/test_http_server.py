"""HttpServer hit by independent HTTP clients: requests, http.client, raw sockets and curl."""

import email.utils
import http.client
import json
import logging
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from conftest import FakeClock, load_vectors

from onebot_ref.errors import NetworkError, NotConnected
from onebot_ref.http_server import HttpServer
from onebot_ref.registry import Registry

# Spec digest §3.1: HMAC-SHA1 over the exact raw body, computed independently.
SECRET = "my-secret"
SIGNED_BODY = (
    b'{"post_type":"meta_event","meta_event_type":"heartbeat","time":1700000000,'
    b'"self_id":10001,"status":{"online":true,"good":true},"interval":5000}'
)
SIGNATURE = "sha1=7758adebaa151001028d0affd2ec057493c8c679"

MESSAGE: dict[str, Any] = {
    "time": 1700000000,
    "self_id": 10001,
    "post_type": "message",
    "message_type": "private",
    "sub_type": "friend",
    "user_id": 42,
    "message": "hi",
}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def server(no_thread_leak: None) -> Iterator[HttpServer]:
    with HttpServer(port=0) as srv:
        srv.start()
        yield srv


def post(server: HttpServer, body: bytes | dict[str, Any], **headers: str) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(server.url, data=data, headers={**JSON, **headers}, timeout=5)


# -- events and quick operations -----------------------------------------------


def test_event_without_quick_operation_gets_204(server: HttpServer) -> None:
    seen: list[dict[str, Any]] = []
    server.on("message.private")(seen.append)
    response = post(server, MESSAGE)
    assert response.status_code == 204
    assert response.content == b""
    assert seen == [MESSAGE]


@pytest.mark.parametrize(
    "reply",
    [
        "echo [CQ:face,id=1]",
        {"type": "text", "data": {"text": "one segment"}},
        [{"type": "text", "data": {"text": "a"}}, {"type": "face", "data": {"id": "1"}}],
    ],
    ids=["string", "segment", "list"],
)
def test_echo_bot_quick_reply(server: HttpServer, reply: Any) -> None:
    @server.on("message")
    def echo(event: dict[str, Any]) -> dict[str, Any]:
        return {"reply": event["message"], "at_sender": False}

    response = post(server, {**MESSAGE, "message": reply})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"reply": reply, "at_sender": False}


def test_first_dict_is_the_quick_operation(server: HttpServer) -> None:
    server.on("request.friend")(lambda event: "not a dict")
    server.on("request.friend")(lambda event: {"approve": True, "remark": "好友"})
    server.on("request")(lambda event: {"approve": False})
    event = {"post_type": "request", "request_type": "friend", "flag": "1", "user_id": 2}
    assert post(server, event).json() == {"approve": True, "remark": "好友"}


def test_handler_exception_gives_204_and_a_traceback(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    @server.on("message.private")
    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    server.on("message")(lambda event: ran.append("second"))
    with caplog.at_level(logging.ERROR):
        assert post(server, MESSAGE).status_code == 204
    assert ran == ["second"]
    assert any(r.exc_info and "handler bug" in str(r.exc_info[1]) for r in caplog.records)
    assert post(server, MESSAGE).status_code == 204  # still serving


def test_x_self_id_fills_a_missing_self_id(server: HttpServer) -> None:
    seen: list[dict[str, Any]] = []
    server.on()(seen.append)
    event = {k: v for k, v in MESSAGE.items() if k != "self_id"}
    post(server, event, **{"x-self-id": "3332627962"})  # NapCat sends it lowercase
    post(server, MESSAGE, **{"X-Self-ID": "99"})  # the body wins when it has one
    assert [e["self_id"] for e in seen] == [3332627962, 10001]


@pytest.mark.parametrize(
    "self_id",
    ["\xb2", "9" * 5000, "abc", "-1", "1.0", "1 2", str(2**63)],
    ids=["superscript-two", "5000-digits", "letters", "negative", "float", "inner-space", "2**63"],
)
def test_a_malformed_x_self_id_is_400_with_the_reason(
    server: HttpServer, self_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12: "²" passed isdigit() and failed int(): no answer and a traceback per request."""
    seen: list[dict[str, Any]] = []
    server.on()(seen.append)
    event = {k: v for k, v in MESSAGE.items() if k != "self_id"}
    with caplog.at_level(logging.WARNING):
        response = post(server, event, **{"X-Self-ID": self_id})
        assert response.status_code == 400 and "X-Self-ID" in response.text
        assert post(server, event, **{"X-Self-ID": str(2**63 - 1)}).status_code == 204
    assert [e["self_id"] for e in seen] == [2**63 - 1]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("vector", load_vectors("event"), ids=lambda v: v["id"])
def test_real_world_events_reach_handlers_unchanged(
    server: HttpServer, vector: dict[str, Any]
) -> None:
    seen: list[dict[str, Any]] = []
    server.on()(seen.append)
    body = json.dumps(vector["payload"], ensure_ascii=False).encode()
    assert post(server, body).status_code == 204
    assert seen == [vector["payload"]]


# -- rejections ------------------------------------------------------------------


@pytest.fixture
def signed(no_thread_leak: None) -> Iterator[HttpServer]:
    with HttpServer(port=0, secret=SECRET) as srv:
        srv.on()(lambda event: {"reply": "ok"})
        srv.start()
        yield srv


@pytest.mark.parametrize("header", ["X-Signature", "x-signature"])
def test_valid_signature_is_accepted(signed: HttpServer, header: str) -> None:
    response = post(signed, SIGNED_BODY, **{header: SIGNATURE})
    assert response.status_code == 200


def test_signature_mismatch_is_403(signed: HttpServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        response = post(signed, SIGNED_BODY + b" ", **{"X-Signature": SIGNATURE})
    assert response.status_code == 403
    assert "different secret" in caplog.text


def test_missing_signature_is_401_and_the_log_asks_whether_onebot_signs(
    signed: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert post(signed, SIGNED_BODY).status_code == 401
    assert "sign at all" in caplog.text
    assert SECRET not in caplog.text


def test_access_token_option(no_thread_leak: None) -> None:
    with HttpServer(port=0, access_token="tok") as srv:
        srv.start()
        assert post(srv, MESSAGE).status_code == 401
        assert post(srv, MESSAGE, Authorization="Bearer nope").status_code == 403
        assert post(srv, MESSAGE, Authorization="Token tok").status_code == 204
        query = requests.post(srv.url + "?access_token=tok", json=MESSAGE, timeout=5)
        assert query.status_code == 204


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (b'"a string"', 400),
        (b'{"no_post_type": 1}', 400),
        (b"\xff\xfe", 400),
    ],
)
def test_bad_bodies_are_400(server: HttpServer, body: bytes, status: int) -> None:
    response = post(server, body)
    assert response.status_code == status
    assert response.text.strip()  # a one-line reason


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_wrong_content_type_is_415(server: HttpServer, content_type: str) -> None:
    response = post(server, MESSAGE, **{"Content-Type": content_type})
    assert response.status_code == 415
    assert "application/json" in response.text


def test_json_with_charset_and_no_content_type_are_accepted(server: HttpServer) -> None:
    assert post(server, MESSAGE, **{"Content-Type": "application/json; charset=UTF-8"}).ok
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", "/", json.dumps(MESSAGE).encode())  # http.client adds no Content-Type
    assert conn.getresponse().status == 204
    conn.close()


def test_oversize_body_is_413_and_the_server_goes_on(no_thread_leak: None) -> None:
    with HttpServer(port=0, max_size=1000) as srv:
        srv.start()
        response = post(srv, {**MESSAGE, "message": "x" * 2000})
        assert response.status_code == 413
        assert response.headers["Connection"] == "close"
        assert post(srv, MESSAGE).status_code == 204


def test_unknown_path_is_404_with_the_reason(no_thread_leak: None) -> None:
    with HttpServer(port=0, path="/onebot/v11/http") as srv:
        srv.start()
        base = f"http://127.0.0.1:{srv.port}"
        wrong = requests.post(base + "/", json=MESSAGE, timeout=5)
        assert wrong.status_code == 404
        assert "/onebot/v11/http" in wrong.text
        action = requests.post(base + "/send_private_msg", json={}, timeout=5)
        assert "HttpClient" in action.text  # role confusion gets a hint
        for path in ("/onebot/v11/http", "/onebot/v11/http/"):
            assert requests.post(base + path, json=MESSAGE, timeout=5).status_code == 204


def test_refusals_before_the_body_is_read_do_not_desync_keep_alive(server: HttpServer) -> None:
    # An unread body must not be parsed as the next request on the same connection.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for path, status in [("/elsewhere", 404), ("/", 204), ("/elsewhere", 404), ("/", 204)]:
        conn.request("POST", path, json.dumps(MESSAGE), JSON)
        response = conn.getresponse()
        response.read()
        assert response.status == status
    conn.close()


def test_quick_operation_that_is_not_json_gives_204_and_a_log(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.on("message")(lambda event: {"reply": {1, 2}})  # a set: not JSON
    with caplog.at_level(logging.ERROR):
        assert post(server, MESSAGE).status_code == 204
    assert "quick operation" in caplog.text


def test_responses_are_well_formed_for_http_client(server: HttpServer) -> None:
    """Status line, Date, Server and framing, read back by the stdlib's own client."""
    server.on("message")(lambda event: {"reply": "好"} if event["message"] == "hi" else None)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for message, status, reason in [("hi", 200, "OK"), ("x", 204, "No Content")] * 2:
            body = json.dumps({**MESSAGE, "message": message}).encode()
            conn.request("POST", "/", body, JSON)
            response = conn.getresponse()
            content = response.read()
            assert (response.status, response.reason) == (status, reason)
            sent = email.utils.parsedate_to_datetime(response.headers["Date"])
            assert abs(sent.timestamp() - time.time()) < 5
            assert response.headers["Server"].startswith("BaseHTTP/")
            if status == 200:
                assert response.headers["Content-Length"] == str(len(content))
                assert json.loads(content) == {"reply": "好"}
            else:
                assert "Content-Length" not in response.headers and content == b""
        conn.request("HEAD", "/")  # 405, and no body after the head
        response = conn.getresponse()
        assert (response.status, response.read()) == (405, b"")
        assert response.headers["Connection"] == "close"
    finally:
        conn.close()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
def test_other_methods_are_405(server: HttpServer, method: str) -> None:
    response = requests.request(method, server.url, timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def raw_exchange(server: HttpServer, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):  # the server closes after these errors
            chunks.append(chunk)
        return b"".join(chunks)


def test_missing_content_length_is_411(server: HttpServer) -> None:
    reply = raw_exchange(server, b"POST / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 411 ")


def test_chunked_body_is_read(server: HttpServer) -> None:
    """RFC 9112 §6.1: a recipient MUST parse ``chunked`` (requests sends it for an iterator)."""
    seen: list[dict[str, Any]] = []
    server.on("message")(seen.append)
    body = json.dumps(MESSAGE).encode()
    response = requests.post(server.url, data=iter([body[:9], body[9:]]), headers=JSON, timeout=5)
    assert response.status_code == 204 and seen == [MESSAGE]


def test_bad_content_length_is_400(server: HttpServer) -> None:
    reply = raw_exchange(server, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")


# -- keep-alive, latency, lifecycle --------------------------------------------


def test_one_keep_alive_connection_carries_1000_events(server: HttpServer) -> None:
    threads: set[str] = set()

    @server.on("message")
    def echo(event: dict[str, Any]) -> dict[str, Any]:
        threads.add(threading.current_thread().name)
        return {"reply": event["message"]}

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.connect()
    first_socket = conn.sock
    for n in range(1000):
        conn.request("POST", "/", json.dumps({**MESSAGE, "message": str(n)}), JSON)
        response = conn.getresponse()
        assert json.loads(response.read()) == {"reply": str(n)}
    assert conn.sock is first_socket  # http.client would have reconnected after a close
    conn.close()
    assert len(threads) == 1
    assert server.registry.handled == 1000


def test_keep_alive_response_is_not_delayed_by_nagle(server: HttpServer) -> None:
    # The stdlib writes headers and body separately with Nagle on: every
    # keep-alive response then waits ~40 ms for the client's delayed ACK.
    server.on("message")(lambda event: {"reply": event["message"]})
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    body = json.dumps(MESSAGE)
    latencies = []
    for _ in range(100):
        started = time.perf_counter()
        conn.request("POST", "/", body, JSON)
        assert conn.getresponse().read() == b'{"reply":"hi"}'
        latencies.append(time.perf_counter() - started)
    conn.close()
    assert statistics.median(latencies) < 0.020


def test_close_ends_idle_keep_alive_connections(no_thread_leak: None) -> None:
    srv = HttpServer(port=0).start()
    conns = [http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5) for _ in range(3)]
    for conn in conns:
        conn.request("POST", "/", json.dumps(MESSAGE), JSON)
        assert conn.getresponse().read() == b""
    started = time.monotonic()
    srv.close()
    assert time.monotonic() - started < 3
    for conn in conns:
        conn.close()
    # no_thread_leak checks that the serve thread and the three connection threads are gone


def test_close_without_start_and_twice(no_thread_leak: None) -> None:
    srv = HttpServer(port=0)
    srv.close()
    srv.close()
    with pytest.raises(requests.ConnectionError):
        requests.post(f"http://127.0.0.1:{srv.port}/", json=MESSAGE, timeout=5)


def test_busy_port_is_a_network_error(server: HttpServer) -> None:
    with pytest.raises(NetworkError, match=f"{server.port}"):
        HttpServer(port=server.port).start()


def test_registry_ownership(no_thread_leak: None) -> None:
    mine = Registry()
    with HttpServer(port=0, registry=mine) as srv:
        assert srv.registry is mine
    assert mine.submit({"post_type": "meta_event"})  # not closed by the server
    mine.close()
    srv = HttpServer(port=0)
    srv.close()
    assert not srv.registry.submit({"post_type": "meta_event"})  # its own one is closed


def test_call_without_api_says_what_to_do(no_thread_leak: None) -> None:
    with HttpServer(port=0) as srv, pytest.raises(NotConnected, match="api=HttpClient"):
        srv.send_group_msg(group_id=1, message="hi")


def test_url_and_port(no_thread_leak: None) -> None:
    with HttpServer(port=0, path="onebot") as srv:
        assert srv.port > 0
        assert srv.url == f"http://127.0.0.1:{srv.port}/onebot"


# -- curl ------------------------------------------------------------------------


def test_curl_signed_event_and_quick_reply(signed: HttpServer) -> None:
    def curl(url: str, body: bytes, *headers: str) -> bytes:
        command = ["curl", "-s", "-w", " %{http_code}", url, "--data-binary", "@-"]
        for header in headers:
            command += ["-H", header]
        done = subprocess.run(command, input=body, capture_output=True, timeout=10, check=False)
        return done.stdout

    json_type = "Content-Type: application/json"
    signature = f"X-Signature: {SIGNATURE}"
    assert curl(signed.url, SIGNED_BODY, json_type, signature) == b'{"reply":"ok"} 200'
    assert curl(signed.url, SIGNED_BODY, json_type).endswith(b" 401")
    assert curl(signed.url, SIGNED_BODY + b"\n", json_type, signature).endswith(b" 403")
    assert curl(signed.url, SIGNED_BODY, signature).endswith(b" 415")  # curl's default is a form
    assert curl(signed.url + "nowhere", b"{}", json_type).endswith(b" 404")


# -- slow handlers and the implementation's retries (USER_PAINS §7) ---------------


def test_a_retried_post_runs_once_with_dedup(no_thread_leak: None) -> None:
    """Like go-cqhttp: the POST times out, the same bytes come again; handlers run once."""
    runs: list[str] = []
    release = threading.Event()

    def slow(event: dict[str, Any]) -> dict[str, Any]:
        runs.append(event["message"])
        release.wait(10)  # slower than the implementation waits: until the retry is answered
        return {"reply": "late"}

    body = json.dumps(MESSAGE).encode()
    with HttpServer(port=0, dedup=60) as srv:
        srv.on("message")(slow)
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.post(srv.url, data=body, headers=JSON, timeout=0.3)
        retry = requests.post(srv.url, data=body, headers=JSON, timeout=5)
        assert retry.status_code == 204  # answered at once, not run again
        release.set()
        other = json.dumps({**MESSAGE, "message": "new"}).encode()
        assert requests.post(srv.url, data=other, headers=JSON, timeout=5).status_code == 200
        assert srv.duplicates == 1
    assert runs == ["hi", "new"]


def test_without_dedup_every_copy_runs(server: HttpServer) -> None:
    runs: list[dict[str, Any]] = []
    server.on("message")(runs.append)
    assert [post(server, MESSAGE).status_code for _ in range(3)] == [204, 204, 204]
    assert len(runs) == 3 and server.recent is None


def test_dedup_window_expires(no_thread_leak: None) -> None:
    runs: list[dict[str, Any]] = []
    clock = FakeClock()
    with HttpServer(port=0, dedup=0.3) as srv:
        assert srv.recent is not None
        srv.recent.clock = clock
        srv.on("message")(runs.append)
        post(srv, MESSAGE)
        post(srv, MESSAGE)  # within 0.3 s: not run
        clock.advance(0.4)
        post(srv, MESSAGE)  # the window has passed: a new event as far as we can tell
    assert len(runs) == 2


def test_a_handler_slower_than_the_implementation_waits_is_logged(
    server: HttpServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from onebot_ref import http_server

    monkeypatch.setattr(http_server, "PATIENCE", 0.1)
    server.registry.clock = clock = FakeClock()  # the handler takes 0.2 s by this clock
    server.on("message")(lambda event: clock.advance(0.2))
    with caplog.at_level(logging.WARNING, logger="onebot_ref.http_server"):
        assert post(server, MESSAGE).status_code == 204
    assert "go-cqhttp waits 0.1s and then posts the event again" in caplog.text
    assert "dedup=60" in caplog.text and server.slow_events == 1
