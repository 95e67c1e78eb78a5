"""Message segments and CQ codes (spec ``message/*.md``).

A OneBot 11 message is either a CQ **string** or an **array** of segments::

    "hi [CQ:at,qq=10001] &#91;x&#93;"
    [{"type": "text", "data": {"text": "hi "}},
     {"type": "at", "data": {"qq": "10001"}},
     {"type": "text", "data": {"text": " [x]"}}]

A segment here is exactly the spec's plain dict ``{"type": ..., "data": {...}}``.

Escaping (``message/string.md``): plain text escapes ``&``, ``[`` and ``]``;
parameter values inside a CQ code also escape ``,``. ``&`` is escaped first and
``&amp;`` is unescaped last, so that the text ``&#91;`` (sent as ``&amp;#91;``)
comes back unchanged. Two peers get this wrong; we decode in one pass, which
is equivalent and cannot be ordered wrongly.

The parser is tolerant in the way real traffic needs: an unmatched ``[`` or
``]`` stays text, values may contain ``=`` and be empty, and a malformed code
(bad type name, a parameter with no ``=``) is kept as text, never dropped.

Pure: no I/O, stdlib only.
"""

import json
import re
from typing import Any

from .errors import DecodeError, EncodeError

__all__ = [
    "anonymous",
    "at",
    "contact",
    "custom_music",
    "custom_node",
    "dice",
    "escape",
    "face",
    "file",
    "forward",
    "image",
    "json_card",
    "location",
    "markdown",
    "mface",
    "music",
    "node",
    "normalize",
    "parse_cq",
    "plain_text",
    "poke",
    "record",
    "reply",
    "rps",
    "segment",
    "shake",
    "share",
    "text",
    "to_cq",
    "unescape",
    "validate",
    "video",
    "xml",
]

Segment = dict[str, Any]

_UNESCAPE = {"&amp;": "&", "&#91;": "[", "&#93;": "]", "&#44;": ","}
_UNESCAPE_RE = re.compile(r"&(?:amp|#91|#93|#44);")
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]+\Z")


def escape(text: str, *, comma: bool = False) -> str:
    """Escape plain text for a CQ string; ``comma=True`` for values inside a CQ code."""
    text = text.replace("&", "&amp;").replace("[", "&#91;").replace("]", "&#93;")
    return text.replace(",", "&#44;") if comma else text


def unescape(text: str) -> str:
    """Undo :func:`escape` (with or without commas) in a single pass."""
    if "&" not in text:
        return text
    return _UNESCAPE_RE.sub(lambda m: _UNESCAPE[m.group()], text)


def segment(type_: str, **data: Any) -> Segment:
    """A segment of any type; ``None`` values are left out."""
    return {"type": type_, "data": {k: v for k, v in data.items() if v is not None}}


def _parse_code(body: str) -> Segment | None:
    """Parse what stands between ``[CQ:`` and ``]``, or None if it is malformed."""
    type_, _, params = body.partition(",")
    if not _NAME_RE.match(type_):
        return None
    data: dict[str, Any] = {}
    if params:
        for piece in params.split(","):
            key, eq, value = piece.partition("=")
            if not eq or not _NAME_RE.match(key):
                return None
            data[key] = unescape(value)
    return {"type": type_, "data": data}


def parse_cq(string: str) -> list[Segment]:
    """Parse a CQ string into segments; adjacent text is merged, empty text dropped."""
    segments: list[Segment] = []
    pending: list[str] = []  # raw (still escaped) text waiting to become a text segment

    def flush() -> None:
        raw = "".join(pending)
        pending.clear()
        if raw:
            segments.append({"type": "text", "data": {"text": unescape(raw)}})

    pos = 0
    while pos < len(string):
        start = string.find("[CQ:", pos)
        if start < 0:
            pending.append(string[pos:])
            break
        end = string.find("]", start)
        if end < 0:  # unterminated code: the rest is text
            pending.append(string[pos:])
            break
        pending.append(string[pos:start])
        seg = _parse_code(string[start + 4 : end])
        if seg is None:
            pending.append(string[start : end + 1])
        elif seg["type"] == "text":  # [CQ:text,text=x] is just text
            pending.append(escape(str(seg["data"].get("text", ""))))
        else:
            flush()
            segments.append(seg)
        pos = end + 1
    flush()
    return segments


