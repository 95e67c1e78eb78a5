"""The two server modes, HttpServer and WsServer, speak one vocabulary (issue 14).

The same argument names and defaults, one lifecycle (``start()`` binds, is
idempotent and returns when ready; ``serve_forever()`` closes what it started),
``on_connect(bot)``/``on_disconnect(bot)`` with one signature and one thread
model, ``add_handler``/``on`` on both, one ``call`` that can carry any action
parameter, and errors from the OneBotError tree. Over real loopback sockets,
with independent peers (raw sockets, requests, websocket-client, websockets)
playing the implementation where it makes sense.
"""

import _thread
import inspect
import json
import queue
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
import websocket
from conftest import upgrade_request, wait_until
from websockets.sync.client import connect as ws_connect

from onebot_ref.errors import ConfigError, NetworkError, OneBotError
from onebot_ref.http_client import HttpClient
from onebot_ref.http_server import HttpServer
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_server import Bot, WsServer

SERVERS: dict[str, Callable[..., HttpServer | WsServer]] = {
    "HttpServer": HttpServer,
    "WsServer": WsServer,
}
ACCEPT_THREAD = {"HttpServer": "onebot-http-server-{}", "WsServer": "onebot-ws-{}"}


def threads_named(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name and t.is_alive()]


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True if the peer closes (EOF or reset) within ``timeout``; reads and drops any data."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except OSError:
            return True
    return False


def event(self_id: int, **fields: Any) -> dict[str, Any]:
    base = {"time": 1700000000, "self_id": self_id, "post_type": "message"}
    base.update(message_type="private", sub_type="friend", user_id=42, message="hi")
    return {**base, **fields}


def heartbeat(self_id: int, interval_ms: int) -> dict[str, Any]:
    return {
        "time": 1700000000,
        "self_id": self_id,
        "post_type": "meta_event",
        "meta_event_type": "heartbeat",
        "status": {"online": True, "good": True},
        "interval": interval_ms,
    }


def raw_post(port: int, body: dict[str, Any], keep: socket.socket | None = None) -> socket.socket:
    """POST ``body`` over a raw keep-alive connection (``keep``, or a new one); expect 204."""
    data = json.dumps(body).encode()
    sock = keep or socket.create_connection(("127.0.0.1", port), timeout=10)
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n".encode()
    sock.sendall(head + data)
    assert sock.recv(1000).startswith(b"HTTP/1.1 204 ")
    return sock


# -- one vocabulary ---------------------------------------------------------------------------

VOCABULARY = [
    "host", "port", "registry", "timeout", "max_size", "max_header", "max_connections",
    "handshake_timeout", "heartbeat_factor", "ssl_context", "certfile", "keyfile",
    "on_connect", "on_disconnect",
]  # fmt: skip


@pytest.mark.parametrize("name", SERVERS)
def test_both_servers_take_the_same_names_all_with_defaults(name: str) -> None:
    parameters = inspect.signature(SERVERS[name]).parameters
    assert set(VOCABULARY) <= set(parameters)
    assert all(p.default is not inspect.Parameter.empty for p in parameters.values())
    assert parameters["heartbeat_factor"].default == 3.0
    assert parameters["max_header"].default == 64 * 1024
    for old in ("max_body", "max_message"):  # renamed outright (0.x: the README is the contract)
        assert old not in parameters
        with pytest.raises(TypeError, match=old):
            SERVERS[name](port=0, **{old: 1000})


def test_the_sizes_keep_their_defaults() -> None:
    assert inspect.signature(HttpServer).parameters["max_size"].default == 4 * 2**20
    assert inspect.signature(WsServer).parameters["max_size"].default == 64 * 2**20


@pytest.mark.parametrize("name", SERVERS)
def test_max_header_bounds_the_request_head_on_both(name: str, no_thread_leak: None) -> None:
    with SERVERS[name](port=0, max_header=2048) as server:
        for padding, status in ((1000, b" 4"), (3000, b" 431 ")):  # 4xx: not a WS upgrade/event
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                method = "POST" if name == "HttpServer" else "GET"
                sock.sendall(f"{method} / HTTP/1.1\r\nX: {'a' * padding}\r\n\r\n".encode())
                reply = sock.recv(1000)
            assert reply.startswith(b"HTTP/1.1" + status), reply[:60]
            if status == b" 431 ":
                assert b"2048" in reply
    # Both default to 64 KiB (a 20 KB head is fine), and a larger max_header is honoured
    # past the 64 KiB the head reader allows by default.
    for options, padding in (({}, 20_000), ({"max_header": 128 * 1024}, 80_000)):
        with SERVERS[name](port=0, **options) as server:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                if name == "HttpServer":
                    sock.sendall(b"POST / HTTP/1.1\r\nX: " + b"a" * padding + b"\r\n")
                    sock.sendall(b"Content-Length: 2\r\n\r\n{}")
                    assert sock.recv(1000).startswith(b"HTTP/1.1 400 ")  # read: {} is no event
                else:
                    sock.sendall(upgrade_request("/", ["X-Padding: " + "a" * padding]))
                    assert sock.recv(1000).startswith(b"HTTP/1.1 101 ")


