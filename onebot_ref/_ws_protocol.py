"""A WebSocket connection's rules, sans I/O: bytes in, events out, bytes to send.

:mod:`onebot_ref.framer` turns bytes into frames and whole messages (masking,
fragmentation, UTF-8, the size limit read from the header). This module is the
layer above it: what one connection *does* with them, for either role, in the
spirit of wsproto's ``Connection`` and websockets' ``Protocol``:

* **An explicit state** (:class:`State`): ``OPEN`` until someone sends a Close
  frame; ``LOCAL_CLOSING`` once we have sent ours and wait for the peer's;
  ``CLOSED`` once both Close frames have crossed, or the peer broke the
  protocol, or the stream ended. Every transition is in this file.
* **The closing handshake** (RFC 6455 section 5.5.1 and 7): a Close from the
  peer is answered at once, "typically echoing the status code it received";
  after our own Close we send no more frames, but still deliver data frames
  that arrive before the peer's Close (section 1.4 has only the *receiver* of
  a Close discard data: those were sent before the peer saw ours).
* **Pings** are answered with a Pong carrying the same payload (section 5.5.2),
  unless we are closing.
* **Failing the connection** (section 7.1.7): a frame that breaks the protocol
  queues a Close with the error's code (1002, 1007, 1009...) and ends the
  connection; nothing the peer sends after that is read.

Nothing here reads a socket or starts a thread. :meth:`Protocol.receive_data`
takes what ``recv`` returned and returns the events in it;
:meth:`Protocol.send_text` and the other ``send_*`` methods queue frames, and
:meth:`Protocol.data_to_send` hands the queued bytes to whoever writes them.
The object is not thread-safe: the connection that drives it
(:mod:`onebot_ref._ws_connection`) calls it under one lock, so that a state
change and the frames queued around it are seen in one order by every thread.

It owns every RFC 6455 rule about what a connection does. It must never read
or write a socket, start a thread, look at a clock, or know of OneBot; it
imports only :mod:`~onebot_ref.framer` and the errors.
"""

import enum
from typing import NamedTuple

from .errors import NotConnected, ProtocolError
from .framer import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    Frame,
    MessageReader,
    encode_close,
    encode_frame,
    parse_close,
)

__all__ = ["CloseReceived", "Message", "Ping", "Pong", "Protocol", "State"]

# RFC 6455 section 7.4.1 and 7.1.5
NORMAL = 1000
NO_STATUS = 1005  # "no status code was actually present": never sent
ABNORMAL = 1006  # "closed abnormally, e.g., without sending or receiving a Close": never sent


class State(enum.Enum):
    """Where a connection is in its life (RFC 6455 section 4 onwards)."""

    OPEN = "open"  # the opening handshake is done; data flows both ways
    LOCAL_CLOSING = "closing"  # we sent a Close and wait for the peer's
    CLOSED = "closed"  # both Close frames crossed, the peer failed, or the stream ended


class Message(NamedTuple):
    """A whole text or binary message (its fragments joined)."""

    opcode: int
    payload: bytes


class Ping(NamedTuple):
    payload: bytes


class Pong(NamedTuple):
    payload: bytes


class CloseReceived(NamedTuple):
    """The peer's Close frame: its code (1005 if it gave none) and reason."""

    code: int
    reason: str


Event = Message | Ping | Pong | CloseReceived


