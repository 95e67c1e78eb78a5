"""One thread reading many WebSocket connections: a selector instead of a thread each.

A thousand accounts on one reverse-WS server were a thousand receive threads,
each blocked in ``recv``: ~15 KiB of thread and a 16 KiB buffer per idle
connection, and, under load, a context switch for nearly every event, since
each event arrives on a connection of its own (``benchmarks/bench_accounts.py``).
A :class:`SharedReader` waits on all of them in one ``select`` (epoll, kqueue)
and reads each that is ready once, into one buffer, before it waits again: the
events of many connections cost one wake-up.

Nothing else changes for a connection (:class:`~onebot_ref._ws_connection.Connection`):
the same protocol, the same send path (handler threads write themselves), the
same deadlines from the owner's ``tick``. What the reader asks of it:

* ``on_message`` never blocks, as everywhere (the modes hand events to a
  worker pool); here a blocked one would stall every connection, not one.
* Frames a read asks for (a Pong, the answer to a Close) go out only if that
  cannot block, else from a short-lived thread
  (:meth:`~onebot_ref._ws_connection.Connection.read_ready`).
* Once a connection is over, the closing of TCP (half-close, then draining for
  up to a second) and ``on_close`` run on a short-lived thread of their own,
  never on the reader's.
* A connection whose peer sends faster than it reads what we answer (pings
  whose Pongs it never takes) would pile up Pongs: past ``OUTBOX_LIMIT``
  queued, it leaves the reader for a thread of its own, where, as before,
  writing holds reading back until ``send_timeout`` cuts it.

Connections are shared where one read can be told not to block
(``MSG_DONTWAIT``: Linux, macOS, the BSDs; ``CAN_SHARE``); on Windows each
keeps its own thread. A TLS socket is non-blocking already: a read takes what
OpenSSL can give, goes on while OpenSSL holds decrypted bytes that no
``select`` would show (``pending()``), and a connection whose OpenSSL must
write before it can read (a renegotiation) goes to a thread of its own.

It owns the reader thread and the selector. It must never decide a protocol
question or parse a message (the connection and its owner do), and it imports
nothing above :mod:`onebot_ref._ws_connection`.
"""

import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable

from ._ws_connection import DONTWAIT, RECV_MAX, Connection, Reading

__all__ = ["CAN_SHARE", "SharedReader"]

log = logging.getLogger(__name__)


# Whether this platform lets a SharedReader read sockets: one read must be told not to block.
CAN_SHARE = bool(DONTWAIT)


class SharedReader:
    """Reads every connection handed to it, on one thread, started with the first.

    Args:
        name: names the reader's thread (``name-reader``), the threads that
            end connections (``name-end``) and those that read a backed-up one
            (``name-recv``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._selector: selectors.BaseSelector | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None  # (read end, write end)
        self._incoming: list[tuple[Connection, Callable[[], object]]] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._enders: set[threading.Thread] = set()  # threads ending connections

    def add(self, conn: Connection, done: Callable[[], object]) -> bool:
        """Read ``conn`` from now on; once it is over, end it and call ``done()``.

        ``conn`` must have begun (:meth:`Connection.begin`). ``done`` runs on
        the thread that ends the connection, after its ``on_close``. False
        when the reader is closing: the caller keeps the connection.
        """
        with self._lock:
            if self._stopping:
                return False
            if self._thread is None:
                self._selector = selectors.DefaultSelector()
                self._wake = socket.socketpair()
                for end in self._wake:
                    end.setblocking(False)
                self._selector.register(self._wake[0], selectors.EVENT_READ, None)
                self._thread = threading.Thread(
                    target=self._run, name=f"{self.name}-reader", daemon=True
                )
                self._thread.start()
            self._incoming.append((conn, done))
        self._poke()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop reading; end what is still being read; join every thread, within ``timeout``.

        The owner closes (or cuts) its connections first: what is left here
        is ended as if cut.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stopping = True
            thread = self._thread
        if thread is None:
            return
        self._poke()
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("%s: the reader thread is still busy after close()", self.name)
        with self._lock:
            enders = list(self._enders)
        for ender in enders:
            ender.join(max(0.0, deadline - time.monotonic()))

    def _poke(self) -> None:
        """Wake the reader from its ``select``: something was added, or it must stop."""
        assert self._wake is not None
        try:
            self._wake[1].send(b"\0")
        except BlockingIOError:
            pass  # full of wake-ups already: the reader will look

    # -- the reader thread --------------------------------------------------------------

    def _run(self) -> None:
        selector = self._selector
        assert selector is not None and self._wake is not None
        scratch = memoryview(bytearray(RECV_MAX))  # one buffer for every connection
        try:
            while True:
                for key, _ in selector.select():
                    if key.data is None:
                        if not self._admit(selector):
                            return
                        continue
                    conn, done = key.data
                    reading = conn.read_ready(scratch)
                    if reading is not Reading.MORE:
                        selector.unregister(key.fileobj)
                        self._end(conn, done, go_on=reading is Reading.BACKED_UP)
        except Exception:  # a bug of ours: every connection would hang unread
            log.exception("%s: the shared reader failed; cutting its connections", self.name)
        finally:
            for key in list(selector.get_map().values()):
                if key.data is not None:
                    selector.unregister(key.fileobj)
                    key.data[0].abort()
                    self._end(*key.data)
            selector.close()
            for end in self._wake:
                end.close()

    def _admit(self, selector: selectors.BaseSelector) -> bool:
        """Register what was added; False when it is time to stop."""
        assert self._wake is not None
        try:
            while self._wake[0].recv(4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            incoming, self._incoming = self._incoming, []
            stopping = self._stopping
        for conn, done in incoming:
            try:
                selector.register(conn.sock, selectors.EVENT_READ, (conn, done))
            except (OSError, ValueError) as exc:  # closed meanwhile (cut by tick or close)
                log.debug("%r: gone before it could be read: %s", conn, exc)
                conn.abort()
                self._end(conn, done)
        return not stopping

    def _end(self, conn: Connection, done: Callable[[], object], go_on: bool = False) -> None:
        """End ``conn`` on a thread of its own: closing TCP may wait (module docstring).

        With ``go_on``, the thread first reads the connection until it is over
        (:meth:`Connection.go_on`): one that is backed up is read where its
        writes can hold its reads back.
        """

        def end() -> None:
            try:
                if go_on:
                    log.debug("%r is backed up; reading it on a thread of its own", conn)
                    conn.go_on()  # ends it
                else:
                    conn.end()
                done()
            except Exception:
                log.exception("%r: error while ending the connection", conn)
            finally:
                with self._lock:
                    self._enders.discard(thread)

        name = f"{self.name}-{'recv' if go_on else 'end'}"  # recv: it reads the connection on
        thread = threading.Thread(target=end, name=name, daemon=True)
        with self._lock:
            self._enders.add(thread)
        thread.start()
