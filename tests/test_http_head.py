"""The request-head reader behind HttpServer: pure tests, then the same rules over a socket."""

import http.client
import io
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from onebot_ref._http_head import (
    MAX_CHUNK_OVERHEAD,
    MAX_FIELDS,
    MAX_HEAD,
    BadHead,
    body_length,
    parse_request_line,
    read_chunked,
    read_fields,
    split_target,
)
from onebot_ref.http_server import HttpServer


def fields_of(head: bytes) -> tuple[dict[str, str], list[tuple[str, str]]]:
    return read_fields(io.BufferedReader(io.BytesIO(head)))


def status_of(head: bytes) -> int:
    with pytest.raises(BadHead) as info:
        fields_of(head)
    return info.value.status


def test_fields_by_lower_case_name_and_as_they_came() -> None:
    fields, pairs = fields_of(
        b"Host: x\r\nX-Self-ID:  10001 \r\ncontent-type:application/json\r\n"
        b"Accept: a\r\nACCEPT: b\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nbody"
    )
    assert fields == {
        "host": "x",
        "x-self-id": "10001",
        "content-type": "application/json",
        "accept": "a, b",  # RFC 9110 §5.3: repeated fields join with a comma
        "content-length": "5",  # repeated with the same value: one is kept
    }
    assert pairs[1] == ("X-Self-ID", "10001") and len(pairs) == 7


def test_bare_lf_line_ends_are_accepted() -> None:  # RFC 9112 §2.2 allows it
    assert fields_of(b"Host: x\nA: 1\n\n") == ({"host": "x", "a": "1"}, [("Host", "x"), ("A", "1")])


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"Host : x\r\n\r\n", 400),  # whitespace before the colon (RFC 9112 §5.1)
        (b"Host: x\r\n folded\r\n\r\n", 400),  # obsolete line folding (§5.2)
        (b"no colon here\r\n\r\n", 400),
        (b": empty name\r\n\r\n", 400),
        (b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),  # smuggling (RFC 9110 §8.6)
        (b"X: " + b"a" * MAX_HEAD + b"\r\n\r\n", 431),
        (b"".join(b"X%d: 1\r\n" % n for n in range(MAX_FIELDS + 1)) + b"\r\n", 431),
    ],
    ids=["space-colon", "obs-fold", "no-colon", "empty-name", "two-lengths", "too-big", "too-many"],
)
def test_bad_heads(head: bytes, status: int) -> None:
    assert status_of(head) == status


@pytest.mark.parametrize(
    "head",
    [
        b"X\x00Y: 1\r\n\r\n",  # NUL in a name (issue 12)
        b"X Y: 1\r\n\r\n",
        b"X\x7fY: 1\r\n\r\n",
        b"X\xe9: 1\r\n\r\n",  # not ASCII
        b"X(Y): 1\r\n\r\n",
        b"X: a\x00b\r\n\r\n",  # RFC 9110 §5.5: NUL, CR, LF are "invalid and dangerous"
        b"X: a\rb\r\n\r\n",
        b"X: a\x01b\r\n\r\n",
    ],
)
def test_field_names_are_tokens_and_values_have_no_controls(head: bytes) -> None:
    assert status_of(head) == 400


def test_every_tchar_is_a_field_name_and_values_may_hold_tabs_and_obs_text() -> None:
    tchars = "!#$%&'*+-.^_`|~09azAZ"
    fields, _ = fields_of(f"{tchars}: a\tb \xe9\r\n\r\n".encode("latin-1"))
    assert fields == {tchars.lower(): "a\tb \xe9"}


def test_a_reason_quotes_the_name_never_the_value() -> None:
    with pytest.raises(BadHead) as info:
        fields_of(b"Authorization: Bearer s3cr3t\x00\r\n\r\n")
    assert "Authorization" in info.value.reason and "s3cr3t" not in info.value.reason


def test_a_head_cut_short_is_eof() -> None:
    with pytest.raises(EOFError):
        fields_of(b"Host: x\r\nX-Self")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("POST / HTTP/1.1", ("POST", "/", (1, 1))),
        ("GET /a?b=c HTTP/1.0", ("GET", "/a?b=c", (1, 0))),
    ],
)
def test_request_lines(line: str, expected: tuple[str, str, tuple[int, int]]) -> None:
    assert parse_request_line(line) == expected


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("POST /", 400),
        ("POST / HTTP/1.1 extra", 400),
        ("POST / HTTP/x.y", 400),
        ("POST / HTTPS/1.1", 400),
        ("POST / HTTP/11", 400),
        ("POST / HTTP/2.0", 505),
        ("POST / HTTP/0.9", 505),
    ],
)
def test_bad_request_lines(line: str, status: int) -> None:
    with pytest.raises(BadHead) as info:
        parse_request_line(line)
    assert info.value.status == status


