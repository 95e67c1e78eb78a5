"""WsClient against an independent OneBot 11 forward-WS server written with `websockets`.

`Impl` below plays the implementation (NapCat, go-cqhttp, CQHTTP…) over real
loopback sockets. It shares no code with onebot_ref: a bug that only agrees
with itself cannot pass.
"""

import itertools
import json
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import trustme
import wsproto.events as wse
from conftest import echoed, load_vectors, unused_port, wait_until
from hostile import Peer, RawServer
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from onebot_ref import (
    ActionFailed,
    ApiTimeout,
    AuthError,
    ConfigError,
    NetworkError,
    NotConnected,
    ProtocolError,
)
from onebot_ref.framer import TEXT, Frame, encode_frame, handshake_response
from onebot_ref.ws_client import WsClient

VECTORS = {v["id"]: v["payload"] for v in load_vectors()}
LIFECYCLE = VECTORS["napcat-meta-lifecycle-connect-001"]  # self_id 3332627962
TOKEN_REFUSED = VECTORS["napcat-api-resp-token-refused-001"]  # NapCat's 1403 frame
EVENTS = [v["payload"] for v in load_vectors("event")]
MiB = 2**20

Answer = Callable[[dict[str, Any]], list[Any]]


def echo_answer(request: dict[str, Any]) -> list[Any]:
    """Answer every action with ok, its own action and params as data."""
    if request["action"] == "get_login_info":
        data: Any = {"user_id": 424242, "nickname": "bot"}
    else:
        data = {"action": request["action"], "params": request.get("params")}
    return [{"status": "ok", "retcode": 0, "data": data, "echo": request.get("echo")}]


class Impl:
    """A forward-WS OneBot server: lifecycle, heartbeats, auth dialects, canned answers."""

    def __init__(
        self,
        *,
        token: str | None = None,
        refuse: str = "handshake",  # or "text" (CQHTTP), "napcat" (1403 frame)
        lifecycle: bool = True,
        heartbeat: float | None = None,  # seconds between heartbeats
        heartbeats: int = 1000,  # how many to send before going silent
        answer: Answer = echo_answer,
        status: int | None = None,  # answer every handshake with this HTTP status
        port: int = 0,
    ) -> None:
        self.token, self.refuse, self.lifecycle = token, refuse, lifecycle
        self.heartbeat, self.heartbeats, self.answer = heartbeat, heartbeats, answer
        self.status = status
        self.handshakes: list[tuple[str, Any]] = []  # (path, case-insensitive headers)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.conns: list[ServerConnection] = []
        self.close_codes: list[int | None] = []
        self.last_heartbeat = 0.0
        self.server = serve(
            self._handle,
            "127.0.0.1",
            port,
            process_request=self._check,
            max_size=None,
            ping_interval=None,
        )
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        """Stop listening and close every open connection with 1001, as an implementation
        shutting down does.

        websockets 17 closes the connections in ``shutdown()``; 16 (the last release for
        Python 3.10) only stops accepting. Closing them here makes both behave the same.
        """
        self.server.shutdown()
        for conn in list(self.conns):
            conn.close(1001)
        self.thread.join(5)

    def push(self, event: Any) -> None:
        """Send an event (dict) or a raw text frame on every event-capable connection."""
        data = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
        for conn in list(self.conns):
            assert conn.request is not None  # past the handshake
            if urlsplit(conn.request.path).path != "/api":
                try:
                    conn.send(data)
                except ConnectionClosed:
                    pass  # the client hung up on it (max_size tests)

    def _authorized(self, path: str, headers: Any) -> bool:
        query = parse_qs(urlsplit(path).query).get("access_token", [None])[0]
        return query == self.token or headers.get("Authorization") == f"Bearer {self.token}"

    def _check(self, conn: ServerConnection, request: Any) -> Any:
        self.handshakes.append((request.path, request.headers))
        if self.status is not None:
            return conn.respond(self.status, "NapCat WebUI\n")
        if self.token and self.refuse == "handshake":
            if "Authorization" not in request.headers and "access_token" not in request.path:
                return conn.respond(HTTPStatus.UNAUTHORIZED, "")
            if not self._authorized(request.path, request.headers):
                return conn.respond(HTTPStatus.FORBIDDEN, "")
        return None

    def _handle(self, conn: ServerConnection) -> None:
        assert conn.request is not None  # past the handshake
        path = urlsplit(conn.request.path).path
        if self.token and not self._authorized(conn.request.path, conn.request.headers):
            conn.send(
                "authorization failed" if self.refuse == "text" else json.dumps(TOKEN_REFUSED)
            )
            conn.close()
            return
        self.conns.append(conn)
        if self.lifecycle and path != "/api":
            conn.send(json.dumps(LIFECYCLE))
        sent = 0
        try:
            while True:
                try:
                    message = conn.recv(timeout=self.heartbeat or 0.5)
                except TimeoutError:
                    if self.heartbeat and path != "/api" and sent < self.heartbeats:
                        interval = int(self.heartbeat * 1000)
                        beat = {"post_type": "meta_event", "meta_event_type": "heartbeat"}
                        conn.send(json.dumps({**beat, "self_id": 1, "interval": interval}))
                        self.last_heartbeat = time.monotonic()
                        sent += 1
                    continue
                request = json.loads(message)
                self.requests.append((path, request))
                for frame in self.answer(request):
                    conn.send(
                        frame if isinstance(frame, str) else json.dumps(frame, ensure_ascii=False)
                    )
        except ConnectionClosed:
            pass
        finally:
            self.close_codes.append(conn.close_code)
            self.conns.remove(conn)


