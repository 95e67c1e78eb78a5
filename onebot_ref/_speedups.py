"""Optional C accelerators for large messages, picked once at import time.

Two costs on a large message have a floor in pure Python: unmasking what a
client sends (RFC 6455 section 5.3, :func:`onebot_ref.framer.apply_mask`, about
0.9 GB/s at best) and JSON (:func:`onebot_ref.codec.loads` and
:func:`~onebot_ref.codec.dumps`, 1-2 ms per MiB). ``pip install
"onebot-ref[speedups]"`` brings two C implementations that take over when
they can be imported:

* ``websockets.speedups.apply_mask`` for masking (tens of GB/s);
* ``orjson`` for JSON, where it gives the same answer as the pure path. The
  codec decides per input when it may use it and falls back to the pure path
  otherwise (integers beyond 64 bits, lone surrogates, floats, NaN...), so the
  codec's contract holds with and without it: see ``codec._same_as_pure``.

The pure path stays the reference: the tests run the codec and the framer both
ways and compare them (hypothesis). Nothing else changes for the user; one
DEBUG line on the ``onebot_ref`` logger says which path is active.

A large text message is read twice on its way in: the framer checks it is UTF-8
(RFC 6455 section 8.1, close 1007 otherwise), then the codec decodes it again
for JSON; for CJK text each pass costs about 1 ms per MiB. So the framer keeps
what its check produced -- the decoded text, or with orjson the parsed value,
orjson having checked the UTF-8 as it parsed -- and ``codec.loads`` of that
same payload object, on the same thread, starts from it (:func:`remember`,
:func:`recall`). Nothing is decided differently: the check still runs on every
message, and a miss just reads the payload again.

The switch is internal, for the tests and the benchmarks: :func:`use`
``(False)`` forces the pure path, ``use(True)`` takes what is installed. An
environment variable ``ONEBOT_REF_PURE=1`` starts with the pure path.
"""

import importlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("onebot_ref")

Masker = Callable[[bytes | bytearray | memoryview, bytes], bytes]


class Accelerators:
    """The accelerators in use, read at each call (so :func:`use` acts at once); None: pure."""

    def __init__(self) -> None:
        self.mask: Masker | None = None
        self.loads: Callable[[bytes | bytearray | memoryview | str], Any] | None = None
        self.dumps: Callable[[Any], bytes] | None = None
        self.name = "masking: pure Python; JSON: pure Python"


active = Accelerators()


def _module(name: str) -> Any:
    """The module ``name``, or None when it is not installed (both are optional)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def use(enabled: bool) -> str:
    """Switch the accelerators on (those installed) or off; return which path is active.

    The returned text is what the DEBUG line says, e.g. ``"masking: websockets.speedups;
    JSON: orjson 3.10.0"`` or ``"masking: pure Python; JSON: pure Python"``.
    """
    speedups = _module("websockets.speedups") if enabled else None  # absent from pure builds
    orjson = _module("orjson") if enabled else None
    active.mask = speedups.apply_mask if speedups is not None else None
    active.loads = orjson.loads if orjson is not None else None
    active.dumps = orjson.dumps if orjson is not None else None
    masking = "websockets.speedups" if speedups is not None else "pure Python"
    json_text = f"orjson {orjson.__version__}" if orjson is not None else "pure Python"
    active.name = f"masking: {masking}; JSON: {json_text}"
    log.debug("speedups: %s", active.name)
    return active.name


# What the framer's UTF-8 check of the last large text message produced, per receive thread:
# (payload, "text" or "json", value); taken by codec.loads, so at most one message is held.
_memo = threading.local()


def remember(payload: bytes, kind: str, value: Any) -> None:
    """Keep ``value`` for :func:`recall`: ``kind`` "text" (the decoded str) or "json" (orjson's)."""
    _memo.last = (payload, kind, value)


def recall(data: object) -> tuple[str, Any]:
    """``(kind, value)`` remembered for this very ``data`` object on this thread, once.

    ``("", None)`` when nothing is: another object, another thread, or taken already.
    """
    last = getattr(_memo, "last", None)
    if last is None or last[0] is not data:
        return "", None
    _memo.last = None
    return last[1], last[2]


use(os.environ.get("ONEBOT_REF_PURE", "") in ("", "0"))
