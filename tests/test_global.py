"""A visible erlnode node keeps OTP's `global` healthy (docs/global.md), against real erl.

Every Erlang call that could hang on a broken `global` runs with a timeout, so a regression
fails the test instead of blocking it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from erl import Erl, random_name, wait_until

import erlnode
from erlnode import Atom

SYNC_TIMEOUT = 15.0


@pytest.fixture
def erl2(erl: Erl) -> Iterator[Erl]:
    """A second Erlang node with the same cookie as `erl` (not yet connected to it)."""
    other = Erl(cookie=erl.cookie)
    try:
        yield other
    finally:
        other.stop()


@pytest.fixture
def visible(erl: Erl) -> Iterator[erlnode.Node]:
    n = erlnode.Node(random_name("py"), cookie=erl.cookie, hidden=False)
    try:
        yield n
    finally:
        n.close()


def sync(erl: Erl) -> None:
    """`global:sync()` on `erl` returns ok, and promptly."""
    started = time.monotonic()
    assert erl.eval("global:sync()", timeout=SYNC_TIMEOUT) == Atom("ok")
    assert time.monotonic() - started < 10.0


def erl_nodes(erl: Erl, kind: str = "visible") -> list[str]:
    return [str(n) for n in erl.eval(f"nodes({kind})")]


def assert_quiet(erl: Erl) -> None:
    """Nothing on the Erlang side logged a warning, an error or a crash."""
    out = erl.output()
    for word in ("WARNING", "ERROR", "CRASH", "unexpected"):
        assert word not in out, out


def test_python_connects_and_erlang_global_syncs(erl: Erl, visible: erlnode.Node) -> None:
    assert visible.ping(erl.name)
    sync(erl)
    assert erl_nodes(erl) == [visible.name]
    assert wait_until(lambda: erl.name in visible._global.synced_nodes())  # type: ignore[union-attr]
    assert_quiet(erl)


def test_erlang_connects_and_global_syncs(erl: Erl, visible: erlnode.Node) -> None:
    assert erl.eval(f"net_adm:ping('{visible.name}')") == Atom("pong")
    sync(erl)
    assert erl_nodes(erl) == [visible.name]
    # The session really completed: erl's global counts us as synced.
    synced = erl.eval("gen_server:call(global_name_server, get_synced)", timeout=5)
    assert [str(n) for n in synced] == [visible.name]
    assert_quiet(erl)


def test_global_names_between_erlang_nodes(erl: Erl, erl2: Erl, visible: erlnode.Node) -> None:
    assert visible.ping(erl.name)
    sync(erl)
    assert erl2.eval(f"net_adm:ping('{erl.name}')") == Atom("pong")
    # global connects erl2 to us (it learns about us from erl) and syncs with us.
    assert wait_until(lambda: erl2.name in visible.connected_nodes(), timeout=10)
    sync(erl2)
    sync(erl)
    assert sorted(erl_nodes(erl2)) == sorted([erl.name, visible.name])

    # register_name locks every known node, us included.
    erl.eval("G1 = spawn(fun() -> receive stop -> ok end end)")
    assert erl.eval("global:register_name(erlnode_g1, G1)", timeout=SYNC_TIMEOUT) == Atom("yes")
    g1 = erl.eval("G1")
    assert erl2.eval("global:whereis_name(erlnode_g1)", timeout=5) == g1
    assert erl2.eval("global:register_name(erlnode_g1, self())", timeout=SYNC_TIMEOUT) == Atom("no")
    assert erl2.eval("global:unregister_name(erlnode_g1)", timeout=SYNC_TIMEOUT) == Atom("ok")
    assert erl.eval("global:whereis_name(erlnode_g1)", timeout=5) == Atom("undefined")
    # Every lock taken on this node was released.
    assert wait_until(lambda: visible._global.locks() == [], timeout=5)  # type: ignore[union-attr]
    assert_quiet(erl)
    assert_quiet(erl2)


def test_lock_table(erl: Erl, visible: erlnode.Node) -> None:
    assert visible.ping(erl.name)
    sync(erl)
    p = visible.name
    assert erl.eval(f"global:set_lock({{erlnode_res, self()}}, ['{p}'], 0)", timeout=5) is True
    [(resource, _requester, holders)] = visible._global.locks()  # type: ignore[union-attr]
    assert resource == Atom("erlnode_res") and holders == [erl.eval("self()")]
    # Another requester id cannot take it; the same one can, again.
    other = f"global:set_lock({{erlnode_res, other}}, ['{p}'], 0)"
    assert erl.eval(other, timeout=5) is False
    assert erl.eval(f"global:set_lock({{erlnode_res, self()}}, ['{p}'], 0)", timeout=5) is True
    assert erl.eval(f"global:del_lock({{erlnode_res, self()}}, ['{p}'])", timeout=5) is True
    assert visible._global.locks() == []  # type: ignore[union-attr]
    assert erl.eval(other, timeout=5) is True
    # A holder that dies releases its lock (we monitor it).
    erl.eval(
        "Locker = spawn(fun() -> "
        f"true = global:set_lock({{erlnode_res2, x}}, ['{p}'], 0), "
        "receive stop -> ok end end)"
    )
    assert wait_until(lambda: len(visible._global.locks()) == 2, timeout=5)  # type: ignore[union-attr]
    erl.eval("Locker ! stop")
    assert wait_until(lambda: len(visible._global.locks()) == 1, timeout=5)  # type: ignore[union-attr]
    assert erl.eval(f"gen_server:call({{global_name_server, '{p}'}}, get_protocol_version)") == 8


def test_disconnect_and_reconnect(erl: Erl, erl2: Erl, visible: erlnode.Node) -> None:
    assert visible.ping(erl.name)
    assert erl2.eval(f"net_adm:ping('{erl.name}')") == Atom("pong")
    assert wait_until(lambda: erl2.name in visible.connected_nodes(), timeout=10)
    sync(erl)
    sync(erl2)

    # erl drops us; prevent_overlapping_partitions makes erl2 forget us too, and we take
    # that connection down as asked: both see a consistent cluster again.
    assert erl.eval(f"erlang:disconnect_node('{visible.name}')") is True
    assert wait_until(lambda: visible.connected_nodes() == [], timeout=10)
    sync(erl)
    sync(erl2)
    assert erl_nodes(erl) == [erl2.name]
    assert erl_nodes(erl2) == [erl.name]

    # Back again: a new session with each.
    assert visible.ping(erl.name)
    assert wait_until(lambda: erl2.name in visible.connected_nodes(), timeout=10)
    sync(erl)
    sync(erl2)
    assert visible.name in erl_nodes(erl2)
    erl.eval("G2 = spawn(fun() -> receive stop -> ok end end)")
    assert erl.eval("global:register_name(erlnode_g2, G2)", timeout=SYNC_TIMEOUT) == Atom("yes")
    assert erl2.eval("global:whereis_name(erlnode_g2)", timeout=5) == erl.eval("G2")

    # The Python node goes away altogether; global on the Erlang nodes is unaffected.
    visible.close()
    assert wait_until(lambda: erl_nodes(erl) == [erl2.name], timeout=10)
    sync(erl)
    sync(erl2)
    assert erl2.eval("global:whereis_name(erlnode_g2)", timeout=5) == erl.eval("G2")
    for e in (erl, erl2):
        out = e.output()
        assert "ERROR" not in out and "CRASH" not in out and "unexpected" not in out, out


def test_pg_scope_unaffected(erl: Erl, erl2: Erl, visible: erlnode.Node) -> None:
    # pg's scope process sends {discover, Pid} to {pg, Us} on nodeup; nobody answers it here,
    # and pg carries on between the Erlang nodes.
    erl.eval("{ok, _} = pg:start(pg)")
    erl2.eval("{ok, _} = pg:start(pg)")
    assert visible.ping(erl.name)
    assert erl2.eval(f"net_adm:ping('{erl.name}')") == Atom("pong")
    erl.eval("P1 = spawn(fun() -> receive stop -> ok end end), ok = pg:join(erlnode_grp, P1)")
    p1 = erl.eval("P1")
    assert wait_until(lambda: erl2.eval("pg:get_members(erlnode_grp)") == [p1], timeout=10)
    sync(erl)
    sync(erl2)
    assert_quiet(erl)
    assert_quiet(erl2)


def test_hidden_node_gets_no_global_traffic(erl: Erl) -> None:
    with erlnode.Node(random_name("py"), cookie=erl.cookie) as hidden:
        spy = hidden.mailbox("global_name_server")
        assert hidden.ping(erl.name)
        assert erl_nodes(erl) == []
        assert erl_nodes(erl, "hidden") == [hidden.name]
        sync(erl)
        assert erl.eval("global:register_name(erlnode_h, self())", timeout=5) == Atom("yes")
        with pytest.raises(TimeoutError):
            spy.receive(timeout=1.0)
        assert hidden._global is None


def test_two_sessions_at_once(erl: Erl, erl2: Erl, visible: erlnode.Node) -> None:
    # Two unconnected Erlang nodes start a session with us at the same time: their lockers
    # compete for global's lock here; one waits for the other, and both complete.
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda e=e: results.append(visible.ping(e.name)))
        for e in (erl, erl2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [True, True]
    sync(erl)
    sync(erl2)
    both = sorted([erl.name, erl2.name])
    assert wait_until(lambda: visible._global.synced_nodes() == both)  # type: ignore[union-attr]
    # We are no bridge: they stay unconnected to each other.
    assert erl_nodes(erl) == [visible.name]
    assert erl_nodes(erl2) == [visible.name]
    assert_quiet(erl)
    assert_quiet(erl2)
