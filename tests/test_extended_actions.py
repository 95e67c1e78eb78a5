"""Issue 16: the extended actions, through our transports, against FakeOneBot in every flavour.

One test per family (forwards, history, files, essence and the rest, pokes,
permissions, what a flavour lacks), each over real loopback sockets in
several modes: our HttpClient against the fake's HTTP API, our WsClient
against its forward-WS server, our WsServer dialled by its reverse-WS client,
and (for events) our HttpServer receiving its HTTP POSTs.
"""

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from conftest import wait_until

from onebot_ref import message as m
from onebot_ref._types import Flavor
from onebot_ref.api import OneBotApi
from onebot_ref.errors import ActionFailed, ApiNotAvailable
from onebot_ref.http_client import HttpClient
from onebot_ref.http_server import HttpServer
from onebot_ref.testing import FakeOneBot
from onebot_ref.testing._extended import extras
from onebot_ref.ws_client import WsClient
from onebot_ref.ws_server import WsServer

FLAVORS: list[Flavor] = ["spec", "go-cqhttp", "napcat"]
CALLING = ["http-client", "ws-client", "ws-server"]  # modes that call actions
HEARING = ["http-server", "ws-client", "ws-server"]  # modes that also receive events
GROUP, MEMBER, FRIEND = 30001, 20002, 20001  # FakeOneBot's world: the bot owns GROUP


class Bot:
    """One transport of ours wired to one FakeOneBot; ``events`` is what its handlers saw."""

    def __init__(self, flavor: Flavor, mode: str) -> None:
        self.fake = FakeOneBot(flavor=flavor)
        self.mode = mode
        self.events: list[dict[str, Any]] = []
        self.bot: OneBotApi
        if mode == "http-client":
            self.bot = self.client = HttpClient(self.fake.start_http_api(), timeout=5)
        elif mode == "http-server":
            api = HttpClient(self.fake.start_http_api(), timeout=5)
            server = HttpServer(port=0, api=api).start()
            server.on("notice")(self.events.append)
            self.fake.add_http_post(server.url)
            self.bot = self.server = server
        elif mode == "ws-client":
            client = WsClient(self.fake.start_ws_server(), timeout=5)
            client.on("notice")(self.events.append)
            client.start()
            self.bot = client
        else:
            ws_server = WsServer(port=0, timeout=5).start()
            ws_server.on("notice")(self.events.append)
            reverse = self.fake.connect_reverse(ws_server.url, reconnect_interval=0.05)
            assert reverse.wait_connected()
            wait_until(lambda: ws_server.bots, what="the reverse connection")
            self.bot = ws_server

    def close(self) -> None:
        self.bot.close()  # type: ignore[attr-defined]
        if self.mode == "http-server":
            self.server.api.close()  # type: ignore[union-attr]
        self.fake.close()


@pytest.fixture
def connect(no_thread_leak: None) -> Iterator[Callable[[Flavor, str], Bot]]:
    made: list[Bot] = []

    def make(flavor: Flavor, mode: str) -> Bot:
        made.append(Bot(flavor, mode))
        return made[-1]

    yield make
    for bot in reversed(made):
        bot.close()


