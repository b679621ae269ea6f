"""The erldistpy remote of the benchmark workloads (benches/WORKLOADS.md): a peer measured
in the same run and the same table as Erlang and erlnode.

erldistpy (PyPI, pure Python, synchronous) is a client only: it connects out to a node and
cannot accept a connection. So this remote connects to the driver node and to the fan-in
helper node (``--peer``, once each), and they reach it as ``{bench, Node}`` over those
connections: a send to a registered name on a connected node needs no EPMD and no listener.
Its ``Node`` class looks EPMD up on the default port only, so the connection is made from the
library's own public pieces (``lookup`` with the run's private EPMD port, ``handshake``,
``Channel``), as ``Node.__init__`` does. It then serves the protocol one message at a time,
as a user would: wait for a readable connection (``selectors``), read one message, act on it.
It prints ``READY <node name>`` once connected, and serves until it is terminated.

It has no ``net_kernel``, so it does not answer ``net_adm:ping`` (and erldistpy 0.1.7 could
not decode the request: a gen call's tag is an improper list); the runner warms it up with
round trips instead. A thread sends a tick every 15 s: erldistpy leaves ticks to its caller.

    python benches/erldistpy_remote.py --name bedp@host --cookie secret --epmd-port P \
        --peer driver@host --peer helper@host
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys
import threading
import time
from typing import Any

from erldistpy import Atom, Channel, handshake, lookup
from erldistpy.channel import OP_REG_SEND, OP_SEND, PASS_THROUGH
from erldistpy.etf import decode_term

SEQ = Atom("seq")
STOP = Atom("stop")
PING = Atom("ping")
SOURCE = Atom("source")
DONE = Atom("done")
PONG = Atom("pong")
SOURCE_DONE = Atom("source_done")
BENCH = Atom("bench")
NO_COOKIE = Atom("")
NO_PAYLOAD = object()
ZERO_64 = bytes(64)

#: A quarter of the default net_ticktime (60 s), as Erlang nodes tick.
TICK_SECONDS = 15.0


class Connection:
    """One distribution connection; sends are serialised with the tick thread's."""

    def __init__(self, our_name: str, peer: str, cookie: str, epmd_port: int) -> None:
        alive, host = peer.split("@", 1)
        info = lookup(alive, host=host, port=epmd_port)
        if info is None:
            raise SystemExit(f"{peer} is not registered with the EPMD on port {epmd_port}")
        self.sock = socket.create_connection((host, info.port), timeout=10)
        handshake(self.sock, our_name=our_name, cookie=cookie)
        self.sock.settimeout(None)
        self.channel = Channel(self.sock, recv_timeout=None)
        self.lock = threading.Lock()

    def receive(self) -> tuple[Any, Any]:
        """The next frame as (control, payload); (None, None) for a tick.

        Not `Channel.recv_message()`: it swallows ticks and waits on for the next message on
        the same socket, so a tick from an idle peer would stall the other connection.
        Instead the frame it would read (`recv_raw`), decoded with the library's
        `decode_term`. Without DFLAG_DIST_HDR_ATOM_CACHE (erldistpy does not set it) Erlang
        sends every message as a pass-through frame: 'p', control term, payload term.
        """
        body = self.channel.recv_raw()
        if not body:
            return None, None
        if body[0] != PASS_THROUGH:
            raise SystemExit(f"not a pass-through frame: {body[:8].hex()}")
        control, offset = decode_term(body, 1)
        payload = decode_term(body, offset)[0] if offset < len(body) else NO_PAYLOAD
        return control, payload

    def send(self, pid: Any, term: Any) -> None:
        with self.lock:
            self.channel.send_control((OP_SEND, NO_COOKIE, pid), term)

    def tick(self) -> None:
        with self.lock:
            self.channel.send_tick()


def tick_forever(connections: list[Connection]) -> None:
    while True:
        time.sleep(TICK_SECONDS)
        for conn in connections:
            conn.tick()


def serve(connections: list[Connection]) -> None:
    selector = selectors.DefaultSelector()
    for conn in connections:
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    count = 0
    while True:
        for key, _ in selector.select():
            conn = key.data
            control, term = conn.receive()
            # Ticks, links, monitors and messages to other names are not part of the protocol.
            if control is None or control[0] != OP_REG_SEND or control[3] != BENCH:
                continue
            tag = term[0]
            if tag == SEQ:
                count += 1
            elif tag == PING:
                conn.send(term[1], (PONG, term[2]))
            elif tag == STOP:
                conn.send(term[1], (DONE, count))
                count = 0
            elif tag == SOURCE:
                sender, n = term[1], term[2]
                for i in range(1, n + 1):
                    conn.send(sender, (SEQ, i, ZERO_64))
                conn.send(sender, (SOURCE_DONE, n))
            else:
                raise SystemExit(f"unexpected message: {term!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="our node name, name@host")
    parser.add_argument("--cookie", required=True)
    parser.add_argument("--epmd-port", type=int, default=4369)
    parser.add_argument("--peer", action="append", required=True, help="a node to connect to")
    args = parser.parse_args()
    connections = [Connection(args.name, p, args.cookie, args.epmd_port) for p in args.peer]
    threading.Thread(target=tick_forever, args=(connections,), daemon=True).start()
    print(f"READY {args.name}", flush=True)
    try:
        serve(connections)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
