"""The threaded WebSocket connection's send path, where threads meet (onebot_ref._ws_connection)."""

import socket
import sys
import threading

from conftest import wait_until

from onebot_ref._ws_connection import Connection
from onebot_ref._ws_protocol import Protocol
from onebot_ref.errors import NotConnected
from onebot_ref.framer import CLOSE, Frame, decode_frame, encode_close, encode_frame


class Wire:
    """The connection's writer, over a real socket pair, with the failure we need, on cue.

    The first write goes out, and while it is under way another thread queues a frame
    (which finds the write lock taken and is left to us); the next write fails as if
    the receive thread had closed the socket meanwhile (the peer's Close came in).
    """

    def __init__(self, conn: Connection, sock: socket.socket) -> None:
        self.conn, self.sock, self.writes = conn, sock, 0

    def sendall(self, data: bytes) -> None:
        self.writes += 1
        if self.writes > 1:
            raise OSError(9, "Bad file descriptor")
        self.sock.sendall(data)
        other = threading.Thread(target=self.conn.send_text, args=(b'{"other":1}',))
        other.start()
        other.join(5)  # it returned at once: its frame is ours to write now


def test_a_frame_taken_along_that_fails_is_not_the_senders_failure() -> None:
    ours, peer = socket.socketpair()
    with ours, peer:
        conn = Connection(
            ours, Protocol(client=False, max_size=1 << 20), on_message=lambda opcode, payload: None
        )
        conn.io = wire = Wire(conn, ours)  # type: ignore[assignment]
        conn.send_text(b'{"reply":1}')  # went out: no NotConnected for another's frame
        assert wire.writes == 2 and peer.recv(100).endswith(b'{"reply":1}')
        assert not conn.open  # the failed write still shut the connection down


def _inside(thread: threading.Thread, function: str) -> bool:
    """Whether ``thread`` is running ``function`` now (somewhere on its stack)."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False


def test_the_answer_to_a_close_left_to_a_writer_goes_out_before_the_half_close() -> None:
    # Another thread is writing (a relayed message, a handler's reply) when the peer's
    # Close arrives: the answer is queued and left to that writer. The receive thread
    # must not half-close TCP under it: the answer would be cut off (the peer saw EOF
    # with no Close, 1006, about one run in ten through the recorder).
    ours, peer = socket.socketpair()
    with ours, peer:
        conn = Connection(ours, Protocol(client=False, max_size=1 << 20),
                          on_message=lambda opcode, payload: None, send_timeout=5.0)  # fmt: skip
        assert conn._write_lock.acquire(timeout=5)  # the writer, mid-write
        receiver = threading.Thread(target=conn.run, daemon=True)
        receiver.start()
        peer.sendall(encode_frame(Frame(CLOSE, encode_close(1000)), mask=True))
        wait_until(lambda: conn.protocol.closed and _inside(receiver, "_finish"), 5, "closing")
        try:
            conn._write()  # the writer goes on: our answer to the Close was left to it
        except NotConnected:
            pass  # the old code's failure: the socket was half-closed under the writer
        peer.settimeout(5)
        data = peer.recv(100)
        assert decode_frame(data, mask=False) == (Frame(CLOSE, encode_close(1000)), len(data))
        receiver.join(5)
