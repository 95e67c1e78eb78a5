"""Mode 2 of 4 — HTTP POST. OneBot is the HTTP client; we are the HTTP server.
Spec: communication/http-post.md.

The implementation POSTs every event, one JSON object per request, to the URL
configured on its side (go-cqhttp: ``servers: - http: post: - url:``; NapCat:
an "HTTP client" network entry)::

    POST / HTTP/1.1
    Content-Type: application/json
    X-Self-ID: 10001
    X-Signature: sha1=7758ad…   (only when a secret is set on both sides)

    {"time":1700000000,"self_id":10001,"post_type":"message",...}

We answer ``204 No Content``, or ``200`` with a JSON object: the *quick
operation* to apply to the event (``{"reply": "hi"}``, ``{"approve": true}``…,
spec ``event/*.md``). Our handlers produce it: the request thread runs them
(:meth:`Registry.dispatch`) and the first dict one returns is the answer. So
handlers here should be quick: go-cqhttp gives up after 5 s and posts the same
event again, up to three times. A handler that raises is logged and we answer
204, never 500, which go-cqhttp would also retry. Handlers slower than
``PATIENCE`` are logged with that warning, and ``dedup=60`` answers a second
copy of the same bytes within 60 s with 204 instead of running it again.

Checks, in order, each with its own status and a one-line reason: method (405),
path (404), ``Content-Length`` (411/400) and ``max_body`` (413), Content-Type
(415; the spec's HTTP API table says 406 for the same thing), ``X-Signature``
(401 missing / 403 wrong; HMAC-SHA1 over the raw bytes), JSON (400).

The stdlib answers each keep-alive request with two writes (headers, then
body) on a socket that still has Nagle's algorithm on; with the peer's delayed
ACK that stalls every response by ~40 ms on Linux. We disable Nagle and buffer
the response so that it leaves in one write. Threads: one per connection
(``ThreadingHTTPServer``), all stopped by :meth:`HttpServer.close`.

TLS: with ``ssl_context=`` or ``certfile=``/``keyfile=`` the URL is
``https://``; the connection's own thread checks the first byte and runs the
TLS handshake within ``handshake_timeout`` (see :mod:`onebot_ref.tls`).
``host="::"`` listens on IPv6 (and IPv4 too where the OS allows).
"""

import functools
import http.client
import io
import logging
import socket
import ssl
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .api import STANDARD_ACTIONS, OneBotApi
from .codec import (
    check_signature,
    dumps,
    loads,
    mask_token,
    parse_authorization,
    redact,
    token_matches,
)
from .dedup import Recent
from .errors import DecodeError, NotConnected
from .http_base import ManagedHTTPServer
from .http_head import BadHead, parse_request_line, read_fields
from .registry import Handler, Registry
from .tls import server_context

__all__ = ["EventHandler", "HttpServer", "ManagedHTTPServer"]

log = logging.getLogger(__name__)

JSON_TYPES = ("application/json", "text/json")
PATIENCE = 5.0  # seconds go-cqhttp waits for our answer before it posts the event again
_REASONS = {status.value: status.phrase for status in HTTPStatus}
WILDCARD_HOSTS = ("", "0.0.0.0", "::")  # listening on every interface


class _Clock(io.RawIOBase):
    """A connection's reads, and the time by which the server's reaper may cut it.

    The socket itself has no timeout: a timeout makes every ``recv`` and ``send``
    wait in ``poll()`` first, which cost a fifth of the throughput in the
    benchmark. Instead ``expires`` says when the connection has overstayed, and
    :meth:`HttpServer.service_actions` (every ``poll_interval``) shuts down the
    socket of any connection past it, which wakes a blocked read or write on
    every OS. The limits: ``idle`` between requests and for writing a response,
    ``per_request`` from a request's first byte until its body is read (so a
    peer trickling a byte at a time is cut off), none while handlers run.
    """

    def __init__(self, sock: socket.socket, idle: float, per_request: float) -> None:
        self.sock = sock
        self.idle = idle
        self.per_request = per_request
        self.in_request = False
        self.expires = time.monotonic() + idle

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.sock.recv_into(buffer)
        if n and not self.in_request:
            self.in_request = True
            self.expires = time.monotonic() + self.per_request
        return n

    def handlers_running(self) -> None:
        self.expires = float("inf")

    def writing(self) -> None:
        self.expires = time.monotonic() + self.idle

    def next_request(self) -> None:
        self.in_request = False
        self.expires = time.monotonic() + self.idle


