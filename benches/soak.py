"""Soak: steady traffic both ways between an erlnode node and real Erlang nodes for a long
while, the node's RSS, descriptors and threads recorded every second; every message counted.

What runs: a private EPMD on a free port, `--peers` `erl` nodes (tests/erl.py, the module
tests/erlang/erlnode_load.erl), and the erlnode node in this process. Each peer runs a steady
sender (`erlnode_load:steady/5`: a burst every 10 ms) of `{Id, Seq, Padding}` into a Python
mailbox drained by a thread of its own, which checks each sender's order; one Python thread
per peer sends as many `(Id, Seq, Padding)` the other way, a `send_many` batch every 10 ms, to
a collector that checks them (`erlnode_load:collector/1`). At the end the senders stop, and
every message sent is looked for: lost or out of order, the run fails.

The RSS figures: "start" is the median over the first tenth of the run after a warm-up (the
first 30 s, or a tenth of a short run), "end" the median over its last tenth; the run fails
when the end is more than 5 % above the start. The curve goes to docs/soak.png and the figures
to BENCHMARKS.md with `--write`. Every process started here is stopped by its pid at the end,
also on failure or Ctrl-C.

    .venv/bin/python benches/soak.py --minutes 1            # prints the figures
    .venv/bin/python benches/soak.py --minutes 10 --write   # `make soak`
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from report import machine_line, python_command, write_block

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from erl import Erl, random_name  # noqa: E402 - tests/erl.py, on the path just above

import erlnode  # noqa: E402

BENCHMARKS = ROOT / "BENCHMARKS.md"
PNG = ROOT / "docs" / "soak.png"
BEGIN = "<!-- soak:begin -->"
END = "<!-- soak:end -->"
AFTER = ["<!-- instructions:end -->", "<!-- resources:end -->"]
HEADING = "## Soak: steady traffic, RSS over time"
PADDING = 100
GROWTH_LIMIT = 0.05


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@dataclass
class Sample:
    t: float
    rss: int
    fds: int
    threads: int
    received: int
    sent: int
    waiting: int


class Sink:
    """A mailbox drained by a thread, checking each Erlang sender's sequence."""

    def __init__(self, mbox: erlnode.Mailbox) -> None:
        self.mbox = mbox
        self.received = 0
        self.last: dict[int, int] = {}
        self.out_of_order = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while not self.stop.is_set():
            try:
                batch = self.mbox.receive_many(limit=4096, timeout=0.2)
            except TimeoutError:
                continue
            except erlnode.NodeClosedError:
                return
            for sender, seq, _padding in batch:
                if seq != self.last.get(sender, 0) + 1:
                    self.out_of_order += 1
                self.last[sender] = seq
            self.received += len(batch)


