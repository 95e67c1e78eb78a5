"""Property-based fuzzing of every parser that sees bytes from the network (issue 9).

The property everywhere: bad input ends in a :class:`OneBotError` (or, over a
socket, a clean HTTP status), never another exception, never a hang, and
never memory beyond the configured limits. ``test_framer.py``,
``test_codec.py`` and ``test_message.py`` already throw unstructured random
bytes at the parsers; the strategies here build *almost valid* input (real
frame headers with hostile lengths, real request heads with mangled parts,
CQ-shaped strings), which reaches much deeper.

Default runs are sized for the CI budget; ``pytest -m fuzz`` runs the same
properties with many more examples (``FUZZ_EXAMPLES`` overrides the count).
"""

import logging
import os
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onebot_ref import codec
from onebot_ref import message as m
from onebot_ref._http_head import BadHead, split_target
from onebot_ref.errors import DecodeError, OneBotError, ProtocolError
from onebot_ref.framer import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    Frame,
    HandshakeError,
    MessageReader,
    check_request,
    decode_frame,
    encode_close,
    encode_frame,
    parse_handshake,
)
from onebot_ref.http_server import HttpServer

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5000"))
QUICK = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
MAX_MESSAGE = 4096

F = TypeVar("F", bound=Callable[..., None])


def long_run(test: F) -> F:
    """Mark a ``LONG`` test ``fuzz``, with time for its examples: setup.cfg's 60 s is per
    test, and 5,000 HTTP exchanges take about that long on their own."""
    marked: F = pytest.mark.fuzz(pytest.mark.timeout(60 + FUZZ_EXAMPLES / 10)(test))
    return marked


def both(
    prop: Callable[..., None], strategy: st.SearchStrategy[Any]
) -> tuple[Callable[..., None], Callable[..., None]]:
    """``prop`` at the default size, plus a ``fuzz``-marked copy with many more examples."""
    return QUICK(given(strategy)(prop)), long_run(LONG(given(strategy)(prop)))


# --- WebSocket frames --------------------------------------------------------------

LENGTHS = st.one_of(
    st.integers(0, 300),
    st.sampled_from([125, 126, 127, 65535, 65536, MAX_MESSAGE, MAX_MESSAGE + 1]),
    st.sampled_from([2**31, 2**32, 2**53, 2**62, 2**63 - 1, 2**63, 2**64 - 1]),
)


@st.composite
def frame_headers(draw: st.DrawFn) -> bytes:
    """A frame header with any bits and any announced length, and some payload bytes."""
    first = draw(st.integers(0, 255))
    masked = draw(st.booleans())
    length = draw(LENGTHS)
    head = bytearray([first])
    if length < 126 and draw(st.booleans()):
        head.append((0x80 if masked else 0) | length)
    elif length < 2**16 and draw(st.booleans()):
        head.append((0x80 if masked else 0) | 126)
        head += length.to_bytes(2, "big")
    else:
        head.append((0x80 if masked else 0) | 127)
        head += (length % 2**64).to_bytes(8, "big")
    if masked:
        head += draw(st.binary(min_size=4, max_size=4))
    return bytes(head) + draw(st.binary(max_size=200))


@st.composite
def valid_frames(draw: st.DrawFn) -> Frame:
    opcode = draw(st.sampled_from([CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG]))
    if opcode >= CLOSE:
        payload = (
            encode_close(
                draw(st.sampled_from([1000, 1001, 1011, 4000])), draw(st.text(max_size=20))
            )
            if opcode == CLOSE
            else draw(st.binary(max_size=125))
        )
        return Frame(opcode, payload)
    payload = (
        draw(st.text(max_size=50)).encode() if opcode == TEXT else draw(st.binary(max_size=300))
    )
    return Frame(opcode, payload, draw(st.booleans()))


