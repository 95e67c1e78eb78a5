"""The recorder's HTTP relay: a reverse proxy for the HTTP API, and for HTTP POST events.

HTTP API (the bot's ``http-client`` mode): the bot sends its calls to the
recorder, which sends them on to the implementation's HTTP API. HTTP POST
(``http-server``): the implementation posts its events to the recorder, which
posts them on to the bot's HTTP server, and the bot's answer (a quick
operation, or 204) goes back the same way. Both are one relay: a request in,
the same request out, the answer back.

Built from the library's own pieces: :class:`onebot_ref._serve.Server`
accepts (the cap, the reaper, a bounded close), each request head is read by
:mod:`onebot_ref._http_head` (the HTTP server's own rules and limits:
``max_header``, 400/411/413/431/505 with a one-line reason) within the time
:class:`onebot_ref._http_handler.Clock` allows, and every answer of ours is
built by :func:`~onebot_ref._http_head.response`. The other side is reached
with the stdlib's ``http.client``, one keep-alive connection per accepted
connection, each read and write within ``timeout``.

**Passed on unchanged:** the method, the request target (its path behind the
path of the ``--to`` URL, its query, ``access_token=`` too, behind any query of
the ``--to`` URL), every header
field but those of one hop (``Host``, ``Connection``, ``Keep-Alive``,
``Transfer-Encoding``, ``TE``, ``Trailer``, ``Upgrade``, ``Proxy-*``), so
``Authorization`` and ``X-Signature`` too, and the body's bytes (a
``chunked`` body is passed on whole, with its ``Content-Length``: the
signature covers the bytes, not their framing). The answer comes back with
its status, its fields (the same hop-by-hop ones aside) and its body's bytes.
When the other side cannot be reached, or answers nothing, the request is
answered ``502 Bad Gateway`` with the reason, and the transcript says so.

It owns relaying HTTP requests. It must never change a body or decide who
may post or call (the two peers do).
"""

import http.client
import io
import logging
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from .._http_handler import Clock
from .._http_head import (
    MAX_HEAD,
    BadHead,
    body_length,
    parse_request_line,
    read_chunked,
    read_fields,
    refusal,
    response,
    split_target,
)
from .._serve import Server
from .._tls import url_host
from ..codec import redact
from ..errors import ConfigError
from ._transcript import BOT_TO_ONEBOT, ONEBOT_TO_BOT, Transcript, payload_fields, redact_headers

__all__ = ["HttpRelay"]

log = logging.getLogger("onebot_ref.record")

