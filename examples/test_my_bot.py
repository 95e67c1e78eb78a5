#!/usr/bin/env python3
"""How to test your own bot with FakeOneBot and pytest: python -m pytest test_my_bot.py.

FakeOneBot is a real OneBot 11 implementation over loopback sockets, so the tests
exercise your bot exactly as NapCat or go-cqhttp would, with no QQ account. Run
as a script (python test_my_bot.py), this file runs its own tests with pytest.
"""

import argparse
from collections.abc import Iterator

import pytest

from onebot_ref import MessageEvent
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_client import WsClient


def make_bot(url: str) -> WsClient:
    """Your bot: answers /help with its commands and ignores every other message."""
    bot = WsClient(url)

    @bot.on("message")
    def on_message(event: MessageEvent) -> None:
        if event["raw_message"] == "/help":
            bot.reply(event, "commands: /help")

    return bot


@pytest.fixture
def fake() -> Iterator[FakeOneBot]:
    with FakeOneBot(flavor="napcat") as fake:
        yield fake


def test_help_command(fake: FakeOneBot) -> None:
    with make_bot(fake.start_ws_server()):
        fake.push_message(user_id=20001, text="/help")
        (reply,) = fake.wait_for_sent(1, timeout=5)
    assert reply["user_id"] == 20001
    assert reply["text"] == "commands: /help"


def test_other_messages_are_ignored(fake: FakeOneBot) -> None:
    with make_bot(fake.start_ws_server()):
        fake.push_message(text="hello")
        with pytest.raises(TimeoutError):
            fake.wait_for_sent(1, timeout=0.3)


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__).parse_args()
    raise SystemExit(pytest.main(["-q", "-p", "no:cacheprovider", __file__]))
