"""The doctor's listeners for the server modes: wait for the implementation, report what it sent.

HTTP POST (spec ``communication/http-post.md``): a :class:`ManagedHTTPServer`
that records every POST (path, headers, raw body), answers ``204`` and
checks ``X-Self-ID`` and ``X-Signature`` itself, so that an unsigned or
wrongly signed event is reported rather than merely refused.

Reverse WebSocket (spec ``communication/ws-reverse.md``): the generic
WebSocket server under the bot's ``WsServer``, with a policy that records the
handshake (``X-Self-ID``, ``X-Client-Role``, the ``Authorization`` scheme)
before the bot's own checks and hands every frame to the doctor's
:class:`Inbox`; the session checks of :mod:`session` then run over it.

A port that cannot be bound is explained (in use, reserved, privileged), and
when it is in use we say who answers there: often the implementation itself,
because its own server and its reverse/POST target were given the same port.
"""

import errno
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from .._auth import check_token
from .._http_base import ManagedHTTPServer
from .._http_head import split_target
from .._tls import url_host
from .._ws_connection import Connection
from .._ws_listener import WebSocketServer
from ..codec import check_signature, dumps, parse_authorization
from ..errors import NetworkError
from ..framer import HandshakeError, Request
from ..ws_server import ROLES, check_version
from ._checks import Check, Inbox, check_events, fail, ok, probe_session, warn
from ._probes import http_request

__all__ = ["bind_failure", "listen_http", "listen_ws"]

log = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024
WIN_ACCESS_DENIED, WIN_IN_USE, WIN_NOT_AVAILABLE = 10013, 10048, 10049  # WinError codes


def bind_failure(exc: OSError, host: str, port: int) -> Check:
    """The plain-words reason ``host:port`` cannot be bound, and what to do."""
    code = getattr(exc, "winerror", None) or exc.errno
    where = f"{host}:{port}"
    if code in (errno.EADDRINUSE, WIN_IN_USE):
        return fail(
            "bind",
            f"{where} is already in use{_who_is_there(host, port)}",
            "换一个端口；若占用者就是 OneBot 实现自己，"
            "说明它的服务器端口和上报/反向 WS 地址填成了同一个。",
            "pick another port; if the implementation itself holds it, its own server "
            "and its POST / reverse-WS target were given the same port.",
        )
    if code == WIN_ACCESS_DENIED:
        return fail(
            "bind",
            f"{where}: WinError 10013, the port is in a range Windows reserves",
            "运行 netsh interface ipv4 show excludedportrange protocol=tcp，选一个不在列表里的端口"
            "（Hyper-V/WSL 会保留端口段）。",
            "run `netsh interface ipv4 show excludedportrange protocol=tcp` and pick a "
            "port outside those ranges (Hyper-V/WSL reserve them).",
        )
    if code in (errno.EACCES, errno.EPERM):
        return fail(
            "bind",
            f"{where}: permission denied",
            "1024 以下的端口需要 root 权限：换一个 1024 以上的端口。",
            "ports below 1024 need root: pick a port above 1024.",
        )
    if code in (errno.EADDRNOTAVAIL, WIN_NOT_AVAILABLE):
        return fail(
            "bind",
            f"{where}: {host} is not an address of this machine",
            "监听 0.0.0.0（所有网卡）或 127.0.0.1（仅本机）。",
            "listen on 0.0.0.0 (every interface) or 127.0.0.1 (this machine only).",
        )
    return fail(
        "bind",
        f"cannot listen on {where}: {exc.strerror or exc}",
        "换一个端口或地址再试。",
        "try another port or address.",
    )


def _who_is_there(host: str, port: int) -> str:
    target = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    try:
        reply = http_request(f"http://{url_host(target)}:{port}/", timeout=1.0)
    except OSError:
        return ""
    body = reply.body[:60].decode("utf-8", "replace").strip()
    server = reply.headers.get("server", "")
    return f"; it answers HTTP {reply.status} {server} {body!r}".rstrip()


def _bound(exc: NetworkError, host: str, port: int) -> Check:
    cause = exc.__cause__
    return bind_failure(cause if isinstance(cause, OSError) else exc, host, port)


def _nothing_came(what: str, url: str, wait: float) -> Check:
    post = "POST" in what
    return fail(
        "connect",
        f"no {what} arrived at {url} in {wait:g} s",
        "在实现的网络配置里把"
        f"{'HTTP 上报（HTTP 客户端）' if post else '反向 WebSocket（WS 客户端）'}"
        f"地址设为 {url} 并启用；实现在 Docker 里时，"
        "本机地址要写宿主机 IP 或 host.docker.internal，"
        "并让这里监听 0.0.0.0。",
        "set the implementation's "
        f"{'HTTP POST (HTTP client)' if post else 'reverse WebSocket (WS client)'} "
        f"URL to {url} and enable it; if it runs in Docker, use the host's IP or "
        "host.docker.internal there and listen on 0.0.0.0 here.",
    )


