"""The wire envelopes shared by all four modes: JSON, API requests and responses, auth.

Every OneBot 11 payload is one UTF-8 JSON object (spec ``communication/README.md``).
Three shapes cross the wire:

* an **event**, which always has ``post_type``::

      {"time": 1700000000, "self_id": 10001, "post_type": "message", ...}

* an **action request** (WebSocket; over HTTP the action is the URL path)::

      {"action": "send_private_msg", "params": {"user_id": 1, "message": "hi"}, "echo": "7"}

* an **action response**, whose ``echo`` is copied from the request over WebSocket::

      {"status": "ok", "retcode": 0, "data": {"message_id": 5}, "echo": "7"}

Success is decided from ``status`` alone (``ok``; or ``async`` with retcode 1),
never from ``retcode`` alone: Lagrange sends free text in ``status`` with retcode 0,
and NapCat sends retcode 200 with status ``failed``.

Ids are never coerced: Python ints are unbounded and ``json`` never routes them
through float, so large, negative and string ids pass through unchanged.

Going out we are strict where we read leniently: :func:`dumps` writes only
JSON (no ``NaN``, no non-string keys), and :func:`encode_request`, which every
transport sends its calls through, also checks that a ``message`` is a message.
Both raise :class:`~onebot_ref.errors.EncodeError` before a byte is sent.

Every event, action and response a bot receives or sends is also logged at
DEBUG on the ``onebot_ref.wire`` logger (:func:`log_frame`), in all four modes:
``logging.getLogger("onebot_ref.wire").setLevel(logging.DEBUG)`` and a handler
show the traffic; ``python -m onebot_ref.demo`` prints it as its transcript.

This module is pure: no sockets, no threads, stdlib only.
"""

import hashlib
import hmac
import json
import logging
import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from . import _speedups
from .errors import (
    ActionFailed,
    ApiNotAvailable,
    AuthError,
    ConfigError,
    DecodeError,
    EncodeError,
)
from .message import validate

__all__ = [
    "action_request",
    "check_signature",
    "dumps",
    "event_name",
    "is_event",
    "loads",
    "redact",
    "sign",
    "unwrap_response",
]

# allow_nan=False: json's default writes NaN and Infinity, which are not JSON (RFC 8259
# section 6); JavaScript's JSON.parse (NapCat) and Go's encoding/json refuse the whole frame.
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_wire_log = logging.getLogger("onebot_ref.wire")  # see log_frame
_decoder = json.JSONDecoder()
_lenient_decoder = json.JSONDecoder(strict=False)

# retcodes meaning "no such action": go-cqhttp and Lagrange send 404 even over
# WebSocket, where the spec (communication/ws.md) says 1404.
NOT_FOUND_RETCODES = (404, 1404)
# retcodes meaning "authentication failed"; NapCat sends 1403 on forward WS.
AUTH_RETCODES = (1401, 1403)
# NapCat's HTTP API answers an unknown action with HTTP 200 and its catch-all
# retcode 200, so only the text tells: "不支持的Api <action>" (older builds
# "不支持的api"). Its WebSocket servers send retcode 1404 with "不支持的API" (forward)
# or "不支持的Api" (reverse). NapNeko/NapCatQQ: packages/napcat-onebot/network/
# http-server.ts, websocket-server.ts, websocket-client.ts; src/onebot/network/
# passive-http.ts (older). LLOneBot (src/onebot11/connect/http.ts, ws.ts) and
# Lagrange (Lagrange.OneBot/Core/Operation/OperationService.cs) send 404 / 1404.
NAPCAT_NOT_FOUND_PREFIX = "不支持的api"  # compared case-insensitively


