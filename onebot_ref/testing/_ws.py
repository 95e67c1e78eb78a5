"""FakeOneBot's WebSocket sides: the reverse-WS client it dials and the forward-WS server.

Reverse WebSocket (spec ``communication/ws-reverse.md``): the implementation
dials the bot with ``X-Self-ID``, ``X-Client-Role`` (``Universal``, or
``API`` + ``Event`` on two sockets) and ``Authorization``, and redials every
``reconnect_interval`` forever, like every real implementation. Built on
``websocket-client`` so that it is a different WebSocket implementation from
the bot's ``ws_server`` it talks to.

Forward WebSocket (spec ``communication/ws.md``): ``/`` is universal, ``/api``
carries actions only, ``/event`` events only. The same generic WebSocket
server as the bot's ``WsServer`` (our framer and protocol), with the
implementation's policy.

Both answer actions through :meth:`FakeOneBot.answer` and push events and
heartbeats to every event-capable connection.
"""

import logging
import socket
import threading
from typing import Any

import websocket

from .. import codec
from .._http_head import split_target
from .._tls import check_address, url_host
from .._ws_connection import Connection
from .._ws_listener import WebSocketServer
from ..errors import DecodeError, NotConnected
from ..framer import HandshakeError, Request
from ._host import Host

__all__ = ["FakeWsServer", "ForwardConn", "ReverseClient"]

log = logging.getLogger(__name__)

# Frames with a reserved opcode (0xF), RFC 6455 section 5.2: what
# faults.malformed sends. A client's frames are masked, a server's are not.
MALFORMED_CLIENT_FRAME = b"\x8f\x80\x00\x00\x00\x00"
MALFORMED_SERVER_FRAME = b"\x8f\x00"
RECV_TICK = 0.2  # seconds: how often a reverse connection's thread checks for close()


def answer_frame(
    fake: Host, conn: "ReverseConn | ForwardConn", data: str | bytes, malformed: bytes
) -> None:
    """Answer one frame the bot sent on ``conn``, applying the connection-level faults.

    Like go-cqhttp, an Event-role connection ignores what the bot sends.
    """
    if conn.role == "Event":
        return
    if fake.faults.take("close_mid_call"):
        conn.abort()
        return
    if fake.faults.take("malformed"):
        conn.send_raw(malformed)
        return
    try:
        request = codec.loads(data)
    except DecodeError:
        request = None  # answered with retcode 1400, as NapCat and CQHTTP do
    response = fake.answer(request, conn.mode)
    if response is not None:
        conn.send_json(response)


