"""FakeOneBot's HTTP sides, driven by independent clients and servers (requests, http.client, stdlib)."""

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from onebot_ref import Flavor, codec
from onebot_ref.api import STANDARD_ACTIONS
from onebot_ref.testing import FakeOneBot

# Plausible arguments for every standard action against the fake's world.
ARGS: dict[str, dict[str, Any]] = {
    "send_private_msg": {"user_id": 20001, "message": "hi"},
    "send_group_msg": {"group_id": 30001, "message": [{"type": "text", "data": {"text": "hi"}}]},
    "send_msg": {"group_id": 30001, "message": "hi"},
    "delete_msg": {"message_id": "FROM_SEND"},
    "get_msg": {"message_id": "FROM_SEND"},
    "get_forward_msg": {"id": "fwd-1"},
    "send_like": {"user_id": 20001, "times": 1},
    "set_group_kick": {"group_id": 30001, "user_id": 20002},
    "set_group_ban": {"group_id": 30001, "user_id": 20001, "duration": 60},
    "set_group_anonymous_ban": {"group_id": 30001, "flag": "x", "duration": 60},
    "set_group_whole_ban": {"group_id": 30001, "enable": True},
    "set_group_admin": {"group_id": 30001, "user_id": 20001, "enable": False},
    "set_group_anonymous": {"group_id": 30001, "enable": True},
    "set_group_card": {"group_id": 30001, "user_id": 20001, "card": "卡"},
    "set_group_name": {"group_id": 30001, "group_name": "新名字"},
    "set_group_leave": {"group_id": 30001},
    "set_group_special_title": {"group_id": 30001, "user_id": 20001, "special_title": "t"},
    "set_friend_add_request": {"flag": "f", "approve": True},
    "set_group_add_request": {"flag": "f", "sub_type": "add", "approve": True},
    "get_login_info": {},
    "get_stranger_info": {"user_id": 20001},
    "get_friend_list": {},
    "get_group_info": {"group_id": 30001},
    "get_group_list": {},
    "get_group_member_info": {"group_id": 30001, "user_id": 20001},
    "get_group_member_list": {"group_id": 30001},
    "get_group_honor_info": {"group_id": 30001, "type": "all"},
    "get_cookies": {"domain": "qun.qq.com"},
    "get_csrf_token": {},
    "get_credentials": {},
    "get_record": {"file": "a.amr", "out_format": "mp3"},
    "get_image": {"file": "a.image"},
    "can_send_image": {},
    "can_send_record": {},
    "get_status": {},
    "get_version_info": {},
    "set_restart": {"delay": 0},
    "clean_cache": {},
}


@pytest.fixture
def fake(no_thread_leak: None) -> Iterator[FakeOneBot]:
    with FakeOneBot(access_token="tok") as fake:
        yield fake


def post(url: str, action: str, token: str = "tok", **params: Any) -> requests.Response:
    return requests.post(
        f"{url}/{action}", json=params, headers={"Authorization": f"Bearer {token}"}, timeout=5
    )


def test_every_standard_action_answers_plausibly(fake: FakeOneBot) -> None:
    url = fake.start_http_api()
    assert set(ARGS) == set(STANDARD_ACTIONS)
    message_id = post(url, "send_private_msg", user_id=20001, message="x").json()["data"][
        "message_id"
    ]
    # Request flags must be ones the world issued (as on a real implementation).
    flags = {
        "set_friend_add_request": fake.world.request_friend(20003)["flag"],
        "set_group_add_request": fake.world.request_join(30001, 20003)["flag"],
    }
    for action in STANDARD_ACTIONS:
        params = {k: (message_id if v == "FROM_SEND" else v) for k, v in ARGS[action].items()}
        if action in flags:
            params["flag"] = flags[action]
        if action in ("delete_msg", "set_group_leave"):
            continue  # run last: they remove what other actions read
        resp = post(url, action, **params)
        assert resp.status_code == 200, action
        body = resp.json()
        assert body["status"] in ("ok", "async"), (action, body)
    assert post(url, "set_group_leave", group_id=30001).json()["status"] == "ok"
    assert post(url, "get_group_info", group_id=30001).json()["status"] == "failed"
    assert post(url, "delete_msg", message_id=message_id).json()["status"] == "ok"
    assert post(url, "get_msg", message_id=message_id).json()["status"] == "failed"
    assert [a for a, _ in fake.calls][-2:] == ["delete_msg", "get_msg"]


