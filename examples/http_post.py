#!/usr/bin/env python3
"""Mode 2, HTTP POST: receive events and answer with a quick-operation reply.

Offline, FakeOneBot POSTs one message to us and applies our reply. With --listen
HOST:PORT it waits for a real implementation instead (NapCat: an httpClients entry
whose url is http://HOST:PORT/ and whose token is our --secret). Ctrl+C stops it.
"""

import argparse

from onebot_ref import MessageEvent, host_port_arg
from onebot_ref.http_server import HttpServer
from onebot_ref.testing import FakeOneBot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", type=host_port_arg, default=("127.0.0.1", 0))
    parser.add_argument("--secret")
    args = parser.parse_args()
    with HttpServer(*args.listen, secret=args.secret) as server:

        @server.on("message")
        def echo(event: MessageEvent) -> dict[str, object]:
            return {"reply": event["message"], "at_sender": False}

        if args.listen[1]:  # a real implementation will POST to us
            print(f"echoing messages posted to {server.url}; Ctrl+C to stop", flush=True)
            server.serve_forever()
            return
        with FakeOneBot() as fake:
            fake.add_http_post(server.url, secret=args.secret)
            fake.push_message(user_id=20001, text="ping")
            print("the bot replied:", fake.wait_for_sent(1)[0]["text"])


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("stopped")
