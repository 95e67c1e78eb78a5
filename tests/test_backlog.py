"""The event backlog is bounded in bytes: big events with the handlers stuck cannot pile up.

A peer (websocket-client playing the implementation against our WsServer, and
FakeOneBot's forward server against our WsClient) pushes events of a quarter
MiB while the one worker is blocked. The registry keeps at most
``max_pending_bytes`` of them, counts the rest as dropped, warns once per
``drop_log_interval``, and once the handler is released the same connection
still delivers events and answers calls.
"""

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import websocket
from conftest import wait_until

from onebot_ref import Registry
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_client import WsClient
from onebot_ref.ws_server import WsServer

pytestmark = pytest.mark.usefixtures("no_thread_leak")

BIG = 256 * 1024  # bytes of text in each event
BOUND = 1024 * 1024  # max_pending_bytes: room for three such events, not four
PUSHED = 24


def big_event(n: int) -> dict[str, Any]:
    return {
        "time": 1700000000,
        "self_id": 10001,
        "post_type": "message",
        "message_type": "private",
        "sub_type": "friend",
        "user_id": 42,
        "message_id": n,
        "message": "x" * BIG,
    }


def drop_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("dropped events: ")]


# A registry whose one worker is held, its gate, and the message_ids it handled.
Blocked = tuple[Registry, threading.Event, list[int]]


@pytest.fixture
def blocked() -> Iterator[Blocked]:
    """One worker, held in its handler until the gate is set; closed (and freed) at the end."""
    registry, gate, handled = blocked_registry()
    yield registry, gate, handled
    gate.set()
    registry.close()


def blocked_registry() -> Blocked:
    registry = Registry(workers=1, max_pending_bytes=BOUND)
    gate = threading.Event()
    handled: list[int] = []

    @registry.on("message")
    def handler(event: dict[str, Any]) -> None:
        assert gate.wait(10)
        handled.append(event["message_id"])

    return registry, gate, handled


def check_bounded(registry: Registry, caplog: pytest.LogCaptureFixture) -> int:
    """Every pushed event was received; what was kept fits the bound; one warning said so."""
    wait_until(lambda: registry.received == PUSHED)
    assert 0 < registry.pending_bytes <= BOUND
    kept = PUSHED - registry.dropped
    assert 1 <= kept <= BOUND // BIG  # one in the worker's hands, the rest queued
    assert registry.pending_bytes >= kept * BIG
    (warning,) = drop_warnings(caplog)  # once in this window, for many drops
    assert "max_pending_bytes=1048576" in warning.getMessage()
    return kept


def test_ws_server_keeps_big_events_within_max_pending_bytes(
    blocked: Blocked, caplog: pytest.LogCaptureFixture
) -> None:
    registry, gate, handled = blocked
    with WsServer(port=0, registry=registry, timeout=5) as server:
        ws = websocket.create_connection(server.url, header=["X-Self-ID: 10001"], timeout=10)
        try:
            with caplog.at_level(logging.WARNING, logger="onebot_ref"):
                for n in range(PUSHED):
                    ws.send(json.dumps(big_event(n)))
                kept = check_bounded(registry, caplog)
                # The next window's warning counts the drops it did not report.
                registry.drop_log_interval = 0.0
                ws.send(json.dumps(big_event(PUSHED)))
                wait_until(lambda: len(drop_warnings(caplog)) == 2)
            # The drops after the first warning, and the new one, reported together.
            assert (
                drop_warnings(caplog)[1]
                .getMessage()
                .startswith(
                    f"dropped events: {PUSHED - kept} since the last warning, {PUSHED - kept + 1} in all"
                )
            )
            gate.set()
            assert registry.join(10)
            assert registry.pending_bytes == 0
            assert sorted(handled) == list(range(kept))  # the first ones, not a random few
            # The same connection still delivers events and answers calls.
            ws.send(json.dumps(big_event(100)))
            wait_until(lambda: 100 in handled)
            answer = threading.Thread(target=lambda: answer_one_call(ws))
            answer.start()
            assert server.get_status() == {"online": True}
            answer.join(10)
        finally:
            ws.close()


def answer_one_call(ws: websocket.WebSocket) -> None:
    request = json.loads(ws.recv())
    ws.send(json.dumps({"status": "ok", "retcode": 0, "data": {"online": True},
                        "echo": request["echo"]}))  # fmt: skip


def test_ws_client_keeps_big_events_within_max_pending_bytes(
    blocked: Blocked, caplog: pytest.LogCaptureFixture
) -> None:
    registry, gate, handled = blocked
    with FakeOneBot() as fake:
        fake.faults.lifecycle = False  # only our events reach the registry
        bot = WsClient(fake.start_ws_server(), registry=registry, timeout=5)
        try:
            bot.start()
            with caplog.at_level(logging.WARNING, logger="onebot_ref"):
                for n in range(PUSHED):
                    fake.push(big_event(n))
                kept = check_bounded(registry, caplog)
            gate.set()
            assert registry.join(10)
            assert registry.pending_bytes == 0
            assert sorted(handled) == list(range(kept))
            fake.push(big_event(100))
            wait_until(lambda: 100 in handled)
            assert bot.get_login_info()["user_id"] == fake.self_id
        finally:
            bot.close()
