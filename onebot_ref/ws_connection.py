"""One reverse-WebSocket connection, as the server sees it: the handshake, then frames.

:class:`Connection` is the per-socket half of :mod:`onebot_ref.ws_server`: it runs on its
own daemon thread, does the TLS and WebSocket handshakes (RFC 6455 section 4) and the
OneBot checks (spec ``communication/ws-reverse.md``: token, ``X-Self-ID``,
``X-Client-Role``), then reads frames with our framer until the connection closes. Events
go to the server's registry; responses to the calls waiting on this connection. Sends are
serialized by a lock and bounded by the server's ``send_timeout``.

Once open, the socket is left blocking, with no timeout: a Python socket timeout puts a
``poll()`` before every ``recv`` and ``send``, a quarter of this loop's system calls.
Nothing is unbounded for it. :meth:`Connection.send` notes when a write started, and the
server's housekeeping shuts down a connection whose write has been stuck past
``send_timeout``; :meth:`Connection.ping` sends only when the socket has room; and
``close()`` shuts the socket down, which wakes the blocked ``recv``.

FakeOneBot's forward-WS server and the doctor subclass it: the same framer and receive
loop serve the implementation's side, with ``check_onebot`` and ``on_message`` replaced.
"""

import logging
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from ._auth import check_token
from .calls import PendingCalls
from .codec import (
    heartbeat_interval,
    is_event,
    loads,
    onebot12_impl,
)
from .errors import DecodeError, NotConnected, ProtocolError
from .framer import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    Frame,
    HandshakeError,
    MessageReader,
    Request,
    check_request,
    encode_close,
    encode_frame,
    error_response,
    handshake_response,
    parse_close,
    parse_handshake,
)
from .http_head import split_target
from .tls import handshake, peer_name, sniff

if TYPE_CHECKING:
    from .ws_server import WsServer

__all__ = ["ROLES", "Connection", "Throttle", "read_message"]

log = logging.getLogger(__name__)

RECV_SIZE = 256 * 1024
OUTBOX_LIMIT = 1 << 20  # bytes queued behind a write under way before senders must wait
PING_FRAME = encode_frame(Frame(PING, b""), mask=False)
ROLES = {"universal": "Universal", "api": "API", "event": "Event"}


def read_message(sock: socket.socket, reader: MessageReader, scratch: memoryview) -> Frame | None:
    """Block until ``reader`` has a whole message or control frame; None at EOF.

    Reads into ``scratch`` (at most its size at a time): ``recv(n)`` would
    allocate ``n`` bytes on every call, and above 128 KiB that is an ``mmap``,
    ``mremap`` and ``munmap`` per read. The socket's own timeout bounds each
    read (``TimeoutError`` propagates). Frame limits are the reader's.
    """
    while (message := reader.next_message()) is None:
        n = sock.recv_into(scratch)
        if not n:
            return None
        reader.feed(scratch[:n])
    return message


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