def _nodes(result: Mapping[str, object], flavor: str) -> object:
    """The nodes of a get_forward_msg answer (ONEBOT11.md: ``message`` in the spec, else
    ``messages``)."""
    return result["message" if flavor == "spec" else "messages"]


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("mode", CALLING)
def test_a_forwarded_message_sent_then_fetched_back_is_equal(
    connect: Callable[[Flavor, str], Bot], flavor: Flavor, mode: str
) -> None:
    s = connect(flavor, mode)
    quoted = s.bot.send_group_msg(GROUP, "被引用的话")["message_id"]
    inner = m.custom_node(MEMBER, "Alice", [m.text("内层"), m.face(1)])
    nodes = [
        m.custom_node(FRIEND, "小明", [m.text("第一条, [x] & y"), inner]),
        m.custom_node(MEMBER, "Alice", "[CQ:face,id=2]第二条"),
        m.node(quoted),
    ]
    sent = s.bot.send_group_forward_msg(GROUP, nodes)
    forward_id = sent["res_id"] if flavor == "napcat" else sent["forward_id"]
    # The group got the forward as a message: a forward segment with that id.
    assert s.fake.sent[-1]["message"] == [m.forward(forward_id)]
    assert s.fake.sent[-1]["message_id"] == sent["message_id"]

    fetched = _nodes(s.bot.get_forward_msg(forward_id), flavor)
    expected = [
        nodes[0],  # as sent, nested node and all
        m.custom_node(MEMBER, "Alice", m.parse_cq("[CQ:face,id=2]第二条")),  # a CQ string: segments
        m.custom_node(10001, "FakeBot", [m.text("被引用的话")]),  # a node by id: that message
    ]
    assert fetched == expected

    private = s.bot.send_private_forward_msg(FRIEND, nodes[:1])
    private_id = private["res_id"] if flavor == "napcat" else private["forward_id"]
    assert _nodes(s.bot.get_forward_msg(private_id), flavor) == expected[:1]
    with pytest.raises(ActionFailed):  # not a node list: refused, nothing sent
        s.bot.call("send_group_forward_msg", group_id=GROUP, messages=[m.text("x")])


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("mode", CALLING)
def test_history_holds_what_was_sent_and_received_oldest_first(
    connect: Callable[[Flavor, str], Bot], flavor: Flavor, mode: str
) -> None:
    s = connect(flavor, mode)
    first = s.bot.send_group_msg(GROUP, "一")["message_id"]
    heard = s.fake.world.message_event(MEMBER, "二", GROUP)["message_id"]
    third = s.bot.send_group_msg(GROUP, [m.text("三"), m.face(3)])["message_id"]
    s.bot.send_private_msg(FRIEND, "私聊")  # another chat: not in the group's history

    history = s.bot.get_group_msg_history(GROUP)["messages"]
    assert [e["message_id"] for e in history] == [first, heard, third]
    assert [e["user_id"] for e in history] == [10001, MEMBER, 10001]
    assert all(dict(e)["post_type"] == "message" and dict(e)["group_id"] == GROUP for e in history)
    # Each message in the flavour's event format: a CQ string, or segments for NapCat.
    last = history[-1]["message"]
    assert last == (
        m.to_cq([m.text("三"), m.face(3)])
        if flavor != "napcat"
        else m.parse_cq(m.to_cq([m.text("三"), m.face(3)]))
    )
    older = s.bot.get_group_msg_history(GROUP, message_seq=heard, count=1)["messages"]
    assert [e["message_id"] for e in older] == [heard]

    if flavor == "go-cqhttp":  # an NT-era action go-cqhttp never had
        with pytest.raises(ApiNotAvailable):
            s.bot.get_friend_msg_history(FRIEND)
    else:
        friend = s.bot.get_friend_msg_history(FRIEND)["messages"]
        assert [e["raw_message"] for e in friend] == ["私聊"]


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("mode", CALLING)
def test_group_files_uploaded_listed_fetched_and_deleted(
    connect: Callable[[Flavor, str], Bot], flavor: Flavor, mode: str
) -> None:
    s = connect(flavor, mode)
    root = s.bot.get_group_root_files(GROUP)
    assert root["files"] == []
    (folder,) = root["folders"] or []
    assert folder["folder_name"] == "资料" and folder["total_file_count"] == 0

    uploaded = s.bot.upload_group_file(GROUP, "base64://aGVsbG8=", "hello.txt")
    s.bot.upload_group_file(GROUP, "/srv/报告.pdf", "报告.pdf", folder=folder["folder_id"])
    if flavor == "go-cqhttp":
        assert uploaded is None  # go-cqhttp answers no data
    else:
        assert uploaded is not None and uploaded["file_id"].startswith("/")

    root = s.bot.get_group_root_files(GROUP)
    (hello,) = root["files"] or []
    assert (hello["file_name"], hello["file_size"], hello["uploader"]) == ("hello.txt", 5, 10001)
    assert (root["folders"] or [])[0]["total_file_count"] == 1
    (report,) = s.bot.get_group_files_by_folder(GROUP, folder["folder_id"])["files"] or []
    assert report["file_name"] == "报告.pdf"

    url = s.bot.get_group_file_url(GROUP, hello["file_id"], busid=hello["busid"])["url"]
    assert url.startswith("https://") and hello["file_id"] in url
    s.bot.delete_group_file(GROUP, hello["file_id"], busid=hello["busid"])
    s.bot.delete_group_file(GROUP, report["file_id"])
    assert s.bot.get_group_root_files(GROUP)["files"] == []
    assert s.bot.get_group_files_by_folder(GROUP, folder["folder_id"])["files"] == []
    with pytest.raises(ActionFailed):  # gone
        s.bot.get_group_file_url(GROUP, hello["file_id"])
    s.bot.upload_private_file(FRIEND, "/srv/a.zip", "a.zip")


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("mode", CALLING)
def test_essence_notices_reactions_and_the_account_actions(
    connect: Callable[[Flavor, str], Bot], flavor: Flavor, mode: str
) -> None:
    s = connect(flavor, mode)
    said = s.fake.world.message_event(MEMBER, "精华", GROUP)["message_id"]
    s.bot.set_essence_msg(said)
    (entry,) = s.bot.get_essence_msg_list(GROUP)
    assert (entry["message_id"], entry["sender_id"], entry["operator_id"]) == (said, MEMBER, 10001)
    s.bot.delete_essence_msg(said)
    assert s.bot.get_essence_msg_list(GROUP) == []

    s.bot.send_group_notice(GROUP, "明天放假")
    (notice,) = s.bot.get_group_notice(GROUP)
    assert notice["message"]["text"] == "明天放假" and notice["sender_id"] == 10001

    if flavor == "go-cqhttp":
        with pytest.raises(ApiNotAvailable):
            s.bot.set_msg_emoji_like(said, 76)
    else:
        s.bot.set_msg_emoji_like(said, 76)
        s.bot.set_msg_emoji_like(said, 66)
        s.bot.set_msg_emoji_like(said, 66, set=False)
        assert extras(s.fake.world).reactions[said] == {"76": {10001}, "66": set()}

    s.bot.mark_msg_as_read(said)
    s.bot.set_group_portrait(GROUP, "base64://aGk=")
    assert s.bot.get_group_system_msg() == {"invited_requests": [], "join_requests": []}
    s.bot.set_qq_profile("新名字", personal_note="签名")
    assert s.bot.get_login_info()["nickname"] == "新名字"
    s.bot.delete_friend(FRIEND)
    assert FRIEND not in [f["user_id"] for f in s.bot.get_friend_list()]
    clients = s.bot.get_online_clients()
    ocr = s.bot.ocr_image("abc.image")
    if flavor == "napcat":  # NapCat answers a bare list in both
        assert clients == [] and isinstance(ocr, list) and ocr[0]["text"]
    else:
        assert isinstance(clients, dict) and clients["clients"][0]["device_name"]
        assert isinstance(ocr, dict) and ocr["texts"][0]["text"] == "FakeOneBot"
    assert s.bot.call(".ocr_image", image="abc.image") == ocr  # the hidden-style alias


