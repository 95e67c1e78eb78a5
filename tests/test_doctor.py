"""The doctor against FakeOneBot: every mode, every flavour, and each fault's diagnosis and fix."""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import unused_port

from onebot_ref import Flavor, _serve, doctor
from onebot_ref.doctor import _checks as session
from onebot_ref.doctor._listeners import bind_failure
from onebot_ref.testing import FakeOneBot
from onebot_ref.testing import _world as fake_world

FLAVORS = ["spec", "go-cqhttp", "napcat"]
FAST = ["--timeout", "1"]


@pytest.fixture(autouse=True)
def not_in_container(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test machine may itself be a container; the warning has its own test.
    monkeypatch.setattr(doctor, "in_container", lambda: False)


@pytest.fixture
def fake(no_thread_leak: None) -> Iterator[FakeOneBot]:
    with FakeOneBot(access_token="tok") as f:
        yield f


def make(flavor: Flavor, **kwargs: Any) -> FakeOneBot:
    kwargs.setdefault("access_token", "tok")
    return FakeOneBot(flavor=flavor, **kwargs)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = doctor.main([*argv, *FAST])
    return code, capsys.readouterr().out


def line(out: str, name: str) -> str:
    """The checklist line of check ``name`` and its two fix lines, as one string."""
    lines = out.splitlines()
    for i, text in enumerate(lines):
        if text[2:].split(" ", 1)[0] == name:
            head = re.sub(r"^(\S) (\S+) +", r"\1 \2  ", text)  # one padding width for all
            return "\n".join([head, *[t for t in lines[i + 1 : i + 3] if t.startswith("  ")]])
    raise AssertionError(f"no {name!r} line in:\n{out}")


class When:
    """Run ``action`` on a thread as soon as ``condition`` holds: the doctor's peer, on cue.

    Instead of a timer that guesses when the doctor is ready; :meth:`stop` gives up
    (the doctor finished first, as it does when it finds a fault).
    """

    def __init__(self, condition: Callable[[], object], action: Callable[[], object]) -> None:
        self.condition = condition
        self.action = action
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="test-when")
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 10
        while not self.stopped.is_set() and time.monotonic() < deadline:
            if self.condition():
                self.action()
                return
            self.stopped.wait(0.01)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(10)