# -- body framing (RFC 9112 §6) -----------------------------------------------


@pytest.mark.parametrize(
    ("fields", "version", "expected"),
    [
        ({"content-length": "38"}, (1, 1), 38),
        ({"content-length": "0"}, (1, 0), 0),
        ({"content-length": "0038"}, (1, 1), 38),
        ({"transfer-encoding": "chunked"}, (1, 1), None),
        ({"transfer-encoding": "Chunked"}, (1, 1), None),
    ],
)
def test_body_lengths(fields: dict[str, str], version: tuple[int, int], expected: Any) -> None:
    assert body_length(fields, version, 1000) == expected


@pytest.mark.parametrize(
    ("fields", "version", "status"),
    [
        ({"content-length": "+38"}, (1, 1), 400),  # int() accepts these; 1*DIGIT does not
        ({"content-length": "3_8"}, (1, 1), 400),
        ({"content-length": "-1"}, (1, 1), 400),
        ({"content-length": "\xb2"}, (1, 1), 400),  # "²": isdigit() but not a DIGIT
        ({"content-length": "0x26"}, (1, 1), 400),
        ({"content-length": "38, 38"}, (1, 1), 400),
        ({"content-length": ""}, (1, 1), 400),
        ({"content-length": "1001"}, (1, 1), 413),
        ({"content-length": "9" * 5000}, (1, 1), 413),  # no int() of 5,000 digits
        ({}, (1, 1), 411),
        ({"transfer-encoding": "gzip", "content-length": "38"}, (1, 1), 400),  # issue 12
        ({"transfer-encoding": "chunked", "content-length": "38"}, (1, 1), 400),  # smuggling
        ({"transfer-encoding": "gzip"}, (1, 1), 400),
        ({"transfer-encoding": "chunked, gzip"}, (1, 1), 400),
        ({"transfer-encoding": "chunked, chunked"}, (1, 1), 400),
        ({"transfer-encoding": ""}, (1, 1), 400),
        ({"transfer-encoding": "gzip, chunked"}, (1, 1), 501),
        ({"transfer-encoding": "chunked"}, (1, 0), 400),  # §6.1: faulty framing in HTTP/1.0
    ],
)
def test_bad_body_framing(fields: dict[str, str], version: tuple[int, int], status: int) -> None:
    with pytest.raises(BadHead) as info:
        body_length(fields, version, 1000)
    assert info.value.status == status


def chunked(data: bytes, max_body: int = 1000) -> bytes:
    return read_chunked(io.BufferedReader(io.BytesIO(data)), max_body)


CHUNKED = (
    b"5\r\nhello\r\n"
    b'6;name=value;quoted="a \\" b" ; flag\r\n world\r\n'  # chunk extensions, ignored
    b"00A\r\n0123456789\r\n"  # hex, leading zeros
    b"0\r\nX-Trailer: t\r\nY: u\r\n\r\n"  # trailers, discarded
)


def test_a_chunked_body_and_where_it_ends() -> None:
    stream = io.BufferedReader(io.BytesIO(CHUNKED + b"NEXT"))
    assert read_chunked(stream, 1000) == b"hello world0123456789"
    assert stream.read() == b"NEXT"  # the next request starts right after the body


