"""One bot of ours per receiving mode, wired to a FakeOneBot: what the bot-feature tests share.

``http-server`` sends through an ``HttpClient`` (mode 1), so the four modes
are all on the wire: HTTP POST in and HTTP API out, forward WS, reverse WS.
"""

import contextlib
from collections.abc import Iterator
from typing import Any

from conftest import wait_until

from onebot_ref._bot import Receiver
from onebot_ref.http_client import HttpClient
from onebot_ref.http_server import HttpServer
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_client import WsClient
from onebot_ref.ws_server import WsServer

MODES = ["http-server", "ws-client", "ws-server"]


@contextlib.contextmanager
def running(fake: FakeOneBot, mode: str, **options: Any) -> Iterator[Receiver]:
    """Our ``mode``, connected to ``fake`` and ready for events; closed after the block.

    ``options`` go to the mode's constructor (``registry=``, ``send_limit=``...).
    The bot is made before it connects, so handlers can be added to the yielded
    bot and events pushed at once.
    """
    bot: Receiver
    if mode == "http-server":
        api = HttpClient(fake.start_http_api(), timeout=5)
        bot = HttpServer(port=0, api=api, **options).start()
        fake.add_http_post(bot.url)
    elif mode == "ws-client":
        bot = WsClient(fake.start_ws_server(), timeout=5, **options).start()
    else:
        bot = WsServer(port=0, timeout=5, **options).start()
        assert fake.connect_reverse(bot.url, reconnect_interval=0.05).wait_connected()
        wait_until(lambda: bot.bots, 5, "the fake's reverse connection")
    try:
        yield bot
    finally:
        bot.close()
        if isinstance(bot, HttpServer):
            api.close()
