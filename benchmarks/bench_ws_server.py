"""Reverse-WS echo bot throughput: onebot_ref.ws_server vs websockets.sync vs aiocqhttp.

Each server runs the same echo bot in its own process: for every private
message event it makes a *blocking* ``send_private_msg`` call with the same
message and waits for the response. The load generator plays the OneBot
implementation: it dials the server with ``X-Self-ID`` / ``X-Client-Role``,
keeps 64 events in flight, and answers each action at once with an ``ok``
response carrying its echo. An event counts as done when its action arrives.

* onebot_ref: ``WsServer`` + ``reply()`` from the registry's 16 handler threads,
  with the accelerators of the ``speedups`` extra where installed (websockets'
  C masking, orjson); ``onebot_ref pure`` is the same server forced onto the
  pure-Python path (``ONEBOT_REF_PURE=1``), as a default install runs.
* websockets.sync.server: a handler per connection reading frames, events
  handed to an 8-thread pool, each blocking on a ``threading.Event`` per echo.
* aiocqhttp (if installed): ``CQHttp`` on Quart/Hypercorn, ``await bot.send_private_msg``.

The load generator speaks frames through onebot_ref.framer (client side:
``mask=True`` writes, ``mask=False`` reads) and is the same for all three.

Usage: python benchmarks/bench_ws_server.py [--small 5000] [--large 200] [--only NAME ...]
Needs: websockets (and aiocqhttp for the third column).
"""

import argparse
import base64
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from onebot_ref.framer import (
    CLOSE,
    TEXT,
    Frame,
    MessageReader,
    encode_frame,
)

IN_FLIGHT = 64
OURS = ("onebot_ref", "onebot_ref pure")
SELF_ID = 10001
_decoder = json.JSONDecoder()


# --- The three bots, each run with --serve NAME --port N in a child process ---


def serve_onebot_ref(port: int) -> None:
    from onebot_ref.ws_server import WsServer

    server = WsServer("127.0.0.1", port, timeout=60)

    @server.on("message.private")
    def echo(event: dict[str, Any]) -> None:
        server.reply(event, event["message"])

    print("ready", flush=True)
    server.serve_forever()


def serve_websockets(port: int) -> None:
    import itertools
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from websockets.sync.server import ServerConnection, serve

    pool = ThreadPoolExecutor(8)
    counter = itertools.count()
    waiting: dict[str, list[Any]] = {}
    lock = threading.Lock()

    def call(ws: ServerConnection, action: str, params: dict[str, Any]) -> Any:
        echo = str(next(counter))
        slot: list[Any] = [threading.Event(), None]
        with lock:
            waiting[echo] = slot
        ws.send(json.dumps({"action": action, "params": params, "echo": echo}, ensure_ascii=False))
        slot[0].wait(60)
        return slot[1]

    def handle(ws: ServerConnection, event: dict[str, Any]) -> None:
        call(ws, "send_private_msg", {"user_id": event["user_id"], "message": event["message"]})

    def handler(ws: ServerConnection) -> None:
        for message in ws:
            obj = json.loads(message)
            if "post_type" in obj:
                pool.submit(handle, ws, obj)
            else:
                with lock:
                    slot = waiting.pop(obj.get("echo"), None)
                if slot is not None:
                    slot[1] = obj
                    slot[0].set()

    with serve(handler, "127.0.0.1", port, max_size=64 * 2**20, compression=None) as server:
        print("ready", flush=True)
        server.serve_forever()


