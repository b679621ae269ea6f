"""The erlnode remote of the benchmark workloads (benches/WORKLOADS.md).

Written with the public API as a user would write it. ``--mode`` picks how it takes messages:

  plain     ``mbox.receive()`` in a loop, one message at a time
  batch     ``mbox.receive_many()`` in a loop
  callback  ``node.mailbox("bench", callback=handle)``
  asyncio   ``async for msg in mbox``

It runs as its own process (its own node), prints ``READY <node name>`` once the mailbox
``bench`` is registered, and serves until it is terminated. With ``--tls-optfile FILE`` the
node speaks TLS distribution with the settings of that ``-ssl_dist_optfile`` (the file the
Erlang nodes of benches/tls.py are started with).

    python benches/py_remote.py --mode plain --name bench_py --cookie secret [--epmd-port P]
        [--tls-optfile dist.conf]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from typing import Any, Callable

import erlnode
from erlnode import Atom

SEQ = Atom("seq")
STOP = Atom("stop")
PING = Atom("ping")
SOURCE = Atom("source")
BULK_SOURCE = Atom("bulk_source")
DONE = Atom("done")
PONG = Atom("pong")
SOURCE_DONE = Atom("source_done")
ZERO_64 = bytes(64)

MODES = ("plain", "batch", "callback", "asyncio")


def make_handler(mbox_of: Callable[[], erlnode.Mailbox]) -> Callable[[Any], None]:
    """The protocol, one message at a time; `mbox_of` gives the mailbox to answer from."""
    count = 0

    def handle(msg: Any) -> None:
        nonlocal count
        tag = msg[0]
        if tag == SEQ:
            count += 1
        elif tag == PING:
            mbox_of().send(msg[1], (PONG, msg[2]))
        elif tag == STOP:
            mbox_of().send(msg[1], (DONE, count))
            count = 0
        elif tag == SOURCE:
            mbox = mbox_of()
            sender, n = msg[1], msg[2]
            for i in range(1, n + 1):
                mbox.send(sender, (SEQ, i, ZERO_64))
            mbox.send(sender, (SOURCE_DONE, n))
        elif tag == BULK_SOURCE:
            mbox = mbox_of()
            sender, size, n = msg[1], msg[2], msg[3]
            # Zeros written (as Erlang's <<0:Size/unit:8>> writes them), not calloc'ed
            # pages that the first read would fault in.
            data = b"\x00" * size
            for i in range(1, n + 1):
                mbox.send(sender, (SEQ, i, data))
            mbox.send(sender, (SOURCE_DONE, n))

    return handle


def serve_plain(node: erlnode.Node) -> None:
    mbox = node.mailbox("bench")
    handle = make_handler(lambda: mbox)
    ready(node)
    while True:
        handle(mbox.receive())


def serve_batch(node: erlnode.Node) -> None:
    mbox = node.mailbox("bench")
    handle = make_handler(lambda: mbox)
    ready(node)
    while True:
        for msg in mbox.receive_many():
            handle(msg)


def serve_callback(node: erlnode.Node) -> None:
    box: list[erlnode.Mailbox] = []
    # The callback answers from its own mailbox, which exists once `mailbox` returns; no
    # message can come before that, since nobody knows this node until READY is printed.
    box.append(node.mailbox("bench", callback=make_handler(lambda: box[0])))
    ready(node)
    threading.Event().wait()


def serve_asyncio(node: erlnode.Node) -> None:
    async def main() -> None:
        mbox = node.mailbox("bench")
        handle = make_handler(lambda: mbox)
        ready(node)
        async for msg in mbox:
            handle(msg)

    asyncio.run(main())


def ready(node: erlnode.Node) -> None:
    print(f"READY {node.name}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, default="plain")
    parser.add_argument("--name", required=True, help="short node name (alive part)")
    parser.add_argument("--cookie", required=True)
    parser.add_argument("--epmd-port", type=int, default=None)
    parser.add_argument("--tls-optfile", help="TLS distribution, settings from this optfile")
    args = parser.parse_args()
    # SIGTERM from the runner: leave through atexit so the node unregisters cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # `tls=` only when asked for: tools/ab.py runs this script with older builds too.
    extra: dict[str, Any] = {}
    if args.tls_optfile:
        extra["tls"] = erlnode.TLSConfig.from_optfile(args.tls_optfile)
    node = erlnode.Node(args.name, cookie=args.cookie, epmd_port=args.epmd_port, **extra)
    serve = {
        "plain": serve_plain,
        "batch": serve_batch,
        "callback": serve_callback,
        "asyncio": serve_asyncio,
    }[args.mode]
    try:
        serve(node)
    finally:
        node.close()


if __name__ == "__main__":
    main()
