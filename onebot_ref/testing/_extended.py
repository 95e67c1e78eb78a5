"""The extended actions in FakeOneBot's world: forwards, history, files, essence, notices, pokes.

go-cqhttp introduced these actions and NapCat, Lagrange.OneBot and LLOneBot
kept them (see :data:`onebot_ref.api.EXTENDED_ACTIONS`). Importing this module
adds them to the world's action table (``_world.ACTIONS``); their state lives
in one :class:`Extras` per :class:`World` (:func:`extras`):

* **forwarded messages**: ``send_*_forward_msg`` stores the nodes (a node by
  id becomes the custom node of that message, as implementations resolve it),
  sends a ``forward`` segment to the chat and answers its id, which
  ``get_forward_msg`` answers with the same nodes;
* **history**: ``get_*_msg_history`` reads the world's message store (what the
  bot sent and what it received), oldest first, as message events;
* **group files and folders**: each group has a folder ``/folder-1`` ("资料");
  uploads are listed, given a URL, and deleted;
* **essence messages, group notices, emoji reactions, read marks, the
  group avatar and the profile** are kept as set;
* **pokes** come back as ``notice.notify.poke`` events, through
  :meth:`World.emit` (FakeOneBot delivers them after the action's answer);
* **permissions**: the bot's role in a group (``world.groups``) decides the
  admin-only actions (essence, notices, the avatar, deleting another's file).
  A plain member is refused as the implementation refuses: NapCat's action
  throws, answered with retcode 200 over HTTP and 1200 over WebSocket;
  go-cqhttp answers retcode 100.

Per flavour (an action a flavour lacks is answered as its unknown action, so
the bot raises ``ApiNotAvailable``):

==================================================  ====  =========  ======
action                                              spec  go-cqhttp  napcat
==================================================  ====  =========  ======
``get_friend_msg_history``, ``set_msg_emoji_like``  yes   no         yes
``group_poke``, ``friend_poke``                     yes   no         yes
every other extended action                         yes   yes        yes
==================================================  ====  =========  ======

The ``spec`` flavour answers every extension, so that a bot can be tried
before choosing an implementation. Answers follow the flavour where the
implementations differ: NapCat's ``send_*_forward_msg`` says ``res_id`` where
go-cqhttp says ``forward_id``, its ``get_online_clients`` is an empty list,
its ``ocr_image`` the list of lines.
"""

import base64
import binascii
import itertools
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from ..api import EXTENDED_SUPPORT
from ..errors import DecodeError
from ..message import normalize, to_cq
from ._world import (
    ACTIONS,
    KEEP,
    LACKING,
    ActionRefused,
    ParamError,
    Response,
    World,
    _bool,
    _int,
)

__all__ = ["Extras", "extras"]

ROOT = "/"
FOLDER = {"folder_id": "/folder-1", "folder_name": "资料"}  # every group's one folder
BUSID = 102  # go-cqhttp's busid of ordinary group files
DENIED = "权限不足"  # the fake's reason; real ones pass QQ's own text along


