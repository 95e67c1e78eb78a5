"""message: CQ escaping, parsing, rendering and builders."""

from typing import Any

import pytest
from conftest import load_vectors
from hypothesis import example, given
from hypothesis import strategies as st

from onebot_ref import message as m
from onebot_ref.errors import DecodeError, EncodeError

# -- escaping (spec message/string.md, ONEBOT11.md §7.3) ----------------------------


def test_escape_examples_from_the_spec() -> None:
    assert m.escape("- [x] use &data") == "- &#91;x&#93; use &amp;data"
    assert m.escape("a,b") == "a,b"
    assert m.escape("a,b", comma=True) == "a&#44;b"
    assert m.escape("&#91;") == "&amp;#91;"


def test_unescape_amp_last() -> None:
    # The classic bug: unescaping &amp; first turns "&amp;#91;" into "[".
    assert m.unescape("&amp;#91;x&amp;#93;") == "&#91;x&#93;"
    assert m.unescape("&#91;x&#93;&#44;&amp;") == "[x],&"
    assert m.unescape("&amp;amp;") == "&amp;"
    assert m.unescape("no entities & here") == "no entities & here"


@given(st.text())
@example("&#91;")
@example("&amp;#91;")
@example("[CQ:at,qq=1]")
def test_escape_unescape_round_trip(text: str) -> None:
    assert m.unescape(m.escape(text)) == text
    assert m.unescape(m.escape(text, comma=True)) == text
    assert "[" not in m.escape(text) and "]" not in m.escape(text)
    assert "," not in m.escape(text, comma=True)


# -- parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vector",
    [v for v in load_vectors("cq_string") if "expected_segments" in v],
    ids=lambda v: v["id"],
)
def test_cq_vectors(vector: dict[str, Any]) -> None:
    assert m.parse_cq(vector["payload"]) == vector["expected_segments"]


def test_json_card_vector_unescapes_to_valid_json() -> None:
    import json

    (vector,) = [v for v in load_vectors("cq_string") if v["id"] == "cq-json-music-card-001"]
    segments = m.parse_cq(vector["payload"])
    assert segments[0]["type"] == "json"
    card = json.loads(segments[0]["data"]["data"])
    assert "&amp;" not in card["meta"]["music"]["jumpUrl"]


@pytest.mark.parametrize(
    ("string", "segments"),
    [
        ("", []),
        ("hello", [m.text("hello")]),
        ("[CQ:face,id=1]", [m.face(1)]),
        ("[CQ:shake]", [{"type": "shake", "data": {}}]),
        ("a [b] c", [m.text("a [b] c")]),  # unmatched / non-CQ brackets stay text
        ("[CQ:at,qq=1", [m.text("[CQ:at,qq=1")]),  # unterminated
        ("x]y[CQ:", [m.text("x]y[CQ:")]),
        (
            "[CQ:share,title=a=b,url=http://x]",
            [{"type": "share", "data": {"title": "a=b", "url": "http://x"}}],
        ),
        ("[CQ:face,id=]", [{"type": "face", "data": {"id": ""}}]),
        ("[CQ:face, id=1]", [m.text("[CQ:face, id=1]")]),  # bad key: stays text, not dropped
        ("[CQ:face,id]", [m.text("[CQ:face,id]")]),  # piece without "="
        ("[CQ:fa ce,id=1]", [m.text("[CQ:fa ce,id=1]")]),  # bad type name
        ("a[CQ:text,text=b&#44;c]d", [m.text("ab,cd")]),  # [CQ:text] is just text
        ("[[CQ:at,qq=all]]", [m.text("["), m.at("all"), m.text("]")]),
        ("&#91;CQ:at,qq=1&#93;", [m.text("[CQ:at,qq=1]")]),  # escaped code is text, not a segment
        ("[CQ:my-ext.type_1,k_1=v]", [{"type": "my-ext.type_1", "data": {"k_1": "v"}}]),
    ],
)
def test_parse_cq_tolerant_cases(string: str, segments: list[m.Segment]) -> None:
    assert m.parse_cq(string) == segments