@pytest.fixture
def impls(no_thread_leak: None) -> Iterator[Callable[..., Impl]]:
    """Start Impl servers; stop them all after the test (before the leak check)."""
    started: list[Impl] = []

    def start(**kwargs: Any) -> Impl:
        impl = Impl(**kwargs)
        started.append(impl)
        return impl

    yield start
    for impl in started:
        impl.stop()


def running_client_threads(before: set[threading.Thread]) -> list[str]:
    """Our client's threads (dialling, receiving, handlers) started since ``before`` and alive."""
    return [
        t.name
        for t in threading.enumerate()
        if t not in before and t.is_alive() and t.name.startswith("onebot-")
    ]


def fast(client: WsClient) -> WsClient:
    """Shrink the waits so reconnect tests run in well under a second."""
    client.backoff_initial = 0.02
    client.backoff_max = 0.2
    client.first_frame_wait = 0.3
    return client


# -- connecting, calls and events ---------------------------------------------------------


def test_universal_calls_events_and_calls_from_handlers(impls: Callable[..., Impl]) -> None:
    impl = impls(token="s3cret")
    seen: list[dict[str, Any]] = []
    bot = WsClient(impl.url(), access_token="s3cret")

    @bot.on("*")
    def collect(event: dict[str, Any]) -> None:
        seen.append(event)

    @bot.on("message")
    def answer(event: dict[str, Any]) -> None:
        bot.reply(event, "pong")  # a blocking call from inside a handler

    with bot:
        assert bot.connected
        assert impl.handshakes[0][1]["Authorization"] == "Bearer s3cret"
        assert echoed(bot.send_private_msg(1, "hi"), "params")["message"] == "hi"
        # The lifecycle came first; its handler runs on a worker like the others, side by
        # side with them: let it run before the next events arrive (CI, 3.13 under load).
        wait_until(lambda: seen)
        for event in EVENTS:
            impl.push(event)
        messages = [e for e in EVENTS if e.get("post_type") == "message" and "user_id" in e]
        wait_until(lambda: len(seen) >= len(EVENTS) + 1)  # + the lifecycle
        wait_until(
            lambda: sum(r["action"].startswith("send_") for _, r in impl.requests) > len(messages)
        )
    assert seen[0] == LIFECYCLE
    ordered = sorted(json.dumps(e, sort_keys=True) for e in seen[1:])  # workers run in parallel
    assert ordered == sorted(json.dumps(e, sort_keys=True) for e in EVENTS)  # unchanged
    assert bot.self_id is not None


def test_split_endpoints(impls: Callable[..., Impl]) -> None:
    impl = impls()
    seen: list[dict[str, Any]] = []
    bot = WsClient(api_url=impl.url("/api"), event_url=impl.url("/event"))
    bot.on("message")(seen.append)
    with bot:
        assert bot.self_id == LIFECYCLE["self_id"]
        assert bot.call("get_status")["action"] == "get_status"
        impl.push(EVENTS[1])
        wait_until(lambda: seen)
    assert sorted(path for path, _ in impl.handshakes) == ["/api", "/event"]
    assert [path for path, _ in impl.requests] == ["/api"]


def test_api_only_learns_self_id_from_get_login_info(impls: Callable[..., Impl]) -> None:
    impl = impls()
    with WsClient(api_url=impl.url("/api")) as bot:
        assert bot.self_id == 424242
        assert echoed(bot.get_version_info()) == "get_version_info"


def test_events_before_and_without_lifecycle(impls: Callable[..., Impl]) -> None:
    impl = impls(lifecycle=False)
    seen: list[dict[str, Any]] = []
    client = fast(WsClient(impl.url()))
    client.on("*")(seen.append)
    with client as bot:
        assert bot.self_id is None
        impl.push(EVENTS[5])
        wait_until(lambda: seen)  # handlers run side by side: one at a time, for the order
        impl.push(LIFECYCLE)
        wait_until(lambda: len(seen) == 2)
    assert seen == [EVENTS[5], LIFECYCLE]
    assert bot.self_id == LIFECYCLE["self_id"]


def test_token_in_query_and_hooks(
    impls: Callable[..., Impl], caplog: pytest.LogCaptureFixture
) -> None:
    impl = impls(token="query-only-t0ken")
    log: list[str] = []
    client = WsClient(
        impl.url("/?x=1"),
        access_token="query-only-t0ken",
        token_in_query=True,
        on_connect=lambda c: log.append("up"),
        on_disconnect=lambda c: log.append(f"down: {c.last_error}"),
    )
    with caplog.at_level(logging.DEBUG, logger="onebot_ref"), client:
        assert client.connected
    path = impl.handshakes[0][0]
    assert parse_qs(urlsplit(path).query) == {"x": ["1"], "access_token": ["query-only-t0ken"]}
    assert log == ["up", "down: None"]  # close() is no error: last_error stays None
    assert "query-only-t0ken" not in caplog.text


# -- echo matching ---------------------------------------------------------------------


def variant_answer(request: dict[str, Any]) -> list[Any]:
    echo, kind = request["echo"], request["action"]
    ok = {"status": "ok", "retcode": 0, "data": kind}
    failed = {"status": "failed", "retcode": 100, "data": None, "message": "nope"}
    return {
        "string": [{**ok, "echo": echo}],
        "number": [{**ok, "echo": int(echo)}],
        "object": [{**ok, "echo": {"seq": echo}}],
        "missing_ok": [ok],
        "missing_failed": [failed],
        "null_failed": [{**failed, "echo": None}],
        "repeated": [{**ok, "echo": echo}, {**ok, "echo": echo}],
        "stream": [
            {**ok, "echo": echo, "stream": "stream-action", "data": {"type": "stream", "n": 1}},
            {**ok, "echo": echo, "stream": "stream-action", "data": {"type": "response"}},
        ],
        "silent": [],
    }[kind]


