"""OTP process groups (`pg`) across Python and Erlang (docs/pg.md), against real erl.

The interop tests run against every OTP release of the matrix (tests/erl.py `OTP_RELEASES`):
OTP 25 and 27 speak pg's first protocol, OTP 29 its data_publisher successor, which falls
back to the first for a peer that announces it (as a Python node does).
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
from erl import OTP_RELEASES, Erl, Otp, random_name, wait_until

import erlnode
from erlnode import Atom, GenServer, Pid

#: Runs the test once per OTP release (the `otp` fixture the `erl` fixture starts).
every_otp = pytest.mark.parametrize("otp", OTP_RELEASES, ids=str)

GROUP = Atom("erlnode_workers")


def assert_quiet(erl: Erl) -> None:
    """Erlang's pg (and everything else) logged no error or crash."""
    out = erl.output()
    for word in ("ERROR", "CRASH", "badarg"):
        assert word not in out, out


def members(erl: Erl, group: str = "erlnode_workers", scope: str = "pg") -> list[Pid]:
    return list(erl.eval(f"pg:get_members({scope}, {group})"))


@pytest.fixture
def visible(erl: Erl) -> Iterator[erlnode.Node]:
    n = erlnode.Node(random_name("py"), cookie=erl.cookie, hidden=False)
    try:
        yield n
    finally:
        n.close()


class Echo(GenServer):
    def handle_call(self, request: Any, from_: Any) -> Any:
        return (Atom("echo"), Atom(self.node.name), request)


@every_otp
def test_erlang_finds_a_python_member_and_calls_it(erl: Erl, visible: erlnode.Node) -> None:
    erl.eval("{ok, _} = pg:start(pg)")
    # Joined before any connection: Erlang's scope asks for our members on nodeup.
    server = Echo.start(visible)
    server.mailbox.join_group(GROUP)
    assert visible.group_members(GROUP) == [server.pid]
    assert erl.eval(f"net_adm:ping('{visible.name}')") == Atom("pong")
    assert wait_until(lambda: members(erl) == [server.pid], timeout=10)
    reply = erl.eval("[P] = pg:get_members(erlnode_workers), gen_server:call(P, {work, 42})")
    assert reply == (Atom("echo"), Atom(visible.name), (Atom("work"), 42))
    # Joined while connected: the join is broadcast; Erlang's local view keeps out ours.
    second = Echo.start(visible)
    second.mailbox.join_group(GROUP)
    assert wait_until(lambda: sorted(members(erl)) == sorted([server.pid, second.pid]))
    assert erl.eval("pg:get_local_members(erlnode_workers)") == []
    assert Atom("erlnode_workers") in erl.eval("pg:which_groups()")
    assert second.mailbox.leave_group(GROUP) is True
    assert second.mailbox.leave_group(GROUP) is False  # not_joined
    assert wait_until(lambda: members(erl) == [server.pid])
    # A mailbox that closes leaves every group, on every node.
    server.stop()
    assert wait_until(lambda: members(erl) == [])
    assert visible.group_members(GROUP) == []
    assert_quiet(erl)


@every_otp
def test_python_sees_erlang_members_join_and_leave(erl: Erl, visible: erlnode.Node) -> None:
    erl.eval("{ok, _} = pg:start(pg)")
    erl.eval("P1 = spawn(fun() -> receive stop -> ok end end), ok = pg:join(erlnode_workers, P1)")
    p1 = erl.eval("P1")
    # Python connects: our scope asks the Erlang scope (discover) and gets its sync.
    assert visible.ping(erl.name)
    assert wait_until(lambda: visible.group_members(GROUP) == [p1])
    assert visible.which_groups() == [GROUP]
    assert visible.local_group_members(GROUP) == []

    watcher = visible.mailbox()
    ref, now = visible.monitor_group(GROUP, watcher)
    calls: queue.Queue[tuple[Any, ...]] = queue.Queue()
    ref2, now2 = visible.monitor_group(GROUP, lambda *args: calls.put(args))
    assert now == now2 == [p1]

    erl.eval("P2 = spawn(fun() -> receive stop -> ok end end), ok = pg:join(erlnode_workers, P2)")
    p2 = erl.eval("P2")
    assert watcher.receive(timeout=10) == (ref, Atom("join"), GROUP, [p2])
    assert calls.get(timeout=10) == (Atom("join"), GROUP, [p2])
    assert sorted(visible.group_members(GROUP)) == sorted([p1, p2])

    erl.eval("ok = pg:leave(erlnode_workers, P2)")
    assert watcher.receive(timeout=10) == (ref, Atom("leave"), GROUP, [p2])
    assert calls.get(timeout=10) == (Atom("leave"), GROUP, [p2])
    # An Erlang member that dies leaves Python's view.
    erl.eval("P1 ! stop")
    assert watcher.receive(timeout=10) == (ref, Atom("leave"), GROUP, [p1])
    assert calls.get(timeout=10) == (Atom("leave"), GROUP, [p1])
    assert visible.group_members(GROUP) == []
    assert visible.which_groups() == []

    assert visible.demonitor_group(ref) is True
    assert visible.demonitor_group(ref) is False
    assert visible.demonitor_group(ref2) is True
    erl.eval("ok = pg:join(erlnode_workers, P2)")
    assert wait_until(lambda: visible.group_members(GROUP) == [p2])
    with pytest.raises(TimeoutError):
        watcher.receive(timeout=0.3)
    assert calls.empty()
    assert_quiet(erl)