class Protocol:
    """One WebSocket connection's state and rules, for the client or the server side.

    Args:
        client: True on the client side: we mask what we send and expect
            unmasked frames; the server side does the opposite (section 5.1).
        max_size: the largest message accepted, in bytes (1009 beyond it,
            checked from each frame's header before its payload is read).
    """

    def __init__(self, *, client: bool, max_size: int) -> None:
        self.client = client
        self.state = State.OPEN
        self.reader = MessageReader(mask=not client, max_message=max_size)
        self.close_sent: tuple[int, str] | None = None  # our Close frame's code and reason
        self.close_received: tuple[int, str] | None = None  # the peer's
        self.error: ProtocolError | None = None  # why we failed the connection, if we did
        self.pending = 0  # bytes queued and not yet taken by data_to_send()
        self._outgoing: list[bytes] = []

    def __repr__(self) -> str:
        return f"<Protocol {'client' if self.client else 'server'} {self.state.value}>"

    @property
    def closed(self) -> bool:
        """True once the connection is over: nothing more is read or sent."""
        return self.state is State.CLOSED

    @property
    def close_code(self) -> int:
        """The code the connection closed with, as the peer or we said it (1006: neither)."""
        if self.close_received is not None:
            return self.close_received[0]
        if self.close_sent is not None and self.state is State.CLOSED:
            return self.close_sent[0]
        return ABNORMAL

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned in a message (0: between messages)."""
        return self.reader.buffered

    # -- receiving ------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Take bytes from the peer; return the events they complete, in order.

        A protocol violation fails the connection (a Close with its code is
        queued, :attr:`error` says why, the state is ``CLOSED``); the events
        before it are still returned. Once ``CLOSED``, data is ignored.
        """
        if self.closed:
            return []
        self.reader.feed(data)
        events: list[Event] = []
        while not self.closed:
            try:
                frame = self.reader.next_message()
            except ProtocolError as exc:
                self.fail(exc)
                break
            if frame is None:
                break
            event = self._receive_frame(frame)
            if event is not None:
                events.append(event)
        return events

    def receive_eof(self) -> None:
        """The peer ended the stream (TCP FIN): the connection is over.

        Its :attr:`close_code` is 1006 unless a Close frame came first.
        """
        self.state = State.CLOSED

    def _receive_frame(self, frame: Frame) -> Event | None:
        if frame.opcode in (TEXT, BINARY):
            return Message(frame.opcode, frame.payload)
        if frame.opcode == PING:
            # Section 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a
            # Pong frame in response", unless it has already sent a Close (5.5.1).
            if self.state is State.OPEN:
                self._queue(PONG, frame.payload)
            return Ping(frame.payload)
        if frame.opcode == PONG:
            return Pong(frame.payload)
        # CLOSE; parse_close raises ProtocolError (1002/1007) on a bad payload.
        try:
            code, reason = parse_close(frame.payload)
        except ProtocolError as exc:
            self.fail(exc)
            return None
        self.close_received = (code, reason)
        if self.state is State.OPEN:
            # Section 5.5.1: "it MUST send a Close frame in response [...]
            # typically echoing the status code it received".
            self._send_close(None if code == NO_STATUS else code, "")
        self.state = State.CLOSED
        return CloseReceived(code, reason)

    # -- sending ----------------------------------------------------------------------

    def send_text(self, payload: bytes) -> None:
        """Queue a text message (UTF-8 bytes; the caller vouches for the encoding).

        Raises:
            NotConnected: the connection is closing or closed (section 5.5.1:
                no data frames after our Close).
        """
        self._send_data(TEXT, payload)

    def send_binary(self, payload: bytes) -> None:
        """Queue a binary message; raises :class:`NotConnected` unless ``OPEN``."""
        self._send_data(BINARY, payload)

    def _send_data(self, opcode: int, payload: bytes) -> None:
        if self.state is not State.OPEN:
            raise NotConnected(f"the WebSocket is {self.state.value}; nothing more can be sent")
        self._queue(opcode, payload)

    def send_ping(self, payload: bytes = b"") -> bool:
        """Queue a Ping; False (nothing queued) unless the connection is ``OPEN``."""
        if self.state is not State.OPEN:
            return False
        self._queue(PING, payload)
        return True

    def send_close(self, code: int | None = NORMAL, reason: str = "") -> None:
        """Start the closing handshake (section 7.1.2); nothing happens unless ``OPEN``.

        ``code=None`` sends a Close without a status code.
        """
        if self.state is not State.OPEN:
            return
        self._send_close(code, reason)
        self.state = State.LOCAL_CLOSING

    def fail(self, error: ProtocolError) -> None:
        """_Fail the WebSocket Connection_ (RFC 6455 section 7.1.7): Close with its code

        "An endpoint [...] SHOULD NOT continue to attempt to process data
        (including a responding Close frame) from the remote endpoint".
        """
        if self.state is State.CLOSED:
            return
        self.error = error
        if self.state is State.OPEN:
            self._send_close(error.close_code, str(error))
        self.state = State.CLOSED

    def _send_close(self, code: int | None, reason: str) -> None:
        self.close_sent = (NO_STATUS if code is None else code, reason)
        self._queue(CLOSE, encode_close(code, reason))

    def _queue(self, opcode: int, payload: bytes) -> None:
        data = encode_frame(Frame(opcode, payload), mask=self.client)
        self._outgoing.append(data)
        self.pending += len(data)

    def data_to_send(self) -> list[bytes]:
        """Take every frame queued so far, in order, for the caller to write."""
        chunks, self._outgoing, self.pending = self._outgoing, [], 0
        return chunks

    @property
    def tcp_close_first(self) -> bool:
        """Whether we close TCP first once done: the server does (section 7.1.1)."""
        return not self.client
