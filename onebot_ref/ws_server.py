"""Mode 4 of 4 — reverse WebSocket. OneBot is the WebSocket client; we are the WebSocket server.
Spec: communication/ws-reverse.md.

The implementation dials our URL (for example ``ws://127.0.0.1:8080/onebot/v11/ws``)
and says who it is in the handshake::

    GET /onebot/v11/ws HTTP/1.1
    X-Self-ID: 3332627962             the bot's QQ number (a decimal string)
    X-Client-Role: Universal          or API / Event (any case; Lagrange sends "Api")
    Authorization: Bearer s3cr3t      or "Token s3cr3t" (go-cqhttp), or ?access_token=

After the upgrade the frames are those of forward WS (spec ``communication/ws.md``):
events (objects with ``post_type``) come in; we send ``{"action", "params",
"echo"}`` and a response with the same ``echo`` comes back.

* Roles: "API 客户端 [...] Event 客户端 [...] Universal 客户端" (an API client
  takes calls, an Event client pushes events, a Universal one does both). A
  missing ``X-Client-Role`` means Universal. One bot may hold an API and an
  Event connection at once; several bots may share the server; a reconnect with
  the same self_id and role replaces (and closes) the old connection.
* Auth: with ``access_token`` set, a missing token is refused with 401 and a
  wrong one with 403, before the upgrade. Implementations retry every 3-5 s
  forever, so each refusal is logged once per peer and then rate-limited.
* Calls are routed to an explicit ``self_id``, else to the only connected bot;
  with several bots and no ``self_id`` they raise :class:`AmbiguousBot` (also a
  ``ValueError``) listing the ids.
  A call in flight fails at once with ``NotConnected`` when its connection drops.
* Liveness: once an implementation sends heartbeats, a connection silent for
  ``heartbeat_factor`` (3) times the heartbeat's ``interval`` (clamped to 0.1 s-1
  day) is closed (it will reconnect). Pings are answered; ``ping_interval``
  adds our own pings, and then a connection that answers nothing for 3
  intervals (a half-open one) is closed too. No permessage-deflate.
* OneBot 12 is refused: at the handshake with 400 when the implementation says
  so (``Sec-WebSocket-Protocol: 12.<impl>``, ``User-Agent: OneBot/12 ...``), else
  with Close 1003 at its first event (``type``/``detail_type``, no ``post_type``).
* Limits: a message over ``max_size`` bytes or of more than
  ``framer.MAX_FRAGMENTS`` frames closes with 1009; an upgrade request over
  ``max_header`` bytes is a 431; past ``max_connections`` connections one more
  is answered 503 with ``Retry-After`` before its upgrade and gets no thread.
  Anything unexpected on a connection's thread is logged once and closes it
  with 1011, never a traceback. The listen backlog is ``SOMAXCONN``: a thousand
  bots reconnecting at once do not wait out SYN retransmits.
* TLS: with ``ssl_context=`` or ``certfile=``/``keyfile=`` the URL is
  ``wss://``; each connection's thread checks the first byte and runs the TLS
  handshake within ``handshake_timeout`` (see :mod:`onebot_ref.tls`), so a
  stalled or plaintext client never holds up the others. ``host="::"``
  listens on IPv6 (and IPv4 too where the OS allows).

* Bots coming and going: ``on_connect(bot)`` runs when a self_id first has a
  connection, ``on_disconnect(bot)`` when its last one is gone (a reconnect that
  replaces a connection is neither), and for every bot still there at
  :meth:`WsServer.close`. Both run in order on one hook thread, so a hook may
  call the bot's API (:mod:`onebot_ref._hooks`, shared with ``HttpServer``).

Threads: one accept thread (which also reaps dead connections), one receive
thread shared by every connection (:mod:`onebot_ref._ws_reader`; on Windows
each has one of its own), the registry's workers, and the hook thread
once a hook has run. A receive thread only parses; events go to
``registry.submit`` so a handler may call the API, whose response that same
receive thread has to deliver.

How it is built: :class:`WsServer` is the OneBot bot-side **policy** of a
generic WebSocket server (:mod:`onebot_ref._ws_listener`: accepting, TLS,
the handshake, reaping, closing), which asks it about each handshake
(:meth:`WsServer.accept`: path, token, ``X-Self-ID``, ``X-Client-Role``) and
hands each connection's messages to a :class:`Peer`. The bytes are moved by
:mod:`onebot_ref._ws_connection` and the RFC 6455 rules kept by
:mod:`onebot_ref._ws_protocol`; nothing here reads a socket.

``python -m onebot_ref.ws_server --listen 127.0.0.1:9001 --echo`` runs a plain
RFC 6455 echo server instead, the testee for conformance suites such as Autobahn.
"""

