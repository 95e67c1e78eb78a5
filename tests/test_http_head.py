"""The request-head reader behind HttpServer: pure tests, then the same rules over a socket."""

import io
import json
import socket
from collections.abc import Iterator

import pytest

from onebot_ref.http_head import MAX_FIELDS, MAX_HEAD, BadHead, parse_request_line, read_fields
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
