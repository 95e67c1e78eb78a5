"""The doctor's probe for mode 3 (forward WebSocket): handshake, endpoint, then a session.

The handshake is tried as a plain HTTP request first (:func:`probes.upgrade`),
so that whatever answers instead of ``101`` can be named: a web UI, the OneBot
HTTP API port, a WebSocket on another of the usual paths, a token the
implementation reads only from the query. Only then does websocket-client
open a real connection, for the session checks in :mod:`session`.
"""

import threading
from typing import Any
from urllib.parse import urlsplit

import websocket

from ..codec import dumps, loads, onebot12_impl
from ..errors import DecodeError
from ._checks import Check, Inbox, fail, ok, probe_session, warn
from ._probes import Reply, add_token, call_action, check_tcp, token_fail, upgrade, with_path

__all__ = ["check_ws"]

# Other places implementations and tutorials put a WebSocket endpoint.
WS_PATHS = ("/", "/ws", "/onebot/v11/ws", "/api", "/event")


def check_ws(url: str, token: str | None, wait: float, timeout: float) -> list[Check]:
    """Mode 3: the handshake (HTTP port? path? token?), then a session over websocket-client."""
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "wss" else 80
    checks = [check_tcp(parts.hostname or "", parts.port or default_port, timeout)]
    if checks[-1].status == "fail":
        return checks
    try:
        reply = upgrade(url, token, timeout)
    except OSError as exc:
        return [
            *checks,
            fail(
                "handshake",
                f"{url} accepts TCP but does not answer HTTP: {exc}",
                "这个端口上的不是 WebSocket 服务；核对端口（NapCat "
                "WS 默认 3001，go-cqhttp 8080）。",
                "whatever listens there does not speak HTTP/WebSocket; check the "
                "port (NapCat's WebSocket default is 3001, go-cqhttp's 8080).",
            ),
        ]
    if reply.status in (401, 403) and token:
        via_query = upgrade(url, token, timeout, query=True)
        if via_query.status == 101:
            checks.append(
                warn(
                    "token",
                    f"the Authorization header got HTTP {reply.status}, ?access_token= works",
                    "实现只认 URL 里的 access_token：在 ws 地址后加 ?access_token=。",
                    "the implementation reads the token from the query only: add "
                    "?access_token= to the URL.",
                )
            )
            url = add_token(url, token)
            reply = via_query
    if reply.status in (401, 403):
        return [*checks, token_fail(reply.status, token, ws=True)]
    if reply.status != 101:
        return [*checks, _not_websocket(url, reply, token, timeout)]
    checks.append(ok("handshake", f"101 Switching Protocols at {parts.path or '/'}"))
    role = (parts.path or "/").rstrip("/").rsplit("/", 1)[-1]
    if role == "api":
        checks.append(
            warn(
                "endpoint",
                "/api carries actions only: no events will be seen",
                "要收事件请连 / （Universal）或另开一个 /event 连接。",
                "to receive events connect to / (Universal) or also open /event.",
            )
        )
    elif role == "event":
        checks.append(
            warn(
                "endpoint",
                "/event carries events only: actions are not answered",
                "要调用 API 请连 / （Universal）或另开一个 /api 连接。",
                "to call actions connect to / (Universal) or also open /api.",
            )
        )
    checks += _ws_session(url, token, wait, timeout, api=role != "event")
    return checks


