"""TLS and IPv6 for every mode: ``https://`` and ``wss://``, ``[::1]`` and ``::``.

Real deployments run NapCat and the bot on different hosts, where a token in
plaintext is readable by anyone on the path. Every mode therefore takes the
same options, built here:

* **Clients** (``HttpClient``, ``WsClient``, FakeOneBot's HTTP POST pusher and
  reverse dialer): ``ssl_context=`` (an :class:`ssl.SSLContext` you made), or
  ``ca_file=`` (trust the CA, in PEM, that signed a self-made certificate), or
  ``verify=False`` (accept any certificate: development only, logged loudly).
  With none of them the libraries' defaults apply (requests: certifi).
* **Servers** (``HttpServer``, ``WsServer``, FakeOneBot's servers):
  ``ssl_context=`` or ``certfile=``/``keyfile=``. The accept thread never
  touches TLS: each connection's own thread looks at the first byte and runs
  the handshake under a timeout, so a client that stalls mid-handshake holds
  only its own thread. A context is used as built: TLS 1.3 session tickets
  and all. Our WebSocket connections never use one TLS object from two
  threads at once (see :mod:`onebot_ref._ws_connection`), so a ticket or a
  KeyUpdate arriving while a handler writes cannot corrupt the stream.

The first byte tells the two protocols apart: a TLS connection opens with a
handshake record, content type 22 (RFC 8446 section 5.1: ``handshake(22)``),
and no HTTP request line starts with 0x16. So each side can name the classic
mix-up instead of failing obscurely: a TLS server answers a plaintext request
with ``400 this port speaks TLS``; a plaintext server answers a ClientHello
with a plaintext 400, which the TLS client reports as "wrong version number",
and :func:`explain` turns into a sentence.

IPv6: servers listen on ``::1`` or ``::`` (both families at once where the OS
allows), clients write ``[::1]:port`` in URLs; :func:`url_host` adds brackets.
The command lines write an address as ``HOST:PORT`` (``[::1]:8080`` for IPv6)
and read it with :func:`split_host_port`; every server checks the host and port
it is given with :func:`check_address`, so a mistake is named, not reported as
a port in use.
"""

import argparse
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from ._http_head import refusal
from .errors import ConfigError

__all__ = [
    "LISTEN_BACKLOG",
    "PLAINTEXT_REFUSAL",
    "check_address",
    "client_context",
    "error_chain",
    "explain",
    "family_for",
    "handshake",
    "host_port_arg",
    "is_tls_refusal",
    "peer_name",
    "port_arg",
    "port_number",
    "server_context",
    "sniff",
    "split_host_port",
    "url_host",
]

log = logging.getLogger(__name__)

TLS_HANDSHAKE = 0x16  # RFC 8446 section 5.1: ContentType handshake(22)
# What a TLS port says to a plaintext client; clients look for it (is_tls_refusal).
PLAINTEXT_REFUSAL = "this port speaks TLS: use wss:// or https://"
TLS_REFUSAL = "this port speaks plaintext, not TLS: use ws:// or http://"
# OpenSSL reasons for "the server answered, but not in TLS".
NOT_TLS_REASONS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST", "PACKET_LENGTH")


def server_context(
    ssl_context: ssl.SSLContext | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
) -> ssl.SSLContext | None:
    """The context a server wraps accepted sockets with, or None for plaintext.

    Raises:
        ConfigError: both ``ssl_context`` and ``certfile`` given, ``keyfile``
            without ``certfile``, or a file that cannot be loaded (also a ValueError).
    """
    if ssl_context is not None and (certfile or keyfile):
        raise ConfigError("give ssl_context= or certfile=/keyfile=, not both")
    if keyfile and not certfile:
        raise ConfigError("keyfile= needs certfile= (the certificate chain, in PEM)")
    if ssl_context is not None or certfile is None:
        return ssl_context
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load certfile={certfile!r} keyfile={keyfile!r}: {exc}; give a PEM "
            "certificate chain and its private key"
        ) from exc
    return context


def client_context(
    *,
    ssl_context: ssl.SSLContext | None = None,
    ca_file: str | None = None,
    verify: bool = True,
    who: str = "",
) -> ssl.SSLContext | None:
    """The context a client verifies servers with; None means the library's default.

    ``verify=False`` is logged as a warning naming ``who``: it is for a
    development certificate only.

    Raises:
        ConfigError: ``ssl_context`` together with ``ca_file`` or ``verify=False``,
            ``ca_file`` together with ``verify=False``, or a ``ca_file`` that
            cannot be read as PEM certificates (also a ValueError).
    """
    if ssl_context is not None and (ca_file or not verify):
        raise ConfigError(
            "give ssl_context= or ca_file=/verify=, not both (set them on the context)"
        )
    if ca_file and not verify:
        raise ConfigError(
            "ca_file= verifies the certificate; verify=False turns that off: pick one"
        )
    if ssl_context is not None or (verify and ca_file is None):
        return ssl_context
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:  # a missing file; no certificate in it
        raise ConfigError(
            f"cannot load ca_file={ca_file!r} ({exc}); give the PEM file of the CA "
            "that signed the server's certificate"
        ) from exc
    if not verify:
        context.check_hostname = False  # must come before verify_mode
        context.verify_mode = ssl.CERT_NONE
        log.warning(
            "TLS certificate verification is OFF for %s (verify=False): the connection is "
            "encrypted but anyone on the path can impersonate the server and read the token; "
            "use ca_file= with the CA that signed it outside development",
            who or "this client",
        )
    return context


