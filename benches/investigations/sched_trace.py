"""Who wakes whom, and on which CPU, while the Erlang driver runs W1 or W2 against a remote.

Records `perf sched record -a` (the whole machine) during one workload, then reads
`perf sched timehist -w` and prints, for the driver's and the remote's threads, every
waker → wakee pair with:

- wake-ups per 1000 messages (W1) or per round trip (W2);
- the share of them where the wakee then ran on the waker's CPU (taking turns on one vCPU);
- the wakee's median scheduling delay, from the wake-up to running, on the same CPU and on the
  other one (there, a halted vCPU has to be woken first).

Tracing makes every context switch slower, so rates are lower than untraced runs; the pattern
is what this is for. Needs perf and the right to trace the whole machine (root).

    .venv/bin/python benches/investigations/sched_trace.py \
        [--workload w1|w2] [--remote plain|erlang|...]
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# run.py and the remotes are one folder up, in benches/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from run import Cluster, Driver
from w2_wire import start_remote

# "  32191.136849 [0001]  erlnode-net[376/374]   awakened: python[374]"
WAKEUP = re.compile(r"^\s*(\d+\.\d+) \[(\d+)\]\s+(\S+)\s+awakened: (\S+)")
# "  32191.136862 [0001]  erlnode-net[376/374]   0.037   0.001   0.017"
SWITCH = re.compile(r"^\s*(\d+\.\d+) \[(\d+)\]\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)")
TASK = re.compile(r"^(.*)\[(\d+)(?:/(\d+))?\]$")


def label(task: str, owners: dict[int, str]) -> str | None:
    """`driver:1_scheduler`, `remote:python`, ... or None for a thread of neither."""
    m = TASK.match(task)
    if not m:
        return None
    # perf shows a thread as name[tid/pid], a process's main thread as name[pid].
    name, pid = m.group(1), int(m.group(3) or m.group(2))
    owner = owners.get(pid)
    return f"{owner}:{name}" if owner else None


def summarise(timehist: str, owners: dict[int, str], per: float, unit: str) -> list[str]:
    pending: dict[str, tuple[str, int]] = {}  # wakee -> (waker, waker's CPU)
    delays: dict[tuple[str, str, bool], list[float]] = collections.defaultdict(list)
    for line in timehist.splitlines():
        if m := WAKEUP.match(line):
            waker, wakee = label(m.group(3), owners), label(m.group(4), owners)
            if waker and wakee:
                pending[wakee] = (waker, int(m.group(2)))
        elif m := SWITCH.match(line):
            task = label(m.group(3), owners)
            if task in pending:
                waker, cpu = pending.pop(task)
                same_cpu = int(m.group(2)) == cpu
                delays[(waker, task, same_cpu)].append(float(m.group(5)) * 1000)
    pairs = sorted(
        {(w, t) for w, t, _ in delays},
        key=lambda p: -sum(len(delays[(p[0], p[1], s)]) for s in (True, False)),
    )
    out = [
        f"| waker → wakee | wake-ups {unit} | on the waker's CPU | median delay, same CPU "
        "| median delay, other CPU |",
        "|---|---|---|---|---|",
    ]
    for waker, wakee in pairs:
        same, other = delays[(waker, wakee, True)], delays[(waker, wakee, False)]
        total = len(same) + len(other)

        def med(xs: list[float]) -> str:
            return f"{statistics.median(xs):.1f} µs" if xs else "–"

        out.append(
            f"| {waker} → {wakee} | {total / per:.2f} | {100 * len(same) / total:.0f} % "
            f"| {med(same)} | {med(other)} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("w1", "w2"), default="w1")
    parser.add_argument("--remote", default="plain", help="erlang or a py_remote mode")
    args = parser.parse_args()
    if shutil.which("perf") is None:
        sys.exit("sched_trace.py needs perf")
    count = 200_000 if args.workload == "w1" else 20_000
    workdir = Path(tempfile.mkdtemp(prefix="erlnode-sched-"))
    data = workdir / "sched.data"
    cluster = Cluster()
    try:
        cluster.start()
        driver = Driver(cluster.erl("bdrv", "-eval", "bench_driver:main()", stdin=True))
        remote = start_remote(cluster, args.remote)
        node = remote.wait_line("READY ", 60)
        driver.request(f"{{warm, '{node}'}}")
        owners = {driver.child.pid: "driver", remote.pid: "remote"}
        record = cluster.spawn(
            "perf", ["perf", "sched", "record", "-a", "-q", "-o", str(data), "--", "sleep", "30"]
        )
        time.sleep(1.0)
        result = driver.request(f"{{{args.workload}, '{node}', {count}}}")
        record.popen.send_signal(2)  # SIGINT: perf writes its data and exits
        record.popen.wait(timeout=60)
        record.stop()
        timehist = subprocess.run(
            ["perf", "sched", "timehist", "-i", str(data), "-w"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        figure = (
            f"{result['rate']:,.0f} msg/s"
            if "rate" in result
            else (f"median round trip {result['median_us']:.1f} µs")
        )
        per, unit = (
            (count / 1000, "per 1000 messages")
            if args.workload == "w1"
            else (count, "per round trip")
        )
        print(f"{args.workload} against the {args.remote} remote, traced: {figure}\n")
        print("\n".join(summarise(timehist, owners, per, unit)))
    finally:
        cluster.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
