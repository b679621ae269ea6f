"""W1–W4 over TLS distribution: erlnode beside Erlang, both over TLS, in one run (`make bench`).

Four contenders, all driven by the Erlang driver of benches/run.py (bench_driver.erl), each
workload interleaved round by round (A B C D, then B C D A, …):

  (a) Erlang ⇄ Erlang over TLS: a TLS driver node and the Erlang remote (bench_remote.erl),
      both `erl -proto_dist inet_tls -ssl_dist_optfile dist.conf`;
  (b) Erlang ⇄ erlnode over TLS: the same TLS driver and the erlnode remote (py_remote.py,
      the plain `receive()` loop) with `--tls-optfile dist.conf`;
  (c) Erlang ⇄ erlnode over plain TCP: a plain driver node and the plain erlnode remote, the
      setup of run.py ("erlnode plain");
  (d) Erlang ⇄ Erlang over plain TCP: the plain driver and the Erlang remote, the usual yardstick.

The optfile is mutual TLS as OTP's guide writes it (verify_peer on both sides,
fail_if_no_peer_cert on the server), naming no versions: OTP then speaks TLS 1.2 only for
distribution, its default. The certificates are made here with the openssl command line into a
temporary directory (a CA, and one leaf for every node: CA:FALSE, serverAuth and clientAuth,
SANs for localhost, this host's short name and 127.0.0.1), removed at the end.

Per workload it reports each contender's median, the paired ratios (b)/(a), (b)/(c) and (a)/(d)
(per round, then the median over the rounds, as run.py does), and the CPU time that the remote
and the driver node spent per message (per round trip for W2, per MiB for W4), read from
/proc/<pid>/stat around each request. The targets of the TLS issue are printed beside them.

    .venv/bin/python benches/tls.py --quick     # smoke run: small N, 2 rounds, printed only
    .venv/bin/python benches/tls.py --write     # full run, the TLS section of BENCHMARKS.md

Every process started here is stopped by its pid at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from report import machine, python_command, write_block
from run import (
    BENCHES,
    PY,
    RESULTS,
    BenchError,
    Child,
    Cluster,
    Driver,
    Settings,
    Workload,
    beam_pid,
    cpu_seconds,
    fmt,
    median,
    paired_ratio,
    workloads,
)

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
BEGIN = "<!-- tls:begin -->"
END = "<!-- tls:end -->"
HEADING = "## TLS distribution"
AFTER = ["<!-- instructions:end -->", "<!-- resources:end -->", "<!-- codec:end -->"]
WORKLOADS = ("W1", "W2", "W3", "W4")


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    tls: bool
    #: "erlang" (bench_remote.erl) or "erlnode" (py_remote.py, the plain receive() loop).
    remote: str


CONTENDERS = [
    Contender("a", "(a) Erlang ⇄ Erlang, TLS", True, "erlang"),
    Contender("b", "(b) Erlang ⇄ erlnode, TLS", True, "erlnode"),
    Contender("c", "(c) Erlang ⇄ erlnode, plain TCP", False, "erlnode"),
    Contender("d", "(d) Erlang ⇄ Erlang, plain TCP", False, "erlang"),
]

#: Targets of the TLS issue: (b) ÷ (a) on every workload, and more on W1 and W4; (b) ÷ (c).
TARGET_VS_ERLANG_TLS = {"W1": 2.0, "W2": 1.0, "W3": 1.0, "W4": 10.0}
TARGET_VS_PLAIN = 0.7

#: Results: workload key -> contender key -> one dict per round (the driver's figures plus
#: `remote_cpu` and `driver_cpu`, CPU µs per unit of work).
Results = dict[str, dict[str, list[dict[str, float]]]]


# -- certificates --------------------------------------------------------------------------


def openssl(directory: Path, *args: str) -> None:
    done = subprocess.run(
        ["openssl", *args], cwd=directory, check=False, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise BenchError(f"openssl {args[0]} failed:\n{done.stdout}{done.stderr}")


def make_certificates(directory: Path, host: str) -> Path:
    """A CA, one leaf signed by it for every node, and the mutual-TLS optfile; returns the
    optfile. rustls takes no CA:TRUE certificate as a leaf and checks the extended key usages,
    and OTP 25 checks `127.0.0.1` as a DNS name: hence a CA and a leaf with these SANs."""
    if shutil.which("openssl") is None:
        raise BenchError("no `openssl` on PATH (Debian package openssl): it makes the certificates")
    p256 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(
        directory, "req", "-x509", *p256, "-days", "2", "-subj", "/CN=bench-ca",
        "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
    )  # fmt: skip
    (directory / "node.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        f"subjectAltName=DNS:localhost,DNS:{host},DNS:127.0.0.1,IP:127.0.0.1\n"
    )
    openssl(
        directory, "req", *p256, "-subj", "/CN=bench-node", "-keyout", "node.key",
        "-out", "node.csr",
    )  # fmt: skip
    openssl(
        directory, "x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "node.ext", "-out", "node.pem",
    )  # fmt: skip
    files = (
        f'{{certfile, "{directory / "node.pem"}"}}, {{keyfile, "{directory / "node.key"}"}}, '
        f'{{cacertfile, "{directory / "ca.pem"}"}}, {{verify, verify_peer}}'
    )
    optfile = directory / "dist.conf"
    optfile.write_text(
        f"[{{server, [{files}, {{fail_if_no_peer_cert, true}}]}},\n {{client, [{files}]}}].\n"
    )
    return optfile


# -- nodes ----------------------------------------------------------------------------------


def tls_args(optfile: Path | None) -> list[str]:
    return ["-proto_dist", "inet_tls", "-ssl_dist_optfile", str(optfile)] if optfile else []


def erlnode_remote(cluster: Cluster, alive: str, optfile: Path | None) -> Child:
    args = [PY, str(BENCHES / "py_remote.py"), "--mode", "plain"]
    args += ["--name", cluster.node_name(alive), "--cookie", cluster.cookie]
    args += ["--epmd-port", str(cluster.epmd_port)]
    if optfile is not None:
        args += ["--tls-optfile", str(optfile)]
    return cluster.spawn(alive, args)


def units(s: Settings, key: str) -> tuple[float, str]:
    """How many units of work one request of workload `key` is, and the unit's name."""
    if key == "W2":
        return s.pings, "round trip"
    if key == "W4":
        return s.bulk_count * s.bulk_mib, "MiB"
    return s.n, "msg"


