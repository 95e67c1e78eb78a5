"""Both WebSocket sides against peers that break the rules on purpose, over raw sockets.

WsClient faces a raw-socket implementation (:class:`hostile.RawServer`), WsServer
a raw-socket client (:meth:`hostile.Peer.dial`); wsproto does their handshakes
and reads what we send back. The promises: a frame header that announces too
much is refused before its payload is read (RFC 6455 section 5.5: control frames
carry at most 125 bytes; 1009 past the size limit), a message cannot grow
without bound one empty fragment at a time, fragments are joined in linear
time, no number from the wire breaks a timer, and nothing from the wire ends a
receive thread with a traceback.
"""

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import wait_until
from hostile import Peer, RawServer

from onebot_ref import ProtocolError, Registry
from onebot_ref.ws_client import WsClient
from onebot_ref.ws_server import WsServer

pytestmark = pytest.mark.usefixtures("no_thread_leak")

MiB = 2**20
PING, PONG, CLOSE = 0x9, 0xA, 0x8
LIFECYCLE = {
    "time": 1700000000,
    "self_id": 10001,
    "post_type": "meta_event",
    "meta_event_type": "lifecycle",
    "sub_type": "connect",
}


def message(text: str, self_id: int = 10001) -> dict[str, Any]:
    return {
        "time": 1700000000,
        "self_id": self_id,
        "post_type": "message",
        "message_type": "private",
        "sub_type": "friend",
        "user_id": 42,
        "message": text,
    }


def heartbeat(interval: Any, self_id: int = 10001) -> str:
    beat = {"post_type": "meta_event", "meta_event_type": "heartbeat", "self_id": self_id}
    return json.dumps({**beat, "interval": interval})  # NaN and Infinity as JavaScript writes them


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[threading.ExceptHookArgs]:
    """Exceptions that ended a thread (they would print a traceback on stderr)."""
    caught: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", caught.append)
    return caught


