"""Accounts coming and going: ``on_connect(bot)``/``on_disconnect(bot)``, one model for all modes.

A hook runs user code, and user code calls the API: an ``on_connect`` that
asks ``get_login_info`` is the first thing a bot writes. So a hook must never
run on a thread that reads responses (a receive or request thread, or the
client's connection loop): the call would wait for an answer that only that
very thread can read. All four modes tell a bot the same two things with the
same signature and the same thread model:

* ``f(bot)``: for the servers ``bot`` is a :class:`Bot`, a handle whose
  OneBotApi methods act for that one account (its ``self_id``); for
  ``WsClient`` it is the client itself (one connection, one account), and why
  a connection ended is in its ``last_error``;
* run in order, one at a time, on one hook thread of the mode object's own
  (started with the first hook: a bot with no hooks starts no thread), so a
  disconnect is never reported before the connect it ends. A hook may
  therefore call the API: the response it waits for is read by a thread that
  is not blocked in the hook. A hook that raises is logged with its traceback
  and the next one runs;
* ``close()`` takes no more hooks, lets the queued ones run, and waits for
  them until its deadline (not at all from inside a hook).

What "connect" and "disconnect" mean is each mode's: a reverse-WS account's
first connection and its last one gone; an HTTP POST account's first event and
its heartbeats stopping (:mod:`onebot_ref.http_server`); each connection of
``WsClient`` (:mod:`onebot_ref.ws_client`). Either server's ``close()`` says
"disconnect" for every account still there, then stops the hook thread.

The queue holds at most ``limit`` hooks: a hook stuck forever while a link
flaps cannot grow it without bound (beyond it, hooks are dropped and logged).
:class:`Hooks` owns one thread and knows nothing of connections or OneBot.
"""

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .api import OneBotApi, merge_params

__all__ = ["Bot", "Hook", "Hooks"]

log = logging.getLogger(__name__)

LIMIT = 1000  # hooks waiting behind a slow one; a connect and a disconnect per reconnect


class Bot(OneBotApi):
    """A handle on one account: every OneBotApi method, sent for ``self_id``.

    Calls go through the server's :meth:`~OneBotApi.call_for` with
    ``{"self_id": self_id}`` as the event: ``WsServer`` sends them on that
    account's connection; ``HttpServer`` through its ``api=`` (which routes by
    account when it is itself a ``WsServer``).
    """

    def __init__(self, server: OneBotApi, self_id: int | str) -> None:
        self.server = server
        self.self_id = str(self_id)

    def __repr__(self) -> str:
        return f"<Bot {self.self_id}>"

    def call(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``action`` for this account; ``params`` and ``kwargs`` merge (kwargs win).

        An action parameter named ``timeout`` travels in ``params``.
        """
        merged = merge_params(params, kwargs)
        return self.server.call_for({"self_id": self.self_id}, action, merged, timeout=timeout)


Hook = Callable[[Bot], object]


class Hooks:
    """The hook thread of one mode object: ``hook(*args)`` calls, queued and run in order.

    Args:
        name: the thread's name, or a function that gives it when the thread
            starts (servers put their port in it, known once bound).
        logger: where a hook that raises is logged (the mode's module).
        limit: hooks that may wait in the queue.
    """

    def __init__(
        self,
        name: str | Callable[[], str],
        logger: logging.Logger = log,
        *,
        limit: int = LIMIT,
    ) -> None:
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
        """Queue ``hook(*args)`` behind the hooks already queued; nothing if None or closed.

        Never blocks: callers queue hooks with their own lock held, so that the
        queue's order is the order in which accounts came and went.
        """
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
                name = self.name if isinstance(self.name, str) else self.name()
                # Daemon: a hook that never returns must not keep the interpreter alive.
                self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
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
            self.log.warning("%s: a hook is still running after close()", thread.name)

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
                whom = ", ".join(repr(arg) for arg in args)
                self.log.exception("hook %s failed for %s", name, whom)