def _pokes(s: Bot) -> list[dict[str, Any]]:
    return [e for e in list(s.events) if e.get("sub_type") == "poke"]


@pytest.mark.parametrize("flavor", ["spec", "napcat"])
@pytest.mark.parametrize("mode", HEARING)
def test_a_poke_comes_back_as_a_notice_event_the_bot_receives(
    connect: Callable[[Flavor, str], Bot], flavor: Flavor, mode: str
) -> None:
    s = connect(flavor, mode)
    s.bot.group_poke(GROUP, MEMBER)
    s.bot.friend_poke(FRIEND)
    wait_until(lambda: len(_pokes(s)) == 2, timeout=5, what="two poke notices")
    # Each arrives as its own event, and handlers run side by side: take them by form, not order.
    pokes = _pokes(s)
    group_poke = next((e for e in pokes if "group_id" in e), pokes[0])
    friend_poke = next(e for e in pokes if e is not group_poke)
    assert group_poke["notice_type"] == "notify"
    assert (group_poke["group_id"], group_poke["user_id"], group_poke["target_id"]) == (
        GROUP,
        10001,
        MEMBER,
    )
    assert "group_id" not in friend_poke  # the private form (ONEBOT11.md §8.3)
    assert (friend_poke["user_id"], friend_poke["target_id"]) == (10001, FRIEND)
    with pytest.raises(ActionFailed):  # not a member: no poke, no event
        s.bot.group_poke(GROUP, 99999)


@pytest.mark.parametrize("mode", CALLING)
def test_go_cqhttp_lacks_the_nt_era_actions_and_says_so_its_way(
    connect: Callable[[Flavor, str], Bot], mode: str
) -> None:
    s = connect("go-cqhttp", mode)
    said = s.bot.send_group_msg(GROUP, "x")["message_id"]
    calls: list[Callable[[], object]] = [
        lambda: s.bot.group_poke(GROUP, MEMBER),
        lambda: s.bot.friend_poke(FRIEND),
        lambda: s.bot.set_msg_emoji_like(said, 76),
        lambda: s.bot.get_friend_msg_history(FRIEND),
    ]
    for call in calls:
        with pytest.raises(ApiNotAvailable) as caught:
            call()
        # Mrs4s/go-cqhttp modules/api/api.go: Failed(404, "API_NOT_FOUND", "API不存在")
        assert caught.value.retcode == 404 and caught.value.message == "API不存在"


