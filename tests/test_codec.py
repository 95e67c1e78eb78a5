"""codec: JSON, envelopes, event names, signatures and tokens, against real-world vectors."""

import json
import re
from typing import Any, cast

import pytest
from conftest import load_vectors
from hypothesis import given
from hypothesis import strategies as st

from onebot_ref import codec
from onebot_ref.errors import (
    ActionFailed,
    ApiNotAvailable,
    AuthError,
    ConfigError,
    DecodeError,
    EncodeError,
    OneBotError,
)

# Every test here runs on the pure path and again with the accelerators (speedups extra).
pytestmark = pytest.mark.usefixtures("both_paths")

# -- dumps / loads ---------------------------------------------------------------


def test_dumps_is_compact_utf8_and_keeps_big_ids() -> None:
    obj = {"nickname": "小明😀", "user_id": 144115218731218202, "neg": -2147483648, "s": "123"}
    data = codec.dumps(obj)
    assert data == json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    assert "小明😀".encode() in data
    assert codec.loads(data) == obj
    assert codec.loads(data)["user_id"] == 144115218731218202


def test_loads_accepts_str_bytes_and_whitespace() -> None:
    assert codec.loads('  {"a":1}\n') == {"a": 1}
    assert codec.loads(b'{"a":1}\r\n') == {"a": 1}
    assert codec.loads(bytearray(b"[1]")) == [1]


def test_loads_retries_with_raw_control_characters() -> None:
    # NapCat's raw_info carries raw \x11 / \x10 inside strings.
    assert codec.loads('{"raw_info":"a\x11b\x10"}') == {"raw_info": "a\x11b\x10"}


def test_loads_go_html_escapes() -> None:
    assert codec.loads(r'{"url":"a\u0026b\u003c"}') == {"url": "a&b<"}


