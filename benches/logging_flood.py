"""W1 under a flood of DEBUG records: does the core's logging slow the receive loop?

The core logs through a bounded queue that a Python thread drains into `logging`
(python/erlnode/_logging.py, rust/src/py/logger.rs). W1 itself logs nothing per message, so
the flood comes from elsewhere: a second Erlang driver node (the same bench_driver.erl) sends
`{seq, I, <<0:512>>}` to a name that nobody registered on the remote while W1 runs, and the
core logs each of those messages at DEBUG ("dropped a message to unregistered name nobody").

Contenders, all driven by one Erlang driver node, interleaved round by round (each round
starts one contender later, and every other round runs them in reverse order):

  erlang    Erlang ⇄ Erlang W1 (bench_remote.erl), no flood: the yardstick
  quiet     the erlnode `receive()` remote (py_remote.py's loop), logging left at its
            default, no flood
  default   the same remote, logging at its default, under the flood: the core's pre-filter
            (WARNING) drops every record before it is made
  default2  a second remote set up exactly like `default`: their ratio is the A/A noise
  debug     the same remote with `logging.basicConfig(level=logging.DEBUG, filename=...)`
            (a FileHandler that formats every record with a timestamp and writes it to a
            file) and `ERLNODE_LOG=debug`, under the flood: every record is made, queued,
            drained and written. A file, because that is how a program keeps its DEBUG
            output, and because the handler then does the whole of its usual work per record
            (format, timestamp, one write and flush)
  debug_b   with `--b-python PY`: the debug remote run by another Python with another build
            of erlnode (as tools/ab.py's B), for a before/after in one run

The flood runs at 50,000 messages a second by default (`--flood-rate`; 0 is as fast as the
flooding node can send): more records than the drain thread emits, so that the queue
overflows, and not so much that the flood's own traffic takes the machine (unbounded, it
reaches about 200,000 a second here and halves W1 with logging at its default).

Per flooded round: the flood starts, runs 0.3 s (long enough to fill the core's queue), W1
runs, the flood stops, a round trip behind it on its connection makes sure that the remote has
read every flood message, and the remote reports how many records reached the handler and how
many the full queue dropped (`_erlnode.log_records_dropped()`, the count the drain thread
reports as a WARNING) once the drain has handled the rest. Every flood message is one record
for the debug remote: emitted + dropped = sent is checked each round.

    .venv/bin/python benches/logging_flood.py --quick     # smoke run, printed only
    .venv/bin/python benches/logging_flood.py --write     # the section of BENCHMARKS.md
    .venv/bin/python benches/logging_flood.py --b-python /tmp/ab-b/.venv/bin/python

Every process started here is stopped by its pid at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from report import machine, python_command, write_block
from run import (
    PY,
    RESULTS,
    BenchError,
    Child,
    Cluster,
    Driver,
    Settings,
    beam_pid,
    cpu_seconds,
    fmt,
    median,
    workloads,
)

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
BEGIN = "<!-- logging:begin -->"
END = "<!-- logging:end -->"
HEADING = "## W1 under a flood of DEBUG records"
AFTER = ["<!-- pool:end -->", "<!-- soak:end -->", "<!-- tls:end -->"]

#: How long the flood runs before W1 starts: the debug remote's queue is full by then.
SETTLE = 0.3
#: The debug remote's format: what an application that logs to a file typically writes.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    #: "erlang" (bench_remote.erl), or the erlnode remote's logging: "default" or "debug".
    remote: str
    flood: bool
    #: The Python (with its erlnode) that runs an erlnode remote: this one, or `--b-python`.
    python: str = PY


CONTENDERS = [
    Contender("erlang", "Erlang ⇄ Erlang, no flood", "erlang", False),
    Contender("quiet", "erlnode, default logging, no flood", "default", False),
    Contender("default", "erlnode, default logging, flood", "default", True),
    Contender("default2", "erlnode, default logging, flood (2nd remote)", "default", True),
    Contender("debug", "erlnode, DEBUG to a file + ERLNODE_LOG=debug, flood", "debug", True),
]

#: Results: contender key -> one dict per round (the driver's W1 figures, the flood's, and
#: the remote's record counts).
Results = dict[str, list[dict[str, float]]]


# -- the remote (this script, run as `remote`) ----------------------------------------------


class CountRecords(logging.Filter):
    """Counts the core's DEBUG records that reach the handler (a filter that keeps all)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.DEBUG and record.name.startswith("erlnode"):
            self.count += 1
        return True


