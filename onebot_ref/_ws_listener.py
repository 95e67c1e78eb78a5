"""A threaded WebSocket server that takes its policy by composition.

It accepts (through :class:`onebot_ref._serve.Server`: TLS per connection,
the cap, the reaper, a bounded close), reads each opening handshake with the
HTTP server's own head reader (:func:`onebot_ref.framer.parse_handshake`),
checks it against RFC 6455 section 4.2.1, and then asks its **policy** what to
do. The policy is any object with one method::

    def accept(self, request: Request, peer: str) -> Session: ...

which refuses by raising :class:`~onebot_ref.framer.HandshakeError` (its
``status`` and ``reply`` are what the peer gets, its ``str()`` what our log
says), and otherwise returns a **session** for the connection, with three::

    def opened(self, conn: Connection) -> None: ...     # before the 101 leaves
    def message(self, opcode: int, payload: bytes) -> None: ...   # receive thread
    def closed(self) -> None: ...                       # receive thread, once

and, optionally, ``nonblocking = True`` when ``message`` never waits: then,
on a server made with ``shared_reader=True``, a connection is read
by one thread shared with the others (:mod:`onebot_ref._ws_reader`) instead of
a thread of its own, and ``closed`` runs on a short-lived thread.

``WsServer`` (the bot's reverse-WS server), FakeOneBot's forward-WS server and
the doctor's listener are each this server with a policy of their own; none of
them is a subclass of another.

``opened`` runs before the ``101 Switching Protocols`` is written: the
connection already holds the 101 at the head of its queue, so whatever the
policy sends (a call routed here at once, a lifecycle event) goes out behind
it. The receive loop then runs on the connection's own thread, or on the
shared reader's.

Refusals are logged once per peer address and status, then summarised:
implementations retry every few seconds, for ever.

It owns accepting and the opening handshake. It must never decide who may
connect or what a message means (its policy does), and it knows nothing of
OneBot.
"""

import logging
import socket
import ssl
import threading
import time
from typing import Any, Protocol

from ._serve import Server, Throttle
from ._tls import peer_name
from ._ws_connection import Connection
from ._ws_protocol import Protocol as WsProtocol
from ._ws_reader import CAN_SHARE, SharedReader
from .framer import (
    HandshakeError,
    Request,
    check_request,
    error_response,
    handshake_response,
    parse_handshake,
)

__all__ = ["Policy", "Session", "WebSocketServer"]


class Session(Protocol):
    """What a policy keeps for one accepted connection."""

    def opened(self, conn: Connection) -> None: ...

    def message(self, opcode: int, payload: bytes) -> None: ...

    def closed(self) -> None: ...


class Policy(Protocol):
    """Decides each handshake: a :class:`Session` to accept, a ``HandshakeError`` to refuse."""

    def accept(self, request: Request, peer: str) -> Session: ...


