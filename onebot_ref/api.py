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
The extended actions that go-cqhttp introduced and NapCat, Lagrange and
LLOneBot kept (forwarded messages, history, group files, essence, notices,
reactions, pokes…) are written out too, after the standard ones; each
docstring says which implementations have it (:data:`EXTENDED_SUPPORT`), and
:data:`EXTENDED_ACTIONS` maps each method to its action. Anything else goes
through ``call("action_name", ...)``.
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
    EssenceMessage,
    FileUrl,
    ForwardMessage,
    ForwardSent,
    FriendInfo,
    GroupFiles,
    GroupInfo,
    GroupMemberInfo,
    GroupNotice,
    GroupSystemMessages,
    HonorInfo,
    LoginInfo,
    MessageHistory,
    MessageId,
    MessageInfo,
    OcrResult,
    OcrText,
    OnlineClients,
    Status,
    StrangerInfo,
    UploadedFile,
    VersionInfo,
)
from .errors import ConfigError, EncodeError
from .message import normalize, text, validate

__all__ = [
    "EXTENDED_ACTIONS",
    "EXTENDED_SUPPORT",
    "STANDARD_ACTIONS",
    "OneBotApi",
    "merge_params",
]

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

    # -- extended actions ---------------------------------------------------------------
    # Not in OneBot 11: go-cqhttp introduced them, and NapCat, Lagrange.OneBot
    # and LLOneBot kept them under the same names (checked against their action
    # tables: go-cqhttp modules/api/api.go, NapCatQQ src/onebot/action/router.ts,
    # Lagrange.OneBot Core/Operation/**, LLOneBot src/onebot11/action/types.ts).
    # An implementation that lacks one answers "not found": ApiNotAvailable.
    # Where they name a parameter differently, the most common name is the
    # method's and **kwargs carries the others unchanged (see merge_params).

    def send_group_forward_msg(
        self, group_id: Id, messages: list[Any], **kwargs: Any
    ) -> ForwardSent:
        """Send a merged-forward message (``messages``: ``node`` segments) to a group.

        Build the nodes with :func:`message.custom_node` (a sender and a nested
        message) or :func:`message.node` (an existing message by id). Returns
        ``{"message_id", "forward_id"}`` (go-cqhttp, Lagrange) or
        ``{"message_id", "res_id"}`` (NapCat). All four implementations:
        go-cqhttp, NapCat, Lagrange, LLOneBot.
        """
        return cast(
            ForwardSent,
            self.call("send_group_forward_msg", group_id=group_id, messages=messages, **kwargs),
        )

    def send_private_forward_msg(
        self, user_id: Id, messages: list[Any], **kwargs: Any
    ) -> ForwardSent:
        """Send a merged-forward message to a friend; as :meth:`send_group_forward_msg`.

        go-cqhttp, NapCat, Lagrange, LLOneBot.
        """
        return cast(
            ForwardSent,
            self.call("send_private_forward_msg", user_id=user_id, messages=messages, **kwargs),
        )

    def get_group_msg_history(
        self, group_id: Id, message_seq: Id | None = None, count: int = 20, **kwargs: Any
    ) -> MessageHistory:
        """Recent messages of a group, oldest first: ``{"messages": [message events]}``.

        ``message_seq`` is the newest message to return (None: the latest);
        NapCat takes a message id there. go-cqhttp ignores ``count``;
        Lagrange names the anchor ``message_id``: pass ``message_id=...``.
        go-cqhttp, NapCat, Lagrange, LLOneBot.
        """
        params: dict[str, Any] = {"group_id": group_id, "count": count}
        if message_seq is not None:
            params["message_seq"] = message_seq
        return cast(MessageHistory, self.call("get_group_msg_history", params, **kwargs))

    def get_friend_msg_history(
        self, user_id: Id, message_seq: Id | None = None, count: int = 20, **kwargs: Any
    ) -> MessageHistory:
        """Recent messages with a friend, oldest first; as :meth:`get_group_msg_history`.

        NapCat, Lagrange, LLOneBot; go-cqhttp lacks it (ApiNotAvailable).
        """
        params: dict[str, Any] = {"user_id": user_id, "count": count}
        if message_seq is not None:
            params["message_seq"] = message_seq
        return cast(MessageHistory, self.call("get_friend_msg_history", params, **kwargs))

    def upload_group_file(
        self, group_id: Id, file: str, name: str, folder: str | None = None, **kwargs: Any
    ) -> UploadedFile | None:
        """Upload a file to a group's files (into ``folder``, a folder id, else the root).

        ``file`` is a path on the implementation's machine (NapCat also takes a
        URL or ``base64://``). Returns ``{"file_id"}`` (NapCat, Lagrange) or
        None (go-cqhttp). go-cqhttp, NapCat, Lagrange, LLOneBot.
        """
        params: dict[str, Any] = {"group_id": group_id, "file": file, "name": name}
        if folder is not None:
            params["folder"] = folder
        return cast(UploadedFile | None, self.call("upload_group_file", params, **kwargs))

    def upload_private_file(
        self, user_id: Id, file: str, name: str, **kwargs: Any
    ) -> UploadedFile | None:
        """Send a file to a friend; as :meth:`upload_group_file`.

        go-cqhttp, NapCat, Lagrange, LLOneBot.
        """
        return cast(
            UploadedFile | None,
            self.call("upload_private_file", user_id=user_id, file=file, name=name, **kwargs),
        )

    def get_group_root_files(self, group_id: Id, **kwargs: Any) -> GroupFiles:
        """The files and folders at the root of a group's files.

        go-cqhttp, NapCat, Lagrange, LLOneBot.
        """
        return cast(GroupFiles, self.call("get_group_root_files", group_id=group_id, **kwargs))

    def get_group_files_by_folder(self, group_id: Id, folder_id: str, **kwargs: Any) -> GroupFiles:
        """The files and folders in one folder (``folder_id`` from the root listing).

        go-cqhttp, NapCat, Lagrange, LLOneBot.
        """
        return cast(
            GroupFiles,
            self.call(
                "get_group_files_by_folder", group_id=group_id, folder_id=folder_id, **kwargs
            ),
        )

    def get_group_file_url(
        self, group_id: Id, file_id: str, busid: int | None = None, **kwargs: Any
    ) -> FileUrl:
        """A download URL for a group file: ``{"url"}``.

        go-cqhttp needs the file's ``busid`` from the listing; NapCat and
        Lagrange ignore it. go-cqhttp, NapCat, Lagrange, LLOneBot.
        """
        params: dict[str, Any] = {"group_id": group_id, "file_id": file_id}
        if busid is not None:
            params["busid"] = busid
        return cast(FileUrl, self.call("get_group_file_url", params, **kwargs))

    def delete_group_file(
        self, group_id: Id, file_id: str, busid: int | None = None, **kwargs: Any
    ) -> None:
        """Delete a group file (an admin's right, or the uploader's); ``busid`` as above.

        go-cqhttp, NapCat, Lagrange, LLOneBot.
        """
        params: dict[str, Any] = {"group_id": group_id, "file_id": file_id}
        if busid is not None:
            params["busid"] = busid
        self.call("delete_group_file", params, **kwargs)

    def set_essence_msg(self, message_id: Id, **kwargs: Any) -> None:
        """Make a group message an essence message (the bot must be an admin).

        go-cqhttp, NapCat, Lagrange, LLOneBot.
        """
        self.call("set_essence_msg", message_id=message_id, **kwargs)

    def delete_essence_msg(self, message_id: Id, **kwargs: Any) -> None:
        """Remove a message from the essence list (the bot must be an admin).

        go-cqhttp, NapCat, Lagrange, LLOneBot.
        """
        self.call("delete_essence_msg", message_id=message_id, **kwargs)

    def get_essence_msg_list(self, group_id: Id, **kwargs: Any) -> list[EssenceMessage]:
        """A group's essence messages.

        go-cqhttp, NapCat, Lagrange, LLOneBot.
        """
        return cast(
            list[EssenceMessage], self.call("get_essence_msg_list", group_id=group_id, **kwargs)
        )

    def send_group_notice(
        self, group_id: Id, content: str, image: str | None = None, **kwargs: Any
    ) -> Any:
        """Publish a group notice (announcement); the bot must be an admin.

        Every implementation names the action ``_send_group_notice``, with a
        leading underscore, as go-cqhttp did. Returns nothing (go-cqhttp,
        NapCat, LLOneBot) or the notice id (Lagrange). NapCat takes more
        options as keywords (``pinned``, ``confirm_required``…).
        go-cqhttp, NapCat, Lagrange, LLOneBot.
        """
        params: dict[str, Any] = {"group_id": group_id, "content": content}
        if image is not None:
            params["image"] = image
        return self.call("_send_group_notice", params, **kwargs)

    def get_group_notice(self, group_id: Id, **kwargs: Any) -> list[GroupNotice]:
        """A group's notices; the action is ``_get_group_notice`` everywhere.

        go-cqhttp, NapCat, Lagrange, LLOneBot.
        """
        return cast(list[GroupNotice], self.call("_get_group_notice", group_id=group_id, **kwargs))

    def set_msg_emoji_like(
        self, message_id: Id, emoji_id: Id, set: bool = True, **kwargs: Any
    ) -> None:
        """React to a message with a QQ face (``emoji_id``); ``set=False`` takes it back.

        NapCat's name, kept by Lagrange (which also has ``set_group_reaction``
        with ``code`` and ``is_add``) and LLOneBot; go-cqhttp lacks it.
        """
        self.call("set_msg_emoji_like", message_id=message_id, emoji_id=emoji_id, set=set, **kwargs)

    def group_poke(self, group_id: Id, user_id: Id, **kwargs: Any) -> None:
        """Poke a group member; the group sees a ``notice.notify.poke`` event.

        NapCat, Lagrange, LLOneBot; go-cqhttp lacks it (it sends a ``poke`` segment instead).
        """
        self.call("group_poke", group_id=group_id, user_id=user_id, **kwargs)

    def friend_poke(self, user_id: Id, **kwargs: Any) -> None:
        """Poke a friend (a ``notice.notify.poke`` without ``group_id``).

        NapCat, Lagrange, LLOneBot; go-cqhttp lacks it.
        """
        self.call("friend_poke", user_id=user_id, **kwargs)

    def mark_msg_as_read(self, message_id: Id, **kwargs: Any) -> None:
        """Mark a chat as read up to this message.

        go-cqhttp, NapCat, Lagrange, LLOneBot.
        """
        self.call("mark_msg_as_read", message_id=message_id, **kwargs)

    def set_group_portrait(self, group_id: Id, file: str, **kwargs: Any) -> None:
        """Set a group's avatar (``file`` as for an image); the bot must be an admin.

        go-cqhttp (which also takes ``cache``), NapCat, Lagrange; LLOneBot lacks it.
        """
        self.call("set_group_portrait", group_id=group_id, file=file, **kwargs)

    def get_group_system_msg(self, **kwargs: Any) -> GroupSystemMessages:
        """Pending group invitations and join requests.

        go-cqhttp, NapCat, LLOneBot; Lagrange lacks it (its ``get_group_requests`` lists them).
        """
        return cast(GroupSystemMessages, self.call("get_group_system_msg", **kwargs))

    def delete_friend(self, user_id: Id, **kwargs: Any) -> None:
        """Remove a friend. go-cqhttp, NapCat, Lagrange, LLOneBot."""
        self.call("delete_friend", user_id=user_id, **kwargs)

    def set_qq_profile(
        self, nickname: str, personal_note: str | None = None, **kwargs: Any
    ) -> None:
        """Set the bot account's nickname and signature (``personal_note``).

        go-cqhttp also takes ``company``, ``email``, ``college``; NapCat ``sex``:
        pass them as keywords. go-cqhttp, NapCat, LLOneBot; Lagrange lacks it.
        """
        params: dict[str, Any] = {"nickname": nickname}
        if personal_note is not None:
            params["personal_note"] = personal_note
        self.call("set_qq_profile", params, **kwargs)

    def get_online_clients(
        self, no_cache: bool = False, **kwargs: Any
    ) -> OnlineClients | list[Any]:
        """The account's other logged-in clients: ``{"clients": [...]}``.

        go-cqhttp; NapCat has the action but answers an empty list ``[]``.
        Lagrange and LLOneBot lack it.
        """
        return cast(
            OnlineClients | list[Any], self.call("get_online_clients", no_cache=no_cache, **kwargs)
        )

    def ocr_image(self, image: str, **kwargs: Any) -> OcrResult | list[OcrText]:
        """Recognise the text in an image (``image``: a received image's ``file``, or a URL).

        go-cqhttp and Lagrange answer ``{"texts", "language"}``; NapCat (on
        Windows only) the list of lines itself. All four know ``ocr_image``;
        go-cqhttp, NapCat and Lagrange also answer the hidden-style
        ``.ocr_image``, which LLOneBot does not: this method sends ``ocr_image``.
        """
        return cast(OcrResult | list[OcrText], self.call("ocr_image", image=image, **kwargs))


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