class Extras:
    """What the extended actions change, for one world; guarded by :attr:`lock`.

    Every store is bounded (``KEEP`` entries), like the world's message store.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        # group_id -> file_id -> (folder_id, file record); group_id -> folder_id -> folder
        self.files: dict[int, dict[str, tuple[str, dict[str, Any]]]] = {}
        self.folders: dict[int, dict[str, dict[str, Any]]] = {}
        self.private_files: list[dict[str, Any]] = []
        self.essence: dict[int, dict[int, dict[str, Any]]] = {}  # group -> message_id -> entry
        self.notices: dict[int, list[dict[str, Any]]] = {}
        self.reactions: dict[int, dict[str, set[int]]] = {}  # message_id -> emoji_id -> users
        self.read: dict[str, int] = {}  # "group:1" / "private:2" -> last message_id read
        self.portraits: dict[int, str] = {}
        self.profile: dict[str, Any] = {}

    def folders_of(self, world: World, group_id: int) -> dict[str, dict[str, Any]]:
        """The folders of a group the bot is in (LookupError otherwise); hold :attr:`lock`."""
        _known(world.groups, group_id, "group")
        if group_id not in self.folders:
            folder = {
                "group_id": group_id, **FOLDER, "create_time": 1700000000,
                "creator": world.self_id, "creator_name": world.nickname, "total_file_count": 0,
            }  # fmt: skip
            self.folders[group_id] = {FOLDER["folder_id"]: folder}
        return self.folders[group_id]


_EXTRAS: "weakref.WeakKeyDictionary[World, Extras]" = weakref.WeakKeyDictionary()
_EXTRAS_LOCK = threading.Lock()


def extras(world: World) -> Extras:
    """The extended state of ``world``, made on first use.

    Kept beside the world rather than in it, so that ``_world.py`` stays the
    standard actions and this module the extensions; it lives as long as the world.
    """
    with _EXTRAS_LOCK:
        found = _EXTRAS.get(world)
        if found is None:
            found = _EXTRAS[world] = Extras()
        return found


def _bound(store: dict[Any, Any] | list[Any]) -> None:
    """Forget the oldest entry once ``store`` holds more than KEEP."""
    if len(store) > KEEP:
        if isinstance(store, list):
            del store[0]
        else:
            del store[next(iter(store))]


def _known(table: dict[int, Any], key: int, what: str) -> Any:
    """``table[key]``, or LookupError naming ``what`` (answered as "not found")."""
    if key not in table:
        raise LookupError(f"{what} {key}")
    return table[key]


def _role(world: World, group_id: int) -> str:
    member = world.groups[group_id]["members"].get(world.self_id, {})
    return str(member.get("role", "member"))


def _require_admin(world: World, group_id: int, what: str) -> None:
    """ActionRefused unless the bot owns or administers ``group_id``.

    NapCat passes QQ's refusal on as the thrown error's text; its notice action
    words it ``设置群公告失败,错误信息:…`` (NapCatQQ go-cqhttp/SendGroupNotice.ts).
    """
    if _role(world, group_id) not in ("owner", "admin"):
        raise ActionRefused(f"{what}{DENIED}", "PERMISSION_DENIED")


def _stored(world: World, message_id: int) -> dict[str, Any]:
    with world._lock:
        return world.messages[message_id]


# -- forwarded messages -------------------------------------------------------------------


def _nodes(world: World, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``messages`` nodes as stored: custom nodes, a node by id resolved to its message."""
    raw = params.get("messages", params.get("message"))  # NapCat also reads "message"
    if not isinstance(raw, list) or not raw:
        raise ParamError("parameter messages is missing or not a list of node segments")
    nodes: list[dict[str, Any]] = []
    for item in raw:
        if not isinstance(item, dict) or item.get("type") != "node":
            raise ParamError(f"messages holds node segments only, not {item!r:.60}")
        data = item.get("data") or {}
        if "content" not in data:
            stored = _stored(world, _int(data, "id"))
            sender = stored["sender"]
            data = {
                "user_id": str(sender.get("user_id", "")),
                "nickname": str(sender.get("nickname", "")),
                "content": stored["message"],
            }
        try:
            content = normalize(data["content"])
        except DecodeError as exc:
            raise ParamError(str(exc)) from None
        nodes.append({"type": "node", "data": {**data, "content": content}})
    return nodes


def _send_forward(world: World, params: dict[str, Any], message_type: str) -> Response:
    """Store the nodes under a new forward id, then send that id to the chat as a message."""
    target = "group_id" if message_type == "group" else "user_id"
    chat = _int(params, target)
    if message_type == "group":
        _known(world.groups, chat, "group")
    nodes = _nodes(world, params)
    forward_id = f"fwd-{next(extras(world).ids)}"
    with world._lock:
        world.forwards[forward_id] = nodes
        _bound(world.forwards)
    forward = [{"type": "forward", "data": {"id": forward_id}}]
    sent = world._send({target: chat, "message": forward}, message_type)
    if sent["status"] != "ok":
        return sent
    key = "res_id" if world.flavor == "napcat" else "forward_id"
    return world.ok({"message_id": sent["data"]["message_id"], key: forward_id})


# -- history ---------------------------------------------------------------------------------


