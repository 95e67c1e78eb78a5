"""``python -m onebot_ref.demo MODE``: an echo bot in each of the four modes, offline by default.

Modes are named after our modules: ``http-client``, ``http-server``,
``ws-client``, ``ws-server``, or ``all``. By default the demo starts
FakeOneBot and our side on 127.0.0.1 ephemeral ports, runs a short
conversation (a private message, a group message with an @ and text that
needs CQ escaping, ``get_login_info``), prints every frame that crossed the
wire, and exits 0, or 1 with a clear message.

Against a real implementation (NapCat, go-cqhttp…), run only the echo bot:

* ``--listen HOST:PORT`` for the server modes (``http-server``, ``ws-server``):
  point the implementation's HTTP POST / reverse-WS URL at it;
* ``--url URL`` for the client modes (``http-client``, ``ws-client``): the
  implementation's HTTP API / forward-WS URL.

``--tls`` runs the same conversation over ``https://`` and ``wss://``. The
certificate is ``--certfile``/``--keyfile`` (trusted through ``--ca-file``);
without them the demo makes a throwaway one with the ``trustme`` package if it
is installed (``pip install trustme``; onebot_ref itself does not depend on
it), and otherwise says so and stops. Live, ``--certfile``/``--keyfile`` make
the server modes listen with TLS, and ``wss://``/``https://`` URLs verify with
``--ca-file``, or not at all with ``--insecure``.

The echo bot answers every message event with the same message: by a quick
operation ``reply`` over HTTP POST, by a ``send_*`` call over WebSocket.
Ctrl+C stops it. Live, the transcript comes from our own side: every frame the
bot receives or sends is logged at DEBUG on the ``onebot_ref.wire`` logger
(:func:`codec.log_frame`), and :class:`Transcript` prints those records in the
offline format. ``ws-client`` waits up to a minute for an implementation that
is not up yet.
"""

import argparse
import importlib
import importlib.util
import logging
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from . import message as m
from ._tls import client_context, host_port_arg, server_context
from ._ws_dial import transient
from .codec import dumps
from .errors import NetworkError, OneBotError
from .http_client import HttpClient
from .http_server import HttpServer
from .testing._fake import FakeOneBot
from .ws_client import WsClient
from .ws_server import WsServer

__all__ = ["main"]

MODES = ("http-client", "http-server", "ws-client", "ws-server")
SERVER_MODES = ("http-server", "ws-server")
CONNECT_WAIT = 60.0  # seconds ws-client waits for an implementation that starts late

# The conversation: what the "users" say to the bot. The group message mentions
# the bot and carries text that only survives with correct CQ escaping.
FRIEND, GROUP = 20001, 30001
PRIVATE_MESSAGE = [m.text("你好, onebot_ref!")]
GROUP_MESSAGE = [m.at(10001), m.text(" [CQ:face,id=1] is text, & so is &#91;")]


def echo_bot(mode: str, args: argparse.Namespace, target: str | None = None) -> Any:
    """The echo bot for ``mode``; ``target`` is the fake's URL (client modes, http-server's API).

    Returns the started bot object (it has ``close()``).
    """
    server_tls, client_tls = args.server_tls, args.client_tls
    if mode == "http-client":
        return HttpClient(target or args.url, access_token=args.token, ssl_context=client_tls)
    if mode == "http-server":
        host, port = args.listen
        api = (
            HttpClient(target, access_token=args.token, ssl_context=client_tls) if target else None
        )
        server = HttpServer(host, port, secret=args.secret, api=api, ssl_context=server_tls)

        @server.on("message")
        def echo_http(event: dict[str, Any]) -> dict[str, Any]:
            return {"reply": event["message"], "at_sender": False, "auto_escape": False}

        return server.start()
    if mode == "ws-client":
        return start_forward(target or args.url, args, wait=0.0 if target else CONNECT_WAIT)
    host, port = args.listen
    reverse = WsServer(host, port, access_token=args.token, ssl_context=server_tls)

    @reverse.on("message")
    def echo_reverse(event: dict[str, Any]) -> None:
        reverse.reply(event, event["message"])

    return reverse.start()


def forward_bot(url: str, args: argparse.Namespace) -> WsClient:
    """The ws-client echo bot, not started yet."""
    client = WsClient(url, access_token=args.token, ssl_context=args.client_tls)

    @client.on("message")
    def echo_forward(event: dict[str, Any]) -> None:
        client.reply(event, event["message"])

    return client


