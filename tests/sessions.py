"""A small bot, connected to FakeOneBot in any mode, with or without the recorder between them.

Shared by test_record.py and test_replay.py. The bot answers three commands:
``/ping`` (one call), ``/who`` (a call whose answer goes into the next one)
and ``/bye``. The *changed* bot answers ``/ping`` differently, makes one more
call on ``/who`` and says nothing to ``/bye``: the diff a replay must report.
"""

import contextlib
import pathlib
from collections.abc import Iterator
from typing import Any

from conftest import served, wait_until

from onebot_ref.api import OneBotApi
from onebot_ref.http_client import HttpClient
from onebot_ref.http_server import HttpServer
from onebot_ref.record import HttpRelay, Transcript, WsRelay
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_client import WsClient
from onebot_ref.ws_server import WsServer

TOKEN = "tok-Sekr3t-abc"  # searched for in the transcript: it must not be there
SECRET = "sig-Sekr3t-xyz"
MODES = ("ws-server", "ws-client", "http")  # "http": HTTP POST events and HTTP API calls
SCRIPT = [(20001, "/ping"), (20002, "/who"), (20001, "/bye")]


def behave(api: OneBotApi, event: dict[str, Any], changed: bool) -> None:
    """The bot's handler: what it calls for each command."""
    text, user = event.get("raw_message"), event["user_id"]
    if text == "/ping":
        api.send_private_msg(user, "PONG" if changed else "pong")
    elif text == "/who":
        info = api.get_stranger_info(user)
        api.send_private_msg(user, f"you are {info['nickname']}")
        if changed:
            api.get_status()
    elif text == "/bye" and not changed:
        api.send_private_msg(user, "bye")


@contextlib.contextmanager
def connected(
    fake: FakeOneBot, mode: str, *, changed: bool = False, record: Transcript | None = None
) -> Iterator[None]:
    """Our bot in ``mode``, connected to ``fake`` (through the recorder when ``record``)."""
    with contextlib.ExitStack() as stack:

        def relay(kind: str, target: str) -> str:
            if record is None:
                return target
            cls = WsRelay if kind.startswith("ws") else HttpRelay
            started = cls(record, kind, "127.0.0.1", 0, target)
            started.start()
            stack.callback(started.close)
            return started.url

        if mode == "ws-server":  # reverse WS: the fake dials the bot
            server = stack.enter_context(WsServer("127.0.0.1", 0, access_token=TOKEN))
            server.on("message")(lambda event: behave(server, event, changed))
            client = fake.connect_reverse(relay("ws-server", server.url))
            assert client.wait_connected(timeout=10)
            wait_until(lambda: served(server), 10, "the bot sees the connection")
        elif mode == "ws-client":  # forward WS: the bot dials the fake
            bot = WsClient(relay("ws-client", fake.start_ws_server()), access_token=TOKEN)
            bot.on("message")(lambda event: behave(bot, event, changed))
            stack.enter_context(bot)
        else:  # HTTP POST events to the bot; the bot calls the HTTP API
            api = stack.enter_context(
                HttpClient(relay("http-client", fake.start_http_api()), access_token=TOKEN)
            )
            receiver = stack.enter_context(HttpServer("127.0.0.1", 0, secret=SECRET, api=api))
            receiver.on("message")(lambda event: behave(api, event, changed))
            fake.add_http_post(relay("http-server", receiver.url), secret=SECRET)
        yield


def fake_for(**options: Any) -> FakeOneBot:
    """A FakeOneBot that wants the token where the bot presents it."""
    return FakeOneBot(access_token=TOKEN, **options)


def run_script(fake: FakeOneBot) -> None:
    """The conversation: each command, then the bot's one reply to it."""
    for n, (user, text) in enumerate(SCRIPT, 1):
        fake.push_message(user_id=user, text=text)
        fake.wait_for_sent(n, timeout=10)


def record_session(mode: str, path: pathlib.Path) -> list[str]:
    """Record the conversation in ``mode`` through the recorder; the replies the bot sent."""
    with fake_for() as fake, Transcript(path) as transcript:
        with connected(fake, mode, record=transcript):
            run_script(fake)
        return [sent["text"] for sent in fake.sent]
