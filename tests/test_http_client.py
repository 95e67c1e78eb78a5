"""HttpClient against an independent OneBot HTTP API: a stdlib http.server written here."""

import gc
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from conftest import echoed, load_vectors, unused_port
from websockets.sync.server import serve as ws_serve

from onebot_ref import codec
from onebot_ref.errors import (
    ActionFailed,
    ApiNotAvailable,
    ApiTimeout,
    AuthError,
    ConfigError,
    DecodeError,
    NetworkError,
    ProtocolError,
)
from onebot_ref.http_client import HttpClient
from onebot_ref.ws_server import WsServer

Script = Callable[["FakeApiHandler", bytes], object]


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
            script(self, body)
            return None
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
    port = unused_port()  # nothing listens here
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
    assert echoed(bot.get_status()) == "get_status"  # and the client still works
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
    # The test is that it returns None, which mypy knows (and flags).
    assert bot.call_async("send_group_msg", group_id=1, message="x") is None  # type: ignore[func-returns-value]
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


# -- hostile servers: the call's deadline and max_size (raw sockets) ---------------


class RawPeer:
    """A raw-socket HTTP server for one request: reads it, then runs ``script(peer, conn)``.

    Scripts pace themselves with ``peer.stop.wait()`` and end when the client
    hangs up or ``stop`` is set; ``sent`` counts the bytes they got out.
    """

    def __init__(self, script: Callable[["RawPeer", socket.socket], None]) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.stop = threading.Event()
        self.sent = 0
        self.request = b""
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def serve(self) -> None:
        self.listener.settimeout(10)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            try:
                while b"\r\n\r\n" not in self.request and len(self.request) < 65536:
                    self.request += conn.recv(65536)
                self.script(self, conn)
            except OSError:
                pass  # the client hung up: what the tests want

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def drip(self, conn: socket.socket, data: bytes, every: float = 0.05) -> None:
        """Send ``data`` a byte at a time, one every ``every`` seconds, until stopped."""
        for byte in data:
            if self.stop.wait(every):
                return
            self.send(conn, bytes([byte]))

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self.thread.join(10)


@pytest.fixture
def raw_peer(no_thread_leak: None) -> Iterator[Callable[..., RawPeer]]:
    peers: list[RawPeer] = []

    def make(script: Callable[[RawPeer, socket.socket], None]) -> RawPeer:
        peers.append(RawPeer(script))
        return peers[-1]

    yield make
    for peer in peers:
        peer.close()


ENVELOPE = b'{"status":"ok","retcode":0,"data":null}'
DRIP = 200  # bytes dripped at 20 per second: 10 s, far beyond every deadline below


def drip_head(peer: RawPeer, conn: socket.socket) -> None:
    peer.send(conn, b"HTTP/1.1 200 OK\r\n")
    peer.drip(conn, b"X-Drip: " + b"a" * DRIP)


def drip_status_line(peer: RawPeer, conn: socket.socket) -> None:
    peer.drip(conn, b"HTTP/1.1 200 " + b"O" * DRIP)


def drip_body(peer: RawPeer, conn: socket.socket) -> None:
    peer.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (DRIP + 2))
    peer.drip(conn, b'{"' + b"a" * DRIP)


