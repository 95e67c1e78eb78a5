"""FakeOneBot's world: built with methods, loaded from a file, and changed by actions
with the notices real implementations send. Driven over real sockets by independent
peers (requests, websockets) and by our own modes."""

import contextlib
import json
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from conftest import wait_until
from websockets.sync.client import ClientConnection, connect

from onebot_ref._types import Flavor
from onebot_ref.errors import ConfigError
from onebot_ref.http_server import HttpServer
from onebot_ref.testing import FakeOneBot, World
from onebot_ref.testing._world import read_world_file

ROOT = pathlib.Path(__file__).parent.parent


@pytest.fixture
def fake(no_thread_leak: None) -> Iterator[FakeOneBot]:
    with FakeOneBot() as fake:
        yield fake


def post(url: str, action: str, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = requests.post(f"{url}/{action}", json=params, timeout=5).json()
    return body


class Peer:
    """A bot on a forward-WS connection (websockets): calls actions, reads events.

    A notice and the answer to the action that caused it travel independently
    (on QQ too), so the frames read past while waiting for one are kept for the other.
    """

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.backlog: list[dict[str, Any]] = []

    def take(self, match: Any) -> dict[str, Any]:
        for frame in self.backlog:
            if match(frame):
                self.backlog.remove(frame)
                return frame
        while True:
            received: dict[str, Any] = json.loads(self.ws.recv(timeout=5))
            if match(received):
                return received
            self.backlog.append(received)

    def call(self, action: str, **params: Any) -> dict[str, Any]:
        self.ws.send(json.dumps({"action": action, "params": params, "echo": action}))
        return self.take(lambda frame: frame.get("echo") == action)

    def event(self, post_type: str) -> dict[str, Any]:
        return self.take(lambda frame: frame.get("post_type") == post_type)


@contextlib.contextmanager
def bot_on(fake: FakeOneBot) -> Iterator[Peer]:
    """A Peer connected to the fake's forward WS, once the fake has registered it."""
    with connect(fake.start_ws_server(), open_timeout=5) as ws:
        peer = Peer(ws)
        peer.event("meta_event")  # the lifecycle event: the connection gets events now
        yield peer


# -- building -----------------------------------------------------------------------------


def test_a_world_built_with_methods_is_what_the_actions_answer(fake: FakeOneBot) -> None:
    world = fake.world
    world.add_friend(20003, "Bob", remark="bobby")
    world.add_group(30002, "Bot lab", self_role="admin")
    world.add_member(30002, 20003, role="admin", card="bob!", title="老大")
    world.add_member(30002, 20004)
    url = fake.start_http_api()
    friends = post(url, "get_friend_list")["data"]
    assert {"user_id": 20003, "nickname": "Bob", "remark": "bobby"} in friends
    info = post(url, "get_group_info", group_id=30002)["data"]
    assert info["group_name"] == "Bot lab" and info["member_count"] == 3
    member = post(url, "get_group_member_info", group_id=30002, user_id=20003)["data"]
    assert (member["nickname"], member["card"], member["role"], member["title"]) == (
        "Bob",
        "bob!",
        "admin",
        "老大",
    )
    me = post(url, "get_group_member_info", group_id=30002, user_id=fake.self_id)["data"]
    assert me["role"] == "admin"
    stranger = post(url, "get_group_member_info", group_id=30002, user_id=20004)["data"]
    assert (stranger["nickname"], stranger["role"]) == ("20004", "member")
    world.set_group_admin(30002, 20004)
    world.remove_member(30002, 20003)
    members = post(url, "get_group_member_list", group_id=30002)["data"]
    assert {m["user_id"]: m["role"] for m in members} == {fake.self_id: "admin", 20004: "admin"}
    world.remove_group(30002)
    world.remove_friend(20003)
    assert post(url, "get_group_info", group_id=30002)["status"] == "failed"
    assert 20003 not in [f["user_id"] for f in post(url, "get_friend_list")["data"]]


def test_a_group_message_carries_the_members_role_and_card(fake: FakeOneBot) -> None:
    fake.world.add_group(30002, "Bot lab")
    fake.world.add_member(30002, 20003, role="owner", card="群主", nickname="Carol")
    with bot_on(fake) as bot:
        fake.push_message(user_id=20003, text="/ban 20004", group_id=30002)
        event = bot.event("message")
    sender = event["sender"]
    assert (sender["nickname"], sender["card"], sender["role"]) == ("Carol", "群主", "owner")


def test_builder_mistakes_are_clear_errors() -> None:
    world = World()
    with pytest.raises(ConfigError, match=r"add_group\(30009\) first"):
        world.add_member(30009, 20001)
    with pytest.raises(ConfigError, match="role must be one of"):
        world.add_member(30001, 20003, role="moderator")
    with pytest.raises(ConfigError, match="user_id must be a number"):
        world.add_friend("bob")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="the owner is never an admin"):
        world.set_group_admin(30001, world.self_id, False)
    with pytest.raises(ConfigError, match="not a member of group 30001"):
        world.remove_member(30001, 29999)
    assert isinstance(ConfigError("x"), ValueError)


