"""``python -m onebot_ref.record``: record a real session between a bot and its implementation.

录制机器人与 OneBot 实现（NapCat、go-cqhttp……）之间的真实会话：录制器站在两者之间，
原样转发一切（令牌、签名、每一帧的字节），并把每一帧、每个请求写进 JSONL 记录，
令牌与签名在记录里一律打码。之后 ``FakeOneBot.replay(记录)`` 可在 pytest 里回放它。

The recorder stands between the two and passes everything through unchanged
(tokens, signatures, the bytes of every frame and body), writing each frame
and request to a JSONL transcript, with every token and signature masked in
it (see :mod:`onebot_ref.record._transcript` for the line format). Replay it
in a test with ``FakeOneBot.replay(path)``. Modes are named after the bot's
side, as the demo and the doctor name them; in each the recorder listens
(``--listen``) where the dialling side should now point, and relays to
``--to``, where that side used to point::

    # reverse WS: NapCat dials the recorder, the recorder dials the bot's WsServer
    python -m onebot_ref.record ws-server --listen 127.0.0.1:8081 --to ws://127.0.0.1:8080/
    # forward WS: the bot's WsClient dials the recorder, the recorder dials NapCat
    python -m onebot_ref.record ws-client --listen 127.0.0.1:3002 --to ws://127.0.0.1:3001/
    # HTTP API: the bot's HttpClient calls the recorder, the recorder calls NapCat
    python -m onebot_ref.record http-client --listen 127.0.0.1:3100 --to http://127.0.0.1:3000
    # HTTP POST: NapCat posts to the recorder, the recorder posts to the bot's HttpServer
    python -m onebot_ref.record http-server --listen 127.0.0.1:8090 --to http://127.0.0.1:8080/

``--certfile``/``--keyfile`` make the recorder listen with TLS (``wss://``,
``https://``); ``--ca-file`` (or ``--insecure``) says how it verifies a
``wss://``/``https://`` target. ``--also MODE HOST:PORT URL`` records one
more mode into the same transcript (the HTTP API and HTTP POST halves of one
bot). ``-o FILE`` names the
transcript (default ``onebot-session-<time>.jsonl``; an existing file is
appended to). Either side may disconnect and come back: each connection is
a new pair, numbered in the transcript, which goes on. Ctrl+C (or SIGTERM)
stops it.

It owns the command line. The relays are :class:`WsRelay` and
:class:`HttpRelay`; the transcript is :class:`Transcript`, read back by
:func:`read_transcript`.
"""

import argparse
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from .._tls import client_context, host_port_arg, server_context, url_host
from ..codec import redact
from ..errors import OneBotError
from ._http import HttpRelay
from ._transcript import Transcript, read_transcript
from ._ws import WsRelay

__all__ = ["HttpRelay", "Transcript", "WsRelay", "main", "read_transcript", "relay_for"]

MODES = ("ws-server", "ws-client", "http-client", "http-server")
# Who dials the recorder in each mode, and who it dials: what the banner tells the user.
SIDES = {
    "ws-server": ("the implementation (reverse WS)", "the bot's WebSocket server"),
    "ws-client": ("the bot (forward WS)", "the implementation's WebSocket server"),
    "http-client": ("the bot (HTTP API calls)", "the implementation's HTTP API"),
    "http-server": ("the implementation (HTTP POST events)", "the bot's HTTP server"),
}


EPILOG = """\
模式 / modes (the bot's side, as python -m onebot_ref.demo names it):
  ws-server    反向 WS：实现连录制器，录制器连机器人
               reverse WS: the implementation dials us, we dial the bot
  ws-client    正向 WS：机器人连录制器，录制器连实现
               forward WS: the bot dials us, we dial the implementation
  http-client  HTTP API：机器人调用录制器，录制器调用实现
               HTTP API: the bot calls us, we call the implementation
  http-server  HTTP POST：实现上报给录制器，录制器转给机器人
               HTTP POST: the implementation posts to us, we post to the bot

例 / example (NapCat's websocketClients pointed at 8081; the bot listens on 8080):
  python -m onebot_ref.record ws-server --listen 127.0.0.1:8081 \\
      --to ws://127.0.0.1:8080/ -o napcat-session.jsonl

回放 / replay, in pytest:
  diff = FakeOneBot(self_id=<QQ>).replay("napcat-session.jsonl"); assert not diff, str(diff)
"""


