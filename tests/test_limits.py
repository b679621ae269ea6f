"""The backlog a slow consumer builds (qsize), the optional queue limit, and the largest
message a peer may send."""

from __future__ import annotations

import pytest
from erl import Erl, random_name, wait_until

import erlnode
from erlnode import Atom


def test_qsize_counts_what_waits(node: erlnode.Node) -> None:
    mbox = node.mailbox()
    assert mbox.qsize() == 0
    for n in range(5):
        node.send(mbox.pid, n)
    assert wait_until(lambda: mbox.qsize() == 5)
    assert mbox.receive_many(limit=3, timeout=1) == [0, 1, 2]
    assert mbox.qsize() == 2


def test_a_full_queue_drops_new_messages_and_counts_them(erl: Erl, node: erlnode.Node) -> None:
    mbox = node.mailbox("limited")
    mbox.set_queue_limit(3)
    erl.eval(f"[{{limited, '{node.name}'}} ! N || N <- lists:seq(1, 10)], ok")
    assert wait_until(lambda: mbox.dropped == 7)
    assert mbox.qsize() == 3
    # The first messages are kept, in order; once there is room, new ones are queued again.
    assert mbox.receive_many(timeout=1) == [1, 2, 3]
    erl.eval(f"{{limited, '{node.name}'}} ! 11")
    assert mbox.receive(timeout=5) == 11
    mbox.set_queue_limit(None)
    erl.eval(f"[{{limited, '{node.name}'}} ! N || N <- lists:seq(1, 10)], ok")
    assert wait_until(lambda: mbox.qsize() == 10)
    assert mbox.dropped == 7
    with pytest.raises(ValueError):
        mbox.set_queue_limit(0)


def test_a_peer_sending_more_than_max_message_size_is_disconnected(erl: Erl) -> None:
    with erlnode.Node(random_name("py"), cookie=erl.cookie, max_message_size=100_000) as node:
        inbox = node.mailbox("inbox")
        assert node.ping(erl.name)
        dest = f"{{inbox, '{node.name}'}}"
        erl.eval(f"{dest} ! {{small, <<0:8000>>}}")
        assert inbox.receive(timeout=5) == (Atom("small"), bytes(1000))
        erl.eval(f"{dest} ! {{big, binary:copy(<<1>>, 1000000)}}")
        assert wait_until(lambda: erl.name not in node.connected_nodes())
        with pytest.raises(TimeoutError):
            inbox.receive(timeout=0.5)
        # The node keeps serving: the peer reconnects and small messages flow again.
        assert node.ping(erl.name)
        erl.eval(f"{dest} ! later")
        assert inbox.receive(timeout=5) == Atom("later")
