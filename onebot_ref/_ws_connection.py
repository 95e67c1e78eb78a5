"""One WebSocket on one socket, for either role: a receive thread, a shared send path, deadlines.

This is the I/O layer under both :mod:`onebot_ref.ws_server` and
:mod:`onebot_ref.ws_client`. It moves bytes between a socket and a
:class:`~onebot_ref._ws_protocol.Protocol` and keeps no protocol state of its
own: whether a frame may still be sent, what a Ping or a Close asks for, when
the connection is over — the protocol decides; the connection asks it, under
one lock, so that every thread sees its state changes and the frames queued
around them in one order.

**Receiving.** :meth:`Connection.run` (the receive thread) reads into a
reused buffer, hands the bytes to the protocol, and passes each whole message
to ``on_message``, which must not block (the modes hand events to a worker
pool: a handler may make a call whose response this very thread must read).
The buffer is sized to what the connection uses: ``RECV_MIN`` while events are
small, four times larger each time a read fills it (up to ``RECV_MAX``, for a
large message), and back to ``RECV_MIN`` once a read is small again with no
message half-received. A thousand idle accounts then hold 16 KiB each, not
256 KiB (``benchmarks/bench_accounts.py``). Or a shared reader
(:mod:`onebot_ref._ws_reader`) reads the connection instead of a thread of
its own: :meth:`Connection.begin` on the accepting thread, then
:meth:`Connection.read_ready` each time the socket polls readable (never
blocking, into the reader's one buffer), and :meth:`Connection.end`; the
rest of this class is the same for both.
Thread stacks stay at the platform's default: a stack takes memory only for
the pages a thread touches, about 16 KiB for one blocked in ``recv`` whatever
its size (1,000 such threads measured the same RSS with 8 MiB and 64 KiB
stacks; only the address space differs), and ``threading.stack_size`` is
process-wide: set around the start of our threads, it would also shrink a
thread the application starts meanwhile, whose recursion we cannot know.

**Sending.** Senders never wait for each other: a frame joins the protocol's
queue, and whichever thread holds the write lock writes everything queued,
several frames per write. Only when more than ``OUTBOX_LIMIT`` bytes are queued
does a sender wait its turn (bounded by ``send_timeout``), so a peer that stops
reading slows its senders down instead of growing the queue.

**Deadlines without socket timeouts.** A socket timeout puts a ``poll()`` before
every ``recv`` and ``send``; instead the owner calls :meth:`Connection.tick`
every fraction of a second, which shuts down a connection whose write has been
stuck past ``send_timeout``, whose Close went unanswered past
``close_timeout``, or that has been silent past what it promised (heartbeats,
our pings). Shutting a socket down wakes a blocked ``recv``/``send`` on every OS.

**TLS.** OpenSSL does not allow one ``SSL`` object to be used from two threads
at once, and a TLS connection is read by the receive thread while handler
threads write to it: a TLS 1.3 session ticket or KeyUpdate arriving during a
write could corrupt the stream. So a TLS socket is made non-blocking and every
call into it (read or write) holds one lock; the waiting for readiness
(``poll``) happens outside the lock. A plaintext socket has no such rule and
stays blocking: the receive thread and one writer use it at the same time.

It owns the threads, the socket and every deadline. It must never decide a
protocol question (the protocol does), parse JSON or know of OneBot (its
owner's ``on_message`` does), or accept or dial (the layers above do); it
imports nothing above :mod:`onebot_ref._ws_protocol`.
"""

import enum
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable

from ._ws_protocol import CloseReceived, Message, Protocol, State
from .errors import NotConnected, ProtocolError
from .framer import TEXT

__all__ = ["OUTBOX_LIMIT", "Connection", "Reading"]

log = logging.getLogger(__name__)

RECV_MIN = 16 * 1024  # the receive buffer of a connection with small messages
RECV_MAX = 256 * 1024  # ... and of one receiving a large message (module docstring)
OUTBOX_LIMIT = 1 << 20  # bytes queued behind a write under way before senders must wait
SMALL = 4096  # bytes a socket with room takes at once: what _flush_soon writes itself
DRAIN = 1.0  # seconds we read what is left after the closing handshake (see _finish)
DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)  # one read that never blocks (not on Windows)


