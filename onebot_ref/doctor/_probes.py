"""The doctor's probes for mode 1 (HTTP API), and what every client-mode probe shares.

Each probe returns :class:`Check` records, one per question, in the order a
human would ask them: does the name resolve, does the port accept TCP, is it
the right kind of server (HTTP API, WebSocket, a web UI, a bot instead of an
implementation), on which path, with which token transport, and finally what
the implementation says about itself. A failing check carries one concrete fix
in Chinese and in English; the probes stop at the first failure that makes the
later questions meaningless.

Every network call is bounded by ``timeout``; nothing here prints (``doctor``
renders the checks). Mode 3 (forward WebSocket) is probed by :mod:`probes_ws`
with the helpers here; the session checks it shares with the reverse-WS
listener (echo, lifecycle, heartbeat, message format) live in :mod:`session`.
"""

import base64
import http.client
import ipaddress
import logging
import os
import socket
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit, urlunsplit

from ..codec import loads
from ..errors import DecodeError
from ._checks import Check, fail, no_token_fail, ok, summarize, warn

__all__ = [
    "Reply",
    "add_token",
    "call_action",
    "check_http",
    "check_tcp",
    "http_request",
    "is_loopback",
    "token_fail",
    "upgrade",
    "with_path",
]

log = logging.getLogger(__name__)

# Other places implementations and tutorials put a OneBot endpoint.
HTTP_PATHS = ("/", "/api", "/onebot/v11", "/onebot/v11/api")


