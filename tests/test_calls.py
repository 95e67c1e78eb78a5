"""calls: echo matching of WebSocket API calls, with threads standing in for the peer."""

import json
import threading
from typing import Any

import pytest

from onebot_ref._calls import PendingCalls
from onebot_ref.errors import ActionFailed, ApiTimeout, EncodeError, NotConnected


class Peer:
    """Collects what call() sends, so a test can answer it from another thread."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.arrived = threading.Event()

    def send(self, data: bytes) -> None:
        self.sent.append(json.loads(data))
        self.arrived.set()


def start_call(
    pending: PendingCalls,
    peer: Peer,
    action: str = "get_status",
    timeout: float = 5.0,
    **params: Any,
) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = pending.call(peer.send, action, params, timeout)
        except Exception as exc:
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def test_call_sends_a_string_echo_and_returns_data() -> None:
    pending, peer = PendingCalls(), Peer()
    thread, box = start_call(pending, peer, "send_private_msg", user_id=1, message="hi")
    assert peer.arrived.wait(5)
    request = peer.sent[0]
    assert request["action"] == "send_private_msg"
    assert request["params"] == {"user_id": 1, "message": "hi"}
    assert isinstance(request["echo"], str)
    assert pending.resolve(
        {"status": "ok", "retcode": 0, "data": {"message_id": 5}, "echo": request["echo"]}
    )
    thread.join(5)
    assert box == {"result": {"message_id": 5}}
    assert len(pending) == 0


def test_out_of_order_responses_reach_the_right_callers() -> None:
    pending = PendingCalls()
    peers = [Peer() for _ in range(5)]
    calls = [start_call(pending, p, f"a{n}") for n, p in enumerate(peers)]
    for p in peers:
        assert p.arrived.wait(5)
    for n in reversed(range(5)):
        echo = peers[n].sent[0]["echo"]
        assert pending.resolve({"status": "ok", "retcode": 0, "data": n, "echo": echo})
    for n, (thread, box) in enumerate(calls):
        thread.join(5)
        assert box == {"result": n}


def test_numeric_echo_from_the_implementation_still_matches() -> None:
    pending, peer = PendingCalls(), Peer()
    thread, box = start_call(pending, peer)
    assert peer.arrived.wait(5)
    echo = int(peer.sent[0]["echo"])
    assert pending.resolve({"status": "ok", "retcode": 0, "data": 1, "echo": echo})
    thread.join(5)
    assert box == {"result": 1}


@pytest.mark.parametrize("echo", ["nope", {"seq": 1}, 99999])
def test_unknown_echo_is_counted_and_logged(echo: object, caplog: pytest.LogCaptureFixture) -> None:
    pending = PendingCalls()
    assert not pending.resolve({"status": "ok", "retcode": 0, "echo": echo})
    assert pending.unmatched == 1
    assert "matches no waiting call" in caplog.text


def test_duplicate_response_is_unmatched_after_the_first() -> None:
    pending, peer = PendingCalls(), Peer()
    thread, _box = start_call(pending, peer)
    assert peer.arrived.wait(5)
    resp = {"status": "ok", "retcode": 0, "data": 1, "echo": peer.sent[0]["echo"]}
    assert pending.resolve(resp)
    thread.join(5)
    assert not pending.resolve(resp)


def test_stream_action_resolves_on_the_final_frame() -> None:
    pending, peer = PendingCalls(), Peer()
    thread, box = start_call(pending, peer, "download_file_stream")
    assert peer.arrived.wait(5)
    echo = peer.sent[0]["echo"]
    for n in range(3):
        chunk = {
            "status": "ok",
            "retcode": 0,
            "stream": "stream-action",
            "echo": echo,
            "data": {"type": "stream", "data": n},
        }
        assert pending.resolve(chunk)
    assert thread.is_alive()
    final = {
        "status": "ok",
        "retcode": 0,
        "stream": "stream-action",
        "echo": echo,
        "data": {"type": "response", "size": 3},
    }
    assert pending.resolve(final)
    thread.join(5)
    assert box == {"result": {"type": "response", "size": 3}}


def test_echo_less_failure_goes_to_the_only_call_in_flight() -> None:
    pending, peer = PendingCalls(), Peer()
    thread, box = start_call(pending, peer, "send_msg")
    assert peer.arrived.wait(5)
    assert pending.resolve({"status": "failed", "retcode": 100, "wording": "消息为空"})
    thread.join(5)
    assert isinstance(box["error"], ActionFailed)
    assert box["error"].message == "消息为空"


def test_echo_less_success_is_not_guessed() -> None:
    pending, peer = PendingCalls(), Peer()
    thread, box = start_call(pending, peer, timeout=0.3)
    assert peer.arrived.wait(5)
    assert not pending.resolve({"status": "ok", "retcode": 0, "data": 1, "echo": None})
    thread.join(5)
    assert isinstance(box["error"], ApiTimeout)


def test_timeout_says_the_action_may_have_run() -> None:
    pending, peer = PendingCalls(), Peer()
    with pytest.raises(ApiTimeout, match="may still have carried it out") as info:
        pending.call(peer.send, "send_group_msg", {}, 0.05)
    assert isinstance(info.value, TimeoutError)
    assert info.value.action == "send_group_msg"
    assert info.value.echo == peer.sent[0]["echo"]
    assert len(pending) == 0


def test_fail_all_wakes_every_waiter_at_once() -> None:
    pending = PendingCalls()
    peers = [Peer() for _ in range(4)]
    calls = [start_call(pending, p, timeout=30) for p in peers]
    for p in peers:
        assert p.arrived.wait(5)
    pending.fail_all(NotConnected("connection closed"))
    for thread, box in calls:
        thread.join(2)
        assert not thread.is_alive()
        assert isinstance(box["error"], NotConnected)


def test_send_failure_propagates_and_leaves_nothing_pending() -> None:
    pending = PendingCalls()

    def broken(data: bytes) -> None:
        raise NotConnected("not connected")

    with pytest.raises(NotConnected):
        pending.call(broken, "get_status", {}, 5)
    assert len(pending) == 0


def test_a_call_that_cannot_be_encoded_sends_nothing_and_leaves_nothing_pending() -> None:
    pending = PendingCalls()
    sent: list[bytes] = []
    with pytest.raises(EncodeError, match=r"^send_msg: message is 123"):
        pending.call(sent.append, "send_msg", {"message": 123}, 5)
    with pytest.raises(EncodeError, match=r"^get_status: x is nan"):
        pending.call(sent.append, "get_status", {"x": float("nan")}, 5)
    assert sent == []
    assert len(pending) == 0
