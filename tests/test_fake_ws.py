"""FakeOneBot's WebSocket sides, driven by independent peers (websockets)."""

import json
import queue
import threading

import pytest
from websockets.sync.server import serve

from onebot_ref.fake_onebot import FakeOneBot


class Bot:
    """A reverse-WS server written with websockets: records handshakes and frames."""

    def __init__(self):
        self.handshakes = queue.Queue()
        self.frames = queue.Queue()
        self.sockets = []
        self.server = serve(self.handler, "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/onebot/v11/ws"

    def handler(self, ws):
        self.sockets.append(ws)
        self.handshakes.put((ws.request.path, ws.request.headers))
        for message in ws:
            self.frames.put((ws.request.headers.get("X-Client-Role"), json.loads(message)))

    def next(self, skip_heartbeats=True):
        while True:
            _role, frame = self.frames.get(timeout=5)
            if not (skip_heartbeats and frame.get("meta_event_type") == "heartbeat"):
                return frame

    def close(self):
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def bot():
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
def test_reverse_handshake_headers_per_flavor(bot, flavor, token, authorization, role_header):
    with FakeOneBot(flavor=flavor, access_token=token) as fake:
        fake.connect_reverse(bot.url)
        path, headers = bot.handshakes.get(timeout=5)
        assert path == "/onebot/v11/ws"
        assert headers["X-Self-ID"] == str(fake.self_id)
        assert headers.get("Authorization", "").strip() == (authorization or "")
        assert headers["X-Client-Role"] == "Universal"
        assert role_header in [name for name, _ in headers.raw_items()]


def test_reverse_universal_lifecycle_events_and_actions(bot):
    with FakeOneBot(heartbeat_interval=0.1) as fake:
        client = fake.connect_reverse(bot.url)
        assert client.wait_connected()
        ws = bot.sockets[0]
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


def test_reverse_split_roles_and_reconnect(bot):
    with FakeOneBot(flavor="go-cqhttp") as fake:
        client = fake.connect_reverse(api_url=bot.url, event_url=bot.url, reconnect_interval=0.1)
        assert client.wait_connected(2)
        roles = sorted(bot.handshakes.get(timeout=5)[1]["X-Client-Role"] for _ in range(2))
        assert roles == ["API", "Event"]
        client.drop()  # both connections die at the TCP level; both redial
        roles = sorted(bot.handshakes.get(timeout=5)[1]["X-Client-Role"] for _ in range(2))
        assert roles == ["API", "Event"]
        assert client.attempts >= 4


def test_reverse_faults_echo_and_drop(bot):
    with FakeOneBot() as fake:
        client = fake.connect_reverse(bot.url)
        assert client.wait_connected()
        ws = bot.sockets[0]
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
