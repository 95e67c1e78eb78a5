"""The console of ``python -m onebot_ref.testing``: lines in, events out, the bot's words as chat.

One line, one thing the QQ side does (see :data:`HELP`)::

    hello                       a message in the current chat
    /private 20001 /ping        a private message (the chat is now private 20001)
    /group 30001:20002 hi       a group message from 20002 (the chat is now group 30001)
    /request friend 20009 hi    a friend request, with a flag the world will accept
    {"post_type": "notice", ...}   any event, as JSON
    /wait-sent 1                wait until the bot has sent one message in all

What the bot does comes back as lines: ``<<`` a message it sent (by an action
or a quick operation), rendered as a chat shows it (``@小明``, ``[图片]``);
``..`` another action it called that changes something; ``--`` an event the
world sent on its own (a notice after an action). Typed events are echoed
with ``>>`` when the input is not a terminal (a script, a pipe), so that the
output reads as a transcript.

The console runs on the caller's thread (Ctrl+C reaches it there); a watcher
thread prints what the bot sends.
"""

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import ConfigError, DecodeError
from ..message import normalize

if TYPE_CHECKING:
    from ._fake import FakeOneBot

__all__ = ["HELP", "Console", "render"]

WAIT = 10.0  # seconds a /wait-* command waits by default

HELP = """\
命令 / commands:
  TEXT                        当前会话里的消息 / a message in the current chat
  /private USER TEXT          USER 的私聊消息 / a private message from USER
  /group GROUP[:USER] TEXT    群消息 / a group message (default USER: a member, not the bot)
  //TEXT                      以 / 开头的消息 / a message that starts with "/"
  /poke [USER]                戳一戳机器人 / USER pokes the bot (in the current group)
  /join GROUP USER            入群 / USER joins GROUP (notice group_increase)
  /leave GROUP USER           退群 / USER leaves GROUP (notice group_decrease)
  /request friend USER [TEXT]       加好友请求 / a friend request
  /request group GROUP USER [TEXT]  加群请求 / USER asks to join GROUP
  /request invite GROUP USER        邀请机器人入群 / USER invites the bot into GROUP
  /event JSON, or {...}       任意事件 / any event (time, self_id filled in)
  /world                      好友和群 / friends and groups
  /wait-bot [SECONDS]         等机器人连上 / wait until a bot is there to hear events
  /wait-sent N [SECONDS]      等机器人共发出 N 条 / wait until the bot has sent N messages in all
  /wait-call ACTION [N] [SECONDS]   等 ACTION 被调用并处理完 N 次 / ... called and run N times
  /sleep SECONDS              暂停 / pause
  /help  /quit
  # ...                       注释 / a comment (in a script)"""

# How a segment looks in a chat window (QQ's own labels).
LABELS = {
    "image": "图片", "record": "语音", "video": "视频", "rps": "猜拳", "dice": "骰子",
    "shake": "窗口抖动", "poke": "戳一戳", "share": "分享", "contact": "名片",
    "location": "位置", "music": "音乐", "forward": "合并转发", "node": "转发",
    "xml": "卡片", "json": "卡片", "file": "文件", "mface": "表情",
}  # fmt: skip
ACTIONS_SHOWN_AS_CHAT = (
    "send_msg",
    "send_private_msg",
    "send_group_msg",
    ".handle_quick_operation",
)


def render(message: Any, names: Callable[[str], str] | None = None) -> str:
    """``message`` (CQ string or segments) as a chat shows it: text, ``@name``, ``[图片]``.

    ``names`` turns a QQ number (as a string) into a display name for ``@``.
    """
    try:
        segments = normalize(message)
    except DecodeError:
        return str(message)
    parts: list[str] = []
    for seg in segments:
        kind = str(seg.get("type", "?"))
        data = seg.get("data") or {}
        if kind == "text":
            parts.append(str(data.get("text", "")))
        elif kind == "at":
            qq = str(data.get("qq", ""))
            parts.append("@全体成员" if qq == "all" else f"@{names(qq) if names else qq}")
        elif kind == "face":
            parts.append(f"[表情{data.get('id', '')}]")
        elif kind == "reply":
            parts.append(f"[回复 #{data.get('id', '')}]")
        else:
            detail = data.get("file") or data.get("title") or data.get("id") or data.get("url")
            label = LABELS.get(kind, kind)
            parts.append(f"[{label} {detail}]" if detail else f"[{label}]")
    return "".join(parts)


