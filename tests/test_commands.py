"""Commands and filters, over real sockets in every receiving mode, against FakeOneBot.

What a test pushes is what NapCat or go-cqhttp would post: FakeOneBot's own
message events (a CQ string parsed into segments), edited where a test needs a
sender's role or a reply segment. The handlers record what they got; the
replies are read back from the fake's world.
"""

import logging
import threading
from typing import Any

import pytest
from bots import MODES, running
from conftest import FakeClock, wait_until

from onebot_ref import message as m
from onebot_ref.errors import ConfigError, UsageError
from onebot_ref.registry import Registry, split_args
from onebot_ref.testing import FakeOneBot

SELF = 10001  # FakeOneBot's account
GROUP = 30001


class Seen:
    """What handlers were called with, collected from the worker threads."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._lock = threading.Lock()

    def add(self, item: Any) -> None:
        with self._lock:
            self.items.append(item)

    def wait(self, n: int) -> list[Any]:
        wait_until(lambda: len(self.items) >= n, 5, f"{n} handler calls")
        return list(self.items)


@pytest.fixture
def fake() -> Any:
    with FakeOneBot() as fake:
        yield fake


def push(fake: FakeOneBot, text: str, *, user: int = 20001, group: int | None = None,
         role: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Push a message event, with ``sender.role`` set if given; return it."""
    event = fake.world.message_event(user, text, group)
    if role is not None:
        event["sender"]["role"] = role
    fake.push(event)
    return event


