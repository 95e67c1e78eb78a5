"""framer: RFC 6455 byte vectors, every truncation, every violation's close code."""

import os
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onebot_ref.errors import ProtocolError
from onebot_ref.framer import (
    BINARY,
    CLOSE,
    CONTINUATION,
    MAX_FRAGMENTS,
    PING,
    PONG,
    TEXT,
    Frame,
    HandshakeError,
    MessageAssembler,
    MessageReader,
    Request,
    accept_key,
    apply_mask,
    check_request,
    decode_frame,
    encode_close,
    encode_frame,
    error_response,
    handshake_response,
    parse_close,
    parse_handshake,
)

# Every test here runs on the pure path and again with the accelerators (speedups extra).
pytestmark = pytest.mark.usefixtures("both_paths")

H = bytes.fromhex

# RFC 6455 section 5.7, "Examples".
UNMASKED_HELLO = H("810548656c6c6f")
MASKED_HELLO = H("818537fa213d7f9f4d5158")
FRAGMENT_1 = H("010348656c")
FRAGMENT_2 = H("80026c6f")
UNMASKED_PING = H("890548656c6c6f")
MASKED_PONG = H("8a8537fa213d7f9f4d5158")
BINARY_256 = H("827e0100") + bytes(256)
BINARY_64K = H("827f0000000000010000") + bytes(65536)


def test_rfc_section_5_7_examples_decode() -> None:
    assert decode_frame(UNMASKED_HELLO, mask=False) == (Frame(TEXT, b"Hello"), 7)
    assert decode_frame(MASKED_HELLO, mask=True) == (Frame(TEXT, b"Hello"), 11)
    assert decode_frame(FRAGMENT_1, mask=False) == (Frame(TEXT, b"Hel", fin=False), 5)
    assert decode_frame(FRAGMENT_2, mask=False) == (Frame(CONTINUATION, b"lo"), 4)
    assert decode_frame(UNMASKED_PING, mask=False) == (Frame(PING, b"Hello"), 7)
    assert decode_frame(MASKED_PONG, mask=True) == (Frame(PONG, b"Hello"), 11)
    assert decode_frame(BINARY_256, mask=False) == (Frame(BINARY, bytes(256)), 260)
    assert decode_frame(BINARY_64K, mask=False) == (Frame(BINARY, bytes(65536)), 65546)


def test_rfc_section_5_7_examples_encode() -> None:
    assert encode_frame(Frame(TEXT, b"Hello"), mask=False) == UNMASKED_HELLO
    assert encode_frame(Frame(TEXT, b"Hel", fin=False), mask=False) == FRAGMENT_1
    assert encode_frame(Frame(CONTINUATION, b"lo"), mask=False) == FRAGMENT_2
    assert encode_frame(Frame(PING, b"Hello"), mask=False) == UNMASKED_PING
    assert encode_frame(Frame(BINARY, bytes(256)), mask=False) == BINARY_256
    assert encode_frame(Frame(BINARY, bytes(65536)), mask=False) == BINARY_64K


def test_masked_encoding_uses_a_fresh_key_and_decodes_back() -> None:
    wires = [encode_frame(Frame(TEXT, b"Hello"), mask=True) for _ in range(8)]
    assert all(w[:2] == H("8185") and len(w) == 11 for w in wires)
    assert len({w[2:6] for w in wires}) > 1  # 8 equal random keys: chance 2**-224
    assert decode_frame(wires[0], mask=True) == (Frame(TEXT, b"Hello"), 11)


def test_accept_key_rfc_section_1_3() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_apply_mask_matches_the_definition_and_is_its_own_inverse() -> None:
    key = H("37fa213d")
    for n in (0, 1, 3, 4, 5, 127, 1000, 4099, 16384, 16385, 40003):
        data = os.urandom(n)
        expected = bytes(b ^ key[i % 4] for i, b in enumerate(data))
        assert apply_mask(data, key) == expected
        assert apply_mask(apply_mask(data, key), key) == data


