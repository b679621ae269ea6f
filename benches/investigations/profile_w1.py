"""Where the time goes in W1 for the plain `mbox.receive()` remote.

Four views, each printed as a markdown section (and saved to benches/.results/profile.md):

1. In-process costs, no network: messages sent to our own pid, then drained with the plain
   loop, with `receive_many`, and the parts alone (`erlnode.decode` of the same bytes, the
   Python handler on a ready tuple), in ns per message.
2. W1 over the network against the plain remote: CPU time per message of each of the
   remote's threads (/proc/<pid>/task/*/stat), i.e. what the main (Python) thread and the
   Tokio network threads each pay.
3. py-spy (`--native`) on the remote during W1: the hottest frames (if py-spy is installed).
4. perf on the remote during W1: the hottest symbols of every thread (if perf works).

    .venv/bin/python benches/investigations/profile_w1.py [--n 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

# run.py and the remotes are one folder up, in benches/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from py_remote import make_handler
from run import PY, RESULTS, BenchError, Child, Cluster, Driver

import erlnode
from erlnode import Atom

SEQ = Atom("seq")


def in_process(n: int) -> list[str]:
    """ns per message of the plain loop and of its parts, with no network involved."""
    out = ["## 1. In-process cost per message (no network)", ""]
    msg = (SEQ, 1, bytes(64))
    encoded = erlnode.encode(msg)
    with erlnode.Node(f"bprof_{os.getpid()}", cookie="x", listen="127.0.0.1:0") as node:
        mbox = node.mailbox()
        handle = make_handler(lambda: mbox)
        figures: dict[str, list[float]] = collections.defaultdict(list)
        for _ in range(5):
            t0 = time.perf_counter()
            for i in range(n):
                mbox.send(mbox.pid, (SEQ, i, bytes(64)))
            figures["send to own pid (encode + queue)"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _ in range(n):
                handle(mbox.receive())
            figures["plain loop: handle(mbox.receive())"].append(time.perf_counter() - t0)
            for i in range(n):
                mbox.send(mbox.pid, (SEQ, i, bytes(64)))
            t0 = time.perf_counter()
            left = n
            while left:
                for m in mbox.receive_many():
                    handle(m)
                    left -= 1
            figures["batch loop: receive_many() + handle"].append(time.perf_counter() - t0)
            for i in range(n):
                mbox.send(mbox.pid, (SEQ, i, bytes(64)))
            t0 = time.perf_counter()
            for _ in range(n):
                mbox.receive()
            figures["mbox.receive() alone (pop + decode)"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _ in range(n):
                erlnode.decode(encoded)
            figures["erlnode.decode(bytes) alone"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _ in range(n):
                handle(msg)
            figures["Python handler alone (tag test, count += 1)"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _ in range(n):
                pass
            figures["empty Python for loop"].append(time.perf_counter() - t0)
            handle((Atom("stop"), mbox.pid))
            mbox.receive()
    out += ["| what | ns per message (median of 5) | implied msg/s |", "|---|---|---|"]
    for what, secs in figures.items():
        ns = statistics.median(secs) / n * 1e9
        out.append(f"| {what} | {ns:,.0f} | {1e9 / ns:,.0f} |")
    return out + [""]


def thread_stats(pid: int) -> dict[str, tuple[float, int, int]]:
    """(CPU seconds, voluntary and involuntary context switches) per thread name, threads of
    a name summed."""
    tick = os.sysconf("SC_CLK_TCK")
    per: dict[str, tuple[float, int, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            stat = (task / "stat").read_text()
            status = (task / "status").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        switches = preempted = 0
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                switches = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                preempted = int(line.split()[1])
        # Erlang names its threads 1_scheduler, 2_scheduler, ...: one row per kind.
        name = name.lstrip("0123456789_") or name
        old = per.get(name, (0.0, 0, 0))
        per[name] = (old[0] + cpu, old[1] + switches, old[2] + preempted)
    return per


def w1_rounds(driver: Driver, node: str, n: int, rounds: int) -> list[float]:
    return [driver.request(f"{{w1, '{node}', {n}}}")["rate"] for _ in range(rounds)]


def record_during_w1(
    cluster: Cluster, name: str, args: list[str], driver: Driver, node: str, n: int, rounds: int
) -> Child:
    """Runs a profiler (`args`) while W1 runs, then stops it with SIGINT; returns its child."""
    recorder = cluster.spawn(name, args)
    time.sleep(1.0)
    w1_rounds(driver, node, n, rounds)
    recorder.popen.send_signal(signal.SIGINT)
    try:
        recorder.popen.wait(timeout=30)
    finally:
        recorder.stop()
    return recorder


def over_network(cluster: Cluster, driver: Driver, n: int, rounds: int) -> list[str]:
    out = ["## 2. W1 over the network: the remote's CPU per message, by thread", ""]
    out.append(
        "CPU time (utime + stime), voluntary context switches (a thread blocking, then "
        "being woken) and involuntary ones (a runnable thread preempted) of each thread of "
        "the remote, divided by the messages it received."
    )
    remotes = [
        ("Erlang remote", cluster.erl("bprof_erl", "-eval", "bench_remote:start()")),
        ("erlnode plain remote", cluster.py_remote("plain")),
    ]
    for label, remote in remotes:
        node = remote.wait_line("READY ", 30)
        driver.request(f"{{warm, '{node}'}}")
        before = thread_stats(remote.pid)
        rates = w1_rounds(driver, node, n, rounds)
        after = thread_stats(remote.pid)
        remote.stop()
        total = n * rounds
        rates_text = ", ".join(f"{r:,.0f}" for r in rates)
        out += ["", f"**{label}**: W1 {rounds} × {n:,} messages at {rates_text} msg/s.", ""]
        out += [
            "| thread | CPU µs per message | blocking waits per 1000 messages "
            "| preemptions per 1000 messages |"
        ]
        out += ["|---|---|---|---|"]
        zero = (0.0, 0, 0)
        delta = {
            k: (v[0] - was[0], v[1] - was[1], v[2] - was[2])
            for k, v in after.items()
            for was in [before.get(k, zero)]
        }
        rows = sorted(delta.items(), key=lambda kv: -kv[1][0])
        totals = (
            sum(v[0] for v in delta.values()),
            sum(v[1] for v in delta.values()),
            sum(v[2] for v in delta.values()),
        )
        rows.append(("**all threads**", totals))
        for name, (cpu, switches, preempted) in rows:
            if cpu > 0 or switches > 0:
                out.append(
                    f"| {name} | {cpu / total * 1e6:.2f} | {1000 * switches / total:.1f} "
                    f"| {1000 * preempted / total:.1f} |"
                )
    return out + [""]


def py_spy(cluster: Cluster, driver: Driver, n: int, rounds: int) -> list[str]:
    spy = shutil.which("py-spy", path=str(Path(PY).parent)) or shutil.which("py-spy")
    out = ["## 3. py-spy on the plain remote during W1", ""]
    if not spy:
        return out + ["py-spy is not installed (`.venv/bin/python -m pip install py-spy`).", ""]
    raw = RESULTS / "w1_plain.pyspy.txt"
    remote = cluster.py_remote("plain")
    node = remote.wait_line("READY ", 30)
    driver.request(f"{{warm, '{node}'}}")
    try:
        for native in (["--native"], []):
            # --native can fail to unwind some frames (UNW_EINVAL): then Python frames only.
            raw.unlink(missing_ok=True)
            args = [spy, "record", *native, "--rate", "1000", "--format", "raw"]
            args += ["--output", str(raw), "--pid", str(remote.pid)]
            recorder = record_during_w1(cluster, "py-spy", args, driver, node, n, rounds)
            if raw.exists():
                out.append(f"Options: `{' '.join(native) or '(Python frames only)'}`.")
                break
            out.append(f"py-spy {' '.join(native)} failed: `{recorder.output()[-300:]}`")
    finally:
        remote.stop()
    if not raw.exists():
        return out + [""]
    leaf: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f.split(" (")[0] for f in stack.split(";")]
        # A thread blocked in the condition variable is idle, not working: leave it out.
        if any("wait_timeout" in f or "futex_wait" in f for f in frames[-6:]):
            continue
        c = int(count)
        samples += c
        leaf[frames[-1]] += c
        for f in set(frames):
            inclusive[f] += c
    out.append(f"{samples} busy samples (blocked waits left out). Hottest frames, self time:")
    out += ["", "| frame | self % |", "|---|---|"]
    out += [f"| `{f[:90]}` | {100 * c / samples:.1f} |" for f, c in leaf.most_common(15)]
    out += ["", "Inclusive time (frame anywhere on the stack):", "", "| frame | % |", "|---|---|"]
    out += [f"| `{f[:90]}` | {100 * c / samples:.1f} |" for f, c in inclusive.most_common(25)]
    return out + [""]


def perf(cluster: Cluster, driver: Driver, n: int, rounds: int) -> list[str]:
    out = ["## 4. perf on the plain remote during W1 (all threads)", ""]
    if not shutil.which("perf"):
        return out + ["perf is not installed.", ""]
    data = RESULTS / "w1_plain.perf.data"
    remote = cluster.py_remote("plain")
    node = remote.wait_line("READY ", 30)
    driver.request(f"{{warm, '{node}'}}")
    args = ["perf", "record", "-q", "-F", "2000", "-o", str(data), "-p", str(remote.pid)]
    try:
        record_during_w1(cluster, "perf", args, driver, node, n, rounds)
    finally:
        remote.stop()
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "comm,sym"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    rows = [
        line.strip()
        for line in report.stdout.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    out += ["Top symbols by self time (`perf report --sort comm,sym`):", "", "```"]
    out += [r[:150] for r in rows[:40]]
    return out + ["```", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    sections = in_process(args.n)
    print("\n".join(sections), flush=True)
    cluster = Cluster()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        cluster.start()
        driver = Driver(cluster.erl("bdrv", "-eval", "bench_driver:main()", stdin=True))
        for view in (over_network, py_spy, perf):
            try:
                part = view(cluster, driver, args.n, args.rounds)
            except (BenchError, OSError, subprocess.SubprocessError) as e:
                part = [f"## {view.__name__} failed", "", f"```\n{e}\n```", ""]
            print("\n".join(part), flush=True)
            sections += part
    finally:
        cluster.close()
    (RESULTS / "profile.md").write_text("\n".join(sections))
    print(f"wrote {RESULTS / 'profile.md'}")


if __name__ == "__main__":
    main()
