"""Shared helpers: the real-world vectors, the one bounded wait, and a thread-leak check."""

import contextlib
import json
import os
import pathlib
import random
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

DATA = pathlib.Path(__file__).parent / "data"

# The tests start the demo, the CLIs and the examples as subprocesses, each importing the
# package afresh. Where the environment forbids bytecode (PYTHONDONTWRITEBYTECODE, as on
# these machines) every one of them compiled it again: ~0.1 s of CPU per start. Their
# bytecode goes to a cache outside the checkout instead; this process is not affected.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.setdefault(
    "PYTHONPYCACHEPREFIX",
    os.path.join(tempfile.gettempdir(), f"onebot_ref-tests-pycache-{os.getuid()}"),
)

T = TypeVar("T")


def load_vectors(kind: str | None = None) -> list[dict[str, Any]]:
    """The real-world payloads copied from shared/vectors (optionally of one kind)."""
    vectors = json.loads((DATA / "onebot11-real-world.json").read_text("utf-8"))
    return [v for v in vectors if kind is None or v["kind"] == kind]


def wait_until(
    predicate: Callable[[], T | None], timeout: float = 10.0, what: str = "the condition"
) -> T:
    """Poll ``predicate`` until it returns something true, and return that.

    The one wait of the suite: a bounded poll with a deadline, never a fixed
    sleep. It fails the test with ``what`` once ``timeout`` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout} s")
        time.sleep(0.01)
    return result


class FakeClock:
    """A monotonic clock that moves only when told: for tests where time itself decides.

    Pass it where the library takes ``clock=`` (dedup windows, throttles, the
    registry's drop warnings), then :meth:`advance` it past a window instead of
    sleeping through one. It starts at a round, binary-exact number, so that
    ``start + 0.25 - start == 0.25`` and a window's edge can be tested exactly.
    """

    def __init__(self, start: float = 1024.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def unused_port() -> int:
    """A loopback port nothing listens on, for a test that must name one before it is bound.

    Drawn at random from below the OS's ephemeral range, from which every port-0
    bind and every outgoing connection take theirs: a port freed by a bind(0) probe
    could be handed straight to a test running beside this one (under xdist), as
    the local port of a connection or as a server's, before we use it.
    """
    try:
        low = int(pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # below the ephemeral range of Linux, BSDs, macOS and Windows alike
    for _ in range(100):
        port = random.randrange(max(1024, low - 16384), low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: try another
        return port
    raise AssertionError(f"no free port below {low} after 100 tries")


def echoed(data: Any, key: str = "action") -> Any:
    """The action (or its ``params``) a test's implementation echoed back as its answer's data.

    Our peers answer every call with ``{"action": ..., "params": ...}`` as data, which no
    standard result type has (the API methods return TypedDicts): this reads it untyped.
    """
    return data[key]


def served(server: Any) -> int:
    """How many connections one of our servers (WsServer, HttpServer) is serving right now.

    The count of its ``_serve.Server`` core: a connection counts from its accept
    until its thread is done with it (its session closed, hooks queued).
    """
    # WsServer holds a generic WebSocket server, HttpServer a ManagedHTTPServer; each a core.
    held = getattr(server, "listener", None) or getattr(server, "_http", None) or server
    return int(held.server.active)


def answers(fake: Any) -> int:
    """How many action responses a FakeOneBot has sent so far (late ones too)."""
    return sum(
        1
        for direction, _mode, frame in list(fake.transcript)
        if direction == "onebot → bot" and isinstance(frame, dict) and "retcode" in frame
    )


def requested(fake: Any, action: str = "get_status") -> int:
    """How many ``action`` requests a FakeOneBot has received so far."""
    return sum(
        1
        for direction, _mode, frame in list(fake.transcript)
        if direction == "bot → onebot" and isinstance(frame, dict) and frame.get("action") == action
    )


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    """Fail the test if a thread it started is still running once it ends.

    Closing is asynchronous in places (a connection thread sees its socket shut
    down, then returns), so the threads get a grace period to end.
    """
    before = set(threading.enumerate())
    yield

    def leaked() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t not in before and t.is_alive()]

    with contextlib.suppress(AssertionError):
        wait_until(lambda: not leaked(), 10.0)
    assert not (left := leaked()), f"threads left running: {[t.name for t in left]}"


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


@pytest.fixture(scope="module", params=["pure", "speedups"])
def both_paths(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run every test of a module twice: on the pure-Python path, then with the accelerators.

    The switch is ``onebot_ref._speedups.use`` (the internal hook; see its module).
    The accelerated run needs what the ``speedups`` extra installs (the test
    extra has it too): it fails, never skips, when they are missing, so that
    CI always runs both paths. Module-scoped, so that hypothesis tests run
    both ways too (it refuses function-scoped fixtures).
    """
    from onebot_ref import _speedups

    accelerated = request.param == "speedups"
    before = "pure" not in _speedups.active.name  # as this process started (ONEBOT_REF_PURE)
    name = _speedups.use(accelerated)
    try:
        if accelerated and "pure" in name:
            pytest.fail(f"the accelerated run found only {name!r}; pip install -e '.[test]'")
        yield request.param
    finally:
        _speedups.use(before)