@dataclass
class Sender:
    """A Python thread sending `per_tick` messages to `dest` every 10 ms."""

    node: erlnode.Node
    dest: tuple[str, str]
    ident: int
    per_tick: int
    seq: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        mbox = self.node.mailbox()
        padding = bytes(PADDING)
        tick = time.monotonic()
        while not self.stop.is_set():
            first = self.seq + 1
            self.seq += self.per_tick
            mbox.send_many(
                self.dest, [(self.ident, s, padding) for s in range(first, self.seq + 1)]
            )
            tick += 0.01
            time.sleep(max(0.0, tick - time.monotonic()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def median_of(samples: list[Sample], start: float, end: float) -> float:
    values = [s.rss for s in samples if start <= s.t < end]
    return float(statistics.median(values))


def slope_per_hour(samples: list[Sample], since: float) -> float:
    """The least-squares slope of RSS after `since`, in bytes per hour."""
    points = [(s.t, s.rss) for s in samples if s.t >= since]
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_r = sum(r for _, r in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (r - mean_r) for t, r in points)
    return cov / var * 3600 if var else 0.0


def plot(samples: list[Sample], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.t / 60 for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, height_ratios=[2, 1])
    top.plot(minutes, [s.rss / 2**20 for s in samples], color="tab:blue", linewidth=1)
    top.set_ylabel("RSS (MiB)")
    top.set_ylim(bottom=0)
    top.grid(alpha=0.3)
    top.set_title(title, fontsize=10)

    def per_second(count: Callable[[Sample], int]) -> list[float]:
        pairs = zip(samples, samples[1:], strict=False)
        return [0.0] + [(count(b) - count(a)) / (b.t - a.t) / 1000 for a, b in pairs]

    rates_in = per_second(lambda s: s.received)
    rates_out = per_second(lambda s: s.sent)
    bottom.plot(minutes, rates_in, label="Erlang → Python", linewidth=0.8)
    bottom.plot(minutes, rates_out, label="Python → Erlang", linewidth=0.8)
    bottom.set_ylabel("k messages/s")
    bottom.set_xlabel("minutes")
    bottom.set_ylim(bottom=0)
    bottom.grid(alpha=0.3)
    bottom.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--peers", type=int, default=4, help="erl nodes")
    parser.add_argument("--rate", type=int, default=20_000, help="messages/s each way, in all")
    parser.add_argument("--write", action="store_true", help="docs/soak.png and BENCHMARKS.md")
    args = parser.parse_args()
    per_tick = max(1, args.rate // args.peers // 100)
    duration = args.minutes * 60
    epmd_binary = shutil.which("epmd")
    if epmd_binary is None:
        raise SystemExit("epmd is not installed (make erlang)")

    epmd_port = free_port()
    os.environ["ERL_EPMD_PORT"] = str(epmd_port)
    os.environ["ERL_FLAGS"] = "-start_epmd false"
    epmd = subprocess.Popen(
        [epmd_binary, "-port", str(epmd_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    peers: list[Erl] = []
    load_start = os.getloadavg()
    try:
        time.sleep(0.5)
        cookie = random_name("cookie")
        peers = [Erl(cookie=cookie, timeout=120) for _ in range(args.peers)]
        node = erlnode.Node(random_name("soak"), cookie=cookie)
        sinks = [Sink(node.mailbox(f"sink{i}")) for i in range(args.peers)]
        senders = [
            Sender(node, ("collect", peer.name), 100 + i, per_tick) for i, peer in enumerate(peers)
        ]
        for i, peer in enumerate(peers):
            assert node.ping(peer.name)
            peer.eval("erlnode_load:collector(collect)")
            peer.eval(
                f"Steady = erlnode_load:steady({{sink{i}, '{node.name}'}}, {i + 1}, {per_tick}, "
                f"{PADDING}, 0)"
            )
        threads = [s.start() for s in senders]

        samples: list[Sample] = []
        start = time.monotonic()
        next_at = start
        while True:
            now = time.monotonic()
            samples.append(
                Sample(
                    t=now - start,
                    rss=rss_bytes(),
                    fds=len(os.listdir("/proc/self/fd")),
                    threads=len(os.listdir("/proc/self/task")),
                    received=sum(s.received for s in sinks),
                    sent=sum(s.seq for s in senders),
                    waiting=sum(s.mbox.qsize() for s in sinks),
                )
            )
            if now - start >= duration:
                break
            if len(samples) % 60 == 0:
                last = samples[-1]
                print(
                    f"{last.t / 60:5.1f} min: RSS {last.rss / 2**20:.1f} MiB, fds {last.fds}, "
                    f"threads {last.threads}, received {last.received:,}, sent {last.sent:,}",
                    flush=True,
                )
            next_at += 1.0
            time.sleep(max(0.0, next_at - time.monotonic()))

        # Stop, then account for every message.
        for s in senders:
            s.stop.set()
        for t in threads:
            t.join(timeout=10)
        erl_sent = {}
        for i, peer in enumerate(peers):
            peer.eval("Steady ! stop")
            reply = peer.eval("Steady ! {sent, self()}, receive {sent, _, N} -> N end")
            erl_sent[i + 1] = int(reply)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(s.received for s in sinks) < sum(
            erl_sent.values()
        ):
            time.sleep(0.1)
        py_sent = {s.ident: s.seq for s in senders}
        reports = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reports = {
                s.ident: peer.eval("erlnode_load:report(collect)")
                for s, peer in zip(senders, peers, strict=True)
            }
            if all(reports[i][0] >= py_sent[i] for i in py_sent):
                break
            time.sleep(0.2)
        for sink in sinks:
            sink.stop.set()
        node.close()
    finally:
        for peer in peers:
            peer.stop()
        epmd.kill()
        epmd.wait(timeout=10)
    load_end = os.getloadavg()

    received_last = {}
    for sink in sinks:
        received_last.update(sink.last)
    lost_in = sum(erl_sent.values()) - sum(s.received for s in sinks)
    out_of_order_in = sum(s.out_of_order for s in sinks)
    lost_out = sum(py_sent[i] - reports[i][0] for i in py_sent)
    out_of_order_out = sum(reports[i][1] for i in py_sent)
    ends_match = received_last == erl_sent and all(
        reports[i][2] == {i: py_sent[i]} for i in py_sent
    )

    warm = min(30.0, duration / 10)
    window = max(10.0, (duration - warm) / 10)
    rss_start = median_of(samples, warm, warm + window)
    rss_end = median_of(samples, duration - window, duration + 1)
    growth = (rss_end - rss_start) / rss_start
    after_warm = [s for s in samples if s.t >= warm]
    rss_max = max(s.rss for s in after_warm)
    rss_min = min(s.rss for s in after_warm)
    slope = slope_per_hour(samples, warm)
    total_in, total_out = sum(erl_sent.values()), sum(py_sent.values())
    mib = 2**20
    ok = (
        lost_in == 0
        and lost_out == 0
        and out_of_order_in == 0
        and out_of_order_out == 0
        and ends_match
        and growth <= GROWTH_LIMIT
    )

    command = " ".join([python_command(), "benches/soak.py", *sys.argv[1:]])
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "",
        f"{args.minutes:g} minutes of steady traffic between an erlnode node and {args.peers} "
        f"`erl` nodes on loopback: {args.rate:,} messages/s each way in all ({per_tick} "
        f"every 10 ms per peer and direction, each `{{Id, Seq, <<{PADDING} bytes>>}}`), "
        "the node's RSS, descriptors and threads read every second. Every message is accounted "
        "for at the end, each sender's order checked. RSS start: the median over "
        f"{window:.0f} s after a {warm:.0f} s warm-up; end: the median over the last "
        f"{window:.0f} s. The curve: [docs/soak.png](docs/soak.png).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| messages Erlang → Python | {total_in:,} ({total_in / duration:,.0f}/s), lost "
        f"{lost_in}, out of order {out_of_order_in} |",
        f"| messages Python → Erlang | {total_out:,} ({total_out / duration:,.0f}/s), lost "
        f"{lost_out}, out of order {out_of_order_out} |",
        f"| RSS start → end | {rss_start / mib:.1f} → {rss_end / mib:.1f} MiB "
        f"({growth * 100:+.1f} %; the run fails above {GROWTH_LIMIT * 100:.0f} %) |",
        f"| RSS after the warm-up: min / max; trend over the run | {rss_min / mib:.1f} / "
        f"{rss_max / mib:.1f} MiB; {slope / mib * (duration - warm) / 3600:+.2f} MiB "
        "(least squares) |",
        f"| descriptors start → end | {samples[0].fds} → {samples[-1].fds} |",
        f"| threads start → end | {samples[0].threads} → {samples[-1].threads} |",
        f"| most messages waiting in the mailboxes | {max(s.waiting for s in samples):,} |",
        "",
        f"The machine was shared with other work (other builds and test runs): load average "
        f"{load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end (1-minute averages, "
        f"{os.cpu_count()} vCPUs).",
        "",
        f"Machine: {machine_line()}. Date: {date}. Command: `{command}`.",
        "",
    ]
    block = "\n".join(lines)
    print(block)
    if args.write:
        plot(
            samples,
            PNG,
            f"erlnode soak: {args.minutes:g} min, {args.rate:,} msg/s each way, "
            f"{args.peers} erl peers; RSS {rss_start / mib:.1f} → {rss_end / mib:.1f} MiB",
        )
        write_block(BENCHMARKS, block, BEGIN, END, HEADING, AFTER)
        print(f"written to {BENCHMARKS} and {PNG}")
    if not ok:
        print("SOAK FAILED: messages lost or out of order, or RSS grew", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
