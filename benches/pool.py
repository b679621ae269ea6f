"""CPU-bound Python called from Erlang: a `WorkerPool` of 1 worker, of one worker per core, and
one process with a thread per request (the GIL-bound alternative), in the same run.

The handler does a fixed amount of pure-Python work per request (`--work-ms`, calibrated
here: a loop of integer arithmetic). An `erl` driver node keeps `--callers` concurrent
callers busy, each picking a member of the configuration's `pg` group in turn
(`pg:get_members/1`) and making a `gen_server:call`; throughput is the calls completed in
`--seconds` after a warm-up. The configurations run interleaved, `--rounds` times, and each
figure is the median. The target (issue 18): the pool with one worker per core reaches at
least 0.9 × cores × the 1-worker figure.

Also measured: what finding the member through the group adds to a call. Sequential calls
to a trivial handler (`ping`) of a 1-worker pool, from the driver: `gen_server:call` to a
pid known in advance, and `pg:get_members` + pick + `gen_server:call`; medians of
interleaved batches.

Every process started here (a private EPMD, the driver, the workers) is stopped by its pid at
the end, also on failure or Ctrl-C.

    .venv/bin/python benches/pool.py            # prints the table (≈ 1 min)
    .venv/bin/python benches/pool.py --write    # and puts it into BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import queue
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from report import machine_line, python_command, write_block

import erlnode
from erlnode import Atom, GenServer

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"
BEGIN = "<!-- pool:begin -->"
END = "<!-- pool:end -->"
AFTER = ["<!-- instructions:end -->", "<!-- resources:end -->"]
HEADING = "## Worker pool: CPU-bound Python called from Erlang"
MARK = "@@R "

#: The driver: reads one command term per line on stdin, prints `@@R <json>` for each.
DRIVER = r"""
-module(pool_bench).
-export([serve/0]).

serve() ->
    {ok, _} = pg:start_link(),
    io:format("@@R {\"node\": \"~s\"}~n", [node()]),
    loop().

loop() ->
    case io:read('') of
        {ok, Command} ->
            Result = command(Command),
            io:format("@@R ~s~n", [Result]),
            loop();
        _ ->
            halt(0)
    end.

command({wait_members, Group, N}) ->
    wait_members(Group, N, 60000);
command({throughput, Group, Callers, WarmMs, Ms}) ->
    throughput(Group, Callers, WarmMs, Ms);
command({latency, Group, N}) ->
    latency(Group, N).

wait_members(Group, N, Left) ->
    case length(pg:get_members(Group)) of
        Got when Got >= N -> io_lib:format("{\"members\": ~b}", [Got]);
        _ when Left =< 0 -> "{\"members\": -1}";
        _ -> timer:sleep(20), wait_members(Group, N, Left - 20)
    end.

throughput(Group, Callers, WarmMs, Ms) ->
    Done = counters:new(1, [write_concurrency]),
    Stop = atomics:new(1, []),
    Pids = [spawn(fun() -> call_loop(Group, I, Done, Stop) end) || I <- lists:seq(1, Callers)],
    timer:sleep(WarmMs),
    {C0, T0} = {counters:get(Done, 1), erlang:monotonic_time(microsecond)},
    timer:sleep(Ms),
    {C1, T1} = {counters:get(Done, 1), erlang:monotonic_time(microsecond)},
    atomics:put(Stop, 1, 1),
    [begin Ref = monitor(process, P), receive {'DOWN', Ref, _, _, _} -> ok end end || P <- Pids],
    io_lib:format("{\"calls_per_s\": ~f}", [(C1 - C0) * 1.0e6 / (T1 - T0)]).

call_loop(Group, Seq, Done, Stop) ->
    case atomics:get(Stop, 1) of
        0 ->
            Members = pg:get_members(Group),
            Member = lists:nth(1 + Seq rem length(Members), Members),
            done = gen_server:call(Member, work, 60000),
            counters:add(Done, 1, 1),
            call_loop(Group, Seq + 1, Done, Stop);
        _ ->
            ok
    end.

latency(Group, N) ->
    [Known | _] = pg:get_members(Group),
    Direct = fun(_) -> pong = gen_server:call(Known, ping) end,
    ViaGroup = fun(I) ->
        Members = pg:get_members(Group),
        pong = gen_server:call(lists:nth(1 + I rem length(Members), Members), ping)
    end,
    LookupOnly = fun(I) ->
        Members = pg:get_members(Group),
        is_pid(lists:nth(1 + I rem length(Members), Members)) orelse error(not_a_pid)
    end,
    _ = batch(Direct, 500),
    _ = batch(ViaGroup, 500),
    Rounds = [{batch(Direct, N), batch(ViaGroup, N)} || _ <- lists:seq(1, 7)],
    Lookup = lists:min([batch(LookupOnly, 100000) || _ <- lists:seq(1, 5)]),
    io_lib:format("{\"direct_us\": ~w, \"group_us\": ~w, \"lookup_us\": ~w}",
                  [[D || {D, _} <- Rounds], [G || {_, G} <- Rounds], Lookup]).

