"""Strict out: a value that is not JSON, or a message that is not a message, never leaves.

Every transport encodes its calls through ``codec.encode_request``; each bad value
raises :class:`EncodeError` (a ``TypeError`` and a ``ValueError`` too) in the
caller's thread, and the peer sees nothing of it: FakeOneBot records no call, a
raw WebSocket peer reads no frame. A quick operation that is not JSON is logged
and answered 204, and the HTTP connection goes on serving.
"""

import http.client
import json
import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from conftest import wait_until

from onebot_ref import ActionFailed, EncodeError, OneBotApi, OneBotError
from onebot_ref import message as m
from onebot_ref.http_client import HttpClient
from onebot_ref.http_server import HttpServer
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_client import WsClient
from onebot_ref.ws_server import WsServer

pytestmark = pytest.mark.usefixtures("no_thread_leak")

NAN = float("nan")

# (call arguments, the path the error names): each would have gone out unchanged
# (or, for object() and the set, failed inside json with a bare TypeError).
BAD_CALLS: list[tuple[tuple[str], dict[str, Any], str]] = [
    (("send_private_msg",), {"user_id": 1, "message": 123}, "message"),
    (("send_private_msg",), {"user_id": 1, "message": ["a", "b"]}, "message[0]"),
    (("send_private_msg",), {"user_id": 1, "message": object()}, "message"),
    (("send_private_msg",), {"user_id": 1, "message": {"type": "text", "data": "hi"}}, "message.data"),
    (("send_private_msg",), {"user_id": 1, "message": [m.text("a"), m.segment("at", qq=NAN)]},
     "message[1].data.qq"),
    (("send_group_forward_msg",),
     {"group_id": 1, "messages": [m.segment("node", user_id="1", nickname="n", content=[7])]},
     "messages[0].data.content[0]"),
    (("set_group_card",), {"group_id": 1, "user_id": float("inf"), "card": "x"}, "user_id"),
    (("get_status",), {"extra": {1: "one"}}, "extra"),
    (("get_status",), {"extra": {"tags": {"a"}}}, "extra.tags"),
]  # fmt: skip
IDS = ["int", "list-of-str", "object", "data-str", "nan-in-segment", "node-content", "inf",
       "int-key", "set"]  # fmt: skip


def call_with(bot: OneBotApi, args: tuple[str], kwargs: dict[str, Any]) -> Any:
    """The bad call through the explicit API method where there is one, else call()."""
    method = getattr(bot, args[0], None)
    if method is not None and args[0] != "get_status":
        return method(**kwargs)
    return bot.call(*args, **kwargs)


def check_refused(bot: OneBotApi, args: tuple[str], kwargs: dict[str, Any], path: str) -> None:
    with pytest.raises(EncodeError) as info:
        call_with(bot, args, kwargs)
    error = info.value
    assert isinstance(error, OneBotError | TypeError) and isinstance(error, ValueError)
    assert error.path == path
    assert str(error).startswith(f"{args[0]}: {path} ")


@pytest.fixture
def fake() -> Iterator[FakeOneBot]:
    with FakeOneBot() as fake:
        yield fake


def sent_to_fake(fake: FakeOneBot) -> list[tuple[str, dict[str, Any]]]:
    return [call for call in fake.calls if call[0] != "get_login_info"]


@pytest.mark.parametrize(("args", "kwargs", "path"), BAD_CALLS, ids=IDS)
def test_http_client_refuses_before_posting(
    fake: FakeOneBot, args: tuple[str], kwargs: dict[str, Any], path: str
) -> None:
    with HttpClient(fake.start_http_api(), timeout=5) as bot:
        check_refused(bot, args, kwargs, path)
        assert bot.send_private_msg(1, "fine")["message_id"]
    assert sent_to_fake(fake) == [("send_private_msg", {"user_id": 1, "message": "fine",
                                                        "auto_escape": False})]  # fmt: skip


@pytest.mark.parametrize(("args", "kwargs", "path"), BAD_CALLS, ids=IDS)
def test_ws_client_refuses_before_sending(
    fake: FakeOneBot, args: tuple[str], kwargs: dict[str, Any], path: str
) -> None:
    bot = WsClient(fake.start_ws_server(), timeout=5)
    try:
        bot.start()
        check_refused(bot, args, kwargs, path)
        assert bot.send_private_msg(1, "fine")["message_id"]
    finally:
        bot.close()
    assert [name for name, _ in sent_to_fake(fake)] == ["send_private_msg"]


@pytest.mark.parametrize(("args", "kwargs", "path"), BAD_CALLS, ids=IDS)
def test_ws_server_refuses_before_sending(
    fake: FakeOneBot, args: tuple[str], kwargs: dict[str, Any], path: str
) -> None:
    with WsServer(port=0, timeout=5) as server:
        reverse = fake.connect_reverse(server.url, reconnect_interval=0.05)
        assert reverse.wait_connected()
        wait_until(lambda: server.bots)
        check_refused(server, args, kwargs, path)
        assert server.send_private_msg(1, "fine")["message_id"]
    assert [name for name, _ in sent_to_fake(fake)] == ["send_private_msg"]


