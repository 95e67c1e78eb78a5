"""Types an editor can use: the standard events and API results as ``TypedDict``s.

At runtime every event and every result is the plain ``dict`` that came off
the wire (STYLE R5: what a handler sees is exactly the spec's JSON); these
types only tell an editor and a type checker which keys to expect::

    from onebot_ref import GroupMessageEvent

    @bot.on("message.group")
    def greet(event: GroupMessageEvent) -> None:
        bot.reply(event, f"hi, {event['sender'].get('card') or event['user_id']}")

Implementations leave fields out and add their own (``DEVIATIONS.md`` rows 10
and 11), so apart from ``post_type`` and the kind that names an event, every
key is optional (``total=False``): read them with ``.get()``. Ids are ``int``
in the spec but arrive as strings from some implementations (row 12): they are
typed ``Id``. Spec: ``event/*.md`` and ``api/public.md`` (OneBot 11).

Pure: no I/O, stdlib only.
"""

from typing import Any, Literal, TypedDict

__all__ = [
    "ActionResult",
    "Anonymous",
    "CanSend",
    "ClientRole",
    "Cookies",
    "Credentials",
    "CsrfToken",
    "Device",
    "EssenceMessage",
    "Event",
    "File",
    "FileUrl",
    "Flavor",
    "ForwardMessage",
    "ForwardSent",
    "FriendInfo",
    "FriendRequestEvent",
    "GroupFile",
    "GroupFiles",
    "GroupFolder",
    "GroupInfo",
    "GroupMemberInfo",
    "GroupMessageEvent",
    "GroupNotice",
    "GroupNoticeBody",
    "GroupRequestEvent",
    "GroupRequestInfo",
    "GroupSender",
    "GroupSystemMessages",
    "HeartbeatEvent",
    "HonorInfo",
    "Id",
    "LifecycleEvent",
    "LoginInfo",
    "MessageEvent",
    "MessageHistory",
    "MessageId",
    "MessageInfo",
    "MessageType",
    "MetaEvent",
    "NoticeEvent",
    "OcrResult",
    "OcrText",
    "OnlineClients",
    "PrivateMessageEvent",
    "RequestEvent",
    "Role",
    "Segment",
    "Sender",
    "Sex",
    "Status",
    "StrangerInfo",
    "UploadedFile",
    "VersionInfo",
]

Id = int | str  # a QQ number, group number or message id: int in the spec, a str from some
Role = Literal["owner", "admin", "member"]  # a group member's role (sender.role, member info)
Sex = Literal["male", "female", "unknown"]
MessageType = Literal["private", "group"]
ClientRole = Literal["Universal", "API", "Event"]  # reverse WS X-Client-Role, normalised
Flavor = Literal["spec", "go-cqhttp", "napcat"]  # FakeOneBot's flavours


class Segment(TypedDict):
    """One message segment, ``{"type": "text", "data": {"text": "hi"}}`` (``message/array.md``)."""

    type: str
    data: dict[str, Any]


Message = str | list[Segment]  # a message as it arrives: a CQ string or an array of segments


# -- events (spec event/*.md) ------------------------------------------------------------------


class _EventBase(TypedDict):
    post_type: str  # message, notice, request, meta_event (and message_sent, an extension)


class Event(_EventBase, total=False):
    """What every event has (spec ``event/README.md``): ``post_type`` always, the rest usually."""

    time: int  # Unix seconds (LLOneBot 3.8 sends milliseconds)
    self_id: Id  # the bot account that received it


class Sender(TypedDict, total=False):
    """``sender`` of a message event: best effort, fields may be absent or stale."""

    user_id: Id
    nickname: str
    sex: Sex
    age: int


class GroupSender(Sender, total=False):
    """``sender`` of a group message: also the card, role and title in that group."""

    card: str
    area: str
    level: str
    role: Role
    title: str


class Anonymous(TypedDict, total=False):
    """An anonymous group sender (pass it to ``set_group_anonymous_ban``)."""

    id: Id
    name: str
    flag: str


class MessageEvent(Event, total=False):
    """``post_type: "message"`` (spec ``event/message.md``)."""

    message_type: MessageType
    sub_type: str  # private: friend, group, other; group: normal, anonymous, notice
    message_id: Id
    user_id: Id
    message: Message
    raw_message: str
    font: int
    sender: Sender


class PrivateMessageEvent(MessageEvent, total=False):
    """A private message: ``message.private.friend`` (or ``.group``, ``.other``)."""


