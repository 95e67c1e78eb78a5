"""``python -m onebot_ref.testing``, run as a user runs it: a subprocess in each mode, driven by
our modes and by independent peers (requests, websockets, a stdlib HTTP server), its console
through a pipe (stdin and ``--script``), and Ctrl+C."""

import hashlib
import hmac
import json
import os
import pathlib
import pty
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import requests
import trustme
from conftest import wait_until
from processes import ENV, ROOT, Live, as_in_a_terminal
from websockets.sync.client import connect
from websockets.sync.server import ServerConnection, serve

from onebot_ref.http_client import HttpClient
from onebot_ref.http_server import HttpServer
from onebot_ref.ws_client import WsClient
from onebot_ref.ws_server import WsServer

CLI = [sys.executable, "-m", "onebot_ref.testing"]


class Fake(Live):
    """The CLI in a subprocess, its standard input a pipe (:meth:`Live.send`)."""

    def __init__(self, *args: str) -> None:
        super().__init__(*CLI[1:], *args, stdin=True)

    def url(self, label: str) -> str:
        """The URL the start banner gives for ``label`` (``HTTP API``, ``forward WS``)."""
        found = re.search(r"(https?|wss?)://\S+", self.wait_for(label))
        assert found is not None
        return found.group()


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, encoding="utf-8",
        env=ENV, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip


def refused(url: str) -> bool:
    """True if nothing listens at ``url``'s host and port any more."""
    found = re.search(r"//([\d.]+):(\d+)", url)
    assert found is not None
    try:
        socket.create_connection((found.group(1), int(found.group(2))), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


# -- each mode --------------------------------------------------------------------------------


def test_http_api_mode_answers_requests_and_our_client(tmp_path: pathlib.Path) -> None:
    world = tmp_path / "world.json"
    world.write_text(
        json.dumps(
            {
                "groups": [
                    {
                        "group_id": 30009,
                        "name": "CLI 群",
                        "members": [{"user_id": 20001, "role": "admin", "card": "卡"}],
                    }
                ]
            }
        ),
        "utf-8",
    )
    args = ["--http-api", "127.0.0.1:0", "--token", "tok", "--self-id", "10042"]
    with Fake(*args, "--world", str(world), "--no-console") as fake:
        url = fake.url("HTTP API")
        assert "access token: required" in fake.wait_for("access token")
        # requests, an independent client: the token, the world file, --self-id
        denied = requests.post(f"{url}/get_login_info", json={}, timeout=5)
        assert denied.status_code == 403  # napcat flavour by default
        headers = {"Authorization": "Bearer tok"}
        member = requests.post(
            f"{url}/get_group_member_info", json={"group_id": 30009, "user_id": 20001},
            headers=headers, timeout=5,
        ).json()["data"]  # fmt: skip
        assert (member["role"], member["card"]) == ("admin", "卡")
        me = requests.post(
            f"{url}/get_group_member_info", json={"group_id": 30009, "user_id": 10042},
            headers=headers, timeout=5,
        ).json()["data"]  # fmt: skip
        assert me["role"] == "member"  # --self-id is the bot in the world file's groups too
        # our HttpClient
        with HttpClient(url, access_token="tok") as bot:
            assert bot.get_login_info()["user_id"] == 10042
            assert [g["group_id"] for g in bot.get_group_list()] == [30009]
            bot.send_group_msg(30009, "[CQ:at,qq=20001] 你好")
            bot.set_group_card(30009, 20001, "新卡")
        fake.wait_for("<< [group 30009] FakeBot: @卡 你好")  # shown even with --no-console
        fake.wait_for('.. bot: set_group_card group_id=30009 user_id=20001 card="新卡"')
        code, out, err = fake.stop()
    assert code == 0 and "Traceback" not in err, err
    assert out.rstrip().endswith("stopped")
    assert refused(url)


def test_ws_server_mode_through_a_stdin_pipe_with_websockets_as_the_bot() -> None:
    with Fake("--ws-server", "127.0.0.1:0", "--flavor", "go-cqhttp") as fake:
        url = fake.url("forward WS")
        with connect(url, open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=5))["meta_event_type"] == "lifecycle"
            fake.send("/private 20001 /ping")
            event = json.loads(ws.recv(timeout=5))
            assert (event["message_type"], event["user_id"]) == ("private", 20001)
            assert event["message"] == "/ping"  # go-cqhttp: string format
            reply = [
                {"type": "at", "data": {"qq": "20001"}},
                {"type": "text", "data": {"text": " pong"}},
            ]
            ws.send(json.dumps({"action": "send_private_msg", "echo": 1,
                                "params": {"user_id": 20001, "message": reply}}))  # fmt: skip
            assert json.loads(ws.recv(timeout=5))["status"] == "ok"
            fake.wait_for("<< [private 20001] FakeBot: @小明 pong")
            fake.send("/quit")
            code, out, err = fake.finish()
    assert code == 0 and "Traceback" not in err, err
    assert ">> [private 20001] 小明(20001): /ping" in out  # a pipe: typed events are echoed
    assert refused(url)