def _writable(sock: socket.socket) -> bool:
    """True if a small write will not block (TCP says so once a third of its buffer is free)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        return bool(poller.poll(0))
    return bool(select.select([], [sock], [], 0)[1])  # Windows


class Throttle:
    """Say yes to the first event per key, then at most once per ``period`` seconds."""

    def __init__(self, period: float = 60.0) -> None:
        self.period = period
        self._last: dict[object, tuple[float, int]] = {}

    def __call__(self, key: object) -> int | None:
        """The number of events suppressed since the last yes, or None to stay quiet."""
        now = time.monotonic()
        last, skipped = self._last.get(key, (-self.period, 0))
        if now - last < self.period:
            self._last[key] = (last, skipped + 1)
            return None
        self._last[key] = (now, 0)
        return skipped


class Connection:
    """One accepted socket: the handshake, then frames until it closes, on its own thread."""

    def __init__(self, server: "WsServer", sock: socket.socket, address: Any) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer_name(address)
        self.deadline = time.monotonic() + server.handshake_timeout  # TLS and upgrade, together
        self.self_id: str | None = None
        self.role = "Universal"
        self.calls = PendingCalls()
        self.reader = MessageReader(mask=True, max_message=server.max_message)
        self.open = False  # the upgrade was answered with 101
        self.dead = False  # no more sends: closed, closing or failed
        self.last_seen = time.monotonic()
        self.last_ping = self.last_seen
        self.heartbeat: float | None = None  # seconds, from the latest heartbeat's interval
        self._send_lock = threading.Lock()
        self.sending_since = 0.0  # monotonic start of the send under way; 0.0 when none is
        self.closing_since = 0.0  # when our Close was queued; 0.0 until then
        self._outbox: list[bytes] = []  # frames waiting for the thread that holds _send_lock
        self._queued = 0  # bytes in _outbox
        self._outbox_lock = threading.Lock()  # never held across I/O
        name = f"onebot-ws-{self.peer}"
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)

    def __repr__(self) -> str:
        return f"<connection {self.peer} self_id={self.self_id} role={self.role}>"

    @property
    def api_capable(self) -> bool:
        return self.role != "Event"

    @property
    def event_capable(self) -> bool:
        return self.role != "API"

    def run(self) -> None:
        """The thread body: handshake, receive loop, and always the cleanup.

        Nothing from the wire ends this thread with a traceback on stderr: the
        socket's end is an OSError, a broken protocol a Close with its code
        (:meth:`receive`), and anything else, a bug of ours, is logged once and
        closes the connection with 1011.
        """
        try:
            if self.secure() and self.handshake():
                self.receive()
        except OSError as exc:  # reset, timeout or shut down by close()
            log.debug("%r: %s", self, exc)
        except Exception:
            log.exception("%r: unexpected error; closing the connection with 1011", self)
            if self.open:
                self.close(1011, "internal error")  # RFC 6455 section 7.4.1
        finally:
            self.dead = True
            self.server._detach(self)
            self._finish()
            self.calls.fail_all(NotConnected(f"the connection to bot {self.self_id} dropped"))
            if self.open:
                log.info("%r disconnected", self)

    def secure(self) -> bool:
        """Check that the peer speaks our protocol (TLS or not) and run the TLS handshake.

        Here, on the connection's own thread, with a deadline: a client that
        stalls mid-handshake never blocks the accept thread.
        """
        context = self.server.ssl_context
        timeout = max(0.0, self.deadline - time.monotonic())
        if not sniff(self.sock, tls=context is not None, timeout=timeout, peer=self.peer):
            return False
        if context is None:
            return True
        # Keep the TLS socket where close() finds it, so that it can wake the handshake.
        self.sock = context.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
        if self.dead:  # close() came between accept and here
            return False
        timeout = max(0.0, self.deadline - time.monotonic())
        return handshake(self.sock, timeout=timeout, peer=self.peer)

    def handshake(self) -> bool:
        """Read and check the upgrade request (RFC 6455 section 4.2); answer 101 or refuse."""
        deadline = self.deadline
        data = bytearray()
        try:
            while (parsed := parse_handshake(data, max_size=self.server.max_header)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("handshake took too long")
                self.sock.settimeout(remaining)
                chunk = self.sock.recv(4096)
                if not chunk:
                    return False
                data += chunk
            request, consumed = parsed
            key = check_request(request)
            self.check_onebot(request)
        except HandshakeError as exc:
            self.refuse(exc.status, exc.reply, str(exc))
            return False
        self.sock.settimeout(None)  # bounded from now on by housekeeping (module docstring)
        self.reader.feed(bytes(data[consumed:]))
        # Attach before the 101 leaves: once the implementation sees its upgrade
        # succeed, a call may be routed here at once. The send lock keeps any such
        # call's frame behind the 101.
        with self._send_lock:
            self.open = True
            replaced = self.server._attach(self)
            self.sock.sendall(handshake_response(key))
        self._flush()
        log.info("%r connected", self)
        self.server._retire(replaced, self)
        return True

    def check_onebot(self, request: Request) -> None:
        """Path, token, ``X-Self-ID`` and ``X-Client-Role`` (spec ``ws-reverse.md``)."""
        server, headers = self.server, request.headers
        if server.path is not None and request.path.rstrip("/") != server.path.rstrip("/"):
            raise HandshakeError(f"no endpoint at {request.path!r}; use {server.path!r}", 404)
        query = split_target(request.target)[1]
        refusal = check_token(server.access_token, headers.get("authorization"), query)
        if refusal is not None:
            # The peer learns nothing about the real token, not even its length.
            raise HandshakeError(refusal.reply, refusal.status, detail=f" {refusal.detail}")
        check_version(request)
        self.self_id = headers.get("x-self-id", "").strip() or None
        role = headers.get("x-client-role", "universal").strip()
        self.role = ROLES.get(role.lower(), "Universal")
        if role.lower() not in ROLES:
            log.warning("%s sent X-Client-Role %r; treating it as Universal", self.peer, role)
        if self.self_id is None:
            log.warning("%s sent no X-Self-ID; learning it from the first event", self.peer)

    def refuse(self, status: int, reason: str, logged: str | None = None) -> None:
        """Answer a refused handshake with ``status`` and ``reason``; log ``logged`` (or it).

        The log is rate-limited per peer address and status: implementations
        retry every few seconds, for ever.
        """
        suppressed = self.server._throttle((self.peer.rpartition(":")[0], status))
        if suppressed is not None:
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            log.warning("refused %s with %d: %s%s", self.peer, status, logged or reason, more)
        self.sock.settimeout(self.server.send_timeout)
        self.sock.sendall(error_response(status, reason))

    def receive(self) -> None:
        """The receive loop: read, feed the framer, handle each message."""
        scratch = memoryview(bytearray(RECV_SIZE))
        while True:
            # 1) Read from the network. A quiet peer leaves us blocked here until
            #    close() or housekeeping shuts the socket down (module docstring).
            try:
                message = read_message(self.sock, self.reader, scratch)
                if message is None:
                    return
                self.last_seen = time.monotonic()
                # 2) Handle it; False means the close handshake is done.
                if not self.handle(message):
                    return
            except TimeoutError:
                continue
            except ProtocolError as exc:  # "_Fail the WebSocket Connection_", section 7.1.7
                log.warning("%r broke the protocol: %s", self, exc)
                self.close(exc.close_code, str(exc))
                return

    def handle(self, message: Frame) -> bool:
        """Act on one control frame or whole message; False to stop reading."""
        if message.opcode == PING:
            if not self.closing_since:  # after our Close, no more frames of ours (section 5.5.1)
                self.send(PONG, message.payload)  # RFC 6455 section 5.5.2
        elif message.opcode == CLOSE:
            code, _ = parse_close(message.payload)  # raises ProtocolError on a bad payload
            # Section 5.5.1: reply with a Close, "typically echoing the status code it received".
            self.close(None if code == 1005 else code)
            return False
        elif message.opcode in (TEXT, BINARY):
            # Still handled after we sent our Close (section 1.4 only has the receiver of a
            # Close discard data): an event the implementation sent before it saw our Close
            # (a server shutting down, a connection being replaced) is not lost.
            if not self.server.echo:
                self.on_message(message.payload)
            elif not self.closing_since:
                self.send(message.opcode, message.payload)
        return True

    def on_message(self, payload: bytes) -> None:
        """Route one JSON message: events to the registry, responses to waiting calls."""
        try:
            obj = loads(payload)
        except DecodeError as exc:
            if self.server._throttle(("json", self.self_id)) is not None:
                log.warning("%r sent a frame that is not JSON: %s", self, exc)
            return
        if not is_event(obj):
            if (impl := onebot12_impl(obj)) is not None:
                self.wrong_version(impl)
            elif isinstance(obj, dict):
                self.calls.resolve(obj)
            return
        if obj.get("meta_event_type") == "heartbeat":
            self.heartbeat = heartbeat_interval(obj)  # validated: it drives housekeeping's timer
        if self.self_id is None and obj.get("self_id") is not None:
            self.server._learn(self, str(obj["self_id"]))
        # Never run handlers here: a handler's call() needs this thread to read its response.
        self.server.registry.submit(obj, size=len(payload))

    def wrong_version(self, impl: str) -> None:
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

    def send(self, opcode: int, payload: bytes) -> None:
        """Send one frame, or leave it to the thread that is writing now.

        Sends never wait for each other: the frame joins the outbox, and
        whichever thread holds the send lock writes everything queued, several
        frames per ``sendall``. Handlers that wait on a write (and on the GIL it
        gives up) in a queue were the reverse-WS echo bot's largest cost. Only
        when more than ``OUTBOX_LIMIT`` bytes are queued does a sender wait its
        turn, so a peer that stops reading slows its senders down.

        A frame left to another thread is not reported on if that write fails:
        the connection is then shut down, and every call waiting on it fails
        with :class:`NotConnected`.

        Raises:
            NotConnected: the connection is closed or closing, our own write
                failed, or the queue ahead of us was stuck for ``send_timeout``
                (the connection is then shut down).
        """
        data = encode_frame(Frame(opcode, payload), mask=False)
        with self._outbox_lock:
            if self.dead or self.closing_since:
                raise NotConnected(f"the connection to bot {self.self_id} is closed or closing")
            if opcode == CLOSE:
                self.closing_since = time.monotonic()
            self._outbox.append(data)
            self._queued += len(data)
            full = self._queued > OUTBOX_LIMIT
        if full:  # the peer is not keeping up: wait our turn (bounded), then write
            if not self._send_lock.acquire(timeout=self.server.send_timeout):
                self.abort()
                raise NotConnected(f"the connection to bot {self.self_id} is stuck; closed it")
        elif not self._send_lock.acquire(blocking=False):
            return  # the thread writing now will take our frame along
        self._write()

    def _flush(self) -> None:
        """Write frames left behind by senders that found the lock taken, if there are any."""
        if self._outbox and self._send_lock.acquire(blocking=False):
            self._write()

    def _write(self) -> None:
        """Write out the outbox; called holding the send lock, which it releases."""
        while True:
            try:
                while chunks := self._take():
                    self.sending_since = time.monotonic()
                    self.sock.sendall(b"".join(chunks))
            except OSError as exc:
                self.abort()
                raise NotConnected(f"sending to bot {self.self_id} failed: {exc}") from exc
            finally:
                self.sending_since = 0.0
                self._send_lock.release()
            # A frame queued after our last look, but before the release, found the
            # lock taken and was left to us: look again.
            if not self._outbox or not self._send_lock.acquire(blocking=False):
                return

    def _take(self) -> list[bytes]:
        with self._outbox_lock:
            chunks, self._outbox = self._outbox, []
            self._queued = 0
        return chunks

    def send_text(self, data: bytes) -> None:
        """Send one text message (what :class:`PendingCalls` sends calls with)."""
        self.send(TEXT, data)

    def ping(self) -> None:
        """Send a ping unless a send is under way or the socket has no room.

        The accept thread calls this, and must never block: a peer that reads
        nothing is what the pings are there to find.
        """
        if self.dead or self.closing_since or not _writable(self.sock):
            return
        if not self._send_lock.acquire(blocking=False):
            return  # a write is under way: the link is not idle
        try:
            self.sock.sendall(PING_FRAME)
        except OSError:
            self.abort()
        finally:
            self._send_lock.release()
        if self._outbox:
            # Frames queued in the moment we held the lock were left to us. Writing
            # them may block, which this thread must not: hand them to a new one.
            name = f"onebot-ws-flush-{self.peer}"
            threading.Thread(target=self._flush_quietly, name=name, daemon=True).start()

    def _flush_quietly(self) -> None:
        try:
            self._flush()
        except NotConnected:
            pass  # the connection is shut down; its waiting calls fail with it

    def close(self, code: int | None = 1000, reason: str = "") -> None:
        """Start the close handshake (RFC 6455 section 7.1.2); errors are not raised."""
        try:
            self.send(CLOSE, encode_close(code, reason))
        except NotConnected:
            pass

    def abort(self) -> None:
        """Shut the socket down, which also wakes a receive blocked in ``recv`` (Windows too)."""
        self.dead = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _finish(self) -> None:
        # Section 7.1.1: the server closes TCP first. Half-close, then read what
        # is left for a moment so that closing with unread data does not reset
        # the connection before the peer has read our Close frame.
        try:
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 1.0
            while (remaining := deadline - time.monotonic()) > 0:
                self.sock.settimeout(remaining)
                if not self.sock.recv(65536):
                    break
        except OSError:
            pass
        finally:
            self.sock.close()