@st.composite
def frame_streams(draw: st.DrawFn) -> list[bytes]:
    """Client frames on the wire, perhaps mutated, cut into arbitrary chunks."""
    wire = b"".join(encode_frame(f, mask=True) for f in draw(st.lists(valid_frames(), max_size=8)))
    if wire and draw(st.booleans()):
        data = bytearray(wire)
        for _ in range(draw(st.integers(1, 3))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        wire = bytes(data)
    if draw(st.booleans()):
        wire += draw(frame_headers())
    cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    return [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]


def _decode_frame_property(data: bytes) -> None:
    for mask in (True, False):
        for max_size in (None, MAX_MESSAGE):
            try:
                result = decode_frame(data, mask=mask, max_size=max_size)
            except ProtocolError as exc:
                assert exc.close_code in (1002, 1009)
                continue
            if result is not None:
                frame, consumed = result
                assert 2 <= consumed <= len(data)
                assert max_size is None or len(frame.payload) <= max_size


test_decode_frame_headers, test_decode_frame_headers_long = both(
    _decode_frame_property, frame_headers()
)


def _reader_property(chunks: list[bytes]) -> None:
    reader = MessageReader(mask=True, max_message=MAX_MESSAGE)
    biggest_chunk = max((len(c) for c in chunks), default=0)
    try:
        for chunk in chunks:
            reader.feed(chunk)
            for _ in range(len(chunk) + 1):  # bounded: every message consumes >= 2 bytes
                message = reader.next_message()
                if message is None:
                    break
                assert len(message.payload) <= MAX_MESSAGE
            # Memory: what waits in the reader is one frame under the limit plus one chunk.
            assert reader.buffered <= MAX_MESSAGE + 14 + biggest_chunk
    except ProtocolError as exc:
        assert exc.close_code in (1002, 1007, 1009)


test_message_reader_streams, test_message_reader_streams_long = both(
    _reader_property, frame_streams()
)


@pytest.mark.parametrize("length", [2**31, 2**53, 2**62, 2**63 - 1])
@pytest.mark.parametrize("max_size", [None, MAX_MESSAGE])
def test_a_huge_length_header_allocates_nothing(length: int, max_size: int | None) -> None:
    head = bytes([0x82, 0x80 | 127]) + length.to_bytes(8, "big") + b"\x00\x00\x00\x00" + b"x" * 100
    tracemalloc.start()
    try:
        reader = MessageReader(mask=True, max_message=max_size or 2**64)
        reader.feed(head)
        try:
            assert reader.next_message() is None  # no limit: just waits for more
            assert max_size is None
        except ProtocolError as exc:
            assert exc.close_code == 1009
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, f"{peak} bytes allocated for a {length}-byte announcement"
    assert reader.buffered <= len(head)


# --- the opening handshake --------------------------------------------------------

HEADER_NAMES = st.sampled_from(
    ["Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
     "X-Self-ID", "X-Client-Role", "Authorization", "", " Host", "X", "Host "]
)  # fmt: skip
HEADER_VALUES = st.one_of(
    st.sampled_from(["websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", "Bearer t", ""]),
    st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=30),
)
TARGETS = st.one_of(
    st.sampled_from(["/", "/ws?access_token=t", "http://[::1", "//[x", "/%zz?a=%zz", "*", ""]),
    st.text(st.characters(min_codepoint=33, max_codepoint=255), max_size=40),
)


@st.composite
def request_heads(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "get", "", "G ET"]))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "FOO"]))
    lines = [f"{method} {draw(TARGETS)} {version}"]
    for _ in range(draw(st.integers(0, 8))):
        lines.append(f"{draw(HEADER_NAMES)}:{draw(HEADER_VALUES)}")
    if draw(st.booleans()):
        lines.append(draw(st.text(max_size=20)))  # a line of anything
    end = draw(st.sampled_from(["\r\n\r\n", "\r\n", "\n\n", ""]))
    raw = "\r\n".join(lines).encode("utf-8", "surrogatepass") + end.encode()
    return raw + draw(st.binary(max_size=20))


def _handshake_property(data: bytes) -> None:
    try:
        parsed = parse_handshake(data, max_size=512)
    except HandshakeError as exc:
        assert exc.status in (400, 431)
        return
    if parsed is None:
        assert len(data) < 512
        return
    request, consumed = parsed
    assert consumed <= len(data)
    # What the servers read from a request must not raise anything but HandshakeError.
    try:
        _ = request.path, request.query
        check_request(request)
    except HandshakeError as exc:
        assert exc.status in (400, 426)


test_handshake_heads, test_handshake_heads_long = both(_handshake_property, request_heads())


