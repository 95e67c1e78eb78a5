"""api: the method table against the spec's action list, and what each method sends."""

import inspect
from collections.abc import Mapping
from typing import Any

import pytest

from onebot_ref.api import STANDARD_ACTIONS, OneBotApi, merge_params
from onebot_ref.errors import ApiNotAvailable, ConfigError, EncodeError


class Recorder(OneBotApi):
    """A transport that records calls instead of sending them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def call(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        self.calls.append((action, {**(params or {}), **kwargs}))
        return {"action": action}


def test_spec_lists_38_actions() -> None:
    assert len(STANDARD_ACTIONS) == 38
    assert len(set(STANDARD_ACTIONS)) == 38


def test_a_method_for_every_standard_action_and_nothing_else_public() -> None:
    public = {
        name
        for name, _ in inspect.getmembers(OneBotApi, inspect.isfunction)
        if not name.startswith("_")
    }
    helpers = {"call", "call_for", "call_async", "reply", "handle_quick_operation"}
    assert public - helpers == set(STANDARD_ACTIONS)


def _dummy(param: inspect.Parameter) -> object:
    if param.name in ("message",):
        return "hi"
    if param.annotation in (bool, "bool"):
        return True
    return 7


@pytest.mark.parametrize("action", STANDARD_ACTIONS)
def test_each_method_calls_its_own_action_with_every_parameter(action: str) -> None:
    bot = Recorder()
    method = getattr(bot, action)
    sig = inspect.signature(method)
    args = {
        name: _dummy(p)
        for name, p in sig.parameters.items()
        if p.default is inspect.Parameter.empty
    }
    assert method(**args) == {"action": action}
    ((called, params),) = bot.calls
    assert called == action
    # Every parameter the method declares (defaults included) is sent explicitly,
    # except the optional ids of send_msg / set_group_anonymous_ban.
    optional_none = {n for n, p in sig.parameters.items() if p.default is None}
    inferred = {"message_type"} if action == "send_msg" else set()
    assert set(params) == (set(sig.parameters) - optional_none) | inferred


def test_spec_defaults_are_sent() -> None:
    bot = Recorder()
    bot.set_group_ban(1, 2)
    bot.set_group_anonymous_ban(1, flag="f")
    bot.send_like(3)
    bot.set_group_special_title(1, 2)
    bot.get_group_honor_info(1)
    assert bot.calls == [
        ("set_group_ban", {"group_id": 1, "user_id": 2, "duration": 1800}),
        ("set_group_anonymous_ban", {"group_id": 1, "duration": 1800, "flag": "f"}),
        ("send_like", {"user_id": 3, "times": 1}),
        (
            "set_group_special_title",
            {"group_id": 1, "user_id": 2, "special_title": "", "duration": -1},
        ),
        ("get_group_honor_info", {"group_id": 1, "type": "all"}),
    ]


def test_send_msg_infers_message_type() -> None:
    bot = Recorder()
    bot.send_msg("a", group_id=5)
    bot.send_msg("b", user_id=6)
    assert bot.calls[0] == (
        "send_msg",
        {"message": "a", "auto_escape": False, "message_type": "group", "group_id": 5},
    )
    assert bot.calls[1][1]["message_type"] == "private"


def test_ids_pass_through_untouched() -> None:
    bot = Recorder()
    bot.send_private_msg(144115218731218202, "x")
    bot.delete_msg(-2147483648)
    bot.get_msg("AbC==")
    assert bot.calls[0][1]["user_id"] == 144115218731218202
    assert bot.calls[1][1]["message_id"] == -2147483648
    assert bot.calls[2][1]["message_id"] == "AbC=="


def test_reply_picks_the_chat_and_routes_through_call_for() -> None:
    routed: list[object] = []

    class Routed(Recorder):
        def call_for(
            self,
            event: Mapping[str, Any],
            action: str,
            params: Mapping[str, Any] | None = None,
            /,
            *,
            timeout: float | None = None,
            **kwargs: Any,
        ) -> Any:
            routed.append(event["self_id"])
            return super().call_for(event, action, params, timeout=timeout, **kwargs)

    bot = Routed()
    group = {
        "post_type": "message",
        "message_type": "group",
        "group_id": 9,
        "user_id": 2,
        "self_id": 100,
    }
    private = {"post_type": "message", "message_type": "private", "user_id": 2, "self_id": 200}
    bot.reply(group, "hi")
    bot.reply(private, [{"type": "text", "data": {"text": "yo"}}], auto_escape=True)
    assert bot.calls == [
        ("send_group_msg", {"group_id": 9, "message": "hi", "auto_escape": False}),
        (
            "send_private_msg",
            {
                "user_id": 2,
                "message": [{"type": "text", "data": {"text": "yo"}}],
                "auto_escape": True,
            },
        ),
    ]
    assert routed == [100, 200]


def test_reply_at_sender_prefixes_an_at_and_keeps_cq_or_literal_text() -> None:
    bot = Recorder()
    group = {"post_type": "message", "message_type": "group", "group_id": 9, "user_id": 2}
    bot.reply(group, "[CQ:face,id=1]", at_sender=True)
    bot.reply(group, "[CQ:face,id=1]", at_sender=True, auto_escape=True)
    assert bot.calls[0][1]["message"] == [
        {"type": "at", "data": {"qq": "2"}},
        {"type": "face", "data": {"id": "1"}},
    ]
    assert bot.calls[1][1]["message"] == [
        {"type": "at", "data": {"qq": "2"}},
        {"type": "text", "data": {"text": "[CQ:face,id=1]"}},
    ]


def test_reply_to_a_notice_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="notice"):
        Recorder().reply({"post_type": "notice", "notice_type": "group_upload"}, "x")


def test_call_async_uses_the_suffix() -> None:
    bot = Recorder()
    # The test is that it returns None, which mypy knows (and flags).
    assert bot.call_async("send_msg", message="x") is None  # type: ignore[func-returns-value]
    assert bot.calls == [("send_msg_async", {"message": "x"})]


def test_quick_operation_hidden_action() -> None:
    bot = Recorder()
    bot.handle_quick_operation({"post_type": "message"}, {"reply": "x"})
    assert bot.calls[0][0] == ".handle_quick_operation"


def test_base_call_is_abstract() -> None:
    # Issue 14: call is abstract (abc), so the failure comes when the object is
    # made, naming call, instead of NotImplementedError at the first action.
    with pytest.raises(TypeError, match=r"abstract method '?call'?"):
        OneBotApi()  # type: ignore[abstract]

    class Forgetful(OneBotApi):
        pass

    with pytest.raises(TypeError, match=r"abstract method '?call'?"):
        Forgetful()  # type: ignore[abstract]
    assert issubclass(ApiNotAvailable, Exception)


def test_reply_to_a_notice_is_a_config_error_and_sends_nothing() -> None:
    bot = Recorder()
    with pytest.raises(ConfigError, match="reply\\(\\) answers message events"):
        bot.reply({"post_type": "notice", "notice_type": "group_upload"}, "x")
    assert bot.calls == []


def test_params_dict_and_keywords_merge_everywhere() -> None:
    bot = Recorder()
    bot.call_async("plugin", {"timeout": 1, "a": 1}, a=2)
    bot.call_for({"self_id": 1}, "plugin", {"self_id": 9})
    assert bot.calls == [("plugin_async", {"timeout": 1, "a": 2}), ("plugin", {"self_id": 9})]
    assert merge_params({"timeout": 1, "a": 1}, {"a": 2}) == {"timeout": 1, "a": 2}
    assert merge_params(None, {"a": 2}) == {"a": 2}


@pytest.mark.parametrize("params", [[("a", 1)], "a=1", {1: "a"}])
def test_params_that_are_no_dict_by_name_are_an_encode_error(params: Any) -> None:
    with pytest.raises(EncodeError, match="params must be a dict"):
        merge_params(params, {})
