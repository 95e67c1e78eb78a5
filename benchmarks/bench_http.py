#!/usr/bin/env python3
"""Benchmark modes 1 and 2 side by side with the alternatives; prints rates and ratios.

1. Receivers (mode 2), as an echo bot that answers every message event with the
   quick operation ``{"reply": <message>}``: onebot_ref's HttpServer, the seed's
   Flask receiver (``app.run(threaded=True)``) and a bare, tuned stdlib
   ThreadingHTTPServer that does only the JSON work. Each runs in its own
   process; 8 client threads here each keep one connection alive and post
   events back to back for a fixed time.
2. Callers (mode 1): HttpClient against a bare requests.Session and a per-call
   ``requests.post``, each calling a fast stdlib HTTP API server in another process.

Not a test: numbers depend on the machine. Needs flask (benchmarks/requirements.txt).
Usage: python benchmarks/bench_http.py [--seconds 3]
"""

import argparse
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EVENT = {
    "time": 1700000000,
    "self_id": 10001,
    "post_type": "message",
    "message_type": "private",
    "sub_type": "friend",
    "user_id": 42,
    "message": [{"type": "text", "data": {"text": "ping 你好"}}],
    "raw_message": "ping 你好",
    "sender": {"user_id": 42, "nickname": "tester"},
}
OK = b'{"status":"ok","retcode":0,"data":{"message_id":1}}'


# -- the servers, each run in a child process (``--serve KIND``) ---------------


class TunedHandler(BaseHTTPRequestHandler):
    """The least a correct keep-alive echo receiver does with the stdlib."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/":
            reply = json.dumps({"reply": json.loads(body)["message"]}).encode()
        else:  # an HTTP API action, for the caller benchmark
            json.loads(body)
            reply = OK
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(kind: str) -> None:
    """Bind port 0, print the port, serve until stdin closes."""
    threading.Thread(target=lambda: (sys.stdin.read(), os_exit()), daemon=True).start()  # type: ignore[func-returns-value]  # two steps in a lambda
    if kind == "onebot_ref":
        from onebot_ref.http_server import HttpServer

        server = HttpServer(port=0)
        server.on("message")(lambda event: {"reply": event["message"]})
        server.start()  # binds: the port is known from here
        print(server.port, flush=True)
        server.serve_forever()
    elif kind == "stdlib":
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), TunedHandler)
        httpd.daemon_threads = True
        print(httpd.server_address[1], flush=True)
        httpd.serve_forever()
    elif kind == "flask":
        import logging

        from flask import Flask, jsonify, request

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = Flask("seed")

        def receive() -> Any:
            event = request.get_json()
            return jsonify({"reply": event["message"]})

        app.post("/")(receive)  # a call, not @: untyped where flask is absent (CI's mypy)

        port = free_port()
        print(port, flush=True)
        app.run("127.0.0.1", port, threaded=True)


def os_exit() -> None:
    import os

    os._exit(0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(kind: str) -> tuple[subprocess.Popen[str], int]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    port = int(child.stdout.readline())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # Flask binds after printing
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return child, port


def stop_server(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.close()
    try:
        child.wait(5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(5)


# -- receiver load: 8 keep-alive connections, raw sockets ----------------------


def read_response(sock: socket.socket, buffer: bytes) -> tuple[bytes, bool]:
    """Read one response with Content-Length; return what is left over and whether it closes."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
        raise RuntimeError(head.split(b"\r\n")[0].decode())
    length, close = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"connection":
            close = value.strip().lower() == b"close"
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed mid-body")
        rest += chunk
    return rest[length:], close


def receiver_rate(port: int, seconds: float, connections: int = 8) -> float:
    body = json.dumps(EVENT, ensure_ascii=False).encode()
    request = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"X-Self-ID: 10001\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    counts = [0] * connections
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        # Like go-cqhttp's Go client: reuse the connection unless the server closes it
        # (Werkzeug's development server answers every request with Connection: close).
        while time.monotonic() < stop:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                leftover, close = b"", False
                while not close and time.monotonic() < stop:
                    sock.sendall(request)
                    leftover, close = read_response(sock, leftover)
                    counts[n] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    return sum(counts) / (time.monotonic() - started)


# -- caller load: sequential calls from one thread -----------------------------


def caller_rates(port: int, seconds: float, rounds: int = 3) -> dict[str, float]:
    import requests

    from onebot_ref.http_client import HttpClient

    base = f"http://127.0.0.1:{port}"
    params: dict[str, Any] = {"user_id": 42, "message": "hello 你好", "auto_escape": False}
    client = HttpClient(base)
    session = requests.Session()
    headers = {"Content-Type": "application/json"}

    def with_client() -> None:
        client.call("send_private_msg", **params)

    def with_session() -> None:
        response = session.post(
            base + "/send_private_msg", json=params, headers=headers, timeout=30
        )
        assert response.status_code == 200 and json.loads(response.content)["status"] == "ok"

    def per_call() -> None:
        response = requests.post(base + "/send_private_msg", json=params, timeout=30)
        assert response.status_code == 200 and json.loads(response.content)["status"] == "ok"

    contenders = {
        "HttpClient": with_client,
        "requests.Session": with_session,
        "requests.post": per_call,
    }
    best = dict.fromkeys(contenders, 0.0)
    for _ in range(rounds):  # interleaved rounds, best of each: less noise from the machine
        for name, func in contenders.items():
            count, started = 0, time.monotonic()
            while time.monotonic() - started < seconds / rounds:
                func()
                count += 1
            best[name] = max(best[name], count / (time.monotonic() - started))
    client.close()
    session.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per contender (default 3)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    print(f"Receivers: echo bot, 8 keep-alive connections, {args.seconds:g} s each")
    servers = {kind: start_server(kind) for kind in ("onebot_ref", "stdlib", "flask")}
    rates = dict.fromkeys(servers, 0.0)
    try:
        for _ in range(3):  # interleaved rounds, best of each: less noise from the machine
            for kind, (_child, port) in servers.items():
                receiver_rate(port, 0.2)  # warm up
                rates[kind] = max(rates[kind], receiver_rate(port, args.seconds / 3))
    finally:
        for child, _port in servers.values():
            stop_server(child)
    for kind, rate in rates.items():
        print(f"  {kind:<28} {rate:>9.0f} events/s")
    print(
        f"  HttpServer / bare stdlib      {rates['onebot_ref'] / rates['stdlib']:>9.2f}x  (target >= 0.9)"
    )
    print(
        f"  HttpServer / Flask            {rates['onebot_ref'] / rates['flask']:>9.2f}x  (target >= 5)"
    )

    print(f"Callers: sequential calls from one thread, {args.seconds:g} s each")
    child, port = start_server("stdlib")
    try:
        calls = caller_rates(port, args.seconds)
    finally:
        stop_server(child)
    for name, rate in calls.items():
        print(f"  {name:<28} {rate:>9.0f} calls/s")
    ratio = calls["HttpClient"] / calls["requests.Session"]
    print(f"  HttpClient / requests.Session {ratio:>9.2f}x  (target >= 0.9)")
    print(f"  HttpClient / requests.post    {calls['HttpClient'] / calls['requests.post']:>9.2f}x")


if __name__ == "__main__":
    main()
