"""python -m onebot_ref.record: a relay in each mode that passes everything on and writes it down."""

import base64
import os
import pathlib
import re
import signal
import ssl
import subprocess
import sys
import threading
from typing import Any

import pytest
import requests
import trustme
import websocket
from conftest import served, unused_port, wait_until
from sessions import MODES, SECRET, TOKEN, connected, fake_for, record_session, run_script
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from onebot_ref.errors import ConfigError
from onebot_ref.framer import BINARY, CLOSE, TEXT, parse_close
from onebot_ref.record import HttpRelay, Transcript, WsRelay, read_transcript
from onebot_ref.record._transcript import redact_headers
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_client import WsClient
from onebot_ref.ws_server import WsServer

ROOT = pathlib.Path(__file__).parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}


def frames(entries: list[dict[str, Any]], mode: str) -> list[tuple[str, Any]]:
    """``(dir, data)`` of every JSON message relayed in ``mode``."""
    return [(e["dir"], e["data"]) for e in entries if e["mode"] == mode and "data" in e]


@pytest.mark.parametrize("mode", MODES)
def test_a_session_passes_through_with_its_token_and_signature_and_no_secret_is_written(
    tmp_path: pathlib.Path, mode: str
) -> None:
    # The bot wants the token (ws-server), the fake wants it (ws-client, HTTP API), the
    # bot's HTTP server wants the signature: each reply proves the credential got through.
    path = tmp_path / "session.jsonl"
    assert record_session(mode, path) == ["pong", "you are Alice", "bye"]
    text = path.read_text("utf-8")
    assert TOKEN not in text and SECRET not in text
    entries = read_transcript(path)
    relayed = [e for e in entries if e["kind"] in ("message", "request", "response")]
    assert {e["mode"] for e in relayed} == (
        {"http-client", "http-server"} if mode == "http" else {mode}
    )
    events = [data["raw_message"] for direction, data in frames(entries, entries[-1]["mode"])
              if direction == "onebot → bot" and data.get("post_type") == "message"]  # fmt: skip
    calls = [e for e in entries if e["dir"] == "bot → onebot" and "action" in e.get("data", {})]
    if mode == "http":
        posts = [e for e in entries if e["mode"] == "http-server" and e["kind"] == "request"]
        assert [e["data"]["raw_message"] for e in posts] == ["/ping", "/who", "/bye"]
        assert all(e["headers"]["X-Signature"] == "sha1=***" for e in posts)
        api = [e for e in entries if e["mode"] == "http-client" and e["kind"] == "request"]
        assert [e["target"] for e in api] == [
            "/send_private_msg", "/get_stranger_info", "/send_private_msg", "/send_private_msg"
        ]  # fmt: skip
        assert all(e["headers"]["Authorization"] == "Bearer ***" for e in api)
        answers = [e for e in entries if e["mode"] == "http-client" and e["kind"] == "response"]
        assert answers[1]["data"]["data"]["nickname"] == "Alice"
    else:
        assert events == ["/ping", "/who", "/bye"]
        assert [c["data"]["action"] for c in calls] == [
            "send_private_msg", "get_stranger_info", "send_private_msg", "send_private_msg"
        ]  # fmt: skip
        (opened,) = [e for e in entries if e["kind"] == "open"]
        assert opened["headers"]["authorization"] == "Bearer ***"
        assert opened["dir"] == ("onebot → bot" if mode == "ws-server" else "bot → onebot")
    assert all(e["t"] > 1.7e9 for e in entries)


def echo_or_close(ws: ServerConnection, seen: list[tuple[str, dict[str, str]]]) -> None:
    """An independent WebSocket peer (``websockets``): echoes each message, closes on request."""
    assert ws.request is not None
    fields = {name.lower(): value for name, value in ws.request.headers.raw_items()}
    seen.append((ws.request.path, fields))
    ws.send("hello")
    try:
        for message in ws:
            if message == "close with 4001":
                ws.close(4001, "bye")
                return
            ws.send(message)
    except ConnectionClosed:
        pass