def dumps(obj: Any) -> bytes:
    """Encode ``obj`` as compact UTF-8 JSON (non-ASCII text is kept, not ``\\u``-escaped).

    Strict: only what JSON can carry goes out (RFC 8259). That is dicts with
    ``str`` keys, lists, str, int, finite floats, bool and None; a tuple is
    written as an array, as ``json`` does. Everything else is refused rather
    than written the way ``json`` would: ``NaN`` and ``Infinity`` (not JSON;
    JavaScript and Go peers drop the whole frame), and ``int``/``None``/``bool``
    keys (``json`` turns them into strings, so ``{1: "a", "1": "b"}`` would send
    one key twice). Every writer of JSON onto the wire goes through here.

    Raises:
        EncodeError: the message names where the bad value is (``reply``,
            ``message[1].data.qq``) and its ``path`` attribute holds it.
    """
    try:
        return _encode(obj)
    except _Refused as refused:
        where = _where(refused.pieces)
        raise EncodeError(f"{where or 'the value'} {refused.why}", where) from None


def encode_request(action: str, params: dict[str, Any], echo: str | None = None) -> bytes:
    """The bytes of one action request, checked before anything is sent.

    With ``echo`` this is the WebSocket frame ``{"action", "params", "echo"}``;
    without, the HTTP API body (the params alone: the action is the URL path).
    Every transport encodes its calls here, so a bad value fails the same way
    in all of them and never reaches the implementation.

    A ``message`` parameter (and ``messages``, the nodes of NapCat's and
    go-cqhttp's ``send_*_forward_msg``) must be a message (see
    :func:`onebot_ref.message.validate`); every parameter must be JSON
    (see :func:`dumps`).

    Raises:
        EncodeError: the message starts with the action and names the parameter.
    """
    try:
        for key in ("message", "messages"):
            if key in params:
                validate(params[key], key)
        return _encode(params if echo is None else action_request(action, params, echo))
    except EncodeError as exc:
        raise EncodeError(f"{action}: {exc}", exc.path) from None
    except _Refused as refused:
        if echo is not None and refused.pieces[-1:] == ["params"]:
            refused.pieces.pop()  # name the parameter alike in both transports
        where = _where(refused.pieces)
        raise EncodeError(f"{action}: {where or 'params'} {refused.why}", where) from None


class _Refused(Exception):
    """A value JSON cannot carry; ``pieces`` is the path to it, innermost first."""

    def __init__(self, why: str) -> None:
        self.why = why
        self.pieces: list[str | int] = []


def _encode(obj: Any) -> bytes:
    """``obj`` as UTF-8 JSON, or :class:`_Refused` with the path to what JSON cannot carry.

    With the ``speedups`` extra, orjson writes the bytes when :func:`_check` found
    only plain values: it writes those exactly as ``_encoder`` does (compact,
    UTF-8, the same escapes), but floats differently (``1e-7`` for ``1e-07``)
    and subclasses by its own rules. It raises (and ``_encoder`` decides) on
    an integer beyond 64 bits, a lone surrogate or nesting deeper than 254.
    """
    try:
        plain = _check(obj, strings=False)
    except RecursionError:
        raise _Refused("is nested too deeply to encode (or contains itself)") from None
    fast = _speedups.active.dumps
    if plain and fast is not None:
        try:
            return fast(obj)
        except TypeError:  # orjson.JSONEncodeError; the pure path below decides
            pass
    try:
        return _encoder.encode(obj).encode("utf-8")
    except UnicodeEncodeError:
        _check(obj, strings=True)  # find the string that UTF-8 cannot carry, for the message
        raise _Refused("holds text that UTF-8 cannot carry") from None
    except ValueError as exc:  # an int of more digits than sys.get_int_max_str_digits()
        raise _Refused(f"cannot be written as JSON ({exc})") from None


