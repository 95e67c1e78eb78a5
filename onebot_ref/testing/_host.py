"""What FakeOneBot's transports need of it: :class:`Host`, and the :class:`Faults` it injects.

The HTTP API server (:mod:`._http`) and the WebSocket sides (:mod:`._ws`)
answer actions and check tokens through the FakeOneBot that made them; they
name what they use in :class:`Host` rather than importing the class, so that
they stay below it (``FakeOneBot`` builds them).
"""

import dataclasses
import ssl
from typing import Any, Protocol

from .._types import Flavor
from ._world import World

__all__ = ["Faults", "Host"]


@dataclasses.dataclass
class Faults:
    """Failures to inject; change the fields at any time, from any thread.

    Attributes:
        delay: seconds to wait before answering each action.
        drop: answer the next ``drop`` actions with nothing at all.
        echo: ``"keep"``, ``"omit"``, ``"null"``, ``"number"`` (``"7"`` → 7) or
            ``"mangle"`` (a different string) for WebSocket responses.
        close_mid_call: close the connection instead of answering the next N actions.
        heartbeats: send heartbeat events (when an interval is set).
        lifecycle: send the lifecycle ``connect`` event on WebSocket connections.
        malformed: send N malformed WebSocket frames (bad opcode) on the next action.
    """

    delay: float = 0.0
    drop: int = 0
    echo: str = "keep"
    close_mid_call: int = 0
    heartbeats: bool = True
    lifecycle: bool = True
    malformed: int = 0

    def take(self, name: str) -> bool:
        """Consume one unit of a counted fault; True if it fires now."""
        count: int = getattr(self, name)
        if count > 0:
            setattr(self, name, count - 1)
            return True
        return False


class Host(Protocol):
    """The FakeOneBot a transport serves (:class:`onebot_ref.testing.FakeOneBot` is one)."""

    world: World
    faults: Faults
    flavor: Flavor
    access_token: str | None
    ssl_context: ssl.SSLContext | None
    client_ssl_context: ssl.SSLContext | None

    @property
    def self_id(self) -> int: ...

    def answer(self, request: Any, mode: str) -> dict[str, Any] | None: ...

    def check_token(self, authorization: str | None, query: str) -> int: ...

    def lifecycle_event(self) -> dict[str, Any]: ...
