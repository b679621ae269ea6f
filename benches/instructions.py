"""Instructions per operation, counted by valgrind's callgrind: figures that do not move with
the machine's load.

Each operation is a small Python script using the installed package that repeats the
operation `n` times. It runs under `valgrind --tool=callgrind` twice, with `n = N1` and
`n = N2`; start-up, imports and shutdown are the same in both runs and cancel out of

    Ir per operation = (Ir(N2) - Ir(N1)) / (N2 - N1)

where Ir is the total of instructions executed by the whole process, all threads (plain
totals, no `--toggle-collect`). Callgrind runs the threads of a process one at a time, so
instructions are counted exactly, but the interleaving of threads is not the native one: where
threads hand messages to each other (the network operation), how many messages one wake-up
finds can differ from a native run. `PYTHONHASHSEED=0` keeps Python's hashing identical
between runs. Each pair is run `--runs` times and the median reported, with the spread.

Operations (payloads of benches/WORKLOADS.md):

- `encode`: `erlnode.encode(C1)`; `decode`: `erlnode.decode` of those bytes.
- `send_receive`: `mbox.send(own_pid, (Atom('seq'), i, bytes(64)))` n times, then
  `mbox.receive()` n times: encode + route + queue + receive + decode, no network.
- `send_receive_many`: the same sends, drained with `mbox.receive_many(1024)`.
- `net_receive`: an `erl` node (benches/erl/bench_remote.erl, workload W3) sends n
  `{seq, I, <<0:512>>}` over a real loopback connection; the Python process receives them
  with `mbox.receive()`. Instructions of the Python process (network thread, Python thread,
  all) per received message. The `erl` node runs outside valgrind, with a private EPMD,
  random names and cookie, and is stopped by its pid at the end.
- `net_send`: the other way (workload W1's messages): `mbox.send` of n `{seq, I, <<0:512>>}`
  to `{bench, erl}`, then `{stop, Pid}` and its `{done, n}`: encode, frame and write.

Usage:

    .venv/bin/python benches/instructions.py                   # table (≈ 2 min)
    .venv/bin/python benches/instructions.py --write           # and into BENCHMARKS.md
    .venv/bin/python benches/instructions.py --profile decode  # top functions, Ir per op
    .venv/bin/python benches/instructions.py --only encode,decode --runs 1

`--profile OP` lists the functions whose own instructions (callgrind_annotate, exclusive) grew
most between the N1 and the N2 run, divided by N2 - N1: the per-operation profile with
start-up subtracted.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from report import machine_line, python_command, write_block

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
BEGIN = "<!-- instructions:begin -->"
END = "<!-- instructions:end -->"
#: Where the section goes when BENCHMARKS.md has no block yet: after these, the first found.
AFTER = ["<!-- resources:end -->", "<!-- codec:end -->"]
HEADING = "## Instructions per operation (callgrind)"
VALGRIND = shutil.which("valgrind") or "/usr/bin/valgrind"

#: Every operation script starts with this; argv: n name cookie epmd_port peer.
PRELUDE = """\
import sys
import erlnode
from erlnode import Atom
n = int(sys.argv[1])
NAME, COOKIE, EPMD_PORT, PEER = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
C1 = {
    Atom("id"): 12345,
    Atom("name"): b"alice",
    Atom("score"): 3.14,
    Atom("tags"): [Atom("a"), Atom("b"), Atom("c")],
    Atom("active"): True,
}
"""

#: The start of the network operations: a node connected to the `erl` peer.
CONNECTED = """\
node = erlnode.Node(NAME, cookie=COOKIE, epmd_port=EPMD_PORT)
mbox = node.mailbox()
if not node.ping(PEER, timeout=60.0):
    raise SystemExit(f"no pong from {PEER}")
"""

SEND_N = """\
node = erlnode.Node(NAME, cookie=COOKIE, epmd_port=EPMD_PORT)
mbox = node.mailbox()
pid, send, seq, payload = mbox.pid, mbox.send, Atom("seq"), bytes(64)
for i in range(n):
    send(pid, (seq, i, payload))
"""


@dataclass
class Op:
    key: str
    title: str
    body: str
    n1: int
    n2: int
    #: Needs the erl node (started once, when the first such operation runs).
    needs_erl: bool = False


OPS = [
    Op("encode", "`erlnode.encode(C1)`", """\
encode = erlnode.encode
for _ in range(n):
    encode(C1)
""", 2_000, 52_000),
    Op("decode", "`erlnode.decode(C1 bytes)`", """\
data, decode = erlnode.encode(C1), erlnode.decode
for _ in range(n):
    decode(data)
""", 2_000, 52_000),
    Op("send_receive", "`mbox.send(own pid, (seq, I, 64 B))` + `mbox.receive()`",
       SEND_N + """\
receive = mbox.receive
for _ in range(n):
    receive()
