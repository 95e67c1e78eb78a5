"""WsServer reads its plaintext connections on one shared thread (``onebot_ref._ws_reader``).

The peers are raw sockets with wsproto doing their side of the protocol
(:class:`hostile.Peer`): no thread of theirs in this process, so the threads
counted are the server's own.
"""

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
import wsproto.events as wse
from conftest import wait_until
from hostile import Peer

from onebot_ref._serve import Server
from onebot_ref._ws_connection import OUTBOX_LIMIT
from onebot_ref.ws_server import WsServer


def event(self_id: int, text: str = "hi") -> str:
    return json.dumps(
        {
            "time": 1700000000,
            "self_id": self_id,
            "post_type": "message",
            "message_type": "private",
            "sub_type": "friend",
            "message_id": 1,
            "user_id": 42,
            "message": text,
            "raw_message": text,
            "font": 0,
            "sender": {"user_id": 42},
        }
    )


def answer_calls(peer: Peer, count: int, timeout: float = 10.0) -> None:
    """Read ``count`` calls from the bot and answer each ``ok`` with its echo."""
    for answered in range(count):
        assert peer.read(lambda n=answered: len(peer.texts) > n, timeout), "no call arrived"  # type: ignore[misc]
        call = json.loads(peer.texts[answered])
        reply = {"status": "ok", "retcode": 0, "data": {"action": call["action"]}}
        peer.send_text(json.dumps({**reply, "echo": call["echo"]}))


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for peer in made:
        peer.sock.close()


def test_many_connections_share_one_reader_thread(no_thread_leak: None, peers: list[Peer]) -> None:
    """Forty accounts cost no thread each: they are read by one (was a thread per connection)."""
    results: list[object] = []
    srv = WsServer(port=0)

    @srv.on("message.private")
    def echo(ev: dict[str, Any]) -> None:
        results.append(srv.call("get_login_info", self_id=ev["self_id"], timeout=10))

    with srv:
        before = threading.active_count()  # handler threads start with the first event
        for i in range(40):
            peers.append(Peer.dial(srv.port, [(b"X-Self-ID", str(1000 + i).encode())]))
        wait_until(lambda: len(srv.bots) == 40, what="forty accounts connected")
        # The reader, and at most one more: a thread that served a handshake may
        # still be on its way out (it hands the connection over, then returns).
        wait_until(lambda: threading.active_count() - before <= 2, what="one reader thread")
        for i, peer in enumerate(peers):
            peer.send_text(event(1000 + i))
        for peer in peers:  # every call is answered through the one reader
            answer_calls(peer, 1)
        wait_until(lambda: len(results) == 40, what="forty handlers returned")
        assert all(r == {"action": "get_login_info"} for r in results)


def test_close_ends_every_shared_connection(no_thread_leak: None, peers: list[Peer]) -> None:
    srv = WsServer(port=0).start()
    for i in range(20):
        peers.append(Peer.dial(srv.port, [(b"X-Self-ID", str(i + 1).encode())]))
    wait_until(lambda: len(srv.bots) == 20)
    srv.close()
    for peer in peers:
        assert peer.read(lambda p=peer: p.close_code is not None, 10)  # type: ignore[misc]
        assert peer.close_code == 1001
    assert srv.listener.server.active == 0


def test_shared_connections_count_against_max_connections(peers: list[Peer]) -> None:
    """A connection handed to the reader still counts, and stops counting once it is gone."""
    with WsServer(port=0, max_connections=3) as srv:
        for i in range(3):
            peers.append(Peer.dial(srv.port, [(b"X-Self-ID", str(i + 1).encode())]))
        wait_until(lambda: len(srv.bots) == 3)
        with pytest.raises(AssertionError, match="hung up"):
            Peer.dial(srv.port, [(b"X-Self-ID", b"4")])  # 503, then the server hangs up
        assert srv.busy_refusals == 1
        peers[0].vanish("reset")
        wait_until(lambda: srv.listener.server.active == 2, what="the reset connection released")
        peers.append(Peer.dial(srv.port, [(b"X-Self-ID", b"5")]))
        wait_until(lambda: sorted(srv.bots) == ["2", "3", "5"])