batch(F, N) ->
    T0 = erlang:monotonic_time(nanosecond),
    lists:foreach(F, lists:seq(1, N)),
    (erlang:monotonic_time(nanosecond) - T0) / N / 1000.
"""


def spin(iterations: int) -> int:
    """The handler's work: pure-Python integer arithmetic, holding the GIL throughout (on
    small ints, so that each iteration costs the same)."""
    x = 0
    for i in range(iterations):
        x = (x * 33 + i) & 0xFFFFF
    return x


def calibrate(work_ms: float) -> tuple[int, float]:
    """The iterations of `spin` that take `work_ms` here, and what they took (median)."""
    n = 10_000
    while True:
        started = time.perf_counter()
        spin(n)
        if time.perf_counter() - started > 0.05:
            break
        n *= 2
    # The fastest of a few runs: what the work costs when this process has a core to itself.
    took = min(_timed(spin, n) for _ in range(5))
    iterations = max(1, int(n * work_ms / 1000 / took))
    samples = []
    for _ in range(15):
        started = time.perf_counter()
        spin(iterations)
        samples.append((time.perf_counter() - started) * 1000)
    return iterations, statistics.median(samples)


def _timed(fn: Any, arg: int) -> float:
    started = time.perf_counter()
    fn(arg)
    return time.perf_counter() - started


class Spin(GenServer):
    """`work`: `spin(iterations)` on the server's thread, then `done`; `ping`: `pong`."""

    def __init__(self, iterations: int) -> None:
        super().__init__()
        self.iterations = iterations

    def handle_call(self, request: Any, from_: Any) -> Any:
        if request == Atom("ping"):
            return Atom("pong")
        spin(self.iterations)
        return Atom("done")


class ThreadPerRequest(GenServer):
    """The same work, each request on a thread of its own (one process: the GIL decides)."""

    def __init__(self, iterations: int) -> None:
        super().__init__()
        self.iterations = iterations

    def handle_call(self, request: Any, from_: Any) -> Any:
        if request == Atom("ping"):
            return Atom("pong")

        def work() -> None:
            spin(self.iterations)
            self.reply(from_, Atom("done"))

        threading.Thread(target=work, daemon=True).start()
        return GenServer.NOREPLY


class BenchError(RuntimeError):
    pass


