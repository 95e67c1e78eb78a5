"""Commands and filters: what decides whether a handler runs for a message.

A **filter** is a handler's conditions, checked before it runs (``on()`` and
``command()`` take the same keywords):

* ``to_me=True``: a private message, a group message that @-mentions the
  account that received it (``self_id``), or one that replies to a message this
  bot sent (the registry remembers the ids its sends returned:
  :class:`OwnMessages`);
* ``groups=`` / ``users=``: allow-lists of group and user ids (ints or strings);
* ``permission=``: ``"superuser"`` (the registry's ``superusers``, a bot-level
  set of user ids), ``"owner"`` or ``"admin"`` (the event's ``sender.role``, as
  the implementation reports it; an owner passes ``"admin"`` too, and a
  superuser passes all three);
* ``cooldown=`` seconds per user and chat: inside it the handler does not run.

A handler that a filter turns away is *skipped*, and counted in the
registry's ``skipped``.

A **command** matches a message's first text, after an optional leading reply
and an @ of this account: in a private chat ``天气 北京`` or ``/天气 北京``; in a
group ``/天气 北京`` (a prefix) or ``@bot 天气 北京`` (then the @ is not part of
the arguments). The name must end at whitespace or at the end of the text, so
``/天气预报`` is not ``/天气``. The handler gets the event, the argument text
(the text after the name, stripped, without CQ codes) and the argument segments
(so an @ or an image in the arguments survives). A handler that splits its
arguments shell-style calls :func:`split_args`; the ``UsageError`` it raises on an
open quote (or one the handler raises itself) sends the command's ``usage=``.

Pure: no I/O. Sending (a usage line) goes through the ``reply`` the mode passes in.
"""

import collections
import logging
import shlex
import threading
from collections.abc import Callable, Collection, Iterable
from typing import Any, Protocol

from .errors import ConfigError, UsageError
from .message import normalize, plain_text

__all__ = ["Command", "CommandHandler", "Filter", "Filtered", "OwnMessages", "split_args"]

log = logging.getLogger("onebot_ref.registry")

Segment = dict[str, Any]


class Tally(Protocol):
    """What a filter reads and counts on its registry (:class:`onebot_ref.registry.Registry`).

    A protocol rather than the class: the registry builds filters, and this
    module stays below it.
    """

    superusers: set[str]
    own_messages: "OwnMessages"
    clock: Callable[[], float]
    skipped: int
    handler_errors: int


CommandHandler = Callable[[dict[str, Any], str, list[Segment]], Any]
Reply = Callable[[dict[str, Any], Any], Any]

PERMISSIONS = ("superuser", "owner", "admin")
# The roles each permission admits (OneBot 11 sender.role: owner, admin, member).
_ROLES = {"owner": {"owner"}, "admin": {"owner", "admin"}}
# Users and chats a cooldown remembers at most; the oldest are forgotten first.
COOLDOWN_LIMIT = 10_000


def split_args(args: str) -> list[str]:
    """Split a command's argument text the way a shell would (``shlex``, POSIX rules).

    Raises:
        UsageError: an open quote or a trailing backslash (also a ValueError).
    """
    try:
        return shlex.split(args)
    except ValueError as exc:
        raise UsageError(f"cannot split the arguments {args!r:.80}: {exc}") from None


def _ids(values: Iterable[int | str] | None, what: str) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, (str, int)):
        raise ConfigError(f"{what}= takes a collection of ids, like {what}=[{values!r}]")
    return frozenset(str(v) for v in values)


def chat_of(event: dict[str, Any]) -> tuple[str, str]:
    """The chat an event belongs to: ``("group", group_id)`` or ``("private", user_id)``."""
    if event.get("group_id") is not None:
        return "group", str(event["group_id"])
    return "private", str(event.get("user_id"))


