"""Testing a bot with no QQ account: FakeOneBot, a working OneBot 11 implementation in-process.

Not a mock: :class:`FakeOneBot` speaks the implementation's side of all four
modes over real loopback sockets, so a bot written with onebot_ref (or with
any other library) runs against it exactly as against NapCat or go-cqhttp::

    from onebot_ref.testing import FakeOneBot

    with FakeOneBot(flavor="napcat") as fake:
        url = fake.start_ws_server()      # the bot dials it: WsClient(url)
        fake.push_message(user_id=20001, text="/ping")
        assert fake.wait_for_sent(1)[0]["text"] == "pong"

Behind every mode stands one :class:`World` (accounts, groups, messages, the
standard actions); :class:`Faults` injects what real deployments do wrong.
"""

from ._fake import FakeOneBot, Faults
from ._replay import Call, ReplayDiff
from ._world import World

__all__ = ["Call", "FakeOneBot", "Faults", "ReplayDiff", "World"]
