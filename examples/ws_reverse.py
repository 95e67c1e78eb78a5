#!/usr/bin/env python3
"""Mode 4, reverse WebSocket: the implementation dials us; we echo messages.

Offline, FakeOneBot dials our server and sends "ping"; with --listen HOST:PORT we
wait for a real implementation (NapCat: a websocketClients entry with url
ws://HOST:PORT/) and echo every message until Ctrl+C.
"""

import argparse

from onebot_ref import MessageEvent, host_port_arg
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_server import WsServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", type=host_port_arg, default=("127.0.0.1", 0))
    parser.add_argument("--token")
    args = parser.parse_args()
    # Leaving the with-block closes the server first: a reply still in flight gets its answer.
    with (
        FakeOneBot(access_token=args.token) as fake,
        WsServer(*args.listen, access_token=args.token) as server,
    ):

        @server.on("message")
        def echo(event: MessageEvent) -> None:
            server.reply(event, event["message"])  # routed to the bot that got the event

        if args.listen[1]:
            print(f"echoing messages; point the implementation at {server.url}", flush=True)
            server.serve_forever()  # a real implementation dials us; Ctrl+C stops it
            return
        fake.connect_reverse(server.url).wait_connected()
        fake.push_message(user_id=20001, text="ping")
        print("the bot replied:", fake.wait_for_sent(1)[0]["text"])


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("stopped")
