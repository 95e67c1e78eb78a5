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
  with several bots and no ``self_id`` they raise ``ValueError`` listing the ids.
  A call in flight fails at once with ``NotConnected`` when its connection drops.
* Liveness: once an implementation sends heartbeats, a connection silent for 3x
  the heartbeat's ``interval`` (clamped to 0.1 s-1 day) is closed (it will
  reconnect). Pings are answered; ``ping_interval`` adds our own pings, and then
  a connection that answers nothing for 3 intervals (a half-open one) is closed
  too. No permessage-deflate.
* OneBot 12 is refused: at the handshake with 400 when the implementation says
  so (``Sec-WebSocket-Protocol: 12.<impl>``, ``User-Agent: OneBot/12 ...``), else
  with Close 1003 at its first event (``type``/``detail_type``, no ``post_type``).
* Limits: a message over ``max_message`` bytes or of more than
  ``framer.MAX_FRAGMENTS`` frames closes with 1009; anything unexpected on a
  connection's thread is logged once and closes it with 1011, never a
  traceback. The listen backlog is ``SOMAXCONN``: a thousand bots reconnecting
  at once do not wait out SYN retransmits.
* TLS: with ``ssl_context=`` or ``certfile=``/``keyfile=`` the URL is
  ``wss://``; each connection's thread checks the first byte and runs the TLS
  handshake within ``handshake_timeout`` (see :mod:`onebot_ref.tls`), so a
  stalled or plaintext client never holds up the others. ``host="::"``
  listens on IPv6 (and IPv4 too where the OS allows).

* Bots coming and going: ``on_connect(bot)`` runs when a self_id first has a
  connection, ``on_disconnect(bot)`` when its last one is gone (a reconnect that
  replaces a connection is neither). Both run in order on one hook thread, so a
  hook may call the bot's API.

Threads: one accept thread (which also reaps dead connections), one daemon
receive thread per connection, the registry's workers, and the hook thread once
a hook has run. A receive thread only parses; events go to ``registry.submit``
so a handler may call the API, whose response that same receive thread has to
deliver.