def _history(world: World, params: dict[str, Any], in_group: bool) -> Response:
    """Messages of one chat, oldest first, up to ``message_seq`` (NapCat: a message id)."""
    if in_group:
        peer, key = _int(params, "group_id"), "group_id"
        _known(world.groups, peer, "group")
    else:
        peer, key = _int(params, "user_id"), "target_id"  # _world._chat's name for the friend
    count = _int(params, "count") if params.get("count") is not None else 20
    anchor = params.get("message_seq", params.get("message_id"))  # Lagrange: message_id
    last = None if anchor in (None, 0, "0", "") else _int({"message_seq": anchor}, "message_seq")
    with world._lock:
        stored = [dict(m) for m in world.messages.values() if m.get(key) == peer]
    if last is not None:
        if all(m["message_id"] != last for m in stored):
            raise LookupError(f"message {last}")
        stored = [m for m in stored if m["message_id"] <= last]
    events = []
    for m in stored[len(stored) - max(count, 0) :]:
        event = {
            **m, "self_id": world.self_id, "post_type": "message",
            "sub_type": "normal" if in_group else "friend",
            "user_id": m["sender"].get("user_id"), "message": world.format_message(m["message"]),
            "raw_message": to_cq(m["message"]), "font": 0,
        }  # fmt: skip
        events.append(event)
    return world.ok({"messages": events})


# -- group files -----------------------------------------------------------------------------


def _size(file: str) -> int:
    """The size the fake can know without reading a disk: that of ``base64://`` data."""
    if file.startswith("base64://"):
        try:
            return len(base64.b64decode(file[9:], validate=True))
        except (binascii.Error, ValueError):
            raise ParamError("file is base64:// data that is not base64") from None
    return 0


def _upload_group_file(world: World, params: dict[str, Any]) -> Response:
    group_id = _int(params, "group_id")
    file, name = str(params.get("file") or ""), str(params.get("name") or "")
    if not file or not name:
        raise ParamError("parameters file and name are required")
    folder_id = str(params.get("folder") or params.get("folder_id") or ROOT)
    state = extras(world)
    with state.lock:
        folders = state.folders_of(world, group_id)
        if folder_id != ROOT and folder_id not in folders:
            raise LookupError(f"folder {folder_id}")
        file_id = f"/file-{next(state.ids)}"
        now = int(time.time())
        record = {
            "group_id": group_id, "file_id": file_id, "file_name": name, "busid": BUSID,
            "file_size": _size(file), "upload_time": now, "dead_time": 0, "modify_time": now,
            "download_times": 0, "uploader": world.self_id, "uploader_name": world.nickname,
        }  # fmt: skip
        files = state.files.setdefault(group_id, {})
        files[file_id] = (folder_id, record)
        _bound(files)
        if folder_id != ROOT:
            folders[folder_id]["total_file_count"] += 1
    return world.ok(None if world.flavor == "go-cqhttp" else {"file_id": file_id})


def _upload_private_file(world: World, params: dict[str, Any]) -> Response:
    user_id = _int(params, "user_id")
    _known(world.friends, user_id, "friend")
    file, name = str(params.get("file") or ""), str(params.get("name") or "")
    if not file or not name:
        raise ParamError("parameters file and name are required")
    state = extras(world)
    with state.lock:
        file_id = f"/file-{next(state.ids)}"
        state.private_files.append(
            {"user_id": user_id, "file_id": file_id, "file_name": name, "file_size": _size(file)}
        )
        _bound(state.private_files)
    return world.ok(None if world.flavor == "go-cqhttp" else {"file_id": file_id})


def _list_files(world: World, params: dict[str, Any], folder_id: str) -> Response:
    group_id = _int(params, "group_id")
    state = extras(world)
    with state.lock:
        folders = state.folders_of(world, group_id)
        if folder_id != ROOT and folder_id not in folders:
            raise LookupError(f"folder {folder_id}")
        files = [dict(r) for f, r in state.files.get(group_id, {}).values() if f == folder_id]
        subfolders = [dict(f) for f in folders.values()] if folder_id == ROOT else []
    return world.ok({"files": files, "folders": subfolders})


def _by_folder(world: World, params: dict[str, Any]) -> Response:
    folder_id = params.get("folder_id") or params.get("folder")  # NapCat reads either
    if not folder_id:
        raise ParamError("parameter folder_id is missing")
    return _list_files(world, params, str(folder_id))