@pytest.mark.parametrize("mode", MODES)
def test_a_command_gets_its_argument_text_and_segments_with_the_at_in_them(
    no_thread_leak: None, fake: FakeOneBot, mode: str
) -> None:
    seen = Seen()
    with running(fake, mode) as bot:

        @bot.command("天气", aliases=("weather",))
        def weather(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            seen.add((event["message_type"], args, segments))

        push(fake, "/天气 北京 [CQ:at,qq=20002] 明天", group=GROUP)  # a prefix in a group
        push(fake, f"[CQ:at,qq={SELF}] weather 上海", group=GROUP)  # an @ of the bot
        push(fake, "天气 广州")  # a private chat needs no prefix
        push(fake, "天气 深圳", group=GROUP)  # neither prefix nor @: not a command
        push(fake, "/天气预报 杭州", group=GROUP)  # another word
        push(fake, "/weather", group=GROUP)  # no arguments
        got = seen.wait(4)
        bot.registry.join()
    expected = [
        ("group", "北京  明天", [m.text("北京 "), m.at(20002), m.text(" 明天")]),
        ("group", "上海", [m.text("上海")]),  # the @ of the bot is not an argument
        ("private", "广州", [m.text("广州")]),
        ("group", "", []),
    ]
    assert sorted(got, key=repr) == sorted(expected, key=repr)  # 16 workers: in any order
    assert len(seen.items) == 4


@pytest.mark.parametrize("mode", MODES)
def test_prefixes_default_from_the_bot_and_a_command_may_have_its_own(
    fake: FakeOneBot, mode: str
) -> None:
    seen = Seen()
    with running(fake, mode) as bot:
        bot.prefixes = ["!", "！"]

        @bot.command("roll")
        def roll(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            seen.add(("roll", args))

        @bot.command("ping", prefixes=["#"])
        def ping(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            seen.add(("ping", args))

        push(fake, "/roll 1", group=GROUP)  # "/" is no longer a prefix
        push(fake, "！roll 2", group=GROUP)
        push(fake, "!ping 3", group=GROUP)  # ping has its own
        push(fake, "#ping 4", group=GROUP)
        got = seen.wait(2)
        bot.registry.join()
    assert sorted(got) == [("ping", "4"), ("roll", "2")]
    assert bot.prefixes == ("!", "！")


@pytest.mark.parametrize("mode", MODES)
def test_a_raising_command_is_logged_once_with_the_event_and_answers_nothing(
    fake: FakeOneBot, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    with running(fake, mode) as bot:

        @bot.command("boom")
        def boom(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            raise RuntimeError("the weather service is down")

        @bot.command("ping")
        def ping(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            bot.reply(event, "pong")

        with caplog.at_level(logging.ERROR, logger="onebot_ref"):
            push(fake, "/boom now", group=GROUP)
            wait_until(lambda: bot.registry.handler_errors == 1, 5, "the command failing")
            push(fake, "/ping", group=GROUP)
            (sent,) = fake.wait_for_sent(1)
    assert sent["text"] == "pong"  # the failure answered the chat with nothing
    failures = [r for r in caplog.records if "'boom' failed" in r.getMessage()]
    assert len(failures) == 1
    assert "/boom now" in failures[0].getMessage()  # the event is in the log line
    assert failures[0].exc_info is not None


@pytest.mark.parametrize("mode", MODES)
def test_usage_is_sent_when_the_arguments_do_not_split(fake: FakeOneBot, mode: str) -> None:
    seen = Seen()
    with running(fake, mode) as bot:

        @bot.command("say", usage="用法 / usage: /say TEXT [TEXT...]")
        def say(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            words = split_args(args)
            seen.add(words)
            bot.reply(event, " | ".join(words))

        @bot.command("echo", usage="usage: /echo TEXT")
        def echo(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            bot.reply(event, args)  # no split_args: a quote is only text

        push(fake, '/say "unclosed quote', group=GROUP)
        push(fake, '/say "two words" three', group=GROUP)
        push(fake, "/echo I'm here", group=GROUP)
        sent = fake.wait_for_sent(3)  # the three ran on three workers: in any order
    assert sorted(s["text"] for s in sent) == [
        "I'm here",
        "two words | three",
        "用法 / usage: /say TEXT [TEXT...]",
    ]
    assert seen.items == [["two words", "three"]]  # the bad one ended in split_args


def test_split_args_is_shell_like_and_its_error_is_ours() -> None:
    assert split_args("a 'b c' \"d\"") == ["a", "b c", "d"]
    with pytest.raises(UsageError, match="cannot split the arguments") as info:
        split_args("'open")
    assert isinstance(info.value, ValueError)


def test_bad_command_and_filter_arguments_are_config_errors() -> None:
    registry = Registry()
    with pytest.raises(ConfigError, match="one word"):
        registry.command("two words")
    with pytest.raises(ConfigError, match="not one of superuser, owner, admin"):
        registry.on("message", permission="root")
    with pytest.raises(ConfigError, match="a collection of ids"):
        registry.on("message", groups=12345)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="takes a list"):
        Registry(prefixes="/")


# -- filters ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_to_me_is_a_private_chat_an_at_or_a_reply_to_our_own_message(
    fake: FakeOneBot, mode: str
) -> None:
    seen = Seen()
    with running(fake, mode) as bot:

        @bot.on("message", to_me=True)
        def heard(event: dict[str, Any]) -> None:
            seen.add(event["raw_message"])

        @bot.command("say")
        def say(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            bot.reply(event, args)

        push(fake, "/say hello", group=GROUP)  # our own message, whose id we learn
        (ours,) = fake.wait_for_sent(1)
        # The implementation answers the send with the id before anyone can reply to it.
        wait_until(lambda: ours["message_id"] in bot.registry.own_messages, 5, "our id")
        push(fake, "just chatting", group=GROUP)  # skipped
        push(fake, "[CQ:at,qq=20002] not us", group=GROUP)  # skipped
        push(fake, f"[CQ:at,qq={SELF}] hi bot", group=GROUP)
        push(fake, f"[CQ:reply,id={ours['message_id']}]nice", group=GROUP)
        push(fake, "[CQ:reply,id=999999]someone else's", group=GROUP)  # skipped
        push(fake, "in private")
        seen.wait(3)
        bot.registry.join()
    assert sorted(seen.items) == sorted(
        [f"[CQ:at,qq={SELF}] hi bot", f"[CQ:reply,id={ours['message_id']}]nice", "in private"]
    )
    # /say itself did not pass to_me either: 4 skipped.
    assert bot.registry.skipped == 4


@pytest.mark.parametrize("mode", MODES)
def test_groups_and_users_allow_lists(fake: FakeOneBot, mode: str) -> None:
    seen = Seen()
    with running(fake, mode) as bot:

        @bot.command("ban", groups=[GROUP], users=["20002", 20003])
        def ban(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            seen.add((event.get("group_id"), event["user_id"]))

        push(fake, "/ban x", user=20001, group=GROUP)  # not an allowed user
        push(fake, "/ban x", user=20002, group=30002)  # not an allowed group
        push(fake, "/ban x", user=20003)  # a private chat is no allowed group
        push(fake, "/ban x", user=20002, group=GROUP)
        push(fake, "/ban x", user=20003, group=GROUP)
        seen.wait(2)
        bot.registry.join()
    assert sorted(seen.items) == [(GROUP, 20002), (GROUP, 20003)]
    assert bot.registry.skipped == 3


@pytest.mark.parametrize("mode", MODES)
def test_permission_superuser_owner_and_admin(fake: FakeOneBot, mode: str) -> None:
    seen = Seen()
    with running(fake, mode) as bot:
        bot.superusers = [20009]
        for level in ("superuser", "owner", "admin"):

            def handler(
                event: dict[str, Any], args: str, segments: Any, level: str = level
            ) -> None:
                seen.add((level, event["user_id"]))

            bot.command(level, permission=level)(handler)
        for role, user in (("member", 20001), ("admin", 20002), ("owner", 20003)):
            for level in ("superuser", "owner", "admin"):
                push(fake, f"/{level}", user=user, group=GROUP, role=role)
        push(fake, "/superuser", user=20009, group=GROUP, role="member")
        push(fake, "/owner", user=20009, group=GROUP, role="member")
        push(fake, "/admin", user=20009)  # a private chat has no role; a superuser passes
        seen.wait(6)
        bot.registry.join()
    assert sorted(seen.items) == sorted(
        [
            ("admin", 20002),
            ("owner", 20003),
            ("admin", 20003),
            ("superuser", 20009),
            ("owner", 20009),
            ("admin", 20009),
        ]
    )
    assert bot.registry.skipped == 6  # member: 3, admin: superuser and owner, owner: superuser


@pytest.mark.parametrize("mode", MODES)
def test_cooldown_is_per_user_and_chat_and_counted(
    no_thread_leak: None, fake: FakeOneBot, mode: str
) -> None:
    clock = FakeClock()
    seen = Seen()
    registry = Registry(clock=clock)  # ours to close: a mode closes only the registry it made
    with running(fake, mode, registry=registry) as bot:

        @bot.command("draw", cooldown=60)
        def draw(event: dict[str, Any], args: str, segments: list[Any]) -> None:
            seen.add((event["user_id"], event.get("group_id")))

        def draw_and_settle(user: int, group: int | None) -> None:
            """Push /draw and wait until it ran or was skipped (one at a time: the clock decides)."""
            settled = len(seen.items) + bot.registry.skipped
            push(fake, "/draw", user=user, group=group)
            wait_until(lambda: len(seen.items) + bot.registry.skipped > settled, 5, "/draw")

        draw_and_settle(20001, GROUP)  # runs, and starts 20001's cooldown in the group
        draw_and_settle(20001, GROUP)  # skipped
        draw_and_settle(20002, GROUP)  # another user: runs
        draw_and_settle(20001, None)  # the same user in another chat: runs
        clock.advance(59.75)
        draw_and_settle(20001, GROUP)  # still inside: skipped
        clock.advance(0.25)
        draw_and_settle(20001, GROUP)  # 60 s later: runs
    registry.close()
    assert seen.items == [(20001, GROUP), (20002, GROUP), (20001, None), (20001, GROUP)]
    assert bot.registry.skipped == 2


def test_filters_on_a_plain_handler_return_the_function_unchanged() -> None:
    registry = Registry()

    def handler(event: dict[str, Any]) -> str:
        return "ran"

    assert registry.on("message", users=[1])(handler) is handler
    assert registry.dispatch({"post_type": "message", "user_id": 2}) == []
    assert registry.dispatch({"post_type": "message", "user_id": 1}) == ["ran"]
    assert registry.skipped == 1


@pytest.mark.parametrize("path", ["submit", "dispatch"])
def test_join_waits_for_a_command_still_running(path: str) -> None:
    """A mode's close() joins the registry first, so that a command's reply in flight gets out."""
    registry = Registry()
    release = threading.Event()
    ran = threading.Event()

    @registry.command("slow")
    def slow(event: dict[str, Any], args: str, segments: list[Any]) -> None:
        ran.set()
        release.wait(5)

    event = {"post_type": "message", "message_type": "private", "user_id": 1, "message": "slow"}
    if path == "submit":
        registry.submit(event)
    else:
        registry.dispatch(event)  # HTTP POST: the command is queued for the workers
    assert ran.wait(5)
    assert registry.join(timeout=0.2) is False  # the command has not returned
    release.set()
    assert registry.join(timeout=5) is True
    registry.close()


def test_a_command_dispatch_cannot_queue_is_counted_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = Registry()
    registry.command("late")(lambda event, args, segments: None)
    registry.close()
    event = {"post_type": "message", "message_type": "private", "user_id": 1, "message": "late"}
    with caplog.at_level(logging.WARNING, logger="onebot_ref"):
        assert registry.dispatch(event) == []
    assert (registry.dropped_commands, registry.dropped) == (1, 0)
    assert "a command was not run: the registry is closed" in caplog.text
    assert registry.join(timeout=1)
