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

Import a mode from its module (``from onebot_ref.ws_server import WsServer``);
the package itself exports only the pure core, so that ``python -m
onebot_ref.ws_server`` and friends run without importing themselves twice.

They share the pure core: :mod:`codec` (JSON envelopes, auth), :mod:`message`
(segments and CQ codes), :mod:`registry` (``on("message.group")``),
:mod:`api` (one method per standard action) and :mod:`errors`.

Thread model: each mode has one receive thread per connection. It only parses
and hands each event to the registry's bounded worker pool; it never runs a
handler itself. Handlers can therefore call the API (which waits for a
response that a receive thread must deliver) without deadlocking, and a slow
handler never stalls the socket. Every blocking call takes a timeout.
"""

from . import codec, message
from .api import OneBotApi
from .errors import (
    ActionFailed,
    ApiNotAvailable,
    ApiTimeout,
    AuthError,
    ConfigError,
    DecodeError,
    EncodeError,
    NetworkError,
    NotConnected,
    OneBotError,
    ProtocolError,
)
from .registry import Registry

__version__ = "0.1.0"

__all__ = [
    "ActionFailed",
    "ApiNotAvailable",
    "ApiTimeout",
    "AuthError",
    "ConfigError",
    "DecodeError",
    "EncodeError",
    "NetworkError",
    "NotConnected",
    "OneBotApi",
    "OneBotError",
    "ProtocolError",
    "Registry",
    "__version__",
    "codec",
    "message",
]