import argparse
import logging
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any

from ._auth import check_token
from ._bot import Receiver
from ._calls import PendingCalls
from ._hooks import Bot, Hook, Hooks
from ._http_head import split_target
from ._serve import Throttle, check_positive, warn_if_open
from ._tls import check_address, host_port_arg, server_context, url_host
from ._types import ClientRole
from ._ws_connection import Connection
from ._ws_listener import WebSocketServer
from .api import merge_params
from .codec import heartbeat_interval, is_event, loads, onebot12_impl, valid_token
from .errors import ConfigError, DecodeError, NotConnected, OneBotError
from .framer import HandshakeError, Request
from .registry import Handler, Registry, SendLimit

__all__ = [
    "AmbiguousBot",
    "Bot",
    "WsServer",
]

log = logging.getLogger(__name__)

ROLES: dict[str, ClientRole] = {"universal": "Universal", "api": "API", "event": "Event"}


class AmbiguousBot(OneBotError, ValueError):
    """Several bots are connected and a call did not say which one (pass ``self_id=``)."""


def check_version(request: Request) -> None:
    """Refuse a OneBot 12 implementation at the handshake, with a reason it can log.

    OneBot 12's reverse WebSocket (spec ``connect/communication/websocket-reverse.md``)
    "必须在请求连接时设置 [...] ``Sec-WebSocket-Protocol: <onebot_version>.<impl>``"
    (must send ``12.<impl>``) and a ``User-Agent`` such as ``OneBot/12 (qq) ...``.
    Accepted, it would push events that have no ``post_type`` and answer calls
    with retcode 10101 ("Who Am I"): nothing would work, and nothing would say why.

    Raises:
        HandshakeError: 400 for a client that says it speaks OneBot 12.
    """
    offered = request.headers.get("sec-websocket-protocol", "")
    agent = request.headers.get("user-agent", "")
    if any(p.strip().startswith("12.") for p in offered.split(",")) or agent.startswith(
        "OneBot/12"
    ):
        said = f"Sec-WebSocket-Protocol {offered!r}" if offered else f"User-Agent {agent!r}"
        raise HandshakeError(
            f"this server speaks OneBot 11, but the client speaks OneBot 12 ({said}): "
            "configure the implementation for OneBot 11 or point it at a OneBot 12 bot"
        )


