"""Dialling a forward WebSocket for :mod:`onebot_ref.ws_client`: the handshake, then the socket.

websocket-client does what a client needs to get a WebSocket open: proxies
(``http_proxy``/``https_proxy`` in the environment), TLS with the context we
give it, the opening handshake with our headers. :func:`dial` uses it through
its public API only (``create_connection``, then the ``sock`` it hands back)
and runs nothing of its afterwards: our own protocol
(:mod:`onebot_ref._ws_protocol`) and connection (:mod:`onebot_ref._ws_connection`)
take over the socket, the same ones the servers use.

Nothing is lost in between: websocket-client reads the ``101`` response head
one byte at a time, so a frame the server sends right behind it (in the same
TCP segment, or the same TLS record) stays in the socket (or in the TLS
object, whose ``pending()`` our connection reads first) for us.

Every way a handshake can fail becomes one sentence that names the cause (a
401/403 token mismatch, an HTTP API or web UI port answering 200/404, TLS on
one side only), and :func:`transient` says whether retrying can help.
"""

import socket
import ssl
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import websocket

from ._tls import explain, is_tls_refusal
from .codec import mask_token, redact
from .errors import AuthError, NetworkError

__all__ = ["MAX_SIZE", "dial", "transient"]

MAX_SIZE = 32 * 2**20  # bytes per incoming message; NapCat member lists reach several MiB


def dial(
    url: str,
    *,
    access_token: str | None,
    token_in_query: bool,
    connect_timeout: float,
    ssl_context: ssl.SSLContext | None,
    headers: Sequence[str] = (),
) -> socket.socket:
    """Open one WebSocket to ``url`` (token in the header, and the query if asked).

    ``headers`` are sent as they are (``"Name: value"`` lines), after the
    token's: the recorder passes on those of the connection it relays.

    Returns:
        The connected socket (an ``ssl.SSLSocket`` for ``wss://``), the
        handshake done, ready for frames.

    Raises:
        AuthError: HTTP 401/403 at the handshake.
        NetworkError: anything else, with the reason in words (wrong port, TLS mix-up…).
    """
    target, header = url, []
    if access_token:
        header.append(f"Authorization: Bearer {access_token}")
        if token_in_query:
            parts = urlsplit(url)
            query = [*parse_qsl(parts.query), ("access_token", access_token)]
            target = urlunsplit(parts._replace(query=urlencode(query)))
    header.extend(headers)
    try:
        ws = websocket.create_connection(
            target,
            timeout=connect_timeout,
            header=header,
            sslopt={"context": ssl_context} if ssl_context is not None else {},
        )
    except websocket.WebSocketBadStatusException as exc:
        if exc.status_code == 400 and is_tls_refusal(exc.resp_body):
            raise NetworkError(
                f"cannot connect to {redact(url)}: this port speaks TLS; use wss://"
            ) from None
        # A proxy whose implementation is not up yet answers 5xx: the cause says so (transient).
        cause = exc if exc.status_code >= 500 else None
        raise _status_error(url, exc.status_code, access_token) from cause
    except (websocket.WebSocketException, OSError) as exc:
        reason = explain(exc, url) or str(exc)
        raise NetworkError(f"cannot connect to {redact(url)}: {redact(reason)}") from exc
    sock = ws.sock
    if sock is None:  # not seen: create_connection returns connected or raises
        raise NetworkError(f"cannot connect to {redact(url)}: no socket after the handshake")
    return sock


def transient(exc: NetworkError) -> bool:
    """True if a failed :func:`dial` may succeed when retried: nobody answered, yet.

    That is a refused, reset or timed-out connection, a name that does not
    resolve (yet: containers), or a proxy's 5xx. What did answer, and wrongly
    (an HTTP API or web UI port, TLS on one side only, a bad certificate), will
    answer the same way next time.
    """
    cause = exc.__cause__
    if isinstance(cause, websocket.WebSocketBadStatusException):
        return cause.status_code >= 500
    if isinstance(cause, ssl.SSLError):  # certificates and TLS on one side only
        return False
    retryable = (
        OSError,
        websocket.WebSocketTimeoutException,
        websocket.WebSocketConnectionClosedException,
        websocket.WebSocketAddressException,
    )
    return isinstance(cause, retryable)


def _status_error(url: str, status: int, access_token: str | None) -> Exception:
    where = redact(url)
    if status in (401, 403):
        sent = f"token {mask_token(access_token)}" if access_token else "no token"
        return AuthError(
            f"{where} refused the WebSocket handshake with HTTP {status} ({sent} sent): "
            "compare access_token= here with the token of this WebSocket server in the "
            "implementation's config (go-cqhttp: 401 means none sent, 403 a wrong one)",
            status,
        )
    if status in (200, 404):
        return NetworkError(
            f"{where} answered HTTP {status} instead of 101 Switching Protocols: this looks "
            "like an HTTP API or web UI port, not a WebSocket server; check the port and path "
            "(NapCat's WebSocket server defaults to 3001, go-cqhttp's to 8080)"
        )
    return NetworkError(f"{where} answered HTTP {status} to the WebSocket handshake")