@pytest.mark.parametrize(
    "bad",
    [b"", b"{", b"authorization failed", b'{"a":1}x', b"\xff\xfe{}", b"[" * 100000],
)
def test_loads_raises_decode_error_with_a_useful_message(bad: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        codec.loads(bad)
    assert isinstance(info.value, ValueError)
    assert str(info.value)


def test_loads_error_has_offset_and_excerpt() -> None:
    with pytest.raises(DecodeError, match=r"offset 9 .*near"):
        codec.loads('{"a": 1, oops}')


def test_loads_huge_int_is_a_decode_error_not_a_bare_value_error() -> None:
    with pytest.raises(DecodeError):
        codec.loads("1" * 10000)


@given(st.binary(max_size=200))
def test_loads_only_ever_raises_decode_error(data: bytes) -> None:
    try:
        codec.loads(data)
    except DecodeError:
        pass


@pytest.mark.parametrize(
    "vector", [v for v in load_vectors() if "raw_text" in v], ids=lambda v: v["id"]
)
def test_every_raw_text_vector_decodes_to_its_payload(vector: dict[str, Any]) -> None:
    assert codec.loads(vector["raw_text"].encode("utf-8")) == vector["payload"]


# -- events ------------------------------------------------------------------------

EXPECTED_NAMES = {
    "gocq-meta-lifecycle-forward-ws-001": "meta_event.lifecycle.connect",
    "gocq-msg-group-anonymous-001": "message.group.anonymous",
    "gocq-msg-group-at-string-001": "message.group.normal",
    "gocq-msg-group-negative-id-001": "message.group.normal",
    "gocq-msg-private-image-u0026-001": "message.private.friend",
    "gocq-notice-group-decrease-kickme-001": "notice.group_decrease.kick_me",
    "gocq-notice-group-decrease-leave-self-001": "notice.group_decrease.leave",
    "gocq-notice-poke-friend-001": "notice.notify.poke",
    "gocq-notice-poke-group-001": "notice.notify.poke",
    "gocq-request-friend-001": "request.friend",
    "gocq-request-friend-002": "request.friend",
    "gocq-request-group-invite-001": "request.group.invite",
    "lagrange-meta-heartbeat-001": "meta_event.heartbeat",
    "lagrange-msg-group-001": "message.group.normal",
    "llonebot-msg-group-image-001": "message.group.normal",
    "llonebot-msg-private-temp-001": "message.private.group",
    "llonebot-request-group-add-invitor-001": "request.group.add",
    "misc-lifecycle-self-ID-typo-001": "meta_event.lifecycle.connect",
    "napcat-meta-lifecycle-connect-001": "meta_event.lifecycle.connect",
    "napcat-msg-group-debug-raw-001": "message.group.normal",
    "napcat-msg-group-image-001": "message.group.normal",
    "napcat-msg-group-self-sent-001": "message_sent.group.normal",
    "napcat-msg-private-friend-001": "message.private.friend",
    "napcat-notice-emoji-like-001": "notice.group_msg_emoji_like",
    "napcat-notice-friend-poke-001": "notice.notify.poke",
    "napcat-notice-group-ban-001": "notice.group_ban.ban",
    "napcat-notice-group-decrease-kickme-001": "notice.group_decrease.kick_me",
    "napcat-notice-group-recall-001": "notice.group_recall",
    "napcat-notice-group-upload-001": "notice.group_upload",
    "napcat-notice-input-status-001": "notice.notify.input_status",
    "napcat-notice-poke-ctrlchars-001": "notice.notify.poke",
    "napcat-notice-poke-target0-001": "notice.notify.poke",
    "napcat-request-friend-001": "request.friend",
}


def test_expected_names_cover_every_event_vector() -> None:
    assert {v["id"] for v in load_vectors("event")} == set(EXPECTED_NAMES)


@pytest.mark.parametrize("vector", load_vectors("event"), ids=lambda v: v["id"])
def test_event_vectors(vector: dict[str, Any]) -> None:
    event = vector["payload"]
    assert codec.is_event(event)
    assert codec.event_name(event) == EXPECTED_NAMES[vector["id"]]


def test_event_name_tolerates_missing_and_odd_keys() -> None:
    assert codec.event_name({}) == ""
    assert codec.event_name({"post_type": None}) == ""
    assert codec.event_name({"post_type": "notice"}) == "notice"
    assert codec.event_name({"post_type": "notice", "notice_type": 5}) == "notice"
    assert codec.event_name({"post_type": "meta_event", "meta_event_type": "heartbeat"}) == (
        "meta_event.heartbeat"
    )
    assert codec.event_name({"post_type": "notice", "notice_type": "x", "sub_type": ""}) == (
        "notice.x"
    )


def test_is_event_tells_events_from_responses() -> None:
    assert not codec.is_event({"status": "ok", "retcode": 0, "data": None})
    assert not codec.is_event("authorization failed")
    assert not codec.is_event([{"post_type": "x"}])


# -- responses ---------------------------------------------------------------------

# What each response vector must do: unwrap to data, or raise this error class.
# An id's outcome: "ok", "http", or (the exception, its retcode, a text in its message).
EXPECTED_OUTCOMES: dict[str, Any] = {
    "gocq-api-resp-invalid-flag-001": (ActionFailed, 100, "无效的flag"),
    "gocq-api-resp-mojibake-001": "ok",
    "gocq-api-resp-retcode151-001": (ActionFailed, 100, "retcode 151"),
    "gocq-api-resp-send-ok-001": "ok",
    "lagrange-api-resp-exception-001": (ActionFailed, 200, ""),
    "lagrange-api-resp-get-msg-private-001": "ok",
    "lagrange-api-resp-send-9000-001": (ActionFailed, 9000, ""),
    "lagrange-api-resp-status-freetext-001": (ActionFailed, 0, "user not found in the buffer"),
    "llonebot-api-resp-get-msg-001": "ok",
    "napcat-api-resp-http-403-001": "http",
    "napcat-api-resp-http-hello-001": "ok",
    "napcat-api-resp-http-unknown-action-001": (ApiNotAvailable, 200, "不支持的Api send_msg_async"),
    "napcat-api-resp-json-parse-error-001": (ActionFailed, 1400, "json解析失败,请检查数据格式"),
    "napcat-api-resp-schema-error-001": (ActionFailed, 1400, "Key: group_id"),
    "napcat-api-resp-set-group-add-request-001": "ok",
    "napcat-api-resp-token-refused-001": (AuthError, 1403, "token验证失败"),
    "napcat-api-resp-unknown-action-001": (ApiNotAvailable, 1404, "不支持的Api undefined"),
    "napcat-api-resp-ws-unknown-async-001": (ApiNotAvailable, 1404, "send_group_msg_async"),
}


def test_expected_outcomes_cover_every_response_vector() -> None:
    assert {v["id"] for v in load_vectors("api_response")} == set(EXPECTED_OUTCOMES)


@pytest.mark.parametrize("vector", load_vectors("api_response"), ids=lambda v: v["id"])
def test_response_vectors(vector: dict[str, Any]) -> None:
    resp, expected = vector["payload"], EXPECTED_OUTCOMES[vector["id"]]
    if expected == "ok":
        assert codec.unwrap_response(resp, "get_x") == resp.get("data")
    elif expected == "http":
        err = codec.http_error(vector["http_status"], "send_msg", json.dumps(resp).encode())
        assert isinstance(err, AuthError) and err.status == 403
        assert "token verify failed" in str(err)
    else:
        cls, retcode, text = expected
        with pytest.raises(cls) as info:
            codec.unwrap_response(resp, "get_x")
        assert text in str(info.value)
        if isinstance(info.value, ActionFailed):
            assert type(info.value) is cls
            assert info.value.retcode == retcode
            assert info.value.response is resp
            assert info.value.action == "get_x"


def test_async_counts_as_accepted_and_judged_by_status_not_retcode() -> None:
    assert codec.unwrap_response({"status": "async", "retcode": 1, "data": None}, "a") is None
    with pytest.raises(ActionFailed):
        codec.unwrap_response({"status": "failed", "retcode": 0, "data": None}, "a")
    with pytest.raises(ActionFailed, match="no status"):
        codec.unwrap_response({"retcode": 0, "data": {}}, "a")
    assert codec.unwrap_response({"status": "ok", "retcode": 0}, "a") is None


def test_error_text_prefers_wording_then_message_then_msg() -> None:
    resp = {
        "status": "failed",
        "retcode": 100,
        "msg": "EMPTY_MSG_ERROR",
        "message": "",
        "wording": "",
    }
    with pytest.raises(ActionFailed) as info:
        codec.unwrap_response(resp, "send_msg")
    assert info.value.message == "EMPTY_MSG_ERROR"
    resp["message"] = "消息为空"
    with pytest.raises(ActionFailed) as info:
        codec.unwrap_response(resp, "send_msg")
    assert info.value.message == "消息为空"
    assert str(info.value) == "send_msg failed with retcode 100: 消息为空"


@pytest.mark.parametrize("resp", [None, [], "authorization failed", 3])
def test_unwrap_rejects_non_objects_with_a_onebot_error(resp: object) -> None:
    with pytest.raises(DecodeError):
        codec.unwrap_response(resp, "a")


@pytest.mark.parametrize(
    ("status", "cls", "retcode"),
    [
        (401, AuthError, None),
        (403, AuthError, None),
        (404, ApiNotAvailable, 1404),
        (400, ActionFailed, 1400),
        (406, ActionFailed, 1406),
        (500, ActionFailed, 1500),
    ],
)
def test_http_error_mapping(status: int, cls: type[OneBotError], retcode: int | None) -> None:
    err = codec.http_error(status, "send_msg", b"")
    assert type(err) is cls
    assert isinstance(err, OneBotError)
    if retcode is not None:
        assert cast(ActionFailed, err).retcode == retcode
    if cls is AuthError:
        assert cast(AuthError, err).status == status
        assert "token" in str(err)


def test_action_request_shape() -> None:
    assert codec.action_request("get_status", None, "1") == {
        "action": "get_status",
        "params": {},
        "echo": "1",
    }


# -- signatures and tokens ---------------------------------------------------------

HMAC_BODY = (
    b'{"post_type":"meta_event","meta_event_type":"heartbeat","time":1700000000,'
    b'"self_id":10001,"status":{"online":true,"good":true},"interval":5000}'
)


def test_hmac_vector_from_the_spec_digest() -> None:
    expected = "sha1=7758adebaa151001028d0affd2ec057493c8c679"
    assert codec.sign(HMAC_BODY, "my-secret") == expected
    assert codec.check_signature(HMAC_BODY, "my-secret", expected)
    assert codec.check_signature(HMAC_BODY, "my-secret", expected.upper().replace("SHA1", "sha1"))
    assert not codec.check_signature(HMAC_BODY + b" ", "my-secret", expected)
    assert not codec.check_signature(HMAC_BODY, "other", expected)
    assert not codec.check_signature(HMAC_BODY, "my-secret", None)
    assert not codec.check_signature(HMAC_BODY, "my-secret", "")
    assert not codec.check_signature(HMAC_BODY, "my-secret", "sha1=zz")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER   abc ", "abc"),
        ("Token abc", "abc"),
        ("token abc", "abc"),
        ("abc", "abc"),
        ("Bearer ", None),
        ("Bearer", None),
        ("Token", None),
        ("", None),
        (None, None),
        ("Basic abc", "Basic abc"),
    ],
)
def test_parse_authorization(header: str | None, token: str | None) -> None:
    assert codec.parse_authorization(header) == token


