"""Reading an HTTP/1.1 request (RFC 9112), for :mod:`onebot_ref.http_server` and the WS handshake.

The stdlib's ``BaseHTTPRequestHandler`` hands every head to the ``email``
package, which was a fifth of what ``HttpServer`` spent per event. A OneBot
implementation sends a handful of plain header lines, so this reads them
into a dict directly, and is stricter than the stdlib where a lenient
reading lets two parsers disagree about where a request ends (RFC 9112 §11.2,
request smuggling):

* a field name is a token (RFC 9110 §5.1, §5.6.2): no whitespace before the
  colon (RFC 9112 §5.1), no NUL or other separator; a field value has no
  control character but HTAB (RFC 9110 §5.5);
* obsolete line folding is a 400 (§5.2);
* several ``Content-Length`` fields that disagree are a 400 (RFC 9110 §8.6),
  and ``Content-Length`` is ``1*DIGIT``: ``+38`` and ``3_8`` are 400s, not 38;
* ``Transfer-Encoding`` must end in ``chunked`` (§6.3: else the length cannot
  be known, a 400), and with ``Content-Length`` beside it the request is a
  400: §6.3 lets the first win but says such a message "ought to be handled as
  an error", and refusing is the reading no proxy in front of us can disagree with;
* more than ``MAX_FIELDS`` fields, or a head over the server's ``max_header``
  bytes (``MAX_HEAD`` unless told), is a 431.

:func:`read_chunked` reads a ``chunked`` body (§7.1; a recipient "MUST be able
to parse" it, and aiohttp posts that way), bounded by ``max_size`` like any
body, its framing (size lines, CRLFs, trailers) by ``MAX_CHUNK_OVERHEAD``.

:func:`parse_head` reads a whole head held in bytes (a WebSocket upgrade
request) with the same functions the HTTP server reads its heads with, line by
line: one reader, one set of rules, for every request we accept.

:func:`response` builds every response we write ourselves (the HTTP server's
answers, a WebSocket refusal, the plaintext answer to a TLS client, a 503 past
a connection cap), and :func:`refusal` the plain-text error among them.

:func:`split_target` is the one request-target check of the HTTP server and
the WebSocket handshake (:func:`onebot_ref.framer.parse_handshake`): RFC 9112
§3.2 origin-form or absolute-form, RFC 3986 characters, a bracketed host a
valid IPv6 literal. It does not lean on ``urllib.parse``, whose checks differ
between Python versions (3.10 lets ``//[:::::]`` through).

Pure and stdlib only: it reads lines from a binary file object, and raises
:class:`BadHead` with the status to answer.
"""

import io
import ipaddress
import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import NamedTuple, Protocol

__all__ = [
    "MAX_CHUNK_OVERHEAD",
    "MAX_FIELDS",
    "MAX_HEAD",
    "BadHead",
    "Head",
    "body_length",
    "parse_head",
    "parse_request_line",
    "read_chunked",
    "read_fields",
    "refusal",
    "response",
    "split_target",
]

MAX_HEAD = 64 * 1024  # bytes of header lines, all together
MAX_FIELDS = 100  # the stdlib's limit too
MAX_CHUNK_OVERHEAD = 64 * 1024  # bytes of chunk-size lines, CRLFs and trailers in one body

