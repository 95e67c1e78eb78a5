"""The callback registry every receiving mode shares: ``on(name)`` and dispatch.

Handlers register for a dotted event name (see :func:`codec.event_name`)::

    @bot.on("message.group")
    def greet(event: GroupMessageEvent) -> None:
        ...

The event a handler gets is a plain ``dict``; annotate it as ``dict[str,
Any]``, or with the event's ``TypedDict`` (``from onebot_ref import
GroupMessageEvent``) for an editor that completes its keys. ``on`` returns the
handler unchanged, with its own type.

An event named ``message.group.normal`` runs the handlers of
``message.group.normal``, then ``message.group``, then ``message``, then ``*``:
most specific first, and in registration order within a name. Unknown event
kinds (``message_sent``, ``notice.bot_offline``…) are delivered like any other.

A handler that raises is logged with its traceback; the others still run. A
handler's non-None return value is collected: over HTTP POST the first dict
becomes the quick-operation reply.

Threads: :meth:`Registry.dispatch` runs handlers in the caller's thread (the
HTTP server's request thread, where the reply must wait for them).
:meth:`Registry.submit` hands the event to the registry's own small pool of
worker threads instead. The WebSocket modes use it so that a receive thread
never runs user code: a handler can then make a blocking API call whose
response that very receive thread has to deliver, without a deadlock.

The queue is bounded twice, by events (``max_pending``) and by bytes
(``max_pending_bytes``): ten thousand events of a megabyte each would otherwise
hold 10 GB while the handlers are stuck. Past either bound an event is dropped,
counted in ``dropped`` and logged at most once per ``drop_log_interval``
seconds, so a flood can neither exhaust memory nor flood the log.
"""

import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ._dedup import Recent, shared_key
from .codec import event_name, log_frame

__all__ = ["Handler", "HandlerT", "Registry"]

log = logging.getLogger(__name__)

# The event's parameter is Any, not dict[str, Any]: a handler annotated with a TypedDict
# (GroupMessageEvent) takes fewer values than any dict, so a Callable over dict[str, Any]
# would refuse it; what is passed at runtime is always the event's plain dict.
Handler = Callable[[Any], Any]
# on()'s decorator returns the handler it was given with that handler's own type.
HandlerT = TypeVar("HandlerT", bound=Handler)

# Seconds between two warnings about dropped events (the first drop is logged at once).
DROP_LOG_INTERVAL = 10.0

# Measures an event given without its size: lenient (NaN, any object) because
# it only counts, and it writes what the wire would carry, so both measures agree.
_measure = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=repr)


