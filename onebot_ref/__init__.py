"""onebot_ref: the bot side of OneBot 11, synchronous, in plain Python.

A bot talks to a OneBot 11 implementation (NapCat, go-cqhttp, Lagrange,
LLOneBot…) in four ways; onebot_ref has one module for each:

============  ====================  ===================  =====================
module        OneBot 11 name        the implementation   we are
============  ====================  ===================  =====================
http_client   HTTP API              HTTP server          HTTP client
http_server   HTTP POST             POSTs events to us   HTTP server
ws_client     forward WebSocket     WebSocket server     WebSocket client
ws_server     reverse WebSocket     dials our URL        WebSocket server
============  ====================  ===================  =====================

Everything a bot needs is one import away, from the package or from its module::

    from onebot_ref import WsServer, OneBotError        # the same objects as
    from onebot_ref.ws_server import WsServer            # these
    from onebot_ref.testing import FakeOneBot            # a fake implementation for tests

The modes and the fake are imported on first use (PEP 562), so that ``python
-m onebot_ref.ws_server`` and friends run without importing themselves twice.

The types an editor completes come from the package too: ``TypedDict`` types for
the standard events (``GroupMessageEvent``, ``NoticeEvent``…) and API results
(``MessageId``, ``GroupInfo``, ``GroupMemberInfo``…), and ``Literal`` aliases
(``Role``, ``Flavor``…). They only annotate: at runtime every event and result
is the plain ``dict`` from the wire. They live in the private ``_types`` so
that the ten public modules stay the ones that do something; import them from
``onebot_ref``::

    from onebot_ref import GroupMessageEvent, WsServer

    @bot.on("message.group")
    def greet(event: GroupMessageEvent) -> None:
        print(event["sender"].get("card"))    # mypy: an unknown key is an error

What ``ls onebot_ref`` shows is the architecture: the four modes; the pure
core they share, :mod:`codec` (JSON envelopes, auth), :mod:`message`
(segments and CQ codes), :mod:`registry` (``on("message.group")``),
:mod:`api` (one method per standard action) and :mod:`errors`; :mod:`framer`
(RFC 6455 as pure functions, the piece to copy); the ``testing`` and
``doctor`` packages; the ``demo`` command. Modules whose names start with
``_`` are machinery: import from them at your own risk.

Thread model: each mode has one receive thread per connection. It only parses
and hands each event to the registry's bounded worker pool; it never runs a
handler itself. Handlers can therefore call the API (which waits for a
response that a receive thread must deliver) without deadlocking, and a slow
handler never stalls the socket. Every blocking call takes a timeout.
"""

from typing import TYPE_CHECKING, Any

from . import codec, message
from .api import OneBotApi
from .errors import (
    ActionFailed,
    ApiNotAvailable,
    ApiTimeout,
    AuthError,
    ConfigError,
    ConversationTimeout,
    DecodeError,
    EncodeError,
    NetworkError,
    NotConnected,
    OneBotError,
    ProtocolError,
    SendLimited,
    UsageError,
)
from .registry import Registry, SendLimit, split_args

if TYPE_CHECKING:  # what the lazy names below are, for editors and type checkers
    from ._tls import host_port_arg
    from ._types import (
        ActionResult,
        Anonymous,
        CanSend,
        ClientRole,
        Cookies,
        Credentials,
        CsrfToken,
        Event,
        File,
        Flavor,
        ForwardMessage,
        FriendInfo,
        FriendRequestEvent,
        GroupInfo,
        GroupMemberInfo,
        GroupMessageEvent,
        GroupRequestEvent,
        GroupSender,
        HeartbeatEvent,
        HonorInfo,
        Id,
        LifecycleEvent,
        LoginInfo,
        MessageEvent,
        MessageId,
        MessageInfo,
        MessageType,
        MetaEvent,
        NoticeEvent,
        PrivateMessageEvent,
        RequestEvent,
        Role,
        Segment,
        Sender,
        Sex,
        Status,
        StrangerInfo,
        VersionInfo,
    )
    from .http_client import HttpClient
    from .http_server import HttpServer
    from .testing import FakeOneBot
    from .ws_client import WsClient
    from .ws_server import AmbiguousBot, Bot, WsServer

__version__ = "0.2.0"

__all__ = [
    "ActionFailed",
    "ActionResult",
    "AmbiguousBot",
    "Anonymous",
    "ApiNotAvailable",
    "ApiTimeout",
    "AuthError",
    "Bot",
    "CanSend",
    "ClientRole",
    "ConfigError",
    "ConversationTimeout",
    "Cookies",
    "Credentials",
    "CsrfToken",
    "DecodeError",
    "EncodeError",
    "Event",
    "FakeOneBot",
    "File",
    "Flavor",
    "ForwardMessage",
    "FriendInfo",
    "FriendRequestEvent",
    "GroupInfo",
    "GroupMemberInfo",
    "GroupMessageEvent",
    "GroupRequestEvent",
    "GroupSender",
    "HeartbeatEvent",
    "HonorInfo",
    "HttpClient",
    "HttpServer",
    "Id",
    "LifecycleEvent",
    "LoginInfo",
    "MessageEvent",
    "MessageId",
    "MessageInfo",
    "MessageType",
    "MetaEvent",
    "NetworkError",
    "NotConnected",
    "NoticeEvent",
    "OneBotApi",
    "OneBotError",
    "PrivateMessageEvent",
    "ProtocolError",
    "Registry",
    "RequestEvent",
    "Role",
    "Segment",
    "SendLimit",
    "SendLimited",
    "Sender",
    "Sex",
    "Status",
    "StrangerInfo",
    "UsageError",
    "VersionInfo",
    "WsClient",
    "WsServer",
    "__version__",
    "codec",
    "host_port_arg",
    "message",
    "split_args",
]

# The names imported on first use (PEP 562): name -> the module that defines it.
_LAZY = {
    "ActionResult": "_types",
    "AmbiguousBot": "ws_server",
    "Anonymous": "_types",
    "Bot": "ws_server",
    "CanSend": "_types",
    "ClientRole": "_types",
    "Cookies": "_types",
    "Credentials": "_types",
    "CsrfToken": "_types",
    "Event": "_types",
    "FakeOneBot": "testing",
    "File": "_types",
    "Flavor": "_types",
    "ForwardMessage": "_types",
    "FriendInfo": "_types",
    "FriendRequestEvent": "_types",
    "GroupInfo": "_types",
    "GroupMemberInfo": "_types",
    "GroupMessageEvent": "_types",
    "GroupRequestEvent": "_types",
    "GroupSender": "_types",
    "HeartbeatEvent": "_types",
    "HonorInfo": "_types",
    "HttpClient": "http_client",
    "HttpServer": "http_server",
    "Id": "_types",
    "LifecycleEvent": "_types",
    "LoginInfo": "_types",
    "MessageEvent": "_types",
    "MessageId": "_types",
    "MessageInfo": "_types",
    "MessageType": "_types",
    "MetaEvent": "_types",
    "NoticeEvent": "_types",
    "PrivateMessageEvent": "_types",
    "RequestEvent": "_types",
    "Role": "_types",
    "Segment": "_types",
    "Sender": "_types",
    "Sex": "_types",
    "Status": "_types",
    "StrangerInfo": "_types",
    "VersionInfo": "_types",
    "WsClient": "ws_client",
    "WsServer": "ws_server",
    "host_port_arg": "_tls",
}


def __getattr__(name: str) -> Any:
    """Import a mode (or the fake) the first time one of its names is asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module 'onebot_ref' has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # next time, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
