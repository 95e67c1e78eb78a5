"""Reading an HTTP/1.1 request head (RFC 9112 §2–§5), for :mod:`onebot_ref.http_server`.

The stdlib's ``BaseHTTPRequestHandler`` hands every head to the ``email``
package, which was a fifth of what ``HttpServer`` spent per event. A OneBot
implementation sends a handful of plain header lines, so this reads them
into a dict directly, and is stricter than the stdlib where a lenient
reading lets two parsers disagree about where a request ends (RFC 9112 §11.2,
request smuggling):

* whitespace between a field name and its colon is a 400 (§5.1);
* obsolete line folding is a 400 (§5.2);
* several ``Content-Length`` fields that disagree are a 400 (RFC 9110 §8.6);
* more than ``MAX_FIELDS`` fields, or a head over ``MAX_HEAD`` bytes, is a 431.

Pure: it reads lines from a binary file object, and raises :class:`BadHead`
with the status to answer.
"""

from typing import Protocol

__all__ = ["MAX_FIELDS", "MAX_HEAD", "BadHead", "parse_request_line", "read_fields"]

MAX_HEAD = 64 * 1024  # bytes of header lines, all together
MAX_FIELDS = 100  # the stdlib's limit too
_SEPARATORS = frozenset(' \t"(),/:;<=>?@[\\]{}')


class _Lines(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


class BadHead(ValueError):
    """The head cannot be read; ``status`` is what to answer (400, 431 or 505)."""

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


def read_fields(rfile: _Lines) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Read header lines up to the empty line.

    Returns:
        The fields by lower-case name (repeated fields joined with ``", "``,
        RFC 9110 §5.3), and the ``(name, value)`` pairs as they came.

    Raises:
        BadHead: with 400 or 431; EOFError if the peer closed mid-head.
    """
    fields: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    budget = MAX_HEAD
    while True:
        raw = rfile.readline(budget + 1)
        budget -= len(raw)
        if budget < 0:
            raise BadHead(431, f"request head over {MAX_HEAD} bytes")
        if raw in (b"\r\n", b"\n"):
            return fields, pairs
        if not raw.endswith(b"\n"):
            raise EOFError("the peer closed the connection mid-head")
        if len(pairs) == MAX_FIELDS:
            raise BadHead(431, f"more than {MAX_FIELDS} header fields")
        line = raw.decode("iso-8859-1").rstrip("\r\n")
        if line[0] in " \t":
            raise BadHead(400, "obsolete line folding in the header fields")
        name, colon, value = line.partition(":")
        if not colon or not name or not _SEPARATORS.isdisjoint(name):
            raise BadHead(400, f"bad header field {line[:80]!r}")
        value = value.strip(" \t")
        key = name.lower()
        pairs.append((name, value))
        if key not in fields:
            fields[key] = value
        elif key == "content-length":
            if value != fields[key]:
                raise BadHead(400, "several Content-Length fields that disagree")
        else:
            fields[key] = f"{fields[key]}, {value}"