# -- mode 2: HTTP POST ---------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_PostServer"  # type: ignore[assignment]  # ours, not a socketserver

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        body = self.rfile.read(length) if 0 <= length <= MAX_BODY else b""
        self.server.posts.append((self.path, dict(self.headers.items()), body))
        self.server.inbox.put_raw(body)
        self.send_response(204)  # no quick operation: the doctor only watches
        self.end_headers()

    def do_GET(self) -> None:
        body = b"onebot_ref doctor: waiting for HTTP POST events here\n"
        self.send_response(405)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _PostServer(ManagedHTTPServer):
    def __init__(self, address: tuple[str, int]) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.inbox = Inbox()
        super().__init__(address, _Recorder, "doctor-http")


def listen_http(host: str, port: int, secret: str | None, wait: float) -> list[Check]:
    """Mode 2: receive POSTs for ``wait`` seconds; check headers, signature and events."""
    server = _PostServer((host, port))
    try:
        server.start_thread()
    except NetworkError as exc:
        return [_bound(exc, host, port)]
    with server:
        url = f"http://{url_host(host)}:{server.port}/"
        started = time.monotonic()
        server.inbox.wait(started + wait, lambda: bool(server.posts))
        if not server.posts:
            return [ok("bind", f"listening on {url}"), _nothing_came("HTTP POST", url, wait)]
        server.inbox.wait(started + wait, lambda: _enough(server.inbox))
        posts = list(server.posts)
    checks = [
        ok("bind", f"listening on {url}"),
        ok("connect", f"{len(posts)} POSTs to {sorted({p for p, _, _ in posts})}"),
    ]
    headers = {k.lower(): v for k, v in posts[0][1].items()}
    checks.append(_self_id(headers.get("x-self-id")))
    checks.append(_signature(posts, secret))
    # The window watched is --wait, or less when enough came early; a late
    # wake-up of this thread is not more watching.
    checks += check_events(server.inbox.events(), min(time.monotonic() - started, wait))
    return checks


def _enough(inbox: Inbox) -> bool:
    kinds = [e.get("meta_event_type") or e.get("post_type") for _, e in inbox.events()]
    return "message" in kinds and kinds.count("heartbeat") >= 3


def _self_id(value: str | None) -> Check:
    if value:
        return ok("x-self-id", f"X-Self-ID: {value}")
    return warn(
        "x-self-id",
        "no X-Self-ID header",
        "规范要求带 X-Self-ID：升级实现；不少框架缺了它会拒绝连接。",
        "the spec asks for X-Self-ID: upgrade the implementation; many frameworks refuse "
        "a connection without it.",
    )


def _signature(posts: list[tuple[str, dict[str, str], bytes]], secret: str | None) -> Check:
    sigs = [{k.lower(): v for k, v in h.items()}.get("x-signature") for _, h, _ in posts]
    if not secret:
        if any(sigs):
            return warn(
                "signature",
                "POSTs carry X-Signature but no --secret was given",
                "加上 --secret（实现里的 secret；NapCat 叫 token）来验证签名。",
                "add --secret (the implementation's secret; NapCat calls it token) to "
                "verify the signatures.",
            )
        return ok("signature", "unsigned (no secret on either side)")
    if not all(sigs):
        return fail(
            "signature",
            f"{sigs.count(None)} of {len(posts)} POSTs are unsigned although --secret is set",
            "实现没有签名：在实现的 HTTP 上报配置里设置同一个 "
            "secret（NapCat：HTTP 客户端的 token）。",
            "the implementation did not sign: set the same secret in its HTTP POST config "
            "(NapCat: the HTTP client's token).",
        )
    bad = sum(
        not check_signature(body, secret, sig)
        for (_, _, body), sig in zip(posts, sigs, strict=True)
    )
    if bad:
        return fail(
            "signature",
            f"X-Signature does not match for {bad} of {len(posts)} POSTs",
            "实现用了另一个 secret 签名：让 --secret 与实现里的 secret 完全一致。",
            "the implementation signs with a different secret: make --secret and its "
            "secret identical.",
        )
    return ok("signature", f"X-Signature valid on all {len(posts)} POSTs (HMAC-SHA1)")


# -- mode 4: reverse WebSocket --------------------------------------------------------------


class _Dialled:
    """One connection the implementation made to the doctor: what it said, and its frames."""

    def __init__(self, listener: "_DoctorWsListener", request: Request, peer: str) -> None:
        self.listener = listener
        self.request = request
        self.peer = peer
        role = request.headers.get("x-client-role", "universal").strip().lower()
        self.role = ROLES.get(role, "Universal")
        self.conn: Connection | None = None

    @property
    def api_capable(self) -> bool:
        return self.role != "Event"

    def opened(self, conn: Connection) -> None:
        self.conn = conn
        with self.listener.arrived:
            self.listener.accepted.append(self)
            self.listener.arrived.notify_all()

    def message(self, opcode: int, payload: bytes) -> None:
        self.listener.inbox.put_raw(payload)

    def closed(self) -> None:
        pass

    def send_text(self, data: bytes) -> None:
        if self.conn is not None:
            self.conn.send_text(data)