# -- the run --------------------------------------------------------------------------------


def run(s: Settings) -> tuple[list[Workload], Results, dict[str, str]]:
    cluster = Cluster()
    certs = Path(tempfile.mkdtemp(prefix="erlnode-bench-tls-"))
    try:
        optfile = make_certificates(certs, cluster.host)
        cluster.start()
        print(f"private epmd on port {cluster.epmd_port}; certificates in {certs}", flush=True)
        drivers = {
            True: Driver(
                cluster.erl("btdrv", *tls_args(optfile), "-eval", "bench_driver:main()", stdin=True)
            ),
            False: Driver(cluster.erl("bpdrv", "-eval", "bench_driver:main()", stdin=True)),
        }
        remotes: dict[str, Child] = {}
        for c in CONTENDERS:
            alive = f"bt{c.key}"
            tls = optfile if c.tls else None
            if c.remote == "erlang":
                remotes[c.key] = cluster.erl(alive, *tls_args(tls), "-eval", "bench_remote:start()")
            else:
                remotes[c.key] = erlnode_remote(cluster, alive, tls)
        nodes = {key: child.wait_line("READY ", 60) for key, child in remotes.items()}
        for c in CONTENDERS:
            # Connects (the TLS handshake happens here, not in a timed workload) and warms up.
            drivers[c.tls].request(f"{{warm, '{nodes[c.key]}'}}")
        remote_pids = {key: beam_pid(child) for key, child in remotes.items()}
        driver_pids = {tls: beam_pid(driver.child) for tls, driver in drivers.items()}

        wls = [w for w in workloads(s, "nohelper") if w.key in WORKLOADS]
        results: Results = {w.key: {c.key: [] for c in CONTENDERS} for w in wls}
        for w in wls:
            count, _ = units(s, w.key)
            started = time.monotonic()
            for r in range(s.runs):
                # Each round starts one contender later, as in run.py: none always runs first.
                shift = r % len(CONTENDERS)
                for c in CONTENDERS[shift:] + CONTENDERS[:shift]:
                    remote_pid, driver_pid = remote_pids[c.key], driver_pids[c.tls]
                    remote_before, driver_before = cpu_seconds(remote_pid), cpu_seconds(driver_pid)
                    try:
                        figures = drivers[c.tls].request(w.request(nodes[c.key]))
                    except BenchError as e:
                        remote = remotes[c.key]
                        log = f"{c.label} remote (pid {remote.pid}):\n{remote.output()}"
                        raise BenchError(f"{e}\n{log}") from None
                    figures["remote_cpu"] = (cpu_seconds(remote_pid) - remote_before) / count * 1e6
                    figures["driver_cpu"] = (cpu_seconds(driver_pid) - driver_before) / count * 1e6
                    results[w.key][c.key].append(figures)
            row = "  ".join(
                f"{c.key} {fmt(median(results[w.key][c.key], w.figure))}" for c in CONTENDERS
            )
            took = time.monotonic() - started
            print(f"{w.title} [{w.unit}]: {row}  ({took:.0f} s)", flush=True)
        return wls, results, nodes
    finally:
        cluster.close()
        shutil.rmtree(certs, ignore_errors=True)


