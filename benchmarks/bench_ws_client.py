#!/usr/bin/env python3
"""Forward-WS echo bot: WsClient vs the same bot on websocket.WebSocketApp, side by side.

A load generator plays the implementation in a separate process (an asyncio
`websockets` server): it keeps 64 message events in flight on the connection
and, for every ``send_group_msg`` the bot makes, answers it (with the echo)
and sends the next event. The bot replies to each event with a blocking call
(the first 64 characters of the message), so every event costs one full round
trip. Measured: events per second over the whole run, best of ``--repeat``
runs, interleaved bot by bot (the machine may be shared).

* ``WsClient``: onebot_ref defaults (receive thread + the registry's 16 workers),
  with the accelerators of the ``speedups`` extra where installed (websockets'
  C masking, orjson); ``WsClient pure`` forces the pure-Python path, as a
  default install runs (``onebot_ref._speedups.use(False)``).
* ``WebSocketApp``: websocket-client's ``run_forever`` with ``on_message``
  handing each event to an 8-thread pool, the same ``PendingCalls`` echo table
  and the same JSON codec. Its default ``skip_utf8_validation=False`` runs
  websocket-client's pure-Python UTF-8 check on every frame (no wsaccel); the
  ``WebSocketApp+skip`` column turns that off too, to show where the gap is.
  Both decode JSON on the pure path (the stdlib's json, what its users call);
  ``App+skip+orjson`` gives it our accelerated codec too, to show what is left.

Run: ``python benchmarks/bench_ws_client.py [--small N] [--big N] [--repeat R]``.
"""

import argparse
import asyncio
import json
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import websocket
import websockets

from onebot_ref import _speedups
from onebot_ref._calls import PendingCalls
from onebot_ref.codec import is_event, loads
from onebot_ref.ws_client import WsClient

IN_FLIGHT = 64
LIFECYCLE = {"post_type": "meta_event", "meta_event_type": "lifecycle", "sub_type": "connect"}


def make_event(size: int) -> bytes:
    """A realistic group message event whose encoded size is about ``size`` bytes."""
    event: dict[str, Any] = {
        "time": 1773153399,
        "self_id": 3332627962,
        "post_type": "message",
        "message_type": "group",
        "sub_type": "normal",
        "message_id": 2138691827,
        "group_id": 712475505,
        "user_id": 2252406579,
        "sender": {"user_id": 2252406579, "nickname": "小明", "card": "", "role": "member"},
        "raw_message": "",
        "font": 14,
        "message": "",
    }
    base = len(json.dumps(event, ensure_ascii=False).encode())
    unit = "echo 回声 テスト 🙂 "  # ASCII, CJK, kana and an emoji: real chat text
    unit_bytes = len(unit.encode())
    event["message"] = event["raw_message"] = unit * max(1, (size - base) // (2 * unit_bytes))
    return json.dumps(event, ensure_ascii=False).encode()


# -- the load generator (separate process) ---------------------------------------------


def generator(ready: Any, results: Any) -> None:
    asyncio.run(_serve(ready, results))


async def _serve(ready: Any, results: Any) -> None:
    async def handler(ws: Any) -> None:
        start = json.loads(await ws.recv())  # the bench tells us what to send
        total, size = start["params"]["total"], start["params"]["size"]
        await ws.send(
            json.dumps({"status": "ok", "retcode": 0, "data": None, "echo": start["echo"]})
        )
        event = make_event(size)  # sent as a text frame without re-encoding each time
        await ws.send(json.dumps(LIFECYCLE))
        started = time.perf_counter()
        sent = done = 0
        for _ in range(min(IN_FLIGHT, total)):
            await ws.send(event, text=True)
            sent += 1
        async for message in ws:
            request = json.loads(message)
            if "action" not in request:
                continue
            reply = {"status": "ok", "retcode": 0, "data": {"message_id": done}}
            await ws.send(json.dumps({**reply, "echo": request["echo"]}))
            done += 1
            if sent < total:
                await ws.send(event, text=True)
                sent += 1
            if done == total:
                results.put(time.perf_counter() - started)
                break
        await ws.wait_closed()

    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None, ping_interval=None) as srv:
        ready.put(srv.sockets[0].getsockname()[1])
        await asyncio.Future()


# -- the two bots ----------------------------------------------------------------------