``python -m onebot_ref.ws_server --echo --port 9001`` runs a plain RFC 6455
echo server instead, the testee for conformance suites such as Autobahn.
"""

import argparse
import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from .api import OneBotApi
from .codec import valid_token
from .errors import ConfigError, NetworkError, NotConnected
from .registry import Handler, Registry
from .tls import LISTEN_BACKLOG, check_address, family_for, port_arg, server_context, url_host
from .ws_connection import Connection, Throttle, read_message

__all__ = ["Bot", "Connection", "WsServer", "read_message"]

log = logging.getLogger(__name__)

TICK = 0.2  # seconds between the accept thread's housekeeping rounds


class Bot(OneBotApi):
    """A handle on one connected bot: every OneBotApi method, sent to ``self_id``."""

    def __init__(self, server: "WsServer", self_id: int | str) -> None:
        self.server = server
        self.self_id = str(self_id)

    def __repr__(self) -> str:
        return f"<Bot {self.self_id}>"

    def call(self, action: str, /, *, timeout: float | None = None, **params: Any) -> Any:
        """Call ``action`` on this bot; see :meth:`WsServer.call`."""
        return self.server.call(action, self_id=self.self_id, timeout=timeout, **params)


class WsServer(OneBotApi):
    """The reverse-WebSocket server: implementations connect to it.

    Args:
        host: the address to listen on; 127.0.0.1 by default, use "0.0.0.0"
            when the implementation runs on another machine or in a container.
        port: the TCP port; 0 picks a free one (read it from ``.port``).
        path: accept only this path (trailing slash ignored); None accepts any.
        access_token: refuse implementations that do not present this token.
        registry: the handlers; by default a new one, closed by :meth:`close`.
        timeout: seconds an API call waits for its response.
        max_message: the largest message accepted, in bytes (1009 beyond it).
        handshake_timeout: seconds a client may take to send its upgrade request.
        send_timeout: seconds a send may block before the peer is dropped.
        close_timeout: seconds a peer has to answer our Close (a reconnect that
            replaced its connection, say) before we cut the connection.
        ping_interval: send a ping every this many seconds; None sends none. A peer
            silent (not even a pong) for 3 intervals is then dropped as half-open.
        echo: echo every message back instead of speaking OneBot (for conformance suites).
        ssl_context: serve ``wss://`` with this server-side ``ssl.SSLContext``.
        certfile, keyfile: serve ``wss://`` with this certificate chain and key (PEM).
        on_connect: ``f(bot)`` when a bot (a self_id) gets its first connection.
        on_disconnect: ``f(bot)`` when a bot's last connection is gone.

    Raises:
        ConfigError: a host or port that cannot work, such as "0.0.0.0:8080" as the host.
        ValueError: inconsistent TLS options, or a certificate that cannot be loaded.
    """

    connection_class = Connection  # FakeOneBot's forward-WS server swaps in its own

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        path: str | None = None,
        access_token: str | None = None,
        registry: Registry | None = None,
        timeout: float = 30.0,
        max_message: int = 64 * 2**20,
        max_header: int = 16384,
        handshake_timeout: float = 10.0,
        send_timeout: float = 10.0,
        close_timeout: float = 10.0,
        ping_interval: float | None = None,
        echo: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        on_connect: Callable[[Bot], object] | None = None,
        on_disconnect: Callable[[Bot], object] | None = None,
    ) -> None:
        check_address(host, port, type(self).__name__)
        self.ssl_context = server_context(ssl_context, certfile, keyfile)
        self.host = host
        self.port = port
        self.path = path
        self.access_token = valid_token(access_token)
        self.own_registry = registry is None
        self.registry = registry if registry is not None else Registry()
        self.timeout = timeout
        self.max_message = max_message
        self.max_header = max_header
        self.handshake_timeout = handshake_timeout
        self.send_timeout = send_timeout
        self.close_timeout = close_timeout
        self.ping_interval = ping_interval
        self.echo = echo
        self._throttle = Throttle()
        self._lock = threading.Lock()
        self._connections: set[Connection] = set()  # every accepted socket, open or not
        self._api: dict[str, Connection] = {}  # self_id -> its API or Universal connection
        self._event: dict[str, Connection] = {}  # self_id -> its Event or Universal connection
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self._hooks: queue.SimpleQueue[tuple[Callable[[Bot], object], Bot] | None] = (
            queue.SimpleQueue()
        )
        self._hook_thread: threading.Thread | None = None
        self._hooks_closed = False

    @property
    def url(self) -> str:
        """The URL to give the implementation (``ws_reverse_url``)."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{url_host(self.host)}:{self.port}{self.path or '/'}"

    @property
    def bots(self) -> list[str]:
        """The self_ids of the bots connected now, as strings."""
        with self._lock:
            return sorted(set(self._api) | set(self._event))

    def on(self, name: str = "*") -> Callable[[Handler], Handler]:
        """Decorator: handle events named ``name`` (see :class:`Registry`)."""
        return self.registry.on(name)

    def add_handler(self, name: str, func: Handler) -> None:
        """Register ``func`` for ``name`` without the decorator."""
        self.registry.add(name, func)

    def bot(self, self_id: int | str) -> Bot:
        """A handle whose OneBotApi methods go to bot ``self_id``."""
        return Bot(self, self_id)

    # --- Lifecycle ---

    def _bind(self) -> None:
        if self._listener is not None:
            return
        try:
            family = family_for(self.host)
            # "::" also takes IPv4 connections where the OS supports dual-stack sockets.
            dual = self.host == "::" and socket.has_dualstack_ipv6()
            self._listener = socket.create_server(
                (self.host, self.port), family=family, backlog=LISTEN_BACKLOG, dualstack_ipv6=dual
            )
        except OSError as exc:
            raise NetworkError(
                f"cannot listen on {url_host(self.host)}:{self.port}: {exc.strerror or exc}; "
                "is another program (or the OneBot implementation itself) using this port?"
            ) from exc
        self._listener.settimeout(TICK)
        self.port = self._listener.getsockname()[1]
        if self.host in ("", "0.0.0.0", "::") and not self.access_token and not self.echo:
            log.warning(
                "listening on all interfaces (%r) without an access_token: anyone who can "
                "reach port %d can connect as a bot",
                self.host,
                self.port,
            )

    def start(self) -> "WsServer":
        """Listen, and serve in a daemon thread; returns once the port is bound."""
        self._bind()
        self._thread = threading.Thread(target=self._serve, name="onebot-ws-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Listen and serve in this thread until :meth:`close` (or Ctrl+C)."""
        if self._thread is not None:  # already serving: just wait for close()
            while not self._closed.wait(TICK):
                pass
            return
        self._bind()
        try:
            self._serve()
        finally:
            self.close()

    def _serve(self) -> None:
        assert self._listener is not None
        log.info("listening on %s", self.url)
        try:
            while not self._closed.is_set():
                try:
                    sock, address = self._listener.accept()
                except TimeoutError:
                    self._housekeeping()
                    continue
                except OSError as exc:  # e.g. out of file descriptors: keep serving
                    if self._closed.is_set():
                        break
                    log.error("accept() failed: %s", exc)
                    time.sleep(TICK)
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn = self.connection_class(self, sock, address)
                with self._lock:
                    self._connections.add(conn)
                conn.thread.start()
                self._housekeeping()
        finally:
            self._listener.close()

    def _housekeeping(self) -> None:
        now = time.monotonic()
        with self._lock:
            conns = [c for c in self._connections if c.open and not c.dead]
        for conn in conns:
            silent = now - conn.last_seen
            stuck = now - conn.sending_since if conn.sending_since else 0.0
            if conn.closing_since and now - conn.closing_since > self.close_timeout:
                log.info("%r left our Close unanswered for %.1fs; cut", conn, self.close_timeout)
                conn.abort()
            elif stuck > self.send_timeout:
                log.warning("%r has not taken what we sent for %.1fs; closing it", conn, stuck)
                conn.abort()
            elif conn.heartbeat is not None and silent > 3 * conn.heartbeat:
                log.warning("%r silent for %.1fs (heartbeat every %.1fs); closing it",
                            conn, silent, conn.heartbeat)  # fmt: skip
                conn.abort()
            elif self.ping_interval and silent > 3 * self.ping_interval:
                log.warning("%r answered none of our pings for %.1fs; closing it", conn, silent)
                conn.abort()
            elif self.ping_interval and now - conn.last_ping > self.ping_interval:
                conn.last_ping = now
                conn.ping()

    def close(self, timeout: float = 5.0) -> None:
        """Close every connection with 1001, stop every thread; wait ``timeout`` at most.

        Handlers already running (or queued) get a moment to finish first, so
        that a reply in flight is not cut off by our own close.
        """
        deadline = time.monotonic() + timeout
        self.registry.join(min(2.0, timeout / 2))
        self._closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            if conn.open:
                conn.sock.settimeout(1.0)  # a peer that does not read cannot hold us for long
                conn.close(1001, "server shutting down")
            else:
                conn.abort()
        # Wait a moment for the peers' Close replies (all share one grace period), then
        # cut the connections of those that did not answer.
        grace = time.monotonic() + min(1.0, max(0.0, deadline - time.monotonic()) / 2)
        for conn in conns:
            conn.thread.join(max(0.0, grace - time.monotonic()))
            if conn.thread.is_alive():
                conn.abort()
        for conn in conns:
            conn.thread.join(max(0.1, deadline - time.monotonic()))
        self._stop_hooks(deadline)
        if self.own_registry:
            self.registry.close(max(0.1, deadline - time.monotonic()))

    def __enter__(self) -> "WsServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- Bots and routing ---

    def _attach(self, conn: Connection) -> list[Connection]:
        """Register a new connection; return the ones it replaces, for the caller to close."""
        return self._claim(conn) if conn.self_id is not None else []

    def _learn(self, conn: Connection, self_id: str) -> None:
        conn.self_id = self_id
        log.info("%r: learned self_id from its first event", conn)
        self._retire(self._claim(conn), conn)

    def _claim(self, conn: Connection) -> list[Connection]:
        """Make ``conn`` its bot's connection for its roles; return what it replaces."""
        assert conn.self_id is not None
        replaced = []
        with self._lock:
            arrived = conn.self_id not in self._api and conn.self_id not in self._event
            for slot, wanted in ((self._api, conn.api_capable), (self._event, conn.event_capable)):
                old = slot.get(conn.self_id)
                if wanted:
                    slot[conn.self_id] = conn
                    if old is not None and old is not conn:
                        replaced.append(old)
            holding = set(self._api.values()) | set(self._event.values())
            if arrived:
                self._hook(self.on_connect, conn.self_id)
        return [old for old in replaced if old not in holding]

    def _retire(self, replaced: list[Connection], conn: Connection) -> None:
        """Close the connections ``conn`` replaced (the implementation reconnected)."""
        for old in replaced:
            log.info("%r replaced by %r", old, conn)
            old.close(1000, "replaced by a newer connection")

    def _detach(self, conn: Connection) -> None:
        with self._lock:
            self._connections.discard(conn)
            self_id, held = conn.self_id, False
            for slot in (self._api, self._event):
                if self_id is not None and slot.get(self_id) is conn:
                    del slot[self_id]
                    held = True
            if held and self_id not in self._api and self_id not in self._event:
                assert self_id is not None
                self._hook(self.on_disconnect, self_id)

    # --- Hooks: in order, on their own thread (never a receive thread) ---

    def _hook(self, hook: Callable[[Bot], object] | None, self_id: str) -> None:
        """Queue ``hook(bot)``; called with ``_lock`` held, so queues stay in event order."""
        if hook is None or self._hooks_closed:
            return
        if self._hook_thread is None:
            name = f"onebot-ws-hooks-{self.port}"
            self._hook_thread = threading.Thread(target=self._run_hooks, name=name, daemon=True)
            self._hook_thread.start()
        self._hooks.put((hook, Bot(self, self_id)))

    def _run_hooks(self) -> None:
        while (item := self._hooks.get()) is not None:
            hook, bot = item
            try:
                hook(bot)
            except Exception:
                log.exception("hook %s failed for %r", getattr(hook, "__qualname__", hook), bot)

    def _stop_hooks(self, deadline: float) -> None:
        with self._lock:
            self._hooks_closed = True
            thread = self._hook_thread
        if thread is None:
            return
        self._hooks.put(None)
        if thread is threading.current_thread():  # close() from inside a hook
            return
        thread.join(max(0.1, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("hook thread still busy after close()")

    def _route(self, self_id: int | str | None) -> Connection:
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
                c for c in self._connections if c.open and c.self_id is None and c.api_capable
            ]
            ids = sorted(set(self._api) | set(self._event))
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise NotConnected(
                f"no bot with an API connection is connected (connected: {ids}); "
                f"point the implementation's reverse WebSocket at {self.url}"
            )
        raise ValueError(f"{len(candidates)} bots are connected ({ids}); pass self_id= to choose")

    def call(
        self,
        action: str,
        /,
        *,
        self_id: int | str | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> Any:
        """Call ``action`` and return the response's ``data``.

        Args:
            action: the action name, e.g. ``"send_private_msg"``.
            self_id: the bot to ask; may be omitted while exactly one is connected.
            timeout: seconds to wait; the server's ``timeout`` by default.
            **params: the action's parameters.

        Raises:
            NotConnected: that bot is not connected, or its connection dropped.
            ValueError: several bots are connected and ``self_id`` is None.
            ApiTimeout: no response in time (the action may still have run).
            ActionFailed: the implementation answered with a failure.
        """
        conn = self._route(self_id)
        wait = self.timeout if timeout is None else timeout
        return conn.calls.call(conn.send_text, action, params, wait)

    def call_for(self, event: dict[str, Any], action: str, /, **params: Any) -> Any:
        """Call ``action`` on the bot that received ``event`` (used by :meth:`reply`)."""
        return self.call(action, self_id=event.get("self_id"), **params)


def main(argv: list[str] | None = None) -> int:
    """``python -m onebot_ref.ws_server``: log events from implementations, or ``--echo``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=port_arg, default=8080, help="port to listen on (default 8080)"
    )
    parser.add_argument("--path", default=None, help="accept only this path (default: any)")
    parser.add_argument("--access-token", default=None, help="token implementations must present")
    parser.add_argument("--echo", action="store_true", help="plain RFC 6455 echo server")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        server = WsServer(
            args.host, args.port, path=args.path, access_token=args.access_token, echo=args.echo
        )
    except ConfigError as exc:  # e.g. --host 0.0.0.0:8080: a usage error, not a traceback
        parser.error(str(exc))
    server.on("*")(lambda event: log.info("event %s", event))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
