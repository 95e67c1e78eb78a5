"""Mode 1 of 4 — HTTP API. OneBot is the HTTP server; we are the HTTP client.
Spec: communication/http.md.

Every action is one HTTP request to the implementation (go-cqhttp's default
port is 5700, NapCat's 3000)::

    POST /send_private_msg HTTP/1.1
    Content-Type: application/json
    Authorization: Bearer <access token, only when one is set>

    {"user_id":10001,"message":"hi","auto_escape":false}

and the answer is the envelope every mode shares::

    HTTP/1.1 200 OK

    {"status":"ok","retcode":0,"data":{"message_id":5}}

The spec allows GET, query strings and form bodies too; we always send the one
shape every implementation accepts: POST, no trailing slash (go-cqhttp looks
``send_msg/`` up as an action name), a strict JSON object with every parameter.

Only a 200 carries the envelope. The spec's other statuses are 401 (token
missing), 403 (token wrong; NapCat answers 403 for both), 404 (no such action;
go-cqhttp answers 200 with retcode 404 instead, NapCat 200 with retcode 200 and
"不支持的Api <action>") and 400/406 (bad body). :func:`codec.http_error` and
:func:`codec.unwrap_response` turn all of them into the same exceptions the
WebSocket modes raise. A WebSocket server's refusal of our POST (400, 405 or
426 with ``Sec-WebSocket-Version``, or no answer at all from ``websockets``)
becomes a :class:`NetworkError` that says "this is a WebSocket port".

The access token travels as its UTF-8 bytes (``codec.token_matches`` has the
rule), so a Chinese token works; one no header can carry is refused at
construction (``codec.valid_token``).

There is no server, loop or thread on our side: this is the mode to use from a
plain script or a cron job::

    from onebot_ref.http_client import HttpClient

    with HttpClient("http://127.0.0.1:5700", access_token="secret") as bot:
        bot.send_private_msg(user_id=10001, message="hello")

It still has the lifecycle of the other three modes, so code can treat them
alike: :meth:`HttpClient.start` returns the client (there is nothing to dial
ahead: each call connects, or reuses a pooled connection), and
:meth:`HttpClient.close` takes a ``timeout`` that it never needs.

One ``requests.Session`` keeps connections alive and pools them, so a client
can be shared by any number of threads.

A call's ``timeout`` is a deadline for the whole call, not for each socket
read: a server that drips its answer a byte at a time still ends in
:class:`ApiTimeout` on time. Every read of the response (its head and its body)
first sets the socket's timeout to what is left of the deadline, and so does
every send of the request; the pooled connections do this through
:class:`_DeadlineResponse` and our connection classes, which our adapter
installs. (A watchdog thread closing the socket would do it too, but a
three-line script would then start a thread, and a per-read bound needs none.)
Connecting (TCP, and TLS for ``https://``) takes at most ``connect_timeout``
(10 s), and never more than the call's own deadline: a call with
``timeout=3`` gives up connecting after 3 s, one with ``timeout=60`` after
10 s. Name resolution is the one step no socket timeout bounds.

The body is read in chunks and refused past ``max_size`` bytes (32 MiB, as
``WsClient``): a ``Content-Length`` over it is refused before reading, an
endless or chunked body is cut at the limit. Both raise :class:`ProtocolError`
with close code 1009, the same error ``WsClient`` raises for a message over its
``max_size``.

``https://`` works as in requests; ``ca_file=`` trusts a self-made CA,
``ssl_context=`` takes a whole ``ssl.SSLContext`` and ``verify=False`` (logged
loudly) accepts any certificate. IPv6 hosts go in brackets:
``http://[::1]:5700``. See :mod:`onebot_ref.tls`.
"""

import http.client
import io
import logging
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager

from ._limiter import SendLimit
from ._tls import client_context, error_chain, explain, is_tls_refusal
from .api import OneBotApi, merge_params
from .codec import (
    encode_request,
    http_error,
    is_websocket_refusal,
    loads,
    log_frame,
    redact,
    unwrap_response,
    valid_token,
)
from .errors import ApiTimeout, ConfigError, DecodeError, NetworkError, ProtocolError

