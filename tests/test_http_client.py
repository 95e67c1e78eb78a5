"""HttpClient against an independent OneBot HTTP API: a stdlib http.server written here."""

import gc
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from conftest import load_vectors

from onebot_ref import codec
from onebot_ref.errors import (
    ActionFailed,
    ApiNotAvailable,
    ApiTimeout,
    AuthError,
    DecodeError,
    NetworkError,
)
from onebot_ref.http_client import HttpClient

Script = Callable[["FakeApiHandler", bytes], None]


class FakeApiHandler(BaseHTTPRequestHandler):
    """A minimal OneBot HTTP API: checks the token, then runs the script for the action."""

    server: "FakeApi"
    protocol_version = "HTTP/1.1"
    timeout = 5  # an idle keep-alive connection ends on its own
    disable_nagle_algorithm = True  # else each response stalls ~40 ms (see http_server)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append(
            {
                "path": self.path,
                "headers": dict(self.headers),
                "body": body,
                "peer": self.client_address,
            }
        )
        token = self.server.token
        if token is not None:
            auth = self.headers.get("Authorization")
            if auth is None:
                return self.answer(401, b"")
            if auth != f"Bearer {token}":
                return self.answer(403, b'{"message":"token verify failed!"}')
        action = self.path.rsplit("/", 1)[-1]
        script = self.server.script.get(action)
        if script is not None:
            return script(self, body)
        data = {"action": action, "params": json.loads(body)}
        return self.answer(200, json.dumps({"status": "ok", "retcode": 0, "data": data}).encode())

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeApi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeApiHandler)
        self.token: str | None = None
        self.script: dict[str, Script] = {}
        self.seen: list[dict[str, Any]] = []
        self.release = threading.Event()  # lets hanging handlers go at teardown

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def reply_with(self, action: str, status: int, body: bytes) -> None:
        self.script[action] = lambda handler, _body: handler.answer(status, body)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a hung handler writing to a socket the client gave up on


@pytest.fixture
def onebot(no_thread_leak: None) -> Iterator[FakeApi]:
    server = FakeApi()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def bot(onebot: FakeApi) -> Iterator[HttpClient]:
    with HttpClient(onebot.url, timeout=5) as client:
        yield client


# -- the wire shape -----------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/", "/onebot/", "/onebot"])
def test_post_action_path_with_json_body_and_bearer(onebot: FakeApi, suffix: str) -> None:
    onebot.token = "s3cret"
    with HttpClient(onebot.url + suffix, access_token="s3cret") as bot:
        data = bot.send_private_msg(user_id=10001, message="hi")
    assert data == {
        "action": "send_private_msg",
        "params": {"user_id": 10001, "message": "hi", "auto_escape": False},
    }
    (request,) = onebot.seen
    prefix = suffix.rstrip("/")
    assert request["path"] == f"{prefix}/send_private_msg"  # no trailing slash, no double slash
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    assert json.loads(request["body"]) == {"user_id": 10001, "message": "hi", "auto_escape": False}


def test_no_authorization_header_without_token(bot: HttpClient, onebot: FakeApi) -> None:
    bot.call("get_status")
    assert "Authorization" not in onebot.seen[0]["headers"]
    assert onebot.seen[0]["body"] == b"{}"


def test_strict_json_keeps_big_ids_and_unicode(bot: HttpClient, onebot: FakeApi) -> None:
    big = 144115218731218202
    bot.call("send_group_msg", group_id=big, message="你好 😀")
    assert json.loads(onebot.seen[0]["body"]) == {"group_id": big, "message": "你好 😀"}
    assert "你好".encode() in onebot.seen[0]["body"]  # UTF-8, not \u escapes


def test_three_line_script_starts_no_thread(onebot: FakeApi) -> None:
    before = set(threading.enumerate())
    HttpClient(onebot.url).send_group_msg(group_id=1, message="hello")
    # (the fake's own per-connection thread is the only new one)
    new = [t for t in threading.enumerate() if t not in before]
    assert [t.name for t in new if "process_request" not in t.name] == []
    assert onebot.seen[0]["path"] == "/send_group_msg"


@pytest.mark.parametrize("url", ["127.0.0.1:5700", "ws://127.0.0.1:6700", ""])
def test_base_url_must_be_http(url: str) -> None:
    with pytest.raises(ValueError, match="http://"):
        HttpClient(url)


# -- error mapping ------------------------------------------------------------


def test_401_and_403_are_auth_errors(onebot: FakeApi) -> None:
    onebot.token = "right"
    with HttpClient(onebot.url) as bot, pytest.raises(AuthError) as missing:
        bot.get_status()
    assert missing.value.status == 401
    assert "access_token" in str(missing.value)
    with HttpClient(onebot.url, access_token="wrong") as bot, pytest.raises(AuthError) as wrong:
        bot.get_status()
    assert wrong.value.status == 403
    assert "both sides" in str(wrong.value)


def test_http_404_is_api_not_available(bot: HttpClient, onebot: FakeApi) -> None:
    onebot.reply_with("no_such_action", 404, b"")
    with pytest.raises(ApiNotAvailable):
        bot.call("no_such_action")


@pytest.mark.parametrize("retcode", [404, 1404])
def test_not_found_retcodes_are_api_not_available(
    bot: HttpClient, onebot: FakeApi, retcode: int
) -> None:
    body = {"status": "failed", "retcode": retcode, "data": None, "msg": "API_NOT_FOUND"}
    onebot.reply_with("get_guild_list", 200, json.dumps(body).encode())
    with pytest.raises(ApiNotAvailable) as caught:
        bot.call("get_guild_list")
    assert caught.value.retcode == retcode


