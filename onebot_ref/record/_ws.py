"""The recorder's WebSocket relay: accept one side, dial the other, pass every message on.

Reverse WebSocket (the bot's ``ws-server`` mode): the implementation dials
the recorder, which dials the bot. Forward WebSocket (``ws-client``): the bot
dials the recorder, which dials the implementation. Either way it is one
relay, built from the library's own layers by composition:

* the accepting side is :class:`onebot_ref._ws_listener.WebSocketServer` with
  this relay as its policy: each handshake is checked by RFC 6455 rules, then
  :meth:`WsRelay.accept` dials the other side *before* answering, so that a
  refusal there (401, 403, 404, nobody listening) is answered to the dialler
  with the same status (502 when nobody answered at all), and the dialler
  sees what it would have seen without the recorder;
* the dialling side is :func:`onebot_ref._ws_dial.dial`, given the dialler's
  own request target (its path, behind the path of the recorder's ``--to``
  URL, and its query, ``access_token=`` included, behind any query of
  ``--to``) and its header fields (``Authorization``, ``X-Self-ID``,
  ``X-Client-Role``, ``User-Agent``…; not those that belong to one hop:
  ``Host``, ``Origin``, ``Connection``, ``Upgrade``, ``Sec-WebSocket-*``);
* each side is a :class:`onebot_ref._ws_connection.Connection` on its own
  :class:`~onebot_ref._ws_protocol.Protocol`: every read is bounded by
  ``max_size``, every write by ``send_timeout`` (the listener's reaper ticks
  both), and pings are answered on each hop by its own protocol.

A text or binary message is passed on as one message with the same payload
bytes (fragments arrive joined: the framing may differ, the bytes do not).
A Close is passed on with its code and reason; a connection that ends with
no Close (1006) ends the other one the same way, without one; a side that
breaks the protocol (a message over ``max_size``: 1009) is failed with its
code, and the other side is closed with 1001 and a reason that says so. A new
connection from either side is a new pair, with a new number in the
transcript (see :mod:`._transcript`).

It owns relaying WebSocket messages. It must never change a payload or
decide who may connect (the two peers do).
"""

import logging
import ssl
import threading
from urllib.parse import urlsplit, urlunsplit

import websocket

from .._tls import url_host
from .._ws_connection import Connection
from .._ws_dial import dial
from .._ws_listener import WebSocketServer
from .._ws_protocol import ABNORMAL, NO_STATUS
from .._ws_protocol import Protocol as WsProtocol
from ..codec import redact
from ..errors import AuthError, ConfigError, NetworkError, NotConnected
from ..framer import BINARY, HandshakeError, Request
from ._transcript import BOT_TO_ONEBOT, ONEBOT_TO_BOT, Transcript, payload_fields, redact_headers

__all__ = ["WsRelay"]

log = logging.getLogger("onebot_ref.record")

# Fields of the handshake that belong to one hop: websocket-client writes its own.
HOP_HEADERS = frozenset(
    ["host", "origin", "connection", "upgrade", "content-length", "sec-websocket-key",
     "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"]
)  # fmt: skip
MAX_SIZE = 64 * 2**20  # bytes per message, each way: NapCat member lists reach several MiB


