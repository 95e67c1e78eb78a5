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
standard actions), built with methods (``fake.world.add_group(30002, "lab")``,
``add_member(30002, 20003, role="admin")``, ``load(...)`` for a whole world);
actions have their consequences (a kick removes the member and sends
``group_decrease``; approving ``fake.request_friend(20009)`` makes a friend).
:class:`Faults` injects what real deployments do wrong.

``python -m onebot_ref.testing --ws-server 127.0.0.1:3001`` runs it on its
own, for a bot written with any framework: a console turns typed lines into
events and shows what the bot sends (``--help`` for the modes, ``/help`` for
the console).
"""

from ._fake import FakeOneBot
from ._host import Faults
from ._replay import Call, ReplayDiff
from ._world import World

__all__ = ["Call", "FakeOneBot", "Faults", "ReplayDiff", "World"]