class ReverseConn:
    """One live reverse-WS connection (websocket-client underneath)."""

    def __init__(self, ws: websocket.WebSocket, role: str) -> None:
        self.ws = ws
        self.role = role
        self.mode = "ws-server"  # the bot's module on the other end
        self.events = role in ("Universal", "Event")
        self._lock = threading.Lock()

    def send_json(self, obj: Any) -> None:
        try:
            with self._lock:
                self.ws.send(codec.dumps(obj).decode("utf-8"))
        except (OSError, websocket.WebSocketException) as exc:
            log.debug("reverse send failed: %s", exc)

    def send_raw(self, data: bytes) -> None:
        with self._lock:
            if self.ws.sock is not None:
                self.ws.sock.sendall(data)

    def abort(self) -> None:
        """Hang up at the TCP level, with no close frame."""
        try:
            if self.ws.sock is not None:
                self.ws.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class ReverseClient:
    """The connections FakeOneBot keeps open to one bot's reverse-WS server."""

    def __init__(
        self,
        fake: Host,
        url: str | None,
        *,
        api_url: str | None,
        event_url: str | None,
        reconnect_interval: float,
        scheme: str | None,
    ) -> None:
        if url is not None:
            self.targets = [(url, "Universal")]
        elif api_url is not None and event_url is not None:
            self.targets = [(api_url, "API"), (event_url, "Event")]
        else:
            raise ValueError("give url, or both api_url and event_url")
        self.fake = fake
        self.reconnect_interval = reconnect_interval
        self.scheme = scheme or ("Token" if fake.flavor == "go-cqhttp" else "Bearer")
        self.conns: list[ReverseConn] = []
        self.attempts = 0  # dial attempts, successful or not
        self.connected = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def headers(self, role: str) -> list[str]:
        napcat = self.fake.flavor == "napcat"
        headers = [f"X-Self-ID: {self.fake.self_id}"]
        headers.append(f"{'x-client-role' if napcat else 'X-Client-Role'}: {role}")
        token = self.fake.access_token or ""
        if token or napcat:  # NapCat sends "Bearer " even with no token
            headers.append(f"Authorization: {self.scheme} {token}")
        headers.append(f"User-Agent: {'OneBot/11' if napcat else 'CQHttp/4.15.0'}")
        return headers

    def start(self) -> None:
        for url, role in self.targets:
            thread = threading.Thread(
                target=self._dial_loop, args=(url, role), name=f"fake-reverse-{role}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def wait_connected(self, n: int | None = None, timeout: float = 5.0) -> bool:
        """Wait until ``n`` connections (default: all roles) are up."""
        want = len(self.targets) if n is None else n
        with self.connected:
            return self.connected.wait_for(lambda: len(self.conns) >= want, timeout)

    def event_connections(self) -> list[ReverseConn]:
        return [c for c in list(self.conns) if c.events]

    def _dial_loop(self, url: str, role: str) -> None:
        while not self._stop.is_set():
            self.attempts += 1
            try:
                context = self.fake.client_ssl_context
                ws = websocket.create_connection(
                    url,
                    header=self.headers(role),
                    timeout=5,
                    sslopt={"context": context} if context is not None else {},
                )
            except (OSError, websocket.WebSocketException) as exc:
                log.debug("reverse dial %s failed: %s", codec.redact(url), codec.redact(str(exc)))
            else:
                self._serve(ReverseConn(ws, role))
            self._stop.wait(self.reconnect_interval)

    def _serve(self, conn: ReverseConn) -> None:
        fake = self.fake
        with self.connected:
            self.conns.append(conn)
            self.connected.notify_all()
        try:
            if conn.events and fake.faults.lifecycle:
                conn.send_json(fake.lifecycle_event())
            conn.ws.settimeout(RECV_TICK)  # so that close() is noticed promptly
            while not self._stop.is_set():
                try:
                    text = conn.ws.recv()
                except websocket.WebSocketTimeoutException:
                    continue
                if not text:
                    break  # the bot closed the connection
                self._handle(conn, text)
        except (OSError, websocket.WebSocketException) as exc:
            log.debug("reverse connection %s ended: %s", conn.role, exc)
        finally:
            with self.connected:
                if conn in self.conns:
                    self.conns.remove(conn)
            if self._stop.is_set():
                conn.ws.close(timeout=0.5)  # we are leaving: a proper close handshake
            else:  # the bot closed (websocket-client has replied) or the link broke
                conn.ws.shutdown()

    def _handle(self, conn: ReverseConn, text: str | bytes) -> None:
        answer_frame(self.fake, conn, text, MALFORMED_CLIENT_FRAME)

    def drop(self) -> None:
        """Hang up every connection now (they redial after ``reconnect_interval``)."""
        with self.connected:
            conns, self.conns = self.conns, []  # gone now, not when their threads notice
        for conn in conns:
            conn.abort()

    def close(self) -> None:
        """Stop redialling; let each connection finish the action it is answering and
        close properly, then cut whatever is left."""
        self._stop.set()
        for thread in self._threads:
            thread.join(2.0)  # normally within RECV_TICK; longer only on a starved machine
        self.drop()
        for thread in self._threads:
            thread.join(3)


class ForwardConn:
    """One connection to FakeOneBot's forward-WS server, as the implementation sees it.

    The session the generic server (:mod:`onebot_ref._ws_listener`, the same
    one under the bot's ``WsServer``) keeps for an accepted handshake; what
    differs from the bot side is what a message means (an action to answer)
    and the handshake (the path picks the role; auth per flavour).
    """

    mode = "ws-client"  # the bot's module on the other end

    def __init__(self, server: "FakeWsServer", role: str, refused: bool) -> None:
        self.server = server
        self.role = role
        self.refused = refused  # NapCat flavour: upgraded, then refused in-band
        self.conn: Connection | None = None

    @property
    def events(self) -> bool:
        return self.role != "API"

    def opened(self, conn: Connection) -> None:
        self.conn = conn
        fake = self.server.fake
        if self.refused:
            failure = fake.world.failed(1403, "token验证失败")
            failure["echo"] = None
            self.send_json(failure)  # written at once, behind the 101: the lock is free
            self.abort()  # the ws library closes without a close code: the client sees 1005
            return
        self.server.joined(self)
        if self.events and fake.faults.lifecycle:
            self.send_json(fake.lifecycle_event())

    def message(self, opcode: int, payload: bytes) -> None:
        answer_frame(self.server.fake, self, payload, MALFORMED_SERVER_FRAME)

    def closed(self) -> None:
        self.server.left(self)

    @property
    def open(self) -> bool:
        return self.conn is not None and self.conn.open

    def send_json(self, obj: Any) -> None:
        if self.conn is None:
            return
        try:
            self.conn.send_text(codec.dumps(obj))
        except NotConnected as exc:
            log.debug("forward send failed: %s", exc)

    def send_raw(self, data: bytes) -> None:
        if self.conn is None:
            return
        try:
            self.conn.send_raw(data)
        except NotConnected as exc:
            log.debug("forward send failed: %s", exc)

    def abort(self) -> None:
        if self.conn is not None:
            self.conn.abort()


class FakeWsServer:
    """FakeOneBot's forward-WS server: ``/`` universal, ``/api``, ``/event``.

    The generic WebSocket server with the implementation's policy: which
    role a path means, and how this flavour checks the token.
    """

    def __init__(self, fake: Host, address: tuple[str, int]) -> None:
        check_address(address[0], address[1], type(self).__name__)
        self.fake = fake
        self.host = address[0]
        self.listener = WebSocketServer(
            self, address[0], address[1], name="fake-ws", logger=log, ssl_context=fake.ssl_context
        )
        self._lock = threading.Lock()
        self._conns: set[ForwardConn] = set()

    @property
    def port(self) -> int:
        return self.listener.port

    @property
    def url(self) -> str:
        """The universal URL (``wss://`` with TLS)."""
        scheme = "wss" if self.fake.ssl_context is not None else "ws"
        return f"{scheme}://{url_host(self.host)}:{self.port}/"

    def accept(self, request: Request, peer: str) -> ForwardConn:
        """Role from the path (spec ``communication/ws.md``) and the flavour's auth."""
        fake = self.fake
        path, query = split_target(request.target)
        path = path.rstrip("/") or "/"
        if path == "/api":
            role = "API"
        elif path == "/event":
            role = "Event"
        elif path == "/" or fake.flavor != "spec":  # go-cqhttp and NapCat: anything else is "/"
            role = "Universal"
        else:
            raise HandshakeError(f"no endpoint at {path!r}; use /, /api or /event", 404)
        status = fake.check_token(request.headers.get("authorization"), query)
        if status and fake.flavor != "napcat":
            raise HandshakeError("token missing" if status == 401 else "token wrong", status)
        return ForwardConn(self, role, refused=bool(status))  # NapCat: refused in-band

    def start(self) -> str:
        """Listen and serve in a thread; return the universal URL."""
        self.listener.start()
        return self.url

    def joined(self, conn: ForwardConn) -> None:
        with self._lock:
            self._conns.add(conn)

    def left(self, conn: ForwardConn) -> None:
        with self._lock:
            self._conns.discard(conn)

    def event_connections(self) -> list[ForwardConn]:
        with self._lock:
            conns = list(self._conns)
        return [c for c in conns if c.open and c.events]

    def close(self, timeout: float = 5.0) -> None:
        self.listener.close(timeout, 1001, "server shutting down")