def test_echo_variants(impls: Callable[..., Impl]) -> None:
    impl = impls(answer=variant_answer)
    with fast(WsClient(impl.url(), timeout=0.3)) as bot:
        assert bot.call("string") == "string"
        assert bot.call("number") == "number"  # 7 for "7" still matches
        assert bot.call("repeated") == "repeated"
        assert bot.call("string") == "string"  # the duplicate did not confuse the next call
        assert bot.call("stream") == {"type": "response"}
        with pytest.raises(ActionFailed, match="nope"):
            bot.call("missing_failed")  # LLOneBot: echo-less failure, one call in flight
        with pytest.raises(ActionFailed):
            bot.call("null_failed")
        for kind in ("object", "missing_ok", "silent"):
            with pytest.raises(ApiTimeout):
                bot.call(kind)
        assert bot.connected  # none of that is a reason to reconnect
    assert len(impl.handshakes) == 1


def test_out_of_order_responses(impls: Callable[..., Impl]) -> None:
    held: list[dict[str, Any]] = []

    def reverse(request: dict[str, Any]) -> list[Any]:
        held.append(request)
        if len(held) < 3:
            return []
        return [
            {"status": "ok", "retcode": 0, "data": r["params"], "echo": r["echo"]}
            for r in held[::-1]
        ]

    impl = impls(answer=reverse)
    results: dict[int, Any] = {}
    with WsClient(impl.url(), timeout=10) as bot:
        threads = [
            threading.Thread(target=lambda n=n: results.update({n: bot.call("x", n=n)}))
            for n in range(3)
        ]
        for n, thread in enumerate(threads):
            thread.start()  # one at a time, so the requests arrive as 0, 1, 2
            # mypy cannot type a lambda whose default binds the loop's value
            wait_until(lambda n=n: len(held) == n + 1)  # type: ignore[misc]
        for thread in threads:
            thread.join(10)
    assert results == {n: {"n": n} for n in range(3)}


def test_eight_mib_messages_and_max_size(impls: Callable[..., Impl]) -> None:
    impl = impls()
    big = "漢" * (8 * MiB // 3)  # 8 MiB of UTF-8 each way
    seen: list[dict[str, Any]] = []
    with WsClient(impl.url(), max_size=9 * MiB) as bot:
        bot.on("message")(seen.append)
        assert echoed(bot.send_group_msg(1, big), "params")["message"] == big
        impl.push({**EVENTS[1], "raw_message": big})
        wait_until(lambda: seen)
        assert seen[0]["raw_message"] == big
        # Over max_size: refused before the payload is read (close 1009), then a reconnect.
        impl.push({**EVENTS[1], "raw_message": big + big})
        wait_until(lambda: len(impl.handshakes) == 2 and bot.connected)
    assert isinstance(bot.last_error, ProtocolError)
    assert bot.last_error.close_code == 1009
    assert len(seen) == 1


# -- authentication failures: fatal, no reconnect storm -------------------------------------

AUTH_CASES: list[Any] = [
    pytest.param("handshake", None, "HTTP 401", id="go-cqhttp-401"),
    pytest.param("handshake", "wrong-token", "HTTP 403", id="go-cqhttp-403"),
    pytest.param("text", "wrong-token", "authorization failed", id="cqhttp-text"),
    pytest.param("napcat", "wrong-token", "retcode 1403", id="napcat-1403"),
]


@pytest.mark.parametrize(("refuse", "token", "says"), AUTH_CASES)
def test_auth_failure_is_fatal_from_start(
    impls: Callable[..., Impl], refuse: str, token: str | None, says: str
) -> None:
    impl = impls(token="right-token", refuse=refuse)
    client = fast(WsClient(impl.url(), access_token=token))
    # An in-band refusal is the first frame, and the wait ends when it comes: give a
    # loaded machine time to deliver it (fast()'s 0.3 s missed it once in CI).
    client.first_frame_wait = 5.0
    before = set(threading.enumerate())
    with pytest.raises(AuthError, match=says) as caught:
        client.start()
    # Fatal: no thread of the client is left that could dial again (before close() ends them).
    wait_until(lambda: not running_client_threads(before), 5, "the client's threads ended")
    assert len(impl.handshakes) == 1
    client.close()
    assert "compare access_token" in str(caught.value)
    assert "wrong-token" not in str(caught.value)  # tokens are masked


@pytest.mark.parametrize(("refuse", "token", "says"), AUTH_CASES)
def test_auth_failure_is_fatal_from_run_forever(
    impls: Callable[..., Impl], refuse: str, token: str | None, says: str
) -> None:
    impl = impls(token="right-token", refuse=refuse)
    client = fast(WsClient(impl.url(), access_token=token))
    # An in-band refusal is the first frame, and the wait ends when it comes: give a
    # loaded machine time to deliver it (fast()'s 0.3 s missed it once in CI).
    client.first_frame_wait = 5.0
    errors: list[BaseException] = []

    def run() -> None:
        try:
            client.run_forever()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    client.close()
    assert len(errors) == 1 and isinstance(errors[0], AuthError), errors
    assert says in str(errors[0])
    with pytest.raises(NotConnected, match="stopped"):
        client.get_login_info()
    assert len(impl.handshakes) == 1


@pytest.mark.parametrize("status", [200, 404])
def test_http_port_instead_of_websocket(impls: Callable[..., Impl], status: int) -> None:
    impl = impls(status=status)
    with pytest.raises(NetworkError, match="HTTP API or web UI port, not a WebSocket server"):
        WsClient(impl.url()).start()


def test_wrong_scheme_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="HttpClient"):
        WsClient("http://127.0.0.1:3000/")


# -- drops, reconnects and liveness -------------------------------------------------------


