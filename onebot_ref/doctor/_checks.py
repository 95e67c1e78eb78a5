"""The doctor's checks on a live OneBot session: actions, echo, lifecycle, heartbeat, format.

Whichever side dialled, a WebSocket session looks the same once it is open
(spec ``communication/ws.md``): we send ``{"action", "params", "echo"}`` and
expect a response carrying the same ``echo``, "原样返回" (returned as it
was); events arrive in between. HTTP POST delivers the same events one request
at a time. So the client and listener probes feed whatever arrives into an
:class:`Inbox`, and the functions here turn it into :class:`Check` records.

One call is in flight at a time, so a response is matched to its call by
order, not by echo: that is how we can tell that an echo came back changed.
"""

import itertools
import queue
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from ..codec import (
    NOT_FOUND_RETCODES,
    action_request,
    heartbeat_interval,
    inband_refusal,
    is_event,
    loads,
)
from ..errors import DecodeError

__all__ = [
    "Check",
    "Inbox",
    "check_events",
    "fail",
    "no_token_fail",
    "ok",
    "probe_session",
    "summarize",
    "warn",
]

# The calls a session makes, each with an echo of a different JSON type. A
# numeric string is the classic victim: some implementations hand it back as
# a number, and a framework matching echoes by type then never sees the answer.
CALLS: list[tuple[str, dict[str, Any], Any]] = [
    ("get_login_info", {}, "doctor-1"),
    ("get_version_info", {}, "20240607"),
    ("get_status", {}, {"doctor": 3}),
    (".handle_quick_operation", {"context": {}, "operation": {}}, "doctor-4"),
]


class Check(NamedTuple):
    """One line of the checklist; ``status`` is ``ok``, ``warn`` or ``fail``."""

    name: str
    status: str
    detail: str
    fix_zh: str = ""
    fix_en: str = ""


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def warn(name: str, detail: str, fix_zh: str = "", fix_en: str = "") -> Check:
    return Check(name, "warn", detail, fix_zh, fix_en)


def fail(name: str, detail: str, fix_zh: str, fix_en: str) -> Check:
    return Check(name, "fail", detail, fix_zh, fix_en)


