"""Conversations (ask, wait_for), over real sockets in every receiving mode, against FakeOneBot."""

import threading
import time
from typing import Any

import pytest
from bots import MODES, running
from conftest import wait_until

from onebot_ref.errors import ConversationTimeout, OneBotError
from onebot_ref.registry import Registry
from onebot_ref.testing import FakeOneBot

GROUP = 30001


@pytest.fixture
def fake() -> Any:
    with FakeOneBot() as fake:
        yield fake


def texts(fake: FakeOneBot, n: int) -> list[str]:
    return [str(sent["text"]) for sent in fake.wait_for_sent(n)]


@pytest.mark.parametrize("mode", MODES)
def test_ask_returns_the_same_users_next_message_in_the_same_chat_and_consumes_it(
    no_thread_leak: None, fake: FakeOneBot, mode: str
) -> None:
    echoed: list[str] = []
    with running(fake, mode) as bot:

        @bot.command("name")
        def name(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            answer = bot.ask(event, "你叫什么？", timeout=5)
            bot.reply(event, f"你好，{answer['raw_message']}")

        @bot.command("echo")
        def echo(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            echoed.append(args)

        fake.push_message(user_id=20001, text="/name", group_id=GROUP)
        assert texts(fake, 1) == ["你叫什么？"]
        fake.push_message(user_id=20002, text="/echo not the one asked", group_id=GROUP)
        fake.push_message(user_id=20001, text="/echo in private: another chat")
        wait_until(lambda: len(echoed) == 2, 5, "the two other messages handled")
        fake.push_message(user_id=20001, text="/echo 小明", group_id=GROUP)  # the answer
        assert texts(fake, 2)[1] == "你好，/echo 小明"
        bot.registry.join()
    assert sorted(echoed) == ["in private: another chat", "not the one asked"]
    assert bot.registry.waiters.consumed == 1


@pytest.mark.parametrize("mode", MODES)
def test_ask_times_out_with_a_conversation_timeout(fake: FakeOneBot, mode: str) -> None:
    caught: list[BaseException] = []
    with running(fake, mode) as bot:

        @bot.command("quiz")
        def quiz(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            try:
                bot.ask(event, "1 + 1 = ?", timeout=0.2)
            except ConversationTimeout as exc:
                caught.append(exc)
                bot.reply(event, "时间到 / time is up")

        fake.push_message(text="/quiz")
        assert texts(fake, 2) == ["1 + 1 = ?", "时间到 / time is up"]
        assert len(bot.registry.waiters) == 0
    (error,) = caught
    assert isinstance(error, TimeoutError) and isinstance(error, OneBotError)
    assert "no answer within 0.2s" in str(error)


@pytest.mark.parametrize("mode", MODES)
def test_wait_for_takes_the_next_event_a_predicate_accepts(fake: FakeOneBot, mode: str) -> None:
    got: list[dict[str, Any]] = []
    with running(fake, mode) as bot:

        @bot.command("watch")
        def watch(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            bot.reply(event, "watching")
            got.append(bot.wait_for(lambda e: e.get("notice_type") == "group_increase", 5))

        fake.push_message(text="/watch", group_id=GROUP)
        wait_until(lambda: len(bot.registry.waiters) == 1, 5, "the handler waiting")
        notice = {
            "time": int(time.time()), "self_id": fake.self_id, "post_type": "notice",
            "notice_type": "group_increase", "sub_type": "approve", "group_id": GROUP,
            "operator_id": 0, "user_id": 20005,
        }  # fmt: skip
        fake.push_message(text="not this", group_id=GROUP)
        fake.push(notice)
        wait_until(lambda: got, 5, "the notice")
    assert got[0]["user_id"] == 20005


@pytest.mark.parametrize("mode", MODES)
def test_200_waiting_conversations_do_not_starve_other_events(
    no_thread_leak: None, fake: FakeOneBot, mode: str
) -> None:
    users = range(21000, 21200)
    with running(fake, mode) as bot:
        registry = bot.registry

        @bot.command("wait")
        def wait(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            answer = bot.ask(event, "?", timeout=20)
            bot.reply(event, f"got {answer['raw_message']}")

        @bot.command("ping")
        def ping(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            bot.reply(event, "pong")

        for user in users:
            fake.push_message(user_id=user, text="/wait")
        wait_until(lambda: len(registry.waiters) == 200, 20, "200 conversations waiting")
        assert registry.workers == 16  # far fewer workers than waiting handlers
        started = time.monotonic()
        fake.push_message(user_id=20001, text="/ping")
        wait_until(lambda: any(s["text"] == "pong" for s in fake.sent), 5, "the pong")
        assert time.monotonic() - started < 2  # promptly, while 200 handlers wait
        for user in users:
            fake.push_message(user_id=user, text=f"answer {user}")
        sent = fake.wait_for_sent(200 + 1 + 200, timeout=20)
        assert {s["text"] for s in sent if s["text"].startswith("got")} == {
            f"got answer {user}" for user in users
        }
        # The spares that stood in for waiting workers retire: the pool is 16 again.
        wait_until(lambda: len(registry._threads) == registry.workers, 10, "the spares retired")


def test_max_waiting_and_close_end_conversations_at_once() -> None:
    registry = Registry(max_waiting=2)
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            registry.wait_for(lambda e: False, timeout=30)
        except ConversationTimeout as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wait) for _ in range(2)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(registry.waiters) == 2, 5, "two waiting")
    with pytest.raises(ConversationTimeout, match="max_waiting=2"):
        registry.wait_for(lambda e: True, timeout=30)
    started = time.monotonic()
    registry.close()
    for thread in threads:
        thread.join(5)
    assert time.monotonic() - started < 5  # not the 30 s timeout
    assert [str(e) for e in errors] == ["the bot closed while waiting for an answer"] * 2
    with pytest.raises(ConversationTimeout, match="closing"):
        registry.wait_for(lambda e: True, timeout=1)


def test_a_predicate_that_raises_is_logged_and_counts_as_no() -> None:
    registry = Registry()
    got: list[dict[str, Any]] = []

    def broken(event: dict[str, Any]) -> bool:
        raise KeyError("user_id")

    waiter = threading.Thread(target=lambda: got.append(registry.wait_for(lambda e: True, 5)))
    registry.waiters.add(broken)
    waiter.start()
    wait_until(lambda: len(registry.waiters) == 2, 5, "both waiting")
    assert registry.dispatch({"post_type": "message"}) == []
    waiter.join(5)
    assert got == [{"post_type": "message"}]