class Peer:
    """One implementation's connection, as the bot side sees it: who, which role, its calls.

    The generic server's session for an accepted handshake: :meth:`opened`,
    :meth:`message` and :meth:`closed` are called by the connection, the last
    two on its receive thread, which must never run a handler (a handler's
    call needs this very thread to read its response). That thread is the
    server's shared reader (:mod:`onebot_ref._ws_reader`), serving every
    connection: :meth:`message` never blocks (``nonblocking``).
    """

    nonblocking = True  # message() never waits: it may share a reader thread

    def __init__(
        self, server: "WsServer", peer: str, self_id: str | None, role: ClientRole
    ) -> None:
        self.server = server
        self.peer = peer
        self.self_id = self_id
        self.role = role
        self.calls = PendingCalls()
        self.conn: Connection | None = None
        self.heartbeat: float | None = None  # seconds, from the latest heartbeat's interval

    def __repr__(self) -> str:
        return f"<connection {self.peer} self_id={self.self_id} role={self.role}>"

    @property
    def api_capable(self) -> bool:
        return self.role != "Event"

    @property
    def event_capable(self) -> bool:
        return self.role != "API"

    def opened(self, conn: Connection) -> None:
        """Attach to the server's routing before the ``101`` leaves: calls may follow at once."""
        self.conn = conn
        conn.label = repr(self)[1:-1]
        replaced = self.server._attach(self)
        log.info("%r connected", self)
        self.server._retire(replaced, self)

    def send_text(self, data: bytes) -> None:
        """Send one text frame (what :class:`PendingCalls` sends calls with)."""
        if self.conn is None:
            raise NotConnected(f"the connection to bot {self.self_id} is not open yet")
        self.conn.send_text(data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.conn is not None:
            self.conn.close(code, reason)

    def message(self, opcode: int, payload: bytes) -> None:
        """Route one JSON message: events to the registry, responses to waiting calls.

        Events still arrive after our Close (RFC 6455 section 1.4 only has the
        receiver of a Close discard data): one the implementation sent before
        it saw our Close (a server shutting down, a connection being replaced)
        is not lost.
        """
        server = self.server
        try:
            obj = loads(payload)
        except DecodeError as exc:
            if server._throttle(("json", self.self_id)) is not None:
                log.warning("%r sent a frame that is not JSON: %s", self, exc)
            return
        if not is_event(obj):
            if (impl := onebot12_impl(obj)) is not None:
                self._wrong_version(impl)
            elif isinstance(obj, dict):
                self.calls.resolve(obj)
            return
        if obj.get("meta_event_type") == "heartbeat" and self.conn is not None:
            self.heartbeat = heartbeat_interval(obj)  # validated: it drives the reaper's timer
            if self.heartbeat is None:
                self.conn.expect_traffic(None)
            else:  # silent for heartbeat_factor intervals: the link is dead (it will reconnect)
                self.conn.expect_traffic(
                    server.heartbeat_factor * self.heartbeat,
                    f"heartbeat every {self.heartbeat:.1f}s",
                )
        if self.self_id is None and obj.get("self_id") is not None:
            server._learn(self, str(obj["self_id"]))
        # Never run handlers here: a handler's call() needs this thread to read its response.
        server.registry.submit(obj, size=len(payload))

    def _wrong_version(self, impl: str) -> None:
        """A OneBot 12 event on an open connection (one that did not say so at the handshake)."""
        name = f" ({impl})" if impl else ""
        if self.server._throttle(("onebot12", self.peer.rpartition(":")[0])) is not None:
            log.warning(
                "%r speaks OneBot 12%s, not OneBot 11; closing with 1003: configure the "
                "implementation for OneBot 11 or use a OneBot 12 library",
                self,
                name,
            )
        self.close(1003, "this server speaks OneBot 11 only, not OneBot 12")

    def closed(self) -> None:
        """The connection is over: leave the routing, fail the calls still waiting."""
        self.server._detach(self)
        self.calls.fail_all(NotConnected(f"the connection to bot {self.self_id} dropped"))
        log.info("%r disconnected", self)


class _Echo:
    """The session of ``echo=True``: every message goes back as it came (for conformance suites)."""

    def __init__(self) -> None:
        self.conn: Connection | None = None

    def opened(self, conn: Connection) -> None:
        self.conn = conn

    def message(self, opcode: int, payload: bytes) -> None:
        if self.conn is not None and self.conn.open:
            try:
                self.conn.send(opcode, payload)
            except NotConnected:
                pass  # closing: RFC 6455 section 5.5.1, no more data frames of ours

    def closed(self) -> None:
        pass


class WsServer(Receiver):
    """The reverse-WebSocket server: implementations connect to it.

    Args:
        host: the address to listen on; 127.0.0.1 by default, use "0.0.0.0"
            when the implementation runs on another machine or in a container.
        port: the TCP port; 0 picks a free one (read it from ``.port``).
        path: accept only this path (trailing slash ignored); None accepts any.
        access_token: refuse implementations that do not present this token.
        registry: the handlers; by default a new one, closed by :meth:`close`.
        timeout: seconds an API call waits for its response.
        max_size: the largest message accepted, in bytes (1009 beyond it).
        max_header: the largest upgrade request head, in bytes (431 beyond it).
        max_connections: connections served at once; one more is answered 503
            with ``Retry-After`` before its upgrade and gets no thread. 4096
            lets a thousand accounts connect with split API and Event
            connections (two each) and room for reconnects overlapping the
            connections they replace, while a flood of connections still
            cannot take file descriptors (and TLS threads) without end.
        handshake_timeout: seconds a client may take for its first byte, TLS and
            its upgrade request together.
        send_timeout: seconds a send may block before the peer is dropped.
        close_timeout: seconds a peer has to answer our Close (a reconnect that
            replaced its connection, say) before we cut the connection.
        ping_interval: send a ping every this many seconds; None sends none. A peer
            silent (not even a pong) for 3 intervals is then dropped as half-open.
        heartbeat_factor: a connection whose implementation sends heartbeats is
            closed (and will reconnect) after this many heartbeat intervals with
            nothing from it.
        echo: echo every message back instead of speaking OneBot (for conformance suites).
        ssl_context: serve ``wss://`` with this server-side ``ssl.SSLContext``.
        certfile, keyfile: serve ``wss://`` with this certificate chain and key (PEM).
        on_connect: ``f(bot)`` when a bot (a self_id) gets its first connection.
        on_disconnect: ``f(bot)`` when a bot's last connection is gone, and at :meth:`close`.
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
        path: str | None = None,
        access_token: str | None = None,
        registry: Registry | None = None,
        timeout: float = 30.0,
        max_size: int = 64 * 2**20,
        max_header: int = 64 * 1024,
        max_connections: int = 4096,
        handshake_timeout: float = 10.0,
        send_timeout: float = 10.0,
        close_timeout: float = 10.0,
        ping_interval: float | None = None,
        heartbeat_factor: float = 3.0,
        echo: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        on_connect: Hook | None = None,
        on_disconnect: Hook | None = None,
        send_limit: SendLimit | None = None,
    ) -> None:
        check_address(host, port, type(self).__name__)
        check_positive(
            type(self).__name__,
            timeout=timeout,
            max_size=max_size,
            max_header=max_header,
            handshake_timeout=handshake_timeout,
            send_timeout=send_timeout,
            close_timeout=close_timeout,
            ping_interval=ping_interval,
            heartbeat_factor=heartbeat_factor,
        )
        self.ssl_context = server_context(ssl_context, certfile, keyfile)
        self.host = host
        self.path = path
        self.access_token = valid_token(access_token)
        self.own_registry = registry is None
        self.registry = registry if registry is not None else Registry()
        if send_limit is not None:
            self.registry.send_limit = send_limit
        self.timeout = timeout
        self.heartbeat_factor = heartbeat_factor
        self.echo = echo
        self.listener = WebSocketServer(
            self,
            host,
            port,
            name="onebot-ws",
            logger=log,
            ssl_context=self.ssl_context,
            handshake_timeout=handshake_timeout,
            max_header=max_header,
            max_size=max_size,
            max_connections=max_connections,
            send_timeout=send_timeout,
            close_timeout=close_timeout,
            ping_interval=ping_interval,
            shared_reader=True,
        )
        self._throttle = Throttle()
        self._lock = threading.Lock()
        self._connections: set[Peer] = set()  # every open connection, named or not
        self._api: dict[str, Peer] = {}  # self_id -> its API or Universal connection
        self._event: dict[str, Peer] = {}  # self_id -> its Event or Universal connection
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self._hooks = Hooks(lambda: f"onebot-ws-hooks-{self.port}", log)
        self._announced = False
        self._closing = False
        self._closed = threading.Event()  # the first close() has finished

    @property
    def port(self) -> int:
        """The port we listen on (the real one once bound, when 0 was asked for)."""
        return self.listener.port

    @property
    def url(self) -> str:
        """The URL to give the implementation (``ws_reverse_url``)."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{url_host(self.host)}:{self.port}{self.path or '/'}"

    @property
    def busy_refusals(self) -> int:
        """Connections answered 503 past ``max_connections``."""
        return self.listener.busy_refusals

    @property
    def bots(self) -> list[str]:
        """The self_ids of the bots connected now, as strings."""
        with self._lock:
            return sorted(set(self._api) | set(self._event))

    def add_handler(self, name: str, func: Handler) -> None:
        """Register ``func`` for ``name`` without the decorator."""
        self.registry.add(name, func)

    def bot(self, self_id: int | str) -> Bot:
        """A handle whose OneBotApi methods go to bot ``self_id``."""
        return Bot(self, self_id)

    # --- The handshake: the generic server asks us about each one ---

    def accept(self, request: Request, peer: str) -> "Peer | _Echo":
        """Decide a handshake: path, token, version, ``X-Self-ID``, ``X-Client-Role``.

        Spec ``communication/ws-reverse.md``; the generic server calls this on
        the connection's thread, once the request is a valid upgrade.

        Raises:
            HandshakeError: with the status to refuse with (404, 401, 403, 400).
        """
        if self.echo:
            return _Echo()
        headers = request.headers
        path, query = split_target(request.target)
        if self.path is not None and path.rstrip("/") != self.path.rstrip("/"):
            raise HandshakeError(f"no endpoint at {path!r}; use {self.path!r}", 404)
        refusal = check_token(self.access_token, headers.get("authorization"), query)
        if refusal is not None:
            # The peer learns nothing about the real token, not even its length.
            raise HandshakeError(refusal.reply, refusal.status, detail=f" {refusal.detail}")
        check_version(request)
        self_id = headers.get("x-self-id", "").strip() or None
        role = headers.get("x-client-role", "universal").strip()
        if role.lower() not in ROLES:
            log.warning("%s sent X-Client-Role %r; treating it as Universal", peer, role)
        if self_id is None:
            log.warning("%s sent no X-Self-ID; learning it from the first event", peer)
        return Peer(self, peer, self_id, ROLES.get(role.lower(), "Universal"))

    # --- Lifecycle ---

    def start(self) -> "WsServer":
        """Bind, and serve in a daemon thread; returns once the port listens.

        Calling it again does nothing: one server, one accept thread.

        Raises:
            NetworkError: the port cannot be bound; the message says why.
        """
        self.listener.start()
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
            self.listener.bind()
            self._announce()
            self.listener.serve_forever()
        finally:
            self.close()

    def _announce(self) -> None:
        """Say where we listen (and warn if anyone may connect), once."""
        with self._lock:
            if self._announced or self._closing:  # start() after close() serves nothing
                return
            self._announced = True
        guarded = bool(self.access_token) or self.echo
        warn_if_open(log, self.host, self.port, guarded=guarded, who="connect as a bot")
        log.info("listening on %s", self.url)

    def close(self, timeout: float = 5.0) -> None:
        """Close every connection with 1001, stop every thread; wait ``timeout`` at most.

        Handlers already running (or queued) get a moment to finish first, so
        that a reply in flight is not cut off by our own close. A second call
        (``serve_forever`` returning, say) waits for the first to finish.
        """
        with self._lock:
            first, self._closing = not self._closing, True
        if not first:
            self._closed.wait(timeout)
            return
        deadline = time.monotonic() + timeout
        try:
            self.registry.join(min(2.0, timeout / 2))
            left = max(0.0, deadline - time.monotonic())
            self.listener.close(left, 1001, "server shutting down")
            self._hooks.close(deadline)  # after the last connection's on_disconnect
            if self.own_registry:
                self.registry.close(max(0.1, deadline - time.monotonic()))
        finally:
            self._closed.set()

    def __enter__(self) -> "WsServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- Bots and routing ---

    def _attach(self, peer: Peer) -> list[Peer]:
        """Register a new connection; return the ones it replaces, for the caller to close."""
        with self._lock:
            self._connections.add(peer)
        return self._claim(peer) if peer.self_id is not None else []

    def _learn(self, peer: Peer, self_id: str) -> None:
        peer.self_id = self_id
        if peer.conn is not None:
            peer.conn.label = repr(peer)[1:-1]
        log.info("%r: learned self_id from its first event", peer)
        self._retire(self._claim(peer), peer)

    def _claim(self, peer: Peer) -> list[Peer]:
        """Make ``peer`` its bot's connection for its roles; return what it replaces."""
        assert peer.self_id is not None
        replaced = []
        with self._lock:
            arrived = peer.self_id not in self._api and peer.self_id not in self._event
            for slot, wanted in ((self._api, peer.api_capable), (self._event, peer.event_capable)):
                old = slot.get(peer.self_id)
                if wanted:
                    slot[peer.self_id] = peer
                    if old is not None and old is not peer:
                        replaced.append(old)
            holding = set(self._api.values()) | set(self._event.values())
            if arrived:
                self._hook(self.on_connect, peer.self_id)
        return [old for old in replaced if old not in holding]

    def _retire(self, replaced: list[Peer], peer: Peer) -> None:
        """Close the connections ``peer`` replaced (the implementation reconnected)."""
        for old in replaced:
            log.info("%r replaced by %r", old, peer)
            old.close(1000, "replaced by a newer connection")

    def _detach(self, peer: Peer) -> None:
        with self._lock:
            self._connections.discard(peer)
            self_id, held = peer.self_id, False
            for slot in (self._api, self._event):
                if self_id is not None and slot.get(self_id) is peer:
                    del slot[self_id]
                    held = True
            if held and self_id not in self._api and self_id not in self._event:
                assert self_id is not None
                self._hook(self.on_disconnect, self_id)

    def _hook(self, hook: Hook | None, self_id: str) -> None:
        """Queue ``hook(bot)`` on the hook thread; called with ``_lock`` held, so in event order."""
        self._hooks.run(hook, Bot(self, self_id))

    def _route(self, self_id: int | str | None) -> Peer:
        """The connection to send a call on: explicit self_id > the only bot > an error."""
        with self._lock:
            if self_id is not None:
                conn = self._api.get(str(self_id))
                if conn is not None:
                    return conn
                if str(self_id) in self._event:
                    raise NotConnected(
                        f"bot {self_id} is connected only with role Event, which takes no calls; "
                        "configure an API or Universal connection"
                    )
                ids = sorted(set(self._api) | set(self._event))
                raise NotConnected(f"bot {self_id} is not connected (connected: {ids})")
            candidates = list(self._api.values()) + [
                c for c in self._connections if c.self_id is None and c.api_capable
            ]
            ids = sorted(set(self._api) | set(self._event))
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise NotConnected(
                f"no bot with an API connection is connected (connected: {ids}); "
                f"point the implementation's reverse WebSocket at {self.url}"
            )
        raise AmbiguousBot(f"{len(candidates)} bots are connected ({ids}); pass self_id= to choose")

    def call(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        /,
        *,
        self_id: int | str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``action`` and return the response's ``data``.

        Args:
            action: the action name, e.g. ``"send_private_msg"``.
            params, kwargs: the action's parameters, merged (kwargs win). A
                parameter named ``self_id`` or ``timeout`` goes in ``params``.
            self_id: the bot to ask; may be omitted while exactly one is connected.
            timeout: seconds to wait; the server's ``timeout`` by default.

        Raises:
            NotConnected: that bot is not connected, or its connection dropped.
            AmbiguousBot: several bots are connected and ``self_id`` is None (also
                a ValueError).
            ApiTimeout: no response in time (the action may still have run).
            ActionFailed: the implementation answered with a failure.
        """
        merged = merge_params(params, kwargs)
        peer = self._route(self_id)
        wait = self.timeout if timeout is None else timeout
        self.registry.before_send(action, merged, peer.self_id)  # the send limit may wait
        data = peer.calls.call(peer.send_text, action, merged, wait)
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
        """Call ``action`` on the bot that received ``event`` (used by :meth:`reply`)."""
        merged = merge_params(params, kwargs)
        return self.call(action, merged, self_id=event.get("self_id"), timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    """``python -m onebot_ref.ws_server``: log events from implementations, or ``--echo``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--listen",
        type=host_port_arg,
        default=("127.0.0.1", 8080),
        metavar="HOST:PORT",
        help="where to listen (default 127.0.0.1:8080; [::1]:8080 for IPv6, 0.0.0.0:8080 for "
        "every interface)",
    )
    parser.add_argument("--path", default=None, help="accept only this path (default: any)")
    parser.add_argument("--token", default=None, help="access token implementations must present")
    parser.add_argument("--echo", action="store_true", help="plain RFC 6455 echo server")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    host, port = args.listen
    try:
        server = WsServer(host, port, path=args.path, access_token=args.token, echo=args.echo)
    except ConfigError as exc:  # e.g. a token no header can carry: a usage error, not a traceback
        parser.error(str(exc))
    server.on("*")(lambda event: log.info("event %s", event))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
