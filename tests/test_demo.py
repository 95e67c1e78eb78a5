"""The demo and the examples, run as a user runs them: in a subprocess, offline."""

import ast
import http.client
import json
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import unused_port
from processes import ENV, ROOT, Live, as_in_a_terminal, run
from websockets.sync.client import connect

from onebot_ref.testing import FakeOneBot


@pytest.mark.parametrize("mode", ["http-client", "http-server", "ws-client", "ws-server"])
def test_each_demo_mode_echoes_offline(mode: str) -> None:
    result = run("-m", "onebot_ref.demo", mode)
    assert result.returncode == 0, result.stderr
    assert "ok: echoed 2 messages" in result.stdout
    assert "你好, onebot_ref!" in result.stdout  # the transcript shows the echoed text
    assert f"[{mode}]" in result.stdout
    assert "Traceback" not in result.stderr


def test_demo_all_prints_a_summary() -> None:
    result = run(
        "-m", "onebot_ref.demo", "all", "--flavor", "go-cqhttp", "--token", "t", "--secret", "s"
    )
    assert result.returncode == 0, result.stderr
    for mode in ("http-client", "http-server", "ws-client", "ws-server"):
        assert f"== {mode}" in result.stdout
    assert "mode          echoed" in result.stdout


def test_demo_usage_errors_are_clear() -> None:
    result = run("-m", "onebot_ref.demo", "ws-server", "--url", "ws://x")
    assert result.returncode != 0
    assert "--listen" in result.stderr
    result = run("-m", "onebot_ref.demo", "nonsense")
    assert result.returncode == 2


def test_demo_client_mode_against_nothing_fails_with_a_message() -> None:
    port = unused_port()  # nothing listens here
    result = run("-m", "onebot_ref.demo", "http-client", "--url", f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is POSIX-only here")
def test_demo_listen_serves_a_real_peer_and_stops_on_ctrl_c() -> None:
    port = unused_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "onebot_ref.demo", "ws-server", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
        preexec_fn=as_in_a_terminal,  # noqa: PLW1509
    )
    try:
        assert proc.stdout is not None  # PIPE
        assert "running" in proc.stdout.readline()
        with FakeOneBot() as fake:
            assert fake.connect_reverse(f"ws://127.0.0.1:{port}/").wait_connected(timeout=10)
            fake.push_message(text="still there?")
            assert fake.wait_for_sent(1, timeout=10)[0]["text"] == "still there?"
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        _out, err = proc.communicate(timeout=10)
        assert time.monotonic() - started < 5.0  # about 0.1 s when the machine is idle
        assert proc.returncode == 0
        assert "Traceback" not in err
    finally:
        proc.kill()
        proc.wait(5)


EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize(
    "path", [p for p in EXAMPLES if not p.name.startswith("test_")], ids=lambda p: p.name
)
def test_every_example_runs_offline(path: pathlib.Path) -> None:
    result = run(str(path))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.strip()


@pytest.mark.parametrize("mode", ["ws-client", "http-server"])
def test_echo_bot_example_in_other_modes(mode: str) -> None:
    result = run(str(ROOT / "examples" / "echo_bot.py"), mode)
    assert result.returncode == 0, result.stderr
    assert f"{mode} -> pong" in result.stdout


def copied_example(name: str, into: pathlib.Path) -> pathlib.Path:
    """``examples/name`` copied where a user would keep it: outside this checkout, so that
    our setup.cfg (with its ``-n 4`` for the suite) is not the pytest settings it runs under."""
    path = into / name
    path.write_bytes((ROOT / "examples" / name).read_bytes())
    return path


def test_example_pytest_file_passes(tmp_path: pathlib.Path) -> None:
    test_file = copied_example("test_my_bot.py", tmp_path)
    result = run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


# -- live: the demo and the examples against a peer the test plays -----------------------------


def found(pattern: str, text: str) -> re.Match[str]:
    """``re.search``, failing the test with the text when the pattern is not in it."""
    match = re.search(pattern, text)
    assert match, f"no {pattern!r} in {text!r}"
    return match


# An event as an implementation sends it, "message" early so that a cut transcript line shows it.
EVENT = {
    "post_type": "message", "message": "transcript?", "message_type": "private",
    "sub_type": "friend", "time": 1700000000, "self_id": 10001, "message_id": 5,
    "user_id": 20001, "raw_message": "transcript?", "font": 0, "sender": {"user_id": 20001},
}  # fmt: skip


@pytest.mark.parametrize("verbose", [False, True])
def test_demo_ws_server_live_prints_the_transcript(verbose: bool) -> None:
    argv = ["-m", "onebot_ref.demo", "ws-server", "--listen", "127.0.0.1:0"]
    with Live(*argv, *(["--verbose"] if verbose else [])) as demo:
        url = found(r"ws://\S+/", demo.wait_for("running at")).group()
        # websockets plays the implementation: an event in, the bot's call out, our answer in.
        headers = {"X-Self-ID": "10001", "X-Client-Role": "Universal"}
        with connect(url, additional_headers=headers, open_timeout=10) as ws:
            ws.send(json.dumps(EVENT))
            call = json.loads(ws.recv(timeout=10))
            assert call["action"] == "send_private_msg"
            assert call["params"]["message"] == "transcript?"
            ws.send(json.dumps({"status": "ok", "retcode": 0, "data": {"message_id": 7},
                                "echo": call["echo"]}))  # fmt: skip
            demo.wait_for('"message_id":7')
        code, out, err = demo.stop()
    assert code == 0 and "Traceback" not in err
    assert re.search(
        r'onebot → bot  \[ws-server\]  \{"post_type":"message","message":"transcript\?"', out
    )
    assert (
        'bot → onebot  [ws-server]  {"action":"send_private_msg","params":{"user_id":20001' in out
    )
    assert 'onebot → bot  [ws-server]  {"status":"ok","retcode":0,"data":{"message_id":7}' in out
    if verbose:
        assert 'DEBUG onebot_ref.wire: received {"post_type":"message"' in err
        assert 'DEBUG onebot_ref.wire: sent {"action":"send_private_msg"' in err
    else:
        assert "DEBUG" not in err


