"""Faults a node must survive: a peer killed with kill -9 or frozen, a peer restarted under
the same name, a network partition between two namespaces, closing while messages are in
flight, and connections coming and going for a while (no leak of descriptors, threads or
memory).

`ERLNODE_CHURN_SECONDS` sets how long connections come and go (15 s here; `make soak`: 60).
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from erl import Erl, random_name, wait_until
from netns import NamespaceOtp, NamespacePair, can_make_namespaces
from pyrepl import PyProcess

import erlnode
from erlnode import Atom

TICKTIME = 2.0
#: How late a tick timeout may be noticed on a busy 2-core machine, beyond the tick time.
SLACK = 1.5
CHURN_SECONDS = float(os.environ.get("ERLNODE_CHURN_SECONDS", "15"))


def _os_pid(erl: Erl) -> int:
    return int(erl.eval("list_to_integer(os:getpid())"))


def _links_of(erl: Erl, name: str) -> int:
    return int(erl.eval(f"length(element(2, process_info(whereis({name}), links)))"))


def _watch(node: erlnode.Node, erl: Erl) -> tuple[erlnode.Mailbox, erlnode.Mailbox]:
    """A mailbox monitoring `erl`'s node, and one linked to and monitoring its process
    `victim` (by pid and by name); returns them once Erlang has the link."""
    erl.eval("register(victim, spawn(fun() -> receive stop -> ok end end))")
    watcher, linked = node.mailbox(), node.mailbox()
    node.monitor_node(erl.name, watcher)
    victim = erl.eval("whereis(victim)")
    linked.link(victim)
    linked.monitor(victim)
    linked.monitor(("victim", erl.name))
    assert wait_until(lambda: _links_of(erl, "victim") == 1)
    return watcher, linked


def _assert_lost(
    watcher: erlnode.Mailbox, linked: erlnode.Mailbox, node_name: str, within: float
) -> float:
    """nodedown, an EXIT and two DOWNs with noconnection arrive within `within` seconds;
    returns when the last did."""
    start = time.monotonic()
    assert watcher.receive(timeout=within) == (Atom("nodedown"), Atom(node_name))
    signals = [linked.receive(timeout=max(0.1, start + within - time.monotonic())) for _ in "123"]
    took = time.monotonic() - start
    kinds = sorted(str(s[0]) for s in signals)
    assert kinds == ["DOWN", "DOWN", "EXIT"], signals
    assert all(s[-1] == Atom("noconnection") for s in signals), signals
    return took


def test_a_peer_killed_with_kill_9_is_down_with_noconnection_and_comes_back_new(
    erl: Erl,
) -> None:
    with erlnode.Node(random_name("py"), cookie=erl.cookie, ticktime=TICKTIME) as node:
        watcher, linked = _watch(node, erl)
        # A process with a pid number that the restarted node can give a process again.
        old = erl.eval("register(old, erlnode_load:counter_at(400)), whereis(old)")
        assert isinstance(old, erlnode.Pid) and old.id == 400
        os.kill(_os_pid(erl), signal.SIGKILL)
        _assert_lost(watcher, linked, erl.name, TICKTIME)
        assert erl.name not in node.connected_nodes()
        erl.stop()

        # The same name again: a new incarnation (creation), connected on demand.
        alive = erl.name.split("@")[0]
        with Erl(sname=alive, cookie=erl.cookie) as again:
            assert again.name == erl.name
            new = again.eval("register(new, erlnode_load:counter_at(400)), whereis(new)")
            assert (new.id, new.serial) == (old.id, old.serial)
            assert new.creation != old.creation
            inbox = node.mailbox("inbox")
            again.eval(f"{{inbox, '{node.name}'}} ! hello_again")
            assert inbox.receive(timeout=5) == Atom("hello_again")
            # A message to the old incarnation's pid never reaches the new process of the
            # same number: sent before one to the new pid on the same connection, it would
            # be counted first.
            node.send(old, "for the old incarnation")
            node.send(new, "for the new one")
            assert wait_until(lambda: again.eval("erlnode_load:count(new)") != (Atom("count"), 0))
            assert again.eval("erlnode_load:count(new)") == (Atom("count"), 1)
            # Links and monitors to an old pid end at once with noproc.
            probe = node.mailbox()
            probe.link(old)
            ref = probe.monitor(old)
            replies = sorted((probe.receive(timeout=5), probe.receive(timeout=5)), key=str)
            assert replies == sorted(
                [
                    (Atom("DOWN"), ref, Atom("process"), old, Atom("noproc")),
                    (Atom("EXIT"), old, Atom("noproc")),
                ],
                key=str,
            )
            assert again.eval("is_process_alive(whereis(new))") is True


def test_a_frozen_peer_is_dropped_at_the_tick_time(erl: Erl) -> None:
    """SIGSTOP: the socket stays open and silent, so only the tick timeout can tell."""
    with erlnode.Node(random_name("py"), cookie=erl.cookie, ticktime=TICKTIME) as node:
        watcher, linked = _watch(node, erl)
        os_pid = _os_pid(erl)
        os.kill(os_pid, signal.SIGSTOP)
        try:
            took = _assert_lost(watcher, linked, erl.name, TICKTIME + SLACK)
        finally:
            os.kill(os_pid, signal.SIGCONT)
        assert took >= TICKTIME * 0.5, f"dropped after {took:.2f}s: before any tick was due"
        # Thawed, it answers again on a new connection.
        assert node.ping(erl.name)


# -- a network partition --------------------------------------------------------------------

#: The Python node's side, in the other namespace: a node with a short tick time, a mailbox
#: that watches the peer's node and one that links to and monitors its processes.
PY_SIDE = """
import time, erlnode
from erlnode import Atom
node = erlnode.Node(NAME, cookie=COOKIE, ticktime=TICKTIME, listen=ADDR + ":0")
inbox = node.mailbox("inbox")
watcher = node.mailbox()
linked = node.mailbox()

