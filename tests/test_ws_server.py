"""ws_server over real loopback sockets, driven by independent WebSocket clients.

The implementation side is played by websocket-client, by the ``websockets``
sync client, and by a raw socket speaking frames through wsproto.
"""

import json
import logging
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import websocket
import wsproto
import wsproto.events as wse
from conftest import echoed, load_vectors, served, upgrade_request, wait_until
from hostile import Peer
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from onebot_ref import ActionFailed, ApiTimeout, NotConnected, Registry
from onebot_ref._ws_connection import Connection
from onebot_ref.framer import CLOSE, PING, TEXT, Frame, encode_frame
from onebot_ref.ws_server import Bot, WsServer

pytestmark = pytest.mark.usefixtures("no_thread_leak")

STANDARD = {"connection", "upgrade", "sec-websocket-version", "sec-websocket-key", "host"}


def event(self_id: int | str = 10001, text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "time": 1700000000,
        "self_id": self_id,
        "post_type": "message",
        "message_type": "private",
        "sub_type": "friend",
        "user_id": 42,
        "message": text,
        **extra,
    }


class Impl:
    """A OneBot implementation played by websocket-client: it answers every action ok."""

    def __init__(self, url: str, headers: list[str], answer: bool = True) -> None:
        self.ws = websocket.create_connection(url, header=headers, timeout=10)
        self.answer = answer
        self.requests: queue.Queue[Any] = queue.Queue()
        self.close_code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                opcode, data = self.ws.recv_data()
            except Exception:
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self.close_code = int.from_bytes(data[:2], "big") if data else 1005
                return
            request = json.loads(data)
            self.requests.put(request)
            if self.answer:
                data = {"action": request["action"], "params": request["params"]}
                self.send({"status": "ok", "retcode": 0, "data": data, "echo": request["echo"]})

    def send(self, obj: Any) -> None:
        self.ws.send(json.dumps(obj, ensure_ascii=False))

    def close(self) -> None:
        self.ws.abort()
        self.thread.join(10)
        self.ws.shutdown()


def ws_client(url: str, self_id: int | str) -> ClientConnection:
    """A ``websockets`` sync client dialing as bot ``self_id``; the caller closes it."""
    client = ws_connect(url, additional_headers={"X-Self-ID": str(self_id)}, open_timeout=10)
    client.__enter__()  # websockets >= 15 warns unless connect() is "entered"
    return client


def headers_for(self_id: int | str, role: str = "Universal", token: str | None = None) -> list[str]:
    headers = [f"X-Self-ID: {self_id}", f"X-Client-Role: {role}"]
    if token is not None:
        headers.append(f"Authorization: Bearer {token}")
    return headers


@pytest.fixture
def server() -> Iterator[WsServer]:
    with WsServer(port=0, timeout=10) as srv:
        yield srv


def vector_headers(vector_id: str) -> list[list[str]]:
    (vector,) = [v for v in load_vectors("handshake") if v["id"] == vector_id]
    payload = vector["payload"]
    connections = payload.get("connections") or [payload]
    return [
        [f"{k}: {v}" for k, v in c["headers"].items() if k.lower() not in STANDARD]
        for c in connections
    ]


@pytest.mark.parametrize(
    ("vector_id", "token", "self_id"),
    [
        ("napcat-handshake-reverse-ws-notoken-001", None, "3332627962"),
        ("lagrange-handshake-reverse-ws-001", None, "3000000001"),
        ("misc-coolq-http-api-headers-001", "s3cr3t", "10001"),
    ],
)
def test_real_handshakes_are_accepted(vector_id: str, token: str | None, self_id: str) -> None:
    (headers,) = vector_headers(vector_id)
    with WsServer(port=0, access_token=token, timeout=10) as srv:
        impl = Impl(srv.url, headers)
        try:
            wait_until(lambda: srv.bots == [self_id])
            assert srv.call("get_status") == {"action": "get_status", "params": {}}
        finally:
            impl.close()


