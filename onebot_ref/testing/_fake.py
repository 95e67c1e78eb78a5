"""FakeOneBot: a working OneBot 11 implementation in-process, for offline tests and demos.

Not a mock: it speaks the implementation's side of all four modes over real
loopback sockets, so a bot written with onebot_ref (or any other library)
runs against it exactly as against NapCat or go-cqhttp::

    fake = FakeOneBot(flavor="napcat", access_token="t")
    api_url = fake.start_http_api()           # mode 1: our HttpClient calls it
    fake.add_http_post("http://127.0.0.1:8080/", secret="s")   # mode 2: it POSTs to us
    ws_url = fake.start_ws_server()           # mode 3: our WsClient connects here
    fake.connect_reverse("ws://127.0.0.1:8081/")               # mode 4: it dials us
    fake.push_message(user_id=20001, text="hi")                # an event, to every sink
    fake.wait_for_sent(1, timeout=5)          # what the bot sent back

Behind every mode stands one :class:`~onebot_ref.fake_world.World` (accounts,
groups, message store, all standard actions). ``flavor`` reproduces the quirks
of ``"spec"``, ``"go-cqhttp"`` or ``"napcat"`` (auth failures, envelopes,
unknown actions, message format, echo handling). :attr:`FakeOneBot.faults`
injects the failures real deployments have (delays, lost or mangled echoes,
connections dropped mid-call, silent heartbeats, malformed frames).

TLS in every mode: ``ssl_context=`` or ``certfile=``/``keyfile=`` make its
servers speak ``https://`` and ``wss://``; ``ca_file=``, ``client_ssl_context=``
or ``verify=False`` set how its clients (the HTTP POST pusher and the reverse
dialer) check the bot's certificate. ``host="::1"`` serves on IPv6.

Teaching shortcuts: one bot account per FakeOneBot; quick operations
implement ``reply``/``at_sender``/``auto_escape``/``approve`` only.
"""

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from .. import codec
from .._auth import check_token
from .._tls import client_context, server_context
from .._types import Flavor
from ..errors import DecodeError
from ..http_client import use_ssl_context
from . import _extended  # noqa: F401  (adds the extended actions to the world's table)
from ._host import Faults
from ._http import FakeHttpApi
from ._replay import ReplayDiff, Replayer, Source, replay
from ._world import World

__all__ = ["FakeOneBot"]

log = logging.getLogger(__name__)


