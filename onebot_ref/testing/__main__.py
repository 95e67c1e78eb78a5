"""``python -m onebot_ref.testing``: a fake QQ account that any OneBot 11 bot can talk to.

FakeOneBot, standalone: it plays the implementation (NapCat, go-cqhttp…) in
any set of the four modes, so that a bot built on any framework (NoneBot2,
aiocqhttp, onebot_ref) can be tried by hand, or in CI, with no QQ account::

    python -m onebot_ref.testing --ws-server 127.0.0.1:3001            # the bot dials it
    python -m onebot_ref.testing --http-api 127.0.0.1:3000 --token T   # the bot calls it
    python -m onebot_ref.testing --post-to http://127.0.0.1:8080/ --secret S
    python -m onebot_ref.testing --ws-reverse ws://127.0.0.1:8080/onebot/v11/ws

It prints where to point the bot, then reads lines: on a terminal as a chat
(``/group 30001 hello``, plain text to the current chat, ``/help``), from a
pipe or ``--script FILE`` as a script (the same lines, ``/wait-sent N`` to
wait for the bot's answers; JSON objects are raw events). What the bot sends
is printed as a chat shows it. ``--world FILE`` (JSON, or TOML on Python
3.11+ or with ``tomli``) describes friends, groups, members and roles.

Exit status: 0 at the end of the input, on ``/quit`` or Ctrl+C (SIGTERM
too); 1 when a script line fails or a /wait-* deadline passes (with
``--script`` at once, from a pipe at the end), or it cannot start; 2 for a
usage error.
"""

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import TextIO
from urllib.parse import urlsplit

from .. import codec
from .._tls import host_port_arg
from ..errors import ConfigError, OneBotError
from ._console import Console
from ._fake import FakeOneBot
from ._world import FLAVORS, read_world_file

__all__ = ["main"]

RECONNECT = 3.0  # seconds between reverse-WS dials, as go-cqhttp and NapCat default


