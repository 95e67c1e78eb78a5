"""The HTTP server underneath every one of ours: bounded close, TLS per connection, no stderr.

:class:`HttpServer` (mode 2), FakeOneBot's HTTP API and the doctor's HTTP POST
listener are all a ``ThreadingHTTPServer`` with a thread per connection, and
all need the same four things the stdlib leaves out: a :meth:`close` that ends
every thread within a deadline (a thread serving an idle keep-alive connection
sits in a read until the peer hangs up), TLS whose handshake runs on the
connection's thread rather than the accept loop, no reverse DNS lookup at bind
time, and errors logged rather than printed. With ``max_connections`` it also
bounds its threads: a connection past the cap is answered ``503`` with
``Retry-After`` by the accept loop itself, and no thread is started for it.
"""

import logging
import socket
import socketserver
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from .errors import ConfigError, NetworkError
from .http_head import refusal
from .tls import (
    LISTEN_BACKLOG,
    check_address,
    family_for,
    handshake,
    peer_name,
    sniff,
    url_host,
)

__all__ = ["RETRY_AFTER", "ManagedHTTPServer"]

log = logging.getLogger(__name__)

RETRY_AFTER = 1  # seconds, in the Retry-After of a 503 (RFC 9110 §10.2.3)


class ManagedHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer whose :meth:`close` ends every thread it started, in bounded time.

    The stdlib either forgets its connection threads (``daemon_threads``) or
    joins them with no limit (``block_on_close``), and a thread serving an idle
    keep-alive connection sits in a read until the peer hangs up. We remember
    each connection's socket and shut it down on close, which wakes the read.
    FakeOneBot's HTTP API server reuses this class.

    With ``ssl_context`` it speaks HTTPS: the connection's thread (never the
    accept loop) checks the first byte and runs the TLS handshake, both within
    ``handshake_timeout`` seconds.

    With ``max_connections`` at most that many connections are served at once,
    each on its own thread; one more is answered ``503 Service Unavailable``
    with ``Retry-After`` (over TLS, which the accept loop does not speak, it is
    just closed) and gets no thread. None (the default here) sets no cap.
    """

    daemon_threads = True  # a stuck handler must not keep the interpreter alive
    request_queue_size = LISTEN_BACKLOG  # socketserver's is 5
    block_on_close = False  # close() joins the threads itself, with a deadline
    # On Windows SO_REUSEADDR lets a second server bind the same port silently.
    allow_reuse_address = sys.platform != "win32"

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
        self.name = name
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        self.max_connections = max_connections
        self.busy_refusals = 0  # connections answered 503 past max_connections
        self._active = 0  # connection threads started and not yet ended
        self.address_family = family_for(address[0])
        self._lock = threading.Lock()
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._closing = False
        self._serving = False
        self._thread: threading.Thread | None = None
        try:
            super().__init__(address, handler)
        except OSError as exc:
            raise NetworkError(
                f"cannot listen on {url_host(address[0])}:{address[1]}: {exc.strerror or exc}; "
                "is another program (or another copy of this bot) using the port, or is it "
                "reserved?"
            ) from exc

    def server_bind(self) -> None:
        # HTTPServer.server_bind also calls socket.getfqdn(), a reverse DNS
        # lookup that can stall for seconds; nothing here needs the name.
        if self.server_address[0] == "::" and socket.has_dualstack_ipv6():
            # "::" takes IPv4 connections too where the OS allows (not the default on Windows).
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]  # type: ignore[assignment]

    @property
    def port(self) -> int:
        """The port we listen on (the real one when 0 was asked for)."""
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://host:port`` or ``https://host:port`` (IPv6 hosts in brackets)."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{url_host(str(self.server_address[0]))}:{self.port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints these to stderr; a peer that hangs up is routine.
        level = logging.DEBUG if isinstance(sys.exc_info()[1], OSError) else logging.ERROR
        log.log(level, "error on the connection from %s", client_address, exc_info=True)

    # -- lifecycle ---------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.1) -> None:
        """Accept connections until :meth:`close`; one daemon thread per connection.

        Called after :meth:`start_thread` (or inside ``with``), it just waits
        for :meth:`close` or Ctrl+C.
        """
        if self._thread is not None and self._thread is not threading.current_thread():
            while self._thread.is_alive():
                self._thread.join(poll_interval)
            return
        with self._lock:
            if self._closing:
                return
            self._serving = True
        super().serve_forever(poll_interval)

    def start_thread(self) -> None:
        """Serve in a daemon thread and return (the port is already bound); once only."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self.serve_forever, name=f"{self.name}-{self.port}", daemon=True
        )
        self._thread.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        # Runs on the accept loop: count the connection, or refuse it past the cap.
        with self._lock:
            full = self.max_connections is not None and self._active >= self.max_connections
            if not full:
                self._active += 1
        if full:
            self.refuse_connection(request)
            return
        try:
            super().process_request(request, client_address)  # starts the thread
        except BaseException:
            self._ended()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._ended()

    def _ended(self) -> None:
        with self._lock:
            self._active -= 1

    def refuse_connection(self, request: socket.socket) -> None:
        """Past ``max_connections``: answer 503 with ``Retry-After`` and hang up, never blocking.

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
        if self.ssl_context is None:
            reason = f"more than max_connections={self.max_connections} at once; retry later"
            try:
                request.setblocking(False)
                request.send(refusal(503, reason, [("Retry-After", str(RETRY_AFTER))]))
                request.recv(65536)
            except OSError:  # nothing arrived yet, or the peer is gone: either is fine
                pass
        self.shutdown_request(request)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Runs in the connection's thread: remember it so close() can end it.
        me = threading.current_thread()
        with self._lock:
            if self._closing:
                return
            self._connections[me] = request
        try:
            secured = self.secure(me, request, client_address)
            if secured is not None and secured is not request:
                try:  # socketserver closes only the plain socket, which TLS has taken over
                    super().finish_request(secured, client_address)
                finally:
                    self.shutdown_request(secured)
            elif secured is not None:
                super().finish_request(request, client_address)
        finally:
            with self._lock:
                self._connections.pop(me, None)

    def secure(
        self, me: threading.Thread, request: socket.socket, client_address: Any
    ) -> socket.socket | None:
        """The socket to speak HTTP on (TLS after its handshake), or None to hang up."""
        peer = peer_name(client_address)
        context = self.ssl_context
        if not sniff(request, tls=context is not None, timeout=self.handshake_timeout, peer=peer):
            return None
        if context is None:
            return request
        tls = context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        with self._lock:  # close() must find the TLS socket to wake its handshake
            if self._closing:
                tls.close()
                return None
            self._connections[me] = tls
        if not handshake(tls, timeout=self.handshake_timeout, peer=peer):
            tls.close()
            return None
        return tls

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting and end every connection thread within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._closing:
                return
            self._closing = True
            serving = self._serving
        if serving:
            self.shutdown()  # returns once serve_forever has left its loop
        self.server_close()
        with self._lock:
            connections = dict(self._connections)
        for conn in connections.values():
            try:  # wakes a thread blocked reading an idle keep-alive connection
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in [*connections, self._thread]:
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    log.warning("thread %s still busy after close()", thread.name)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def decade(count: int) -> bool:
    """True for the 1st, 10th, 100th… occurrence: logs that cannot flood."""
    return str(count).rstrip("0") == "1"