def test_ws_server_mode_plays_a_script_against_our_ws_client(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "chat.txt"
    script.write_text(
        "# our WsClient echoes every message\n"
        "/wait-bot 15\n"
        "/group 30001:20002 hello [CQ:face,id=1]\n"
        "/wait-sent 1\n"
        '{"post_type": "message", "message_type": "private", "sub_type": "friend", '
        '"user_id": 20002, "message": "raw json", "message_id": 9, "raw_message": "raw json", '
        '"font": 0, "sender": {"user_id": 20002}}\n'
        "/wait-sent 2\n",
        "utf-8",
    )
    with Fake("--ws-server", "127.0.0.1:0", "--token", "t", "--script", str(script)) as fake:
        client = WsClient(fake.url("forward WS"), access_token="t")

        @client.on("message")
        def echo(event: dict[str, Any]) -> None:
            client.reply(event, event["message"])

        with client.start(wait=10):
            code, out, err = fake.finish()
    assert code == 0, fake.output()
    assert "<< [group 30001] FakeBot: hello [表情1]" in out
    assert "<< [private 20002] FakeBot: raw json" in out
    assert "Traceback" not in err


def test_post_to_mode_signs_and_shows_the_quick_reply() -> None:
    with HttpServer("127.0.0.1", 0, secret="s3") as bot:

        @bot.on("message")
        def reply(event: dict[str, Any]) -> dict[str, Any]:
            return {"reply": f"you said {event['raw_message']}"}

        bot.start()
        script = "/private 20002 hi\n/wait-sent 1\n"
        result = run("--post-to", bot.url, "--secret", "s3", "--flavor", "spec", stdin=script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"HTTP POST →  {bot.url}" in result.stdout
    assert "<< [private 20002] FakeBot: you said hi" in result.stdout


class SignedReceiver(BaseHTTPRequestHandler):
    """A bot's HTTP POST receiver written with the stdlib: checks X-Signature itself
    (HMAC-SHA1 of the body, spec communication/http-post.md) and replies by quick operation."""

    bodies: ClassVar[list[dict[str, Any]]] = []  # what arrived, signed; cleared per test

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha1=" + hmac.new(b"k3y", body, hashlib.sha1).hexdigest()
        if self.headers.get("X-Signature") != expected:
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        event = json.loads(body)
        self.bodies.append(event)
        answer = json.dumps({"reply": f"[CQ:reply,id={event['message_id']}]收到"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_post_to_mode_against_a_stdlib_receiver_that_checks_the_signature() -> None:
    SignedReceiver.bodies.clear()
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), SignedReceiver)
    thread = threading.Thread(target=receiver.serve_forever)
    thread.start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/"
        script = "/group 30001 hi\n/wait-sent 1\n"
        result = run("--post-to", url, "--secret", "k3y", "--flavor", "go-cqhttp", stdin=script)
    finally:
        receiver.shutdown()
        receiver.server_close()
        thread.join(5)
    assert result.returncode == 0, result.stdout + result.stderr
    assert SignedReceiver.bodies[0]["raw_message"] == "hi"
    assert "<< [group 30001] FakeBot: [回复 #" in result.stdout and "]收到" in result.stdout


class ReverseBot:
    """A reverse-WS server written with websockets: approves every friend request."""

    def __init__(self) -> None:
        self.headers: list[Any] = []
        self.events: list[dict[str, Any]] = []
        self.server = serve(self.handler, "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/onebot/v11/ws"

    def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.headers.append(ws.request.headers)
        for message in ws:
            frame = json.loads(message)
            if frame.get("post_type"):
                self.events.append(frame)
            if frame.get("request_type") == "friend":
                params = {"flag": frame["flag"], "approve": True}
                ws.send(json.dumps({"action": "set_friend_add_request", "params": params}))

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def reverse_bot() -> Iterator[ReverseBot]:
    bot = ReverseBot()
    yield bot
    bot.close()


def test_ws_reverse_mode_dials_the_bot_and_approving_makes_a_friend(
    reverse_bot: ReverseBot, tmp_path: pathlib.Path
) -> None:
    script = tmp_path / "friend.txt"
    script.write_text(
        "/wait-bot 15\n/request friend 20009 加个好友\n/wait-call set_friend_add_request\n",
        "utf-8",
    )
    argv = ["--ws-reverse", reverse_bot.url, "--token", "tk", "--self-id", "10077"]
    with Fake(*argv, "--script", str(script)) as fake:
        code, out, _err = fake.finish()
        wait_until(
            lambda: any(e.get("notice_type") == "friend_add" for e in reverse_bot.events),
            10,
            "the friend_add notice",
        )
    assert code == 0, fake.output()
    headers = reverse_bot.headers[0]
    assert headers["X-Self-ID"] == "10077"
    assert headers["Authorization"] == "Bearer tk"
    assert ".. bot: set_friend_add_request flag=" in out
    assert "-- notice friend_add user_id=20009" in out


def test_every_mode_at_once_and_ctrl_c_closes_every_listener(reverse_bot: ReverseBot) -> None:
    with HttpServer("127.0.0.1", 0) as post_bot:
        post_bot.start()
        argv = ["--http-api", "127.0.0.1:0", "--ws-server", "127.0.0.1:0"]
        with Fake(*argv, "--post-to", post_bot.url, "--ws-reverse", reverse_bot.url) as fake:
            api, ws_url = fake.url("HTTP API"), fake.url("forward WS")
            wait_until(lambda: reverse_bot.headers, 10, "the reverse connection")
            with connect(ws_url, open_timeout=5) as ws:
                json.loads(ws.recv(timeout=5))  # lifecycle
                fake.send("hello everyone")
                assert json.loads(ws.recv(timeout=5))["raw_message"] == "hello everyone"
                wait_until(lambda: post_bot.bots, 10, "the HTTP POST")
                wait_until(lambda: len(reverse_bot.events) >= 2, 10, "the reverse event")
                code, out, err = fake.stop()
                with pytest.raises(Exception):  # noqa: B017  (the server went away: any close)
                    ws.recv(timeout=5)
    assert code == 0 and "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert out.rstrip().endswith("stopped")
    assert refused(api) and refused(ws_url)


def test_reverse_ws_server_of_ours_gets_the_events_of_a_script() -> None:
    with WsServer("127.0.0.1", 0, access_token="t") as bot:
        got: list[dict[str, Any]] = []

        @bot.on("notice")
        def note(event: dict[str, Any]) -> None:
            got.append(event)

        bot.start()
        script = "/wait-bot 15\n/group 30001 hi\n/poke 20002\n/join 30001 20005\n"
        result = run("--ws-reverse", bot.url, "--token", "t", stdin=script)
        wait_until(lambda: len(got) >= 2, 10, "the poke and group_increase notices")
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = sorted(str(e.get("sub_type")) for e in got)
    assert kinds == ["approve", "poke"]
    assert "-- notice group_increase/approve group_id=30001 user_id=20005" in result.stdout


def test_the_example_world_and_script_against_the_demo_echo_bot() -> None:
    """The README's two terminals: the fake plays examples/chat.txt in examples/world.toml,
    the demo's ws-client echo bot (another process) answers."""
    examples = ROOT / "examples"
    argv = ["--ws-server", "127.0.0.1:0", "--world", str(examples / "world.toml")]
    with Fake(*argv, "--script", str(examples / "chat.txt")) as fake:
        demo = subprocess.Popen(
            [sys.executable, "-m", "onebot_ref.demo", "ws-client", "--url", fake.url("forward WS")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, cwd=ROOT,
        )  # fmt: skip
        try:
            code, out, err = fake.finish(30)
        finally:
            demo.kill()
            demo.wait(5)
    assert code == 0 and "Traceback" not in err, fake.output()
    assert "FakeOneBot: QQ 10001 (测试机器人)" in out
    assert ">> [group 30001] Alice(20002): 大家好 @测试机器人" in out
    assert "<< [private 20001] 测试机器人: /help" in out
    assert "<< [group 30001] 测试机器人: 大家好 @测试机器人" in out
    assert out.index("-- WebSocket connections carrying events: 1") < out.index(">>")


def test_tls_serves_https_and_wss_and_verifies_the_bot_with_ca_file(
    tmp_path: pathlib.Path,
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file, certfile, keyfile = (str(tmp_path / n) for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(ca_file)
    cert.private_key_pem.write_to_path(keyfile)
    for blob in cert.cert_chain_pems:
        blob.write_to_path(certfile, append=True)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_tls)
    with HttpServer("127.0.0.1", 0, ssl_context=server_tls) as bot:  # the bot, over https

        @bot.on("message")
        def reply(event: dict[str, Any]) -> dict[str, Any]:
            return {"reply": "over TLS"}

        bot.start()
        argv = ["--http-api", "127.0.0.1:0", "--ws-server", "127.0.0.1:0", "--post-to", bot.url]
        tls = ["--certfile", certfile, "--keyfile", keyfile, "--ca-file", ca_file]
        with Fake(*argv, *tls) as fake:
            api, ws_url = fake.url("HTTP API"), fake.url("forward WS")
            assert api.startswith("https://") and ws_url.startswith("wss://")
            answer = requests.post(f"{api}/get_status", json={}, verify=ca_file, timeout=5)
            assert answer.json()["status"] == "ok"
            client_tls = ssl.create_default_context(cafile=ca_file)
            with connect(ws_url, ssl=client_tls, open_timeout=5) as ws:
                assert json.loads(ws.recv(timeout=5))["meta_event_type"] == "lifecycle"
            fake.send("/private 20001 hi")
            fake.wait_for("<< [private 20001] FakeBot: over TLS")
            code, _out, err = fake.stop()
    assert bot.url.startswith("https://")
    assert code == 0 and "Traceback" not in err, err


# -- the console ------------------------------------------------------------------------------


def test_a_failing_script_line_stops_the_script_with_its_number(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "bad.txt"
    script.write_text("/private 20001 hi\n/wait-sent 1 0.2\n/private 20001 never\n", "utf-8")
    result = run("--ws-server", "127.0.0.1:0", "--script", str(script))
    assert result.returncode == 1
    assert "line 2: /wait-sent 1: the bot sent 0 messages in all, 1 expected within 0.2 s" in (
        result.stderr
    )
    assert "never" not in result.stdout
    assert "Traceback" not in result.stderr


def test_piped_console_reports_mistakes_and_goes_on() -> None:
    lines = "/bogus\n/group x hi\n/request pal 1\n//ping\n/world\n"
    result = run("--ws-server", "127.0.0.1:0", "--flavor", "spec", stdin=lines)
    assert result.returncode == 1  # a line failed: the exit status says so, at the end
    assert "line 1: unknown command /bogus; /help lists them, //bogus sends it as text" in (
        result.stderr
    )
    assert "line 2: /group GROUP must be a QQ number, not 'x'" in result.stderr
    assert "line 3: /request friend|group|invite" in result.stderr
    assert ">> [private 20001] 小明(20001): /ping" in result.stdout
    assert "group 30001 测试群" in result.stdout and "owner  10001 FakeBot" in result.stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_while_the_console_reads_stops_cleanly(signum: int) -> None:
    with Fake("--ws-server", "127.0.0.1:0") as fake:
        url = fake.url("forward WS")
        fake.send("/help")
        fake.wait_for("/wait-sent N [SECONDS]")
        fake.proc.send_signal(signum)
        code, out, err = fake.finish(10)
    assert code == 0 and "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert out.rstrip().endswith("stopped")
    assert refused(url)


def test_on_a_terminal_the_console_is_a_chat_with_a_prompt() -> None:
    """stdin a terminal (a pty): a prompt, typed lines not echoed back, mistakes not fatal."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, "--ws-server", "127.0.0.1:0"], stdin=follower, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, encoding="utf-8", env=ENV, cwd=ROOT,
        preexec_fn=as_in_a_terminal,  # noqa: PLW1509
    )  # fmt: skip
    os.close(follower)
    out: list[str] = []
    reader = threading.Thread(target=Fake._read, args=(proc.stdout, out), daemon=True)
    reader.start()
    try:
        wait_until(lambda: "forward WS" in "".join(out), 15, "the banner")
        found = re.search(r"ws://\S+", "".join(out))
        assert found is not None
        with connect(found.group(), open_timeout=5) as ws:
            json.loads(ws.recv(timeout=5))  # lifecycle
            os.write(leader, "/nonsense\n/group 30001 大家好\n".encode())
            event = json.loads(ws.recv(timeout=5))
            assert (event["group_id"], event["user_id"]) == (30001, 20001)
            assert event["message"] == [{"type": "text", "data": {"text": "大家好"}}]
            wait_until(lambda: "[group 30001 as 20001] > " in "".join(out), 5, "the prompt")
            proc.send_signal(signal.SIGINT)
            code = proc.wait(10)
        reader.join(5)
        assert proc.stderr is not None
        err = proc.stderr.read()
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    text = "".join(out)
    assert code == 0 and "Traceback" not in err, err
    assert "? unknown command /nonsense" in text
    assert ">> [group 30001]" not in text  # a terminal shows what was typed: no echo
    assert text.rstrip().endswith("stopped")


# -- usage and start-up errors ----------------------------------------------------------------


def test_help_is_in_chinese_and_english() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "不需要 QQ 号" in result.stdout and "without a QQ account" in result.stdout
    for flag in ("--http-api", "--ws-server", "--post-to", "--ws-reverse", "--world", "--script"):
        assert flag in result.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give at least one mode"),
        (["--ws-server", "127.0.0.1"], "HOST:PORT"),
        (["--post-to", "ws://127.0.0.1:1/"], "is not a http/https URL"),
        (["--ws-server", "127.0.0.1:0", "--secret", "s"], "--secret signs HTTP POST events"),
        (["--ws-server", "127.0.0.1:0", "--token", " t"], "--token:"),
        (["--ws-server", "127.0.0.1:0", "--self-id", "-5"], "is not a QQ number"),
    ],
)
def test_usage_errors_are_clear(argv: list[str], message: str) -> None:
    result = run(*argv)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_bad_world_file_or_a_busy_port_is_an_error_not_a_traceback(
    tmp_path: pathlib.Path,
) -> None:
    world = tmp_path / "world.json"
    world.write_text('{"groups": [{"group_id": 1, "members": [{"user_id": 2, "role": "x"}]}]}')
    result = run("--ws-server", "127.0.0.1:0", "--world", str(world))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: the world file {world}: role must be one of")
    result = run("--ws-server", "127.0.0.1:0", "--script", str(tmp_path / "missing.txt"))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot read the script {tmp_path / 'missing.txt'}")
    assert not result.stdout  # refused before anything started
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run("--http-api", f"127.0.0.1:{busy.getsockname()[1]}")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_the_console_shows_a_sent_message_as_the_chat_was_when_it_was_sent() -> None:
    # A send followed at once by a card change showed the new card in the sent
    # message (and after the change) about one run in five under load: the
    # console printed sends from a watcher thread, after the fact. It prints
    # them before the send is answered now, so this reads the output at once.
    import io

    from onebot_ref.testing import FakeOneBot
    from onebot_ref.testing._console import Console

    out = io.StringIO()
    with FakeOneBot() as fake:
        fake.world.add_member(30001, 20003, card="卡")
        console = Console(fake, out, echo=False)
        try:
            sent = fake.world.handle(
                "send_group_msg", {"group_id": 30001, "message": "[CQ:at,qq=20003] 你好"}
            )
            assert sent is not None and sent["retcode"] == 0
            fake.world.handle(
                "set_group_card", {"group_id": 30001, "user_id": 20003, "card": "新卡"}
            )
        finally:
            console.close()
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(": @卡 你好"), lines
