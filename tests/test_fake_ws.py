"""FakeOneBot's WebSocket sides, driven by independent peers (websockets)."""

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import wait_until
from websockets.sync.server import ServerConnection, serve

from onebot_ref import Flavor
from onebot_ref.testing import FakeOneBot


class Bot:
    """A reverse-WS server written with websockets: records handshakes and frames."""

    def __init__(self) -> None:
        self.handshakes: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.frames: queue.Queue[tuple[str | None, Any]] = queue.Queue()
        self.sockets: list[ServerConnection] = []
        self.server = serve(self.handler, "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/onebot/v11/ws"

    def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None  # past the handshake
        self.sockets.append(ws)
        self.handshakes.put((ws.request.path, ws.request.headers))
        for message in ws:
            self.frames.put((ws.request.headers.get("X-Client-Role"), json.loads(message)))

    def ws(self, n: int = 0) -> ServerConnection:
        """The n-th connection, once its handler runs (the fake may see 101 before that)."""
        wait_until(lambda: len(self.sockets) > n, 5, f"connection {n}'s handler running")
        return self.sockets[n]

    def next(self, skip_heartbeats: bool = True) -> Any:
        while True:
            _role, frame = self.frames.get(timeout=5)
            if not (skip_heartbeats and frame.get("meta_event_type") == "heartbeat"):
                return frame

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def bot() -> Iterator[Bot]:
    bot = Bot()
    yield bot
    bot.close()


@pytest.mark.parametrize(
    ("flavor", "token", "authorization", "role_header"),
    [
        ("spec", "tok", "Bearer tok", "X-Client-Role"),
        ("go-cqhttp", "tok", "Token tok", "X-Client-Role"),
        ("napcat", None, "Bearer", "x-client-role"),  # NapCat sends "Bearer " with no token
        ("go-cqhttp", None, None, "X-Client-Role"),
    ],
)
def test_reverse_handshake_headers_per_flavor(
    bot: Bot, flavor: Flavor, token: str | None, authorization: str | None, role_header: str
) -> None:
    with FakeOneBot(flavor=flavor, access_token=token) as fake:
        fake.connect_reverse(bot.url)
        path, headers = bot.handshakes.get(timeout=5)
        assert path == "/onebot/v11/ws"
        assert headers["X-Self-ID"] == str(fake.self_id)
        assert headers.get("Authorization", "").strip() == (authorization or "")
        assert headers["X-Client-Role"] == "Universal"
        assert role_header in [name for name, _ in headers.raw_items()]


def test_reverse_universal_lifecycle_events_and_actions(bot: Bot) -> None:
    with FakeOneBot(heartbeat_interval=0.1) as fake:
        client = fake.connect_reverse(bot.url)
        assert client.wait_connected()
        ws = bot.ws()
        first = bot.next()
        assert (first["meta_event_type"], first["sub_type"]) == ("lifecycle", "connect")
        beat = bot.next(skip_heartbeats=False)
        assert beat["meta_event_type"] == "heartbeat" and beat["interval"] == 100
        ws.send(json.dumps({"action": "get_login_info", "params": {}, "echo": "e1"}))
        assert bot.next() == {
            "status": "ok",
            "retcode": 0,
            "data": {"user_id": 10001, "nickname": "FakeBot"},
            "echo": "e1",
        }
        fake.heartbeat_interval = None
        event = fake.push_message(user_id=20001, text="hi")
        assert bot.next() == event
        assert ("onebot → bot", "ws-server", event) in fake.transcript


def test_reverse_split_roles_and_reconnect(bot: Bot) -> None:
    with FakeOneBot(flavor="go-cqhttp") as fake:
        client = fake.connect_reverse(api_url=bot.url, event_url=bot.url, reconnect_interval=0.1)
        assert client.wait_connected(2)
        roles = sorted(bot.handshakes.get(timeout=5)[1]["X-Client-Role"] for _ in range(2))
        assert roles == ["API", "Event"]
        client.drop()  # both connections die at the TCP level; both redial
        roles = sorted(bot.handshakes.get(timeout=5)[1]["X-Client-Role"] for _ in range(2))
        assert roles == ["API", "Event"]
        assert client.attempts >= 4


def test_reverse_faults_echo_and_drop(bot: Bot) -> None:
    with FakeOneBot() as fake:
        client = fake.connect_reverse(bot.url)
        assert client.wait_connected()
        ws = bot.ws()
        bot.next()  # lifecycle
        fake.faults.echo = "number"
        ws.send(json.dumps({"action": "get_status", "echo": "7"}))
        assert bot.next()["echo"] == 7
        fake.faults.echo = "keep"
        fake.faults.drop = 1
        ws.send(json.dumps({"action": "get_status", "echo": "8"}))
        ws.send(json.dumps({"action": "get_status", "echo": "9"}))
        assert bot.next()["echo"] == "9"
        ws.send(json.dumps({"action": "get_status"}))
        assert "echo" not in bot.next()  # spec: omitted when not sent


# -- forward WS: the fake is the server; independent clients dial it ----------------

from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402


@pytest.fixture
def forward(no_thread_leak: None) -> Iterator[tuple[FakeOneBot, str]]:
    with FakeOneBot(access_token="tok") as fake:
        yield fake, fake.start_ws_server()


def test_forward_universal_lifecycle_then_actions_and_events(
    forward: tuple[FakeOneBot, str],
) -> None:
    fake, url = forward
    with connect(url, additional_headers={"Authorization": "Bearer tok"}) as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert (hello["meta_event_type"], hello["sub_type"]) == ("lifecycle", "connect")
        ws.send(
            json.dumps(
                {
                    "action": "send_private_msg",
                    "params": {"user_id": 20001, "message": "hi"},
                    "echo": "x1",
                }
            )
        )
        reply = json.loads(ws.recv(timeout=5))
        assert reply["echo"] == "x1" and reply["status"] == "ok"
        event = fake.push_message(text="yo")
        assert json.loads(ws.recv(timeout=5)) == event
        assert fake.sent[0]["text"] == "hi"


def test_forward_api_path_gets_no_lifecycle_and_event_path_no_answers(
    forward: tuple[FakeOneBot, str],
) -> None:
    fake, url = forward
    headers = {"Authorization": "Bearer tok"}
    with (
        connect(url + "api", additional_headers=headers) as api,
        connect(url + "event", additional_headers=headers) as events,
    ):
        assert json.loads(events.recv(timeout=5))["sub_type"] == "connect"
        api.send(json.dumps({"action": "get_status", "echo": "1"}))
        assert json.loads(api.recv(timeout=5))["echo"] == "1"  # first frame: no lifecycle
        events.send(json.dumps({"action": "get_status", "echo": "2"}))
        event = fake.push_message()
        assert json.loads(events.recv(timeout=5)) == event  # and no reply to the action
        with pytest.raises(TimeoutError):
            api.recv(timeout=0.2)  # the API connection gets no events


@pytest.mark.parametrize(("flavor", "status"), [("spec", 401), ("go-cqhttp", 401)])
def test_forward_auth_refused_before_upgrade(
    no_thread_leak: None, flavor: Flavor, status: int
) -> None:
    with FakeOneBot(flavor=flavor, access_token="tok") as fake:
        url = fake.start_ws_server()
        with pytest.raises(InvalidStatus) as info:
            connect(url, open_timeout=5)
        assert info.value.response.status_code == status
        with pytest.raises(InvalidStatus) as info:
            connect(url, additional_headers={"Authorization": "Bearer no"}, open_timeout=5)
        assert info.value.response.status_code == 403
        with connect(url + "?access_token=tok", open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=5))["post_type"] == "meta_event"