def watch(peer):
    node.monitor_node(peer, watcher)
    pid = node.rpc(peer, "erlang", "whereis", [Atom("victim")])
    linked.link(pid)
    linked.monitor(pid)
    return pid

def events(n, timeout):
    start = time.monotonic()
    got = [str(watcher.receive(timeout=timeout)[0])]
    for _ in range(n):
        msg = linked.receive(timeout=timeout)
        got.append(f"{msg[0]}:{msg[-1]}")
    return sorted(got), time.monotonic() - start
"""


@pytest.fixture
def namespaces() -> Iterator[NamespacePair]:
    why = can_make_namespaces()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    with NamespacePair() as net:
        yield net


def test_a_partition_is_seen_at_the_tick_time_and_healing_brings_everything_back(
    namespaces: NamespacePair,
) -> None:
    net = namespaces
    epmd_port = os.environ.get("ERL_EPMD_PORT", "4369")
    # Erlang in the first namespace, with its own EPMD; the Python node in the second serves
    # EPMD itself (none runs there).
    epmd = subprocess.Popen(
        [*net.prefix(0), "epmd", "-port", epmd_port],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    erl: Erl | None = None
    py: PyProcess | None = None
    try:
        time.sleep(0.3)
        erl = Erl(
            sname=f"{random_name()}@{net.addr[0]}",
            longnames=True,
            extra_args=["-kernel", "net_ticktime", "4"],
            otp=NamespaceOtp(net.ns[0]),
        )
        py = PyProcess(prefix=net.prefix(1))
        py_name = f"{random_name('py')}@{net.addr[1]}"
        py.run(
            f"NAME, COOKIE, TICKTIME, ADDR = {py_name!r}, {erl.cookie!r}, {TICKTIME}, "
            f"{net.addr[1]!r}\n" + PY_SIDE
        )
        erl.eval("register(victim, spawn(fun() -> receive stop -> ok end end))")
        py.run(f"victim = watch({erl.name!r})")
        assert wait_until(lambda: _links_of(erl, "victim") == 1)
        erl.eval(f"{{inbox, '{py_name}'}} ! before")
        assert py.run("result = str(inbox.receive(timeout=5))") == "before"

        net.cut()
        try:
            got, took = py.run(f"result = events(2, {TICKTIME + SLACK})")
            assert got == ["DOWN:noconnection", "EXIT:noconnection", "nodedown"]
            assert took <= TICKTIME + SLACK
            assert py.run(f"result = {erl.name!r} in node.connected_nodes()") is False
            # Erlang sees it too (its tick time is 4 s) before the link comes back.
            assert wait_until(
                lambda: erl.eval(f"lists:member('{py_name}', nodes(connected))") is False,
                timeout=10,
            )
        finally:
            net.heal()

        # Healed: connected on demand again, and messages, links and monitors work.
        assert py.run(f"result = node.ping({erl.name!r}, timeout=10)") is True
        erl.eval(f"{{inbox, '{py_name}'}} ! again")
        assert py.run("result = str(inbox.receive(timeout=5))") == "again"
        erl.eval("register(victim, spawn(fun() -> receive stop -> exit(healed) end end))")
        py.run(f"victim = watch({erl.name!r})")
        assert wait_until(lambda: _links_of(erl, "victim") == 1)
        erl.eval("victim ! stop")
        got = py.run(
            "result = sorted(f'{m[0]}:{m[-1]}' for m in "
            "(linked.receive(timeout=5), linked.receive(timeout=5)))"
        )
        assert got == ["DOWN:healed", "EXIT:healed"]
        erl.eval("register(back, erlnode_load:counter())")
        py.run(f"node.send(('back', {erl.name!r}), 'from python')")
        assert wait_until(lambda: erl.eval("erlnode_load:count(back)") == (Atom("count"), 1))
        py.run("node.close()")
    finally:
        if py is not None:
            py.stop()
        if erl is not None:
            erl.stop()
        epmd.kill()
        epmd.wait(timeout=10)


# -- closing with messages in flight -----------------------------------------------------------

MESSAGES_IN_FLIGHT = 100_000


def test_a_program_that_closes_and_exits_at_once_loses_nothing(erl: Erl) -> None:
    """`node.close()` returns once everything `send()` accepted is written: a program may
    exit right after. 100,000 messages of 1 KB: more than the socket buffers hold."""
    erl.eval("register(tally, erlnode_load:counter())")
    code = textwrap.dedent(
        f"""
        import erlnode
        node = erlnode.Node({random_name("py")!r}, cookie={erl.cookie!r})
        assert node.ping({erl.name!r})
        mbox = node.mailbox()
        payload = bytes(1000)
        for i in range({MESSAGES_IN_FLIGHT}):
            mbox.send(("tally", {erl.name!r}), (i, payload))
        node.close()
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=env)
    # The process is gone: what Erlang counts from now on was on the wire when it exited.
    assert wait_until(
        lambda: erl.eval("erlnode_load:count(tally)") == (Atom("count"), MESSAGES_IN_FLIGHT),
        timeout=30,
    ), erl.eval("erlnode_load:count(tally)")


