"""The in-memory QQ world behind FakeOneBot: accounts, groups, a message store, every action.

:class:`World` answers every standard OneBot 11 action (spec ``api/public.md``)
plausibly and deterministically, with no QQ account and no I/O. FakeOneBot's
transports turn wire requests into ``World.handle(action, params)`` calls and
events into wire frames; this module knows nothing of sockets.

A *flavour* reproduces how a real implementation bends the spec:

=================  ==============  ==============  ==================
                   ``spec``        ``go-cqhttp``   ``napcat``
=================  ==============  ==============  ==================
message format     string          string          array
unknown action     1404 / HTTP404  retcode 404     1404 / HTTP 200+200
envelope extras    none            msg, wording…   message, wording…
``_async`` suffix  status async    runs sync       unknown action
quick ``at_sender``  true          false           false
=================  ==============  ==============  ==================

Parameters may arrive as strings (HTTP query or form); ids and booleans are
coerced the way implementations do.

Build the world with methods, not by writing into its dicts::

    world.add_friend(20003, "Bob")
    world.add_group(30002, "Bot lab", self_role="admin")
    world.add_member(30002, 20003, role="member", card="bob")
    world.load({"friends": [...], "groups": [...]})   # a whole world, as in a world file

Actions have the consequences they have on QQ, and the implementation tells
the bot with a notice event (:attr:`World.on_event`; FakeOneBot delivers it on
a thread of its own, independently of the action's answer, as QQ does):
approving a friend request makes a friend (``notice.friend_add``); approving
a join request adds the member (``notice.group_increase``); ``set_group_kick``
removes the member (``notice.group_decrease``, ``sub_type`` ``kick``);
``set_group_admin`` changes the role (``notice.group_admin``). A request
``flag`` must be one this world issued (:meth:`World.request_friend`,
:meth:`World.request_join`), else the action fails as the implementation fails
it: go-cqhttp ``retcode`` 100 ``FLAG_NOT_FOUND``, NapCat "No such request" with
``retcode`` 200 over HTTP and 1200 over WebSocket.
"""

import importlib
import itertools
import json
import pathlib
import threading
import time
from collections.abc import Callable
from typing import Any, get_args

from .._types import Flavor
from ..errors import ConfigError, DecodeError
from ..message import normalize, parse_cq, plain_text, to_cq

__all__ = ["FLAVORS", "ROLES", "World", "read_world_file"]

FLAVORS: tuple[Flavor, ...] = get_args(Flavor)  # ("spec", "go-cqhttp", "napcat")
ROLES = ("owner", "admin", "member")  # spec api/public.md, get_group_member_info "role"
KEEP = 10_000  # messages, calls and sends remembered: a long-running fake stays bounded

Response = dict[str, Any]


_FORWARD_NODE = {
    "type": "node",
    "data": {
        "user_id": "20001",
        "nickname": "小明",
        "content": [{"type": "text", "data": {"text": "转发"}}],
    },
}


class ParamError(Exception):
    """A missing or invalid action parameter (retcode 100, NapCat 1400/400)."""


class ActionRefused(Exception):
    """The action is well formed but cannot be done (an unknown request flag, or a
    right the bot lacks in the group: testing/_extended.py's admin-only actions).

    go-cqhttp answers ``Failed(100, code, text)``; NapCat's action throws, and
    ``OneBotAction`` answers the thrown message with retcode 200 (HTTP) or 1200 (WS).
    """

    def __init__(self, text: str, code: str) -> None:
        self.code = code
        super().__init__(text)


def _int(params: dict[str, Any], key: str) -> int:
    value = params.get(key)
    if isinstance(value, bool) or value is None:
        raise ParamError(f"parameter {key} is missing")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ParamError(f"parameter {key} is not a number: {value!r}") from None


def _chat(message: dict[str, Any]) -> dict[str, Any]:
    """Where a stored message was said: its ``group_id``, else the friend as ``target_id``
    (NapCat's name); message history reads it."""
    if "group_id" in message:
        return {"group_id": message["group_id"]}
    return {"target_id": message["user_id"]}


