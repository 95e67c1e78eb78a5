"""The HTTP server underneath every one of ours: a request handler per connection on :mod:`._serve`.

:class:`HttpServer` (mode 2), FakeOneBot's HTTP API and the doctor's HTTP POST
listener all speak HTTP/1.1 through a stdlib ``BaseHTTPRequestHandler``, one per
connection, on its own thread. Listening, TLS per connection, the cap on
connections (a ``503`` with ``Retry-After`` past it), reaping and a close
bounded in time are :class:`._serve.Server`'s, shared with the WebSocket
servers; this class adds only what is HTTP's: the handler class, and the
object each handler serves (its ``server.owner``).

It holds its server rather than being a ``socketserver`` subclass, so that
none of socketserver's thirty names (``shutdown``, ``timeout``,
``handle_error``...) leak into the servers built on it; and ``HttpServer``
holds one of these in turn, so that none of this class's names leak either.
"""

import socket
import ssl
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any

from ._serve import RETRY_AFTER, Server, Watched, decade
from ._tls import check_address, url_host

__all__ = ["RETRY_AFTER", "ManagedHTTPServer", "decade"]


class ManagedHTTPServer:
    """An HTTP/1.1 server: ``handler(sock, address, self)`` serves each connection on its thread.

    Each handler's ``self.server`` is this object, and ``self.server.owner``
    the object whose requests it serves: an :class:`HttpServer` holding this
    server, or the subclass itself (FakeOneBot's HTTP API, the doctor's
    listener) when no ``owner`` is given.

    With ``ssl_context`` it speaks HTTPS: the connection's thread (never the
    accept loop) checks the first byte and runs the TLS handshake, both within
    ``handshake_timeout`` seconds.

    With ``max_connections`` at most that many connections are served at once,
    each on its own thread; one more is answered ``503 Service Unavailable``
    with ``Retry-After`` (over TLS, which the accept loop does not speak, it is
    just closed) and gets no thread. None (the default here) sets no cap.

    Nothing is bound until :meth:`bind`, :meth:`start_thread` or
    :meth:`serve_forever`; :meth:`close` ends every thread.

    Raises:
        ConfigError: a host or port that cannot work, or ``max_connections`` under 1.
    """

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        name: str,
        *,
        owner: Any = None,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = 10.0,
        max_connections: int | None = None,
    ) -> None:
        check_address(address[0], address[1], type(self).__name__)
        self.handler = handler
        self.name = name
        self.owner: Any = self if owner is None else owner  # what the handlers serve
        self.host = address[0]
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        self.max_connections = max_connections
        self.server = Server(
            address[0],
            address[1],
            self._serve_connection,
            name=name,
            ssl_context=ssl_context,
            handshake_timeout=handshake_timeout,
            max_connections=max_connections,
        )

    @property
    def port(self) -> int:
        """The port we listen on (the real one once bound, when 0 was asked for)."""
        return self.server.port

    @property
    def base_url(self) -> str:
        """``http://host:port`` or ``https://host:port`` (IPv6 hosts in brackets)."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{url_host(self.host)}:{self.port}"

    @property
    def busy_refusals(self) -> int:
        """Connections answered 503 past ``max_connections``."""
        return self.server.busy_refusals

    def _serve_connection(self, sock: socket.socket, address: Any, deadline: float) -> None:
        self.handler(sock, address, self)  # type: ignore[arg-type]  # its server is us

    def watch(self, item: Watched) -> None:
        """Reap ``item`` (``item.tick(now)`` a few times a second) until :meth:`unwatch`."""
        self.server.watch(item)

    def unwatch(self, item: Watched) -> None:
        self.server.unwatch(item)

    # -- lifecycle ---------------------------------------------------------------

    def bind(self) -> None:
        """Listen now (once), so that a port in use fails here.

        Raises:
            NetworkError: the port cannot be bound; the message says why.
        """
        self.server.bind()

    def serve_forever(self) -> None:
        """Bind, and accept connections until :meth:`close`; one daemon thread per connection.

        Called after :meth:`start_thread` (or inside ``with``), it just waits
        for :meth:`close` or Ctrl+C.
        """
        self.server.serve_forever()

    def start_thread(self) -> None:
        """Bind, and serve in a daemon thread; returns once the port listens. Once only."""
        self.server.start()

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
