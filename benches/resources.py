"""Memory and threads of an erlnode node, next to Erlang's own figures for the same things.

What is measured, each in a fresh process, median of `--runs` runs (interleaved: Python probe,
Erlang probe, Python probe, …):

- **erlnode** (a Python process, the installed package): RSS (VmRSS of /proc/self/status) of
  the interpreter alone, after `import erlnode`, after `Node(...)` is up; its thread count
  idle; then the RSS delta of connecting to `--peers` real `erl` nodes (`node.ping`, then 1 s
  idle) divided by their number; then the RSS delta of creating `--mailboxes` mailboxes
  (kept alive, as a user holds them) divided by their number. The first connection is made
  and left out before the count starts: it also sets up what all connections share (for
  Erlang, loading the distribution's modules), which is not a per-connection cost.
- **Erlang** (an `erl -hidden` node, OTP's defaults): the same steps with `erlang:memory(total)`
  and the beam's VmRSS: `net_adm:ping` to the same `--peers` nodes, then `--mailboxes` idle
  processes (`receive stop -> ok end`). Its connections are hidden, like erlnode's.
  Connections are measured first because the garbage collection of 10,000 processes moves
  `erlang:memory(total)` by more than 20 connections take.

RSS deltas over many items average out the allocators' page-sized steps, but they stay
approximate (a few hundred bytes per item either way); `erlang:memory/1` counts what the BEAM
allocated, not the pages it holds, so both are given for Erlang.

The peers are plain `erl -sname … -noshell` nodes on loopback with a random cookie, using a
private EPMD on a free port (`ERL_EPMD_PORT`); every process started here is stopped by its
pid at the end, also on failure or Ctrl-C. The idle CPU of a node is measured by
benches/run.py, not here.

    .venv/bin/python benches/resources.py            # prints the table (≈ 30 s)
    .venv/bin/python benches/resources.py --write    # and puts it into BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from report import machine_line, python_command, write_block

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
BEGIN = "<!-- resources:begin -->"
END = "<!-- resources:end -->"
AFTER = "<!-- codec:end -->"
HEADING = "## Memory and threads"

#: The erlnode probe, run with `python -c` so that nothing but `os`, `sys` and `json` is
#: loaded before the "bare interpreter" reading. argv: name cookie epmd_port mailboxes peers…
PY_PROBE = r"""
import json, os, sys, time

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")

def threads():
    return len(os.listdir("/proc/self/task"))

name, cookie, epmd_port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
peers = sys.argv[5:]
out = {"bare": rss()}
import erlnode
out["imported"] = rss()
node = erlnode.Node(name, cookie=cookie, epmd_port=epmd_port)
time.sleep(0.5)
out["node"] = rss()
out["threads_idle"] = threads()
def connect(names):
    for peer in names:
        if not node.ping(peer, timeout=10.0):
            raise RuntimeError(f"no pong from {peer}")
    time.sleep(1.0)

connect(peers[:1])  # the first connection also starts what every later one shares
out["warm"] = rss()
connect(peers[1:])
connected = len(node.connected_nodes())
if connected != len(peers):
    raise RuntimeError(f"{connected} connections, expected {len(peers)}")
out["connected"] = rss()
out["threads_connected"] = threads()
mailboxes = [node.mailbox() for _ in range(count)]
time.sleep(0.2)
out["mailboxes"] = rss()
out["thread_names"] = sorted(
    open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")
)
print("@@R " + json.dumps(out), flush=True)
node.close()
"""

#: The Erlang probe, `erl -eval`; @COUNT@ and @PEERS@ are filled in by `probe_erlang`.
ERL_PROBE = r"""
Rss = fun() ->
    {ok, B} = file:read_file("/proc/self/status"),
    Lines = binary:split(B, <<"\n">>, [global]),
    [L] = [L || L <- Lines, binary:match(L, <<"VmRSS:">>) =/= nomatch],
    [_, Kb | _] = string:lexemes(binary_to_list(L), " \t"),
    list_to_integer(Kb) * 1024
end,
Threads = fun() -> {ok, Ts} = file:list_dir("/proc/self/task"), length(Ts) end,
Settle = fun(Ms) ->
    timer:sleep(Ms),
    [erlang:garbage_collect(P) || P <- processes()],
    {erlang:memory(total), Rss()}
end,
{M0, R0} = Settle(500),
T0 = Threads(),
[First | Rest] = Peers = @PEERS@,
%% The first connection also loads the distribution's modules: not counted.
pong = net_adm:ping(First),
{Mw, Rw} = Settle(1000),
[pong = net_adm:ping(P) || P <- Rest],
{Mc, Rc} = Settle(1000),
Connected = length(nodes(hidden)) + length(nodes()),
Connected = length(Peers),
Tc = Threads(),
Procs = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, @COUNT@)],
{Mp, Rp} = Settle(200),
io:format("@@R {\"mem_base\": ~b, \"rss_base\": ~b, \"threads_idle\": ~b, "
          "\"mem_warm\": ~b, \"rss_warm\": ~b, \"mem_connected\": ~b, \"rss_connected\": ~b, "
          "\"threads_connected\": ~b, \"mem_procs\": ~b, \"rss_procs\": ~b}~n",
          [M0, R0, T0, Mw, Rw, Mc, Rc, Tc, Mp, Rp]),
