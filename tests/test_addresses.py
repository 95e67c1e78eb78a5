"""Host and port: one HOST:PORT parser for every command line, one check for every server."""

import os
import pathlib
import socket
import subprocess
import sys
from typing import Any

import pytest

from onebot_ref import ConfigError
from onebot_ref._tls import check_address, split_host_port
from onebot_ref.http_server import HttpServer
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_server import WsServer

ROOT = pathlib.Path(__file__).parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}


# -- the parser -------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    ("localhost:0", ("localhost", 0)),
    ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ("[::1]:8080", ("::1", 8080)),
    ("[::]:3001", ("::", 3001)),
])  # fmt: skip
def test_host_port_parses(value: str, expected: tuple[str, int]) -> None:
    assert split_host_port(value) == expected


@pytest.mark.parametrize(("value", "words"), [
    ("localhost:99999", "port '99999' is out of range (0 to 65535)"),
    ("localhost:" + "9" * 5000, "is out of range"),  # int() alone refuses past 4300 digits
    ("host:²", "is not a number"),  # "²".isdigit() is True
    ("host:-1", "is not a number"),
    ("::1:8080", "put an IPv6 address in brackets, e.g. [::1]:8080"),
    ("[::1]", "write an IPv6 address and its port as [::1]:8080"),
    ("[example.com]:80", "write an IPv6 address and its port as [::1]:8080"),
    ("8080", "'8080' is only a port"),
    (":8080", "has no host"),
    ("ws://127.0.0.1:8080/", "is a URL"),
])  # fmt: skip
def test_host_port_mistakes_are_named(value: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        split_host_port(value)
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)
    assert len(str(info.value)) < 200  # one line, whatever was typed


# -- every command line: exit 2 with one line, never a traceback --------------------------------


@pytest.mark.parametrize(("argv", "words"), [
    (["-m", "onebot_ref.demo", "ws-server", "--listen", "localhost:99999"], "out of range"),
    (["-m", "onebot_ref.demo", "http-server", "--listen", "::1:8080"], "in brackets"),
    (["-m", "onebot_ref.doctor", "--listen-ws", "localhost:99999"], "out of range"),
    (["-m", "onebot_ref.doctor", "--listen-http", "8080"], "is only a port"),
    (["-m", "onebot_ref.ws_server", "--listen", "localhost:99999"], "out of range"),
    (["-m", "onebot_ref.ws_server", "--listen", "0.0.0.0"], "has no port"),
    ([str(ROOT / "examples" / "ws_reverse.py"), "--listen", "localhost:99999"], "out of range"),
])  # fmt: skip
def test_cli_address_mistakes_are_usage_errors(argv: list[str], words: str) -> None:
    result = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=30, env=ENV, cwd=ROOT,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    message = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(message) == 1, result.stderr  # argparse's usage, then the one line
    assert words in message[0]
    assert result.stdout == ""


# -- every server: the mistake named at construction, before anything is bound ------------------


def held_port() -> socket.socket:
    """A socket bound to a loopback port, so that binding that port again fails."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


@pytest.mark.parametrize("server", [WsServer, HttpServer])
def test_host_and_port_in_one_string(server: type[WsServer] | type[HttpServer]) -> None:
    with held_port() as s:
        port = s.getsockname()[1]
        with pytest.raises(ConfigError) as info:
            server(f"127.0.0.1:{port}")
    name = server.__name__
    assert isinstance(info.value, ValueError)
    assert f"{name}: host '127.0.0.1:{port}' holds a port too" in str(info.value)
    assert f"pass host and port separately: {name}('127.0.0.1', {port})" in str(info.value)
    assert "another program" not in str(info.value)


@pytest.mark.parametrize("server", [WsServer, HttpServer])
@pytest.mark.parametrize(("host", "port", "words"), [
    ("ws://0.0.0.0:8080/", 0, "is a URL; pass host and port separately: {}('0.0.0.0', 8080)"),
    ("http://127.0.0.1", 5700, "is a URL; pass host and port separately: {}('127.0.0.1', 5700)"),
    ("[::1]", 0, "has brackets, which belong in URLs only; pass the bare address: {}('::1', 0)"),
    ("127.0.0.1", 99999, "port 99999 is out of range; give 0 to 65535"),
    ("127.0.0.1", -1, "port -1 is out of range"),
    ("127.0.0.1", "8080", "port '8080' is not an int"),
    (8080, 0, "host 8080 is not a string"),
])  # fmt: skip
def test_server_address_mistakes(
    server: type[WsServer] | type[HttpServer], host: Any, port: Any, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        server(host, port)
    assert words.format(server.__name__) in str(info.value)


def test_fake_onebot_servers_check_their_host_too(no_thread_leak: None) -> None:
    with FakeOneBot(host="127.0.0.1:3001") as fake:
        with pytest.raises(ConfigError, match=r"FakeWsServer\('127.0.0.1', 3001\)"):
            fake.start_ws_server()
        with pytest.raises(ConfigError, match=r"FakeHttpApi\('127.0.0.1', 3001\)"):
            fake.start_http_api()


def test_good_addresses_pass() -> None:
    for host in ("127.0.0.1", "0.0.0.0", "::", "::1", "localhost", "", "fe80::1%1"):
        check_address(host, 0, "WsServer")
    check_address("127.0.0.1", 65535, "WsServer")
