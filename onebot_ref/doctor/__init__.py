"""``python -m onebot_ref.doctor``: why does my bot not connect? A checklist for all four modes.

Point it where the bot would point (or listen where the bot would listen),
naming the bot's side as the demo does::

    python -m onebot_ref.doctor http-client --url http://127.0.0.1:3000 --token T  # HTTP API
    python -m onebot_ref.doctor ws-client --url ws://127.0.0.1:3001 --token T      # forward WS
    python -m onebot_ref.doctor http-server --listen 0.0.0.0:8080 --secret S       # HTTP POST
    python -m onebot_ref.doctor ws-server --listen 0.0.0.0:8081 --token T          # reverse WS

``--http URL``, ``--ws URL``, ``--listen-http`` and ``--listen-ws`` are the
same four in one flag each.

The client modes probe the implementation: TCP (refused, timeout, DNS), the
kind of server (HTTP API, WebSocket, a web UI, a bot's receiver), the path,
the token (header or ``?access_token=``, missing or wrong, NapCat's in-band
1403), then ``get_login_info``, ``get_version_info``, ``get_status``, quick
operations and, over WebSocket, the echo round trip and the events. The
server modes listen for ``--wait`` seconds, then report what the
implementation sent: ``X-Self-ID``, ``X-Client-Role``, the ``Authorization``
scheme, ``X-Signature``, lifecycle, heartbeats and message format.

One line per check, ``✓`` fine, ``!`` worth a look, ``✗`` broken, and for
every problem one fix, in Chinese and in English. Exit status 0 when nothing
is broken, 1 otherwise; ``--json`` prints the same as one JSON object.
Send the bot a message while it waits to see the message format.
"""

import argparse
import json
import logging
import os
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

from .._tls import host_port_arg, url_host
from ..codec import redact
from ._checks import Check, warn
from ._listeners import listen_http, listen_ws
from ._probes import check_http, is_loopback
from ._probes_ws import check_ws

__all__ = ["Check", "in_container", "main", "run"]

SYMBOLS = {"ok": "✓", "warn": "!", "fail": "✗"}
ASCII_SYMBOLS = {"ok": "+", "warn": "!", "fail": "x"}


def in_container() -> bool:
    """Best effort: are we inside Docker, Podman, containerd or LXC?"""
    if os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"):
        return True
    try:
        with open("/proc/1/cgroup", encoding="utf-8") as f:
            cgroup = f.read()
    except OSError:  # not Linux, or no /proc
        return False
    return any(word in cgroup for word in ("docker", "kubepods", "containerd", "lxc"))


def _addresses() -> str:
    try:
        ips = socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        return ""
    ips = [ip for ip in ips if not ip.startswith("127.")]
    return f"; this container's addresses: {', '.join(ips)}" if ips else ""


def environment(host: str, listening: bool, checks: list[Check]) -> list[Check]:
    """A warning when 127.0.0.1 inside a container may be the reason nothing connected.

    Inside a container 127.0.0.1 is the container itself, so an implementation
    on the host (or in another container) cannot be reached there. But when
    something did answer on loopback (``tcp`` passed) or the implementation did
    connect (``connect`` passed), both sides share the network namespace (one
    container, or host networking) and the warning would be noise: it is given
    only when that connection failed.
    """
    unreached = any(c.name in ("tcp", "connect") and c.status == "fail" for c in checks)
    if not unreached or not is_loopback(host) or not in_container():
        return []
    if listening:
        return [
            warn(
                "container",
                f"listening on {host} inside a container: only this container "
                f"can connect{_addresses()}",
                "容器里的 127.0.0.1 只是容器自己：改为监听 0.0.0.0，并发布端口（-p）。",
                "127.0.0.1 in a container is the container itself: listen on 0.0.0.0 and "
                "publish the port (-p).",
            )
        ]
    return [
        warn(
            "container",
            f"{host} inside a container is this container, not the host",
            "改用宿主机 IP、host.docker.internal，或 compose 里实现的服务名。",
            "use the host's IP, host.docker.internal, or the implementation's compose "
            "service name.",
        )
    ]


def run(args: argparse.Namespace) -> tuple[str, list[Check]]:
    """Run the checks the arguments ask for; return the target and the checks."""
    if args.http or args.ws:
        url: str = args.http or args.ws
        schemes = ("http", "https") if args.http else ("ws", "wss")
        parts = urlsplit(url)
        if parts.scheme not in schemes or not parts.hostname:
            wanted = "http://host:port" if args.http else "ws://host:port/"
            return url, [
                Check(
                    "url",
                    "fail",
                    f"{url!r} is not a {schemes[0]} URL",
                    f"写成 {wanted} 的形式。",
                    f"write it as {wanted}.",
                )
            ]
        if args.http:
            checks = check_http(url, args.token, args.timeout)
        else:
            checks = check_ws(url, args.token, args.wait, args.timeout)
        return url, checks + environment(parts.hostname, False, checks)
    host, port = args.listen_http or args.listen_ws
    target = f"{url_host(host)}:{port}"
    if args.listen_http:
        checks = listen_http(host, port, args.secret, args.wait)
    else:
        checks = listen_ws(host, port, args.token, args.wait, args.timeout)
    return target, checks + environment(host, True, checks)