def test_http_handshake_timeout_is_not_clamped_to_idle_timeout(no_thread_leak: None) -> None:
    """A new connection gets handshake_timeout for its first byte, even past idle_timeout."""
    with HttpServer(port=0, handshake_timeout=1.0, idle_timeout=0.1) as server:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as silent:
            assert closed_by_peer(silent, 5)
        assert time.monotonic() - started >= 0.8  # clamped, it was cut after 0.1-0.3 s
        # After its first byte a connection is bounded by idle/request timeouts as before.
        sock = raw_post(server.port, event(1))
        started = time.monotonic()
        assert closed_by_peer(sock, 5)
        assert time.monotonic() - started < 0.8
        sock.close()


@pytest.mark.parametrize("name", SERVERS)
@pytest.mark.parametrize(
    "options",
    [
        {"ssl_context": ssl.create_default_context(ssl.Purpose.CLIENT_AUTH), "certfile": "x.pem"},
        {"keyfile": "key.pem"},
        {"certfile": "/nonexistent/cert.pem"},
        {"max_size": 0},
        {"max_header": -1},
        {"handshake_timeout": 0},
        {"heartbeat_factor": 0},
        {"timeout": -1.0},
        {"max_connections": 0},
    ],
    ids="-".join,
)
def test_argument_mistakes_are_config_errors(name: str, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        SERVERS[name](port=0, **options)
    assert isinstance(caught.value, OneBotError) and isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)


# -- one lifecycle ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVERS)
def test_start_binds_once_and_returns_ready(name: str, no_thread_leak: None) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = SERVERS[name](port=held.getsockname()[1])  # nothing bound yet: no error
        with pytest.raises(NetworkError):
            busy.start()
        busy.close()
    server = SERVERS[name](port=0)
    assert server.port == 0  # the asked-for port until start() binds
    starters = [threading.Thread(target=server.start) for _ in range(4)]
    for starter in starters:
        starter.start()
    assert server.start() is server  # returns when bound and accepting
    for starter in starters:
        starter.join(10)
    try:
        assert server.port > 0
        with socket.create_connection(("127.0.0.1", server.port), timeout=10):
            pass
        with server as entered:  # with starts too: still the same one accept thread
            assert entered is server
            assert len(threads_named(ACCEPT_THREAD[name].format(server.port))) == 1
    finally:
        server.close()
    wait_until(lambda: not threads_named(ACCEPT_THREAD[name].format(server.port)))


def serving(name: str, **options: Any) -> HttpServer | WsServer:
    return SERVERS[name](port=0, **options)


def a_peer_for(name: str, server: HttpServer | WsServer, self_id: int) -> Any:
    """An account connected to ``server``: a keep-alive POST connection, or a reverse WS."""
    if name == "HttpServer":
        return raw_post(server.port, event(self_id))
    client = ws_connect(server.url, additional_headers={"X-Self-ID": str(self_id)}).__enter__()
    wait_until(lambda: server.bots == [str(self_id)])
    return client


def peer_sees_the_close(name: str, peer: Any) -> bool:
    if name == "HttpServer":
        return closed_by_peer(peer, 5)
    try:
        peer.recv(timeout=5)
    except Exception as exc:  # ConnectionClosed with our 1001
        return getattr(getattr(exc, "rcvd", None), "code", None) == 1001
    return False


def close_peer(peer: Any) -> None:
    peer.close()


@pytest.mark.parametrize("name", SERVERS)
def test_serve_forever_closes_what_it_started_on_ctrl_c(name: str, no_thread_leak: None) -> None:
    gone: queue.Queue[str] = queue.Queue()
    server = serving(name, on_disconnect=lambda bot: gone.put(bot.self_id))
    peers: list[Any] = []

    def connect_then_interrupt() -> None:
        try:
            wait_until(lambda: server.port != 0, what="bound")
            peers.append(a_peer_for(name, server, 7))
        finally:
            _thread.interrupt_main()  # Ctrl+C, as the terminal sends it to the main thread

    helper = threading.Thread(target=connect_then_interrupt)
    helper.start()
    with pytest.raises(KeyboardInterrupt):
        server.serve_forever()
    helper.join(10)
    try:
        assert peers, "the peer did not connect"
        assert peer_sees_the_close(name, peers[0])  # its connection thread ended it
        assert gone.get(timeout=5) == "7"  # on_disconnect at close, on the hook thread
        assert not server.registry.submit({"post_type": "meta_event"})  # our registry: closed
    finally:
        for peer in peers:
            close_peer(peer)


