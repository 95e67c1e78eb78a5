"""Our four transports against FakeOneBot, in every flavour and under every injected fault.

FakeOneBot's sides are built on other WebSocket code than the transport they
face (its forward server runs our framer against websocket-client; its reverse
client runs websocket-client against our framer), so these are still two
implementations talking.
"""

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import answers, requested, wait_until

from onebot_ref import Flavor
from onebot_ref import message as m
from onebot_ref.errors import (
    ActionFailed,
    ApiNotAvailable,
    ApiTimeout,
    AuthError,
    NetworkError,
    NotConnected,
)
from onebot_ref.http_client import HttpClient
from onebot_ref.http_server import HttpServer
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_client import WsClient
from onebot_ref.ws_server import WsServer

FLAVORS: list[Flavor] = ["spec", "go-cqhttp", "napcat"]
MODES = ["http-client", "http-server", "ws-client", "ws-server"]


class Setup:
    """One transport of ours, wired to one FakeOneBot, with an echo handler."""

    def __init__(self, fake: FakeOneBot, mode: str, token: str | None = None) -> None:
        self.fake, self.mode = fake, mode
        # One of our four modes, chosen by mode: each test uses what its mode has.
        self.bot: Any
        if mode == "http-client":
            self.bot = HttpClient(fake.start_http_api(), access_token=token, timeout=5)
        elif mode == "http-server":
            api = HttpClient(fake.start_http_api(), access_token=token, timeout=5)
            self.bot = HttpServer(port=0, api=api).start()
            self.bot.on("message")(lambda e: {"reply": e["message"], "at_sender": False})
            fake.add_http_post(self.bot.url)
        elif mode == "ws-client":
            self.bot = WsClient(fake.start_ws_server(), access_token=token, timeout=5)
            self.bot.backoff_initial = 0.05
            self.bot.on("message")(lambda e: self.bot.reply(e, e["message"]))
            self.bot.start()
        else:
            self.bot = WsServer(port=0, access_token=token, timeout=5).start()
            self.bot.on("message")(lambda e: self.bot.reply(e, e["message"]))
            self.reverse = fake.connect_reverse(self.bot.url, reconnect_interval=0.05)
            assert self.reverse.wait_connected()
            wait_until(lambda: self.bot.bots)

    def close(self) -> None:
        self.bot.close()
        if self.mode == "http-server":
            self.bot.api.close()


@pytest.fixture
def setup(no_thread_leak: None) -> Iterator[Callable[..., Setup]]:
    made: list[FakeOneBot | Setup] = []

    def make(
        mode: str, flavor: Flavor = "spec", token: str | None = None, **fake_options: Any
    ) -> Setup:
        fake = FakeOneBot(flavor=flavor, access_token=token, **fake_options)
        made.append(fake)
        s = Setup(fake, mode, token)
        made.append(s)
        return s

    yield make
    for thing in reversed(made):
        thing.close()


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("mode", MODES)
def test_echo_and_calls_in_every_flavor(
    setup: Callable[..., Setup], mode: str, flavor: Flavor
) -> None:
    s = setup(mode, flavor, token="tok")
    segments = [m.at(10001), m.text(" [CQ:face,id=1] & &#91;")]
    if mode == "http-client":
        s.bot.send_group_msg(30001, segments)
        s.bot.send_private_msg(20001, "plain")
    else:
        s.fake.push_message(text=m.to_cq(segments), group_id=30001)
        s.fake.push_message(text="plain")
    sent = s.fake.wait_for_sent(2)
    assert {tuple(map(str, x["message"])) for x in sent} == {
        tuple(map(str, segments)),
        tuple(map(str, [m.text("plain")])),
    }
    assert s.bot.get_login_info() == {"user_id": 10001, "nickname": "FakeBot"}
    assert s.bot.get_group_member_info(30001, 20001)["role"] == "admin"
    # NapCat's HTTP API answers an unknown action with retcode 200 and "不支持的Api …".
    with pytest.raises(ApiNotAvailable):
        s.bot.call("no_such_action")


@pytest.mark.parametrize("flavor", FLAVORS)
def test_wrong_token_is_an_auth_error_in_the_client_modes(
    setup: Callable[..., Setup], flavor: Flavor
) -> None:
    with FakeOneBot(flavor=flavor, access_token="right") as fake:
        with (
            HttpClient(fake.start_http_api(), access_token="wrong") as http,
            pytest.raises(AuthError),
        ):
            http.get_status()
        client = WsClient(fake.start_ws_server(), access_token="wrong", timeout=5)
        started = time.monotonic()
        with pytest.raises(AuthError):
            client.start()
        assert time.monotonic() - started < 5
        client.close()


