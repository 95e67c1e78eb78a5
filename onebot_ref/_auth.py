"""The access-token check every server of ours makes: one rule, one place.

OneBot 11 (spec ``communication/authorization.md``) lets a client present the
token two ways, in the header (``Authorization: Bearer <token>``) or in the
query (``?access_token=<token>``), and has the server answer 401 when none
came and 403 when it is wrong; with no token configured, nothing is checked.
Real clients
bend the header: go-cqhttp and CQHTTP send ``Token <t>``, NapCat and Lagrange
send ``Bearer`` with nothing after it when no token is set
(:func:`~onebot_ref.codec.parse_authorization` reads them all).

:func:`check_token` is used by ``HttpServer``, ``WsServer``, FakeOneBot and
the doctor. The comparison is :func:`~onebot_ref.codec.token_matches`:
constant time, over the token's UTF-8 bytes. A refusal carries what the peer
is told (nothing about the real token, not even its length) apart from what
our own log may add (masked fingerprints of both tokens, so that whoever reads
it can compare them).

FakeOneBot reproduces how real implementations read the token, through the
keywords: NapCat takes the query first and strips only a literal ``Bearer``,
and answers 403 for a missing token as well.

Pure: no sockets, no logging.
"""

from typing import NamedTuple
from urllib.parse import parse_qs

from .codec import mask_token, parse_authorization, token_matches

__all__ = ["Refusal", "check_token", "presented_token"]


class Refusal(NamedTuple):
    """Why a request's credential is refused: the status, what to tell the peer, and more for us."""

    status: int  # 401: no token came; 403: a wrong one
    reply: str  # for the peer: never anything about the real token
    detail: str  # for our log only: masked fingerprints

    @property
    def logged(self) -> str:
        """The reply and the detail together, for our own log."""
        return f"{self.reply} {self.detail}".rstrip()


def presented_token(
    authorization: str | None,
    query: str,
    *,
    query_first: bool = False,
    bearer_only: bool = False,
) -> str | None:
    """The token a request presents in its ``Authorization`` header or ``?access_token=``.

    Args:
        authorization: the header's value, if any.
        query: the request target's query string (``a=1&access_token=x``).
        query_first: take the query's token over the header's (NapCat's reading;
            by default the header wins).
        bearer_only: strip only a literal ``Bearer `` from the header (NapCat);
            by default ``Bearer`` and ``Token`` in any case, or a bare token.
    """
    from_query = parse_qs(query).get("access_token", [None])[0] or None
    if bearer_only:
        from_header = (authorization or "").removeprefix("Bearer ").strip(" \t") or None
    else:
        from_header = parse_authorization(authorization)
    if query_first:
        return from_query if from_query is not None else from_header
    return from_header if from_header is not None else from_query


def check_token(
    expected: str | None,
    authorization: str | None,
    query: str,
    *,
    query_first: bool = False,
    bearer_only: bool = False,
    missing: int = 401,
) -> Refusal | None:
    """None if the request may pass, else the :class:`Refusal` to answer with.

    With no ``expected`` token everything passes. ``missing`` is the status for
    a request with no token
    (NapCat answers 403 there too); the other keywords are those of
    :func:`presented_token`.
    """
    if not expected:
        return None
    presented = presented_token(
        authorization, query, query_first=query_first, bearer_only=bearer_only
    )
    if presented is None:
        return Refusal(missing, "no access token (send Authorization: Bearer <token>)", "")
    if not token_matches(expected, presented):
        return Refusal(
            403,
            "wrong access token",
            f"{mask_token(presented)}, expected {mask_token(expected)}",
        )
    return None