def relay_for(
    transcript: Transcript, mode: str, host: str, port: int, target: str, **options: Any
) -> WsRelay | HttpRelay:
    """The relay for ``mode`` (not started yet).

    Raises:
        ConfigError: an unknown mode, or a ``target`` of the wrong scheme for it.
    """
    if mode.startswith("ws-"):
        return WsRelay(transcript, mode, host, port, target, **options)
    return HttpRelay(transcript, mode, host, port, target, **options)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m onebot_ref.record",
        description=(
            "录制机器人与 OneBot 11 实现之间的会话：原样转发一切，JSONL 记录里令牌与签名打码。\n"
            "Record a session between a bot and its OneBot 11 implementation: everything\n"
            "passes through unchanged; the JSONL transcript keeps no token or signature."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    parser.add_argument(
        "mode", choices=MODES, help="机器人一侧的模式 / the bot's side, as the demo names it"
    )
    parser.add_argument(
        "--listen", required=True, metavar="HOST:PORT", type=host_port_arg,
        help="录制器监听处，让发起连接的一方改连这里 / where the dialling side now connects",
    )  # fmt: skip
    parser.add_argument(
        "--to", required=True, metavar="URL",
        help="另一方原来的地址 / the URL the dialling side used to connect to",
    )  # fmt: skip
    parser.add_argument(
        "--also", nargs=3, action="append", default=[], metavar=("MODE", "HOST:PORT", "URL"),
        help="同时录制另一模式到同一记录 / record one more mode into the same transcript",
    )  # fmt: skip
    parser.add_argument(
        "-o", "--out", metavar="FILE",
        help="记录文件（默认 onebot-session-<时间>.jsonl）/ the transcript (default "
        "onebot-session-<time>.jsonl; appended to)",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS",
        help="连接与每次读写对方的时限 / seconds to reach the other side, per read and write",
    )  # fmt: skip
    parser.add_argument(
        "--certfile",
        help="监听时用的 TLS 证书链（PEM）/ listen with TLS: the certificate chain (PEM)",
    )
    parser.add_argument(
        "--keyfile", help="TLS 私钥（PEM）/ its private key (PEM), if not in --certfile"
    )
    parser.add_argument(
        "--ca-file",
        help="连接 wss:// 或 https:// 时信任此 CA / trust this CA when dialling with TLS",
    )
    parser.add_argument(
        "--insecure", action="store_true",
        help="不校验对方证书（仅限开发）/ do not verify the other side's certificate (development)",
    )  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="调试日志 / debug logs on stderr")
    args = parser.parse_args(argv)
    args.relays = [(args.mode, args.listen, args.to)]
    for mode, listen, url in args.also:
        if mode not in MODES:
            parser.error(f"--also: mode {mode!r} is not one of {', '.join(MODES)}")
        try:
            args.relays.append((mode, host_port_arg(listen), url))
        except argparse.ArgumentTypeError as exc:
            parser.error(f"--also: {exc}")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM (docker stop, systemd) stops cleanly, as Ctrl+C does


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    out = args.out or time.strftime("onebot-session-%Y%m%d-%H%M%S.jsonl")
    existed = os.path.exists(out)
    relays: list[WsRelay | HttpRelay] = []
    lines = 0
    try:
        tls = {
            "ssl_context": server_context(certfile=args.certfile, keyfile=args.keyfile),
            "client_ssl_context": client_context(
                ca_file=args.ca_file, verify=not args.insecure, who="the recorder"
            ),
        }
        with Transcript(out) as transcript:
            try:
                for mode, (host, port), url in args.relays:
                    option = "connect_timeout" if mode.startswith("ws-") else "timeout"
                    options = {option: args.timeout, **tls}
                    relay = relay_for(transcript, mode, host, port, url, **options)
                    relay.start()
                    relays.append(relay)
                    dialler, other = SIDES[mode]
                    where = f"{url_host(host)}:{relay.port}"
                    print(f"recording {mode}: point {dialler} at {where}; "
                          f"relaying to {other} at {redact(url)}", flush=True)  # fmt: skip
                print(f"transcript: {out}; Ctrl+C to stop / 按 Ctrl+C 停止", flush=True)
                while True:  # the relays run in their own threads; wake up to notice Ctrl+C
                    time.sleep(0.2)
            finally:
                for relay in relays:
                    relay.close()
                lines = transcript.lines
    except KeyboardInterrupt:
        print(f"stopped: {lines} lines in {out}", flush=True)
        return 0
    except (OneBotError, OSError) as exc:
        if not existed and not lines and os.path.exists(out):
            os.remove(out)  # a start that failed leaves no empty transcript behind
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