class WebSocketServer:
    """WebSocket connections, each on its own thread, for whatever ``policy`` accepts.

    Args:
        policy: decides handshakes and receives messages (module docstring).
        host, port: where to listen; port 0 picks a free one.
        name: names the threads.
        logger: where handshake refusals are logged (the policy's module).
        ssl_context: speak ``wss://``.
        handshake_timeout: seconds for TLS and the upgrade request together.
        max_header: the largest upgrade request head, in bytes (431 beyond it).
        max_size: the largest message, in bytes (1009 beyond it).
        max_connections: connections served at once; one more is answered 503
            before its upgrade (:meth:`onebot_ref._serve.Server.refuse`). None
            sets no cap.
        send_timeout: seconds a write may stay stuck before its connection is cut.
        close_timeout: seconds a peer has to answer our Close.
        ping_interval: our own pings to idle connections; None sends none.
        shared_reader: read the connections of sessions whose ``message``
            never blocks on one thread (:mod:`onebot_ref._ws_reader`) instead
            of a thread each, where the socket allows it.
    """

    def __init__(
        self,
        policy: Policy,
        host: str,
        port: int,
        *,
        name: str,
        logger: logging.Logger,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = 10.0,
        max_header: int = 64 * 1024,
        max_size: int = 64 * 2**20,
        max_connections: int | None = None,
        send_timeout: float = 10.0,
        close_timeout: float = 10.0,
        ping_interval: float | None = None,
        shared_reader: bool = False,
    ) -> None:
        self.policy = policy
        self.log = logger
        self.max_header = max_header
        self.max_size = max_size
        self.send_timeout = send_timeout
        self.close_timeout = close_timeout
        self.ping_interval = ping_interval
        self.server = Server(
            host,
            port,
            self._serve,
            name=name,
            ssl_context=ssl_context,
            handshake_timeout=handshake_timeout,
            max_connections=max_connections,
        )
        self.connections: set[Connection] = set()
        self.reader = SharedReader(name) if shared_reader else None
        self._lock = threading.Lock()
        self._gone = threading.Condition(self._lock)  # a connection ended
        self._throttle = Throttle()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def busy_refusals(self) -> int:
        """Connections answered 503 past ``max_connections``."""
        return self.server.busy_refusals

    def bind(self) -> None:
        self.server.bind()

    def start(self) -> None:
        """Bind and accept on a daemon thread (once, however often called)."""
        self.server.start()

    def serve_forever(self) -> None:
        self.server.serve_forever()

    # -- one connection, on its own thread ---------------------------------------------

    def _serve(self, sock: socket.socket, address: Any, deadline: float) -> bool:
        """Serve one connection: True once it is handed to the shared reader (``Server.keep``)."""
        peer = peer_name(address)
        found = self._read_head(sock, deadline, peer)
        if found is None:
            return False
        request, rest = found
        try:
            key = check_request(request)
            session = self.policy.accept(request, peer)
        except HandshakeError as exc:
            self._refuse(sock, peer, exc)
            return False
        shares = CAN_SHARE and getattr(session, "nonblocking", False)
        reader = self.reader if shares else None

        def closed() -> None:
            # Its socket is closed: a shared one counts no more, before the policy hears.
            if reader is not None:
                self.server.release(sock)
            session.closed()

        conn = Connection(
            sock,
            WsProtocol(client=False, max_size=self.max_size),
            on_message=session.message,
            on_close=closed,
            label=f"connection {peer}",
            send_timeout=self.send_timeout,
            close_timeout=self.close_timeout,
            ping_interval=self.ping_interval,
            initial=rest,
            preamble=handshake_response(key),
        )
        with self._lock:
            if self.server.stopping:
                return False
            self.connections.add(conn)
        self.server.watch(conn)
        handed = False
        try:
            session.opened(conn)
            if reader is None:
                conn.run()  # the 101 first, then the receive loop, then session.closed()
            elif not conn.begin():  # the 101 from here, and the bytes behind the request
                conn.end()
            else:  # the reader reads it from now on, and ends it; unless the server is
                # closing meanwhile: then this thread reads on, and close() cuts it
                handed = self.server.keep(sock) and reader.add(conn, lambda: self._gone_away(conn))
                if not handed:
                    conn.go_on()
        finally:
            if not handed:
                self._gone_away(conn)
        return handed

    def _gone_away(self, conn: Connection) -> None:
        """``conn`` is over and its socket closed: forget it."""
        self.server.unwatch(conn)
        with self._gone:
            self.connections.discard(conn)
            self._gone.notify_all()

    def _read_head(
        self, sock: socket.socket, deadline: float, peer: str
    ) -> tuple[Request, bytes] | None:
        """The upgrade request and the bytes behind it, within ``deadline``; None to hang up."""
        data = bytearray()
        try:
            while (parsed := parse_handshake(data, max_size=self.max_header)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.log.debug("%s sent no whole upgrade request in time", peer)
                    return None
                sock.settimeout(remaining)
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                data += chunk
        except HandshakeError as exc:
            self._refuse(sock, peer, exc)
            return None
        except OSError as exc:  # timed out, reset, or shut down by close()
            self.log.debug("%s: no upgrade request: %s", peer, exc)
            return None
        request, consumed = parsed
        return request, bytes(data[consumed:])

    def _refuse(self, sock: socket.socket, peer: str, exc: HandshakeError) -> None:
        """Answer a refused handshake with its status and reply; log it without flooding."""
        suppressed = self._throttle((peer.rpartition(":")[0], exc.status))
        if suppressed is not None:
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            self.log.warning("refused %s with %d: %s%s", peer, exc.status, exc, more)
        try:
            sock.settimeout(self.send_timeout)
            sock.sendall(error_response(exc.status, exc.reply))
        except OSError:
            pass  # the peer is gone: nothing to tell it

    # -- the end -------------------------------------------------------------------------

    def close(self, timeout: float = 5.0, code: int = 1001, reason: str = "going away") -> None:
        """Close every connection with ``code`` and stop every thread, within ``timeout``.

        The peers get a moment (half the time left, at most 1 s, shared) to answer
        our Close; then whatever is left is cut.
        """

        def goodbye(deadline: float) -> None:
            with self._lock:
                conns = list(self.connections)
            for conn in conns:
                conn.close(code, reason)
            grace = min(1.0, max(0.0, deadline - time.monotonic()) / 2)
            with self._gone:
                self._gone.wait_for(lambda: not self.connections, grace)

        deadline = time.monotonic() + timeout
        self.server.close(timeout, goodbye)
        if self.reader is not None:  # what it reads was cut by server.close(): it ends now
            with self._gone:
                self._gone.wait_for(
                    lambda: not self.connections, max(0.0, deadline - time.monotonic())
                )
            self.reader.close(max(0.0, deadline - time.monotonic()))