def run_wsclient(url: str, total: int, size: int, results: Any) -> float:
    bot = WsClient(url, max_size=64 * 2**20)

    @bot.on("message")
    def echo(event: dict[str, Any]) -> None:
        bot.reply(event, event["message"][:64])

    with bot:
        bot.call("bench_start", total=total, size=size)  # the generator's start signal
        elapsed = float(results.get(timeout=600))
        bot.registry.join(10)  # let the last replies land before we hang up
        return elapsed


class AppBot:
    """The same echo bot on websocket.WebSocketApp with an 8-thread handler pool."""

    def __init__(self, url: str, *, skip_utf8: bool) -> None:
        self.pending = PendingCalls()
        self.pool = ThreadPoolExecutor(8)
        self.opened = threading.Event()
        self.app = websocket.WebSocketApp(
            url, on_open=lambda ws: self.opened.set(), on_message=self.on_message
        )
        self.thread = threading.Thread(
            target=self.app.run_forever, kwargs={"skip_utf8_validation": skip_utf8}, daemon=True
        )

    def on_message(self, ws: Any, message: str) -> None:
        frame = loads(message)
        if is_event(frame):
            self.pool.submit(self.handle, frame)
        elif isinstance(frame, dict):
            self.pending.resolve(frame)

    def handle(self, event: dict[str, Any]) -> None:
        if event.get("post_type") == "message":
            params = {"group_id": event["group_id"], "message": event["message"][:64]}
            self.pending.call(self.app.send, "send_group_msg", params, 30.0)


def run_app(url: str, total: int, size: int, results: Any, *, skip_utf8: bool) -> float:
    bot = AppBot(url, skip_utf8=skip_utf8)
    bot.thread.start()
    bot.opened.wait(10)
    bot.pending.call(bot.app.send, "bench_start", {"total": total, "size": size}, 10.0)
    try:
        elapsed = float(results.get(timeout=600))
        time.sleep(0.05)  # let the last replies land before we hang up
        return elapsed
    finally:
        bot.app.close()
        bot.thread.join(10)
        bot.pool.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=3000, help="small events per run")
    parser.add_argument("--big", type=int, default=48, help="1 MiB events per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell (best is kept)")
    args = parser.parse_args()

    ctx = multiprocessing.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    process = ctx.Process(target=generator, args=(ready, results), daemon=True)
    process.start()
    url = f"ws://127.0.0.1:{ready.get(timeout=30)}/"
    # Each bot with the accelerators on (True) or forced off (False); all run in this process.
    bots: dict[str, tuple[bool, Callable[[int, int], float]]] = {
        "WsClient": (True, lambda n, s: run_wsclient(url, n, s, results)),
        "WsClient pure": (False, lambda n, s: run_wsclient(url, n, s, results)),
        "WebSocketApp": (False, lambda n, s: run_app(url, n, s, results, skip_utf8=False)),
        "WebSocketApp+skip": (False, lambda n, s: run_app(url, n, s, results, skip_utf8=True)),
        "App+skip+orjson": (True, lambda n, s: run_app(url, n, s, results, skip_utf8=True)),
    }
    print(f"{IN_FLIGHT} events in flight, one blocking reply per event, best of {args.repeat}")
    print(f"accelerated: {_speedups.use(True)}")
    header = "".join(f"{name:>20}" for name in bots)
    print(f"{'events':<16}{header}{'vs App':>9}{'vs skip':>9}{'pure vs skip':>14}")
    for label, total, size in (
        (f"small ({len(make_event(600))} B)", args.small, 600),
        ("1 MiB", args.big, 2**20),
    ):
        if not total:
            continue  # --small 0 or --big 0: that case is not run
        best: dict[str, float] = {}
        for _ in range(args.repeat):  # interleaved, best of N: the machine may be shared
            for name, (accelerated, run) in bots.items():
                _speedups.use(accelerated)
                elapsed = run(total, size)
                best[name] = min(elapsed, best.get(name, elapsed))
        _speedups.use(True)
        rates = {name: total / elapsed for name, elapsed in best.items()}
        ours, skip = rates["WsClient"], rates["WebSocketApp+skip"]
        cells = "".join(f"{rate:>15.1f} ev/s" for rate in rates.values())
        vs_app, vs_skip = ours / rates["WebSocketApp"], ours / skip
        pure = rates["WsClient pure"] / skip
        print(f"{label:<16}{cells}{vs_app:>8.2f}x{vs_skip:>8.2f}x{pure:>13.2f}x", flush=True)
    process.terminate()


if __name__ == "__main__":
    main()