def _number(word: str, what: str) -> int:
    if not word.isdigit() or int(word) == 0:
        raise ConfigError(f"{what} must be a QQ number, not {word!r}")
    return int(word)


def _seconds(word: str) -> float:
    try:
        seconds = float(word)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise ConfigError(f"seconds must be a number from 0 to 3600, not {word!r}")
    return seconds


class Console:
    """Turns console lines into events for ``fake`` and prints what the bot does.

    Args:
        fake: the running FakeOneBot.
        out: where to print (stdout).
        echo: print each event typed (``>>``); off on a terminal, which shows the line.
    """

    def __init__(self, fake: "FakeOneBot", out: TextIO, *, echo: bool) -> None:
        self.fake = fake
        self.world = fake.world
        self.out = out
        self.echo = echo
        first_friend = next(iter(self.world.friends), 20001)
        self.chat: tuple[str, int, int] = ("private", first_friend, first_friend)
        self._print_lock = threading.Lock()
        self._connections = 0  # WebSocket connections carrying events, as last said
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="fake-console", daemon=True)
        self._world_events = self.world.on_event
        self.world.on_event = self._world_event
        self.world.on_sent = self._show_sent
        fake.on_wire = self._wire

    # -- output -------------------------------------------------------------------------

    def say(self, text: str) -> None:
        """One line to the stream the console was given (the CLI gives it stdout)."""
        with self._print_lock:
            self.out.write(text + "\n")
            self.out.flush()

    def name(self, user_id: int | str, group_id: int | None = None) -> str:
        """A user's display name: the group card, else the nickname, else the number."""
        uid = int(user_id) if str(user_id).isdigit() else 0
        if uid == self.world.self_id:
            return self.world.nickname
        member = self.world.groups.get(group_id or 0, {}).get("members", {}).get(uid)
        if member:
            return str(member.get("card") or member.get("nickname") or uid)
        return str(self.world.friends.get(uid, {}).get("nickname", user_id))

    def where(self, message_type: str, group_id: Any, user_id: Any) -> str:
        return f"[group {group_id}]" if message_type == "group" else f"[private {user_id}]"

    def start(self) -> None:
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        if self._watcher.is_alive():
            self._watcher.join(2)
        self.world.on_event = self._world_events
        self.world.on_sent = None
        self.fake.on_wire = None

    def _watch(self) -> None:
        """Say when the number of WebSocket connections that carry events changes.

        The messages the bot sends are printed by :meth:`_show_sent`, on the
        thread that sent them and before the action answers, so that a name in
        them is the one the chat had then and the order is the bot's (printed
        from here they raced the bot's next action: a card changed right after
        a send showed up in the send).
        """
        while not self._stop.wait(0.2):
            self.note_connections()

    def note_connections(self) -> None:
        """Say so when the number of WebSocket connections that carry events changed."""
        now = len(self.fake.event_connections())
        with self._print_lock:
            if now == self._connections:
                return
            self._connections = now
            self.out.write(f"-- WebSocket connections carrying events: {now}\n")
            self.out.flush()

    def _show_sent(self, record: dict[str, Any]) -> None:
        group_id = record.get("group_id")
        text = render(record["message"], lambda qq: self.name(qq, group_id))
        where = self.where(record["message_type"], group_id, record.get("user_id"))
        self.say(f"<< {where} {self.world.nickname}: {text}")

    def _wire(self, direction: str, mode: str, frame: Any) -> None:
        """Show the actions the bot calls that change something (not the getters)."""
        if direction != "bot → onebot" or not isinstance(frame, dict):
            return
        action = frame.get("action")
        if not isinstance(action, str) or action in ACTIONS_SHOWN_AS_CHAT:
            return
        if action.startswith(("get_", "can_", "_get_")):
            return
        params = frame.get("params")
        if not isinstance(params, dict):
            params = {}
        shown = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in params.items())
        self.say(f".. bot: {action} {shown}".rstrip())

    def _world_event(self, event: dict[str, Any]) -> None:
        self.say(f"-- {self.describe(event)}")
        if self._world_events is not None:
            self._world_events(event)

    def describe(self, event: dict[str, Any]) -> str:
        """One line for a non-message event."""
        kind = event.get("notice_type") or event.get("request_type") or event.get("post_type")
        sub = f"/{event['sub_type']}" if event.get("sub_type") else ""
        fields = " ".join(
            f"{k}={event[k]}"
            for k in ("group_id", "user_id", "operator_id", "target_id", "comment", "flag")
            if k in event
        )
        return f"{event.get('post_type')} {kind}{sub} {fields}".rstrip()

    # -- input ------------------------------------------------------------------------

    def prompt(self) -> str:
        kind, chat_id, user = self.chat
        return f"[{kind} {chat_id}{f' as {user}' if kind == 'group' else ''}] > "

    def run(self, line: str) -> bool:
        """Do what one line says; False once it says /quit.

        Raises:
            ConfigError: the line is not a command the console knows, or is
                missing an argument.
            TimeoutError: a /wait-* deadline passed.
        """
        line = line.rstrip("\r\n")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            return True
        if stripped.startswith("{"):
            self.raw_event(stripped)
        elif stripped.startswith("//"):
            self.message(self.chat, stripped[1:])
        elif stripped.startswith("/"):
            word, _, rest = stripped.partition(" ")
            command = COMMANDS.get(word)
            if command is None:
                raise ConfigError(
                    f"unknown command {word}; /help lists them, //{word[1:]} sends it as text"
                )
            return command(self, rest.strip())
        else:
            self.message(self.chat, line)
        return True

    def message(self, chat: tuple[str, int, int], text: str) -> None:
        kind, chat_id, user = chat
        self.chat = chat
        group_id = chat_id if kind == "group" else None
        event = self.world.message_event(user, text, group_id)
        if self.echo:
            where = self.where(kind, chat_id, user)
            text = render(event["message"], lambda qq: self.name(qq, group_id))
            self.say(f">> {where} {self.name(user, group_id)}({user}): {text}")
        self.fake.push(event)

    def push(self, event: dict[str, Any]) -> None:
        if self.echo:
            self.say(f">> {self.describe(event)}")
        self.fake.push(event)

    def raw_event(self, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"the event is not valid JSON: {exc}") from None
        if not isinstance(event, dict) or "post_type" not in event:
            raise ConfigError('an event is a JSON object with a "post_type"')
        event.setdefault("time", int(time.time()))
        event.setdefault("self_id", self.world.self_id)
        self.push(event)

    def speaker(self, group_id: int) -> int:
        """Who speaks in ``group_id`` by default: the current speaker there, else its
        first member that is not the bot, else the first friend."""
        kind, chat_id, user = self.chat
        if kind == "group" and chat_id == group_id:
            return user
        members = self.world.groups.get(group_id, {}).get("members", {})
        others = [uid for uid in members if uid != self.world.self_id]
        return others[0] if others else next(iter(self.world.friends), 20001)

    def wait_sent(self, n: int, seconds: float) -> None:
        try:
            self.fake.wait_for_sent(n, timeout=seconds)
        except TimeoutError:
            raise TimeoutError(
                f"/wait-sent {n}: the bot sent {self.world.sent_total} messages in all, "
                f"{n} expected within {seconds:g} s"
            ) from None

    def wait_bot(self, seconds: float) -> None:
        """Until a bot is there to hear events: a WebSocket connection that carries them,
        an HTTP POST target (always there), or, with the HTTP API alone, a first call."""
        fake = self.fake
        deadline = time.monotonic() + seconds
        while not (fake.event_connections() or fake.post_targets or list(fake.calls)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"/wait-bot: no bot connected within {seconds:g} s")
            time.sleep(0.02)
        self.note_connections()

    def wait_call(self, action: str, n: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds

        def count() -> int:  # answered: what the action causes (a notice) is on its way
            return self.world.handled.get(action, 0)

        while count() < n:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"/wait-call {action}: called {count()} times, {n} expected "
                    f"within {seconds:g} s"
                )
            time.sleep(0.02)

    def show_world(self) -> None:
        world = self.world
        self.say(f"QQ {world.self_id} ({world.nickname}), flavor {world.flavor}")
        for friend in world.friends.values():
            self.say(f"  friend {friend['user_id']} {friend['nickname']}")
        for group_id, group in world.groups.items():
            self.say(f"  group {group_id} {group['group_name']}")
            for member in group["members"].values():
                card = f" ({member['card']})" if member["card"] else ""
                self.say(f"    {member['role']:<6} {member['user_id']} {member['nickname']}{card}")