# -- the server side: on the connection's own thread ----------------------------------------


def sniff(sock: socket.socket, *, tls: bool, timeout: float, peer: str) -> bool:
    """Peek at the first byte: True if the peer speaks what this port speaks.

    Otherwise the mix-up is logged and answered (a plaintext 400 naming the
    right scheme), and False means: close the socket. False also when the peer
    sent nothing within ``timeout`` or hung up.
    """
    sock.settimeout(timeout)
    try:
        first = sock.recv(1, socket.MSG_PEEK)
    except OSError as exc:  # timed out, reset, or shut down by the server's close()
        log.debug("%s sent nothing: %s", peer, exc)
        return False
    if not first:
        return False
    if (first[0] == TLS_HANDSHAKE) == tls:
        return True
    if tls:
        log.warning("%s spoke plaintext to this TLS port; use wss:// or https:// on its side", peer)
        _answer(sock, PLAINTEXT_REFUSAL)
    else:
        log.warning(
            "%s opened a TLS handshake on this plaintext port: it uses wss:// or https://; use "
            "ws:// or http:// on its side, or give this server ssl_context= or certfile=",
            peer,
        )
        _answer(sock, TLS_REFUSAL)
    return False


def handshake(sock: ssl.SSLSocket, *, timeout: float, peer: str) -> bool:
    """Run the server side of the TLS handshake within ``timeout``; False if it failed (logged)."""
    sock.settimeout(timeout)
    try:
        sock.do_handshake()
    except (OSError, ValueError) as exc:  # SSLError, timeout, reset; ValueError once closed
        reason = getattr(exc, "reason", None) or exc
        hint = ""
        if "UNKNOWN_CA" in str(reason) or "BAD_CERTIFICATE" in str(reason):
            hint = " (the client does not trust our certificate: give it our CA)"
        log.warning("TLS handshake with %s failed: %s%s", peer, reason, hint)
        return False
    return True


def _answer(sock: socket.socket, reason: str) -> None:
    """Send a plaintext ``400`` with ``reason``, then close without resetting.

    Closing with unread bytes in the buffer would reset the connection before
    the peer reads the answer: half-close, then drain for a moment.
    """
    try:
        sock.settimeout(1.0)
        sock.sendall(refusal(400, reason))
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and sock.recv(65536):
            pass
    except OSError:
        pass


# -- the client side: naming the failure ------------------------------------------------------


def is_tls_refusal(body: bytes | None) -> bool:
    """True if ``body`` is a TLS port's answer to a plaintext request (ours, from :func:`sniff`)."""
    return bool(body) and PLAINTEXT_REFUSAL.encode() in (body or b"")[:200]


def explain(exc: BaseException, url: str) -> str | None:
    """One sentence for a TLS failure somewhere in ``exc``'s chain, or None if it is not one."""
    host = urlsplit(url).hostname or url
    for cause in error_chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"the TLS certificate of {host} failed verification ({cause.verify_message}); "
                "pass ca_file= with the CA that signed it, or connect by the name it was issued "
                "for (verify=False only for a development certificate)"
            )
        if isinstance(cause, ssl.SSLError) and any(r in str(cause.reason) for r in NOT_TLS_REASONS):
            plain = "ws://" if url.lower().startswith("ws") else "http://"
            return (
                f"{host} answered in plaintext, not TLS: this port does not speak TLS; use "
                f"{plain}, or enable TLS on that server"
            )
    return None


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps (urllib3 hides errors under ``reason`` or ``args``)."""
    todo, seen = [exc], set()
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = (getattr(current, "reason", None), current.__cause__, current.__context__)
        todo.extend(e for e in (*inner, *current.args) if isinstance(e, BaseException))


# -- Listening sockets ----------------------------------------------------------------------

# The accept queue of every server of ours. Python's default is min(SOMAXCONN, 128) and
# socketserver's 5: past it, a burst of connections (a restart that brings a thousand
# bots back at once) waits out SYN retransmits, 1 s, 2 s, 4 s..., before we see it.
LISTEN_BACKLOG = socket.SOMAXCONN


# -- IPv6 -----------------------------------------------------------------------------------


def family_for(host: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 literal such as ``::`` or ``::1``, else AF_INET."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def url_host(host: str) -> str:
    """``host`` as it goes in a URL: IPv6 literals in brackets (RFC 3986 section 3.2.2)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def peer_name(address: tuple[object, ...] | str) -> str:
    """``1.2.3.4:5678`` or ``[::1]:5678`` for a socket address."""
    if isinstance(address, str):
        return address
    return f"{url_host(str(address[0]))}:{address[1]}"