@pytest.mark.parametrize(
    ("wire", "mask"),
    [
        (UNMASKED_HELLO, False),
        (MASKED_HELLO, True),
        (MASKED_PONG, True),
        (BINARY_256, False),
        (encode_frame(Frame(BINARY, bytes(300)), mask=True), True),
        (encode_frame(Frame(BINARY, bytes(70000)), mask=True), True),
        (encode_frame(Frame(TEXT, b""), mask=True), True),
    ],
    # names, not the bytes: masks are random, and xdist's workers compare the ids
    ids=[
        "hello",
        "masked-hello",
        "masked-pong",
        "binary-256",
        "masked-300",
        "masked-70000",
        "masked-empty",
    ],
)
def test_every_truncation_returns_none(wire: bytes, mask: bool) -> None:
    for cut in range(len(wire)):
        assert decode_frame(wire[:cut], mask=mask) is None, cut
    decoded = decode_frame(wire + b"\x81", mask=mask)
    assert decoded is not None
    _, consumed = decoded
    assert consumed == len(wire)


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536, 8 * 2**20])
@pytest.mark.parametrize("mask", [True, False])
def test_round_trip(length: int, mask: bool) -> None:
    payload = os.urandom(length)
    wire = encode_frame(Frame(BINARY, payload), mask=mask)
    assert decode_frame(wire, mask=mask) == (Frame(BINARY, payload), len(wire))


def close_code(data: bytes, mask: bool = True, max_size: int | None = None) -> int:
    with pytest.raises(ProtocolError) as info:
        decode_frame(data, mask=mask, max_size=max_size)
    return info.value.close_code


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10])
def test_rsv_bits_without_extension_are_1002(rsv: int) -> None:
    assert close_code(bytes([0x81 | rsv, 0x80]) + bytes(4)) == 1002


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes_are_1002(opcode: int) -> None:
    assert close_code(bytes([0x80 | opcode, 0x80]) + bytes(4)) == 1002


def test_masking_must_match_the_side() -> None:
    assert close_code(UNMASKED_HELLO, mask=True) == 1002  # a client frame without a mask
    assert close_code(MASKED_HELLO, mask=False) == 1002  # a server frame with one


def test_control_frames_must_be_final_and_short() -> None:
    assert close_code(bytes([PING, 0x80]) + bytes(4)) == 1002
    assert close_code(bytes([0x80 | PING, 0x80 | 126, 0, 126]) + bytes(4 + 126)) == 1002
    with pytest.raises(ValueError):
        encode_frame(Frame(PING, bytes(126)), mask=False)


def test_64_bit_length_with_the_top_bit_set_is_1002() -> None:
    assert close_code(H("82ff") + b"\x80" + bytes(7)) == 1002


def test_oversized_frame_is_1009_from_the_header_alone() -> None:
    header_only = H("82ff") + (2**40).to_bytes(8, "big")  # no mask key, no payload yet
    assert close_code(header_only, max_size=2**20) == 1009
    assert close_code(H("82fe") + (1001).to_bytes(2, "big"), max_size=1000) == 1009
    assert decode_frame(H("82fe") + (1000).to_bytes(2, "big"), mask=True, max_size=1000) is None


def test_assembler_joins_fragments_around_control_frames() -> None:
    assembler = MessageAssembler()
    assert assembler.add(Frame(TEXT, b"Hel", fin=False)) is None
    assert assembler.add(Frame(PING, b"p")) == Frame(PING, b"p")
    assert assembler.add(Frame(CONTINUATION, b"l", fin=False)) is None
    assert assembler.size == 4
    assert assembler.add(Frame(CONTINUATION, b"o")) == Frame(TEXT, b"Hello")
    assert assembler.add(Frame(BINARY, b"\xff")) == Frame(BINARY, b"\xff")


def test_assembler_sequence_errors_are_1002() -> None:
    with pytest.raises(ProtocolError) as info:
        MessageAssembler().add(Frame(CONTINUATION, b"x"))
    assert info.value.close_code == 1002
    assembler = MessageAssembler()
    assembler.add(Frame(TEXT, b"a", fin=False))
    with pytest.raises(ProtocolError) as info:
        assembler.add(Frame(BINARY, b"b"))
    assert info.value.close_code == 1002


def test_invalid_utf8_fails_fast_with_1007() -> None:
    assembler = MessageAssembler()
    with pytest.raises(ProtocolError) as info:
        assembler.add(Frame(TEXT, b"ok \xff", fin=False))  # before the message ends
    assert info.value.close_code == 1007
    with pytest.raises(ProtocolError) as info:
        MessageAssembler().add(Frame(TEXT, "末".encode()[:2]))  # truncated at the end
    assert info.value.close_code == 1007