def start_forward(url: str, args: argparse.Namespace, wait: float) -> WsClient:
    """Start the ws-client echo bot, waiting up to ``wait`` seconds for the implementation.

    A first quick try shows a wrong URL or token at once. If nothing answered
    at all (the implementation may simply not be up yet), say so, and let
    ``WsClient.start(wait=...)`` retry with backoff, as ``run_forever()`` would.
    """
    attempts = [0.0, wait] if wait else [0.0]
    for attempt in attempts:
        client = forward_bot(url, args)
        try:
            return client.start(wait=attempt)
        except NetworkError as exc:
            client.close()
            if attempt or not wait or not transient(exc):
                raise
            print(f"waiting up to {wait:g} s for an implementation at {url} ({exc})", flush=True)
        except BaseException:
            client.close()
            raise
    raise AssertionError("not reached: the last attempt returns or raises")


def printer(verbose: bool) -> Callable[[str, str, Any], None]:
    """A transcript line per frame: direction, mode, compact JSON (text is shown as it is)."""
    lock = threading.Lock()

    def show(direction: str, mode: str, obj: Any) -> None:
        if isinstance(obj, str):
            text = obj
        else:
            text = dumps(obj).decode("utf-8") if not isinstance(obj, int) else f"HTTP {obj}"
        if not verbose and len(text) > 150:
            text = text[:147] + "..."
        with lock:
            print(f"  {direction}  [{mode}]  {text}", flush=True)

    return show


def converse(mode: str, args: argparse.Namespace) -> int:
    """Run the offline conversation for one mode; return the number of messages echoed."""
    with FakeOneBot(
        flavor=args.flavor,
        access_token=args.token,
        ssl_context=args.server_tls,
        client_ssl_context=args.client_tls,
    ) as fake:
        fake.on_wire = printer(args.verbose)
        target = None
        if mode in ("http-client", "http-server"):
            target = fake.start_http_api()  # http-server's handlers call the API through it
        elif mode == "ws-client":
            target = fake.start_ws_server()
        bot = echo_bot(mode, args, target)
        try:
            if mode == "http-server":
                fake.add_http_post(bot.url, secret=args.secret)
            elif mode == "ws-server":
                fake.connect_reverse(bot.url, reconnect_interval=0.5).wait_connected()
                _wait(lambda: bool(bot.bots), 5, "the reverse connection")
            if mode == "http-client":  # no events in this mode: the bot speaks first
                bot.send_private_msg(FRIEND, PRIVATE_MESSAGE)
                bot.send_group_msg(GROUP, GROUP_MESSAGE)
            else:
                fake.push_message(user_id=FRIEND, text=m.to_cq(PRIVATE_MESSAGE))
                fake.push_message(user_id=FRIEND, text=m.to_cq(GROUP_MESSAGE), group_id=GROUP)
            sent = fake.wait_for_sent(2, timeout=10)
            login = bot.get_login_info()
        finally:
            bot.close()
    # Handlers run on a pool, so the two replies may land in either order: match by destination.
    echoed = {
        ("group", s["group_id"]) if "group_id" in s else ("private", s["user_id"]): s["message"]
        for s in sent
    }
    expected = {("private", FRIEND): PRIVATE_MESSAGE, ("group", GROUP): GROUP_MESSAGE}
    if echoed != expected:
        raise RuntimeError(f"{mode}: the bot did not echo the conversation; it sent {echoed!r}")
    print(f"  ok: echoed {len(sent)} messages; get_login_info -> {login}", flush=True)
    return len(sent)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Transcript(logging.Handler):
    """Prints the ``onebot_ref.wire`` log (:func:`codec.log_frame`) as transcript lines.

    Live there is no FakeOneBot to record the frames: our own modes log what
    they receive and send, and this handler shows it the way the offline
    transcript does.
    """

    def __init__(self, mode: str, show: Callable[[str, str, Any], None]) -> None:
        super().__init__(logging.DEBUG)
        self.mode = mode
        self.show = show

    def emit(self, record: logging.LogRecord) -> None:
        if not (isinstance(record.args, tuple) and len(record.args) == 2):
            return  # not a log_frame record
        direction, text = record.args  # ("received" | "sent", the JSON text)
        self.show("onebot → bot" if direction == "received" else "bot → onebot", self.mode, text)


