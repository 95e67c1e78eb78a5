"""A thousand accounts on one reverse-WS server: memory, threads, fds, events/s, latency.

Each server runs the echo bot of ``bench_ws_server.py`` (a *blocking*
``send_private_msg`` per private message event) in its own process. The load
generator, this process, plays a OneBot implementation hosting ``--accounts``
bots: it opens one Universal connection per account, each with its own
``X-Self-ID``, then sends events round-robin over the connections with
``--in-flight`` events outstanding, and answers each action at once with an
``ok`` response carrying its echo. An event counts as done when its action
arrives; its latency is from the event's write to the action's arrival.

Reported per server: RSS per connection (the server process's RSS with every
connection open and idle, minus its RSS before the first one, divided by the
connections; and the same after the load), its threads (idle, and after the
load: handler pools start with the first event) and file descriptors with
every connection open, events/s, the server's CPU time per event (user and
system, from ``/proc/<pid>/stat`` over the counted events), and p50/p99 latency.

* onebot_ref: ``WsServer`` + ``reply()`` from the registry's 16 handler threads.
* websockets.sync: a thread per connection, events handed to an 8-thread pool.
* websockets.asyncio: one event loop, a task per event.

File descriptors: the server holds one per connection, and so does this
generator; both processes raise their soft ``RLIMIT_NOFILE`` to the hard limit
(``ulimit -Hn``), and the script stops with what to do if that is too low.

Usage: python benchmarks/bench_accounts.py [--accounts 1000] [--events 20000] [--repeat 3]
Needs: websockets; Linux (``/proc`` for RSS, threads and fds).
"""

import argparse
import base64
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench_ws_server import (  # a sibling script: its bots are the contenders
    cpu_seconds,
    echo_of,
    free_port,
    serve_onebot_ref,
    serve_websockets,
    serve_websockets_asyncio,
)

from onebot_ref.framer import CLOSE, TEXT, Frame, MessageReader, encode_frame

FIRST_ID = 100001
SERVERS = {
    "onebot_ref": serve_onebot_ref,
    "websockets.sync": serve_websockets,
    "websockets.asyncio": serve_websockets_asyncio,
}


def raise_fd_limit(needed: int) -> None:
    """Raise the soft fd limit to the hard one; exit with the fix if that is below ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed <= hard or (soft < needed and hard == resource.RLIM_INFINITY):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise SystemExit(
            f"this needs {needed} file descriptors per process but the hard limit is {hard}: "
            f"run 'ulimit -Hn {needed}' as root (or raise nofile in /etc/security/limits.conf), "
            "or pass a smaller --accounts"
        )


# --- what the server process is made of: /proc/<pid> ---


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_rss(pid: int, seconds: float = 1.0) -> int:
    """RSS once it stops moving (threads starting, buffers freed), within a few seconds."""
    last = rss_kib(pid)
    for _ in range(int(5 / seconds)):
        time.sleep(seconds)
        now = rss_kib(pid)
        if abs(now - last) < 64:
            return now
        last = now
    return last


# --- the load generator: one thread, every connection non-blocking ---


class Account:
    """One bot account's connection, as the implementation holds it."""

    def __init__(self, port: int, self_id: int) -> None:
        self.self_id = self_id
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"X-Self-ID: {self_id}\r\nX-Client-Role: Universal\r\nUser-Agent: bench\r\n\r\n"
            ).encode()
        )
        self.reader = MessageReader(mask=False)
        self.head = b""
        self.upgraded = False
        event = {
            "time": 1700000000,
            "self_id": self_id,
            "post_type": "message",
            "message_type": "private",
            "sub_type": "friend",
            "message_id": 1,
            "user_id": 42,
            "message": "hello",
            "raw_message": "hello",
            "font": 0,
            "sender": {"user_id": 42, "nickname": "bench"},
        }
        self.event = encode_frame(Frame(TEXT, json.dumps(event).encode()), mask=True)
        self.sent_at = 0.0

    def feed(self, data: bytes) -> None:
        if not self.upgraded:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in self.head.split(b"\r\n", 1)[0]:
                raise ConnectionError(f"account {self.self_id} refused: {self.head[:60]!r}")
            self.upgraded = True
            data, self.head = self.head[end + 4 :], b""
        self.reader.feed(data)

    def send(self, data: bytes) -> None:
        try:
            if self.sock.send(data) == len(data):
                return
        except BlockingIOError:
            pass
        raise RuntimeError(
            "a small frame did not fit in an idle socket: the server stopped reading"
        )


