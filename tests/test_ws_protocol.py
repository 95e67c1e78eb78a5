"""_ws_protocol: every closing, ping, fragment, UTF-8 and size rule, with no socket at all."""

import pytest

from onebot_ref._ws_protocol import CloseReceived, Message, Ping, Pong, Protocol, State
from onebot_ref.errors import NotConnected
from onebot_ref.framer import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    Frame,
    decode_frame,
    encode_close,
    encode_frame,
)


def server(max_size: int = 1 << 20) -> Protocol:
    return Protocol(client=False, max_size=max_size)


def client(max_size: int = 1 << 20) -> Protocol:
    return Protocol(client=True, max_size=max_size)


def from_client(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """A frame as a client sends it (masked), for a server-side protocol."""
    return encode_frame(Frame(opcode, payload, fin), mask=True)


def from_server(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    return encode_frame(Frame(opcode, payload, fin), mask=False)


def sent(proto: Protocol) -> list[Frame]:
    """Decode what the protocol queued, as its peer would read it."""
    data = b"".join(proto.data_to_send())
    frames = []
    while data:
        decoded = decode_frame(data, mask=proto.client)
        assert decoded is not None, "a partial frame was queued"
        frame, used = decoded
        frames.append(frame)
        data = data[used:]
    return frames


# -- messages ---------------------------------------------------------------------------


def test_a_text_message_in_any_split_is_one_event() -> None:
    data = from_client(TEXT, "你好".encode())
    for cut in range(len(data) + 1):
        proto = server()
        events = proto.receive_data(data[:cut]) + proto.receive_data(data[cut:])
        assert events == [Message(TEXT, "你好".encode())]
        assert proto.state is State.OPEN and sent(proto) == []


def test_fragments_with_a_ping_between_them() -> None:
    """Section 5.4: control frames may be injected between the fragments of a message."""
    proto = server()
    data = (
        from_client(TEXT, b"Hel", fin=False)
        + from_client(PING, b"p")
        + from_client(CONTINUATION, b"lo", fin=True)
    )
    assert proto.receive_data(data) == [Ping(b"p"), Message(TEXT, b"Hello")]
    assert sent(proto) == [Frame(PONG, b"p")]  # answered at once, mid-message


def test_binary_messages_and_pongs_are_events() -> None:
    proto = client()
    events = proto.receive_data(from_server(BINARY, b"\x00\xff") + from_server(PONG, b"x"))
    assert events == [Message(BINARY, b"\x00\xff"), Pong(b"x")]


def test_client_masks_and_server_does_not() -> None:
    c, s = client(), server()
    c.send_text(b"hi")
    s.send_text(b"hi")
    (c_bytes,), (s_bytes,) = c.data_to_send(), s.data_to_send()
    assert c_bytes[1] & 0x80 and not s_bytes[1] & 0x80
    assert s.receive_data(c_bytes) == [Message(TEXT, b"hi")]
    assert c.receive_data(s_bytes) == [Message(TEXT, b"hi")]


def test_pending_counts_the_queued_bytes() -> None:
    proto = server()
    proto.send_text(b"x" * 200)
    proto.send_binary(b"y")
    assert proto.pending == (4 + 200) + (2 + 1)
    assert len(proto.data_to_send()) == 2 and proto.pending == 0


# -- failing the connection ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (from_server(TEXT, b"unmasked"), 1002),  # a server must get masked frames
        (from_client(0x3), 1002),  # reserved opcode
        (from_client(CONTINUATION, b"x"), 1002),  # nothing to continue
        (from_client(TEXT, b"a", fin=False) + from_client(TEXT, b"b"), 1002),  # interleaved
        (from_client(TEXT, b"\xff"), 1007),  # not UTF-8
        (from_client(TEXT, b"ok\xff", fin=False), 1007),  # fail fast: broken mid-message
        (from_client(CLOSE, b"\x03"), 1002),  # one-byte close payload
        (from_client(CLOSE, (1005).to_bytes(2, "big")), 1002),  # a code that is never sent
        (from_client(CLOSE, b"\x03\xe8\xff"), 1007),  # reason not UTF-8
        (from_client(TEXT, b"x" * 101), 1009),  # over max_size
    ],
    # names, not the bytes: client frames carry a random mask, and xdist's workers compare the ids
    ids=[
        "unmasked",
        "reserved-opcode",
        "no-continuation",
        "interleaved",
        "not-utf8",
        "broken-mid-message",
        "one-byte-close",
        "close-1005",
        "reason-not-utf8",
        "over-max-size",
    ],
)
def test_a_violation_fails_with_its_code_and_nothing_after_is_read(data: bytes, code: int) -> None:
    proto = server(max_size=100)
    events = proto.receive_data(data + from_client(TEXT, b"after"))
    assert Message(TEXT, b"after") not in events
    assert proto.state is State.CLOSED
    assert proto.error is not None and proto.error.close_code == code
    (close,) = sent(proto)
    assert close.opcode == CLOSE and int.from_bytes(close.payload[:2], "big") == code
    assert proto.receive_data(from_client(TEXT, b"later")) == []  # ignored from now on


