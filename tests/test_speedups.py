"""The optional accelerators give the pure path's answers, byte for byte, or are not used.

Masking (RFC 6455 section 5.3) and JSON each have a pure-Python path and, with
the ``speedups`` extra, a C one (``websockets.speedups.apply_mask``, orjson).
Here the two are compared directly (hypothesis: equal results, or the same
exception with the same message), and over real loopback sockets with
independent peers. test_codec.py and test_framer.py run whole on both paths.
"""

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from conftest import wait_until
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect as ws_connect

from onebot_ref import _speedups, codec
from onebot_ref.errors import DecodeError, EncodeError, ProtocolError
from onebot_ref.framer import MASK_LANES_FROM, REMEMBER_FROM, apply_mask, check_text
from onebot_ref.ws_client import WsClient
from onebot_ref.ws_server import WsServer

pytestmark = pytest.mark.usefixtures("no_thread_leak")

KEYS = [bytes.fromhex("37fa213d"), bytes.fromhex("00000000"), bytes.fromhex("ff01fe80")]
LARGE = [
    MASK_LANES_FROM - 1,
    MASK_LANES_FROM,
    MASK_LANES_FROM + 1,
    MASK_LANES_FROM + 3,
    4099,
    65536,
    2**20 + 3,
]


def reference_mask(data: bytes, key: bytes) -> bytes:
    """Section 5.3 read literally: "octet i [...] XOR [...] octet at index i modulo 4"."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def on_path(accelerated: bool, function: Callable[[], Any]) -> Any:
    """Call ``function`` with the accelerators on or off; the result or the exception raised."""
    before = "pure" not in _speedups.active.name
    _speedups.use(accelerated)
    try:
        return function()
    except Exception as exc:  # compared by class and message below
        return exc
    finally:
        _speedups.use(before)


def assert_same(pure: Any, fast: Any) -> None:
    """Equal values of the same types all the way down, or the same exception and message."""
    if isinstance(pure, Exception) or isinstance(fast, Exception):
        assert type(pure) is type(fast), (pure, fast)
        assert str(pure) == str(fast)
        return
    assert_identical(pure, fast)


def assert_identical(a: Any, b: Any) -> None:
    """Equal all the way down, types and key order too; iterative, for the deeply nested
    cases (recursing here passed Python 3.13's recursion limit under pytest)."""
    pairs = [(a, b)]
    while pairs:
        a, b = pairs.pop()
        assert type(a) is type(b), (a, b)
        if isinstance(a, float) and math.isnan(a):
            assert math.isnan(b)
        elif isinstance(a, float):
            assert a == b and math.copysign(1, a) == math.copysign(1, b), (a, b)
        elif isinstance(a, dict):
            assert list(a) == list(b)  # key order too
            pairs.extend((a[key], b[key]) for key in a)
        elif isinstance(a, list):
            assert len(a) == len(b)
            pairs.extend(zip(a, b, strict=True))
        else:
            assert a == b


@pytest.fixture
def accelerators() -> Iterator[None]:
    """The accelerators must be installed here (the test extra has them): fail, never skip."""
    name = _speedups.use(True)
    assert "pure" not in name, f"{name}: install the test extra (pip install -e '.[test]')"
    yield


# -- masking ------------------------------------------------------------------------


@pytest.mark.parametrize("accelerated", [False, True], ids=["pure", "speedups"])
def test_mask_equals_the_reference_for_every_short_length_and_offset(
    accelerated: bool, accelerators: None
) -> None:
    buffer = bytearray(os.urandom(64 + 4))
    for key in KEYS:
        for offset in range(4):  # the payload starts anywhere in the receive buffer
            for n in range(65):
                view = memoryview(buffer)[offset : offset + n]
                got = on_path(accelerated, partial(apply_mask, view, key))
                assert got == reference_mask(bytes(view), key), (key, offset, n)


@pytest.mark.parametrize("accelerated", [False, True], ids=["pure", "speedups"])
@pytest.mark.parametrize("n", LARGE)
def test_mask_equals_the_reference_for_large_sizes(
    accelerated: bool, n: int, accelerators: None
) -> None:
    buffer = bytearray(os.urandom(n + 3))
    key = KEYS[0]
    for offset in range(4):
        view = memoryview(buffer)[offset : offset + n]
        got = on_path(accelerated, partial(apply_mask, view, key))
        assert type(got) is bytes
        # the reference in its big-integer form: a byte loop over 1 MiB would take seconds
        repeated = int.from_bytes((key * (n // 4 + 1))[:n], "little")
        expected = (int.from_bytes(view, "little") ^ repeated).to_bytes(n, "little")
        assert got == expected
        assert reference_mask(bytes(view[:4099]), key) == expected[:4099]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.binary(min_size=4, max_size=4))
def test_mask_pure_and_accelerated_agree(data: bytes, key: bytes) -> None:
    pure = on_path(False, lambda: apply_mask(data, key))
    assert pure == reference_mask(data, key)
    assert on_path(True, lambda: apply_mask(data, key)) == pure
    assert apply_mask(pure, key) == data  # its own inverse


# -- JSON -----------------------------------------------------------------------------

# Everything the two paths might disagree on: integers on both sides of 64 bits,
# floats of every kind (NaN and infinities too), text with lone surrogates,
# control characters and U+2028, duplicate-prone short keys, deep-ish nesting.
INTS = st.one_of(
    st.integers(),
    st.integers(min_value=2**62, max_value=2**66),
    st.integers(min_value=-(2**66), max_value=-(2**62)),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]),
)
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, st.floats(), TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=3), inner, max_size=5),
    ),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(VALUES)