def test_go_cqhttp_api_event_split_and_lagrange_api_role(server: WsServer) -> None:
    api_headers, event_headers = vector_headers("gocq-handshake-reverse-ws-api-event-001")
    api = Impl(server.url, api_headers)
    events = Impl(server.url, event_headers)
    lagrange = Impl(server.url, headers_for(555, role="Api"))
    try:
        wait_until(lambda: server.bots == ["1963185901", "555"])
        replied = threading.Event()
        # a lambda that does two things: mypy flags the None of set()
        server.on("message")(lambda e: (server.reply(e, "pong"), replied.set()))  # type: ignore[func-returns-value]
        events.send(event(self_id=1963185901))
        request = api.requests.get(timeout=10)  # the reply leaves on the API socket
        assert request["action"] == "send_private_msg"
        assert request["params"]["message"] == "pong"
        assert replied.wait(10)
        assert events.requests.empty()
        assert echoed(server.bot(555).get_login_info()) == "get_login_info"
        assert lagrange.requests.get(timeout=10)["action"] == "get_login_info"
    finally:
        for impl in (api, events, lagrange):
            impl.close()


def test_event_only_bot_cannot_take_calls(server: WsServer) -> None:
    impl = Impl(server.url, headers_for(7, role="Event"))
    try:
        wait_until(lambda: server.bots == ["7"])
        with pytest.raises(NotConnected, match="Event"):
            server.call("get_status", self_id=7)
    finally:
        impl.close()


def test_auth_401_403_before_upgrade_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with WsServer(port=0, access_token="s3cr3t") as srv:
        caplog.set_level(logging.WARNING, logger="onebot_ref.ws_server")
        for _ in range(3):
            with pytest.raises(websocket.WebSocketBadStatusException) as info:
                websocket.create_connection(srv.url, header=headers_for(1), timeout=10)
            assert info.value.status_code == 401
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            websocket.create_connection(srv.url, header=headers_for(1, token="nope"), timeout=10)
        assert info.value.status_code == 403
        refusals = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == 2  # one 401 line for three attempts, one 403 line
        assert "s3cr3t" not in caplog.text and "nope" not in caplog.text
        for url, token_header in [
            (srv.url + "?access_token=s3cr3t", []),
            (srv.url, ["Authorization: Token s3cr3t"]),
            (srv.url, ["authorization: bearer s3cr3t"]),
        ]:
            ws = websocket.create_connection(url, header=token_header, timeout=10)
            ws.close()


def test_a_wrong_token_learns_nothing_about_the_real_one(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="onebot_ref")
    with WsServer(port=0, access_token="s3cr3t-token") as srv:
        headers = ["X-Self-ID: 1", "Authorization: Bearer wr0ng"]
        answer = http_exchange(srv.port, upgrade_request("/", headers))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 ")
    assert body == b"wrong access token\n"  # neither fingerprint nor length on the wire
    assert "wr…(5 chars), expected s3…(12 chars)" in caplog.text  # our own log keeps them


def test_several_bots_routing(server: WsServer) -> None:
    one = Impl(server.url, headers_for(1))
    two = ws_client(server.url, 2)
    try:
        wait_until(lambda: server.bots == ["1", "2"])
        with pytest.raises(ValueError, match=r"\['1', '2'\]"):
            server.get_status()
        with pytest.raises(NotConnected, match="3"):
            server.call("get_status", self_id=3)
        assert echoed(server.bot(1).get_status()) == "get_status"
        # Bot 2 answers with a failure, from the websockets client.
        result: queue.Queue[Any] = queue.Queue()
        caller = threading.Thread(
            target=lambda: result.put(_catch(lambda: server.bot("2").delete_msg(5)))
        )
        caller.start()
        request = json.loads(two.recv(timeout=10))
        assert request["action"] == "delete_msg" and isinstance(request["echo"], str)
        two.send(json.dumps({"status": "failed", "retcode": 100, "echo": request["echo"]}))
        caller.join(10)
        assert isinstance(result.get(timeout=1), ActionFailed)
    finally:
        one.close()
        two.close()