def _file(world: World, params: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    """(group_id, folder_id, record) of the file ``params`` name; hold the extras lock."""
    group_id = _int(params, "group_id")
    file_id = str(params.get("file_id") or "")
    folder_id, record = extras(world).files.get(group_id, {})[file_id]
    return group_id, folder_id, record


def _file_url(world: World, params: dict[str, Any]) -> Response:
    with extras(world).lock:
        group_id, _, record = _file(world, params)
    # RFC 2606: .invalid never resolves, so no test can fetch the real Internet by mistake.
    return world.ok({"url": f"https://fakeonebot.invalid/group/{group_id}{record['file_id']}"})


def _delete_file(world: World, params: dict[str, Any]) -> Response:
    state = extras(world)
    with state.lock:
        group_id, folder_id, record = _file(world, params)
        if record["uploader"] != world.self_id:
            _require_admin(world, group_id, "删除群文件失败,")
        del state.files[group_id][record["file_id"]]
        if folder_id != ROOT:
            state.folders[group_id][folder_id]["total_file_count"] -= 1
    return world.ok()


# -- essence, notices, reactions -------------------------------------------------------------


def _group_message(world: World, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    message_id = _int(params, "message_id")
    stored = _stored(world, message_id)
    if "group_id" not in stored:
        raise ParamError(f"message {message_id} is not a group message")
    return int(stored["group_id"]), stored


def _set_essence(world: World, params: dict[str, Any]) -> Response:
    group_id, stored = _group_message(world, params)
    _require_admin(world, group_id, "设置精华消息失败,")
    state, now = extras(world), int(time.time())
    sender = stored["sender"]
    with state.lock:
        entries = state.essence.setdefault(group_id, {})
        entries[stored["message_id"]] = {
            "sender_id": sender.get("user_id"), "sender_nick": sender.get("nickname", ""),
            "sender_time": stored["time"], "operator_id": world.self_id,
            "operator_nick": world.nickname, "operator_time": now,
            "message_id": stored["message_id"], "content": stored["message"],
        }  # fmt: skip
        _bound(entries)
    return world.ok()


def _delete_essence(world: World, params: dict[str, Any]) -> Response:
    group_id, stored = _group_message(world, params)
    _require_admin(world, group_id, "移出精华消息失败,")
    state = extras(world)
    with state.lock:
        del state.essence.get(group_id, {})[stored["message_id"]]
    return world.ok()


def _essence_list(world: World, params: dict[str, Any]) -> Response:
    group_id = _int(params, "group_id")
    _known(world.groups, group_id, "group")
    state = extras(world)
    with state.lock:
        return world.ok([dict(e) for e in state.essence.get(group_id, {}).values()])


def _send_notice(world: World, params: dict[str, Any]) -> Response:
    group_id = _int(params, "group_id")
    _known(world.groups, group_id, "group")
    _require_admin(world, group_id, "设置群公告失败,错误信息:")
    content = params.get("content")
    if not isinstance(content, str) or not content:
        raise ParamError("parameter content is missing")
    state = extras(world)
    image = params.get("image")
    with state.lock:
        notices = state.notices.setdefault(group_id, [])
        notices.append(
            {
                "notice_id": f"notice-{next(state.ids)}", "sender_id": world.self_id,
                "publish_time": int(time.time()),
                "message": {"text": content, "images": [{"id": str(image)}] if image else []},
            }
        )  # fmt: skip
        _bound(notices)
    return world.ok()


def _get_notices(world: World, params: dict[str, Any]) -> Response:
    group_id = _int(params, "group_id")
    _known(world.groups, group_id, "group")
    state = extras(world)
    with state.lock:
        return world.ok([dict(n) for n in state.notices.get(group_id, [])])


def _emoji_like(world: World, params: dict[str, Any]) -> Response:
    message_id = _int(params, "message_id")
    _stored(world, message_id)  # LookupError: no such message
    emoji_id = str(params.get("emoji_id") or "")
    if not emoji_id:
        raise ParamError("parameter emoji_id is missing")
    state = extras(world)
    with state.lock:
        emojis = state.reactions.setdefault(message_id, {})
        users = emojis.setdefault(emoji_id, set())
        if _bool(params, "set", True):
            users.add(world.self_id)
        else:
            users.discard(world.self_id)
        _bound(emojis)
        _bound(state.reactions)
    return world.ok()


# -- pokes, and the rest ---------------------------------------------------------------------


def _poke(world: World, params: dict[str, Any], in_group: bool) -> Response:
    """Poke a member or a friend; QQ tells the chat with ``notice.notify.poke``."""
    target = _int(params, "user_id")
    fields: dict[str, Any] = {"user_id": world.self_id, "target_id": target}
    if in_group:
        group_id = _int(params, "group_id")
        _known(_known(world.groups, group_id, "group")["members"], target, "member")
        fields = {"group_id": group_id, **fields}
    else:
        _known(world.friends, target, "friend")
    world.emit(world.notice("notify", sub_type="poke", **fields))
    return world.ok()


def _mark_read(world: World, params: dict[str, Any]) -> Response:
    stored = _stored(world, _int(params, "message_id"))
    chat = (
        f"group:{stored['group_id']}" if "group_id" in stored else f"private:{stored['target_id']}"
    )
    state = extras(world)
    with state.lock:
        state.read[chat] = max(state.read.get(chat, 0), stored["message_id"])
        _bound(state.read)
    return world.ok()


def _portrait(world: World, params: dict[str, Any]) -> Response:
    group_id = _int(params, "group_id")
    _known(world.groups, group_id, "group")
    _require_admin(world, group_id, "设置群头像失败,")
    state = extras(world)
    with state.lock:
        state.portraits[group_id] = str(params.get("file") or "")
    return world.ok()


def _delete_friend(world: World, params: dict[str, Any]) -> Response:
    user_id = _int(params, "user_id" if "user_id" in params else "id")  # go-cqhttp reads both
    _known(world.friends, user_id, "friend")
    world.remove_friend(user_id)
    return world.ok()


def _profile(world: World, params: dict[str, Any]) -> Response:
    fields = ("nickname", "personal_note", "company", "email", "college", "sex")
    state = extras(world)
    with state.lock:
        state.profile.update({k: params[k] for k in fields if k in params})
        if params.get("nickname"):
            world.nickname = str(params["nickname"])
    return world.ok()


def _online_clients(world: World, params: dict[str, Any]) -> Response:
    if world.flavor == "napcat":  # NapCatQQ go-cqhttp/GetOnlineClient.ts: `return []`
        return world.ok([])
    device = {"app_id": 537_000_000, "device_name": "FakeOneBot", "device_kind": "fake"}
    return world.ok({"clients": [device]})


def _ocr(world: World, params: dict[str, Any]) -> Response:
    if not params.get("image"):
        raise ParamError("parameter image is missing")
    line = {
        "text": "FakeOneBot", "confidence": 99,
        "coordinates": [
            {"x": 0, "y": 0}, {"x": 100, "y": 0}, {"x": 100, "y": 20}, {"x": 0, "y": 20},
        ],
    }  # fmt: skip
    if world.flavor == "napcat":  # NapCatQQ extends/OCRImage.ts answers the lines themselves
        return world.ok([line])
    return world.ok({"texts": [line], "language": "zh"})


def _system_msg(world: World, params: dict[str, Any]) -> Response:
    return world.ok({"invited_requests": [], "join_requests": []})


EXTENDED: dict[str, Callable[[World, dict[str, Any]], Response]] = {
    "send_group_forward_msg": lambda w, p: _send_forward(w, p, "group"),
    "send_private_forward_msg": lambda w, p: _send_forward(w, p, "private"),
    "get_group_msg_history": lambda w, p: _history(w, p, in_group=True),
    "get_friend_msg_history": lambda w, p: _history(w, p, in_group=False),
    "upload_group_file": _upload_group_file,
    "upload_private_file": _upload_private_file,
    "get_group_root_files": lambda w, p: _list_files(w, p, ROOT),
    "get_group_files_by_folder": _by_folder,
    "get_group_file_url": _file_url,
    "delete_group_file": _delete_file,
    "set_essence_msg": _set_essence,
    "delete_essence_msg": _delete_essence,
    "get_essence_msg_list": _essence_list,
    "_send_group_notice": _send_notice,
    "_get_group_notice": _get_notices,
    "set_msg_emoji_like": _emoji_like,
    "group_poke": lambda w, p: _poke(w, p, in_group=True),
    "friend_poke": lambda w, p: _poke(w, p, in_group=False),
    "mark_msg_as_read": _mark_read,
    "set_group_portrait": _portrait,
    "get_group_system_msg": _system_msg,
    "delete_friend": _delete_friend,
    "set_qq_profile": _profile,
    "get_online_clients": _online_clients,
    "ocr_image": _ocr,
    ".ocr_image": _ocr,
}

ACTIONS.update(EXTENDED)
# What go-cqhttp and NapCat lack, as api.EXTENDED_SUPPORT records it: go-cqhttp
# the four NT-era actions, NapCat none. The spec flavour answers them all.
LACKING.update(
    {
        flavor: frozenset(a for a, who in EXTENDED_SUPPORT.items() if flavor not in who)
        for flavor in ("go-cqhttp", "napcat")
    }
)