def test_handshake_vectors_authorization_headers() -> None:
    seen = {}
    for vector in load_vectors("handshake"):
        headers = vector["payload"].get("headers", {})
        for name, value in headers.items():
            if name.lower() == "authorization":
                seen[vector["id"]] = codec.parse_authorization(value)
    assert seen["napcat-handshake-reverse-ws-notoken-001"] is None
    assert seen["lagrange-handshake-reverse-ws-001"] is None
    assert seen["misc-coolq-http-api-headers-001"] == "s3cr3t"


def test_token_matches_and_mask() -> None:
    assert codec.token_matches("s3cr3t", "s3cr3t")
    assert not codec.token_matches("s3cr3t", "s3cr3T")
    assert not codec.token_matches("s3cr3t", None)
    assert codec.token_matches("令牌", "令牌")
    assert codec.mask_token("s3cr3t") == "s3…(6 chars)"
    assert "cr3t" not in codec.mask_token("s3cr3t")
    assert codec.mask_token(None) == "<none>"


# -- strict out: dumps and encode_request --------------------------------------------


@pytest.mark.parametrize(
    ("value", "path", "says"),
    [
        ({"reply": float("nan")}, "reply", "reply is nan, which JSON cannot carry"),
        ([1, {"a": float("-inf")}], "[1].a", "[1].a is -inf"),
        (float("inf"), "", "the value is inf"),
        (
            {"ids": {10001: "a"}},
            "ids",
            "ids has the key 10001 (type int), but JSON keys are strings",
        ),
        ({"x": {None: 1}}, "x", "has the key None"),
        ({"tags": {"a"}}, "tags", "tags is {'a'} (type set), which JSON cannot carry"),
        ({"raw": b"\x00"}, "raw", "(type bytes)"),
        ({"odd key": [object()]}, "['odd key'][0]", "(type object)"),
        ({"text": "a\ud800b"}, "text", "text holds a lone surrogate '\\ud800'"),
    ],
)
def test_dumps_refuses_what_json_cannot_carry_and_names_where(
    value: object, path: str, says: str
) -> None:
    with pytest.raises(EncodeError) as info:
        codec.dumps(value)
    assert info.value.path == path
    assert says in str(info.value)
    assert isinstance(info.value, OneBotError | TypeError) and isinstance(info.value, ValueError)