def _bool(params: dict[str, Any], key: str, default: bool) -> bool:
    value = params.get(key, default)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _id(value: Any, name: str) -> int:
    """A QQ or group number for the builder methods (ints, or digit strings from a file)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{name} must be a number, not {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be a positive number, not {value!r}")
    return number


def _keys(entry: Any, allowed: set[str], what: str, required: str | None = None) -> None:
    if not isinstance(entry, dict):
        raise ConfigError(f"{what} must be an object/table, not {entry!r}")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(f"{what} has unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    if required is not None and required not in entry:
        raise ConfigError(f"{what} needs {required!r}: {entry!r}")


def _entries(description: dict[str, Any], key: str) -> list[Any]:
    entries = description.get(key, [])
    if not isinstance(entries, list):
        raise ConfigError(f"{key!r} must be a list (a TOML array of tables), not {entries!r}")
    return entries


def read_world_file(path: str) -> dict[str, Any]:
    """The world a JSON or TOML file describes (``.toml`` is TOML, anything else JSON).

    TOML needs :mod:`tomllib` (Python 3.11+) or, on 3.10, the ``tomli`` package
    (which pytest installs there); onebot_ref itself depends on neither.

    Raises:
        ConfigError: the file cannot be read or parsed, or is not an object.
    """
    try:
        text = pathlib.Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the world file {path}: {exc}") from None
    if path.lower().endswith(".toml"):
        try:
            toml = importlib.import_module("tomllib")  # Python 3.11+
        except ImportError:
            try:
                toml = importlib.import_module("tomli")  # the same parser, as a package
            except ImportError:
                raise ConfigError(
                    f"the world file {path} is TOML, which needs Python 3.11+ or "
                    "`pip install tomli` on 3.10; or write the world as JSON"
                ) from None
        try:
            description: Any = toml.loads(text)
        except toml.TOMLDecodeError as exc:
            raise ConfigError(f"the world file {path} is not valid TOML: {exc}") from None
    else:
        try:
            description = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"the world file {path} is not valid JSON: {exc}") from None
    if not isinstance(description, dict):
        raise ConfigError(f"the world file {path} must hold an object, not {description!r:.60}")
    return description


class World:
    """One fake bot account and everything it can see.

    Args:
        self_id: the bot's QQ number.
        flavor: ``"spec"``, ``"go-cqhttp"`` or ``"napcat"``.
        message_format: ``"string"`` or ``"array"`` for events; default per flavour.
    """

    def __init__(
        self,
        self_id: int = 10001,
        *,
        flavor: Flavor = "spec",
        message_format: str | None = None,
        nickname: str = "FakeBot",
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {FLAVORS}, not {flavor!r}")
        self.self_id = self_id
        self.nickname = nickname
        self.flavor = flavor
        self.message_format = message_format or ("array" if flavor == "napcat" else "string")
        self.friends: dict[int, dict[str, Any]] = {}
        self.groups: dict[int, dict[str, Any]] = {}
        self.add_friend(20001, "小明", remark="ming")
        self.add_friend(20002, "Alice")
        self.add_group(30001, "测试群", self_role="owner")
        self.add_member(30001, 20001, role="admin")
        self.add_member(30001, 20002)
        self.messages: dict[int, dict[str, Any]] = {}
        self.forwards: dict[str, list[dict[str, Any]]] = {
            "fwd-1": [_FORWARD_NODE],
        }
        self.calls: list[tuple[str, dict[str, Any]]] = []  # the latest, up to KEEP
        # Actions run to the end, by name: their consequences (notices) are queued.
        self.handled: dict[str, int] = {}
        self.sent: list[dict[str, Any]] = []  # the messages the bot sent, in order (latest KEEP)
        self.sent_total = 0  # all of them, counting those forgotten
        self.sent_changed = threading.Condition()
        self.requests: dict[str, dict[str, Any]] = {}  # flag -> pending request event
        # Where the notices that actions cause go (FakeOneBot pushes them to the bot).
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        # Called with each message the bot sends, on the thread that sent it, before
        # the action answers (the command line's console prints it from here).
        self.on_sent: Callable[[dict[str, Any]], None] | None = None
        self._ids = itertools.count(1001)
        self._flags = itertools.count(1_700_000_000_000_001)  # go-cqhttp-like, opaque
        self._lock = threading.Lock()

    # -- building the world --------------------------------------------------------

    def add_friend(
        self, user_id: int, nickname: str | None = None, *, remark: str = ""
    ) -> dict[str, Any]:
        """Make ``user_id`` the bot's friend; return the record ``get_friend_list`` lists.

        The nickname (default: the number) also names the user in message
        events and in the groups added later.
        """
        user_id = _id(user_id, "user_id")
        friend = {"user_id": user_id, "nickname": nickname or str(user_id), "remark": remark}
        self.friends[user_id] = friend
        return friend

    def remove_friend(self, user_id: int) -> None:
        """Forget a friend (as ``delete_friend`` would); ConfigError if not a friend."""
        if self.friends.pop(_id(user_id, "user_id"), None) is None:
            raise ConfigError(f"{user_id} is not a friend of the bot; see world.friends")

    def add_group(
        self, group_id: int, name: str | None = None, *, self_role: str = "member"
    ) -> dict[str, Any]:
        """A group the bot is in, with the bot as its one member (its role ``self_role``).

        Returns the group's record; add the others with :meth:`add_member`.
        Adding a group that exists replaces it.
        """
        group_id = _id(group_id, "group_id")
        group: dict[str, Any] = {"group_name": name or f"群{group_id}", "members": {}}
        self.groups[group_id] = group
        self.add_member(group_id, self.self_id, role=self_role)
        return group

    def remove_group(self, group_id: int) -> None:
        """The bot is no longer in ``group_id``; ConfigError if it never was."""
        if self.groups.pop(_id(group_id, "group_id"), None) is None:
            raise ConfigError(f"the bot is not in group {group_id}; see world.groups")

    def add_member(
        self,
        group_id: int,
        user_id: int,
        role: str = "member",
        *,
        card: str = "",
        nickname: str | None = None,
        title: str = "",
    ) -> dict[str, Any]:
        """Put ``user_id`` in ``group_id`` as ``owner``, ``admin`` or ``member``.

        Returns the record ``get_group_member_info`` answers with; message
        events from this user in this group carry its card and role in
        ``sender``. The nickname defaults to the friend's, else the number.

        Raises:
            ConfigError: the group is not in the world, or the role is not one of ROLES.
        """
        group = self._builder_group(group_id)
        group_id, user_id = int(group_id), _id(user_id, "user_id")
        if role not in ROLES:
            raise ConfigError(f"role must be one of {ROLES}, not {role!r}")
        if nickname is None:
            default = self.nickname if user_id == self.self_id else str(user_id)
            nickname = self.friends.get(user_id, {}).get("nickname", default)
        member = {
            "group_id": group_id, "user_id": user_id, "nickname": nickname, "card": card,
            "sex": "unknown", "age": 0, "area": "", "join_time": 1700000000,
            "last_sent_time": 1700000000, "level": "1", "role": role, "unfriendly": False,
            "title": title, "title_expire_time": 0, "card_changeable": True,
        }  # fmt: skip
        group["members"][user_id] = member
        return member

    def _add_member(self, group_id: int, user_id: int, role: str) -> None:
        self.add_member(group_id, user_id, role)  # the old spelling, kept for callers

    def remove_member(self, group_id: int, user_id: int) -> None:
        """Take ``user_id`` out of ``group_id`` with no notice (see :meth:`kick` for one)."""
        members = self._builder_group(group_id)["members"]
        if members.pop(_id(user_id, "user_id"), None) is None:
            raise ConfigError(f"{user_id} is not a member of group {group_id}")

    def set_group_admin(self, group_id: int, user_id: int, enable: bool = True) -> bool:
        """Make a member an admin (or a plain member again); True if the role changed.

        Raises:
            ConfigError: no such member, or the member is the owner (QQ has one
                owner, whom no admin switch changes).
        """
        member = self._builder_group(group_id)["members"].get(_id(user_id, "user_id"))
        if member is None:
            raise ConfigError(f"{user_id} is not a member of group {group_id}; add_member first")
        if member["role"] == "owner":
            raise ConfigError(f"{user_id} owns group {group_id}: the owner is never an admin")
        role = "admin" if enable else "member"
        changed: bool = member["role"] != role
        member["role"] = role
        return changed

    def clear(self) -> None:
        """No friends, no groups: an empty world to build (or :meth:`load`) from scratch."""
        self.friends.clear()
        self.groups.clear()

    def load(self, description: dict[str, Any]) -> None:
        """Replace the accounts with ``description``, the JSON/TOML shape of a world file.

        ::

            {"self_id": 10001, "nickname": "FakeBot",
             "friends": [{"user_id": 20001, "nickname": "小明", "remark": "ming"}],
             "groups": [{"group_id": 30001, "name": "测试群", "self_role": "owner",
                         "members": [{"user_id": 20001, "role": "admin", "card": "明"}]}]}

        Every key is optional; unknown keys are refused, so a typo does not pass
        silently. The builder methods do the work, with their checks.

        Raises:
            ConfigError: an unknown key, a wrong type, a bad role or id.
        """
        _keys(description, {"self_id", "nickname", "friends", "groups"}, "the world")
        if "self_id" in description:
            self.self_id = _id(description["self_id"], "self_id")
        if "nickname" in description:
            self.nickname = str(description["nickname"])
        self.clear()
        for friend in _entries(description, "friends"):
            _keys(friend, {"user_id", "nickname", "remark"}, "a friend", required="user_id")
            self.add_friend(
                friend["user_id"], friend.get("nickname"), remark=str(friend.get("remark", ""))
            )
        for group in _entries(description, "groups"):
            keys = {"group_id", "name", "self_role", "members"}
            _keys(group, keys, "a group", required="group_id")
            self.add_group(
                group["group_id"], group.get("name"), self_role=group.get("self_role", "member")
            )
            for member in _entries(group, "members"):
                keys = {"user_id", "role", "card", "nickname", "title"}
                _keys(member, keys, f"a member of group {group['group_id']}", required="user_id")
                self.add_member(
                    group["group_id"], member["user_id"], member.get("role", "member"),
                    card=str(member.get("card", "")), nickname=member.get("nickname"),
                    title=str(member.get("title", "")),
                )  # fmt: skip

    def _builder_group(self, group_id: int) -> dict[str, Any]:
        group: dict[str, Any] | None = self.groups.get(_id(group_id, "group_id"))
        if group is None:
            raise ConfigError(f"the bot is not in group {group_id}; add_group({group_id}) first")
        return group

    # -- requests and the notices actions cause --------------------------------------

    def request_friend(
        self, user_id: int, comment: str = "", *, nickname: str | None = None
    ) -> dict[str, Any]:
        """A ``request.friend`` event from ``user_id``, with a flag this world will accept.

        Approving it (``set_friend_add_request`` or a quick operation) makes
        ``user_id`` a friend named ``nickname`` and emits ``notice.friend_add``.
        """
        user_id = _id(user_id, "user_id")
        pending = {"nickname": nickname or str(user_id)}  # not in the event, as on the wire
        return self._request("friend", pending, user_id=user_id, comment=comment)

    def request_join(
        self, group_id: int, user_id: int, comment: str = "", *, sub_type: str = "add"
    ) -> dict[str, Any]:
        """A ``request.group`` event: ``user_id`` asks to join (``add``), or invites the bot
        into ``group_id`` (``invite``). Approving adds the member (or the group) and emits
        ``notice.group_increase``."""
        if sub_type not in ("add", "invite"):
            raise ConfigError(f"sub_type must be 'add' or 'invite', not {sub_type!r}")
        return self._request(
            "group", {}, sub_type=sub_type, group_id=_id(group_id, "group_id"),
            user_id=_id(user_id, "user_id"), comment=comment,
        )  # fmt: skip

    def _request(self, request_type: str, pending: dict[str, Any], **fields: Any) -> dict[str, Any]:
        event = {
            "time": int(time.time()), "self_id": self.self_id, "post_type": "request",
            "request_type": request_type, **fields, "flag": str(next(self._flags)),
        }  # fmt: skip
        with self._lock:
            self.requests[event["flag"]] = {**event, **pending}
            if len(self.requests) > KEEP:  # forgotten, like a stale QQ system message
                del self.requests[next(iter(self.requests))]
        return event

    def notice(self, notice_type: str, **fields: Any) -> dict[str, Any]:
        """A notice event (spec ``event/notice.md``) from this world."""
        return {
            "time": int(time.time()), "self_id": self.self_id, "post_type": "notice",
            "notice_type": notice_type, **fields,
        }  # fmt: skip

    def emit(self, event: dict[str, Any]) -> None:
        """Hand an event the world caused to :attr:`on_event` (nothing if unset)."""
        if self.on_event is not None:
            self.on_event(event)

    def join(self, group_id: int, user_id: int, *, operator_id: int | None = None) -> None:
        """``user_id`` joins ``group_id`` (a member, unless already one): ``group_increase``."""
        if _id(user_id, "user_id") not in self._builder_group(group_id)["members"]:
            self.add_member(group_id, user_id)
        self.emit(
            self.notice(
                "group_increase", sub_type="approve", group_id=int(group_id),
                operator_id=self.self_id if operator_id is None else operator_id,
                user_id=int(user_id),
            )
        )  # fmt: skip

    def leave(self, group_id: int, user_id: int, *, operator_id: int | None = None) -> None:
        """``user_id`` leaves ``group_id`` (or is kicked by ``operator_id``): ``group_decrease``."""
        self.remove_member(group_id, user_id)
        kicked = operator_id is not None and operator_id != user_id
        self.emit(
            self.notice(
                "group_decrease", sub_type="kick" if kicked else "leave", group_id=int(group_id),
                operator_id=operator_id if kicked else int(user_id), user_id=int(user_id),
            )
        )  # fmt: skip

    def settle_request(self, params: dict[str, Any], request_type: str) -> Response:
        """``set_friend_add_request`` / ``set_group_add_request``: the flag must be pending."""
        flag = str(params.get("flag", ""))
        with self._lock:
            pending = self.requests.get(flag)
            wanted = params.get("sub_type") or params.get("type")
            mismatch = pending is not None and (
                pending["request_type"] != request_type
                or (request_type == "group" and wanted and wanted != pending["sub_type"])
            )
            if pending is None or mismatch:
                if self.flavor == "napcat":
                    raise ActionRefused("No such request", "")
                if self.flavor == "go-cqhttp":
                    raise ActionRefused("FLAG不存在", "FLAG_NOT_FOUND")
                raise ActionRefused(
                    f"flag {flag!r} is not a pending {request_type} request; "
                    "use the flag of a request event",
                    "FLAG_NOT_FOUND",
                )
            del self.requests[flag]
        if not _bool(params, "approve", True):
            return self.ok()
        user_id = pending["user_id"]
        if request_type == "friend":
            self.add_friend(user_id, pending.get("nickname"), remark=str(params.get("remark", "")))
            self.emit(self.notice("friend_add", user_id=user_id))
        elif pending["sub_type"] == "add":
            self.join(pending["group_id"], user_id)
        else:  # the bot accepted an invitation: now it is in the group
            if pending["group_id"] not in self.groups:
                self.add_group(pending["group_id"])
            self.emit(
                self.notice(
                    "group_increase", sub_type="invite", group_id=pending["group_id"],
                    operator_id=user_id, user_id=self.self_id,
                )
            )  # fmt: skip
        return self.ok()

    # -- envelopes -----------------------------------------------------------------

    def ok(self, data: Any = None) -> Response:
        resp: Response = {"status": "ok", "retcode": 0, "data": data}
        if self.flavor == "go-cqhttp":
            resp["message"] = ""
        elif self.flavor == "napcat":
            resp.update(message="", wording="", stream="normal-action")
        return resp

    def failed(self, retcode: int, text: str, code: str = "") -> Response:
        resp: Response = {"status": "failed", "retcode": retcode, "data": None}
        if self.flavor == "go-cqhttp":
            resp.update(msg=code or "FAILED", wording=text, message=text)
        elif self.flavor == "napcat":
            resp.update(message=text, wording=text, stream="normal-action")
        return resp

    def not_found(self, action: str, transport: str) -> Response | None:
        """The unknown-action answer, or None where the flavour answers HTTP 404.

        ``transport`` is ``http``, ``ws`` (the implementation's WS server) or
        ``ws-reverse`` (its reverse WS client).
        """
        if self.flavor == "go-cqhttp":
            return self.failed(404, "API不存在", "API_NOT_FOUND")
        if self.flavor == "napcat":
            # NapNeko/NapCatQQ packages/napcat-onebot/network/: http-server.ts answers
            # HTTP 200 with OB11Response.error('不支持的Api ' + actionName, 200);
            # websocket-server.ts '不支持的API ' with 1404; websocket-client.ts
            # '不支持的Api ' with 1404. (Older src/onebot/network/passive-http.ts: '不支持的api '.)
            if transport == "http":
                return self.failed(200, f"不支持的Api {action}")
            api = "API" if transport == "ws" else "Api"
            return self.failed(1404, f"不支持的{api} {action}")
        return None if transport == "http" else self.failed(1404, f"unknown action {action}")

    # -- the action table ------------------------------------------------------------

    def handle(self, action: str, params: dict[str, Any], transport: str = "ws") -> Response | None:
        """Run one action; None means "no such action" over HTTP (the caller answers 404).

        The call is in :attr:`calls` as it starts, and counted in
        :attr:`handled` once it has run, its notices emitted.
        """
        with self._lock:
            self.calls.append((action, params))
            _trim(self.calls)
        try:
            return self._handle(action, params, transport)
        finally:
            with self._lock:
                self.handled[action] = self.handled.get(action, 0) + 1

    def _handle(self, action: str, params: dict[str, Any], transport: str) -> Response | None:
        if action.endswith("_async") and self.flavor != "napcat":
            base = action.removesuffix("_async")
            if self.flavor == "spec":  # like CQHTTP: accepted without checking it exists
                if base in ACTIONS:
                    self.handle(base, params, transport)
                return {"status": "async", "retcode": 1, "data": None}
            action = base  # go-cqhttp strips the suffix and runs it synchronously
        method = ACTIONS.get(action)
        if method is None or action in LACKING.get(self.flavor, ()):
            return self.not_found(action, transport)
        try:
            return method(self, params)
        except ParamError as exc:
            if self.flavor == "napcat":
                return self.failed(400 if transport == "http" else 1400, str(exc))
            return self.failed(100, str(exc), "PARAM_ERROR")
        except LookupError as exc:
            return self.failed(100, f"not found: {exc}", "NOT_FOUND")
        except ActionRefused as exc:
            if self.flavor == "napcat":  # OneBotAction's answer to a thrown Error
                return self.failed(200 if transport == "http" else 1200, str(exc))
            return self.failed(100, str(exc), exc.code)

    def _send(self, params: dict[str, Any], message_type: str) -> Response:
        message = params.get("message")
        if message is None or message in ("", []):
            return self.failed(100, "消息为空", "EMPTY_MSG_ERROR")
        try:
            if isinstance(message, str) and _bool(params, "auto_escape", False):
                segments = [{"type": "text", "data": {"text": message}}]
            else:
                segments = normalize(message)
        except DecodeError as exc:
            raise ParamError(str(exc)) from None
        record: dict[str, Any] = {"message_type": message_type}
        if message_type == "group":
            group_id = _int(params, "group_id")
            if group_id not in self.groups:
                return self.failed(100, f"群 {group_id} 不存在", "GROUP_NOT_FOUND")
            record["group_id"] = group_id
        else:
            record["user_id"] = _int(params, "user_id")
        message_id = next(self._ids)
        record.update(message_id=message_id, message=segments, raw_message=to_cq(segments))
        record["text"] = plain_text(segments)
        with self._lock:
            self.messages[message_id] = {
                "time": int(time.time()), "message_type": message_type, "message_id": message_id,
                "real_id": message_id, "message": segments,
                "sender": {"user_id": self.self_id, "nickname": self.nickname}, **_chat(record),
            }  # fmt: skip
            self._forget_old_messages()
        with self.sent_changed:
            self.sent.append(record)
            _trim(self.sent)
            self.sent_total += 1
            self.sent_changed.notify_all()
        if self.on_sent is not None:
            self.on_sent(record)  # before the answer: what it shows is the chat as it was sent
        return self.ok({"message_id": message_id})

    def send_msg(self, params: dict[str, Any]) -> Response:
        kind = params.get("message_type") or ("group" if "group_id" in params else "private")
        return self._send(params, str(kind))

    def get_msg(self, params: dict[str, Any]) -> Response:
        stored = self.messages[_int(params, "message_id")]
        return self.ok(dict(stored, message=self.format_message(stored["message"])))

    def delete_msg(self, params: dict[str, Any]) -> Response:
        del self.messages[_int(params, "message_id")]
        return self.ok()

    def get_forward_msg(self, params: dict[str, Any]) -> Response:
        nodes = self.forwards[str(params.get("id") or params.get("message_id"))]
        return self.ok({"message" if self.flavor == "spec" else "messages": nodes})

    def format_message(self, segments: list[dict[str, Any]]) -> Any:
        """Segments in this world's event format (CQ string or array)."""
        return to_cq(segments) if self.message_format == "string" else segments

    def _group(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.groups[_int(params, "group_id")]

    def _member(self, params: dict[str, Any]) -> dict[str, Any]:
        member: dict[str, Any] = self._group(params)["members"][_int(params, "user_id")]
        return member

    def group_info(self, group_id: int) -> dict[str, Any]:
        group = self.groups[group_id]
        return {
            "group_id": group_id, "group_name": group["group_name"],
            "member_count": len(group["members"]), "max_member_count": 200,
        }  # fmt: skip

    def quick_operation(self, event: dict[str, Any], op: Any) -> None:
        """Apply a quick operation (spec ``communication/http-post.md``) to ``event``."""
        if not isinstance(op, dict):
            return
        if event.get("post_type") == "message" and op.get("reply") is not None:
            reply = op["reply"]
            if isinstance(reply, str) and _bool(op, "auto_escape", False):
                reply = [{"type": "text", "data": {"text": reply}}]
            try:
                segments = normalize(reply)
            except DecodeError:
                return  # like the real ones: an unusable quick operation is ignored
            is_group = event.get("message_type") == "group"
            if is_group and _bool(op, "at_sender", self.flavor == "spec"):
                segments = [{"type": "at", "data": {"qq": str(event.get("user_id"))}}, *segments]
            target = {"group_id": event.get("group_id")} if is_group else {}
            params = {"user_id": event.get("user_id"), **target, "message": segments}
            self._send(params, "group" if is_group else "private")
        elif event.get("post_type") == "request" and "approve" in op:
            kind = (
                "set_friend_add_request"
                if event.get("request_type") == "friend"
                else ("set_group_add_request")
            )
            self.handle(kind, {"flag": event.get("flag"), "approve": op["approve"]})

    # -- events ----------------------------------------------------------------------

    def message_event(self, user_id: int, text: str, group_id: int | None = None) -> dict[str, Any]:
        """A message event from ``user_id`` (in ``group_id`` if given), stored for get_msg.

        In a group, ``sender`` carries the member's nickname, card, role and
        title as :meth:`add_member` set them.
        """
        segments = parse_cq(text)
        message_id = next(self._ids)
        sender: dict[str, Any] = {
            "user_id": user_id,
            "nickname": self.friends.get(user_id, {}).get("nickname", str(user_id)),
            "sex": "unknown",
            "age": 0,
        }
        event: dict[str, Any] = {
            "time": int(time.time()), "self_id": self.self_id, "post_type": "message",
            "message_type": "group" if group_id is not None else "private",
            "sub_type": "normal" if group_id is not None else "friend",
            "message_id": message_id, "user_id": user_id,
            "message": self.format_message(segments), "raw_message": to_cq(segments),
            "font": 0, "sender": sender,
        }  # fmt: skip
        if group_id is not None:
            event["group_id"] = group_id
            event["anonymous"] = None
            sender.update(card="", role="member", level="1", title="", area="")
            member = self.groups.get(group_id, {}).get("members", {}).get(user_id)
            if member is not None:  # what add_member said: bots check sender.role
                sender.update({k: member[k] for k in ("nickname", "card", "role", "title")})
        if self.flavor == "napcat":
            event["message_format"] = self.message_format
        with self._lock:
            self.messages[message_id] = {
                "time": event["time"], "message_type": event["message_type"],
                "message_id": message_id, "real_id": message_id, "message": segments,
                "sender": sender, **_chat(event),
            }  # fmt: skip
            self._forget_old_messages()
        return event

    def meta_event(self, meta_event_type: str, **fields: Any) -> dict[str, Any]:
        """A lifecycle or heartbeat meta event."""
        return {
            "time": int(time.time()), "self_id": self.self_id, "post_type": "meta_event",
            "meta_event_type": meta_event_type, **fields,
        }  # fmt: skip

    def heartbeat(self, interval_ms: int) -> dict[str, Any]:
        return self.meta_event(
            "heartbeat", status={"online": True, "good": True}, interval=interval_ms
        )

    def wait_for_sent(self, n: int, timeout: float) -> list[dict[str, Any]]:
        """Block until the bot has sent at least ``n`` messages; return them (the latest KEEP).

        Raises:
            TimeoutError: fewer than ``n`` arrived within ``timeout`` seconds.
        """
        with self.sent_changed:
            if not self.sent_changed.wait_for(lambda: self.sent_total >= n, timeout):
                raise TimeoutError(f"the bot sent {self.sent_total} of {n} messages in {timeout}s")
            return list(self.sent)

    def _forget_old_messages(self) -> None:
        """Drop the oldest stored message past KEEP, as real implementations do; hold _lock."""
        if len(self.messages) > KEEP:
            del self.messages[next(iter(self.messages))]


def _simple(data: Callable[[World, dict[str, Any]], Any]) -> Callable[..., Response]:
    return lambda world, params: world.ok(data(world, params))


def _done(world: World, params: dict[str, Any]) -> Response:
    return world.ok()


def _set_member(field: str, key: str) -> Callable[[World, dict[str, Any]], Response]:
    def action(world: World, params: dict[str, Any]) -> Response:
        world._member(params)[field] = str(params.get(key, ""))
        return world.ok()

    return action


def _group_members(w: World, p: dict[str, Any]) -> list[dict[str, Any]]:
    return list(w._group(p)["members"].values())


def _kick(w: World, p: dict[str, Any]) -> Response:
    w._member(p)  # LookupError (not found) if there is no such member
    w.leave(_int(p, "group_id"), _int(p, "user_id"), operator_id=w.self_id)
    return w.ok()


def _leave(w: World, p: dict[str, Any]) -> Response:
    del w.groups[_int(p, "group_id")]
    return w.ok()


def _rename(w: World, p: dict[str, Any]) -> Response:
    w._group(p)["group_name"] = str(p.get("group_name", ""))
    return w.ok()


def _admin(w: World, p: dict[str, Any]) -> Response:
    group_id, user_id, enable = _int(p, "group_id"), _int(p, "user_id"), _bool(p, "enable", True)
    w._member(p)  # LookupError (not found) if there is no such member
    try:
        changed = w.set_group_admin(group_id, user_id, enable)
    except ConfigError as exc:  # the owner
        raise ActionRefused(str(exc), "PERMISSION_DENIED") from None
    if changed:
        sub_type = "set" if enable else "unset"
        w.emit(w.notice("group_admin", sub_type=sub_type, group_id=group_id, user_id=user_id))
    return w.ok()


def _quick(w: World, p: dict[str, Any]) -> Response:
    w.quick_operation(p.get("context") or {}, p.get("operation") or {})
    return w.ok()


def _honor(w: World, p: dict[str, Any]) -> dict[str, Any]:
    who = {"user_id": 20001, "nickname": "小明", "avatar": "", "description": "龙王"}
    lists = ("talkative", "performer", "legend", "strong_newbie", "emotion")
    data: dict[str, Any] = {"group_id": _int(p, "group_id")}
    data["current_talkative"] = {**who, "day_count": 3}
    for name in lists:
        data[f"{name}_list"] = [who] if p.get("type", "all") in (name, "all") else []
    return data


# Action name -> function(world, params) -> response envelope.
ACTIONS: dict[str, Callable[[World, dict[str, Any]], Response]] = {
    "send_private_msg": lambda w, p: w._send(p, "private"),
    "send_group_msg": lambda w, p: w._send(p, "group"),
    "send_msg": World.send_msg,
    "delete_msg": World.delete_msg,
    "get_msg": World.get_msg,
    "get_forward_msg": World.get_forward_msg,
    "send_like": _done,
    "set_group_kick": _kick,
    "set_group_ban": _done,
    "set_group_anonymous_ban": _done,
    "set_group_whole_ban": _done,
    "set_group_admin": _admin,
    "set_group_anonymous": _done,
    "set_group_card": _set_member("card", "card"),
    "set_group_name": _rename,
    "set_group_leave": _leave,
    "set_group_special_title": _set_member("title", "special_title"),
    "set_friend_add_request": lambda w, p: w.settle_request(p, "friend"),
    "set_group_add_request": lambda w, p: w.settle_request(p, "group"),
    "get_login_info": _simple(lambda w, p: {"user_id": w.self_id, "nickname": w.nickname}),
    "get_stranger_info": _simple(
        lambda w, p: {
            "user_id": _int(p, "user_id"),
            "sex": "unknown",
            "age": 0,
            "nickname": w.friends.get(_int(p, "user_id"), {}).get("nickname", "陌生人"),
        }
    ),
    "get_friend_list": _simple(lambda w, p: list(w.friends.values())),
    "get_group_info": _simple(lambda w, p: w.group_info(_int(p, "group_id"))),
    "get_group_list": _simple(lambda w, p: [w.group_info(g) for g in w.groups]),
    "get_group_member_info": _simple(lambda w, p: w._member(p)),
    "get_group_member_list": _simple(_group_members),
    "get_group_honor_info": _simple(_honor),
    "get_cookies": _simple(lambda w, p: {"cookies": "uin=o10001; skey=@fake"}),
    "get_csrf_token": _simple(lambda w, p: {"token": 123456789}),
    "get_credentials": _simple(lambda w, p: {"cookies": "uin=o10001", "csrf_token": 123456789}),
    "get_record": _simple(
        lambda w, p: {"file": f"/tmp/fake/{p.get('file')}.{p.get('out_format')}"}
    ),
    "get_image": _simple(lambda w, p: {"file": f"/tmp/fake/{p.get('file')}"}),
    "can_send_image": _simple(lambda w, p: {"yes": True}),
    "can_send_record": _simple(lambda w, p: {"yes": True}),
    "get_status": _simple(lambda w, p: {"online": True, "good": True}),
    "get_version_info": _simple(
        lambda w, p: {
            "app_name": f"FakeOneBot ({w.flavor})",
            "app_version": "0.1.0",
            "protocol_version": "v11",
        }
    ),
    "set_restart": lambda w, p: {"status": "async", "retcode": 1, "data": None},
    "clean_cache": _done,
    ".handle_quick_operation": _quick,
}

# Actions ACTIONS answers but a flavour lacks: it answers them as its unknown
# action (ApiNotAvailable). _extended.py adds its actions to both tables.
LACKING: dict[str, frozenset[str]] = {}


def _trim(records: list[Any]) -> None:
    """Forget the older half of ``records`` once it holds more than KEEP."""
    if len(records) > KEEP:
        del records[: len(records) - KEEP // 2]
