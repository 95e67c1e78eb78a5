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
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hostile import Peer, RawServer

from onebot_ref import ProtocolError
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


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
    return result


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

    def __init__(self, url: str, **options: Any) -> None:
        self.reasons: list[Exception] = []  # why the connection ended (on_disconnect)
        self.client = WsClient(
            url, reconnect=False, on_disconnect=lambda c, exc: self.reasons.append(exc), **options
        )
        self.client.first_frame_wait = 0.1
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

    def start(url: str, **options: Any) -> OneConnection:
        made.append(OneConnection(url, **options))
        return made[-1]

    yield start
    for conn in made:
        conn.close()


# -- item 1: a control frame is refused from its header ------------------------------------


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_client_refuses_a_control_frame_announcing_a_terabyte_from_its_header(
    opcode, one_connection
):
    # 2**40 bytes announced, then zeros streamed for as long as the client reads them.
    head = bytes([0x80 | opcode, 127]) + (2**40).to_bytes(8, "big")
    with RawServer(lambda peer: peer.flood(head, bytes(65536), cap=64 * MiB, timeout=5)) as impl:
        started = time.monotonic()
        conn = one_connection(impl.url)
        assert conn.ended(10), "the client is still reading the announced payload"
        assert time.monotonic() - started < 3
        (sent,) = wait_for(lambda: impl.results)
    assert impl.peers[0].close_code == 1002
    assert sent < 16 * MiB  # what the socket buffers hold, not what was announced
    (reason,) = conn.reasons
    assert isinstance(reason, ProtocolError) and reason.close_code == 1002
    assert "125 bytes" in str(reason)


def test_server_refuses_a_control_frame_announcing_a_terabyte_from_its_header():
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


def test_client_closes_1009_on_endless_empty_continuations(one_connection):
    with RawServer(
        lambda p: p.flood(UNMASKED_START, UNMASKED_EMPTY, cap=256 * MiB, timeout=5)
    ) as impl:
        conn = one_connection(impl.url)
        assert conn.ended(10), "the client is still taking empty fragments"
        (sent,) = wait_for(lambda: impl.results)
    assert impl.peers[0].close_code == 1009
    assert sent < 16 * MiB  # 65,536 frames of 2 bytes, plus what the socket buffers held
    (reason,) = conn.reasons
    assert isinstance(reason, ProtocolError) and reason.close_code == 1009
    assert "frames" in str(reason)


def test_server_closes_1009_on_endless_empty_continuations():
    with WsServer(port=0, timeout=5) as server:
        peer = Peer.dial(server.port, [(b"X-Self-ID", b"1")])
        try:
            sent = peer.flood(MASKED_START, MASKED_EMPTY, cap=256 * MiB, timeout=5)
            assert peer.close_code == 1009
            assert sent < 16 * MiB
        finally:
            peer.sock.close()


def best_time(measure: Callable[[], float], runs: int = 3) -> float:
    return min(measure() for _ in range(runs))


def assert_linear(small: float, large: float, factor: int) -> None:
    # Linear: large/small is about factor; quadratic: about factor**2. Allow a loaded machine
    # twice the linear ratio, still far below the quadratic one.
    assert large / small < 2 * factor, f"{factor}x the fragments took {large / small:.1f}x as long"


def test_client_joins_many_fragments_in_linear_time(one_connection):
    arrived = threading.Event()
    counts = (4000, 16000)

    def script(peer: Peer) -> list[float]:
        peer.send_text(json.dumps(LIFECYCLE))
        times = []
        for count in counts:
            data = peer.fragments(json.dumps(message("x" * 64 * count)), count)

            def measure() -> float:
                arrived.clear()
                started = time.perf_counter()
                peer.sock.sendall(data)  # noqa: B023 -- measured at once
                assert arrived.wait(20)
                return time.perf_counter() - started

            times.append(best_time(measure))
        return times

    with RawServer(script) as impl:
        conn = one_connection(impl.url)
        conn.client.on("message")(lambda event: arrived.set())
        (times,) = wait_for(lambda: impl.results, timeout=60)
    assert isinstance(times, list), times
    assert_linear(times[0], times[1], counts[1] // counts[0])


def test_server_joins_many_fragments_in_linear_time():
    arrived = threading.Event()
    counts = (4000, 16000)
    with WsServer(port=0, timeout=5) as server:
        server.on("message")(lambda event: arrived.set())
        peer = Peer.dial(server.port, [(b"X-Self-ID", b"1")])
        try:
            times = []
            for count in counts:
                data = peer.fragments(json.dumps(message("x" * 64 * count)), count)

                def measure() -> float:
                    arrived.clear()
                    started = time.perf_counter()
                    peer.sock.sendall(data)  # noqa: B023 -- measured at once
                    assert arrived.wait(20)
                    return time.perf_counter() - started

                times.append(best_time(measure))
        finally:
            peer.sock.close()
    assert_linear(times[0], times[1], counts[1] // counts[0])