def serve_remote(args: argparse.Namespace) -> None:
    """The erlnode remote of py_remote.py (`receive()` loop), logging as `--logging` says;
    each `stats` line on stdin is answered with a `STATS {json}` line."""
    # Imported here: the runner itself needs no erlnode.
    from py_remote import serve_plain

    import erlnode

    counter = CountRecords()
    if args.logging == "debug":
        logging.basicConfig(level=logging.DEBUG, filename=args.log_file, format=LOG_FORMAT)
        logging.getLogger().handlers[0].addFilter(counter)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    node = erlnode.Node(args.name, cookie=args.cookie, epmd_port=args.epmd_port)

    def answer_stats() -> None:
        # `now`, or `settle TOTAL`: first waits (up to 30 s) until the core has made TOTAL
        # records since the start and the drain has handled all that it did not drop, so that
        # the next contender does not share the machine with this one's backlog.
        for line in sys.stdin:
            words = line.split()
            if words[:1] == ["settle"]:
                deadline = time.monotonic() + 30
                while (
                    counter.count + erlnode._erlnode.log_records_dropped() < int(words[1])
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.01)
                if args.log_file:
                    # Keeps the file small; the handler appends (O_APPEND) after the cut.
                    os.truncate(args.log_file, 0)
            stats = {"emitted": counter.count, "dropped": erlnode._erlnode.log_records_dropped()}
            print(f"STATS {json.dumps(stats)}", flush=True)

    threading.Thread(target=answer_stats, daemon=True).start()
    try:
        serve_plain(node)
    finally:
        node.close()


# -- the run -----------------------------------------------------------------------------------


class Remote:
    """An erlnode remote of ours: the child, and its record counts on demand."""

    def __init__(self, cluster: Cluster, c: Contender, log_dir: Path) -> None:
        key, logging_ = c.key, c.remote
        env = dict(cluster.env)
        args = [c.python, str(Path(__file__).resolve()), "remote", "--logging", logging_]
        args += ["--name", cluster.node_name(f"blog_{key}"), "--cookie", cluster.cookie]
        args += ["--epmd-port", str(cluster.epmd_port)]
        if logging_ == "debug":
            env["ERLNODE_LOG"] = "debug"
            args += ["--log-file", str(log_dir / f"{key}.log")]
        else:
            # The default as a user gets it: the pre-filter follows the `erlnode` logger.
            env.pop("ERLNODE_LOG", None)
        self.child = Child(key, args, env, stdin=True)
        cluster.children.append(self.child)

    def stats(self, settle: float = 0) -> dict[str, float]:
        """The records emitted and dropped so far; with `settle`, once the core has made that
        many in all and the drain has handled them."""
        self.child.write_line(f"settle {settle:.0f}" if settle else "now")
        return json.loads(self.child.wait_line("STATS ", 60))  # type: ignore[no-any-return]


def run(
    s: Settings, flood_rate: int, contenders: list[Contender]
) -> tuple[Results, dict[str, str]]:
    cluster = Cluster()
    log_dir = Path(tempfile.mkdtemp(prefix="erlnode-bench-logging-"))
    try:
        cluster.start()
        print(f"private epmd on port {cluster.epmd_port}; debug log in {log_dir}", flush=True)
        driver = Driver(cluster.erl("bldrv", "-eval", "bench_driver:main()", stdin=True))
        flooder = Driver(cluster.erl("blflood", "-eval", "bench_driver:main()", stdin=True))
        children: dict[str, Child] = {}
        remotes: dict[str, Remote] = {}
        for c in contenders:
            if c.remote == "erlang":
                alive = f"blog_{c.key}"
                children[c.key] = cluster.erl(alive, "-eval", "bench_remote:start()")
            else:
                remotes[c.key] = Remote(cluster, c, log_dir)
                children[c.key] = remotes[c.key].child
        nodes = {key: child.wait_line("READY ", 60) for key, child in children.items()}
        pids = {key: beam_pid(child) for key, child in children.items()}
        for c in contenders:
            driver.request(f"{{warm, '{nodes[c.key]}'}}")
            if c.flood:
                flooder.request(f"{{warm, '{nodes[c.key]}'}}")
        w1 = workloads(s, "nohelper")[0]
        results: Results = {c.key: [] for c in contenders}
        for r in range(s.runs):
            # Each round starts one contender later, and every other round goes backwards:
            # no contender always has the same position or the same neighbours (default and
            # default2, the A/A pair, follow each other both ways).
            shift = r % len(contenders)
            order = contenders[shift:] + contenders[:shift]
            for c in order if r % 2 == 0 else order[::-1]:
                try:
                    figures = one_round(
                        c, driver, flooder, remotes.get(c.key), nodes[c.key], pids[c.key],
                        w1, flood_rate,
                    )  # fmt: skip
                except BenchError as e:
                    child = children[c.key]
                    raise BenchError(f"{e}\n{c.key} (pid {child.pid}):\n{child.output()}") from None
                figures["remote_cpu_us"] = figures["remote_cpu"] / s.n * 1e6
                results[c.key].append(figures)
            print(
                f"round {r + 1}: "
                + "  ".join(f"{c.key} {fmt(results[c.key][-1]['rate'])}" for c in contenders),
                flush=True,
            )
        return results, nodes
    finally:
        cluster.close()
        shutil.rmtree(log_dir, ignore_errors=True)


