"""One HTTP POST connection, request by request: the half of mode 2 that reads and answers.

:class:`EventHandler` is the ``BaseHTTPRequestHandler`` that
:class:`~onebot_ref.http_server.HttpServer` gives each connection (on its own
thread). For each request it checks, in order, each failure with its own status
and a one-line reason: head and request target (400, 431, 505), method (405),
path (404), access token (401 missing / 403 wrong), ``X-Self-ID`` (400), body
framing (411/400/501) and ``max_size`` (413) — all from the head, before a byte
of the body is read — then Content-Type (415; the spec's HTTP API table says 406
for the same thing), ``X-Signature`` (401 missing / 403 wrong; HMAC-SHA1 over
the raw bytes, so after the body), JSON (400). Then, if fewer than
``max_handlers`` are running (else 503), the server runs the handlers and we
write the quick operation (200) or nothing (204). A refusal before the body
closes the connection: the unread body cannot be taken for the next request.

The request head is read by :mod:`._http_head` (within ``max_header`` bytes,
431 beyond), not the stdlib's ``email``
parser (a fifth of each event's CPU, and more lenient than is safe). The
stdlib answers each keep-alive request with two writes (headers, then body) on
a socket that still has Nagle's algorithm on; with the peer's delayed ACK that
stalls every response by ~40 ms on Linux. We disable Nagle and buffer the
response so that it leaves in one write. :class:`Clock` bounds every read and
write without a socket timeout.
"""

import functools
import io
import logging
import socket
import time
from collections.abc import Callable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Protocol

from ._dedup import Recent
from ._http_base import RETRY_AFTER
from ._http_head import (
    BadHead,
    body_length,
    parse_request_line,
    read_chunked,
    read_fields,
    response,
    split_target,
)
from .api import STANDARD_ACTIONS
from .codec import loads, log_frame, redact
from .errors import DecodeError

if TYPE_CHECKING:
    from ._http_base import ManagedHTTPServer

__all__ = ["Clock", "EventHandler", "Owner", "self_id_of"]

log = logging.getLogger("onebot_ref.http_server")  # one logger for mode 2, as before the split

JSON_TYPES = ("application/json", "text/json")
MAX_SELF_ID = 2**63 - 1  # OneBot 11 event fields: self_id is int64


def self_id_of(value: str) -> int:
    """The QQ number in an ``X-Self-ID`` header: 1 to 19 ASCII digits, within int64.

    ``str.isdigit`` is not enough: ``"²"`` passes it and fails ``int()``, and
    ``int()`` of 5,000 digits is slow (and refused on Python 3.11+).

    Raises:
        ValueError: with the reason for the 400.
    """
    if not (value.isascii() and value.isdigit() and len(value) <= 19) or int(value) > MAX_SELF_ID:
        raise ValueError(f"X-Self-ID {value[:24]!r} is not a QQ number (an int64 in ASCII digits)")
    return int(value)


