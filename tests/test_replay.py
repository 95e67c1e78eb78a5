"""FakeOneBot.replay: a recorded session played to a bot in any mode, and the diff it reports."""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from sessions import MODES, TOKEN, behave, connected, fake_for, record_session

from onebot_ref.errors import ConfigError, DecodeError, NotConnected
from onebot_ref.testing import Call, FakeOneBot
from onebot_ref.ws_client import WsClient

ROOT = pathlib.Path(__file__).parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
CLI = [sys.executable, "-m", "onebot_ref.testing"]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    """The conversation recorded once in each mode, through the recorder."""
    paths = {}
    for mode in MODES:
        path = tmp_path_factory.mktemp("record") / f"{mode}.jsonl"
        assert record_session(mode, path) == ["pong", "you are Alice", "bye"]
        paths[mode] = path
    return paths


def replay_world() -> FakeOneBot:
    """A fake whose world differs from the recorded one: only recorded answers say "Alice"."""
    fake = fake_for()
    fake.world.friends[20002]["nickname"] = "Bob"
    return fake


@pytest.mark.parametrize("recorded", MODES)
@pytest.mark.parametrize("mode", MODES)
def test_replay_to_the_same_bot_in_any_mode_has_no_diff(
    recordings: dict[str, pathlib.Path], recorded: str, mode: str
) -> None:
    with replay_world() as fake:
        with connected(fake, mode):
            diff = fake.replay(recordings[recorded], timeout=5)
        assert not diff, str(diff)
        assert str(diff) == "the bot did as recorded: 4 call(s) after 3 event(s)"
        # get_stranger_info was answered from the recording, not by this world ("Bob").
        assert [sent["text"] for sent in fake.sent] == ["pong", "you are Alice", "bye"]


@pytest.mark.parametrize("mode", MODES)
def test_replay_to_a_changed_bot_reports_what_it_did_differently(
    recordings: dict[str, pathlib.Path], mode: str
) -> None:
    with replay_world() as fake:
        with connected(fake, mode, changed=True):
            diff = fake.replay(recordings["ws-server"], timeout=0.5)
    assert diff
    ping = Call(1, "send_private_msg", {"user_id": 20001, "message": "pong", "auto_escape": False})
    assert [pair[0] for pair in diff.changed] == [ping]
    assert diff.changed[0][1].params["message"] == "PONG"
    assert diff.extra == [Call(2, "get_status", {})]
    bye = Call(3, "send_private_msg", {"user_id": 20001, "message": "bye", "auto_escape": False})
    assert diff.missing == [bye]
    text = str(diff)
    assert text.splitlines() == [
        "the bot did 3 thing(s) differently from the recording:",
        "  after event 1 (message.private.friend from 20001: '/ping'): changed send_private_msg: "
        'recorded {"auto_escape":false,"message":"pong","user_id":20001}, '
        'now {"auto_escape":false,"message":"PONG","user_id":20001}',
        "  after event 2 (message.private.friend from 20002: '/who'): extra   get_status {}",
        "  after event 3 (message.private.friend from 20001: '/bye'): missing send_private_msg "
        '{"auto_escape":false,"message":"bye","user_id":20001}',
    ]


def test_a_call_the_recording_has_no_answer_for_gets_the_worlds(
    recordings: dict[str, pathlib.Path],
) -> None:
    entries = [json.loads(line) for line in recordings["ws-client"].read_text("utf-8").splitlines()]
    # The recording's get_stranger_info asked about 20002; this one asks about 20001.
    for entry in entries:
        data = entry.get("data")
        if isinstance(data, dict) and data.get("action") == "get_stranger_info":
            data["params"]["user_id"] = 20002
        if isinstance(data, dict) and data.get("raw_message") == "/who":
            data["user_id"] = 20001
    with replay_world() as fake:
        with connected(fake, "ws-client"):
            diff = fake.replay(entries, timeout=0.5)
        assert [sent["text"] for sent in fake.sent][1] == "you are 小明"  # the world's answer
    assert [(want.params, made.params) for want, made in diff.changed] == [
        ({"user_id": 20002, "no_cache": False}, {"user_id": 20001, "no_cache": False}),
        (
            {"user_id": 20002, "message": "you are Alice", "auto_escape": False},
            {"user_id": 20001, "message": "you are 小明", "auto_escape": False},
        ),
    ]
    assert not diff.missing and not diff.extra


