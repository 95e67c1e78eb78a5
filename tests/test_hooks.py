"""_hooks: on_connect/on_disconnect run in order on one thread of their own, bounded."""

import logging
import threading
import time

import pytest

from onebot_ref._hooks import Hooks


def test_no_hook_no_thread_then_one_thread_in_order(no_thread_leak: None) -> None:
    hooks = Hooks("test-hooks")
    hooks.run(None, "ignored")
    assert "test-hooks" not in [t.name for t in threading.enumerate()]
    ran: list[tuple[str, str]] = []
    for n in range(50):
        hooks.run(lambda k: ran.append((k, threading.current_thread().name)), str(n))
    hooks.close(time.monotonic() + 5)  # the queued hooks run before close() returns
    assert ran == [(str(n), "test-hooks") for n in range(50)]
    hooks.run(ran.append, "after close")  # refused quietly
    assert len(ran) == 50


def test_a_hook_that_raises_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture, no_thread_leak: None
) -> None:
    hooks = Hooks("test-hooks")
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="onebot_ref._hooks"):
        hooks.run(broken)
        hooks.run(ran.append, "next")
        hooks.close(time.monotonic() + 5)
    assert ran == ["next"]
    (record,) = caplog.records
    assert "broken failed" in record.getMessage() and record.exc_info is not None


def test_close_waits_only_until_its_deadline(caplog: pytest.LogCaptureFixture) -> None:
    hooks = Hooks("test-hooks")
    release = threading.Event()
    hooks.run(release.wait, 10)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="onebot_ref._hooks"):
        hooks.close(time.monotonic() + 0.2)
    assert 0.2 <= time.monotonic() - started < 2
    assert "still running after close()" in caplog.text
    release.set()


def test_close_from_inside_a_hook_returns_at_once(no_thread_leak: None) -> None:
    hooks = Hooks("test-hooks")
    done = threading.Event()

    def closing() -> None:
        hooks.close(time.monotonic() + 30)  # must not join its own thread
        done.set()

    hooks.run(closing)
    assert done.wait(5)


def test_the_queue_is_bounded_while_a_hook_is_stuck(caplog: pytest.LogCaptureFixture) -> None:
    hooks = Hooks("test-hooks", limit=3)
    release = threading.Event()
    started = threading.Event()
    hooks.run(lambda: (started.set(), release.wait(10)))  # type: ignore[func-returns-value]  # two steps in a lambda
    assert started.wait(5)
    with caplog.at_level(logging.WARNING, logger="onebot_ref._hooks"):
        for _ in range(10):
            hooks.run(int)
    assert hooks.dropped == 7
    assert "1 hooks dropped" in caplog.text
    release.set()
    hooks.close(time.monotonic() + 5)