# -- host and port: one parser for the command lines, one check for the servers --------------

EXAMPLE = "127.0.0.1:8080"
MAX_PORT = 65535


def port_number(text: str) -> int:
    """A TCP port written in ASCII digits, 0 to 65535.

    Raises:
        ConfigError: not digits, or past 65535 (the socket module would raise
            OverflowError from deep inside ``bind``).
    """
    if not (text.isascii() and text.isdigit()):  # isdigit() alone takes "²"
        raise ConfigError(f"port {_show(text)} is not a number from 0 to {MAX_PORT}")
    if len(text) > 5 or int(text) > MAX_PORT:
        raise ConfigError(f"port {_show(text)} is out of range (0 to {MAX_PORT})")
    return int(text)


def split_host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` as ``(host, port)``; an IPv6 host goes in brackets: ``[::1]:8080``.

    Raises:
        ConfigError: a URL, no host, no port, a bad port, or an IPv6 address
            without brackets (its colons leave the port ambiguous).
    """
    text, shown = value.strip(), _show(value)
    if "://" in text:
        raise ConfigError(f"{shown} is a URL; give HOST:PORT, e.g. {EXAMPLE}")
    if text.startswith("["):  # RFC 3986 section 3.2.2: IP-literal = "[" IPv6address "]"
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":") or not _is_ipv6(host):
            raise ConfigError(f"{shown}: write an IPv6 address and its port as [::1]:8080")
        port_text = rest[1:]
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            what = "is only a port" if text.isdigit() else "has no port"
            raise ConfigError(f"{shown} {what}; give HOST:PORT, e.g. {EXAMPLE}")
        if ":" in host:
            raise ConfigError(f"{shown}: put an IPv6 address in brackets, e.g. [::1]:8080")
    if not host:
        raise ConfigError(
            f"{shown} has no host; give HOST:PORT, e.g. {EXAMPLE} (this machine only) "
            "or 0.0.0.0:8080 (every interface)"
        )
    try:
        return host, port_number(port_text)
    except ConfigError as exc:
        raise ConfigError(f"{shown}: {exc}; give HOST:PORT, e.g. {EXAMPLE}") from None


def host_port_arg(value: str) -> tuple[str, int]:
    """:func:`split_host_port` as an argparse ``type=``: a mistake is a usage error (exit 2)."""
    try:
        return split_host_port(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def port_arg(value: str) -> int:
    """:func:`port_number` as an argparse ``type=``: a mistake is a usage error (exit 2)."""
    try:
        return port_number(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def check_address(host: object, port: object, who: str) -> None:
    """Refuse a host and port that the server ``who`` cannot listen on, naming the mistake.

    ``WsServer("0.0.0.0:8080")`` would otherwise look up the name "0.0.0.0:8080"
    and fail as "cannot listen on [0.0.0.0:8080]:8080 … is another program using
    this port?"; a port past 65535 fails as an OverflowError inside ``bind``.

    Raises:
        ConfigError: host and port in one string, a URL or a bracketed IPv6
            address as the host, a host that is not a string, a port that is not
            an int from 0 to 65535.
    """
    fix = f"pass host and port separately: {who}('127.0.0.1', 8080)"
    if not isinstance(host, str):
        raise ConfigError(f"{who}: host {_show(host)} is not a string; {fix}")
    if "://" in host:
        parts = urlsplit(host)
        try:
            url_port = parts.port
        except ValueError:  # a port past 65535 in the URL
            url_port = None
        fix = f"pass host and port separately: {who}({parts.hostname!r}, {url_port or _show(port)})"
        raise ConfigError(f"{who}: host {_show(host)} is a URL; {fix}")
    if host.startswith("[") or (":" in host and not _is_ipv6(host)):
        try:
            bare, given = split_host_port(host)
        except ConfigError:
            if _is_ipv6(host.strip("[]")):
                raise ConfigError(
                    f"{who}: host {host!r} has brackets, which belong in URLs only; pass the "
                    f"bare address: {who}({host.strip('[]')!r}, {_show(port)})"
                ) from None
            raise ConfigError(
                f"{who}: host {_show(host)} is neither a host name nor an IP address; {fix}"
            ) from None
        fix = f"pass host and port separately: {who}({bare!r}, {given})"
        raise ConfigError(f"{who}: host {_show(host)} holds a port too; {fix}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise ConfigError(f"{who}: port {_show(port)} is not an int; give 0 to {MAX_PORT}")
    if not 0 <= port <= MAX_PORT:
        raise ConfigError(
            f"{who}: port {_show(port)} is out of range; give 0 to {MAX_PORT} (0 picks a free port)"
        )


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _show(value: object) -> str:
    """``repr(value)``, cut short: a message stays one line whatever was typed."""
    if isinstance(value, int) and value.bit_length() > 64:  # repr() fails past 4300 digits
        return f"<an int of {value.bit_length()} bits>"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