class WsRelay:
    """A recording WebSocket relay for one mode: ``ws-server`` (reverse) or ``ws-client`` (forward).

    Args:
        transcript: where every message goes (shared with other relays if you like).
        mode: ``"ws-server"``: the implementation dials us and we dial the
            bot's reverse-WS server at ``target``; ``"ws-client"``: the bot dials
            us and we dial the implementation's forward-WS server at ``target``.
        host, port: where to listen (port 0 picks a free one).
        target: the ``ws://`` (or ``wss://``) URL of the other side.
        connect_timeout: seconds for dialling ``target``.
        max_size: the largest message relayed, in bytes (1009 beyond it).
        send_timeout: seconds a write may stay stuck before its pair is cut.
        close_timeout: seconds a peer has to answer a Close.
        max_connections: pairs relayed at once; one more is answered 503.
        ssl_context: listen with TLS (``wss://``).
        client_ssl_context: how to verify a ``wss://`` target (default: the system's CAs).

    Raises:
        ConfigError: an unknown mode or a target that is not a WebSocket URL.
    """

    def __init__(
        self,
        transcript: Transcript,
        mode: str,
        host: str,
        port: int,
        target: str,
        *,
        connect_timeout: float = 10.0,
        max_size: int = MAX_SIZE,
        send_timeout: float = 10.0,
        close_timeout: float = 10.0,
        max_connections: int | None = 128,
        ssl_context: ssl.SSLContext | None = None,
        client_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if mode not in ("ws-server", "ws-client"):
            raise ConfigError(f"mode {mode!r} is not a WebSocket mode; use ws-server or ws-client")
        parts = urlsplit(target)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ConfigError(f"--to {redact(target)!r} for {mode} must be a ws:// or wss:// URL")
        self.transcript = transcript
        self.mode = mode
        self.target = target
        self.connect_timeout = connect_timeout
        self.max_size = max_size
        self.send_timeout = send_timeout
        self.close_timeout = close_timeout
        self.ssl_context = ssl_context
        self.client_ssl_context = client_ssl_context
        # Which way a message travels: from the side that dialled us, or from the one we dialled.
        self.inward = ONEBOT_TO_BOT if mode == "ws-server" else BOT_TO_ONEBOT
        self.outward = BOT_TO_ONEBOT if mode == "ws-server" else ONEBOT_TO_BOT
        self.listener = WebSocketServer(
            self, host, port, name=f"record-{mode}", logger=log,
            max_size=max_size, send_timeout=send_timeout, close_timeout=close_timeout,
            max_connections=max_connections, ssl_context=ssl_context,
        )  # fmt: skip
        self.pairs: set[_Pair] = set()
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.listener.port

    @property
    def url(self) -> str:
        """Where to point the dialling side: ``ws://host:port/`` (``wss://`` with TLS)."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{url_host(self.listener.server.host)}:{self.port}/"

    def start(self) -> None:
        """Listen and relay on daemon threads; returns once the port listens."""
        self.listener.start()

    def serve_forever(self) -> None:
        self.listener.serve_forever()

    def upstream_url(self, request: Request) -> str:
        """The dialled URL: ``target``'s origin, its path then the dialler's, and both queries.

        ``--to ws://bot:8080/onebot`` and a dialler asking for ``/ws?x=1`` give
        ``ws://bot:8080/onebot/ws?x=1`` (a query in ``--to`` comes first).
        """
        parts = urlsplit(self.target)
        path, _, query = request.target.partition("?")
        if "://" in path:  # absolute-form: keep only its path
            path = urlsplit(path).path or "/"
        query = "&".join(q for q in (parts.query, query) if q)
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + path, query=query))

    # -- the listener's policy ---------------------------------------------------------

    def accept(self, request: Request, peer: str) -> "_Pair":
        """Dial the other side with the dialler's credentials, or refuse with its answer.

        Raises:
            HandshakeError: the other side refused (its status), or did not answer (502).
        """
        conn_id = self.transcript.next_conn()
        pairs = [(name, value) for name, value in request.headers.items()]
        self.transcript.write(
            self.mode, conn_id, self.inward, "open",
            target=redact(request.target), headers=redact_headers(pairs), peer=peer,
        )  # fmt: skip
        url = self.upstream_url(request)
        passed = [f"{name}: {value}" for name, value in pairs if name not in HOP_HEADERS]
        try:
            sock = dial(
                url, access_token=None, token_in_query=False, headers=passed,
                connect_timeout=self.connect_timeout, ssl_context=self.client_ssl_context,
            )  # fmt: skip
        except AuthError as exc:
            status = exc.status or 403
            self._failed(conn_id, f"{redact(url)} refused the credentials passed on with {status}")
            raise HandshakeError("the other side refused the credentials", status) from None
        except NetworkError as exc:
            self._failed(conn_id, str(exc))
            cause = exc.__cause__
            if isinstance(cause, websocket.WebSocketBadStatusException):
                raise HandshakeError(f"the other side answered {cause.status_code}",
                                     cause.status_code) from None  # fmt: skip
            raise HandshakeError(f"cannot reach {redact(url)}: {exc}", 502) from None
        upstream = Connection(
            sock,
            WsProtocol(client=True, max_size=self.max_size),
            on_message=lambda opcode, payload: None,  # replaced by the pair
            label=f"record {self.mode} #{conn_id} upstream",
            send_timeout=self.send_timeout,
            close_timeout=self.close_timeout,
        )
        return _Pair(self, conn_id, upstream)

    def _failed(self, conn_id: int, reason: str) -> None:
        log.warning("%s #%d: %s", self.mode, conn_id, redact(reason))
        self.transcript.write(self.mode, conn_id, self.outward, "error", reason=redact(reason))

    def joined(self, pair: "_Pair") -> None:
        with self._lock:
            self.pairs.add(pair)
        self.listener.server.watch(pair.upstream)  # the reaper bounds its writes too

    def left(self, pair: "_Pair") -> None:
        with self._lock:
            self.pairs.discard(pair)
        self.listener.server.unwatch(pair.upstream)

    def close(self, timeout: float = 5.0) -> None:
        """Close every pair (1001 to both sides) and stop every thread within ``timeout``."""
        with self._lock:
            pairs = list(self.pairs)
        for pair in pairs:
            pair.upstream.close(1001, "recorder shutting down")
        self.listener.close(timeout)
        for pair in pairs:
            pair.join(timeout)


class _Pair:
    """One relayed connection: the accepted side (``downstream``) and the dialled one.

    The session the listener keeps for an accepted handshake: its messages go
    up, the upstream's come down, each noted in the transcript on the way.
    """

    def __init__(self, relay: WsRelay, conn_id: int, upstream: Connection) -> None:
        self.relay = relay
        self.conn_id = conn_id
        self.upstream = upstream
        upstream.on_message = self.from_upstream
        upstream.on_close = self.upstream_closed
        self.downstream: Connection | None = None
        self._thread: threading.Thread | None = None

    def opened(self, conn: Connection) -> None:
        """The 101 is about to leave: start reading the upstream (what it sent waits there)."""
        self.downstream = conn
        self.relay.joined(self)
        name = f"record-{self.relay.mode}-{self.conn_id}-up"
        self._thread = threading.Thread(target=self.upstream.run, name=name, daemon=True)
        self._thread.start()

    def message(self, opcode: int, payload: bytes) -> None:
        """A message from the side that dialled us (the listener's receive thread)."""
        self._relay(self.relay.inward, opcode, payload, self.upstream)

    def from_upstream(self, opcode: int, payload: bytes) -> None:
        if self.downstream is not None:
            self._relay(self.relay.outward, opcode, payload, self.downstream)

    def _relay(self, direction: str, opcode: int, payload: bytes, to: Connection) -> None:
        relay = self.relay
        fields = payload_fields(payload, binary=opcode == BINARY)
        relay.transcript.write(relay.mode, self.conn_id, direction, "message", **fields)
        try:
            to.send(opcode, payload)
        except NotConnected as exc:  # the other side is going; its close ends this side too
            log.debug("%s #%d: %s", relay.mode, self.conn_id, exc)

    def closed(self) -> None:
        """The side that dialled us is gone: close the upstream the same way."""
        if self.downstream is not None:
            self._pass_close(self.downstream, self.relay.inward, self.upstream)
        self.relay.left(self)

    def upstream_closed(self) -> None:
        if self.downstream is not None:
            self._pass_close(self.upstream, self.relay.outward, self.downstream)
        else:  # the handshake downstream never completed
            self.upstream.abort()

    def _pass_close(self, gone: Connection, direction: str, other: Connection) -> None:
        """Pass the Close ``gone`` received on to ``other``: its code and reason, or none."""
        relay = self.relay
        if gone.closing_since:  # we closed it, passing the other's Close on: its answer is no news
            return
        received = gone.protocol.close_received
        error = gone.protocol.error
        if error is not None:  # it broke the protocol (and got our Close): tell the other side
            reason = f"the other side broke the protocol ({error.close_code})"
            relay.transcript.write(
                relay.mode, self.conn_id, direction, "close", code=error.close_code,
                reason=str(error),
            )  # fmt: skip
            other.close(1001, reason)
            return
        if received is None:  # no Close came: end the other side without one, like this one
            relay.transcript.write(relay.mode, self.conn_id, direction, "close", code=ABNORMAL)
            other.abort()
            return
        code, reason = received
        relay.transcript.write(
            relay.mode, self.conn_id, direction, "close", code=code, reason=reason
        )
        other.close(None if code == NO_STATUS else code, reason)

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
