"""Mode 3 of 4 — forward WebSocket. OneBot is the WebSocket server; we are the client.
Spec: communication/ws.md.

We dial the implementation (NapCat's ``websocketServers``, go-cqhttp's ``ws``
server) and keep the connection up. The spec offers three paths:

* ``/`` — "universal": events arrive and API calls go out on one socket;
* ``/api`` — API only: we send ``{"action", "params", "echo"}`` and read replies;
* ``/event`` — events only: the implementation ignores what we send.

Pass ``url`` for one universal connection, or ``api_url`` and/or ``event_url``
for split ones. The token travels as ``Authorization: Bearer <token>`` and,
with ``token_in_query=True``, also as ``?access_token=`` (NapCat gives the
query precedence; some deployments strip headers). Every frame is one JSON
object: an event has ``post_type``, anything else is an API response, matched
to its call by ``echo`` (:class:`~onebot_ref.calls.PendingCalls`).

What the spec leaves to us, and what we do:

* **Reconnect.** Unbounded by default, capped exponential backoff with jitter
  (0.5 s doubling to 30 s), reset once a connection stayed up ``stable_after``
  seconds. The first failure is logged in full, then one line every 10.
* **Auth failures are fatal**, in each dialect real implementations use:
  HTTP 401/403 at the handshake (go-cqhttp, Lagrange), a text frame
  ``authorization failed`` then close (CQHTTP), an echo-less ``retcode 1403``
  envelope then close (NapCat, LLOneBot). :meth:`WsClient.run_forever` and
  :meth:`WsClient.start` raise :class:`~onebot_ref.errors.AuthError`.
* **So is OneBot 12.** Its events carry ``type``/``detail_type`` instead of
  ``post_type`` (nonebot-plugin-all4one, for one, greets every connection with
  ``meta.connect``): we close with 1003 and raise
  :class:`~onebot_ref.errors.ProtocolError` instead of dropping every event
  as a stray response.
* **Liveness.** Heartbeat meta events carry ``interval`` (ms). Once one has
  arrived, silence for 3× that interval means the link is dead: reconnect.
  The interval is clamped to 0.1 s-1 day; one that is no positive number
  (a bool, a string, NaN) turns the watchdog off
  (:func:`~onebot_ref.codec.heartbeat_interval`).
* **Identity.** There is no ``X-Self-ID`` here: ``self_id`` is taken from the
  lifecycle ``connect`` event or any event, or ``get_login_info`` on an
  API-only connection. Events are never held back waiting for a lifecycle.

TLS: ``wss://`` URLs verify the server's certificate (websocket-client's
defaults); ``ca_file=`` trusts a self-made CA, ``ssl_context=`` takes a whole
``ssl.SSLContext`` and ``verify=False`` (logged loudly) accepts any
certificate. IPv6 hosts go in brackets: ``ws://[::1]:3001/``.

Threads: one receive thread per socket (it only parses, resolves calls and
hands events to the registry's workers), plus the thread running
:meth:`WsClient.run_forever`, which connects, watches and reconnects. No
keepalive pings and no permessage-deflate (go-cqhttp never reads ``/event``
sockets, so its pongs would never come).
"""

import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import websocket

from .api import OneBotApi
from .calls import PendingCalls
from .codec import (
    AUTH_RETCODES,
    heartbeat_interval,
    is_event,
    loads,
    mask_token,
    onebot12_impl,
    redact,
    valid_token,
)
from .errors import AuthError, DecodeError, NetworkError, NotConnected, ProtocolError
from .registry import Handler, Registry
from .tls import client_context
from .ws_link import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_UNSUPPORTED,
    MAX_SIZE,
    Link,
    LinkSocket,
    dial,
    transient,
)

__all__ = ["WsClient"]

log = logging.getLogger(__name__)


