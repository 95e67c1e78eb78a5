#!/usr/bin/env python3
"""A bot with commands, filters, a conversation and a send limit, offline or against QQ.

Offline, FakeOneBot plays the implementation: it sends /mute from a plain member, then
/天气 北京, /roll, /name and an answer, and prints what the bot answered. With --url
ws://HOST:PORT the bot dials a real implementation's forward WebSocket (NapCat: a
websocketServers entry); with --listen HOST:PORT it waits for one to dial us (NapCat: a
websocketClients entry with url ws://HOST:PORT/). Ctrl+C stops it. Teaching shortcuts:
the weather is made up, and the commands keep no state between runs.
"""

import argparse
import random
from typing import Any

from onebot_ref import ConversationTimeout, SendLimit, host_port_arg
from onebot_ref.testing import FakeOneBot
from onebot_ref.ws_client import WsClient
from onebot_ref.ws_server import WsServer

Event = dict[str, Any]
Bot = WsServer | WsClient  # HttpServer has the same command(), on(), ask() and reply()


def add_commands(bot: Bot) -> None:
    """The bot itself: the same code runs over every mode."""

    @bot.command("天气", aliases=("weather",), usage="用法 / usage: /天气 城市")
    def weather(event: Event, args: str, segments: list[Any]) -> None:
        bot.reply(event, f"{args or '北京'}：晴 / sunny, 25°C")

    @bot.command("roll", cooldown=5)  # once per 5 s per user and chat
    def roll(event: Event, args: str, segments: list[Any]) -> None:
        bot.reply(event, f"🎲 {random.randint(1, 6)}", at_sender=True)

    @bot.command("name")
    def name(event: Event, args: str, segments: list[Any]) -> None:
        try:
            answer = bot.ask(event, "你叫什么？/ What is your name?", timeout=60)
        except ConversationTimeout:
            bot.reply(event, "算了 / never mind")
            return
        bot.reply(event, f"你好，{answer['raw_message']}！")

    @bot.command("mute", permission="admin")  # sender.role admin or owner
    def mute(event: Event, args: str, segments: list[Any]) -> None:
        for seg in segments:
            if seg["type"] == "at":
                bot.set_group_ban(event["group_id"], seg["data"]["qq"], 600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a forward WebSocket to dial, e.g. ws://127.0.0.1:3001")
    parser.add_argument("--listen", type=host_port_arg, help="serve reverse WebSocket here")
    parser.add_argument("--token")
    args = parser.parse_args()
    limit = SendLimit(rate=1, burst=5)  # stay well clear of QQ's risk control
    if args.url:  # forward WebSocket: we dial the implementation
        client = WsClient(args.url, access_token=args.token, send_limit=limit)
        add_commands(client)
        print(f"commands ready: /天气 /roll /name /mute; dialing {args.url}", flush=True)
        client.run_forever()
        return
    if args.listen:  # reverse WebSocket: the implementation dials us
        server = WsServer(*args.listen, access_token=args.token, send_limit=limit)
        add_commands(server)
        print(f"commands ready: /天气 /roll /name /mute; point it at {server.url}", flush=True)
        server.serve_forever()
        return
    with FakeOneBot() as fake, WsServer(port=0, send_limit=limit) as server:
        add_commands(server)
        fake.connect_reverse(server.url).wait_connected()
        # /mute from a plain member goes first: the filter skips it, and the bot has
        # received it before anything it answers below. Handlers run on a pool, side
        # by side: wait for each answer before the next message, so that they print in
        # order (and "小明" answers the question).
        fake.push_message(user_id=20002, text="/mute [CQ:at,qq=20002]", group_id=30001)
        for n, text in enumerate(("/天气 北京", "/roll", "/name", "小明"), start=1):
            fake.push_message(user_id=20002, text=text, group_id=30001)
            fake.wait_for_sent(n)
        for sent in fake.wait_for_sent(4):
            print("bot:", sent["raw_message"])
        server.registry.join()
        print("skipped by a filter:", server.registry.skipped)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("stopped")