@pytest.fixture(autouse=True)
def bound(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """The ports our servers (the doctor's listeners among them) have bound and listen on."""
    ports: set[int] = set()
    real = _serve.bind

    def bind(host: str, port: int) -> socket.socket:
        listener = real(host, port)
        ports.add(listener.getsockname()[1])
        return listener

    monkeypatch.setattr(_serve, "bind", bind)
    return ports


def count_heartbeats(fake: FakeOneBot) -> list[object]:
    """A list that grows by one with each heartbeat the fake sends on a connection."""
    sent: list[object] = []
    make_one = fake.world.heartbeat

    def heartbeat(interval_ms: int) -> dict[str, Any]:
        sent.append(interval_ms)
        return make_one(interval_ms)

    fake.world.heartbeat = heartbeat  # type: ignore[method-assign]
    return sent


# -- mode 1: --http --------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
def test_http_all_good_in_every_flavour(
    flavor: Flavor, capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    with make(flavor) as fake:
        code, out = run(capsys, "--http", fake.start_http_api(), "--token", "tok")
    assert code == 0, out
    assert line(out, "account").startswith("✓ account") and "10001 (FakeBot)" in out
    assert f"FakeOneBot ({flavor}) 0.1.0, protocol v11; online=True good=True" in out
    assert line(out, "quick-op").startswith("✓")
    assert out.rstrip().endswith("everything works")


@pytest.mark.parametrize("flavor", FLAVORS)
def test_http_wrong_token(
    flavor: Flavor, capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    with make(flavor) as fake:
        code, out = run(capsys, "--http", fake.start_http_api(), "--token", "nope")
    assert code == 1
    check = line(out, "token")
    assert check.startswith("✗ token") and "the token is wrong (403)" in check
    assert "修复: 两边的 token 不一致" in check
    assert "fix: the tokens differ: set --token to the access_token of its HTTP server" in check


@pytest.mark.parametrize(("flavor", "status"), [("spec", 401), ("go-cqhttp", 401), ("napcat", 403)])
def test_http_missing_token(
    flavor: Flavor, status: int, capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    with make(flavor) as fake:
        code, out = run(capsys, "--http", fake.start_http_api())
    assert code == 1
    check = line(out, "token")
    assert f"HTTP {status}: the implementation requires an access token" in check
    assert "fix: add --token with the implementation's access_token" in check


def test_http_token_not_checked_is_a_warning(
    capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    with make("spec", access_token=None) as fake:
        code, out = run(capsys, "--http", fake.start_http_api(), "--token", "tok")
    assert code == 0
    check = line(out, "token")
    assert check.startswith("! token") and "calls succeed without any token" in check
    assert "anyone who reaches the port controls the bot" in check


def test_wrong_port_is_refused(capsys: pytest.CaptureFixture[str], no_thread_leak: None) -> None:
    code, out = run(capsys, "--http", f"http://127.0.0.1:{unused_port()}")
    assert code == 1
    check = line(out, "tcp")
    assert "refused the connection: nothing listens on that port" in check
    assert "fix: make sure the implementation runs with this server enabled" in check
    assert "修复: 确认 OneBot 实现正在运行" in check


def test_unresolvable_host(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "--http", "http://no-such-host.invalid:5700")
    assert code == 1
    assert "cannot resolve 'no-such-host.invalid'" in line(out, "tcp")
    assert "compose network" in line(out, "tcp")


def test_http_url_given_a_websocket_port(
    fake: FakeOneBot, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "--http", fake.start_ws_server().replace("ws", "http"))
    assert code == 1
    check = line(out, "endpoint")
    assert "is a WebSocket server" in check and "check it with --ws ws://" in check


def test_http_wrong_path_finds_the_right_one(
    capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    with make("spec") as fake:
        url = fake.start_http_api()
        code, out = run(capsys, "--http", url + "/onebot", "--token", "tok")
    assert code == 1
    check = line(out, "path")
    assert f"{url}/onebot/get_login_info answers HTTP 404, but {url}/get_login_info works" in check
    assert f"fix: use {url} as the URL." in check


def test_http_pointed_at_a_bot_receiver(
    capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    from onebot_ref.http_server import HttpServer

    with HttpServer("127.0.0.1", 0) as bot:
        code, out = run(capsys, "--http", bot.url)
    assert code == 1
    assert "is a bot's HTTP POST receiver, not an implementation" in line(out, "endpoint")
    assert "roles reversed" in line(out, "endpoint")


# -- mode 3: --ws ----------------------------------------------------------------------------


def ws_run(
    capsys: pytest.CaptureFixture[str], fake: FakeOneBot, *argv: str, wait: str = "1.5"
) -> tuple[int, str]:
    """Run --ws against the fake's forward-WS server while it pushes one message."""
    url = fake.start_ws_server()
    # The doctor connects twice: a handshake probe, then its session; once the session is
    # in, one message.
    joins: list[object] = []
    server = fake.ws_server
    assert server is not None
    join = server.joined
    # a lambda that records, then joins: mypy flags the None of append()
    server.joined = lambda conn: (joins.append(conn), join(conn))  # type: ignore[func-returns-value]
    push = When(
        lambda: len(joins) >= 2 and fake.event_connections(),
        lambda: fake.push_message(text="hi [CQ:face,id=1]"),
    )
    try:
        return run(capsys, "--ws", url, "--wait", wait, *argv)
    finally:
        push.stop()


@pytest.mark.parametrize("flavor", FLAVORS)
def test_ws_all_good_in_every_flavour(
    flavor: Flavor, capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    with make(flavor, heartbeat_interval=0.1) as fake:
        code, out = ws_run(capsys, fake, "--token", "tok")
    assert code == 0, out
    assert line(out, "handshake").startswith("✓ handshake  101 Switching Protocols")
    assert "✓ echo" in out and "returned unchanged (str, str, dict, str)" in out
    assert line(out, "lifecycle").startswith("✓")
    assert line(out, "heartbeat").startswith("✓ heartbeat  interval 100 ms, observed every 0.1")
    fmt = "array" if flavor == "napcat" else "string"
    assert line(out, "format") == f"✓ format  {fmt} (from 1 message events)"


def test_ws_url_given_the_http_api_port(
    fake: FakeOneBot, capsys: pytest.CaptureFixture[str]
) -> None:
    url = fake.start_http_api().replace("http", "ws")
    code, out = run(capsys, "--ws", url, "--token", "tok")
    assert code == 1
    check = line(out, "handshake")
    assert "instead of 101 Switching Protocols; this is the OneBot HTTP API port" in check
    assert "fix: this is the HTTP API port: check it with --http" in check


def test_ws_url_given_a_web_page(capsys: pytest.CaptureFixture[str], no_thread_leak: None) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class WebUI(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>NapCat WebUI</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), WebUI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        code, out = run(capsys, "--ws", f"ws://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert code == 1
    assert "HTTP 200 instead of 101 Switching Protocols; a web page answers" in out
    assert "NapCat's WebUI" in line(out, "handshake")


def test_ws_wrong_path_finds_the_right_one(
    capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    with make("spec") as fake:
        url = fake.start_ws_server()
        code, out = run(capsys, "--ws", url + "onebot/v11", "--token", "tok")
    assert code == 1
    check = line(out, "path")
    assert f"HTTP 404 instead of 101 Switching Protocols, but {url} accepts" in check
    assert f"fix: use {url} as the URL." in check


@pytest.mark.parametrize(("given", "status", "words"), [
    ("nope", 403, "the token is wrong (403)"),
    (None, 401, "requires an access token"),
])  # fmt: skip
def test_ws_token_refused_at_the_handshake(
    given: str | None,
    status: int,
    words: str,
    capsys: pytest.CaptureFixture[str],
    no_thread_leak: None,
) -> None:
    with make("go-cqhttp") as fake:
        argv = ["--token", given] if given else []
        code, out = run(capsys, "--ws", fake.start_ws_server(), *argv)
    assert code == 1
    assert f"HTTP {status}" in line(out, "token") and words in line(out, "token")


def test_ws_napcat_refuses_in_band_with_1403(
    capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    with make("napcat") as fake:
        code, out = run(capsys, "--ws", fake.start_ws_server(), "--token", "nope", "--wait", "1")
    assert code == 1
    assert line(out, "handshake").startswith("✓")  # NapCat upgrades first...
    check = line(out, "token")  # ...then says no
    assert "upgraded, then refused our token in-band: retcode 1403 token验证失败" in check
    assert "fix: the tokens differ: set --token to the token (access_token)" in check


@pytest.mark.parametrize(("fault", "came_back"), [
    ("number", "'20240607' (str) came back as 20240607"),
    ("mangle", "'doctor-1' (str) came back as 'doctor-1-mangled'"),
    ("omit", "'doctor-1' (str) came back as None"),
])  # fmt: skip
def test_ws_mangled_echo(
    fault: str, came_back: str, capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    with make("spec") as fake:
        fake.faults.echo = fault
        code, out = ws_run(capsys, fake, "--token", "tok", wait="0.6")
    assert code == 1
    check = line(out, "echo")
    assert check.startswith("✗ echo") and came_back in check
    assert "fix: the implementation does not return echo unchanged" in check
    assert "修复: 实现没有原样返回 echo" in check


def test_ws_no_heartbeat_and_no_lifecycle_are_warnings(
    capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    with make("spec", heartbeat_interval=0.1) as fake:
        fake.faults.heartbeats = False
        fake.faults.lifecycle = False
        code, out = ws_run(capsys, fake, "--token", "tok", wait="0.8")
    assert code == 0, out
    check = line(out, "heartbeat")
    assert check.startswith("! heartbeat  no heartbeat in 0.8 s")
    assert "fix: enable heartbeats in the implementation" in check
    assert line(out, "lifecycle").startswith("! lifecycle  no lifecycle event")
    assert "NoneBot's forward WebSocket waits for it" in line(out, "lifecycle")


def test_a_late_wake_up_is_not_reported_as_a_longer_wait(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, no_thread_leak: None
) -> None:
    # Under load (CI, 3.10) the doctor's thread woke 0.1 s after its --wait
    # deadline and reported "no heartbeat in 0.9 s" for --wait 0.8. The window
    # it watched is --wait; the wake-up is played late here, on purpose.
    original = session.Inbox.wait

    def late(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        time.sleep(0.3)  # the late wake-up this test is about, not a wait for a condition
        return result

    monkeypatch.setattr(session.Inbox, "wait", late)
    with make("spec", heartbeat_interval=0.1) as fake:
        fake.faults.heartbeats = False
        code, out = ws_run(capsys, fake, "--token", "tok", wait="0.5")
    assert code == 0, out
    assert line(out, "heartbeat").startswith("! heartbeat  no heartbeat in 0.5 s"), out


def test_ws_heartbeats_that_stop(capsys: pytest.CaptureFixture[str], no_thread_leak: None) -> None:
    with make("spec", heartbeat_interval=0.1) as fake:
        url = fake.start_ws_server()
        sent = count_heartbeats(fake)  # heartbeats go only to connections: the doctor's
        stop = When(lambda: len(sent) >= 3, lambda: setattr(fake.faults, "heartbeats", False))
        code, out = run(capsys, "--ws", url, "--token", "tok", "--wait", "1.5")
        stop.stop()
    assert code == 1
    check = line(out, "heartbeat")
    assert check.startswith("✗ heartbeat  heartbeats stopped: none for")
    assert "half-open" in check


def test_ws_dropped_call(capsys: pytest.CaptureFixture[str], no_thread_leak: None) -> None:
    with make("spec") as fake:
        fake.faults.drop = 1
        code, out = ws_run(capsys, fake, "--token", "tok", wait="0.6")
    assert code == 1
    check = line(out, "account")
    assert "get_login_info did not succeed: no answer in 1 s" in check
    assert "make sure QQ is logged in" in check


def test_ws_quick_operation_unsupported(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, no_thread_leak: None
) -> None:
    monkeypatch.delitem(fake_world.ACTIONS, ".handle_quick_operation")
    with make("go-cqhttp") as fake:
        code, out = ws_run(capsys, fake, "--token", "tok", wait="0.6")
    check = line(out, "quick-op")
    assert check.startswith("! quick-op  .handle_quick_operation unsupported: status 'failed'")
    assert "fix: this implementation lacks quick operations: use send_msg" in check
    assert code == 0


def test_ws_event_only_endpoint(capsys: pytest.CaptureFixture[str], no_thread_leak: None) -> None:
    with make("spec") as fake:
        url = fake.start_ws_server() + "event"
        code, out = run(capsys, "--ws", url, "--token", "tok", "--wait", "0.6")
    assert code == 0
    assert line(out, "endpoint").startswith("! endpoint  /event carries events only")
    assert "account" not in out  # no calls on an event-only connection


def test_ws_onebot_12_implementation(
    capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    """nonebot-plugin-all4one speaks OneBot 12: one failed check that says so, not five."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.server import ServerConnection, serve

    connect = {  # OneBot 12 meta.connect, the first event on every WebSocket
        "id": "1", "time": 1632847927.6, "type": "meta", "detail_type": "connect",
        "sub_type": "", "version": {"impl": "nonebot-plugin-all4one", "onebot_version": "12"},
    }  # fmt: skip

    def handle(conn: ServerConnection) -> None:
        try:
            conn.send(json.dumps(connect))
            for message in conn:
                echo = json.loads(message).get("echo")
                conn.send(json.dumps({"status": "failed", "retcode": 10101, "data": None,
                                      "message": "Who Am I", "echo": echo}))  # fmt: skip
        except ConnectionClosed:
            pass

    server = serve(handle, "127.0.0.1", 0, ping_interval=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
        code, out = run(capsys, "--ws", url, "--wait", "1")
    finally:
        server.shutdown()
        thread.join(5)
    assert code == 1
    check = line(out, "version")
    assert "speaks OneBot 12 (nonebot-plugin-all4one), not OneBot 11" in check
    assert "修复: 这是 OneBot 12 实现，onebot_ref 只支持 OneBot 11" in check
    assert "fix: this is a OneBot 12 implementation and onebot_ref speaks OneBot 11 only" in check
    assert "account" not in out  # no misleading "get_login_info did not succeed"


# -- mode 2: --listen-http -------------------------------------------------------------------


def listen_http(
    capsys: pytest.CaptureFixture[str],
    fake: FakeOneBot,
    bound: set[int],
    *argv: str,
    secret: str | None,
    wait: str = "0.7",
) -> tuple[int, str]:
    port = unused_port()
    fake.add_http_post(f"http://127.0.0.1:{port}/", secret=secret)

    def post() -> None:
        fake.push(fake.lifecycle_event())
        fake.push_message(text="hi")

    poster = When(lambda: port in bound, post)  # once the doctor listens
    try:
        return run(capsys, "--listen-http", f"127.0.0.1:{port}", "--wait", wait, *argv)
    finally:
        poster.stop()


@pytest.mark.parametrize("flavor", FLAVORS)
def test_listen_http_signed_in_every_flavour(
    flavor: Flavor, capsys: pytest.CaptureFixture[str], no_thread_leak: None, bound: set[int]
) -> None:
    with make(flavor) as fake:
        code, out = listen_http(capsys, fake, bound, "--secret", "s3", secret="s3")
    assert code == 0, out
    assert "✓ connect" in out and "2 POSTs to ['/']" in out
    assert "X-Self-ID: 10001" in line(out, "x-self-id")
    assert "X-Signature valid on all 2 POSTs (HMAC-SHA1)" in line(out, "signature")
    assert line(out, "format").startswith("✓")


def test_listen_http_unsigned_with_a_secret(
    fake: FakeOneBot, capsys: pytest.CaptureFixture[str], bound: set[int]
) -> None:
    code, out = listen_http(capsys, fake, bound, "--secret", "s3", secret=None)
    assert code == 1
    check = line(out, "signature")
    assert "2 of 2 POSTs are unsigned although --secret is set" in check
    assert (
        "fix: the implementation did not sign: set the same secret in its HTTP POST config" in check
    )


def test_listen_http_wrong_secret(
    fake: FakeOneBot, capsys: pytest.CaptureFixture[str], bound: set[int]
) -> None:
    code, out = listen_http(capsys, fake, bound, "--secret", "s3", secret="other")
    assert code == 1
    assert "X-Signature does not match for 2 of 2 POSTs" in line(out, "signature")


def test_listen_http_signed_but_no_secret_given(
    fake: FakeOneBot, capsys: pytest.CaptureFixture[str], bound: set[int]
) -> None:
    code, out = listen_http(capsys, fake, bound, secret="s3")
    assert code == 0
    assert line(out, "signature").startswith("! signature  POSTs carry X-Signature")


def test_listen_http_nothing_arrives(
    capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    port = unused_port()
    code, out = run(capsys, "--listen-http", f"127.0.0.1:{port}", "--wait", "0.3")
    assert code == 1
    check = line(out, "connect")
    assert f"no HTTP POST arrived at http://127.0.0.1:{port}/ in 0.3 s" in check
    assert (
        f"fix: set the implementation's HTTP POST (HTTP client) URL to http://127.0.0.1:{port}/"
        in check
    )


def test_listen_on_the_implementations_own_port(
    fake: FakeOneBot, capsys: pytest.CaptureFixture[str]
) -> None:
    """The classic: the POST target was given the port of the implementation's own server."""
    port = int(fake.start_http_api().rsplit(":", 1)[1])
    code, out = run(capsys, "--listen-http", f"127.0.0.1:{port}", "--wait", "0.3")
    assert code == 1
    check = line(out, "bind")
    assert f"127.0.0.1:{port} is already in use; it answers HTTP" in check
    assert "its own server and its POST / reverse-WS target were given the same port" in check


# -- mode 4: --listen-ws ---------------------------------------------------------------------


def listen_ws(
    capsys: pytest.CaptureFixture[str],
    fake: FakeOneBot,
    bound: set[int],
    *argv: str,
    wait: str = "1.5",
    split: bool = False,
) -> tuple[int, str]:
    port = unused_port()
    url = f"ws://127.0.0.1:{port}/"

    def dial() -> None:
        if split:
            fake.connect_reverse(api_url=url, event_url=url, reconnect_interval=0.2)
        else:
            fake.connect_reverse(url, reconnect_interval=0.2)

    dialler = When(lambda: port in bound, dial)  # once the doctor listens
    push = When(fake.event_connections, lambda: fake.push_message(text="hi"))  # once it is in
    try:
        return run(capsys, "--listen-ws", f"127.0.0.1:{port}", "--wait", wait, *argv)
    finally:
        dialler.stop()
        push.stop()


@pytest.mark.parametrize(("flavor", "scheme"), [
    ("spec", "Bearer"), ("go-cqhttp", "Token"), ("napcat", "Bearer"),
])  # fmt: skip
def test_listen_ws_in_every_flavour(
    flavor: Flavor,
    scheme: str,
    capsys: pytest.CaptureFixture[str],
    no_thread_leak: None,
    bound: set[int],
) -> None:
    with make(flavor, heartbeat_interval=0.1) as fake:
        code, out = listen_ws(capsys, fake, bound, "--token", "tok")
    assert code == 0, out
    assert "X-Self-ID: 10001" in line(out, "x-self-id")
    assert "X-Client-Role: Universal" in line(out, "x-client-role")
    assert "✓ token" in out and f"accepted ({scheme})" in line(out, "token")
    assert "returned unchanged" in line(out, "echo")
    assert line(out, "heartbeat").startswith("✓")


def test_listen_ws_split_api_and_event(
    capsys: pytest.CaptureFixture[str], no_thread_leak: None, bound: set[int]
) -> None:
    with make("spec", heartbeat_interval=0.1) as fake:
        code, out = listen_ws(capsys, fake, bound, "--token", "tok", split=True)
    assert code == 0, out
    assert line(out, "connect").startswith("✓ connect  ")
    assert "Event + API" in out or "API + Event" in out
    assert "10001 (FakeBot)" in line(out, "account")


def test_listen_ws_wrong_token(
    capsys: pytest.CaptureFixture[str], no_thread_leak: None, bound: set[int]
) -> None:
    with make("spec") as fake:
        code, out = listen_ws(capsys, fake, bound, "--token", "other", wait="0.8")
    assert code == 1
    check = line(out, "token")
    assert (
        "connected but was refused: wrong access token to…(3 chars), expected ot…(5 chars)" in check
    )
    assert "fix: set the reverse WebSocket's token (access_token) in the implementation" in check


def test_listen_ws_port_in_use(capsys: pytest.CaptureFixture[str], no_thread_leak: None) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, out = run(capsys, "--listen-ws", f"127.0.0.1:{port}", "--wait", "0.3")
    assert code == 1
    assert f"127.0.0.1:{port} is already in use" in line(out, "bind")
    assert "fix: pick another port" in line(out, "bind")


# -- translations, environment, output -------------------------------------------------------


class WinError(OSError):
    winerror = 10013


def test_windows_excluded_port_range_is_explained() -> None:
    check = bind_failure(WinError(13, "An attempt was made to access a socket"), "0.0.0.0", 5700)
    assert "WinError 10013, the port is in a range Windows reserves" in check.detail
    assert "netsh interface ipv4 show excludedportrange protocol=tcp" in check.fix_en


def test_permission_denied_is_explained() -> None:
    check = bind_failure(PermissionError(13, "Permission denied"), "0.0.0.0", 80)
    assert "permission denied" in check.detail and "above 1024" in check.fix_en


def test_loopback_inside_a_container_warns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, no_thread_leak: None
) -> None:
    monkeypatch.setattr(doctor, "in_container", lambda: True)
    code, out = run(capsys, "--listen-http", f"127.0.0.1:{unused_port()}", "--wait", "0.1")
    assert code == 1  # nothing arrived
    assert "! container" in out and "listen on 0.0.0.0" in line(out, "container")
    code, out = run(capsys, "--http", f"http://localhost:{unused_port()}")
    assert code == 1
    assert "localhost inside a container is this container" in line(out, "container")
    assert "host.docker.internal" in line(out, "container")


def test_json_output(capsys: pytest.CaptureFixture[str], no_thread_leak: None) -> None:
    with make("napcat") as fake:
        code, out = run(capsys, "--http", fake.start_http_api(), "--token", "nope", "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False and report["mode"] == "--http"
    token = next(c for c in report["checks"] if c["name"] == "token")
    assert token["status"] == "fail" and token["fix_zh"] and token["fix_en"]


def test_bad_url_is_a_failure_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "--ws", "http://127.0.0.1:1/")
    assert code == 1 and "is not a ws URL" in out


def test_subprocess_against_fake_with_a_wrong_token(no_thread_leak: None) -> None:
    with make("spec") as fake:
        url = fake.start_http_api()
        env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
        proc = subprocess.run(
            [sys.executable, "-m", "onebot_ref.doctor", "--http", url, "--token", "nope"],
            capture_output=True, text=True, encoding="utf-8", timeout=30, env=env, check=False,
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "✗ token" in proc.stdout and "the token is wrong (403)" in proc.stdout
    assert "fix: the tokens differ" in proc.stdout


# -- the container warning only where it explains a failure ------------------------------------


def test_loopback_that_works_in_a_container_is_not_warned_about(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_thread_leak: None,
    bound: set[int],
) -> None:
    # This machine is a container (/.dockerenv) and the fake shares it: a loopback connection
    # that works proves both sides share the network namespace, so there is nothing to warn.
    monkeypatch.setattr(doctor, "in_container", lambda: True)
    with make("spec") as fake:
        code, out = run(capsys, "--http", fake.start_http_api(), "--token", "tok")
        assert code == 0, out
        assert "container" not in out
        code, out = run(capsys, "--ws", fake.start_ws_server(), "--token", "tok", "--wait", "0.3")
        assert code == 0, out
        assert "container" not in out
    with make("spec") as fake:
        code, out = listen_ws(capsys, fake, bound, "--token", "tok", wait="0.8")
    assert line(out, "connect").startswith("✓")
    assert "container" not in out


def test_loopback_that_fails_in_a_container_still_warns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, no_thread_leak: None
) -> None:
    monkeypatch.setattr(doctor, "in_container", lambda: True)
    code, out = run(capsys, "--ws", f"ws://127.0.0.1:{unused_port()}/")
    assert code == 1 and line(out, "tcp").startswith("✗")
    assert "127.0.0.1 inside a container is this container" in line(out, "container")
    monkeypatch.setattr(doctor, "in_container", lambda: False)  # a plain machine: no warning
    code, out = run(capsys, "--ws", f"ws://127.0.0.1:{unused_port()}/")
    assert code == 1 and "container" not in out


# -- no --token at all: say so, not "the tokens differ" ----------------------------------------


def test_ws_in_band_refusal_with_no_token_given(
    capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    with make("napcat") as fake:  # NapCat upgrades, then answers retcode 1403
        code, out = run(capsys, "--ws", fake.start_ws_server(), "--wait", "1")
    assert code == 1
    check = line(out, "token")
    assert "refused in-band (retcode 1403 token验证失败)" in check
    assert "requires an access token and you gave no --token" in check
    assert "修复: 加上 --token" in check and "fix: add --token" in check
    assert "differ" not in out


@pytest.mark.parametrize(("flavor", "mode"), [("napcat", "--http"), ("go-cqhttp", "--ws")])
def test_refusal_with_no_token_given(
    flavor: Flavor, mode: str, capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    with make(flavor) as fake:
        url = fake.start_http_api() if mode == "--http" else fake.start_ws_server()
        code, out = run(capsys, mode, url)
    assert code == 1
    check = line(out, "token")
    assert "requires an access token and you gave no --token" in check
    assert "fix: add --token" in check and "differ" not in out


@pytest.mark.parametrize(
    "interval", [10**400, True, "5000", float("nan"), -1, 0], ids=lambda v: repr(v)[:12]
)
def test_a_heartbeat_interval_no_timer_can_use_is_reported_not_raised(interval: Any) -> None:
    """The doctor reads intervals with the bots' own rule (10**400 raised OverflowError)."""
    beat = {"post_type": "meta_event", "meta_event_type": "heartbeat", "interval": interval}
    check = session._check_heartbeat([(time.monotonic(), beat)], 1.0)
    if interval == 10**400:  # clamped to a day, as the bots clamp it
        assert check.status == "ok" and "86400000 ms" in check.detail
    else:
        assert check.status == "warn" and "no usable interval" in check.detail


def test_the_doctor_takes_a_mode_with_url_or_listen_as_the_demo_does(
    capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    """`MODE --url/--listen` (the demo's words) and the one-flag spellings give one report."""
    with FakeOneBot(access_token="tok") as fake:
        url = fake.start_http_api()
        code, by_mode = run(capsys, "http-client", "--url", url, "--token", "tok", "--json")
        assert code == 0
        code, by_flag = run(capsys, "--http", url, "--token", "tok", "--json")
        assert code == 0
    assert _statuses(by_mode) == _statuses(by_flag) and _statuses(by_mode)


def _statuses(out: str) -> list[tuple[str, str]]:
    return [(c["name"], c["status"]) for c in json.loads(out)["checks"]]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["ws-client"], "needs --url"),
        (["ws-server", "--url", "ws://x/"], "needs --listen"),
        (["ws-client", "--url", "ws://x/", "--http", "http://x"], "give a mode"),
        ([], "give a mode"),
    ],
)
def test_a_mode_without_its_address_is_a_usage_error(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        doctor.main(argv)
    assert info.value.code == 2 and words in capsys.readouterr().err
