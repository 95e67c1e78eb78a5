#!/usr/bin/env python3
"""A push to a group every day at a fixed time, scheduled with the standard library's sched.

Offline, three simulated days pass against FakeOneBot in an instant (the clock is
injected, as a test injects it). With --url http://HOST:PORT (the implementation's HTTP
API: no server, no event loop, as from cron) it waits for the real time and pushes to
--group every day at --at until Ctrl+C. Shortcuts: a day missed while the machine slept
is not caught up, and the time is the machine's local time.
"""

import argparse
import datetime
import sched
import sys
import time
from collections.abc import Callable

from onebot_ref import OneBotApi, OneBotError
from onebot_ref.http_client import HttpClient
from onebot_ref.testing import FakeOneBot


def next_run(now: float, at: datetime.time) -> float:
    """The timestamp of the next ``at`` (local time) strictly after ``now``."""
    day = datetime.datetime.fromtimestamp(now).date()
    run = datetime.datetime.combine(day, at).timestamp()
    if run <= now:
        run = datetime.datetime.combine(day + datetime.timedelta(days=1), at).timestamp()
    return run


class DailyPush:
    """Sends ``message(date)`` to ``group_id`` at ``at`` each day (clock and sleep injectable)."""

    def __init__(
        self,
        bot: OneBotApi,
        group_id: int,
        at: datetime.time,
        message: Callable[[datetime.date], str],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.bot, self.group_id, self.at, self.message = bot, group_id, at, message
        self.clock = clock
        self.scheduler = sched.scheduler(clock, sleep)
        self.pushed: list[float] = []  # when each push went out
        self.days_left: int | None = None

    def run(self, days: int | None = None) -> None:
        """Push every day (``days`` times, or until Ctrl+C)."""
        self.days_left = days
        self.scheduler.enterabs(next_run(self.clock(), self.at), 0, self.push)
        self.scheduler.run()

    def push(self) -> None:
        today = datetime.datetime.fromtimestamp(self.clock()).date()
        try:
            self.bot.send_group_msg(self.group_id, self.message(today))
            self.pushed.append(self.clock())
        except OneBotError as exc:  # offline, muted...: try again tomorrow
            print(f"push for {today} failed: {exc}", file=sys.stderr)
        if self.days_left is not None:
            self.days_left -= 1
            if self.days_left <= 0:
                return
        self.scheduler.enterabs(next_run(self.clock(), self.at), 0, self.push)


class SimulatedClock:
    """Time that passes only in ``sleep``: a day goes by in no time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def good_morning(day: datetime.date) -> str:
    return f"早上好！今天是 {day:%m 月 %d 日} / Good morning, it is {day:%A}."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="the implementation's HTTP API, e.g. http://127.0.0.1:3000")
    parser.add_argument("--token")
    parser.add_argument("--group", type=int, default=30001)
    parser.add_argument("--at", type=datetime.time.fromisoformat, default=datetime.time(8, 0))
    args = parser.parse_args()
    if args.url:
        with HttpClient(args.url, access_token=args.token) as bot:
            print(f"pushing to group {args.group} every day at {args.at}", flush=True)
            DailyPush(bot, args.group, args.at, good_morning).run()
        return
    with FakeOneBot() as fake, HttpClient(fake.start_http_api()) as bot:
        clock = SimulatedClock(datetime.datetime(2026, 1, 1, 7, 59).timestamp())
        daily = DailyPush(bot, args.group, args.at, good_morning, clock=clock, sleep=clock.sleep)
        daily.run(days=3)
        for when, sent in zip(daily.pushed, fake.wait_for_sent(3), strict=True):
            print(f"{datetime.datetime.fromtimestamp(when):%Y-%m-%d %H:%M}", sent["text"])


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("stopped")