def test_every_truncation_of_a_chunked_body_is_eof() -> None:
    for cut in range(len(CHUNKED)):
        with pytest.raises(EOFError):
            chunked(CHUNKED[:cut])


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"5\nhello\r\n0\r\n\r\n", 400),  # a bare LF ends no framing line
        (b"5\r\nhello\n0\r\n\r\n", 400),
        (b"5\r\nhelloXY0\r\n\r\n", 400),  # no CRLF after the data
        (b"0x5\r\nhello\r\n0\r\n\r\n", 400),
        (b"-5\r\nhello\r\n0\r\n\r\n", 400),
        (b" 5\r\nhello\r\n0\r\n\r\n", 400),
        (b"5 x\r\nhello\r\n0\r\n\r\n", 400),
        (b"\r\nhello\r\n0\r\n\r\n", 400),
        (b"5;\r\nhello\r\n0\r\n\r\n", 400),  # ";" with no extension name
        (b"0\r\nBad Trailer\r\n\r\n", 400),
        (b"0\r\nX: \x00\r\n\r\n", 400),
        (b"0\r\n\n", 400),
        (b"3E9\r\n", 413),  # 1001 bytes announced: refused before they are read
        (b"1F4\r\n" + b"a" * 500 + b"\r\n1F5\r\n", 413),  # the sum passes max_body
        (b"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\r\n", 413),
        (b"1\r\na\r\n" * (MAX_CHUNK_OVERHEAD // 5), 413),  # tiny chunks: framing bounded
        (b"0;x=" + b"a" * MAX_CHUNK_OVERHEAD + b"\r\n\r\n", 413),
        (b"0\r\n" + b"X: y\r\n" * (MAX_CHUNK_OVERHEAD // 6 + 1) + b"\r\n", 413),
    ],
)
def test_bad_chunked_bodies(data: bytes, status: int) -> None:
    with pytest.raises(BadHead) as info:
        chunked(data, max_body=1000)
    assert info.value.status == status


# -- the request target (RFC 9112 §3.2), the same on every Python ---------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", ("/", "")),
        ("/onebot/v11/ws?access_token=a%20b&x=", ("/onebot/v11/ws", "access_token=a%20b&x=")),
        ("//", ("//", "")),  # an absolute-path of empty segments (never a host)
        ("/a:b@c!$&'()*+,;=-._~/?/?", ("/a:b@c!$&'()*+,;=-._~/", "/?")),
        ("http://127.0.0.1:8080", ("/", "")),
        ("HTTP://example.com:/x?y", ("/x", "y")),
        ("ws://[::1]:6700/ws?a=1", ("/ws", "a=1")),
        ("wss://[::ffff:1.2.3.4]/", ("/", "")),
        ("http://%65x.com/", ("/", "")),
        ("/?q=[1]&r={x}|^`\\", ("/", "q=[1]&r={x}|^`\\")),  # as WHATWG parsers send them
    ],
)
def test_targets(target: str, expected: tuple[str, str]) -> None:
    assert split_target(target) == expected


@pytest.mark.parametrize(
    "target",
    [
        "//[:::::]",  # issue 18: Python 3.10's urlsplit lets it through
        "//[x",
        "http://[::1",
        "http://[:::::]/",
        "http://x]/",
        "http://[1.2.3.4]/",  # IPv4 in brackets
        "http://[v1.x]/",  # IPvFuture: no OneBot peer sends it
        "http://[fe80::1%25eth0]/",  # a zone ID
        "http://[::1]x/",
        "http://[::1]:x/",
        "http://user:pw@host/",  # RFC 9110 §4.2.4
        "http://host:65536/",
        "http://host:-1/",
        "http:///path",  # no host
        "http:/path",
        "http://host#frag",
        "ftp://host/",
        "mailto:a@b",
        "*",
        "",
        "path",
        "/a|b",
        "/a#b",
        "/a\\b",
        "/%zz",
        "/%4",
        "/a\xe9",  # not ASCII (a latin-1 decoded byte)
        "/\x00",
        "/?q=a b",
        '/?q="',
        "/?q=<x>",
        "/[1]",  # brackets are for a query only
    ],
)
def test_bad_targets(target: str) -> None:
    with pytest.raises(BadHead) as info:
        split_target(target)
    assert info.value.status == 400


def test_a_bad_target_says_how_to_fix_it_and_never_quotes_the_query() -> None:
    with pytest.raises(BadHead) as info:
        split_target("/x|y")
    assert "'|'" in info.value.reason and "%7C" in info.value.reason
    with pytest.raises(BadHead) as info:
        split_target('/?access_token=s3cr"t')
    assert "query" in info.value.reason and "s3cr" not in info.value.reason
    with pytest.raises(BadHead) as info:
        split_target("nowhere?access_token=s3cret")
    assert "nowhere" in info.value.reason and "s3cret" not in info.value.reason


# -- the same rules, over a socket --------------------------------------------


@pytest.fixture
def server(no_thread_leak: None) -> Iterator[HttpServer]:
    with HttpServer(port=0) as srv:
        srv.on("message")(lambda event: {"reply": "ok"})
        srv.start()
        yield srv


def exchange(server: HttpServer, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


BODY = json.dumps({"post_type": "message", "message_type": "private", "message": "hi"}).encode()


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST / HTTP/1.1\r\nContent-Length : 10\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: 10\r\nContent-Length: 11\r\n", b"400"),
        (b"POST / HTTP/2.0\r\n", b"505"),
        (b"POST / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n", b"431"),
    ],
    ids=["space-colon", "two-lengths", "http2", "too-big"],
)
def test_refusals_over_the_wire_close_the_connection(
    server: HttpServer, head: bytes, status: bytes
) -> None:
    reply = exchange(server, head + b"\r\n" + BODY)
    assert reply.startswith(b"HTTP/1.1 " + status + b" "), reply[:60]
    assert b"\r\nConnection: close\r\n" in reply