def test_parse_never_turns_escaped_text_into_a_segment() -> None:
    # go-cqhttp#2147: text that looks like CQ code must round trip as text.
    looks_like_code = "[CQ:image,file=http://evil/x.png]"
    rendered = m.to_cq([m.text(looks_like_code)])
    assert m.parse_cq(rendered) == [m.text(looks_like_code)]


# -- rendering ------------------------------------------------------------------------


def test_to_cq_examples() -> None:
    assert m.to_cq([m.text("- [x] use &data")]) == "- &#91;x&#93; use &amp;data"
    share = {"type": "share", "data": {"title": "a,b", "url": "http://h/?a=1&b=2"}}
    assert m.to_cq([share]) == "[CQ:share,title=a&#44;b,url=http://h/?a=1&amp;b=2]"
    assert m.to_cq({"type": "face", "data": None}) == "[CQ:face]"
    assert (
        m.to_cq([{"type": "x", "data": {"b": True, "n": 3, "z": None}}]) == "[CQ:x,b=true,n=3,z=]"
    )
    assert m.to_cq("already [CQ:face,id=1]") == "already [CQ:face,id=1]"


def test_to_cq_nested_node_content() -> None:
    node = m.custom_node(10001, "小明", [m.text("hi, [you]"), m.face(1)])
    rendered = m.to_cq([node])
    assert m.parse_cq(rendered) == [
        {
            "type": "node",
            "data": {
                "user_id": "10001",
                "nickname": "小明",
                "content": "hi, &#91;you&#93;[CQ:face,id=1]",
            },
        }
    ]


# Canonical segment lists: what parse_cq produces. Text segments are non-empty
# and never adjacent; other segments have string values and CQ-legal names.
_names = st.from_regex(r"[A-Za-z0-9_.\-]{1,8}", fullmatch=True).filter(lambda s: s != "text")
_keys = st.from_regex(r"[A-Za-z0-9_.\-]{1,8}", fullmatch=True)
_adversarial = st.text(
    alphabet=st.sampled_from(list("&[],=;#amp913 4CQ:x\\\n\t\x00\x1f😀中")) | st.characters(),
    max_size=30,
)
_text_seg = st.builds(m.text, _adversarial.filter(bool))
_other_seg = st.builds(
    lambda t, d: {"type": t, "data": d}, _names, st.dictionaries(_keys, _adversarial, max_size=4)
)


def _canonical(segments: list[m.Segment]) -> list[m.Segment]:
    out: list[m.Segment] = []
    for seg in segments:
        if seg["type"] == "text" and out and out[-1]["type"] == "text":
            out[-1] = m.text(out[-1]["data"]["text"] + seg["data"]["text"])
        else:
            out.append(seg)
    return out


@given(st.lists(st.one_of(_text_seg, _other_seg), max_size=8).map(_canonical))
@example([m.text("&amp;#91;")])
@example([m.text("[CQ:at,qq=1]"), m.at(1)])
@example([{"type": "json", "data": {"data": '{"a":[1,2],"b":"&#44;"}'}}])
def test_round_trip_property(segments: list[m.Segment]) -> None:
    assert m.parse_cq(m.to_cq(segments)) == segments


@given(st.text(max_size=200))
def test_parse_cq_never_raises_and_keeps_all_text(string: str) -> None:
    segments = m.parse_cq(string)
    assert all(isinstance(s["data"], dict) for s in segments)
    if "[CQ:" not in string:
        assert m.plain_text(segments) == m.unescape(string)


# -- normalize / plain_text / builders -------------------------------------------------


def test_normalize_forms() -> None:
    assert m.normalize("hi[CQ:face,id=1]") == [m.text("hi"), m.face(1)]
    assert m.normalize(m.at(1)) == [m.at(1)]
    assert m.normalize(["a", m.face(2)]) == [m.text("a"), m.face(2)]
    assert m.normalize((m.face(2),)) == [m.face(2)]
    with pytest.raises(DecodeError, match="not int"):
        m.normalize(5)
    with pytest.raises(DecodeError, match="segments or strings"):
        m.normalize([5])
    with pytest.raises(DecodeError, match="not a segment"):
        m.normalize({"type": "text", "data": "oops"})
    with pytest.raises(DecodeError, match="not a segment"):
        m.plain_text([{"data": {"text": "no type"}}])
    assert m.normalize([{"type": "face", "data": None}]) == [{"type": "face", "data": None}]