class FakeOneBot:
    """The implementation side of OneBot 11, in-process.

    Args:
        self_id: the fake bot account's QQ number.
        flavor: ``"spec"``, ``"go-cqhttp"`` or ``"napcat"``.
        access_token: the token clients must present (HTTP API, forward WS) and
            that the reverse-WS client sends.
        heartbeat_interval: seconds between heartbeat events on WebSocket
            connections; None turns heartbeats off (the spec default).
        message_format: ``"string"`` or ``"array"``; default per flavour.
        host: where servers listen (``"::1"`` for IPv6).
        ssl_context, certfile, keyfile: serve the HTTP API and forward WS over TLS.
        client_ssl_context, ca_file, verify: how the HTTP POST pusher and the
            reverse-WS client verify the bot's ``https://``/``wss://`` server.
    """

    def __init__(
        self,
        self_id: int = 10001,
        *,
        flavor: Flavor = "spec",
        access_token: str | None = None,
        heartbeat_interval: float | None = None,
        message_format: str | None = None,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        client_ssl_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
        verify: bool = True,
    ) -> None:
        self.world = World(self_id, flavor=flavor, message_format=message_format)
        self.flavor = flavor
        self.access_token = codec.valid_token(access_token)
        self.heartbeat_interval = heartbeat_interval
        self.host = host
        self.ssl_context = server_context(ssl_context, certfile, keyfile)
        self.client_ssl_context = client_context(
            ssl_context=client_ssl_context, ca_file=ca_file, verify=verify, who="FakeOneBot"
        )
        self.faults = Faults()
        self.replaying: Replayer | None = None  # while replay() runs
        self.post_targets: list[tuple[str, str | None]] = []
        self.post_log: list[tuple[int, Any]] = []  # (status, quick operation) per POST
        self.http_api: FakeHttpApi | None = None
        self.ws_server: Any = None  # FakeWsServer, started by start_ws_server()
        self.reverse: list[Any] = []  # ReverseClient per connect_reverse() call
        # Every frame that crossed the wire: (direction, mode, JSON value). Bounded.
        self.transcript: list[tuple[str, str, Any]] = []
        self.max_transcript = 10_000
        self.on_wire: Callable[[str, str, Any], None] | None = None
        self._transcript_lock = threading.Lock()
        self._session = requests.Session()
        if self.client_ssl_context is not None:
            use_ssl_context(self._session, self.client_ssl_context)
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        # Notices the world's actions cause (friend_add, group_decrease...), delivered
        # by a thread of their own, started at the first one (see _queue_event).
        self._notices: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1000)
        self._undelivered = 0  # notices queued and not yet pushed
        self._delivered = threading.Condition()
        self._notifier: threading.Thread | None = None
        self._notifier_lock = threading.Lock()
        self.world.on_event = self._queue_event

    # -- what tests and demos read ----------------------------------------------------

    @property
    def self_id(self) -> int:
        return self.world.self_id

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Every message the bot sent, in order (``message_type``, ids, ``message``, ``text``)."""
        return self.world.sent

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """Every action the bot called, in order, with its parameters."""
        return self.world.calls

    def wait_for_sent(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until the bot has sent ``n`` messages (TimeoutError otherwise)."""
        return self.world.wait_for_sent(n, timeout)

    # -- answering actions, shared by every transport ------------------------------

    def answer(self, request: Any, mode: str) -> dict[str, Any] | None:
        """The response to an action request arriving over ``mode``, or None to stay silent.

        ``mode`` names the bot's module on the other end (``http-client``,
        ``ws-client`` or ``ws-server``). Applies the flavour's echo rules and
        the delay / drop / echo faults, and records both frames in the transcript.
        """
        # NapCat words some answers per transport: its WS server (the bot's
        # ws-client mode) and its reverse WS client (ws-server mode) differ.
        transport = {"http-client": "http", "ws-server": "ws-reverse"}.get(mode, "ws")
        self.record("bot → onebot", mode, request)
        if self.faults.delay:
            time.sleep(self.faults.delay)
        if self.faults.take("drop"):
            return None
        if not isinstance(request, dict) or not isinstance(request.get("action"), str):
            response = self.world.failed(1400, "request is not an action object")
            has_echo = False
            echo = None
        else:
            params = request.get("params")
            params = params if isinstance(params, dict) else {}
            resp = self.world.handle(request["action"], params, transport)
            response = resp if resp is not None else self.world.failed(1404, "unknown action")
            if self.replaying is not None:  # the recorded answer, if there is one
                response = self.replaying.answer(request["action"], params, response)
            has_echo = "echo" in request and request["echo"] is not None
            echo = request.get("echo")
        if has_echo:
            response["echo"] = self._mangle_echo(echo)
        elif self.flavor == "napcat":
            response["echo"] = None if transport == "http" else ""
        self.record("onebot → bot", mode, response)
        return response

    def record(self, direction: str, mode: str, obj: Any) -> None:
        """Note one frame that crossed the wire (see :attr:`transcript` and :attr:`on_wire`)."""
        entry = (direction, mode, obj)
        with self._transcript_lock:
            self.transcript.append(entry)
            if len(self.transcript) > self.max_transcript:
                del self.transcript[: len(self.transcript) // 2]
        if self.on_wire is not None:
            self.on_wire(*entry)

    def _mangle_echo(self, echo: Any) -> Any:
        mode = self.faults.echo
        if mode == "omit":
            return None
        if mode == "null":
            return None
        if mode == "number" and isinstance(echo, str) and echo.isdigit():
            return int(echo)
        if mode == "mangle":
            return f"{echo}-mangled"
        return echo

    def check_token(self, authorization: str | None, query: str) -> int:
        """0 if the credential is acceptable, else the HTTP status to refuse with.

        The servers' one check (:func:`onebot_ref._auth.check_token`), read the
        way this flavour reads it: NapCat takes the query first, strips only a
        literal ``Bearer `` and answers 403 for a missing token as well; CQHTTP
        and go-cqhttp take the header first.
        """
        napcat = self.flavor == "napcat"
        refusal = check_token(
            self.access_token,
            authorization,
            query,
            query_first=napcat,
            bearer_only=napcat,
            missing=403 if napcat else 401,
        )
        return 0 if refusal is None else refusal.status

    # -- mode 1: HTTP API ---------------------------------------------------------------

    def start_http_api(self, port: int = 0, *, host: str | None = None) -> str:
        """Serve the HTTP API on ``host:port`` (default: the fake's host); return its base URL."""
        self.http_api = FakeHttpApi(self, (host or self.host, port))
        return self.http_api.start()

    # -- mode 2: HTTP POST --------------------------------------------------------------

    def add_http_post(self, url: str, *, secret: str | None = None) -> None:
        """POST every event to ``url`` from now on, signed with ``secret`` if given."""
        self.post_targets.append((url, secret))

    def _post(self, event: dict[str, Any], url: str, secret: str | None) -> None:
        self.record("onebot → bot", "http-server", event)
        body = codec.dumps(event)
        header_case = str.lower if self.flavor == "napcat" else str
        headers = {"Content-Type": "application/json", header_case("X-Self-ID"): str(self.self_id)}
        if self.flavor != "napcat":
            headers["User-Agent"] = "CQHttp/4.15.0"
        if secret:
            headers[header_case("X-Signature")] = codec.sign(body, secret)
        try:
            resp = self._session.post(url, data=body, headers=headers, timeout=10)
        except requests.RequestException as exc:
            log.warning("HTTP POST to %s failed: %s", codec.redact(url), codec.redact(str(exc)))
            self.post_log.append((0, None))
            return
        operation = None
        if resp.content and (200 <= resp.status_code < 300 or self.flavor == "go-cqhttp"):
            try:
                operation = codec.loads(resp.content)
            except DecodeError:
                log.warning(
                    "quick operation from %s is not JSON: %.80r", codec.redact(url), resp.content
                )
        self.post_log.append((resp.status_code, operation))
        if self.replaying is not None and operation is not None:
            self.replaying.quick_operation(operation)
        self.record("bot → onebot", "http-server", operation if operation else resp.status_code)
        if operation is not None:
            self.world.quick_operation(event, operation)

    # -- events to every sink -----------------------------------------------------------

    def push(self, event: dict[str, Any]) -> None:
        """Deliver ``event`` to every sink: HTTP POST targets (synchronously, applying
        the quick-operation reply, as CQHTTP does) and every event-capable WebSocket."""
        for url, secret in list(self.post_targets):
            self._post(event, url, secret)
        for conn in self.event_connections():
            self.record("onebot → bot", conn.mode, event)
            conn.send_json(event)

    def push_message(
        self, user_id: int = 20001, text: str = "hello", group_id: int | None = None
    ) -> dict[str, Any]:
        """Push a private (or group, with ``group_id``) message event; return it."""
        event = self.world.message_event(user_id, text, group_id)
        self.push(event)
        return event

    def request_friend(
        self, user_id: int, comment: str = "", *, nickname: str | None = None
    ) -> dict[str, Any]:
        """Push a friend request from ``user_id`` (:meth:`World.request_friend`); return it."""
        event = self.world.request_friend(user_id, comment, nickname=nickname)
        self.push(event)
        return event

    def request_join(
        self, group_id: int, user_id: int, comment: str = "", *, sub_type: str = "add"
    ) -> dict[str, Any]:
        """Push a join request (or, ``sub_type="invite"``, an invitation for the bot)
        (:meth:`World.request_join`); return it."""
        event = self.world.request_join(group_id, user_id, comment, sub_type=sub_type)
        self.push(event)
        return event

    def _queue_event(self, event: dict[str, Any]) -> None:
        """Deliver an event an action caused, independently of the action's answer.

        On QQ the implementation answers the action and the notice comes from the
        server on its own (a bot must not count on either order); here a thread
        of its own delivers it, so that the HTTP POST of a notice never runs
        inside the action (or the quick operation) that caused it. Bounded: past
        1000 waiting notices, drop.
        """
        if self._stop.is_set():
            return
        with self._delivered:
            try:
                self._notices.put_nowait(event)
            except queue.Full:
                log.warning("dropped a %s notice: 1000 wait for delivery", event.get("notice_type"))
                return
            self._undelivered += 1
        with self._notifier_lock:
            if self._notifier is None:
                self._notifier = threading.Thread(
                    target=self._deliver_notices, name="fake-notices", daemon=True
                )
                self._notifier.start()

    def _deliver_notices(self) -> None:
        while not self._stop.is_set():
            try:
                event = self._notices.get(timeout=0.2)  # and check _stop this often
            except queue.Empty:
                continue
            try:
                self.push(event)
            except Exception:
                log.exception("delivering a notice failed")
            finally:
                with self._delivered:
                    self._undelivered -= 1
                    self._delivered.notify_all()

    def event_connections(self) -> list[Any]:
        """Every live WebSocket connection that carries events."""
        conns: list[Any] = []
        if self.ws_server is not None:
            conns.extend(self.ws_server.event_connections())
        for client in self.reverse:
            conns.extend(client.event_connections())
        return conns

    def lifecycle_event(self) -> dict[str, Any]:
        event = self.world.meta_event("lifecycle", sub_type="connect")
        if self.flavor == "go-cqhttp":
            event["_post_method"] = 2
        return event

    # -- WebSocket modes (see fake_ws) ----------------------------------------------------

    def start_ws_server(self, port: int = 0, *, host: str | None = None) -> str:
        """Serve forward WebSocket (``/``, ``/api``, ``/event``) on ``host:port`` (default:
        the fake's host); return its URL."""
        from ._ws import FakeWsServer  # noqa: PLC0415  (fake_ws imports this module)

        self.ws_server = FakeWsServer(self, (host or self.host, port))
        url: str = self.ws_server.start()
        self._start_heartbeats()
        return url

    def connect_reverse(
        self,
        url: str | None = None,
        *,
        api_url: str | None = None,
        event_url: str | None = None,
        reconnect_interval: float = 3.0,
        scheme: str | None = None,
    ) -> Any:
        """Dial the bot's reverse-WS server: one Universal connection to ``url``, or an
        API and an Event connection to ``api_url``/``event_url``. Reconnects every
        ``reconnect_interval`` seconds, forever, as real implementations do.
        ``scheme`` is the Authorization scheme (``Token`` for go-cqhttp, else ``Bearer``)."""
        from ._ws import ReverseClient  # noqa: PLC0415

        client = ReverseClient(
            self, url, api_url=api_url, event_url=event_url,
            reconnect_interval=reconnect_interval, scheme=scheme,
        )  # fmt: skip
        self.reverse.append(client)
        client.start()
        self._start_heartbeats()
        return client

    def _start_heartbeats(self) -> None:
        if self.heartbeat_interval is None or self._heartbeat is not None:
            return
        self._heartbeat = threading.Thread(target=self._beat, name="fake-heartbeat", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        assert self.heartbeat_interval is not None
        interval_ms = int(self.heartbeat_interval * 1000)
        while not self._stop.wait(self.heartbeat_interval):
            if self.faults.heartbeats:
                for conn in self.event_connections():
                    conn.send_json(self.world.heartbeat(interval_ms))

    # -- replaying a recorded session -------------------------------------------------------

    def replay(
        self,
        transcript: Source,
        *,
        timeout: float = 5.0,
        settle: float = 0.05,
        meta: bool = False,
    ) -> ReplayDiff:
        """Play a session recorded by ``python -m onebot_ref.record`` to the connected bot.

        The recorded events go to every sink (any mode, not only the recorded
        one); the bot's calls are answered with the recorded answers (same
        action and parameters), or by the world when the recording has none.
        Rules in :mod:`onebot_ref.testing._replay`::

            diff = fake.replay("napcat-session.jsonl")
            assert not diff, str(diff)

        Args:
            transcript: the JSONL file's path, or its entries.
            timeout: seconds to wait, after each event, for the calls the bot
                made after it in the recording.
            settle: seconds of quiet that end the wait for extra calls.
            meta: replay meta events (lifecycle, heartbeats) too.

        Returns:
            What the bot did differently (:class:`ReplayDiff`: empty when nothing).

        Raises:
            DecodeError: not a transcript the recorder wrote.
            ConfigError: the recording is of another account (give ``self_id=``).
            NotConnected: no bot is connected (an event would reach nobody).
            OSError: the file cannot be read.
        """
        return replay(self, transcript, timeout=timeout, settle=settle, meta=meta)

    # -- lifecycle ------------------------------------------------------------------------

    def restart(self, downtime: float = 0.2) -> None:
        """Drop every connection and server, wait ``downtime``, then come back on the
        same ports (reverse clients redial on their own schedule)."""
        api = (self.http_api.host, self.http_api.port) if self.http_api else None
        ws = (self.ws_server.host, self.ws_server.port) if self.ws_server else None
        self._close_servers()
        for client in self.reverse:
            client.drop()
        time.sleep(downtime)
        if api is not None:
            self.start_http_api(api[1], host=api[0])
        if ws is not None:
            self.start_ws_server(ws[1], host=ws[0])

    def _close_servers(self) -> None:
        if self.http_api is not None:
            self.http_api.close()
            self.http_api = None
        if self.ws_server is not None:
            self.ws_server.close()
            self.ws_server = None

    def close(self) -> None:
        """Deliver the notices of actions already answered (2 s at most); stop everything."""
        with self._delivered:
            self._delivered.wait_for(lambda: not self._undelivered, 2.0)
        self._stop.set()
        self._close_servers()
        for client in self.reverse:
            client.close()
        self.reverse.clear()
        if self._heartbeat is not None:
            self._heartbeat.join(2)
            self._heartbeat = None
        with self._notifier_lock:
            notifier, self._notifier = self._notifier, None
        if notifier is not None:
            notifier.join(2)
        self._session.close()

    def __enter__(self) -> "FakeOneBot":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