class _DoctorWsListener:
    """The generic WebSocket server with the doctor's policy: record each handshake, then check it.

    The checks are the bot's own (the one token check, the OneBot 12 refusal),
    so that a refusal here means a refusal by a bot; the handshake is kept
    either way for the report.
    """

    def __init__(self, host: str, port: int, token: str | None) -> None:
        self.token = token
        self.inbox = Inbox()
        self.handshakes: list[Request] = []
        self.refusals: list[str] = []
        self.accepted: list[_Dialled] = []
        self.arrived = threading.Condition()
        self.listener = WebSocketServer(self, host, port, name="doctor-ws", logger=log)

    @property
    def port(self) -> int:
        return self.listener.port

    def accept(self, request: Request, peer: str) -> _Dialled:
        self.handshakes.append(request)
        try:
            query = split_target(request.target)[1]
            refusal = check_token(self.token, request.headers.get("authorization"), query)
            if refusal is not None:
                raise HandshakeError(refusal.reply, refusal.status, detail=f" {refusal.detail}")
            check_version(request)
        except HandshakeError as exc:
            self.refusals.append(str(exc))
            raise
        return _Dialled(self, request, peer)

    def start(self) -> None:
        self.listener.start()

    def close(self, timeout: float) -> None:
        self.listener.close(timeout, 1001, "the doctor is done")


def listen_ws(host: str, port: int, token: str | None, wait: float, timeout: float) -> list[Check]:
    """Mode 4: wait for the implementation to dial; check its handshake, then the session."""
    server = _DoctorWsListener(host, port, token)
    try:
        server.start()
    except NetworkError as exc:
        return [_bound(exc, host, port)]
    try:
        url = f"ws://{url_host(host)}:{server.port}/"
        checks = [ok("bind", f"listening on {url}")]
        started = time.monotonic()
        with server.arrived:
            server.arrived.wait_for(lambda: bool(server.accepted), wait)
            conns = list(server.accepted)
        if not conns:
            if server.refusals:
                return [*checks, *_ws_refused(server.handshakes[-1], server.refusals[-1], token)]
            return [*checks, _nothing_came("WebSocket connection", url, wait)]
        if conns[0].role != "Universal":  # API or Event: its twin may be a moment behind
            with server.arrived:
                server.arrived.wait_for(lambda: len(server.accepted) > 1, min(1.0, wait))
                conns = list(server.accepted)
        conn = conns[0]
        request = conn.request
        roles = " + ".join(c.role for c in conns)
        checks.append(ok("connect", f"{roles} from {conn.peer}, path {request.path}"))
        checks += _ws_headers(request, token)
        api = next((c for c in conns if c.api_capable), None)
        send = (lambda obj: api.send_text(dumps(obj))) if api is not None else (lambda obj: None)
        left = max(0.5, wait - (time.monotonic() - started))
        checks += probe_session(
            send, server.inbox, left, api=api is not None, timeout=timeout, token=token
        )
        return checks
    finally:
        server.close(timeout=2.0)


def _ws_refused(request: Request, reason: str, token: str | None) -> list[Check]:
    sent = parse_authorization(request.headers.get("authorization")) or request.query.get(
        "access_token"
    )
    return [
        fail(
            "token",
            f"the implementation connected but was refused: {reason}",
            "把实现里反向 WebSocket 的 token（access_token）设成与 --token 相同"
            f"{'；它现在没有发送 token' if not sent else ''}。",
            "set the reverse WebSocket's token (access_token) in the implementation to "
            f"--token{' (it sends none now)' if not sent else ''}.",
        )
    ]


def _ws_headers(request: Request, token: str | None) -> list[Check]:
    headers = request.headers
    checks = [_self_id(headers.get("x-self-id"))]
    role = headers.get("x-client-role")
    if role is None:
        checks.append(
            warn(
                "x-client-role",
                "no X-Client-Role header (taken as Universal)",
                "规范要求带 X-Client-Role：升级实现；koishi 等框架缺了它会拒绝连接。",
                "the spec asks for X-Client-Role: upgrade the implementation; koishi "
                "and others refuse a connection without it.",
            )
        )
    else:
        checks.append(ok("x-client-role", f"X-Client-Role: {role}"))
    auth = headers.get("authorization")
    scheme = auth.split(" ", 1)[0] if auth else None
    if "access_token" in request.query:
        scheme = "?access_token="
    if token:
        checks.append(ok("token", f"accepted ({scheme})"))
    elif parse_authorization(auth) or "access_token" in request.query:
        checks.append(
            warn(
                "token",
                f"it sends a token ({scheme}) but no --token was given",
                "加上 --token 来核对它；机器人一侧也应检查 token。",
                "add --token to check it; the bot side should check it too.",
            )
        )
    else:
        checks.append(ok("token", "no token on either side"))
    return checks
