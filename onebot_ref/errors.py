"""Every exception onebot_ref raises, in one tree.

::

    OneBotError
    ├── NetworkError (also OSError)       the transport failed: refused, reset, closed
    │   └── NotConnected                  no live connection to send this call on
    ├── ApiTimeout (also TimeoutError)    no response in time; the action MAY have run
    ├── ConversationTimeout (also         ask() / wait_for(): no matching event in time
    │   TimeoutError)
    ├── SendLimited (also TimeoutError)   a message would wait past the send limit's max_wait
    ├── AuthError                         401 missing / 403 wrong token or signature
    ├── ActionFailed                      the implementation answered status "failed"
    │   └── ApiNotAvailable               unknown action (HTTP 404, retcode 404 / 1404)
    ├── ProtocolError                     the peer broke the wire protocol (.close_code)
    ├── DecodeError (also ValueError)     bytes that are not the JSON we expect
    ├── EncodeError (also TypeError,      a value we refuse to put on the wire: not JSON,
    │   and ValueError)                   or not a message; nothing was sent
    ├── ConfigError (also ValueError)     an argument that cannot work: fix the call
    └── UsageError (also ValueError)      a command's arguments do not parse (its usage= is sent)

Catch ``OneBotError`` for "anything from this library", or a built-in base
(``OSError``, ``TimeoutError``, ``ValueError``, ``TypeError``) if you only know the stdlib.
"""

from typing import Any

__all__ = [
    "ActionFailed",
    "ApiNotAvailable",
    "ApiTimeout",
    "AuthError",
    "ConfigError",
    "ConversationTimeout",
    "DecodeError",
    "EncodeError",
    "NetworkError",
    "NotConnected",
    "OneBotError",
    "ProtocolError",
    "SendLimited",
    "UsageError",
]


class OneBotError(Exception):
    """Base class of every error raised by onebot_ref."""


class NetworkError(OneBotError, OSError):
    """The connection to the peer failed or was lost."""


class NotConnected(NetworkError):
    """There is no live connection to send the call on (or it dropped while we waited)."""


class ApiTimeout(OneBotError, TimeoutError):
    """No response arrived in time. The action may still have been carried out."""

    def __init__(self, action: str, elapsed: float, echo: Any = None) -> None:
        self.action = action
        self.elapsed = elapsed
        self.echo = echo
        super().__init__(
            f"no response to {action!r} after {elapsed:.1f}s; "
            "the implementation may still have carried it out, so check before retrying"
        )


class AuthError(OneBotError):
    """Authentication failed: 401 (no credential) or 403 (wrong token or signature)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class ActionFailed(OneBotError):
    """The implementation ran the action and reported failure.

    Attributes:
        action: the action name that was called.
        retcode: the envelope's ``retcode`` (informational; implementations disagree).
        message: the first non-empty of ``wording``, ``message`` and ``msg``.
        response: the raw response dict, unchanged.
    """

    def __init__(
        self,
        action: str,
        retcode: Any = None,
        message: str = "",
        response: dict[str, Any] | None = None,
    ) -> None:
        self.action = action
        self.retcode = retcode
        self.message = message
        self.response = response if response is not None else {}
        text = f"{action} failed with retcode {retcode}"
        super().__init__(f"{text}: {message}" if message else text)


class ApiNotAvailable(ActionFailed):
    """The implementation does not know this action (HTTP 404, retcode 404 or 1404)."""


class ProtocolError(OneBotError):
    """The peer broke the protocol; ``close_code`` is the WebSocket close code to send."""

    def __init__(self, message: str, close_code: int = 1002) -> None:
        self.close_code = close_code
        super().__init__(message)


class DecodeError(OneBotError, ValueError):
    """Input that is not valid UTF-8 JSON of the expected shape."""


class EncodeError(OneBotError, TypeError, ValueError):
    """A value that cannot go onto the wire; raised before anything is sent.

    Not JSON (NaN, a ``set``, a non-string key) or not a message (``message=123``).
    ``path`` says where in the value, such as ``message[1].data.qq`` ("" for the whole).
    Both a ``TypeError`` and a ``ValueError``, as ``json`` raises either for these.
    """

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(message)


class ConfigError(OneBotError, ValueError):
    """An argument that cannot work as given, refused before anything touches the network.

    Host and port in one string, a port past 65535, an access token that no HTTP
    header can carry (a control character, CR/LF, whitespace at either end, or empty).
    """


class ConversationTimeout(OneBotError, TimeoutError):
    """``ask()`` or ``wait_for()`` saw no matching event in time (or too many were waiting)."""


class SendLimited(OneBotError, TimeoutError):
    """A message would have waited longer than the send limit's ``max_wait``; it was not sent."""


class UsageError(OneBotError, ValueError):
    """A command's arguments do not parse (an open quote); the command's ``usage=`` is sent."""