def _check(obj: Any, *, strings: bool) -> bool:
    """Raise :class:`_Refused` at the first value in ``obj`` that JSON cannot carry.

    Returns whether ``obj`` is plain: only ``dict``, ``list``, ``tuple``,
    ``str``, ``int``, ``bool`` and ``None`` of exactly those types, no float
    (what :func:`_encode` may hand to orjson).

    ``strings=True`` also checks that every string is valid Unicode (no lone
    surrogates, which a ``surrogateescape`` decode or a ``"\\ud800"`` escape
    from a peer can leave); only the rare failing encode pays for that.
    """
    kind = type(obj)
    if kind is str:
        if strings:
            try:
                obj.encode("utf-8")
            except UnicodeEncodeError as exc:
                char = obj[exc.start]
                raise _Refused(
                    f"holds a lone surrogate {char!r} that UTF-8 cannot carry; "
                    "decode the text with errors='replace' before sending it"
                ) from None
        return True
    if kind is int or kind is bool or obj is None:
        return True
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise _Refused(
                f"is {obj!r}, which JSON cannot carry; send a finite number, a string or None"
            )
        return False
    if isinstance(obj, dict):
        plain = kind is dict
        for key, value in obj.items():
            if not isinstance(key, str):
                raise _Refused(
                    f"has the key {key!r:.40} (type {type(key).__name__}), but JSON keys are "
                    "strings; convert it with str()"
                )
            try:
                plain = _check(value, strings=strings) and type(key) is str and plain
            except _Refused as refused:
                refused.pieces.append(key)
                raise
        return plain
    if isinstance(obj, list | tuple):
        plain = kind is list or kind is tuple
        for index, value in enumerate(obj):
            try:
                plain = _check(value, strings=strings) and plain
            except _Refused as refused:
                refused.pieces.append(index)
                raise
        return plain
    if isinstance(obj, str | int):  # subclasses such as StrEnum and IntEnum: json writes the value
        return False
    raise _Refused(
        f"is {obj!r:.40} (type {kind.__name__}), which JSON cannot carry; "
        "convert it to a str, int, float, bool, None, list or dict"
    )


def _where(pieces: list[str | int]) -> str:
    """``[1, "data", 0, "message"]`` (innermost first) as ``message[0].data[1]``."""
    where = ""
    for piece in reversed(pieces):
        if isinstance(piece, int):
            where += f"[{piece}]"
        elif piece.isidentifier():
            where += f".{piece}" if where else piece
        else:
            where += f"[{piece!r}]"
    return where