node.close()
""", 1_000, 21_000),
    Op("send_receive_many", "the same sends + `mbox.receive_many(1024)`", SEND_N + """\
left = n
while left:
    left -= len(mbox.receive_many(1024))
node.close()
""", 1_000, 21_000),
    Op("net_receive", "receive `{seq, I, <<0:512>>}` from `erl` over loopback (W3)",
       CONNECTED + """\
mbox.send(("bench", PEER), (Atom("source"), mbox.pid, n))
receive, done = mbox.receive, Atom("source_done")
while receive(timeout=120.0)[0] != done:
    pass
node.close()
""", 1_000, 21_000, needs_erl=True),
    Op("net_send", "`mbox.send` `{seq, I, <<0:512>>}` to `erl` over loopback (W1)",
       CONNECTED + """\
send, dest, seq, payload = mbox.send, ("bench", PEER), Atom("seq"), bytes(64)
for i in range(n):
    send(dest, (seq, i, payload))
send(dest, (Atom("stop"), mbox.pid))
if mbox.receive(timeout=120.0) != (Atom("done"), n):
    raise SystemExit("the remote did not count every message")
node.close()
""", 1_000, 21_000, needs_erl=True),
]  # fmt: skip


class BenchError(RuntimeError):
    pass


class Peer:
    """A private EPMD and an `erl` running bench_remote, stopped by pid in `close`."""

    def __init__(self) -> None:
        self.cookie = secrets.token_hex(12)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.beams = Path(tempfile.mkdtemp(prefix="erlnode-instr-"))
        self.epmd_port = 0
        self.name = ""

    def start(self) -> None:
        source = ROOT / "benches" / "erl" / "bench_remote.erl"
        done = subprocess.run(
            ["erlc", "-o", str(self.beams), str(source)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if done.returncode != 0:
            raise BenchError(f"erlc failed:\n{done.stdout}{done.stderr}")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.epmd_port = int(s.getsockname()[1])
        env = dict(os.environ, ERL_EPMD_PORT=str(self.epmd_port))
        epmd = self._spawn(["epmd", "-port", str(self.epmd_port)], env)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.epmd_port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or epmd.poll() is not None:
                    raise BenchError("the private epmd did not start") from None
                time.sleep(0.05)
        alive = f"brinstr_{secrets.token_hex(3)}"
        erl = self._spawn(
            ["erl", "-sname", alive, "-setcookie", self.cookie, "-noshell",
             "-pa", str(self.beams), "-eval", "bench_remote:start()"],
            env,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert erl.stdout is not None
        line = erl.stdout.readline().decode(errors="replace").strip()
        if not line.startswith("READY "):
            raise BenchError(f"erl did not start: {line!r}")
        self.name = line[len("READY ") :]

    def _spawn(
        self, args: list[str], env: dict[str, str], stdout: int = subprocess.DEVNULL
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.DEVNULL,  # epmd logs every probe of its port
            env=env,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):  # erl first, epmd last
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self.procs.clear()
        shutil.rmtree(self.beams, ignore_errors=True)


class Runner:
    """Runs operation scripts under callgrind; output files go to a temporary directory."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="erlnode-callgrind-"))
        self.peer: Peer | None = None

    def peer_for(self, op: Op) -> tuple[str, str, int]:
        """(peer name, cookie, EPMD port) for this operation; starts the erl node if needed."""
        if not op.needs_erl:
            # No EPMD listens on a fresh free port, so the node serves one itself there.
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                return "none@nohost", secrets.token_hex(12), int(s.getsockname()[1])
        if self.peer is None:
            self.peer = Peer()
            self.peer.start()
        return self.peer.name, self.peer.cookie, self.peer.epmd_port

    def callgrind(self, op: Op, n: int) -> Path:
        """Runs `op` with `n` under callgrind; returns the output file."""
        script = self.dir / f"{op.key}.py"
        script.write_text(PRELUDE + op.body)
        out = self.dir / f"{op.key}.{n}.{secrets.token_hex(3)}.callgrind"
        peer, cookie, epmd_port = self.peer_for(op)
        name = f"brcg_{secrets.token_hex(3)}"
        args = [VALGRIND, "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                str(script), str(n), name, cookie, str(epmd_port), peer]  # fmt: skip
        env = dict(os.environ, PYTHONHASHSEED="0")
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
        if proc.returncode != 0 or not out.exists():
            text = output.decode(errors="replace")[-3000:]
            raise BenchError(f"{op.key} (n={n}) exited with {proc.returncode}:\n{text}")
        return out

    def close(self) -> None:
        if self.peer is not None:
            self.peer.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def total_ir(path: Path) -> int:
    """The process's total instructions, from the `totals:` line of a callgrind file."""
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise BenchError(f"no totals in {path}")


ANNOTATE_LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.+)$")


