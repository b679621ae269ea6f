#!/usr/bin/env python3
"""A pool of Python workers that Erlang finds through `pg`: CPU-bound work on every core.

Each worker is its own OS process and its own visible Erlang node (`<prefix>1@host`,
`<prefix>2@host`, …) running `Primes`, a GenServer, and joined to the `pg` group `primes`.
Erlang spreads requests over them with `pg:get_members(primes)` and `gen_server:call`
(caller.erl); a worker that crashes or is killed is started again and joins again::

    python primes.py --cookie secret --connect caller@myhost --workers 2
    # Erlang: [W | _] = pg:get_members(primes), gen_server:call(W, {count_primes, 60000})

It prints a line when the pool is up (one per worker, with its OS pid), and one each time a
worker is started again. Ctrl-C, SIGTERM or end of input stop the pool: every worker leaves
the group, stops its node and exits.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

import erlnode
from erlnode import Atom

GROUP = Atom("primes")


def count_primes(limit: int) -> int:
    """Primes below `limit`, by trial division: deliberately pure-Python CPU work."""
    count = 0
    for n in range(2, limit):
        d = 2
        while d * d <= n:
            if n % d == 0:
                break
            d += 1
        else:
            count += 1
    return count


class Primes(erlnode.GenServer):
    """Answers `{count_primes, Limit}` with `{Limit, Count, ThisNode}`."""

    def handle_call(self, request: Any, from_: Any) -> Any:
        if isinstance(request, tuple) and request[:1] == (Atom("count_primes"),):
            limit = request[1]
            return (limit, count_primes(limit), Atom(self.node.name))
        raise ValueError(f"unknown request {request!r}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A pool of Python prime counters for Erlang.")
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--cookie", default=None, help="default: ~/.erlang.cookie")
    parser.add_argument(
        "--connect", action="append", default=[], help="an Erlang node to connect to (repeat)"
    )
    parser.add_argument("--name", default="primes", help="worker node name prefix")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def stop_at_end_of_input() -> None:
        for _line in sys.stdin:
            pass
        stop.set()

    threading.Thread(target=stop_at_end_of_input, daemon=True).start()

    with erlnode.WorkerPool(
        Primes,
        args.workers,
        group=GROUP,
        cookie=args.cookie,
        connect=args.connect,
        name=args.name,
    ) as pool:
        seen = {w.number: w for w in pool.workers()}
        for w in seen.values():
            print(f"worker {w.node} up, os pid {w.os_pid}, member {w.member}", flush=True)
        print(f"pool ready: {pool.size} workers in group {GROUP}", flush=True)
        while not stop.wait(0.1):
            for w in pool.workers():
                if w.restarts != seen[w.number].restarts and w.member is not None:
                    print(
                        f"worker {w.node} restarted ({w.restarts} in all), os pid {w.os_pid},"
                        f" member {w.member}",
                        flush=True,
                    )
                    seen[w.number] = w
    print("pool stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