class WsClient(OneBotApi):
    """A bot connected to the implementation's WebSocket server.

    Args:
        url: the universal endpoint, e.g. ``ws://127.0.0.1:3001/``.
        access_token: the token configured on the implementation's WebSocket server.
        api_url, event_url: split endpoints instead of ``url`` (either may be alone).
        registry: share handlers with other modes; one passed in is not closed by us.
        timeout: default seconds to wait for an API response.
        connect_timeout: seconds for the TCP connect plus the handshake.
        reconnect: keep reconnecting after failures (auth failures always stop).
        token_in_query: also send the token as ``?access_token=``.
        max_size: the largest incoming message in bytes.
        on_connect: ``f(client)``, run on the connection thread after each connect.
        on_disconnect: ``f(client, error)``, run on the connection thread after each drop.
        ssl_context: verify ``wss://`` servers with this ``ssl.SSLContext``.
        ca_file: trust the CA in this PEM file (the one that signed the server's certificate).
        verify: False accepts any certificate (a development certificate; logged loudly).

    Raises:
        ValueError: no endpoint, a URL that is not ws:// or wss://, or TLS
            options that contradict each other.
    """

    backoff_initial = 0.5
    backoff_max = 30.0
    stable_after = 30.0  # seconds up before the backoff starts again from backoff_initial
    heartbeat_factor = 3.0
    first_frame_wait = 1.0  # seconds start() waits for the first frame (in-band auth failures)
    log_every = 10

    def __init__(
        self,
        url: str | None = None,
        *,
        access_token: str | None = None,
        api_url: str | None = None,
        event_url: str | None = None,
        registry: Registry | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        reconnect: bool = True,
        token_in_query: bool = False,
        max_size: int = MAX_SIZE,
        on_connect: Callable[["WsClient"], object] | None = None,
        on_disconnect: Callable[["WsClient", Exception], object] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
        verify: bool = True,
    ) -> None:
        if url is not None and (api_url or event_url):
            raise ValueError("give either url (universal) or api_url/event_url (split), not both")
        endpoints = {"universal": url} if url is not None else {"api": api_url, "event": event_url}
        self.endpoints = {role: u for role, u in endpoints.items() if u}
        if not self.endpoints:
            raise ValueError("no endpoint: pass url, e.g. ws://127.0.0.1:3001/")
        for endpoint in self.endpoints.values():
            if urlsplit(endpoint).scheme not in ("ws", "wss"):
                raise ValueError(
                    f"{endpoint!r} is not a ws:// or wss:// URL (for an http:// API use HttpClient)"
                )
        self.ssl_context = client_context(
            ssl_context=ssl_context, ca_file=ca_file, verify=verify, who=self._where()
        )
        self.access_token = valid_token(access_token)
        self.registry = registry if registry is not None else Registry()
        self._owns_registry = registry is None
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.reconnect = reconnect
        self.token_in_query = token_in_query
        self.max_size = max_size
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.self_id: int | str | None = None
        self.error: Exception | None = None  # the fatal error that stopped the client
        self.last_error: Exception | None = None
        self._pending = PendingCalls()
        self._lock = threading.Lock()
        self._links: dict[str, Link] = {}
        self._api: Link | None = None
        self._connected = False
        self._closed = threading.Event()
        self._wake = threading.Event()  # a link dropped, or close() was called
        self._heard = threading.Event()  # some frame arrived on this connection
        self._ready = threading.Event()  # for start(): connected, or failed
        self._running = False
        self._ever_connected = False
        self._runner: threading.Thread | None = None
        self._finished = threading.Event()
        self._finished.set()
        self._thread: threading.Thread | None = None
        self._bad_frames = 0

    # -- the user's verbs ------------------------------------------------------

    def on(self, name: str = "*") -> Callable[[Handler], Handler]:
        """Decorator: run the function for events named ``name`` (see :class:`Registry`)."""
        return self.registry.on(name)

    @property
    def connected(self) -> bool:
        """True while every configured socket is open."""
        return self._connected

    def call(self, action: str, /, *, timeout: float | None = None, **params: Any) -> Any:
        """Call ``action`` and return the response's ``data``. Safe from any thread.

        Raises:
            NotConnected: not connected now, or the connection dropped while waiting.
            ApiTimeout: no response within ``timeout`` (default ``self.timeout``).
            ActionFailed: the implementation answered with a failure.
        """
        if self._api is None:
            raise NotConnected(self._why_not_connected())
        wait = self.timeout if timeout is None else timeout
        return self._pending.call(self._send, action, params, wait)

    def run_forever(self) -> None:
        """Connect and serve until :meth:`close`, reconnecting after failures.

        Returns when :meth:`close` is called (or, with ``reconnect=False``,
        when the connection ends).

        Raises:
            AuthError: the implementation refused our token (never retried).
            NetworkError: with ``reconnect=False``, the connection failed.
        """
        self._run(give_up_after=None)

    def start(self, wait: float | None = None) -> "WsClient":
        """Run :meth:`run_forever` in a daemon thread; return once connected.

        An implementation that is not up yet (the connection refused or timed
        out, a proxy's 5xx) is retried with backoff, as :meth:`run_forever`
        does, for ``wait`` seconds: a bot started together with its
        implementation need not be started second. An answer that retrying
        cannot change fails at once: a refused token, a port that is no
        WebSocket server, TLS on one side only. With ``reconnect=False`` the
        first attempt is the only one.

        Args:
            wait: seconds to keep retrying the first connection; by default
                ``connect_timeout``.

        Raises:
            AuthError: the implementation refused our token.
            ProtocolError: the implementation speaks OneBot 12.
            NetworkError: no connection within ``wait`` (the message has the
                last attempt's error), or an answer that retrying cannot change.
        """
        if self._thread is not None:
            raise RuntimeError("start() was already called")
        wait = self.connect_timeout if wait is None else wait
        # Daemon: a bot that forgets close() must not keep the interpreter alive.
        self._thread = threading.Thread(
            target=self._run_quietly, args=(wait,), name="onebot-ws-client"
        )
        self._thread.daemon = True
        self._thread.start()
        per_attempt = self.connect_timeout * len(self.endpoints)
        budget = wait + per_attempt + self.first_frame_wait + 5.0
        if not self._ready.wait(budget):
            self.close()
            raise NotConnected(f"no connection to {self._where()} after {budget:.0f}s")
        if not self._ever_connected:
            self._thread.join(5.0)
            raise self.last_error or NotConnected(self._why_not_connected())
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Disconnect and stop every thread we started, waiting ``timeout`` at most.

        Handlers already running (or queued) get a moment to finish first, so
        that a reply in flight is not cut off by our own close.
        """
        deadline = time.monotonic() + timeout
        self.registry.join(min(2.0, timeout / 2))
        self._closed.set()
        self._wake.set()
        self._pending.fail_all(NotConnected("the client was closed"))
        current = threading.current_thread()
        if self._runner is not current:  # close() from a hook must not wait for itself
            self._finished.wait(timeout)
        if self._thread is not None and self._thread is not current:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if not self._finished.is_set():
            log.warning("connection thread still busy after close() (connecting or in a hook)")
        if self._owns_registry:
            self.registry.close(max(0.1, deadline - time.monotonic()))

    def __enter__(self) -> "WsClient":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the connection loop -----------------------------------------------------

    def _run_quietly(self, wait: float) -> None:
        try:
            self._run(give_up_after=wait)
        except Exception as exc:  # start() re-raises it in the caller's thread
            self.last_error = exc
        finally:
            self._ready.set()

    def _run(self, *, give_up_after: float | None) -> None:
        """Connect, serve, reconnect; the first connection is given ``give_up_after`` seconds."""
        with self._lock:
            if self._running:
                raise RuntimeError("run_forever() is already running")
            self._running = True
            self._runner = threading.current_thread()
            self._finished.clear()
        failures = 0  # consecutive failed connects or short-lived connections
        started = time.monotonic()
        try:
            while not self._closed.is_set():
                try:
                    links = self._connect_all()
                except AuthError as exc:
                    self.error = self.last_error = exc
                    raise
                except NetworkError as exc:
                    self.last_error = exc
                    failures += 1
                    delay = self._retry_in(failures, exc, started, give_up_after)
                    if delay is None:
                        if failures > 1 and give_up_after is not None and transient(exc):
                            raise NetworkError(
                                f"{exc}; still failing after {failures} attempts in "
                                f"{give_up_after:g}s (start(wait=...) waits longer)"
                            ) from exc
                        raise
                    self._closed.wait(delay)
                    continue
                if failures == 0 or self._reported(failures):
                    log.info("connected to %s (%d failed attempts before)", self._where(), failures)
                give_up_after = None  # connected once: from now on, run_forever's rules
                up_since = time.monotonic()
                reason = self._serve(links)
                if self.error is not None:
                    raise self.error
                if self._closed.is_set() or not self.reconnect:
                    return
                self.last_error = reason
                if time.monotonic() - up_since >= self.stable_after:
                    failures = 0  # it worked for a while: start the backoff afresh
                    log.warning("connection to %s lost: %s; reconnecting", self._where(), reason)
                else:
                    failures += 1  # up and straight down again counts as a failure
                    self._log_failure(failures, reason, "retrying with backoff")
                self._closed.wait(self._backoff(failures))
        finally:
            self._running = False
            self._runner = None
            self._finished.set()

    def _connect_all(self) -> dict[str, Link]:
        links: dict[str, Link] = {}
        try:
            for role, url in self.endpoints.items():
                links[role] = Link(role, url, self._connect(url))
        except BaseException:
            for link in links.values():
                link.close()
                link.ws.shutdown()  # type: ignore[no-untyped-call]
            raise
        return links

    def _connect(self, url: str) -> LinkSocket:
        return dial(
            url,
            access_token=self.access_token,
            token_in_query=self.token_in_query,
            connect_timeout=self.connect_timeout,
            ssl_context=self.ssl_context,
            max_size=self.max_size,
            timeout=self.timeout,
        )

    def _serve(self, links: dict[str, Link]) -> Exception:
        """Run one connection until it drops or close(); return why it ended."""
        self._heard.clear()
        with self._lock:
            self._links = links
            self._api = links.get("universal") or links.get("api")
        for link in links.values():
            link.thread = threading.Thread(
                target=self._receive, args=(link,), name=f"onebot-ws-recv-{link.role}"
            )
            link.thread.daemon = True  # the socket read must never block interpreter exit
            link.thread.start()
        self._greet(links)
        reason: Exception | None = None
        if not self._wake.is_set():
            self._connected = self._ever_connected = True
            self._ready.set()
            self._hook(self.on_connect, self)
        while reason is None:
            if self._wake.wait(self._watch(links)) or self._closed.is_set():
                reason = self.error or self._link_error(links) or NotConnected("client closed")
            else:
                reason = self._check_heartbeats(links)
        self._teardown(links, reason)
        return reason

    def _greet(self, links: dict[str, Link]) -> None:
        """Give in-band auth refusals time to arrive before we report "connected"."""
        if "universal" in links or "event" in links:
            self._heard.wait(self.first_frame_wait)  # the lifecycle event, or a refusal
            return
        try:  # API only: no lifecycle here, so ask who we are
            info = self.call("get_login_info", timeout=max(self.first_frame_wait, 2.0))
            if isinstance(info, dict) and info.get("user_id") is not None:
                self.self_id = info["user_id"]
        except AuthError as exc:
            self.error = exc
            self._wake.set()
        except Exception as exc:
            log.warning("get_login_info on %s failed: %s", self._where(), exc)

    def _watch(self, links: dict[str, Link]) -> float:
        """Seconds until the nearest heartbeat deadline (at most 1)."""
        now, wait = time.monotonic(), 1.0
        for link in links.values():
            if link.interval is not None:
                deadline = link.last_seen + self.heartbeat_factor * link.interval
                wait = min(wait, deadline - now)
        return max(wait, 0.01)

    def _check_heartbeats(self, links: dict[str, Link]) -> Exception | None:
        now = time.monotonic()
        for link in links.values():
            if link.interval is None:
                continue
            silent = now - link.last_seen
            if silent > self.heartbeat_factor * link.interval:
                return NetworkError(
                    f"no frame from {redact(link.url)} for {silent:.1f}s although heartbeats "
                    f"promised one every {link.interval:g}s; the link looks dead"
                )
        return None

    def _teardown(self, links: dict[str, Link], reason: Exception) -> None:
        with self._lock:
            self._connected = False
            self._api = None
            self._links = {}
        self._pending.fail_all(
            self.error or NotConnected(f"connection to {self._where()} lost: {reason}")
        )
        for link in links.values():
            link.close(reason.close_code if isinstance(reason, ProtocolError) else CLOSE_NORMAL)
        for link in links.values():
            if link.thread is not None:
                link.thread.join(5.0)
            link.ws.shutdown()  # type: ignore[no-untyped-call]
        self._wake.clear()  # every receive thread of this connection has ended
        self._hook(self.on_disconnect, self, reason)

    def _hook(self, hook: Callable[..., object] | None, *args: object) -> None:
        if hook is None:
            return
        try:
            hook(*args)
        except Exception:
            log.exception("%s hook failed", getattr(hook, "__qualname__", hook))

    # -- one socket's receive thread ---------------------------------------------

    def _receive(self, link: Link) -> None:
        """Read frames until the socket ends. Never runs user code (events go to workers).

        Whatever ends the loop becomes ``link.error``, never a traceback on
        stderr: the peer's protocol errors carry the close code to send, the
        socket's end is an OSError or websocket-client's "closed", and anything
        else (a bug of ours) is logged once and closes the connection with 1011.
        """
        try:
            while not self._closed.is_set() and link.error is None:
                # 1) Read one message (control frames too: they prove the link is alive).
                try:
                    opcode, data = link.ws.recv_data(control_frame=True)
                except websocket.WebSocketTimeoutException:
                    continue
                link.last_seen = time.monotonic()
                # 2) A Close frame ends the connection (websocket-client already answered it).
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                    link.error = NotConnected(f"{redact(link.url)} closed the connection ({code})")
                # 3) Text or binary: one JSON object, an event or a response.
                elif opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                    self._dispatch(link, data)
                # 4) Wake the connection thread on a drop before saying "heard".
                if link.error is not None:
                    self._wake.set()
                self._heard.set()
        except ProtocolError as exc:  # our header and fragment checks (ws_link)
            link.error = exc
        except websocket.WebSocketProtocolException as exc:  # websocket-client's own checks
            link.error = ProtocolError(f"{redact(link.url)} broke the protocol: {exc}")
        except websocket.WebSocketPayloadException as exc:
            link.error = ProtocolError(f"{redact(link.url)} sent a bad payload: {exc}", 1007)
        except (OSError, websocket.WebSocketException) as exc:  # the socket ended
            link.error = exc
        except Exception as exc:
            log.exception("reading from %s failed unexpectedly", redact(link.url))
            link.error = ProtocolError(
                f"unexpected error reading from {redact(link.url)}: {exc!r}", CLOSE_INTERNAL_ERROR
            )
        finally:
            self._wake.set()

    def _dispatch(self, link: Link, data: bytes) -> None:
        try:
            frame = loads(data)
        except DecodeError as exc:
            if data.strip().lower() == b"authorization failed":  # CQHTTP's refusal
                self._refused(link, "sent 'authorization failed' and closed (CQHTTP)")
                return
            self._bad_frames += 1
            if self._bad_frames == 1 or self._bad_frames % 100 == 0:
                log.warning(
                    "ignoring a frame that is not JSON (%d so far): %s", self._bad_frames, exc
                )
            return
        if is_event(frame):
            self._learn(link, frame)
            # A worker thread runs the handlers: a handler may call() and wait for
            # a response that this very thread has to read.
            self.registry.submit(frame, size=len(data))
        elif (impl := onebot12_impl(frame)) is not None:
            self._wrong_version(link, impl)
        elif isinstance(frame, dict):
            if frame.get("retcode") in AUTH_RETCODES and frame.get("echo") in (None, ""):
                self._refused(link, f"answered retcode {frame['retcode']} with no echo (NapCat)")
                return
            self._pending.resolve(frame)

    def _refused(self, link: Link, how: str) -> None:
        sent = f"token {mask_token(self.access_token)}" if self.access_token else "no token"
        self.error = AuthError(
            f"{redact(link.url)} {how}: it refused our access token ({sent} sent); compare "
            "access_token= here with the token of this WebSocket server in the implementation's "
            "config (NapCat: network settings → WebSocket server → token)"
        )
        link.error = self.error
        self._pending.fail_all(self.error)  # this thread reads no more: no answer will come
        self._wake.set()

    def _wrong_version(self, link: Link, impl: str) -> None:
        """A OneBot 12 event: stop (no reconnect) and say so, instead of dropping every event."""
        name = f" ({impl})" if impl else ""
        self.error = ProtocolError(
            f"{redact(link.url)} speaks OneBot 12{name}, not OneBot 11 (its events carry "
            "type/detail_type instead of post_type): onebot_ref speaks OneBot 11 only, so "
            "switch the implementation to OneBot 11 or use a OneBot 12 library",
            CLOSE_UNSUPPORTED,
        )
        link.error = self.error
        self._pending.fail_all(self.error)  # this thread reads no more: no answer will come
        self._wake.set()

    def _learn(self, link: Link, event: dict[str, Any]) -> None:
        self_id = event.get("self_id", event.get("self_ID"))
        if self_id is not None and self_id != self.self_id:
            self.self_id = self_id
        if event.get("meta_event_type") == "heartbeat":
            link.interval = heartbeat_interval(event)

    # -- small helpers -------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        link = self._api
        if link is None:
            raise NotConnected(self._why_not_connected())
        try:
            link.ws.send(data)
        except Exception as exc:  # a half-sent frame leaves the stream unusable
            link.error = link.error or exc
            link.abort()
            raise NotConnected(f"sending to {redact(link.url)} failed: {exc}") from exc

    def _retry_in(
        self, failures: int, exc: NetworkError, started: float, give_up_after: float | None
    ) -> float | None:
        """Seconds to wait before the next connection attempt, or None to give up (and log)."""
        if not self.reconnect:
            self._log_failure(failures, exc, "not retrying: reconnect=False")
            return None
        if give_up_after is None:
            self._log_failure(failures, exc, "retrying with backoff")
            return self._backoff(failures)
        # start(): wait for an implementation that is not up yet, within the bound.
        left = started + give_up_after - time.monotonic()
        if not transient(exc):
            self._log_failure(failures, exc, "not retrying: the answer will not change")
            return None
        if left <= 0:
            return None
        self._log_failure(failures, exc, f"retrying with backoff for up to {give_up_after:g}s")
        return min(self._backoff(failures), left)

    def _backoff(self, failures: int) -> float:
        ceiling = min(self.backoff_max, self.backoff_initial * 2.0 ** min(failures, 30))
        return ceiling * random.uniform(0.5, 1.0)  # jitter: many bots must not dial in step

    def _reported(self, failures: int) -> bool:
        return failures == 1 or failures % self.log_every == 0

    def _log_failure(self, failures: int, exc: Exception, then: str) -> None:
        # The first failure in full, then one line every log_every: no log spam.
        if failures == 1:
            log.warning("connection to %s failed: %s (%s)", self._where(), exc, then)
        elif self._reported(failures):
            log.warning("%s: still failing after %d attempts: %s", self._where(), failures, exc)

    def _why_not_connected(self) -> str:
        if self.error is not None:
            return f"stopped: {self.error}"
        if self._closed.is_set():
            return "the client was closed"
        if "universal" not in self.endpoints and "api" not in self.endpoints:
            return "there is no API connection: pass api_url= as well as event_url="
        last = f"; last error: {self.last_error}" if self.last_error else ""
        return f"not connected to {self._where()}{last}"

    def _where(self) -> str:
        return " + ".join(redact(url) for url in self.endpoints.values())

    @staticmethod
    def _link_error(links: dict[str, Link]) -> Exception | None:
        return next((link.error for link in links.values() if link.error), None)