def one_round(
    c: Contender,
    driver: Driver,
    flooder: Driver,
    remote: Remote | None,
    node: str,
    pid: int,
    w1: Any,
    flood_rate: int,
) -> dict[str, float]:
    """One W1 against contender `c` (the driver's figures, and `remote_cpu`: the CPU seconds
    the remote's process used meanwhile), with its flood around it if it has one."""
    if not c.flood:
        before = cpu_seconds(pid)
        figures = driver.request(w1.request(node))
        figures["remote_cpu"] = cpu_seconds(pid) - before
        return figures
    assert remote is not None
    start = remote.stats()
    flooder.request(f"{{flood_start, '{node}', {flood_rate}}}")
    time.sleep(SETTLE)
    w1_start = remote.stats()
    before = cpu_seconds(pid)
    figures = driver.request(w1.request(node))
    figures["remote_cpu"] = cpu_seconds(pid) - before
    w1_end = remote.stats()
    flood = flooder.request("flood_stop")
    # A round trip behind the flood, on its connection: the remote has read every message.
    flooder.request(f"{{w2, '{node}', 1}}")
    made = flood["sent"] if c.remote == "debug" else 0
    end = remote.stats(settle=start["emitted"] + start["dropped"] + made)
    emitted = end["emitted"] - start["emitted"]
    dropped = end["dropped"] - start["dropped"]
    if c.remote == "debug" and emitted + dropped != flood["sent"]:
        raise BenchError(
            f"{c.key}: the flood sent {flood['sent']:.0f} messages, the remote counted "
            f"{emitted:.0f} records emitted and {dropped:.0f} dropped"
        )
    seconds = figures["seconds"]
    figures.update(
        flood_sent_per_s=flood["rate"],
        emitted_per_s=(w1_end["emitted"] - w1_start["emitted"]) / seconds,
        dropped_per_s=(w1_end["dropped"] - w1_start["dropped"]) / seconds,
        emitted=emitted,
        dropped=dropped,
    )
    return figures


# -- report ------------------------------------------------------------------------------------


