"""The HTTP server underneath every one of ours: a request handler per connection on :mod:`._serve`.

:class:`HttpServer` (mode 2), FakeOneBot's HTTP API and the doctor's HTTP POST
listener all speak HTTP/1.1 through a stdlib ``BaseHTTPRequestHandler``, one per
connection, on its own thread. Listening, TLS per connection, the cap on
connections, reaping and a close bounded in time are :class:`._serve.Server`'s,
shared with the WebSocket servers; this class adds only what is HTTP's: the
handler class, and a ``503`` with ``Retry-After`` for a connection past
``max_connections``.

It holds its server rather than being a ``socketserver`` subclass, so that
none of socketserver's thirty names (``shutdown``, ``timeout``,
``handle_error``...) leak into the servers built on it.
"""

import logging
import socket
import ssl
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any

from ._http_head import refusal
from ._serve import Server, Watched, decade
from ._tls import check_address, url_host
from .errors import ConfigError

__all__ = ["RETRY_AFTER", "ManagedHTTPServer", "decade"]

log = logging.getLogger(__name__)

RETRY_AFTER = 1  # seconds, in the Retry-After of a 503 (RFC 9110 §10.2.3)


class ManagedHTTPServer:
    """An HTTP/1.1 server: ``handler(sock, address, self)`` serves each connection on its thread.

    With ``ssl_context`` it speaks HTTPS: the connection's thread (never the
    accept loop) checks the first byte and runs the TLS handshake, both within
    ``handshake_timeout`` seconds.

    With ``max_connections`` at most that many connections are served at once,
    each on its own thread; one more is answered ``503 Service Unavailable``
    with ``Retry-After`` (over TLS, which the accept loop does not speak, it is
    just closed) and gets no thread. None (the default here) sets no cap.

    The port is bound when the server is made; :meth:`start_thread` or
    :meth:`serve_forever` serve it, :meth:`close` ends every thread.
    """

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        name: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = 10.0,
        max_connections: int | None = None,
    ) -> None:
        check_address(address[0], address[1], type(self).__name__)
        if max_connections is not None and max_connections < 1:
            raise ConfigError(f"max_connections={max_connections} must be at least 1 (or None)")
        self.handler = handler
        self.name = name
        self.host = address[0]
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        self.max_connections = max_connections
        self.busy_refusals = 0  # connections answered 503 past max_connections
        self.server = Server(
            address[0],
            address[1],
            self._serve_connection,
            name=name,
            ssl_context=ssl_context,
            handshake_timeout=handshake_timeout,
            max_connections=max_connections,
            refuse=self.refuse_connection,
        )
        self.server.bind()

    @property
    def port(self) -> int:
        """The port we listen on (the real one when 0 was asked for)."""
        return self.server.port

    @property
    def base_url(self) -> str:
        """``http://host:port`` or ``https://host:port`` (IPv6 hosts in brackets)."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{url_host(self.host)}:{self.port}"

    def _serve_connection(self, sock: socket.socket, address: Any, deadline: float) -> None:
        self.handler(sock, address, self)  # type: ignore[arg-type]  # its server is us

    def watch(self, item: Watched) -> None:
        """Reap ``item`` (``item.tick(now)`` a few times a second) until :meth:`unwatch`."""
        self.server.watch(item)

    def unwatch(self, item: Watched) -> None:
        self.server.unwatch(item)

    # -- lifecycle ---------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept connections until :meth:`close`; one daemon thread per connection.

        Called after :meth:`start_thread` (or inside ``with``), it just waits
        for :meth:`close` or Ctrl+C.
        """
        self.server.serve_forever()

    def start_thread(self) -> None:
        """Serve in a daemon thread and return (the port is already bound); once only."""
        self.server.start()

    def refuse_connection(self, request: socket.socket) -> None:
        """Past ``max_connections``: answer 503 with ``Retry-After``, never blocking.

        The accept loop writes the answer before the request is read (RFC 9112
        §9.6 allows a response at any time), then reads what has already
        arrived, so that closing sends a FIN rather than a reset that could
        erase the answer before the peer reads it.
        """
        self.busy_refusals += 1
        if decade(self.busy_refusals):
            log.warning(
                "%s: refused a connection with 503 (%d so far): max_connections=%d are open; "
                "raise max_connections if the implementation needs more at once",
                self.name, self.busy_refusals, self.max_connections,
            )  # fmt: skip
        if self.ssl_context is not None:
            return
        reason = f"more than max_connections={self.max_connections} at once; retry later"
        try:
            request.setblocking(False)
            request.send(refusal(503, reason, [("Retry-After", str(RETRY_AFTER))]))
            request.recv(65536)
            request.shutdown(socket.SHUT_WR)
        except OSError:  # nothing arrived yet, or the peer is gone: either is fine
            pass

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting and end every connection thread within ``timeout`` seconds."""
        self.server.close(timeout)

    def __enter__(self) -> "ManagedHTTPServer":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