@pytest.mark.parametrize("target", ["http://[::1", "//[x", "//[:::::]", "http://x]/"])
def test_a_target_that_is_no_url_is_a_400(target: str) -> None:
    """Found by this fuzzer: urlsplit() raised ValueError out of Request.path."""
    with pytest.raises(HandshakeError) as info:
        parse_handshake(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert info.value.status == 400


# Targets that Python 3.10's and 3.11's urlsplit judge differently, or not at all.
DISPUTED_TARGETS = [
    "//[:::::]", "//[x", "/[::1]", "/a|b", "/%zz", "/?q=<1>", "http://[v1.x]/",
    "http://[fe80::1%25en0]/", "http://u@h/", "http://h:99999/", "*", "x",
]  # fmt: skip


@pytest.mark.parametrize("target", DISPUTED_TARGETS)
def test_one_target_rule_for_the_handshake_and_the_http_server(
    http_target: "HttpTarget", target: str
) -> None:
    """Issue 18: both servers refuse the same targets, whichever Python parses them."""
    with pytest.raises(HandshakeError) as info:
        parse_handshake(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert info.value.status == 400
    server, errors = http_target
    reply = exchange(
        server.port, f"POST {target} HTTP/1.1\r\nContent-Length: 2\r\n\r\n{{}}".encode()
    )
    assert reply.startswith(b"HTTP/1.1 400 ") and not errors.records


TARGET_TEXT = st.lists(
    st.sampled_from(["/", "//", "?", "[", "]", ":", "@", "%", "%41", "#", "|", "a", "1", ".",
                     "::1", "http://", "ws://", "h", ":80", "\xe9", "*"]),
    max_size=12,
).map("".join)  # fmt: skip


@given(TARGET_TEXT)
@QUICK
def test_an_accepted_target_reads_the_same_to_urlsplit(target: str) -> None:
    """What :func:`split_target` accepts, ``urllib.parse`` reads alike on every Python."""
    try:
        path, query = split_target(target)
    except BadHead as exc:
        assert exc.status == 400
        return
    parts = urlsplit(target)  # must not raise
    assert parts.query == query and not parts.fragment
    if not target.startswith("//"):  # urlsplit reads "//x" as a host; RFC 9112 as a path
        assert (parts.path or "/") == path


def test_handshake_head_size_is_bounded_however_it_is_fed() -> None:
    """431 at the limit, whether the head arrives at once or byte by byte."""
    head = b"GET / HTTP/1.1\r\nX: " + b"a" * 1000
    data = bytearray()
    with pytest.raises(HandshakeError) as info:
        for byte in head:
            data.append(byte)
            assert parse_handshake(data, max_size=512) is None or False
    assert info.value.status == 431 and len(data) <= 512 + 1
    with pytest.raises(HandshakeError) as info:
        parse_handshake(bytearray(head), max_size=512)  # the whole head at once
    assert info.value.status == 431


# --- JSON and CQ codes ----------------------------------------------------------------

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),  # JSON has neither (RFC 8259 section 6)
    st.text(max_size=10),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    """Valid JSON, then perhaps mangled: truncated, spliced, deeply nested, huge numbers."""
    text = codec.dumps(draw(JSON_VALUES)).decode()
    how = draw(st.sampled_from(["keep", "cut", "splice", "nest", "number", "control"]))
    if how == "cut" and text:
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif how == "splice":
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at]
            + draw(st.sampled_from(['"', "\\", "{", "]", "\x00", "\ud800", ","]))
            + text[at:]
        )
    elif how == "nest":
        depth = draw(st.integers(1, 100_000))
        text = "[" * depth + text + "]" * draw(st.integers(0, depth))
    elif how == "number":
        text = "9" * draw(st.integers(4000, 6000))
    elif how == "control":
        text = text.replace('"', '"\x01', 1)
    return text


def _loads_property(text: str) -> None:
    for data in (text, text.encode("utf-8", "surrogatepass")):
        try:
            codec.loads(data)
        except OneBotError:
            pass


test_loads_mangled_json, test_loads_mangled_json_long = both(_loads_property, json_texts())

CQ_ALPHABET = st.sampled_from(
    ["[CQ:", "[CQ:at", "[CQ:image", "[CQ:text", ",", "=", "]", "[", "qq=", "file=",
     "&#91;", "&#93;", "&#44;", "&amp;", "&", "text=", "a", "中", " ", "\x00", "CQ:"]
)  # fmt: skip


@given(st.lists(CQ_ALPHABET, max_size=30).map("".join))
@QUICK
def test_cq_shaped_strings_parse_and_round_trip(string: str) -> None:
    segments = m.parse_cq(string)
    assert all(isinstance(s["type"], str) and isinstance(s["data"], dict) for s in segments)
    # Rendering what we parsed and parsing again is stable (no segment appears or vanishes).
    assert m.parse_cq(m.to_cq(segments)) == segments