def test_closing_a_mailbox_sends_its_exit_after_every_message_it_sent(
    erl: Erl, node: erlnode.Node
) -> None:
    counter = erl.eval("Counter = erlnode_load:counter()")
    mbox = node.mailbox()
    mbox.link(counter)
    assert wait_until(lambda: erl.eval("element(2, process_info(Counter, links))") != [])
    for i in range(MESSAGES_IN_FLIGHT):
        mbox.send(counter, i)
    mbox.close()
    # Every message arrived, and before the exit signal that closing sent.
    expected = (Atom("count"), MESSAGES_IN_FLIGHT, (Atom("exit_after"), MESSAGES_IN_FLIGHT))
    assert wait_until(lambda: erl.eval("erlnode_load:count(Counter)") == expected, 30)


def test_closing_the_node_writes_what_was_sent_before(erl: Erl) -> None:
    erl.eval("register(tally, erlnode_load:counter())")
    node = erlnode.Node(random_name("py"), cookie=erl.cookie)
    try:
        assert node.ping(erl.name)
        node.mailbox().send_many(("tally", erl.name), range(MESSAGES_IN_FLIGHT))
    finally:
        node.close()
    assert wait_until(
        lambda: erl.eval("erlnode_load:count(tally)") == (Atom("count"), MESSAGES_IN_FLIGHT),
        timeout=30,
    )