def test_a_character_split_across_fragments_is_valid() -> None:
    raw = "你好".encode()
    assembler = MessageAssembler()
    assert assembler.add(Frame(TEXT, raw[:2], fin=False)) is None
    assert assembler.add(Frame(CONTINUATION, raw[2:4], fin=False)) is None
    assert assembler.add(Frame(CONTINUATION, raw[4:])) == Frame(TEXT, raw)


def test_reader_byte_by_byte_with_interleaved_ping() -> None:
    wire = (
        encode_frame(Frame(TEXT, b"Hel", fin=False), mask=True)
        + encode_frame(Frame(PING, b"!"), mask=True)
        + encode_frame(Frame(CONTINUATION, b"lo"), mask=True)
        + MASKED_HELLO
    )
    reader = MessageReader(mask=True)
    seen = []
    for byte in wire:
        reader.feed(bytes([byte]))
        while (message := reader.next_message()) is not None:
            seen.append(message)
    assert seen == [Frame(PING, b"!"), Frame(TEXT, b"Hello"), Frame(TEXT, b"Hello")]
    assert reader.buffered == 0


def test_reader_limit_counts_every_fragment() -> None:
    reader = MessageReader(mask=False, max_message=10)
    reader.feed(encode_frame(Frame(BINARY, bytes(6), fin=False), mask=False))
    assert reader.next_message() is None
    reader.feed(H("0005"))  # a continuation header announcing 5 more: 11 > 10
    with pytest.raises(ProtocolError) as info:
        reader.next_message()
    assert info.value.close_code == 1009


def test_fragments_per_message_are_bounded_with_1009() -> None:
    assembler = MessageAssembler(max_fragments=3)
    assert assembler.add(Frame(TEXT, b"a", fin=False)) is None
    assert assembler.add(Frame(CONTINUATION, b"", fin=False)) is None
    assert assembler.add(Frame(CONTINUATION, b"b")) == Frame(TEXT, b"ab")  # 3 frames: allowed
    assert assembler.add(Frame(BINARY, b"x", fin=False)) is None  # the count starts afresh
    assert assembler.add(Frame(PING, b"")) == Frame(PING, b"")  # control frames do not count
    assert assembler.add(Frame(CONTINUATION, b"", fin=False)) is None
    assert assembler.add(Frame(CONTINUATION, b"", fin=False)) is None
    with pytest.raises(ProtocolError, match="passed 3 frames") as info:
        assembler.add(Frame(CONTINUATION, b"y"))
    assert info.value.close_code == 1009


