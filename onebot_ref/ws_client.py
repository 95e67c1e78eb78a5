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
  (``backoff_initial`` 0.5 s doubling to ``backoff_max`` 30 s; each delay is
  drawn between half the ceiling and the ceiling from ``rng``, which a test
  may seed), reset once a connection stayed up ``stable_after`` seconds. The
  first failure is logged in full, then one line every 10.
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
  arrived, silence for ``heartbeat_factor`` (3) times that interval means the
  link is dead: reconnect. The interval is clamped to 0.1 s-1 day; one that is
  no positive number (a bool, a string, NaN) turns the watchdog off
  (:func:`~onebot_ref.codec.heartbeat_interval`). An implementation that
  sends no heartbeats (NapCat's are optional) can be watched with our own
  pings instead: ``ping_interval=`` sends one every so many seconds, and a
  link that answers none for ``heartbeat_factor`` intervals is dropped.
* **Identity.** There is no ``X-Self-ID`` here: ``self_id`` is taken from the
  lifecycle ``connect`` event or any event, or ``get_login_info`` on an
  API-only connection. Events are never held back waiting for a lifecycle.

TLS: ``wss://`` URLs verify the server's certificate (websocket-client's
defaults); ``ca_file=`` trusts a self-made CA, ``ssl_context=`` takes a whole
``ssl.SSLContext`` and ``verify=False`` (logged loudly) accepts any
certificate. IPv6 hosts go in brackets: ``ws://[::1]:3001/``.

Lifecycle, as in the other modes: :meth:`WsClient.start` dials in a thread of
its own and returns once connected (a second call starts nothing more),
:meth:`WsClient.run_forever` blocks until :meth:`WsClient.close` and closes
on its way out, ``with WsClient(...) as bot:`` starts and closes.