__all__ = [
    "HttpClient",
]

log = logging.getLogger(__name__)

# connect_timeout's default. Connecting takes one round trip; waiting longer than
# this for it means a firewall is dropping packets or the host is wrong.
CONNECT_TIMEOUT = 10.0
# Enough pooled connections for a busy bot: requests' default of 10 discards
# (and logs) every connection beyond it when more threads call at once.
POOL_SIZE = 32
# Bytes per response body: WsClient's max_size default (NapCat member lists reach
# several MiB). RFC 6455 section 7.4.1's "message too big" is the close code of the error.
MAX_SIZE = 32 * 2**20
CLOSE_TOO_BIG = 1009
CHUNK = 65536


class HttpClient(OneBotApi):
    """Call OneBot actions over HTTP: ``bot.call("get_status")`` or ``bot.get_status()``.

    Args:
        base_url: the implementation's HTTP API root, such as ``http://127.0.0.1:5700``;
            a trailing slash or a path prefix (``http://host/onebot/``) is fine.
        access_token: sent as ``Authorization: Bearer <token>`` when set.
        timeout: seconds for each call, connecting to the last byte of the answer,
            unless a call says otherwise.
        connect_timeout: seconds to connect (TCP, and TLS for ``https://``), within
            the call's ``timeout``: a call waits ``min(connect_timeout, timeout)``
            for its connection, and what is left of ``timeout`` for the answer.
        max_size: the largest response body accepted, in bytes.
        session: a ``requests.Session`` to use (and not close); by default we make our own.
            Its headers, cookies, proxies and auth apply; requests to ``base_url`` go
            through an adapter of ours mounted on it (the deadline needs it), which
            ``ssl_context``/``ca_file``/``verify=False`` configure.
        ssl_context: verify ``https://`` servers with this ``ssl.SSLContext``.
        ca_file: trust the CA in this PEM file (the one that signed the server's certificate).
        verify: False accepts any certificate (a development certificate; logged loudly).
        send_limit: a :class:`~onebot_ref.registry.SendLimit` on outgoing messages
            (rate and burst, also per chat); None, the default, sends at once.

    A query string in ``base_url`` (``http://host:3000/?access_token=…``, which
    NapCat accepts) is sent with every action, after the action's path.

    Raises:
        ConfigError: ``base_url`` is not an ``http://`` or ``https://`` URL, the
            TLS options contradict each other or ``ca_file`` cannot be loaded, or
            ``access_token`` cannot travel in a header (also a ValueError).
    """

    def __init__(
        self,
        base_url: str,
        *,
        access_token: str | None = None,
        timeout: float = 30.0,
        connect_timeout: float = CONNECT_TIMEOUT,
        max_size: int = MAX_SIZE,
        session: requests.Session | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
        verify: bool = True,
        send_limit: SendLimit | None = None,
    ) -> None:
        if not base_url.lower().startswith(("http://", "https://")):
            hint = " (for ws:// use the WebSocket modes)" if base_url.startswith("ws") else ""
            raise ConfigError(
                f"base_url must start with http:// or https://, got {base_url!r}{hint}"
            )
        parts = urlsplit(base_url)
        self.base_url = urlunsplit(parts._replace(query="", fragment="")).rstrip("/")
        self._query = f"?{parts.query}" if parts.query else ""
        if redact(self._query) != self._query:
            _redact_urllib3_logs()  # it logs each request line at DEBUG, query and all
        self.timeout = timeout
        self.send_limit = send_limit
        self.connect_timeout = connect_timeout
        self.max_size = max_size
        self.access_token = valid_token(access_token)
        # bytes: a token is its UTF-8 bytes (codec.token_matches); a str header
        # would be encoded as latin-1 and fail on anything beyond it.
        self.headers: dict[str, str | bytes] = {"Content-Type": "application/json"}
        if self.access_token:
            self.headers["Authorization"] = b"Bearer " + self.access_token.encode("utf-8")
        context = client_context(
            ssl_context=ssl_context, ca_file=ca_file, verify=verify, who=redact(self.base_url)
        )
        self._own_session = session is None
        if session is None:
            self.session = _new_session()
            if context is not None:
                use_ssl_context(self.session, context)
            self._adapter: HTTPAdapter | None = None
        else:
            # Mount on our URL only: the deadline needs our adapter, and the
            # session's other adapters stay as its owner made them.
            self.session = session
            self._adapter = _adapter(context)
            session.mount(f"{self.base_url}/", self._adapter)

    def __repr__(self) -> str:
        return f"HttpClient({self.base_url!r})"

    def start(self) -> "HttpClient":
        """Return the client: the lifecycle every mode shares, with nothing to do here.

        There is nothing to dial ahead over HTTP: each call connects (or reuses
        a pooled connection) within its own deadline. Calling it twice is fine.
        """
        return self

    def call(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """``POST {base_url}/{action}`` with the parameters as JSON; return the response's ``data``.

        Args:
            action: the action name, such as ``"send_group_msg"``.
            params: the action's parameters as a dict (one named ``timeout`` goes here).
            timeout: seconds for the whole call (default: the client's ``timeout``).
            **kwargs: more parameters, merged over ``params``; sent as they are.

        Raises:
            EncodeError: a parameter (or the message) that cannot go onto the wire;
                nothing was sent.
            AuthError: HTTP 401 or 403; check the access token on both sides.
            ApiNotAvailable: HTTP 404, retcode 404 / 1404 or NapCat's "不支持的Api":
                the implementation lacks the action.
            ActionFailed: ``status`` is not ``ok`` (carries ``retcode`` and the text).
            ApiTimeout: no complete response in time; the action may still have been carried out.
            NetworkError: the connection failed, or ``base_url`` is not an HTTP API
                (a WebSocket port, TLS on the other side); the message names the cause.
            ProtocolError: the response body is over ``max_size`` (close code 1009).
            DecodeError: a 200 response whose body is not JSON.
        """
        url = f"{self.base_url}/{action}{self._query}"
        wait = self.timeout if timeout is None else timeout
        sent = merge_params(params, kwargs)
        data = encode_request(action, sent)  # EncodeError before anything is sent
        if self.send_limit is not None:
            self.send_limit.acquire(action, sent)  # may wait its turn, or raise SendLimited
        log_frame("sent", {"action": action, "params": sent})  # the action is the URL's path
        status, headers, body = self._post(action, url, data, time.monotonic(), wait)
        log_frame("received", body)
        if status == 400 and is_tls_refusal(body):
            text = body.decode("utf-8", "replace").strip()
            raise NetworkError(f"{action}: {redact(url)}: {text} (this URL says http://)")
        if is_websocket_refusal(status, headers, body):
            raise NetworkError(self._websocket_port(action, status))
        if status != 200:
            raise http_error(status, action, body)
        try:
            envelope = loads(body)
        except DecodeError:
            hint = " (a web page: is this the OneBot HTTP API port?)" if body[:1] == b"<" else ""
            raise DecodeError(
                f"{action}: HTTP 200 from {redact(url)} but the body is not JSON: "
                f"{body[:80]!r}{hint}"
            ) from None
        return unwrap_response(envelope, action)

    def _post(
        self, action: str, url: str, data: bytes, started: float, wait: float
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send one request; return its status, headers and body, or raise the transport's error.

        A separate function so that no exception we raise keeps the response (and
        with it the socket) alive until the garbage collector finds the cycle.
        The NetworkErrors do not chain the requests exception: its text quotes the
        URL, query string (and token) included.
        """
        deadline = started + wait
        outer = getattr(_call, "deadline", None)
        _call.deadline = deadline
        try:
            # No redirects: following one would turn our POST into a GET.
            with self.session.post(
                url,
                data=data,
                headers=self.headers,
                timeout=(min(wait, self.connect_timeout), wait),
                allow_redirects=False,
                stream=True,
            ) as response:
                return response.status_code, response.headers, self._read_body(action, response)
        except requests.ConnectTimeout:
            raise NetworkError(
                f"{action}: connecting to {redact(url)} timed out; is the host right, "
                "or is a firewall dropping the packets?"
            ) from None
        except requests.RequestException as exc:
            timed_out = any(isinstance(c, TimeoutError) for c in error_chain(exc))
            if isinstance(exc, requests.Timeout) or timed_out or time.monotonic() >= deadline:
                raise ApiTimeout(action, time.monotonic() - started) from None
            if _no_response(exc) and self._answers_like_websocket():
                raise NetworkError(self._websocket_port(action, None)) from None
            reason = redact(_explain(exc, url))  # the fallback quotes urllib3, URL and all
            raise NetworkError(f"{action}: {redact(url)}: {reason}") from None
        finally:
            _call.deadline = outer

    def _read_body(self, action: str, response: requests.Response) -> bytes:
        """The body, read in chunks up to ``max_size`` bytes (decoded, if it was compressed)."""
        announced = response.headers.get("Content-Length", "")
        if announced.isascii() and announced.isdigit() and int(announced) > self.max_size:
            raise ProtocolError(
                f"{action}: the response announces {announced} bytes, over max_size "
                f"({self.max_size}); raise max_size= if such an answer is expected",
                CLOSE_TOO_BIG,
            )
        chunks, size = [], 0
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
            if size > self.max_size:
                raise ProtocolError(
                    f"{action}: the response is longer than max_size ({self.max_size} bytes); "
                    "raise max_size= if such an answer is expected",
                    CLOSE_TOO_BIG,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _answers_like_websocket(self) -> bool:
        """Whether ``base_url`` refuses a plain ``GET /`` the way a WebSocket server does.

        Asked only after a POST got no answer at all, which is what ``websockets``
        does with a POST; ``GET /`` runs no action on an HTTP API (NapCat says
        hello, go-cqhttp answers 404). Bounded by what is left of the call.
        """
        deadline: float = _call.deadline
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            with self.session.get(
                f"{self.base_url}/", timeout=left, allow_redirects=False, stream=True
            ) as reply:
                return is_websocket_refusal(reply.status_code, reply.headers)
        except requests.RequestException:
            return False

    def _websocket_port(self, action: str, status: int | None) -> str:
        how = f"refused the POST with HTTP {status}" if status else "closed the POST unanswered"
        return (
            f"{action}: {redact(self.base_url)} {how}, as a WebSocket server does: this is a "
            "WebSocket port; use WsClient for it, or give HttpClient the port of the "
            "implementation's HTTP API (NapCat's HTTP server defaults to 3000, go-cqhttp's to 5700)"
        )

    def close(self, timeout: float = 5.0) -> None:
        """Close the pooled connections (and our session, unless it was passed in).

        Args:
            timeout: accepted as every mode's ``close`` accepts it; nothing here
                waits (a call in flight on another thread still ends within its
                own deadline).
        """
        if self._own_session:
            self.session.close()
        elif self._adapter is not None:
            if self.session.adapters.get(f"{self.base_url}/") is self._adapter:
                del self.session.adapters[f"{self.base_url}/"]
            self._adapter.close()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# The deadline of the call running on this thread (HttpClient._post sets it):
# urllib3 does every read of a request on the calling thread.
_call = threading.local()


class _DeadlineReader(io.RawIOBase):
    """A response's socket file whose every read is bounded by what is left of a deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._raw = sock.makefile("rb", buffering=0)  # counted as a reference to sock
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the call's deadline passed while reading the response")
        self._sock.settimeout(left)
        return self._raw.readinto(buffer)

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, reading its head and body against the call's deadline.

    http.client reads through ``sock.makefile()``, whose reads each get the
    socket's timeout afresh: a peer sending a byte per timeout never times out.
    """

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        deadline = getattr(_call, "deadline", None)
        if deadline is not None:
            self.fp.close()
            self.fp = io.BufferedReader(_DeadlineReader(sock, deadline))


def _bound_send(sock: socket.socket | None) -> None:
    """Give the send about to start what is left of the call's deadline."""
    deadline = getattr(_call, "deadline", None)
    if deadline is None or sock is None:
        return  # not one of our calls, or not connected yet (connecting has its own timeout)
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the call's deadline passed while sending the request")
    sock.settimeout(left)


class _Connection(HTTPConnection):
    response_class = _DeadlineResponse

    def send(self, data: Any) -> None:
        _bound_send(self.sock)
        super().send(data)


class _TLSConnection(HTTPSConnection):
    response_class = _DeadlineResponse

    def send(self, data: Any) -> None:
        _bound_send(self.sock)
        super().send(data)


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


_POOLS = {"http": _Pool, "https": _TLSPool}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter with connections that honour the call's deadline.

    Outside a call of ours (no deadline set) they behave exactly as urllib3's own.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is ProxyManager:  # not SOCKS, which has pool classes of its own
            manager.pool_classes_by_scheme = _POOLS
        return manager


def _adapter(context: ssl.SSLContext | None) -> HTTPAdapter:
    # max_retries=0: a POST that may have reached the implementation is never
    # sent twice behind the caller's back (it could send a message twice).
    if context is not None:
        return _ContextAdapter(context, pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
    return _DeadlineAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)


def _new_session() -> requests.Session:
    session = requests.Session()
    adapter = _adapter(None)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class _ContextAdapter(_DeadlineAdapter):
    """An adapter that verifies with one ``ssl.SSLContext``, the way requests documents it.

    requests would otherwise load its own CA bundle into the context (``cert_verify``)
    or replace it (``build_connection_pool_key_attributes``).
    """

    def __init__(self, context: ssl.SSLContext, **kwargs: Any) -> None:
        self.ssl_context = context
        super().__init__(**kwargs)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> Any:  # requests' stubs type this as two TypedDicts; we only swap one key
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        dropped = ("ca_certs", "ca_cert_dir", "cert_reqs")
        kwargs: dict[str, Any] = {k: v for k, v in pool_kwargs.items() if k not in dropped}
        kwargs["ssl_context"] = self.ssl_context
        return host_params, kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        pass  # the context decides


def use_ssl_context(session: requests.Session, context: ssl.SSLContext) -> None:
    """Make ``session`` verify every ``https://`` server with ``context`` (and only it)."""
    old = session.get_adapter("https://")
    session.mount("https://", _adapter(context))
    if old is not session.get_adapter("http://"):
        old.close()


class _Redacting(logging.Filter):
    """Rewrites a record's text through :func:`codec.redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


_REDACTING = _Redacting()


def _redact_urllib3_logs() -> None:
    """Keep tokens in ``base_url``'s query out of urllib3's DEBUG lines (the request line)."""
    for name in ("urllib3.connectionpool", "urllib3.util.retry"):
        logger = logging.getLogger(name)
        if _REDACTING not in logger.filters:
            logger.addFilter(_REDACTING)


def _no_response(exc: BaseException) -> bool:
    """Whether the server closed the connection without a byte of response."""
    return any(isinstance(c, http.client.RemoteDisconnected) for c in error_chain(exc))


def _explain(exc: BaseException, url: str) -> str:
    """One sentence naming the likely cause of a requests connection error."""
    causes = list(error_chain(exc))
    tls = explain(exc, url)
    if tls is not None:
        return tls
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return (
            "connection refused: nothing is listening there. Is the OneBot implementation "
            "running with its HTTP API enabled, on this port?"
        )
    if any(isinstance(c, socket.gaierror) for c in causes):
        return "the host name does not resolve; check its spelling"
    broken = (ConnectionResetError, http.client.RemoteDisconnected, http.client.IncompleteRead)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError) or any(
        isinstance(c, broken) for c in causes
    ):
        return (
            "the connection closed before the response was complete; "
            "the action may still have been carried out"
        )
    return f"{causes[-1]}; is the implementation running, the port right, no firewall in the way?"