@pytest.mark.parametrize("name", SERVERS)
def test_serve_forever_returns_and_closes_when_closed_from_another_thread(
    name: str, no_thread_leak: None
) -> None:
    gone: queue.Queue[str] = queue.Queue()
    server = serving(name, on_disconnect=lambda bot: gone.put(bot.self_id))
    runner = threading.Thread(target=server.serve_forever)
    runner.start()
    wait_until(lambda: server.port != 0, what="bound")
    peer = a_peer_for(name, server, 8)
    try:
        server.close()
        runner.join(10)
        assert not runner.is_alive()
        assert peer_sees_the_close(name, peer)
        assert gone.get(timeout=5) == "8"
    finally:
        close_peer(peer)


# -- one way to register, one way to call ------------------------------------------------------


@pytest.mark.parametrize("name", SERVERS)
def test_add_handler_and_on_on_both(name: str, no_thread_leak: None) -> None:
    seen: queue.Queue[str] = queue.Queue()
    with serving(name) as server:
        server.add_handler("message.private", lambda e: seen.put("add_handler"))
        server.on("message")(lambda e: seen.put("on"))
        peer = a_peer_for(name, server, 3)
        try:
            if name == "WsServer":
                peer.send(json.dumps(event(3)))
            assert {seen.get(timeout=5), seen.get(timeout=5)} == {"add_handler", "on"}
        finally:
            close_peer(peer)


ODD_PARAMS = {"timeout": 3, "self_id": 777}  # action parameters named like call()'s keywords


def test_ws_server_call_carries_parameters_named_timeout_and_self_id(no_thread_leak: None) -> None:
    with WsServer(port=0, timeout=10) as server, FakeOneBot() as fake:
        fake.connect_reverse(server.url, reconnect_interval=0.05)
        wait_until(lambda: server.bots == [str(fake.self_id)])
        server.call("get_stranger_info", ODD_PARAMS, user_id=1)
        server.call("get_stranger_info", ODD_PARAMS, self_id=fake.self_id, user_id=2)
        server.bot(fake.self_id).call("get_stranger_info", {"timeout": 3}, self_id=777, user_id=3)
        server.call_for({"self_id": fake.self_id}, "get_stranger_info", ODD_PARAMS, user_id=4)
        # kwargs win over params; timeout= is still the call's own deadline
        server.call("get_stranger_info", {"user_id": 0, **ODD_PARAMS}, user_id=5, timeout=10)
        calls = [params for action, params in fake.calls if action == "get_stranger_info"]
    assert calls == [{**ODD_PARAMS, "user_id": n} for n in range(1, 6)]


def test_http_server_call_carries_parameters_named_timeout_and_self_id(
    no_thread_leak: None,
) -> None:
    with FakeOneBot() as fake:
        api = HttpClient(fake.start_http_api(), timeout=10)
        with HttpServer(port=0, api=api) as server:
            server.call("get_stranger_info", ODD_PARAMS, user_id=1)
            server.bot(fake.self_id).call(
                "get_stranger_info", {"timeout": 3}, self_id=777, user_id=2
            )
            server.call_for({"self_id": 1}, "get_stranger_info", ODD_PARAMS, user_id=3)
            server.call("get_stranger_info", {"user_id": 0, **ODD_PARAMS}, user_id=4, timeout=10)
        api.close()
        calls = [params for action, params in fake.calls if action == "get_stranger_info"]
    assert calls == [{**ODD_PARAMS, "user_id": n} for n in range(1, 5)]


# -- on_connect / on_disconnect over HTTP POST -------------------------------------------------


def test_http_hooks_first_event_connects_and_stopped_heartbeats_disconnect(
    no_thread_leak: None,
) -> None:
    log: queue.Queue[tuple[str, str, str]] = queue.Queue()

    def hook(kind: str) -> Any:
        return lambda bot: log.put((kind, bot.self_id, threading.current_thread().name))

    with HttpServer(
        port=0, heartbeat_factor=2.0, on_connect=hook("connect"), on_disconnect=hook("disconnect")
    ) as server:
        keep = raw_post(server.port, event(1))  # account 1: events and heartbeats
        with requests.Session() as other:  # account 2: events only, from another peer
            reply = other.post(server.url, json=event(2), timeout=5)
            assert reply.status_code == 204
            assert log.get(timeout=5)[:2] == ("connect", "1")
            assert log.get(timeout=5)[:2] == ("connect", "2")
            raw_post(server.port, heartbeat(1, 100), keep)  # every 0.1 s: gone after ~0.2 s
            assert log.get(timeout=5)[:2] == ("disconnect", "1")
            assert server.bots == ["2"]  # no heartbeat ever: never taken for gone
            raw_post(server.port, event(1), keep)  # back: a new connect
            assert log.get(timeout=5)[:2] == ("connect", "1")
            assert sorted(server.bots) == ["1", "2"]
        keep.close()
    at_close = [log.get(timeout=5) for _ in range(2)]
    assert sorted(entry[:2] for entry in at_close) == [("disconnect", "1"), ("disconnect", "2")]
    assert log.empty()


