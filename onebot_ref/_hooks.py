"""Accounts coming and going: ``on_connect(bot)`` / ``on_disconnect(bot)`` for both server modes.

``WsServer`` and ``HttpServer`` tell a bot the same two things with the same
signature and the same thread model:

* ``f(bot)``, where ``bot`` is a :class:`Bot`: a handle whose OneBotApi methods
  act for that one account (its ``self_id``);
* run in order, one at a time, on one hook thread of the server's own (started
  with the first hook), never on a receive or request thread. A hook may
  therefore call the API: the response it waits for is read by a thread that
  is not blocked in the hook. A hook that raises is logged with its traceback
  and the next one runs.

What "connect" and "disconnect" mean is each mode's: a reverse-WS account's
first connection and its last one gone; an HTTP POST account's first event and
its heartbeats stopping (:mod:`onebot_ref.http_server`). Either server's
``close()`` says "disconnect" for every account still there, then stops the
hook thread.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .api import OneBotApi

__all__ = ["Bot", "Hook", "Hooks"]


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
        merged = {**(params or {}), **kwargs}
        return self.server.call_for({"self_id": self.self_id}, action, merged, timeout=timeout)


Hook = Callable[[Bot], object]


class Hooks:
    """The hook thread of one server: ``hook(bot)`` calls, queued and run in order.

    Args:
        name: the thread's name, asked when it starts (servers put their port in it).
        logger: where a hook that raises is logged (the server's module).
    """

    def __init__(self, name: Callable[[], str], logger: logging.Logger) -> None:
        self.name = name
        self.log = logger
        self._queue: queue.SimpleQueue[tuple[Hook, Bot] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def run(self, hook: Hook | None, bot: Bot) -> None:
        """Queue ``hook(bot)`` behind the hooks already queued; nothing once closed.

        Never blocks: callers queue hooks with their own lock held, so that the
        queue's order is the order in which accounts came and went.
        """
        if hook is None:
            return
        with self._lock:
            if self._closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name(), daemon=True)
                self._thread.start()
            self._queue.put((hook, bot))

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            hook, bot = item
            try:
                hook(bot)
            except Exception:
                name = getattr(hook, "__qualname__", hook)
                self.log.exception("hook %s failed for %r", name, bot)

    def close(self, deadline: float) -> None:
        """Run the hooks already queued, then stop the thread; wait until ``deadline`` at most."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        if thread is threading.current_thread():  # close() from inside a hook
            return
        thread.join(max(0.1, deadline - time.monotonic()))
        if thread.is_alive():
            self.log.warning("hook thread still busy after close()")
