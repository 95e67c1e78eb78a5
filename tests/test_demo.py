"""The demo and the examples, run as a user runs them: in a subprocess, offline."""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from onebot_ref.fake_onebot import FakeOneBot

ROOT = pathlib.Path(__file__).parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}


def run(*args, timeout=60):
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.parametrize("mode", ["http-client", "http-server", "ws-client", "ws-server"])
def test_each_demo_mode_echoes_offline(mode):
    result = run("-m", "onebot_ref.demo", mode)
    assert result.returncode == 0, result.stderr
    assert "ok: echoed 2 messages" in result.stdout
    assert "你好, onebot_ref!" in result.stdout  # the transcript shows the echoed text
    assert f"[{mode}]" in result.stdout
    assert "Traceback" not in result.stderr


def test_demo_all_prints_a_summary():
    result = run(
        "-m", "onebot_ref.demo", "all", "--flavor", "go-cqhttp", "--token", "t", "--secret", "s"
    )
    assert result.returncode == 0, result.stderr
    for mode in ("http-client", "http-server", "ws-client", "ws-server"):
        assert f"== {mode}" in result.stdout
    assert "mode          echoed" in result.stdout


def test_demo_usage_errors_are_clear():
    result = run("-m", "onebot_ref.demo", "ws-server", "--url", "ws://x")
    assert result.returncode != 0
    assert "--listen" in result.stderr
    result = run("-m", "onebot_ref.demo", "nonsense")
    assert result.returncode == 2


def test_demo_client_mode_against_nothing_fails_with_a_message():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    result = run("-m", "onebot_ref.demo", "http-client", "--url", f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child is POSIX-only here")
def test_demo_listen_serves_a_real_peer_and_stops_on_ctrl_c():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "onebot_ref.demo", "ws-server", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
    )
    try:
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
def test_every_example_runs_offline(path):
    result = run(str(path))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.strip()


@pytest.mark.parametrize("mode", ["ws-client", "http-server"])
def test_echo_bot_example_in_other_modes(mode):
    result = run(str(ROOT / "examples" / "echo_bot.py"), mode)
    assert result.returncode == 0, result.stderr
    assert f"{mode} -> pong" in result.stdout


def test_example_pytest_file_passes():
    result = run(
        "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "examples" / "test_my_bot.py")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