def _catch(func: Callable[[], Any]) -> Any:
    try:
        return func()
    except Exception as exc:
        return exc


def test_replace_on_reconnect(server: WsServer) -> None:
    old = Impl(server.url, headers_for(9))
    wait_until(lambda: server.bots == ["9"])
    new = Impl(server.url, headers_for(9))
    try:
        old.thread.join(10)
        assert old.close_code == 1000
        assert server.call("get_status")["action"] == "get_status"
        assert new.requests.get(timeout=10)["action"] == "get_status"
    finally:
        old.close()
        new.close()


@pytest.fixture
def one_worker_server() -> Iterator[WsServer]:
    """A server whose handlers run one at a time, in the order the events came (the default
    pool runs them side by side, so two events' handlers may finish in either order)."""
    registry = Registry(workers=1)  # a registry passed in is the caller's to close
    try:
        with WsServer(port=0, timeout=10, registry=registry) as srv:
            yield srv
    finally:
        registry.close()


def test_events_sent_before_the_implementation_saw_our_close_are_not_lost(
    one_worker_server: WsServer,
) -> None:
    # The race behind a lost event: we send a Close (here: the bot reconnected, so the old
    # connection is retired) while the implementation is still pushing events on it. What it
    # sent before it read our Close must reach the handlers; a ping in between gets no pong.
    server = one_worker_server
    seen: queue.Queue[Any] = queue.Queue()
    server.on("message")(lambda e: seen.put(e["message"]))
    sock, conn = raw_client(server.port, headers=[(b"X-Self-ID", b"9")])
    try:
        wait_until(lambda: server.bots == ["9"])
        newer = Impl(server.url, headers_for(9))
        assert close_code_after(sock, conn) == 1000  # "replaced by a newer connection"
        frames = [
            Frame(TEXT, json.dumps(event(9, "late-1")).encode()),
            Frame(PING, b"?"),
            Frame(TEXT, json.dumps(event(9, "late-2")).encode()),
            Frame(CLOSE, (1000).to_bytes(2, "big")),
        ]
        sock.sendall(b"".join(encode_frame(f, mask=True) for f in frames))
        assert [seen.get(timeout=5), seen.get(timeout=5)] == ["late-1", "late-2"]
        sock.settimeout(5)
        assert sock.recv(65536) == b""  # no pong: nothing after our Close but the TCP close
        newer.close()
    finally:
        sock.close()


def test_a_peer_that_never_answers_our_close_is_cut_after_close_timeout() -> None:
    with WsServer(port=0, timeout=5, close_timeout=0.5) as srv:
        sock, conn = raw_client(srv.port, headers=[(b"X-Self-ID", b"9")])
        try:
            wait_until(lambda: srv.bots == ["9"])
            newer = Impl(srv.url, headers_for(9))
            assert close_code_after(sock, conn) == 1000  # retired; we never answer
            sock.sendall(encode_frame(Frame(TEXT, json.dumps(event(9)).encode()), mask=True))
            started = time.monotonic()
            sock.settimeout(5)
            assert sock.recv(65536) == b""  # cut, not left open for ever
            assert time.monotonic() - started < 3
            newer.close()
        finally:
            sock.close()


def hooked_server(log: queue.Queue[Any], **options: Any) -> WsServer:
    """A WsServer whose hooks log ("connect"/"disconnect", self_id, thread name)."""

    def hook(kind: str) -> Callable[[Bot], None]:
        return lambda bot: log.put((kind, bot.self_id, threading.current_thread().name))

    return WsServer(port=0, timeout=10, on_connect=hook("connect"),
                    on_disconnect=hook("disconnect"), **options)  # fmt: skip