class Clock(io.RawIOBase):
    """A connection's reads, and the time by which the server's reaper may cut it.

    The socket itself has no timeout: a timeout makes every ``recv`` and ``send``
    wait in ``poll()`` first, which cost a fifth of the throughput in the
    benchmark. Instead ``expires`` says when the connection has overstayed, and
    :meth:`tick` (the server's reaper, a few times a second) shuts down the
    socket of any connection past it, which wakes a blocked read or write on
    every OS. The limits: ``idle`` between requests and for writing a response,
    ``per_request`` from a request's first byte until its body is read (so a
    peer trickling a byte at a time is cut off), none while handlers run.
    ``clock`` reads the time (``time.monotonic``, as the reaper's ``now``); a
    test passes its own, and calls :meth:`tick` with it, to move through the
    limits without waiting for them.
    """

    def __init__(
        self,
        sock: socket.socket,
        idle: float,
        per_request: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sock = sock
        self.idle = idle
        self.per_request = per_request
        self.clock = clock
        self.in_request = False
        self.expires = clock() + idle

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.sock.recv_into(buffer)
        if n and not self.in_request:
            self.in_request = True
            self.expires = self.clock() + self.per_request
        return n

    def handlers_running(self) -> None:
        self.expires = float("inf")

    def writing(self) -> None:
        self.expires = self.clock() + self.idle

    def next_request(self) -> None:
        self.in_request = False
        self.expires = self.clock() + self.idle

    def tick(self, now: float) -> None:
        """The server's reaper, a few times a second: cut the connection once it overstays."""
        if now > self.expires:
            log.debug("cutting a connection that overstayed (idle or request timeout)")
            self.expires = float("inf")  # once
            try:
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes its thread on every OS
            except OSError:
                pass


def _http_date() -> str:
    """The ``Date`` header's value (RFC 9110 §6.6.1), formatted once a second."""
    return _date_of(int(time.time()))


@functools.lru_cache(maxsize=2)
def _date_of(second: int) -> str:
    return formatdate(second, usegmt=True)


class Slots(Protocol):
    """``max_handlers``: a slot per handler run, never waited for."""

    def acquire(self) -> bool: ...

    def release(self) -> None: ...


class Owner(Protocol):
    """What a connection needs of the server that holds it: its rules and its handlers.

    :class:`onebot_ref.http_server.HttpServer` is one; a protocol rather than
    the class, so that this module stays below the mode that uses it.
    """

    @property
    def path(self) -> str: ...
    @property
    def max_size(self) -> int: ...
    @property
    def max_header(self) -> int: ...
    @property
    def idle_timeout(self) -> float: ...
    @property
    def request_timeout(self) -> float: ...
    @property
    def recent(self) -> Recent | None: ...
    @property
    def handler_slots(self) -> Slots: ...

    def check_access_token(self, headers: dict[str, str], query: str) -> tuple[int, str] | None: ...

    def check_x_signature(self, headers: dict[str, str], body: bytes) -> tuple[int, str] | None: ...

    def arrived(self, event: dict[str, Any]) -> None: ...

    def handlers_busy(self) -> str: ...

    def duplicate(self) -> None: ...

    def handle_event(self, event: dict[str, Any]) -> bytes: ...


class EventHandler(BaseHTTPRequestHandler):
    """One connection: reads each POSTed event, dispatches it, writes the quick operation.

    ``server`` is the HTTP server that accepted the connection (its reaper
    bounds our reads); ``receiver`` the :class:`Owner` that holds it
    (``HttpServer``), whose rules we apply and whose handlers we run.
    """

    server: "ManagedHTTPServer"  # type: ignore[assignment]  # ours, not a socketserver
    receiver: Owner  # server.owner
    raw_requestline: bytes  # set by the stdlib's handle_one_request
    fields: dict[str, str]  # the request's header fields by lower-case name
    pairs: list[tuple[str, str]]  # ... and as they came, (name, value) in order
    target_path: str  # the request target's path (RFC 9112 §3.2), and its query
    query: str
    http_version: tuple[int, int]  # (1, 1) for HTTP/1.1
    expect_100: bool  # the peer waits for "100 Continue" before it sends the body
    protocol_version = "HTTP/1.1"  # keep-alive: one connection carries many events
    disable_nagle_algorithm = True  # see the module docstring
    wbufsize = 64 * 1024  # headers and body collect here; handle_one_request flushes once
    server_header = BaseHTTPRequestHandler.server_version + " " + BaseHTTPRequestHandler.sys_version

    def setup(self) -> None:
        super().setup()
        self.receiver = self.server.owner
        # No socket timeout: the server's reaper bounds reads and writes (see Clock).
        self.connection.settimeout(None)
        receiver = self.receiver
        self.clock = Clock(self.connection, receiver.idle_timeout, receiver.request_timeout)
        self.server.watch(self.clock)
        self.rfile.close()  # the stdlib's reader, replaced by ours
        self.rfile = io.BufferedReader(self.clock)

    def handle_one_request(self) -> None:
        super().handle_one_request()
        self.clock.next_request()

    def parse_request(self) -> bool:
        """The request line and header fields, read by :mod:`.http_head`; False once refused.

        Sets what the stdlib's version does (``command``, ``path``,
        ``request_version``, ``headers``, ``close_connection``), plus ``fields``
        (the headers by lower-case name), ``target_path`` and ``query``.
        ``Expect: 100-continue`` is answered later, once :meth:`do_POST` has
        checked the head and is about to read the body.
        """
        self.command = None  # type: ignore[assignment]  # the stdlib's own convention
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        if not self.requestline.strip():
            return False
        max_header, used = self.receiver.max_header, len(self.raw_requestline)
        try:
            if used > max_header:  # mostly its target, as for the stdlib's 414 past 64 KiB
                raise BadHead(414, f"request line over max_header={max_header} bytes")
            method, target, version = parse_request_line(self.requestline)
            self.target_path, self.query = split_target(target)
            self.fields, pairs = read_fields(self.rfile, max_header, used)
        except BadHead as exc:
            self.respond(exc.status, exc.reason, close=True)
            return False
        except EOFError:
            return False
        self.command, self.request_version = method, f"HTTP/{version[0]}.{version[1]}"
        self.http_version = version
        # As the stdlib does (gh-87389): "//x" would read as a host to a client.
        self.path = "/" + target.lstrip("/") if target.startswith("//") else target
        self.pairs = pairs  # no http.client.HTTPMessage: a tenth of the CPU per event
        connection = self.fields.get("connection")
        options = {o.strip() for o in connection.lower().split(",")} if connection else set()
        self.close_connection = "close" in options or (
            version < (1, 1) and "keep-alive" not in options
        )
        expect = self.fields.get("expect")
        self.expect_100 = (
            expect is not None and version >= (1, 1) and expect.lower() == "100-continue"
        )
        return True

    def handle_expect_100(self) -> bool:
        super().handle_expect_100()
        self.wfile.flush()  # our wfile is buffered: the peer waits for this line
        return True

    def finish(self) -> None:
        self.server.unwatch(self.clock)
        super().finish()

    def do_POST(self) -> None:
        # 1) Is this our path?
        path = self.target_path
        if path.rstrip("/") != self.receiver.path.rstrip("/"):
            hint = ""
            if path.rsplit("/", 1)[-1] in STANDARD_ACTIONS:
                hint = " (to call an action, point HttpClient at OneBot, not at this server)"
            # The body stays unread, so this connection cannot carry another request.
            reason = f"no receiver at {path}; events go to {self.receiver.path}{hint}"
            self.refuse(404, reason, close=True)
            return
        # 2) The head alone: access token, X-Self-ID and the body's framing. A peer
        # refused here never gets its body read (or held).
        headers = self.fields
        refusal = self.receiver.check_access_token(headers, self.query)
        if refusal is not None:
            self.refuse(*refusal, close=True)
            return
        self_id = headers.get("x-self-id")
        try:
            self_id_number = self_id_of(self_id) if self_id else None
        except ValueError as exc:
            self.refuse(400, str(exc), close=True)
            return
        # 3) Read the body, bounded by max_size.
        body = self.read_body(headers)
        if body is None:
            return
        # 4) Content-Type, signature and JSON; each failure gets its own status.
        event = self.check_event(body, headers)
        if event is None:
            return
        if "self_id" not in event and self_id_number is not None:
            # X-Self-ID is the bot's identity (NapCat sends it lowercase; headers
            # are case-insensitive). Some implementations leave self_id out.
            event["self_id"] = self_id_number
        # 5) Its account is alive (on_connect at its first event), busy or not.
        self.receiver.arrived(event)
        # 6) At most max_handlers run at once. Checked before dedup remembers the
        # event, so that the implementation's retry of a 503 is run, not dropped.
        slots = self.receiver.handler_slots
        if not slots.acquire():
            reason = self.receiver.handlers_busy()
            self.refuse(503, reason, extra={"Retry-After": str(RETRY_AFTER)})
            return
        try:
            # 7) A copy we have seen (an implementation retrying): answered, not run again.
            if self.receiver.recent is not None and self.receiver.recent.seen(body):
                self.receiver.duplicate()
                reply = b""
            else:
                # 8) Run the handlers here and answer with their quick operation.
                self.clock.handlers_running()
                reply = self.receiver.handle_event(event)
                self.clock.writing()
        finally:
            slots.release()
        if reply:
            log_frame("sent", reply)
            self.respond(200, reply, "application/json")
        else:
            self.respond(204)

    def read_body(self, headers: dict[str, str]) -> bytes | None:
        """The request body, or None after answering 400/411/413/501 (or on a dead peer).

        ``Content-Length`` or ``chunked`` (:mod:`._http_head`), both within ``max_size``.
        """
        max_size = self.receiver.max_size
        try:
            length = body_length(headers, self.http_version, max_size)
            if self.expect_100:
                self.handle_expect_100()  # the head passed: now invite the body
            if length is None:
                return read_chunked(self.rfile, max_size)
        except BadHead as exc:
            # The rest of the body stays unread: this connection cannot carry another request.
            self.refuse(exc.status, exc.reason, close=True)
            return None
        except EOFError:  # the peer went away mid-body
            self.close_connection = True
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
        refusal = self.receiver.check_x_signature(headers, body)
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
        return event

    def refuse(
        self,
        status: int,
        reason: str,
        *,
        close: bool = False,
        extra: dict[str, str] | None = None,
    ) -> None:
        """Answer an error status with a one-line reason."""
        log.debug("%s %s -> %d %s", self.command, redact(self.path), status, reason)
        self.respond(status, reason, close=close, extra=extra)

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
        if log.isEnabledFor(logging.DEBUG):  # the access log: every request, so only when read
            self.log_request(status, len(body))
        headers = [("Server", self.server_header), ("Date", _http_date())]
        if content_type:
            headers.append(("Content-Type", content_type))
        headers.extend((extra or {}).items())
        if close:
            self.close_connection = True
        data = response(status, body, headers, close=close, head_only=self.command == "HEAD")
        # Straight to the socket: the buffered wfile and its SocketIO are Python code on
        # every write. Only the stdlib's "100 Continue" goes through wfile, flushed at once.
        self.connection.sendall(data)

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
