"""What an open WebSocket connection keeps in memory (issue 15: a thousand accounts on one server).

Measured with tracemalloc, which counts the Python objects a connection keeps
alive (its receive buffer above all), on every OS; the thread stacks it does
not see are measured by ``benchmarks/bench_accounts.py`` instead. The peers
are raw sockets, whose own memory is a few hundred bytes each.
"""

import socket
import tracemalloc
from collections.abc import Iterator

import pytest
from conftest import served, upgrade_request, wait_until

from onebot_ref import WsServer
from onebot_ref.framer import PING, TEXT, Frame, MessageReader, encode_frame

PER_CONNECTION = 64 * 1024  # issue 15's bound for an idle connection, thread stack included
CONNECTIONS = 20


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def traced_now() -> int:
    return tracemalloc.get_traced_memory()[0]


def open_ws(port: int, self_id: int | None = None) -> tuple[socket.socket, bytes]:
    """A raw WebSocket client: the upgrade sent, the 101 read; the bytes behind it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    headers = [f"X-Self-ID: {self_id}"] if self_id is not None else []
    sock.sendall(upgrade_request("/", headers))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "the server closed during the handshake"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock, rest


def echoed(sock: socket.socket, reader: MessageReader, payload: bytes, opcode: int = TEXT) -> bytes:
    """Send one masked message; return the payload of the frame that comes back."""
    sock.sendall(encode_frame(Frame(opcode, payload), mask=True))
    while (message := reader.next_message()) is None:
        chunk = sock.recv(1 << 20)
        assert chunk, "the server closed instead of echoing"
        reader.feed(chunk)
    return message.payload


def test_idle_accounts_hold_small_receive_buffers(no_thread_leak: None, traced: None) -> None:
    with WsServer("127.0.0.1", 0) as server:
        first, _ = open_ws(server.port, 100000)  # what the first connection imports is no one's
        first.close()
        wait_until(lambda: served(server) == 0, what="the first connection over")
        before = traced_now()
        opened = [open_ws(server.port, 100001 + n) for n in range(CONNECTIONS)]
        socks = [sock for sock, _ in opened]
        try:
            for sock, rest in opened:  # a Pong: its receive loop runs, buffer and all
                reader = MessageReader(mask=False)
                reader.feed(rest)
                assert echoed(sock, reader, b"up", PING) == b"up"
            held = (traced_now() - before) / CONNECTIONS
        finally:
            for sock in socks:
                sock.close()
        wait_until(lambda: served(server) == 0, what="every connection over")
    assert held < PER_CONNECTION / 2, f"an idle connection holds {held:.0f} bytes"


def test_a_large_message_s_buffers_are_given_back(no_thread_leak: None, traced: None) -> None:
    with WsServer("127.0.0.1", 0, echo=True) as server:
        first, _ = open_ws(server.port)  # what the first connection imports is no one's
        first.close()
        wait_until(lambda: served(server) == 0, what="the first connection over")
        before = traced_now()
        sock, rest = open_ws(server.port)
        with sock:
            reader = MessageReader(mask=False)
            reader.feed(rest)
            large = b'"' + b"x" * (1 << 20) + b'"'
            assert echoed(sock, reader, large) == large
            del large
            assert echoed(sock, reader, b"{}") == b"{}"  # small traffic again
            # The echo leaves before the receive thread resizes its buffer: wait for it.
            wait_until(
                lambda: traced_now() - before < PER_CONNECTION / 2,
                timeout=5.0,
                what=f"the connection back under {PER_CONNECTION // 2} bytes after 1 MiB",
            )
        wait_until(lambda: served(server) == 0, what="the connection over")


def test_an_idle_frame_reader_keeps_no_large_message(traced: None) -> None:
    reader = MessageReader(mask=True)
    before = traced_now()
    reader.feed(encode_frame(Frame(TEXT, b"x" * (1 << 20)), mask=True))
    message = reader.next_message()
    assert message is not None and len(message.payload) == 1 << 20
    del message
    assert reader.next_message() is None  # all taken: nothing more until bytes arrive
    held = traced_now() - before
    assert reader.buffered == 0 and held < 4096, f"an idle reader holds {held} bytes"
