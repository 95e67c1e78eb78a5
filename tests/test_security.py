"""Tokens, secrets, bind addresses and read limits (issue 9, security).

* Every credential comparison goes through ``hmac.compare_digest`` (via
  ``codec.token_matches`` / ``codec.check_signature``), on every server path.
* No log record, at DEBUG, ever holds a raw token or secret, whatever way an
  auth failure (or success) happens; at most ``codec.mask_token``'s fingerprint.
* Servers bind 127.0.0.1 by default and warn when bound to every interface
  with nothing to keep strangers out.
* Every read path has a limit that holds before the bytes are buffered.
"""

import ast
import hmac
import inspect
import logging
import pathlib
import socket
import traceback
from collections.abc import Sequence
from typing import Any

import pytest
import requests
import websocket
from conftest import unused_port, upgrade_request, wait_until

import onebot_ref
from onebot_ref import Flavor, codec, doctor
from onebot_ref.errors import AuthError, NetworkError, ProtocolError
from onebot_ref.framer import HandshakeError, MessageReader, parse_handshake
from onebot_ref.http_client import HttpClient
from onebot_ref.http_server import HttpServer
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_client import WsClient
from onebot_ref.ws_server import WsServer

TOKEN = "Tok3n-9c1f0e77d2a4b5"
SECRET = "Secr3t-41d0aa93be6c7f"
WRONG = "Wr0ng-5e2b8c1d9f3a07"
RAW = (TOKEN, SECRET, WRONG)
PACKAGE = pathlib.Path(onebot_ref.__file__).parent  # the package under test, wherever it is