def log_frame(direction: str, frame: Any) -> None:
    """Log one frame the bot ``"received"`` or ``"sent"``, at DEBUG on ``onebot_ref.wire``.

    ``frame`` is the JSON as bytes, text or a decoded object. Unless that logger
    is at DEBUG this costs one level check: nothing is encoded.
    """
    if not _wire_log.isEnabledFor(logging.DEBUG):
        return
    if isinstance(frame, bytes | bytearray):
        text = bytes(frame).decode("utf-8", "replace")
    elif isinstance(frame, str):
        text = frame
    else:
        try:
            text = _encoder.encode(frame)
        except (TypeError, ValueError):  # not JSON after all: show it anyway
            text = repr(frame)
    _wire_log.debug("%s %s", direction, text)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode one JSON value from ``data``.

    Surrounding whitespace is ignored (go-cqhttp ends replies with a newline).
    Raw control characters inside strings, which NapCat emits in ``raw_info``,
    are accepted on a second, lenient try.

    With the ``speedups`` extra, orjson reads it first; its answer stands only
    where it is the pure path's (see :func:`_same_as_pure`), and anything it
    refuses goes to the pure path, which decides (NaN, raw control
    characters, lone surrogates, non-JSON whitespace, errors and their messages).

    Raises:
        DecodeError: not UTF-8, or not JSON; the message has the offset and an excerpt.
    """
    kind, known = _speedups.recall(data)  # what the framer's UTF-8 check of it produced
    if kind == "json" and _same_as_pure(known, 0):
        return known
    if kind == "text":
        data = known  # the same text the decode below gives, already decoded
    fast = _speedups.active.loads if kind == "" else None
    if fast is not None:
        try:
            value = fast(data)
        except (ValueError, TypeError):  # orjson.JSONDecodeError is a ValueError
            pass
        else:
            if _same_as_pure(value, 0):
                return value
    if isinstance(data, str):
        text = data
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"payload is not valid UTF-8 at byte {exc.start}") from None
    text = text.strip()
    try:
        return _decoder.decode(text)
    except json.JSONDecodeError as exc:
        first = exc
    except (ValueError, RecursionError) as exc:  # e.g. an int of 5000 digits, deep nesting
        raise DecodeError(f"payload is not usable JSON: {exc}") from None
    try:
        return _lenient_decoder.decode(text)
    except (ValueError, RecursionError):
        pass
    excerpt = text[max(0, first.pos - 20) : first.pos + 20]
    raise DecodeError(
        f"payload is not JSON: {first.msg} at offset {first.pos} (near {excerpt!r})"
    ) from None


# orjson reads an integer beyond 64 bits as a float of at least this magnitude; json keeps it exact.
_INT64_EDGE = float(2**63)
# Nesting at which json may run out of recursion (RecursionError: a DecodeError) where orjson,
# which allows 1024 levels, does not; deeper values go to the pure path. No OneBot payload nests
# more than a handful of levels.
_FAST_DEPTH = 200


def _same_as_pure(value: Any, depth: int) -> bool:
    """Whether orjson's ``value`` is what the pure path returns for the same input.

    It differs in one way: an integer beyond 64 bits becomes a float (json keeps
    it exact), and every such float is at least 2**63 in magnitude. Floats
    below that, and everything else orjson returns, are the pure path's own
    (the tests compare both paths with hypothesis). Too deep a value is left to
    the pure path too, whose answer may be a :class:`DecodeError`.
    """
    kind = type(value)
    if kind is dict:
        items = value.values()
    elif kind is list:
        items = value
    elif kind is float:
        return bool(-_INT64_EDGE < value < _INT64_EDGE)
    else:
        return True
    if depth >= _FAST_DEPTH:
        return False
    for item in items:
        kind = type(item)
        if (kind is dict or kind is list or kind is float) and not _same_as_pure(item, depth + 1):
            return False
    return True


def is_event(obj: Any) -> bool:
    """Tell an event from an action response: events always carry ``post_type``."""
    return isinstance(obj, dict) and "post_type" in obj


ONEBOT12_TYPES = ("meta", "message", "notice", "request")


def onebot12_impl(obj: Any) -> str | None:
    """If ``obj`` is a OneBot 12 event, the implementation's name ("" if unnamed); else None.

    OneBot 12 (spec ``connect/data-protocol/event.md``) renamed the event
    fields: "``type`` [...] 必须是 ``meta``、``message``、``notice``、``request``
    中的一个" (type must be one of meta, message, notice, request), with
    ``detail_type`` beside it and no ``post_type``. Its first event on every
    WebSocket is ``meta.connect``, which names the implementation in
    ``version.impl``. To a OneBot 11 client such a frame is no event at all.
    """
    if not isinstance(obj, dict) or "post_type" in obj:
        return None
    if obj.get("type") not in ONEBOT12_TYPES or not isinstance(obj.get("detail_type"), str):
        return None
    version = obj.get("version")
    name = obj.get("impl") or (version.get("impl") if isinstance(version, dict) else None)
    return name if isinstance(name, str) else ""


def inband_refusal(frame: Any) -> str | None:
    """How an implementation refused our token *after* the upgrade, if ``frame`` is that.

    Two dialects exist (``ONEBOT11.md``, forward WS): NapCat and LLOneBot send
    an envelope with retcode 1403 (or 1401) and no echo, then close; CQHTTP
    sends the bare text frame ``authorization failed``, then closes. ``frame``
    is the decoded JSON, or the text of a frame that is not JSON. Used by
    ``WsClient`` (which then stops: retrying cannot help) and by the doctor.
    """
    if isinstance(frame, dict):
        if frame.get("retcode") in AUTH_RETCODES and frame.get("echo") in (None, ""):
            text = response_text(frame)
            return f"retcode {frame['retcode']} {text}".rstrip()
        return None
    if isinstance(frame, bytes | bytearray):
        frame = bytes(frame).decode("utf-8", "replace")
    if isinstance(frame, str) and ("authorization" in frame.lower() or "token" in frame.lower()):
        return f"text frame {frame.strip()[:60]!r}"
    return None


# Heartbeat intervals drive a watchdog (3 silent intervals mean a dead link), so the
# number from the wire is clamped to this range, in seconds.
HEARTBEAT_RANGE = (0.1, 86400.0)


def heartbeat_interval(event: dict[str, Any]) -> float | None:
    """Seconds between heartbeats, from a heartbeat event's ``interval`` (ms); None if unusable.

    The number comes off the wire and drives a timer, so only a real number
    above 0 counts: not a bool (``True`` is an int in Python), a string, NaN
    or infinity. It is clamped to :data:`HEARTBEAT_RANGE`: ``1`` would have the
    link declared dead after 3 ms of silence, and ``10**400`` is an int no
    float can hold (dividing it raised ``OverflowError`` in a receive thread).
    None means no watchdog, as for an implementation that sends no heartbeats.
    """
    value = event.get("interval")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 < value < math.inf:  # also false for NaN; int and float compare exactly
        return None
    low, high = HEARTBEAT_RANGE
    return max(low, min(value, high * 1000) / 1000)


def action_request(action: str, params: dict[str, Any] | None, echo: Any) -> dict[str, Any]:
    """Build the WebSocket action frame ``{"action", "params", "echo"}``."""
    return {"action": action, "params": params if params is not None else {}, "echo": echo}


def response_text(resp: dict[str, Any]) -> str:
    """The human text of a response: the first non-empty of ``wording``, ``message``, ``msg``."""
    for key in ("wording", "message", "msg"):
        value = resp.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def unwrap_response(resp: Any, action: str) -> Any:
    """Return the ``data`` of a successful response, or raise the matching error.

    ``status == "ok"`` is success, and so is ``status == "async"`` with retcode 1
    (the action was queued). Anything else raises:

    * retcode 404 / 1404, or NapCat's "不支持的Api" text: :class:`ApiNotAvailable`;
    * retcode 1401 / 1403: :class:`AuthError` (NapCat's in-band auth failure);
    * any other status: :class:`ActionFailed` with retcode and text.

    Raises:
        DecodeError: ``resp`` is not a JSON object.
    """
    if not isinstance(resp, dict):
        raise DecodeError(f"response to {action!r} is not a JSON object: {resp!r:.80}")
    status = resp.get("status")
    retcode = resp.get("retcode")
    if status == "ok" or (status == "async" and retcode == 1):
        return resp.get("data")
    text = response_text(resp)
    if status not in ("failed", None) and not text:
        text = str(status)  # Lagrange puts the reason in "status"
    if retcode in NOT_FOUND_RETCODES or text.lower().startswith(NAPCAT_NOT_FOUND_PREFIX):
        raise ApiNotAvailable(action, retcode, text or "the implementation does not know it", resp)
    if retcode in AUTH_RETCODES:
        raise AuthError(
            f"{action}: authentication failed (retcode {retcode}): {text or 'no reason given'}; "
            "compare the access token on both sides"
        )
    if status is None and not text:
        text = "the response has no status field"
    raise ActionFailed(action, retcode, text, resp)


def http_error(status: int, action: str, body: bytes = b"") -> Exception:
    """The error for a non-200 HTTP API status (spec ``communication/http.md``).

    401/403 become :class:`AuthError`, 404 :class:`ApiNotAvailable`, and the rest
    :class:`ActionFailed` with ``retcode = 1000 + status``, the WebSocket mirror
    the spec defines, so both transports raise the same error for the same failure.
    """
    excerpt = body[:200].decode("utf-8", "replace").strip()
    detail = f" ({excerpt})" if excerpt else ""
    if status == 401:
        return AuthError(
            f"HTTP 401 for {action!r}: the implementation wants an access token and got none; "
            f"set access_token= to the token configured on the OneBot side{detail}",
            status,
        )
    if status == 403:
        return AuthError(
            f"HTTP 403 for {action!r}: the access token was refused; check that the token "
            f"is the same on both sides (NapCat answers 403 for a missing one too){detail}",
            status,
        )
    if status == 404:
        return ApiNotAvailable(action, 1404, f"HTTP 404: no such action or path{detail}")
    return ActionFailed(action, 1000 + status, f"HTTP {status}{detail}")


def event_name(event: dict[str, Any]) -> str:
    """The dotted name handlers register for: ``post_type.detail_type.sub_type``.

    Examples: ``message.group.normal``, ``notice.notify.poke``,
    ``meta_event.heartbeat``, ``notice.group_increase.approve``. Missing or
    non-string parts end the name early, so unknown kinds still get a name.
    The detail type of ``message_sent`` (go-cqhttp, NapCat) is its ``message_type``,
    so own group messages are ``message_sent.group.normal``.
    """
    post_type = event.get("post_type")
    if not isinstance(post_type, str) or not post_type:
        return ""
    parts = [post_type]
    # message_sent (go-cqhttp, NapCat) names its chat kind in message_type;
    # NapCat's message_sent_type is always "self".
    key = "message_type" if post_type == "message_sent" else f"{post_type}_type"
    detail = event.get(key)
    if isinstance(detail, str) and detail:
        parts.append(detail)
        sub_type = event.get("sub_type")
        if isinstance(sub_type, str) and sub_type:
            parts.append(sub_type)
    return ".".join(parts)


def sign(body: bytes, secret: str) -> str:
    """The ``X-Signature`` value for ``body``: ``sha1=`` + HMAC-SHA1 hex over the raw bytes."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha1).hexdigest()
    return f"sha1={digest}"


def check_signature(body: bytes, secret: str, header: str | None) -> bool:
    """Check an ``X-Signature`` header against the raw body, in constant time."""
    if not header:
        return False
    return hmac.compare_digest(sign(body, secret).encode(), header.strip().lower().encode())


def parse_authorization(header: str | None) -> str | None:
    """The token in an ``Authorization`` header, or None if there is none.

    Accepts ``Bearer x`` (spec, NapCat, Lagrange), ``Token x`` (CQHTTP,
    go-cqhttp), either in any case, and a bare token. NapCat sends ``Bearer ``
    with nothing after it when no token is configured: that is "no token".
    Only HTTP's own whitespace (space, tab; RFC 9110 section 5.6.3) is trimmed:
    the value arrives decoded as latin-1, where ``str.strip()`` would also eat
    the 0x85 and 0xA0 bytes that end many UTF-8 characters ("你" is E4 BD A0).
    """
    if not header:
        return None
    value = header.strip(_OWS)
    scheme, _, rest = value.partition(" ")
    if scheme.lower() in ("bearer", "token"):
        token = rest.strip(_OWS)
    elif rest:
        token = value  # unknown scheme word: keep all of it, it cannot match by accident
    else:
        token = scheme
    return token or None


_OWS = " \t"  # RFC 9110 section 5.6.3: OWS = *( SP / HTAB )


def token_matches(expected: str, presented: str | None) -> bool:
    """Compare a presented token with the configured one, as UTF-8 bytes, in constant time.

    The rule, on both sides: a token is its UTF-8 bytes. Clients send those bytes
    in the header and percent-encode them in ``?access_token=``. Servers read
    header bytes as latin-1 (RFC 9110 section 5.5: field values are octets), so a
    header value arrives as one character per byte, while a query value arrives
    already decoded from UTF-8. ``presented`` may be either; :func:`_token_bytes`
    recovers the bytes, and one ``hmac.compare_digest`` compares them.
    """
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), _token_bytes(presented))


