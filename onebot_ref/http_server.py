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

Each connection gets its own thread (all stopped by :meth:`HttpServer.close`)
and an :class:`~onebot_ref._http_handler.EventHandler`,
which reads each request, answers what it refuses with its own status and a
one-line reason (400, 405, 404, 401/403, 411, 413, 415, 503), and keeps the
connection alive between events. The access token is checked from the head,
before the body is read: a peer without it cannot make us hold its body.

Bounds, so that no peer can pile up threads or memory: ``max_connections``
connections at once (one more is answered 503 with ``Retry-After`` and gets no
thread), ``max_handlers`` events whose handlers run at once (one more is
answered 503 with ``Retry-After``; its connection stays open), ``max_size``
bytes per event and ``max_header`` bytes per request head. A thread whose
handler is stuck stays stuck, but there are at most ``max_handlers`` of them;
every other thread ends when its peer hangs up or overstays
``handshake_timeout`` (before its first byte), ``idle_timeout`` or
``request_timeout``.

Accounts coming and going: HTTP POST has no connection that stands for an
account, so ``on_connect(bot)`` runs at the first event of an account (its
``self_id``), and ``on_disconnect(bot)`` once its heartbeats stop: nothing from
it for ``heartbeat_factor`` (3) times the interval of its latest heartbeat. An
account that sends no heartbeats is never taken for gone until :meth:`close`,
which says "disconnect" for every account still there. The hooks run in order
on one hook thread (never a request thread), as ``WsServer``'s do
(:mod:`onebot_ref._hooks`), so a hook may call the API through ``api=``.