def render(mode: str, target: str, checks: list[Check], symbols: dict[str, str]) -> str:
    """The checklist as text: one line per check, the fix lines under each problem."""
    width = max((len(c.name) for c in checks), default=0)
    lines = [f"onebot_ref doctor: {mode} {target}"]
    for check in checks:
        lines.append(f"{symbols[check.status]} {check.name:<{width}}  {check.detail}")
        if check.fix_en:
            lines.append(f"  {'':<{width}}  修复: {check.fix_zh}")
            lines.append(f"  {'':<{width}}  fix: {check.fix_en}")
    broken = sum(c.status == "fail" for c in checks)
    lines.append(f"{broken} problem(s) to fix" if broken else "everything works")
    return "\n".join(lines)


def report(mode: str, target: str, checks: list[Check]) -> dict[str, Any]:
    """The checklist as one JSON-ready object."""
    return {
        "mode": mode,
        "target": target,
        "ok": not any(c.status == "fail" for c in checks),
        "checks": [c._asdict() for c in checks],
    }


MODES = ("http-client", "http-server", "ws-client", "ws-server")  # as the demo names them
# Each mode as the one-flag spelling that says the same (the flag's argparse dest).
SHORTHAND = {"http-client": "http", "ws-client": "ws", "http-server": "listen_http",
             "ws-server": "listen_ws"}  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: a mode and ``--url``/``--listen``, as the demo takes them.

    ``MODE --url URL`` probes an implementation the bot would dial
    (``http-client``: its HTTP API; ``ws-client``: its forward WebSocket);
    ``MODE --listen HOST:PORT`` waits where the bot would listen
    (``http-server``: its HTTP POST events; ``ws-server``: its reverse
    WebSocket). ``--http URL``, ``--ws URL``, ``--listen-http HOST:PORT`` and
    ``--listen-ws HOST:PORT`` say the same in one flag.
    """
    parser = argparse.ArgumentParser(
        prog="python -m onebot_ref.doctor",
        description="Check the connection between a bot and its OneBot 11 implementation.",
    )
    parser.add_argument(
        "mode", nargs="?", choices=MODES, help="the bot's side, as the demo names it"
    )
    parser.add_argument("--url", help="client modes: the implementation's URL")
    parser.add_argument(
        "--listen", metavar="HOST:PORT", type=host_port_arg, help="server modes: where to listen"
    )
    short = parser.add_mutually_exclusive_group()
    short.add_argument("--http", metavar="URL", help="= http-client --url URL")
    short.add_argument("--ws", metavar="URL", help="= ws-client --url URL")
    short.add_argument(
        "--listen-http", metavar="HOST:PORT", type=host_port_arg, help="= http-server --listen"
    )
    short.add_argument(
        "--listen-ws", metavar="HOST:PORT", type=host_port_arg, help="= ws-server --listen"
    )
    parser.add_argument("--token", help="access token (both sides must agree)")
    parser.add_argument("--secret", help="HTTP POST signature secret (X-Signature)")
    parser.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to listen or watch for events (default 10)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="connect and answer timeout per probe (default 3)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--verbose", action="store_true", help="debug logs on stderr")
    args = parser.parse_args(argv)
    shortcut = args.http or args.ws or args.listen_http or args.listen_ws
    if args.mode is None and not shortcut:
        parser.error(f"give a mode ({', '.join(MODES)}) with --url or --listen")
    if args.mode is not None:
        if shortcut:
            parser.error("give a mode with --url/--listen, or one of --http/--ws/--listen-*")
        client = args.mode.endswith("-client")
        if client and not args.url:
            parser.error(f"{args.mode} needs --url (the implementation's URL)")
        if not client and not args.listen:
            parser.error(f"{args.mode} needs --listen HOST:PORT")
        setattr(args, SHORTHAND[args.mode], args.url if client else args.listen)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.CRITICAL,
        format="%(levelname)s %(name)s: %(message)s",
    )
    mode = next(m for m in ("http", "ws", "listen_http", "listen_ws") if getattr(args, m))
    mode = "--" + mode.replace("_", "-")
    try:
        target, checks = run(args)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr, flush=True)
        return 1
    if args.json:
        # Reports get pasted into issues: no token from a URL query goes with them.
        text = json.dumps(report(mode, target, checks), ensure_ascii=False, indent=2)
        print(redact(text), flush=True)
    else:
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
        try:
            "✓✗修复".encode(encoding)
            symbols = SYMBOLS
        except (UnicodeEncodeError, LookupError):  # e.g. a Windows console on cp1252
            symbols = ASCII_SYMBOLS
            if hasattr(sys.stdout, "reconfigure"):
                sys.stdout.reconfigure(errors="replace")
        print(redact(render(mode, target, checks, symbols)), flush=True)
    return 1 if any(c.status == "fail" for c in checks) else 0
