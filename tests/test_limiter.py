"""The send limit, on an injected clock: in order, waits counted, a clear error past max_wait.

Over real sockets in all four modes (``http-client`` alone, and the three
receiving modes), against FakeOneBot, which records what arrives in order.
"""

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from bots import MODES, running
from conftest import FakeClock

from onebot_ref.errors import ConfigError, OneBotError, SendLimited
from onebot_ref.http_client import HttpClient
from onebot_ref.registry import SendLimit
from onebot_ref.testing import FakeOneBot

GROUP = 30001


class Sleeps:
    """A ``sleep`` that records each wait and moves the fake clock past it."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


@contextlib.contextmanager
def sender(mode: str, limit: SendLimit) -> Iterator[tuple[FakeOneBot, Any]]:
    """A FakeOneBot and our ``mode`` sending to it through ``limit``."""
    with FakeOneBot() as fake:
        if mode == "http-client":
            with HttpClient(fake.start_http_api(), timeout=5, send_limit=limit) as client:
                yield fake, client
        else:
            with running(fake, mode, send_limit=limit) as bot:
                yield fake, bot


@pytest.mark.parametrize("mode", ["http-client", *MODES])
def test_messages_over_the_rate_wait_in_order_and_the_waits_are_counted(mode: str) -> None:
    clock = FakeClock()
    sleeps = Sleeps(clock)
    limit = SendLimit(rate=1, burst=2, clock=clock, sleep=sleeps)
    with sender(mode, limit) as (fake, bot):
        for n in range(5):
            bot.send_group_msg(GROUP, f"message {n}")
        bot.get_status()  # not a message: never waits
        sent = fake.wait_for_sent(5)
    assert [s["text"] for s in sent] == [f"message {n}" for n in range(5)]
    assert sleeps.waits == [1.0, 1.0, 1.0]  # two at once (the burst), then one a second
    assert (limit.sent, limit.waits, limit.waited, limit.refused) == (5, 3, 3.0, 0)


@pytest.mark.parametrize("mode", ["http-client", *MODES])
def test_a_chat_has_its_own_rate(mode: str) -> None:
    clock = FakeClock()
    sleeps = Sleeps(clock)
    limit = SendLimit(rate=10, burst=10, chat_rate=0.5, chat_burst=1, clock=clock, sleep=sleeps)
    with sender(mode, limit) as (fake, bot):
        bot.send_group_msg(GROUP, "to the group")
        bot.send_msg("to the same group", group_id=GROUP)  # waits 2 s for the group's turn
        bot.send_private_msg(20001, "to a friend")  # another chat: no wait
        bot.send_group_msg(GROUP, "the group again")  # 2 s after the second
        sent = fake.wait_for_sent(4)
    assert [s["text"] for s in sent] == [
        "to the group",
        "to the same group",
        "to a friend",
        "the group again",
    ]
    assert sleeps.waits == [2.0, 2.0]


@pytest.mark.parametrize("mode", ["http-client", *MODES])
def test_past_max_wait_a_message_is_refused_with_a_clear_error_not_dropped(mode: str) -> None:
    clock = FakeClock()
    sleeps = Sleeps(clock)
    limit = SendLimit(rate=0.5, burst=1, max_wait=1.0, clock=clock, sleep=sleeps)
    with sender(mode, limit) as (fake, bot):
        bot.send_private_msg(20001, "first")
        with pytest.raises(SendLimited, match=r"would wait 2\.0s .* max_wait=1") as info:
            bot.send_private_msg(20001, "second")
        clock.advance(1.0)
        bot.send_private_msg(20001, "third")  # 1 s left to wait: within max_wait
        sent = fake.wait_for_sent(2)
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, OneBotError)
    assert [s["text"] for s in sent] == ["first", "third"]
    assert (limit.sent, limit.refused, sleeps.waits) == (2, 1, [1.0])


def test_bad_limits_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="rate=0"):
        SendLimit(rate=0)
    with pytest.raises(ConfigError, match="chat_burst=0"):
        SendLimit(chat_rate=1, chat_burst=0)
    with pytest.raises(ConfigError, match="max_wait=-1"):
        SendLimit(max_wait=-1)
