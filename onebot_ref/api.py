"""One explicit method per standard OneBot 11 action (spec ``api/public.md``).

:class:`OneBotApi` is a mixin: every mode that can call actions (``HttpClient``,
``WsClient``, ``WsServer``, ``HttpServer`` through its ``api=``) implements
the one abstract method, :meth:`OneBotApi.call`, and inherits these methods,
so ``bot.send_group_msg(group_id=1, message="hi")`` reads the same in all of
them, IDEs complete it, and a typo fails loudly instead of inventing an action.

``call`` takes the action's parameters two ways, merged (keywords win)::

    bot.call("set_group_ban", group_id=1, user_id=2, duration=60)
    bot.call("set_group_ban", {"group_id": 1, "user_id": 2}, duration=60)

A parameter whose name is one of ``call``'s own keywords (``timeout``, or
``self_id`` on the reverse-WS server) travels in the dict:
``bot.call("some_plugin_action", {"timeout": 3})`` sends ``timeout=3`` to the
implementation, while ``bot.call("x", timeout=3)`` waits 3 seconds for it.

Every documented parameter is sent explicitly, defaults included, because
implementations disagree on defaults (go-cqhttp's ``set_group_anonymous_ban``
sends 0 when ``duration`` is omitted). Each method returns the response's
``data`` typed with its ``TypedDict`` (``send_msg`` -> ``MessageId``,
``get_group_info`` -> ``GroupInfo``, lists as ``list[...]``; see
:mod:`onebot_ref._types`), so that an editor completes its keys; at runtime it
is the plain ``dict`` or ``list`` that came off the wire. The actions whose
``data`` the spec leaves empty (``delete_msg``, the ``set_*`` ones...) are
typed ``None``; they still return what came, usually ``null``, which an
implementation may fill with extras of its own.
Each raises :class:`~onebot_ref.errors.ActionFailed` on failure, or
:class:`~onebot_ref.errors.EncodeError` before anything is sent when a value
is not JSON or ``message`` is not a message (see :func:`codec.encode_request`).
Anything not written out here (extensions such as ``send_group_forward_msg``)
goes through ``call("action_name", ...)``.
"""

import abc
from collections.abc import Mapping, Sequence
from typing import Any, cast

from ._types import (
    ActionResult,
    CanSend,
    Cookies,
    Credentials,
    CsrfToken,
    ForwardMessage,
    FriendInfo,
    GroupInfo,
    GroupMemberInfo,
    HonorInfo,
    LoginInfo,
    MessageId,
    MessageInfo,
    Status,
    StrangerInfo,
    VersionInfo,
)
from .errors import ConfigError, EncodeError
from .message import normalize, text, validate

__all__ = ["STANDARD_ACTIONS", "OneBotApi", "merge_params"]

# What message.validate accepts: a CQ string, one segment, or a list (or tuple) of segments.
Message = str | Mapping[str, Any] | Sequence[Mapping[str, Any]]
Id = int | str


