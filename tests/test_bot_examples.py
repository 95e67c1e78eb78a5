"""examples/commands_bot.py and examples/daily_push.py: as a user runs them, and imported."""

import datetime
import importlib.util
import pathlib
import re
import sys
from types import ModuleType

import pytest
from conftest import unused_port, wait_until
from processes import ROOT, Live, run

from onebot_ref.http_client import HttpClient
from onebot_ref.testing import FakeOneBot

EXAMPLES = pathlib.Path(ROOT) / "examples"


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module, as a user's own test would."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_commands_bot_answers_its_commands_offline() -> None:
    result = run(str(EXAMPLES / "commands_bot.py"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "bot: 北京：晴 / sunny, 25°C"
    assert re.fullmatch(r"bot: \[CQ:at,qq=20002\]🎲 [1-6]", lines[1])
    assert lines[2:5] == [
        "bot: 你叫什么？/ What is your name?",
        "bot: 你好，小明！",
        "skipped by a filter: 1",
    ]


@pytest.mark.parametrize("how", ["--url", "--listen"])
def test_commands_bot_against_an_implementation(how: str, no_thread_leak: None) -> None:
    with FakeOneBot() as fake:
        if how == "--url":
            example = Live(str(EXAMPLES / "commands_bot.py"), "--url", fake.start_ws_server())
        else:
            port = unused_port()
            example = Live(str(EXAMPLES / "commands_bot.py"), "--listen", f"127.0.0.1:{port}")
        with example:
            ready = example.wait_for("commands ready")
            if how == "--url":
                wait_until(fake.event_connections, 10, "the example connected")
            else:
                url = re.search(r"ws://\S+/", ready)
                assert url is not None, ready
                assert fake.connect_reverse(url.group()).wait_connected(timeout=10)
            fake.push_message(user_id=20001, text="/天气 上海", group_id=30001)
            assert fake.wait_for_sent(1, timeout=10)[0]["text"] == "上海：晴 / sunny, 25°C"
            code, _out, err = example.stop()
    assert code == 0, err
    assert "Traceback" not in err, err


def test_daily_push_runs_each_day_at_its_time_on_an_injected_clock() -> None:
    daily_push = load("daily_push")
    start = datetime.datetime(2026, 3, 1, 9, 30)  # after today's 08:00: the first is tomorrow
    clock = daily_push.SimulatedClock(start.timestamp())
    with FakeOneBot() as fake, HttpClient(fake.start_http_api(), timeout=5) as bot:
        daily = daily_push.DailyPush(
            bot,
            30001,
            datetime.time(8, 0),
            lambda day: f"day {day:%d}",
            clock=clock,
            sleep=clock.sleep,
        )
        daily.run(days=3)
        sent = fake.wait_for_sent(3)
    assert [datetime.datetime.fromtimestamp(t) for t in daily.pushed] == [
        datetime.datetime(2026, 3, day, 8, 0) for day in (2, 3, 4)
    ]
    assert [s["text"] for s in sent] == ["day 02", "day 03", "day 04"]
    assert [s["group_id"] for s in sent] == [30001] * 3


def test_a_failed_push_is_reported_and_the_next_day_still_comes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    daily_push = load("daily_push")
    clock = daily_push.SimulatedClock(datetime.datetime(2026, 3, 1, 7, 0).timestamp())
    with FakeOneBot() as fake, HttpClient(fake.start_http_api(), timeout=5) as bot:
        daily = daily_push.DailyPush(
            bot, 99999, datetime.time(8, 0), str, clock=clock, sleep=clock.sleep
        )  # a group the account is not in: the implementation refuses each push
        daily.run(days=2)
    assert daily.pushed == []
    assert capsys.readouterr().err.count("push for 2026-03-0") == 2
    assert clock() == datetime.datetime(2026, 3, 2, 8, 0).timestamp()  # it waited for day two
