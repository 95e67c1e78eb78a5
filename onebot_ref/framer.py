"""RFC 6455 WebSocket framing and handshake as pure functions: bytes in, values out.

The bottom layer of our WebSocket side, under every server and client of
ours::

    framer            bytes <-> frames and whole messages        (this module)
    _ws_protocol      the rules and an explicit state: closing, pings, failing
    _ws_connection    a socket, its receive thread, the send path, deadlines, TLS
    _ws_reader        one thread reading many plaintext connections (a selector)
    _ws_listener      a generic server: accepting, the handshake, reaping
    ws_server, ws_client, FakeOneBot, the doctor: OneBot policy

It owns the wire format: frames, masking, fragmentation, UTF-8 and the size
limits that can be read from a header. It must never do I/O, keep a
connection's state or know of the layers above it: it is what a user can copy
into any project. A frame on the wire (RFC 6455 section 5.2)::

     0               1               2               3
    |F|R|R|R| opcode|M| length (7)  | extended length (0, 2 or 8 bytes) ...
    |I|S|S|S|  (4)  |A|             | masking key (0 or 4 bytes) | payload ...

Client-to-server frames are masked, server-to-client frames are not, so every
call takes a required keyword-only ``mask``: a server decodes with
``mask=True`` and encodes with ``mask=False``; a client flips both.

* :func:`decode_frame` returns ``None`` when more bytes are needed and raises
  :class:`~onebot_ref.errors.ProtocolError` (whose ``close_code`` is the code
  to close with) on broken input. The size limit is checked from the length
  header, before the payload is buffered (1009).
* :class:`MessageReader` buffers bytes and yields whole messages, with control
  frames interleaved between fragments passed through as they come, and text
  validated as UTF-8 fragment by fragment (1007 as soon as it breaks).
* :func:`parse_handshake`, :func:`check_request`, :func:`accept_key`,
  :func:`handshake_response` and :func:`error_response` do the opening
  handshake of section 4.

Not implemented, on purpose: extensions (permessage-deflate is never
negotiated, so any RSV bit is an error) and subprotocols.
"""

import base64
import codecs
import hashlib
import os
from typing import NamedTuple
from urllib.parse import parse_qs

from . import _speedups
from ._http_head import BadHead, parse_head, refusal, split_target
from .errors import ProtocolError

__all__ = [
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "GUID",
    "MAX_FRAGMENTS",
    "PING",
    "PONG",
    "TEXT",
    "Frame",
    "HandshakeError",
    "MessageAssembler",
    "MessageReader",
    "Request",
    "accept_key",
    "apply_mask",
    "check_request",
    "decode_frame",
    "encode_close",
    "encode_frame",
    "error_response",
    "handshake_response",
    "parse_close",
    "parse_handshake",
]

# RFC 6455 section 1.3: the GUID concatenated with Sec-WebSocket-Key.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# RFC 6455 section 5.2: opcodes. 0x3-0x7 and 0xB-0xF are reserved.
CONTINUATION = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA
OPCODES = (CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG)

# RFC 6455 section 5.2: payload lengths 126 and 127 announce a 16- or 64-bit length.
PAYLOAD_LENGTH_TWO_BYTE = 126
PAYLOAD_LENGTH_EIGHT_BYTE = 127
# RFC 6455 section 5.5: "All control frames MUST have a payload length of 125 bytes or less".
MAX_CONTROL_PAYLOAD = 125
# Frames per fragmented message. Section 5.4 sets no bound, and each frame costs us
# time and a part to remember (about 40 bytes beyond its payload) even when empty: a
# peer could otherwise send empty continuation frames for ever. gorilla/websocket
# (go-cqhttp) writes 4 KiB frames, so a 64 MiB message there is 16,384 of them.
MAX_FRAGMENTS = 65536

# RFC 6455 section 7.4.1 and the IANA "WebSocket Close Code Number Registry":
# the codes below 3000 that may appear in a Close frame (1004-1006 and 1015
# "MUST NOT be set as a status code in a Close control frame by an endpoint").
SENDABLE_CLOSE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


class Frame(NamedTuple):
    """One WebSocket frame, or (from :class:`MessageReader`) one whole message."""

    opcode: int
    payload: bytes
    fin: bool = True