def http(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """One raw HTTP exchange; returns everything the server sent before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except OSError:
            pass
        return out


def post(
    port: int,
    target: str = "/",
    headers: Sequence[str] = (),
    body: bytes = b'{"post_type":"meta_event","self_id":1}',
) -> bytes:
    head = [f"POST {target} HTTP/1.1", f"Content-Length: {len(body)}", *headers]
    return http(port, ("\r\n".join(head) + "\r\n\r\n").encode() + body)


def handshake(port: int, target: str = "/", headers: Sequence[str] = ()) -> bytes:
    return http(port, upgrade_request(target, ["X-Self-ID: 10001", *headers]))


def assert_nothing_leaked(caplog: pytest.LogCaptureFixture) -> None:
    assert caplog.records, "expected some log records"
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        for raw in RAW:
            assert raw not in text, f"{raw!r} logged by {record.name}: {text[:200]}"


# --- constant-time comparison ------------------------------------------------------


def test_no_credential_is_compared_with_eq() -> None:
    """Source scan: no ``==``/``!=``/``in`` touches a name that holds a token or secret."""
    suspicious = ("token", "secret", "signature", "presented")
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops):
                continue
            for side in [node.left, *node.comparators]:
                name = getattr(side, "id", None) or getattr(side, "attr", None) or ""
                if any(word in name.lower() for word in suspicious):
                    found.append(f"{path.name}:{node.lineno}")
    assert not found, f"credentials compared without hmac.compare_digest at {found}"


def test_every_server_path_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append(len(a))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module codec calls it through
    with HttpServer(port=0, access_token=TOKEN, secret=SECRET) as server:
        assert post(server.port, headers=[f"Authorization: Bearer {WRONG}"]).startswith(
            b"HTTP/1.1 403"
        )
        assert len(calls) == 1
        body = b'{"post_type":"meta_event","self_id":1}'
        sig = f"X-Signature: {codec.sign(body, WRONG)}"
        reply = post(server.port, f"/?access_token={TOKEN}", [sig], body)
        assert reply.startswith(b"HTTP/1.1 403") and len(calls) == 3  # token, then signature
    with WsServer(port=0, access_token=TOKEN) as ws_server:
        assert handshake(ws_server.port, headers=[f"Authorization: Token {WRONG}"]).startswith(
            b"HTTP/1.1 403"
        )
        assert len(calls) == 4
    fake = FakeOneBot(access_token=TOKEN)
    assert fake.check_token(f"Bearer {WRONG}", "") == 403 and len(calls) == 5


# --- never logged ------------------------------------------------------------------------


def test_http_server_logs_no_credential(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = b'{"post_type":"meta_event","self_id":1}'
    good_sig = f"X-Signature: {codec.sign(body, SECRET)}"
    with HttpServer(port=0, access_token=TOKEN, secret=SECRET) as server:
        statuses = [
            post(server.port)[9:12],  # no token
            post(server.port, headers=[f"Authorization: Bearer {WRONG}"])[9:12],
            post(server.port, f"/?access_token={WRONG}")[9:12],
            post(server.port, f"/?access_token={TOKEN}")[9:12],  # right token, no signature
            post(server.port, f"/?access_token={TOKEN}", [f"X-Signature: sha1={WRONG}"])[9:12],
            post(server.port, f"/?access_token={TOKEN}", [good_sig], body)[9:12],  # accepted
            post(server.port, f"/nowhere?access_token={TOKEN}")[9:12],
            http(server.port, f"GET /?access_token={TOKEN} HTTP/1.1\r\n\r\n".encode())[9:12],
            http(server.port, f"POST /?access_token={TOKEN} HTTP/1.1 x\r\n\r\n".encode())[9:12],
        ]
    assert statuses[:8] == [b"401", b"403", b"403", b"401", b"403", b"204", b"404", b"405"]
    assert_nothing_leaked(caplog)
    assert "access_token=***" in caplog.text  # the request lines are still logged


def test_ws_server_logs_no_credential(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with WsServer(port=0, access_token=TOKEN) as server:
        replies = [
            handshake(server.port),
            handshake(server.port, headers=[f"Authorization: Bearer {WRONG}"]),
            handshake(server.port, f"/?access_token={WRONG}"),
            handshake(server.port, headers=[f"Authorization : Bearer {TOKEN}"]),  # malformed
            handshake(server.port, headers=[f" Bearer {TOKEN}"]),  # a folded line
            http(server.port, f"GET /?access_token={TOKEN} HTTP/1.1 x\r\n\r\n".encode()),
            http(server.port, f"GET http://[?access_token={TOKEN} HTTP/1.1\r\n\r\n".encode()),
        ]
    assert [r[9:12] for r in replies] == [b"401", b"403", b"403", b"400", b"400", b"400", b"400"]
    assert_nothing_leaked(caplog)


@pytest.mark.parametrize("flavor", ["spec", "go-cqhttp", "napcat"])
def test_client_modes_log_no_credential(flavor: Flavor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeOneBot(flavor=flavor, access_token=TOKEN) as fake:
        with HttpClient(fake.start_http_api(), access_token=WRONG) as client:
            with pytest.raises(AuthError) as info:
                client.get_status()
            assert WRONG not in str(info.value)
        ws_client = WsClient(fake.start_ws_server(), access_token=WRONG, token_in_query=True)
        with pytest.raises(AuthError) as info:
            ws_client.start()
        ws_client.close()
        assert WRONG not in str(info.value)
        # The reverse side: the fake dials our server with its (right or wrong) token.
        with WsServer(port=0, access_token=WRONG) as server:
            reverse = fake.connect_reverse(
                server.url + f"?access_token={TOKEN}", reconnect_interval=0.05
            )
            wait_until(lambda: reverse.attempts >= 2, 5, "the fake dialling twice")
            reverse.close()
    assert_nothing_leaked(caplog)


def _shown(exc: BaseException) -> str:
    """Everything a traceback of ``exc`` prints, its chain included."""
    return "".join(traceback.format_exception(exc))


def test_http_client_errors_and_logs_quote_no_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with HttpClient(f"http://127.0.0.1:{unused_port()}/?access_token={TOKEN}") as client:
        with pytest.raises(NetworkError) as refused:
            client.get_status()
    assert "/get_status?access_token=***: connection refused" in str(refused.value)
    with FakeOneBot(access_token=TOKEN) as fake:
        with HttpClient(f"{fake.start_http_api()}/?access_token={TOKEN}") as client:
            assert client.get_status()["good"] is True  # a token in base_url's query works
            fake.faults.close_mid_call = 1
            with pytest.raises(NetworkError) as closed:
                client.get_status()
    assert "access_token=***" in str(closed.value)
    for exc in (refused.value, closed.value):
        assert TOKEN not in _shown(exc)
    assert_nothing_leaked(caplog)  # urllib3 logs each request line at DEBUG, too


def test_fake_http_api_logs_no_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "onebot_ref")
    with FakeOneBot(access_token=TOKEN) as fake:
        url = fake.start_http_api()
        assert requests.get(f"{url}/get_status?access_token={TOKEN}", timeout=5).ok
        assert requests.get(f"{url}/get_status?access_token={WRONG}", timeout=5).status_code == 403
        assert fake.http_api is not None  # started above
        http(
            fake.http_api.port,
            f"GET /?access_token={TOKEN} HTTP/1.1 x\r\n\r\n".encode(),
        )
    assert_nothing_leaked(caplog)
    assert "access_token=***" in caplog.text  # the stdlib request lines are still logged


def test_ws_client_errors_quote_no_token() -> None:
    client = WsClient(f"ws://127.0.0.1:{unused_port()}/?access_token={TOKEN}", reconnect=False)
    with pytest.raises(NetworkError) as caught:
        client.start()
    client.close()
    assert "/?access_token=***: " in str(caught.value)
    assert TOKEN not in _shown(caught.value)


@pytest.mark.parametrize("mode", ["--http", "--ws"])
@pytest.mark.parametrize("json_out", [[], ["--json"]])
def test_doctor_reports_quote_no_token(
    mode: str, json_out: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    scheme = "http" if mode == "--http" else "ws"
    url = f"{scheme}://127.0.0.1:{unused_port()}/?access_token={TOKEN}"
    assert doctor.main([mode, url, "--timeout", "1", *json_out]) == 1
    out = capsys.readouterr().out
    assert TOKEN not in out and "access_token=***" in out


def test_redact() -> None:
    assert (
        codec.redact("POST /?access_token=abc&x=1 HTTP/1.1")
        == "POST /?access_token=***&x=1 HTTP/1.1"
    )
    assert codec.redact("/?ACCESS_TOKEN=abc") == "/?ACCESS_TOKEN=***"
    assert codec.mask_token(TOKEN) == "To…(20 chars)"


# --- bind addresses ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [HttpServer, WsServer, FakeOneBot])
def test_servers_bind_loopback_by_default(cls: type) -> None:
    assert inspect.signature(cls).parameters["host"].default == "127.0.0.1"


WILDCARD = "all interfaces"


def _ws_warnings(
    caplog: pytest.LogCaptureFixture, host: str, **options: Any
) -> list[logging.LogRecord]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, "onebot_ref"), WsServer(host, 0, **options):
        pass
    return [r for r in caplog.records if WILDCARD in r.getMessage()]


def _http_warnings(
    caplog: pytest.LogCaptureFixture, host: str, **options: Any
) -> list[logging.LogRecord]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, "onebot_ref"), HttpServer(host, 0, **options):
        pass
    return [r for r in caplog.records if WILDCARD in r.getMessage()]


def test_wildcard_bind_without_credentials_warns(caplog: pytest.LogCaptureFixture) -> None:
    assert _http_warnings(caplog, "0.0.0.0")
    assert not _http_warnings(caplog, "0.0.0.0", secret=SECRET)
    assert not _http_warnings(caplog, "0.0.0.0", access_token=TOKEN)
    assert not _http_warnings(caplog, "127.0.0.1")
    assert _ws_warnings(caplog, "0.0.0.0")
    assert not _ws_warnings(caplog, "0.0.0.0", access_token=TOKEN)
    assert not _ws_warnings(caplog, "127.0.0.1")
    assert not any(TOKEN in r.getMessage() for r in caplog.records)


def test_ipv6_wildcard_bind_warns(caplog: pytest.LogCaptureFixture) -> None:
    assert _ws_warnings(caplog, "::")  # WsServer binds "::" (IPv6, and IPv4 where it can)
    assert not _ws_warnings(caplog, "::", access_token=TOKEN)


# --- a limit on every read path ---------------------------------------------------------


def test_http_server_refuses_huge_bodies_and_heads_without_reading_them() -> None:
    with HttpServer(port=0, max_size=1000) as server:
        head = f"POST / HTTP/1.1\r\nContent-Length: {2**63}\r\n\r\n".encode()
        assert http(server.port, head + b"x" * 100).startswith(b"HTTP/1.1 413 ")
        line = b"POST / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n"
        assert http(server.port, line).startswith(b"HTTP/1.1 431 ")
        many = b"POST / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n"
        assert http(server.port, many).startswith(b"HTTP/1.1 431 ")
        target = b"POST /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"
        assert http(server.port, target).startswith(b"HTTP/1.1 414 ")


def test_fake_http_api_refuses_huge_bodies() -> None:
    with FakeOneBot() as fake:
        port = int(fake.start_http_api().rsplit(":", 1)[1])
        head = f"POST /get_status HTTP/1.1\r\nContent-Length: {2**63}\r\n\r\n".encode()
        assert http(port, head).startswith(b"HTTP/1.1 413 ")


def _announce_huge_frame(port: int, target: str = "/") -> int:
    """Handshake, then a frame header announcing 2**62 bytes; returns the close code."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}{target}", timeout=10)
    try:
        assert ws.sock is not None  # connected
        ws.sock.sendall(bytes([0x82, 0xFF]) + (2**62).to_bytes(8, "big") + b"\0\0\0\0" + b"x" * 10)
        ws.settimeout(10)
        while True:  # skip the fake's lifecycle event
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big")
    finally:
        ws.shutdown()


def test_ws_servers_refuse_huge_frames_from_the_header() -> None:
    with WsServer(port=0, max_size=1 << 20) as server:
        assert _announce_huge_frame(server.port) == 1009
    with FakeOneBot() as fake:  # its forward server reuses ws_server's Connection
        port = int(fake.start_ws_server().rsplit(":", 1)[1].strip("/"))
        assert _announce_huge_frame(port) == 1009


def test_framer_limits_hold_before_buffering() -> None:
    reader = MessageReader(mask=True, max_message=100)
    reader.feed(bytes([0x82, 0xFF]) + (2**40).to_bytes(8, "big") + b"\0\0\0\0")
    with pytest.raises(ProtocolError) as info:
        reader.next_message()
    assert info.value.close_code == 1009 and reader.buffered < 100
    with pytest.raises(HandshakeError) as info:
        parse_handshake(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 10_000, max_size=16384)
    assert info.value.status == 431