def run_load(port: int, accounts: int, events: int, in_flight: int, pid: int) -> dict[str, float]:
    """Connect, measure the idle server, drive ``events``; the figures of one run."""
    base_rss = settled_rss(pid)
    conns = [Account(port, FIRST_ID + i) for i in range(accounts)]
    selector = selectors.DefaultSelector()
    for conn in conns:
        conn.sock.setblocking(False)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    upgraded = 0
    deadline = time.monotonic() + 60
    while upgraded < accounts:  # every 101 in, before any event
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {upgraded} of {accounts} connections upgraded in 60s")
        for key, _ in selector.select(1.0):
            conn = key.data
            was = conn.upgraded
            conn.feed(conn.sock.recv(65536))
            upgraded += conn.upgraded and not was
    time.sleep(1.0)  # the server's side of the last handshakes finishes
    figures: dict[str, float] = {
        "idle_kib": (settled_rss(pid) - base_rss) / accounts,
        "threads": threads(pid),
        "fds": fds(pid),
    }
    warmup = max(in_flight, events // 10)
    total = warmup + events
    latencies: list[float] = []
    sent = done = 0
    started = time.perf_counter()
    cpu_before = 0.0
    while sent < min(in_flight, total):
        conn = conns[sent % accounts]
        conn.sent_at = time.perf_counter()
        conn.send(conn.event)
        sent += 1
    deadline = time.monotonic() + 600
    while done < total:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {total} events were answered in 600s")
        for key, _ in selector.select(10.0):
            conn = key.data
            data = conn.sock.recv(65536)
            if not data:
                raise ConnectionError(f"the server closed account {conn.self_id}")
            conn.feed(data)
            while (msg := conn.reader.next_message()) is not None:
                if msg.opcode == CLOSE:
                    raise ConnectionError(f"the server closed with {msg.payload!r}")
                if msg.opcode != TEXT:
                    continue
                now = time.perf_counter()
                response = {"status": "ok", "retcode": 0, "data": {"message_id": done}}
                response["echo"] = echo_of(msg.payload)
                conn.send(encode_frame(Frame(TEXT, json.dumps(response).encode()), mask=True))
                done += 1
                if done > warmup:
                    latencies.append(now - conn.sent_at)
                elif done == warmup:
                    started = now
                    cpu_before = cpu_seconds(pid)
                if sent < total:
                    nxt = conns[sent % accounts]
                    nxt.sent_at = time.perf_counter()
                    nxt.send(nxt.event)
                    sent += 1
    elapsed = time.perf_counter() - started
    figures["cpu_us"] = (cpu_seconds(pid) - cpu_before) / events * 1e6
    latencies.sort()
    figures["events_s"] = events / elapsed
    figures["p50_ms"] = latencies[len(latencies) // 2] * 1000
    figures["p99_ms"] = latencies[int(len(latencies) * 0.99)] * 1000
    figures["loaded_kib"] = (rss_kib(pid) - base_rss) / accounts
    figures["threads_after"] = threads(pid)
    for conn in conns:
        conn.sock.close()
    return figures


def measure(name: str, accounts: int, events: int, in_flight: int) -> dict[str, float] | None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", name, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            print(f"  {name}: did not start", file=sys.stderr)
            return None
        return run_load(port, accounts, events, in_flight, proc.pid)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"  {name}: failed: {exc}", file=sys.stderr)
        return None
    finally:
        proc.kill()
        proc.wait(10)


COLUMNS = [
    ("idle_kib", "KiB/conn idle", "{:.1f}"),
    ("loaded_kib", "KiB/conn after", "{:.1f}"),
    ("threads", "threads idle", "{:.0f}"),
    ("threads_after", "threads after", "{:.0f}"),
    ("fds", "fds", "{:.0f}"),
    ("events_s", "events/s", "{:.0f}"),
    ("cpu_us", "CPU µs/event", "{:.0f}"),
    ("p50_ms", "p50 ms", "{:.2f}"),
    ("p99_ms", "p99 ms", "{:.2f}"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000, help="connections, one per bot")
    parser.add_argument("--events", type=int, default=20000, help="events to count")
    parser.add_argument("--in-flight", type=int, default=32, help="events outstanding at once")
    parser.add_argument("--repeat", type=int, default=3, help="runs per server, interleaved")
    parser.add_argument("--only", nargs="*", default=list(SERVERS), help="servers to measure")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_fd_limit(args.accounts + 256)  # one socket per account, plus the usual
    if args.serve:
        SERVERS[args.serve](args.port)
        return 0
    print(
        f"{args.accounts} accounts, one connection each; echo bot with a blocking call per "
        f"event, {args.in_flight} events in flight round-robin; {args.repeat} runs, "
        "each figure as median (min-max)"
    )
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in args.only}
    for _ in range(args.repeat):  # interleaved: the machine may be shared
        for name in args.only:
            figures = measure(name, args.accounts, args.events, args.in_flight)
            if figures is not None:
                runs[name].append(figures)
    print(f"{'server':<20}" + "".join(f"{title:>22}" for _, title, _ in COLUMNS))
    for name, results in runs.items():
        cells = []
        for key, _, fmt in COLUMNS:
            values = sorted(r[key] for r in results)
            if not values:
                cells.append(f"{'failed':>22}")
                continue
            mid = fmt.format(values[len(values) // 2])
            spread = f"{fmt.format(values[0])}-{fmt.format(values[-1])}"
            cells.append(f"{mid + ' (' + spread + ')':>22}" if len(values) > 1 else f"{mid:>22}")
        print(f"{name:<20}" + "".join(cells))
    ref = runs.get("onebot_ref")
    for name, results in runs.items():
        if name == "onebot_ref" or not results or not ref:
            continue
        ratio = sorted(a["events_s"] / b["events_s"] for a, b in zip(ref, results, strict=False))
        print(
            f"onebot_ref ÷ {name}: events/s {ratio[len(ratio) // 2]:.2f}x "
            f"({ratio[0]:.2f}-{ratio[-1]:.2f}, run by run)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