def ratios(results: Results, key: str, base: str) -> list[float]:
    """Per round: this contender's W1 rate ÷ the base's, from the same round."""
    return [r["rate"] / b["rate"] for r, b in zip(results[key], results[base], strict=True)]


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def render(
    s: Settings,
    flood_rate: int,
    contenders: list[Contender],
    results: Results,
    info: dict[str, str],
    took: float,
    load_end: str,
    command: str,
) -> str:
    by_key = {c.key: c for c in contenders}
    lines = [
        "",
        f"W1 ({s.n:,} messages) against each contender, {s.runs} interleaved rounds; medians. "
        "The flood: a second Erlang node sending messages to a name nobody registered on the "
        "remote, "
        + (f"{flood_rate:,} a second" if flood_rate else "as fast as it goes")
        + ", each one a DEBUG record in erlnode's core.",
        "",
        "| contender | W1 msg/s | spread (min–max) | remote CPU µs/msg | flood msg/s "
        "| records emitted/s | records dropped/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in contenders:
        rows = results[c.key]
        rates = [r["rate"] for r in rows]
        cpu = fmt(median(rows, "remote_cpu_us"))
        flood = emitted = dropped = "–"
        if c.flood:
            flood = fmt(median(rows, "flood_sent_per_s"))
            emitted = fmt(median(rows, "emitted_per_s"))
            dropped = fmt(median(rows, "dropped_per_s"))
        lines.append(
            f"| {c.label} | {fmt(statistics.median(rates))} | {fmt(min(rates))}–{fmt(max(rates))}"
            f" | {cpu} | {flood} | {emitted} | {dropped} |"
        )
    lines += [
        "",
        "Ratios of W1 rates: the ratio of the two medians, and the per-round (paired) ratios: "
        "their median, interquartile range and min–max.",
        "",
        "| ratio | of medians | paired median | paired IQR | paired min–max |",
        "|---|---|---|---|---|",
    ]
    pairs = [
        ("debug", "default", "DEBUG flood ÷ default, flood (the figure asked for)"),
        ("default2", "default", "default ÷ default, both flood (A/A: the noise)"),
        ("default", "quiet", "default with flood ÷ no flood (what the flood traffic costs)"),
        ("quiet", "erlang", "erlnode, no flood ÷ Erlang ⇄ Erlang"),
    ]
    if "debug_b" in by_key:
        pairs[1:1] = [
            ("debug_b", "default", "DEBUG flood with build B ÷ default, flood"),
            ("debug", "debug_b", "DEBUG flood: this build ÷ build B"),
        ]
    for key, base, label in pairs:
        paired = ratios(results, key, base)
        q1, q3 = quartiles(paired)
        of_medians = median(results[key], "rate") / median(results[base], "rate")
        lines.append(
            f"| {label} | {of_medians:.3f} | {statistics.median(paired):.3f} | "
            f"{q1:.3f}–{q3:.3f} | {min(paired):.3f}–{max(paired):.3f} |"
        )
    debug = results["debug"]
    made = sum(r["emitted"] + r["dropped"] for r in debug)
    dropped = sum(r["dropped"] for r in debug)
    lines += [
        "",
        f"Over the whole run the debug remote's core made {made:,.0f} DEBUG records (one per "
        f"flood message, checked each round), of which {dropped:,.0f} "
        f"({100 * dropped / made if made else 0:.1f} %) were dropped by the full queue and the "
        "rest were formatted and written by the FileHandler. The records columns count the "
        "W1 window only; with logging at its default the core makes no records at all. Remote "
        "CPU: the remote process's user + system time over the W1 window (flood included), "
        "per W1 message.",
        "",
        f"Machine: nproc {info['nproc']}, {info['cpu']}, kernel {info['kernel']}; Erlang/OTP "
        f"{info['otp']}, Python {info['python']}, erlnode commit {info['commit']}. "
        f"Date: {info['date']}. Load average at start: {info['load']}; at the end: {load_end}. "
        f"The section took {took:.0f} s. Command: `{command}`. Settings: rounds={s.runs}, "
        f"N={s.n:,}, flood rate={flood_rate or 'unbounded'}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what")
    remote = sub.add_parser("remote", help="(internal) the erlnode remote of this benchmark")
    remote.add_argument("--logging", choices=("default", "debug"), required=True)
    remote.add_argument("--name", required=True)
    remote.add_argument("--cookie", required=True)
    remote.add_argument("--epmd-port", type=int)
    remote.add_argument("--log-file")
    parser.add_argument("--quick", action="store_true", help="smoke run: small N, 2 rounds")
    parser.add_argument("--runs", type=int, help="rounds (default 21, quick 2)")
    parser.add_argument("--n", type=int, help="W1 messages (default 200000)")
    parser.add_argument(
        "--flood-rate", type=int, default=50_000, help="flood messages a second (0: unbounded)"
    )
    parser.add_argument(
        "--b-python",
        help="also a debug remote run by this Python (another build of erlnode)",
    )
    parser.add_argument("--write", action="store_true", help="put the section into BENCHMARKS.md")
    args = parser.parse_args()
    if args.what == "remote":
        serve_remote(args)
        return
    if args.quick and args.write:
        parser.error("--quick results are a smoke test: not written to BENCHMARKS.md")
    quick = args.quick
    s = Settings(
        runs=args.runs or (2 if quick else 21),
        n=args.n or (20_000 if quick else 200_000),
        pings=1,
        bulk_mib=1,
        bulk_count=1,
        fan_procs=1,
        idle_seconds=0,
        startup_runs=0,
        quick=quick,
        out_md=BENCHMARKS,
        out_png=Path(),
    )
    if s.runs < 1 or s.n < 1 or args.flood_rate < 0:
        parser.error("need at least 1 round and 1 message, and a flood rate of 0 or more")
    command = " ".join([python_command(), "benches/logging_flood.py", *sys.argv[1:]])

    # SIGTERM (a CI timeout, say) unwinds like Ctrl-C, so that `finally` stops every process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    info = machine()
    started = time.monotonic()
    contenders = list(CONTENDERS)
    if args.b_python:
        label = f"erlnode of {args.b_python}, DEBUG to a file + ERLNODE_LOG=debug, flood"
        contenders.append(Contender("debug_b", label, "debug", True, args.b_python))
    results, nodes = run(s, args.flood_rate, contenders)
    took = time.monotonic() - started
    load_end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = {
        "settings": {k: str(v) for k, v in vars(s).items()},
        "flood_rate": args.flood_rate,
        "b_python": args.b_python,
        "machine": info,
        "nodes": nodes,
        "results": results,
    }
    (RESULTS / "logging_flood.json").write_text(json.dumps(raw, indent=1))
    block = render(s, args.flood_rate, contenders, results, info, took, load_end, command)
    print(block)
    if args.write:
        write_block(BENCHMARKS, block, BEGIN, END, HEADING, AFTER)
        print(f"written to {BENCHMARKS}")
    print(f"took {took:.0f} s")


if __name__ == "__main__":
    main()