class Reply(NamedTuple):
    """What an HTTP server said: status, lower-cased headers, the start of the body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def is_html(self) -> bool:
        ctype = self.headers.get("content-type", "")
        return "html" in ctype and self.body.lstrip()[:1] == b"<"

    def envelope(self) -> dict[str, Any] | None:
        """The OneBot response envelope in the body, if there is one."""
        try:
            obj = loads(self.body)
        except DecodeError:
            return None
        return obj if isinstance(obj, dict) and ("retcode" in obj or "status" in obj) else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_tcp(host: str, port: int, timeout: float) -> Check:
    """Resolve ``host`` and open (then close) a TCP connection to it."""
    where = f"{host}:{port}"
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return fail(
            "tcp",
            f"cannot resolve {host!r}: {exc.strerror or exc}",
            f"检查主机名 {host} 的拼写；Docker "
            "的服务名只在同一个 compose 网络里有效，换成 IP 试试。",
            f"check the spelling of {host}; a Docker service name only resolves inside its "
            "compose network, so try the IP address.",
        )
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except ConnectionRefusedError:
        return fail(
            "tcp",
            f"{where} refused the connection: nothing listens on that port",
            "确认 OneBot 实现正在运行、已在网络配置里启用这个服务器、端口写对了；"
            "实现在 Docker 里时要发布端口（-p 宿主端口:容器端口）并监听 0.0.0.0。",
            "make sure the implementation runs with this server enabled in its network "
            "config on this port; in Docker, publish the port (-p) and listen on 0.0.0.0.",
        )
    except TimeoutError:
        return fail(
            "tcp",
            f"{where} did not answer in {timeout:g} s: packets are dropped",
            "地址可能不对，或者防火墙/云服务器安全组拦截了这个端口；在实现所在机器上放行该端口。",
            "the address is wrong or a firewall / cloud security group drops the port; "
            "open the port on the implementation's machine.",
        )
    except OSError as exc:
        return fail(
            "tcp",
            f"cannot reach {where}: {exc.strerror or exc}",
            "网络不通：检查 IP 是否属于这台机器能到达的网络（局域网、VPN、容器网络）。",
            "no route: check that this machine can reach that IP (LAN, VPN, container network).",
        )
    return ok("tcp", f"{where} accepts TCP connections")


def http_request(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 3.0,
) -> Reply:
    """One raw HTTP request with the stdlib, so that a 101 or a web page is seen as it is.

    Raises:
        OSError: the connection failed or timed out.
    """
    parts = urlsplit(url)
    secure = parts.scheme in ("https", "wss")
    conn_class = http.client.HTTPSConnection if secure else http.client.HTTPConnection
    conn = conn_class(parts.hostname or "", parts.port or (443 if secure else 80), timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(method, target, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        heads = {k.lower(): v for k, v in resp.getheaders()}
        data = b"" if resp.status == 101 else resp.read(4096)
        return Reply(resp.status, heads, data)
    except http.client.HTTPException as exc:
        raise OSError(f"not an HTTP answer: {exc!r}") from exc
    finally:
        conn.close()


def with_path(url: str, path: str, query: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=path, query=parts.query if query is None else query))


def add_token(url: str, token: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"access_token": token})) if q)
    return urlunsplit(parts._replace(query=query))


# -- mode 1: HTTP API --------------------------------------------------------------------


def call_action(
    base: str, action: str, token: str | None, timeout: float, query: bool = False
) -> Reply:
    url = f"{base.rstrip('/')}/{action}"
    headers = {"Content-Type": "application/json"}
    if token and query:
        url = add_token(url, token)
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    return http_request(url, "POST", headers, b"{}", timeout)


def upgrade(url: str, token: str | None, timeout: float, query: bool = False) -> Reply:
    """A WebSocket upgrade request sent as plain HTTP: whatever answers, we see it."""
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode("ascii"),
    }
    if token and query:
        url = add_token(url, token)
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    http_url = url.replace("ws", "http", 1)
    return http_request(http_url, "GET", headers, timeout=timeout)


def _what_is_it(reply: Reply, url: str) -> Check | None:
    """A failure if ``reply`` shows something other than a OneBot HTTP API at ``url``."""
    text = reply.body.decode("utf-8", "replace").lower()
    if reply.status in (400, 426) and ("websocket" in text or "upgrade" in text):
        return fail(
            "endpoint",
            f"{url} is a WebSocket server (HTTP {reply.status} to a POST)",
            "这是 WebSocket 端口：用 --ws ws://…/ 检查它，或者改填 HTTP API（HTTP 服务器）的端口。",
            "this is a WebSocket port: check it with --ws ws://…/, or give the port of the "
            "HTTP API (the implementation's HTTP server).",
        )
    if "no receiver at" in text or "events go to" in text:
        return fail(
            "endpoint",
            f"{url} is a bot's HTTP POST receiver, not an implementation",
            "角色反了：--http 要填 OneBot 实现的 HTTP 服务器地址，而不是机器人自己的事件上报地址。",
            "roles reversed: --http needs the implementation's HTTP server, not the "
            "bot's own event receiver.",
        )
    if reply.status == 200 and reply.is_html:
        return fail(
            "endpoint",
            f"{url} serves a web page (a web UI?), not the OneBot HTTP API",
            "这是网页（如 NapCat WebUI，默认 6099）："
            "在实现的网络配置里新建 HTTP 服务器，填它的端口。",
            "this is a web page (e.g. NapCat's WebUI on 6099): add an HTTP server in the "
            "implementation's network config and give its port.",
        )
    return None


def check_http(url: str, token: str | None, timeout: float) -> list[Check]:
    """Mode 1: find the HTTP API, check the token, and ask who is there."""
    parts = urlsplit(url)
    checks = [check_tcp(parts.hostname or "", parts.port or 80, timeout)]
    if checks[-1].status == "fail":
        return checks
    base = url.rstrip("/")
    try:
        reply = call_action(base, "get_login_info", token, timeout)
    except OSError as exc:
        return [
            *checks,
            fail(
                "endpoint",
                f"{url} accepts TCP but does not answer HTTP: {exc}",
                "这个端口上的不是 HTTP 服务；核对端口号（NapCat HTTP 默认 3000，go-cqhttp 5700）。",
                "whatever listens there does not speak HTTP; check the port "
                "(NapCat's HTTP default is 3000, go-cqhttp's 5700).",
            ),
        ]
    wrong = _what_is_it(reply, url)
    if wrong is None and reply.envelope() is None and reply.status not in (401, 403):
        try:  # a WebSocket server refuses a POST with 400 or 426: does it upgrade a GET?
            upgraded = upgrade(url.replace("http", "ws", 1), token, timeout)
            if upgraded.status in (101, 401, 403):  # it upgrades, or would with a token
                wrong = _what_is_it(Reply(426, {}, b"websocket"), url)
        except OSError:
            pass
    if wrong is not None:
        return [*checks, wrong]
    if reply.status == 404 or (reply.status == 200 and reply.envelope() is None):
        found = _find_http_path(url, token, timeout)
        if found is None:
            return [
                *checks,
                fail(
                    "path",
                    f"{base}/get_login_info answers HTTP {reply.status}; "
                    f"no usual path ({', '.join(HTTP_PATHS)}) works either",
                    "核对 URL：只写 http://主机:端口，"
                    "动作名由库拼在后面；确认这是 HTTP 服务器端口。",
                    "check the URL: give only http://host:port, the library appends "
                    "the action; make sure this is the HTTP server's port.",
                ),
            ]
        good = with_path(url, found).rstrip("/")
        return [
            *checks,
            fail(
                "path",
                f"{base}/get_login_info answers HTTP {reply.status}, but "
                f"{good}/get_login_info works",
                f"把 URL 改成 {good}。",
                f"use {good} as the URL.",
            ),
        ]
    checks.append(ok("path", f"{base}/<action> answers"))
    auth = _check_http_token(base, token, reply, timeout)
    checks.append(auth)
    if auth.status == "fail":
        return checks
    checks += _http_actions(base, token, timeout)
    return checks


def _find_http_path(url: str, token: str | None, timeout: float) -> str | None:
    for path in HTTP_PATHS:
        if path.rstrip("/") == urlsplit(url).path.rstrip("/"):
            continue
        try:
            reply = call_action(with_path(url, path), "get_login_info", token, timeout)
        except OSError:
            return None
        if reply.envelope() is not None or reply.status in (401, 403):
            return path
    return None


def token_fail(status: int, token: str | None, *, ws: bool) -> Check:
    where, where_zh = (
        ("its WebSocket server", "WebSocket 服务器") if ws else ("its HTTP server", "HTTP 服务器")
    )
    if not token:
        return no_token_fail(f"HTTP {status}")
    missing = "the token was not seen (401)" if status == 401 else "the token is wrong (403)"
    return fail(
        "token",
        f"HTTP {status} with our token in the header and in ?access_token=: {missing}",
        f"两边的 token 不一致：把 --token 改成实现里{where_zh}的 access_token"
        "（注意空格和大小写）。",
        f"the tokens differ: set --token to the access_token of {where} in the "
        "implementation's config (watch for spaces and case).",
    )


def _check_http_token(base: str, token: str | None, reply: Reply, timeout: float) -> Check:
    """Header vs ``?access_token=``, 401 vs 403, and an implementation that checks nothing."""
    if reply.status in (401, 403):
        if token:
            via_query = call_action(base, "get_login_info", token, timeout, query=True)
            if via_query.status == 200:
                return warn(
                    "token",
                    f"the Authorization header got HTTP {reply.status}, ?access_token= works",
                    "实现只认 URL 里的 access_token：客户端请用 ?access_token= 传 token。",
                    "the implementation reads the token from the query only: send it as "
                    "?access_token= (the spec allows both).",
                )
        return token_fail(reply.status, token, ws=False)
    if token:
        bare = call_action(base, "get_login_info", None, timeout)
        if bare.status == 200:
            return warn(
                "token",
                "calls succeed without any token: --token is not checked",
                "实现没有设置 access_token，"
                "任何能连上端口的人都能控制机器人：在实现里设置同一个 token。",
                "no access_token is set on the implementation, so anyone who reaches the "
                "port controls the bot: set the same token there.",
            )
        return ok("token", f"accepted in the Authorization header (without it: HTTP {bare.status})")
    return ok("token", "no token needed")


def _http_actions(base: str, token: str | None, timeout: float) -> list[Check]:
    results: dict[str, Any] = {}
    for action in ("get_login_info", "get_version_info", "get_status", ".handle_quick_operation"):
        try:
            reply = call_action(base, action, token, timeout)
        except OSError as exc:
            results[action] = f"no answer: {exc}"
            continue
        envelope = reply.envelope()
        results[action] = envelope if envelope is not None else f"HTTP {reply.status}"
    return summarize(results)