# Below this many bytes one big-integer XOR is the fastest pure-Python mask; from here on
# the four translate lanes are (measured on CPython 3.11: even at 512 bytes, 1.7x at 1 MiB).
MASK_LANES_FROM = 512
# _XOR_TABLES[k] maps each byte b to b ^ k: a bytes.translate table per key byte (64 KiB in all).
_IDENTITY = int.from_bytes(bytes(range(256)), "little")
_XOR_TABLES = [
    (_IDENTITY ^ int.from_bytes(bytes([k]) * 256, "little")).to_bytes(256, "little")
    for k in range(256)
]


def apply_mask(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte masking ``key`` (RFC 6455 section 5.3); its own inverse.

    "octet i of the transformed data is the XOR of octet i of the original
    data with octet at index i modulo 4 of the masking key" -- section 5.3. So
    the bytes at offsets 0, 4, 8... are all XORed with ``key[0]``: four strided
    slices ("lanes"), each mapped in one ``bytes.translate`` through a 256-byte
    table, do it in C at about 0.9 GB/s. Short payloads take one big-integer
    XOR instead, which has less overhead. When ``websockets``' C
    ``apply_mask`` is installed (the ``speedups`` extra) it does the same at
    tens of GB/s; the tests check that both give the same bytes.
    """
    fast = _speedups.active.mask
    if fast is not None:
        return fast(data, key)
    n = len(data)
    if n < MASK_LANES_FROM:
        repeated = int.from_bytes((key * (n // 4 + 1))[:n], "little")
        return (int.from_bytes(data, "little") ^ repeated).to_bytes(n, "little")
    out = bytearray(data)  # the one copy; the lanes are mapped in place
    tables = _XOR_TABLES
    out[0::4] = out[0::4].translate(tables[key[0]])
    out[1::4] = out[1::4].translate(tables[key[1]])
    out[2::4] = out[2::4].translate(tables[key[2]])
    out[3::4] = out[3::4].translate(tables[key[3]])
    return bytes(out)


def encode_frame(frame: Frame, *, mask: bool) -> bytes:
    """The wire bytes of ``frame``; ``mask=True`` on the client side.

    Raises:
        ValueError: a control frame that is fragmented or longer than 125 bytes.
    """
    payload = frame.payload
    length = len(payload)
    if frame.opcode >= CLOSE and (length > MAX_CONTROL_PAYLOAD or not frame.fin):
        raise ValueError(f"control frame {frame.opcode:#x} must be final and at most 125 bytes")
    head = bytearray([(0x80 if frame.fin else 0) | frame.opcode])
    mask_bit = 0x80 if mask else 0
    if length < PAYLOAD_LENGTH_TWO_BYTE:
        head.append(mask_bit | length)
    elif length < 1 << 16:
        head.append(mask_bit | PAYLOAD_LENGTH_TWO_BYTE)
        head += length.to_bytes(2, "big")
    else:
        head.append(mask_bit | PAYLOAD_LENGTH_EIGHT_BYTE)
        head += length.to_bytes(8, "big")
    if mask:
        # "the client MUST pick a fresh masking key [...] unpredictable" -- RFC 6455 section 5.3
        key = os.urandom(4)
        return bytes(head + key) + apply_mask(payload, key)
    return bytes(head) + payload


def decode_frame(
    data: bytes | bytearray | memoryview, *, mask: bool, max_size: int | None = None
) -> tuple[Frame, int] | None:
    """Decode the frame at the start of ``data``.

    Args:
        data: received bytes, possibly a partial frame or several frames.
        mask: True if frames must be masked (we are the server).
        max_size: the largest payload accepted; checked from the header alone.

    Returns:
        ``(frame, bytes consumed)``, or None if ``data`` holds no whole frame yet.

    Raises:
        ProtocolError: 1002 for a malformed frame, 1009 for a payload over ``max_size``.
    """
    return _decode_at(data, 0, mask, max_size)


def _decode_at(
    data: bytes | bytearray | memoryview, pos: int, mask: bool, max_size: int | None
) -> tuple[Frame, int] | None:
    available = len(data) - pos
    if available < 2:
        return None
    first, second = data[pos], data[pos + 1]
    opcode = first & 0x0F
    fin = bool(first & 0x80)
    # "MUST be 0 unless an extension is negotiated that defines meanings" -- section 5.2
    if first & 0x70:
        raise ProtocolError(f"reserved bits {first & 0x70:#x} set; no extension was negotiated")
    if opcode not in OPCODES:
        raise ProtocolError(f"reserved opcode {opcode:#x}")
    # "The server MUST close the connection upon receiving a frame that is not
    # masked" and "A client MUST close a connection if it detects a masked frame" -- section 5.1
    if bool(second & 0x80) != mask:
        raise ProtocolError("frame is not masked" if mask else "frame from the server is masked")
    length = second & 0x7F
    if opcode >= CLOSE:
        # "Control frames [...] MUST NOT be fragmented" -- section 5.5
        if not fin:
            raise ProtocolError(f"control frame {opcode:#x} is fragmented")
        if length > MAX_CONTROL_PAYLOAD:
            raise ProtocolError(f"control frame {opcode:#x} is longer than 125 bytes")
    head = 2
    if length == PAYLOAD_LENGTH_TWO_BYTE:
        head = 4
        if available < head:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
    elif length == PAYLOAD_LENGTH_EIGHT_BYTE:
        head = 10
        if available < head:
            return None
        length = int.from_bytes(data[pos + 2 : pos + 10], "big")
        # "the most significant bit MUST be 0" -- section 5.2
        if length >> 63:
            raise ProtocolError("64-bit payload length has its most significant bit set")
    if max_size is not None and length > max_size:
        raise ProtocolError(f"message of {length} bytes or more is over the limit", 1009)
    if mask:
        head += 4
    end = head + length
    if available < end:
        return None
    start = pos + head
    with memoryview(data) as view:  # one copy of the payload, not two
        if mask:
            payload = apply_mask(view[start : pos + end], bytes(view[start - 4 : start]))
        else:
            payload = bytes(view[start : pos + end])
    return Frame(opcode, payload, fin), end


def encode_close(code: int | None = 1000, reason: str = "") -> bytes:
    """The payload of a Close frame: a 2-byte code and a UTF-8 reason cut to fit 125 bytes."""
    if code is None:
        return b""
    raw = reason.encode("utf-8")[: MAX_CONTROL_PAYLOAD - 2]
    raw = raw.decode("utf-8", "ignore").encode("utf-8")  # never cut inside a character
    return code.to_bytes(2, "big") + raw


def parse_close(payload: bytes) -> tuple[int, str]:
    """The ``(code, reason)`` of a received Close payload; an empty one is ``(1005, "")``.

    Raises:
        ProtocolError: 1002 for a 1-byte payload or a code that may not be sent,
            1007 for a reason that is not UTF-8 (RFC 6455 sections 5.5.1 and 7.4).
    """
    if not payload:
        return 1005, ""  # section 7.1.5: "no status code was actually present"
    if len(payload) == 1:
        raise ProtocolError("close frame payload of one byte")
    code = int.from_bytes(payload[:2], "big")
    # Section 7.4.2: 3000-3999 are registered with IANA, 4000-4999 are private.
    if code not in SENDABLE_CLOSE_CODES and not 3000 <= code <= 4999:
        raise ProtocolError(f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("close reason is not valid UTF-8", 1007) from None
    return code, reason


# From this size on, a text message's UTF-8 check keeps what it decoded for codec.loads.
REMEMBER_FROM = 65536


def check_text(payload: bytes) -> None:
    """Check that a whole text message is UTF-8 (RFC 6455 section 8.1), or raise 1007.

    Section 8.1: invalid UTF-8 "MUST _Fail the WebSocket Connection_"; 1007 per
    7.4.1. ASCII needs no decoding. A large message's check keeps what it
    produced for ``codec.loads`` (see ``onebot_ref._speedups``): the decoded text,
    or -- when orjson is installed and the message is JSON -- orjson's parsed
    value, orjson having refused any byte sequence that is not UTF-8 as it parsed.
    """
    if payload.isascii():
        return
    if len(payload) >= REMEMBER_FROM and (fast := _speedups.active.loads) is not None:
        try:
            value = fast(payload)
        except (ValueError, TypeError):  # not JSON, or not UTF-8: the decode below decides
            pass
        else:
            _speedups.remember(payload, "json", value)
            return
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("text message is not valid UTF-8", 1007) from None
    if len(payload) >= REMEMBER_FROM:
        _speedups.remember(payload, "text", text)


class MessageAssembler:
    """Joins fragments into messages (RFC 6455 section 5.4) and checks text is UTF-8.

    :meth:`add` returns control frames at once, even between the fragments of
    a message ("Control frames [...] MAY be injected in the middle of a
    fragmented message", section 5.4), and a data message when its last
    fragment arrives. The parts are joined once, at the end: linear time
    however many there are, and there are at most ``max_fragments``.
    """

    def __init__(self, *, max_fragments: int = MAX_FRAGMENTS) -> None:
        self.max_fragments = max_fragments
        self.opcode: int | None = None  # of the message being assembled
        self.size = 0  # its bytes so far
        self.frames = 0  # its frames so far
        self._parts: list[bytes] = []
        self._utf8: codecs.IncrementalDecoder | None = None

    def add(self, frame: Frame) -> Frame | None:
        """Add one frame; return a control frame or a finished message, else None.

        Raises:
            ProtocolError: 1002 for a fragment out of sequence, 1007 for invalid
                UTF-8, 1009 for a message of more than ``max_fragments`` frames.
        """
        if frame.opcode >= CLOSE:
            return frame
        if frame.fin and self.opcode is None and frame.opcode != CONTINUATION:
            # The common case, a whole message in one frame: no decoder object needed.
            if frame.opcode == TEXT:
                check_text(frame.payload)
            return frame
        if frame.opcode == CONTINUATION:
            if self.opcode is None:
                raise ProtocolError("continuation frame without a message to continue")
        elif self.opcode is not None:
            raise ProtocolError("new data frame before the fragmented message ended")
        else:
            self.opcode = frame.opcode
            if frame.opcode == TEXT:
                self._utf8 = codecs.getincrementaldecoder("utf-8")()
        if self._utf8 is not None:
            # Section 8.1: invalid UTF-8 "MUST _Fail the WebSocket Connection_"; 1007 per 7.4.1.
            try:
                self._utf8.decode(frame.payload, frame.fin)
            except UnicodeDecodeError:
                raise ProtocolError("text message is not valid UTF-8", 1007) from None
        self.frames += 1
        if self.frames > self.max_fragments:
            raise ProtocolError(
                f"fragmented message passed {self.max_fragments} frames "
                f"({self.size} bytes so far); send fewer, larger frames",
                1009,
            )
        if frame.payload:
            self._parts.append(frame.payload)
            self.size += len(frame.payload)
        if not frame.fin:
            return None
        message = Frame(self.opcode, b"".join(self._parts))
        self.opcode, self._utf8, self._parts, self.size, self.frames = None, None, [], 0, 0
        return message


class MessageReader:
    """Bytes in, messages out: a receive buffer, :func:`decode_frame` and an assembler.

    Feed it whatever ``recv`` returned, then call :meth:`next_message` until it
    returns None. A message over ``max_message`` fails with 1009 as soon as a
    frame header announces it, before its payload is buffered, and so does one
    of more than ``max_fragments`` frames.
    """

    def __init__(
        self, *, mask: bool, max_message: int = 64 * 2**20, max_fragments: int = MAX_FRAGMENTS
    ) -> None:
        self.mask = mask
        self.max_message = max_message
        self.assembler = MessageAssembler(max_fragments=max_fragments)
        self._buffer = bytearray()
        self._pos = 0  # start of the first unparsed frame in _buffer

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes."""
        if self._pos and self._pos * 2 >= len(self._buffer):
            del self._buffer[: self._pos]  # compact now and then, not after every frame
            self._pos = 0
        self._buffer += data

    def next_message(self) -> Frame | None:
        """The next control frame or whole data message, or None until more bytes arrive.

        Raises:
            ProtocolError: with the close code to send.
        """
        while True:
            room = self.max_message - self.assembler.size
            decoded = _decode_at(self._buffer, self._pos, self.mask, room)
            if decoded is None:
                if self._pos and self._pos == len(self._buffer):  # all taken: an idle reader
                    self._buffer, self._pos = bytearray(), 0  # keeps no large message
                return None
            frame, consumed = decoded
            self._pos += consumed
            message = self.assembler.add(frame)
            if message is not None:
                return message

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned in a message."""
        return len(self._buffer) - self._pos + self.assembler.size


# --- Opening handshake, RFC 6455 section 4 ---


class HandshakeError(ProtocolError):
    """An opening handshake we refuse; ``status`` is the HTTP status to answer with.

    ``reply`` is what the peer is told in the response body. ``str()`` adds
    ``detail`` for our own log and reports (token fingerprints, say), which
    must never reach the wire.
    """

    def __init__(self, message: str, status: int = 400, *, detail: str = "") -> None:
        self.status = status
        self.reply = message
        super().__init__(message + detail)


class Request(NamedTuple):
    """An HTTP request head; header names are lower-cased, repeated headers joined by ``,``."""

    method: str
    target: str
    headers: dict[str, str]
    version: tuple[int, int] = (1, 1)

    @property
    def path(self) -> str:
        """The target without its query string (for ``http://host/x`` just ``/x``)."""
        return split_target(self.target)[0]

    @property
    def query(self) -> dict[str, str]:
        """The query parameters (the first value of each)."""
        return {k: v[0] for k, v in parse_qs(split_target(self.target)[1]).items()}


def parse_handshake(
    data: bytes | bytearray, *, max_size: int = 16384
) -> tuple[Request, int] | None:
    """Parse the HTTP request head at the start of ``data``.

    The head is read by :func:`onebot_ref.http_head.parse_head`, with the HTTP
    server's own rules (field names are tokens, no control characters, at most
    100 fields, the request target checked the same way on every Python):
    two readers that disagree about a request are how smuggling starts.

    Returns:
        ``(request, bytes consumed)``, or None until the blank line has arrived.

    Raises:
        HandshakeError: 431 if no head ends within ``max_size`` bytes or it has
            too many fields, 400 if malformed (an HTTP version other than 1.x too:
            an upgrade is an HTTP/1.1 request, RFC 6455 section 4.1).
    """
    end = data.find(b"\r\n\r\n", 0, max_size + 4)
    if end < 0:
        if len(data) >= max_size:
            raise HandshakeError(f"request head is longer than {max_size} bytes", 431)
        return None
    try:
        head = parse_head(bytes(data[: end + 4]), max_size + 4)  # as found: its CRLFCRLF too
    except BadHead as exc:
        raise HandshakeError(exc.reason, 431 if exc.status == 431 else 400) from None
    return Request(head.method, head.target, head.fields, head.version), end + 4


def _tokens(value: str | None) -> list[str]:
    return [t.strip().lower() for t in (value or "").split(",")]


def check_request(request: Request) -> str:
    """Check an opening handshake against RFC 6455 section 4.2.1; return its key.

    Raises:
        HandshakeError: 426 (with ``Sec-WebSocket-Version: 13`` to send) when the
            request is not a WebSocket upgrade or asks for another version, 400
            for any other missing or malformed part.
    """
    headers = request.headers
    # 4.2.1 item 1: "An HTTP/1.1 or higher GET request"
    if request.method != "GET":
        raise HandshakeError(f"method {request.method} is not GET")
    if request.version < (1, 1):
        raise HandshakeError("an HTTP/1.0 request cannot be upgraded; send HTTP/1.1")
    if "host" not in headers:
        raise HandshakeError("no Host header")
    # items 3 and 4: Upgrade has "websocket", Connection has "Upgrade", in any case
    if "websocket" not in _tokens(headers.get("upgrade")):
        raise HandshakeError("this is a WebSocket endpoint; the request is not an upgrade", 426)
    if "upgrade" not in _tokens(headers.get("connection")):
        raise HandshakeError("the Connection header does not contain Upgrade")
    # item 6 and section 4.4: a version other than 13 gets 426 and the versions we speak
    if headers.get("sec-websocket-version") != "13":
        raise HandshakeError("Sec-WebSocket-Version is not 13", 426)
    # item 5: "a base64-encoded value that, when decoded, is 16 bytes in length"
    key = headers.get("sec-websocket-key", "")
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(f"Sec-WebSocket-Key {key[:40]!r} is not 16 bytes in base64")
    return key


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 sections 1.3 and 4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def handshake_response(key: str, headers: dict[str, str] | None = None) -> bytes:
    """The ``101 Switching Protocols`` answer to a valid handshake (section 4.2.2)."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A plain-text HTTP refusal of the upgrade (400, 401, 403, 404, 426, 431...).

    426 carries ``Sec-WebSocket-Version: 13`` as section 4.4 asks.
    """
    extra = list((headers or {}).items())
    if status == 426:
        extra.insert(0, ("Sec-WebSocket-Version", "13"))
    return refusal(status, message, extra)