def test_plain_text() -> None:
    assert m.plain_text("hi [CQ:at,qq=1] &#91;x&#93;") == "hi  [x]"
    assert m.plain_text([m.image("a.png"), {"type": "text", "data": None}]) == ""


def test_builders_send_string_values() -> None:
    assert m.at(2351200988) == {"type": "at", "data": {"qq": "2351200988"}}
    assert m.image("base64://AAAA", flash=True, timeout=5)["data"] == {
        "file": "base64://AAAA",
        "cache": "1",
        "proxy": "1",
        "timeout": "5",
        "type": "flash",
    }
    assert m.record("a.amr", magic=True)["data"]["magic"] == "1"
    assert m.video("v.mp4")["data"] == {"file": "v.mp4", "cache": "1", "proxy": "1"}
    assert m.reply(-635735050) == {"type": "reply", "data": {"id": "-635735050"}}
    assert m.poke(1, 10000)["data"] == {"type": "1", "id": "10000"}
    assert m.anonymous(ignore=True)["data"] == {"ignore": "1"}
    assert m.location(39.9, 116.3)["data"] == {"lat": "39.9", "lon": "116.3"}
    assert m.custom_music("u", "a", "t")["data"] == {
        "type": "custom",
        "url": "u",
        "audio": "a",
        "title": "t",
    }
    assert m.music("163", 28949129)["data"] == {"type": "163", "id": "28949129"}
    assert m.contact("group", 1)["data"] == {"type": "group", "id": "1"}
    assert m.json_card({"app": "x"})["data"] == {"data": '{"app":"x"}'}
    assert m.xml("<x/>")["data"] == {"data": "<x/>"}
    assert m.share("u", "t", content="c")["data"] == {"url": "u", "title": "t", "content": "c"}
    assert m.node(5)["data"] == {"id": "5"}
    assert m.forward("123")["data"] == {"id": "123"}
    for builder in (m.rps, m.dice, m.shake):
        assert builder()["data"] == {}


STANDARD_SEGMENT_TYPES = {
    "text",
    "face",
    "image",
    "record",
    "video",
    "at",
    "rps",
    "dice",
    "shake",
    "poke",
    "anonymous",
    "share",
    "contact",
    "location",
    "music",
    "reply",
    "forward",
    "node",
    "xml",
    "json",
}


def test_a_builder_for_every_standard_segment_type() -> None:
    built = {
        m.text("x")["type"],
        m.face(1)["type"],
        m.image("f")["type"],
        m.record("f")["type"],
        m.video("f")["type"],
        m.at(1)["type"],
        m.rps()["type"],
        m.dice()["type"],
        m.shake()["type"],
        m.poke(1, 1)["type"],
        m.anonymous()["type"],
        m.share("u", "t")["type"],
        m.contact("qq", 1)["type"],
        m.location(0, 0)["type"],
        m.music("qq", 1)["type"],
        m.reply(1)["type"],
        m.forward("1")["type"],
        m.node(1)["type"],
        m.xml("x")["type"],
        m.json_card("{}")["type"],
    }
    assert built == STANDARD_SEGMENT_TYPES


# -- validate: what may go out as a message -----------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "plain [CQ:face,id=1]",
        m.text("a"),
        [m.text("a"), m.at(1), m.image("x.png", flash=True), m.dice()],
        (m.text("a"), m.face(1)),
        [{"type": "at", "data": {"qq": 10001}}],  # go-cqhttp and NapCat take numbers
        [{"type": "json", "data": {"data": {"app": "x"}}}],  # NapCat takes an object here
        [m.custom_node(1, "n", [m.text("in"), m.custom_node(2, "m", "deeper")]), m.node(5)],
        [],
    ],
)
def test_validate_accepts_every_message_shape_the_builders_make(message: Any) -> None:
    m.validate(message)