# -- connections coming and going -----------------------------------------------------------

PEERS = 16


def _resources() -> dict[str, int]:
    rss = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": len(os.listdir("/proc/self/task")),
        "rss": rss,
    }


def _all_disconnected(node: erlnode.Node, peers: list[Erl]) -> None:
    for peer in peers:
        node.disconnect(peer.name)
    assert wait_until(lambda: node.connected_nodes() == [], timeout=10)
    for peer in peers:
        assert wait_until(
            lambda p=peer: p.eval(f"lists:member('{node.name}', nodes(connected))") is False
        )


def test_sixteen_peers_coming_and_going_leak_nothing() -> None:
    cookie = random_name("cookie")
    with concurrent.futures.ThreadPoolExecutor(PEERS) as pool:
        starting = [pool.submit(Erl, cookie=cookie, timeout=60) for _ in range(PEERS)]
        peers = [f.result() for f in starting]
    try:
        with erlnode.Node(random_name("py"), cookie=cookie) as node:
            sink = node.mailbox("sink")
            for peer in peers:
                peer.eval("register(tally, erlnode_load:counter())")

            sent = dict.fromkeys((p.name for p in peers), 0)

            def round_trip(peer: Erl, tag: int) -> None:
                """Erlang to Python, and Python to Erlang; returns once both arrived (a
                message still in flight when the peer drops the connection may be lost, as
                in Erlang)."""
                peer.eval(f"{{sink, '{node.name}'}} ! {tag}")
                assert sink.receive(timeout=10) == tag
                node.send(("tally", peer.name), tag)
                sent[peer.name] += 1
                counted = (Atom("count"), sent[peer.name])
                assert wait_until(lambda: peer.eval("erlnode_load:count(tally)") == counted)

            def connect_all() -> None:
                for peer in peers:
                    round_trip(peer, -1)
                assert sorted(node.connected_nodes()) == sorted(p.name for p in peers)

            # Warm-up: every peer connected at once, then all gone; then measure.
            connect_all()
            _all_disconnected(node, peers)
            time.sleep(0.5)
            before = _resources()

            connect_all()
            rng = random.Random(16)
            cycles = 0
            deadline = time.monotonic() + CHURN_SECONDS
            while time.monotonic() < deadline:
                peer = rng.choice(peers)
                # One side drops the connection; both see it go before the next message.
                if rng.randrange(2):
                    node.disconnect(peer.name)
                else:
                    peer.eval(f"erlang:disconnect_node('{node.name}')")
                assert wait_until(lambda p=peer: p.name not in node.connected_nodes())
                assert wait_until(
                    lambda p=peer: p.eval(f"lists:member('{node.name}', nodes(connected))") is False
                )
                # Connected again on demand, by either side.
                if rng.randrange(2):
                    assert node.ping(peer.name)
                else:
                    assert peer.eval(f"net_adm:ping('{node.name}')") == Atom("pong")
                round_trip(peer, cycles)
                cycles += 1
            assert cycles > 50, f"only {cycles} cycles in {CHURN_SECONDS}s"

            _all_disconnected(node, peers)
            # Sockets close on the network thread, and Tokio's blocking pool (name lookups)
            # lets an idle thread go after 10 s: give them time to settle.
            wait_until(
                lambda: all(v <= before[k] for k, v in _resources().items() if k != "rss"),
                timeout=15,
            )
            after = _resources()
            print(
                f"\n{cycles} connection cycles in {CHURN_SECONDS:.0f}s with {PEERS} peers: "
                f"fds {before['fds']} -> {after['fds']}, threads {before['threads']} -> "
                f"{after['threads']}, RSS {before['rss'] / 2**20:.1f} -> "
                f"{after['rss'] / 2**20:.1f} MiB"
            )
            assert after["fds"] == before["fds"]
            assert after["threads"] == before["threads"]
            assert after["rss"] - before["rss"] < 16 * 2**20
    finally:
        with concurrent.futures.ThreadPoolExecutor(PEERS) as pool:
            list(pool.map(Erl.stop, peers))