Threads: one receive thread per socket (it only parses, resolves calls and
hands events to the registry's workers), the thread running
:meth:`WsClient.run_forever`, which connects, watches and reconnects, and the
hook thread (:mod:`onebot_ref._hooks`) once ``on_connect``/``on_disconnect``
has run: hooks run there, in order, so a hook may call the API. No keepalive
pings unless ``ping_interval`` asks for them (go-cqhttp never reads ``/event``
sockets, so its pongs would never come), and no permessage-deflate.

How it is built: websocket-client dials (:func:`onebot_ref._ws_dial.dial`:
proxies, TLS, the handshake) and hands over the socket; from then on the
connection is the servers' own: :mod:`onebot_ref._ws_protocol` keeps the
RFC 6455 rules (masking our frames, since we are the client) and
:mod:`onebot_ref._ws_connection` moves the bytes, with the same send path,
deadlines and TLS handling. Where the client is in its life is one explicit
:class:`State`, changed under one condition that every waiter watches.
"""

import enum
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ._bot import Receiver
from ._calls import PendingCalls
from ._hooks import Hooks
from ._tls import client_context
from ._ws_connection import Connection
from ._ws_dial import MAX_SIZE, dial, transient
from ._ws_protocol import Protocol
from .api import merge_params
from .codec import (
    heartbeat_interval,
    inband_refusal,
    is_event,
    loads,
    mask_token,
    onebot12_impl,
    redact,
    valid_token,
)
from .errors import (
    AuthError,
    ConfigError,
    DecodeError,
    NetworkError,
    NotConnected,
    ProtocolError,
)
from .registry import Registry, SendLimit

__all__ = ["State", "WsClient"]

log = logging.getLogger(__name__)

TICK = 0.2  # seconds between two rounds of the connection's deadlines (stuck sends, silence)
# RFC 6455 section 7.4.1
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003  # "received a type of data it cannot accept"


class State(enum.Enum):
    """Where a :class:`WsClient` is in its life."""

    IDLE = "idle"  # made; neither started nor closed
    CONNECTING = "connecting"  # dialling every endpoint
    CONNECTED = "connected"  # every socket open; calls go out
    WAITING = "waiting"  # backing off before the next attempt
    STOPPED = "stopped"  # the connection loop has ended (closed, a fatal error, or no reconnect)


class Link:
    """One open socket of the client (``universal``, ``api`` or ``event``): its connection."""

    def __init__(self, role: str, url: str, conn: Connection) -> None:
        self.role = role
        self.url = url
        self.conn = conn
        self.interval: float | None = None  # seconds, from the last heartbeat
        self.heard = False  # some frame has arrived
        self.ended = False  # its receive loop is over
        self.error: Exception | None = None  # why it ended
        self.thread: threading.Thread | None = None


class WsClient(Receiver):
    """A bot connected to the implementation's WebSocket server.

    Args:
        url: the universal endpoint, e.g. ``ws://127.0.0.1:3001/``.
        access_token: the token configured on the implementation's WebSocket server.
        api_url, event_url: split endpoints instead of ``url`` (either may be alone).
        registry: share handlers with other modes; one passed in is not closed by us.
        timeout: default seconds to wait for an API response.
        connect_timeout: seconds for the TCP connect plus the handshake (each
            endpoint); also what :meth:`start` waits by default.
        send_timeout: seconds a write may stay stuck (a server that stopped
            reading) before the connection is dropped.
        close_timeout: seconds the server has to answer our Close before we cut
            the connection; a server that answers ends it at once.
        ping_interval: send a Ping every this many seconds and drop a link that
            answers none for ``heartbeat_factor`` intervals; None sends none.
        heartbeat_factor: how many heartbeat (or ping) intervals of silence
            mean the link is dead.
        first_frame_wait: seconds :meth:`start` waits for the first frame after
            the handshake, where in-band auth refusals (CQHTTP, NapCat) arrive.
        reconnect: keep reconnecting after failures (auth failures always stop).
        backoff_initial, backoff_max: the first and the largest delay between
            two connection attempts, in seconds (doubling in between, jittered).
        stable_after: seconds a connection must stay up before the backoff
            starts again from ``backoff_initial``.
        rng: the jitter's source; a seeded ``random.Random(7)`` makes the
            delays reproducible.
        token_in_query: also send the token as ``?access_token=``.
        max_size: the largest incoming message in bytes.
        on_connect: ``f(client)`` after each connect.
        on_disconnect: ``f(client)`` after each connection ends: why is in
            ``client.last_error``, unless :meth:`close` ended it (that is no
            error, and ``last_error`` is left as it was). Both run on the client's hook thread, in
            order (never on a thread that reads responses, so they may call the
            API); one that raises is logged.
        send_limit: a :class:`SendLimit` on outgoing messages (rate and burst per
            account and per chat); None, the default, sends at once.
        ssl_context: verify ``wss://`` servers with this ``ssl.SSLContext``.
        ca_file: trust the CA in this PEM file (the one that signed the server's certificate).
        verify: False accepts any certificate (a development certificate; logged loudly).

    The timing arguments stay readable (and settable, before :meth:`start`)
    as attributes of the same names.

    Raises:
        ConfigError: no endpoint, a URL that is not ws:// or wss://, TLS options
            that contradict each other, backoff bounds or intervals that cannot
            work, or a token no header can carry (also a ValueError).
    """

    log_every = 10  # failed attempts between two log lines while the link stays down

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
        send_timeout: float = 10.0,
        close_timeout: float = 10.0,
        ping_interval: float | None = None,
        heartbeat_factor: float = 3.0,
        first_frame_wait: float = 1.0,
        reconnect: bool = True,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        stable_after: float = 30.0,
        rng: random.Random | None = None,
        token_in_query: bool = False,
        max_size: int = MAX_SIZE,
        on_connect: Callable[["WsClient"], object] | None = None,
        on_disconnect: Callable[["WsClient"], object] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
        verify: bool = True,
        send_limit: SendLimit | None = None,
    ) -> None:
        if url is not None and (api_url or event_url):
            raise ConfigError("give either url (universal) or api_url/event_url (split), not both")
        endpoints = {"universal": url} if url is not None else {"api": api_url, "event": event_url}
        self.endpoints = {role: u for role, u in endpoints.items() if u}
        if not self.endpoints:
            raise ConfigError("no endpoint: pass url, e.g. ws://127.0.0.1:3001/")
        for endpoint in self.endpoints.values():
            if urlsplit(endpoint).scheme not in ("ws", "wss"):
                raise ConfigError(
                    f"{endpoint!r} is not a ws:// or wss:// URL (for an http:// API use HttpClient)"
                )
        if not 0 < backoff_initial <= backoff_max:
            raise ConfigError(
                f"backoff_initial={backoff_initial:g} and backoff_max={backoff_max:g} must "
                "satisfy 0 < backoff_initial <= backoff_max (seconds between two attempts)"
            )
        if not heartbeat_factor > 1:
            raise ConfigError(
                f"heartbeat_factor={heartbeat_factor:g} must be more than 1: a link is dead "
                "after that many intervals of silence, and one interval is normal"
            )
        if ping_interval is not None and not ping_interval > 0:
            raise ConfigError(
                f"ping_interval={ping_interval:g} must be a positive number of seconds, "
                "or None to send no pings"
            )
        self.ssl_context = client_context(
            ssl_context=ssl_context, ca_file=ca_file, verify=verify, who=self._where()
        )
        self.access_token = valid_token(access_token)
        self.registry = registry if registry is not None else Registry()
        if send_limit is not None:
            self.registry.send_limit = send_limit
        self._owns_registry = registry is None
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.send_timeout = send_timeout
        self.close_timeout = close_timeout
        self.ping_interval = ping_interval
        self.heartbeat_factor = heartbeat_factor
        self.first_frame_wait = first_frame_wait
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.rng = rng if rng is not None else random.Random()
        self.token_in_query = token_in_query
        self.max_size = max_size
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.self_id: int | str | None = None
        self.error: Exception | None = None  # the fatal error that stopped the client
        self.last_error: Exception | None = None
        self.connects = 0  # connections made (all endpoints up) since start
        self._pending = PendingCalls()
        self._hooks = Hooks("onebot-ws-client-hooks", logger=log)
        # One condition guards the state and everything waiters look at: the
        # links, the error, close(). Every change notifies every waiter.
        self._changed = threading.Condition()
        self._state = State.IDLE
        self._closing = False  # close() was called: the loop ends and never starts again
        self._close_by = 0.0  # close()'s deadline (monotonic), once it was called
        self._links: dict[str, Link] = {}
        self._api: Link | None = None
        self._runner: threading.Thread | None = None
        self._thread: threading.Thread | None = None
        self._bad_frames = 0

    # -- the user's verbs ------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def connected(self) -> bool:
        """True while every configured socket is open."""
        return self._state is State.CONNECTED

    @property
    def _running(self) -> bool:
        return self._state not in (State.IDLE, State.STOPPED)

    def call(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``action`` and return the response's ``data``. Safe from any thread.

        Args:
            action: the action name, such as ``"send_group_msg"``.
            params: the action's parameters as a dict (one named ``timeout`` goes here).
            timeout: seconds to wait for the response (default ``self.timeout``).
            **kwargs: more parameters, merged over ``params``.

        Raises:
            NotConnected: not connected now, or the connection dropped while waiting.
            ApiTimeout: no response within ``timeout``.
            ActionFailed: the implementation answered with a failure.
            EncodeError: a parameter that cannot go onto the wire; nothing was sent.
        """
        sent = merge_params(params, kwargs)
        if self._api is None:
            raise NotConnected(self._why_not_connected())
        wait = self.timeout if timeout is None else timeout
        self.registry.before_send(action, sent)  # the send limit may wait
        data = self._pending.call(self._send, action, sent, wait)
        self.registry.after_send(action, data)
        return data

    def run_forever(self) -> None:
        """Connect and serve until :meth:`close`, reconnecting after failures; then close.

        Returns when :meth:`close` is called (or, with ``reconnect=False``,
        when the connection ends), having closed what it started, as
        ``WsServer.serve_forever`` does. Called while the client already runs
        (after :meth:`start`, or in another thread), it dials nothing more: it
        waits for that connection loop to end, then closes. So
        ``bot.start(); bot.run_forever()`` first fails fast on a wrong URL or
        token, then blocks until Ctrl+C or :meth:`close`.

        Raises:
            AuthError: the implementation refused our token (never retried).
            ProtocolError: the implementation speaks OneBot 12.
            NetworkError: with ``reconnect=False``, the connection failed.
        """
        try:
            with self._changed:
                if self._closing:
                    return
                claimed = self._claim()
            if claimed:
                self._run(give_up_after=None)
                return
            with self._changed:
                while self._running:  # a slice at a time, so Ctrl+C gets through
                    self._changed.wait(1.0)
            if self.error is not None:
                raise self.error
        finally:
            self.close()

    def start(self, wait: float | None = None) -> "WsClient":
        """Connect in a daemon thread (as :meth:`run_forever` does); return once connected.

        Idempotent: while the client runs (a first ``start()``, or
        :meth:`run_forever` in another thread), a second call dials nothing
        more and starts no thread; it returns once that loop is connected.

        An implementation that is not up yet (the connection refused or timed
        out, a proxy's 5xx) is retried with backoff, as :meth:`run_forever`
        does, for ``wait`` seconds: a bot started together with its
        implementation need not be started second. An answer that retrying
        cannot change fails at once: a refused token, a port that is no
        WebSocket server, TLS on one side only. With ``reconnect=False`` the
        first attempt is the only one. After a failed ``start()`` another one
        dials afresh; after :meth:`close` the client does not start again.

        Args:
            wait: seconds to keep retrying the first connection; by default
                ``connect_timeout``.

        Raises:
            AuthError: the implementation refused our token.
            ProtocolError: the implementation speaks OneBot 12.
            NetworkError: no connection within ``wait`` (the message has the
                last attempt's error), or an answer that retrying cannot change.
            NotConnected: the client was closed, or (the loop being someone
                else's) it did not connect in time; that loop keeps trying.
        """
        wait = self.connect_timeout if wait is None else wait
        with self._changed:
            if self._closing:
                raise NotConnected(
                    f"{self._where()}: the client was closed; make a new WsClient to connect again"
                )
            if self.error is not None:  # fatal: retrying cannot help
                raise self.error
            before = self.connects
            claimed = self._claim()
            if claimed:
                # Daemon: a bot that forgets close() must not keep the interpreter alive.
                self._thread = threading.Thread(
                    target=self._run_quietly, args=(wait,), name="onebot-ws-client", daemon=True
                )
                self._thread.start()
        per_attempt = self.connect_timeout * len(self.endpoints)
        budget = wait + per_attempt + self.first_frame_wait + 5.0
        with self._changed:
            up = self._changed.wait_for(
                lambda: self._state in (State.CONNECTED, State.STOPPED) or self.connects > before,
                budget,
            )
        if self.connects > before or self._state is State.CONNECTED:
            return self
        if not claimed:
            if not up:
                raise NotConnected(
                    f"not connected to {self._where()} after {budget:.0f}s; "
                    "the client keeps trying in the background"
                )
            raise self.error or self.last_error or NotConnected(self._why_not_connected())
        if not up:
            self.close()
            raise NotConnected(f"no connection to {self._where()} after {budget:.0f}s")
        if self._thread is not None:
            self._thread.join(5.0)
        raise self.last_error or NotConnected(self._why_not_connected())

    def close(self, timeout: float = 5.0) -> None:
        """Disconnect and stop every thread we started, waiting ``timeout`` at most.

        Handlers already running (or queued) get a moment to finish first, so
        that a reply in flight is not cut off by our own close. A server that
        answers our Close ends the connection at once; one that does not is
        cut after ``close_timeout``, or when ``timeout`` runs out if sooner.
        Queued hooks (the last ``on_disconnect``) run before it returns. Safe
        to call more than once, and from a handler or a hook.
        """
        deadline = time.monotonic() + timeout
        self.registry.join(min(2.0, timeout / 2))
        with self._changed:
            if not self._closing or deadline < self._close_by:
                self._close_by = deadline
            self._closing = True
            self._changed.notify_all()
        self._pending.fail_all(NotConnected("the client was closed"))
        current = threading.current_thread()
        if self._runner is not current:  # close() from run_forever's own thread: it is over
            with self._changed:
                self._changed.wait_for(lambda: not self._running, timeout)
        if self._thread is not None and self._thread is not current:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._running and self._runner is not current:
            log.warning("connection thread still busy after close() (connecting)")
        self._hooks.close(deadline)
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

    def _set(self, state: State) -> None:
        with self._changed:
            self._state = state
            self._changed.notify_all()

    def _claim(self) -> bool:
        """Make this caller the one running the connection loop; False if one runs already.

        Called with ``_changed`` held, so two ``start()`` calls cannot both win.
        """
        if self._running:
            return False
        self._state = State.CONNECTING
        return True

    def _run_quietly(self, wait: float) -> None:
        try:
            self._run(give_up_after=wait)
        except Exception as exc:  # start() re-raises it in the caller's thread
            self.last_error = exc

    def _run(self, *, give_up_after: float | None) -> None:
        """Connect, serve, reconnect; the first connection is given ``give_up_after`` seconds.

        The caller has claimed the loop (:meth:`_claim`).
        """
        with self._changed:
            self._runner = threading.current_thread()
        failures = 0  # consecutive failed connects or short-lived connections
        started = time.monotonic()
        try:
            while not self._closing:
                self._set(State.CONNECTING)
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
                    self._pause(delay)
                    continue
                if failures == 0 or self._reported(failures):
                    log.info("connected to %s (%d failed attempts before)", self._where(), failures)
                give_up_after = None  # connected once: from now on, run_forever's rules
                up_since = time.monotonic()
                reason = self._serve(links)
                if self.error is not None:
                    raise self.error
                if self._closing or not self.reconnect:
                    return
                if time.monotonic() - up_since >= self.stable_after:
                    failures = 0  # it worked for a while: start the backoff afresh
                    log.warning("connection to %s lost: %s; reconnecting", self._where(), reason)
                else:
                    failures += 1  # up and straight down again counts as a failure
                    self._log_failure(failures, reason, "retrying with backoff")
                self._pause(self._backoff(failures))
        finally:
            with self._changed:
                self._state = State.STOPPED
                self._runner = None
                self._changed.notify_all()

    def _pause(self, seconds: float) -> None:
        """Back off for ``seconds``, or until :meth:`close`."""
        with self._changed:
            self._state = State.WAITING
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._closing, seconds)

    def _connect_all(self) -> dict[str, Link]:
        links: dict[str, Link] = {}
        try:
            for role, url in self.endpoints.items():
                links[role] = self._link(role, url, self._connect(url))
        except BaseException:
            for link in links.values():
                link.conn.abort()
                link.conn.sock.close()
            raise
        return links

    def _connect(self, url: str) -> Any:
        return dial(
            url,
            access_token=self.access_token,
            token_in_query=self.token_in_query,
            connect_timeout=self.connect_timeout,
            ssl_context=self.ssl_context,
        )

    def _link(self, role: str, url: str, sock: Any) -> Link:
        """Our protocol and connection over a dialled socket (we are the client: we mask)."""
        link: Link

        def on_message(opcode: int, payload: bytes) -> None:
            self._dispatch(link, payload)

        def on_close() -> None:
            self._ended(link)

        conn = Connection(
            sock,
            Protocol(client=True, max_size=self.max_size),
            on_message=on_message,
            on_close=on_close,
            label=f"connection to {redact(url)}",
            send_timeout=self.send_timeout,
            close_timeout=self.close_timeout,
            ping_interval=self.ping_interval,
            heartbeat_factor=self.heartbeat_factor,
        )
        link = Link(role, url, conn)
        return link

    def _serve(self, links: dict[str, Link]) -> Exception:
        """Run one connection until it drops or close(); return why it ended."""
        with self._changed:
            self._links = links
            self._api = links.get("universal") or links.get("api")
        for link in links.values():
            link.thread = threading.Thread(
                target=link.conn.run, name=f"onebot-ws-recv-{link.role}", daemon=True
            )  # daemon: the socket read must never block interpreter exit
            link.thread.start()
        self._greet(links)
        with self._changed:
            up = not self._over(links)
            if up:
                self._state = State.CONNECTED
                self.connects += 1
                self._changed.notify_all()
        if up:
            self._hooks.run(self.on_connect, self)
        # Our pings go out on a tick: a short ping_interval needs a shorter one.
        tick = min(TICK, self.ping_interval / 2) if self.ping_interval else TICK
        while True:
            with self._changed:
                if self._changed.wait_for(lambda: self._over(links), tick):
                    break
            now = time.monotonic()
            for link in links.values():
                link.conn.tick(now)  # stuck sends, silence past the heartbeats' promise
        reason = self.error or self._link_error(links) or NotConnected("client closed")
        self._teardown(links, reason)
        return reason

    def _over(self, links: dict[str, Link]) -> bool:
        """Whether this connection is over (call with ``_changed`` held)."""
        return self._closing or self.error is not None or any(lk.ended for lk in links.values())

    def _greet(self, links: dict[str, Link]) -> None:
        """Give in-band auth refusals time to arrive before we report "connected"."""
        if "universal" in links or "event" in links:
            with self._changed:  # the lifecycle event, or a refusal
                self._changed.wait_for(
                    lambda: self._over(links) or any(lk.heard for lk in links.values()),
                    self.first_frame_wait,
                )
            return
        try:  # API only: no lifecycle here, so ask who we are
            info = self.call("get_login_info", timeout=max(self.first_frame_wait, 2.0))
            if isinstance(info, dict) and info.get("user_id") is not None:
                self.self_id = info["user_id"]
        except AuthError as exc:
            self._stop(exc)
        except Exception as exc:
            log.warning("get_login_info on %s failed: %s", self._where(), exc)

    def _teardown(self, links: dict[str, Link], reason: Exception) -> None:
        with self._changed:
            self._api = None
            self._links = {}
            if self._state is State.CONNECTED:
                self._state = State.WAITING
            self._changed.notify_all()
        self._pending.fail_all(
            self.error or NotConnected(f"connection to {self._where()} lost: {reason}")
        )
        code = reason.close_code if isinstance(reason, ProtocolError) else CLOSE_NORMAL
        for link in links.values():
            link.conn.close(code)  # answered by the server, which then closes TCP
        # The server has close_timeout to answer, and no longer than close() allows.
        cut_at = time.monotonic() + self.close_timeout
        if self._closing:
            cut_at = min(cut_at, self._close_by - 0.1)
        for link in links.values():
            if link.thread is not None:
                link.thread.join(max(0.0, cut_at - time.monotonic()))
            link.conn.abort()  # a server that did not answer our Close in time
            if link.thread is not None:
                link.thread.join(5.0)
        if not (self._closing and self.error is None):  # our own close() is no error
            self.last_error = reason
        self._hooks.run(self.on_disconnect, self)

    def _stop(self, error: Exception) -> None:
        """A fatal error: stop (no reconnect), fail every call at once, and say why."""
        with self._changed:
            self.error = error
            self._changed.notify_all()
        self._pending.fail_all(error)  # no answer will come now

    # -- one socket's receive thread: never runs user code ------------------------

    def _ended(self, link: Link) -> None:
        """The link's receive loop is over; record why, and wake the connection loop."""
        protocol = link.conn.protocol
        if link.conn.failure is not None:  # a bug of ours (logged with its traceback)
            failure = link.conn.failure
            error: Exception = ProtocolError(
                f"unexpected error reading from {redact(link.url)}: {failure!r}", 1011
            )
        elif protocol.error is not None:  # we failed it: 1002, 1007, 1009...
            code = protocol.error.close_code
            error = ProtocolError(f"{redact(link.url)}: {protocol.error}; closed with {code}", code)
        elif protocol.close_received is not None:
            code = protocol.close_received[0]
            error = NotConnected(f"{redact(link.url)} closed the connection ({code})")
        elif link.conn.cut:
            error = NetworkError(
                f"no frame from {redact(link.url)}: {link.conn.cut}; the link looks dead"
            )
        else:
            error = NotConnected(f"{redact(link.url)}: the connection ended without a Close")
        with self._changed:
            link.ended = True
            link.error = link.error or error
            self._changed.notify_all()

    def _dispatch(self, link: Link, data: bytes) -> None:
        if not link.heard:
            with self._changed:
                link.heard = True
                self._changed.notify_all()
        try:
            frame = loads(data)
        except DecodeError as exc:
            if (how := inband_refusal(data)) is not None:  # CQHTTP: "authorization failed"
                self._refused(link, f"sent {how} and closed (CQHTTP)")
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
            if (how := inband_refusal(frame)) is not None:
                self._refused(link, f"answered {how} with no echo (NapCat)")
                return
            self._pending.resolve(frame)

    def _refused(self, link: Link, how: str) -> None:
        sent = f"token {mask_token(self.access_token)}" if self.access_token else "no token"
        error = AuthError(
            f"{redact(link.url)} {how}: it refused our access token ({sent} sent); compare "
            "access_token= here with the token of this WebSocket server in the implementation's "
            "config (NapCat: network settings → WebSocket server → token)"
        )
        link.error = error
        self._stop(error)

    def _wrong_version(self, link: Link, impl: str) -> None:
        """A OneBot 12 event: stop (no reconnect) and say so, instead of dropping every event."""
        name = f" ({impl})" if impl else ""
        error = ProtocolError(
            f"{redact(link.url)} speaks OneBot 12{name}, not OneBot 11 (its events carry "
            "type/detail_type instead of post_type): onebot_ref speaks OneBot 11 only, so "
            "switch the implementation to OneBot 11 or use a OneBot 12 library",
            CLOSE_UNSUPPORTED,
        )
        link.error = error
        self._stop(error)

    def _learn(self, link: Link, event: dict[str, Any]) -> None:
        self_id = event.get("self_id", event.get("self_ID"))
        if self_id is not None and self_id != self.self_id:
            self.self_id = self_id
        if event.get("meta_event_type") == "heartbeat":
            link.interval = heartbeat_interval(event)  # validated: it drives a timer
            if link.interval is None:
                link.conn.expect_traffic(None)
            else:  # silent for heartbeat_factor intervals: the link is dead
                link.conn.expect_traffic(
                    self.heartbeat_factor * link.interval,
                    f"heartbeats promised one every {link.interval:g}s",
                )

    # -- small helpers -------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        link = self._api
        if link is None:
            raise NotConnected(self._why_not_connected())
        link.conn.send_text(data)  # NotConnected if it failed (the link is then shut down)

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
        """Capped exponential: the ceiling doubles per failure; the delay is drawn below it."""
        ceiling = min(self.backoff_max, self.backoff_initial * 2.0 ** min(failures, 30))
        return ceiling * self.rng.uniform(0.5, 1.0)  # jitter: many bots must not dial in step

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
        if self._closing:
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