def test_forward_napcat_refuses_in_band_with_1403(no_thread_leak: None) -> None:
    with FakeOneBot(flavor="napcat", access_token="tok") as fake:
        url = fake.start_ws_server()
        with connect(url, additional_headers={"Authorization": "Token tok"}, open_timeout=5) as ws:
            frame = json.loads(ws.recv(timeout=5))
            assert (frame["retcode"], frame["echo"]) == (1403, None)
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)


def test_forward_heartbeats_stop_while_socket_stays_open(no_thread_leak: None) -> None:
    with FakeOneBot(heartbeat_interval=0.05) as fake:
        url = fake.start_ws_server()
        with connect(url) as ws:
            json.loads(ws.recv(timeout=5))  # lifecycle
            assert json.loads(ws.recv(timeout=5))["meta_event_type"] == "heartbeat"
            fake.faults.heartbeats = False
            try:
                while True:  # drain what was already in flight
                    ws.recv(timeout=0.3)
            except TimeoutError:
                pass
            ws.send(json.dumps({"action": "get_status", "echo": "alive"}))
            assert json.loads(ws.recv(timeout=5))["echo"] == "alive"


def test_forward_malformed_frame_and_mid_call_close(forward: tuple[FakeOneBot, str]) -> None:
    fake, url = forward
    with connect(url, additional_headers={"Authorization": "Bearer tok"}) as ws:
        ws.recv(timeout=5)
        fake.faults.malformed = 1
        ws.send(json.dumps({"action": "get_status", "echo": "1"}))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
        sent = info.value.sent
        assert info.value.rcvd is None or (sent is not None and sent.code == 1002)
    with connect(url, additional_headers={"Authorization": "Bearer tok"}) as ws:
        ws.recv(timeout=5)
        fake.faults.close_mid_call = 1
        ws.send(json.dumps({"action": "get_status", "echo": "1"}))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
