"""Seen-before windows, so that one event delivered twice is handled once.

One event reaches a bot twice in two ways (see ``USER_PAINS`` §7 and §9):

* **Retries.** An implementation that gets no answer to an HTTP POST in time
  (go-cqhttp waits 5 s) posts the same bytes again. ``HttpServer(dedup=60)``
  remembers a digest of each body and answers a copy with 204.
* **Several accounts in one group.** Each bot account receives its own copy of a
  group message, under its own ``self_id`` and ``message_id``, and each would
  reply. ``Registry(dedup_accounts=60)`` keys events on what the copies share
  (:func:`shared_key`) and hands only the first to the handlers.

Both are off by default: two identical events within the window are, to us,
one event, which is almost always right, but not always.
"""

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["PER_ACCOUNT", "Recent", "shared_key"]

# Fields that differ between the copies different accounts receive of one event.
PER_ACCOUNT = frozenset(
    {"self_id", "message_id", "real_id", "message_seq", "real_seq", "raw", "flag"}
)


class Recent:
    """Digests seen in the last ``window`` seconds (the latest ``limit`` of them).

    ``clock`` reads the time in seconds (``time.monotonic``); a test passes a
    clock of its own to move through the window without waiting for it.
    """

    def __init__(
        self, window: float, limit: int = 4096, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self.limit = limit
        self.clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, data: bytes) -> bool:
        """True if ``data`` came within the window; remembers it otherwise."""
        key = hashlib.blake2b(data, digest_size=16).digest()
        now = self.clock()
        with self._lock:
            while self._seen and (
                len(self._seen) >= self.limit or now - next(iter(self._seen.values())) > self.window
            ):
                self._seen.popitem(last=False)
            if key in self._seen:
                return True
            self._seen[key] = now
            return False


def shared_key(event: dict[str, Any]) -> bytes | None:
    """What every account's copy of ``event`` has in common; None for meta events.

    A message is the same message if its type, group, sender, second and text
    agree (``message_id`` is per account). Notices and requests are compared
    field by field, without :data:`PER_ACCOUNT`. Heartbeats and lifecycle
    events belong to one connection each and are never merged.
    """
    post_type = event.get("post_type")
    if post_type == "meta_event":
        return None
    if post_type == "message":
        text = event.get("raw_message") or event.get("message")
        fields: Any = (post_type, event.get("message_type"), event.get("group_id"),
                       event.get("user_id"), event.get("time"), text)  # fmt: skip
    else:
        fields = sorted((k, v) for k, v in event.items() if k not in PER_ACCOUNT)
    return repr(fields).encode("utf-8", "backslashreplace")