class Driver:
    """The `erl` node that makes the calls, fed one command per line."""

    def __init__(self, cookie: str, tag: str, env: dict[str, str]) -> None:
        self.beams = tempfile.mkdtemp(prefix="erlnode-pool-bench-")
        source = Path(self.beams) / "pool_bench.erl"
        source.write_text(DRIVER)
        subprocess.run(["erlc", "-o", self.beams, str(source)], check=True, env=env)
        self.proc = subprocess.Popen(
            ["erl", "-sname", f"pooldrv_{tag}", "-setcookie", cookie, "-noshell",
             "-pa", self.beams, "-eval", "pool_bench:serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.node = str(self._result(60)["node"])

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _result(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchError(f"no answer from the driver:\n{self.log()}") from None
            if line is None:
                raise BenchError(f"the driver exited:\n{self.log()}")
            if line.startswith(MARK):
                return json.loads(line[len(MARK) :])  # type: ignore[no-any-return]
            self.output.append(line)

    def log(self) -> str:
        return "\n".join(self.output[-40:])

    def ask(self, command: str, timeout: float = 120) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + ".\n")
        self.proc.stdin.flush()
        return self._result(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.beams, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_epmd(env: dict[str, str]) -> subprocess.Popen[bytes]:
    port = free_port()
    env["ERL_EPMD_PORT"] = str(port)
    os.environ["ERL_EPMD_PORT"] = str(port)  # the workers' nodes register there too
    proc = subprocess.Popen(
        ["epmd", "-port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"epmd did not start on port {port}") from None
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-ms", type=float, default=3.0, help="work per request (ms)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per figure")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up per figure (s)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (≥ 1)")
    parser.add_argument("--callers", type=int, default=None, help="default: 2 × cores")
    parser.add_argument("--calls", type=int, default=2000, help="calls per latency batch")
    parser.add_argument("--write", action="store_true", help="put the table into BENCHMARKS.md")
    parser.add_argument("--note", default="", help="a sentence on how it was run, for the report")
    args = parser.parse_args()

    started = time.monotonic()
    args.load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    callers = args.callers or 2 * cores
    iterations, work_ms = calibrate(args.work_ms)
    print(f"work: spin({iterations}) takes {work_ms:.2f} ms here", flush=True)

    cookie = secrets.token_hex(12)
    tag = secrets.token_hex(3)
    env = dict(os.environ)
    env["ERL_FLAGS"] = f"{env.get('ERL_FLAGS', '')} -start_epmd false".strip()
    epmd = start_epmd(env)
    driver: Driver | None = None
    pools: list[erlnode.WorkerPool] = []
    try:
        driver = Driver(cookie, tag, env)
        configs = [
            ("pool, 1 worker", Spin, 1, "bench_pool_1"),
            (f"pool, {cores} workers (one per core)", Spin, cores, "bench_pool_n"),
            ("one process, a thread per request", ThreadPerRequest, 1, "bench_threads"),
        ]
        for label, server, size, group in configs:
            pool = erlnode.WorkerPool(
                server,
                size,
                group=Atom(group),
                cookie=cookie,
                connect=[driver.node],
                name=f"{group}_{tag}_",
                kwargs={"iterations": iterations},
            )
            pools.append(pool)
            if driver.ask(f"{{wait_members, {group}, {size}}}")["members"] != size:
                raise BenchError(f"{label}: the driver does not see {size} members")
        results: dict[str, list[float]] = {label: [] for label, *_ in configs}
        for r in range(args.rounds):
            for label, _, _, group in configs:
                got = driver.ask(
                    f"{{throughput, {group}, {callers}, {int(args.warmup * 1000)},"
                    f" {int(args.seconds * 1000)}}}"
                )
                results[label].append(got["calls_per_s"])
                print(f"round {r + 1}: {label}: {got['calls_per_s']:.1f} calls/s", flush=True)
        latency = driver.ask(f"{{latency, bench_pool_1, {args.calls}}}")
        print(f"latency: {latency}", flush=True)
    finally:
        for pool in pools:
            pool.close()
        if driver is not None:
            driver.close()
        epmd.terminate()
        epmd.wait(10)

    block = render(results, latency, configs, cores, callers, work_ms, args)
    print(block)
    if args.write:
        write_block(BENCHMARKS, block, BEGIN, END, HEADING, AFTER)
        print(f"written to {BENCHMARKS}")
    print(f"took {time.monotonic() - started:.0f} s")


def render(
    results: dict[str, list[float]],
    latency: dict[str, Any],
    configs: list[Any],
    cores: int,
    callers: int,
    work_ms: float,
    args: argparse.Namespace,
) -> str:
    labels = [label for label, *_ in configs]
    medians = {label: statistics.median(results[label]) for label in labels}
    one = medians[labels[0]]
    rows = [
        f"| {label} | {medians[label]:,.1f} | {medians[label] / one:.2f}× |"
        f" {', '.join(f'{x:,.0f}' for x in results[label])} |"
        for label in labels
    ]
    scaling = medians[labels[1]] / one
    target = 0.9 * cores
    direct = statistics.median(latency["direct_us"])
    group = statistics.median(latency["group_us"])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join([python_command(), "benches/pool.py", *sys.argv[1:]])
    lines = [
        "",
        f"A handler doing {work_ms:.2f} ms of pure-Python work per request (the ceiling of one"
        f" core: {1000 / work_ms:,.0f} calls/s), called from an `erl` node by {callers}"
        " concurrent callers, each picking a member of the group in turn (`pg:get_members/1`)"
        f" and making a `gen_server:call`. Calls per second over {args.seconds:g} s after"
        f" {args.warmup:g} s of warm-up; median of {args.rounds} interleaved rounds.",
        "",
        "| configuration | calls/s | × 1 worker | rounds |",
        "|---|---|---|---|",
        *rows,
        "",
        f"The pool with one worker per core reaches {scaling:.2f}× the 1-worker figure; the"
        f" target is 0.9 × {cores} cores = {target:.1f}×"
        f" ({'met' if scaling >= target else 'NOT met'}).",
        "",
        "Latency of a call to a trivial handler (`ping`, 1-worker pool), sequential, median of"
        f" 7 interleaved batches of {args.calls:,}: `gen_server:call` to a pid known in"
        f" advance {direct:.1f} µs; `pg:get_members` + pick + `gen_server:call` {group:.1f} µs"
        f" ({group - direct:+.1f} µs). The lookup alone"
        f" (`pg:get_members` + pick, no call; fastest of 5 loops of 100,000) costs"
        f" {latency['lookup_us']:.2f} µs.",
        "",
        f"Machine: {machine_line()}. Load average (1 min) at the start:"
        f" {args.load:.1f}.{' ' + args.note if args.note else ''} Date: {date}."
        f" Command: `{command}`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
