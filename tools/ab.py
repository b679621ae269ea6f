"""A/B of two erlnode builds in one interleaved run: is a change faster, or is it the noise?

On a shared 2-core machine W1 moves by ±30 % from one run to the next, so two `make bench`
runs cannot tell a 10 % change from noise. This runs the plain `receive()` remote of build A
(the Python running this script) and of build B (another Python with another build of
erlnode installed) against the same Erlang driver, in every order in turn, next to the
Erlang remote as a yardstick, and reports per workload the median of B ÷ A over the rounds
(paired: same round, seconds apart) and the remote's CPU time per message.

Use 31 rounds (the default; about 30 s per workload): with 7 to 9 rounds, results of ±10 %
came and went between repeated runs of the same pair. With 31, two A/A runs (one build on
both sides) gave W1 1.00 and 1.03, W2 0.98 and 1.03, W5 0.97 and 0.88: W5 has a slow mode
that a few rounds of any remote fall into, so a W5 difference under ~15 % means nothing.

    # a B build of another commit, in its own worktree and venv:
    git worktree add /tmp/ab-b <rev>
    python3 -m venv /tmp/ab-b/.venv && /tmp/ab-b/.venv/bin/pip install -q maturin
    (cd /tmp/ab-b && .venv/bin/maturin develop --release -q)
    .venv/bin/python tools/ab.py --b-python /tmp/ab-b/.venv/bin/python [--mode plain]

    # one build, two modes (is the callback mode within 0.8 of the plain loop?):
    .venv/bin/python tools/ab.py --b-python .venv/bin/python --b-mode callback

Every process started here is stopped by its pid at the end, also on failure.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
from pathlib import Path

# The A/B runs on the machinery of benches/run.py (cluster, driver, workloads).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benches"))

from run import (
    BENCHES,
    PY,
    BenchError,
    Child,
    Cluster,
    Driver,
    Settings,
    Workload,
    busy_core,
    cpu_seconds,
    ratio,
    workloads,
)

ORDERS = list(itertools.permutations(["erlang", "A", "B"]))


def remote(cluster: Cluster, python: str, label: str, mode: str) -> Child:
    args = [python, str(BENCHES / "py_remote.py"), "--mode", mode]
    args += ["--name", cluster.node_name(f"bab_{label}"), "--cookie", cluster.cookie]
    return cluster.spawn(label, [*args, "--epmd-port", str(cluster.epmd_port)])


def erlnode_version(python: str) -> str:
    code = "import erlnode, os; print(os.path.dirname(erlnode.__file__))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise BenchError(f"{python} cannot import erlnode:\n{done.stderr}")
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--b-python", required=True, help="a Python with build B installed")
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--mode", default="plain", help="py_remote.py mode (default plain)")
    parser.add_argument("--b-mode", help="B's mode, if not --mode (one build, two modes)")
    parser.add_argument(
        "--only", default="W1,W2,W5", help="default W1,W2,W5; also W3, W4, 'W2 busy'"
    )
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    print(f"A: {erlnode_version(PY)}\nB: {erlnode_version(args.b_python)}", flush=True)
    settings = Settings(
        runs=args.rounds, n=args.n, pings=5_000, bulk_mib=8, bulk_count=10, fan_procs=8,
        idle_seconds=0, startup_runs=0, quick=False, out_md=Path(), out_png=Path(),
    )  # fmt: skip
    cluster = Cluster()
    try:
        cluster.start()
        driver = Driver(cluster.erl("bdrv", "-eval", "bench_driver:main()", stdin=True))
        helper = cluster.erl("bhelp", "-eval", 'io:format("READY ~s~n", [node()])')
        helper_name = helper.wait_line("READY ", 30)
        remotes = {
            "erlang": cluster.erl("berl", "-eval", "bench_remote:start()"),
            "A": remote(cluster, PY, "a", args.mode),
            "B": remote(cluster, args.b_python, "b", args.b_mode or args.mode),
        }
        nodes = {key: child.wait_line("READY ", 60) for key, child in remotes.items()}
        for node in nodes.values():
            driver.request(f"{{warm, '{node}'}}")
        wanted = args.only.split(",")

        def rounds(
            w: Workload, figures: dict[str, list[float]], cpu: dict[str, list[float]]
        ) -> None:
            for r in range(args.rounds):
                # Every position in turn: a remote always run second would always find the
                # vCPUs awake, which alone moved W2 by 10-15 %.
                order = ORDERS[r % len(ORDERS)]
                for key in order:
                    pid = remotes[key].pid
                    before = cpu_seconds(pid)
                    result = driver.request(w.request(nodes[key]))
                    figures[key].append(result[w.figure])
                    count = args.n if w.key in ("W1", "W5") else settings.pings
                    cpu[key].append((cpu_seconds(pid) - before) / count * 1e6)

        for w in (w for w in workloads(settings, helper_name) if w.key in wanted):
            figures: dict[str, list[float]] = {key: [] for key in remotes}
            cpu: dict[str, list[float]] = {key: [] for key in remotes}
            with busy_core(cluster, w.busy_core):
                rounds(w, figures, cpu)
            pairs = zip(figures["A"], figures["B"], strict=True)
            b_over_a = statistics.median(ratio(w, b, a) for a, b in pairs)
            print(f"\n{w.title} [{w.unit}], {args.rounds} rounds", flush=True)
            for key in remotes:
                print(
                    f"  {key:7} median {statistics.median(figures[key]):>12,.1f}"
                    f"  (min {min(figures[key]):,.1f}, max {max(figures[key]):,.1f})"
                    f"  remote CPU {statistics.median(cpu[key]):.2f} µs per message",
                    flush=True,
                )
            print(f"  B vs A (paired median, > 1: B faster): {b_over_a:.3f}", flush=True)
            for key in ("A", "B"):
                pairs = zip(figures["erlang"], figures[key], strict=True)
                vs_erlang = statistics.median(ratio(w, x, e) for e, x in pairs)
                print(f"  {key} vs Erlang (paired median, > 1: {key} faster): {vs_erlang:.3f}")
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
