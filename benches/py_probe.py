"""Small measurements that run in a fresh Python process; each prints one JSON line.

import                          seconds taken by `import erlnode`
ready  --cookie C [--epmd-port P]
                                seconds taken by `Node(...)` (runtime, listener, EPMD)
w1 --remote NODE --cookie C [--epmd-port P] [--n N]
                                erlnode -> erlnode W1 sink: this process is the driver,
                                sending N {seq, I, <<0:512>>} to {bench, NODE}, then stop/done
"""

from __future__ import annotations

import argparse
import json
import secrets
import time


def measure_import() -> dict[str, float]:
    t0 = time.perf_counter()
    import erlnode  # noqa: F401

    return {"seconds": time.perf_counter() - t0}


def measure_ready(cookie: str, epmd_port: int | None) -> dict[str, float]:
    import erlnode

    t0 = time.perf_counter()
    node = erlnode.Node(f"bready_{secrets.token_hex(4)}", cookie=cookie, epmd_port=epmd_port)
    seconds = time.perf_counter() - t0
    node.close()
    return {"seconds": seconds}


def drive_w1(remote: str, cookie: str, epmd_port: int | None, n: int) -> dict[str, float]:
    import erlnode
    from erlnode import Atom

    seq, stop, ping, done, pong = (Atom(a) for a in ("seq", "stop", "ping", "done", "pong"))
    with erlnode.Node(f"bpydrv_{secrets.token_hex(4)}", cookie=cookie, epmd_port=epmd_port) as node:
        mbox = node.mailbox()
        dest = ("bench", remote)
        # One round trip first, so that connection set-up is not timed.
        mbox.send(dest, (ping, mbox.pid, 0))
        if mbox.receive(timeout=30) != (pong, 0):
            raise RuntimeError("the remote did not answer the warm-up ping")
        zero = bytes(64)
        t0 = time.perf_counter()
        batch = 1000  # send_many: the batch API, one call and one write per batch
        for start in range(1, n + 1, batch):
            mbox.send_many(dest, [(seq, i, zero) for i in range(start, min(start + batch, n + 1))])
        mbox.send(dest, (stop, mbox.pid))
        reply = mbox.receive(timeout=120)
        seconds = time.perf_counter() - t0
    if reply != (done, n):
        raise RuntimeError(f"lost messages: sent {n}, the remote answered {reply!r}")
    return {"rate": n / seconds, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("import", "ready", "w1"))
    parser.add_argument("--cookie")
    parser.add_argument("--epmd-port", type=int)
    parser.add_argument("--remote")
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    if args.what == "import":
        result = measure_import()
    elif args.what == "ready":
        result = measure_ready(args.cookie, args.epmd_port)
    else:
        result = drive_w1(args.remote, args.cookie, args.epmd_port, args.n)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