def per_function(path: Path) -> dict[str, int]:
    """Exclusive Ir per function (callgrind_annotate), keyed by `short_name`.

    callgrind_annotate lists a function once per source file its code came from (inlining)
    and once per recursion depth (`fn'2`); those are added up.
    """
    done = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--auto=no", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    out: dict[str, int] = {}
    for line in done.stdout.splitlines():
        m = ANNOTATE_LINE.match(line)
        if m and "PROGRAM TOTALS" not in m.group(2):
            key = short_name(m.group(2))
            out[key] = out.get(key, 0) + int(m.group(1).replace(",", ""))
    return out


def short_name(key: str) -> str:
    """`/long/path/ceval.c:fn'2 [/x/libpython3.11.so]` → `fn`."""
    where = key.partition(" [")[0]
    function = where.split(":", 1)[1] if ":" in where else where
    return re.sub(r"'\d+$", "", function)


def profile(runner: Runner, op: Op, top: int) -> None:
    small = per_function(runner.callgrind(op, op.n1))
    large = per_function(runner.callgrind(op, op.n2))
    span = op.n2 - op.n1
    growth = {k: (large.get(k, 0) - small.get(k, 0)) / span for k in set(small) | set(large)}
    total = sum(growth.values())
    print(f"\n{op.key}: {total:,.0f} Ir per operation; top {top} functions (exclusive Ir/op):\n")
    for key, ir in sorted(growth.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{ir:10,.1f}  {100 * ir / total:5.1f}%  {key}")


def measure(runner: Runner, ops: list[Op], runs: int) -> dict[str, list[float]]:
    """Ir per operation of every run, interleaved: run 1 of every op, then run 2, …"""
    results: dict[str, list[float]] = {op.key: [] for op in ops}
    for r in range(runs):
        for op in ops:
            small = total_ir(runner.callgrind(op, op.n1))
            large = total_ir(runner.callgrind(op, op.n2))
            results[op.key].append((large - small) / (op.n2 - op.n1))
            print(f"run {r + 1}/{runs} {op.key}: {results[op.key][-1]:,.0f} Ir/op", flush=True)
    return results


def valgrind_version() -> str:
    return subprocess.run(
        [VALGRIND, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()


def render(ops: list[Op], results: dict[str, list[float]], runs: int, command: str) -> str:
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "",
        f"Instructions (Ir) per operation, (Ir(N2) − Ir(N1)) / (N2 − N1) of the whole process, "
        f"all threads; median of {runs} runs, spread = (max − min) / median.",
        "",
        "| operation | what | N1 → N2 | Ir per op | spread |",
        "|---|---|---|---|---|",
    ]
    for op in ops:
        values = results[op.key]
        med = statistics.median(values)
        spread = (max(values) - min(values)) / med if med else 0.0
        lines.append(
            f"| `{op.key}` | {op.title} | {op.n1:,} → {op.n2:,} | {med:,.0f} "
            f"| {100 * spread:.2f} % |"
        )
    worst = max((max(v) - min(v)) / statistics.median(v) for v in results.values())
    lines += [
        "",
        "How to use: run it before and after a change (`--only OP` for one operation, "
        "`--profile OP` for its top functions). The runs above agree to within "
        f"{100 * worst:.2f} %, so a 2 % gain shows, where the wall clock of this shared machine "
        "moves by ±30 %. Instructions are not time (cache misses, mispredictions and waits "
        "are not in them), and callgrind runs threads one at a time, so for `net_receive` "
        "the batching of messages per wake-up is not the native one.",
        "",
        f"Machine: {machine_line(valgrind_version())}. Date: {date}. Command: `{command}`.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    keys = [op.key for op in OPS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="N1/N2 pairs per operation")
    parser.add_argument("--only", help=f"comma-separated operations, of: {', '.join(keys)}")
    parser.add_argument("--profile", choices=keys, help="print the top functions of one op")
    parser.add_argument("--top", type=int, default=25, help="functions listed by --profile")
    parser.add_argument("--write", action="store_true", help="put the table into BENCHMARKS.md")
    args = parser.parse_args()
    if not Path(VALGRIND).exists():
        sys.exit("valgrind not found (apt-get install valgrind)")
    ops = OPS
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - set(keys)
        if unknown:
            parser.error(f"unknown operations: {', '.join(sorted(unknown))}")
        ops = [op for op in OPS if op.key in wanted]

    started = time.monotonic()
    runner = Runner()
    try:
        if args.profile:
            profile(runner, next(op for op in OPS if op.key == args.profile), args.top)
            return
        results = measure(runner, ops, args.runs)
    finally:
        runner.close()
        print(f"took {time.monotonic() - started:.0f} s")

    command = " ".join([python_command(), "benches/instructions.py", *sys.argv[1:]])
    block = render(ops, results, args.runs, command)
    print(block)
    if args.write:
        write_block(BENCHMARKS, block, BEGIN, END, HEADING, AFTER)
        print(f"written to {BENCHMARKS}")


if __name__ == "__main__":
    main()
