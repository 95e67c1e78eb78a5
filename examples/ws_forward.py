#!/usr/bin/env python3
"""Mode 3, forward WebSocket: connect to the implementation's WS server and echo messages.

Offline it connects to FakeOneBot, which sends "ping"; with --url ws://127.0.0.1:3001
(and --token) it connects to a real one (NapCat: a websocketServers entry) and echoes
every message until Ctrl+C.
"""

import argparse

from onebot_ref import MessageEvent
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_client import WsClient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="the implementation's WebSocket, e.g. ws://127.0.0.1:3001")
    parser.add_argument("--token")
    args = parser.parse_args()
    with FakeOneBot(access_token=args.token) as fake:
        bot = WsClient(args.url or fake.start_ws_server(), access_token=args.token)

        @bot.on("message")
        def echo(event: MessageEvent) -> None:
            bot.reply(event, event["message"])  # a blocking call inside a handler is fine

        with bot:  # connects (or raises), and closes every thread on the way out
            if args.url:
                print(f"echoing messages from {args.url}; Ctrl+C to stop", flush=True)
                bot.run_forever()  # the client already runs: this waits for Ctrl+C
            fake.push_message(user_id=20001, text="ping")
            print("the bot replied:", fake.wait_for_sent(1)[0]["text"])


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("stopped")