class OwnMessages:
    """The ids of the last ``limit`` messages this bot sent, for ``to_me`` by reply.

    An implementation tells a bot nothing about its own messages unless it
    posts ``message_sent`` events (NapCat can, go-cqhttp cannot), so the
    registry remembers what each send action returned.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.limit = limit
        self._lock = threading.Lock()

    def add(self, message_id: object) -> None:
        with self._lock:
            self._ids[str(message_id)] = None
            while len(self._ids) > self.limit:
                self._ids.popitem(last=False)

    def __contains__(self, message_id: object) -> bool:
        return str(message_id) in self._ids


class Filter:
    """One handler's conditions (see the module docstring); ``allows`` checks them all.

    Args:
        registry: for ``superusers``, the bot's own messages, the clock and the counters.
    """

    def __init__(
        self,
        registry: Tally,
        *,
        to_me: bool = False,
        groups: Collection[int | str] | None = None,
        users: Collection[int | str] | None = None,
        permission: str | None = None,
        cooldown: float = 0.0,
    ) -> None:
        if permission is not None and permission not in PERMISSIONS:
            raise ConfigError(
                f"permission={permission!r} is not one of {', '.join(PERMISSIONS)}; "
                "for other rules check the event in the handler"
            )
        if cooldown < 0:
            raise ConfigError(f"cooldown={cooldown} must be 0 (none) or a number of seconds")
        self.registry = registry
        self.to_me = to_me
        self.groups = _ids(groups, "groups")
        self.users = _ids(users, "users")
        self.permission = permission
        self.cooldown = cooldown
        self._last: collections.OrderedDict[tuple[str, str, str], float] = collections.OrderedDict()
        self._lock = threading.Lock()

    @property
    def empty(self) -> bool:
        """True if it lets every event through (no condition given)."""
        return not (
            self.to_me
            or self.groups is not None
            or self.users is not None
            or self.permission
            or self.cooldown
        )

    def allows(self, event: dict[str, Any]) -> bool:
        """True if the handler may run for ``event`` (and, with a cooldown, starts it)."""
        if self.to_me and not addressed_to_me(event, self.registry.own_messages):
            return False
        if self.groups is not None and str(event.get("group_id")) not in self.groups:
            return False
        if self.users is not None and str(event.get("user_id")) not in self.users:
            return False
        if self.permission and not self._permitted(event):
            return False
        return not self.cooldown or self._cool(event)

    def _permitted(self, event: dict[str, Any]) -> bool:
        if str(event.get("user_id")) in {str(u) for u in self.registry.superusers}:
            return True
        if self.permission == "superuser":
            return False
        sender = event.get("sender")
        role = sender.get("role") if isinstance(sender, dict) else None
        return role in _ROLES[str(self.permission)]

    def _cool(self, event: dict[str, Any]) -> bool:
        """True, and the cooldown starts, unless this user ran it in this chat too recently."""
        key = (str(event.get("user_id")), *chat_of(event))
        now = self.registry.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.cooldown:
                return False
            self._last[key] = now
            self._last.move_to_end(key)
            while len(self._last) > COOLDOWN_LIMIT:
                self._last.popitem(last=False)
        return True


def _at_me(seg: Segment, self_id: str) -> bool:
    return seg.get("type") == "at" and str((seg.get("data") or {}).get("qq")) == self_id


def addressed_to_me(event: dict[str, Any], own: OwnMessages) -> bool:
    """True for a private message, an @ of ``self_id``, or a reply to one of our messages."""
    if event.get("post_type") != "message":
        return False
    if event.get("message_type") == "private":
        return True
    self_id = str(event.get("self_id"))
    for seg in _segments(event):
        if _at_me(seg, self_id):
            return True
        if seg.get("type") == "reply" and (seg.get("data") or {}).get("id") in own:
            return True
    return False


def _segments(event: dict[str, Any]) -> list[Segment]:
    try:
        return normalize(event.get("message", ""))
    except ValueError:  # not a message at all: nothing in it is addressed to us
        return []


def check_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names``, if each is one word.

    Raises:
        ConfigError: a name that is empty or holds whitespace.
    """
    for name in names:
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ConfigError(
                f"command name {name!r} must be one word (no spaces); "
                "the rest of the message is the arguments"
            )
    return names


class Command:
    """A registered command: its names, prefixes, usage line, filter and handler.

    Args:
        names: the name, then its aliases.
        prefixes: None to use the registry's ``prefixes`` at each match.
        reply: sends the usage line (the mode's ``reply``); None sends nothing.
    """

    def __init__(
        self,
        names: tuple[str, ...],
        handler: CommandHandler,
        filter: Filter,
        *,
        prefixes: tuple[str, ...] | None = None,
        usage: str | None = None,
        reply: Reply | None = None,
    ) -> None:
        self.names = check_names(names)
        self.handler = handler
        self.filter = filter
        self.prefixes = prefixes
        self.usage = usage
        self.reply = reply

    def __repr__(self) -> str:
        return f"<Command {self.names[0]!r}>"

    def match(
        self, event: dict[str, Any], default_prefixes: Iterable[str]
    ) -> tuple[str, list[Segment]] | None:
        """The argument text and segments if ``event`` invokes this command, else None."""
        if event.get("post_type") != "message":
            return None
        segments = _segments(event)
        self_id = str(event.get("self_id"))
        while segments and segments[0].get("type") == "reply":
            segments = segments[1:]  # a reply quoting a message, then the command
        addressed = event.get("message_type") == "private"
        if segments and _at_me(segments[0], self_id):
            addressed, segments = True, segments[1:]
        if not segments or segments[0].get("type") != "text":
            return None
        first = str((segments[0].get("data") or {}).get("text", "")).lstrip()
        prefixes = self.prefixes if self.prefixes is not None else tuple(default_prefixes)
        for prefix in sorted(prefixes, key=len, reverse=True):
            if prefix and first.startswith(prefix):
                first, addressed = first[len(prefix) :], True
                break
        if not addressed:
            return None
        for name in sorted(self.names, key=len, reverse=True):
            rest = first[len(name) :]
            if first.startswith(name) and (not rest or rest[0].isspace()):
                args = [{"type": "text", "data": {"text": rest.lstrip()}}] if rest.strip() else []
                args.extend(segments[1:])
                return plain_text(args).strip(), args
        return None

    def run(self, event: dict[str, Any], args: str, segments: list[Segment]) -> None:
        """Run the handler; a UsageError sends ``usage``, another error is logged once.

        The handler parses its arguments itself (with :func:`split_args`, or not
        at all): ``"/say I'm here"`` is fine text, but an open quote to a shell.
        """
        registry = self.filter.registry
        try:
            self.handler(event, args, segments)
        except UsageError as exc:
            if self.usage is None or self.reply is None:
                registry.handler_errors += 1
                log.error("command %r: %s (give it usage= to answer the user)", self.names[0], exc)
                return
            log.info("command %r: %s; answered with its usage", self.names[0], exc)
            try:
                self.reply(event, self.usage)
            except Exception:
                registry.handler_errors += 1
                log.exception("command %r could not send its usage line", self.names[0])
        except Exception:
            registry.handler_errors += 1
            log.exception("command %r failed on the event %r", self.names[0], event)


class Filtered:
    """A handler behind its filter: runs it if the filter allows, else counts a skip."""

    def __init__(self, handler: Callable[[dict[str, Any]], Any], filter: Filter) -> None:
        self.handler = handler
        self.filter = filter
        self.__qualname__ = getattr(handler, "__qualname__", repr(handler))

    def __call__(self, event: dict[str, Any]) -> Any:
        if not self.filter.allows(event):
            self.filter.registry.skipped += 1
            return None
        return self.handler(event)
