"""What every receiving mode offers a bot author on top of the API: the one place it is written.

``WsServer``, ``WsClient`` and ``HttpServer`` inherit :class:`Receiver`, so
``on()`` with its filters, ``command()``, ``ask()``, ``wait_for()`` and the
bot-level settings (``prefixes``, ``superusers``, ``send_limit``) read and
behave the same in all of them; each only delegates to its :class:`Registry`
(the pure core) and to its own ``reply``.
"""

from collections.abc import Callable, Collection, Iterable
from typing import Any

from ._commands import CommandHandler
from ._conversation import Predicate, same_chat
from ._limiter import SendLimit
from .api import Message, OneBotApi
from .registry import HandlerT, Registry, _strings

__all__ = ["Receiver"]


class Receiver(OneBotApi):
    """A mode that receives events into ``self.registry`` and can call the API."""

    registry: Registry

    def on(
        self,
        name: str = "*",
        *,
        to_me: bool = False,
        groups: Collection[int | str] | None = None,
        users: Collection[int | str] | None = None,
        permission: str | None = None,
        cooldown: float = 0.0,
    ) -> Callable[[HandlerT], HandlerT]:
        """Decorator: handle events named ``name``, filtered (see :meth:`Registry.on`)."""
        return self.registry.on(
            name,
            to_me=to_me,
            groups=groups,
            users=users,
            permission=permission,
            cooldown=cooldown,
        )

    def command(
        self,
        name: str,
        *,
        aliases: Iterable[str] = (),
        prefixes: Iterable[str] | None = None,
        usage: str | None = None,
        to_me: bool = False,
        groups: Collection[int | str] | None = None,
        users: Collection[int | str] | None = None,
        permission: str | None = None,
        cooldown: float = 0.0,
    ) -> Callable[[CommandHandler], CommandHandler]:
        """Decorator: ``handler(event, args, segments)`` for ``/name args``.

        See :meth:`Registry.command`; ``usage`` is sent with :meth:`reply` when
        the handler raises ``UsageError`` (as :func:`split_args` does on an open quote).
        """
        return self.registry.command(
            name,
            aliases=aliases,
            prefixes=prefixes,
            usage=usage,
            reply=self.reply,
            to_me=to_me,
            groups=groups,
            users=users,
            permission=permission,
            cooldown=cooldown,
        )

    def ask(self, event: dict[str, Any], prompt: Message, timeout: float = 60.0) -> dict[str, Any]:
        """Send ``prompt`` to ``event``'s chat; return the same user's next message there.

        The answer is taken from the handlers: no command or ``on()`` handler
        runs for it. Under ``HttpServer``, ask from a command (commands run on
        the registry's workers): an ``on()`` handler runs in the request
        thread, and the implementation waits for that POST's answer meanwhile.

        Raises:
            ConversationTimeout: no answer within ``timeout`` seconds (also a TimeoutError).
        """
        return self.registry.wait_for(
            same_chat(event), timeout, before=lambda: self.reply(event, prompt)
        )

    def wait_for(self, predicate: Predicate, timeout: float = 60.0) -> dict[str, Any]:
        """The next event that ``predicate`` accepts (taken from the handlers).

        Raises:
            ConversationTimeout: none within ``timeout`` seconds (also a TimeoutError).
        """
        return self.registry.wait_for(predicate, timeout)

    @property
    def prefixes(self) -> tuple[str, ...]:
        """What commands start with in a group (default ``("/",)``), for the whole bot."""
        return self.registry.prefixes

    @prefixes.setter
    def prefixes(self, value: Iterable[str]) -> None:
        self.registry.prefixes = _strings(value, "prefixes")

    @property
    def superusers(self) -> set[str]:
        """User ids that pass every ``permission=`` filter."""
        return self.registry.superusers

    @superusers.setter
    def superusers(self, value: Iterable[int | str]) -> None:
        self.registry.superusers = set(_strings(value, "superusers"))

    @property
    def send_limit(self) -> SendLimit | None:
        """The limit on outgoing messages, or None (see :class:`SendLimit`)."""
        return self.registry.send_limit

    @send_limit.setter
    def send_limit(self, value: SendLimit | None) -> None:
        self.registry.send_limit = value