class OneConnection:
    """A WsClient serving one connection (``reconnect=False``) on a thread of its own."""

    def __init__(
        self, url: str, on_message: Callable[[Any], object] | None, **options: Any
    ) -> None:
        self.reasons: list[Exception | None] = []  # why the connection ended (on_disconnect)
        self.client = WsClient(
            url,
            reconnect=False,
            on_disconnect=lambda c: self.reasons.append(c.last_error),
            **options,
        )
        self.client.first_frame_wait = 0.1
        if on_message is not None:
            self.client.on("message")(on_message)
        self.thread = threading.Thread(target=self.client.run_forever, name="test-run-forever")
        self.thread.start()

    def ended(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def close(self) -> None:
        self.client.close()
        self.thread.join(5)


@pytest.fixture
def one_connection() -> Iterator[Callable[..., OneConnection]]:
    made: list[OneConnection] = []

    def start(
        url: str, on_message: Callable[[Any], object] | None = None, **kw: Any
    ) -> OneConnection:
        made.append(OneConnection(url, on_message, **kw))
        return made[-1]

    yield start
    for conn in made:
        conn.close()


# -- item 1: a control frame is refused from its header ------------------------------------


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_client_refuses_a_control_frame_announcing_a_terabyte_from_its_header(
    opcode: int, one_connection: Callable[..., OneConnection]
) -> None:
    # 2**40 bytes announced, then zeros streamed for as long as the client reads them.
    head = bytes([0x80 | opcode, 127]) + (2**40).to_bytes(8, "big")
    with RawServer(lambda peer: peer.flood(head, bytes(65536), cap=64 * MiB, timeout=5)) as impl:
        started = time.monotonic()
        conn = one_connection(impl.url)
        assert conn.ended(10), "the client is still reading the announced payload"
        assert time.monotonic() - started < 3
        (sent,) = wait_until(lambda: impl.results)
    assert impl.peers[0].close_code == 1002
    assert sent < 16 * MiB  # what the socket buffers hold, not what was announced
    (reason,) = conn.reasons
    assert isinstance(reason, ProtocolError) and reason.close_code == 1002
    assert "125 bytes" in str(reason)


def test_server_refuses_a_control_frame_announcing_a_terabyte_from_its_header() -> None:
    head = bytes([0x80 | PING, 0x80 | 127]) + (2**40).to_bytes(8, "big") + bytes(4)  # masked
    with WsServer(port=0, timeout=5) as server:
        peer = Peer.dial(server.port, [(b"X-Self-ID", b"1")])
        try:
            sent = peer.flood(head, bytes(65536), cap=64 * MiB, timeout=5)
            assert peer.close_code == 1002
            assert sent < 16 * MiB
        finally:
            peer.sock.close()


# -- item 2: fragments are counted, bounded and joined in linear time -----------------------

# A text frame that is not final, then empty continuation frames that never end.
UNMASKED_START = bytes([0x01, 1]) + b"{"
UNMASKED_EMPTY = bytes(65536)  # 32,768 empty, non-final continuation frames (00 00)
MASKED_START = bytes([0x01, 0x81]) + bytes(4) + b"{"  # a zero key leaves the payload as is
MASKED_EMPTY = bytes([0x00, 0x80, 0, 0, 0, 0]) * 10923  # 00 80 + key, 10,923 frames


def test_client_closes_1009_on_endless_empty_continuations(
    one_connection: Callable[..., OneConnection],
) -> None:
    with RawServer(
        lambda p: p.flood(UNMASKED_START, UNMASKED_EMPTY, cap=256 * MiB, timeout=5)
    ) as impl:
        conn = one_connection(impl.url)
        assert conn.ended(10), "the client is still taking empty fragments"
        (sent,) = wait_until(lambda: impl.results)
    assert impl.peers[0].close_code == 1009
    assert sent < 16 * MiB  # 65,536 frames of 2 bytes, plus what the socket buffers held
    (reason,) = conn.reasons
    assert isinstance(reason, ProtocolError) and reason.close_code == 1009
    assert "frames" in str(reason)


def test_server_closes_1009_on_endless_empty_continuations() -> None:
    with WsServer(port=0, timeout=5) as server:
        peer = Peer.dial(server.port, [(b"X-Self-ID", b"1")])
        try:
            sent = peer.flood(MASKED_START, MASKED_EMPTY, cap=256 * MiB, timeout=5)
            assert peer.close_code == 1009
            assert sent < 16 * MiB
        finally:
            peer.sock.close()


COUNTS = (4000, 32000)  # fragments of 64 bytes: 8 times as many, so 8x the time if linear


def timed_sends(peer: Peer, arrived: threading.Event, runs: int = 5) -> tuple[float, float]:
    """The best time for a message of each of COUNTS fragments to reach a handler.

    The two sizes take turns, so that a busy moment on a shared machine hits
    both alike; the best of several runs is the one least disturbed.
    """
    messages = [peer.fragments(json.dumps(message("x" * 64 * n)), n) for n in COUNTS]
    best = [float("inf"), float("inf")]
    for _ in range(runs):
        for i, data in enumerate(messages):
            arrived.clear()
            started = time.perf_counter()
            peer.sock.sendall(data)
            assert arrived.wait(20)
            best[i] = min(best[i], time.perf_counter() - started)
    return best[0], best[1]


def assert_linear(small: float, large: float) -> None:
    # Linear: about 8x as long for 8x the fragments; quadratic: about 64x. Allow a loaded
    # machine three times the linear ratio, still far below the quadratic one.
    factor = COUNTS[1] // COUNTS[0]
    ratio = large / small
    assert ratio < 3 * factor, f"{factor}x the fragments took {ratio:.1f}x as long"


def test_client_joins_many_fragments_in_linear_time(
    one_connection: Callable[..., OneConnection],
) -> None:
    arrived = threading.Event()

    def script(peer: Peer) -> tuple[float, float]:
        peer.send_text(json.dumps(LIFECYCLE))
        return timed_sends(peer, arrived)

    with RawServer(script) as impl:
        one_connection(impl.url, on_message=lambda event: arrived.set())
        (times,) = wait_until(lambda: impl.results, timeout=60)
    assert isinstance(times, tuple), times
    assert_linear(*times)


def test_server_joins_many_fragments_in_linear_time() -> None:
    arrived = threading.Event()
    with WsServer(port=0, timeout=5) as server:
        server.on("message")(lambda event: arrived.set())
        peer = Peer.dial(server.port, [(b"X-Self-ID", b"1")])
        try:
            times = timed_sends(peer, arrived)
        finally:
            peer.sock.close()
    assert_linear(*times)


def test_client_closes_1007_on_text_that_is_not_utf8(
    one_connection: Callable[..., OneConnection],
) -> None:
    """RFC 6455 section 8.1: invalid UTF-8 in a text message MUST fail the connection."""

    def script(peer: Peer) -> None:
        peer.sock.sendall(bytes.fromhex("8102c328"))  # a text frame: C3 28 is no UTF-8
        peer.read(lambda: peer.close_code is not None, 5)

    with RawServer(script) as impl:
        conn = one_connection(impl.url)
        assert conn.ended(10)
        wait_until(lambda: impl.results)
    assert impl.peers[0].close_code == 1007
    (reason,) = conn.reasons
    assert isinstance(reason, ProtocolError) and reason.close_code == 1007


# -- item 9: numbers from the wire that drive a timer ----------------------------------------

INTERVALS = [  # a heartbeat's interval (ms) -> the watchdog's seconds (None: no watchdog)
    pytest.param(10**400, 86400.0, id="10**400"),
    pytest.param(-(10**400), None, id="-10**400"),
    pytest.param(2**63, 86400.0, id="2**63"),
    pytest.param(1e308, 86400.0, id="1e308"),
    pytest.param(float("nan"), None, id="NaN"),
    pytest.param(float("inf"), None, id="Infinity"),
    pytest.param("NaN", None, id="str-NaN"),
    pytest.param("5000", None, id="str-5000"),
    pytest.param(True, None, id="true"),
    pytest.param(None, None, id="null"),
    pytest.param(0, None, id="0"),
    pytest.param(-5, None, id="-5"),
    pytest.param(1.5, 0.1, id="1.5"),
    pytest.param(5000, 5.0, id="5000"),
]


@pytest.mark.parametrize(("interval", "seconds"), INTERVALS)
def test_server_takes_any_heartbeat_interval(
    interval: Any, seconds: float | None, thread_errors: list[threading.ExceptHookArgs]
) -> None:
    seen: queue.Queue[Any] = queue.Queue()
    with WsServer(port=0, timeout=5) as server:
        server.on("message")(seen.put)
        peer = Peer.dial(server.port, [(b"X-Self-ID", b"10001")])
        try:
            peer.send_text(heartbeat(interval))
            peer.send_text(json.dumps(message("still here")))
            assert seen.get(timeout=5)["message"] == "still here"  # the receive thread lives on
            (conn,) = server._connections
            assert conn.heartbeat == seconds
            assert server.bots == ["10001"]
        finally:
            peer.sock.close()
    assert not thread_errors


@pytest.mark.parametrize(("interval", "seconds"), INTERVALS)
def test_client_takes_any_heartbeat_interval(
    interval: Any,
    seconds: float | None,
    one_connection: Callable[..., OneConnection],
    thread_errors: list[threading.ExceptHookArgs],
) -> None:
    seen: queue.Queue[Any] = queue.Queue()

    def script(peer: Peer) -> None:
        peer.send_text(heartbeat(interval))
        peer.send_text(json.dumps(message("still here")))
        peer.read(lambda: peer.close_code is not None, 10)  # until the client leaves

    with RawServer(script) as impl:
        conn = one_connection(impl.url, on_message=seen.put)
        assert seen.get(timeout=5)["message"] == "still here"
        assert conn.client._links["universal"].interval == seconds
        wait_until(lambda: conn.client.connected)
        assert len(impl.peers) == 1 and conn.thread.is_alive()
        conn.close()
    assert not thread_errors


# -- the last resort: an unexpected error closes with 1011, logged once, never a traceback ----


class BrokenRegistry(Registry):
    def submit(self, event: dict[str, Any], size: int | None = None) -> bool:
        raise RuntimeError("the registry broke")


def unexpected(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "unexpected" in r.getMessage()]


def test_server_closes_1011_on_an_unexpected_error_and_serves_on(
    thread_errors: list[threading.ExceptHookArgs], caplog: pytest.LogCaptureFixture
) -> None:
    registry = BrokenRegistry()
    try:
        with WsServer(port=0, timeout=5, registry=registry) as server:
            peer = Peer.dial(server.port, [(b"X-Self-ID", b"1")])
            try:
                peer.send_text(json.dumps(message("boom")))
                assert peer.read(lambda: peer.close_code is not None, 5)
                assert peer.close_code == 1011
            finally:
                peer.sock.close()
            other = Peer.dial(server.port, [(b"X-Self-ID", b"2")])  # still serving
            other.sock.close()
    finally:
        registry.close()
    assert not thread_errors
    (record,) = unexpected(caplog)
    assert record.exc_info is not None  # the traceback goes to the log, once


def test_client_closes_1011_on_an_unexpected_error(
    one_connection: Callable[..., OneConnection],
    thread_errors: list[threading.ExceptHookArgs],
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = BrokenRegistry()

    def script(peer: Peer) -> None:
        peer.send_text(json.dumps(message("boom")))
        peer.read(lambda: peer.close_code is not None, 5)

    try:
        with RawServer(script) as impl:
            conn = one_connection(impl.url, registry=registry)
            assert conn.ended(10)
            wait_until(lambda: impl.results)
    finally:
        registry.close()
    assert impl.peers[0].close_code == 1011
    (reason,) = conn.reasons
    assert isinstance(reason, ProtocolError) and reason.close_code == 1011
    assert "the registry broke" in str(reason)
    assert not thread_errors
    (record,) = unexpected(caplog)
    assert record.exc_info is not None
