"""One event delivered twice is handled once: the shared key, the window, and both uses."""

import pytest
from conftest import FakeClock, load_vectors

from onebot_ref._dedup import Recent, shared_key
from onebot_ref.registry import Registry

GROUP_MESSAGE = {
    "time": 1700000000, "self_id": 10001, "post_type": "message", "message_type": "group",
    "sub_type": "normal", "message_id": 111, "group_id": 30001, "user_id": 42,
    "message": [{"type": "text", "data": {"text": "大家好"}}], "raw_message": "大家好",
    "font": 0, "sender": {"user_id": 42, "nickname": "小明"},
}  # fmt: skip


def copy_for(self_id: int, **changes: object) -> dict[str, object]:
    """What another bot account in the same group receives: its own ids, same message."""
    return {**GROUP_MESSAGE, "self_id": self_id, "message_id": self_id * 7, **changes}


def test_copies_for_different_accounts_share_a_key() -> None:
    napcat_extras = {"message_seq": 9, "real_id": 5, "raw": {"elements": []}}
    assert shared_key(copy_for(20002, **napcat_extras)) == shared_key(GROUP_MESSAGE)


@pytest.mark.parametrize(
    "change",
    [{"raw_message": "别的"}, {"user_id": 43}, {"group_id": 30002}, {"time": 1700000001}],
    ids=["text", "sender", "group", "second"],
)
def test_a_different_message_has_another_key(change: dict[str, object]) -> None:
    assert shared_key(copy_for(20002, **change)) != shared_key(GROUP_MESSAGE)


def test_meta_events_are_never_merged() -> None:
    heartbeat = {"post_type": "meta_event", "meta_event_type": "heartbeat", "time": 1}
    assert shared_key(heartbeat) is None


@pytest.mark.parametrize("vector", load_vectors("event"), ids=lambda v: v["id"])
def test_every_real_event_has_a_key_or_is_meta(vector: dict[str, object]) -> None:
    event = vector["payload"]
    assert isinstance(event, dict)
    key = shared_key(event)
    assert (key is None) == (event.get("post_type") == "meta_event")


def test_the_window_forgets_and_the_limit_bounds() -> None:
    clock = FakeClock()
    recent = Recent(0.2, limit=3, clock=clock)
    assert not recent.seen(b"a") and recent.seen(b"a")
    clock.advance(0.3)
    assert not recent.seen(b"a")  # the window passed
    for data in (b"b", b"c", b"d"):
        recent.seen(data)
    assert not recent.seen(b"a")  # pushed out by the limit, not by time


def test_the_window_holds_to_its_last_instant_and_not_after() -> None:
    clock = FakeClock()
    recent = Recent(0.25, clock=clock)
    assert not recent.seen(b"a")
    clock.advance(0.25)
    assert recent.seen(b"a")  # exactly the window later: still a copy
    clock.advance(2**-10)
    assert not recent.seen(b"a")  # just past it (a copy does not refresh the first): new


def test_registry_dedup_accounts_window_follows_the_registry_clock() -> None:
    clock = FakeClock()
    runs: list[object] = []
    registry = Registry(dedup_accounts=60, clock=clock)
    registry.on("message.group")(lambda event: runs.append(event["self_id"]))
    registry.dispatch(GROUP_MESSAGE)
    clock.advance(60)
    registry.dispatch(copy_for(20002))  # 60 s later: still the same message
    clock.advance(0.5)
    registry.dispatch(copy_for(20003))  # 60.5 s after the first: handled as new
    assert runs == [10001, 20003] and registry.duplicates == 1


def test_registry_handles_one_copy_across_accounts() -> None:
    runs: list[object] = []
    registry = Registry(dedup_accounts=60)
    registry.on("message.group")(lambda event: runs.append(event["self_id"]))
    registry.dispatch(GROUP_MESSAGE)
    registry.dispatch(copy_for(20002))  # the second bot's copy: not handled again
    registry.dispatch(copy_for(20002, raw_message="另一条"))
    assert runs == [10001, 20002] and registry.duplicates == 1
    assert registry.join(1)


def test_registry_without_dedup_handles_every_copy() -> None:
    runs: list[object] = []
    registry = Registry()
    registry.on("message")(lambda event: runs.append(event["self_id"]))
    registry.dispatch(GROUP_MESSAGE)
    registry.dispatch(copy_for(20002))
    assert runs == [10001, 20002] and registry.duplicates == 0
