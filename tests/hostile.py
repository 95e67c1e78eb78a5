"""Hostile WebSocket peers on raw sockets, for the tests that guard our limits.

:class:`RawServer` plays a forward-WS implementation: wsproto answers the upgrade
(so the handshake is an independent implementation's), then a script writes
whatever bytes it likes, valid or not, and reads the client's frames through
wsproto. :func:`flood` writes a stream of bytes until the other side's Close
arrives, and says how much it managed to write before that: a peer that is
refused from a frame header gets no further than the socket buffers.

Every wait has a deadline; every thread is joined by :meth:`RawServer.close`.
"""

import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import wsproto
import wsproto.events as wse


class Peer:
    """One end of a connection: the raw socket and a wsproto view of what the other end sends.

    As a server (:class:`RawServer`) it writes unmasked frames; as a client
    (:meth:`dial`) its raw frames must be masked by the caller.
    """

    def __init__(self, sock: socket.socket, *, client: bool = False) -> None:
        self.sock = sock
        kind = wsproto.ConnectionType.CLIENT if client else wsproto.ConnectionType.SERVER
        self.ws = wsproto.WSConnection(kind)
        self.close_code: int | None = None  # from the other end's Close frame, once it came
        self.texts: list[str] = []  # the other end's text messages, in order

    @classmethod
    def dial(
        cls, port: int, headers: list[tuple[bytes, bytes]], *, rcvbuf: int | None = None
    ) -> "Peer":
        """Connect to a WebSocket server on loopback and upgrade (wsproto writes the request).

        ``rcvbuf`` shrinks our receive buffer first: a peer that reads nothing fills up sooner.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        peer = cls(sock, client=True)
        request = wse.Request(host="127.0.0.1", target="/", extra_headers=headers)
        peer.sock.sendall(peer.ws.send(request))
        while True:
            data = peer.sock.recv(65536)
            assert data, "the server hung up during the handshake"
            peer.ws.receive_data(data)
            if any(isinstance(e, wse.AcceptConnection) for e in peer.ws.events()):
                return peer

    def fragments(self, text: str, count: int) -> bytes:
        """``text`` as one message of ``count`` frames (wsproto encodes and masks them)."""
        size = -(-len(text) // count)
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        return b"".join(
            self.ws.send(wse.Message(data=piece, message_finished=i == len(pieces) - 1))
            for i, piece in enumerate(pieces)
        )

    def handshake(self, timeout: float = 10.0) -> None:
        """Read the upgrade request and accept it (wsproto writes the 101)."""
        self.sock.settimeout(timeout)
        while True:
            data = self.sock.recv(65536)
            assert data, "the client hung up during the handshake"
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, wse.Request):
                    self.sock.sendall(self.ws.send(wse.AcceptConnection()))
                    return

    def send_text(self, text: str) -> None:
        """One well-formed text message (wsproto masks it if we are the client)."""
        self.sock.sendall(self.ws.send(wse.Message(data=text)))

    def _take(self, data: bytes) -> None:
        self.ws.receive_data(data or None)
        for event in self.ws.events():
            if isinstance(event, wse.CloseConnection):
                self.close_code = event.code
            elif isinstance(event, wse.TextMessage):
                self.texts.append(event.data)

    def read(self, until: Callable[[], object], timeout: float) -> bool:
        """Read the client's frames until ``until()`` or EOF; False if the deadline passed first."""
        deadline = time.monotonic() + timeout
        while not until():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return False
            except OSError:
                return bool(until())
            self._take(data)
            if not data:
                return bool(until())
        return True

    def flood(self, head: bytes, chunk: bytes, *, cap: int, timeout: float) -> int:
        """Write ``head``, then ``chunk`` over and over, until the client's Close or EOF.

        Stops writing after ``cap`` bytes, and returns the bytes written by the
        time the client's Close (``close_code``) arrived, or when ``timeout``
        passed. A partial write is finished before the next chunk starts, so
        frames stay aligned.
        """
        self.sock.setblocking(False)
        deadline = time.monotonic() + timeout
        pending = memoryview(head)
        sent = 0
        try:
            while time.monotonic() < deadline and self.close_code is None:
                writing = sent < cap
                readable, writable, _ = select.select(
                    [self.sock], [self.sock] if writing else [], [], 0.05
                )
                if readable:
                    try:
                        data = self.sock.recv(65536)
                    except BlockingIOError:
                        data = None
                    except OSError:
                        return sent  # reset: whatever Close came is in close_code
                    if data is not None:
                        self._take(data)
                        if not data:
                            return sent
                    continue  # read everything there is before writing more
                if writable:
                    if not pending:
                        pending = memoryview(chunk)
                    try:
                        n = self.sock.send(pending)
                    except BlockingIOError:
                        continue
                    except OSError:
                        cap = sent  # the client is gone; read what it said
                        continue
                    sent += n
                    pending = pending[n:]
            return sent
        finally:
            self.sock.setblocking(True)

    def vanish(self, how: str) -> None:
        """Leave without a Close frame: ``reset`` (RST) or ``shutdown`` (FIN)."""
        if how == "reset":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class RawServer:
    """A forward-WS "implementation" that runs ``script(peer)`` on each connection.

    The script's return value (or exception) lands in :attr:`results`, in
    connection order.
    """

    def __init__(self, script: Callable[[Peer], Any]) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/"
        self.results: list[Any] = []
        self.peers: list[Peer] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, name="raw-ws-accept", daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._run, args=(sock,), name="raw-ws-peer")
            thread.daemon = True
            self._threads.append(thread)
            thread.start()

    def _run(self, sock: socket.socket) -> None:
        peer = Peer(sock)
        self.peers.append(peer)
        try:
            peer.handshake()
            self.results.append(self.script(peer))
        except Exception as exc:  # the test asserts on it
            self.results.append(exc)
        finally:
            sock.close()

    def close(self) -> None:
        self._stop.set()
        self._accepter.join(5)
        self.listener.close()
        for peer in self.peers:
            try:
                peer.sock.shutdown(socket.SHUT_RDWR)  # wakes a script blocked in a read
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> "RawServer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