class Registry:
    """Handlers by dotted event name, plus a bounded worker pool for :meth:`submit`.

    Args:
        workers: the number of worker threads (started on the first submit).
        max_pending: events queued for the workers at most; beyond it new events
            are dropped and counted, so a flood cannot exhaust memory.
        max_pending_bytes: the size of the events queued for or being handled by
            the workers, at most; beyond it new events are dropped and counted
            too. The default, 256 MiB, holds four messages of the largest size
            ``WsServer`` accepts, or 64 one-MiB events in flight at once, and
            still ends a flood long before memory does. An event's size is its
            JSON on the wire, which the transports pass to :meth:`submit`;
            decoded into dicts, an event takes a few times that in memory.
        slow_handler: seconds after which a finished handler is logged as slow.
        dedup_accounts: seconds to remember each event by what all accounts' copies
            share (see :mod:`onebot_ref.dedup`); a copy another bot account already
            delivered in that time is not handled again, so several bots in one
            group reply once. 0, the default, handles every copy.
        clock: reads the time in seconds (``time.monotonic``) for the drop
            warnings' interval, ``dedup_accounts`` and ``slow_handler`` (and
            ``HttpServer``'s slow-event warning); a test passes its own to move
            through them without waiting.
    """

    def __init__(
        self,
        workers: int = 16,
        max_pending: int = 10_000,
        max_pending_bytes: int = 256 * 2**20,
        slow_handler: float = 10.0,
        dedup_accounts: float = 0.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.handlers: dict[str, list[Handler]] = {}
        self.workers = workers
        self.slow_handler = slow_handler
        # Delivery counters. Plain ints: each += happens under the GIL, and they
        # are statistics, not synchronisation.
        self.received = 0
        self.handled = 0
        self.handler_errors = 0
        self.dropped = 0
        self.duplicates = 0
        self.clock = clock
        self._recent = Recent(dedup_accounts, clock=clock) if dedup_accounts > 0 else None
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.pending_bytes = 0  # the sizes of the events queued or being handled now
        self.drop_log_interval = DROP_LOG_INTERVAL
        self._drops_unlogged = 0
        self._drop_logged_at = -float("inf")
        # SimpleQueue is C code and a third of queue.Queue's cost per event. Each
        # event travels with its size, which its worker gives back when done; the
        # bounds are checked, and the bytes counted, under _pending_lock, whose
        # += a receive thread and a worker could otherwise interleave and lose.
        self._queue: queue.SimpleQueue[tuple[dict[str, Any], int] | None] = queue.SimpleQueue()
        self._pending_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def on(self, name: str = "*") -> Callable[[HandlerT], HandlerT]:
        """Decorator: register the function for ``name`` and return it unchanged."""

        def decorator(func: HandlerT) -> HandlerT:
            self.add(name, func)
            return func

        return decorator

    def add(self, name: str, func: Handler) -> None:
        """Register ``func`` for ``name`` (``"*"`` is every event)."""
        self.handlers.setdefault(name, []).append(func)

    def handlers_for(self, event: dict[str, Any]) -> list[Handler]:
        """The handlers ``event`` runs, in dispatch order."""
        parts = event_name(event).split(".")
        names = [".".join(parts[:n]) for n in range(len(parts), 0, -1) if parts[n - 1]]
        names.append("*")
        found: list[Handler] = []
        for name in names:
            found.extend(self.handlers.get(name, ()))
        return found

    def dispatch(self, event: dict[str, Any]) -> list[Any]:
        """Run the handlers for ``event`` in this thread; return their non-None results."""
        log_frame("received", event)
        self.received += 1
        if self._duplicate(event):
            return []
        return self._run(event)

    def _duplicate(self, event: dict[str, Any]) -> bool:
        """True (and counted) if ``dedup_accounts`` has seen another account's copy."""
        if self._recent is None or (key := shared_key(event)) is None:
            return False
        if not self._recent.seen(key):
            return False
        self.duplicates += 1
        return True

    def _run(self, event: dict[str, Any]) -> list[Any]:
        results = []
        for handler in self.handlers_for(event):
            started = self.clock()
            try:
                result = handler(event)
            except Exception:
                self.handler_errors += 1
                log.exception("handler %s failed on %s", _name(handler), event_name(event))
                continue
            finally:
                elapsed = self.clock() - started
                if elapsed > self.slow_handler:
                    log.warning("handler %s took %.1fs", _name(handler), elapsed)
            if result is not None:
                results.append(result)
        self.handled += 1
        return results

    def submit(self, event: dict[str, Any], size: int | None = None) -> bool:
        """Queue ``event`` for the workers; False if it was dropped (a bound, or closed).

        A copy that ``dedup_accounts`` recognises is not queued, and counts as delivered (True).

        Args:
            event: the decoded event.
            size: its size on the wire in bytes (the transports know the frame's
                length); when None it is measured as its compact UTF-8 JSON.
        """
        log_frame("received", event)
        self.received += 1
        if self._closed:
            self.dropped += 1
            return False
        if self._duplicate(event):
            return True
        self._start_workers()
        if size is None:
            size = _size_of(event)
        with self._pending_lock:
            waiting, pending = self._queue.qsize(), self.pending_bytes
            if waiting < self.max_pending and pending + size <= self.max_pending_bytes:
                self.pending_bytes += size
                self._queue.put((event, size))
                return True
            self.dropped += 1
            self._drops_unlogged += 1
            now = self.clock()
            if now - self._drop_logged_at < self.drop_log_interval:
                return False
            self._drop_logged_at = now
            count, self._drops_unlogged = self._drops_unlogged, 0
        if waiting >= self.max_pending:
            why = f"{waiting} events are waiting (max_pending={self.max_pending})"
        else:
            why = (
                f"{pending} bytes of events are pending and this one has {size} "
                f"(max_pending_bytes={self.max_pending_bytes})"
            )
        log.warning(
            "dropped events: %d since the last warning, %d in all; the handlers are behind "
            "(%s): handle events faster or in more workers, or raise the bound",
            count, self.dropped, why,
        )  # fmt: skip
        return False

    def _start_workers(self) -> None:
        if self._threads:
            return
        with self._lock:
            if self._threads or self._closed:
                return
            for n in range(self.workers):
                # Daemon: a handler stuck forever must not keep the interpreter alive.
                thread = threading.Thread(
                    target=self._work, name=f"onebot-handler-{n}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            event, size = item
            try:
                self._run(event)
            finally:
                with self._pending_lock:
                    self.pending_bytes -= size

    def join(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event has been handled; False on timeout.

        From inside a handler it cannot wait for itself, and returns at once.
        """
        if threading.current_thread() in self._threads:
            return self._idle()
        deadline = time.monotonic() + timeout
        while not self._idle():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _idle(self) -> bool:
        done = self.handled + self.dropped + self.duplicates
        return self._queue.empty() and done >= self.received

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers after the events already queued; wait ``timeout`` at most."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
        deadline = time.monotonic() + timeout
        for _ in threads:  # one stop marker per worker, behind the events already queued
            self._queue.put(None)
        for thread in threads:
            if thread is threading.current_thread():
                continue  # close() from inside a handler: this worker stops after it returns
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("handler thread %s still busy after close()", thread.name)


def _size_of(event: dict[str, Any]) -> int:
    """The bytes ``event`` takes as compact UTF-8 JSON: what a transport would have passed."""
    try:
        return len(_measure.encode(event).encode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):  # a dict that contains itself: not from the wire
        return sys.getsizeof(event)


def _name(func: Handler) -> str:
    return getattr(func, "__qualname__", repr(func))
