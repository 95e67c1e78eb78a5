#!/usr/bin/env python3
"""Mode 1, HTTP API: send a message from a plain script (no server, no thread, no loop).

Offline it talks to an in-process FakeOneBot; pass --url http://127.0.0.1:3000 (and
--token) to talk to a real implementation's HTTP API (NapCat: an httpServers entry).
It asks who is logged in, sends user 20001 a greeting and prints the message id.
"""

import argparse

from onebot_ref.http_client import HttpClient
from onebot_ref.testing import FakeOneBot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="the implementation's HTTP API, e.g. http://127.0.0.1:3000")
    parser.add_argument("--token")
    args = parser.parse_args()
    with FakeOneBot(access_token=args.token) as fake:
        url = args.url or fake.start_http_api()
        with HttpClient(url, access_token=args.token) as bot:
            me = bot.get_login_info()
            sent = bot.send_private_msg(user_id=20001, message=f"hello from {me['nickname']}")
            print("sent message", sent["message_id"])


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("stopped")
