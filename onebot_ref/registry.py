"""The callback registry every receiving mode shares: ``on(name)`` and dispatch.

Handlers register for a dotted event name (see :func:`codec.event_name`)::

    @bot.on("message.group")
    def greet(event):
        ...

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
"""

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from .codec import event_name, log_frame
from .dedup import Recent, shared_key

__all__ = ["Handler", "Registry"]

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]


class Registry:
    """Handlers by dotted event name, plus a bounded worker pool for :meth:`submit`.

    Args:
        workers: the number of worker threads (started on the first submit).
        max_pending: events queued for the workers at most; beyond it new events
            are dropped and counted, so a flood cannot exhaust memory.
        slow_handler: seconds after which a finished handler is logged as slow.
        dedup_accounts: seconds to remember each event by what all accounts' copies
            share (see :mod:`onebot_ref.dedup`); a copy another bot account already
            delivered in that time is not handled again, so several bots in one
            group reply once. 0, the default, handles every copy.
    """

    def __init__(
        self,
        workers: int = 16,
        max_pending: int = 10_000,
        slow_handler: float = 10.0,
        dedup_accounts: float = 0.0,
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
        self._recent = Recent(dedup_accounts) if dedup_accounts > 0 else None
        self.max_pending = max_pending
        # SimpleQueue is C code and a third of queue.Queue's cost per event; the
        # bound is checked in submit() (concurrent submitters may overshoot it by
        # one each, which is still bounded).
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def on(self, name: str = "*") -> Callable[[Handler], Handler]:
        """Decorator: register the function for ``name`` and return it unchanged."""

        def decorator(func: Handler) -> Handler:
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
            started = time.monotonic()
            try:
                result = handler(event)
            except Exception:
                self.handler_errors += 1
                log.exception("handler %s failed on %s", _name(handler), event_name(event))
                continue
            finally:
                elapsed = time.monotonic() - started
                if elapsed > self.slow_handler:
                    log.warning("handler %s took %.1fs", _name(handler), elapsed)
            if result is not None:
                results.append(result)
        self.handled += 1
        return results

    def submit(self, event: dict[str, Any]) -> bool:
        """Queue ``event`` for the workers; False if it was dropped (full or closed).

        A copy that ``dedup_accounts`` recognises is not queued, and counts as delivered (True).
        """
        log_frame("received", event)
        self.received += 1
        if self._closed:
            self.dropped += 1
            return False
        if self._duplicate(event):
            return True
        self._start_workers()
        if self._queue.qsize() >= self.max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "handlers are %d events behind; dropped %d events so far",
                    self._queue.qsize(),
                    self.dropped,
                )
            return False
        self._queue.put(event)
        return True

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
        while (event := self._queue.get()) is not None:
            self._run(event)

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


def _name(func: Handler) -> str:
    return getattr(func, "__qualname__", repr(func))
