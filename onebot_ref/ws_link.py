"""One forward-WebSocket link for :mod:`onebot_ref.ws_client`: dialling, the socket, its close.

websocket-client does the handshake and framing; this module bounds it. Its
``WebSocket`` reads whatever length a frame header announces, joins fragments
by concatenation (quadratic time) however many come, and makes one
``recv()`` per part of a frame: :class:`LinkSocket` refuses a bad header (a
control frame over 125 bytes: 1002; a message over ``max_size``: 1009) before
the payload is read, assembles messages with our
:class:`~onebot_ref.framer.MessageAssembler` and reads ahead in 64 KiB blocks. :func:`dial`
turns every way a handshake can fail into one sentence that names the cause
(a 401/403 token mismatch, an HTTP API or web UI port answering 200/404, TLS
on one side only). :class:`Link` is one open socket and its receive thread,
and closes it in bounded time.
"""

import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import websocket

from .codec import mask_token, redact
from .errors import AuthError, NetworkError, ProtocolError
from .framer import (
    BINARY,
    CLOSE,
    MAX_CONTROL_PAYLOAD,
    OPCODES,
    PING,
    TEXT,
    Frame,
    MessageAssembler,
)
from .tls import explain, is_tls_refusal

__all__ = [
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_NORMAL",
    "CLOSE_TOO_BIG",
    "CLOSE_UNSUPPORTED",
    "MAX_SIZE",
    "Link",
    "LinkSocket",
    "dial",
    "transient",
]

MAX_SIZE = 32 * 2**20  # bytes per incoming message; NapCat member lists reach several MiB
# RFC 6455 section 7.4.1
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003  # "received a type of data it cannot accept"
CLOSE_TOO_BIG = 1009  # "a message that is too big for it to process"
CLOSE_INTERNAL_ERROR = 1011  # "an unexpected condition that prevented it from fulfilling"


class LinkSocket(websocket.WebSocket):
    """websocket-client's ``WebSocket`` with header checks, our assembler and read-ahead.

    websocket-client reads any length a frame header announces before it
    validates anything: :meth:`recv_frame` peeks at the header it has just
    parsed and refuses before the payload is read. :meth:`recv_data_frame`
    joins fragments with :class:`~onebot_ref.framer.MessageAssembler` (at most
    ``framer.MAX_FRAGMENTS`` of them, joined once) instead of websocket-client's
    unbounded, quadratic ``bytes +=``. And where websocket-client makes one ``recv()`` system call
    for each part of a frame (2 header bytes, the length, the payload), we read
    ahead in 64 KiB blocks.
    """

    _ahead = b""
    _ahead_pos = 0
    _close_sent = False

    max_size = MAX_SIZE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.assembler = MessageAssembler()

    def _recv(self, bufsize: int) -> bytes:
        if self._ahead_pos >= len(self._ahead):
            self._ahead = super()._recv(max(bufsize, 65536))  # type: ignore[no-untyped-call]
            self._ahead_pos = 0
        chunk = self._ahead[self._ahead_pos : self._ahead_pos + bufsize]
        self._ahead_pos += len(chunk)
        return chunk

    def send_close(self, status: int = CLOSE_NORMAL, reason: str | bytes = b"") -> None:
        # websocket-client answers the peer's Close even after we sent ours: one is enough.
        if not self._close_sent:
            self._close_sent = True
            super().send_close(status, reason)

    def recv_frame(self) -> websocket.ABNF:
        """One frame, its header checked before its payload is read.

        Raises:
            ProtocolError: 1002 for a reserved opcode, a masked frame or a control
                frame that is fragmented or over 125 bytes (RFC 6455 sections 5.1,
                5.2 and 5.5),
                1009 for a data frame that takes its message past ``max_size``.
        """
        buffer = self.frame_buffer  # resumable: a timeout keeps the partial header
        if buffer.needs_header():
            buffer.recv_header()
        if buffer.needs_length():
            buffer.recv_length()
        header, length = buffer.header, buffer.length
        assert header is not None and length is not None  # both parsed just above
        fin, opcode, masked = header[0], header[4], header[5]
        if opcode not in OPCODES:
            raise ProtocolError(f"reserved opcode {opcode:#x}")
        if masked:  # "A client MUST close a connection if it detects a masked frame" -- 5.1
            raise ProtocolError("frame from the server is masked")
        if opcode >= CLOSE:
            # "All control frames MUST have a payload length of 125 bytes or less
            # and MUST NOT be fragmented" -- RFC 6455 section 5.5
            if length > MAX_CONTROL_PAYLOAD:
                raise ProtocolError(
                    f"control frame {opcode:#x} announces {length} bytes, over 125 bytes"
                )
            if not fin:
                raise ProtocolError(f"control frame {opcode:#x} is fragmented")
        elif length > self.max_size - self.assembler.size:
            size = length + self.assembler.size
            raise ProtocolError(f"message of {size} bytes or more exceeds max_size", CLOSE_TOO_BIG)
        frame: websocket.ABNF = super().recv_frame()  # type: ignore[no-untyped-call]
        return frame

    def recv_data_frame(self, control_frame: bool = False) -> tuple[int, websocket.ABNF]:
        """The next whole message (or, with ``control_frame``, Ping or Pong), as websocket-client's.

        Pings are answered and a Close is answered, as websocket-client does;
        fragments go through our assembler.

        Raises:
            ProtocolError: a broken frame or sequence (see :meth:`recv_frame`,
                :meth:`MessageAssembler.add`).
        """
        while True:
            frame = self.recv_frame()
            assert isinstance(frame.data, bytes)  # frame_buffer reads bytes; only users set str
            message = self.assembler.add(Frame(frame.opcode, frame.data, bool(frame.fin)))
            if message is None:
                continue  # a fragment; the message is not complete yet
            if message.opcode == CLOSE:
                self.send_close()
                return CLOSE, frame
            if message.opcode in (TEXT, BINARY):
                frame.data = message.payload  # the whole message, as websocket-client returns it
                return message.opcode, frame
            if message.opcode == PING:
                self.pong(frame.data)
            if control_frame:
                return message.opcode, frame


