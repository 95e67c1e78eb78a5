#!/usr/bin/env python3
"""What recording costs: a round trip through ``python -m onebot_ref.record`` vs the same one direct.

Three processes on loopback: the far side (an echo peer), the recorder (its
relay writing a real JSONL transcript to a temporary file, flushed per line),
and the client, here, which measures. One round trip is one frame (or one
request) out and its answer back, one at a time, so the figure is latency,
not throughput:

* **WebSocket** (``ws-server`` relay): websocket-client sends a realistic
  ~600-byte message event; a ``websockets`` asyncio server echoes it. Through
  the recorder every round trip crosses the relay twice (two frames written
  to the transcript).
* **HTTP** (``http-client`` relay): ``http.client`` on a keep-alive
  connection calls ``get_status`` on FakeOneBot's HTTP API; through the
  recorder, one request and one response are written.

Printed: p50 and p99 of each, direct and through the recorder, and what the
recorder adds (through - direct). The target is at most 1 ms added at p50.

Run: ``python benchmarks/bench_record.py [--n N] [--repeat R]``.
"""

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import pathlib
import statistics
import tempfile
import time
from typing import Any

import websocket
import websockets

EVENT = {
    "time": 1773153399, "self_id": 3332627962, "post_type": "message", "message_type": "group",
    "sub_type": "normal", "message_id": 2138691827, "group_id": 712475505, "user_id": 2252406579,
    "sender": {"user_id": 2252406579, "nickname": "小明", "card": "", "role": "member"},
    "raw_message": "echo 回声 テスト 🙂 " * 12, "font": 14, "message": "echo 回声 テスト 🙂 " * 12,
}  # fmt: skip


def echo_server(ready: Any) -> None:
    """The far side of the WebSocket: a ``websockets`` asyncio echo server."""

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with websockets.serve(echo, "127.0.0.1", 0, compression=None) as server:
            ready.send(server.sockets[0].getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


def fake_api(ready: Any) -> None:
    """The far side of HTTP: FakeOneBot's HTTP API."""
    from onebot_ref.testing import FakeOneBot

    fake = FakeOneBot()
    ready.send(fake.start_http_api())
    while True:
        time.sleep(3600)


def recorder(mode: str, target: str, path: str, ready: Any) -> None:
    """The recorder, in a process of its own as when run from the command line."""
    from onebot_ref.record import Transcript, relay_for

    transcript = Transcript(path)
    relay = relay_for(transcript, mode, "127.0.0.1", 0, target)
    relay.start()
    ready.send(relay.url)
    while True:
        time.sleep(3600)


def spawn(target: Any, *args: Any) -> tuple[multiprocessing.Process, Any]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=target, args=(*args, child), daemon=True)
    process.start()
    return process, parent.recv()


def ws_round_trips(url: str, n: int) -> list[float]:
    ws = websocket.create_connection(url, timeout=10, skip_utf8_validation=True)
    frame = json.dumps(EVENT, ensure_ascii=False)
    times = []
    for i in range(n + n // 10):
        started = time.perf_counter()
        ws.send(frame)
        ws.recv()
        if i >= n // 10:  # the first tenth warms up
            times.append(time.perf_counter() - started)
    ws.close()
    return times


def http_round_trips(base_url: str, n: int) -> list[float]:
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    times = []
    for i in range(n + n // 10):
        started = time.perf_counter()
        conn.request("POST", "/get_status", b"{}", {"Content-Type": "application/json"})
        conn.getresponse().read()
        if i >= n // 10:
            times.append(time.perf_counter() - started)
    conn.close()
    return times


def percentiles(times: list[float]) -> tuple[float, float]:
    """p50 and p99, in milliseconds."""
    cuts = statistics.quantiles(times, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="round trips per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best p50 counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _, ws_port = spawn(echo_server)
        _, api_url = spawn(fake_api)
        direct = {"WebSocket": f"ws://127.0.0.1:{ws_port}/", "HTTP": api_url}
        _, ws_relay = spawn(recorder, "ws-server", direct["WebSocket"], os.path.join(tmp, "w"))
        _, http_relay = spawn(recorder, "http-client", direct["HTTP"], os.path.join(tmp, "h"))
        through = {"WebSocket": ws_relay, "HTTP": http_relay.rstrip("/")}
        measure = {"WebSocket": ws_round_trips, "HTTP": http_round_trips}
        print(f"{'case':<11} {'direct p50/p99 ms':>18} {'recorded p50/p99 ms':>20} "
              f"{'added p50/p99 ms':>17}")  # fmt: skip
        for case in ("WebSocket", "HTTP"):
            best: dict[str, tuple[float, float]] = {}
            for _ in range(args.repeat):  # interleaved: the machine may be shared
                for how, url in (("direct", direct[case]), ("recorded", through[case])):
                    p50, p99 = percentiles(measure[case](url, args.n))
                    if how not in best or p50 < best[how][0]:
                        best[how] = (p50, p99)
            (d50, d99), (r50, r99) = best["direct"], best["recorded"]
            print(f"{case:<11} {d50:>8.3f} / {d99:<7.3f} {r50:>9.3f} / {r99:<8.3f} "
                  f"{r50 - d50:>7.3f} / {r99 - d99:<7.3f}")  # fmt: skip
        lines = sum(path.read_bytes().count(b"\n") for path in pathlib.Path(tmp).iterdir())
        print(f"({lines} transcript lines written)")


if __name__ == "__main__":
    main()