def _value_to_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list):  # a nested message, e.g. node content
        return to_cq(value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def to_cq(message: Any) -> str:
    """Render a message (string, segment or list of segments) as a CQ string."""
    if isinstance(message, str):
        return message
    out = []
    for seg in normalize(message):
        data = seg.get("data") or {}
        if seg.get("type") == "text":
            out.append(escape(_value_to_str(data.get("text", ""))))
            continue
        params = "".join(f",{k}={escape(_value_to_str(v), comma=True)}" for k, v in data.items())
        out.append(f"[CQ:{seg.get('type')}{params}]")
    return "".join(out)


def normalize(message: Any) -> list[Segment]:
    """Turn any message form into a list of segments.

    A string is parsed as CQ code, a single segment dict becomes a one-item
    list, and strings inside a list become text segments.

    Raises:
        DecodeError: for anything that is not a message (also a ValueError).
    """
    if isinstance(message, str):
        return parse_cq(message)
    if isinstance(message, dict):
        return [_checked(message)]
    if isinstance(message, list | tuple):
        return [text(item) if isinstance(item, str) else _checked(item) for item in message]
    raise DecodeError(f"a message is a str, a segment dict or a list, not {type(message).__name__}")


def _checked(item: Any) -> Segment:
    """``item`` if it has the shape of a segment: a string ``type``, a dict (or null) ``data``."""
    if not isinstance(item, dict):
        raise DecodeError(f"a message list holds segments or strings, not {item!r:.60}")
    if not isinstance(item.get("type"), str) or not isinstance(item.get("data"), dict | None):
        raise DecodeError(f"not a segment ({{'type': str, 'data': dict}}): {item!r:.60}")
    return item


def validate(message: Any, path: str = "message") -> None:
    """Refuse what is not a message before it is sent.

    A message to send is a CQ string, one segment, or a list (or tuple) of
    segments; a segment is a dict with a non-empty ``str`` ``type`` and a
    ``dict`` ``data`` (``{}`` for types without parameters). The ``content`` of
    a ``node`` (a custom forward node) is itself a message and is checked too.

    Stricter than :func:`normalize`, which reads what implementations send:
    going out, ``["a", "b"]``, ``123`` or a segment without ``data`` would reach
    the implementation unchanged and fail there (or, for go-cqhttp, be sent as
    the text ``123``). Data values are not restricted beyond JSON, which
    :func:`onebot_ref.codec.dumps` checks: the builders here send strings, as
    strict implementations want (Lagrange refuses an int ``at.qq``), but
    go-cqhttp and NapCat take numbers too, and NapCat's ``json`` segment takes
    an object.

    Args:
        message: what the caller passed as ``message``.
        path: how the error names the value, such as ``messages[2].data.content``.

    Raises:
        EncodeError: the message names the bad part and how to send it instead.
    """
    if isinstance(message, str):
        return
    if isinstance(message, dict):
        _validate_segment(message, path)
        return
    if not isinstance(message, list | tuple):
        raise EncodeError(
            f"{path} is {message!r:.40} (type {type(message).__name__}), not a message; send "
            "a str, a segment such as message.text('hi'), or a list of segments",
            path,
        )
    for index, item in enumerate(message):
        where = f"{path}[{index}]"
        if isinstance(item, str):
            raise EncodeError(
                f"{where} is the text {item!r:.40}, but a message list holds segments only; "
                "wrap text in message.text(), or send one str",
                where,
            )
        if not isinstance(item, dict):
            raise EncodeError(
                f"{where} is {item!r:.40} (type {type(item).__name__}), not a segment; a segment "
                "is a dict {'type': str, 'data': dict}, as message.text() and friends build",
                where,
            )
        _validate_segment(item, where)


def _validate_segment(seg: dict[Any, Any], path: str) -> None:
    type_ = seg.get("type")
    if not isinstance(type_, str) or not type_:
        raise EncodeError(
            f"{path} has no segment type ('type' is {type_!r:.40}); a segment is a dict "
            "{'type': str, 'data': dict}, as message.text() and friends build",
            path,
        )
    data = seg.get("data")
    if not isinstance(data, dict):
        found = f"is {data!r:.40}, not a dict" if "data" in seg else "is missing"
        raise EncodeError(
            f"{path}.data {found}; a {type_!r} segment is "
            f"{{'type': {type_!r}, 'data': {{...}}}} ({{}} when it has no parameters)",
            f"{path}.data",
        )
    if type_ == "node" and "content" in data:
        validate(data["content"], f"{path}.data.content")


def plain_text(message: Any) -> str:
    """The text segments of a message joined together, without any CQ code."""
    return "".join(
        str((seg.get("data") or {}).get("text", ""))
        for seg in normalize(message)
        if seg.get("type") == "text"
    )


# Builders for every standard segment type in spec message/segment.md. Values
# are sent as strings, as the spec and strict implementations (Lagrange) want.


def _flag(value: bool) -> str:
    return "1" if value else "0"


def text(text: str) -> Segment:
    """Plain text."""
    return {"type": "text", "data": {"text": text}}


def face(id: int | str) -> Segment:
    """A QQ built-in face."""
    return segment("face", id=str(id))


def _media(type_: str, file: str, cache: bool, proxy: bool, timeout: int | None) -> Segment:
    timeout_str = None if timeout is None else str(timeout)
    return segment(type_, file=file, cache=_flag(cache), proxy=_flag(proxy), timeout=timeout_str)


def image(
    file: str,
    *,
    flash: bool = False,
    cache: bool = True,
    proxy: bool = True,
    timeout: int | None = None,
) -> Segment:
    """An image: a file name, ``file:///`` URI, ``http(s)://`` URL or ``base64://`` data."""
    seg = _media("image", file, cache, proxy, timeout)
    if flash:
        seg["data"]["type"] = "flash"
    return seg


def record(
    file: str,
    *,
    magic: bool = False,
    cache: bool = True,
    proxy: bool = True,
    timeout: int | None = None,
) -> Segment:
    """A voice message; ``magic`` turns on the voice changer."""
    seg = _media("record", file, cache, proxy, timeout)
    seg["data"]["magic"] = _flag(magic)
    return seg


def video(
    file: str, *, cache: bool = True, proxy: bool = True, timeout: int | None = None
) -> Segment:
    """A short video."""
    return _media("video", file, cache, proxy, timeout)


def at(qq: int | str) -> Segment:
    """Mention a user; ``"all"`` mentions everyone."""
    return segment("at", qq=str(qq))


def rps() -> Segment:
    """Rock-paper-scissors magic emoji."""
    return segment("rps")


def dice() -> Segment:
    """Dice magic emoji."""
    return segment("dice")


def shake() -> Segment:
    """Window shake (send only)."""
    return segment("shake")


def poke(type: int | str, id: int | str) -> Segment:
    """Poke, with Mirai's PokeMessage ``type`` and ``id``."""
    return segment("poke", type=str(type), id=str(id))


def anonymous(*, ignore: bool = False) -> Segment:
    """Send this group message anonymously (``ignore``: send normally if impossible)."""
    return segment("anonymous", ignore=_flag(ignore))


def share(url: str, title: str, content: str | None = None, image: str | None = None) -> Segment:
    """A link card."""
    return segment("share", url=url, title=title, content=content, image=image)


def contact(type: str, id: int | str) -> Segment:
    """Recommend a friend (``type="qq"``) or a group (``type="group"``)."""
    return segment("contact", type=type, id=str(id))


def location(
    lat: float | str, lon: float | str, title: str | None = None, content: str | None = None
) -> Segment:
    """A location."""
    return segment("location", lat=str(lat), lon=str(lon), title=title, content=content)


def music(type: str, id: int | str) -> Segment:
    """Share a song from ``qq``, ``163`` or ``xm`` (send only)."""
    return segment("music", type=type, id=str(id))


def custom_music(
    url: str, audio: str, title: str, content: str | None = None, image: str | None = None
) -> Segment:
    """A custom music share (send only)."""
    return segment(
        "music", type="custom", url=url, audio=audio, title=title, content=content, image=image
    )


def reply(id: int | str) -> Segment:
    """Quote the message with this id."""
    return segment("reply", id=str(id))


def forward(id: str) -> Segment:
    """A merged-forward message by id; fetch its content with ``get_forward_msg``.

    The spec receives it only. NapCat and Lagrange also send it: Lagrange's
    ``send_forward_msg`` answers the id (``resid``) to send this way.
    """
    return segment("forward", id=str(id))


def node(id: int | str) -> Segment:
    """A forward node that references an existing message (send only)."""
    return segment("node", id=str(id))


def custom_node(user_id: int | str, nickname: str, content: Any) -> Segment:
    """A custom forward node; ``content`` is a message (string or segments).

    Nodes nest: ``content`` may hold nodes itself, a forward inside a forward
    (NapCat sends it as one). In a CQ string ``content`` becomes an escaped CQ
    string: :func:`normalize` of it gives the segments back. Lagrange's
    documentation names the fields ``uin`` and ``name``; NapCat reads either
    spelling (pass ``segment("node", uin=..., name=..., content=...)`` for Lagrange).
    """
    body = content if isinstance(content, str) else normalize(content)
    return segment("node", user_id=str(user_id), nickname=nickname, content=body)


def xml(data: str) -> Segment:
    """A rich XML message."""
    return segment("xml", data=data)


def json_card(data: str | dict[str, Any]) -> Segment:
    """A rich JSON message; ``data`` is sent as a JSON *string*, as the spec requires.

    Raises:
        EncodeError: ``data`` is not JSON (a NaN, a set…), which no QQ client could read.
    """
    if not isinstance(data, str):
        try:
            data = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise EncodeError(
                f"json_card data is not JSON ({exc}); pass a dict of JSON values or a str"
            ) from None
    return segment("json", data=data)


# Segments beyond the standard, as NapCat and Lagrange send and accept them
# (NapCatQQ src/onebot/types/message.ts, Lagrange.Doc Segment/Extend).


def file(file: str, name: str | None = None) -> Segment:
    """A file sent as a message (NapCat, LLOneBot): a local path, URL or ``base64://``.

    Received ``file`` segments also carry ``file_id``, ``file_size`` and
    sometimes ``url``; Lagrange and go-cqhttp send files with
    ``upload_group_file`` / ``upload_private_file`` instead.
    """
    return segment("file", file=file, name=name)


def mface(emoji_id: str, emoji_package_id: int, key: str, summary: str | None = None) -> Segment:
    """A QQ market face (商城表情): NapCat and Lagrange, as they report it on receive.

    ``emoji_package_id`` stays a number: both declare it an integer (Lagrange
    refuses a string), unlike the other values here.
    """
    return segment(
        "mface", emoji_id=str(emoji_id), emoji_package_id=emoji_package_id, key=key, summary=summary
    )


def markdown(content: str) -> Segment:
    """A markdown message (NapCat; QQ shows it only where the account may send markdown)."""
    return segment("markdown", content=content)