class Link:
    """One open socket (``universal``, ``api`` or ``event``) and its receive thread."""

    def __init__(self, role: str, url: str, ws: LinkSocket) -> None:
        self.role = role
        self.url = url
        self.ws = ws
        self.last_seen = time.monotonic()
        self.interval: float | None = None  # seconds, from the last heartbeat
        self.error: Exception | None = None  # why the receive loop ended
        self.thread: threading.Thread | None = None

    def close(self, code: int = CLOSE_NORMAL, wait: float = 0.5) -> None:
        """Send a Close frame, give the peer ``wait`` seconds to answer it, then shut down."""
        try:
            self.ws.send_close(code)
        except Exception:
            pass  # the peer is gone already; nothing to say goodbye to
        if self.thread is not None:
            self.thread.join(wait)  # the receive loop ends on the peer's Close frame
        self.abort()

    def abort(self) -> None:
        """Shut the socket down now: shutdown() is what interrupts recv() on every OS."""
        sock = self.ws.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer


def dial(
    url: str,
    *,
    access_token: str | None,
    token_in_query: bool,
    connect_timeout: float,
    ssl_context: ssl.SSLContext | None,
    max_size: int,
    timeout: float,
) -> LinkSocket:
    """Open one WebSocket to ``url`` (token in the header, and the query if asked).

    Raises:
        AuthError: HTTP 401/403 at the handshake.
        NetworkError: anything else, with the reason in words (wrong port, TLS mix-up…).
    """
    target, header = url, []
    if access_token:
        header.append(f"Authorization: Bearer {access_token}")
        if token_in_query:
            parts = urlsplit(url)
            query = [*parse_qsl(parts.query), ("access_token", access_token)]
            target = urlunsplit(parts._replace(query=urlencode(query)))
    try:
        ws = websocket.create_connection(
            target,
            timeout=connect_timeout,
            class_=LinkSocket,
            header=header,
            skip_utf8_validation=True,  # loads() decodes UTF-8 itself, in C
            enable_multithread=True,
            sslopt={"context": ssl_context} if ssl_context is not None else {},
        )
    except websocket.WebSocketBadStatusException as exc:
        if exc.status_code == 400 and is_tls_refusal(exc.resp_body):
            raise NetworkError(
                f"cannot connect to {redact(url)}: this port speaks TLS; use wss://"
            ) from None
        # A proxy whose implementation is not up yet answers 5xx: the cause says so (transient).
        cause = exc if exc.status_code >= 500 else None
        raise _status_error(url, exc.status_code, access_token) from cause
    except (websocket.WebSocketException, OSError) as exc:
        reason = explain(exc, url) or str(exc)
        raise NetworkError(f"cannot connect to {redact(url)}: {redact(reason)}") from exc
    assert isinstance(ws, LinkSocket)
    ws.max_size = max_size
    ws.settimeout(max(timeout, 1.0))  # bounds sends; an idle recv just loops
    return ws


def transient(exc: NetworkError) -> bool:
    """True if a failed :func:`dial` may succeed when retried: nobody answered, yet.

    That is a refused, reset or timed-out connection, a name that does not
    resolve (yet: containers), or a proxy's 5xx. What did answer, and wrongly
    (an HTTP API or web UI port, TLS on one side only, a bad certificate), will
    answer the same way next time.
    """
    cause = exc.__cause__
    if isinstance(cause, websocket.WebSocketBadStatusException):
        return cause.status_code >= 500
    if isinstance(cause, ssl.SSLError):  # certificates and TLS on one side only
        return False
    retryable = (
        OSError,
        websocket.WebSocketTimeoutException,
        websocket.WebSocketConnectionClosedException,
        websocket.WebSocketAddressException,
    )
    return isinstance(cause, retryable)


def _status_error(url: str, status: int, access_token: str | None) -> Exception:
    where = redact(url)
    if status in (401, 403):
        sent = f"token {mask_token(access_token)}" if access_token else "no token"
        return AuthError(
            f"{where} refused the WebSocket handshake with HTTP {status} ({sent} sent): "
            "compare access_token= here with the token of this WebSocket server in the "
            "implementation's config (go-cqhttp: 401 means none sent, 403 a wrong one)",
            status,
        )
    if status in (200, 404):
        return NetworkError(
            f"{where} answered HTTP {status} instead of 101 Switching Protocols: this looks "
            "like an HTTP API or web UI port, not a WebSocket server; check the port and path "
            "(NapCat's WebSocket server defaults to 3001, go-cqhttp's to 8080)"
        )
    return NetworkError(f"{where} answered HTTP {status} to the WebSocket handshake")