def test_hooks_once_per_bot_across_split_connections_and_replacement() -> None:
    log: queue.Queue[Any] = queue.Queue()
    with hooked_server(log) as srv:
        api_headers, event_headers = vector_headers("gocq-handshake-reverse-ws-api-event-001")
        api = Impl(srv.url, api_headers)
        events = Impl(srv.url, event_headers)
        wait_until(lambda: srv.bots == ["1963185901"])
        assert log.get(timeout=10)[:2] == ("connect", "1963185901")
        replacement = Impl(srv.url, api_headers)  # the API connection comes back: no hooks
        api.thread.join(10)
        assert api.close_code == 1000
        events.close()  # the API connection still holds the bot
        wait_until(lambda: served(srv) == 1, 10, "the event connection gone")
        assert srv.bots == ["1963185901"] and log.empty()
        replacement.close()
        kind, self_id, thread = log.get(timeout=10)
        assert (kind, self_id) == ("disconnect", "1963185901")
        assert thread.startswith("onebot-ws-hooks")  # not a receive thread
        api.close()
    assert log.empty()


def test_hooks_call_the_bot_and_see_learned_ids_and_close(caplog: pytest.LogCaptureFixture) -> None:
    log: queue.Queue[Any] = queue.Queue()
    seen: queue.Queue[Any] = queue.Queue()

    def greet(bot: Bot) -> None:
        seen.put(echoed(bot.get_login_info()))  # a call from the hook: not a receive thread

    def boom(bot: Bot) -> None:
        raise RuntimeError("hook failed")

    with WsServer(port=0, timeout=10, on_connect=greet, on_disconnect=boom) as srv:
        impl = Impl(srv.url, ["User-Agent: no self id"])
        try:
            wait_until(lambda: served(srv) == 1, 10, "the connection served")
            assert srv.bots == [] and seen.empty()  # no self_id yet: not a bot yet
            impl.send(event(self_id=4242))
            assert seen.get(timeout=10) == "get_login_info"
        finally:
            impl.close()
        wait_until(lambda: srv.bots == [])
        srv.on_connect = None
        other = Impl(srv.url, headers_for(1))  # on_disconnect raises: logged, server goes on
        try:
            assert echoed(srv.bot(1).get_status()) == "get_status"
        finally:
            other.close()
        wait_until(lambda: "hook test_hooks_call_the_bot_and_see_learned_ids_and_close"
                   ".<locals>.boom failed" in caplog.text)  # fmt: skip
    with hooked_server(log) as srv:  # close() runs on_disconnect for the bots still there
        impl = Impl(srv.url, headers_for(5))
        assert log.get(timeout=10)[:2] == ("connect", "5")
        srv.close()
        assert log.get(timeout=10)[:2] == ("disconnect", "5")
        impl.close()


def test_two_accounts_in_one_group_reply_once_with_dedup() -> None:
    """USER_PAINS §9: both bots get the group message; with dedup_accounts only one replies."""
    registry = Registry(dedup_accounts=60)
    with WsServer(port=0, registry=registry, timeout=10) as srv:
        srv.on("message.group")(lambda e: srv.reply(e, "hello"))
        bots = {n: Impl(srv.url, headers_for(n)) for n in (1, 2)}
        try:
            wait_until(lambda: srv.bots == ["1", "2"])
            for n, impl in bots.items():  # each account's copy: its own self_id and message_id
                impl.send(event(self_id=n, message_type="group", group_id=9, message_id=n * 7))
            wait_until(lambda: registry.duplicates == 1)
            wait_until(lambda: sum(impl.requests.qsize() for impl in bots.values()) == 1)
            assert registry.join(5)  # every event handled: no second reply can follow
            replies = [
                impl.requests.get_nowait() for impl in bots.values() if impl.requests.qsize()
            ]
            assert [r["action"] for r in replies] == ["send_group_msg"]  # from one account only
        finally:
            for impl in bots.values():
                impl.close()
    registry.close()