# RFC 9110 §5.6.2: token = 1*tchar; tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
# "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# RFC 9112 §5: field-line = field-name ":" OWS field-value OWS; RFC 9110 §5.5: a value is
# VCHAR, obs-text, SP and HTAB (CR, LF and NUL are "invalid and dangerous").
_FIELD_LINE = re.compile(rf"({_TOKEN}):([\t\x20-\x7e\x80-\xff]*)")
_FIELD_NAME = re.compile(_TOKEN)
# RFC 9110 §5.6.4: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"'
# RFC 9112 §7.1: chunk-size [ chunk-ext ] CRLF;
# chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
_CHUNK_LINE = re.compile(
    rf"([0-9A-Fa-f]+)(?:[ \t]*;[ \t]*{_TOKEN}(?:[ \t]*=[ \t]*(?:{_TOKEN}|{_QUOTED}))?)*\r\n".encode(
        "latin-1"
    )
)
# RFC 3986 §3.3-§3.4: pchar = unreserved / pct-encoded / sub-delims / ":" / "@", plus the
# "/" and "?" that path and query allow. No "#" (a fragment is never sent), no brackets.
_TARGET_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")
# In the query we also take what WHATWG URL parsers (Node's, so NapCat's and LLOneBot's,
# and every browser's) leave unencoded there: [ ] { } | ^ ` \. Refusing them would
# refuse real implementations; none of them can end the target or the head.
_QUERY_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%/?\[\]{}|^`\\]*")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")  # pct-encoded = "%" HEXDIG HEXDIG (§2.1)
# RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "//" authority.
_ABSOLUTE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*)://([^/?#]*)(.*)", re.DOTALL)
_REG_NAME = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=%]+")  # §3.2.2, pct-encoded checked apart
_SCHEMES = ("http", "https", "ws", "wss")  # RFC 9110 §4.2, RFC 6455 §3


class _Lines(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...

    def read(self, size: int = -1, /) -> bytes: ...


class BadHead(ValueError):
    """The request cannot be read; ``status`` is what to answer (400, 411, 413, 431, 501, 505)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def parse_request_line(line: str) -> tuple[str, str, tuple[int, int]]:
    """``method``, ``target`` and ``(major, minor)`` of a request line without its CRLF."""
    words = line.split()
    if len(words) != 3:
        raise BadHead(400, f"bad request line {line[:80]!r}")
    method, target, version = words
    major, dot, minor = version.removeprefix("HTTP/").partition(".")
    if (
        not version.startswith("HTTP/")
        or not dot
        or not (major.isdigit() and minor.isdigit())
        or len(major) > 3
        or len(minor) > 3
    ):
        raise BadHead(400, f"bad HTTP version {version[:20]!r}")
    if int(major) != 1:
        raise BadHead(505, f"HTTP version {version} is not supported; use HTTP/1.1")
    return method, target, (int(major), int(minor))


def split_target(target: str) -> tuple[str, str]:
    """``(path, query)`` of a request target in origin-form or absolute-form (RFC 9112 §3.2).

    Origin-form is ``/path?query``; absolute-form ``http://host:port/path?query``
    (also ``https``, ``ws``, ``wss``), whose host is a name, an IPv4 address or a
    bracketed IPv6 literal that :mod:`ipaddress` accepts; no userinfo
    (RFC 9110 §4.2.4). The path of an absolute-form target without one is ``/``.
    Asterisk-form (``OPTIONS *``) and authority-form (``CONNECT``) ask for
    what no OneBot server does, and are 400s too. Error messages never quote
    the query, where ``access_token=`` travels.

    Raises:
        BadHead: with 400 and the reason.
    """
    rest = target
    if not target.startswith("/"):
        absolute = _ABSOLUTE.fullmatch(target)
        if absolute is None:
            what = "an absolute path (/...)" if "://" not in target else "a URL"
            raise BadHead(400, f"request target {_shown(target)!r} is not {what}")
        scheme, authority, rest = absolute.groups()
        if scheme.lower() not in _SCHEMES:
            raise BadHead(400, f"request target scheme {scheme[:20]!r} is not http(s) or ws(s)")
        _check_authority(authority)
        if rest and rest[0] not in "/?":
            raise BadHead(400, f"malformed request target {_shown(target)!r}")
    path, _, query = rest.partition("?")
    if (
        _TARGET_CHARS.fullmatch(path) is None
        or _QUERY_CHARS.fullmatch(query) is None
        or ("%" in rest and _BAD_PERCENT.search(rest))
    ):
        raise BadHead(400, _bad_character(rest))
    return path or "/", query


def _check_authority(authority: str) -> None:
    """RFC 3986 §3.2: host [ ":" port ], with no userinfo (RFC 9110 §4.2.4)."""
    if "@" in authority:
        raise BadHead(400, "a request target with user:password@ is not accepted")
    if authority.startswith("["):
        literal, bracket, port = authority[1:].partition("]")
        try:  # RFC 3986 §3.2.2: IP-literal = "[" IPv6address "]"; no zone ID, no IPvFuture
            if not bracket or "%" in literal:
                raise ValueError(literal)
            ipaddress.IPv6Address(literal)
        except ValueError:
            raise BadHead(400, f"host [{literal[:60]}] is not an IPv6 address") from None
        if port and not port.startswith(":"):
            raise BadHead(400, f"malformed host {authority[:80]!r} in the request target")
        port = port[1:]
    else:
        host, _, port = authority.partition(":")
        if _REG_NAME.fullmatch(host) is None or _BAD_PERCENT.search(host):
            raise BadHead(400, f"malformed host {host[:80]!r} in the request target")
    # port = *DIGIT (empty means the default port)
    if port and not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) < 65536):
        raise BadHead(400, f"port {port[:20]!r} in the request target is not 0-65535")


def _shown(target: str) -> str:
    """What an error message may quote of a target: no query (``access_token=``), 80 chars."""
    return target.partition("?")[0][:80]


def _bad_character(rest: str) -> str:
    """The reason a path-and-query failed: the first character RFC 3986 does not allow."""
    part = "path"
    for i, char in enumerate(rest):
        if char == "?":
            part = "query"
        if char == "%" and not re.match(r"%[0-9A-Fa-f]{2}", rest[i : i + 3]):
            return f"a '%' in the request target's {part} is not followed by two hex digits"
        if (_QUERY_CHARS if part == "query" else _TARGET_CHARS).fullmatch(char) is None:
            return (
                f"character {char!r} in the request target's {part} is not allowed "
                f"(RFC 3986); percent-encode it as %{ord(char):02X}"
            )
    return "malformed request target"  # not reached: the caller saw a bad character


class Head(NamedTuple):
    """A request head: the request line's parts and the fields by lower-case name."""

    method: str
    target: str
    version: tuple[int, int]
    fields: dict[str, str]


def parse_head(data: bytes, max_size: int = MAX_HEAD) -> Head:
    """Read a whole request head, up to and with its empty line, held in ``data``.

    The same request-line, target and field rules as the HTTP server's
    line-by-line reading: :func:`parse_request_line`, :func:`split_target`,
    :func:`read_fields`; the whole head within ``max_size`` bytes.

    Raises:
        BadHead: with 400, 431 or 505, as the HTTP server would answer.
    """
    lines = io.BytesIO(data)
    line = lines.readline(max_size + 1)
    if not line.endswith(b"\n"):
        raise BadHead(400 if len(line) <= max_size else 431, "the request line does not end")
    method, target, version = parse_request_line(line.decode("iso-8859-1").rstrip("\r\n"))
    split_target(target)
    try:
        fields, _ = read_fields(lines, max_size, len(line))
    except EOFError:
        raise BadHead(400, "the request head does not end with an empty line") from None
    return Head(method, target, version, fields)


def response(
    status: int,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    *,
    close: bool = False,
    head_only: bool = False,
) -> bytes:
    """One whole HTTP/1.1 response, head and body, ready for one write.

    ``Content-Length`` is added except on ``1xx``, ``204`` and ``304`` (RFC 9110
    §8.6), ``Connection: close`` when ``close``; ``head_only`` leaves the body
    out (an answer to ``HEAD``).
    """
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if status >= 200 and status not in (204, 304):
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


def refusal(status: int, reason: str, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """A plain-text error response that says ``reason`` in one line and closes the connection."""
    body = (reason + "\n").encode("utf-8")
    text = [("Content-Type", "text/plain; charset=utf-8"), *headers]
    return response(status, body, text, close=True)


_REASONS = {status.value: status.phrase for status in HTTPStatus}


def read_fields(
    rfile: _Lines, max_size: int = MAX_HEAD, used: int = 0
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Read header lines up to the empty line: a head of ``max_size`` bytes at most.

    ``used`` is what the head has used already (its request line).

    Returns:
        The fields by lower-case name (repeated fields joined with ``", "``,
        RFC 9110 §5.3), and the ``(name, value)`` pairs as they came.

    Raises:
        BadHead: with 400 or 431; EOFError if the peer closed mid-head.
    """
    fields: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    budget = max_size - used
    while True:
        raw = rfile.readline(max(budget, 0) + 1)
        budget -= len(raw)
        if budget < 0:
            raise BadHead(431, f"request head over {max_size} bytes")
        if raw in (b"\r\n", b"\n"):
            return fields, pairs
        if not raw.endswith(b"\n"):
            raise EOFError("the peer closed the connection mid-head")
        if len(pairs) == MAX_FIELDS:
            raise BadHead(431, f"more than {MAX_FIELDS} header fields")
        line = raw.decode("iso-8859-1").rstrip("\r\n")
        if line.startswith((" ", "\t")):  # never line[0]: "\r\r\n" leaves nothing
            raise BadHead(400, "obsolete line folding in the header fields")
        field = _FIELD_LINE.fullmatch(line)
        if field is None:
            raise BadHead(400, _bad_field(line))
        name, value = field[1], field[2].strip(" \t")
        key = name.lower()
        pairs.append((name, value))
        if key not in fields:
            fields[key] = value
        elif key == "content-length":
            if value != fields[key]:
                raise BadHead(400, "several Content-Length fields that disagree")
        else:
            fields[key] = f"{fields[key]}, {value}"


def _bad_field(line: str) -> str:
    """Why a header line is not a field line; quotes the name, never the value (a token)."""
    name, colon, _ = line.partition(":")
    if not colon:
        return f"header line {line[:40]!r}… has no colon"
    if _FIELD_NAME.fullmatch(name) is None:
        return f"header field name {name[:40]!r} is not a token (RFC 9110 §5.6.2)"
    return f"header field {name[:40]!r} has a control character in its value"


def body_length(fields: dict[str, str], version: tuple[int, int], max_size: int) -> int | None:
    """How the request body is framed (RFC 9112 §6.3): its length, or None for ``chunked``.

    Raises:
        BadHead: 411 without ``Content-Length`` or ``Transfer-Encoding``; 413 past
            ``max_size``; 400 for a malformed or ambiguous framing; 501 for a
            transfer coding other than ``chunked``.
    """
    coding = fields.get("transfer-encoding")
    length = fields.get("content-length")
    if coding is not None:
        # §6.1: an HTTP/1.0 message with Transfer-Encoding "MUST" be treated as faulty framing.
        if version < (1, 1):
            raise BadHead(400, "Transfer-Encoding in an HTTP/1.0 request")
        if length is not None:
            raise BadHead(400, "both Transfer-Encoding and Content-Length; send one of them")
        codings = [c.strip(" \t").lower() for c in coding.split(",")]
        if codings[-1] != "chunked":  # §6.3: then the body has no known end
            raise BadHead(400, f"Transfer-Encoding {coding[:40]!r} does not end in chunked")
        if "chunked" in codings[:-1]:  # §7: "MUST NOT apply chunked more than once"
            raise BadHead(400, f"Transfer-Encoding {coding[:40]!r} applies chunked twice")
        if len(codings) > 1:  # §6.1: a coding the server does not understand "SHOULD" be a 501
            raise BadHead(501, f"Transfer-Encoding {coding[:40]!r}: only chunked is supported")
        return None
    if length is None:
        raise BadHead(411, "Content-Length is required")
    if not (length.isascii() and length.isdigit()):  # §6.2: Content-Length = 1*DIGIT
        raise BadHead(400, f"bad Content-Length {length[:20]!r}")
    if len(length) > 18:  # no int() of 5,000 digits (slow; an error past 4,300 on 3.11+)
        length = length.lstrip("0") or "0"
    size = int(length) if len(length) <= 18 else max_size + 1
    if size > max_size:
        raise BadHead(413, f"body of {length[:20]} bytes exceeds max_size={max_size}")
    return size


def read_chunked(rfile: _Lines, max_size: int) -> bytes:
    """Read a ``chunked`` body (RFC 9112 §7.1) up to and including its trailer section.

    Chunk extensions are checked and ignored; trailer fields are checked and
    discarded (RFC 9110 §6.5.1 allows it). Every framing line must end in CRLF:
    accepting a bare LF here is a known smuggling vector.

    Raises:
        BadHead: 400 for malformed framing, 413 when the data passes ``max_size``
            or the framing passes ``MAX_CHUNK_OVERHEAD`` (many tiny chunks);
            EOFError if the peer closed mid-body.
    """
    parts: list[bytes] = []
    size_so_far = 0
    budget = MAX_CHUNK_OVERHEAD
    while True:
        line = rfile.readline(budget + 1)
        budget -= len(line) + 2  # the CRLF after the data counts too
        if budget < 0:
            raise BadHead(413, f"chunk framing over {MAX_CHUNK_OVERHEAD} bytes; use fewer chunks")
        if not line.endswith(b"\n"):
            raise EOFError("the peer closed the connection mid-body")
        chunk = _CHUNK_LINE.fullmatch(line)
        if chunk is None:
            raise BadHead(400, f"bad chunk-size line {line[:40]!r}")
        size = int(chunk[1], 16)
        if size == 0:
            break
        size_so_far += size
        if size_so_far > max_size:
            raise BadHead(413, f"chunked body exceeds max_size={max_size}")
        data = rfile.read(size)
        end = rfile.read(2)
        if len(data) < size or len(end) < 2:
            raise EOFError("the peer closed the connection mid-body")
        if end != b"\r\n":
            raise BadHead(400, f"chunk of {size} bytes not followed by CRLF")
        parts.append(data)
    while True:  # trailer-section = *( field-line CRLF ), then CRLF
        line = rfile.readline(budget + 1)
        budget -= len(line)
        if budget < 0:
            raise BadHead(413, f"chunk framing over {MAX_CHUNK_OVERHEAD} bytes; use fewer chunks")
        if line == b"\r\n":
            return b"".join(parts)
        if not line.endswith(b"\n"):
            raise EOFError("the peer closed the connection mid-body")
        text = line.decode("iso-8859-1")
        if not text.endswith("\r\n") or _FIELD_LINE.fullmatch(text[:-2]) is None:
            raise BadHead(400, "malformed trailer field after the last chunk")
