"""registry: dispatch order, failure isolation, quick-op results and the worker pool."""

import json
import logging
import threading
import time
from typing import Any

import pytest
from conftest import FakeClock, load_vectors

from onebot_ref.registry import Registry

GROUP_MSG = {
    "post_type": "message",
    "message_type": "group",
    "sub_type": "normal",
    "group_id": 1,
    "user_id": 2,
    "message": "hi",
    "self_id": 3,
}


def test_on_returns_the_function_unchanged() -> None:
    reg = Registry()

    def handler(event: dict[str, Any]) -> None:
        return None

    assert reg.on("message")(handler) is handler
    assert reg.handlers == {"message": [handler]}


def test_most_specific_first_then_registration_order() -> None:
    reg = Registry()
    calls: list[str] = []
    for name in ["*", "message", "message.group", "message.group.normal", "message.private"]:
        for n in (1, 2):
            # mypy cannot type a lambda whose defaults bind the loop's values
            reg.add(name, lambda e, name=name, n=n: calls.append(f"{name}#{n}"))  # type: ignore[misc]
    reg.dispatch(GROUP_MSG)
    assert calls == [
        "message.group.normal#1",
        "message.group.normal#2",
        "message.group#1",
        "message.group#2",
        "message#1",
        "message#2",
        "*#1",
        "*#2",
    ]


def test_a_raising_handler_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = Registry()
    ran = []

    @reg.on("message")
    def boom(event: dict[str, Any]) -> None:
        raise RuntimeError("kaput")

    @reg.on("*")
    def fine(event: dict[str, Any]) -> None:
        ran.append(event)

    with caplog.at_level(logging.ERROR, logger="onebot_ref.registry"):
        assert reg.dispatch(GROUP_MSG) == []
    assert ran == [GROUP_MSG]
    assert reg.handler_errors == 1
    assert "kaput" in caplog.text and "Traceback" in caplog.text


def test_non_none_results_are_collected_in_order() -> None:
    reg = Registry()
    reg.add("message.group", lambda e: {"reply": "a"})
    reg.add("message", lambda e: None)
    reg.add("*", lambda e: {"reply": "b"})
    assert reg.dispatch(GROUP_MSG) == [{"reply": "a"}, {"reply": "b"}]
    assert (reg.received, reg.handled) == (1, 1)


@pytest.mark.parametrize("vector", load_vectors("event"), ids=lambda v: v["id"])
def test_every_real_event_reaches_the_catch_all(vector: dict[str, Any]) -> None:
    reg = Registry()
    seen: list[dict[str, Any]] = []
    reg.add("*", seen.append)
    reg.dispatch(vector["payload"])
    assert seen == [vector["payload"]]


def test_unknown_kinds_and_garbage_are_delivered_not_raised() -> None:
    reg = Registry()
    seen: list[dict[str, Any]] = []
    reg.add("*", seen.append)
    reg.add("notice.bot_offline", seen.append)
    reg.dispatch({"post_type": "notice", "notice_type": "bot_offline", "message": "x"})
    reg.dispatch({"post_type": "message_sent", "message_type": "private"})
    reg.dispatch({})
    assert len(seen) == 4


def test_submit_runs_handlers_off_the_calling_thread(no_thread_leak: None) -> None:
    reg = Registry(workers=2)
    done = threading.Event()
    where = []

    @reg.on("message")
    def handler(event: dict[str, Any]) -> None:
        where.append(threading.current_thread().name)
        done.set()

    assert reg.submit(GROUP_MSG)
    assert done.wait(5)
    assert where[0].startswith("onebot-handler-")
    assert where[0] != threading.current_thread().name
    reg.close()


def test_a_handler_can_block_on_another_thread_without_deadlock(no_thread_leak: None) -> None:
    # What a blocking API call inside a handler looks like: it waits for a
    # response that the (still free) receiving thread delivers.
    reg = Registry(workers=1)
    response = threading.Event()
    finished = threading.Event()

    @reg.on("message")
    def handler(event: dict[str, Any]) -> None:
        assert response.wait(5)
        finished.set()

    reg.submit(GROUP_MSG)
    response.set()  # the "receive thread" was never blocked by the handler
    assert finished.wait(5)
    reg.close()


def test_bounded_queue_drops_and_counts(
    no_thread_leak: None, caplog: pytest.LogCaptureFixture
) -> None:
    reg = Registry(workers=1, max_pending=3)
    gate = threading.Event()
    reg.add("*", lambda e: gate.wait(5))
    accepted = [reg.submit({"post_type": "x", "n": n}) for n in range(10)]
    assert accepted.count(True) in (3, 4)  # one may already be taken by the worker
    assert reg.dropped == 10 - accepted.count(True)
    assert "dropped" in caplog.text
    gate.set()
    assert reg.join(5)
    assert reg.handled == accepted.count(True)
    reg.close()