def test_server_restart_fails_calls_fast_then_reconnects(impls: Callable[..., Impl]) -> None:
    impl = impls(answer=lambda r: [] if r["action"] == "hang" else echo_answer(r))
    bot = fast(WsClient(impl.url(), timeout=30)).start()
    try:
        outcome: list[BaseException] = []

        def hang() -> None:
            try:
                bot.call("hang")
            except BaseException as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=hang)
        waiter.start()
        wait_until(lambda: impl.requests)
        started = time.monotonic()
        impl.stop()
        waiter.join(10)
        assert isinstance(outcome[0], NotConnected)
        assert time.monotonic() - started < 10  # far less than the call's 30 s timeout
        wait_until(lambda: not bot.connected)
        with pytest.raises(NotConnected):
            bot.get_status()  # at once while disconnected
        again = impls(port=impl.port)
        wait_until(lambda: bot.connected)
        assert echoed(bot.get_status()) == "get_status"
        assert len(again.handshakes) == 1
    finally:
        bot.close()


def test_heartbeat_silence_triggers_reconnect(impls: Callable[..., Impl]) -> None:
    impl = impls(heartbeat=0.2, heartbeats=3)
    with fast(WsClient(impl.url())) as bot:
        wait_until(lambda: len(impl.handshakes) >= 2)
        detected = time.monotonic() - impl.last_heartbeat
        assert bot.connected or wait_until(lambda: bot.connected)
    # 3 x 0.2 s of silence, not less; generous on the upper side for loaded machines.
    assert 0.5 <= detected < 5.0


def test_no_heartbeats_no_watchdog(impls: Callable[..., Impl]) -> None:
    impl = impls(answer=lambda r: [])
    with WsClient(impl.url(), timeout=0.3) as bot:
        with pytest.raises(ApiTimeout):
            bot.get_status()
        # An hour of silence by the connection's own clock (the reaper's tick(now)): without
        # heartbeats there is no promise to break, so nothing cuts the connection.
        for link in bot._links.values():
            link.conn.tick(time.monotonic() + 3600)
            assert link.conn.cut == ""
        assert bot.connected
    assert len(impl.handshakes) == 1


def test_reconnect_false_returns_when_server_closes(impls: Callable[..., Impl]) -> None:
    impl = impls()
    client = WsClient(impl.url(), reconnect=False)
    thread = threading.Thread(target=client.run_forever)
    thread.start()
    wait_until(lambda: client.connected)
    impl.stop()
    thread.join(10)
    assert not thread.is_alive()
    client.close()


@pytest.mark.parametrize("how", ["reset", "shutdown"])
def test_server_vanishing_without_a_close_fails_the_pending_call_fast(
    how: str, no_thread_leak: None
) -> None:
    """No Close frame, just a TCP reset or FIN: the call in flight still fails at once."""

    def script(peer: Peer) -> None:
        peer.send_text(json.dumps(LIFECYCLE))
        if peer.read(lambda: peer.texts, 10):  # the call arrived: leave without a word
            peer.vanish(how)

    with RawServer(script) as impl:
        bot = fast(WsClient(impl.url, timeout=30)).start()
        try:
            outcome: list[BaseException] = []

            def hang() -> None:
                try:
                    bot.call("hang")
                except BaseException as exc:
                    outcome.append(exc)

            started = time.monotonic()
            waiter = threading.Thread(target=hang)
            waiter.start()
            waiter.join(10)
            assert outcome and isinstance(outcome[0], NotConnected), outcome
            assert time.monotonic() - started < 5  # far less than the call's 30 s timeout
        finally:
            bot.close()


@pytest.mark.parametrize("how", ["reset", "shutdown"])
def test_reconnect_false_returns_when_the_server_vanishes(how: str, no_thread_leak: None) -> None:
    go = threading.Event()

    def script(peer: Peer) -> None:
        peer.send_text(json.dumps(LIFECYCLE))
        if go.wait(10):
            peer.vanish(how)

    with RawServer(script) as impl:
        client = WsClient(impl.url, reconnect=False)
        thread = threading.Thread(target=client.run_forever)
        thread.start()
        try:
            wait_until(lambda: client.connected)
            go.set()
            thread.join(10)
            assert not thread.is_alive()
        finally:
            client.close()
            thread.join(5)


# -- OneBot 12 on the other end --------------------------------------------------------------

ONEBOT12_CONNECT = {  # nonebot-plugin-all4one greets every connection with meta.connect
    "id": "b6e65187-5ac0-489c-b431-53078e9d2bbb",
    "time": 1632847927.599013,
    "type": "meta",
    "detail_type": "connect",
    "sub_type": "",
    "version": {"impl": "nonebot-plugin-all4one", "version": "0.1.0", "onebot_version": "12"},
}


class OneBot12Impl:
    """A OneBot 12 forward-WS server (as nonebot-plugin-all4one): meta.connect, then
    status_update; every call without ``self`` fails with 10101 "Who Am I"."""

    def __init__(self) -> None:
        self.handshakes = 0
        self.close_codes: list[int | None] = []
        self.server = serve(self._handle, "127.0.0.1", 0, ping_interval=None)
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handle(self, conn: ServerConnection) -> None:
        self.handshakes += 1
        try:
            conn.send(json.dumps(ONEBOT12_CONNECT))
            status = {"good": True, "bots": [{"self": {"platform": "qq", "user_id": "1"}}]}
            conn.send(json.dumps({**ONEBOT12_CONNECT, "detail_type": "status_update",
                                  "status": status}))  # fmt: skip
            for message in conn:
                echo = json.loads(message).get("echo")
                conn.send(json.dumps({"status": "failed", "retcode": 10101, "data": None,
                                      "message": "Who Am I", "echo": echo}))  # fmt: skip
        except ConnectionClosed:
            pass
        finally:
            self.close_codes.append(conn.close_code)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def onebot12(no_thread_leak: None) -> Iterator[OneBot12Impl]:
    impl = OneBot12Impl()
    yield impl
    impl.stop()