def test_handler_calling_the_api_does_not_deadlock() -> None:
    registry = Registry(workers=1)  # one worker, blocked in call() while the reply comes in
    answers: queue.Queue[Any] = queue.Queue()
    with WsServer(port=0, registry=registry, timeout=10) as srv:
        srv.on("message")(lambda e: answers.put(srv.reply(e, "hello")))
        impl = Impl(srv.url, headers_for(10001))
        try:
            for n in range(3):
                impl.send(event(text=f"m{n}"))
            for _ in range(3):
                assert answers.get(timeout=10)["action"] == "send_private_msg"
        finally:
            impl.close()
    registry.close()


def test_pending_call_fails_fast_on_disconnect(server: WsServer) -> None:
    impl = Impl(server.url, headers_for(1), answer=False)
    wait_until(lambda: server.bots == ["1"])
    result: queue.Queue[Any] = queue.Queue()
    caller = threading.Thread(target=lambda: result.put(_catch(server.get_status)))
    caller.start()
    impl.requests.get(timeout=10)
    started = time.monotonic()
    impl.close()  # the call's timeout is 10 s: only fail-fast raises NotConnected
    caller.join(15)
    assert time.monotonic() - started < 5  # fast: well before the call's own timeout
    error = result.get(timeout=1)
    assert isinstance(error, NotConnected) and not isinstance(error, ApiTimeout)
    wait_until(lambda: server.bots == [])
    with pytest.raises(NotConnected):
        server.get_status()


def test_unanswered_call_times_out(server: WsServer) -> None:
    impl = Impl(server.url, headers_for(1), answer=False)
    try:
        wait_until(lambda: server.bots == ["1"])
        with pytest.raises(ApiTimeout):
            server.call("get_status", timeout=0.2)
    finally:
        impl.close()


def test_out_of_order_and_stream_responses(server: WsServer) -> None:
    ws = ws_client(server.url, 1)
    try:
        wait_until(lambda: server.bots == ["1"])
        results: queue.Queue[Any] = queue.Queue()
        callers = [
            threading.Thread(target=lambda a=a: results.put((a, server.call(a)))) for a in "ab"
        ]
        for caller in callers:
            caller.start()
        requests = [json.loads(ws.recv(timeout=10)) for _ in range(2)]
        ws.send(json.dumps({"status": "ok", "retcode": 0, "data": 1, "echo": "nobody"}))
        for request in reversed(requests):
            echo, action = request["echo"], request["action"]
            chunk = {"type": "stream", "data": "part"}
            ws.send(json.dumps({"status": "ok", "retcode": 0, "data": chunk, "echo": echo,
                                "stream": "stream-action"}))  # fmt: skip
            final = {"type": "response", "action": action}
            ws.send(json.dumps({"status": "ok", "retcode": 0, "data": final, "echo": echo,
                                "stream": "stream-action"}))  # fmt: skip
        for caller in callers:
            caller.join(10)
        got = dict(results.get(timeout=1) for _ in range(2))
        assert got == {a: {"type": "response", "action": a} for a in "ab"}
    finally:
        ws.close()


def test_concurrent_calls_each_frame_once_and_whole(server: WsServer) -> None:
    """16 threads calling at once share writes (small and 600 KiB frames, past OUTBOX_LIMIT)."""
    ws = ws_client(server.url, 1)
    seen: list[str] = []

    def answer() -> None:
        try:
            while True:
                request = json.loads(ws.recv(timeout=10))
                seen.append(request["echo"])
                data = {"n": request["params"]["n"], "size": len(request["params"]["text"])}
                ws.send(json.dumps({"status": "ok", "retcode": 0, "data": data,
                                    "echo": request["echo"]}))  # fmt: skip
        except (ConnectionClosed, TimeoutError):
            return

    answerer = threading.Thread(target=answer)
    answerer.start()
    results: queue.Queue[Any] = queue.Queue()

    def caller(first: bool) -> None:
        for n in range(first, first + 20):
            text = "x" * (600_000 if n % 37 == 0 else n)
            results.put((n, len(text), server.call("echo", n=n, text=text)))

    try:
        wait_until(lambda: server.bots == ["1"])
        callers = [threading.Thread(target=caller, args=(k * 20,)) for k in range(16)]
        for thread in callers:
            thread.start()
        for thread in callers:
            thread.join(30)
        got = [results.get(timeout=1) for _ in range(320)]
        assert sorted(n for n, _, _ in got) == list(range(320))
        assert all(data == {"n": n, "size": size} for n, size, data in got)
        assert len(seen) == len(set(seen)) == 320
    finally:
        ws.close()
        answerer.join(10)