def test_close_stops_workers_and_later_submits_are_dropped(no_thread_leak: None) -> None:
    reg = Registry(workers=4)
    handled: list[dict[str, Any]] = []
    reg.add("*", handled.append)
    for n in range(20):
        reg.submit({"post_type": "x", "n": n})
    reg.close()
    assert len(handled) == 20  # queued events were handled before the workers stopped
    assert not reg.submit({"post_type": "x"})
    assert reg.dropped == 1


def test_close_is_bounded_when_a_handler_hangs(caplog: pytest.LogCaptureFixture) -> None:
    reg = Registry(workers=1)
    gate = threading.Event()
    reg.add("*", lambda e: gate.wait(10))
    reg.submit({"post_type": "x"})
    started = time.monotonic()
    reg.close(timeout=0.2)
    assert time.monotonic() - started < 2.0  # the bound: 0.2 s, and slack for a loaded machine
    assert "still busy" in caplog.text
    gate.set()


def test_slow_handler_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    reg = Registry(slow_handler=0.0)
    reg.add("*", lambda e: None)
    with caplog.at_level(logging.WARNING, logger="onebot_ref.registry"):
        reg.dispatch(GROUP_MSG)
    assert "took" in caplog.text


def test_max_pending_bytes_counts_events_until_handled_and_measures_unsized_ones(
    no_thread_leak: None,
) -> None:
    reg = Registry(workers=1, max_pending_bytes=10_000)
    gate = threading.Event()
    reg.add("*", lambda e: gate.wait(5))
    wide = {"post_type": "x", "text": "字" * 1000}  # 3 bytes each in UTF-8
    assert reg.submit(wide)  # no size: measured as its compact UTF-8 JSON
    measured = len(json.dumps(wide, ensure_ascii=False, separators=(",", ":")).encode())
    assert reg.pending_bytes == measured > 3000
    assert reg.submit({"post_type": "x"}, size=6000)
    assert not reg.submit({"post_type": "x"}, size=10_000 - measured - 6000 + 1)  # one too many
    assert reg.submit({"post_type": "x"}, size=10_000 - measured - 6000)  # exactly full
    assert reg.pending_bytes == 10_000
    assert not reg.submit({"post_type": "x"}, size=1)
    assert reg.dropped == 2
    gate.set()
    assert reg.join(5)
    assert reg.pending_bytes == 0
    reg.close()


def test_an_event_larger_than_max_pending_bytes_is_dropped_even_when_idle(
    no_thread_leak: None, caplog: pytest.LogCaptureFixture
) -> None:
    reg = Registry(workers=1, max_pending_bytes=100)
    assert not reg.submit({"post_type": "x"}, size=101)
    assert "this one has 101 (max_pending_bytes=100)" in caplog.text
    reg.close()


def test_a_raising_handler_still_gives_its_bytes_back(no_thread_leak: None) -> None:
    reg = Registry(workers=2, max_pending_bytes=1000)
    reg.add("*", lambda e: 1 / 0)
    for _ in range(20):
        assert reg.submit({"post_type": "x"}, size=40)
    assert reg.join(5)
    assert reg.pending_bytes == 0
    assert reg.handler_errors == 20
    reg.close()


def test_drops_are_logged_once_per_interval_with_the_count_since(
    no_thread_leak: None, caplog: pytest.LogCaptureFixture
) -> None:
    reg = Registry(workers=1, max_pending=1)
    gate = threading.Event()
    reg.add("*", lambda e: gate.wait(5))
    results = [reg.submit({"post_type": "x"}) for _ in range(50)]
    warnings = [r.getMessage() for r in caplog.records if "dropped events" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("dropped events: 1 since")
    assert "max_pending=1)" in warnings[0]
    reg.drop_log_interval = 0.0
    assert not reg.submit({"post_type": "x"})
    warnings = [r.getMessage() for r in caplog.records if "dropped events" in r.getMessage()]
    dropped = results.count(False)
    assert warnings[1].startswith(
        f"dropped events: {dropped} since the last warning, {dropped + 1}"
    )
    gate.set()
    assert reg.join(5)
    reg.close()


def test_drop_warnings_keep_their_interval_exactly(
    no_thread_leak: None, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    reg = Registry(workers=1, max_pending=1, clock=clock)
    gate = threading.Event()
    reg.add("*", lambda e: gate.wait(5))
    dropped = [reg.submit({"post_type": "x"}) for _ in range(5)].count(False)  # 3 or 4

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if "dropped events" in r.getMessage()]

    assert len(warnings()) == 1  # the first drop, at once
    clock.advance(reg.drop_log_interval - 0.25)
    assert not reg.submit({"post_type": "x"})
    assert len(warnings()) == 1  # still within the interval: counted, not logged
    clock.advance(0.25)
    assert not reg.submit({"post_type": "x"})
    assert warnings()[1].startswith(
        f"dropped events: {dropped + 1} since the last warning, {dropped + 2} in all"
    )
    gate.set()
    assert reg.join(5)
    reg.close()
