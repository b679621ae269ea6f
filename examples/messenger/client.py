#!/usr/bin/env python3
"""A Python client for the Erlang messenger server (examples/messenger/messenger.erl).

The Python program becomes a (hidden) Erlang node with erlnode, logs on to the server, prints the
messages it receives and sends the lines you type, written as ``to: text``::

    python client.py --server messenger@myhost --name python --cookie secret
    erlang_user: hello from Python

With ``--away "on vacation"`` it answers every incoming message with that text, like the
py_interface client of the article this project grew from.

Ctrl-C, end of input and SIGTERM all stop it the same way: the node is closed, the connection to
the server breaks, and the server, which is linked to our mailbox, logs us off. No explicit logoff
is sent, so the server's link handling is what you see at work.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

import erlnode
from erlnode import Atom

LOGON_TIMEOUT = 10.0
# How often the receive loop wakes up to notice a stop request (SIGTERM, end of input).
POLL_INTERVAL = 0.2


def short_hostname() -> str:
    return socket.gethostname().split(".")[0]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Messenger client on erlnode.")
    parser.add_argument(
        "--server",
        default=f"messenger@{short_hostname()}",
        help="node of the messenger server (default: messenger@<this host>)",
    )
    parser.add_argument("--name", default="python", help="user name to log on as")
    parser.add_argument(
        "--cookie", default=None, help="distribution cookie (default: ~/.erlang.cookie)"
    )
    parser.add_argument(
        "--node-name", default="pyclient", help="name of this Python node (default: pyclient)"
    )
    parser.add_argument(
        "--away", metavar="TEXT", default=None, help="answer every incoming message with TEXT"
    )
    return parser.parse_args(argv)


def show(term: Any) -> str:
    """Message text for humans: Erlang strings arrive as str, binaries as bytes."""
    if isinstance(term, str) and not isinstance(term, Atom):
        return term
    if isinstance(term, bytes):
        return term.decode("utf-8", errors="replace")
    return repr(term)


def input_lines() -> Iterator[str]:
    """Lines of standard input, read from the file descriptor itself: a thread blocked in
    sys.stdin would hold its buffer lock, which the interpreter needs at exit."""
    pending = b""
    while True:
        chunk = os.read(sys.stdin.fileno(), 4096)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace").rstrip("\r")
    if pending:
        yield pending.decode("utf-8", errors="replace")


class Client:
    def __init__(self, node: erlnode.Node, args: argparse.Namespace) -> None:
        self.node = node
        self.name = args.name
        self.away: str | None = args.away
        self.server = ("messenger", args.server)
        self.mbox = node.mailbox()
        self.stopping = threading.Event()
        self.out_lock = threading.Lock()

    def say(self, text: str) -> None:
        # Lines from the receive loop and the input thread must not interleave mid-line.
        with self.out_lock:
            print(f"[{self.name}] {text}", flush=True)

    def send_to(self, to: str, text: str) -> None:
        self.mbox.send(self.server, (self.mbox.pid, Atom("message_to"), Atom(to), text))

    def logon(self) -> bool:
        self.mbox.send(self.server, (self.mbox.pid, Atom("logon"), Atom(self.name)))
        try:
            reply = self.mbox.receive(timeout=LOGON_TIMEOUT)
        except TimeoutError:
            self.say(f"error: no answer from the messenger server on {self.server[1]}")
            return False
        if reply == ("messenger", "logged_on"):
            self.say(f"logged on to {self.server[1]} as {self.name}")
            return True
        self.say(f"error: logon refused: {reply!r}")
        return False

    def handle(self, msg: Any) -> None:
        if isinstance(msg, tuple) and len(msg) == 3 and msg[0] == "message_from":
            sender, text = msg[1], msg[2]
            self.say(f"message from {sender}: {show(text)}")
            if self.away is not None:
                self.send_to(sender, self.away)
                self.say(f"auto-reply to {sender}: {self.away}")
        elif msg == ("messenger", "sent"):
            self.say("delivered")
        elif msg == ("messenger", "receiver_not_found"):
            self.say("receiver not found")
        elif isinstance(msg, tuple) and len(msg) == 3 and msg[:2] == ("messenger", "stop"):
            self.say(f"the server stopped us: {msg[2]}")
            self.stopping.set()
        else:
            self.say(f"unexpected message: {msg!r}")

    def read_input(self) -> None:
        """Input thread: each `to: text` line becomes a message; end of input stops the client."""
        for line in input_lines():
            to, sep, text = line.partition(":")
            if not sep or not to.strip():
                self.say("type messages as `to: text`")
                continue
            self.send_to(to.strip(), text.strip())
            self.say(f"to {to.strip()}: {text.strip()}")
        self.stopping.set()

    def run(self) -> None:
        threading.Thread(target=self.read_input, name="stdin", daemon=True).start()
        while not self.stopping.is_set():
            try:
                msg = self.mbox.receive(timeout=POLL_INTERVAL)
            except TimeoutError:
                continue
            self.handle(msg)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    node = erlnode.Node(args.node_name, cookie=args.cookie)
    client: Client | None = None

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if client is not None:
            client.stopping.set()
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        client = Client(node, args)
        if not client.logon():
            return 1
        client.run()
        client.say("stopping")
        return 0
    except KeyboardInterrupt:
        if client is not None:
            client.say("stopping")
        return 0
    finally:
        # Closing the node breaks the connection; the server sees its link to us go down.
        node.close()


if __name__ == "__main__":
    sys.exit(main())