class LateSender:
    """A connection's write lock that lets another thread queue a frame just before release."""

    def __init__(self, conn: Connection, frame: bytes) -> None:
        self.real, self.conn, self.frame, self.queued = conn._write_lock, conn, frame, False

    def acquire(self, *args: Any, **kwargs: Any) -> Any:
        return self.real.acquire(*args, **kwargs)

    def release(self) -> None:
        if not self.queued:
            self.queued = True
            other = threading.Thread(target=self.conn.send_text, args=(self.frame,))
            other.start()
            other.join(5)  # it found the lock taken and returned at once
        self.real.release()


@pytest.mark.parametrize("writer", ["send", "ping"])
def test_a_frame_queued_as_the_writer_lets_go_is_still_sent(server: WsServer, writer: str) -> None:
    """A sender that finds the lock taken leaves its frame to the writer, even at its last moment.

    After a ping (sent by the accept thread, which must not block) the frame goes out
    from a thread of its own.
    """
    ws = ws_client(server.url, 1)
    try:
        wait_until(lambda: server.bots == ["1"])
        (peer,) = server._connections
        conn = peer.conn  # the socket's connection, under the bot's view of it
        assert conn is not None  # connected
        conn._write_lock = LateSender(conn, b'{"second":2}')  # type: ignore[assignment]  # a spy
        if writer == "send":
            conn.send_text(b'{"first":1}')
            assert json.loads(ws.recv(timeout=5)) == {"first": 1}
        else:
            conn.ping()  # the websockets client answers it by itself
        assert json.loads(ws.recv(timeout=5)) == {"second": 2}
    finally:
        ws.close()


def test_missing_self_id_is_learned_from_the_first_event(server: WsServer) -> None:
    impl = Impl(server.url, ["User-Agent: nothing"])
    try:
        assert echoed(server.get_status()) == "get_status"  # the only bot, unnamed
        impl.send(event(self_id=4242))
        wait_until(lambda: server.bots == ["4242"])
    finally:
        impl.close()


def test_heartbeat_silence_is_reaped(server: WsServer) -> None:
    impl = Impl(server.url, headers_for(1))
    heartbeat = {
        "time": 1,
        "self_id": 1,
        "post_type": "meta_event",
        "meta_event_type": "heartbeat",
        "status": {"online": True, "good": True},
        "interval": 100,
    }
    try:
        impl.send(heartbeat)
        impl.thread.join(10)  # then silence: the server cuts the socket after ~0.3 s
        assert not impl.thread.is_alive()
        wait_until(lambda: server.bots == [])
    finally:
        impl.close()


def test_fragmented_and_8_mib_events(server: WsServer) -> None:
    seen: queue.Queue[Any] = queue.Queue()
    server.on("message")(seen.put)
    ws = ws_client(server.url, 1)
    try:
        text = json.dumps(event(text="分片" * 1000), ensure_ascii=False)
        ws.send([text[:10], text[10:2001], text[2001:]])  # three frames, one message
        assert seen.get(timeout=10)["message"] == "分片" * 1000
        big = "x" * (8 * 2**20)
        ws.send(json.dumps(event(text=big)))
        assert seen.get(timeout=20)["message"] == big
        ws.ping(b"hi").wait(10)  # pongs are answered
    finally:
        ws.close()


