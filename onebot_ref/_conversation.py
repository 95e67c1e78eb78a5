"""Conversations: a handler that waits for the next matching event (``ask``, ``wait_for``).

A synchronous handler can simply wait: ``name = bot.ask(event, "你叫什么？")``
sends the question, blocks, and returns the user's next message in that chat.
:class:`Waiters` is the list of those waiting; the registry offers every event
to it before any handler sees it, and an event that a waiter takes is
*consumed*: no handler or command runs for it (the answer "北京" to "which
city?" must not also run as a message of its own).

Waiting is done on the waiting thread itself (a ``threading.Event``), with a
deadline. Waiters are matched oldest first; a predicate that raises is logged
and counts as "no".

Starving the pool: a handler that waits holds its worker thread. With 16
workers, 16 conversations would stop every other event. So a worker that starts
to wait *lends its slot*: the registry starts a spare worker in its place, and
when the wait is over it queues a stop marker, which retires one worker (an
idle spare, as a rule) once the events queued before it are handled: the pool
is ``workers`` again without waiting for more events. It is therefore bounded by
the handlers that *run*, not by those that wait; what bounds the waiting ones
is ``max_waiting`` (a conversation past it fails at once with
:class:`ConversationTimeout`), and each waiting thread costs a stack, not CPU.
"""

import logging
import threading
from collections.abc import Callable
from typing import Any

from .errors import ConversationTimeout

__all__ = ["Predicate", "Waiter", "Waiters", "same_chat"]

log = logging.getLogger("onebot_ref.registry")

Predicate = Callable[[dict[str, Any]], object]


def same_chat(event: dict[str, Any]) -> Predicate:
    """A predicate for the next message from ``event``'s user in ``event``'s chat."""
    keys = ("self_id", "message_type", "user_id", "group_id")
    wanted = {k: str(event.get(k)) for k in keys}

    def predicate(other: dict[str, Any]) -> bool:
        return other.get("post_type") == "message" and all(
            str(other.get(k)) == v for k, v in wanted.items()
        )

    predicate.__qualname__ = f"same_chat(user {wanted['user_id']})"
    return predicate


class Waiter:
    """One wait: its predicate and, once matched, the event that it took."""

    def __init__(self, predicate: Predicate) -> None:
        self.predicate = predicate
        self.event: dict[str, Any] | None = None
        self.done = threading.Event()


class Waiters:
    """Those waiting for an event, oldest first, at most ``limit`` at once."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._waiting: list[Waiter] = []
        self._lock = threading.Lock()
        self.consumed = 0  # events taken by a waiter instead of the handlers
        self._closed = False

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, predicate: Predicate) -> Waiter:
        """Start waiting for an event that ``predicate`` accepts.

        Raises:
            ConversationTimeout: ``limit`` waits are already running (at once, without waiting).
        """
        waiter = Waiter(predicate)
        with self._lock:
            if self._closed:
                raise ConversationTimeout("the bot is closing: no answer will come")
            if len(self._waiting) >= self.limit:
                raise ConversationTimeout(
                    f"{len(self._waiting)} conversations are already waiting "
                    f"(max_waiting={self.limit}); end some or raise the Registry's max_waiting"
                )
            self._waiting.append(waiter)
        return waiter

    def wait(self, waiter: Waiter, timeout: float) -> dict[str, Any]:
        """Block until ``waiter`` has its event; remove it either way.

        Raises:
            ConversationTimeout: nothing matched within ``timeout`` seconds.
        """
        try:
            waiter.done.wait(timeout)
        finally:
            with self._lock:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
        if waiter.event is None and self._closed:
            raise ConversationTimeout("the bot closed while waiting for an answer")
        if waiter.event is None:  # set under the lock, before the removal: no race
            raise ConversationTimeout(
                f"no answer within {timeout:g}s; ask again, or pass a longer timeout="
            )
        return waiter.event

    def close(self) -> None:
        """End every wait now (each raises ConversationTimeout) and take no more."""
        with self._lock:
            self._closed = True
            waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.done.set()

    def cancel(self, waiter: Waiter) -> None:
        """Stop waiting (the prompt could not be sent)."""
        with self._lock:
            if waiter in self._waiting:
                self._waiting.remove(waiter)

    def offer(self, event: dict[str, Any]) -> bool:
        """Hand ``event`` to the oldest waiter that accepts it; True if one took it."""
        if not self._waiting:
            return False
        with self._lock:
            waiting = list(self._waiting)
        for waiter in waiting:
            try:
                wanted = waiter.predicate(event)
            except Exception:
                log.exception("wait_for predicate %r failed", waiter.predicate)
                continue
            if not wanted:
                continue
            with self._lock:
                if waiter not in self._waiting:
                    continue  # timed out, or taken by an event in another thread
                self._waiting.remove(waiter)
                waiter.event = event
                self.consumed += 1
            waiter.done.set()
            return True
        return False
