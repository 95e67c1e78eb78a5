"""api: the method table against the spec's action list, and what each method sends."""

import inspect
import re
from collections.abc import Mapping
from typing import Any

import pytest

from onebot_ref.api import (
    EXTENDED_ACTIONS,
    EXTENDED_SUPPORT,
    STANDARD_ACTIONS,
    OneBotApi,
    merge_params,
)
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
    assert public - helpers - set(EXTENDED_ACTIONS) == set(STANDARD_ACTIONS)


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


# -- the extended actions (issue 16) -------------------------------------------------


def test_the_26_extended_actions_the_issue_names_have_a_method_each() -> None:
    named = (
        "send_group_forward_msg send_private_forward_msg get_group_msg_history "
        "get_friend_msg_history upload_group_file upload_private_file get_group_root_files "
        "get_group_files_by_folder get_group_file_url delete_group_file set_essence_msg "
        "delete_essence_msg get_essence_msg_list _send_group_notice _get_group_notice "
        "set_msg_emoji_like group_poke friend_poke mark_msg_as_read set_group_portrait "
        "get_group_system_msg delete_friend set_qq_profile get_online_clients ocr_image"
    ).split()
    assert sorted(EXTENDED_ACTIONS.values()) == sorted(named)
    assert not set(EXTENDED_ACTIONS) & set(STANDARD_ACTIONS)
    assert set(EXTENDED_SUPPORT) == set(named)


@pytest.mark.parametrize("method", sorted(EXTENDED_ACTIONS))
def test_each_extended_docstring_names_who_has_it_and_who_lacks_it(method: str) -> None:
    names = {"go-cqhttp": "go-cqhttp", "napcat": "NapCat", "lagrange": "Lagrange",
             "llonebot": "LLOneBot"}  # fmt: skip
    doc = " ".join(getattr(OneBotApi, method).__doc__.split())
    for impl, name in names.items():
        lacks = re.search(rf"{name}[^.;]*\black", doc) is not None
        assert name in doc or "All four" in doc, (method, name)
        assert lacks == (impl not in EXTENDED_SUPPORT[EXTENDED_ACTIONS[method]]), (method, name)


@pytest.mark.parametrize("method", sorted(EXTENDED_ACTIONS))
def test_each_extended_method_sends_its_action_and_passes_extras_through(method: str) -> None:
    bot = Recorder()
    sig = inspect.signature(getattr(bot, method))
    args = {
        name: _dummy(p)
        for name, p in sig.parameters.items()
        if p.default is inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD
    }
    getattr(bot, method)(**args, some_extra="x")
    ((called, params),) = bot.calls
    assert called == EXTENDED_ACTIONS[method]
    optional_none = {n for n, p in sig.parameters.items() if p.default is None}
    declared = set(sig.parameters) - optional_none - {"kwargs"}
    assert set(params) == declared | {"some_extra"}


def test_extended_optional_parameters_are_sent_only_when_given() -> None:
    bot = Recorder()
    bot.get_group_msg_history(1)
    bot.get_group_msg_history(1, 77, count=5, message_id=77)  # Lagrange's name, via **kwargs
    bot.upload_group_file(1, "/tmp/a.txt", "a.txt", folder="/folder-1")
    bot.set_msg_emoji_like(9, 76, set=False)
    bot.send_group_notice(1, "hi", image="file:///p.png", pinned=1)
    assert bot.calls == [
        ("get_group_msg_history", {"group_id": 1, "count": 20}),
        ("get_group_msg_history", {"group_id": 1, "count": 5, "message_seq": 77, "message_id": 77}),
        (
            "upload_group_file",
            {"group_id": 1, "file": "/tmp/a.txt", "name": "a.txt", "folder": "/folder-1"},
        ),
        ("set_msg_emoji_like", {"message_id": 9, "emoji_id": 76, "set": False}),
        (
            "_send_group_notice",
            {"group_id": 1, "content": "hi", "image": "file:///p.png", "pinned": 1},
        ),
    ]