# -- world files ----------------------------------------------------------------------------

WORLD = {
    "self_id": 10077,
    "nickname": "TestBot",
    "friends": [{"user_id": 20001, "nickname": "小明"}, {"user_id": 20005, "remark": "r"}],
    "groups": [
        {
            "group_id": 30005,
            "name": "文件群",
            "self_role": "owner",
            "members": [{"user_id": 20001, "role": "admin", "card": "明"}, {"user_id": 20005}],
        }
    ],
}

WORLD_TOML = """
self_id = 10077
nickname = "TestBot"

[[friends]]
user_id = 20001
nickname = "小明"

[[friends]]
user_id = 20005
remark = "r"

[[groups]]
group_id = 30005
name = "文件群"
self_role = "owner"

[[groups.members]]
user_id = 20001
role = "admin"
card = "明"

[[groups.members]]
user_id = 20005
"""


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_a_world_file_loads_into_the_builder(tmp_path: pathlib.Path, suffix: str) -> None:
    path = tmp_path / f"world{suffix}"
    path.write_text(json.dumps(WORLD) if suffix == ".json" else WORLD_TOML, "utf-8")
    world = World()
    world.load(read_world_file(str(path)))
    assert (world.self_id, world.nickname) == (10077, "TestBot")
    assert sorted(world.friends) == [20001, 20005]  # the default friends are gone
    assert list(world.groups) == [30005]
    members = world.groups[30005]["members"]
    assert {uid: m["role"] for uid, m in members.items()} == {
        10077: "owner",
        20001: "admin",
        20005: "member",
    }
    assert members[20001]["card"] == "明" and members[20001]["nickname"] == "小明"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"friends": [{"user_id": 1, "nick": "x"}]}', r"a friend has unknown key\(s\) \['nick'\]"),
        ('{"groups": [{"name": "g"}]}', "a group needs 'group_id'"),
        ('{"groups": [{"group_id": 5, "members": [{"user_id": 6, "role": "boss"}]}]}', "role"),
        ('{"friends": {"user_id": 1}}', "'friends' must be a list"),
        ("[1, 2]", "must hold an object"),
        ("{not json", "is not valid JSON"),
    ],
)
def test_a_bad_world_file_says_what_is_wrong(
    tmp_path: pathlib.Path, text: str, message: str
) -> None:
    path = tmp_path / "world.json"
    path.write_text(text, "utf-8")
    with pytest.raises(ConfigError, match=message):
        World().load(read_world_file(str(path)))