def _not_websocket(url: str, reply: Reply, token: str | None, timeout: float) -> Check:
    """HTTP 200/404/… instead of 101: which kind of server, or which path would work."""
    got = f"HTTP {reply.status} instead of 101 Switching Protocols"
    if reply.status == 200 and reply.is_html:
        return fail(
            "handshake",
            f"{url}: {got}; a web page answers (a web UI?)",
            "这是网页（如 NapCat WebUI）：在实现的网络配置里新建 WebSocket 服务器，填它的端口。",
            "this is a web page (e.g. NapCat's WebUI): add a WebSocket server in the "
            "implementation's network config and give its port.",
        )
    http_url = url.replace("ws", "http", 1)
    try:
        api = call_action(with_path(http_url, "/"), "get_login_info", token, timeout)
    except OSError:
        api = Reply(0, {}, b"")
    if api.envelope() is not None or reply.envelope() is not None:
        return fail(
            "handshake",
            f"{url}: {got}; this is the OneBot HTTP API port",
            "这是 HTTP API 端口：用 --http http://…/ 检查它，或者改填 WebSocket 服务器的端口。",
            "this is the HTTP API port: check it with --http http://…/, or give the "
            "WebSocket server's port.",
        )
    for path in WS_PATHS:
        if path.rstrip("/") == urlsplit(url).path.rstrip("/"):
            continue
        try:
            if upgrade(with_path(url, path), token, timeout).status == 101:
                good = with_path(url, path)
                return fail(
                    "path",
                    f"{url}: {got}, but {good} accepts the WebSocket",
                    f"把 URL 改成 {good}。",
                    f"use {good} as the URL.",
                )
        except OSError:
            break
    return fail(
        "handshake",
        f"{url}: {got}; no usual path ({', '.join(WS_PATHS)}) upgrades either",
        "这个端口不是 WebSocket 服务器：核对端口，并在实现里启用正向 WebSocket（WS 服务器）。",
        "this port is not a WebSocket server: check the port and enable the forward "
        "WebSocket (WS server) in the implementation.",
    )


def _ws_session(url: str, token: str | None, wait: float, timeout: float, api: bool) -> list[Check]:
    header = [f"Authorization: Bearer {token}"] if token else []
    try:
        ws = websocket.create_connection(url, header=header, timeout=timeout)
    except (OSError, websocket.WebSocketException) as exc:
        return [
            fail(
                "session",
                f"the second connection to {url} failed: {exc}",
                "连接不稳定：查看实现的日志，是否限制了连接数或刚刚重启。",
                "the link is unstable: read the implementation's log (connection limit? "
                "restarting?).",
            )
        ]
    inbox = Inbox()
    version: list[str] = []  # the OneBot 12 implementation's name, once one speaks
    reader = threading.Thread(
        target=_read_into, args=(ws, inbox, version), name="doctor-ws", daemon=True
    )
    reader.start()
    try:

        def send(obj: Any) -> None:
            try:
                ws.send(dumps(obj).decode("utf-8"))
            except websocket.WebSocketException as exc:  # closed under us: not an OSError
                raise ConnectionError(str(exc)) from exc

        checks = probe_session(send, inbox, wait, token=token, api=api, timeout=timeout)
        return [_onebot12(url, version[0])] if version else checks
    finally:
        inbox.stop.set()
        try:
            ws.close(timeout=0.5)
        except (OSError, websocket.WebSocketException):
            pass
        reader.join(timeout + 1)


def _onebot12(url: str, impl: str) -> Check:
    name = f" ({impl})" if impl else ""
    return fail(
        "version",
        f"{url} speaks OneBot 12{name}, not OneBot 11: its events carry type/detail_type "
        "instead of post_type, and calls fail with retcode 10101 (Who Am I)",
        "这是 OneBot 12 实现，onebot_ref 只支持 OneBot 11：在实现里改用 OneBot 11 协议"
        "（如它支持），或换一个 OneBot 11 实现（NapCat、Lagrange、LLOneBot…），"
        "或者改用支持 OneBot 12 的框架。",
        "this is a OneBot 12 implementation and onebot_ref speaks OneBot 11 only: switch the "
        "implementation to OneBot 11 if it can, use a OneBot 11 implementation (NapCat, "
        "Lagrange, LLOneBot…), or use a framework that speaks OneBot 12.",
    )


def _read_into(ws: websocket.WebSocket, inbox: Inbox, version: list[str]) -> None:
    """The reader thread: every frame into ``inbox`` until EOF or ``inbox.stop``.

    A OneBot 12 event (its ``meta.connect`` comes first) ends the session at
    once: every check after it would only fail in a misleading way.
    """
    ws.settimeout(0.2)
    while not inbox.stop.is_set():
        try:
            data = ws.recv()
        except websocket.WebSocketTimeoutException:
            continue
        except (OSError, websocket.WebSocketException) as exc:
            inbox.close(f"{exc!r}")
            return
        if not data:
            inbox.close("closed by the implementation")
            return
        try:
            impl = onebot12_impl(loads(data))
        except DecodeError:
            impl = None
        if impl is not None:
            version.append(impl)
            inbox.close("the implementation speaks OneBot 12")
            return
        inbox.put_raw(data)