# -- the commands: (console, the rest of the line) -> go on? ------------------------------


def _private(console: Console, rest: str) -> bool:
    who, _, text = rest.partition(" ")
    user = _number(who, "/private USER")
    console.message(("private", user, user), text)
    return True


def _group(console: Console, rest: str) -> bool:
    target, _, text = rest.partition(" ")
    group_word, _, user_word = target.partition(":")
    group_id = _number(group_word, "/group GROUP")
    user = _number(user_word, "/group GROUP:USER") if user_word else console.speaker(group_id)
    console.message(("group", group_id, user), text)
    return True


def _poke(console: Console, rest: str) -> bool:
    kind, chat_id, user = console.chat
    user = _number(rest, "/poke USER") if rest else user
    fields: dict[str, Any] = {"sub_type": "poke", "user_id": user}
    if kind == "group":
        fields["group_id"] = chat_id
    fields["target_id"] = console.world.self_id
    console.push(console.world.notice("notify", **fields))
    return True


def _join(console: Console, rest: str) -> bool:
    words = rest.split()
    if len(words) != 2:
        raise ConfigError("/join GROUP USER: give a group and a user")
    console.world.join(_number(words[0], "GROUP"), _number(words[1], "USER"))
    return True


def _leave(console: Console, rest: str) -> bool:
    words = rest.split()
    if len(words) != 2:
        raise ConfigError("/leave GROUP USER: give a group and a user")
    console.world.leave(_number(words[0], "GROUP"), _number(words[1], "USER"))
    return True