def serve_websockets_asyncio(port: int) -> None:
    """The websockets asyncio server: one event loop, a task per event, a future per call."""
    import asyncio
    import itertools

    from websockets.asyncio.server import ServerConnection, serve

    async def main() -> None:
        counter = itertools.count()
        waiting: dict[str, asyncio.Future[Any]] = {}
        tasks: set[asyncio.Task[None]] = set()

        async def handle(ws: ServerConnection, event: dict[str, Any]) -> None:
            echo = str(next(counter))
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            waiting[echo] = future
            params = {"user_id": event["user_id"], "message": event["message"]}
            call = {"action": "send_private_msg", "params": params, "echo": echo}
            await ws.send(json.dumps(call, ensure_ascii=False))
            await asyncio.wait_for(future, 60)

        async def handler(ws: ServerConnection) -> None:
            async for message in ws:
                obj = json.loads(message)
                if "post_type" in obj:
                    task = asyncio.create_task(handle(ws, obj))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                elif (future := waiting.pop(obj.get("echo"), None)) is not None:
                    future.set_result(obj)

        async with serve(handler, "127.0.0.1", port, max_size=64 * 2**20, compression=None):
            print("ready", flush=True)
            await asyncio.get_running_loop().create_future()

    asyncio.run(main())


def serve_aiocqhttp(port: int) -> None:
    import logging

    from aiocqhttp import CQHttp

    logging.disable(logging.INFO)
    bot = CQHttp()

    async def echo(event: dict[str, Any]) -> None:
        await bot.send_private_msg(user_id=event["user_id"], message=event["message"])

    bot.on_message("private")(echo)  # a call, not @: an untyped decorator would untype echo

    print("ready", flush=True)
    bot.run(host="127.0.0.1", port=port)


SERVERS = {
    "onebot_ref": (serve_onebot_ref, "/"),
    "onebot_ref pure": (serve_onebot_ref, "/"),
    "websockets.sync": (serve_websockets, "/"),
    "websockets.asyncio": (serve_websockets_asyncio, "/"),
    "aiocqhttp": (serve_aiocqhttp, "/ws/"),
}


# --- The load generator: plays the OneBot implementation ---


def dial(port: int, path: str) -> tuple[socket.socket, bytes]:
    deadline = time.monotonic() + 20
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"X-Self-ID: {SELF_ID}\r\nX-Client-Role: Universal\r\nUser-Agent: bench\r\n\r\n"
        ).encode()
    )
    data = b""
    while (end := data.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        data += chunk
    status_line = data.split(b"\r\n", 1)[0]
    if b" 101 " not in status_line:
        raise ConnectionError(f"handshake refused: {status_line!r}")
    return sock, data[end + 4 :]


def echo_of(payload: bytes) -> Any:
    text = payload.decode("utf-8")
    start = text.index(":", text.rfind('"echo"')) + 1
    while text[start] == " ":
        start += 1
    value, _ = _decoder.raw_decode(text, start)
    return value


def run_load(port: int, path: str, events: int, size: int) -> float:
    """Send ``events`` events of about ``size`` bytes, 64 in flight; return events/s.

    A reader (this thread) parses actions and queues the answers; a writer
    thread sends them, so that like a real implementation we never stop
    reading while a large send is blocked.
    """
    sock, leftover = dial(port, path)
    event = {
        "time": 1700000000,
        "self_id": SELF_ID,
        "post_type": "message",
        "message_type": "private",
        "sub_type": "friend",
        "message_id": 1,
        "user_id": 42,
        "message": "x" * size,
        "raw_message": "",
        "font": 0,
        "sender": {"user_id": 42, "nickname": "bench"},
    }
    # One pre-encoded frame (the same masking key each time is fine for a benchmark).
    event_frame = encode_frame(Frame(TEXT, json.dumps(event).encode()), mask=True)
    outbox: queue.Queue[bytes | None] = queue.Queue()
    writer = threading.Thread(target=_write, args=(sock, outbox), daemon=True)
    writer.start()
    reader = MessageReader(mask=False, max_message=256 * 2**20)
    reader.feed(leftover)
    warmup = max(IN_FLIGHT, events // 10)
    total = events + warmup
    sent = min(IN_FLIGHT, total)
    outbox.put(event_frame * sent)
    done = 0
    started = time.perf_counter()
    try:
        while done < total:
            out = []
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionError(f"server closed after {done} events")
            reader.feed(data)
            while (msg := reader.next_message()) is not None:
                if msg.opcode == CLOSE:
                    raise ConnectionError(f"server closed with {msg.payload!r}")
                if msg.opcode != TEXT:
                    continue
                response = {"status": "ok", "retcode": 0, "data": {"message_id": done}}
                response["echo"] = echo_of(msg.payload)
                out.append(encode_frame(Frame(TEXT, json.dumps(response).encode()), mask=True))
                done += 1
                if done == warmup:
                    started = time.perf_counter()
                if sent < total:
                    out.append(event_frame)
                    sent += 1
            if out:
                outbox.put(b"".join(out))
        return events / (time.perf_counter() - started)
    finally:
        outbox.put(None)
        sock.close()
        writer.join(10)


def _write(sock: socket.socket, outbox: "queue.Queue[bytes | None]") -> None:
    while (data := outbox.get()) is not None:
        try:
            sock.sendall(data)
        except OSError:
            return


CPU_PER_EVENT: dict[tuple[str, int], list[float]] = {}  # microseconds, run by run


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``; 0.0 elsewhere).

    Counted over the warm-up too, so a little above the true cost per counted event.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(name: str, events: int, size: int) -> float | None:
    port = free_port()
    pure = {"ONEBOT_REF_PURE": "1" if name == "onebot_ref pure" else ""}  # see onebot_ref/_speedups
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", name, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **pure},
    )
    try:
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            return None
        before = cpu_seconds(proc.pid)
        rate = run_load(port, SERVERS[name][1], events, size)
        if events:
            used = cpu_seconds(proc.pid) - before
            CPU_PER_EVENT.setdefault((name, size), []).append(used / events * 1e6)
        return rate
    except (OSError, ValueError) as exc:
        print(f"  {name}: failed: {exc}", file=sys.stderr)
        return None
    finally:
        proc.kill()
        proc.wait(10)


