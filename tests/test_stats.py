"""`Node.stats()` and the reprs of `Node` and `Mailbox`, against a real erl."""

from __future__ import annotations

import json
import time

from erl import Erl, random_name, wait_until

import erlnode
from erlnode import Atom

CONNECTION_KEYS = {
    "bytes_in",
    "bytes_out",
    "messages_in",
    "messages_out",
    "send_queue",
    "bulk_landed",
    "bulk_copied",
    "last_in",
    "last_out",
    "up_since",
}


def test_stats_of_a_node_without_connections() -> None:
    with erlnode.Node(random_name("py"), cookie="c") as node:
        stats = node.stats()
        assert stats["connections"] == {}
        base = stats["mailboxes"]  # the node's own: the RPC server's
        mbox = node.mailbox("one")
        other = node.mailbox()
        assert node.stats()["mailboxes"] == base + 2
        mbox.close()
        other.close()
        assert node.stats()["mailboxes"] == base


def test_stats_count_each_connections_traffic(erl: Erl, node: erlnode.Node) -> None:
    before = time.time()
    mbox = node.mailbox("inbox")
    erl.eval("register(erl_inbox, self())")
    for i in range(20):
        mbox.send(("erl_inbox", erl.name), (Atom("n"), i, bytes(100)))
    assert erl.eval("length([receive M -> M end || _ <- lists:seq(1, 20)])") == 20
    erl.eval(f"[{{inbox, '{node.name}'}} ! {{n, I, <<0:8000>>}} || I <- lists:seq(1, 30)]")
    for _ in range(30):
        mbox.receive(timeout=5)
    # The reader counts a read once it has handed out its messages: a moment later.
    assert wait_until(lambda: node.stats()["connections"][erl.name]["messages_in"] >= 30)
    stats = node.stats()
    assert set(stats) == {"mailboxes", "connections"}
    assert list(stats["connections"]) == [erl.name]
    conn = stats["connections"][erl.name]
    assert set(conn) == CONNECTION_KEYS
    # Our 20 messages (and the net_kernel call of the connection's set-up: Erlang's
    # connection sends none of its own to a hidden node).
    assert 20 <= conn["messages_out"] <= 25, conn
    assert 30 <= conn["messages_in"] <= 35, conn
    assert conn["bytes_out"] >= 20 * 100 and conn["bytes_in"] >= 30 * 1000, conn
    assert conn["send_queue"] == 0
    # No binary was large enough to land apart (see tests/test_bulk_receive.py).
    assert conn["bulk_landed"] == conn["bulk_copied"] == 0
    assert 0 <= conn["last_in"] < 5 and 0 <= conn["last_out"] < 5
    assert before - 1 <= conn["up_since"] <= time.time()
    assert json.loads(json.dumps(stats)) == stats  # plain data
    # Counts only grow; a connection that is gone leaves the table.
    assert node.stats()["connections"][erl.name]["messages_in"] >= conn["messages_in"]
    assert node.disconnect(erl.name)
    assert node.stats()["connections"] == {}


def test_ticks_keep_last_in_and_last_out_short() -> None:
    # Both sides tick every second (net_ticktime 4 s: a tick a quarter of it after silence).
    with Erl(extra_args=["-kernel", "net_ticktime", "4"]) as erl:
        with erlnode.Node(random_name("py"), cookie=erl.cookie, ticktime=4) as node:
            assert node.ping(erl.name)
            time.sleep(3.5)
            conn = node.stats()["connections"][erl.name]
            assert conn["last_in"] < 2.5 and conn["last_out"] < 2.5, conn
            assert conn["bytes_in"] > 0 and conn["send_queue"] == 0


def test_reprs_say_what_they_are_never_the_cookie(erl: Erl, node: erlnode.Node) -> None:
    assert node.ping(erl.name)
    text = repr(node)
    assert text.startswith(f"<Node {node.name}") and erl.name in text, text
    assert node.cookie not in text
    mbox = node.mailbox("echo")
    anonymous = node.mailbox()
    assert repr(mbox) == f"<Mailbox 'echo' {mbox.pid} on {node.name} queued=0>"
    assert repr(anonymous) == f"<Mailbox {anonymous.pid} on {node.name} queued=0>"
    node.send(mbox.pid, 1)
    assert wait_until(lambda: "queued=1" in repr(mbox))
    mbox.close()
    assert repr(mbox) == f"<Mailbox 'echo' {mbox.pid} on {node.name} closed>"
    with erlnode.Node(random_name("py"), cookie="hush-hush", strings="elixir") as other:
        assert repr(other) == f"<Node {other.name} strings='elixir' peers=[]>"
    assert repr(other) == f"<Node {other.name} closed>"
