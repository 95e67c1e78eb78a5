"""Listening, and serving each connection on a thread of its own: what every server of ours shares.

``HttpServer`` (mode 2), ``WsServer`` (mode 4), FakeOneBot's HTTP API and
forward-WS server and the doctor's listeners all listen on a TCP port and give
each connection a thread. What they need beyond that is the same, and lives
here, once:

* **Binding** (:func:`bind`): IPv4 or IPv6 by the host's form, ``"::"`` taking
  IPv4 too where the OS allows, a listen backlog of ``SOMAXCONN`` (a thousand
  bots reconnecting at once must not wait out SYN retransmits), and a
  :class:`~onebot_ref.errors.NetworkError` that names the likely cause.
* **A warning** when a server listens on every interface with no credential
  (:func:`warn_if_open`).
* **TLS per connection**: the connection's own thread, never the accept loop,
  looks at the first byte and runs the TLS handshake, both within
  ``handshake_timeout`` (see :mod:`onebot_ref.tls`): a stalled or plaintext
  client holds only its own thread.
* **A cap** on connections served at once (``max_connections``): one more is
  refused by the accept loop itself and gets no thread; both kinds of server
  speak HTTP/1.1 first, so it is answered ``503`` with ``Retry-After`` (over
  TLS, which the accept loop does not speak, it is just closed).
* **Reaping without socket timeouts**: a socket timeout puts a ``poll()``
  before every ``recv`` and ``send``; instead the accept loop calls ``tick(now)``
  on every watched object (an HTTP connection's clock, a WebSocket connection)
  a few times a second, and each cuts its own connection when it overstays, by
  shutting the socket down, which wakes a blocked read or write on every OS.
* **A bounded close**: stop accepting, let the owner say goodbye (WebSocket
  Close frames), shut down whatever is left, and join every thread by a deadline.

What is spoken on a connection is the owner's: it passes ``serve(sock,
address, deadline)``, run on the connection's thread once TLS is up. An owner
may hand the socket on to be read elsewhere (``WsServer``'s shared reader): it
calls :meth:`Server.keep` and returns True, and the thread ends while the
connection still counts; the owner closes it and calls :meth:`Server.release`.
"""

import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ._http_head import refusal
from ._tls import LISTEN_BACKLOG, family_for, handshake, peer_name, sniff, url_host
from .errors import ConfigError, NetworkError

__all__ = [
    "RETRY_AFTER",
    "TICK",
    "WILDCARD_HOSTS",
    "Server",
    "Throttle",
    "bind",
    "check_positive",
    "decade",
    "warn_if_open",
]

log = logging.getLogger(__name__)

TICK = 0.2  # seconds between two housekeeping rounds of the accept loop
WILDCARD_HOSTS = ("", "0.0.0.0", "::")  # listening on every interface
RETRY_AFTER = 1  # seconds, in the Retry-After of a 503 (RFC 9110 §10.2.3)


