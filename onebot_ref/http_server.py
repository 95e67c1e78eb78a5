"""Mode 2 of 4 — HTTP POST. OneBot is the HTTP client; we are the HTTP server.
Spec: communication/http-post.md.

The implementation POSTs every event, one JSON object per request, to the URL
configured on its side (go-cqhttp: ``servers: - http: post: - url:``; NapCat:
an "HTTP client" network entry)::

    POST / HTTP/1.1
    Content-Type: application/json
    X-Self-ID: 10001
    X-Signature: sha1=7758ad…   (only when a secret is set on both sides)

    {"time":1700000000,"self_id":10001,"post_type":"message",...}

We answer ``204 No Content``, or ``200`` with a JSON object: the *quick
operation* to apply to the event (``{"reply": "hi"}``, ``{"approve": true}``…,
spec ``event/*.md``). Our handlers produce it: the request thread runs them
(:meth:`Registry.dispatch`) and the first dict one returns is the answer. So
handlers here should be quick: go-cqhttp gives up after 5 s and posts the same
event again, up to three times. A handler that raises is logged and we answer
204, never 500, which go-cqhttp would also retry. Handlers slower than
``PATIENCE`` are logged with that warning, and ``dedup=60`` answers a second
copy of the same bytes within 60 s with 204 instead of running it again.

Each connection gets its own thread (``ThreadingHTTPServer``, all stopped by
:meth:`HttpServer.close`) and an :class:`~onebot_ref.http_handler.EventHandler`,
which reads each request, answers what it refuses with its own status and a
one-line reason (400, 405, 404, 401/403, 411, 413, 415, 503), and keeps the
connection alive between events. The access token is checked from the head,
before the body is read: a peer without it cannot make us hold its body.

Bounds, so that no peer can pile up threads or memory: ``max_connections``
connections at once (one more is answered 503 with ``Retry-After`` and gets no
thread), ``max_handlers`` events whose handlers run at once (one more is
answered 503 with ``Retry-After``; its connection stays open), ``max_body``
bytes per event. A thread whose handler is stuck stays stuck, but there are at
most ``max_handlers`` of them; every other thread ends when its peer hangs up
or overstays ``idle_timeout``/``request_timeout``.

TLS: with ``ssl_context=`` or ``certfile=``/``keyfile=`` the URL is
``https://``; the connection's own thread checks the first byte and runs the
TLS handshake within ``handshake_timeout`` (see :mod:`onebot_ref.tls`).
``host="::"`` listens on IPv6 (and IPv4 too where the OS allows).
"""

import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

from ._auth import check_token
from ._dedup import Recent
from ._http_base import ManagedHTTPServer
from ._http_handler import EventHandler
from ._serve import decade, warn_if_open
from ._tls import server_context
from .api import OneBotApi
from .codec import check_signature, dumps, valid_token
from .errors import ConfigError, EncodeError, NotConnected
from .registry import Handler, Registry

__all__ = [
    "HttpServer",
]

log = logging.getLogger(__name__)

PATIENCE = 5.0  # seconds go-cqhttp waits for our answer before it posts the event again