class GroupMessageEvent(MessageEvent, total=False):
    """A group message: ``message.group.normal`` (or ``.anonymous``, ``.notice``)."""

    group_id: Id
    anonymous: Anonymous | None
    sender: GroupSender  # type: ignore[misc]  # a group member is a Sender with more fields


class File(TypedDict, total=False):
    """The ``file`` of a ``group_upload`` notice."""

    id: str
    name: str
    size: int
    busid: int


class NoticeEvent(Event, total=False):
    """``post_type: "notice"``: every kind, standard and extension (spec ``event/notice.md``).

    ``notice_type`` says which: ``group_upload``, ``group_admin``,
    ``group_decrease``, ``group_increase``, ``group_ban``, ``friend_add``,
    ``group_recall``, ``friend_recall``, ``notify`` (``sub_type`` ``poke``,
    ``lucky_king``, ``honor``), and the extensions NapCat and go-cqhttp send.
    """

    notice_type: str
    sub_type: str
    group_id: Id
    user_id: Id
    operator_id: Id
    target_id: Id
    message_id: Id
    duration: int  # group_ban, seconds
    honor_type: str  # notify.honor: talkative, performer, emotion
    file: File  # group_upload


class RequestEvent(Event, total=False):
    """``post_type: "request"`` (spec ``event/request.md``); send ``flag`` back unchanged."""

    request_type: Literal["friend", "group"]
    sub_type: str  # group: add, invite
    user_id: Id
    group_id: Id
    comment: str
    flag: str


class FriendRequestEvent(RequestEvent, total=False):
    """Someone asks to be a friend: answer with ``set_friend_add_request(flag, ...)``."""


class GroupRequestEvent(RequestEvent, total=False):
    """Someone asks to join a group (``add``), or invites the bot (``invite``)."""


class MetaEvent(Event, total=False):
    """``post_type: "meta_event"``: a lifecycle or heartbeat event (spec ``event/meta.md``)."""

    meta_event_type: Literal["lifecycle", "heartbeat"]
    sub_type: str  # lifecycle: enable, disable, connect


class Status(TypedDict, total=False):
    """``get_status`` and a heartbeat's ``status``: rely on ``online`` and ``good`` only."""

    online: bool | None
    good: bool


class HeartbeatEvent(MetaEvent, total=False):
    """A heartbeat: ``interval`` milliseconds until the next one."""

    status: Status
    interval: int


class LifecycleEvent(MetaEvent, total=False):
    """``enable``/``disable`` over HTTP POST, ``connect`` once per WebSocket connection."""


# -- API results (spec api/public.md) ------------------------------------------------------------


class MessageId(TypedDict, total=False):
    """What the ``send_*`` actions return."""

    message_id: Id


class MessageInfo(TypedDict, total=False):
    """``get_msg``."""

    time: int
    message_type: MessageType
    message_id: Id
    real_id: Id
    sender: Sender
    message: Message


class ForwardMessage(TypedDict, total=False):
    """``get_forward_msg``: the spec says ``message``; go-cqhttp and NapCat say ``messages``."""

    message: list[Segment]
    messages: list[Segment]


class LoginInfo(TypedDict, total=False):
    """``get_login_info``: who the bot is."""

    user_id: Id
    nickname: str


class StrangerInfo(TypedDict, total=False):
    """``get_stranger_info``."""

    user_id: Id
    nickname: str
    sex: Sex
    age: int


class FriendInfo(TypedDict, total=False):
    """One entry of ``get_friend_list``."""

    user_id: Id
    nickname: str
    remark: str


class GroupInfo(TypedDict, total=False):
    """``get_group_info``, and one entry of ``get_group_list``."""

    group_id: Id
    group_name: str
    member_count: int
    max_member_count: int


class GroupMemberInfo(TypedDict, total=False):
    """``get_group_member_info``, and one entry of ``get_group_member_list``."""

    group_id: Id
    user_id: Id
    nickname: str
    card: str
    sex: Sex
    age: int
    area: str
    join_time: int
    last_sent_time: int
    level: str
    role: Role
    unfriendly: bool
    title: str
    title_expire_time: int
    card_changeable: bool


class HonorInfo(TypedDict, total=False):
    """``get_group_honor_info``: the lists are filled only for the ``type`` asked (or ``all``)."""

    group_id: Id
    current_talkative: dict[str, Any]
    talkative_list: list[dict[str, Any]]
    performer_list: list[dict[str, Any]]
    legend_list: list[dict[str, Any]]
    strong_newbie_list: list[dict[str, Any]]
    emotion_list: list[dict[str, Any]]