def merge_params(params: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters ``call`` sends: the ``params`` dict, then the keywords over it.

    Raises:
        EncodeError: ``params`` is not a mapping with string keys (nothing was sent).
    """
    if params is None:
        return dict(kwargs)
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise EncodeError(
            f"params must be a dict of the action's parameters by name, got {params!r:.80}; "
            "pass them as call(action, {...}) or as keywords"
        )
    return {**params, **kwargs}


class OneBotApi(abc.ABC):
    """The standard actions, on top of one abstract :meth:`call` that each mode implements.

    An abstract base class rather than a ``typing.Protocol``: this is a mixin
    that *gives* its subclasses forty methods, and a mode that forgets ``call``
    should fail when it is made (``TypeError`` naming ``call``), not at its
    first action.
    """

    @abc.abstractmethod
    def call(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``action`` and return the response's ``data``.

        Args:
            action: the action name, such as ``"send_group_msg"``.
            params: the action's parameters as a dict; the only way to send one
                named ``timeout`` (or ``self_id`` on ``WsServer``).
            timeout: seconds to wait for the response (default: the mode's ``timeout``).
            **kwargs: more parameters, merged over ``params`` (see :func:`merge_params`).
        """

    def call_for(
        self,
        event: Mapping[str, Any],
        action: str,
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``action`` on behalf of the bot that received ``event``.

        The default is a plain :meth:`call`; the reverse-WS server routes by
        the event's ``self_id`` so that a reply leaves from the right account.
        """
        return self.call(action, params, timeout=timeout, **kwargs)

    def call_async(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Fire and forget: call ``<action>_async`` (parameters as in :meth:`call`).

        The spec answers ``status: async``; go-cqhttp runs it synchronously and
        answers ``ok``. Both count as accepted. NapCat and Lagrange do not know
        the suffix and answer "not found" (:class:`ApiNotAvailable`).
        """
        self.call(f"{action}_async", params, timeout=timeout, **kwargs)

    def reply(
        self,
        event: Mapping[str, Any],
        message: Message,
        *,
        at_sender: bool = False,
        auto_escape: bool = False,
    ) -> MessageId:
        """Answer a message event in the chat it came from; returns ``{"message_id": ...}``.

        Picks ``send_group_msg`` or ``send_private_msg`` from the event and
        sends from the account that received it. ``at_sender`` mentions the
        sender first (group chats only).

        Raises:
            ConfigError: ``event`` is not a private or group message event (also
                a ValueError); nothing was sent.
            EncodeError: ``message`` is not a message (nothing was sent).
        """
        if event.get("message_type") == "group" and "group_id" in event:
            if at_sender and "user_id" in event:
                validate(message)  # EncodeError, as in call(); normalize() would say DecodeError
                body = (
                    [text(message)]
                    if auto_escape and isinstance(message, str)
                    else normalize(message)
                )
                message = [{"type": "at", "data": {"qq": str(event["user_id"])}}, *body]
            return cast(
                MessageId,
                self.call_for(
                    event,
                    "send_group_msg",
                    group_id=event["group_id"],
                    message=message,
                    auto_escape=auto_escape,
                ),
            )
        if "user_id" in event:
            return cast(
                MessageId,
                self.call_for(
                    event,
                    "send_private_msg",
                    user_id=event["user_id"],
                    message=message,
                    auto_escape=auto_escape,
                ),
            )
        kind = event.get("post_type")
        raise ConfigError(
            f"cannot reply to an event of kind {kind!r}: reply() answers message events "
            "(a private or group chat); call send_private_msg or send_group_msg instead"
        )

    # -- messages ---------------------------------------------------------------

    def send_private_msg(
        self, user_id: Id, message: Message, *, auto_escape: bool = False
    ) -> MessageId:
        """Send a private message; returns ``{"message_id": ...}``."""
        return cast(
            MessageId,
            self.call(
                "send_private_msg", user_id=user_id, message=message, auto_escape=auto_escape
            ),
        )

    def send_group_msg(
        self, group_id: Id, message: Message, *, auto_escape: bool = False
    ) -> MessageId:
        """Send a group message; returns ``{"message_id": ...}``."""
        return cast(
            MessageId,
            self.call(
                "send_group_msg", group_id=group_id, message=message, auto_escape=auto_escape
            ),
        )

    def send_msg(
        self,
        message: Message,
        *,
        message_type: str | None = None,
        user_id: Id | None = None,
        group_id: Id | None = None,
        auto_escape: bool = False,
    ) -> MessageId:
        """Send a message; ``message_type`` is inferred from the id given if omitted."""
        if message_type is None:
            message_type = "group" if group_id is not None else "private"
        params: dict[str, Any] = {"message_type": message_type}
        if user_id is not None:
            params["user_id"] = user_id
        if group_id is not None:
            params["group_id"] = group_id
        params.update(message=message, auto_escape=auto_escape)
        return cast(MessageId, self.call("send_msg", params))

    def delete_msg(self, message_id: Id) -> None:
        """Recall a message."""
        return cast(None, self.call("delete_msg", message_id=message_id))

    def get_msg(self, message_id: Id) -> MessageInfo:
        """Fetch a message by id."""
        return cast(MessageInfo, self.call("get_msg", message_id=message_id))

    def get_forward_msg(self, id: str) -> ForwardMessage:
        """Fetch a merged-forward message (the reply key is ``message`` or ``messages``)."""
        return cast(ForwardMessage, self.call("get_forward_msg", id=id))

    def send_like(self, user_id: Id, times: int = 1) -> None:
        """Send profile likes (at most 10 per friend per day)."""
        return cast(None, self.call("send_like", user_id=user_id, times=times))

    # -- group administration ----------------------------------------------------

    def set_group_kick(self, group_id: Id, user_id: Id, reject_add_request: bool = False) -> None:
        """Remove a member from a group."""
        return cast(
            None,
            self.call(
                "set_group_kick",
                group_id=group_id,
                user_id=user_id,
                reject_add_request=reject_add_request,
            ),
        )

    def set_group_ban(self, group_id: Id, user_id: Id, duration: int = 1800) -> None:
        """Mute a member for ``duration`` seconds (0 lifts the mute)."""
        return cast(
            None, self.call("set_group_ban", group_id=group_id, user_id=user_id, duration=duration)
        )

    def set_group_anonymous_ban(
        self,
        group_id: Id,
        *,
        anonymous: Mapping[str, Any] | None = None,
        anonymous_flag: str | None = None,
        flag: str | None = None,
        duration: int = 1800,
    ) -> None:
        """Mute an anonymous sender; pass the event's ``anonymous`` object or its flag."""
        params: dict[str, Any] = {"group_id": group_id, "duration": duration}
        if anonymous is not None:
            params["anonymous"] = anonymous
        if anonymous_flag is not None:
            params["anonymous_flag"] = anonymous_flag
        if flag is not None:
            params["flag"] = flag
        return cast(None, self.call("set_group_anonymous_ban", params))

    def set_group_whole_ban(self, group_id: Id, enable: bool = True) -> None:
        """Mute or unmute the whole group."""
        return cast(None, self.call("set_group_whole_ban", group_id=group_id, enable=enable))

    def set_group_admin(self, group_id: Id, user_id: Id, enable: bool = True) -> None:
        """Grant or revoke admin."""
        return cast(
            None, self.call("set_group_admin", group_id=group_id, user_id=user_id, enable=enable)
        )

    def set_group_anonymous(self, group_id: Id, enable: bool = True) -> None:
        """Allow or forbid anonymous chat."""
        return cast(None, self.call("set_group_anonymous", group_id=group_id, enable=enable))

    def set_group_card(self, group_id: Id, user_id: Id, card: str = "") -> None:
        """Set a member's group card (empty removes it)."""
        return cast(
            None, self.call("set_group_card", group_id=group_id, user_id=user_id, card=card)
        )

    def set_group_name(self, group_id: Id, group_name: str) -> None:
        """Rename a group."""
        return cast(None, self.call("set_group_name", group_id=group_id, group_name=group_name))

    def set_group_leave(self, group_id: Id, is_dismiss: bool = False) -> None:
        """Leave a group (an owner must set ``is_dismiss`` to dismiss it)."""
        return cast(None, self.call("set_group_leave", group_id=group_id, is_dismiss=is_dismiss))

    def set_group_special_title(
        self, group_id: Id, user_id: Id, special_title: str = "", duration: int = -1
    ) -> None:
        """Set a member's special title (empty removes it)."""
        return cast(
            None,
            self.call(
                "set_group_special_title",
                group_id=group_id,
                user_id=user_id,
                special_title=special_title,
                duration=duration,
            ),
        )

    # -- requests ---------------------------------------------------------------

    def set_friend_add_request(self, flag: str, approve: bool = True, remark: str = "") -> None:
        """Answer a friend request (``flag`` from the request event)."""
        return cast(
            None, self.call("set_friend_add_request", flag=flag, approve=approve, remark=remark)
        )

    def set_group_add_request(
        self, flag: str, sub_type: str, approve: bool = True, reason: str = ""
    ) -> None:
        """Answer a group join request or invitation (``sub_type`` is ``add`` or ``invite``)."""
        return cast(
            None,
            self.call(
                "set_group_add_request",
                flag=flag,
                sub_type=sub_type,
                approve=approve,
                reason=reason,
            ),
        )

    # -- information ------------------------------------------------------------

    def get_login_info(self) -> LoginInfo:
        """The bot account: ``{"user_id", "nickname"}``."""
        return cast(LoginInfo, self.call("get_login_info"))

    def get_stranger_info(self, user_id: Id, no_cache: bool = False) -> StrangerInfo:
        """Public profile of any user."""
        return cast(
            StrangerInfo, self.call("get_stranger_info", user_id=user_id, no_cache=no_cache)
        )

    def get_friend_list(self) -> list[FriendInfo]:
        """Friends: ``[{"user_id", "nickname", "remark"}]``."""
        return cast(list[FriendInfo], self.call("get_friend_list"))

    def get_group_info(self, group_id: Id, no_cache: bool = False) -> GroupInfo:
        """One group's info."""
        return cast(GroupInfo, self.call("get_group_info", group_id=group_id, no_cache=no_cache))

    def get_group_list(self) -> list[GroupInfo]:
        """Every group the bot is in."""
        return cast(list[GroupInfo], self.call("get_group_list"))

    def get_group_member_info(
        self, group_id: Id, user_id: Id, no_cache: bool = False
    ) -> GroupMemberInfo:
        """One member's info."""
        return cast(
            GroupMemberInfo,
            self.call(
                "get_group_member_info", group_id=group_id, user_id=user_id, no_cache=no_cache
            ),
        )

    def get_group_member_list(self, group_id: Id) -> list[GroupMemberInfo]:
        """Every member of a group."""
        return cast(list[GroupMemberInfo], self.call("get_group_member_list", group_id=group_id))

    def get_group_honor_info(self, group_id: Id, type: str = "all") -> HonorInfo:
        """Group honours; ``type`` is ``talkative``, ``performer``, ``legend``… or ``all``."""
        return cast(HonorInfo, self.call("get_group_honor_info", group_id=group_id, type=type))

    def get_cookies(self, domain: str = "") -> Cookies:
        """Cookies for a QQ web domain."""
        return cast(Cookies, self.call("get_cookies", domain=domain))

    def get_csrf_token(self) -> CsrfToken:
        """The CSRF token for QQ web APIs."""
        return cast(CsrfToken, self.call("get_csrf_token"))

    def get_credentials(self, domain: str = "") -> Credentials:
        """Cookies and CSRF token together."""
        return cast(Credentials, self.call("get_credentials", domain=domain))

    def get_record(self, file: str, out_format: str) -> ActionResult:
        """Convert a received voice file (``mp3``, ``amr``, ``wav``…); needs ffmpeg."""
        return cast(ActionResult, self.call("get_record", file=file, out_format=out_format))

    def get_image(self, file: str) -> ActionResult:
        """Download a received image; returns its local path."""
        return cast(ActionResult, self.call("get_image", file=file))

    def can_send_image(self) -> CanSend:
        """``{"yes": bool}``."""
        return cast(CanSend, self.call("can_send_image"))

    def can_send_record(self) -> CanSend:
        """``{"yes": bool}``."""
        return cast(CanSend, self.call("can_send_record"))

    def get_status(self) -> Status:
        """``{"online", "good", ...}``; rely only on ``online`` and ``good``."""
        return cast(Status, self.call("get_status"))

    def get_version_info(self) -> VersionInfo:
        """``{"app_name", "app_version", "protocol_version", ...}``."""
        return cast(VersionInfo, self.call("get_version_info"))

    def set_restart(self, delay: int = 0) -> None:
        """Restart the implementation after ``delay`` ms (always answers ``async``)."""
        return cast(None, self.call("set_restart", delay=delay))

    def clean_cache(self) -> None:
        """Clear the implementation's cache."""
        return cast(None, self.call("clean_cache"))

    def handle_quick_operation(
        self, context: Mapping[str, Any], operation: Mapping[str, Any]
    ) -> None:
        """Hidden action ``.handle_quick_operation``: a quick operation over WebSocket."""
        return cast(
            None, self.call(".handle_quick_operation", context=context, operation=operation)
        )


# The action names of spec api/public.md, in its order; tests check the
# methods above against this list.
STANDARD_ACTIONS = (
    "send_private_msg send_group_msg send_msg delete_msg get_msg get_forward_msg send_like "
    "set_group_kick set_group_ban set_group_anonymous_ban set_group_whole_ban set_group_admin "
    "set_group_anonymous set_group_card set_group_name set_group_leave set_group_special_title "
    "set_friend_add_request set_group_add_request get_login_info get_stranger_info "
    "get_friend_list get_group_info get_group_list get_group_member_info get_group_member_list "
    "get_group_honor_info get_cookies get_csrf_token get_credentials get_record get_image "
    "can_send_image can_send_record get_status get_version_info set_restart clean_cache"
).split()