TLS: with ``ssl_context=`` or ``certfile=``/``keyfile=`` the URL is
``https://``; the connection's own thread checks the first byte and runs the
TLS handshake within ``handshake_timeout`` (see :mod:`onebot_ref._tls`).
``host="::"`` listens on IPv6 (and IPv4 too where the OS allows).
"""

import logging
import ssl
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from ._auth import check_token
from ._bot import Receiver
from ._dedup import Recent
from ._hooks import Bot, Hook, Hooks
from ._http_base import ManagedHTTPServer
from ._http_handler import EventHandler, Owner
from ._serve import check_positive, decade, warn_if_open
from ._tls import check_address, server_context
from .api import OneBotApi, merge_params
from .codec import check_signature, dumps, heartbeat_interval, valid_token
from .errors import ConfigError, EncodeError, NotConnected
from .registry import Handler, Registry, SendLimit

__all__ = [
    "Bot",
    "HttpServer",
]

log = logging.getLogger(__name__)

PATIENCE = 5.0  # seconds go-cqhttp waits for our answer before it posts the event again


class HttpServer(Receiver):
    """Receive OneBot events over HTTP POST and answer with quick operations.

    Args:
        host: the address to listen on; 127.0.0.1 unless OneBot runs on another
            machine or in another container (then ``0.0.0.0``).
        port: the port; 0 picks a free one (read it back from ``.port`` once started).
        path: the URL path OneBot posts to (a trailing slash does not matter).
        secret: verify ``X-Signature`` with this secret (the implementation's
            ``secret``; NapCat calls it ``token``). None accepts unsigned events.
        access_token: also require ``Authorization: Bearer`` or ``?access_token=``
            (not part of the spec for this mode; for proxies that add it).
        registry: the handlers; by default a new one, closed by :meth:`close`.
        api: where :meth:`call` (and ``reply``, ``send_group_msg``…) send
            actions, usually an ``HttpClient`` for the same implementation.
        timeout: seconds a call through ``api`` waits; None (the default)
            leaves it to ``api``'s own ``timeout``.
        max_size: the largest event accepted, in bytes (413 beyond it), sent with
            ``Content-Length`` or ``chunked``.
        max_header: the largest request head (request line and header fields),
            in bytes (431 beyond it; 100 header lines at most).
        max_connections: connections served at once, each on its own thread; one
            more is answered 503 with ``Retry-After``. 128 is far more than an
            implementation opens (go-cqhttp and NapCat post over a few keep-alive
            connections) and bounds the worst case to 128 threads and, without an
            access token, 128 bodies of ``max_size`` in memory.
        max_handlers: events whose handlers run at once (each holds its
            connection's thread until they return); one more is answered 503
            with ``Retry-After``, so handlers that block for ever pin at most
            this many threads. 32 covers a burst of events whose handlers each
            make a few API calls.
        handshake_timeout: seconds a new connection may take to send its first
            byte and finish the TLS handshake. Not bounded by ``idle_timeout``: a
            new connection that sends nothing is dropped after
            ``handshake_timeout``, whichever is longer.
        idle_timeout: seconds a connection may sit idle between requests (or
            take to read a response).
        request_timeout: seconds from a request's first byte until its body is read.
        heartbeat_factor: an account is gone (``on_disconnect``) after this many
            intervals of its latest heartbeat with no event from it.
        dedup: seconds to remember each event's exact bytes; a second copy within
            them (the implementation retrying a POST we answered too slowly) gets
            204 without running the handlers again. 0, the default, keeps none.
        ssl_context: serve ``https://`` with this server-side ``ssl.SSLContext``.
        certfile, keyfile: serve ``https://`` with this certificate chain and key (PEM).
        on_connect: ``f(bot)`` at the first event of an account (a self_id).
        on_disconnect: ``f(bot)`` when its heartbeats stop, and at :meth:`close`.
        send_limit: a :class:`SendLimit` on outgoing messages (rate and burst per
            account and per chat); None, the default, sends at once.

    Raises:
        ConfigError: a host or port that cannot work, such as "0.0.0.0:8080" as the
            host; a size, count or timeout not above 0; inconsistent TLS options or
            a certificate that cannot be loaded.
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
        timeout: float | None = None,
        max_size: int = 4 * 2**20,
        max_header: int = 64 * 1024,
        max_connections: int = 128,
        max_handlers: int = 32,
        handshake_timeout: float = 10.0,
        idle_timeout: float = 60.0,
        request_timeout: float = 30.0,
        heartbeat_factor: float = 3.0,
        dedup: float = 0.0,
        ssl_context: ssl.SSLContext | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        on_connect: Hook | None = None,
        on_disconnect: Hook | None = None,
        send_limit: SendLimit | None = None,
    ) -> None:
        who = type(self).__name__
        check_address(host, port, who)
        if max_handlers < 1:
            raise ConfigError(f"max_handlers={max_handlers} must be at least 1")
        check_positive(
            who,
            timeout=timeout,
            max_size=max_size,
            max_header=max_header,
            handshake_timeout=handshake_timeout,
            idle_timeout=idle_timeout,
            request_timeout=request_timeout,
            heartbeat_factor=heartbeat_factor,
        )
        self.host = host
        self.path = path if path.startswith("/") else f"/{path}"
        self.secret = secret
        self.access_token = valid_token(access_token)
        self._own_registry = registry is None
        self.registry = registry if registry is not None else Registry()
        if send_limit is not None:
            self.registry.send_limit = send_limit
        self.api = api
        self.timeout = timeout
        self.max_size = max_size
        self.max_header = max_header
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.heartbeat_factor = heartbeat_factor
        self.auth_failures = 0
        self.recent = Recent(dedup) if dedup > 0 else None
        self.duplicates = 0  # events answered without running them again
        self.slow_events = 0
        self.bad_replies = 0  # quick operations that were not JSON
        self.max_handlers = max_handlers
        self.handler_slots = _Slots(max_handlers)
        self.busy_events = 0  # events answered 503 because every handler slot was taken
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        owner: Owner = self  # what each EventHandler serves (type-checked here)
        self._http = ManagedHTTPServer(
            (host, port),
            EventHandler,
            "onebot-http-server",
            owner=owner,
            ssl_context=server_context(ssl_context, certfile, keyfile),
            handshake_timeout=handshake_timeout,
            max_connections=max_connections,
        )
        self._hooks = Hooks(lambda: f"onebot-http-hooks-{self.port}", log)
        self._accounts = _Accounts(self)
        self._http.watch(self._accounts)
        self._lock = threading.Lock()
        self._announced = False
        self._closing = False
        self._closed = threading.Event()  # the first close() has finished

    @property
    def port(self) -> int:
        """The port we listen on: the one asked for until :meth:`start` binds it."""
        return self._http.port

    @property
    def url(self) -> str:
        """The URL to configure on the OneBot side as its HTTP POST target."""
        return f"{self._http.base_url}{self.path}"

    @property
    def busy_refusals(self) -> int:
        """Connections answered 503 past ``max_connections``."""
        return self._http.busy_refusals

    @property
    def bots(self) -> list[str]:
        """The self_ids of the accounts posting now (see on_connect), as strings."""
        return self._accounts.present()

    def __repr__(self) -> str:
        return f"HttpServer({self.url!r})"

    def add_handler(self, name: str, func: Handler) -> None:
        """Register ``func`` for ``name`` without the decorator."""
        self.registry.add(name, func)

    def bot(self, self_id: int | str) -> Bot:
        """A handle whose OneBotApi methods act for account ``self_id`` (through ``api``)."""
        return Bot(self, self_id)

    def call(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call an action through ``api``: HTTP POST itself can only answer events.

        ``params`` and ``kwargs`` are merged (kwargs win); a parameter named
        ``timeout`` goes in ``params``.

        Raises:
            NotConnected: the server was made without ``api=``.
        """
        merged = merge_params(params, kwargs)
        api = self._api(action)
        self.registry.before_send(action, merged)  # the send limit may wait
        data = api.call(action, merged, timeout=self._wait(timeout))
        self.registry.after_send(action, data)
        return data

    def call_for(
        self,
        event: Mapping[str, Any],
        action: str,
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``action`` for the account that received ``event``, through ``api``.

        ``api``'s own ``call_for`` decides what the account means: a
        ``WsServer`` as ``api`` routes the call to that account's connection.
        """
        merged = merge_params(params, kwargs)
        api = self._api(action)
        self.registry.before_send(action, merged, event.get("self_id"))
        data = api.call_for(event, action, merged, timeout=self._wait(timeout))
        self.registry.after_send(action, data)
        return data

    def _api(self, action: str) -> OneBotApi:
        if self.api is None:
            raise NotConnected(
                f"cannot call {action!r}: HTTP POST only receives events; "
                "pass api=HttpClient(<OneBot HTTP API URL>) to make calls"
            )
        return self.api

    def _wait(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout

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

    def arrived(self, event: dict[str, Any]) -> None:
        """An accepted event: its account is here (on_connect once) and alive until its deadline."""
        self._accounts.arrived(event, time.monotonic())

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> "HttpServer":
        """Bind, and serve in a daemon thread; returns once the port listens.

        Calling it again does nothing: one server, one accept thread.

        Raises:
            NetworkError: the port cannot be bound; the message says why.
        """
        self._http.start_thread()
        self._announce()
        return self

    def serve_forever(self) -> None:
        """Bind and serve in this thread until :meth:`close` (or Ctrl+C), then close.

        Called after :meth:`start`, it just waits. Either way everything the
        server started is closed on return (Ctrl+C included).

        Raises:
            NetworkError: the port cannot be bound; the message says why.
        """
        try:
            self._http.bind()
            self._announce()
            self._http.serve_forever()
        finally:
            self.close()

    def _announce(self) -> None:
        """Say where we listen (and warn if anyone may post), once."""
        with self._lock:
            if self._announced or self._closing:  # start() after close() serves nothing
                return
            self._announced = True
        guarded = bool(self.secret or self.access_token)
        warn_if_open(log, self.host, self.port, guarded=guarded, who="post events as the bot")
        log.info("listening on %s", self.url)

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, end every connection thread, say goodbye to every account.

        Then stop the hook thread and close the registry we made; within
        ``timeout`` seconds, give or take a hook that never returns. A second
        call (``serve_forever`` returning, say) waits for the first to finish.
        """
        with self._lock:
            first, self._closing = not self._closing, True
        if not first:
            self._closed.wait(timeout)
            return
        deadline = time.monotonic() + timeout
        try:
            self._http.close(timeout)
            self._accounts.close()
            self._hooks.close(deadline)
            if self._own_registry:
                self.registry.close(max(0.1, deadline - time.monotonic()))
        finally:
            self._closed.set()

    def __enter__(self) -> "HttpServer":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Slots:
    """At most ``count`` taken at once, never waited for: a counter under a lock.

    What ``max_handlers`` needs of a semaphore, at less than half the cost per
    event of ``threading.BoundedSemaphore`` (Python code around a Condition).
    """

    def __init__(self, count: int) -> None:
        self.free = count
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Take a slot if one is free; never waits."""
        with self._lock:
            if self.free:
                self.free -= 1
                return True
            return False

    def release(self) -> None:
        with self._lock:
            self.free += 1


class _Accounts:
    """The accounts posting to one HttpServer, for its on_connect / on_disconnect hooks.

    An account arrives with its first event and stays while events keep
    coming: each one moves its deadline to ``heartbeat_factor`` times the
    interval of its latest heartbeat (spec ``event/meta.md``: ``interval``, in
    ms) from now. Past it, the server's reaper (:meth:`tick`) takes it for gone.
    Without a heartbeat there is no deadline. Hooks are queued with the lock
    held, so that their order is the order in which accounts came and went.
    """

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self._lock = threading.Lock()
        self._interval: dict[str, float | None] = {}  # self_id -> latest heartbeat interval
        self._deadline: dict[str, float] = {}  # self_id -> when it is gone, without news
        self._closed = False

    def present(self) -> list[str]:
        with self._lock:
            return sorted(self._deadline)

    def arrived(self, event: dict[str, Any], now: float) -> None:
        self_id = event.get("self_id")
        if self_id is None:
            return
        key = str(self_id)
        with self._lock:
            if self._closed:
                return
            if key not in self._deadline:
                self._interval[key] = None
                self.server._hooks.run(self.server.on_connect, Bot(self.server, key))
            if event.get("meta_event_type") == "heartbeat":
                self._interval[key] = heartbeat_interval(event)
            interval = self._interval[key]
            factor = self.server.heartbeat_factor
            self._deadline[key] = now + factor * interval if interval else float("inf")

    def tick(self, now: float) -> None:
        """The server's reaper, a few times a second: an account past its deadline is gone."""
        with self._lock:
            for key in [k for k, deadline in self._deadline.items() if now > deadline]:
                log.info("bot %s sent nothing for %g heartbeat intervals: taken for gone",
                         key, self.server.heartbeat_factor)  # fmt: skip
                self._leave(key)

    def close(self) -> None:
        """The server closes: every account still here is gone."""
        with self._lock:
            self._closed = True
            for key in list(self._deadline):
                self._leave(key)

    def _leave(self, key: str) -> None:  # with _lock held
        del self._deadline[key], self._interval[key]
        self.server._hooks.run(self.server.on_disconnect, Bot(self.server, key))