def _request(console: Console, rest: str) -> bool:
    kind, _, rest = rest.partition(" ")
    if kind == "friend":
        who, _, comment = rest.partition(" ")
        console.push(console.world.request_friend(_number(who, "USER"), comment))
        return True
    if kind in ("group", "invite"):
        words = rest.split(" ", 2)
        if len(words) < 2:
            raise ConfigError(f"/request {kind} GROUP USER: give a group and a user")
        comment = words[2] if len(words) > 2 else ""
        sub_type = "add" if kind == "group" else "invite"
        event = console.world.request_join(
            _number(words[0], "GROUP"), _number(words[1], "USER"), comment, sub_type=sub_type
        )
        console.push(event)
        return True
    raise ConfigError(f"/request friend|group|invite ..., not /request {kind}")


def _event(console: Console, rest: str) -> bool:
    console.raw_event(rest)
    return True


def _world(console: Console, rest: str) -> bool:
    console.show_world()
    return True


def _wait_sent(console: Console, rest: str) -> bool:
    words = rest.split()
    if not 1 <= len(words) <= 2:
        raise ConfigError("/wait-sent N [SECONDS]: give how many messages")
    n = _number(words[0], "/wait-sent N")
    console.wait_sent(n, _seconds(words[1]) if len(words) > 1 else WAIT)
    return True


def _wait_call(console: Console, rest: str) -> bool:
    words = rest.split()
    if not 1 <= len(words) <= 3:
        raise ConfigError("/wait-call ACTION [N] [SECONDS]: give an action name")
    n = _number(words[1], "/wait-call ACTION N") if len(words) > 1 else 1
    console.wait_call(words[0], n, _seconds(words[2]) if len(words) > 2 else WAIT)
    return True


def _wait_bot(console: Console, rest: str) -> bool:
    console.wait_bot(_seconds(rest) if rest else WAIT)
    return True


def _sleep(console: Console, rest: str) -> bool:
    time.sleep(_seconds(rest))
    return True


def _help(console: Console, rest: str) -> bool:
    console.say(HELP)
    return True


def _quit(console: Console, rest: str) -> bool:
    return False


COMMANDS: dict[str, Callable[[Console, str], bool]] = {
    "/private": _private,
    "/group": _group,
    "/poke": _poke,
    "/join": _join,
    "/leave": _leave,
    "/request": _request,
    "/event": _event,
    "/world": _world,
    "/wait-sent": _wait_sent,
    "/wait-call": _wait_call,
    "/wait-bot": _wait_bot,
    "/sleep": _sleep,
    "/help": _help,
    "/quit": _quit,
}
