"""Replaying a recorded session to a bot, and what the bot did differently: ``FakeOneBot.replay``.

A transcript written by ``python -m onebot_ref.record`` (a real session with
NapCat, go-cqhttp…) holds the events the implementation sent, the calls the
bot made after each, and the implementation's answers. :func:`replay` plays
it back through a :class:`~onebot_ref.testing.FakeOneBot`:

1. **Events**, in their recorded order, to every sink the fake has: whatever
   modes the bot is connected in now, not only the recorded one (events are
   JSON; the modes only carry them), each as soon as the bot has answered the
   one before (step 3), not at its recorded time. Meta events (lifecycle, heartbeats) are
   left out unless ``meta=True``: the fake sends its own lifecycle event on
   connect, and heartbeats belong to the clock, not to the session.
2. **Answers**: each call the bot makes is run by the fake's world as usual
   (so ``fake.sent`` and ``fake.calls`` still work), but answered with the
   recorded answer to the same action *with the same parameters*, if the
   recording has one; repeated calls get the recorded answers in order, then
   the last one again. **Fallback:** a call the recording has no answer for
   (another action, or other parameters) gets the world's answer.
3. **Waiting**: after each event, until the bot has made as many calls as it
   made after that event in the recording (at most ``timeout`` seconds), then
   until it has been quiet for ``settle`` seconds (to see extra calls).
4. **The diff** (:class:`ReplayDiff`): per event, the recorded calls the bot
   did not make (``missing``), the calls it made that the recording does not
   have (``extra``), and those of the same action with other parameters
   (``changed``). It is empty (false) when the bot did the same; its
   ``str()`` says what differed, one line per call.

A quick operation (the bot's answer to an HTTP POST event) counts as a call
of ``.handle_quick_operation`` (the action go-cqhttp and NapCat run quick
operations with) with the operation as its ``operation`` parameter. The
calls a bot makes on connecting, before the first event, are answered from
the recording but not compared: the bot connected before ``replay()``
began. Parameters are compared as JSON values: a bot that puts the time or
a random number in a call differs every run.

The fake must be the recorded account (``FakeOneBot(self_id=…)``, else a
:class:`~onebot_ref.errors.ConfigError` says which): the events say who the
bot is, and a bot replies to the account an event names.

Pure but for the waiting: it never touches a socket (the fake does).
"""

import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol
from urllib.parse import parse_qsl

from ..codec import event_name
from ..errors import ConfigError, NotConnected
from ..record._transcript import BOT_TO_ONEBOT, ONEBOT_TO_BOT, read_transcript

__all__ = ["Call", "Recording", "ReplayDiff", "Replayer", "Source", "Stage", "replay"]

QUICK_OPERATION = ".handle_quick_operation"
Source = str | os.PathLike[str] | Iterable[Mapping[str, Any]]  # a transcript: its path, or entries


class Call(NamedTuple):
    """One call the bot made: after which replayed event (1, 2…), the action and its parameters."""

    after: int
    action: str
    params: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.action} {_dumps(self.params)}"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _key(action: str, params: Mapping[str, Any]) -> tuple[str, str]:
    return action, _dumps(params)


class Recording:
    """What a transcript says happened: the events, the calls after each, the answers.

    ``events[i - 1]`` is event ``i``; ``expected[i]`` the calls after it
    (``expected[0]``: those before the first event); ``answers`` the recorded
    answers by action and parameters (without their ``echo``).
    """

    def __init__(self, entries: Iterable[Mapping[str, Any]], *, meta: bool = False) -> None:
        self.events: list[dict[str, Any]] = []
        self.expected: list[list[tuple[str, dict[str, Any]]]] = [[]]
        self.answers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.meta = meta
        pending: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}  # unanswered calls
        for entry in entries:
            where = f"{entry.get('mode')}#{entry.get('conn')}"  # one connection
            data = entry.get("data")
            kind, direction = entry["kind"], entry["dir"]
            if kind == "message" and isinstance(data, dict):
                self._frame(where, direction, data, pending)
            elif kind == "request" and direction == BOT_TO_ONEBOT:  # an HTTP API call
                action, params = _http_call(entry)
                self.expected[-1].append((action, params))
                pending[(where, "http")] = (action, params)
            elif kind == "request" and isinstance(data, dict):  # an HTTP POST event
                self._event(data)
            elif kind == "response" and direction == ONEBOT_TO_BOT:  # the HTTP API's answer
                call = pending.pop((where, "http"), None)
                if call is not None and isinstance(data, dict):
                    self._answer(call, data)
            elif kind == "response" and isinstance(data, dict) and data:  # a quick operation
                self.expected[-1].append((QUICK_OPERATION, {"operation": data}))

    def _frame(
        self,
        where: str,
        direction: str,
        data: dict[str, Any],
        pending: dict[tuple[str, str], tuple[str, dict[str, Any]]],
    ) -> None:
        """One WebSocket message: an event, a call (keyed by its echo) or an answer."""
        if direction == BOT_TO_ONEBOT:
            if isinstance(data.get("action"), str):
                params = data.get("params")
                call = (data["action"], params if isinstance(params, dict) else {})
                self.expected[-1].append(call)
                pending[(where, _dumps(data.get("echo")))] = call
        elif "post_type" in data:
            self._event(data)
        elif "retcode" in data or "status" in data:
            asked = pending.pop((where, _dumps(data.get("echo"))), None)
            if asked is not None:
                self._answer(asked, data)

    def _event(self, event: dict[str, Any]) -> None:
        if event.get("post_type") == "meta_event" and not self.meta:
            return
        self.events.append(event)
        self.expected.append([])

    def _answer(self, call: tuple[str, dict[str, Any]], response: dict[str, Any]) -> None:
        answer = {k: v for k, v in response.items() if k != "echo"}
        self.answers.setdefault(_key(*call), []).append(answer)