def test_the_size_limit_is_checked_from_the_header_before_the_payload() -> None:
    """1009 as soon as the length is read: a 2^40-byte announcement is not buffered."""
    proto = server(max_size=1000)
    header = bytes([0x82, 0x80 | 127]) + (1 << 40).to_bytes(8, "big") + b"\x00" * 4
    proto.receive_data(header)
    assert proto.state is State.CLOSED and proto.error is not None
    assert proto.error.close_code == 1009


def test_events_before_a_violation_are_still_returned() -> None:
    proto = server()
    events = proto.receive_data(from_client(TEXT, b"ok") + from_client(0xF))
    assert events == [Message(TEXT, b"ok")] and proto.state is State.CLOSED


# -- the closing handshake ---------------------------------------------------------------


def test_a_close_from_the_peer_is_echoed_and_ends_the_connection() -> None:
    proto = server()
    events = proto.receive_data(from_client(CLOSE, encode_close(1001, "bye")))
    assert events == [CloseReceived(1001, "bye")]
    assert proto.state is State.CLOSED and proto.close_code == 1001
    assert sent(proto) == [Frame(CLOSE, (1001).to_bytes(2, "big"))]


def test_an_empty_close_is_answered_with_an_empty_close() -> None:
    proto = client()
    assert proto.receive_data(from_server(CLOSE)) == [CloseReceived(1005, "")]
    assert sent(proto) == [Frame(CLOSE, b"")]


def test_after_our_close_no_frames_are_sent_but_data_still_arrives() -> None:
    """Section 1.4: only the receiver of a Close discards data; these were sent before."""
    proto = server()
    proto.send_close(1000, "replaced")
    assert proto.state is State.LOCAL_CLOSING
    assert sent(proto) == [Frame(CLOSE, encode_close(1000, "replaced"))]
    with pytest.raises(NotConnected):
        proto.send_text(b"late")
    assert proto.send_ping() is False
    events = proto.receive_data(from_client(TEXT, b"in flight") + from_client(PING, b"p"))
    assert events == [Message(TEXT, b"in flight"), Ping(b"p")]
    assert sent(proto) == []  # no pong after our Close (section 5.5.1)
    assert proto.receive_data(from_client(CLOSE, encode_close(1000))) == [CloseReceived(1000, "")]
    # mypy holds proto.state at LOCAL_CLOSING from the assert above; receive_data moved it
    assert proto.state is State.CLOSED and sent(proto) == []  # type: ignore[comparison-overlap, unreachable]  # not answered twice


def test_send_close_twice_sends_one_close() -> None:
    proto = client()
    proto.send_close(1000)
    proto.send_close(1001)
    assert len(sent(proto)) == 1


def test_eof_ends_the_connection_abnormally() -> None:
    proto = server()
    proto.receive_eof()
    assert proto.state is State.CLOSED and proto.close_code == 1006
    with pytest.raises(NotConnected):
        proto.send_text(b"x")


def test_close_reasons_are_cut_to_fit_a_control_frame() -> None:
    proto = server()
    proto.send_close(1000, "末" * 100)
    (close,) = sent(proto)
    assert len(close.payload) <= 125
    close.payload[2:].decode("utf-8")  # never cut inside a character


def test_tcp_is_closed_first_by_the_server() -> None:
    assert server().tcp_close_first and not client().tcp_close_first