def test_dumps_pure_and_accelerated_give_the_same_bytes_or_the_same_error(value: Any) -> None:
    pure = on_path(False, lambda: codec.dumps(value))
    fast = on_path(True, lambda: codec.dumps(value))
    assert_same(pure, fast)
    if isinstance(pure, Exception):
        assert isinstance(pure, EncodeError)


def wire_texts() -> st.SearchStrategy[bytes | str]:
    """JSON as peers write it (escaped or not, spaced or not), broken JSON, and raw bytes."""
    as_json = st.builds(
        lambda value, ascii_only, spaced: json.dumps(
            value, ensure_ascii=ascii_only, separators=(", ", ": ") if spaced else (",", ":")
        ),
        VALUES,
        st.booleans(),
        st.booleans(),
    )
    encoded = as_json.map(lambda text: text.encode("utf-8", "surrogatepass"))
    spliced = st.tuples(as_json, st.integers(0, 50), TEXT).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
    )
    duplicates = st.lists(st.tuples(st.sampled_from("abc"), INTS), max_size=6).map(
        lambda pairs: "{" + ",".join(f'"{k}":{v}' for k, v in pairs) + "}"
    )
    numbers = st.from_regex(r"\A\s?-?[0-9]{1,25}(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,4})?\s?\Z")
    return st.one_of(as_json, encoded, spliced, duplicates, numbers, st.binary(max_size=60))


@settings(max_examples=800, deadline=None)
@given(wire_texts())
def test_loads_pure_and_accelerated_give_the_same_value_or_the_same_error(
    data: bytes | str,
) -> None:
    pure = on_path(False, lambda: codec.loads(data))
    fast = on_path(True, lambda: codec.loads(data))
    assert_same(pure, fast)
    if isinstance(pure, Exception):
        assert isinstance(pure, DecodeError)


@pytest.mark.parametrize(
    "text",
    [
        "18446744073709551616",  # orjson reads 2**64 as a float
        "-9223372036854775809",
        '{"user_id": 144115218731218202000, "a": [1e400]}',
        '"\\ud800"',  # a lone surrogate escape: orjson refuses it, json keeps it
        "NaN",
        "[-Infinity]",
        '{"a": 1, "a": 2, "b": 3}',
        "\u3000{}\u3000",  # str.strip() takes Unicode spaces; JSON and orjson do not
        "[" * 300 + "]" * 300,  # deeper than json may go, within orjson's 1024
        "[" * 2000 + "]" * 2000,
        '{"raw_info":"a\x11b"}',
    ],
)
def test_loads_edge_cases_agree(text: str, accelerators: None) -> None:
    for data in (text, text.encode("utf-8", "surrogatepass")):
        assert_same(
            on_path(False, partial(codec.loads, data)),
            on_path(True, partial(codec.loads, data)),
        )