[P ! stop || P <- Procs],
halt().
"""


class BenchError(RuntimeError):
    pass


class Processes:
    """Every OS process started here, stopped by pid (TERM, then KILL) in `close`."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.started: list[subprocess.Popen[str]] = []

    def start(self, args: list[str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            text=True,
            errors="replace",
            start_new_session=True,  # a Ctrl-C reaches only us; we stop the children
        )
        self.started.append(proc)
        return proc

    def run(self, args: list[str], timeout: float) -> dict[str, Any]:
        """Runs a probe to its end and returns the JSON of its `@@R ` line."""
        proc = self.start(args)
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(proc)
            raise BenchError(f"{args[0]} probe: no result within {timeout} s") from None
        self.started.remove(proc)
        for line in output.splitlines():
            if line.startswith("@@R "):
                return json.loads(line[4:])  # type: ignore[no-any-return]
        raise BenchError(f"{args[0]} probe exited {proc.returncode} without a result:\n{output}")

    def stop(self, proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc in self.started:
            self.started.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.started):  # nodes first, EPMD (started first) last
            try:
                self.stop(proc)
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                print(f"could not stop pid {proc.pid}: {e}", file=sys.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"nothing listens on port {port}")


def start_peers(procs: Processes, count: int, cookie: str, tag: str) -> list[str]:
    """`count` idle erl nodes; returns their names once each is registered in EPMD."""
    host = socket.gethostname().split(".")[0]
    names = [f"brpeer{i}_{tag}" for i in range(count)]
    for name in names:
        # connect_all false: the peers do not mesh with each other when a probe meets them.
        procs.start(["erl", "-sname", name, "-setcookie", cookie, "-noshell",
                     "-connect_all", "false"])  # fmt: skip
    epmd_port = procs.env["ERL_EPMD_PORT"]
    deadline = time.monotonic() + 60
    while True:
        listed = subprocess.run(
            ["epmd", "-port", epmd_port, "-names"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout
        if all(f"name {name} " in listed for name in names):
            return [f"{name}@{host}" for name in names]
        if time.monotonic() > deadline:
            raise BenchError(f"peers not up within 60 s; epmd says:\n{listed}")
        time.sleep(0.2)


def probe_python(
    procs: Processes, cookie: str, tag: str, mailboxes: int, peers: list[str]
) -> dict[str, Any]:
    name = f"brpy_{tag}_{secrets.token_hex(2)}"
    port = procs.env["ERL_EPMD_PORT"]
    args = [sys.executable, "-c", PY_PROBE, name, cookie, port, str(mailboxes), *peers]
    return procs.run(args, timeout=120)


def probe_erlang(
    procs: Processes, cookie: str, tag: str, mailboxes: int, peers: list[str]
) -> dict[str, Any]:
    name = f"brerl_{tag}_{secrets.token_hex(2)}"
    peer_list = "[" + ", ".join(f"'{p}'" for p in peers) + "]"
    expr = ERL_PROBE.replace("@COUNT@", str(mailboxes)).replace("@PEERS@", peer_list)
    args = ["erl", "-sname", name, "-setcookie", cookie, "-noshell", "-hidden", "-eval", expr]
    return procs.run(args, timeout=120)


def figures(
    py: list[dict[str, Any]], erl: list[dict[str, Any]], n: int, k: int
) -> dict[str, float]:
    """Medians over the runs of every reported figure, in bytes (or threads)."""

    def med(runs: list[dict[str, Any]], figure: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(figure(r) for r in runs)

    return {
        "py_bare": med(py, lambda r: r["bare"]),
        "py_import": med(py, lambda r: r["imported"] - r["bare"]),
        "py_node": med(py, lambda r: r["node"] - r["imported"]),
        "py_base": med(py, lambda r: r["node"] - r["bare"]),
        "py_threads_idle": med(py, lambda r: r["threads_idle"]),
        "py_threads_connected": med(py, lambda r: r["threads_connected"]),
        "py_mailbox": med(py, lambda r: (r["mailboxes"] - r["connected"]) / n),
        "py_connection": med(py, lambda r: (r["connected"] - r["warm"]) / (k - 1)),
        "erl_rss": med(erl, lambda r: r["rss_base"]),
        "erl_mem": med(erl, lambda r: r["mem_base"]),
        "erl_threads_idle": med(erl, lambda r: r["threads_idle"]),
        "erl_threads_connected": med(erl, lambda r: r["threads_connected"]),
        "erl_proc_mem": med(erl, lambda r: (r["mem_procs"] - r["mem_connected"]) / n),
        "erl_proc_rss": med(erl, lambda r: (r["rss_procs"] - r["rss_connected"]) / n),
        "erl_conn_mem": med(erl, lambda r: (r["mem_connected"] - r["mem_warm"]) / (k - 1)),
        "erl_conn_rss": med(erl, lambda r: (r["rss_connected"] - r["rss_warm"]) / (k - 1)),
    }


def kb(value: float) -> str:
    return f"{value / 1024:,.1f} KiB"


def mb(value: float) -> str:
    return f"{value / (1024 * 1024):,.1f} MiB"


def render(
    f: dict[str, float], runs: int, n: int, k: int, thread_names: list[str], command: str
) -> str:
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        ("memory per mailbox / idle process",
         f"{kb(f['py_mailbox'])} (RSS)",
         f"{kb(f['erl_proc_mem'])} (`erlang:memory`), {kb(f['erl_proc_rss'])} (RSS)"),
        (f"memory per idle connection (to {k} `erl` nodes, hidden)",
         f"{kb(f['py_connection'])} (RSS)",
         f"{kb(f['erl_conn_mem'])} (`erlang:memory`; RSS moved by {kb(f['erl_conn_rss'])}, "
         "too coarse: the BEAM's allocators take and return memory in carriers)"),
        ("idle node, whole process",
         f"{mb(f['py_bare'] + f['py_base'])} RSS: bare interpreter {mb(f['py_bare'])} "
         f"+ `import erlnode` {mb(f['py_import'])} + `Node()` {mb(f['py_node'])}",
         f"{mb(f['erl_rss'])} RSS ({mb(f['erl_mem'])} `erlang:memory(total)`)"),
        ("threads, idle node / with the connections",
         f"{f['py_threads_idle']:.0f} / {f['py_threads_connected']:.0f}",
         f"{f['erl_threads_idle']:.0f} / {f['erl_threads_connected']:.0f}"),
    ]  # fmt: skip
    lines = [
        "",
        f"Medians of {runs} runs, each in a fresh process; {n:,} mailboxes / processes, {k} "
        "connections to idle `erl` nodes on loopback. erlnode: a Python process using the "
        "installed package, the RSS deltas divided by the count (Python `Mailbox` objects "
        f"included); per connection: the delta over connections 2 to {k}, divided by {k - 1}. "
        "Erlang: an `erl -hidden` node with OTP's default flags. The idle CPU of a node is in "
        "the table of `benches/run.py` above.",
        "",
        "| figure | erlnode | Erlang |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        "",
        f"erlnode's threads with the connections (one run): {', '.join(thread_names)}. "
        "Tokio's one worker is `erlnode-net`; a second `erlnode-net` is its blocking-pool "
        "thread, which resolved the peers' host names and exits after 10 s idle.",
        "",
        f"Machine: {machine_line()}. Date: {date}. Command: `{command}`.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh probes per side (≥ 3)")
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--peers", type=int, default=20, help="idle erl nodes to connect to")
    parser.add_argument("--write", action="store_true", help="put the table into BENCHMARKS.md")
    args = parser.parse_args()
    if args.runs < 3:
        parser.error("--runs must be at least 3")
    if args.peers < 2:
        parser.error("--peers must be at least 2 (the first connection is not counted)")

    started = time.monotonic()
    cookie = secrets.token_hex(12)
    tag = secrets.token_hex(3)
    env = dict(os.environ)
    procs = Processes(env)
    try:
        port = free_port()
        env["ERL_EPMD_PORT"] = str(port)
        wait_port(port, procs.start(["epmd", "-port", str(port)]), timeout=10)
        peers = start_peers(procs, args.peers, cookie, tag)
        py: list[dict[str, Any]] = []
        erl: list[dict[str, Any]] = []
        for i in range(args.runs):
            py.append(probe_python(procs, cookie, tag, args.mailboxes, peers))
            erl.append(probe_erlang(procs, cookie, tag, args.mailboxes, peers))
            print(f"run {i + 1}/{args.runs}: erlnode {py[-1]}\n  Erlang {erl[-1]}", flush=True)
    finally:
        procs.close()

    f = figures(py, erl, args.mailboxes, args.peers)
    command = " ".join([python_command(), "benches/resources.py", *sys.argv[1:]])
    block = render(f, args.runs, args.mailboxes, args.peers, py[-1]["thread_names"], command)
    print(block)
    if args.write:
        write_block(BENCHMARKS, block, BEGIN, END, HEADING, [AFTER])
        print(f"written to {BENCHMARKS}")
    print(f"took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