def test_keep_alive_rules(server: HttpServer) -> None:
    length = b"Content-Length: %d\r\n" % len(BODY)
    post = b"POST / HTTP/1.1\r\n" + length + b"\r\n" + BODY
    # HTTP/1.1 stays open: two requests in one write get two answers, then we close.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(post + post)
        received = b""
        while received.count(b"HTTP/1.1 200 ") < 2:
            chunk = sock.recv(65536)
            assert chunk, "closed after one request"
            received += chunk
    # HTTP/1.0 and Connection: close end after one response.
    for head in (b"POST / HTTP/1.0\r\n", b"POST / HTTP/1.1\r\nConnection: Close\r\n"):
        reply = exchange(server, head + length + b"\r\n" + BODY + post)
        assert reply.count(b"HTTP/1.1 200 ") == 1


def test_expect_100_continue(server: HttpServer) -> None:
    head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(BODY)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head)
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(BODY)
        assert b"HTTP/1.1 200 " in sock.recv(65536)


@pytest.mark.parametrize(
    "fields",
    [
        "Content-Length: +{n}",  # issue 12: Python's int() took these as {n}
        f"Content-Length: {len(BODY) // 10}_{len(BODY) % 10}",  # "3_8"
        "Transfer-Encoding: gzip\r\nContent-Length: {n}",
        "Transfer-Encoding: chunked\r\nContent-Length: {n}",
        "X\x00Y: 1\r\nContent-Length: {n}",
    ],
    ids=["plus", "underscore", "gzip-and-length", "chunked-and-length", "nul-in-name"],
)
def test_loose_heads_are_400_over_the_wire(server: HttpServer, fields: str) -> None:
    head = f"POST / HTTP/1.1\r\n{fields.format(n=len(BODY))}\r\n\r\n".encode("latin-1")
    reply = exchange(server, head + BODY)
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:60]
    assert b"\r\nConnection: close\r\n" in reply


def test_a_smuggled_request_behind_an_ambiguous_body_is_never_served(server: HttpServer) -> None:
    """TE and CL together: one reading sees two requests, the other one. We see neither."""
    seen: list[dict[str, Any]] = []
    server.on()(seen.append)
    smuggled = b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY
    body = b"0\r\n\r\n" + smuggled
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n"
    reply = exchange(server, head % len(body) + body)
    assert reply.count(b"HTTP/1.1 ") == 1 and reply.startswith(b"HTTP/1.1 400 ")
    assert seen == []


def test_chunked_posts_from_http_client(server: HttpServer) -> None:
    """The stdlib's own chunked encoder, over one keep-alive connection."""
    seen: list[dict[str, Any]] = []
    server.on()(seen.append)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for n in (1, 3, len(BODY)):  # one chunk per byte, per three bytes, one for all
            parts = [BODY[i : i + n] for i in range(0, len(BODY), n)]
            conn.request("POST", "/", iter(parts), {"Content-Type": "application/json"},
                         encode_chunked=True)  # fmt: skip
            response = conn.getresponse()
            assert (response.status, response.read()) == (200, b'{"reply":"ok"}')
    finally:
        conn.close()
    assert len(seen) == 3 and all(e["message"] == "hi" for e in seen)


def test_a_chunked_body_past_max_body_is_413_before_it_is_read(no_thread_leak: None) -> None:
    with HttpServer(port=0, max_size=100) as srv:
        srv.start()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            # 1 MiB announced, 10 bytes sent: the answer comes without the rest.
            sock.sendall(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n")
            sock.sendall(b"x" * 10)
            reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 413 ") and b"max_size=100" in reply


@pytest.mark.parametrize(
    "framing",
    [
        b"5\r\nhelloXX0\r\n\r\n",  # no CRLF after the data
        b"5\nhello\r\n0\r\n\r\n",  # a bare LF
        b"zz\r\n",
        b"0\r\nBad Trailer\r\n\r\n",
    ],
    ids=["no-crlf", "bare-lf", "not-hex", "bad-trailer"],
)
def test_malformed_chunk_framing_is_400_and_closes(server: HttpServer, framing: bytes) -> None:
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    reply = exchange(server, head + framing + b"POST / HTTP/1.1\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ") and reply.count(b"HTTP/1.1 ") == 1, reply[:80]
    assert b"\r\nConnection: close\r\n" in reply


def test_a_header_line_of_only_carriage_returns_is_400_not_a_crash(server: HttpServer) -> None:
    """``\\r\\r\\n`` stripped of its line end left nothing, and ``line[0]`` raised IndexError,
    which ended the connection's thread with a traceback and no answer."""
    assert status_of(b"Host: x\r\n\r\r\n\r\n") == 400
    reply = exchange(server, b"POST / HTTP/1.1\r\nHost: x\r\n\r\r\nContent-Length: 2\r\n\r\n{}")
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:60]
    assert b"\r\nConnection: close\r\n" in reply
