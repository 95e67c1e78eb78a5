"""The server core every server of ours shares (onebot_ref._serve): what its close() promises."""

import time

import pytest

from onebot_ref import _serve
from onebot_ref.http_server import HttpServer
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_server import WsServer


def test_close_wakes_the_accept_loop_at_once(
    monkeypatch: pytest.MonkeyPatch, no_thread_leak: None
) -> None:
    """close() shuts the listening socket down, which wakes accept() (on Linux) at once.

    The accept loop also wakes every TICK for housekeeping; made 30 s here, a close
    that waited for it would take its whole timeout (5 s). Each test of the suite
    used to wait out up to one TICK (0.2 s) per server closed.
    """
    monkeypatch.setattr(_serve, "TICK", 30.0)
    fake = FakeOneBot()
    for server in (HttpServer(port=0).start(), WsServer(port=0).start()):
        started = time.monotonic()
        server.close()
        assert time.monotonic() - started < 2.0, type(server).__name__
    fake.start_http_api()
    fake.start_ws_server()
    started = time.monotonic()
    fake.close()
    assert time.monotonic() - started < 2.0