def _http_call(entry: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The action and parameters of a recorded HTTP API request (path, query, JSON body)."""
    path, _, query = str(entry.get("target", "")).partition("?")
    action = path.rsplit("/", 1)[-1] or path.strip("/").rsplit("/", 1)[-1]
    params: dict[str, Any] = {}
    if isinstance(entry.get("data"), dict):
        params.update(entry["data"])
    params.update((k, v) for k, v in parse_qsl(query) if k != "access_token")
    return action, params


class ReplayDiff:
    """What the bot did differently from the recording; false (empty) when nothing.

    Attributes:
        missing: recorded calls the bot did not make.
        extra: calls the bot made that the recording does not have.
        changed: ``(recorded, made)`` pairs: the same action, other parameters.
        observed: every call the bot made during the replay.
        events: the replayed events (event ``i`` is ``events[i - 1]``).
    """

    def __init__(
        self,
        missing: list[Call],
        extra: list[Call],
        changed: list[tuple[Call, Call]],
        observed: list[Call],
        events: list[dict[str, Any]],
    ) -> None:
        self.missing = missing
        self.extra = extra
        self.changed = changed
        self.observed = observed
        self.events = events

    def __bool__(self) -> bool:
        return bool(self.missing or self.extra or self.changed)

    def __len__(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.changed)

    def __repr__(self) -> str:
        return (
            f"<ReplayDiff missing={len(self.missing)} extra={len(self.extra)} "
            f"changed={len(self.changed)}>"
        )

    def describe(self, after: int) -> str:
        """Event ``after`` in words: ``event 2 (message.private.friend from 20001: '/ping')``."""
        if not 0 < after <= len(self.events):
            return "before the first event"
        event = self.events[after - 1]
        words = event_name(event)
        if "user_id" in event:
            words += f" from {event['user_id']}"
        if isinstance(event.get("raw_message"), str):
            words += f": {event['raw_message'][:40]!r}"
        return f"event {after} ({words})"

    def __str__(self) -> str:
        if not self:
            return (
                f"the bot did as recorded: {len(self.observed)} call(s) "
                f"after {len(self.events)} event(s)"
            )
        lines = [f"the bot did {len(self)} thing(s) differently from the recording:"]
        rows: list[tuple[int, str]] = []
        rows += [(c.after, f"missing {c}") for c in self.missing]
        rows += [(c.after, f"extra   {c}") for c in self.extra]
        for recorded, made in self.changed:
            rows.append(
                (
                    recorded.after,
                    f"changed {recorded.action}: recorded {_dumps(recorded.params)}, "
                    f"now {_dumps(made.params)}",
                )
            )
        for after, text in sorted(rows, key=lambda row: row[0]):
            lines.append(f"  after {self.describe(after)}: {text}")
        return "\n".join(lines)


class Replayer:
    """The recording's answers and the calls seen, while :func:`replay` runs; thread-safe."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.after = 0  # the event pushed last
        self.observed: list[Call] = []
        self._used: dict[tuple[str, str], int] = {}
        self._changed = threading.Condition()

    def answer(self, action: str, params: dict[str, Any], world: dict[str, Any]) -> dict[str, Any]:
        """The answer to a call: the recorded one for this action and parameters, else ``world``."""
        key = _key(action, params)
        with self._changed:
            self.observed.append(Call(self.after, action, params))
            self._changed.notify_all()
            answers = self.recording.answers.get(key)
            if not answers:
                return world
            used = self._used.get(key, 0)
            self._used[key] = used + 1
        recorded = answers[min(used, len(answers) - 1)]
        copy: dict[str, Any] = json.loads(json.dumps(recorded))  # the bot may change its answer
        return copy

    def quick_operation(self, operation: Any) -> None:
        """The bot answered an HTTP POST event with a quick operation."""
        with self._changed:
            self.observed.append(Call(self.after, QUICK_OPERATION, {"operation": operation}))
            self._changed.notify_all()

    def begin(self, after: int) -> None:
        """Event ``after`` is about to be pushed: the calls from now on follow it."""
        with self._changed:
            self.after = after

    def made(self, after: int) -> int:
        return sum(call.after == after for call in self.observed)

    def wait(self, after: int, timeout: float, settle: float) -> None:
        """Until the bot made the recorded number of calls after event ``after`` (or ``timeout``),
        then until it has been quiet for ``settle`` seconds (at most ``timeout`` more)."""
        want = len(self.recording.expected[after])
        with self._changed:
            self._changed.wait_for(lambda: self.made(after) >= want, timeout)
            deadline = time.monotonic() + timeout
            seen = len(self.observed)
            while time.monotonic() < deadline:
                self._changed.wait(settle)
                if len(self.observed) == seen:
                    break
                seen = len(self.observed)

    def diff(self) -> ReplayDiff:
        """Per event, recorded and made calls paired: equal, changed, missing or extra."""
        missing: list[Call] = []
        extra: list[Call] = []
        changed: list[tuple[Call, Call]] = []
        with self._changed:
            observed = list(self.observed)
        for after in range(1, len(self.recording.expected)):
            recorded = [Call(after, a, p) for a, p in self.recording.expected[after]]
            made = [call for call in observed if call.after == after]
            # 1) The same call, in order; 2) the same action with other parameters.
            for want in list(recorded):
                twin = next((c for c in made if _key(c.action, c.params) == _key(*want[1:])), None)
                if twin is not None:
                    recorded.remove(want)
                    made.remove(twin)
            for want in list(recorded):
                other = next((c for c in made if c.action == want.action), None)
                if other is not None:
                    recorded.remove(want)
                    made.remove(other)
                    changed.append((want, other))
            missing += recorded
            extra += made
        return ReplayDiff(missing, extra, changed, observed, self.recording.events)


class Stage(Protocol):
    """What :func:`replay` needs of the fake it replays through (FakeOneBot is one).

    A protocol rather than the class: FakeOneBot's ``replay`` calls this
    module, which stays below it.
    """

    post_targets: list[tuple[str, str | None]]
    replaying: Replayer | None

    @property
    def self_id(self) -> int: ...

    def event_connections(self) -> list[Any]: ...

    def push(self, event: dict[str, Any]) -> None: ...


def replay(
    fake: Stage,
    transcript: Source,
    *,
    timeout: float = 5.0,
    settle: float = 0.05,
    meta: bool = False,
) -> ReplayDiff:
    """Play ``transcript`` to the bot connected to ``fake``; return what it did differently.

    See the module docstring for the rules; :meth:`FakeOneBot.replay` is the
    method users call.

    Raises:
        DecodeError: the transcript is not one the recorder wrote.
        ConfigError: its events are of another account than ``fake.self_id``.
        NotConnected: no bot is connected to ``fake`` (events would reach nobody).
        OSError: its file cannot be read.
    """
    recording = Recording(read_transcript(transcript), meta=meta)
    accounts = {event.get("self_id") for event in recording.events} - {None, fake.self_id}
    if accounts:
        account = sorted(accounts, key=str)[0]
        raise ConfigError(
            f"replay: the recording is of account {account}, this FakeOneBot of {fake.self_id}; "
            f"make it FakeOneBot(self_id={account}) (python -m onebot_ref.testing "
            f"--self-id {account}) so that the bot sees one account"
        )
    if recording.events and not fake.post_targets and not fake.event_connections():
        raise NotConnected(
            "replay: no bot is connected to this FakeOneBot, so no event could reach one; "
            "connect the bot first (connect_reverse, start_ws_server, add_http_post)"
        )
    replayer = Replayer(recording)
    fake.replaying = replayer
    try:
        for after, event in enumerate(recording.events, 1):
            replayer.begin(after)
            fake.push(event)
            replayer.wait(after, timeout, settle)
    finally:
        fake.replaying = None
    return replayer.diff()
