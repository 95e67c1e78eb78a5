"""FakeOneBot's WebSocket sides: the reverse-WS client it dials and the forward-WS server.

Reverse WebSocket (spec ``communication/ws-reverse.md``): the implementation
dials the bot with ``X-Self-ID``, ``X-Client-Role`` (``Universal``, or
``API`` + ``Event`` on two sockets) and ``Authorization``, and redials every
``reconnect_interval`` forever, like every real implementation. Built on
``websocket-client`` so that it is a different WebSocket implementation from
the bot's ``ws_server`` it talks to.

Forward WebSocket (spec ``communication/ws.md``): ``/`` is universal, ``/api``
carries actions only, ``/event`` events only. Built on our own :mod:`framer`.

Both answer actions through :meth:`FakeOneBot.answer` and push events and
heartbeats to every event-capable connection.
"""

import logging
import socket
import threading
from typing import TYPE_CHECKING, Any

import websocket

from . import codec
from .errors import DecodeError, NotConnected
from .framer import HandshakeError, Request
from .ws_server import Connection, WsServer

if TYPE_CHECKING:
    from .fake_onebot import FakeOneBot

__all__ = ["FakeWsServer", "ForwardConn", "ReverseClient"]

log = logging.getLogger(__name__)

# Frames with a reserved opcode (0xF), RFC 6455 section 5.2: what
# faults.malformed sends. A client's frames are masked, a server's are not.
MALFORMED_CLIENT_FRAME = b"\x8f\x80\x00\x00\x00\x00"
MALFORMED_SERVER_FRAME = b"\x8f\x00"
RECV_TICK = 0.2  # seconds: how often a reverse connection's thread checks for close()


def answer_frame(
    fake: "FakeOneBot", conn: "ReverseConn | ForwardConn", data: str | bytes, malformed: bytes
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
        fake: "FakeOneBot",
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
                conn.ws.shutdown()  # type: ignore[no-untyped-call]

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


class ForwardConn(Connection):
    """One connection to FakeOneBot's forward-WS server: ws_server's Connection, other side.

    The same framer and receive loop as the bot's reverse-WS server; what
    differs is what a message means (an action to answer) and the handshake
    (path picks the role; auth per flavour).
    """

    server: "FakeWsServer"
    mode = "ws-client"  # the bot's module on the other end
    refused = False  # NapCat flavour: upgraded, then refused in-band

    @property
    def events(self) -> bool:
        return self.event_capable

    def check_onebot(self, request: Request) -> None:
        """Role from the path (spec ``communication/ws.md``) and the flavour's auth."""
        fake = self.server.fake
        path = request.path.rstrip("/") or "/"
        if path == "/api":
            self.role = "API"
        elif path == "/event":
            self.role = "Event"
        elif path == "/" or fake.flavor != "spec":  # go-cqhttp and NapCat: anything else is "/"
            self.role = "Universal"
        else:
            raise HandshakeError(f"no endpoint at {request.path!r}; use /, /api or /event", 404)
        query = request.target.partition("?")[2]
        status = fake.check_token(request.headers.get("authorization"), query)
        if status and fake.flavor == "napcat":
            self.refused = True  # NapCat upgrades first, then says so in a 1403 frame
        elif status:
            raise HandshakeError("token missing" if status == 401 else "token wrong", status)

    def handshake(self) -> bool:
        if not super().handshake():
            return False
        fake = self.server.fake
        if self.refused:
            failure = fake.world.failed(1403, "token验证失败")
            failure["echo"] = None
            self.send_json(failure)
            self.abort()  # the ws library closes without a close code: the client sees 1005
            return False
        if self.events and fake.faults.lifecycle:
            self.send_json(fake.lifecycle_event())
        return True

    def on_message(self, payload: bytes) -> None:
        answer_frame(self.server.fake, self, payload, MALFORMED_SERVER_FRAME)

    def send_json(self, obj: Any) -> None:
        try:
            self.send_text(codec.dumps(obj))
        except NotConnected as exc:
            log.debug("forward send failed: %s", exc)

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.abort()


class FakeWsServer(WsServer):
    """FakeOneBot's forward-WS server: ``/`` universal, ``/api``, ``/event``."""

    connection_class = ForwardConn

    def __init__(self, fake: "FakeOneBot", address: tuple[str, int]) -> None:
        # ForwardConn checks tokens the flavour's way; the token passed here only
        # tells WsServer not to warn about a wildcard bind with no token.
        super().__init__(
            address[0], address[1], access_token=fake.access_token, ssl_context=fake.ssl_context
        )
        self.fake = fake

    def start(self) -> str:  # type: ignore[override]
        """Listen and serve in a thread; return the universal URL (``wss://`` with TLS)."""
        super().start()
        return self.url

    def event_connections(self) -> list[ForwardConn]:
        with self._lock:
            conns = list(self._connections)
        return [
            c for c in conns if isinstance(c, ForwardConn) and c.open and not c.dead and c.events
        ]
