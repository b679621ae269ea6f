"""`erlnode.WorkerPool` against real erl: Erlang finds the workers through `pg`, calls them, and
the pool restarts the ones that crash or are killed. And the examples/workers demo, run whole.

The servers below are defined at the top level: the `spawn` start method pickles them by
reference, and the workers import this module to find them.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from erl import Erl, random_name, wait_until

import erlnode
from erlnode import Atom, GenServer, Pid, WorkerPool
from erlnode._pool import restart_delay_after

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "workers"
GROUP = Atom("erlnode_pool")


class Square(GenServer):
    """Answers `{square, X}` with `{X * X, OsPid}`; `crash` crashes it."""

    def handle_call(self, request: Any, from_: Any) -> Any:
        if request == Atom("crash"):
            raise RuntimeError("asked to crash")
        return (request[1] * request[1], os.getpid())


class RefusesToStart(GenServer):
    def init(self) -> None:
        raise ValueError("no, thanks")


def square(x: int) -> int:
    return x * x


def members(erl: Erl) -> list[Pid]:
    return sorted(erl.eval("pg:get_members(erlnode_pool)"))


@pytest.fixture
def pg_erl(erl: Erl) -> Erl:
    erl.eval("{ok, _} = pg:start(pg)")
    return erl


def test_restart_delay_backs_off() -> None:
    delays = [restart_delay_after(n, 0.1, 1.0) for n in range(1, 7)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_erlang_calls_the_workers_and_the_pool_restarts_them(pg_erl: Erl) -> None:
    erl = pg_erl
    prefix = random_name("w")
    with WorkerPool(
        Square, 2, group=GROUP, cookie=erl.cookie, connect=[erl.name], name=prefix
    ) as pool:
        assert pool.nodes == [f"{prefix}1", f"{prefix}2"]
        found = pool.members
        assert len(found) == 2 and sorted(p.node.split("@")[0] for p in found) == pool.nodes
        assert wait_until(lambda: members(erl) == sorted(found))
        # Each member is its own process: the calls land in two OS processes.
        answers = erl.eval(
            "[gen_server:call(P, {square, 7}) || P <- lists:sort(pg:get_members(erlnode_pool))]"
        )
        assert [a[0] for a in answers] == [49, 49]
        os_pids = {w.os_pid for w in pool.workers()}
        assert {a[1] for a in answers} == os_pids and os.getpid() not in os_pids

        # kill -9 of a worker: it leaves the group, is started again and joins again.
        first = pool.workers()[0]
        assert first.os_pid is not None and first.member is not None
        os.kill(first.os_pid, signal.SIGKILL)
        assert wait_until(lambda: first.member not in members(erl), timeout=10)
        assert wait_until(lambda: pool.restarts == 1, timeout=10)
        assert pool.wait_ready(timeout=30)
        again = pool.workers()[0]
        assert again.node == first.node and again.restarts == 1
        assert again.os_pid != first.os_pid and again.member != first.member
        assert wait_until(lambda: members(erl) == sorted(pool.members), timeout=10)
        assert call(erl, again.member, "{square, 3}")[0] == 9

        # A server that crashes takes its worker down; the pool starts it again too.
        second = pool.workers()[1]
        crash = call(erl, second.member, "crash")
        assert crash[0] == Atom("EXIT")
        assert wait_until(lambda: pool.restarts == 2, timeout=10)
        assert pool.wait_ready(timeout=30)
        assert pool.workers()[1].member != second.member
        assert wait_until(lambda: members(erl) == sorted(pool.members), timeout=10)
        processes = [w.os_pid for w in pool.workers()]
    # close: every worker left the group and exited.
    assert pool.closed and pool.members == []
    assert wait_until(lambda: members(erl) == [], timeout=10)
    for os_pid in processes:
        assert os_pid is not None
        assert wait_until(lambda p=os_pid: not _alive(p), timeout=5)
    out = erl.output()
    assert "CRASH" not in out and "badarg" not in out, out


def call(erl: Erl, pid: Pid | None, request: str) -> Any:
    """`catch gen_server:call(Pid, Request)` on `erl`."""
    assert pid is not None
    erl.bind("CallPid", erlnode.encode(pid))
    return erl.eval(f"catch gen_server:call(binary_to_term(CallPid), {request})", timeout=10)


def _alive(os_pid: int) -> bool:
    try:
        os.kill(os_pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    try:
        with open(f"/proc/{os_pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_exposed_functions_with_fork(pg_erl: Erl) -> None:
    erl = pg_erl
    with WorkerPool(
        {"square": square},
        2,
        module="erlnode_pool_fns",
        group=GROUP,
        cookie=erl.cookie,
        connect=[erl.name],
        name=random_name("f"),
        start_method="fork",
    ) as pool:
        assert wait_until(lambda: members(erl) == sorted(pool.members))
        # The member stands for its node: Erlang calls the functions there.
        answers = erl.eval(
            "[{erpc:call(node(M), erlnode_pool_fns, square, [12])}"
            " || M <- pg:get_members(erlnode_pool)]"
        )
        assert answers == [(144,), (144,)]


def test_a_worker_that_cannot_start_fails_the_pool(erl: Erl) -> None:
    before = set(multiprocessing.active_children())
    with pytest.raises(RuntimeError, match=r"worker \d \(.*\) failed: ValueError: no, thanks"):
        WorkerPool(RefusesToStart, 2, group=GROUP, cookie=erl.cookie, name=random_name("r"))
    assert set(multiprocessing.active_children()) <= before


def test_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="module="):
        WorkerPool({"square": square}, 1, group=GROUP)
    with pytest.raises(TypeError, match="GenServer"):
        WorkerPool(int, 1, group=GROUP)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start_method"):
        WorkerPool(Square, 1, group=GROUP, start_method="thread")
    with pytest.raises(ValueError, match="size"):
        WorkerPool(Square, 0, group=GROUP)
    with pytest.raises(TypeError, match="hidden"):
        WorkerPool(Square, 1, group=GROUP, node_options={"hidden": True})


def test_workers_stop_when_the_parent_is_killed(pg_erl: Erl) -> None:
    # A parent killed with SIGKILL runs no cleanup: the workers notice on their own (their
    # pipe to it closes), leave the group and exit. With forkserver, whose server outlives
    # nothing either.
    erl = pg_erl
    code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from erlnode import Atom, WorkerPool
        from test_pool import Square
        if __name__ == "__main__":
            pool = WorkerPool(Square, 2, group=Atom("erlnode_pool"), cookie={erl.cookie!r},
                              connect=[{erl.name!r}], name={random_name("p")!r},
                              start_method="forkserver")
            print(" ".join(str(w.os_pid) for w in pool.workers()), flush=True)
            time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line, "the parent did not start its pool"
        workers = [int(p) for p in line.split()]
        assert wait_until(lambda: len(members(erl)) == 2, timeout=10)
        parent.kill()
        parent.wait(10)
        assert wait_until(lambda: members(erl) == [], timeout=10)
        for os_pid in workers:
            assert wait_until(lambda p=os_pid: not _alive(p), timeout=10)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)


def test_the_workers_example(erl: Erl) -> None:
    # examples/workers/demo.py runs the whole example: the Erlang caller (caller.erl) spreads
    # calls over the pool (primes.py, a WorkerPool in a process of its own) via pg; a worker
    # is killed mid-run and replaced; every request gets its answer.
    del erl  # (only for the private EPMD and the erl check)
    spec = importlib.util.spec_from_file_location("workers_demo", EXAMPLE / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    output: list[str] = []
    scenario = demo.Scenario(workers=2, requests=60, show=output.append)
    try:
        started = time.monotonic()
        scenario.run()
    except demo.DemoFailure as e:
        pytest.fail(f"{e}\n" + "\n".join(output))
    finally:
        scenario.close()
    assert scenario.summary["answered"] == 60 and scenario.summary["errors"] == 0
    assert any("restarted" in line for line in output), output
    assert time.monotonic() - started < 60