@pytest.mark.parametrize("flavor", FLAVORS)
def test_wrong_token_keeps_the_fake_out_of_our_server(flavor: Flavor, no_thread_leak: None) -> None:
    with (
        WsServer(port=0, access_token="right") as server,
        FakeOneBot(flavor=flavor, access_token="wrong") as fake,
    ):
        reverse = fake.connect_reverse(server.url, reconnect_interval=0.05)
        wait_until(lambda: reverse.attempts >= 3)
        assert server.bots == []
        with pytest.raises((NotConnected, ValueError)):
            server.get_status()


@pytest.mark.parametrize("mode", ["http-client", "ws-client", "ws-server"])
def test_slow_or_dropped_responses_time_out(setup: Callable[..., Setup], mode: str) -> None:
    s = setup(mode)
    s.fake.faults.delay = 1.0
    answered = answers(s.fake)
    with pytest.raises(ApiTimeout, match="may still have carried it out"):
        s.bot.call("get_status", timeout=0.2)
    s.fake.faults.delay = 0
    if mode != "http-client":  # over HTTP a dropped answer is a closed connection
        s.fake.faults.drop = 1
        with pytest.raises(ApiTimeout):
            s.bot.call("get_status", timeout=0.3)
    else:
        s.fake.faults.drop = 1
        with pytest.raises(NetworkError):
            s.bot.get_status()
    # The delayed answer goes out (on a WebSocket, before any later one) and is discarded.
    wait_until(lambda: answers(s.fake) > answered, 5, "the delayed answer sent")
    assert s.bot.get_status()["good"] is True


@pytest.mark.parametrize("mode", ["ws-client", "ws-server"])
def test_connection_dropped_mid_call_fails_fast_then_recovers(
    setup: Callable[..., Setup], mode: str
) -> None:
    s = setup(mode)
    s.fake.faults.close_mid_call = 1
    started = time.monotonic()
    with pytest.raises(NotConnected):
        s.bot.call("get_status", timeout=20)
    assert time.monotonic() - started < 3  # not the 20 s timeout
    wait_until(lambda: _up(s), timeout=10)
    assert s.bot.get_status()["online"] is True


def _up(s: Setup) -> Any:
    try:
        return s.bot.get_status()["good"]
    except (NotConnected, ValueError, ApiTimeout):
        return False


@pytest.mark.parametrize("mode", ["ws-client", "ws-server"])
def test_pending_calls_from_many_threads_all_fail_fast(
    setup: Callable[..., Setup], mode: str
) -> None:
    s = setup(mode)
    s.fake.faults.delay = 0.3
    errors = []

    def call() -> None:
        try:
            s.bot.call("get_status", timeout=20)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: requested(s.fake) >= 1, 5, "the calls in flight (the first one delayed)")
    started = time.monotonic()
    if mode == "ws-client":
        s.fake.ws_server.close()
    else:
        s.reverse.drop()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads)
    assert time.monotonic() - started < 5  # fast: not the calls' 20 s timeout
    assert len(errors) >= 3 and all(isinstance(e, NotConnected) for e in errors)


@pytest.mark.parametrize("echo", ["number", "omit", "mangle"])
@pytest.mark.parametrize("mode", ["ws-client", "ws-server"])
def test_echo_faults(
    setup: Callable[..., Setup], mode: str, echo: str, caplog: pytest.LogCaptureFixture
) -> None:
    s = setup(mode)
    s.fake.faults.echo = echo
    if echo == "number":  # "7" back as 7: still matched
        assert s.bot.get_status()["good"] is True
    else:
        with pytest.raises(ApiTimeout):
            s.bot.call("get_status", timeout=0.3)
        assert "matches no waiting call" in caplog.text


def test_echo_less_failure_reaches_the_single_caller(setup: Callable[..., Setup]) -> None:
    s = setup("ws-client", flavor="go-cqhttp")
    s.fake.faults.echo = "omit"
    with pytest.raises(ActionFailed, match="消息为空") as info:
        s.bot.send_private_msg(20001, "")  # fails, and the fake leaves out the echo
    assert info.value.retcode == 100


