"""Modes 1 and 2 together, the classic deployment: HTTP POST in, HTTP API out.

The OneBot side is independent of our code: the stdlib API server from
test_http_client plus a ``requests`` poster that signs like go-cqhttp.
"""

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from test_http_client import FakeApi, FakeApiHandler

from onebot_ref.codec import sign
from onebot_ref.errors import ApiNotAvailable
from onebot_ref.http_client import HttpClient
from onebot_ref.http_server import HttpServer

SECRET = "post-secret"
TOKEN = "api-token"
GROUP_MESSAGE = {
    "time": 1700000000,
    "self_id": 10001,
    "post_type": "message",
    "message_type": "group",
    "sub_type": "normal",
    "group_id": 500,
    "user_id": 42,
    "message": [{"type": "text", "data": {"text": "ping"}}],
}


def post_event(url: str, event: dict[str, Any], secret: str = SECRET) -> requests.Response:
    """POST an event the way go-cqhttp does: raw bytes, X-Self-ID, X-Signature."""
    body = json.dumps(event, ensure_ascii=False).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Self-ID": str(event["self_id"]),
        "X-Signature": sign(body, secret),
        "User-Agent": "CQHttp/4.15.0",
    }
    return requests.post(url, data=body, headers=headers, timeout=10)


@pytest.fixture
def onebot(no_thread_leak: None) -> Iterator[FakeApi]:
    fake = FakeApi()
    fake.token = TOKEN
    thread = threading.Thread(target=fake.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    fake.release.set()
    fake.shutdown()
    fake.server_close()
    thread.join(5)


@pytest.fixture
def bot(onebot: FakeApi) -> Iterator[HttpServer]:
    with (
        HttpClient(onebot.url, access_token=TOKEN) as api,
        HttpServer(port=0, secret=SECRET, api=api) as server,
    ):
        server.start()
        yield server


def calls(onebot: FakeApi, path: str) -> list[dict[str, Any]]:
    return [json.loads(seen["body"]) for seen in onebot.seen if seen["path"] == path]


def test_handler_replies_through_the_api_and_with_a_quick_operation(
    bot: HttpServer, onebot: FakeApi
) -> None:
    @bot.on("message.group")
    def pong(event: dict[str, Any]) -> dict[str, Any]:
        bot.reply(event, "pong")
        bot.send_group_msg(group_id=event["group_id"], message="and again")
        return {"reply": event["message"], "at_sender": False}

    response = post_event(bot.url, GROUP_MESSAGE)
    assert response.status_code == 200
    assert response.json() == {"reply": GROUP_MESSAGE["message"], "at_sender": False}
    assert calls(onebot, "/send_group_msg") == [
        {"group_id": 500, "message": "pong", "auto_escape": False},
        {"group_id": 500, "message": "and again", "auto_escape": False},
    ]
    assert {s["headers"]["Authorization"] for s in onebot.seen} == {f"Bearer {TOKEN}"}


def report_sent_message(server_url: str) -> Any:
    """A fake send_private_msg that, like go-cqhttp, posts the sent message back as an event."""

    def script(handler: FakeApiHandler, body: bytes) -> None:
        params = json.loads(body)
        event = {
            "time": 1700000001,
            "self_id": 10001,
            "post_type": "message_sent",
            "message_type": "private",
            "sub_type": "friend",
            "user_id": params["user_id"],
            "message": params["message"],
        }
        post_event(server_url, event)
        envelope = {"status": "ok", "retcode": 0, "data": {"message_id": -1541043078}}
        handler.answer(200, json.dumps(envelope).encode())

    return script


def test_our_call_comes_back_as_our_event(bot: HttpServer, onebot: FakeApi) -> None:
    sent: list[dict[str, Any]] = []
    bot.on("message_sent.private")(sent.append)
    onebot.script["send_private_msg"] = report_sent_message(bot.url)
    with HttpClient(onebot.url, access_token=TOKEN) as client:
        data = client.send_private_msg(
            user_id=42, message=[{"type": "text", "data": {"text": "x"}}]
        )
    assert data == {"message_id": -1541043078}
    assert [(e["user_id"], e["message"]) for e in sent] == [
        (42, [{"type": "text", "data": {"text": "x"}}])
    ]


def test_failing_call_in_a_handler_is_logged_and_the_server_goes_on(
    bot: HttpServer, onebot: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    onebot.reply_with("send_group_msg", 200, b'{"status":"failed","retcode":1404,"data":null}')

    @bot.on("message.group")
    def pong(event: dict[str, Any]) -> None:
        bot.reply(event, "pong")

    assert post_event(bot.url, GROUP_MESSAGE).status_code == 204
    assert "ApiNotAvailable" in caplog.text
    assert post_event(bot.url, GROUP_MESSAGE).status_code == 204


def test_eight_posters_and_handlers_share_one_client(bot: HttpServer, onebot: FakeApi) -> None:
    bot.on("message.group")(lambda event: bot.reply(event, event["message"]) and None)
    failures: list[Any] = []

    def poster(n: int) -> None:
        for i in range(25):
            response = post_event(bot.url, {**GROUP_MESSAGE, "message": f"{n}-{i}"})
            if response.status_code != 204:
                failures.append(response.status_code)

    threads = [threading.Thread(target=poster, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    sent = sorted(c["message"] for c in calls(onebot, "/send_group_msg"))
    assert sent == sorted(f"{n}-{i}" for n in range(8) for i in range(25))


def test_client_pointed_at_our_server_says_so(bot: HttpServer) -> None:
    with HttpClient(bot.url) as confused, pytest.raises(ApiNotAvailable) as caught:
        confused.send_private_msg(user_id=1, message="hi")
    assert "point HttpClient at OneBot" in str(caught.value)
