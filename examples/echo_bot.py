#!/usr/bin/env python3
"""One echo bot, written once, run over any of the three receiving modes.

Every transport has the same on() and reply(): HttpServer sends its replies
through the HTTP API client it is given. Offline, FakeOneBot plays the
implementation: it sends "/ping" (the bot answers "pong") and a group message
(echoed back), and the bot's answers are printed.
"""

import argparse

from onebot_ref import MessageEvent
from onebot_ref.http_client import HttpClient
from onebot_ref.http_server import HttpServer
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_client import WsClient
from onebot_ref.ws_server import WsServer


def add_echo(bot: HttpServer | WsClient | WsServer) -> None:
    @bot.on("message")
    def echo(event: MessageEvent) -> None:
        answer = "pong" if event["raw_message"].strip() == "/ping" else event["message"]
        bot.reply(event, answer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    modes = ["ws-server", "ws-client", "http-server"]
    parser.add_argument("mode", nargs="?", default="ws-server", choices=modes)
    mode = parser.parse_args().mode
    with FakeOneBot() as fake:
        bot: HttpServer | WsClient | WsServer
        if mode == "http-server":
            bot = HttpServer(port=0, api=HttpClient(fake.start_http_api())).start()
            fake.add_http_post(bot.url)
        elif mode == "ws-client":
            bot = WsClient(fake.start_ws_server()).start()
        else:
            bot = WsServer(port=0).start()
            fake.connect_reverse(bot.url).wait_connected()
        add_echo(bot)
        fake.push_message(text="/ping")
        fake.push_message(text="hello [CQ:face,id=1]", group_id=30001)
        for sent in fake.wait_for_sent(2):
            print(mode, "->", sent["raw_message"])
        bot.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("stopped")