class Watched(Protocol):
    """Something the accept loop reaps: it cuts its own connection when it overstays."""

    def tick(self, now: float) -> None: ...


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (``"::"``: IPv6, and IPv4 where the OS allows).

    Raises:
        NetworkError: the port cannot be bound; the message names the likely cause.
    """
    family = family_for(host)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if sys.platform != "win32":  # there it would let a second server bind the port silently
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # "::" also takes IPv4 where the OS supports dual-stack sockets (not
            # the default on Windows); any other IPv6 address only IPv6.
            dual = host == "::" and socket.has_dualstack_ipv6()
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual else 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        raise NetworkError(
            f"cannot listen on {url_host(host)}:{port}: {exc.strerror or exc}; is another "
            "program (another copy of this bot, or the OneBot implementation itself) using "
            "the port, or is it reserved?"
        ) from exc
    return sock


def warn_if_open(logger: logging.Logger, host: str, port: int, *, guarded: bool, who: str) -> None:
    """Warn when listening on every interface with no credential: anyone may be ``who``."""
    if host in WILDCARD_HOSTS and not guarded:
        logger.warning(
            "listening on all interfaces (%r) without an access_token or secret: anyone "
            "who can reach port %d can %s",
            host,
            port,
            who,
        )


def check_positive(who: str, **values: float | None) -> None:
    """Refuse a size, count or number of seconds that is not above 0 (None passes: "none").

    A timeout of 0 would cut every connection at once, a size of 0 refuse
    every message: such a value is a mistake, named before anything is bound.

    Raises:
        ConfigError: naming the argument, its value and the fix.
    """
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ConfigError(f"{who}: {name}={value!r} must be a number above 0")


def decade(count: int) -> bool:
    """True for the 1st, 10th, 100th… occurrence: logs that cannot flood."""
    return str(count).rstrip("0") == "1"


class Throttle:
    """Say yes to the first event per key, then at most once per ``period`` seconds.

    Implementations retry refused connections every few seconds, for ever: a
    refusal is logged once per peer, then summarised.
    """

    def __init__(self, period: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = period
        self.clock = clock
        self._last: dict[object, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def __call__(self, key: object) -> int | None:
        """The number of events suppressed since the last yes, or None to stay quiet."""
        now = self.clock()
        with self._lock:
            last, skipped = self._last.get(key, (now - self.period, 0))
            if now - last < self.period:
                self._last[key] = (last, skipped + 1)
                return None
            if len(self._last) > 4096:  # bounded: peers come and go
                self._last.clear()
            self._last[key] = (now, 0)
            return skipped


class Server:
    """A listening socket, the accept loop and a thread per connection.

    Args:
        host, port: where to listen (port 0 picks a free one).
        serve: ``f(sock, address, deadline)``, run on each connection's own
            thread once its TLS handshake is done; ``deadline`` is when the
            connection's ``handshake_timeout`` runs out. The socket is closed
            after it returns, unless it returns True, having handed the
            socket on (:meth:`keep`).
        name: names the threads (``name-port`` accepts, ``name-peer`` serves).
        ssl_context: speak TLS on every connection.
        handshake_timeout: seconds for the first byte and the TLS handshake.
        max_connections: connections served at once; one more is answered 503
            (see :meth:`refuse`). None for no cap.

    Raises:
        ConfigError: ``max_connections`` under 1.
    """

    def __init__(
        self,
        host: str,
        port: int,
        serve: Callable[[socket.socket, Any, float], object],
        *,
        name: str,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = 10.0,
        max_connections: int | None = None,
    ) -> None:
        if max_connections is not None and max_connections < 1:
            raise ConfigError(f"max_connections={max_connections} must be at least 1 (or None)")
        self.host = host
        self.port = port
        self.serve = serve
        self.name = name
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        self.max_connections = max_connections
        self.busy_refusals = 0  # connections refused past max_connections
        self.listener: socket.socket | None = None
        self._lock = threading.Lock()
        # Live connections, by the thread serving each, or by the socket itself
        # once that thread handed it on (keep()).
        self._sockets: dict[object, socket.socket] = {}
        self._watched: set[Watched] = set()
        self._thread: threading.Thread | None = None  # the accept loop's
        self._started = False  # True when start() made that thread (not serve_forever's caller)
        self._closing = False
        self._closed = threading.Event()  # the accept loop has ended (or never ran)
        self._closed.set()

    @property
    def active(self) -> int:
        """Connections being served now."""
        return len(self._sockets)

    @property
    def stopping(self) -> bool:
        """True once :meth:`close` has begun: no new connection is served."""
        return self._closing

    def _stopping(self) -> bool:  # a call, so that type checkers do not narrow the flag
        return self._closing

    def bind(self) -> None:
        """Listen on ``host:port`` now (once); afterwards ``port`` is the real one.

        Raises:
            NetworkError: the port cannot be bound (see :func:`bind`).
        """
        with self._lock:
            self._bind()

    def _bind(self) -> None:  # with _lock held
        if self.listener is None:
            self.listener = bind(self.host, self.port)
            self.listener.settimeout(TICK)  # the accept loop's housekeeping clock
            self.port = self.listener.getsockname()[1]

    def start(self) -> None:
        """Bind, and accept on a daemon thread; at most one such thread, however often called.

        Returns once the port listens: a peer may connect at once (the
        backlog holds it until the accept loop takes it).
        """
        with self._lock:
            if self._thread is not None or self._closing:
                return
            self._bind()
            self._closed.clear()
            self._thread = threading.Thread(
                target=self._accept, name=f"{self.name}-{self.port}", daemon=True
            )
            self._started = True
            self._thread.start()

    def serve_forever(self) -> None:
        """Accept on this thread until :meth:`close`; if already started, just wait for it."""
        with self._lock:
            started = self._thread is not None
            if not started and not self._closing:
                self._bind()
                self._closed.clear()
                self._thread = threading.current_thread()
        if started:
            while not self._closed.wait(TICK):
                pass
            return
        self._accept()

    def keep(self, sock: socket.socket) -> bool:
        """Keep ``sock`` open and counted after ``serve`` returns: its owner reads it elsewhere.

        Called from ``serve``, on the connection's thread.

        The owner then closes it itself and calls :meth:`release`. False once
        :meth:`close` has begun: the socket is not kept (``serve`` hangs up).
        """
        with self._lock:
            if self._closing:
                return False
            # One entry per connection, in one step: counted twice for a moment,
            # it could have a connection refused below max_connections.
            self._sockets.pop(threading.current_thread(), None)
            self._sockets[sock] = sock
            return True

    def release(self, sock: socket.socket) -> None:
        """A kept socket is closed: it no longer counts against ``max_connections``."""
        with self._lock:
            self._sockets.pop(sock, None)

    def watch(self, item: Watched) -> None:
        """Have ``item.tick(now)`` called on every housekeeping round, until :meth:`unwatch`."""
        with self._lock:
            self._watched.add(item)

    def unwatch(self, item: Watched) -> None:
        with self._lock:
            self._watched.discard(item)

    # -- the accept loop ---------------------------------------------------------------

    def _accept(self) -> None:
        assert self.listener is not None
        next_tick = time.monotonic() + TICK
        try:
            while not self._stopping():
                try:
                    sock, address = self.listener.accept()
                except TimeoutError:
                    sock = None
                except OSError as exc:  # out of file descriptors, or close(): keep serving
                    if self._stopping():
                        break
                    log.error("%s: accept() failed: %s", self.name, exc)
                    time.sleep(TICK)
                    continue
                if sock is not None:
                    self._admit(sock, address)
                if (now := time.monotonic()) >= next_tick:
                    next_tick = now + TICK
                    self._tick(now)
        finally:
            self.listener.close()
            self._closed.set()

    def _admit(self, sock: socket.socket, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            full = self.max_connections is not None and len(self._sockets) >= self.max_connections
            if not full:
                name = f"{self.name}-{peer_name(address)}"
                thread = threading.Thread(
                    target=self._run, args=(sock, address), name=name, daemon=True
                )
                self._sockets[thread] = sock  # registered before it runs: close() finds it
        if full:
            try:
                self.refuse(sock)
            finally:
                sock.close()
            return
        thread.start()

    def refuse(self, sock: socket.socket) -> None:
        """Past ``max_connections``: answer 503 with ``Retry-After``, never blocking.

        The accept loop writes the answer before the request is read (RFC 9112
        §9.6 allows a response at any time; an upgrade request is an HTTP/1.1
        request too), then reads what has already arrived, so that closing
        sends a FIN rather than a reset that could erase the answer before the
        peer reads it. Over TLS, which the accept loop does not speak, the
        connection is just closed.
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
            sock.setblocking(False)
            sock.send(refusal(503, reason, [("Retry-After", str(RETRY_AFTER))]))
            sock.recv(65536)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # nothing arrived yet, or the peer is gone: either is fine
            pass

    def _tick(self, now: float) -> None:
        with self._lock:
            watched = list(self._watched)
        for item in watched:
            try:
                item.tick(now)
            except Exception:  # a reaper that dies leaves every connection unbounded
                log.exception("%s: housekeeping failed for %r", self.name, item)

    # -- one connection, on its own thread ------------------------------------------------

    def _run(self, sock: socket.socket, address: Any) -> None:
        me = threading.current_thread()
        deadline = time.monotonic() + self.handshake_timeout
        kept = False
        try:
            secured = self._secure(me, sock, address, deadline)
            if secured is not None:
                sock = secured
                kept = self.serve(sock, address, deadline) is True
        except OSError as exc:  # the peer went away, or close() shut the socket down
            log.debug("%s: connection from %s ended: %s", self.name, peer_name(address), exc)
        except Exception:
            log.exception("%s: error on the connection from %s", self.name, peer_name(address))
        finally:
            with self._lock:
                self._sockets.pop(me, None)
            if not kept:  # a kept socket is its owner's to close (keep())
                try:
                    sock.shutdown(socket.SHUT_WR)  # what the peer has not read yet still arrives
                except OSError:
                    pass
                sock.close()

    def _secure(
        self, me: threading.Thread, sock: socket.socket, address: Any, deadline: float
    ) -> socket.socket | None:
        """The socket to speak on (TLS after its handshake), or None to hang up."""
        peer = peer_name(address)
        context = self.ssl_context
        if not sniff(sock, tls=context is not None, timeout=self.handshake_timeout, peer=peer):
            return None
        if context is None:
            return sock
        tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._lock:  # close() must find the TLS socket to wake its handshake
            if self._closing:
                tls.close()
                return None
            self._sockets[me] = tls
        if not handshake(tls, timeout=max(0.0, deadline - time.monotonic()), peer=peer):
            tls.close()
            return None
        return tls

    # -- the end -------------------------------------------------------------------------

    def close(self, timeout: float = 5.0, goodbye: Callable[[float], object] | None = None) -> None:
        """Stop accepting, say ``goodbye(deadline)``, then end every connection's thread.

        Returns within ``timeout`` seconds; a thread still busy then (a handler
        that never returns) is logged and left, as a daemon.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._closing:
                return
            self._closing = True
            accept = self._thread
        if accept is not None and accept is not threading.current_thread():
            try:  # wakes accept() at once on Linux; elsewhere the loop notices within TICK
                self.listener.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
            except OSError:
                pass
            self._closed.wait(max(0.0, deadline - time.monotonic()))
        elif self.listener is not None and accept is None:
            self.listener.close()  # bound but never served
        if goodbye is not None:
            goodbye(deadline)
        with self._lock:
            live = dict(self._sockets)
        for sock in live.values():
            try:  # wakes a thread blocked reading an idle connection
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass
        # The accept loop has ended (_closed); its thread is joined only if it
        # is ours: a serve_forever() caller's thread goes on to other things.
        ours = accept if self._started else None
        for thread in [*live, ours]:
            if not isinstance(thread, threading.Thread) or thread is threading.current_thread():
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s: thread %s still busy after close()", self.name, thread.name)
