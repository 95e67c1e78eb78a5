"""Soak: mixed traffic across all four modes for a fixed period (issue 9). Not in the default run.

    SOAK_SECONDS=60 pytest -m soak tests/test_soak.py -s

One FakeOneBot serves all four of our transports at once: events are pushed
to the HTTP POST server, the forward-WS client and the reverse-WS server
while calls go out over HTTP, forward WS and reverse WS; every few seconds
the reverse connection is dropped and redialled. Memory (VmRSS) and the
thread count are sampled after a warm-up and must stay flat. The figures are
printed; benchmarks/SOAK.md records a run.
"""

import os
import resource
import sys
import threading
import time
from typing import Any

import pytest

from onebot_ref.errors import ApiTimeout, NotConnected
from onebot_ref.http_client import HttpClient
from onebot_ref.http_server import HttpServer
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_client import WsClient
from onebot_ref.ws_server import WsServer

SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))


def rss_kib() -> int:
    """Resident memory now (Linux), else the peak so far (getrusage)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


@pytest.mark.soak
@pytest.mark.timeout(SECONDS + 60)
def test_mixed_traffic_soak() -> None:
    fake = FakeOneBot(heartbeat_interval=1.0)
    fake.max_transcript = 1000
    http_client = HttpClient(fake.start_http_api(), timeout=5)
    http_api = HttpClient(fake.start_http_api(), timeout=5)
    http_server = HttpServer(port=0, api=http_api).start()
    fake.add_http_post(http_server.url)
    ws_client = WsClient(fake.start_ws_server(), timeout=5)
    ws_client.backoff_initial = 0.05
    ws_server = WsServer(port=0, timeout=5).start()
    reverse = fake.connect_reverse(ws_server.url, reconnect_interval=0.1)
    counts = {"events": 0, "calls": 0, "errors": 0, "drops": 0}
    lock = threading.Lock()

    def seen(event: dict[str, Any]) -> None:
        with lock:
            counts["events"] += 1

    for receiver in (http_server, ws_client, ws_server):
        receiver.on("message")(seen)
    ws_client.start()
    assert reverse.wait_connected()

    samples: list[tuple[float, int, int]] = []
    started = time.monotonic()
    warm = started + min(10.0, SECONDS / 5)
    next_sample, next_drop, i = warm, started + 5, 0
    try:
        while (now := time.monotonic()) < started + SECONDS:
            i += 1
            fake.push_message(text=f"soak {i}", group_id=30001 if i % 2 else None)
            for bot in (http_client, ws_client, ws_server):
                try:
                    bot.get_status()
                    counts["calls"] += 1
                except (NotConnected, ApiTimeout):
                    counts["errors"] += 1  # while the reverse link is being redialled
            if now >= next_drop:
                reverse.drop()
                counts["drops"] += 1
                next_drop = now + 5
            if now >= next_sample:
                # The fake keeps every message and call for tests to inspect: empty its
                # books so that what is measured is the library, not the fake's history.
                fake.world.messages.clear()
                fake.world.calls.clear()
                with fake._transcript_lock:
                    fake.transcript.clear()
                samples.append((now - started, rss_kib(), threading.active_count()))
                next_sample = now + max(1.0, SECONDS / 30)
    finally:
        ws_client.close()
        ws_server.close()
        http_server.close()
        http_api.close()
        http_client.close()
        fake.close()

    elapsed = time.monotonic() - started
    rss = [s[1] for s in samples]
    threads = [s[2] for s in samples]
    print(
        f"\nsoak {elapsed:.0f}s: {counts['events']} events handled, {counts['calls']} calls, "
        f"{counts['errors']} failed calls, {counts['drops']} reverse drops; "
        f"RSS {rss[0]}..{max(rss)} KiB (end {rss[-1]}), threads {min(threads)}..{max(threads)}"
        f", {len(samples)} samples"
    )
    assert counts["events"] > 0 and counts["calls"] > 0
    # Calls fail (fast, NotConnected) only while the reverse link is redialled after a drop.
    assert counts["errors"] <= counts["drops"] * 50 + 10
    # Flat: the end within 16 MiB of the first post-warm-up sample; threads within a few.
    assert rss[-1] - rss[0] < 16 * 1024, samples
    assert max(threads) - min(threads) <= 4, samples