def test_endless_empty_continuations_end_in_1009_with_memory_bounded() -> None:
    reader = MessageReader(mask=False)
    reader.feed(encode_frame(Frame(TEXT, b"{", fin=False), mask=False))
    empties = bytes(2 * 4096)  # 4,096 empty, non-final continuation frames (00 00)
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError) as info:
            for _ in range(2 * MAX_FRAGMENTS // 4096):  # twice the limit, if nothing stops it
                reader.feed(empties)
                assert reader.next_message() is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.close_code == 1009
    assert peak < 2**20  # the parts of empty frames are not kept


@given(st.binary(max_size=300), st.booleans())
@settings(max_examples=300, deadline=None)
def test_random_bytes_only_raise_protocol_error(data: bytes, mask: bool) -> None:
    try:
        decode_frame(data, mask=mask, max_size=1000)
    except ProtocolError:
        pass
    reader = MessageReader(mask=mask, max_message=1000)
    reader.feed(data)
    try:
        for _ in range(len(data) + 1):  # every message consumes at least 2 bytes
            if reader.next_message() is None:
                break
        else:
            raise AssertionError("the reader keeps returning messages from finite input")
    except ProtocolError as exc:
        assert exc.close_code in (1002, 1007, 1009)


def test_close_payloads() -> None:
    assert parse_close(b"") == (1005, "")
    assert parse_close(encode_close(1000, "bye")) == (1000, "bye")
    assert parse_close(encode_close(4999)) == (4999, "")
    assert encode_close(None) == b""
    long_reason = encode_close(1001, "再见" * 100)
    assert len(long_reason) <= 125 and parse_close(long_reason)[1].startswith("再见")


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_close_codes_that_may_not_be_sent_are_1002(code: int) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_close(code.to_bytes(2, "big"))
    assert info.value.close_code == 1002


def test_close_payload_errors() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_close(b"\x03")
    assert info.value.close_code == 1002
    with pytest.raises(ProtocolError) as info:
        parse_close(H("03e8") + b"\xff")
    assert info.value.close_code == 1007


HANDSHAKE = (
    b"GET /onebot/v11/ws?access_token=x HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8080\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: keep-alive, Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"x-client-role: Universal\r\n"
    b"X-Self-ID: 3332627962\r\n"
    b"Authorization: Bearer \r\n\r\n"
)


def test_parse_handshake_needs_the_blank_line() -> None:
    for cut in range(len(HANDSHAKE)):
        assert parse_handshake(HANDSHAKE[:cut]) is None, cut
    parsed = parse_handshake(HANDSHAKE + H("8180"))
    assert parsed is not None
    request, consumed = parsed
    assert consumed == len(HANDSHAKE)
    assert request.path == "/onebot/v11/ws" and request.query == {"access_token": "x"}
    assert request.headers["x-self-id"] == "3332627962"
    assert request.headers["authorization"] == "Bearer"
    assert check_request(request) == "dGhlIHNhbXBsZSBub25jZQ=="


def handshake_status(**changes: Any) -> int:
    headers = {
        "host": "h",
        "upgrade": "websocket",
        "connection": "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
    }
    method = changes.pop("method", "GET")
    for key, value in changes.items():
        name = key.replace("_", "-")
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(HandshakeError) as info:
        check_request(Request(method, "/", headers))
    return info.value.status


def test_handshake_checks() -> None:
    assert handshake_status(method="POST") == 400
    assert handshake_status(host=None) == 400
    assert handshake_status(upgrade=None) == 426
    assert handshake_status(connection="keep-alive") == 400
    assert handshake_status(sec_websocket_version="8") == 426
    assert handshake_status(sec_websocket_version=None) == 426
    assert handshake_status(sec_websocket_key="c2hvcnQ=") == 400
    assert handshake_status(sec_websocket_key="not base64!") == 400


def test_malformed_and_oversized_heads() -> None:
    with pytest.raises(HandshakeError) as info:
        parse_handshake(b"GET /\r\n\r\n")
    assert info.value.status == 400
    with pytest.raises(HandshakeError) as info:
        parse_handshake(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
    assert info.value.status == 400
    with pytest.raises(HandshakeError) as info:
        parse_handshake(b"GET / HTTP/1.1\r\nX: " + b"a" * 20000, max_size=16384)
    assert info.value.status == 431


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET / HTTP/1.1\r\nX : y\r\n\r\n", 400),  # space before the colon (RFC 9112 5.1)
        (b"GET / HTTP/1.1\r\nX\x00Y: z\r\n\r\n", 400),  # NUL in a field name
        (b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400),  # a control character in a value
        (b"GET / HTTP/1.1\r\nX: y\r\n z\r\n\r\n", 400),  # obsolete line folding
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 400),  # an upgrade is HTTP/1.1 (RFC 6455 4.1)
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),  # over MAX_FIELDS
    ],
)
def test_the_handshake_is_read_with_the_http_servers_rules(head: bytes, status: int) -> None:
    """One head reader (http_head) for the HTTP server and every WebSocket handshake."""
    with pytest.raises(HandshakeError) as info:
        parse_handshake(head, max_size=16384)
    assert info.value.status == status


def test_an_http_1_0_upgrade_is_refused() -> None:
    """RFC 6455 section 4.1: "The method of the request MUST be GET, and the HTTP version MUST be at least 1.1"."""
    parsed = parse_handshake(HANDSHAKE.replace(b"HTTP/1.1", b"HTTP/1.0", 1))
    assert parsed is not None
    request, _ = parsed
    assert request.version == (1, 0)
    with pytest.raises(HandshakeError) as info:
        check_request(request)
    assert info.value.status == 400 and "HTTP/1.1" in str(info.value)


def test_responses() -> None:
    ok = handshake_response("dGhlIHNhbXBsZSBub25jZQ==")
    assert ok.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in ok
    assert ok.endswith(b"\r\n\r\n")
    refused = error_response(426, "not an upgrade")
    assert refused.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"Sec-WebSocket-Version: 13\r\n" in refused
    head, _, body = error_response(403, "wrong token").partition(b"\r\n\r\n")
    assert body == b"wrong token\n" and b"Content-Length: 12" in head


def test_close_opcode_constant() -> None:
    assert decode_frame(bytes([0x80 | CLOSE, 0x80]) + bytes(4), mask=True) == (Frame(CLOSE, b""), 6)
