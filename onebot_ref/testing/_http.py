"""FakeOneBot's HTTP API server: the implementation's side of mode 1.

Spec: ``communication/http.md``.

``GET`` or ``POST /<action>`` (a trailing slash is allowed, except in the
go-cqhttp flavour, which breaks on it like the real one). Parameters come from
the query string, an ``application/x-www-form-urlencoded`` body or a JSON
object body; query beats form beats JSON, as in CQHTTP. Status codes follow
the spec table, bent per flavour:

=====================  ========  ==========  ==================================
condition              spec      go-cqhttp   napcat
=====================  ========  ==========  ==================================
no token / wrong       401/403   401/403     403 ``{"message":"token verify…"}``
bad JSON body          400       400         400 ``Invalid JSON``
unknown Content-Type   406       ignored     parsed as JSON
unknown action         404       200+404     200, retcode 200
=====================  ========  ==========  ==================================
"""

import json
import logging
import socket
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .. import codec
from .._http_base import ManagedHTTPServer
from ..errors import DecodeError
from ._host import Host

__all__ = ["FakeHttpApi"]

log = logging.getLogger(__name__)

MAX_BODY = 16 * 2**20


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60.0  # seconds per read or send: a silent client cannot hold its thread forever
    server: "FakeHttpApi"  # type: ignore[assignment]  # ours, not a socketserver

    def log_message(self, format: str, *args: Any) -> None:
        # The request line may carry ?access_token=; every stdlib log line comes here.
        log.debug("%s %s", self.address_string(), codec.redact(format % args))

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self.handle_action()

    def do_POST(self) -> None:
        self.handle_action()

    def reply(self, status: int, body: bytes = b"", content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.reply(400 if length < 0 else 413)
            return None
        return self.rfile.read(length)

    def parse_params(self, body: bytes, query: str) -> dict[str, Any] | int:
        """The merged parameters, or the HTTP status to refuse the body with."""
        flavor = self.server.fake.flavor
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        params: dict[str, Any] = {}
        if self.command == "POST" and body:
            as_json = ctype == "application/json" or (
                flavor == "napcat" and ctype != "application/x-www-form-urlencoded"
            )
            if as_json:
                try:
                    parsed = codec.loads(body)
                except DecodeError:
                    return 400
                if not isinstance(parsed, dict):
                    return 400
                params.update(parsed)
            elif ctype == "application/x-www-form-urlencoded":
                params.update(parse_qsl(body.decode("utf-8", "replace")))
            elif ctype and flavor == "spec":
                return 406
        params.update(parse_qsl(query))
        params.pop("access_token", None)
        for key, value in params.items():  # go-cqhttp parses JSON-looking form values
            if isinstance(value, str) and value[:1] in ("{", "["):
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    pass
        return params

    def handle_action(self) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        body = self.read_body()
        if body is None:
            return
        status = fake.check_token(self.headers.get("Authorization"), url.query)
        if status:
            if fake.flavor == "napcat":
                self.reply(403, b'{"message":"token verify failed!"}', "text/html")
            else:
                self.reply(status)
            return
        action = url.path[1:]
        if fake.flavor != "go-cqhttp":
            action = action.removesuffix("/")
        if not action:
            if fake.flavor == "napcat":
                hello = fake.world.ok({})
                hello.update(message="NapCat4 Is Running", echo=None)
                self.reply(200, codec.dumps(hello))
            else:
                self.reply(404)
            return
        params = self.parse_params(body, url.query)
        if isinstance(params, int):
            self.reply(params, b"Invalid JSON" if fake.flavor == "napcat" else b"", "text/plain")
            return
        if fake.faults.take("close_mid_call"):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        response = fake.answer({"action": action, "params": params}, "http-client")
        if response is None:  # dropped: say nothing and hang up
            self.close_connection = True
            return
        if response.get("retcode") == 1404 and fake.flavor == "spec":
            self.reply(404)
            return
        self.reply(200, codec.dumps(response))


class FakeHttpApi(ManagedHTTPServer):
    """A ManagedHTTPServer bound to one FakeOneBot."""

    def __init__(self, fake: Host, address: tuple[str, int]) -> None:
        self.fake = fake
        super().__init__(address, _Handler, "fake-http-api", ssl_context=fake.ssl_context)

    def start(self) -> str:
        """Serve in a thread; return the base URL (``https://`` with TLS)."""
        self.start_thread()
        return self.base_url