def test_world_state_changes_are_visible(fake: FakeOneBot) -> None:
    url = fake.start_http_api()
    post(url, "set_group_card", group_id=30001, user_id=20001, card="卡片")
    member = post(url, "get_group_member_info", group_id=30001, user_id=20001).json()["data"]
    assert member["card"] == "卡片"
    post(url, "set_group_kick", group_id=30001, user_id=20002)
    members = post(url, "get_group_member_list", group_id=30001).json()["data"]
    assert 20002 not in [m["user_id"] for m in members]
    sent = post(url, "send_group_msg", group_id=30001, message="[CQ:face,id=1]你好").json()["data"]
    got = post(url, "get_msg", message_id=sent["message_id"]).json()["data"]
    assert got["message"] == "[CQ:face,id=1]你好"  # spec flavour: string format
    assert fake.sent[-1]["message"] == [
        {"type": "face", "data": {"id": "1"}},
        {"type": "text", "data": {"text": "你好"}},
    ]
    assert fake.sent[-1]["text"] == "你好"


def test_failures_look_real(fake: FakeOneBot) -> None:
    url = fake.start_http_api()
    empty = post(url, "send_private_msg", user_id=1, message="").json()
    assert (empty["status"], empty["retcode"]) == ("failed", 100)
    missing = post(url, "get_group_info").json()
    assert missing["status"] == "failed"
    unknown_group = post(url, "send_group_msg", group_id=1, message="x").json()
    assert unknown_group["retcode"] == 100


@pytest.mark.parametrize(
    ("flavor", "missing", "wrong"),
    [("spec", 401, 403), ("go-cqhttp", 401, 403), ("napcat", 403, 403)],
)
def test_auth_statuses_per_flavor(
    no_thread_leak: None, flavor: Flavor, missing: int, wrong: int
) -> None:
    with FakeOneBot(flavor=flavor, access_token="tok") as fake:
        url = fake.start_http_api()
        assert requests.post(f"{url}/get_status", json={}, timeout=5).status_code == missing
        assert post(url, "get_status", token="nope").status_code == wrong
        assert requests.get(f"{url}/get_status?access_token=tok", timeout=5).status_code == 200
        token_scheme = requests.post(
            f"{url}/get_status", json={}, headers={"Authorization": "Token tok"}, timeout=5
        )
        # NapCat strips only "Bearer ": "Token x" fails there.
        assert token_scheme.status_code == (403 if flavor == "napcat" else 200)
        if flavor == "napcat":
            assert requests.post(f"{url}/x", timeout=5).json() == {
                "message": "token verify failed!"
            }


@pytest.mark.parametrize(
    ("flavor", "status", "retcode"),
    [("spec", 404, None), ("go-cqhttp", 200, 404), ("napcat", 200, 200)],
)
def test_unknown_action_per_flavor(
    no_thread_leak: None, flavor: Flavor, status: int, retcode: int | None
) -> None:
    with FakeOneBot(flavor=flavor) as fake:
        url = fake.start_http_api()
        resp = requests.post(f"{url}/no_such_action", json={}, timeout=5)
        assert resp.status_code == status
        if retcode is not None:
            assert resp.json()["retcode"] == retcode


def test_params_from_query_form_and_json_with_coercion(fake: FakeOneBot) -> None:
    url = fake.start_http_api()
    form = requests.post(
        f"{url}/send_private_msg?access_token=tok",
        data={"user_id": "20001", "message": "[CQ:face,id=2]", "auto_escape": "false"},
        timeout=5,
    )
    assert form.json()["status"] == "ok"
    assert fake.sent[-1]["message"] == [{"type": "face", "data": {"id": "2"}}]
    query = requests.get(
        f"{url}/send_private_msg",
        params={"access_token": "tok", "user_id": "20001", "message": "[x]", "auto_escape": "true"},
        timeout=5,
    )
    assert query.json()["status"] == "ok"
    assert fake.sent[-1]["message"] == [{"type": "text", "data": {"text": "[x]"}}]
    assert fake.sent[-1]["user_id"] == 20001


def test_body_errors_over_http_client(fake: FakeOneBot) -> None:
    url = fake.start_http_api()
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    headers = {"Authorization": "Bearer tok", "Content-Type": "application/json"}

    def status(body: bytes, path: str = "/get_status", **extra: str) -> tuple[int, bytes]:
        conn.request("POST", path, body=body, headers={**headers, **extra})
        resp = conn.getresponse()
        return resp.status, resp.read()

    assert status(b"{bad")[0] == 400
    assert status(b"[1]")[0] == 400
    assert status(b"x", **{"Content-Type": "text/csv"})[0] == 406
    code, body = status(b"{}", "/get_status/")  # trailing slash allowed
    assert code == 200 and json.loads(body)["status"] == "ok"
    conn.close()


def test_go_cqhttp_breaks_on_a_trailing_slash(no_thread_leak: None) -> None:
    with FakeOneBot(flavor="go-cqhttp") as fake:
        url = fake.start_http_api()
        assert requests.post(f"{url}/get_status/", json={}, timeout=5).json()["retcode"] == 404