class Inbox:
    """Everything the implementation sent, in order, with arrival times; fed by any thread."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, Any]] = []
        self.stop = threading.Event()  # tells the feeding thread to finish
        self.closed: str | None = None  # why the connection ended, once it has
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()

    def put_raw(self, data: str | bytes) -> None:
        try:
            self.put(loads(data))
        except DecodeError:
            self.put(data if isinstance(data, str) else data.decode("utf-8", "replace"))

    def put(self, obj: Any) -> None:
        with self._lock:
            self.frames.append((time.monotonic(), obj))
        self._queue.put(obj)

    def close(self, reason: str) -> None:
        self.closed = reason
        self._queue.put(self)  # wakes a waiting next_response()

    def events(self) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return [(t, obj) for t, obj in self.frames if is_event(obj)]

    def next_response(self, timeout: float) -> Any:
        """The next frame that is not an event, or None on timeout or close.

        Frames that arrived before the close are still returned: an in-band
        refusal is usually the last thing a peer says before it hangs up.
        """
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                obj = self._queue.get(timeout=left)
            except queue.Empty:
                return None
            if obj is self:  # the close marker: put it back for the next caller
                self._queue.put(self)
                return None
            if not is_event(obj):
                return obj
        return None

    def wait(self, until: float, done: Callable[[], bool]) -> None:
        """Let frames arrive until the monotonic time ``until``, ``done()`` or close."""
        while self.closed is None and not done() and time.monotonic() < until:
            time.sleep(0.05)


TOKEN_FIX_ZH = (
    "两边的 token 不一致：把 --token 改成实现里这个 WebSocket 服务器的 token（access_token）。"
)
TOKEN_FIX_EN = (
    "the tokens differ: set --token to the token (access_token) of this WebSocket server "
    "in the implementation's config."
)
# A refusal when we sent no token at all: the fix is to add one, not to compare two.
NO_TOKEN = "the implementation requires an access token and you gave no --token"
NO_TOKEN_FIX_ZH = (
    "加上 --token，填实现配置里的 access_token（NapCat：网络配置里该服务器的 token）。"
)
NO_TOKEN_FIX_EN = (
    "add --token with the implementation's access_token (NapCat: the token of this server "
    "in its network config)."
)


def no_token_fail(refusal: str) -> Check:
    """The implementation refused (``refusal`` says how) and no ``--token`` was given."""
    return fail("token", f"{refusal}: {NO_TOKEN}", NO_TOKEN_FIX_ZH, NO_TOKEN_FIX_EN)


def probe_session(
    send: Callable[[Any], None],
    inbox: Inbox,
    wait: float,
    *,
    token: str | None,
    api: bool = True,
    timeout: float = 3.0,
) -> list[Check]:
    """Call the probe actions over an open session, then watch its events until ``wait`` ends.

    ``token`` is the ``--token`` given (None: none), for naming an in-band refusal.
    """
    started = time.monotonic()
    checks: list[Check] = []
    # 1) A moment for the greeting: a lifecycle event, or an in-band refusal.
    greeting = inbox.next_response(min(0.3, wait))
    refused = inband_refusal(greeting)
    # 2) The calls, one at a time.
    results: dict[str, Any] = {}
    pairs: list[tuple[Any, Any]] = []
    for action, params, echo in CALLS if api and not refused else []:
        try:
            send(action_request(action, params, echo))
        except OSError as exc:
            inbox.close(f"send failed: {exc}")
        response = inbox.next_response(timeout)
        if response is None:
            why = f"closed ({inbox.closed})" if inbox.closed else f"no answer in {timeout:g} s"
            results[action] = why
            if inbox.closed:
                break
            continue
        if refused := inband_refusal(response):
            break
        results[action] = response
        pairs.append((echo, response))
    if refused and not token:
        return [no_token_fail(f"upgraded, then refused in-band ({refused})")]
    if refused:
        return [
            fail(
                "token",
                f"the implementation upgraded, then refused our token in-band: {refused}",
                TOKEN_FIX_ZH,
                TOKEN_FIX_EN,
            )
        ]
    if api:
        checks += summarize(results)
        checks.append(check_echo(pairs))
    # 3) Watch the events for the rest of the wait. The window reported is
    # --wait (or less, when enough came early), or the time the API checks took
    # when they ran past it; a late wake-up of this thread is not more watching.
    checked = time.monotonic() - started
    inbox.wait(started + wait, lambda: _seen_enough(inbox.events()))
    watched = max(checked, min(time.monotonic() - started, wait))
    checks += check_events(inbox.events(), watched)
    if inbox.closed and not any(c.status == "fail" for c in checks):
        checks.append(
            warn(
                "session",
                f"the implementation closed the connection: {inbox.closed}",
                "查看实现的日志，找出它断开连接的原因。",
                "read the implementation's log for why it hung up.",
            )
        )
    return checks


def _seen_enough(events: list[tuple[float, dict[str, Any]]]) -> bool:
    kinds = [e.get("meta_event_type") or e.get("post_type") for _, e in events]
    return "message" in kinds and kinds.count("heartbeat") >= 3


def _text(resp: Any) -> str:
    if not isinstance(resp, dict):
        return str(resp)
    words = resp.get("wording") or resp.get("message") or resp.get("msg") or ""
    return f"status {resp.get('status')!r}, retcode {resp.get('retcode')} {words}".strip()


def summarize(results: dict[str, Any]) -> list[Check]:
    """Checks for the probe calls: who is logged in, which implementation, quick operations."""
    checks = []
    login = results.get("get_login_info")
    if (
        isinstance(login, dict)
        and login.get("status") == "ok"
        and isinstance(login.get("data"), dict)
    ):
        data = login["data"]
        checks.append(ok("account", f"{data.get('user_id')} ({data.get('nickname')})"))
    else:
        checks.append(
            fail(
                "account",
                f"get_login_info did not succeed: {_text(login)}",
                "实现没有正常回答：确认 QQ 已登录；若一直无应答，这可能是仅推事件的连接，"
                "或者填成了机器人自己的服务器（角色反了）。",
                "the implementation did not answer properly: make sure QQ is logged in; "
                "no answer at all means an event-only connection, or a bot's own "
                "server instead of the implementation (roles reversed).",
            )
        )
        return checks
    version, status = results.get("get_version_info"), results.get("get_status")
    info = version.get("data") if isinstance(version, dict) else None
    state = status.get("data") if isinstance(status, dict) else None
    parts = []
    if isinstance(info, dict):
        parts.append(
            f"{info.get('app_name')} {info.get('app_version')}, "
            f"protocol {info.get('protocol_version')}"
        )
    if isinstance(state, dict):
        parts.append(f"online={state.get('online')} good={state.get('good')}")
    if isinstance(state, dict) and state.get("online") is False:
        checks.append(
            fail(
                "implementation",
                "; ".join(parts) + ": the QQ account is offline",
                "QQ 账号掉线了：在实现里重新登录。",
                "the QQ account is offline: log in again in the implementation.",
            )
        )
    else:
        checks.append(ok("implementation", "; ".join(parts) or "version and status not given"))
    quick = results.get(".handle_quick_operation")
    unsupported = not isinstance(quick, dict) or quick.get("retcode") in NOT_FOUND_RETCODES
    if unsupported:
        checks.append(
            warn(
                "quick-op",
                f".handle_quick_operation unsupported: {_text(quick)}",
                "这个实现不支持快速操作：用 send_msg / delete_msg 等普通 API 代替。",
                "this implementation lacks quick operations: use send_msg, delete_msg… instead.",
            )
        )
    else:
        checks.append(ok("quick-op", ".handle_quick_operation is supported"))
    return checks


def check_echo(pairs: list[tuple[Any, Any]]) -> Check:
    """Did every response carry our ``echo`` back unchanged, type included?"""
    changed = []
    for sent, resp in pairs:
        got = resp.get("echo", "<missing>") if isinstance(resp, dict) else "<not an object>"
        if got != sent or type(got) is not type(sent):
            changed.append(f"{sent!r} ({type(sent).__name__}) came back as {got!r}")
    if not pairs:
        return warn("echo", "no response to check the echo with")
    if changed:
        return fail(
            "echo",
            "echo changed: " + "; ".join(changed),
            "实现没有原样返回 echo，多数框架因此永远等不到响应（调用超时）："
            "升级实现或向它报告这个问题。",
            "the implementation does not return echo unchanged, so most frameworks never "
            "match the response and every call times out: upgrade it or report the bug.",
        )
    kinds = ", ".join(type(sent).__name__ for sent, _ in pairs)
    return ok("echo", f"returned unchanged ({kinds})")


def check_events(events: list[tuple[float, dict[str, Any]]], waited: float) -> list[Check]:
    """Lifecycle, heartbeat and message format, from the events seen in ``waited`` seconds."""
    metas = [e.get("meta_event_type") for _, e in events if e.get("post_type") == "meta_event"]
    checks = []
    if "lifecycle" in metas:
        checks.append(ok("lifecycle", "lifecycle event received"))
    else:
        checks.append(
            warn(
                "lifecycle",
                f"no lifecycle event in {waited:.1f} s",
                "规范允许不发，但 NoneBot 的正向 WebSocket 会一直等它：如能开启请开启。",
                "allowed by the spec, but NoneBot's forward WebSocket waits for it: "
                "enable it if the implementation can.",
            )
        )
    checks.append(_check_heartbeat(events, waited))
    checks.append(_check_format([e for _, e in events if e.get("post_type") == "message"], waited))
    return checks


def _check_heartbeat(events: list[tuple[float, dict[str, Any]]], waited: float) -> Check:
    beats = [(t, e) for t, e in events if e.get("meta_event_type") == "heartbeat"]
    if not beats:
        return warn(
            "heartbeat",
            f"no heartbeat in {waited:.1f} s",
            "在实现里开启心跳（go-cqhttp: heartbeat.interval；NapCat: 心跳间隔），断线才能被发现；"
            "已开启但间隔更长时加大 --wait。",
            "enable heartbeats in the implementation (go-cqhttp: heartbeat.interval; "
            "NapCat: heart interval) so a dead link is noticed; if they are on with a "
            "longer interval, raise --wait.",
        )
    interval = beats[-1][1].get("interval")
    every = heartbeat_interval(beats[-1][1])  # the bots' own rule: a real number, clamped
    if every is None:
        return warn(
            "heartbeat",
            f"heartbeat has no usable interval field: {interval!r:.40}",
            "心跳里应带 interval（毫秒）；升级实现。",
            "a heartbeat should carry interval (milliseconds); upgrade the implementation.",
        )
    silent = time.monotonic() - beats[-1][0]
    if silent > 3 * every + 0.5:
        return fail(
            "heartbeat",
            f"heartbeats stopped: none for {silent:.1f} s, interval {every:g} s",
            "心跳停了，连接可能已经半开（看似在线却收不到消息）：重启实现或检查网络；"
            "机器人应在 3 个间隔没有心跳后重连。",
            "heartbeats stopped, so the link may be half-open (looks up, delivers "
            "nothing): restart the implementation or check the network; a bot should "
            "reconnect after 3 silent intervals.",
        )
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(beats)]
    seen = f", observed every {statistics.median(gaps):.2f} s" if gaps else ""
    return ok("heartbeat", f"interval {round(every * 1000)} ms{seen}")


def _check_format(messages: list[dict[str, Any]], waited: float) -> Check:
    if not messages:
        return warn(
            "format",
            f"no message event in {waited:.1f} s: message format unknown",
            "等待期间给机器人发一条消息（私聊，或在群里 @ 它）即可看到消息格式。",
            "send the bot a message (private, or @ it in a group) while the doctor waits "
            "to see the message format.",
        )
    kinds = sorted({"array" if isinstance(e.get("message"), list) else "string" for e in messages})
    declared = {e["message_format"] for e in messages if "message_format" in e}
    if len(kinds) > 1 or (declared and declared != set(kinds)):
        return warn(
            "format",
            f"mixed message formats {kinds} (declared {sorted(declared)})",
            "在实现里固定一种消息格式（推荐 array）。",
            "set one message format in the implementation (array is recommended).",
        )
    return ok("format", f"{kinds[0]} (from {len(messages)} message events)")