def drip_chunks(peer: RawPeer, conn: socket.socket) -> None:
    peer.send(conn, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    peer.drip(conn, b"1\r\na\r\n" * DRIP)


@pytest.mark.parametrize("script", [drip_status_line, drip_head, drip_body, drip_chunks])
def test_a_dripping_server_ends_at_the_call_deadline(
    raw_peer: Callable[..., RawPeer], script: Callable[[RawPeer, socket.socket], None]
) -> None:
    # Each byte comes well within the per-read timeout; only a deadline for the
    # whole call ends it (the landed client waited for the last byte, 10 s).
    peer = raw_peer(script)
    with HttpClient(peer.url, timeout=30) as bot:
        started = time.monotonic()
        with pytest.raises(ApiTimeout) as caught:
            bot.call("get_status", timeout=0.6)
        elapsed = time.monotonic() - started
    assert 0.5 < elapsed < 1.6, elapsed
    assert 0.5 < caught.value.elapsed < 1.6
    assert peer.sent > 3  # it was dripping, not silent


def test_the_deadline_also_covers_a_slow_head_then_a_slow_body(
    raw_peer: Callable[..., RawPeer],
) -> None:
    def slow(peer: RawPeer, conn: socket.socket) -> None:
        peer.drip(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n", every=0.01)
        peer.drip(conn, ENVELOPE, every=0.01)

    peer = raw_peer(slow)
    with HttpClient(peer.url) as bot, pytest.raises(ApiTimeout):
        bot.call("get_status", timeout=0.5)  # ~0.8 s of bytes, none slower than 0.01 s


def test_a_dripping_answer_within_the_deadline_still_arrives(
    raw_peer: Callable[..., RawPeer],
) -> None:
    def quick_drip(peer: RawPeer, conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(ENVELOPE)
        peer.drip(conn, head + ENVELOPE, every=0.001)

    peer = raw_peer(quick_drip)
    with HttpClient(peer.url) as bot:
        assert bot.call("get_status", timeout=5) is None


def announce_huge_body(peer: RawPeer, conn: socket.socket) -> None:
    peer.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n{")
    peer.stop.wait(10)  # and never send the rest


def test_an_announced_body_over_max_size_is_refused_unread(
    raw_peer: Callable[..., RawPeer],
) -> None:
    peer = raw_peer(announce_huge_body)
    with HttpClient(peer.url) as bot:
        started = time.monotonic()
        with pytest.raises(ProtocolError) as caught:
            bot.call("get_group_member_list", group_id=1, timeout=5)
    assert time.monotonic() - started < 2  # not the 5 s timeout: nothing was waited for
    assert caught.value.close_code == 1009
    message = str(caught.value)
    assert "67108864 bytes" in message and "max_size" in message


def endless_chunks(peer: RawPeer, conn: socket.socket) -> None:
    peer.send(conn, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + b"a" * 65536 + b"\r\n"
    while peer.sent < 64 * 2**20 and not peer.stop.is_set():
        peer.send(conn, chunk)
    peer.send(conn, b"0\r\n\r\n")


def endless_until_close(peer: RawPeer, conn: socket.socket) -> None:
    peer.send(conn, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    while peer.sent < 64 * 2**20 and not peer.stop.is_set():
        peer.send(conn, b"a" * 65536)


@pytest.mark.parametrize("script", [endless_chunks, endless_until_close])
def test_an_endless_body_is_cut_at_max_size(
    raw_peer: Callable[..., RawPeer], script: Callable[[RawPeer, socket.socket], None]
) -> None:
    peer = raw_peer(script)
    with HttpClient(peer.url) as bot, pytest.raises(ProtocolError) as caught:
        bot.call("get_group_member_list", group_id=1, timeout=10)
    assert caught.value.close_code == 1009
    assert "longer than max_size (33554432 bytes)" in str(caught.value)
    peer.thread.join(5)  # the peer stops when we hang up, far short of its 64 MiB
    assert peer.sent < 48 * 2**20


def test_max_size_is_a_bound_on_the_body_in_bytes(bot: HttpClient, onebot: FakeApi) -> None:
    body = json.dumps({"status": "ok", "retcode": 0, "data": "a" * 1000}).encode()
    onebot.reply_with("get_x", 200, body)
    with HttpClient(onebot.url, max_size=len(body)) as exact:
        assert exact.call("get_x") == "a" * 1000
    with HttpClient(onebot.url, max_size=len(body) - 1) as small:
        with pytest.raises(ProtocolError, match="over max_size"):
            small.call("get_x")
        assert small.call("echo")["action"] == "echo"  # the client still works


# -- pointed at a WebSocket port -----------------------------------------------------

WS_PORT = "this is a WebSocket port; use WsClient for it"


def test_pointed_at_our_ws_server_says_it_is_a_websocket_port(no_thread_leak: None) -> None:
    with WsServer(port=0) as server, HttpClient(server.url.replace("ws", "http", 1)) as bot:
        with pytest.raises(NetworkError) as caught:
            bot.send_private_msg(user_id=1, message="hi")
    assert WS_PORT in str(caught.value)
    assert "HTTP 400" in str(caught.value)  # our WsServer: 400 "method POST is not GET"


def test_pointed_at_a_websockets_server_says_it_is_a_websocket_port(no_thread_leak: None) -> None:
    # websockets closes a POST without a word; HttpClient then asks GET / and
    # gets its 426 (a GET runs no action on an HTTP API).
    with ws_serve(lambda ws: None, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        with HttpClient(f"http://127.0.0.1:{port}") as bot, pytest.raises(NetworkError) as caught:
            bot.get_status()
        server.shutdown()
        thread.join(5)
    assert WS_PORT in str(caught.value)
    assert "closed the POST unanswered" in str(caught.value)


# What real WebSocket servers answer a plain POST (see codec.is_websocket_refusal).
GORILLA = (  # go-cqhttp: gorilla/websocket's Upgrader.returnError
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Sec-Websocket-Version: 13\r\nContent-Length: 12\r\n\r\nBad Request\n"
)
NODE_WS = (  # NapCat, LLOneBot: Node's ws WebSocketServer({port}) to a non-upgrade request
    b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 16\r\nContent-Type: text/plain\r\n\r\n"
    b"Upgrade Required"
)


@pytest.mark.parametrize("answer", [GORILLA, NODE_WS], ids=["go-cqhttp", "napcat"])
def test_pointed_at_other_websocket_servers_says_so(
    raw_peer: Callable[..., RawPeer], answer: bytes
) -> None:
    peer = raw_peer(lambda peer, conn: peer.send(conn, answer))
    with HttpClient(peer.url) as bot, pytest.raises(NetworkError, match=WS_PORT):
        bot.get_status()


def test_a_bad_request_that_is_not_a_websocket_refusal_stays_action_failed(
    bot: HttpClient, onebot: FakeApi
) -> None:
    onebot.reply_with("get_status", 400, b'{"message":"bad params"}')
    with pytest.raises(ActionFailed) as caught:
        bot.get_status()
    assert caught.value.retcode == 1400


def test_a_query_in_base_url_goes_after_each_action(onebot: FakeApi) -> None:
    with HttpClient(onebot.url + "/onebot/?access_token=t&x=1") as bot:
        bot.get_status()
        assert repr(bot) == f"HttpClient('{onebot.url}/onebot')"
    assert onebot.seen[0]["path"] == "/onebot/get_status?access_token=t&x=1"


def test_a_session_passed_in_gets_the_deadline_too(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(drip_body)
    session = requests.Session()
    with HttpClient(peer.url, session=session) as bot:
        started = time.monotonic()
        with pytest.raises(ApiTimeout):
            bot.call("get_status", timeout=0.5)
        assert time.monotonic() - started < 1.5
    assert f"{peer.url}/" not in session.adapters  # our adapter is gone with the client
    session.close()


# -- one vocabulary (issue 14): lifecycle, connect_timeout, params, errors ------------------


def test_start_returns_the_client_twice_without_a_thread_and_close_takes_a_timeout(
    onebot: FakeApi,
) -> None:
    before = set(threading.enumerate())
    client = HttpClient(onebot.url, timeout=5)
    assert client.start() is client
    assert client.start() is client  # idempotent: nothing to dial ahead over HTTP
    assert [t for t in threading.enumerate() if t not in before] == []
    assert echoed(client.get_status()) == "get_status"
    started = time.monotonic()
    client.close(timeout=1.0)
    client.close(timeout=1.0)  # twice is fine
    assert time.monotonic() - started < 1.0
    with HttpClient(onebot.url).start() as again:  # start() then with, as in the other modes
        assert echoed(again.get_status()) == "get_status"


@pytest.fixture
def full_backlog() -> Iterator[str]:
    """A port whose listen queue is full: a SYN to it goes unanswered, so connecting hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=5)  # takes the one slot
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        filler.close()
        listener.close()


def test_connect_timeout_is_an_argument(full_backlog: str) -> None:
    with HttpClient(full_backlog, timeout=30, connect_timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(NetworkError, match=r"connecting to .* timed out"):
            client.get_status()
    assert 0.3 <= time.monotonic() - started < 5  # not the call's 30 s, nor the old 10 s


def test_connect_timeout_never_outlasts_the_call_timeout(full_backlog: str) -> None:
    with HttpClient(full_backlog, connect_timeout=30) as client:
        started = time.monotonic()
        with pytest.raises(NetworkError, match="timed out"):
            client.call("get_status", timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 5
    assert client.connect_timeout == 30 and HttpClient(full_backlog).connect_timeout == 10.0


def test_a_params_dict_carries_parameters_named_like_call_keywords(
    bot: HttpClient, onebot: FakeApi
) -> None:
    answer = bot.call("plugin_action", {"timeout": 3, "self_id": 7, "a": 1}, a=2, timeout=5)
    assert answer["params"] == {"timeout": 3, "self_id": 7, "a": 2}  # keywords win
    assert json.loads(onebot.seen[-1]["body"]) == {"timeout": 3, "self_id": 7, "a": 2}


@pytest.mark.parametrize("url", ["127.0.0.1:5700", "ws://127.0.0.1:6700", ""])
def test_a_bad_base_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="http://"):
        HttpClient(url)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"ssl_context": ssl.create_default_context(), "ca_file": "ca.pem"}, "not both"),
        ({"ca_file": "ca.pem", "verify": False}, "pick one"),
        ({"ca_file": "/nonexistent/ca.pem"}, "cannot load ca_file="),
    ],
)
def test_tls_options_that_cannot_work_are_config_errors(options: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        HttpClient("https://127.0.0.1:1", **options)