def url_arg(schemes: tuple[str, ...]) -> Callable[[str], str]:
    """An argparse ``type=`` that accepts only URLs with one of ``schemes`` and a host."""

    def check(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            raise argparse.ArgumentTypeError(
                f"{value!r} is not a {'/'.join(schemes)} URL; write it as "
                f"{schemes[0]}://127.0.0.1:8080/"
            )
        return value

    return check


def qq_arg(value: str) -> int:
    """A QQ number as an argparse ``type=``: a positive integer."""
    if not value.isdigit() or int(value) == 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a QQ number (a positive integer)")
    return int(value)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m onebot_ref.testing",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "一个假的 OneBot 11 实现（QQ 账号）：任何框架写的机器人都能连上来测试，不需要 QQ 号。\n"
            "A fake OneBot 11 implementation (a QQ account) that any bot can connect to: "
            "test without a QQ account."
        ),
        epilog=(
            "例子 / examples:\n"
            "  python -m onebot_ref.testing --ws-server 127.0.0.1:3001\n"
            "  python -m onebot_ref.testing --http-api 127.0.0.1:3000 --post-to "
            "http://127.0.0.1:8080/ --secret S\n"
            "  python -m onebot_ref.testing --ws-reverse ws://127.0.0.1:8080/onebot/v11/ws "
            "--world world.toml --script chat.txt\n"
            "Console lines: /help after start. 启动后输入 /help 查看命令。"
        ),
    )
    modes = parser.add_argument_group("模式（可任意组合） / modes (any set of them)")
    modes.add_argument(
        "--http-api",
        type=host_port_arg,
        metavar="HOST:PORT",
        help="在此提供 HTTP API（机器人的 http-client 模式来调用） / serve the HTTP API here "
        "(the bot's http-client mode calls it)",
    )
    modes.add_argument(
        "--ws-server",
        type=host_port_arg,
        metavar="HOST:PORT",
        help="在此提供正向 WebSocket（机器人的 ws-client 模式来连） / serve forward WebSocket "
        "here (the bot's ws-client mode dials it)",
    )
    modes.add_argument(
        "--post-to",
        type=url_arg(("http", "https")),
        action="append",
        default=[],
        metavar="URL",
        help="把事件 POST 到机器人（其 http-server 模式）；可重复 / POST events to the bot "
        "(its http-server mode); repeatable",
    )
    modes.add_argument(
        "--ws-reverse",
        type=url_arg(("ws", "wss")),
        action="append",
        default=[],
        metavar="URL",
        help="反向 WebSocket：去连机器人（其 ws-server 模式），断了就重连；可重复 / reverse "
        "WebSocket: dial the bot (its ws-server mode) and redial; repeatable",
    )
    auth = parser.add_argument_group("鉴权与口味 / auth and flavour")
    auth.add_argument(
        "--token", help="access token（双方必须一致） / access token (both sides must agree)"
    )
    auth.add_argument(
        "--secret", help="HTTP POST 签名密钥（X-Signature） / HTTP POST signature secret"
    )
    auth.add_argument(
        "--flavor",
        default="napcat",
        choices=FLAVORS,
        help="模仿哪个实现（默认 napcat） / which implementation to imitate (default: napcat)",
    )
    auth.add_argument(
        "--message-format",
        choices=("string", "array"),
        help="事件里的消息格式（默认随口味） / message format in events (default: the flavour's)",
    )
    auth.add_argument(
        "--heartbeat",
        type=float,
        metavar="SECONDS",
        help="心跳间隔（默认不发） / heartbeat interval (default: none, as the spec)",
    )
    world = parser.add_argument_group("世界 / the world")
    world.add_argument(
        "--self-id",
        type=qq_arg,
        metavar="QQ",
        help="机器人的 QQ 号（默认 10001，或世界文件里的） / the bot's QQ number "
        "(default 10001, or the world file's)",
    )
    world.add_argument(
        "--world",
        metavar="FILE",
        help="好友、群、成员和角色（JSON；TOML 需 Python 3.11+ 或 tomli） / friends, groups, "
        "members, roles (JSON; TOML needs Python 3.11+ or tomli)",
    )
    tls = parser.add_argument_group("TLS")
    tls.add_argument(
        "--certfile",
        help="HTTP API 和正向 WS 用的证书链（PEM） / certificate chain (PEM): serve https/wss",
    )
    tls.add_argument("--keyfile", help="私钥（PEM） / its private key (PEM), if not in --certfile")
    tls.add_argument(
        "--ca-file",
        help="连接机器人的 https/wss 时信任此 CA / trust this CA (PEM) for the bot's https/wss",
    )
    tls.add_argument(
        "--insecure",
        action="store_true",
        help="不校验机器人的证书（开发用） / do not verify the bot's certificate (development)",
    )
    source = parser.add_argument_group("输入 / input")
    source.add_argument(
        "--script",
        metavar="FILE",
        help="按行播放控制台命令，播完退出 / play console lines from FILE, then exit",
    )
    source.add_argument(
        "--no-console",
        action="store_true",
        help="不读输入，一直服务到 Ctrl+C（容器、CI），照样显示机器人发的消息 / read no input: "
        "serve until Ctrl+C (containers, CI), still showing what the bot sends",
    )
    # Record/replay adds its input here (--replay FILE): one more way to feed the fake.
    parser.add_argument("--verbose", action="store_true", help="调试日志 / debug logs on stderr")
    args = parser.parse_args(argv)
    if not (args.http_api or args.ws_server or args.post_to or args.ws_reverse):
        parser.error(
            "give at least one mode / 至少给一个模式: --http-api HOST:PORT, --ws-server "
            "HOST:PORT, --post-to URL or --ws-reverse URL"
        )
    if args.secret and not args.post_to:
        parser.error("--secret signs HTTP POST events: give --post-to URL too")
    if args.script and args.no_console:
        parser.error("--script plays lines, --no-console reads none: give one of them")
    try:
        codec.valid_token(args.token)
    except ConfigError as exc:
        parser.error(f"--token: {exc}")
    return args


def start(args: argparse.Namespace) -> tuple[FakeOneBot, list[str]]:
    """The fake, serving and dialing as the arguments say; and the lines saying where.

    Raises:
        ConfigError: a world file or TLS file that does not work.
        OSError: a port that cannot be bound.
    """
    description = read_world_file(args.world) if args.world else None
    if description is not None and args.self_id is not None:
        description = {**description, "self_id": args.self_id}  # the flag wins over the file
    fake = FakeOneBot(
        args.self_id or 10001,
        flavor=args.flavor,
        access_token=args.token,
        heartbeat_interval=args.heartbeat,
        message_format=args.message_format,
        certfile=args.certfile,
        keyfile=args.keyfile,
        ca_file=args.ca_file,
        verify=not args.insecure,
    )
    lines: list[str] = []
    try:
        if description is not None:
            try:
                fake.world.load(description)
            except ConfigError as exc:
                raise ConfigError(f"the world file {args.world}: {exc}") from None
        if args.http_api:
            host, port = args.http_api
            url = fake.start_http_api(port, host=host)
            lines.append(f"  HTTP API     {url}  (bot side: http-client)")
        if args.ws_server:
            host, port = args.ws_server
            url = fake.start_ws_server(port, host=host)
            lines.append(f"  forward WS   {url}  (bot side: ws-client; /api, /event: split roles)")
        for url in args.post_to:
            fake.add_http_post(url, secret=args.secret)
            signed = ", signed with --secret" if args.secret else ""
            lines.append(f"  HTTP POST →  {url}  (bot side: http-server{signed})")
        for url in args.ws_reverse:
            fake.connect_reverse(url, reconnect_interval=RECONNECT)
            lines.append(
                f"  reverse WS → {url}  (bot side: ws-server; redials every {RECONNECT:g} s)"
            )
    except BaseException:
        fake.close()
        raise
    return fake, lines