def test_faults_over_http(fake: FakeOneBot) -> None:
    url = fake.start_http_api()
    fake.faults.drop = 1
    with pytest.raises(requests.ConnectionError):
        post(url, "get_status")
    fake.faults.close_mid_call = 1
    with pytest.raises(requests.ConnectionError):
        post(url, "get_status")
    fake.faults.delay = 0.5
    with pytest.raises(requests.Timeout):
        requests.post(f"{url}/get_status?access_token=tok", json={}, timeout=0.1)
    fake.faults.delay = 0
    assert post(url, "get_status").json()["status"] == "ok"


# -- HTTP POST: the fake POSTs events to a plain stdlib server playing the bot --------


class Bot(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[dict[str, str], bytes]]
    answer: bytes = b""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((dict(self.headers), body))
        status = 200 if self.answer else 204
        self.send_response(status)
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args: Any) -> None:
        pass


# The stdlib server playing the bot, and what it was POSTed (headers, body).
class BotHTTPServer(ThreadingHTTPServer):
    RequestHandlerClass: type[Bot]  # a test sets the answer on it


BotServer = tuple[BotHTTPServer, list[tuple[dict[str, str], bytes]]]


@pytest.fixture
def bot_server() -> Iterator[BotServer]:
    seen: list[tuple[dict[str, str], bytes]] = []
    handler = type("H", (Bot,), {"seen": seen})
    server = BotHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server, seen
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.parametrize("flavor", ["spec", "go-cqhttp", "napcat"])
def test_http_post_signs_and_applies_quick_reply(
    bot_server: BotServer, flavor: Flavor, no_thread_leak: None
) -> None:
    server, seen = bot_server
    server.RequestHandlerClass.answer = codec.dumps({"reply": "pong", "at_sender": False})
    with FakeOneBot(flavor=flavor) as fake:
        fake.add_http_post(f"http://127.0.0.1:{server.server_port}/", secret="s3")
        event = fake.push_message(user_id=20001, text="ping", group_id=30001)
        headers, body = seen[0]
        lowered = {k.lower(): v for k, v in headers.items()}
        assert lowered["x-self-id"] == str(fake.self_id)
        assert codec.check_signature(body, "s3", lowered["x-signature"])
        assert json.loads(body) == event
        assert ("x-self-id" in headers) == (flavor == "napcat")  # NapCat's lowercase headers
        sent = fake.wait_for_sent(1, timeout=5)
        assert sent[0]["group_id"] == 30001
        assert sent[0]["message"] == [{"type": "text", "data": {"text": "pong"}}]
        assert isinstance(event["message"], list) == (flavor == "napcat")


def test_http_post_at_sender_default_true_in_spec(
    bot_server: BotServer, no_thread_leak: None
) -> None:
    server, _ = bot_server
    server.RequestHandlerClass.answer = codec.dumps({"reply": "hi"})
    with FakeOneBot() as fake:
        fake.add_http_post(f"http://127.0.0.1:{server.server_port}/")
        fake.push_message(user_id=20002, text="x", group_id=30001)
        assert fake.sent[0]["message"][0] == {"type": "at", "data": {"qq": "20002"}}


def test_http_post_204_means_no_operation(bot_server: BotServer, no_thread_leak: None) -> None:
    server, seen = bot_server
    server.RequestHandlerClass.answer = b""
    with FakeOneBot() as fake:
        fake.add_http_post(f"http://127.0.0.1:{server.server_port}/")
        fake.push_message()
        assert len(seen) == 1 and fake.sent == []
        assert fake.post_log == [(204, None)]


def test_wait_for_sent_times_out_clearly() -> None:
    with FakeOneBot() as fake, pytest.raises(TimeoutError, match="0 of 1"):
        fake.wait_for_sent(1, timeout=0.05)


def test_unknown_flavor_is_refused() -> None:
    with pytest.raises(ValueError, match="flavor"):
        FakeOneBot(flavor="mirai")  # type: ignore[arg-type]  # not a Flavor: the point


def test_the_world_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long-running fake forgets its oldest messages, calls and sends (KEEP of each)."""
    from onebot_ref.testing import _world as fake_world

    monkeypatch.setattr(fake_world, "KEEP", 50)
    world = fake_world.World()

    def handle(action: str, params: dict[str, Any]) -> dict[str, Any]:
        answer = world.handle(action, params)
        assert answer is not None  # None: an action the world does not know
        return answer

    ids = [
        handle("send_private_msg", {"user_id": 20001, "message": f"m{n}"})["data"]["message_id"]
        for n in range(120)
    ]
    assert world.sent_total == 120 and len(world.wait_for_sent(120, timeout=1)) <= 50
    assert world.sent[-1]["text"] == "m119"
    assert len(world.messages) <= 50 and len(world.calls) <= 50
    assert handle("get_msg", {"message_id": ids[-1]})["status"] == "ok"
    assert handle("get_msg", {"message_id": ids[0]})["retcode"] == 100  # forgotten
