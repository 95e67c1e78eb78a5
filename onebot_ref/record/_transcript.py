"""The recorder's transcript: one JSON object per line, for every frame and request that crossed.

A line says when (``t``, Unix seconds), in which mode (``mode``, the bot's
side as the demo names it: ``ws-server`` for reverse WebSocket, ``ws-client``
forward, ``http-client`` the HTTP API, ``http-server`` HTTP POST), on which
connection (``conn``, counted from 1 per recorder; a reconnection is a new
number), which way (``dir``: ``"onebot → bot"`` or ``"bot → onebot"``, as in
FakeOneBot's own transcript) and what (``kind``)::

    {"t": …, "mode": "ws-server", "conn": 1, "dir": "onebot → bot", "kind": "open",
     "target": "/?access_token=***", "headers": {"Authorization": "Bearer ***", …}}
    {"t": …, "mode": "ws-server", "conn": 1, "dir": "onebot → bot", "kind": "message",
     "data": {"post_type": "message", …}}
    {"t": …, "mode": "ws-server", "conn": 1, "dir": "bot → onebot", "kind": "close",
     "code": 1000, "reason": ""}
    {"t": …, "mode": "http-client", "conn": 2, "dir": "bot → onebot", "kind": "request",
     "method": "POST", "target": "/send_msg", "headers": {…}, "data": {…}}
    {"t": …, "mode": "http-client", "conn": 2, "dir": "onebot → bot", "kind": "response",
     "status": 200, "headers": {…}, "data": {"status": "ok", …}}

A payload that is JSON is kept as its value (``data``), other text as
``text``, anything else as ``base64``. The ``open`` line is the WebSocket
handshake (the request of whoever dialled); ``error`` lines say why a relay
failed (``reason``).

**No secrets.** The relay passes credentials on unchanged; the transcript
keeps none: ``Authorization`` keeps its scheme (``Bearer ***``),
``X-Signature`` its algorithm (``sha1=***``), and every request target and
header value goes through :func:`onebot_ref.codec.redact` (the one
redaction: ``access_token=***``). A payload is kept as it came: OneBot
frames carry no credential (an implementation's ``get_credentials`` answer
would be the exception; don't record a session where the bot asks for one).

It owns the line format, writing and reading it. It knows nothing of sockets.
"""

import base64
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import IO, Any

from ..codec import loads, redact
from ..errors import DecodeError

__all__ = [
    "BOT_TO_ONEBOT",
    "ONEBOT_TO_BOT",
    "Transcript",
    "payload_fields",
    "read_transcript",
    "redact_headers",
]

ONEBOT_TO_BOT = "onebot → bot"
BOT_TO_ONEBOT = "bot → onebot"
KINDS = ("open", "message", "close", "request", "response", "error")
CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "x-signature", "cookie")
MAX_LINE = 64 * 2**20  # bytes per transcript line read back: a member list of several MiB fits

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def redact_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The header fields as a dict (names as they came), with no credential left in them.

    A credential header keeps only what says how it was sent: the scheme of an
    ``Authorization`` (``Bearer ***``, ``Token ***``; go-cqhttp and NapCat
    differ), the algorithm of an ``X-Signature`` (``sha1=***``). Every other
    value goes through :func:`~onebot_ref.codec.redact`.
    """
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name.lower() in CREDENTIAL_HEADERS:
            separator = {"cookie": "\0", "x-signature": "="}.get(name.lower(), " ")
            scheme, sep, rest = value.partition(separator)  # a cookie has no scheme to keep
            if sep and rest.strip():
                shown = f"{scheme}{sep}***"
            elif sep or not value.strip():  # "Bearer " alone (NapCat with no token): no secret
                shown = value
            else:  # a bare credential
                shown = "***"
        else:
            shown = redact(value)
        fields[name] = f"{fields[name]}, {shown}" if name in fields else shown
    return fields


def payload_fields(payload: bytes, *, binary: bool = False) -> dict[str, Any]:
    """How a payload is kept: ``data`` (its JSON value), ``text``, or ``base64``."""
    if not binary and payload:
        try:
            return {"data": loads(payload)}
        except DecodeError:
            pass
        try:
            return {"text": payload.decode("utf-8")}
        except UnicodeDecodeError:
            pass
    if not payload:
        return {}
    return {"base64": base64.b64encode(payload).decode("ascii")}


class Transcript:
    """A JSONL transcript being written: one line per :meth:`write`, from any thread.

    Each line is written and flushed at once, so that a recorder stopped by
    Ctrl+C (or killed) leaves every line it took. Several relays (the HTTP
    API and HTTP POST of one session) may share one transcript.

    Args:
        path: the file, created or appended to; or an open text file.
    """

    def __init__(self, path: "str | os.PathLike[str] | IO[str]") -> None:
        if isinstance(path, str | os.PathLike):
            self.file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115  (close())
            self._owned = True
        else:
            self.file = path
            self._owned = False
        self.lines = 0
        self._conns = 0
        self._lock = threading.Lock()

    def next_conn(self) -> int:
        """A new connection number (1, 2, …), shared by every relay writing here."""
        with self._lock:
            self._conns += 1
            return self._conns

    def write(self, mode: str, conn: int, direction: str, kind: str, **fields: Any) -> None:
        """Write one line (see the module docstring); never raises for a full disk, logs it."""
        entry = {"t": round(time.time(), 6), "mode": mode, "conn": conn, "dir": direction}
        entry["kind"] = kind
        entry.update(fields)
        line = _encoder.encode(entry) + "\n"
        with self._lock:
            if self.file.closed:
                return
            self.file.write(line)
            self.file.flush()
            self.lines += 1

    def close(self) -> None:
        with self._lock:
            if self._owned and not self.file.closed:
                self.file.close()

    def __enter__(self) -> "Transcript":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_transcript(
    source: "str | os.PathLike[str] | Iterable[Mapping[str, Any]]",
) -> list[dict[str, Any]]:
    """The entries of a transcript: a JSONL file's path, or entries already read.

    Raises:
        DecodeError: a line that is not a transcript entry (its number says which).
        OSError: the file cannot be read.
    """
    if not isinstance(source, str | os.PathLike):
        entries = [dict(entry) for entry in source]
        for number, entry in enumerate(entries, 1):
            _check(entry, number)
        return entries
    entries = []
    with open(source, encoding="utf-8") as file:
        number = 0
        while line := file.readline(MAX_LINE + 1):
            number += 1
            if len(line) > MAX_LINE:
                raise DecodeError(f"line {number} of {source} is over {MAX_LINE} bytes")
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise DecodeError(
                    f"line {number} of {source} is not JSON ({exc}); is this a recorder transcript?"
                ) from None
            _check(entry, number)
            entries.append(entry)
    return entries


def _check(entry: Any, number: int) -> None:
    if (
        not isinstance(entry, dict)
        or entry.get("kind") not in KINDS
        or entry.get("dir") not in (ONEBOT_TO_BOT, BOT_TO_ONEBOT)
    ):
        raise DecodeError(
            f"transcript entry {number} has no kind ({'/'.join(KINDS)}) and dir "
            f"({ONEBOT_TO_BOT!r} or {BOT_TO_ONEBOT!r}); write it with python -m onebot_ref.record"
        )