def _token_bytes(presented: str) -> bytes:
    """The UTF-8 bytes of the token a header or query value carries.

    A value with a character above U+00FF came decoded (a query): its UTF-8.
    Otherwise its latin-1 bytes are what came; if they are valid UTF-8 they are
    the token's bytes (a header; ASCII is both), else the value came decoded
    with letters from the latin-1 range ("café" in a query): its UTF-8. The one
    ambiguous case is a token that itself reads like UTF-8 taken for latin-1
    (``Ã©``) sent in the query: it is taken as header bytes and does not match.
    """
    try:
        raw = presented.encode("latin-1")
    except UnicodeEncodeError:
        return presented.encode("utf-8", "surrogatepass")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return presented.encode("utf-8")
    return raw


def valid_token(token: str | None) -> str | None:
    """``token`` if an access token can carry it, else a :class:`ConfigError` naming the rule.

    Every client and server constructor runs its ``access_token`` through here.
    A token travels in an HTTP header (RFC 9110 section 5.5), where control
    characters are forbidden (CR and LF would end the header) and whitespace at
    either end is trimmed away, and an empty token is no token at all. Anything
    else goes, non-ASCII included: it travels as UTF-8 (see :func:`token_matches`).
    ``None`` means "no token".

    Raises:
        ConfigError: the token is not a string, is empty, has a control
            character, or has whitespace at either end.
    """
    if token is None:
        return None
    rule = (
        "a token travels in an HTTP header, which allows no control characters "
        "and no whitespace at either end"
    )
    if not isinstance(token, str):
        raise ConfigError(f"access_token must be a str or None, not {type(token).__name__}")
    if not token:
        raise ConfigError("access_token is empty; pass None (or leave it out) for no token")
    for index, char in enumerate(token):
        if unicodedata.category(char) == "Cc":
            raise ConfigError(
                f"access_token has the control character U+{ord(char):04X} at index {index}; {rule}"
            )
    if token[0].isspace() or token[-1].isspace():
        raise ConfigError(f"access_token starts or ends with whitespace; {rule}")
    return token