def raw_client(
    url_port: int, path: str = "/", headers: Sequence[tuple[bytes, bytes]] = ()
) -> tuple[socket.socket, wsproto.WSConnection]:
    """A socket that did the handshake through wsproto; returns (sock, wsproto connection)."""
    sock = socket.create_connection(("127.0.0.1", url_port), timeout=10)
    conn = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    sock.sendall(conn.send(wse.Request(host="127.0.0.1", target=path, extra_headers=list(headers))))
    events: list[wse.Event] = []
    while not any(isinstance(e, wse.AcceptConnection) for e in events):
        data = sock.recv(65536)
        assert data, "closed during the handshake"
        conn.receive_data(data)
        events += list(conn.events())
    return sock, conn


def close_code_after(sock: socket.socket, conn: wsproto.WSConnection) -> int | None:
    """Read until wsproto reports the server's Close; return its code."""
    while True:
        data = sock.recv(65536)
        conn.receive_data(data or None)
        for ev in conn.events():
            if isinstance(ev, wse.CloseConnection):
                return ev.code
        assert data, "connection closed without a Close frame"


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (bytes.fromhex("810548656c6c6f"), 1002),  # not masked
        (bytes.fromhex("c180") + bytes(4), 1002),  # RSV1 without an extension
        (bytes.fromhex("8380") + bytes(4), 1002),  # reserved opcode
        (bytes.fromhex("0980") + bytes(4), 1002),  # fragmented ping
        (bytes.fromhex("8182") + bytes(4) + b"\xc3\x28", 1007),  # invalid UTF-8
        (bytes.fromhex("82ff") + (2**30).to_bytes(8, "big"), 1009),  # over max_message
        (bytes.fromhex("8881") + bytes(5), 1002),  # one-byte close payload
    ],
)
def test_bad_frames_close_with_their_code_while_others_keep_working(bad: bytes, code: int) -> None:
    with WsServer(port=0, max_size=2**20, timeout=10) as srv:
        good = Impl(srv.url, headers_for(1))
        sock, conn = raw_client(srv.port, headers=[(b"X-Self-ID", b"2")])
        try:
            sock.sendall(bad)
            assert close_code_after(sock, conn) == code
            assert echoed(srv.bot(1).get_status()) == "get_status"
        finally:
            sock.close()
            good.close()


def test_close_sends_1001_and_leaves_no_threads() -> None:
    srv = WsServer(port=0).start()
    ws = ws_client(srv.url, 1)
    wait_until(lambda: srv.bots == ["1"])
    srv.close()
    with pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001
    ws.close()