# NapCat's OneBotAction answers an error its action throws with retcode 200 over
# HTTP and 1200 over WebSocket; go-cqhttp with retcode 100.
REFUSED = {
    ("napcat", "http-client"): 200,
    ("napcat", "ws-client"): 1200,
    ("napcat", "ws-server"): 1200,
    ("go-cqhttp", "http-client"): 100,
    ("go-cqhttp", "ws-client"): 100,
}


@pytest.mark.parametrize(("flavor", "mode"), sorted(REFUSED))
def test_an_admin_only_action_as_a_plain_member_fails_like_the_implementation(
    connect: Callable[[Flavor, str], Bot], flavor: Flavor, mode: str
) -> None:
    s = connect(flavor, mode)
    said = s.fake.world.message_event(MEMBER, "精华?", GROUP)["message_id"]
    s.fake.world.groups[GROUP]["members"][10001]["role"] = "member"  # the bot, demoted
    attempts: list[tuple[Callable[[], object], str]] = [
        (lambda: s.bot.set_essence_msg(said), "设置精华消息失败,权限不足"),
        (lambda: s.bot.send_group_notice(GROUP, "通知"), "设置群公告失败,错误信息:权限不足"),
        (lambda: s.bot.set_group_portrait(GROUP, "base64://aGk="), "设置群头像失败,权限不足"),
    ]
    for attempt, text in attempts:
        with pytest.raises(ActionFailed) as caught:
            attempt()
        assert not isinstance(caught.value, ApiNotAvailable)
        assert (caught.value.retcode, caught.value.message) == (REFUSED[flavor, mode], text)
        assert caught.value.response["status"] == "failed"
    assert s.bot.get_essence_msg_list(GROUP) == [] and s.bot.get_group_notice(GROUP) == []
    s.fake.world.groups[GROUP]["members"][10001]["role"] = "admin"  # promoted: now it may
    s.bot.set_essence_msg(said)
    assert [e["message_id"] for e in s.bot.get_essence_msg_list(GROUP)] == [said]


def test_the_worlds_rules_for_files_folders_and_forwards() -> None:
    """What the socket tests leave out, on the World itself (no transport involved)."""
    fake = FakeOneBot(flavor="napcat")
    world = fake.world
    try:
        up = world.handle("upload_group_file", {"group_id": GROUP, "file": "/a", "name": "a"})
        assert up is not None and up["status"] == "ok"
        file_id = up["data"]["file_id"]
        # Someone else's file: as a plain member the bot may not delete it; its own, it may.
        extras(world).files[GROUP][file_id][1]["uploader"] = MEMBER
        world.groups[GROUP]["members"][10001]["role"] = "member"
        refused = world.handle("delete_group_file", {"group_id": GROUP, "file_id": file_id})
        assert refused is not None and (refused["retcode"], refused["message"]) == (
            1200,
            "删除群文件失败,权限不足",
        )
        extras(world).files[GROUP][file_id][1]["uploader"] = 10001
        done = world.handle("delete_group_file", {"group_id": GROUP, "file_id": file_id})
        assert done is not None and done["status"] == "ok"

        refusals: list[tuple[str, dict[str, Any]]] = [
            ("upload_group_file", {"group_id": GROUP, "file": "/a", "name": "a", "folder": "/no"}),
            ("get_group_files_by_folder", {"group_id": GROUP, "folder_id": "/no"}),
            ("get_group_root_files", {"group_id": 39999}),
            ("get_group_msg_history", {"group_id": GROUP, "message_seq": 987654}),
            ("send_group_forward_msg", {"group_id": 39999, "messages": [m.node(1)]}),
            ("send_group_forward_msg", {"group_id": GROUP, "messages": [m.node(987654)]}),
        ]
        for action, params in refusals:
            answer = world.handle(action, params, "http")
            assert answer is not None and answer["status"] == "failed", action
        bad = world.handle("send_group_forward_msg", {"group_id": GROUP, "messages": []}, "http")
        assert bad is not None and bad["retcode"] == 400  # NapCat: a parameter error
        assert "fwd-1" in world.forwards and len(world.forwards) == 1  # nothing half-stored
    finally:
        fake.close()