@pytest.mark.usefixtures("no_thread_leak")
def test_frames_pass_with_their_bytes_and_close_codes_to_an_independent_peer(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "ws.jsonl"
    closes: list[Any] = []
    seen: list[tuple[str, dict[str, str]]] = []

    def handler(ws: ServerConnection) -> None:
        echo_or_close(ws, seen)
        closes.append(ws.close_code)

    with serve(handler, "127.0.0.1", 0) as server, Transcript(path) as transcript:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        far = f"ws://127.0.0.1:{port}/base?via=recorder"  # a path and a query of its own
        relay = WsRelay(transcript, "ws-server", "127.0.0.1", 0, far)
        relay.start()
        try:
            headers = [f"Authorization: Token {TOKEN}", "X-Self-ID: 10001"]
            ws = websocket.create_connection(
                f"{relay.url}onebot/v11?access_token={TOKEN}", header=headers, timeout=10
            )
            assert ws.recv() == "hello"  # what the peer behind the recorder was sent:
            ((target, fields),) = seen
            assert target == f"/base/onebot/v11?via=recorder&access_token={TOKEN}"
            assert fields["authorization"] == f"Token {TOKEN}"  # names: any case
            assert fields["x-self-id"] == "10001"
            ws.send('{ "a" : 1 }')  # not our JSON spacing: the bytes must come back as sent
            assert ws.recv_data() == (TEXT, b'{ "a" : 1 }')
            ws.send_binary(b"\x00\xff")
            assert ws.recv_data() == (BINARY, b"\x00\xff")
            ws.ping(b"hop")
            assert ws.recv_data(control_frame=True) == (0xA, b"hop")  # answered on our hop
            ws.send("close with 4001")
            opcode, payload = ws.recv_data(control_frame=True)
            assert (opcode, parse_close(payload)) == (CLOSE, (4001, "bye"))
            ws.close()
            # A second connection: closed from the dialling side with its own code.
            ws = websocket.create_connection(relay.url, timeout=10)
            ws.recv()
            ws.close(status=4002, reason=b"done")
            wait_until(lambda: closes == [4001, 4002], 10, "both closes passed on")
        finally:
            relay.close()
    entries = read_transcript(path)
    assert TOKEN not in path.read_text("utf-8")
    first = [e for e in entries if e["conn"] == 1]
    assert first[0]["target"] == "/onebot/v11?access_token=***"
    assert first[0]["headers"]["authorization"] == "Token ***"
    kept = [
        (e.get("data"), e.get("text"), e.get("base64")) for e in first if e["kind"] == "message"
    ]
    assert kept == [
        (None, "hello", None), ({"a": 1}, None, None), ({"a": 1}, None, None),
        (None, None, "AP8="), (None, None, "AP8="), (None, "close with 4001", None),
    ]  # fmt: skip
    assert base64.b64decode("AP8=") == b"\x00\xff"
    assert [(e["dir"], e["code"]) for e in entries if e["kind"] == "close"] == [
        ("bot → onebot", 4001), ("onebot → bot", 4002)
    ]  # fmt: skip
    assert {e["conn"] for e in entries} == {1, 2}


def test_a_side_that_breaks_the_protocol_is_failed_and_the_other_told(
    tmp_path: pathlib.Path,
) -> None:
    ended: list[tuple[Any, Any]] = []

    def handler(ws: ServerConnection) -> None:
        echo_or_close(ws, [])
        ended.append((ws.close_code, ws.close_reason))

    with serve(handler, "127.0.0.1", 0) as server, Transcript(tmp_path / "big.jsonl") as out:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        relay = WsRelay(out, "ws-client", "127.0.0.1", 0, f"ws://127.0.0.1:{port}/", max_size=1024)
        relay.start()
        try:
            ws = websocket.create_connection(relay.url, timeout=10)
            assert ws.recv() == "hello"
            ws.send("x" * 2000)  # over max_size: RFC 6455 section 7.4.1, 1009
            opcode, payload = ws.recv_data(control_frame=True)
            assert (opcode, parse_close(payload)[0]) == (CLOSE, 1009)
            ws.close()
            wait_until(lambda: ended, 10, "the far side closed")
        finally:
            relay.close()
    assert ended == [(1001, "the other side broke the protocol (1009)")]
    (close,) = [e for e in read_transcript(tmp_path / "big.jsonl") if e["kind"] == "close"]
    assert (close["dir"], close["code"]) == ("bot → onebot", 1009)


def test_either_side_reconnecting_makes_a_new_pair_and_the_transcript_goes_on(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "again.jsonl"
    replies = 0
    with fake_for() as fake, Transcript(path) as transcript:
        fake_url = fake.start_ws_server()
        relay = WsRelay(transcript, "ws-client", "127.0.0.1", 0, fake_url)
        relay.start()
        try:

            def ping() -> None:
                nonlocal replies
                replies += 1
                fake.push_message(text="/ping")
                assert fake.wait_for_sent(replies, timeout=10)[-1]["text"] == "pong"

            bot = WsClient(relay.url, access_token=TOKEN, backoff_initial=0.05, backoff_max=0.2)
            bot.on("message")(lambda event: bot.send_private_msg(event["user_id"], "pong"))
            with bot:
                ping()
                fake.restart(downtime=0.3)  # the implementation goes away and comes back
                wait_until(lambda: bot.connected and fake.event_connections(), 10, "reconnected")
                ping()
            with WsClient(relay.url, access_token=TOKEN) as bot:  # the bot comes back anew
                bot.on("message")(lambda event: bot.send_private_msg(event["user_id"], "pong"))
                wait_until(fake.event_connections, 10, "connected")
                ping()
        finally:
            relay.close()
    entries = read_transcript(path)
    opened = [e["conn"] for e in entries if e["kind"] == "open"]
    pinged = [e["conn"] for e in entries if e.get("data", {}).get("raw_message") == "/ping"]
    assert len(pinged) == 3 and pinged[0] < pinged[1] < pinged[2]
    assert set(pinged) <= set(opened)
    closes = {e["conn"]: e["code"] for e in entries if e["kind"] == "close"}
    assert closes[pinged[0]] == 1001  # the fake's server went away: its code passed on
    assert closes[pinged[1]] == 1000  # the bot closed


@pytest.mark.usefixtures("no_thread_leak")
def test_http_relay_passes_requests_chunked_body_and_query_token_on(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "http.jsonl"
    with fake_for() as fake, Transcript(path) as transcript:
        far = fake.start_http_api() + "/?via=recorder"  # a query of its own goes first
        relay = HttpRelay(transcript, "http-client", "127.0.0.1", 0, far)
        relay.start()
        try:
            with requests.Session() as session:
                body = iter([b'{"user_id": 20001, ', '"message": "分块"}'.encode()])
                resp = session.post(
                    f"{relay.url}/send_private_msg?access_token={TOKEN}",
                    data=body,  # a generator: requests sends it chunked
                    headers={"Content-Type": "application/json"},
                    timeout=10,
                )
                assert resp.status_code == 200 and resp.json()["status"] == "ok"
                resp = session.get(f"{relay.url}/get_login_info", timeout=10,
                                   headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
                assert resp.json()["data"]["user_id"] == 10001
                resp = session.get(f"{relay.url}/get_login_info", timeout=10,
                                   headers={"Authorization": "Bearer wrong"})  # fmt: skip
                assert resp.status_code == 403  # the fake's own answer, passed back
        finally:
            relay.close()
        assert fake.sent[0]["text"] == "分块"
        assert [params.get("via") for _action, params in fake.calls] == ["recorder"] * 2
    text = path.read_text("utf-8")
    assert TOKEN not in text
    entries = read_transcript(path)
    assert [(e["kind"], e.get("target"), e.get("status")) for e in entries] == [
        ("request", "/send_private_msg?access_token=***", None), ("response", None, 200),
        ("request", "/get_login_info", None), ("response", None, 200),
        ("request", "/get_login_info", None), ("response", None, 403),
    ]  # fmt: skip
    assert entries[0]["data"] == {"user_id": 20001, "message": "分块"}
    assert entries[0]["headers"]["Transfer-Encoding"] == "chunked"
    assert {e["conn"] for e in entries} == {1}  # one keep-alive connection


def test_what_the_other_side_refuses_is_refused_with_its_status(tmp_path: pathlib.Path) -> None:
    with Transcript(tmp_path / "refused.jsonl") as transcript:
        with WsServer("127.0.0.1", 0, access_token=TOKEN) as bot:
            relay = WsRelay(transcript, "ws-server", "127.0.0.1", 0, bot.url)
            relay.start()
            nowhere = WsRelay(
                transcript, "ws-server", "127.0.0.1", 0, f"ws://127.0.0.1:{unused_port()}/"
            )
            nowhere.start()
            http = HttpRelay(
                transcript, "http-client", "127.0.0.1", 0, f"http://127.0.0.1:{unused_port()}"
            )
            http.start()
            try:
                with pytest.raises(websocket.WebSocketBadStatusException) as refused:
                    websocket.create_connection(
                        relay.url, header=["Authorization: Bearer wrong"], timeout=10
                    )
                assert refused.value.status_code == 403
                with pytest.raises(websocket.WebSocketBadStatusException) as refused:
                    websocket.create_connection(nowhere.url, timeout=10)
                assert refused.value.status_code == 502
                resp = requests.get(f"{http.url}/get_status", timeout=10)
                assert resp.status_code == 502
                assert resp.text.startswith("cannot relay to http://127.0.0.1:")
            finally:
                for closing in (relay, nowhere, http):
                    closing.close()
    errors = [e for e in read_transcript(tmp_path / "refused.jsonl") if e["kind"] == "error"]
    assert len(errors) == 3
    assert "403" in errors[0]["reason"]


def test_both_hops_speak_tls_when_asked(tmp_path: pathlib.Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "cert.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))

    def server_ctx() -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        return ctx

    def client_ctx() -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        return ctx

    path = tmp_path / "tls.jsonl"
    fake = FakeOneBot(access_token=TOKEN, certfile=str(tmp_path / "cert.pem"))
    with fake, Transcript(path) as transcript:
        ws = WsRelay(transcript, "ws-client", "127.0.0.1", 0, fake.start_ws_server(),
                     ssl_context=server_ctx(), client_ssl_context=client_ctx())  # fmt: skip
        http = HttpRelay(transcript, "http-client", "127.0.0.1", 0, fake.start_http_api(),
                         ssl_context=server_ctx(), client_ssl_context=client_ctx())  # fmt: skip
        ws.start()
        http.start()
        try:
            assert ws.url.startswith("wss://") and http.url.startswith("https://")
            with WsClient(ws.url, access_token=TOKEN, ssl_context=client_ctx()) as bot:
                assert bot.get_login_info()["user_id"] == 10001
            resp = requests.get(f"{http.url}/get_status", timeout=10, verify=str(tmp_path / "ca.pem"),
                                headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
            assert resp.json()["data"]["online"] is True
        finally:
            ws.close()
            http.close()
    entries = read_transcript(path)
    assert [e["data"]["action"] for e in entries if "action" in e.get("data", {})] == [
        "get_login_info"
    ]
    assert [e["target"] for e in entries if e["kind"] == "request"] == ["/get_status"]


@pytest.mark.parametrize(
    ("name", "value", "kept"),
    [
        ("Authorization", f"Bearer {TOKEN}", "Bearer ***"),
        ("authorization", f"Token {TOKEN}", "Token ***"),  # go-cqhttp's scheme
        ("Authorization", "Bearer ", "Bearer "),  # NapCat with no token: nothing to hide
        ("Authorization", TOKEN, "***"),  # a bare token
        ("X-Signature", "sha1=0123abcd", "sha1=***"),
        ("Cookie", "uin=o10001; skey=@x", "***"),
        (
            "Referer",
            f"http://127.0.0.1/?access_token={TOKEN}",
            "http://127.0.0.1/?access_token=***",
        ),
        ("X-Self-ID", "10001", "10001"),
    ],
)
def test_the_transcript_keeps_how_a_credential_was_sent_not_the_credential(
    name: str, value: str, kept: str
) -> None:
    assert redact_headers([(name, value)]) == {name: kept}


def test_a_relay_refuses_a_target_of_the_wrong_scheme(tmp_path: pathlib.Path) -> None:
    with Transcript(tmp_path / "unused.jsonl") as transcript:
        with pytest.raises(ConfigError, match="must be a ws:// or wss:// URL"):
            WsRelay(transcript, "ws-client", "127.0.0.1", 0, "http://127.0.0.1:3001")
        with pytest.raises(ConfigError, match="must be an http:// URL"):
            HttpRelay(transcript, "http-server", "127.0.0.1", 0, "ws://127.0.0.1:8080")


def as_in_a_terminal() -> None:
    """SIGINT at its default disposition in the child, as in a terminal (see test_demo)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_command_line_records_a_session_that_replays(
    tmp_path: pathlib.Path, stop: signal.Signals
) -> None:
    path = tmp_path / "cli.jsonl"
    with WsServer("127.0.0.1", 0, access_token=TOKEN) as bot:
        bot.on("message")(lambda event: bot.send_private_msg(event["user_id"], "pong"))
        argv = ["ws-server", "--listen", "127.0.0.1:0", "--to", bot.url, "-o", str(path)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "onebot_ref.record", *argv], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, encoding="utf-8", env=ENV, cwd=ROOT,
            preexec_fn=as_in_a_terminal,  # noqa: PLW1509
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()
            assert "point the implementation (reverse WS) at 127.0.0.1:" in banner, banner
            port = int(re.search(r"127\.0\.0\.1:(\d+)", banner).group(1))  # type: ignore[union-attr]
            assert f"transcript: {path}" in proc.stdout.readline()
            with fake_for() as fake:
                assert fake.connect_reverse(f"ws://127.0.0.1:{port}/").wait_connected(timeout=10)
                fake.push_message(text="/ping")
                assert fake.wait_for_sent(1, timeout=10)[0]["text"] == "pong"
            proc.send_signal(stop)
            out, err = proc.communicate(timeout=15)
        finally:
            proc.kill()
            proc.wait(5)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        lines = len(path.read_text("utf-8").splitlines())
        assert f"stopped: {lines} lines in {path}" in out
        with FakeOneBot() as fake, WsServer("127.0.0.1", 0) as again:
            again.on("message")(lambda event: again.send_private_msg(event["user_id"], "pong"))
            assert fake.connect_reverse(again.url).wait_connected(timeout=10)
            wait_until(lambda: served(again), 10, "the bot sees the connection")
            assert not fake.replay(path, timeout=5)


def test_the_command_line_names_a_wrong_mode_or_url() -> None:
    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "onebot_ref.record", *argv], capture_output=True, text=True,
            timeout=30, env=ENV, cwd=ROOT, check=False,
        )  # fmt: skip

    before = set(ROOT.iterdir())
    result = run("ws-client", "--listen", "127.0.0.1:0", "--to", "http://127.0.0.1:3000")
    assert result.returncode == 1
    assert result.stderr.startswith("error: --to 'http://127.0.0.1:3000' for ws-client must be")
    assert set(ROOT.iterdir()) == before  # no empty transcript left behind
    result = run("ws-client", "--listen", "127.0.0.1:0", "--to", "ws://127.0.0.1:1/",
                 "--also", "nonsense", "127.0.0.1:0", "ws://127.0.0.1:2/")  # fmt: skip
    assert result.returncode == 2
    assert "--also: mode 'nonsense' is not one of" in result.stderr
    help_text = run("--help").stdout
    assert "录制" in help_text and "Record a session" in help_text


def test_the_bot_answers_the_same_without_the_recorder() -> None:
    # connected() without the recorder: a control for the sessions recorded above.
    with fake_for() as fake, connected(fake, "ws-client"):
        run_script(fake)
        assert [sent["text"] for sent in fake.sent] == ["pong", "you are Alice", "bye"]