# RFC 9110 §7.6.1: fields that belong to one connection, never passed on; and Host
# and Content-Length, which we write ourselves for the other hop.
HOP_HEADERS = frozenset(
    ["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
     "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length", "expect"]
)  # fmt: skip
MAX_SIZE = 64 * 2**20  # bytes per body, each way
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class HttpRelay:
    """A recording HTTP reverse proxy for one mode: ``http-client`` (API) or ``http-server`` (POST).

    Args:
        transcript: where every request and answer goes.
        mode: ``"http-client"``: the bot calls us, we call the implementation's
            HTTP API at ``target``; ``"http-server"``: the implementation posts
            events to us, we post them to the bot's HTTP server at ``target``.
        host, port: where to listen (port 0 picks a free one).
        target: the ``http://`` (or ``https://``) URL of the other side.
        timeout: seconds for each read and write towards ``target``.
        max_size: the largest body relayed, each way (413 for a request beyond it).
        max_header: the largest request head (431 beyond it).
        idle_timeout: seconds an accepted connection may stay idle.
        max_connections: connections relayed at once; one more is answered 503.
        ssl_context: listen with TLS (``https://``).
        client_ssl_context: how to verify an ``https://`` target (default: the system's CAs).

    Raises:
        ConfigError: an unknown mode or a target that is not an HTTP URL.
    """

    def __init__(
        self,
        transcript: Transcript,
        mode: str,
        host: str,
        port: int,
        target: str,
        *,
        timeout: float = 30.0,
        max_size: int = MAX_SIZE,
        max_header: int = MAX_HEAD,
        idle_timeout: float = 60.0,
        max_connections: int | None = 128,
        ssl_context: ssl.SSLContext | None = None,
        client_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if mode not in ("http-client", "http-server"):
            raise ConfigError(f"mode {mode!r} is not an HTTP mode; use http-client or http-server")
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--to {redact(target)!r} for {mode} must be an http:// URL")
        self.transcript = transcript
        self.mode = mode
        self.target = target
        self.timeout = timeout
        self.max_size = max_size
        self.max_header = max_header
        self.idle_timeout = idle_timeout
        self.ssl_context = ssl_context
        self.client_ssl_context = client_ssl_context
        self.request_dir = BOT_TO_ONEBOT if mode == "http-client" else ONEBOT_TO_BOT
        self.answer_dir = ONEBOT_TO_BOT if mode == "http-client" else BOT_TO_ONEBOT
        self.server = Server(
            host, port, self._serve, name=f"record-{mode}", ssl_context=ssl_context,
            max_connections=max_connections,
        )  # fmt: skip

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        """Where to point the side that sends requests: ``http://host:port`` (or ``https://``)."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{url_host(self.server.host)}:{self.port}"

    def start(self) -> None:
        """Listen and relay on daemon threads; returns once the port listens."""
        self.server.start()

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting and end every connection within ``timeout`` seconds."""
        self.server.close(timeout)

    # -- one accepted connection, on its own thread -----------------------------------

    def _serve(self, sock: socket.socket, address: Any, deadline: float) -> None:
        conn_id = self.transcript.next_conn()
        sock.settimeout(None)  # the reaper bounds reads and writes (Clock)
        clock = Clock(sock, self.idle_timeout, self.timeout)
        self.server.watch(clock)
        upstream = _Upstream(self.target, self.timeout, self.client_ssl_context)
        try:
            with io.BufferedReader(clock) as rfile:
                while self._relay_one(sock, rfile, clock, upstream, conn_id):
                    clock.next_request()
        finally:
            self.server.unwatch(clock)
            upstream.close()

    def _relay_one(
        self,
        sock: socket.socket,
        rfile: io.BufferedIOBase,
        clock: Clock,
        upstream: "_Upstream",
        conn_id: int,
    ) -> bool:
        """Relay one request and its answer; False when the connection is over."""
        # 1) Read the request: head and body, within the limits of our own HTTP server.
        try:
            request = self._read_request(sock, rfile)
        except BadHead as exc:
            self._write(sock, clock, refusal(exc.status, exc.reason))
            return False
        except (EOFError, OSError):
            return False
        if request is None:
            return False
        method, target, pairs, body, close = request
        self.transcript.write(
            self.mode, conn_id, self.request_dir, "request", method=method,
            target=redact(target), headers=redact_headers(pairs), **payload_fields(body),
        )  # fmt: skip
        # 2) Pass it on and take the answer; the other side's time is bounded by timeout.
        clock.handlers_running()
        try:
            status, headers, answer = upstream.send(method, target, pairs, body, self.max_size)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            reason = f"cannot relay to {redact(self.target)}: {exc}"
            log.warning("%s #%d: %s", self.mode, conn_id, redact(str(reason)))
            self.transcript.write(self.mode, conn_id, self.answer_dir, "error", reason=reason)
            self._write(sock, clock, refusal(502, reason))
            return False
        self.transcript.write(
            self.mode, conn_id, self.answer_dir, "response", status=status,
            headers=redact_headers(headers), **payload_fields(answer),
        )  # fmt: skip
        # 3) Answer: the same status, fields and body bytes.
        passed = [(n, v) for n, v in headers if n.lower() not in HOP_HEADERS]
        data = response(status, answer, passed, close=close, head_only=method == "HEAD")
        return self._write(sock, clock, data) and not close

    def _read_request(
        self, sock: socket.socket, rfile: io.BufferedIOBase
    ) -> tuple[str, str, list[tuple[str, str]], bytes, bool] | None:
        """``(method, target, fields, body, close)``, or None when the peer left between requests.

        Raises:
            BadHead: the status and reason to refuse with (the connection then closes).
            EOFError: the peer left mid-request.
        """
        line = rfile.readline(self.max_header + 1)
        if not line:
            return None
        if not line.endswith(b"\n"):
            if len(line) > self.max_header:
                raise BadHead(414, f"request line over max_header={self.max_header} bytes")
            raise EOFError("the peer left mid-request")
        method, target, version = parse_request_line(line.decode("iso-8859-1").rstrip("\r\n"))
        split_target(target)
        fields, pairs = read_fields(rfile, self.max_header, len(line))
        options = {o.strip() for o in fields.get("connection", "").lower().split(",")}
        close = "close" in options or (version < (1, 1) and "keep-alive" not in options)
        body = b""
        if "content-length" in fields or "transfer-encoding" in fields:
            length = body_length(fields, version, self.max_size)
            if fields.get("expect", "").lower() == "100-continue" and version >= (1, 1):
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            if length is None:
                body = read_chunked(rfile, self.max_size)
            else:
                body = rfile.read(length)
                if len(body) < length:
                    raise EOFError("the peer left mid-body")
        return method, target, pairs, body, close

    def _write(self, sock: socket.socket, clock: Clock, data: bytes) -> bool:
        clock.writing()  # the reaper cuts a write that stays stuck past idle_timeout
        try:
            sock.sendall(data)
        except OSError:
            return False
        return True


class _Upstream:
    """The keep-alive connection to the other side of one accepted connection."""

    def __init__(self, target: str, timeout: float, ssl_context: ssl.SSLContext | None) -> None:
        parts = urlsplit(target)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.netloc = parts.netloc.rpartition("@")[2]
        self.prefix = parts.path.rstrip("/")
        self.query = parts.query  # goes before the request's own
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self.ssl_context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def send(
        self, method: str, target: str, pairs: list[tuple[str, str]], body: bytes, max_size: int
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """The answer to one request: status, fields and body.

        A request sent on a kept-alive connection that the other side had closed
        meanwhile (it found nothing to read) is sent once more on a new one.

        Raises:
            OSError, http.client.HTTPException: the other side cannot be reached
                or broke the exchange; ValueError: its body is over ``max_size``.
        """
        if "://" in target:  # absolute-form: keep only its path and query
            parts = urlsplit(target)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        own_path, _, own_query = target.partition("?")
        query = "&".join(q for q in (self.query, own_query) if q)  # --to's query first, as WS
        path = self.prefix + own_path + (f"?{query}" if query else "")
        for attempt in (1, 2):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = self._connect()
            try:
                return self._exchange(self.conn, (method, path), pairs, body, max_size)
            except STALE:
                self.close()
                if not reused or attempt == 2:
                    raise
            except BaseException:
                self.close()
                raise
        raise AssertionError("not reached")  # pragma: no cover

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        line: tuple[str, str],
        pairs: list[tuple[str, str]],
        body: bytes,
        max_size: int,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        method, path = line
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", self.netloc)
        for name, value in pairs:
            if name.lower() not in HOP_HEADERS:
                conn.putheader(name, value)
        if body or method not in ("GET", "HEAD", "OPTIONS"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        answer = conn.getresponse()
        if answer.length is not None and answer.length > max_size:
            raise ValueError(f"the answer's body of {answer.length} bytes is over max_size")
        data = answer.read(max_size + 1) if method != "HEAD" else b""
        if len(data) > max_size:
            raise ValueError(f"the answer's body is over max_size={max_size} bytes")
        if answer.will_close:
            self.close()
        return answer.status, answer.getheaders(), data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