def run_live(mode: str, args: argparse.Namespace) -> int:
    """Run only the echo bot against a real implementation, until Ctrl+C."""
    if mode not in SERVER_MODES:  # frames may arrive as soon as it connects
        print(f"{mode} echo bot connecting to {args.url}", flush=True)
    bot = echo_bot(mode, args)
    where = bot.url if mode in SERVER_MODES else args.url
    print(f"{mode} echo bot running at {where}; Ctrl+C to stop", flush=True)
    try:
        if mode == "http-client":
            print(f"get_login_info -> {bot.get_login_info()}", flush=True)
            return 0
        while True:  # the bot runs in its own threads; wake up to notice Ctrl+C
            time.sleep(0.2)
    finally:
        bot.close()


def tls_contexts(args: argparse.Namespace, live: bool) -> None:
    """Set ``args.server_tls`` and ``args.client_tls`` from the TLS options."""
    args.server_tls = server_context(certfile=args.certfile, keyfile=args.keyfile)
    args.client_tls = client_context(ca_file=args.ca_file, verify=not args.insecure, who="the demo")
    if live or not (args.tls or args.server_tls):
        return
    if args.server_tls is not None:
        if args.client_tls is None:
            raise SystemExit("--certfile: give --ca-file (the CA that signed it) or --insecure")
        return
    if importlib.util.find_spec("trustme") is None:
        raise SystemExit(
            "--tls needs a certificate: give --certfile/--keyfile (and --ca-file to trust it), "
            "or `pip install trustme` and the demo makes a throwaway one"
        )
    # A throwaway CA and certificate, in memory, for the loopback addresses only.
    trustme = importlib.import_module("trustme")  # optional: not a dependency of onebot_ref
    authority = trustme.CA()
    args.server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "::1", "localhost").configure_cert(args.server_tls)
    args.client_tls = ssl.create_default_context()
    authority.configure_trust(args.client_tls)
    print("TLS: a throwaway certificate for 127.0.0.1, made by trustme", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m onebot_ref.demo",
        description="An echo bot in each OneBot 11 mode; offline against FakeOneBot by default.",
    )
    parser.add_argument("mode", choices=[*MODES, "all"])
    parser.add_argument(
        "--listen",
        type=host_port_arg,
        metavar="HOST:PORT",
        help="server modes: wait for a real implementation",
    )
    parser.add_argument(
        "--url", help="client modes: connect to a real implementation (ws-client waits for it)"
    )
    parser.add_argument("--token", help="access token (both sides must agree)")
    parser.add_argument("--secret", help="HTTP POST signature secret")
    parser.add_argument(
        "--flavor",
        default="napcat",
        choices=["spec", "go-cqhttp", "napcat"],
        help="which implementation FakeOneBot imitates (default: napcat)",
    )
    parser.add_argument("--tls", action="store_true", help="speak https:// and wss://")
    parser.add_argument("--certfile", help="TLS certificate chain (PEM) for the servers")
    parser.add_argument("--keyfile", help="TLS private key (PEM), if not in --certfile")
    parser.add_argument("--ca-file", help="trust this CA (PEM) when connecting with TLS")
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify TLS certificates (development)"
    )
    parser.add_argument("--verbose", action="store_true", help="full frames and debug logs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    live = args.listen is not None or args.url is not None
    try:
        tls_contexts(args, live)
        if live:
            if args.mode == "all":
                raise SystemExit("--listen/--url need one mode, not 'all'")
            if args.mode in SERVER_MODES and args.listen is None:
                raise SystemExit(f"{args.mode} listens: give --listen HOST:PORT, not --url")
            if args.mode not in SERVER_MODES and args.url is None:
                raise SystemExit(f"{args.mode} connects: give --url URL, not --listen")
            wire = logging.getLogger("onebot_ref.wire")  # our side's frames: the transcript
            wire.setLevel(logging.DEBUG)
            wire.propagate = args.verbose  # --verbose: the same frames as DEBUG lines on stderr
            wire.addHandler(Transcript(args.mode, printer(args.verbose)))
            return run_live(args.mode, args)
        results = []
        for mode in MODES if args.mode == "all" else (args.mode,):
            print(f"== {mode}{' over TLS' if args.server_tls else ''}", flush=True)
            started = time.monotonic()
            args.listen = ("127.0.0.1", 0)  # our servers take any free port
            count = converse(mode, args)
            results.append((mode, count, time.monotonic() - started))
        if args.mode == "all":
            print("\n  mode          echoed  time")
            for mode, count, elapsed in results:
                print(f"  {mode:<12}  {count:>6}  {elapsed:.2f}s")
        return 0
    except KeyboardInterrupt:
        print("stopped", flush=True)
        return 0
    except (OneBotError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
