"""The send limit: at most ``rate`` messages a second per account, and per chat.

QQ's risk control (风控) watches how fast an account sends: a bot that answers
a burst of commands at once gets its messages silently swallowed, then the
account muted or frozen. A limit on our side keeps a bot below that, and it is
off by default (the limits QQ applies are not published; one message a second
with a burst of five per account is a common choice among bot authors).

Each key (an account; an account and one chat) is a token bucket written as a
GCRA: ``tat`` is the time at which the bucket is next empty, one message adds
``1 / rate`` to it, and a message may go at ``tat - (burst - 1) / rate``. A
message over the limit *waits*, and the waits are handed out in the order the
sends arrived (each takes its slot under one lock, then sleeps to it), so
messages leave in order and none is dropped. A wait longer than ``max_wait``
is not taken: the send raises :class:`SendLimited` at once, and nothing was sent.

Only sending actions count (:data:`SEND_ACTIONS`); everything else passes.
"""

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ConfigError, SendLimited

__all__ = ["SEND_ACTIONS", "SendLimit"]

# The actions that post a message to a chat, standard and go-cqhttp's extensions.
SEND_ACTIONS = frozenset(
    {
        "send_msg",
        "send_private_msg",
        "send_group_msg",
        "send_forward_msg",
        "send_group_forward_msg",
        "send_private_forward_msg",
    }
)

_Bucket = tuple[tuple[str, ...], float, int]  # key, rate, burst


def target_of(action: str, params: Mapping[str, Any]) -> tuple[str, str] | None:
    """The chat a send action posts to (``("group", id)`` / ``("private", id)``), else None."""
    base = action.removesuffix("_async")
    if base not in SEND_ACTIONS:
        return None
    if params.get("group_id") is not None and (
        "group" in base or params.get("message_type") != "private"
    ):
        return "group", str(params["group_id"])
    return "private", str(params.get("user_id"))


class SendLimit:
    """A rate and a burst per account, and optionally per chat, for outgoing messages.

    Args:
        rate: messages per second per account.
        burst: messages an account may send at once after a quiet spell.
        chat_rate: messages per second to any one chat (None: no per-chat limit).
        chat_burst: messages at once to one chat.
        max_wait: seconds a message may wait for its turn; a longer wait raises
            :class:`SendLimited` instead (the message was not sent).
        clock, sleep: ``time.monotonic`` and ``time.sleep``; a test passes its own.

    Counters: ``sent`` (messages let through), ``waits`` (of them, those that
    waited), ``waited`` (seconds in all) and ``refused`` (SendLimited raised).
    """

    def __init__(
        self,
        rate: float = 1.0,
        burst: int = 5,
        *,
        chat_rate: float | None = None,
        chat_burst: int = 1,
        max_wait: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        for name, value in (("rate", rate), ("chat_rate", chat_rate)):
            if value is not None and not value > 0:
                raise ConfigError(f"{name}={value} must be a number of messages a second above 0")
        for name, count in (("burst", burst), ("chat_burst", chat_burst)):
            if count < 1:
                raise ConfigError(f"{name}={count} must be at least 1 (one message at a time)")
        if max_wait < 0:
            raise ConfigError(f"max_wait={max_wait} must be 0 or more seconds")
        self.rate, self.burst = rate, burst
        self.chat_rate, self.chat_burst = chat_rate, chat_burst
        self.max_wait = max_wait
        self.clock, self.sleep = clock, sleep
        self.sent = 0
        self.waits = 0
        self.waited = 0.0
        self.refused = 0
        self._tat: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        per_chat = f", chat_rate={self.chat_rate}" if self.chat_rate else ""
        return f"SendLimit(rate={self.rate}, burst={self.burst}{per_chat})"

    def _buckets(self, account: str, chat: tuple[str, str]) -> list[_Bucket]:
        buckets: list[_Bucket] = [((account,), self.rate, self.burst)]
        if self.chat_rate is not None:
            buckets.append(((account, *chat), self.chat_rate, self.chat_burst))
        return buckets

    def acquire(self, action: str, params: Mapping[str, Any], account: object = None) -> float:
        """Wait for ``action``'s turn if it sends a message; return the seconds waited.

        Raises:
            SendLimited: its turn is more than ``max_wait`` seconds away (also a
                TimeoutError); nothing was sent and no slot is taken.
        """
        chat = target_of(action, params)
        if chat is None:
            return 0.0
        buckets = self._buckets("" if account is None else str(account), chat)
        with self._lock:
            now = self.clock()
            start = now
            for key, rate, burst in buckets:
                tat = self._tat.get(key, now)
                start = max(start, tat - (burst - 1) / rate)
            wait = start - now
            if wait > self.max_wait:
                self.refused += 1
                raise SendLimited(
                    f"{action} to {chat[0]} {chat[1]} would wait {wait:.1f}s for the send limit "
                    f"({self!r}, max_wait={self.max_wait:g}); send less often or raise max_wait"
                )
            for key, rate, _burst in buckets:
                self._tat[key] = max(self._tat.get(key, now), start) + 1 / rate
            self._forget(now)
            self.sent += 1
            if wait > 0:
                self.waits += 1
                self.waited += wait
        if wait > 0:
            self.sleep(wait)
        return wait

    def _forget(self, now: float) -> None:
        """Drop buckets that are full again (their tat has passed): bounded by active chats."""
        if len(self._tat) > 1024:
            for key in [k for k, tat in self._tat.items() if tat <= now]:
                del self._tat[key]