def test_a_peer_that_reads_none_of_our_pongs_does_not_pile_them_up(
    no_thread_leak: None, peers: list[Peer]
) -> None:
    """Pings whose Pongs are never read: the queue stays bounded, the other accounts are served.

    On a thread of its own a connection stops reading while it cannot write;
    the shared reader must not go on reading (and queueing Pongs) meanwhile:
    past ``OUTBOX_LIMIT`` queued, the connection leaves it for a thread where
    writing holds reading back, until ``send_timeout`` cuts it.
    """
    results: list[object] = []
    srv = WsServer(port=0, send_timeout=2.0)

    @srv.on("message.private")
    def echo(ev: dict[str, Any]) -> None:
        results.append(srv.call("get_login_info", self_id=ev["self_id"], timeout=10))

    with srv:
        flooder = Peer.dial(srv.port, [(b"X-Self-ID", b"1")], rcvbuf=4096)
        other = Peer.dial(srv.port, [(b"X-Self-ID", b"2")])
        peers += [flooder, other]
        wait_until(lambda: len(srv.listener.connections) == 2)
        conn = next(c for c in srv.listener.connections if "self_id=1" in c.label)
        pings = flooder.ws.send(wse.Ping(payload=b"p" * 125)) * 512
        flooder.sock.settimeout(0.05)
        most = sent = 0
        left = memoryview(b"")
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and sent < 256 << 20:  # never reading a Pong
            most = max(most, conn.protocol.pending)
            if most > 4 * OUTBOX_LIMIT:
                break  # piling up: no need to wait for more
            left = left or memoryview(pings)
            try:
                n = flooder.sock.send(left)
            except TimeoutError:
                continue  # the server reads no more of it (until it is cut)
            except OSError:
                break  # cut
            sent += n
            left = left[n:]
        other.send_text(event(2))  # served meanwhile
        answer_calls(other, 1)
        wait_until(lambda: results == [{"action": "get_login_info"}])
        assert most <= 2 * OUTBOX_LIMIT, f"{most} bytes of Pongs queued"
        wait_until(lambda: srv.bots == ["2"], what="the flooder cut by send_timeout")


def test_a_kept_connection_counts_once_while_its_thread_is_still_ending() -> None:
    """``Server.keep`` moves the count from the thread to the socket in one step.

    Counted under both for a moment (the thread ends just after handing its
    connection over), a server at ``max_connections - 1`` refused the next one:
    CI saw ``test_ws_server_caps_connections_with_503_before_the_upgrade`` get a
    503 for its second connection of two.
    """
    kept: list[socket.socket] = []
    handed = threading.Event()
    leave = threading.Event()

    def serve(sock: socket.socket, address: object, deadline: float) -> bool:
        assert server.keep(sock)
        kept.append(sock)
        handed.set()
        leave.wait(10)  # the thread, slow to end
        return True

    server = Server("127.0.0.1", 0, serve, name="test-keep", max_connections=2)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            client.sendall(b"G")  # the server waits for a first byte (TLS or not) before serve()
            assert handed.wait(10)
            assert server.active == 1
            leave.set()
            server.release(kept[0])
            kept[0].close()
            wait_until(lambda: server.active == 0)
    finally:
        leave.set()
        server.close()


def test_connections_coming_and_going_leave_nothing_behind(no_thread_leak: None) -> None:
    """Churn on the shared reader: every event before a clean close arrives; nothing is left.

    Six websocket-client threads connect, send an event and leave, 15 times
    each, half of them with a Close and half by resetting the connection.
    """
    got: list[int] = []
    lock = threading.Lock()
    srv = WsServer(port=0)

    @srv.on("message.private")
    def record(ev: dict[str, Any]) -> None:
        with lock:
            got.append(int(ev["self_id"]))

    clean: list[int] = []

    def churn(worker: int) -> None:
        for i in range(15):
            self_id = 10_000 + worker * 100 + i
            client = websocket.create_connection(
                srv.url, header=[f"X-Self-ID: {self_id}"], timeout=10
            )
            client.send(event(self_id))
            if i % 2:
                raw = client.sock
                assert raw is not None
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                raw.close()  # a reset, no Close
            else:
                client.close()  # the closing handshake: the event was read before it
                with lock:
                    clean.append(self_id)

    with srv:
        threads = [threading.Thread(target=churn, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        wait_until(lambda: set(clean) <= set(got), what="every event sent before a Close")
        wait_until(lambda: srv.listener.server.active == 0 and not srv.bots, what="all gone")
        assert not srv.listener.connections