def mask_token(token: str | None) -> str:
    """A fingerprint safe for logs: the first two characters and the length."""
    if not token:
        return "<none>"
    return f"{token[:2]}…({len(token)} chars)"


_TOKEN_IN_QUERY = re.compile(r"(access_token=)[^&\s\"'#]*", re.IGNORECASE)
_PASSWORD_IN_URL = re.compile(r"(//[^/@:\s\"']*:)[^/@\s\"']*(@)")


def redact(text: str) -> str:
    """``text`` (a URL, a request line, a message quoting one) with its secrets replaced by ``***``.

    The one redaction for everything that is logged or put in an exception:
    each ``access_token=`` value, and the password of a ``//user:password@host``.
    """
    return _PASSWORD_IN_URL.sub(r"\1***\2", _TOKEN_IN_QUERY.sub(r"\1***", text))


def is_websocket_refusal(status: int, headers: Mapping[str, str], body: bytes = b"") -> bool:
    """Whether a plain HTTP request was refused the way WebSocket servers refuse one.

    RFC 6455 section 4.4 answers a request it cannot upgrade with 426 and
    ``Sec-WebSocket-Version``; servers in the wild say it in one of these ways:

    * Node's ``ws`` (NapCat, LLOneBot): 426 ``Upgrade Required`` to anything
      that is not an upgrade;
    * gorilla/websocket (go-cqhttp): 400 or 405 with ``Sec-Websocket-Version: 13``;
    * Python ``websockets``: 426 with ``Upgrade: websocket`` to a GET (a POST
      gets no answer at all);
    * our :class:`~onebot_ref.ws_server.WsServer`: 426, or 400 ``method POST is not GET``.

    ``headers`` must look names up case-insensitively (requests' and http.client's do).
    """
    if status == 426 or "sec-websocket-version" in {name.lower() for name in headers}:
        return True
    if "websocket" in headers.get("Upgrade", "").lower():
        return True
    text = body[:200].decode("utf-8", "replace").lower()
    return status in (400, 405) and ("websocket" in text or "is not get" in text)