@pytest.mark.parametrize(
    ("message", "path", "says"),
    [
        (123, "message", "message is 123 (type int), not a message"),
        (None, "message", "message is None (type NoneType)"),
        (["a", "b"], "message[0]", "message[0] is the text 'a', but a message list holds segments"),
        ([m.text("a"), 5], "message[1]", "message[1] is 5 (type int), not a segment"),
        ({"type": "text", "text": "hi"}, "message.data", "message.data is missing"),
        ({"type": "text", "data": "hi"}, "message.data", "message.data is 'hi', not a dict"),
        ({"data": {}}, "message", "message has no segment type"),
        ([{"type": "", "data": {}}], "message[0]", "message[0] has no segment type"),
        (
            [m.segment("node", user_id="1", nickname="n", content=[1])],
            "message[0].data.content[0]",
            "message[0].data.content[0] is 1",
        ),
    ],
)
def test_validate_refuses_what_is_not_a_message_and_names_the_part(
    message: Any, path: str, says: str
) -> None:
    with pytest.raises(EncodeError) as info:
        m.validate(message)
    assert info.value.path == path
    assert str(info.value).startswith(says)
    assert isinstance(info.value, TypeError | ValueError)


@pytest.mark.parametrize("data", [{"ratio": float("nan")}, {"tags": {"a"}}])
def test_json_card_refuses_data_that_is_not_json(data: dict[str, Any]) -> None:
    with pytest.raises(EncodeError, match="json_card data is not JSON"):
        m.json_card(data)


# -- segments beyond the standard (issue 16): NapCat's and Lagrange's shapes ---------------


def test_extension_builders_make_the_shapes_napcat_and_lagrange_use() -> None:
    assert m.file("/tmp/报告.pdf", name="报告.pdf") == {
        "type": "file",
        "data": {"file": "/tmp/报告.pdf", "name": "报告.pdf"},
    }
    assert m.file("base64://aGk=") == {"type": "file", "data": {"file": "base64://aGk="}}
    # NapCat and Lagrange declare emoji_package_id an integer.
    assert m.mface("abc", 231189, "k3y", summary="[哈哈]") == {
        "type": "mface",
        "data": {"emoji_id": "abc", "emoji_package_id": 231189, "key": "k3y", "summary": "[哈哈]"},
    }
    assert m.markdown("# 标题\n*粗*") == {"type": "markdown", "data": {"content": "# 标题\n*粗*"}}
    assert m.forward("7453") == {"type": "forward", "data": {"id": "7453"}}
    assert m.json_card({"app": "com.tencent.x"})["data"] == {"data": '{"app":"com.tencent.x"}'}


@pytest.mark.parametrize(
    "seg",
    [
        m.file("C:\\a,b [1].txt", name="a,b [1].txt"),
        m.mface("e,1", 7, "k&y", summary="[表情]"),
        m.markdown("a, [b] & c\n"),
        m.forward("fwd,1"),
        m.json_card({"k": "a,b[]&"}),
        m.node(5),
    ],
)
def test_extension_segments_survive_a_cq_round_trip(seg: dict[str, object]) -> None:
    rendered = m.to_cq([seg])
    (back,) = m.parse_cq(rendered)
    # CQ values are strings: the mface package id comes back as "7", and renders the same.
    assert back["type"] == seg["type"]
    assert back["data"] == {k: str(v) for k, v in seg["data"].items()}  # type: ignore[attr-defined]
    assert m.to_cq([back]) == rendered


def test_nested_custom_nodes_survive_a_cq_round_trip() -> None:
    inner = m.custom_node(20002, "Alice", [m.text("内层, [x]"), m.mface("e", 1, "k")])
    outer = m.custom_node(20001, "小明", [m.text("外层 & "), inner, m.face(1)])
    m.validate([outer])
    (back,) = m.parse_cq(m.to_cq([outer]))
    content = m.normalize(back["data"]["content"])
    assert [s["type"] for s in content] == ["text", "node", "face"]
    assert content[0] == m.text("外层 & ")
    nested = m.normalize(content[1]["data"]["content"])
    assert nested[0] == m.text("内层, [x]")
    assert nested[1]["type"] == "mface" and nested[1]["data"]["emoji_package_id"] == "1"
    assert content[1]["data"]["nickname"] == "Alice"
