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
go-cqhttp and NapCat answer 200 with retcode 404 or 200 instead) and 400/406
(bad body). :func:`codec.http_error` and :func:`codec.unwrap_response` turn all
of them into the same exceptions the WebSocket modes raise.

There is no server, loop or thread on our side: this is the mode to use from a
plain script or a cron job::

    from onebot_ref.http_client import HttpClient

    with HttpClient("http://127.0.0.1:5700", access_token="secret") as bot:
        bot.send_private_msg(user_id=10001, message="hello")

One ``requests.Session`` keeps connections alive and pools them, so a client
can be shared by any number of threads.

``https://`` works as in requests; ``ca_file=`` trusts a self-made CA,
``ssl_context=`` takes a whole ``ssl.SSLContext`` and ``verify=False`` (logged
loudly) accepts any certificate. IPv6 hosts go in brackets:
``http://[::1]:5700``. See :mod:`onebot_ref.tls`.
"""

import http.client
import logging
import socket
import ssl
import time
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from .api import OneBotApi
from .codec import encode_request, http_error, loads, log_frame, unwrap_response
from .errors import ApiTimeout, DecodeError, NetworkError
from .tls import client_context, error_chain, explain, is_tls_refusal

__all__ = ["HttpClient", "use_ssl_context"]

log = logging.getLogger(__name__)

# Connecting takes one round trip; waiting longer than this for it means a
# firewall is dropping packets or the host is wrong, whatever the call timeout.
CONNECT_TIMEOUT = 10.0
# Enough pooled connections for a busy bot: requests' default of 10 discards
# (and logs) every connection beyond it when more threads call at once.
POOL_SIZE = 32


class HttpClient(OneBotApi):
    """Call OneBot actions over HTTP: ``bot.call("get_status")`` or ``bot.get_status()``.

    Args:
        base_url: the implementation's HTTP API root, such as ``http://127.0.0.1:5700``;
            a trailing slash or a path prefix (``http://host/onebot/``) is fine.
        access_token: sent as ``Authorization: Bearer <token>`` when set.
        timeout: seconds to wait for each response unless a call says otherwise.
        session: a ``requests.Session`` to use (and not close); by default we make our own.
            ``ssl_context``/``ca_file``/``verify=False`` mount an ``https://`` adapter on it.
        ssl_context: verify ``https://`` servers with this ``ssl.SSLContext``.
        ca_file: trust the CA in this PEM file (the one that signed the server's certificate).
        verify: False accepts any certificate (a development certificate; logged loudly).

    Raises:
        ValueError: ``base_url`` is not an ``http://`` or ``https://`` URL, or
            the TLS options contradict each other.
    """

    def __init__(
        self,
        base_url: str,
        *,
        access_token: str | None = None,
        timeout: float = 30.0,
        session: requests.Session | None = None,
        ssl_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
        verify: bool = True,
    ) -> None:
        if not base_url.lower().startswith(("http://", "https://")):
            hint = " (for ws:// use the WebSocket modes)" if base_url.startswith("ws") else ""
            raise ValueError(
                f"base_url must start with http:// or https://, got {base_url!r}{hint}"
            )
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json"}
        if access_token:
            self.headers["Authorization"] = f"Bearer {access_token}"
        self._own_session = session is None
        self.session = session if session is not None else _new_session()
        context = client_context(
            ssl_context=ssl_context, ca_file=ca_file, verify=verify, who=self.base_url
        )
        if context is not None:
            use_ssl_context(self.session, context)

    def __repr__(self) -> str:
        return f"HttpClient({self.base_url!r})"

    def call(self, action: str, /, *, timeout: float | None = None, **params: Any) -> Any:
        """``POST {base_url}/{action}`` with ``params`` as JSON; return the response's ``data``.

        Args:
            action: the action name, such as ``"send_group_msg"``.
            timeout: seconds to wait for the response (default: the client's ``timeout``).
            **params: the action's parameters, sent as they are.

        Raises:
            AuthError: HTTP 401 or 403; check the access token on both sides.
            ApiNotAvailable: HTTP 404, or retcode 404 / 1404: the implementation lacks the action.
            ActionFailed: ``status`` is not ``ok`` (carries ``retcode`` and the text).
            ApiTimeout: no response in time; the action may still have been carried out.
            NetworkError: the connection failed; the message names the URL and the likely cause.
            DecodeError: a 200 response whose body is not JSON.
        """
        url = f"{self.base_url}/{action}"
        log_frame("sent", {"action": action, "params": params})  # the action is the URL's path
        status, body = self._post(action, url, params, self.timeout if timeout is None else timeout)
        log_frame("received", body)
        if status == 400 and is_tls_refusal(body):
            raise NetworkError(f"{action}: {url}: {body.decode().strip()} (this URL says http://)")
        if status != 200:
            raise http_error(status, action, body)
        try:
            envelope = loads(body)
        except DecodeError:
            hint = " (a web page: is this the OneBot HTTP API port?)" if body[:1] == b"<" else ""
            raise DecodeError(
                f"{action}: HTTP 200 from {url} but the body is not JSON: {body[:80]!r}{hint}"
            ) from None
        return unwrap_response(envelope, action)

    def _post(
        self, action: str, url: str, params: dict[str, Any], wait: float
    ) -> tuple[int, bytes]:
        """Send one request; return its status and body, or raise the transport's error.

        A separate function so that no exception we raise keeps the response (and
        with it the socket) alive until the garbage collector finds the cycle.
        """
        started = time.monotonic()
        try:
            # No redirects: following one would turn our POST into a GET.
            with self.session.post(
                url,
                data=encode_request(action, params),
                headers=self.headers,
                timeout=(min(wait, CONNECT_TIMEOUT), wait),
                allow_redirects=False,
            ) as response:
                return response.status_code, response.content
        except requests.ConnectTimeout as exc:
            raise NetworkError(
                f"{action}: connecting to {url} timed out; is the host right, "
                "or is a firewall dropping the packets?"
            ) from exc
        except requests.Timeout:
            raise ApiTimeout(action, time.monotonic() - started) from None
        except requests.RequestException as exc:
            raise NetworkError(f"{action}: {url}: {_explain(exc, url)}") from exc

    def close(self) -> None:
        """Close the pooled connections (unless the session was passed in)."""
        if self._own_session:
            self.session.close()

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _new_session() -> requests.Session:
    session = requests.Session()
    # max_retries=0: a POST that may have reached the implementation is never
    # sent twice behind the caller's back (it could send a message twice).
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class _ContextAdapter(HTTPAdapter):
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
    adapter = _ContextAdapter(context, pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0)
    session.mount("https://", adapter)
    if old is not session.get_adapter("http://"):
        old.close()


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