def test_ws_server_raw_peer_sees_no_frame_of_a_refused_call() -> None:
    """An implementation played by websocket-client: the first frame it reads is the good call."""
    with WsServer(port=0, timeout=5) as server:
        ws = websocket.create_connection(server.url, header=["X-Self-ID: 10001"], timeout=5)
        try:
            wait_until(lambda: server.bots)
            for args, kwargs, _ in BAD_CALLS:
                with pytest.raises(EncodeError):
                    call_with(server, args, kwargs)
            answers: queue.Queue[object] = queue.Queue()
            caller = threading.Thread(target=lambda: answers.put(server.get_status()))
            caller.start()
            request = json.loads(ws.recv())
            assert request["action"] == "get_status"
            reply = {"status": "ok", "retcode": 0, "data": {"good": True}}
            ws.send(json.dumps({**reply, "echo": request["echo"]}))
            assert answers.get(timeout=5) == {"good": True}
            caller.join(5)
        finally:
            ws.close()


def test_reply_with_at_sender_refuses_a_bad_message_as_encode_error(fake: FakeOneBot) -> None:
    bot = WsClient(fake.start_ws_server(), timeout=5)
    try:
        bot.start()
        event = {"post_type": "message", "message_type": "group", "group_id": 3, "user_id": 4}
        with pytest.raises(EncodeError, match="message is 123"):
            bot.reply(event, 123, at_sender=True)  # type: ignore[arg-type]  # not a message: the point
    finally:
        bot.close()
    assert sent_to_fake(fake) == []


def test_the_builders_and_received_messages_still_go_out(fake: FakeOneBot) -> None:
    """What message.py builds, and a message as NapCat delivers it, pass the check unchanged."""
    received = [
        {"type": "image", "data": {"file": "a.jpg", "sub_type": 0, "file_size": "12"}},
        {"type": "face", "data": {"id": "178", "large": None}},
        {"type": "json", "data": {"data": {"app": "x"}}},  # NapCat takes an object here
    ]
    built = (m.text("a"), m.at(1), m.image("b.png", flash=True), m.dice(), m.json_card({"k": 1}))
    node = m.custom_node(1, "n", [m.text("inner"), m.face(1)])
    with HttpClient(fake.start_http_api(), timeout=5) as bot:
        bot.send_private_msg(1, received)
        bot.send_private_msg(1, built)  # a tuple goes out as a JSON array
        # FakeOneBot records it, then refuses it: it answers send_group_forward_msg
        # since issue 16, and the bot is in no group 1 (before, it did not know the action).
        with pytest.raises(ActionFailed):
            bot.call("send_group_forward_msg", group_id=1, messages=[node, m.node(5)])
    sent = sent_to_fake(fake)
    assert sent[0][1]["message"] == received
    assert sent[1][1]["message"] == list(built)
    assert sent[2][1]["messages"][0]["data"]["content"][0] == m.text("inner")


def test_a_quick_operation_that_is_not_json_is_logged_and_answered_204(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler returning {"reply": NaN}: 204, one log line naming it, and the connection goes on."""
    event = {"time": 1, "self_id": 1, "post_type": "message", "message_type": "private",
             "sub_type": "friend", "user_id": 2, "message": "hi"}  # fmt: skip
    with HttpServer(port=0) as server:
        server.on("message")(lambda e: {"reply": NAN} if e["message"] == "bad" else {"reply": "ok"})
        server.start()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            headers = {"Content-Type": "application/json"}
            with caplog.at_level(logging.WARNING, logger="onebot_ref"):
                conn.request("POST", "/", json.dumps({**event, "message": "bad"}), headers)
                response = conn.getresponse()
                assert (response.status, response.read()) == (204, b"")
            refusals = [r for r in caplog.records if "quick operation" in r.getMessage()]
            assert len(refusals) == 1 and not refusals[0].exc_info  # one line, no traceback
            assert "reply is nan, which JSON cannot carry" in caplog.text
            conn.request("POST", "/", json.dumps(event), headers)  # the same connection
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read()) == {"reply": "ok"}
        finally:
            conn.close()


def test_fake_onebot_refuses_to_push_an_event_that_is_not_json(fake: FakeOneBot) -> None:
    """FakeOneBot's own frames go through the same dumps: a NaN event fails in the caller."""
    with WsServer(port=0, timeout=5) as server:
        reverse = fake.connect_reverse(server.url, reconnect_interval=0.05)
        assert reverse.wait_connected()
        got: list[dict[str, Any]] = []
        server.on("notice")(got.append)
        with pytest.raises(EncodeError, match="temperature is nan"):
            fake.push({"post_type": "notice", "notice_type": "x", "temperature": NAN})
        fake.push({"post_type": "notice", "notice_type": "x", "temperature": 20.5})
        wait_until(lambda: got)
        assert [e["temperature"] for e in got] == [20.5]
