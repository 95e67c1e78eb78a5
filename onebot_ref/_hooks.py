"""``on_connect``/``on_disconnect``: one thread model for every mode.

A hook runs user code, and user code calls the API: ``on_connect`` that asks
``get_login_info`` is the first thing a bot writes. So a hook must never run
on a thread that reads responses (a receive thread, or the client's connection
loop that waits for one): the call would wait for an answer that only that
very thread can read. :class:`Hooks` gives them a thread of their own.

The model, the same for the clients and the servers:

* one queue and one daemon thread per mode object, started by the first hook
  (a bot with no hooks starts no thread);
* hooks run in the order they were queued, one at a time, so a disconnect is
  never reported before the connect it ends;
* a hook that raises is logged with its traceback, and the next one runs;
* :meth:`Hooks.close` takes no more hooks, lets the queued ones run, and waits
  for them until the caller's deadline (not at all from inside a hook).

The queue holds at most ``limit`` hooks: a hook stuck forever while a link
flaps cannot grow it without bound (beyond it, hooks are dropped and logged).
It owns one thread and knows nothing of connections or OneBot.
"""

import collections
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Hooks"]

log = logging.getLogger(__name__)

LIMIT = 1000  # hooks waiting behind a slow one; a connect and a disconnect per reconnect


class Hooks:
    """Run hooks in order on one daemon thread, started by the first one.

    Args:
        name: the thread's name (``onebot-ws-client-hooks``...).
        logger: where a failing hook is logged (the mode's module).
        limit: hooks that may wait in the queue.
    """

    def __init__(self, name: str, *, logger: logging.Logger = log, limit: int = LIMIT) -> None:
        self.name = name
        self.log = logger
        self.limit = limit
        self.dropped = 0  # hooks refused because the queue was full
        self._queue: collections.deque[tuple[Callable[..., object], tuple[object, ...]]] = (
            collections.deque()
        )
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def run(self, hook: Callable[..., object] | None, *args: object) -> None:
        """Queue ``hook(*args)``; never blocks. None, or after :meth:`close`, does nothing."""
        if hook is None:
            return
        with self._changed:
            if self._closed:
                return
            if len(self._queue) >= self.limit:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 100 == 0:
                    self.log.warning(
                        "%d hooks dropped: %d are waiting behind one that does not return",
                        self.dropped,
                        len(self._queue),
                    )
                return
            self._queue.append((hook, args))
            if self._thread is None:
                # Daemon: a hook that never returns must not keep the interpreter alive.
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def close(self, deadline: float) -> None:
        """Take no more hooks; wait until ``deadline`` (``time.monotonic()``) for the queued ones.

        From inside a hook it returns at once: the thread ends after that hook.
        """
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            self.log.warning("%s: a hook is still running after close()", self.name)

    def _loop(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return  # closed, and every queued hook has run
                hook, args = self._queue.popleft()
            try:
                hook(*args)
            except Exception:
                name = getattr(hook, "__qualname__", repr(hook))
                self.log.exception("hook %s failed", name)