def test_toml_without_a_toml_parser_says_to_use_json_or_install_tomli(
    tmp_path: pathlib.Path,
) -> None:
    """Python 3.10 has no tomllib: the message says what to do (run here with both hidden)."""
    path = tmp_path / "world.toml"
    path.write_text(WORLD_TOML, "utf-8")
    code = (
        "import sys; sys.modules['tomllib'] = None; sys.modules['tomli'] = None\n"
        "from onebot_ref.testing._world import read_world_file\n"
        f"read_world_file({str(path)!r})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "needs Python 3.11+ or `pip install tomli` on 3.10; or write the world as JSON" in (
        result.stderr
    )


# -- actions and their consequences -------------------------------------------------------


def test_approving_a_friend_request_makes_a_friend_and_says_so(fake: FakeOneBot) -> None:
    with bot_on(fake) as bot:
        fake.request_friend(20009, "加个好友", nickname="Dave")
        request = bot.event("request")
        assert (request["request_type"], request["user_id"]) == ("friend", 20009)
        assert request["comment"] == "加个好友" and isinstance(request["flag"], str)
        answer = bot.call("set_friend_add_request", flag=request["flag"], approve=True)
        assert answer["status"] == "ok"
        notice = bot.event("notice")
        assert (notice["notice_type"], notice["user_id"]) == ("friend_add", 20009)
        friends = bot.call("get_friend_list")["data"]
        assert {"user_id": 20009, "nickname": "Dave", "remark": ""} in friends
        again = bot.call("set_friend_add_request", flag=request["flag"], approve=True)
        assert again["status"] == "failed"  # a flag is good once


def test_rejecting_a_friend_request_makes_no_friend(fake: FakeOneBot) -> None:
    url = fake.start_http_api()
    flag = fake.world.request_friend(20009)["flag"]
    assert post(url, "set_friend_add_request", flag=flag, approve=False)["status"] == "ok"
    assert 20009 not in fake.world.friends


def test_an_action_counts_as_handled_once_its_notice_is_on_its_way() -> None:
    """``World.handled`` counts an action after it has run, notices emitted (the CLI's /wait-call).

    ``World.calls`` has it as it starts: a script that ended on ``/wait-call``
    could close the fake before the ``friend_add`` notice was queued (CI).
    """
    world = World()
    seen: list[int] = []
    world.on_event = lambda event: seen.append(world.handled.get("set_friend_add_request", 0))
    flag = world.request_friend(20009)["flag"]
    assert world.handle("set_friend_add_request", {"flag": flag, "approve": True})
    assert seen == [0]  # the notice was emitted before the action counted as handled
    assert world.handled["set_friend_add_request"] == 1


def test_close_delivers_the_notices_already_queued(no_thread_leak: None) -> None:
    """An answered action's notice is not lost to a close() that comes right after it."""
    fake = FakeOneBot()
    pushed: list[str] = []

    def push(event: dict[str, Any]) -> None:
        if not pushed:
            fake._stop.wait(0.3)  # slow: close() begins meanwhile
        pushed.append(event["notice_type"])

    fake.push = push  # type: ignore[method-assign]
    fake.world.emit(fake.world.notice("friend_add", user_id=20009))
    fake.world.emit(fake.world.notice("friend_add", user_id=20010))
    fake.close()
    assert pushed == ["friend_add", "friend_add"]