def test_http_hooks_run_in_order_on_one_thread_and_may_call_the_api(
    caplog: pytest.LogCaptureFixture, no_thread_leak: None
) -> None:
    order: list[tuple[str, str]] = []
    threads: set[str] = set()
    answers: queue.Queue[Any] = queue.Queue()

    def greet(bot: Bot) -> None:
        threads.add(threading.current_thread().name)
        order.append(("connect", bot.self_id))
        answers.put(bot.get_login_info())  # a call from the hook, through api=

    def boom(bot: Bot) -> None:
        threads.add(threading.current_thread().name)
        order.append(("disconnect", bot.self_id))
        raise RuntimeError("hook failed")

    with FakeOneBot() as fake:
        api = HttpClient(fake.start_http_api(), timeout=10)
        with HttpServer(port=0, api=api, on_connect=greet, on_disconnect=boom) as server:
            for self_id in (11, 12, 13):
                requests.post(server.url, json=event(self_id), timeout=5).raise_for_status()
            for _ in range(3):
                assert answers.get(timeout=5)["user_id"] == fake.self_id
        api.close()
        assert [c for c in fake.calls if c[0] == "get_login_info"] == [("get_login_info", {})] * 3
    assert order[:3] == [("connect", "11"), ("connect", "12"), ("connect", "13")]
    assert sorted(order[3:]) == [("disconnect", "11"), ("disconnect", "12"), ("disconnect", "13")]
    assert len(threads) == 1
    (thread,) = threads
    assert thread == f"onebot-http-hooks-{server.port}"  # the server's own, not a request thread
    assert caplog.text.count("RuntimeError: hook failed") == 3  # logged, and the next one ran


# -- WsServer's new arguments -------------------------------------------------------------------


def test_ws_server_caps_connections_with_503_before_the_upgrade(no_thread_leak: None) -> None:
    with WsServer(port=0, max_connections=2) as server:
        held = [
            websocket.create_connection(server.url, header=[f"X-Self-ID: {n}"], timeout=10)
            for n in (1, 2)
        ]
        wait_until(lambda: server.bots == ["1", "2"])
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(upgrade_request("/", ["X-Self-ID: 3"]))
                reply = b""
                while chunk := sock.recv(1000):
                    reply += chunk
            assert reply.startswith(b"HTTP/1.1 503 "), reply[:80]
            assert b"\r\nRetry-After: 1\r\n" in reply and b"max_connections=2" in reply
            assert server.busy_refusals == 1
        finally:
            held[0].close()
        wait_until(lambda: server.bots == ["2"])
        third = websocket.create_connection(server.url, header=["X-Self-ID: 3"], timeout=10)
        wait_until(lambda: server.bots == ["2", "3"])  # room again: served
        third.close()
        held[1].close()


def test_ws_server_heartbeat_factor_sets_when_a_silent_bot_is_dropped(
    no_thread_leak: None,
) -> None:
    with WsServer(port=0, heartbeat_factor=10.0) as server:
        client = websocket.create_connection(server.url, header=["X-Self-ID: 5"], timeout=10)
        try:
            client.send(json.dumps(heartbeat(5, 100)))  # every 0.1 s, then silence
            started = time.monotonic()
            wait_until(lambda: server.bots == [], what="the silent bot dropped")
            took = time.monotonic() - started
        finally:
            client.close()
    assert took >= 0.8, f"dropped after {took:.2f}s: 3 intervals, not heartbeat_factor=10"


# -- the ws_server command line: --listen and --token, as the demo and the doctor -------------


def test_ws_server_cli_takes_listen_and_token() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "onebot_ref.ws_server", "--listen", "127.0.0.1:0", "--token", "tk"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = ""
        for _ in range(20):
            line = proc.stderr.readline() if proc.stderr else ""
            if "listening on " in line:
                break
        url = line.split("listening on ")[1].strip()
        assert url.startswith("ws://127.0.0.1:")
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, timeout=10)
        assert refused.value.status_code == 401
        client = websocket.create_connection(url, header=["Authorization: Bearer tk"], timeout=10)
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
    for old in (["--port", "0"], ["--host", "127.0.0.1"], ["--access-token", "tk"]):
        result = subprocess.run(
            [sys.executable, "-m", "onebot_ref.ws_server", *old],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert result.returncode == 2 and "unrecognized arguments" in result.stderr