class HttpServer(ManagedHTTPServer, OneBotApi):
    """Receive OneBot events over HTTP POST and answer with quick operations.

    Args:
        host: the address to listen on; 127.0.0.1 unless OneBot runs on another
            machine or in another container (then ``0.0.0.0``).
        port: the port; 0 picks a free one (read it back from ``.port``).
        path: the URL path OneBot posts to (a trailing slash does not matter).
        secret: verify ``X-Signature`` with this secret (the implementation's
            ``secret``; NapCat calls it ``token``). None accepts unsigned events.
        access_token: also require ``Authorization: Bearer`` or ``?access_token=``
            (not part of the spec for this mode; for proxies that add it).
        registry: the handlers; by default a new one, closed by :meth:`close`.
        api: where :meth:`call` (and ``reply``, ``send_group_msg``…) send
            actions, usually an ``HttpClient`` for the same implementation.
        max_body: the largest event accepted, in bytes (413 beyond it), sent with
            ``Content-Length`` or ``chunked``. Request heads are bounded too:
            64 KiB, 100 header lines.
        max_connections: connections served at once, each on its own thread; one
            more is answered 503 with ``Retry-After``. 128 is far more than an
            implementation opens (go-cqhttp and NapCat post over a few keep-alive
            connections) and bounds the worst case to 128 threads and, without an
            access token, 128 bodies of ``max_body`` in memory.
        max_handlers: events whose handlers run at once (each holds its
            connection's thread until they return); one more is answered 503
            with ``Retry-After``, so handlers that block for ever pin at most
            this many threads. 32 covers a burst of events whose handlers each
            make a few API calls.
        idle_timeout: seconds a connection may sit idle (or stall mid-request).
        ssl_context: serve ``https://`` with this server-side ``ssl.SSLContext``.
        certfile, keyfile: serve ``https://`` with this certificate chain and key (PEM).
        handshake_timeout: seconds a new connection may take to send its first
            byte and finish the TLS handshake.
        request_timeout: seconds from a request's first byte until its body is read.
        dedup: seconds to remember each event's exact bytes; a second copy within
            them (the implementation retrying a POST we answered too slowly) gets
            204 without running the handlers again. 0, the default, keeps none.

    Raises:
        ConfigError: a host or port that cannot work, such as "0.0.0.0:8080" as the host.
        NetworkError: the port cannot be bound; the message says why.
        ValueError: inconsistent TLS options, a certificate that cannot be loaded,
            or a cap under 1.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        path: str = "/",
        secret: str | None = None,
        access_token: str | None = None,
        registry: Registry | None = None,
        api: OneBotApi | None = None,
        max_body: int = 4 * 1024 * 1024,
        idle_timeout: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        handshake_timeout: float = 10.0,
        request_timeout: float = 30.0,
        dedup: float = 0.0,
        max_connections: int = 128,
        max_handlers: int = 32,
    ) -> None:
        if max_handlers < 1:
            raise ConfigError(f"max_handlers={max_handlers} must be at least 1")
        self.path = path if path.startswith("/") else f"/{path}"
        self.secret = secret
        self.access_token = valid_token(access_token)
        self._own_registry = registry is None
        self.registry = registry if registry is not None else Registry()
        self.api = api
        self.max_body = max_body
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.auth_failures = 0
        self.recent = Recent(dedup) if dedup > 0 else None
        self.duplicates = 0  # events answered without running them again
        self.slow_events = 0
        self.bad_replies = 0  # quick operations that were not JSON
        self.max_handlers = max_handlers
        self.handler_slots = threading.BoundedSemaphore(max_handlers)
        self.busy_events = 0  # events answered 503 because every handler slot was taken
        super().__init__(
            (host, port),
            EventHandler,
            "onebot-http-server",
            ssl_context=server_context(ssl_context, certfile, keyfile),
            handshake_timeout=min(handshake_timeout, idle_timeout),
            max_connections=max_connections,
        )
        warn_if_open(
            log, host, self.port, guarded=bool(secret or access_token), who="post events as the bot"
        )

    @property
    def url(self) -> str:
        """The URL to configure on the OneBot side as its HTTP POST target."""
        return f"{self.base_url}{self.path}"

    def __repr__(self) -> str:
        return f"HttpServer({self.url!r})"

    def on(self, name: str = "*") -> Callable[[Handler], Handler]:
        """Decorator: handle events named ``name`` (see :class:`Registry`)."""
        return self.registry.on(name)

    def call(self, action: str, /, **params: Any) -> Any:
        """Call an action through ``api``: HTTP POST itself can only answer events.

        Raises:
            NotConnected: the server was made without ``api=``.
        """
        if self.api is None:
            raise NotConnected(
                f"cannot call {action!r}: HTTP POST only receives events; "
                "pass api=HttpClient(<OneBot HTTP API URL>) to make calls"
            )
        return self.api.call(action, **params)

    def handle_event(self, event: dict[str, Any]) -> bytes:
        """Run the handlers for ``event`` in this thread; return the quick operation as JSON.

        The first dict a handler returns is the quick operation; b"" means none.
        """
        started = self.registry.clock()  # the registry's clock: a test may move it
        results = self.registry.dispatch(event)  # logs the handlers that raise
        operation = next((r for r in results if isinstance(r, dict)), None)
        try:
            return dumps(operation) if operation else b""
        except EncodeError as exc:  # e.g. {"reply": NaN}: answered 204, and said once in a while
            self.bad_replies += 1
            if decade(self.bad_replies):
                log.error(
                    "cannot answer a %s event with its quick operation (%d so far): %s",
                    event.get("post_type"), self.bad_replies, exc,
                )  # fmt: skip
            return b""
        finally:
            if (took := self.registry.clock() - started) > PATIENCE:
                self.slow_events += 1
                if decade(self.slow_events):
                    log.warning(
                        "handlers took %.1fs on a %s event (%d so far): go-cqhttp waits %gs and "
                        "then posts the event again; make the API calls from a thread of your "
                        "own, or pass dedup=60",
                        took, event.get("post_type"), self.slow_events, PATIENCE,
                    )  # fmt: skip

    def duplicate(self) -> None:
        """Count (and now and then log) an event answered without running it again."""
        self.duplicates += 1
        if decade(self.duplicates):
            log.info(
                "a copy of an event seen in the last %gs was not run again (%d so far): "
                "the implementation retried a POST that we answered too slowly",
                self.recent.window if self.recent else 0,
                self.duplicates,
            )

    def handlers_busy(self) -> str:
        """Count (and now and then log) an event refused because ``max_handlers`` are running.

        Returns:
            The one-line reason for the 503.
        """
        self.busy_events += 1
        if decade(self.busy_events):
            log.warning(
                "all max_handlers=%d handlers are busy: answered an event with 503 (%d so far); "
                "handlers should return quickly (go-cqhttp waits %gs): make slow calls from a "
                "thread of your own, or raise max_handlers",
                self.max_handlers, self.busy_events, PATIENCE,
            )  # fmt: skip
        return f"all max_handlers={self.max_handlers} handlers are busy; retry later"

    def check_access_token(self, headers: dict[str, str], query: str) -> tuple[int, str] | None:
        """``(401 or 403, reason)`` if ``access_token`` refuses the request.

        Needs only the head (``headers`` with lower-case names, the target's
        query), so it runs before the body is read.
        """
        refusal = check_token(self.access_token, headers.get("authorization"), query)
        if refusal is None:
            return None
        return self.auth_failed(refusal.status, refusal.reply, refusal.detail)

    def check_x_signature(self, headers: dict[str, str], body: bytes) -> tuple[int, str] | None:
        """``(401 or 403, reason)`` if ``secret`` refuses the request: HMAC over the body."""
        if self.secret:
            signature = headers.get("x-signature")
            if not signature:
                hint = "does the OneBot side sign at all? (NapCat: set the HTTP client's token)"
                return self.auth_failed(401, f"X-Signature missing; {hint}")
            if not check_signature(body, self.secret, signature):
                hint = "the OneBot side signs, but with a different secret"
                return self.auth_failed(403, f"X-Signature does not match; {hint}")
        return None

    def auth_failed(self, status: int, reason: str, detail: str = "") -> tuple[int, str]:
        """Log a refusal: the 1st, 10th, 100th… so a peer that retries cannot flood the log.

        Returns:
            The status and the reply for the peer: ``reason`` up to its first
            ``;`` (the hint after it, and ``detail``, are for our log only).
        """
        self.auth_failures += 1
        count = self.auth_failures
        if decade(count):
            logged = f"{reason} {detail}".rstrip()
            log.warning("refused an event with %d (%d so far): %s", status, count, logged)
        return status, reason.partition(";")[0]

    def start(self) -> "HttpServer":
        """Serve in a daemon thread and return (the port is already bound)."""
        self.start_thread()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, end every connection thread, then close the registry we made."""
        super().close(timeout)
        if self._own_registry:
            self.registry.close(timeout)

    def __enter__(self) -> "HttpServer":
        return self.start()
