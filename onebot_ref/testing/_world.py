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
"""

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any, get_args

from .._types import Flavor
from ..errors import DecodeError
from ..message import normalize, parse_cq, plain_text, to_cq

__all__ = ["FLAVORS", "World"]

FLAVORS: tuple[Flavor, ...] = get_args(Flavor)  # ("spec", "go-cqhttp", "napcat")
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


def _int(params: dict[str, Any], key: str) -> int:
    value = params.get(key)
    if isinstance(value, bool) or value is None:
        raise ParamError(f"parameter {key} is missing")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ParamError(f"parameter {key} is not a number: {value!r}") from None


def _bool(params: dict[str, Any], key: str, default: bool) -> bool:
    value = params.get(key, default)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


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
        self.friends: dict[int, dict[str, Any]] = {
            20001: {"user_id": 20001, "nickname": "小明", "remark": "ming"},
            20002: {"user_id": 20002, "nickname": "Alice", "remark": ""},
        }
        self.groups: dict[int, dict[str, Any]] = {30001: {"group_name": "测试群", "members": {}}}
        for uid, role in ((self_id, "owner"), (20001, "admin"), (20002, "member")):
            self._add_member(30001, uid, role)
        self.messages: dict[int, dict[str, Any]] = {}
        self.forwards: dict[str, list[dict[str, Any]]] = {
            "fwd-1": [_FORWARD_NODE],
        }
        self.calls: list[tuple[str, dict[str, Any]]] = []  # the latest, up to KEEP
        self.sent: list[dict[str, Any]] = []  # the messages the bot sent, in order (latest KEEP)
        self.sent_total = 0  # all of them, counting those forgotten
        self.sent_changed = threading.Condition()
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()

    def _add_member(self, group_id: int, user_id: int, role: str) -> None:
        nickname = self.friends.get(user_id, {}).get("nickname", self.nickname)
        self.groups[group_id]["members"][user_id] = {
            "group_id": group_id, "user_id": user_id, "nickname": nickname, "card": "",
            "sex": "unknown", "age": 0, "area": "", "join_time": 1700000000,
            "last_sent_time": 1700000000, "level": "1", "role": role, "unfriendly": False,
            "title": "", "title_expire_time": 0, "card_changeable": True,
        }  # fmt: skip

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
        """Run one action; None means "no such action" over HTTP (the caller answers 404)."""
        with self._lock:
            self.calls.append((action, params))
            _trim(self.calls)
        if action.endswith("_async") and self.flavor != "napcat":
            base = action.removesuffix("_async")
            if self.flavor == "spec":  # like CQHTTP: accepted without checking it exists
                if base in ACTIONS:
                    self.handle(base, params, transport)
                return {"status": "async", "retcode": 1, "data": None}
            action = base  # go-cqhttp strips the suffix and runs it synchronously
        method = ACTIONS.get(action)
        if method is None:
            return self.not_found(action, transport)
        try:
            return method(self, params)
        except ParamError as exc:
            if self.flavor == "napcat":
                return self.failed(400 if transport == "http" else 1400, str(exc))
            return self.failed(100, str(exc), "PARAM_ERROR")
        except LookupError as exc:
            return self.failed(100, f"not found: {exc}", "NOT_FOUND")

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
                "sender": {"user_id": self.self_id, "nickname": self.nickname},
            }  # fmt: skip
            self._forget_old_messages()
        with self.sent_changed:
            self.sent.append(record)
            _trim(self.sent)
            self.sent_total += 1
            self.sent_changed.notify_all()
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
        """A message event from ``user_id`` (in ``group_id`` if given), stored for get_msg."""
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
        if self.flavor == "napcat":
            event["message_format"] = self.message_format
        with self._lock:
            self.messages[message_id] = {
                "time": event["time"], "message_type": event["message_type"],
                "message_id": message_id, "real_id": message_id, "message": segments,
                "sender": sender,
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
    del w._group(p)["members"][_int(p, "user_id")]
    return w.ok()


def _leave(w: World, p: dict[str, Any]) -> Response:
    del w.groups[_int(p, "group_id")]
    return w.ok()


def _rename(w: World, p: dict[str, Any]) -> Response:
    w._group(p)["group_name"] = str(p.get("group_name", ""))
    return w.ok()


def _admin(w: World, p: dict[str, Any]) -> Response:
    w._member(p)["role"] = "admin" if _bool(p, "enable", True) else "member"
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
    "set_friend_add_request": _done,
    "set_group_add_request": _done,
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


def _trim(records: list[Any]) -> None:
    """Forget the older half of ``records`` once it holds more than KEEP."""
    if len(records) > KEEP:
        del records[: len(records) - KEEP // 2]
