"""The threaded WebSocket connection's send path, where threads meet (onebot_ref._ws_connection)."""

import socket
import threading

from onebot_ref._ws_connection import Connection
from onebot_ref._ws_protocol import Protocol


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