def test_dumps_refuses_a_value_that_contains_itself() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(EncodeError, match="nested too deeply"):
        codec.dumps({"a": loop})


def test_dumps_writes_tuples_as_arrays_and_enum_values_as_json_does() -> None:
    import enum

    class Color(enum.IntEnum):
        RED = 1

    assert codec.dumps({"t": (1, "a"), "c": Color.RED, "f": 1.5}) == b'{"t":[1,"a"],"c":1,"f":1.5}'


def test_encode_request_is_the_http_body_without_echo_and_the_ws_frame_with_one() -> None:
    params = {"user_id": 1, "message": [{"type": "text", "data": {"text": "hi"}}]}
    assert codec.encode_request("send_msg", params) == codec.dumps(params)
    frame = json.loads(codec.encode_request("send_msg", params, "7"))
    assert frame == {"action": "send_msg", "params": params, "echo": "7"}


@pytest.mark.parametrize("echo", [None, "7"])
def test_encode_request_names_the_action_and_the_parameter_alike_in_both_shapes(
    echo: str | None,
) -> None:
    with pytest.raises(EncodeError) as info:
        codec.encode_request("set_x", {"ok": 1, "weight": float("nan")}, echo)
    assert str(info.value).startswith("set_x: weight is nan")
    assert info.value.path == "weight"
    with pytest.raises(EncodeError, match=r"^send_msg: message is 123 \(type int\)"):
        codec.encode_request("send_msg", {"message": 123}, echo)


# -- the token rule: a token is its UTF-8 bytes ------------------------------------


def as_header(token: str) -> str:
    """What a server sees of a header value: the UTF-8 bytes, read as latin-1."""
    return token.encode("utf-8").decode("latin-1")


TOKENS = ["s3cr3t", "令牌你", "café", "Ünïcødé-令", "emoji😀", "a b"]