def http_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def test_handshake_refusals_over_the_wire() -> None:
    with WsServer(port=0, path="/onebot/v11/ws", handshake_timeout=0.5, max_header=16384) as srv:
        plain = http_exchange(srv.port, b"GET /onebot/v11/ws HTTP/1.1\r\nHost: x\r\n\r\n")
        assert plain.startswith(b"HTTP/1.1 426 ") and b"Sec-WebSocket-Version: 13" in plain
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            websocket.create_connection(f"ws://127.0.0.1:{srv.port}/wrong", timeout=10)
        assert info.value.status_code == 404
        huge = http_exchange(srv.port, b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
        assert huge.startswith(b"HTTP/1.1 431 ")
        old = upgrade_request("/onebot/v11/ws").replace(b"HTTP/1.1", b"HTTP/1.0", 1)
        assert http_exchange(srv.port, old).startswith(b"HTTP/1.1 400 ")  # RFC 6455 4.1
        smuggle = upgrade_request("/onebot/v11/ws", ["X-Self-ID : 1"])  # space before the colon
        assert http_exchange(srv.port, smuggle).startswith(b"HTTP/1.1 400 ")
        # A slow handshake is dropped after handshake_timeout instead of holding a thread.
        assert http_exchange(srv.port, b"GET / HTTP/1.1\r\n") == b""
        ws = websocket.create_connection(srv.url + "/", timeout=10)  # trailing slash is fine
        ws.close()


def test_echo_server_module() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "onebot_ref.ws_server", "--echo", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Skip anything printed before the log line (runpy warns that the package
        # already imported onebot_ref.ws_server before running it as __main__).
        for _ in range(10):
            assert proc.stderr is not None  # PIPE
            line = proc.stderr.readline()
            if "listening on " in line:
                break
        url = line.split("listening on ")[1].strip()
        with ws_connect(url, open_timeout=10, max_size=None) as ws:
            ws.send("你好")
            assert ws.recv(timeout=10) == "你好"
            ws.send(b"\x00\xff" * 40000)
            assert ws.recv(timeout=10) == b"\x00\xff" * 40000
            ws.send(["frag", "mented"])
            assert ws.recv(timeout=10) == "fragmented"
        assert ws.close_code == 1000
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_a_burst_of_connections_waits_in_the_listen_backlog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1,000 bots coming back at once must not wait out SYN retransmits (backlog 128 did)."""
    gate = threading.Event()
    burst = 300
    with WsServer(port=0) as srv:
        core = srv.listener.server
        admit = core._admit

        def held(sock: socket.socket, address: Any) -> None:
            gate.wait(10)  # the accept thread is busy, as in a burst
            admit(sock, address)

        monkeypatch.setattr(core, "_admit", held)
        socks = []
        try:
            for _ in range(burst):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", srv.port))
                socks.append(sock)

            def connected() -> int:
                done = 0
                for sock in socks:
                    try:
                        sock.getpeername()  # ENOTCONN while our SYN waits for a retransmit
                        done += 1
                    except OSError:
                        pass
                return done

            # Within 0.5 s, well under the first SYN retransmit (1 s): none waits outside the backlog.
            wait_until(lambda: connected() == burst, 0.5, f"all {burst} connections in the backlog")
        finally:
            gate.set()
            for sock in socks:
                sock.close()


ONEBOT12_CONNECT = {  # nonebot-plugin-all4one's greeting (OneBot 12 meta.connect)
    "id": "b6e65187-5ac0-489c-b431-53078e9d2bbb",
    "time": 1632847927.599013,
    "type": "meta",
    "detail_type": "connect",
    "sub_type": "",
    "version": {"impl": "nonebot-plugin-all4one", "version": "0.1.0", "onebot_version": "12"},
}


def test_a_onebot_12_implementation_is_refused_at_the_handshake(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="onebot_ref")
    with WsServer(port=0) as srv:
        for _ in range(2):  # it retries every few seconds: one log line
            with pytest.raises(websocket.WebSocketBadStatusException) as info:
                websocket.create_connection(
                    srv.url,
                    subprotocols=["12.nonebot-plugin-all4one"],  # the OneBot 12 reverse-WS MUST
                    header=["User-Agent: OneBot/12 NoneBot Plugin All4One/0.1.0"],
                    timeout=10,
                )
            assert info.value.status_code == 400
            assert b"the client speaks OneBot 12" in (info.value.resp_body or b"")
    refusals = [r.getMessage() for r in caplog.records if "OneBot 12" in r.getMessage()]
    assert len(refusals) == 1
    assert "12.nonebot-plugin-all4one" in refusals[0]


def test_a_onebot_12_event_closes_the_connection_with_1003(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="onebot_ref")
    with WsServer(port=0) as srv:
        peer = Peer.dial(srv.port, [])  # says nothing about its version at the handshake
        try:
            peer.send_text(json.dumps(ONEBOT12_CONNECT))
            assert peer.read(lambda: peer.close_code is not None, 5)
            assert peer.close_code == 1003
        finally:
            peer.sock.close()
    (line,) = [r.getMessage() for r in caplog.records if "OneBot 12" in r.getMessage()]
    assert "speaks OneBot 12 (nonebot-plugin-all4one), not OneBot 11" in line