def available(name: str) -> bool:
    module = {
        "websockets.sync": "websockets",
        "websockets.asyncio": "websockets",
        "aiocqhttp": "aiocqhttp",
    }
    code = f"import {module.get(name, 'onebot_ref')}"
    return (
        subprocess.run([sys.executable, "-c", code], check=False, capture_output=True).returncode
        == 0
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=5000, help="small events to send")
    parser.add_argument("--large", type=int, default=200, help="1 MiB events to send")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best counts")
    parser.add_argument("--only", nargs="*", default=list(SERVERS), help="servers to measure")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        SERVERS[args.serve][0](args.port)
        return 0
    names = [n for n in args.only if available(n) or print(f"{n}: not installed, skipped")]
    from onebot_ref import _speedups

    print(f"onebot_ref: {_speedups.active.name}; onebot_ref pure: ONEBOT_REF_PURE=1")
    cases = [("small (~300 B)", args.small, 12), ("1 MiB", args.large, 2**20)]
    print(
        f"echo bot, blocking call per event, {IN_FLIGHT} events in flight; events/s (higher is better)"
    )
    print(f"{'case':<16}" + "".join(f"{n:>20}" for n in names) + "   onebot_ref ÷ others")
    for label, count, size in cases:
        rates: dict[str, float | None] = {n: None for n in names}
        for _ in range(args.repeat):  # interleaved, best of N: the machine may be shared
            for n in names:
                rate = measure(n, count, size)
                if rate is not None:
                    rates[n] = max(rate, rates[n] or 0.0)
        cells = "".join(f"{r:>20.0f}" if r else f"{'failed':>20}" for r in rates.values())
        ratios = "; ".join(  # each of ours (with and without the accelerators) against the others
            f"{ours}: "
            + ", ".join(f"{ref / r:.2f}x {n}" for n, r in rates.items() if r and n not in OURS)
            for ours in OURS
            if (ref := rates.get(ours))
        )
        print(f"{label:<16}{cells}   {ratios}")
        cpu = {n: min(CPU_PER_EVENT.get((n, size), [0.0])) for n in names}
        if any(cpu.values()):
            cells = "".join(f"{c:>20.0f}" for c in cpu.values())
            print(f"{'  CPU µs/event':<16}{cells}   (server process, the least of the runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