def _http_date() -> str:
    """The ``Date`` header's value (RFC 9110 §6.6.1), formatted once a second."""
    return _date_of(int(time.time()))


@functools.lru_cache(maxsize=2)
def _date_of(second: int) -> str:
    return formatdate(second, usegmt=True)


class EventHandler(BaseHTTPRequestHandler):
    """One connection: reads each POSTed event, dispatches it, writes the quick operation."""

    server: "HttpServer"
    raw_requestline: bytes  # set by the stdlib's handle_one_request
    fields: dict[str, str]  # the request's header fields by lower-case name
    protocol_version = "HTTP/1.1"  # keep-alive: one connection carries many events
    disable_nagle_algorithm = True  # see the module docstring
    wbufsize = 64 * 1024  # headers and body collect here; handle_one_request flushes once

    def setup(self) -> None:
        super().setup()
        # No socket timeout: the server's reaper bounds reads and writes (see _Clock).
        self.connection.settimeout(None)
        self.clock = _Clock(self.connection, self.server.idle_timeout, self.server.request_timeout)
        self.server.clocks.add(self.clock)
        self.rfile.close()  # the stdlib's reader, replaced by ours
        self.rfile = io.BufferedReader(self.clock)

    def handle_one_request(self) -> None:
        super().handle_one_request()
        self.clock.next_request()

    def parse_request(self) -> bool:
        """The request line and header fields, read by :mod:`.http_head`; False once refused.

        Sets what the stdlib's version does (``command``, ``path``,
        ``request_version``, ``headers``, ``close_connection``, and answers
        ``Expect: 100-continue``), plus ``fields``: the headers by lower-case name.
        """
        self.command = None  # type: ignore[assignment]  # the stdlib's own convention
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        if not self.requestline.strip():
            return False
        try:
            method, target, version = parse_request_line(self.requestline)
            self.fields, pairs = read_fields(self.rfile)
        except BadHead as exc:
            self.respond(exc.status, exc.reason, close=True)
            return False
        except EOFError:
            return False
        self.command, self.request_version = method, f"HTTP/{version[0]}.{version[1]}"
        # As the stdlib does (gh-87389): "//x" would read as a host to a client.
        self.path = "/" + target.lstrip("/") if target.startswith("//") else target
        self.headers = http.client.HTTPMessage()
        for name, value in pairs:
            self.headers[name] = value
        options = {o.strip() for o in self.fields.get("connection", "").lower().split(",")}
        self.close_connection = "close" in options or (
            version < (1, 1) and "keep-alive" not in options
        )
        if self.fields.get("expect", "").lower() == "100-continue" and version >= (1, 1):
            return self.handle_expect_100()
        return True

    def handle_expect_100(self) -> bool:
        super().handle_expect_100()
        self.wfile.flush()  # our wfile is buffered: the peer waits for this line
        return True

    def finish(self) -> None:
        self.server.clocks.discard(self.clock)
        super().finish()

    def do_POST(self) -> None:
        # 1) Is this our path?
        try:
            path = urlsplit(self.path).path
        except ValueError:  # e.g. "http://[::1": not a URL at all
            self.refuse(400, f"malformed request target {redact(self.path)[:80]!r}", close=True)
            return
        if path.rstrip("/") != self.server.path.rstrip("/"):
            hint = ""
            if path.rsplit("/", 1)[-1] in STANDARD_ACTIONS:
                hint = " (to call an action, point HttpClient at OneBot, not at this server)"
            # The body stays unread, so this connection cannot carry another request.
            reason = f"no receiver at {path}; events go to {self.server.path}{hint}"
            self.refuse(404, reason, close=True)
            return
        # 2) Read the body, bounded by Content-Length and max_body.
        headers = self.fields
        body = self.read_body(headers)
        if body is None:
            return
        # 3) Content-Type, signature and JSON; each failure gets its own status.
        event = self.check_event(body, headers)
        if event is None:
            return
        # 4) A copy we have seen (an implementation retrying): answered, not run again.
        if self.server.recent is not None and self.server.recent.seen(body):
            self.server.duplicate()
            self.respond(204)
            return
        # 5) Run the handlers here and answer with their quick operation.
        self.clock.handlers_running()
        reply = self.server.handle_event(event)
        self.clock.writing()
        if reply:
            self.respond(200, reply, "application/json")
        else:
            self.respond(204)

    def read_body(self, headers: dict[str, str]) -> bytes | None:
        """The request body, or None after answering 400/411/413 (or on a dead peer)."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.refuse(411, "chunked bodies are not supported", close=True)
            return None
        length_header = headers.get("content-length")
        if length_header is None:
            self.refuse(411, "Content-Length is required", close=True)
            return None
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError(length_header)
        except ValueError:
            self.refuse(400, f"bad Content-Length {length_header!r}", close=True)
            return None
        if length > self.server.max_body:
            # We do not read the body, so the connection cannot carry another request.
            reason = f"body of {length} bytes exceeds max_body={self.server.max_body}"
            self.refuse(413, reason, close=True)
            return None
        body = self.rfile.read(length)
        if len(body) < length:  # the peer went away mid-body
            self.close_connection = True
            return None
        return body

    def check_event(self, body: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
        """The decoded event, or None after answering 415/401/403/400."""
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type and media_type not in JSON_TYPES:
            reason = f"Content-Type {media_type} is not supported; send application/json"
            self.refuse(415, reason)
            return None
        refusal = self.server.check_credentials(headers, self.path, body)
        if refusal is not None:
            self.refuse(*refusal)
            return None
        try:
            event = loads(body)
        except DecodeError as exc:
            self.refuse(400, str(exc))
            return None
        if not isinstance(event, dict) or "post_type" not in event:
            self.refuse(400, f"not an event (an object with post_type): {body[:40]!r}")
            return None
        # X-Self-ID is the bot's identity (NapCat sends it lowercase; headers
        # are case-insensitive). Some implementations leave self_id out.
        self_id = headers.get("x-self-id")
        if "self_id" not in event and self_id:
            event["self_id"] = int(self_id) if self_id.isdigit() else self_id
        return event

    def refuse(self, status: int, reason: str, *, close: bool = False) -> None:
        """Answer an error status with a one-line reason."""
        log.debug("%s %s -> %d %s", self.command, redact(self.path), status, reason)
        self.respond(status, reason, close=close)

    def respond(
        self,
        status: int,
        body: bytes | str = b"",
        content_type: str = "",
        *,
        close: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        """Send a complete response, head and body in one write.

        The head is built here rather than with ``send_response``/``send_header``:
        they cost a tenth of each event (a ``Date`` formatted per response, a
        list of encoded lines), which the stdlib server in the benchmark pays too.
        """
        if isinstance(body, str):
            body, content_type = (body + "\n").encode(), "text/plain; charset=utf-8"
        self.log_request(status, len(body))
        lines = [
            f"{self.protocol_version} {status} {_REASONS.get(status, '')}",
            f"Server: {self.version_string()}",
            f"Date: {_http_date()}",
        ]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        if status != 204:  # RFC 9110 §8.6: no Content-Length on 204
            lines.append(f"Content-Length: {len(body)}")
        lines.extend(f"{name}: {value}" for name, value in (extra or {}).items())
        if close:
            lines.append("Connection: close")
            self.close_connection = True
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + body)

    def method_not_allowed(self) -> None:
        reason = f"{self.command} is not allowed here; OneBot POSTs events"
        self.respond(405, reason, close=True, extra={"Allow": "POST"})

    # The stdlib finds handlers by name: do_<METHOD>.
    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = method_not_allowed  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):  # called for every request: keep it cheap
            log.debug("%s - %s", self.address_string(), redact(format % args))

    def log_error(self, format: str, *args: Any) -> None:
        log.info("%s - %s", self.address_string(), redact(format % args))


class HttpServer(ManagedHTTPServer, OneBotApi):
    """Receive OneBot events over HTTP POST and answer with quick operations.

    Args:
        host: the address to listen on; 127.0.0.1 unless OneBot runs on another
            machine or in another container (then ``0.0.0.0``).
        port: the port; 0 picks a free one (read it back from ``.port``).
        path: the URL path OneBot posts to (a trailing slash does not matter).
        secret: verify ``X-Signature`` with this secret (the implementation's
            ``secret``; NapCat calls it ``token``). None accepts unsigned events.
        access_token: also require ``Authorization: Bearer`` or ``?access_token=``
            (not part of the spec for this mode; for proxies that add it).
        registry: the handlers; by default a new one, closed by :meth:`close`.
        api: where :meth:`call` (and ``reply``, ``send_group_msg``…) send
            actions, usually an ``HttpClient`` for the same implementation.
        max_body: the largest event accepted, in bytes (413 beyond it). Request
            heads are bounded by the stdlib: 64 KiB per line, 100 header lines.
        idle_timeout: seconds a connection may sit idle (or stall mid-request).
        ssl_context: serve ``https://`` with this server-side ``ssl.SSLContext``.
        certfile, keyfile: serve ``https://`` with this certificate chain and key (PEM).
        handshake_timeout: seconds a new connection may take to send its first
            byte and finish the TLS handshake.
        request_timeout: seconds from a request's first byte until its body is read.
        dedup: seconds to remember each event's exact bytes; a second copy within
            them (the implementation retrying a POST we answered too slowly) gets
            204 without running the handlers again. 0, the default, keeps none.

    Raises:
        NetworkError: the port cannot be bound; the message says why.
        ValueError: inconsistent TLS options, or a certificate that cannot be loaded.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        path: str = "/",
        secret: str | None = None,
        access_token: str | None = None,
        registry: Registry | None = None,
        api: OneBotApi | None = None,
        max_body: int = 4 * 1024 * 1024,
        idle_timeout: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        handshake_timeout: float = 10.0,
        request_timeout: float = 30.0,
        dedup: float = 0.0,
    ) -> None:
        self.path = path if path.startswith("/") else f"/{path}"
        self.secret = secret
        self.access_token = access_token
        self._own_registry = registry is None
        self.registry = registry if registry is not None else Registry()
        self.api = api
        self.max_body = max_body
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.auth_failures = 0
        self.recent = Recent(dedup) if dedup > 0 else None
        self.duplicates = 0  # events answered without running them again
        self.slow_events = 0
        self.clocks: set[_Clock] = set()  # one per open connection, for the reaper
        self._next_reap = 0.0
        super().__init__(
            (host, port),
            EventHandler,
            "onebot-http-server",
            ssl_context=server_context(ssl_context, certfile, keyfile),
            handshake_timeout=min(handshake_timeout, idle_timeout),
        )
        if host in WILDCARD_HOSTS and not (secret or access_token):
            log.warning(
                "listening on all interfaces (%r) with neither secret nor access_token: "
                "anyone who can reach port %d can post events as the bot",
                host,
                self.port,
            )

    def service_actions(self) -> None:
        """Called by serve_forever every ``poll_interval``: cut connections past their time."""
        now = time.monotonic()
        if now < self._next_reap:
            return
        self._next_reap = now + 0.2
        for clock in list(self.clocks):
            if now > clock.expires:
                log.debug("cutting a connection that overstayed (idle or request timeout)")
                clock.expires = float("inf")  # once
                try:
                    clock.sock.shutdown(socket.SHUT_RDWR)  # wakes its thread on every OS
                except OSError:
                    pass

    @property
    def url(self) -> str:
        """The URL to configure on the OneBot side as its HTTP POST target."""
        return f"{self.base_url}{self.path}"

    def __repr__(self) -> str:
        return f"HttpServer({self.url!r})"

    def on(self, name: str = "*") -> Callable[[Handler], Handler]:
        """Decorator: handle events named ``name`` (see :class:`Registry`)."""
        return self.registry.on(name)

    def call(self, action: str, /, **params: Any) -> Any:
        """Call an action through ``api``: HTTP POST itself can only answer events.

        Raises:
            NotConnected: the server was made without ``api=``.
        """
        if self.api is None:
            raise NotConnected(
                f"cannot call {action!r}: HTTP POST only receives events; "
                "pass api=HttpClient(<OneBot HTTP API URL>) to make calls"
            )
        return self.api.call(action, **params)

    def handle_event(self, event: dict[str, Any]) -> bytes:
        """Run the handlers for ``event`` in this thread; return the quick operation as JSON.

        The first dict a handler returns is the quick operation; b"" means none.
        """
        started = time.monotonic()
        try:
            results = self.registry.dispatch(event)
            operation = next((r for r in results if isinstance(r, dict)), None)
            return dumps(operation) if operation else b""
        except Exception:  # handler errors are logged by the registry; this is the rest
            log.exception("cannot answer %s with a quick operation", event.get("post_type"))
            return b""
        finally:
            if (took := time.monotonic() - started) > PATIENCE:
                self.slow_events += 1
                if _decade(self.slow_events):
                    log.warning(
                        "handlers took %.1fs on a %s event (%d so far): go-cqhttp waits %gs and "
                        "then posts the event again; make the API calls from a thread of your "
                        "own, or pass dedup=60",
                        took, event.get("post_type"), self.slow_events, PATIENCE,
                    )  # fmt: skip

    def duplicate(self) -> None:
        """Count (and now and then log) an event answered without running it again."""
        self.duplicates += 1
        if _decade(self.duplicates):
            log.info(
                "a copy of an event seen in the last %gs was not run again (%d so far): "
                "the implementation retried a POST that we answered too slowly",
                self.recent.window if self.recent else 0,
                self.duplicates,
            )

    def check_credentials(
        self, headers: dict[str, str], path: str, body: bytes
    ) -> tuple[int, str] | None:
        """``(401 or 403, reason)`` if ``access_token`` or ``secret`` refuse the request.

        ``headers`` has lower-case names.
        """
        if self.access_token:
            presented = parse_authorization(headers.get("authorization"))
            if presented is None:
                presented = parse_qs(urlsplit(path).query).get("access_token", [None])[0]
            if presented is None:
                return self.auth_failed(401, "access token missing")
            if not token_matches(self.access_token, presented):
                return self.auth_failed(403, f"wrong access token {mask_token(presented)}")
        if self.secret:
            signature = headers.get("x-signature")
            if not signature:
                hint = "does the OneBot side sign at all? (NapCat: set the HTTP client's token)"
                return self.auth_failed(401, f"X-Signature missing; {hint}")
            if not check_signature(body, self.secret, signature):
                hint = "the OneBot side signs, but with a different secret"
                return self.auth_failed(403, f"X-Signature does not match; {hint}")
        return None

    def auth_failed(self, status: int, reason: str) -> tuple[int, str]:
        """Log a refusal: the 1st, 10th, 100th… so a peer that retries cannot flood the log."""
        self.auth_failures += 1
        count = self.auth_failures
        if _decade(count):
            log.warning("refused an event with %d (%d so far): %s", status, count, reason)
        return status, reason.partition(";")[0]

    def start(self) -> "HttpServer":
        """Serve in a daemon thread and return (the port is already bound)."""
        self.start_thread()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, end every connection thread, then close the registry we made."""
        super().close(timeout)
        if self._own_registry:
            self.registry.close(timeout)

    def __enter__(self) -> "HttpServer":
        return self.start()


def _decade(count: int) -> bool:
    """True for the 1st, 10th, 100th… occurrence: logs that cannot flood."""
    return str(count).rstrip("0") == "1"