def test_a_onebot_12_implementation_stops_start_with_one_sentence(onebot12: OneBot12Impl) -> None:
    client = fast(WsClient(onebot12.url))
    before = set(threading.enumerate())
    with pytest.raises(ProtocolError) as caught:
        client.start()
    wait_until(lambda: not running_client_threads(before), 5, "the client's threads ended")
    client.close()
    message = str(caught.value)
    assert "speaks OneBot 12 (nonebot-plugin-all4one), not OneBot 11" in message
    assert "switch the implementation to OneBot 11" in message
    assert caught.value.close_code == 1003
    wait_until(lambda: onebot12.close_codes)
    assert onebot12.close_codes == [1003]
    assert onebot12.handshakes == 1  # stopped, no thread left: no reconnect loop
    with pytest.raises(NotConnected, match=r"stopped: .* OneBot 12"):
        client.get_status()


def test_a_onebot_12_implementation_stops_run_forever(onebot12: OneBot12Impl) -> None:
    client = fast(WsClient(onebot12.url))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            client.run_forever()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    client.close()
    assert len(errors) == 1 and isinstance(errors[0], ProtocolError), errors
    assert "OneBot 12" in str(errors[0])
    assert onebot12.handshakes == 1


def test_a_onebot_12_api_only_connection_stops_too(onebot12: OneBot12Impl) -> None:
    """Split endpoints: OneBot 12 sends meta.connect on every connection, /api included."""
    client = fast(WsClient(api_url=onebot12.url))
    with pytest.raises(ProtocolError, match="speaks OneBot 12"):
        client.start()
    client.close()


# -- start(): waiting for an implementation that is not up yet --------------------------------


def test_start_waits_for_an_implementation_that_comes_up_later(impls: Callable[..., Impl]) -> None:
    port = unused_port()
    client = fast(WsClient(f"ws://127.0.0.1:{port}/"))
    refused: list[BaseException] = []

    def come_up_after_a_refusal() -> None:  # on cue, not on a timer
        refused.append(wait_until(lambda: client.last_error, 10, "a first attempt refused"))
        impls(port=port)

    later = threading.Thread(target=come_up_after_a_refusal)
    started = time.monotonic()
    later.start()
    try:
        client.start()  # waits up to connect_timeout (10 s) by default
        assert client.connected
        assert refused and time.monotonic() - started < 5  # it retried through the refusal
        assert echoed(client.get_status()) == "get_status"
    finally:
        later.join()
        client.close()


def test_start_gives_up_after_wait_with_the_last_error(
    caplog: pytest.LogCaptureFixture, no_thread_leak: None
) -> None:
    client = fast(WsClient(f"ws://127.0.0.1:{unused_port()}/"))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="onebot_ref.ws_client"):
        with pytest.raises(NetworkError, match=r"still failing after \d+ attempts in 0.5s"):
            client.start(wait=0.5)
    client.close()
    assert 0.4 < time.monotonic() - started < 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "onebot_ref.ws_client"]
    assert "retrying with backoff for up to 0.5s" in warnings[0]


def test_start_retries_a_proxys_503_within_its_wait(impls: Callable[..., Impl]) -> None:
    impl = impls(status=503)
    client = fast(WsClient(impl.url()))
    with pytest.raises(NetworkError, match="HTTP 503"):
        client.start(wait=0.5)
    client.close()
    assert len(impl.handshakes) >= 2


@pytest.mark.parametrize("status", [200, 404])
def test_start_does_not_wait_out_an_answer_that_will_not_change(
    impls: Callable[..., Impl], status: int, caplog: pytest.LogCaptureFixture
) -> None:
    impl = impls(status=status)
    client = WsClient(impl.url())  # the default backoff and wait
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="onebot_ref.ws_client"):
        with pytest.raises(NetworkError, match="not a WebSocket server"):
            client.start()
    client.close()
    assert time.monotonic() - started < 2
    assert len(impl.handshakes) == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "onebot_ref.ws_client"]
    assert warnings and "(not retrying: the answer will not change)" in warnings[0]


def test_close_during_backoff_is_prompt_and_leaves_no_threads(no_thread_leak: None) -> None:
    client = WsClient(f"ws://127.0.0.1:{unused_port()}/", connect_timeout=2)
    client.backoff_initial = client.backoff_max = 30.0
    with pytest.raises(NetworkError):
        client.start()  # start() raises the first connect error
    thread = threading.Thread(target=client.run_forever)
    thread.start()
    wait_until(lambda: client.last_error is not None and client._running)
    with pytest.raises(NotConnected, match="not connected"):
        client.get_status()
    started = time.monotonic()
    client.close()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2.0


def test_failing_server_backs_off_and_does_not_spam_logs(
    impls: Callable[..., Impl], caplog: pytest.LogCaptureFixture
) -> None:
    impl = impls(status=503)
    client = WsClient(impl.url())
    client.backoff_initial, client.backoff_max = 0.01, 0.08
    thread = threading.Thread(target=client.run_forever)
    with caplog.at_level(logging.WARNING, logger="onebot_ref.ws_client"):
        started = time.monotonic()
        thread.start()
        wait_until(lambda: len(impl.handshakes) >= 12, 10, "12 attempts")
        took = time.monotonic() - started
        client.close()
        thread.join(5)
    attempts = len(impl.handshakes)
    # The capped backoff bounds the rate: each pause is at least half its ceiling (the jitter),
    # 0.02, 0.04, then 0.08 (the cap): the 11 pauses between 12 attempts last 0.39 s at least.
    assert took >= 0.5 * (0.02 + 0.04 + 9 * 0.08), took
    warnings = [r.getMessage() for r in caplog.records if r.name == "onebot_ref.ws_client"]
    assert 1 <= len(warnings) <= 1 + attempts // client.log_every
    assert "HTTP 503" in warnings[0]