def banner(fake: FakeOneBot, args: argparse.Namespace, lines: list[str]) -> str:
    world = fake.world
    head = (
        f"FakeOneBot: QQ {world.self_id} ({world.nickname}), {world.flavor} flavour; "
        f"friends: {len(world.friends)}, groups: {len(world.groups)}"
    )
    token = "required / 需要" if args.token else "none / 无"
    if args.no_console:
        tail = "Ctrl+C 退出 / Ctrl+C to quit"
    elif args.script:
        tail = f"播放 / playing {args.script}"
    else:
        tail = "输入消息，/help 查看命令，Ctrl+C 退出 / type a message, /help, Ctrl+C to quit"
    return "\n".join(
        [head, "把机器人指向这里 / point the bot here:", *lines, f"  access token: {token}", tail]
    )


def read_script(path: str) -> list[str]:
    """The lines of a ``--script`` file (UTF-8).

    Raises:
        ConfigError: it cannot be read.
    """
    try:
        with open(path, encoding="utf-8") as script:
            return script.readlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the script {path}: {exc}") from None


def play(console: Console, lines: Iterable[str], *, stop_at_error: bool, errors: TextIO) -> int:
    """Run each line; the exit status. A failing line is reported to ``errors`` (stderr)
    with its number."""
    failed = 0
    for number, line in enumerate(lines, 1):
        try:
            if not console.run(line):
                break
        except (ConfigError, TimeoutError) as exc:
            errors.write(f"line {number}: {exc}\n")
            errors.flush()
            failed += 1
            if stop_at_error:
                return 1
    return 1 if failed else 0


def interact(console: Console) -> int:
    """The chat on a terminal: a prompt, errors shown, nothing fatal but /quit and Ctrl+D."""
    try:
        import readline  # noqa: F401, PLC0415  (line editing and history for input(), if any)
    except ImportError:
        pass
    console.say("/help 查看命令 / for the commands")
    while True:
        try:
            line = input(console.prompt())
        except EOFError:
            return 0
        try:
            if not console.run(line):
                return 0
        except (ConfigError, TimeoutError) as exc:
            console.say(f"? {exc}")


def serve(stop: threading.Event) -> int:
    """No console: wake up now and then to notice Ctrl+C."""
    while not stop.wait(0.2):
        pass
    return 0


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM (docker stop, systemd) stops as Ctrl+C does


def _utf8_or_replace(stream: TextIO) -> None:
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        "群→".encode(encoding)
    except (UnicodeEncodeError, LookupError):  # e.g. a Windows console on cp1252
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _utf8_or_replace(sys.stdout)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    fake: FakeOneBot | None = None
    console: Console | None = None
    terminal = sys.stdin is not None and sys.stdin.isatty()
    try:
        script = read_script(args.script) if args.script else None
        fake, lines = start(args)
        print(banner(fake, args, lines), flush=True)
        # The console's output side runs in every case: what the bot sends is shown.
        console = Console(fake, sys.stdout, echo=script is not None or not terminal)
        console.start()
        # (Record/replay: --replay FILE plays its transcript here, as one more input.)
        if args.no_console or sys.stdin is None:
            return serve(threading.Event())
        if script is not None:
            return play(console, script, stop_at_error=True, errors=sys.stderr)
        if terminal:
            return interact(console)
        piped = iter(sys.stdin.readline, "")
        return play(console, piped, stop_at_error=False, errors=sys.stderr)
    except KeyboardInterrupt:
        print("stopped", flush=True)
        return 0
    except (OneBotError, OSError) as exc:
        print(f"error: {codec.redact(str(exc))}", file=sys.stderr, flush=True)
        return 1
    finally:
        if console is not None:
            console.close()
        if fake is not None:
            fake.close()


if __name__ == "__main__":
    raise SystemExit(main())
