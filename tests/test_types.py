"""Types an editor can use (issue 14): TypedDict events and results, checked by mypy.

This file is itself in mypy's ``files`` (setup.cfg): the handlers below are
annotated with the events' TypedDicts and read the API's typed results, so the
suite's type check proves that an editor-level use type-checks. At runtime they
run against FakeOneBot over loopback, where every event and result is still the
plain dict from the wire. The last test runs mypy on a snippet to prove the
other side: a key the TypedDict lacks is an error, and results are not ``Any``.
"""

import os
import pathlib
import queue
import re

from mypy import api

from onebot_ref import (
    GroupInfo,
    GroupMemberInfo,
    GroupMessageEvent,
    LoginInfo,
    MessageId,
    Role,
    WsClient,
)
from onebot_ref.testing import FakeOneBot


def test_a_handler_annotated_with_a_typed_event_gets_the_events_dict() -> None:
    seen: queue.SimpleQueue[tuple[GroupMessageEvent, MessageId]] = queue.SimpleQueue()
    with FakeOneBot() as fake, WsClient(fake.start_ws_server()) as bot:

        @bot.on("message.group")
        def greet(event: GroupMessageEvent) -> None:
            sent = bot.reply(event, f"hi, {event['sender'].get('card') or event['user_id']}")
            seen.put((event, sent))

        # 20002 is a plain member in the default world
        fake.push_message(text="hello", group_id=30001, user_id=20002)
        event, sent = seen.get(timeout=5)
        (reply,) = fake.wait_for_sent(1, timeout=5)
    assert type(event) is dict and event["group_id"] == 30001
    role: Role | None = event["sender"].get("role")
    assert role == "member"
    assert type(sent) is dict and sent["message_id"] == reply["message_id"]
    assert greet.__name__ == "greet"  # on() gave the handler back, with its own type


def test_the_api_methods_return_their_typed_results() -> None:
    with FakeOneBot() as fake, WsClient(fake.start_ws_server()) as bot:
        login: LoginInfo = bot.get_login_info()
        groups: list[GroupInfo] = bot.get_group_list()
        member: GroupMemberInfo = bot.get_group_member_info(groups[0]["group_id"], 20001)
        sent: MessageId = bot.send_private_msg(20001, "hi")
        bot.delete_msg(sent["message_id"])
    assert type(login) is dict and login["user_id"] == fake.self_id
    assert [type(group) for group in groups] == [dict]
    assert type(member) is dict and member.get("role") == "admin"


# What an editor's checker says about typed code: the lines marked "# E: code" get that
# error and no other line any; a line marked "# N: a ... b" gets a revealed type that holds
# a, then b (mypy's spelling of a type varies across versions: builtins.list or list). The
# handlers keep their own types through on(); ``no_event`` takes no event, so on() refuses it.
SNIPPET = """\
from onebot_ref import GroupInfo, GroupMessageEvent, MessageId, Registry, WsClient

bot = WsClient("ws://127.0.0.1:1/")
registry = Registry()


@bot.on("message.group")
def greet(event: GroupMessageEvent) -> None:
    sent: MessageId = bot.reply(event, "hi")
    info: GroupInfo = bot.get_group_info(event["group_id"])
    print(sent["message_id"], info.get("group_name"), event["sender"].get("card"))
    print(event["no_such_key"])  # E: typeddict-item
    print(info["member_cnt"])  # E: typeddict-item


@registry.on("notice")
def untyped(event: dict[str, object]) -> int:
    return len(event)


reveal_type(greet)  # N: def (event: ... GroupMessageEvent
reveal_type(untyped)  # N: def (event: ... dict[ ... object] ... -> ... int
reveal_type(bot.get_group_member_list(1))  # N: list[ ... GroupMemberInfo
reveal_type(bot.get_status())  # N: TypedDict( ... Status
print(bot.set_group_ban(1, 2))  # E: func-returns-value


@registry.on("message")  # E: type-var
def no_event() -> None:
    pass
"""


def test_mypy_accepts_typed_handlers_and_refuses_a_missing_key(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET, "utf-8")
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nstrict = True\n", "utf-8")
    # No cache: a cold check of the package, about 4 s; the suite's own mypy cache stays out.
    argv = ["--config-file", str(config), "--cache-dir", os.devnull, "--no-error-summary"]
    stdout, stderr, status = api.run([*argv, "--no-pretty", str(source)])
    found: set[tuple[int, str, str]] = set()
    for line in stdout.splitlines():
        match = re.fullmatch(r".*snippet\.py:(\d+): (error|note): (.*)", line)
        assert match, line
        where, kind, message = match.groups()
        if kind == "error":
            found.add((int(where), "E", message.rsplit("[", 1)[1].rstrip("]")))
        else:
            found.add((int(where), "N", message.removeprefix("Revealed type is ").strip('"')))
    expected: set[tuple[int, str, str]] = set()
    for number, line in enumerate(SNIPPET.splitlines(), 1):
        if "# E: " in line:
            expected.add((number, "E", line.split("# E: ")[1]))
    assert {f for f in found if f[1] == "E"} == expected, stdout + stderr
    for number, line in enumerate(SNIPPET.splitlines(), 1):
        if "# N: " in line:
            want = line.split("# N: ")[1]
            notes = [text for n, kind, text in found if n == number and kind == "N"]
            assert any(
                re.search(".*".join(map(re.escape, want.split(" ... "))), text) for text in notes
            ), (want, notes)
    assert status == 1