DEEP: list[Any] = []
for _ in range(300):  # deeper than orjson writes (254), shallower than json's limit
    DEEP = [DEEP]


@pytest.mark.parametrize(
    "value",
    [
        2**64,
        -(2**63) - 1,
        {"a": [1e-07, 1e16, -0.0, 0.1]},  # orjson writes 1e-7
        "\ud800",
        float("nan"),
        DEEP,
        {"k": '\x00\x1f\x7f\u2028 "quoted" \\ 小明😀'},
    ],
    ids=["2**64", "below-int64", "floats", "surrogate", "nan", "deep", "escapes"],
)
def test_dumps_edge_cases_agree(value: Any, accelerators: None) -> None:
    assert_same(
        on_path(False, lambda: codec.dumps(value)), on_path(True, lambda: codec.dumps(value))
    )


# -- over the wire, with independent peers -----------------------------------------

# A 1 MiB event (CJK, emoji) that orjson reads, but not exactly: an id beyond 64 bits
# (orjson makes it a float), and a float that orjson would write as "1e-7".
BIG_TEXT = "小明😀 x" * (2**20 // 12)
STRANGE = (
    json.dumps(
        {
            "post_type": "message",
            "message_type": "private",
            "user_id": 2**70 + 1,
            "message": BIG_TEXT,
        },
        ensure_ascii=False,
    )[:-1]
    + ', "ratio": 1e-07}'
)


@pytest.mark.parametrize("accelerated", [False, True], ids=["pure", "speedups"])
def test_reverse_ws_1mib_event_with_edge_values_round_trips_exactly(
    accelerated: bool, accelerators: None
) -> None:
    """A websockets client (it masks in C) sends 1 MiB; our server unmasks, decodes, replies."""
    _speedups.use(accelerated)
    try:
        with WsServer(port=0, timeout=10) as server:
            seen: list[dict[str, Any]] = []

            @server.on("message.private")
            def echo(event: dict[str, Any]) -> None:
                seen.append(event)
                server.reply(event, event["message"])

            with ws_connect(
                server.url, additional_headers={"X-Self-ID": "10001"}, max_size=None
            ) as peer:
                peer.send(STRANGE)
                request = json.loads(peer.recv(timeout=20))
                peer.send(json.dumps({"status": "ok", "retcode": 0, "echo": request["echo"]}))
                assert server.registry.join(10)
        assert seen[0]["user_id"] == 2**70 + 1 and seen[0]["ratio"] == 1e-07
        assert request["action"] == "send_private_msg"
        assert request["params"]["user_id"] == 2**70 + 1
        assert request["params"]["message"] == BIG_TEXT
    finally:
        _speedups.use(True)


@pytest.mark.parametrize("accelerated", [False, True], ids=["pure", "speedups"])
def test_forward_ws_client_reads_a_1mib_event_exactly(
    accelerated: bool, accelerators: None
) -> None:
    """A websockets server sends 1 MiB unmasked; our client masks its reply (both paths)."""
    import threading

    from websockets.sync.server import serve

    replies: list[dict[str, Any]] = []

    def implementation(ws: Any) -> None:
        ws.send(STRANGE)
        replies.append(json.loads(ws.recv(timeout=20)))
        ws.send(
            json.dumps({"status": "ok", "retcode": 0, "data": None, "echo": replies[0]["echo"]})
        )

    _speedups.use(accelerated)
    try:
        with serve(implementation, "127.0.0.1", 0, max_size=None) as impl:
            thread = threading.Thread(target=impl.serve_forever, daemon=True)
            thread.start()
            port = impl.socket.getsockname()[1]
            seen: list[dict[str, Any]] = []
            bot = WsClient(f"ws://127.0.0.1:{port}/", max_size=8 * 2**20)

            @bot.on("message.private")
            def echo(event: dict[str, Any]) -> None:
                seen.append(event)
                bot.reply(event, event["message"])

            with bot:
                wait_until(lambda: replies, 20, "the bot's reply")
            impl.shutdown()
            thread.join(10)
        assert seen[0]["user_id"] == 2**70 + 1
        assert replies[0]["params"]["user_id"] == 2**70 + 1
        assert replies[0]["params"]["message"] == BIG_TEXT
    finally:
        _speedups.use(True)


@pytest.mark.parametrize(
    ("pure", "says"),
    [("", "websockets.speedups; JSON: orjson"), ("1", "masking: pure Python; JSON: pure Python")],
)
def test_one_debug_line_names_the_active_path(pure: str, says: str) -> None:
    code = (
        "import logging; logging.basicConfig(level=logging.DEBUG, format='%(name)s %(message)s');"
        "import onebot_ref.ws_server"
    )
    env = {**os.environ, "ONEBOT_REF_PURE": pure}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = [line for line in done.stderr.splitlines() if "speedups" in line]
    assert len(lines) == 1 and lines[0].startswith("onebot_ref speedups: "), done.stderr
    assert says in lines[0]


# -- a large text message is checked once, and read once --------------------------

INVALID_UTF8 = [
    b"\xed\xa0\x80",  # an encoded surrogate (U+D800)
    b"\xc0\x80",  # overlong NUL
    b"\xe0\x80\x80",  # overlong
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xf5\x80\x80\x80",
    b"\xe4\xbd",  # truncated
    b"\x80",  # a lone continuation byte
    b"\xff",
]


def large_json(middle: bytes) -> bytes:
    """A JSON text message past REMEMBER_FROM, non-ASCII, with ``middle`` inside a string."""
    return b'{"a": "' + "你".encode() * (REMEMBER_FROM // 3) + middle + b'"}'


@pytest.mark.parametrize("accelerated", [False, True], ids=["pure", "speedups"])
@pytest.mark.parametrize("bad", INVALID_UTF8, ids=lambda b: b.hex())
def test_a_large_text_message_that_is_not_utf8_is_1007_on_both_paths(
    accelerated: bool, bad: bytes, accelerators: None
) -> None:
    payload = large_json(bad)
    error = on_path(accelerated, partial(check_text, payload))
    assert isinstance(error, ProtocolError) and error.close_code == 1007


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=12))
def test_the_large_text_check_agrees_with_pythons_utf8_decoder(middle: bytes) -> None:
    """orjson's parse stands in for the UTF-8 check: it must refuse exactly what Python does."""
    payload = large_json(middle)
    try:
        payload.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    for accelerated in (False, True):
        result = on_path(accelerated, partial(check_text, payload))
        assert (result is None) == valid, (accelerated, middle)
        _speedups.recall(payload)  # drop what it kept


@pytest.mark.parametrize("accelerated", [False, True], ids=["pure", "speedups"])
def test_what_the_check_keeps_is_read_once_and_equals_a_fresh_read(
    accelerated: bool, accelerators: None
) -> None:
    payload = large_json(b"\\u00e9 2")[:-1] + b', "id": 18446744073709551616}'
    fresh = on_path(False, partial(codec.loads, bytes(payload)))
    _speedups.use(accelerated)
    try:
        check_text(payload)
        kind, kept = _speedups.recall(payload)
        assert kind == ("json" if accelerated else "text")
        _speedups.remember(payload, kind, kept)  # put back, as the framer left it
        first = codec.loads(payload)
        assert_identical(first, fresh)
        assert _speedups.recall(payload) == ("", None)  # taken: a second read starts afresh
        first["a"] = "changed"  # its own object: changing it changes no later read
        second = codec.loads(payload)
    finally:
        _speedups.use(True)
    assert_identical(second, fresh)
    assert second["id"] == 2**64 and type(second["id"]) is int