def test_close_from_inside_a_handler(impls: Callable[..., Impl]) -> None:
    impl = impls()
    bot = fast(WsClient(impl.url()))
    closed = threading.Event()

    @bot.on("message")
    def quit_command(event: dict[str, Any]) -> None:
        bot.close()  # must not try to join the worker it runs on
        closed.set()

    with bot:
        impl.push(EVENTS[1])
        assert closed.wait(10)
        wait_until(lambda: not bot.connected)


def test_event_only_client_says_why_calls_fail(impls: Callable[..., Impl]) -> None:
    impl = impls()
    seen: list[dict[str, Any]] = []
    bot = WsClient(event_url=impl.url("/event"))
    bot.on("*")(seen.append)
    with bot:
        wait_until(lambda: seen)
        with pytest.raises(NotConnected, match="api_url"):
            bot.get_status()
    assert bot.self_id == LIFECYCLE["self_id"]


def test_backoff_is_capped_exponential_with_jitter() -> None:
    client = WsClient("ws://127.0.0.1:1/")
    delays = [[client._backoff(n) for _ in range(200)] for n in range(12)]
    for n, samples in enumerate(delays):
        ceiling = min(client.backoff_max, client.backoff_initial * 2**n)
        assert all(ceiling / 2 <= d <= ceiling for d in samples)
        assert len(set(samples)) > 100  # jittered: bots restarted together do not dial in step
    assert max(delays[-1]) <= client.backoff_max
    client.close()


# -- the socket websocket-client hands over: nothing behind the 101 is lost --------------------


def _one_segment_server(frames: bytes, tls_context: Any = None) -> tuple[int, threading.Thread]:
    """A server that answers the upgrade with its 101 and ``frames`` in one write (one segment)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        sock, _ = listener.accept()
        try:
            if tls_context is not None:
                sock = tls_context.wrap_socket(sock, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            key = next(
                line.split(b":", 1)[1].strip().decode()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            sock.sendall(handshake_response(key) + frames)  # the 101 and the frames together
            while sock.recv(4096):  # until the client leaves
                pass
        except OSError:
            pass
        finally:
            sock.close()
            listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_frames_in_the_same_segment_as_the_101_are_not_lost(
    tls: bool, no_thread_leak: None
) -> None:
    """websocket-client reads the 101 byte by byte; what follows it is ours to read."""
    events = [LIFECYCLE, *[e for e in EVENTS if e.get("post_type") == "message"][:2]]
    frames = b"".join(encode_frame(Frame(TEXT, json.dumps(e).encode()), mask=False) for e in events)
    context = client_context = None
    if tls:
        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
    port, server = _one_segment_server(frames, context)
    seen: list[dict[str, Any]] = []
    scheme = "wss" if tls else "ws"
    # The peer never answers our Close: a short close_timeout, not 5 s per run.
    bot = WsClient(
        f"{scheme}://127.0.0.1:{port}/",
        ssl_context=client_context,
        reconnect=False,
        close_timeout=0.5,
    )
    bot.on("*")(seen.append)
    with bot:
        wait_until(lambda: len(seen) == len(events))
    assert sorted(json.dumps(e, sort_keys=True) for e in seen) == sorted(
        json.dumps(e, sort_keys=True) for e in events
    )
    server.join(5)


# -- one vocabulary (issue 14): arguments, lifecycle, hooks, backoff ---------------------------


def client_threads() -> list[str]:
    """The names of the threads a WsClient runs (connection loop, receive, hooks)."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("onebot-ws-"))