@given(JSON_VALUES)
@QUICK
def test_any_json_as_a_message_is_a_decode_error_or_segments(value: Any) -> None:
    """A ``message`` field off the wire can be any JSON value."""
    try:
        segments = m.normalize(value)
        m.plain_text(value)
        m.to_cq(value)
    except DecodeError:
        return
    assert isinstance(segments, list)


# --- the HTTP POST request path, over a real socket ------------------------------------

ALLOWED_STATUSES = {100, 200, 204, 400, 401, 403, 404, 405, 408, 411, 413, 414, 415, 431, 501, 505}


@st.composite
def http_requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["POST", "GET", "PUT", "BREW", "post", ""]))
    target = draw(
        st.one_of(
            st.sampled_from(["/", "/?access_token=x", "http://[::1", "//[", "/send_msg", "*"]),
            st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=30),
        )
    )
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/0.9", "HTTP/9.9", "X"]))
    body = draw(
        st.one_of(
            json_texts().map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=50)
        )
    )
    lines = [f"{method} {target} {version}"]
    length = draw(
        st.one_of(
            st.just(str(len(body))),
            st.sampled_from(["-1", "abc", "", "99999999999999999999", str(2**63), " 5", "1e3"]),
            st.integers(0, 100).map(str),
        )
    )
    if draw(st.booleans()) or length != str(len(body)):
        lines.append(f"Content-Length: {length}")
    for name in draw(st.lists(st.sampled_from(
        ["Content-Type: application/json", "Content-Type: text/plain", "Content-Type: ",
         "Transfer-Encoding: chunked", "X-Self-ID: 10001", "X-Signature: sha1=00",
         "Authorization: Bearer x", "Expect: 100-continue", "Connection: close", "Bad Header",
         "X: " + "a" * 70000]
    ), max_size=4)):  # fmt: skip
        lines.append(name)
    return "\r\n".join(lines).encode("utf-8", "surrogatepass") + b"\r\n\r\n" + body


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


HttpTarget = tuple[HttpServer, _Errors]


@pytest.fixture(scope="module")
def http_target() -> Iterator[HttpTarget]:
    server = HttpServer(port=0, idle_timeout=2, request_timeout=3).start()
    server.on("message")(lambda event: {"reply": "ok"})
    errors = _Errors()
    logging.getLogger("onebot_ref").addHandler(errors)
    try:
        yield server, errors
    finally:
        logging.getLogger("onebot_ref").removeHandler(errors)
        server.close()


def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data``, half-close, and read until the server closes (bounded by ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may refuse before reading everything
        deadline = time.monotonic() + timeout
        out = b""
        try:
            while time.monotonic() < deadline and (chunk := sock.recv(65536)):
                out += chunk
        except OSError:
            pass
        assert time.monotonic() < deadline, "the server neither answered nor hung up"
        return out


def _http_property(http_target: HttpTarget, data: bytes) -> None:
    server, errors = http_target
    started = time.monotonic()
    reply = exchange(server.port, data)
    assert time.monotonic() - started < 5
    for line in reply.split(b"\r\n"):
        if line.startswith(b"HTTP/"):
            status = int(line.split(b" ")[1])
            assert status in ALLOWED_STATUSES, reply[:200]
    assert not errors.records, errors.records[0].getMessage()


test_http_post_requests = QUICK(given(data=http_requests())(_http_property))
test_http_post_requests_long = long_run(LONG(given(data=http_requests())(_http_property)))


@pytest.mark.parametrize("target", ["http://[::1", "http://x]/", "http://[:::::]/"])
def test_http_target_that_is_no_url_is_a_400(http_target: HttpTarget, target: str) -> None:
    """Found by this fuzzer: urlsplit() raised ValueError out of do_POST (no response)."""
    server, errors = http_target
    reply = exchange(
        server.port, f"POST {target} HTTP/1.1\r\nContent-Length: 2\r\n\r\n{{}}".encode()
    )
    assert reply.startswith(b"HTTP/1.1 400 ") and not errors.records


def test_the_http_server_still_serves_after_the_fuzzing(http_target: HttpTarget) -> None:
    server, _ = http_target
    event = codec.dumps({"post_type": "message", "message_type": "private", "self_id": 1})
    head = f"POST / HTTP/1.1\r\nContent-Length: {len(event)}\r\nContent-Type: application/json\r\n"
    reply = exchange(server.port, head.encode() + b"\r\n" + event)
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b'{"reply":"ok"}')
