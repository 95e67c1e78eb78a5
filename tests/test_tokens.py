"""The access-token rule, on both sides of every mode: a token is its UTF-8 bytes.

Clients send those bytes in the ``Authorization`` header and percent-encode
them in ``?access_token=``; servers read header bytes as latin-1 (RFC 9110
section 5.5) and ``codec.token_matches`` compares bytes. A token no header can
carry is refused when a client or server is built (``codec.valid_token``).
Each side is checked against an independent peer (http.server, requests,
wsproto), and all four modes against FakeOneBot in ``test_against_fake.py``.
"""

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

import pytest
import requests
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, RejectConnection
from wsproto.events import Request as WsRequest

from onebot_ref.errors import AuthError, ConfigError
from onebot_ref.http_client import HttpClient
from onebot_ref.http_server import HttpServer
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_client import WsClient
from onebot_ref.ws_server import WsServer

TOKEN = "令牌-café-你"  # 你 is E4 BD A0: its last byte, read as latin-1, is U+00A0
WIRE = TOKEN.encode("utf-8")
EVENT = b'{"time":1,"self_id":10001,"post_type":"meta_event","meta_event_type":"heartbeat"}'


# -- what cannot travel is refused at construction, everywhere ---------------------

CONSTRUCTORS = {
    "HttpClient": lambda token: HttpClient("http://127.0.0.1:9", access_token=token),
    "HttpServer": lambda token: HttpServer(port=0, access_token=token),
    "WsClient": lambda token: WsClient("ws://127.0.0.1:9/", access_token=token),
    "WsServer": lambda token: WsServer(port=0, access_token=token),
    "FakeOneBot": lambda token: FakeOneBot(access_token=token),
}


@pytest.mark.parametrize("token", ["", "tok\r\nX-Evil: 1", "tok\n", " tok", "tok\t", "t\x00k"])
@pytest.mark.parametrize("make", CONSTRUCTORS.values(), ids=CONSTRUCTORS.keys())
def test_every_constructor_refuses_a_token_that_cannot_travel(
    make: Any, token: str, no_thread_leak: None
) -> None:
    with pytest.raises(ConfigError, match="access_token") as caught:
        make(token)
    assert isinstance(caught.value, ValueError)


# -- http_client: our HttpClient against http.server -------------------------------


class Checker(BaseHTTPRequestHandler):
    """An HTTP API that wants ``Authorization: Bearer`` + the token's UTF-8 bytes."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        raw = (self.headers.get("Authorization") or "").encode("latin-1")  # the octets sent
        ok = raw == b"Bearer " + WIRE
        body = b'{"status":"ok","retcode":0,"data":null}' if ok else b""
        self.send_response(200 if ok else 403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def checker(no_thread_leak: None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Checker)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_http_client_sends_the_token_as_utf8_bytes(checker: str) -> None:
    with HttpClient(checker, access_token=TOKEN) as bot:
        assert bot.get_status() is None
    with HttpClient(checker, access_token="令牌") as bot, pytest.raises(AuthError):
        bot.get_status()


# -- http_server: requests against our HttpServer ----------------------------------


def test_http_server_takes_the_token_from_a_utf8_header_or_the_query(
    no_thread_leak: None,
) -> None:
    with HttpServer(port=0, access_token=TOKEN) as server:
        url = server.url

        def post(**kwargs: Any) -> int:
            return requests.post(url, data=EVENT, timeout=5, **kwargs).status_code

        assert post(headers={"Authorization": b"Bearer " + WIRE}) == 204
        assert post(headers={"Authorization": b"Token " + WIRE}) == 204
        assert post(params={"access_token": TOKEN}) == 204  # percent-encoded UTF-8
        assert post(headers={"Authorization": b"Bearer " + WIRE[:-1]}) == 403
        assert post(headers={"Authorization": "Bearer 令牌-café-".encode()}) == 403


# -- ws_server: a wsproto client against our WsServer -------------------------------
# (wsproto sends header bytes as given; websockets before 17 refuses non-ASCII values)


def wsproto_upgrade(port: int, target: str, headers: list[tuple[bytes, bytes]]) -> Any:
    """Open a WebSocket with wsproto over a raw socket; the server's answer event."""
    conn = WSConnection(ConnectionType.CLIENT)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(conn.send(WsRequest(host="127.0.0.1", target=target, extra_headers=headers)))
        while True:
            data = sock.recv(65536)
            conn.receive_data(data or None)
            for event in conn.events():
                if isinstance(event, AcceptConnection | RejectConnection):
                    if isinstance(event, AcceptConnection):
                        sock.sendall(conn.send(Message(data=EVENT.decode())))
                        sock.sendall(conn.send(CloseConnection(code=1000)))
                    return event
            assert data, "the server closed without answering the upgrade"


def test_ws_server_takes_the_token_from_a_utf8_header_or_the_query(
    no_thread_leak: None,
) -> None:
    with WsServer(port=0, access_token=TOKEN) as server:
        auth = [(b"X-Self-ID", b"10001"), (b"Authorization", b"Bearer " + WIRE)]
        assert isinstance(wsproto_upgrade(server.port, "/", auth), AcceptConnection)
        query = f"/?access_token={quote(TOKEN)}"
        assert isinstance(wsproto_upgrade(server.port, query, []), AcceptConnection)
        wrong = [(b"Authorization", b"Bearer " + WIRE[:-3])]  # 你 missing
        refused = wsproto_upgrade(server.port, "/", wrong)
        assert isinstance(refused, RejectConnection) and refused.status_code == 403


# -- ws_client: our WsClient against a wsproto server -------------------------------


def test_ws_client_sends_the_token_as_utf8_bytes(no_thread_leak: None) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        conn = WSConnection(ConnectionType.SERVER)
        sock, _ = listener.accept()
        with sock:
            sock.settimeout(5)
            while not seen:
                conn.receive_data(sock.recv(65536))
                for event in conn.events():
                    if isinstance(event, WsRequest):
                        headers = dict(event.extra_headers)
                        seen.append(headers.get(b"authorization", b""))
                        sock.sendall(conn.send(AcceptConnection()))
            try:  # until the client closes
                while sock.recv(65536):
                    pass
            except OSError:
                pass

    thread = threading.Thread(target=serve)
    thread.start()
    # The peer never answers our Close: a short close_timeout, not 5 s per run.
    client = WsClient(
        f"ws://127.0.0.1:{listener.getsockname()[1]}/", access_token=TOKEN, close_timeout=0.5
    )
    try:
        client.start()
        assert client.connected
    finally:
        client.close()
        thread.join(5)
        listener.close()
    assert seen == [b"Bearer " + WIRE]


def test_ws_client_puts_the_token_in_the_query_as_percent_encoded_utf8() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    client = WsClient(
        f"ws://127.0.0.1:{listener.getsockname()[1]}/",
        access_token=TOKEN,
        token_in_query=True,
        connect_timeout=1,
        reconnect=False,
    )
    request = b""

    def accept() -> None:
        nonlocal request
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)

    thread = threading.Thread(target=accept)
    thread.start()
    with pytest.raises(Exception):  # noqa: B017 - the listener never answers; only the request matters
        client.start()
    client.close()
    thread.join(5)
    listener.close()
    assert f"?access_token={quote(TOKEN)} ".encode() in request.split(b"\r\n")[0]