def test_demo_http_server_live_prints_the_transcript() -> None:
    with Live("-m", "onebot_ref.demo", "http-server", "--listen", "127.0.0.1:0") as demo:
        url = found(r"http://(\S+?):(\d+)/", demo.wait_for("running at"))
        conn = http.client.HTTPConnection(url.group(1), int(url.group(2)), timeout=10)
        body = json.dumps(EVENT).encode()
        conn.request("POST", "/", body, {"Content-Type": "application/json", "X-Self-ID": "10001"})
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["reply"] == "transcript?"
        conn.close()
        demo.wait_for('{"reply":"transcript?"')
        code, out, err = demo.stop()
    assert code == 0 and "Traceback" not in err
    assert 'onebot → bot  [http-server]  {"post_type":"message","message":"transcript?"' in out
    assert 'bot → onebot  [http-server]  {"reply":"transcript?","at_sender":false' in out


def test_demo_ws_client_live_prints_the_transcript(no_thread_leak: None) -> None:
    with FakeOneBot() as fake, Live("-m", "onebot_ref.demo", "ws-client", "--url",
                                    fake.start_ws_server()) as demo:  # fmt: skip
        demo.wait_for("running at")
        fake.push_message(user_id=20001, text="transcript?")
        assert fake.wait_for_sent(1, timeout=10)[0]["text"] == "transcript?"
        demo.wait_for('onebot → bot  [ws-client]  {"status":"ok"')
        code, out, err = demo.stop()
    assert code == 0 and "Traceback" not in err
    assert re.search(
        r'onebot → bot  \[ws-client\]  \{"time":\d+,"self_id":10001,"post_type":"message"', out
    )
    assert (
        'bot → onebot  [ws-client]  {"action":"send_private_msg","params":{"user_id":20001' in out
    )


def test_demo_http_client_live_prints_the_transcript(no_thread_leak: None) -> None:
    with FakeOneBot() as fake:
        result = run("-m", "onebot_ref.demo", "http-client", "--url", fake.start_http_api())
    assert result.returncode == 0, result.stderr
    assert 'bot → onebot  [http-client]  {"action":"get_login_info","params":{}}' in result.stdout
    assert 'onebot → bot  [http-client]  {"status":"ok","retcode":0,"data":{"user_id":10001' in (
        result.stdout
    )


def test_demo_ws_client_waits_for_an_implementation_that_starts_late(no_thread_leak: None) -> None:
    port = unused_port()
    url = f"ws://127.0.0.1:{port}/"
    with Live("-m", "onebot_ref.demo", "ws-client", "--url", url) as demo:
        assert url in demo.wait_for("waiting up to 60 s for an implementation")
        with FakeOneBot() as fake:
            fake.start_ws_server(port)
            demo.wait_for("running at")
            fake.push_message(text="late but here")
            assert fake.wait_for_sent(1, timeout=10)[0]["text"] == "late but here"
            code, _out, err = demo.stop()
    assert code == 0 and "Traceback" not in err


def docstring(path: pathlib.Path) -> str:
    return " ".join((ast.get_docstring(ast.parse(path.read_text("utf-8"))) or "").split())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_says_what_it_does_on_help(path: pathlib.Path) -> None:
    result = run(str(path), "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ")
    assert docstring(path)[:60] in " ".join(result.stdout.split())


def test_example_test_file_runs_its_tests_as_a_script(tmp_path: pathlib.Path) -> None:
    result = run(str(copied_example("test_my_bot.py", tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


@pytest.mark.parametrize("name", ["ws_forward.py", "ws_reverse.py", "http_post.py"])
def test_live_example_serves_then_stops_cleanly_on_ctrl_c(name: str, no_thread_leak: None) -> None:
    path = str(ROOT / "examples" / name)
    with FakeOneBot() as fake:
        if name == "ws_forward.py":
            example = Live(path, "--url", fake.start_ws_server())
        else:
            example = Live(path, "--listen", f"127.0.0.1:{unused_port()}")
        with example:
            ready = example.wait_for("echoing messages")
            url = found(r"(ws|http)://\S+/", ready)
            if name == "ws_reverse.py":
                assert fake.connect_reverse(url.group()).wait_connected(timeout=10)
            elif name == "http_post.py":
                fake.add_http_post(url.group())
            fake.push_message(user_id=20001, text="ping")
            assert fake.wait_for_sent(1, timeout=10)[0]["text"] == "ping"
            code, out, err = example.stop()
    assert code == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert out.rstrip().endswith("stopped")


def test_ctrl_c_stops_the_demo_even_when_the_suite_runs_as_a_background_job() -> None:
    """The suite started by ``pytest &`` (SIGINT ignored, and inherited): Ctrl+C still works."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # what the shell does to `pytest &`
    try:
        with Live("-m", "onebot_ref.demo", "ws-server", "--listen", "127.0.0.1:0") as demo:
            demo.wait_for("running at")
            code, out, err = demo.stop()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 0 and "Traceback" not in err
    assert out.rstrip().endswith("stopped")