def _wait(sock: socket.socket, *, write: bool, timeout: float | None) -> bool:
    """Block until ``sock`` is readable (or writable); False on timeout.

    A socket that is shut down (or closed) counts as ready: the read or write then fails.
    """
    if sock.fileno() < 0:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLOUT if write else select.POLLIN)
        return bool(poller.poll(None if timeout is None else timeout * 1000))
    ready = (
        select.select([], [sock], [], timeout) if write else select.select([sock], [], [], timeout)
    )
    return bool(ready[0] or ready[1])  # Windows


class Reading(enum.Enum):
    """What a shared reader does with a connection after a read (:meth:`Connection.read_ready`)."""

    MORE = "more"
    OVER = "over"
    BACKED_UP = "backed up"


class _PlainIO:
    """A plaintext socket, blocking: reads and one writer may use it at once."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(None)  # bounded by Connection.tick (module docstring)
        self.sock = sock
        self.recv_into = sock.recv_into
        self.sendall = sock.sendall

    reads_per_poll = 1  # a read takes what the kernel holds, up to the buffer

    def recv_now(self, buffer: memoryview) -> int | None:
        """What has arrived, without waiting; None when nothing has."""
        try:
            return self.sock.recv_into(buffer, 0, DONTWAIT)
        except BlockingIOError:
            return None

    def pending(self) -> int:
        return 0  # the kernel's buffer is what poll() sees


class _TlsIO:
    """A TLS socket: non-blocking, each call into OpenSSL under one lock (module docstring)."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        sock.setblocking(False)

    def recv_into(self, buffer: memoryview) -> int:
        while True:
            # Bytes OpenSSL has already decrypted do not show up in poll().
            if not self.sock.pending():
                _wait(self.sock, write=False, timeout=None)
            with self.lock:
                try:
                    return self.sock.recv_into(buffer)
                except ssl.SSLWantReadError:
                    continue  # only part of a record has arrived
                except ssl.SSLWantWriteError:
                    pass
            _wait(self.sock, write=True, timeout=None)

    def recv_now(self, buffer: memoryview) -> int | None:
        """What OpenSSL can give now, without waiting; None when a record is still incomplete.

        Raises:
            ssl.SSLWantWriteError: OpenSSL must write before it can read (a
                renegotiation); the caller reads on a thread that may wait.
        """
        with self.lock:
            try:
                return self.sock.recv_into(buffer)
            except ssl.SSLWantReadError:
                return None

    reads_per_poll = 16  # a read gives one record (16 KiB at most): a few more a round

    def pending(self) -> int:
        """Bytes OpenSSL has decrypted and not handed out: no poll() shows them."""
        with self.lock:
            return self.sock.pending()

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            with self.lock:
                try:
                    # OpenSSL wants a write that could not finish retried with the
                    # same bytes: view only moves on by what was written.
                    view = view[self.sock.send(view) :]
                    continue
                except ssl.SSLWantWriteError:
                    write = True
                except ssl.SSLWantReadError:
                    write = False
            _wait(self.sock, write=write, timeout=None)


