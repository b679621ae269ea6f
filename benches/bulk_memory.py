"""Peak memory of a Python node receiving large binaries, in multiples of the binary's size.

A fresh Python process (the installed erlnode, or the one of `--python`) joins a private
cluster, reads its RSS, asks a real `erl` node for binaries and receives them with a plain
`mbox.receive()`, dropping each, then reads its peak RSS (VmHWM of /proc/self/status). The
figure is (peak − RSS before) / binary size: 1.0 means the binary cost its own size and
nothing more. Two cases, each in its own process, `--runs` times, medians printed:

- one binary of `--big` MiB (64 by default);
- W4: `--count` binaries of `--size` MiB (20 × 8 by default), received one after another.

Before zero-copy receiving, the frame (or the reassembled fragments) was held next to the
`bytes` object made from it: about 2× for a single binary.

    .venv/bin/python benches/bulk_memory.py
    .venv/bin/python benches/bulk_memory.py --python /path/to/other/venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PY, Cluster  # noqa: E402

MIB = 1 << 20

#: The Erlang source: sends `{bin, I, Binary}` of the size asked, `Count` times, to `To`.
SOURCE_EVAL = (
    "register(source, self()),"
    " Loop = fun Loop() -> receive"
    "  {send, To, Size, Count} ->"
    "   B = binary:copy(<<1,2,3,4,5,6,7,8>>, Size div 8),"
    "   [To ! {bin, I, B} || I <- lists:seq(1, Count)], Loop();"
    "  stop -> halt() end end,"
    ' io:format("READY~n"), Loop().'
)

#: The Python probe, run with `python -c`. argv: name cookie epmd_port source size count
PROBE = r"""
import json, sys
import erlnode
from erlnode import Atom

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)

name, cookie, port, source, size, count = sys.argv[1:7]
size, count = int(size), int(count)
with erlnode.Node(name, cookie=cookie, epmd_port=int(port)) as node:
    mbox = node.mailbox()
    assert node.ping(source)
    before = status("VmRSS")
    mbox.send((Atom("source"), source), (Atom("send"), mbox.pid, size, count))
    for _ in range(count):
        message = mbox.receive(timeout=300)
        assert len(message[2]) == size
        del message
    peak = status("VmHWM")
    print(json.dumps({"before": before, "peak": peak, "growth": (peak - before) / size}))
"""


def probe(cluster: Cluster, python: str, source: str, size: int, count: int) -> float:
    name = cluster.node_name(f"bmem{len(cluster.children)}")
    args = [python, "-c", PROBE, name, cluster.cookie, str(cluster.epmd_port), source]
    child = cluster.spawn("probe", [*args, str(size), str(count)])
    try:
        line = child.wait_line("{", 600)
        return float(json.loads("{" + line)["growth"])
    finally:
        child.stop()
        cluster.children.remove(child)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=PY, help="the Python whose erlnode is measured")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--big", type=int, default=64, help="the single binary, MiB")
    parser.add_argument("--size", type=int, default=8, help="W4 binary size, MiB")
    parser.add_argument("--count", type=int, default=20, help="W4 binaries")
    args = parser.parse_args()
    cluster = Cluster()
    try:
        cluster.start()
        source = cluster.erl("bmemsrc", "-eval", SOURCE_EVAL)
        source.wait_line("READY", 30)
        source_name = f"{cluster.node_name('bmemsrc')}@{cluster.host}"
        cases = {
            f"one binary of {args.big} MiB": (args.big * MIB, 1),
            f"W4: {args.count} x {args.size} MiB": (args.size * MIB, args.count),
        }
        print(f"peak RSS growth / binary size, median of {args.runs} ({args.python})")
        for label, (size, count) in cases.items():
            growth = [
                probe(cluster, args.python, source_name, size, count) for _ in range(args.runs)
            ]
            spread = f"{min(growth):.2f}-{max(growth):.2f}"
            print(f"  {label}: {statistics.median(growth):.2f} (range {spread})")
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