def test_timing_arguments_are_constructor_arguments_readable_as_attributes() -> None:
    rng = random.Random(1)
    client = WsClient(
        "ws://127.0.0.1:1/",
        timeout=3.0,
        connect_timeout=4.0,
        send_timeout=5.0,
        close_timeout=6.0,
        ping_interval=7.0,
        heartbeat_factor=2.5,
        first_frame_wait=0.25,
        backoff_initial=0.125,
        backoff_max=8.0,
        stable_after=9.0,
        rng=rng,
        max_size=1234,
    )
    assert (client.timeout, client.connect_timeout, client.send_timeout) == (3.0, 4.0, 5.0)
    assert (client.close_timeout, client.ping_interval, client.heartbeat_factor) == (6.0, 7.0, 2.5)
    assert (client.first_frame_wait, client.backoff_initial, client.backoff_max) == (
        0.25,
        0.125,
        8.0,
    )
    assert (client.stable_after, client.rng, client.max_size) == (9.0, rng, 1234)
    defaults = WsClient("ws://127.0.0.1:1/")
    assert (defaults.backoff_initial, defaults.backoff_max, defaults.stable_after) == (
        0.5,
        30.0,
        30.0,
    )
    assert (defaults.heartbeat_factor, defaults.first_frame_wait) == (3.0, 1.0)
    assert (defaults.send_timeout, defaults.close_timeout, defaults.ping_interval) == (
        10.0,
        10.0,
        None,
    )


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"backoff_initial": 0}, "0 < backoff_initial <= backoff_max"),
        ({"backoff_initial": 5, "backoff_max": 1}, "0 < backoff_initial <= backoff_max"),
        ({"heartbeat_factor": 1}, "heartbeat_factor=1 must be more than 1"),
        ({"ping_interval": 0}, "ping_interval=0 must be a positive number"),
        ({"ssl_context": ssl.create_default_context(), "verify": False}, "not both"),
        ({"ca_file": "/nonexistent/ca.pem"}, "cannot load ca_file="),
    ],
)
def test_arguments_that_cannot_work_are_config_errors(options: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        WsClient("wss://127.0.0.1:1/", **options)


@pytest.mark.parametrize(
    ("args", "kwargs", "says"),
    [
        (("http://127.0.0.1:3000/",), {}, "HttpClient"),
        ((), {}, "no endpoint"),
        (("ws://127.0.0.1:1/",), {"api_url": "ws://127.0.0.1:1/api"}, "not both"),
    ],
)
def test_a_bad_endpoint_is_a_config_error(
    args: tuple[str, ...], kwargs: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigError, match=says):
        WsClient(*args, **kwargs)


def test_start_twice_dials_once_and_starts_no_second_thread(impls: Callable[..., Impl]) -> None:
    impl = impls()
    bot = WsClient(impl.url())
    try:
        assert bot.start() is bot
        threads = client_threads()
        assert bot.start() is bot  # was: RuntimeError("start() was already called")
        assert client_threads() == threads
        assert threads.count("onebot-ws-client") == 1
        assert len(impl.handshakes) == 1
    finally:
        bot.close()


def test_start_from_two_threads_at_once_dials_once(impls: Callable[..., Impl]) -> None:
    impl = impls()
    bot = WsClient(impl.url())
    results: list[Any] = []
    gate = threading.Barrier(2)

    def start() -> None:
        gate.wait(5)
        results.append(bot.start())

    starters = [threading.Thread(target=start) for _ in range(2)]
    try:
        for thread in starters:
            thread.start()
        for thread in starters:
            thread.join(10)
        assert results == [bot, bot]
        assert client_threads().count("onebot-ws-client") == 1
        assert len(impl.handshakes) == 1
    finally:
        bot.close()


def test_run_forever_after_start_waits_for_that_loop_then_closes(
    impls: Callable[..., Impl],
) -> None:
    impl = impls()
    bot = WsClient(impl.url(), on_connect=lambda c: None).start()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            bot.run_forever()  # was: RuntimeError("run_forever() is already running")
        except BaseException as exc:
            errors.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        wait_until(lambda: "onebot-ws-client-hooks" in client_threads())
        assert runner.is_alive() and bot.connected
        assert client_threads().count("onebot-ws-client") == 1
    finally:
        bot.close()
        runner.join(10)
    assert not runner.is_alive() and errors == []
    assert len(impl.handshakes) == 1


def test_run_forever_closes_what_it_started_on_return(impls: Callable[..., Impl]) -> None:
    """As WsServer.serve_forever: its threads (hooks and handler workers too) are gone."""
    impl = impls()
    seen: list[str] = []
    client = WsClient(impl.url(), reconnect=False, on_connect=lambda c: seen.append("up"))
    client.on("*")(lambda event: seen.append(event["post_type"]))
    runner = threading.Thread(target=client.run_forever)
    runner.start()
    wait_until(lambda: len(seen) == 2)  # the hook, and the lifecycle event's handler
    impl.stop()  # the connection ends; reconnect=False: run_forever returns
    runner.join(10)
    assert not runner.is_alive()
    leftover = [t.name for t in threading.enumerate() if t.name.startswith("onebot")]
    assert leftover == []  # nobody called close(): run_forever did
    with pytest.raises(NotConnected, match="the client was closed"):
        client.start()


def test_hooks_take_the_client_run_in_order_on_their_own_thread_and_may_call_the_api(
    impls: Callable[..., Impl], caplog: pytest.LogCaptureFixture
) -> None:
    impl = impls(heartbeat=0.2, heartbeats=2)  # then silent: dropped, and back
    events: list[tuple[str, str, Any]] = []

    def on_connect(client: WsClient) -> None:
        info = client.get_login_info()  # a call from the hook thread works
        events.append(("up", threading.current_thread().name, info["user_id"]))
        raise RuntimeError("a broken hook")  # logged; the next hooks still run

    def on_disconnect(client: WsClient) -> None:
        events.append(("down", threading.current_thread().name, type(client.last_error)))

    client = fast(WsClient(impl.url(), on_connect=on_connect, on_disconnect=on_disconnect))
    with caplog.at_level(logging.ERROR, logger="onebot_ref.ws_client"), client:
        wait_until(lambda: len(events) >= 3)
    assert events[:3] == [
        ("up", "onebot-ws-client-hooks", 424242),
        ("down", "onebot-ws-client-hooks", NetworkError),  # silent past 3 heartbeats
        ("up", "onebot-ws-client-hooks", 424242),
    ]
    assert events[-1] == ("down", "onebot-ws-client-hooks", NetworkError)  # close() keeps it
    failures = [r for r in caplog.records if "hook" in r.getMessage() and r.exc_info]
    # exc_info is set: the filter above took only records that have one
    assert len(failures) >= 2 and "a broken hook" in str(failures[0].exc_info[1])  # type: ignore[index]


class TopOfTheRange(random.Random):
    """A jitter source that always answers the top of the range asked for: exact delays."""

    def __init__(self) -> None:
        super().__init__(0)
        self.asked: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.asked.append((a, b))
        return b


def test_backoff_delays_are_exact_with_a_seeded_rng() -> None:
    client = WsClient(
        "ws://127.0.0.1:1/", backoff_initial=0.5, backoff_max=30.0, rng=random.Random(7)
    )
    same = random.Random(7)
    expected = [min(30.0, 0.5 * 2**n) * same.uniform(0.5, 1.0) for n in range(1, 12)]
    assert [client._backoff(n) for n in range(1, 12)] == expected


def test_backoff_between_real_attempts_follows_the_injected_rng(no_thread_leak: None) -> None:
    """A port that accepts and hangs up at once: each gap between two attempts is the delay."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    arrivals: list[float] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            arrivals.append(time.monotonic())
            sock.close()  # no 101: a failed attempt, retried with backoff

    acceptor = threading.Thread(target=accept)
    acceptor.start()
    rng = TopOfTheRange()
    client = WsClient(
        f"ws://127.0.0.1:{listener.getsockname()[1]}/",
        backoff_initial=0.05,
        backoff_max=0.2,
        rng=rng,
    )
    runner = threading.Thread(target=client.run_forever)
    try:
        runner.start()
        wait_until(lambda: len(arrivals) >= 5)
    finally:
        client.close()
        runner.join(5)
        done.set()
        acceptor.join(5)
        listener.close()
    delays = [0.1, 0.2, 0.2, 0.2]  # 0.05 doubled per failure, capped at 0.2; no jitter
    gaps = [b - a for a, b in itertools.pairwise(arrivals[:5])]
    assert rng.asked[:4] == [(0.5, 1.0)] * 4
    assert all(delay <= gap < delay + 2.0 for gap, delay in zip(gaps, delays, strict=True)), gaps


def silent_peer(pongs: bool, counts: dict[str, int]) -> Callable[[Peer], Any]:
    """A server that sends nothing, counts our pings, and answers them only if ``pongs``."""

    def script(peer: Peer) -> None:
        peer.sock.settimeout(10)
        while True:
            data = peer.sock.recv(65536)
            if not data:
                return
            peer.ws.receive_data(data)
            for event in peer.ws.events():
                if isinstance(event, wse.Ping):
                    counts["pings"] += 1
                    if pongs:
                        peer.sock.sendall(peer.ws.send(event.response()))
                        counts["pongs"] += 1
                elif isinstance(event, wse.CloseConnection):
                    counts["closed"] = event.code
                    peer.sock.sendall(peer.ws.send(event.response()))

    return script


def test_ping_interval_drops_a_server_that_answers_none(no_thread_leak: None) -> None:
    counts = {"pings": 0, "pongs": 0}
    with RawServer(silent_peer(False, counts)) as impl:
        client = WsClient(
            impl.url, ping_interval=0.2, heartbeat_factor=2.0, reconnect=False, first_frame_wait=0
        )
        runner = threading.Thread(target=client.run_forever)
        started = time.monotonic()
        runner.start()
        runner.join(10)
        assert not runner.is_alive()
    assert 0.4 <= time.monotonic() - started < 5  # 2 x 0.2 s of silence, not less
    assert counts["pings"] >= 1
    assert isinstance(client.last_error, NetworkError)
    assert "answered none of our pings" in str(client.last_error)


def test_ping_interval_keeps_a_server_that_answers(no_thread_leak: None) -> None:
    counts = {"pings": 0, "pongs": 0}
    with RawServer(silent_peer(True, counts)) as impl:
        client = WsClient(impl.url, ping_interval=0.2, first_frame_wait=0)
        with client:
            wait_until(lambda: counts["pongs"] >= 5)  # 1 s: more than the 0.6 s of silence allowed
            assert client.connected and client.connects == 1
    assert counts.get("closed") == 1000


def test_send_timeout_drops_a_server_that_stopped_reading(no_thread_leak: None) -> None:
    release = threading.Event()

    def never_reads(peer: Peer) -> None:
        release.wait(10)

    with RawServer(never_reads) as impl:
        client = WsClient(impl.url, send_timeout=0.5, timeout=30, first_frame_wait=0)
        try:
            client.start()
            started = time.monotonic()
            with pytest.raises(NotConnected):  # 32 MiB: more than the socket buffers hold
                client.call("upload", {"blob": "x" * (32 * MiB)})
            assert time.monotonic() - started < 5  # not the call's 30 s
        finally:
            client.close()
            release.set()


def never_answers_close(peer: Peer) -> list[int]:
    """Read until EOF; never answer the client's Close; return the close codes received."""
    codes: list[int] = []
    peer.sock.settimeout(10)
    while data := peer.sock.recv(65536):
        peer.ws.receive_data(data)
        codes += [e.code for e in peer.ws.events() if isinstance(e, wse.CloseConnection)]
    return codes


def test_close_waits_close_timeout_for_a_server_that_does_not_answer(no_thread_leak: None) -> None:
    with RawServer(never_answers_close) as impl:
        client = WsClient(impl.url, close_timeout=1.0, first_frame_wait=0).start()
        started = time.monotonic()
        client.close()
        elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 4.0  # the server's time to answer (it was 0.5 s whatever we said)
    assert impl.results == [[1000]]  # our Close went out first, then nothing but the cut


def test_close_timeout_is_bounded_by_close_own_timeout(no_thread_leak: None) -> None:
    with RawServer(never_answers_close) as impl:
        client = WsClient(impl.url, close_timeout=30.0, first_frame_wait=0).start()
        started = time.monotonic()
        client.close(timeout=0.5)
        assert time.monotonic() - started < 2.0


def test_close_is_prompt_when_the_server_answers(impls: Callable[..., Impl]) -> None:
    impl = impls()
    client = WsClient(impl.url(), close_timeout=10.0).start()
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 2.0
    wait_until(lambda: impl.close_codes)
    assert impl.close_codes == [1000]


def test_close_from_inside_a_hook(impls: Callable[..., Impl]) -> None:
    impl = impls()
    closed = threading.Event()

    def on_connect(client: WsClient) -> None:
        client.close()  # must not wait for the hook thread it runs on
        closed.set()

    client = WsClient(impl.url(), on_connect=on_connect).start()
    assert closed.wait(10)
    assert not client.connected
    wait_until(lambda: "onebot-ws-client-hooks" not in client_threads())