@pytest.mark.parametrize(
    ("flavor", "transport", "expected"),
    [
        ("go-cqhttp", "http", {"retcode": 100, "msg": "FLAG_NOT_FOUND", "wording": "FLAG不存在"}),
        ("go-cqhttp", "ws", {"retcode": 100, "msg": "FLAG_NOT_FOUND", "wording": "FLAG不存在"}),
        ("napcat", "http", {"retcode": 200, "message": "No such request"}),
        ("napcat", "ws", {"retcode": 1200, "message": "No such request"}),
        ("spec", "http", {"retcode": 100}),
    ],
)
def test_a_flag_the_world_never_issued_fails_as_the_implementation_fails_it(
    no_thread_leak: None, flavor: Flavor, transport: str, expected: dict[str, Any]
) -> None:
    with FakeOneBot(flavor=flavor) as fake:
        if transport == "http":
            answer = post(fake.start_http_api(), "set_friend_add_request", flag="123", approve=True)
        else:
            with bot_on(fake) as bot:
                answer = bot.call("set_friend_add_request", flag="123", approve=True)
        group_flag = fake.world.request_join(30001, 20009)["flag"]
        friend_answer = fake.world.handle("set_friend_add_request", {"flag": group_flag})
    assert answer["status"] == "failed"
    assert {k: answer.get(k) for k in expected} == expected
    assert friend_answer is not None and friend_answer["status"] == "failed"  # wrong kind


def test_kicking_removes_the_member_and_sends_group_decrease(fake: FakeOneBot) -> None:
    with bot_on(fake) as bot:
        assert bot.call("set_group_kick", group_id=30001, user_id=20002)["status"] == "ok"
        notice = bot.event("notice")
        members = bot.call("get_group_member_list", group_id=30001)["data"]
        assert bot.call("set_group_kick", group_id=30001, user_id=20002)["status"] == "failed"
    assert notice["notice_type"] == "group_decrease" and notice["sub_type"] == "kick"
    assert (notice["group_id"], notice["user_id"], notice["operator_id"]) == (
        30001,
        20002,
        fake.self_id,
    )
    assert 20002 not in [m["user_id"] for m in members]


def test_set_group_admin_changes_the_role_and_sends_group_admin(fake: FakeOneBot) -> None:
    with bot_on(fake) as bot:
        assert bot.call("set_group_admin", group_id=30001, user_id=20002)["status"] == "ok"
        notice = bot.event("notice")
        member = bot.call("get_group_member_info", group_id=30001, user_id=20002)["data"]
        owner = bot.call("set_group_admin", group_id=30001, user_id=fake.self_id, enable=False)
    assert (notice["notice_type"], notice["sub_type"], notice["user_id"]) == (
        "group_admin",
        "set",
        20002,
    )
    assert member["role"] == "admin"
    assert owner["status"] == "failed"


def test_a_join_request_approved_by_quick_operation_adds_the_member(
    fake: FakeOneBot,
) -> None:
    """Our HttpServer as the bot: the fake POSTs the request, the reply approves it, and the
    group_increase notice arrives at the same server."""
    seen: list[dict[str, Any]] = []
    with HttpServer("127.0.0.1", 0) as bot:

        @bot.on("request")
        def approve(event: dict[str, Any]) -> dict[str, Any]:
            return {"approve": True}

        @bot.on("notice")
        def note(event: dict[str, Any]) -> None:
            seen.append(event)

        bot.start()
        fake.add_http_post(bot.url)
        fake.request_join(30001, 20010, "让我进去")
        wait_until(lambda: seen, 5, "the group_increase notice")
    notice = seen[0]
    assert (notice["notice_type"], notice["sub_type"]) == ("group_increase", "approve")
    assert (notice["group_id"], notice["user_id"]) == (30001, 20010)
    assert 20010 in fake.world.groups[30001]["members"]
    assert not fake.world.requests  # settled


def test_accepting_an_invitation_puts_the_bot_in_the_group(fake: FakeOneBot) -> None:
    url = fake.start_http_api()
    flag = fake.world.request_join(30077, 20001, sub_type="invite")["flag"]
    wrong = post(url, "set_group_add_request", flag=flag, sub_type="add", approve=True)
    assert wrong["status"] == "failed"  # the sub_type must match the request's
    answer = post(url, "set_group_add_request", flag=flag, sub_type="invite", approve=True)
    assert answer["status"] == "ok"
    info = post(url, "get_group_info", group_id=30077)
    assert info["status"] == "ok" and info["data"]["member_count"] == 1