# -- report ---------------------------------------------------------------------------------


def render(
    s: Settings,
    wls: list[Workload],
    results: Results,
    info: dict[str, str],
    took: float,
    load_end: str,
    command: str,
) -> str:
    def pr(w: Workload, x: str, y: str) -> float:
        return paired_ratio(w, results[w.key][x], results[w.key][y])

    lines = [
        "",
        f"Medians of {s.runs} interleaved rounds, one Erlang driver node per transport (the same "
        "bench_driver.erl; the TLS driver started with `-proto_dist inet_tls`), mutual TLS 1.2 "
        "(OTP's default for distribution) with certificates made for the run. The ratios are "
        "paired per round, then the median over the rounds (higher is better; for W2 latency "
        "it is the other's round trip ÷ (b)'s).",
        "",
        "| workload | "
        + " | ".join(c.label for c in CONTENDERS)
        + " | (b)/(a) | (b)/(c) | (a)/(d) |",
        "|---" * (len(CONTENDERS) + 4) + "|",
    ]
    for w in wls:
        cells = [f"{fmt(median(results[w.key][c.key], w.figure))} {w.unit}" for c in CONTENDERS]
        ratios = [f"{pr(w, 'b', 'a'):.2f}", f"{pr(w, 'b', 'c'):.2f}", f"{pr(w, 'a', 'd'):.2f}"]
        lines.append(f"| {w.title} | " + " | ".join(cells + ratios) + " |")
    w2 = results["W2"]
    p99 = [f"{fmt(median(w2[c.key], 'p99_us'))} µs" for c in CONTENDERS]
    lines.append("| W2 echo, p99 | " + " | ".join(p99) + " | | | |")

    lines += ["", "Targets of the TLS issue, as measured in this run:", ""]
    lines += ["| target | measured | |", "|---|---|---|"]
    for w in wls:
        goal = TARGET_VS_ERLANG_TLS[w.key]
        got = pr(w, "b", "a")
        ok = "met" if got >= goal else "not met"
        target = f"{w.key}: erlnode TLS ≥ {goal:g}× Erlang ⇄ Erlang over TLS"
        lines.append(f"| {target} | {got:.2f}× | {ok} |")
    for w in wls:
        got = pr(w, "b", "c")
        ok = "met" if got >= TARGET_VS_PLAIN else "not met"
        target = f"{w.key}: erlnode TLS ≥ {TARGET_VS_PLAIN:g}× erlnode over plain TCP"
        lines.append(f"| {target} | {got:.2f}× | {ok} |")

    lines += [
        "",
        "CPU time per unit of work (µs; W1 and W3 per message, W2 per round trip, W4 per MiB), "
        "medians over the rounds, from `/proc/<pid>/stat` (the kernel counts in 10 ms ticks) "
        "around each request: the remote node, and the driver node of that contender's "
        "transport.",
        "",
        "| workload | side | " + " | ".join(c.label for c in CONTENDERS) + " |",
        "|---" * (len(CONTENDERS) + 2) + "|",
    ]
    for w in wls:
        _, unit = units(s, w.key)
        for side in ("remote", "driver"):
            cells = [fmt(median(results[w.key][c.key], f"{side}_cpu")) for c in CONTENDERS]
            lines.append(f"| {w.key} (µs/{unit}) | {side} | " + " | ".join(cells) + " |")

    lines += ["", "Spread (min–max over the rounds):", ""]
    lines += ["| workload | " + " | ".join(c.label for c in CONTENDERS) + " |"]
    lines.append("|---" * (len(CONTENDERS) + 1) + "|")
    for w in wls:
        cells = []
        for c in CONTENDERS:
            values = [r[w.figure] for r in results[w.key][c.key]]
            cells.append(f"{fmt(min(values))}–{fmt(max(values))}")
        lines.append(f"| {w.key} ({w.unit}) | " + " | ".join(cells) + " |")

    lines += [
        "",
        f"W4 here is {s.bulk_count} × {s.bulk_mib} MiB"
        + (
            f" (run.py's is 20 × {s.bulk_mib} MiB; fewer here because Erlang over TLS moves "
            "only tens of MiB/s, and the section is kept to a few minutes)."
            if s.bulk_count < 20
            else "."
        ),
        "",
        f"Machine: nproc {info['nproc']}, {info['cpu']}, kernel {info['kernel']}; Erlang/OTP "
        f"{info['otp']}, Python {info['python']}, erlnode commit {info['commit']}. "
        f"Date: {info['date']}. Load average at start: {info['load']}; at the end: {load_end}. "
        f"The section took {took:.0f} s. Command: `{command}`. Settings: rounds={s.runs}, "
        f"N={s.n:,}, pings={s.pings:,}, bulk={s.bulk_count}×{s.bulk_mib} MiB.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small N, 2 rounds")
    parser.add_argument("--runs", type=int, help="rounds (default 11, quick 2)")
    parser.add_argument("--n", type=int, help="messages for W1/W3 (default 200000)")
    parser.add_argument("--pings", type=int, help="W2 round trips (default 5000)")
    parser.add_argument("--bulk-mib", type=int, default=8, help="W4 binary size in MiB")
    parser.add_argument("--bulk-count", type=int, help="W4 binaries (default 10, quick 2)")
    parser.add_argument("--write", action="store_true", help="put the section into BENCHMARKS.md")
    args = parser.parse_args()
    if args.quick and args.write:
        parser.error("--quick results are a smoke test: not written to BENCHMARKS.md")
    quick = args.quick
    s = Settings(
        runs=args.runs or (2 if quick else 11),
        n=args.n or (20_000 if quick else 200_000),
        pings=args.pings or (500 if quick else 5_000),
        bulk_mib=args.bulk_mib,
        bulk_count=args.bulk_count or (2 if quick else 10),
        fan_procs=1,
        idle_seconds=0,
        startup_runs=0,
        quick=quick,
        out_md=BENCHMARKS,
        out_png=Path(),
    )
    if s.runs < 1 or s.n < 1 or s.pings < 1 or s.bulk_count < 1:
        parser.error("need at least 1 round, message, round trip and bulk binary")
    command = " ".join([python_command(), "benches/tls.py", *sys.argv[1:]])

    # SIGTERM (a CI timeout, say) unwinds like Ctrl-C, so that `finally` stops every process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    info = machine()
    started = time.monotonic()
    wls, results, nodes = run(s)
    took = time.monotonic() - started
    load_end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = {
        "settings": {k: str(v) for k, v in vars(s).items()},
        "machine": info,
        "nodes": nodes,
        "results": results,
    }
    (RESULTS / "tls.json").write_text(json.dumps(raw, indent=1))
    block = render(s, wls, results, info, took, load_end, command)
    print(block)
    if args.write:
        write_block(BENCHMARKS, block, BEGIN, END, HEADING, AFTER)
        print(f"written to {BENCHMARKS}")
    print(f"took {took:.0f} s")


if __name__ == "__main__":
    main()