def _python_member(erl: Erl, ticktime: float) -> tuple[subprocess.Popen[str], Pid]:
    """Another Python process: a visible node in `erlnode_workers`, connected to `erl`."""
    code = textwrap.dedent(
        f"""
        import sys, time
        import erlnode
        node = erlnode.Node({random_name("victim")!r}, cookie={erl.cookie!r}, hidden=False,
                            ticktime={ticktime})
        mbox = node.mailbox()
        mbox.join_group(erlnode.Atom("erlnode_workers"))
        assert node.ping({erl.name!r})
        print(repr((mbox.pid.node, mbox.pid.id, mbox.pid.serial, mbox.pid.creation)), flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "the member process did not start"
    node, id_, serial, creation = eval(line)  # noqa: S307 - our own child's repr of ints/str
    return proc, Pid(node, id_, serial, creation)


TICKTIME = 2


@every_otp
def test_kill_9_of_the_python_process_removes_its_members(otp: Otp) -> None:
    with Erl(otp=otp, extra_args=["-kernel", "net_ticktime", str(TICKTIME)]) as erl:
        erl.eval("{ok, _} = pg:start(pg)")
        proc, pid = _python_member(erl, TICKTIME)
        try:
            assert wait_until(lambda: members(erl) == [pid], timeout=10)
            killed = time.monotonic()
            proc.send_signal(signal.SIGKILL)
            assert wait_until(lambda: members(erl) == [], timeout=TICKTIME * 2, interval=0.02)
            assert time.monotonic() - killed < TICKTIME
        finally:
            proc.kill()
            proc.wait(10)
        assert_quiet(erl)


def test_a_frozen_python_process_leaves_within_the_tick_time() -> None:
    # SIGSTOP keeps the socket open: only the tick time tells Erlang the node is gone.
    with Erl(extra_args=["-kernel", "net_ticktime", str(TICKTIME)]) as erl:
        erl.eval("{ok, _} = pg:start(pg)")
        proc, pid = _python_member(erl, TICKTIME)
        try:
            assert wait_until(lambda: members(erl) == [pid], timeout=10)
            stopped = time.monotonic()
            proc.send_signal(signal.SIGSTOP)
            assert wait_until(lambda: members(erl) == [], timeout=TICKTIME * 3, interval=0.05)
            # net_kernel declares a silent node down between 0.75 and 1.25 tick times
            # (it checks every quarter); a margin for this shared machine on top.
            assert time.monotonic() - stopped < TICKTIME * 1.25 + 1.0
        finally:
            proc.kill()
            proc.wait(10)


@every_otp
def test_scopes_other_than_the_default(erl: Erl, visible: erlnode.Node) -> None:
    assert visible.ping(erl.name)
    # The Erlang scope starts after the connection: its init asks every node (discover).
    erl.eval("{ok, _} = pg:start(erlnode_tools)")
    mbox = visible.mailbox()
    mbox.join_group(GROUP, scope="erlnode_tools")
    assert wait_until(lambda: members(erl, scope="erlnode_tools") == [mbox.pid])
    erl.eval(
        "T = spawn(fun() -> receive stop -> ok end end),"
        " ok = pg:join(erlnode_tools, erlnode_workers, T)"
    )
    t = erl.eval("T")
    assert wait_until(
        lambda: sorted(visible.group_members(GROUP, scope="erlnode_tools")) == sorted([t, mbox.pid])
    )
    # Scopes are separate: the default one (not even running on erl) knows nothing of it.
    assert visible.group_members(GROUP) == []
    # A Python scope started after the connection (first use) asks the Erlang one too.
    erl.eval("{ok, _} = pg:start(erlnode_late), ok = pg:join(erlnode_late, late, T)")
    assert wait_until(lambda: visible.group_members(Atom("late"), scope="erlnode_late") == [t])
    mbox.close()
    assert wait_until(lambda: members(erl, scope="erlnode_tools") == [t])
    assert_quiet(erl)


def test_pg_scopes_start_with_the_node(erl: Erl) -> None:
    with erlnode.Node(
        random_name("py"), cookie=erl.cookie, hidden=False, pg_scopes=["erlnode_a", "pg"]
    ) as node:
        erl.eval("{ok, _} = pg:start(erlnode_a), ok = pg:join(erlnode_a, g, self())")
        shell = erl.eval("self()")
        assert node.ping(erl.name)
        assert wait_until(lambda: node.group_members(Atom("g"), scope="erlnode_a") == [shell])


def test_disconnect_and_close_leave_on_both_sides(erl: Erl, visible: erlnode.Node) -> None:
    erl.eval("{ok, _} = pg:start(pg)")
    erl.eval("E = spawn(fun() -> receive stop -> ok end end), ok = pg:join(erlnode_workers, E)")
    e = erl.eval("E")
    mbox = visible.mailbox()
    mbox.join_group(GROUP)
    mbox.join_group(Atom("other"))
    assert visible.ping(erl.name)
    assert wait_until(lambda: sorted(members(erl)) == sorted([e, mbox.pid]))
    assert sorted(visible.group_members(GROUP)) == sorted([e, mbox.pid])
    # The connection goes: each side forgets the other's members at once.
    assert visible.disconnect(erl.name)
    assert wait_until(lambda: visible.group_members(GROUP) == [mbox.pid])
    assert wait_until(lambda: members(erl) == [e])
    assert members(erl, "other") == []
    # And learns them again when it comes back.
    assert visible.ping(erl.name)
    assert wait_until(lambda: sorted(members(erl)) == sorted([e, mbox.pid]))
    assert wait_until(lambda: members(erl, "other") == [mbox.pid])
    assert wait_until(lambda: sorted(visible.group_members(GROUP)) == sorted([e, mbox.pid]))
    # The node closes: all its members leave.
    visible.close()
    assert wait_until(lambda: members(erl) == [e] and members(erl, "other") == [])
    assert_quiet(erl)


def test_a_hidden_node_cannot_join() -> None:
    with erlnode.Node(random_name("py"), cookie="c") as hidden:
        mbox = hidden.mailbox()
        with pytest.raises(RuntimeError, match="pg sees only visible nodes.*hidden=False"):
            mbox.join_group(GROUP)
        with pytest.raises(RuntimeError, match="pg sees only visible nodes"):
            hidden.group_members(GROUP)
        with pytest.raises(RuntimeError, match="pg sees only visible nodes"):
            hidden.monitor_group(GROUP, mbox)
        assert hidden.demonitor_group(hidden.make_ref()) is False


def test_between_two_python_nodes() -> None:
    cookie = "pgcookie"
    with (
        erlnode.Node(random_name("pya"), cookie=cookie, hidden=False) as a,
        erlnode.Node(random_name("pyb"), cookie=cookie, hidden=False) as b,
    ):
        ma = a.mailbox()
        ma.join_group(GROUP)
        ma.join_group(GROUP)  # twice: listed twice, as in pg
        group = ("a", [1, 2], {"k": b"v"})  # any term names a group
        ma.join_group(group)
        assert a.ping(b.name)
        mb = b.mailbox()
        watcher = b.mailbox()
        ref, now = b.monitor_group(GROUP, watcher)
        mb.join_group(GROUP)
        assert wait_until(lambda: b.group_members(GROUP).count(ma.pid) == 2)
        assert wait_until(lambda: sorted(a.group_members(GROUP)) == sorted([ma.pid] * 2 + [mb.pid]))
        assert b.group_members(group) == [ma.pid]
        assert b.local_group_members(GROUP) == [mb.pid]
        # The atom and the string of the same name are different groups.
        assert b.group_members("erlnode_workers") == []
        assert ma.leave_group(GROUP)
        assert wait_until(lambda: b.group_members(GROUP).count(ma.pid) == 1)
        ma.close()
        assert wait_until(lambda: b.group_members(GROUP) == [mb.pid])
        assert b.which_groups() == [GROUP]
        seen = []
        while True:
            try:
                seen.append(watcher.receive(timeout=0.5))
            except TimeoutError:
                break
        events = [(str(event), pids) for (r, event, g, pids) in seen if r == ref and g == GROUP]
        assert ("leave", [ma.pid]) in events
        assert events[-1] == ("leave", [ma.pid])
        # A closed watching mailbox drops its subscription.
        watcher.close()
        mb.leave_group(GROUP)


def test_closed_mailbox_cannot_join() -> None:
    with erlnode.Node(random_name("py"), cookie="c", hidden=False) as node:
        mbox = node.mailbox()
        mbox.close()
        with pytest.raises(erlnode.NodeClosedError):
            mbox.join_group(GROUP)
        assert node.group_members(GROUP) == []
