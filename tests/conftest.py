"""Shared fixtures: the real-world vectors and a thread-leak check."""

import json
import pathlib
import threading
import time
from typing import Any

import pytest

DATA = pathlib.Path(__file__).parent / "data"


def load_vectors(kind: str | None = None) -> list[dict[str, Any]]:
    """The real-world payloads copied from shared/vectors (optionally of one kind)."""
    vectors = json.loads((DATA / "onebot11-real-world.json").read_text("utf-8"))
    return [v for v in vectors if kind is None or v["kind"] == kind]


@pytest.fixture
def no_thread_leak():
    """Fail the test if it leaves threads running (after a short grace period)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not extra, f"threads left running: {[t.name for t in extra]}"


def upgrade_request(target: str = "/", headers: "tuple[str, ...] | list[str]" = ()) -> bytes:
    """A raw WebSocket upgrade request (RFC 6455 §4.1, the RFC's sample key) with extra headers."""
    head = [
        f"GET {target} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode()