@pytest.mark.parametrize("token", TOKENS)
def test_a_token_matches_from_the_header_and_from_the_query(token: str) -> None:
    assert codec.token_matches(token, as_header(token))  # header: bytes as latin-1
    assert codec.token_matches(token, token)  # query: already decoded from UTF-8
    assert codec.parse_authorization("Bearer " + as_header(token)) == as_header(token)
    assert not codec.token_matches(token, as_header(token + "x"))
    assert not codec.token_matches(token, token[:-1])


def test_a_token_sent_as_latin1_by_an_old_client_still_matches() -> None:
    assert codec.token_matches("café", "café")  # E9 on the wire, read as latin-1


def test_parse_authorization_trims_only_http_whitespace() -> None:
    # 你 is E4 BD A0: read as latin-1 it ends in U+00A0, which str.strip() would eat.
    assert codec.parse_authorization(f"Bearer {as_header('你')}\t ") == as_header("你")
    assert codec.parse_authorization(as_header("…") + "\x85") == as_header("…") + "\x85"


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("", "empty"),
        ("a\r\nX-Evil: 1", "U+000D at index 1"),
        ("tab\there", "U+0009 at index 3"),
        ("nul\x00", "U+0000"),
        ("del\x7f", "U+007F"),
        ("c1\x85", "U+0085"),
        (" lead", "whitespace"),
        ("trail ", "whitespace"),
        ("ideographic\u3000", "whitespace"),
    ],
)
def test_valid_token_refuses_what_cannot_travel(token: str, says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)) as caught:
        codec.valid_token(token)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, OneBotError)
    if token.strip():
        assert token.strip() not in str(caught.value)  # the message never quotes the token


@pytest.mark.parametrize("token", [None, *TOKENS])
def test_valid_token_passes_what_can_travel(token: str | None) -> None:
    assert codec.valid_token(token) == token


def test_valid_token_refuses_a_non_string() -> None:
    with pytest.raises(ConfigError, match="must be a str"):
        codec.valid_token(b"bytes")  # type: ignore[arg-type]


# -- redaction, and telling a WebSocket port ----------------------------------------


def test_redact_covers_query_tokens_and_url_passwords() -> None:
    assert codec.redact("http://h/x?a=1&access_token=%E4%BD%A0#top") == (
        "http://h/x?a=1&access_token=***#top"
    )
    assert codec.redact("GET http://bot:pa55@h:80/ HTTP/1.1") == "GET http://bot:***@h:80/ HTTP/1.1"
    assert codec.redact("ws://127.0.0.1:8080/ws") == "ws://127.0.0.1:8080/ws"
    assert codec.redact("'http://h/?access_token=tok' failed") == (
        "'http://h/?access_token=***' failed"
    )


@pytest.mark.parametrize(
    ("status", "headers", "body", "refusal"),
    [
        (426, {}, b"Upgrade Required", True),  # Node ws (NapCat)
        (400, {"Sec-Websocket-Version": "13"}, b"Bad Request\n", True),  # gorilla (go-cqhttp)
        (405, {"sec-websocket-version": "13"}, b"", True),
        (426, {"Upgrade": "websocket"}, b"Failed to open a WebSocket connection", True),
        (400, {}, b"method POST is not GET\n", True),  # our WsServer
        (400, {}, b'{"message":"bad params"}', False),
        (405, {}, b"Method Not Allowed", False),
        (200, {}, b"{}", False),
        (404, {}, b"", False),
    ],
)
def test_is_websocket_refusal(
    status: int, headers: dict[str, str], body: bytes, refusal: bool
) -> None:
    from requests.structures import CaseInsensitiveDict

    assert codec.is_websocket_refusal(status, CaseInsensitiveDict(headers), body) is refusal


@pytest.mark.parametrize(
    "text",
    ["不支持的Api get_x", "不支持的API get_x", "不支持的api get_x"],  # NapCat: HTTP, WS, old
)
def test_napcat_unknown_action_texts_are_api_not_available(text: str) -> None:
    resp = {"status": "failed", "retcode": 200, "data": None, "message": text, "wording": text}
    with pytest.raises(ApiNotAvailable) as caught:
        codec.unwrap_response(resp, "get_x")
    assert caught.value.retcode == 200 and caught.value.response is resp


def test_napcat_handler_errors_with_retcode_200_stay_action_failed() -> None:
    resp = {"status": "failed", "retcode": 200, "data": None, "message": "Error Handle"}
    with pytest.raises(ActionFailed) as caught:
        codec.unwrap_response(resp, "send_msg")
    assert type(caught.value) is ActionFailed
