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

What a bot author writes on top (each explained in its own module):

* filters on :meth:`Registry.on` and commands, :meth:`Registry.command`
  (:mod:`onebot_ref._commands`). A command runs after the event's ``on()``
  handlers, and always on a worker: under :meth:`dispatch` (HTTP POST) it is
  queued for the pool, so that a command that waits never holds the HTTP
  request, whose answer the implementation is waiting for;
* conversations, :meth:`Registry.wait_for` (:mod:`onebot_ref._conversation`):
  every event is first offered to the handlers waiting for one, and a worker
  that waits lends its slot to a spare worker;
* the send limit and the bot's own message ids, through :meth:`before_send`
  and :meth:`after_send`, which the modes call around every action
  (:mod:`onebot_ref._limiter`).
"""

import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, TypeVar

from ._commands import (
    Command,
    CommandHandler,
    Filter,
    Filtered,
    OwnMessages,
    check_names,
    split_args,
)
from ._conversation import Predicate, Waiters
from ._dedup import Recent, shared_key
from ._limiter import SEND_ACTIONS, SendLimit
from .codec import event_name, log_frame
from .errors import ConfigError

__all__ = ["CommandHandler", "Handler", "HandlerT", "Registry", "SendLimit", "split_args"]

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
            through them without waiting; and for ``cooldown=``.
        prefixes: what a command starts with in a group, for the commands that
            give no ``prefixes=`` of their own (one setting for the whole bot).
        superusers: user ids that pass every ``permission=`` filter.
        max_waiting: conversations (``ask``/``wait_for``) waiting at once, at most.
        send_limit: a :class:`SendLimit` for outgoing messages; None (the
            default) sends at once.
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
        prefixes: Iterable[str] = ("/",),
        superusers: Iterable[int | str] = (),
        max_waiting: int = 1000,
        send_limit: SendLimit | None = None,
    ):
        self.handlers: dict[str, list[Handler]] = {}
        self.commands: list[Command] = []
        self.prefixes = _strings(prefixes, "prefixes")
        self.superusers = set(_strings(superusers, "superusers"))
        self.send_limit = send_limit
        self.own_messages = OwnMessages()
        self.waiters = Waiters(max_waiting)
        self.skipped = 0  # handler runs a filter or a cooldown turned away
        self._deferred = 0  # commands queued by dispatch() and not finished yet
        self.dropped_commands = 0  # commands dispatch() could not queue (a bound, or closed)
        self._lending = 0  # workers waiting in a conversation, each replaced by a spare
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
        self._queue: queue.SimpleQueue[tuple[dict[str, Any], int, bool] | None] = (
            queue.SimpleQueue()
        )
        self._pending_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def on(
        self,
        name: str = "*",
        *,
        to_me: bool = False,
        groups: Collection[int | str] | None = None,
        users: Collection[int | str] | None = None,
        permission: str | None = None,
        cooldown: float = 0.0,
    ) -> Callable[[HandlerT], HandlerT]:
        """Decorator: register the function for ``name`` and return it unchanged.

        The keywords are filters (see :mod:`onebot_ref._commands`): the
        handler runs only for the events they let through.
        """
        filter = Filter(
            self,
            to_me=to_me,
            groups=groups,
            users=users,
            permission=permission,
            cooldown=cooldown,
        )

        def decorator(func: HandlerT) -> HandlerT:
            self.add(name, func if filter.empty else Filtered(func, filter))
            return func

        return decorator

    def add(self, name: str, func: Handler) -> None:
        """Register ``func`` for ``name`` (``"*"`` is every event)."""
        self.handlers.setdefault(name, []).append(func)

    def command(
        self,
        name: str,
        *,
        aliases: Iterable[str] = (),
        prefixes: Iterable[str] | None = None,
        usage: str | None = None,
        reply: Callable[[dict[str, Any], Any], Any] | None = None,
        to_me: bool = False,
        groups: Collection[int | str] | None = None,
        users: Collection[int | str] | None = None,
        permission: str | None = None,
        cooldown: float = 0.0,
    ) -> Callable[[CommandHandler], CommandHandler]:
        """Decorator: run the function as ``handler(event, args, segments)`` for a command.

        Args:
            name: the command's name (one word), such as ``"天气"``.
            aliases: other names for it.
            prefixes: what it starts with in a group (default: the registry's ``prefixes``).
            usage: sent to the chat when the handler raises ``UsageError``, as
                :func:`split_args` does when the arguments do not split (an open quote).
            reply: how to send ``usage`` (a mode's ``reply``; the modes pass their own).
            to_me, groups, users, permission, cooldown: filters, as for :meth:`on`.
        """
        filter = Filter(
            self,
            to_me=to_me,
            groups=groups,
            users=users,
            permission=permission,
            cooldown=cooldown,
        )
        own = None if prefixes is None else _strings(prefixes, "prefixes")
        names = check_names((name, *_strings(aliases, "aliases")))

        def decorator(func: CommandHandler) -> CommandHandler:
            self.commands.append(
                Command(names, func, filter, prefixes=own, usage=usage, reply=reply)
            )
            return func

        return decorator

    def wait_for(
        self,
        predicate: Predicate,
        timeout: float = 60.0,
        *,
        before: Callable[[], object] | None = None,
    ) -> dict[str, Any]:
        """Wait for the next event that ``predicate`` accepts, and take it from the handlers.

        From a worker, the wait lends the worker's slot to a spare worker (see
        :mod:`onebot_ref._conversation`), so waiting handlers never starve the others.

        Args:
            predicate: called with each event (on a worker: keep it quick, no API calls).
            timeout: seconds to wait.
            before: called once the wait is registered and before it starts
                (``ask`` sends its question there, so an answer cannot come too early).

        Raises:
            ConversationTimeout: nothing matched within ``timeout`` seconds, or
                ``max_waiting`` conversations are waiting already (also a TimeoutError).
        """
        waiter = self.waiters.add(predicate)
        if before is not None:
            try:
                before()
            except BaseException:
                self.waiters.cancel(waiter)
                raise
        lent = self._lend()
        try:
            return self.waiters.wait(waiter, timeout)
        finally:
            if lent:
                self._unlend()

    def before_send(self, action: str, params: Mapping[str, Any], account: object = None) -> None:
        """Called by the modes before each action: waits for the send limit's turn."""
        if self.send_limit is not None:
            self.send_limit.acquire(action, params, account)

    def after_send(self, action: str, data: Any) -> None:
        """Called by the modes after each action: remembers the ids of the messages we sent."""
        sent = action.removesuffix("_async") in SEND_ACTIONS and isinstance(data, dict)
        if sent and data.get("message_id") is not None:
            self.own_messages.add(data["message_id"])

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
        return self._run(event, defer_commands=True)

    def _duplicate(self, event: dict[str, Any]) -> bool:
        """True (and counted) if ``dedup_accounts`` has seen another account's copy."""
        if self._recent is None or (key := shared_key(event)) is None:
            return False
        if not self._recent.seen(key):
            return False
        self.duplicates += 1
        return True

    def _run(self, event: dict[str, Any], defer_commands: bool = False) -> list[Any]:
        if self.waiters.offer(event):  # an answer to a conversation: for it alone
            self.handled += 1
            return []
        results = self._run_handlers(event)
        if self.commands and event.get("post_type") == "message":
            if defer_commands:
                self._defer(event)  # counted in _deferred until it has run
            else:
                self._run_commands(event)
        self.handled += 1  # after the commands too: join() waits for them
        return results

    def _run_commands(self, event: dict[str, Any]) -> None:
        """Run the first command that ``event`` invokes (if its filter allows)."""
        for command in list(self.commands):
            if (found := command.match(event, self.prefixes)) is None:
                continue
            if not command.filter.allows(event):
                self.skipped += 1
                return
            command.run(event, *found)
            return

    def _defer(self, event: dict[str, Any]) -> None:
        """Queue ``event``'s commands for the workers (from :meth:`dispatch`)."""
        self._start_workers()
        with self._pending_lock:
            waiting = self._queue.qsize()
            if not self._closed and waiting < self.max_pending:
                self._deferred += 1
                self._queue.put((event, 0, True))
                return
            self.dropped_commands += 1  # not in dropped: the event itself was handled
        why = "the registry is closed" if self._closed else f"{waiting} events are waiting"
        log.warning(
            "a command was not run: %s (max_pending=%d); handle events faster or in more workers",
            why, self.max_pending,
        )  # fmt: skip

    def _lend(self) -> bool:
        """A worker is about to wait: start a spare in its place. False off the pool."""
        with self._lock:
            if threading.current_thread() not in self._threads or self._closed:
                return False
            self._lending += 1
            self._spawn(len(self._threads))
            return True

    def _unlend(self) -> None:
        """The wait is over: one worker too many now, so a stop marker retires one.

        Whichever worker takes the marker ends (an idle spare, most likely);
        the marker queues behind the events already waiting, which are handled first.
        """
        with self._lock:
            self._lending -= 1
            if not self._closed:
                self._queue.put(None)

    def _run_handlers(self, event: dict[str, Any]) -> list[Any]:
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
                self._queue.put((event, size, False))
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
                self._spawn(n)

    def _spawn(self, n: int) -> None:
        """Start worker ``n`` (with ``_lock`` held)."""
        # Daemon: a handler stuck forever must not keep the interpreter alive.
        thread = threading.Thread(target=self._work, name=f"onebot-handler-{n}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            event, size, commands_only = item
            try:
                if commands_only:
                    self._run_commands(event)
                else:
                    self._run(event)
            finally:
                with self._pending_lock:
                    self.pending_bytes -= size
                    self._deferred -= commands_only
        with self._lock:  # a stop marker: from close(), or retiring a spare (_unlend)
            if threading.current_thread() in self._threads:
                self._threads.remove(threading.current_thread())

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
        return self._queue.empty() and done >= self.received and not self._deferred

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers after the events already queued; wait ``timeout`` at most."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
        self.waiters.close()  # conversations end now, not at their timeout
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


def _strings(values: Iterable[int | str], what: str) -> tuple[str, ...]:
    """``values`` as a tuple of strings; a lone string is refused (it is not a list of one)."""
    if isinstance(values, (str, int)):
        raise ConfigError(f"{what}= takes a list, like {what}=[{values!r}]")
    return tuple(str(v) for v in values)