class Cookies(TypedDict, total=False):
    """``get_cookies``."""

    cookies: str


class CsrfToken(TypedDict, total=False):
    """``get_csrf_token``."""

    token: int


class Credentials(TypedDict, total=False):
    """``get_credentials``."""

    cookies: str
    csrf_token: int


class ActionResult(TypedDict, total=False):
    """``get_record`` / ``get_image``: where the file is."""

    file: str


class CanSend(TypedDict, total=False):
    """``can_send_image`` / ``can_send_record``."""

    yes: bool


class VersionInfo(TypedDict, total=False):
    """``get_version_info``: ``app_name``, ``app_version``, ``protocol_version`` and extras."""

    app_name: str
    app_version: str
    protocol_version: str


# -- extended actions (go-cqhttp's, kept by NapCat, Lagrange and LLOneBot) -----------------------
# Not in OneBot 11: the shapes are go-cqhttp's documented ones, which its
# successors copied; where one differs, the key is here too and the docstring
# says who sends it.


class ForwardSent(TypedDict, total=False):
    """``send_group_forward_msg`` / ``send_private_forward_msg``.

    go-cqhttp and Lagrange answer ``forward_id``; NapCat answers ``res_id``.
    """

    message_id: Id
    forward_id: str
    res_id: str


class MessageHistory(TypedDict, total=False):
    """``get_group_msg_history`` / ``get_friend_msg_history``: message events, oldest first."""

    messages: list[MessageEvent]


class UploadedFile(TypedDict, total=False):
    """``upload_group_file`` / ``upload_private_file`` (NapCat, Lagrange; go-cqhttp: null)."""

    file_id: str


class GroupFile(TypedDict, total=False):
    """One file of ``get_group_root_files`` / ``get_group_files_by_folder``."""

    group_id: Id
    file_id: str
    file_name: str
    busid: int
    file_size: int
    upload_time: int
    dead_time: int  # 0: never expires
    modify_time: int
    download_times: int
    uploader: Id
    uploader_name: str


class GroupFolder(TypedDict, total=False):
    """One folder of ``get_group_root_files``."""

    group_id: Id
    folder_id: str
    folder_name: str
    create_time: int
    creator: Id
    creator_name: str
    total_file_count: int


class GroupFiles(TypedDict, total=False):
    """``get_group_root_files`` / ``get_group_files_by_folder`` (either list may be null)."""

    files: list[GroupFile] | None
    folders: list[GroupFolder] | None


class FileUrl(TypedDict, total=False):
    """``get_group_file_url``."""

    url: str


class EssenceMessage(TypedDict, total=False):
    """One entry of ``get_essence_msg_list`` (NapCat adds ``content``, the message)."""

    sender_id: Id
    sender_nick: str
    sender_time: int
    operator_id: Id
    operator_nick: str
    operator_time: int
    message_id: Id
    content: list[Segment]


class GroupNoticeBody(TypedDict, total=False):
    """``message`` of a group notice: its text and images."""

    text: str
    images: list[dict[str, Any]]


class GroupNotice(TypedDict, total=False):
    """One entry of ``_get_group_notice`` (NapCat adds ``notice_id``)."""

    notice_id: str
    sender_id: Id
    publish_time: int
    message: GroupNoticeBody


class GroupRequestInfo(TypedDict, total=False):
    """One pending request of ``get_group_system_msg``."""

    request_id: Id
    invitor_uin: Id
    invitor_nick: str
    requester_uin: Id
    requester_nick: str
    message: str
    group_id: Id
    group_name: str
    checked: bool
    actor: Id


class GroupSystemMessages(TypedDict, total=False):
    """``get_group_system_msg``: pending invitations and join requests (either may be null)."""

    invited_requests: list[GroupRequestInfo] | None
    join_requests: list[GroupRequestInfo] | None


class Device(TypedDict, total=False):
    """One logged-in client of ``get_online_clients``."""

    app_id: int
    device_name: str
    device_kind: str


class OnlineClients(TypedDict, total=False):
    """``get_online_clients`` from go-cqhttp (NapCat answers a bare, empty list)."""

    clients: list[Device]


class OcrText(TypedDict, total=False):
    """One recognised line of ``ocr_image``."""

    text: str
    confidence: int
    coordinates: list[dict[str, int]]


class OcrResult(TypedDict, total=False):
    """``ocr_image`` from go-cqhttp and Lagrange (NapCat answers the list of lines itself)."""

    texts: list[OcrText]
    language: str