@pytest.mark.parametrize("mode", ["ws-client", "ws-server"])
def test_silent_heartbeats_mean_a_dead_link(setup: Callable[..., Setup], mode: str) -> None:
    s = setup(mode, heartbeat_interval=0.1)
    beats: list[dict[str, Any]] = []
    s.bot.on("meta_event.heartbeat")(beats.append)
    wait_until(lambda: len(beats) >= 2, 5, "heartbeats, which arm the watchdog")
    s.fake.faults.heartbeats = False
    attempts = s.reverse.attempts if mode == "ws-server" else None
    started = time.monotonic()
    if mode == "ws-client":
        wait_until(lambda: not s.bot.connected, timeout=5)
    else:
        wait_until(lambda: s.reverse.attempts > attempts, timeout=5)
    assert time.monotonic() - started < 3
    s.fake.faults.heartbeats = True
    wait_until(lambda: _up(s), timeout=10)


@pytest.mark.parametrize("mode", ["ws-client", "ws-server"])
def test_malformed_frame_closes_that_connection_only(
    setup: Callable[..., Setup], mode: str
) -> None:
    s = setup(mode)
    s.fake.faults.malformed = 1
    with pytest.raises((NotConnected, ApiTimeout)):
        s.bot.call("get_status", timeout=2)
    wait_until(lambda: _up(s), timeout=10)


@pytest.mark.parametrize("mode", ["ws-client", "ws-server"])
def test_events_without_lifecycle_are_delivered(setup: Callable[..., Setup], mode: str) -> None:
    s = setup(mode)
    s.fake.faults.lifecycle = False
    s.fake.restart(downtime=0.05) if mode == "ws-client" else s.reverse.drop()
    wait_until(lambda: _up(s), timeout=10)
    s.fake.push_message(text="no lifecycle needed")
    assert s.fake.wait_for_sent(1)[0]["text"] == "no lifecycle needed"


@pytest.mark.parametrize("mode", ["http-client", "ws-client"])
def test_implementation_restart(setup: Callable[..., Setup], mode: str) -> None:
    s = setup(mode)
    s.fake.restart(downtime=0.2)
    wait_until(lambda: _up(s), timeout=10)
    s.bot.send_private_msg(20001, "back")
    assert s.fake.sent[-1]["text"] == "back"


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("mode", MODES)
def test_a_non_ascii_token_works_in_every_mode(
    setup: Callable[..., Setup], mode: str, flavor: Flavor
) -> None:
    # 你 ends in the byte A0, which a latin-1 str.strip() would eat.
    s = setup(mode, flavor, token="令牌-你")
    if mode != "http-client":
        s.fake.push_message(text="hi")
        assert s.fake.wait_for_sent(1)[0]["text"] == "hi"
    assert s.bot.get_status()["good"] is True


# NapNeko/NapCatQQ packages/napcat-onebot/network/: http-server.ts (HTTP 200,
# retcode 200), websocket-server.ts (the bot's ws-client mode) and
# websocket-client.ts (the bot's ws-server mode), both retcode 1404.
NAPCAT_UNKNOWN = {
    "http-client": (200, "不支持的Api no_such_action"),
    "ws-client": (1404, "不支持的API no_such_action"),
    "ws-server": (1404, "不支持的Api no_such_action"),
}


@pytest.mark.parametrize("mode", NAPCAT_UNKNOWN)
def test_napcat_unknown_action_is_api_not_available_in_every_transport(
    setup: Callable[..., Setup], mode: str
) -> None:
    s = setup(mode, "napcat")
    with pytest.raises(ApiNotAvailable) as caught:
        s.bot.call("no_such_action")
    retcode, text = NAPCAT_UNKNOWN[mode]
    assert (caught.value.retcode, caught.value.message) == (retcode, text)
    assert caught.value.response["status"] == "failed"
    with pytest.raises(ApiNotAvailable):  # what call_async's docstring promises
        s.bot.call_async("send_group_msg", group_id=1, message="x")


@pytest.mark.parametrize("mode", MODES)
def test_a_parameter_named_timeout_or_self_id_reaches_the_implementation(
    setup: Callable[..., Setup], mode: str
) -> None:
    """Issue 14: call(action, {params}) carries what call's own keywords would shadow."""
    s = setup(mode)
    # get_status ignores what it does not know; FakeOneBot records every call as it came.
    s.bot.call("get_status", {"timeout": 3, "self_id": 42, "no_cache": False}, no_cache=True)
    s.bot.call("get_status", {"timeout": 4}, timeout=5)  # the keyword: our wait
    calls = [params for action, params in s.fake.calls if action == "get_status"]
    assert calls == [{"timeout": 3, "self_id": 42, "no_cache": True}, {"timeout": 4}]
