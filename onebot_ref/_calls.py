"""API calls in flight over a WebSocket, matched to their responses by ``echo``.

Both WebSocket modes send ``{"action", "params", "echo"}`` and wait for the
response that carries the same ``echo`` (spec ``communication/ws.md``).
Implementations answer out of order, so responses are matched by echo, never
by arrival order. The rules, learned from real implementations:

* We send unique decimal **string** echoes: go-cqhttp and NapCat mangle numbers
  above 2^53, and a string survives every implementation.
* A response whose echo came back as a number (``7`` for ``"7"``) still
  matches: we also compare ``str(echo)``.
* NapCat "stream" actions answer several frames with one echo; the call
  resolves on the last one (``data.type`` ``response`` or ``error``).
* LLOneBot omits the echo on some failures: with exactly one call in flight,
  an echo-less *failure* is given to that call rather than left to time out.
* When the connection drops, every waiting call fails at once with
  :class:`~onebot_ref.errors.NotConnected` instead of waiting out its timeout.

Pure threading, no sockets: the transport passes in its ``send`` function.
"""

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .codec import encode_request, log_frame, unwrap_response
from .errors import ApiTimeout

__all__ = ["PendingCalls"]

log = logging.getLogger(__name__)


class _Slot:
    """One call waiting for its response."""

    __slots__ = ("action", "chunks", "done", "error", "response", "waiting")

    def __init__(self, action: str) -> None:
        self.action = action
        # A bare lock, held until the answer is in: the caller blocks acquiring
        # it. Cheaper than an Event (a Condition and a fresh lock per wait), and
        # one wake-up per call is what the receive thread spends most time on.
        self.done = threading.Lock()
        self.done.acquire()
        self.waiting = True  # False once done is released; guarded by PendingCalls._lock
        self.response: dict[str, Any] | None = None
        self.error: Exception | None = None
        self.chunks: list[Any] = []  # NapCat stream chunks before the final frame

    def finish(self) -> None:
        """Wake the caller (once); call with ``PendingCalls._lock`` held."""
        if self.waiting:
            self.waiting = False
            self.done.release()


class PendingCalls:
    """The table of calls waiting for a response on one connection (or one bot)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._waiting: dict[str, _Slot] = {}
        self.unmatched = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def call(
        self,
        send: Callable[[bytes], object],
        action: str,
        params: dict[str, Any],
        timeout: float,
    ) -> Any:
        """Send one action frame through ``send`` and wait for its response.

        Returns:
            The response's ``data``.

        Raises:
            EncodeError: ``params`` cannot go onto the wire (nothing was sent).
            ApiTimeout: no response within ``timeout`` seconds.
            NotConnected: the connection dropped (from ``send`` or :meth:`fail_all`).
            ActionFailed: the implementation answered with a failure.
        """
        echo = str(next(self._counter))
        frame = encode_request(action, params, echo)  # before a slot exists: nothing waits
        slot = _Slot(action)
        with self._lock:
            self._waiting[echo] = slot
        started = time.monotonic()
        try:
            log_frame("sent", frame)
            send(frame)
            if not slot.done.acquire(timeout=max(timeout, 0.0)):
                raise ApiTimeout(action, time.monotonic() - started, echo)
        finally:
            with self._lock:
                self._waiting.pop(echo, None)
        if slot.error is not None:
            raise slot.error
        return unwrap_response(slot.response, action)

    def resolve(self, response: dict[str, Any]) -> bool:
        """Hand a response frame to the call it answers; False if none waits for it."""
        log_frame("received", response)
        echo = response.get("echo")
        key = None if echo is None or echo == "" else str(echo)
        with self._lock:
            slot = self._waiting.get(key) if key is not None else None
            failed = response.get("status") not in ("ok", "async")
            if slot is None and key is None and failed and len(self._waiting) == 1:
                slot = next(iter(self._waiting.values()))
            if slot is not None and not slot.waiting:
                slot = None  # answered already: a duplicate
            if slot is None:
                self.unmatched += 1
                unmatched = self.unmatched
            else:
                data = response.get("data")
                if (
                    response.get("stream") == "stream-action"
                    and isinstance(data, dict)
                    and data.get("type") not in ("response", "error")
                ):
                    slot.chunks.append(data)
                    return True
                slot.response = response
                slot.finish()
                return True
        if unmatched == 1 or unmatched % 100 == 0:
            log.warning(
                "response with echo %r matches no waiting call (%d so far; late, "
                "duplicated or mangled by the implementation)",
                echo,
                unmatched,
            )
        return False

    def fail_all(self, error: Exception) -> None:
        """Wake every waiting call with ``error`` (the connection is gone)."""
        with self._lock:
            for slot in self._waiting.values():
                if slot.waiting:
                    slot.error = error
                    slot.finish()