# The extended actions (go-cqhttp's, kept by NapCat, Lagrange and LLOneBot):
# method name -> the action it calls. get_forward_msg is standard (above).
EXTENDED_ACTIONS = {
    name: name
    for name in (
        "send_group_forward_msg send_private_forward_msg get_group_msg_history "
        "get_friend_msg_history upload_group_file upload_private_file get_group_root_files "
        "get_group_files_by_folder get_group_file_url delete_group_file set_essence_msg "
        "delete_essence_msg get_essence_msg_list set_msg_emoji_like group_poke friend_poke "
        "mark_msg_as_read set_group_portrait get_group_system_msg delete_friend set_qq_profile "
        "get_online_clients ocr_image"
    ).split()
} | {"send_group_notice": "_send_group_notice", "get_group_notice": "_get_group_notice"}

# Who answers each extended action, read from their action tables (Mrs4s/go-cqhttp
# modules/api/api.go and coolq/api.go, NapNeko/NapCatQQ src/onebot/action/router.ts,
# LagrangeDev/Lagrange.Core Lagrange.OneBot/Core/Operation/**, LLOneBot
# src/onebot11/action/types.ts); an implementation not named answers "not found"
# (ApiNotAvailable). FakeOneBot's flavours follow it.
_ALL = frozenset({"go-cqhttp", "napcat", "lagrange", "llonebot"})
EXTENDED_SUPPORT: dict[str, frozenset[str]] = {
    action: _ALL for action in EXTENDED_ACTIONS.values()
} | {
    "get_friend_msg_history": _ALL - {"go-cqhttp"},
    "set_msg_emoji_like": _ALL - {"go-cqhttp"},
    "group_poke": _ALL - {"go-cqhttp"},
    "friend_poke": _ALL - {"go-cqhttp"},
    "set_group_portrait": _ALL - {"llonebot"},
    "get_group_system_msg": _ALL - {"lagrange"},
    "set_qq_profile": _ALL - {"lagrange"},
    "get_online_clients": frozenset({"go-cqhttp", "napcat"}),
}