def test_a_quick_operation_counts_as_a_call(tmp_path: pathlib.Path) -> None:
    event = {"post_type": "message", "message_type": "private", "sub_type": "friend",
             "user_id": 20001, "message": "hi", "raw_message": "hi", "self_id": 10001}  # fmt: skip
    entries = [
        {"mode": "http-server", "conn": 1, "dir": "onebot → bot", "kind": "request",
         "method": "POST", "target": "/", "data": event},
        {"mode": "http-server", "conn": 1, "dir": "bot → onebot", "kind": "response",
         "status": 200, "data": {"reply": "hello"}},
    ]  # fmt: skip
    from onebot_ref.http_server import HttpServer

    with FakeOneBot() as fake, HttpServer("127.0.0.1", 0) as bot:
        bot.on("message")(lambda event: {"reply": "HELLO"})
        fake.add_http_post(bot.url)
        diff = fake.replay(entries, timeout=2)
    assert [(want.action, want.params, made.params) for want, made in diff.changed] == [
        (".handle_quick_operation", {"operation": {"reply": "hello"}},
         {"operation": {"reply": "HELLO"}}),
    ]  # fmt: skip


def test_a_file_that_is_not_a_transcript_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text('{"kind": "message", "dir": "onebot → bot"}\nnot json\n', "utf-8")
    with FakeOneBot() as fake:
        with pytest.raises(DecodeError, match=r"line 2 of .* is not JSON"):
            fake.replay(path)
        with pytest.raises(DecodeError, match="entry 1 has no kind"):
            fake.replay([{"post_type": "message"}])


def test_replay_with_no_bot_connected_says_so(recordings: dict[str, pathlib.Path]) -> None:
    with FakeOneBot() as fake:
        with pytest.raises(NotConnected, match="no bot is connected to this FakeOneBot"):
            fake.replay(recordings["ws-client"])


def test_replay_of_another_account_names_the_self_id_to_use(
    recordings: dict[str, pathlib.Path],
) -> None:
    with FakeOneBot(self_id=3332627962) as fake:
        with pytest.raises(ConfigError, match=r"make it FakeOneBot\(self_id=10001\)"):
            fake.replay(recordings["ws-client"])


@pytest.mark.parametrize("changed", [False, True], ids=["same-bot", "changed-bot"])
def test_the_command_line_replays_a_recording_and_exits_with_the_diff(
    recordings: dict[str, pathlib.Path], changed: bool
) -> None:
    argv = ["--ws-server", "127.0.0.1:0", "--token", TOKEN, "--replay", str(recordings["http"]),
            "--replay-timeout", "0.5"]  # fmt: skip
    proc = subprocess.Popen(
        [*CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        encoding="utf-8", env=ENV, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(3)]  # the account, "point", the URL
        assert "forward WS" in banner[2], banner
        url = banner[2].split()[2]
        bot = WsClient(url, access_token=TOKEN)
        bot.on("message")(lambda event: behave(bot, event, changed))
        with bot:
            out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait(5)
    assert "Traceback" not in err
    if changed:
        assert proc.returncode == 1
        assert "the bot did 3 thing(s) differently from the recording:" in out
        assert "after event 3 (message.private.friend from 20001: '/bye'): missing" in out
    else:
        assert proc.returncode == 0, out + err
        assert "the bot did as recorded: 4 call(s) after 3 event(s)" in out


def test_the_command_line_names_the_account_to_replay_as(
    recordings: dict[str, pathlib.Path],
) -> None:
    argv = ["--post-to", "http://127.0.0.1:9/", "--self-id", "3332627962", "--replay",
            str(recordings["ws-client"])]  # fmt: skip
    result = subprocess.run(
        [*CLI, *argv], capture_output=True, text=True, encoding="utf-8", env=ENV, cwd=ROOT,
        timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "error: replay: the recording is of account 10001" in result.stderr
    assert "--self-id 10001" in result.stderr