class Connection:
    """One open WebSocket: the receive loop, the send path, and the deadlines.

    Args:
        sock: the connected socket, after the opening handshake (TLS already
            set up if any).
        protocol: the connection's rules and state (client or server side).
        on_message: ``f(opcode, payload)`` for each whole text or binary
            message, called on the receive thread; it must not block.
        on_close: ``f()`` once the connection is over, on the receive thread.
        label: how logs name the connection; owners may update it.
        send_timeout: seconds a write may stay stuck before the connection is cut.
        close_timeout: seconds the peer has to answer our Close.
        ping_interval: send a Ping after this many idle seconds, and cut a
            connection that answers none for ``heartbeat_factor`` intervals;
            None sends none.
        heartbeat_factor: how many ``ping_interval`` a silent peer is given.
        initial: bytes that arrived behind the opening handshake.
        preamble: bytes to write before any frame (the server's ``101``).
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol: Protocol,
        *,
        on_message: Callable[[int, bytes], object],
        on_close: Callable[[], object] | None = None,
        label: str = "connection",
        send_timeout: float = 10.0,
        close_timeout: float = 10.0,
        ping_interval: float | None = None,
        heartbeat_factor: float = 3.0,
        initial: bytes = b"",
        preamble: bytes = b"",
    ) -> None:
        self.sock = sock
        self.protocol = protocol
        self.on_message = on_message
        self.on_close = on_close
        self.label = label
        self.send_timeout = send_timeout
        self.close_timeout = close_timeout
        self.ping_interval = ping_interval
        self.heartbeat_factor = heartbeat_factor
        self.io = _TlsIO(sock) if isinstance(sock, ssl.SSLSocket) else _PlainIO(sock)
        self.last_seen = time.monotonic()  # when bytes last arrived
        self.last_ping = self.last_seen
        self.silence: tuple[float, str] | None = None  # (seconds, why) the peer may be quiet
        self.sending_since = 0.0  # monotonic start of the write under way; 0.0 when none is
        self.closing_since = 0.0  # when we queued our Close; 0.0 until then
        self.cut = ""  # why tick() shut the connection down, if it did
        self.failure: Exception | None = None  # the bug that ended the receive loop, if one did
        self._lock = threading.Lock()  # guards the protocol; never held across I/O
        self._write_lock = threading.Lock()  # held by the one thread writing
        self._preamble = preamble
        self._initial = initial
        self._aborted = False

    def __repr__(self) -> str:
        return f"<{self.label}>"

    @property
    def open(self) -> bool:
        """True while frames may still be sent (the protocol is ``OPEN``)."""
        return not self._aborted and self.protocol.state is State.OPEN

    # -- receiving --------------------------------------------------------------------

    def run(self) -> None:
        """Read until the connection is over; then close the socket and call ``on_close``."""
        if self.begin():
            self.go_on()
        else:
            self.end()

    def go_on(self) -> None:
        """:meth:`run` past its start: also for a connection a shared reader hands back."""
        try:
            small = scratch = memoryview(bytearray(RECV_MIN))
            while not self.protocol.closed:
                # 1) Read from the network. A quiet peer leaves us blocked here
                #    until tick() or close() shuts the socket down.
                n = self.io.recv_into(scratch)
                if not n:
                    with self._lock:
                        self.protocol.receive_eof()
                    break
                self.last_seen = time.monotonic()
                # 2) Let the protocol parse it, answer pings and closes, and deliver.
                self._receive(scratch[:n], self._flush_behind)
                # 3) Size the buffer to the traffic (module docstring); the protocol
                #    has copied what it keeps.
                size = len(scratch)
                if n == size and size < RECV_MAX:
                    scratch = memoryview(bytearray(min(4 * size, RECV_MAX)))
                elif size > RECV_MIN and n <= size // 4 and not self.protocol.buffered:
                    scratch = small
        except Exception as exc:
            self._stopped(exc, self._flush)
        finally:
            self.end()

    # -- receiving, for a shared reader (onebot_ref._ws_reader) ------------------------

    def begin(self) -> bool:
        """What :meth:`run` does before its loop: the preamble, and the bytes behind the handshake.

        For a connection that a shared reader will read (:meth:`read_ready`):
        run on the thread that accepted it. False when the connection is
        already over; then call :meth:`end`.
        """
        try:
            self._begin()
        except Exception as exc:
            self._stopped(exc, self._flush)
            return False
        return not self.protocol.closed

    def read_ready(self, scratch: memoryview) -> Reading:
        """One read of a socket that polled readable, never blocking: what the reader does next.

        ``scratch`` may be shared by every connection of one reader: the
        protocol copies what it keeps. Frames this read asks us to write (a
        Pong, the answer to a Close) go out only if that cannot block
        (:meth:`_flush_soon`): the reader serves other connections too.

        Returns:
            ``MORE`` to go on reading it; ``OVER`` once it is over (the reader
            stops and calls :meth:`end`); ``BACKED_UP`` when more than
            ``OUTBOX_LIMIT`` bytes wait to be written (a peer sending pings
            and reading none of our Pongs), or when OpenSSL must write before
            it reads on: the reader stops, and :meth:`go_on` reads it on a
            thread of its own, where writing blocks reading again, as in
            :meth:`run`.
        """
        try:
            reads = 0
            while (n := self.io.recv_now(scratch)) is not None:
                if not n:
                    with self._lock:
                        self.protocol.receive_eof()
                    return Reading.OVER
                self.last_seen = time.monotonic()
                self._receive(scratch[:n], self._flush_soon)
                reads += 1
                if self.protocol.closed:
                    break
                # One read takes all the kernel holds; one TLS read, a record: take
                # a few more, and always what OpenSSL holds, which no poll() shows.
                if reads >= self.io.reads_per_poll and not self.io.pending():
                    break
        except ssl.SSLWantWriteError:  # OpenSSL must write to read on: where writes may wait
            return Reading.BACKED_UP
        except Exception as exc:
            self._stopped(exc, self._flush_soon)
            return Reading.OVER
        if self.protocol.closed:
            return Reading.OVER
        return Reading.BACKED_UP if self.protocol.pending > OUTBOX_LIMIT else Reading.MORE

    def end(self) -> None:
        """Close the connection's socket the way RFC 6455 asks, then call ``on_close`` (once)."""
        try:
            self._finish()
        finally:
            if self.on_close is not None:
                self.on_close()

    # -- receiving, shared by both ----------------------------------------------------

    def _begin(self) -> None:
        self._flush()  # the preamble, and whatever was queued behind it
        self._receive(self._initial, self._flush)
        self._initial = b""

    def _stopped(self, exc: Exception, flush: Callable[[], None]) -> None:
        """The receive loop ends with ``exc``: a lost peer is routine, anything else a bug."""
        if isinstance(exc, OSError):  # reset, or shut down by tick() or close(); or
            log.debug("%r: %s", self, exc)  # NotConnected: our answer to a ping or close failed
            return
        # A bug (ours or a callback's): never out of the receive thread.
        log.exception("%r: unexpected error in the receive loop; closing with 1011", self)
        self.failure = exc
        with self._lock:  # RFC 6455 section 7.4.1: 1011, "an unexpected condition"
            self.protocol.fail(ProtocolError("internal error", 1011))
        try:
            flush()
        except NotConnected:
            pass

    def _receive(self, data: bytes | memoryview, flush: Callable[[], None]) -> None:
        if not data:
            return
        with self._lock:
            events = self.protocol.receive_data(data)
            error = self.protocol.error
        if self.protocol.pending:
            flush()  # a Pong, or the answer to a Close
        for event in events:
            if isinstance(event, Message):
                self.on_message(event.opcode, event.payload)
            elif isinstance(event, CloseReceived):
                log.debug("%r: the peer closed with %d %s", self, event.code, event.reason)
        if error is not None:  # "_Fail the WebSocket Connection_", section 7.1.7
            log.warning("%r broke the protocol: %s", self, error)
            flush()

    # -- sending ----------------------------------------------------------------------

    def send_text(self, data: bytes) -> None:
        """Send one text message (UTF-8 JSON here); see :meth:`send`."""
        self.send(TEXT, data)

    def send(self, opcode: int, payload: bytes) -> None:
        """Send one text or binary message, or leave it to the thread writing now.

        A frame left to another thread is not reported on if that write fails:
        the connection is then shut down, and its owner learns from ``on_close``.

        Raises:
            NotConnected: the connection is closing or closed, our own write
                failed, or the queue ahead of us was stuck for ``send_timeout``
                (the connection is then shut down).
        """
        with self._lock:
            if self._aborted:
                raise NotConnected(f"{self.label} is closed")
            if opcode == TEXT:
                self.protocol.send_text(payload)
            else:
                self.protocol.send_binary(payload)
            full = self.protocol.pending > OUTBOX_LIMIT
        if full:  # the peer is not keeping up: wait our turn (bounded), then write
            if not self._write_lock.acquire(timeout=self.send_timeout):
                self.abort()
                raise NotConnected(f"{self.label} is stuck: nothing was written for "
                                   f"{self.send_timeout:g}s; closed it")  # fmt: skip
        elif not self._write_lock.acquire(blocking=False):
            return  # the thread writing now will take our frame along
        self._write()

    def send_raw(self, data: bytes) -> None:
        """Write ``data`` as it is, behind what is queued: bytes that are no frame of ours.

        For FakeOneBot's faults (a malformed frame on purpose); the protocol
        never sees them.

        Raises:
            NotConnected: the write failed or stayed stuck for ``send_timeout``.
        """
        if not self._write_lock.acquire(timeout=self.send_timeout):
            self.abort()
            raise NotConnected(f"{self.label} is stuck; closed it")
        try:
            self.io.sendall(b"".join([*self._take(), data]))
        except OSError as exc:
            self.abort()
            raise NotConnected(f"sending on {self.label} failed: {exc}") from exc
        finally:
            self._write_lock.release()
        self._flush()

    def _flush_behind(self) -> None:
        """The receive loop's flush: reading waits while what it queued cannot be written.

        A peer that sends pings and reads none of our Pongs leaves a write
        stuck; past ``OUTBOX_LIMIT`` queued behind it, the receive loop waits
        for that write (bounded by ``send_timeout``, as a sender would) instead
        of reading more and queueing Pongs without end.

        Raises:
            NotConnected: the write under way stayed stuck; the connection is shut down.
        """
        if self.protocol.pending <= OUTBOX_LIMIT:
            self._flush()
        elif self._write_lock.acquire(timeout=self.send_timeout):
            self._write()
        else:
            self.abort()
            raise NotConnected(f"{self.label} reads nothing we send; closed it")

    def _flush(self) -> None:
        """Write what is queued unless another thread is writing (it will take it along)."""
        if (self.protocol.pending or self._preamble) and self._write_lock.acquire(blocking=False):
            self._write()

    def _write(self) -> None:
        """Write out the queue; called holding the write lock, which it releases.

        The first batch holds the caller's own frame, and a failure to write it
        is the caller's :class:`NotConnected`. What other threads queue meanwhile
        is left to us and written next; a failure then is not the caller's (its
        frame went out): the connection is shut down, and its owner learns from
        ``on_close``, as :meth:`send` says. (A reply from a handler raced the
        peer's Close so: the reply went out, and writing our answer to the Close,
        taken along, failed as the receive thread closed the socket.)
        """
        own = True  # the next write carries the caller's frame
        while True:
            try:
                while chunks := self._take():
                    self.sending_since = time.monotonic()
                    try:
                        self.io.sendall(b"".join(chunks))
                    except OSError as exc:
                        self.abort()
                        if own:
                            raise NotConnected(f"sending on {self.label} failed: {exc}") from exc
                        log.debug("%r: writing frames queued behind ours failed: %s", self, exc)
                        return
                    own = False
            finally:
                self.sending_since = 0.0
                self._write_lock.release()
            # A frame queued after our last look, but before the release, found the
            # lock taken and was left to us: look again.
            if not self.protocol.pending or not self._write_lock.acquire(blocking=False):
                return

    def _take(self) -> list[bytes]:
        with self._lock:
            chunks = self.protocol.data_to_send()
            if self._preamble:
                chunks.insert(0, self._preamble)
                self._preamble = b""
        return chunks

    def ping(self) -> None:
        """Send a Ping unless a write is under way; never blocks (see :meth:`_flush_soon`).

        The owner's housekeeping thread calls this (through :meth:`tick`): a
        peer that reads nothing is what pings are there to find.
        """
        if not self._write_lock.acquire(blocking=False):
            return  # a write is under way: the link is not idle
        try:
            with self._lock:
                self.protocol.send_ping()
        finally:
            self._write_lock.release()
        self._flush_soon()

    def close(self, code: int | None = 1000, reason: str = "") -> None:
        """Start the closing handshake (RFC 6455 section 7.1.2); never blocks, never raises."""
        with self._lock:
            self.protocol.send_close(code, reason)
            if self.closing_since == 0.0:
                self.closing_since = time.monotonic()
        self._flush_soon()

    def _flush_soon(self) -> None:
        """Write what is queued now if that cannot block, else from a thread of its own.

        For callers that must not wait on a peer that reads nothing: the
        housekeeping thread (pings) and whoever closes (a server shutting down
        closes every connection in turn). A small queue on a socket with room
        goes at once; otherwise a short-lived thread writes it, bounded like
        any write by ``send_timeout`` through :meth:`tick`.
        """
        if self._aborted or not self._write_lock.acquire(blocking=False):
            return  # over, or the thread writing now will take it along
        if self.protocol.pending <= SMALL and _wait(self.sock, write=True, timeout=0):
            try:
                self._write()
            except NotConnected:
                pass  # shut down; the receive thread ends and reports it
            return
        self._write_lock.release()
        name = f"onebot-ws-flush-{self.label}"
        threading.Thread(target=self._flush_quietly, name=name, daemon=True).start()

    def _flush_quietly(self) -> None:
        try:
            self._flush()
        except NotConnected:
            pass  # the connection is shut down; its owner learns from on_close

    def abort(self) -> None:
        """Shut the socket down now: that wakes a blocked ``recv`` or ``send`` on every OS."""
        self._aborted = True
        try:
            # socket.socket's own shutdown: an SSLSocket's would also drop its SSL
            # object, which another thread may be using this very moment.
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass

    # -- deadlines ----------------------------------------------------------------------

    def expect_traffic(self, within: float | None, why: str = "") -> None:
        """Cut the connection if nothing arrives for ``within`` seconds (None: never)."""
        self.silence = None if within is None else (within, why)

    def tick(self, now: float) -> None:
        """Enforce the deadlines and send due pings; the owner calls this a few times a second.

        A connection that overstays is shut down, and :attr:`cut` says why.
        """
        if self._aborted:
            return
        overstayed = self._overstayed(now)
        if overstayed is not None:
            level, self.cut = overstayed
            log.log(level, "%r %s; closing it", self, self.cut)
            self.abort()
        elif self.ping_interval and now - self.last_ping > self.ping_interval:
            self.last_ping = now
            self.ping()

    def _overstayed(self, now: float) -> tuple[int, str] | None:
        silent = now - self.last_seen
        stuck = now - self.sending_since if self.sending_since else 0.0
        if self.closing_since and now - self.closing_since > self.close_timeout:
            return logging.INFO, f"left our Close unanswered for {self.close_timeout:.1f}s"
        if stuck > self.send_timeout:
            return logging.WARNING, f"has not taken what we sent for {stuck:.1f}s"
        if self.silence is not None and silent > self.silence[0]:
            return logging.WARNING, f"silent for {silent:.1f}s ({self.silence[1]})"
        if self.ping_interval and silent > self.heartbeat_factor * self.ping_interval:
            return logging.WARNING, f"answered none of our pings for {silent:.1f}s"
        return None

    # -- the end ------------------------------------------------------------------------

    def _finish(self) -> None:
        """Close TCP the way section 7.1.1 asks, without losing our last frames.

        The server closes first: half-close, then read what is left for a
        moment, so that closing with unread data does not reset the connection
        before the peer has read our Close. The client waits (as briefly) for
        the server to do so.

        A frame queued while another thread was writing (our answer to the
        peer's Close, the Close of a failed connection) was left to that
        thread: we let its write finish (within ``send_timeout``; :meth:`tick`
        cuts one that is stuck) and write what is still queued before the
        half-close, which would otherwise cut that Close off.
        """
        if not self._aborted and self._write_lock.acquire(timeout=self.send_timeout):
            try:
                self._write()  # releases the lock
            except NotConnected:
                pass  # the peer is gone: nothing more can reach it
        self._aborted = True
        sock = self.sock
        try:
            if self.protocol.tcp_close_first:
                socket.socket.shutdown(sock, socket.SHUT_WR)
            deadline = time.monotonic() + DRAIN
            scratch = bytearray(65536)
            while time.monotonic() < deadline:
                if not _wait(sock, write=False, timeout=max(0.0, deadline - time.monotonic())):
                    break
                if not socket.socket.recv_into(sock, scratch):
                    break
        except OSError:
            pass
        finally:
            sock.close()
