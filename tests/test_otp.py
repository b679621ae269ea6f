"""OTP semantics across the boundary against a real erl: links, exits, monitors, node
monitoring, gen_server both ways; each test marked `every_otp` runs against every OTP release
of the matrix (OTP 25 on the host, 27 and the newest in Debian roots: tests/erl.py)."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from erl import OTP_RELEASES, Erl, random_name, wait_until

import erlnode
from erlnode import Atom

HOST = socket.gethostname().split(".")[0]
EXIT = Atom("EXIT")
DOWN = Atom("DOWN")

#: Runs the test once per OTP release (the `otp` fixture the `erl` fixture starts).
every_otp = pytest.mark.parametrize("otp", OTP_RELEASES, ids=str)


def bind_term(erl: Erl, var: str, term: Any) -> None:
    """Binds the Erlang variable `var` to `term`."""
    erl.bind(f"{var}Bin", erlnode.encode(term))
    erl.eval(f"{var} = binary_to_term({var}Bin)")


def start_supervisor(erl: Erl, var: str, worker: erlnode.Mailbox) -> None:
    """A supervisor-like Erlang process (traps exits) linked to `worker`; it forwards every
    message it gets to the repl process as `{var, Msg}`."""
    bind_term(erl, f"{var}Target", worker.pid)
    tag = var.lower()
    erl.eval(
        f"{var}Repl = self(), "
        f"{var} = spawn(fun() -> process_flag(trap_exit, true), link({var}Target), "
        f"{var}Target ! {{{tag}, linked}}, "
        f"(fun Loop() -> receive M -> {var}Repl ! {{{tag}, M}}, Loop() end end)() end)"
    )
    # The message follows the LINK on the same connection: once here, the link is known.
    assert worker.receive(timeout=10) == (Atom(tag), Atom("linked"))


_fresh = itertools.count()


def next_from(erl: Erl, var: str, timeout_ms: int = 10000) -> Any:
    """The next message the supervisor `var` forwarded."""
    m = f"Msg{next(_fresh)}"  # bindings persist in the repl: a fresh variable each time
    return erl.eval(f"receive {{{var.lower()}, {m}}} -> {m} after {timeout_ms} -> no_message end")


def wait_signals(erl: Erl, var: str, links: int = 0, monitors: int = 0) -> None:
    """Waits until the Erlang process `var` has the links/monitors Python set up: signals
    are asynchronous, and the test must not kill the process before they arrive."""

    def arrived() -> bool:
        info = erl.eval(f"process_info({var}, [links, monitored_by])")
        return len(info[0][1]) >= links and len(info[1][1]) >= monitors

    assert wait_until(arrived)


def spawn_erlang(erl: Erl, var: str, body: str = "receive stop -> ok end") -> erlnode.Pid:
    pid = erl.eval(f"{var} = spawn(fun() -> {body} end)")
    assert isinstance(pid, erlnode.Pid)
    return pid


# -- exit signals from Python to Erlang -------------------------------------------------------


@every_otp
def test_erlang_supervisor_sees_mailbox_close(erl: Erl, node: erlnode.Node) -> None:
    worker = node.mailbox()
    start_supervisor(erl, "Sup", worker)
    worker.close(Atom("shutdown"))
    assert next_from(erl, "Sup") == (EXIT, worker.pid, Atom("shutdown"))

    plain = node.mailbox()
    start_supervisor(erl, "Sup2", plain)
    plain.close()
    assert next_from(erl, "Sup2") == (EXIT, plain.pid, Atom("normal"))


@every_otp
def test_erlang_supervisor_sees_python_node_close(erl: Erl) -> None:
    py = erlnode.Node(random_name("py"), cookie=erl.cookie)
    try:
        worker = py.mailbox()
        start_supervisor(erl, "Sup", worker)
    finally:
        py.close()
    tag, pid, reason = next_from(erl, "Sup")
    assert (tag, pid) == (EXIT, worker.pid)
    assert reason in (Atom("noconnection"), Atom("normal"), Atom("shutdown")), reason


@every_otp
def test_erlang_supervisor_sees_python_process_killed(erl: Erl, tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time, erlnode
            node = erlnode.Node({random_name("pysub")!r}, cookie={erl.cookie!r})
            mbox = node.mailbox("worker")
            print(node.name, flush=True)
            sup = mbox.receive(timeout=30)
            mbox.link(sup)
            mbox.send(sup, erlnode.Atom("linked"))
            time.sleep(60)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        sub_name = proc.stdout.readline().strip()
        assert sub_name
        erl.eval(
            "Repl = self(), "
            "Sup = spawn(fun() -> process_flag(trap_exit, true), "
            f"{{worker, '{sub_name}'}} ! self(), "
            "(fun Loop() -> receive M -> Repl ! {sup, M}, Loop() end end)() end)"
        )
        assert next_from(erl, "sup") == Atom("linked")
        os.kill(proc.pid, signal.SIGKILL)
        tag, pid, reason = next_from(erl, "sup")
        assert (tag, reason) == (EXIT, Atom("noconnection"))
        assert isinstance(pid, erlnode.Pid) and pid.node == sub_name
    finally:
        proc.kill()
        proc.wait(timeout=10)


@every_otp
def test_disconnect_gives_noconnection_both_ways(erl: Erl, node: erlnode.Node) -> None:
    worker = node.mailbox()
    start_supervisor(erl, "Sup", worker)
    sup = erl.eval("Sup")
    ref = worker.monitor(sup)
    assert erl.eval(f"erlang:disconnect_node('{node.name}')") is True
    assert next_from(erl, "Sup") == (EXIT, worker.pid, Atom("noconnection"))
    got = {worker.receive(timeout=10)[0], worker.receive(timeout=10)[0]}
    assert got == {EXIT, DOWN}
    del ref


@every_otp
def test_mailbox_exit_kills_a_non_trapping_process(erl: Erl, node: erlnode.Node) -> None:
    mbox = node.mailbox()
    victim = spawn_erlang(erl, "Victim")
    mbox.exit(victim, Atom("normal"))  # `normal` does not kill
    time.sleep(0.3)
    assert erl.eval("is_process_alive(Victim)") is True
    mbox.exit(victim, Atom("boom"))
    assert wait_until(lambda: erl.eval("is_process_alive(Victim)") is False)


@every_otp
def test_linked_non_trapping_process_dies_with_mailbox(erl: Erl, node: erlnode.Node) -> None:
    mbox = node.mailbox()
    pid = spawn_erlang(erl, "Peer")
    mbox.link(pid)
    wait_signals(erl, "Peer", links=1)
    erl.eval("MonRef = monitor(process, Peer)")
    mbox.close(Atom("crashed"))
    down = erl.eval("receive {'DOWN', MonRef, process, _, R} -> R after 5000 -> timeout end")
    assert down == Atom("crashed")


# -- exit signals and DOWN from Erlang to Python ----------------------------------------------


@every_otp
def test_python_sees_exit_and_down_when_erlang_process_dies(erl: Erl, node: erlnode.Node) -> None:
    mbox = node.mailbox()
    pid = spawn_erlang(erl, "P")
    mbox.link(pid)
    ref = mbox.monitor(pid)
    assert isinstance(ref, erlnode.Reference)
    wait_signals(erl, "P", links=1, monitors=1)
    erl.eval("exit(P, kaboom)")
    messages = [mbox.receive(timeout=10), mbox.receive(timeout=10)]
    assert (EXIT, pid, Atom("kaboom")) in messages
    assert (DOWN, ref, Atom("process"), pid, Atom("kaboom")) in messages


@every_otp
def test_links_and_monitors_set_up_from_erlang(erl: Erl, node: erlnode.Node) -> None:
    mbox = node.mailbox()
    bind_term(erl, "Py", mbox.pid)
    erl.eval("Linker = spawn(fun() -> link(Py), receive stop -> exit(from_erlang) end end)")
    linker = erl.eval("Linker")
    wait_signals(erl, "Linker", links=1)
    erl.eval("Linker ! stop")
    assert mbox.receive(timeout=10) == (EXIT, linker, Atom("from_erlang"))
    # An Erlang monitor on the mailbox fires when it closes. Signals from one process arrive
    # in order: once the message is here, so is the monitor.
    erl.eval("Ref = monitor(process, Py), Py ! monitoring")
    assert mbox.receive(timeout=10) == Atom("monitoring")
    mbox.close(Atom("bye"))
    assert erl.eval("receive {'DOWN', Ref, process, _, R} -> R after 5000 -> timeout end") == (
        Atom("bye")
    )


@every_otp
def test_python_sees_noconnection_when_erlang_node_is_killed(erl: Erl, node: erlnode.Node) -> None:
    mbox = node.mailbox()
    pid = spawn_erlang(erl, "P")
    mbox.link(pid)
    ref = mbox.monitor(pid)
    wait_signals(erl, "P", links=1, monitors=1)
    watch = node.mailbox()
    node.monitor_node(erl.name, watch)
    os.kill(int(erl.eval("list_to_integer(os:getpid())")), signal.SIGKILL)
    messages = [mbox.receive(timeout=10), mbox.receive(timeout=10)]
    assert (EXIT, pid, Atom("noconnection")) in messages
    assert (DOWN, ref, Atom("process"), pid, Atom("noconnection")) in messages
    assert watch.receive(timeout=10) == (Atom("nodedown"), Atom(erl.name))


@every_otp
def test_a_peer_killed_mid_stream_is_seen_by_a_receiver_reading_the_socket(
    erl: Erl, node: erlnode.Node
) -> None:
    # A steady stream keeps the receiver spinning, and then it reads the socket itself
    # rather than waiting for the network thread: the connection's end must still be seen,
    # after every message that arrived before it, in order.
    mbox = node.mailbox("stream")
    pid = spawn_erlang(erl, "P")
    mbox.link(pid)
    wait_signals(erl, "P", links=1)
    watch = node.mailbox()
    node.monitor_node(erl.name, watch)
    erl.eval(
        f"""spawn(fun() ->
                Loop = fun L(I) ->
                    {{stream, '{node.name}'}} ! I,
                    _ = lists:sum(lists:seq(1, 200)),
                    L(I + 1)
                end,
                Loop(0)
            end)"""
    )
    assert [mbox.receive(timeout=10) for _ in range(5000)] == list(range(5000))
    os.kill(int(erl.eval("list_to_integer(os:getpid())")), signal.SIGKILL)
    expected = 5000
    while True:
        message = mbox.receive(timeout=10)
        if message != expected:
            break
        expected += 1
    assert message == (EXIT, pid, Atom("noconnection"))
    assert watch.receive(timeout=10) == (Atom("nodedown"), Atom(erl.name))


@every_otp
def test_monitor_registered_name(erl: Erl, node: erlnode.Node) -> None:
    mbox = node.mailbox()
    erl.eval("Named = spawn(fun() -> receive stop -> exit(done) end end), register(named, Named)")
    ref = mbox.monitor(("named", erl.name))
    wait_signals(erl, "Named", monitors=1)
    erl.eval("named ! stop")
    assert mbox.receive(timeout=10) == (
        DOWN,
        ref,
        Atom("process"),
        (Atom("named"), Atom(erl.name)),
        Atom("done"),
    )
    missing = mbox.monitor(("nobody_here", erl.name))
    tag, got_ref, _, target, reason = mbox.receive(timeout=10)
    assert (tag, got_ref, reason) == (DOWN, missing, Atom("noproc"))
    assert target == (Atom("nobody_here"), Atom(erl.name))


@every_otp
def test_demonitor_and_unlink_stop_the_signals(erl: Erl, node: erlnode.Node) -> None:
    mbox = node.mailbox()
    pid = spawn_erlang(erl, "P")
    mbox.link(pid)
    ref = mbox.monitor(pid)
    wait_signals(erl, "P", links=1, monitors=1)
    mbox.unlink(pid)
    mbox.demonitor(ref)
    assert wait_until(
        lambda: (
            erl.eval("process_info(P, [links, monitored_by])")
            == [(Atom("links"), []), (Atom("monitored_by"), [])]
        )
    )
    erl.eval("exit(P, kaboom)")
    with pytest.raises(TimeoutError):
        mbox.receive(timeout=1.0)
    # After unlink, closing the mailbox does not kill an Erlang process linked before.
    other = spawn_erlang(erl, "Q")
    mbox.link(other)
    wait_signals(erl, "Q", links=1)
    mbox.unlink(other)
    assert wait_until(lambda: erl.eval("process_info(Q, links)") == (Atom("links"), []))
    mbox.close(Atom("crash"))
    time.sleep(0.5)
    assert erl.eval("is_process_alive(Q)") is True
    erl.eval("Q ! stop")


# -- node monitoring ----------------------------------------------------------------------------


@every_otp
def test_monitor_node_mailbox_and_callback(erl: Erl, node: erlnode.Node) -> None:
    assert node.ping(erl.name)
    watch = node.mailbox()
    assert node.monitor_node(erl.name, watch) is watch
    events: list[tuple[str, str]] = []
    node.monitor_node(erl.name, lambda event, name: events.append((event, name)))
    everything = node.mailbox()
    node.monitor_nodes(everything)
    erl.stop()
    assert watch.receive(timeout=10) == (Atom("nodedown"), Atom(erl.name))
    assert everything.receive(timeout=10) == (Atom("nodedown"), Atom(erl.name))
    assert wait_until(lambda: events == [("nodedown", erl.name)])


def test_monitor_node_of_an_unreachable_node_fires_at_once(node: erlnode.Node) -> None:
    watch = node.mailbox()
    nobody = f"{random_name('nobody')}@{HOST}"
    node.monitor_node(nobody, watch)
    assert watch.receive(timeout=10) == (Atom("nodedown"), Atom(nobody))


@every_otp
def test_monitor_nodes_sees_nodeup(erl: Erl, node: erlnode.Node) -> None:
    events: list[tuple[str, str]] = []
    node.monitor_nodes(lambda event, name: events.append((event, name)))
    assert node.ping(erl.name)
    assert wait_until(lambda: ("nodeup", erl.name) in events)


@every_otp
def test_erlang_monitor_node_sees_python_node_go(erl: Erl) -> None:
    py = erlnode.Node(random_name("py"), cookie=erl.cookie)
    try:
        assert erl.eval(f"net_adm:ping('{py.name}')") == Atom("pong")
        erl.eval(f"monitor_node('{py.name}', true)")
    finally:
        py.close()
    assert erl.eval("receive {nodedown, N} -> N after 10000 -> timeout end") == Atom(py.name)


# -- gen_server: Python calling Erlang (tests/erlang/otp_echo.erl) ---------------------------


@every_otp
def test_python_calls_an_erlang_gen_server(erl: Erl, node: erlnode.Node) -> None:
    pid = erl.eval("{ok, Echo} = otp_echo:start(echo), Echo")
    assert node.call(("echo", erl.name), Atom("hi")) == (Atom("echo"), Atom("hi"))
    assert node.call(pid, [1, 2, 300]) == (Atom("echo"), [1, 2, 300])
    node.cast(("echo", erl.name), (Atom("store"), 1001))
    node.cast(pid, (Atom("store"), 1002))
    assert node.call(pid, Atom("get")) == [1001, 1002]

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        node.call(pid, (Atom("sleep"), 3000), timeout=0.3)
    assert time.monotonic() - started < 2

    with pytest.raises(erlnode.RemoteExit) as noproc:
        node.call(("nobody", erl.name), Atom("hi"))
    assert noproc.value.reason == Atom("noproc")

    with pytest.raises(erlnode.RemoteExit) as crashed:
        node.call(pid, Atom("crash"))
    assert crashed.value.reason == Atom("crashed")


# -- gen_server: Erlang calling Python ------------------------------------------------------


class Counter(erlnode.GenServer):
    def __init__(self, start: int = 0) -> None:
        self.count = start
        self.infos: list[Any] = []
        self.stopped_with: Any = None
        self.held: list[Any] = []

    def handle_call(self, request: Any, from_: Any) -> Any:
        if request == Atom("next"):
            self.count += 1
            return self.count
        if isinstance(request, tuple) and request[0] == Atom("sleep"):
            time.sleep(request[1] / 1000)
            return Atom("slept")
        if request == Atom("later"):
            # Answered from another thread: the handler returns NOREPLY.
            threading.Timer(0.1, self.reply, args=(from_, Atom("late_reply"))).start()
            return self.NOREPLY
        if request == Atom("infos"):
            return list(self.infos)
        raise ValueError(f"unknown request {request!r}")

    def handle_cast(self, request: Any) -> None:
        if isinstance(request, tuple) and request[0] == Atom("set"):
            self.count = request[1]

    def handle_info(self, message: Any) -> None:
        self.infos.append(message)

    def terminate(self, reason: Any) -> None:
        self.stopped_with = reason


@every_otp
def test_erlang_calls_a_python_gen_server(erl: Erl, node: erlnode.Node) -> None:
    server = Counter.start(node, 10, name="counter")
    assert server.name == "counter" and server.running
    dest = f"{{counter, '{node.name}'}}"
    assert erl.eval(f"gen_server:call({dest}, next)") == 11
    assert erl.eval(f"gen_server:call({dest}, next, 1000)") == 12
    assert erl.eval(f"gen_server:cast({dest}, {{set, 100}})") == Atom("ok")
    assert erl.eval(f"gen_server:call({dest}, next)") == 101
    assert erl.eval(f"gen_server:call({dest}, later)") == Atom("late_reply")
    erl.eval(f"{dest} ! plain_message")
    assert erl.eval(f"gen_server:call({dest}, infos)") == [Atom("plain_message")]
    # A call by pid, and from Python.
    bind_term(erl, "Server", server.pid)
    assert erl.eval("gen_server:call(Server, next)") == 102
    assert node.call("counter", Atom("next")) == 103
    assert server.call(Atom("next")) == 104
    # A timeout in the Erlang caller.
    timed_out = erl.eval(
        f"try gen_server:call({dest}, {{sleep, 1500}}, 200) catch exit:{{T, _}} -> T end"
    )
    assert timed_out == Atom("timeout")
    # An unknown name on the Python node: noproc at once.
    noproc = erl.eval(
        f"try gen_server:call({{nobody, '{node.name}'}}, x, 5000) catch exit:{{N, _}} -> N end"
    )
    assert noproc == Atom("noproc")
    # stop(): terminate runs, monitors see the reason.
    # The call goes after the monitor signal, over the same connection: once it is answered,
    # the monitor is set.
    erl.eval("SRef = monitor(process, Server), gen_server:call(Server, infos, 5000)")
    server.stop(Atom("shutdown"))
    assert not server.running
    assert server.stopped_with == Atom("shutdown")
    assert erl.eval("receive {'DOWN', SRef, process, _, R} -> R after 5000 -> timeout end") == (
        Atom("shutdown")
    )


@every_otp
def test_python_gen_server_crash_reaches_the_caller(erl: Erl, node: erlnode.Node) -> None:
    server = Counter.start(node, name="fragile")
    reason = erl.eval(
        f"try gen_server:call({{fragile, '{node.name}'}}, bad) catch exit:{{R, _}} -> R end"
    )
    assert reason[:2] == (Atom("python"), Atom("ValueError"))
    assert wait_until(lambda: not server.running)
    assert server.stopped_with == reason


def test_elixir_genserver_call(erl: Erl, node: erlnode.Node, tmp_path: Path) -> None:
    import shutil

    if shutil.which("elixir") is None:
        if os.environ.get("CI"):
            pytest.fail("elixir is not on PATH (and CI is set)")
        pytest.skip("elixir is not on PATH")
    Counter.start(node, 41, name="counter")
    script = tmp_path / "call.exs"
    script.write_text(
        f"IO.inspect(GenServer.call({{:counter, :'{node.name}'}}, :next))\n"
        f"IO.inspect(GenServer.call({{:counter, :'{node.name}'}}, :next))\n"
    )
    done = subprocess.run(
        ["elixir", "--sname", random_name("ex"), "--cookie", erl.cookie, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["42", "43"]