def test_failed_status_is_action_failed_with_text(bot: HttpClient, onebot: FakeApi) -> None:
    (vector,) = [
        v for v in load_vectors("api_response") if v["id"] == "gocq-api-resp-invalid-flag-001"
    ]
    onebot.reply_with("set_friend_add_request", 200, json.dumps(vector["payload"]).encode())
    with pytest.raises(ActionFailed) as caught:
        bot.set_friend_add_request(flag="x")
    assert caught.value.retcode == 100
    assert caught.value.message == "无效的flag"
    assert caught.value.response == vector["payload"]


@pytest.mark.parametrize("vector", load_vectors("api_response"), ids=lambda v: v["id"])
def test_real_world_responses_come_through_unchanged(
    bot: HttpClient, onebot: FakeApi, vector: dict[str, Any]
) -> None:
    payload = vector["payload"]
    onebot.reply_with("act", 200, json.dumps(payload).encode())
    if payload.get("status") == "ok":
        assert bot.call("act") == payload.get("data")
    else:
        with pytest.raises((ActionFailed, AuthError, DecodeError)):
            bot.call("act")


def test_other_status_is_action_failed_with_1000_plus(bot: HttpClient, onebot: FakeApi) -> None:
    onebot.reply_with("get_status", 500, b"boom")
    with pytest.raises(ActionFailed) as caught:
        bot.get_status()
    assert caught.value.retcode == 1500
    assert "boom" in str(caught.value)


def test_non_json_200_is_decode_error_quoting_the_body(bot: HttpClient, onebot: FakeApi) -> None:
    onebot.reply_with("get_status", 200, b"<html><title>NapCat WebUI</title></html>")
    with pytest.raises(DecodeError, match=r"<html><title>NapCat.*HTTP API port"):
        bot.get_status()


def test_connection_refused_names_url_and_cause() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with HttpClient(f"http://127.0.0.1:{port}") as bot, pytest.raises(NetworkError) as caught:
        bot.get_status()
    assert isinstance(caught.value, OSError)
    assert f"127.0.0.1:{port}/get_status" in str(caught.value)
    assert "nothing is listening" in str(caught.value)


def test_unknown_host_says_it_does_not_resolve() -> None:
    with (
        HttpClient("http://no-such-host.invalid:5700") as bot,
        pytest.raises(NetworkError) as caught,
    ):
        bot.get_status()
    assert "does not resolve" in str(caught.value)


def test_hanging_server_raises_api_timeout(bot: HttpClient, onebot: FakeApi) -> None:
    onebot.script["set_restart"] = lambda handler, body: onebot.release.wait(10)
    with pytest.raises(ApiTimeout) as caught:
        bot.call("set_restart", timeout=0.3)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.action == "set_restart"
    assert 0.2 < caught.value.elapsed < 5
    assert "may still have" in str(caught.value)


def close_mid_response(handler: FakeApiHandler, body: bytes) -> None:
    handler.wfile.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"status":')
    handler.wfile.flush()
    handler.close_connection = True


def close_without_response(handler: FakeApiHandler, body: bytes) -> None:
    handler.close_connection = True


@pytest.mark.parametrize("script", [close_mid_response, close_without_response])
def test_server_closing_mid_response_is_network_error(
    bot: HttpClient, onebot: FakeApi, script: Script
) -> None:
    onebot.script["send_msg"] = script
    with pytest.raises(NetworkError, match="may still have been carried out"):
        bot.send_msg("hi", user_id=1)
    assert len(onebot.seen) == 1  # never retried behind the caller's back
    assert bot.get_status()["action"] == "get_status"  # and the client still works
    # requests keeps the pool of the failed call alive through the exception's
    # traceback cycle until the collector runs; a bare requests.Session does too.
    gc.collect()


# -- concurrency, async, sessions ----------------------------------------------


def test_eight_threads_share_one_client(bot: HttpClient, onebot: FakeApi) -> None:
    results: dict[tuple[int, int], Any] = {}
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(40):
                results[n, i] = bot.call("echo", n=n, i=i)["params"]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert results == {(n, i): {"n": n, "i": i} for n in range(8) for i in range(40)}
    peers = {request["peer"] for request in onebot.seen}
    assert len(peers) <= 8  # keep-alive: connections are pooled, not one per call


@pytest.mark.parametrize(
    "reply",
    [
        {"status": "async", "retcode": 1, "data": None},
        {"status": "ok", "retcode": 0, "data": {"message_id": 1}},  # go-cqhttp runs it at once
    ],
)
def test_call_async_accepts_async_and_ok(
    bot: HttpClient, onebot: FakeApi, reply: dict[str, Any]
) -> None:
    onebot.reply_with("send_group_msg_async", 200, json.dumps(reply).encode())
    assert bot.call_async("send_group_msg", group_id=1, message="x") is None
    assert onebot.seen[0]["path"] == "/send_group_msg_async"


def test_session_passed_in_is_not_closed(onebot: FakeApi) -> None:
    session = requests.Session()
    with HttpClient(onebot.url, session=session) as bot:
        bot.get_status()
    # still usable: HttpClient.close() left it alone
    assert session.post(onebot.url + "/get_status", json={}, timeout=5).status_code == 200
    session.close()


def test_reply_error_codes_match_codec(bot: HttpClient, onebot: FakeApi) -> None:
    # the same 403 body NapCat sends: AuthError whatever the body says
    onebot.reply_with("get_login_info", 403, b'{"message":"token verify failed!"}')
    with pytest.raises(AuthError) as caught:
        bot.get_login_info()
    assert type(caught.value) is type(codec.http_error(403, "get_login_info"))
