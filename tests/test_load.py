"""Load without loss: sequenced messages from 8 Erlang senders on 4 nodes into Python
mailboxes at full speed, and as many from 8 Python senders to Erlang; every message counted,
each sender's order intact. A slow consumer makes its queue grow, never drops.

`ERLNODE_LOAD_MESSAGES` is the total each way (100,000 here; `make soak`: 2,000,000).
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from collections.abc import Iterator

import pytest
from erl import Erl, random_name, wait_until

import erlnode
from erlnode import Atom

MESSAGES = int(os.environ.get("ERLNODE_LOAD_MESSAGES", "100000"))
NODES = 4
SENDERS_PER_NODE = 2
SENDERS = NODES * SENDERS_PER_NODE
PER_SENDER = MESSAGES // SENDERS


@pytest.fixture(scope="module")
def peers() -> Iterator[list[Erl]]:
    cookie = random_name("cookie")
    with concurrent.futures.ThreadPoolExecutor(NODES) as pool:
        peers = list(pool.map(lambda _: Erl(cookie=cookie, timeout=300), range(NODES)))
    try:
        yield peers
    finally:
        with concurrent.futures.ThreadPoolExecutor(NODES) as pool:
            list(pool.map(Erl.stop, peers))


@pytest.fixture
def node(peers: list[Erl]) -> Iterator[erlnode.Node]:
    with erlnode.Node(random_name("py"), cookie=peers[0].cookie) as node:
        for peer in peers:
            assert node.ping(peer.name)
        yield node


class Sink:
    """A mailbox drained by a thread of its own, checking each sender's sequence."""

    def __init__(self, mbox: erlnode.Mailbox, expected: int) -> None:
        self.mbox, self.expected = mbox, expected
        self.received = 0
        self.last: dict[int, int] = {}
        self.out_of_order: list[tuple[int, int, int]] = []
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        last, bad = self.last, self.out_of_order
        deadline = time.monotonic() + 600
        while self.received < self.expected and time.monotonic() < deadline:
            try:
                batch = self.mbox.receive_many(limit=8192, timeout=1.0)
            except TimeoutError:
                continue
            for sender, seq in batch:
                if seq != last.get(sender, 0) + 1:
                    bad.append((sender, last.get(sender, 0), seq))
                last[sender] = seq
            self.received += len(batch)

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)


def test_erlang_senders_into_python_mailboxes_lose_nothing(
    peers: list[Erl], node: erlnode.Node
) -> None:
    sinks = [Sink(node.mailbox(f"sink{i}"), SENDERS_PER_NODE * PER_SENDER) for i in range(NODES)]
    senders = []
    for i, peer in enumerate(peers):
        first = i * SENDERS_PER_NODE + 1
        peer.eval(
            f"Senders = erlnode_load:senders({{sink{i}, '{node.name}'}}, {first}, "
            f"{SENDERS_PER_NODE}, {PER_SENDER})"
        )
        senders.extend(range(first, first + SENDERS_PER_NODE))
    start = time.monotonic()
    for peer in peers:
        peer.eval("erlnode_load:go(Senders)")
    for sink in sinks:
        sink.join(timeout=600)
    took = time.monotonic() - start
    total = sum(s.received for s in sinks)
    print(
        f"\n{total:,} messages from {SENDERS} Erlang senders on {NODES} nodes in {took:.2f}s: "
        f"{total / took:,.0f} msg/s"
    )
    assert [s.out_of_order for s in sinks] == [[]] * NODES
    assert total == SENDERS * PER_SENDER
    last: dict[int, int] = {}
    for sink in sinks:
        last.update(sink.last)
    assert last == dict.fromkeys(senders, PER_SENDER)
    assert all(s.mbox.qsize() == 0 and s.mbox.dropped == 0 for s in sinks)


def test_python_senders_into_erlang_processes_lose_nothing(
    peers: list[Erl], node: erlnode.Node
) -> None:
    for peer in peers:
        peer.eval("erlnode_load:collector(collect)")
    barrier = threading.Barrier(SENDERS + 1)

    def send(sender: int) -> None:
        peer = peers[(sender - 1) // SENDERS_PER_NODE]
        mbox = node.mailbox()
        dest = ("collect", peer.name)
        barrier.wait()
        if sender % 2:  # one message a call
            for seq in range(1, PER_SENDER + 1):
                mbox.send(dest, (sender, seq))
        else:  # batches of 1,000
            for first in range(1, PER_SENDER + 1, 1000):
                last = min(first + 1000, PER_SENDER + 1)
                mbox.send_many(dest, [(sender, seq) for seq in range(first, last)])

    with concurrent.futures.ThreadPoolExecutor(SENDERS) as pool:
        running = [pool.submit(send, sender) for sender in range(1, SENDERS + 1)]
        barrier.wait()
        start = time.monotonic()
        for f in running:
            f.result()
    sent_in = time.monotonic() - start

    def reports() -> list[object]:
        return [peer.eval("erlnode_load:report(collect)") for peer in peers]

    expected = [
        (
            SENDERS_PER_NODE * PER_SENDER,
            0,
            {
                s: PER_SENDER
                for s in range(i * SENDERS_PER_NODE + 1, (i + 1) * SENDERS_PER_NODE + 1)
            },
        )
        for i in range(NODES)
    ]
    assert wait_until(lambda: reports() == expected, timeout=120, interval=0.2), reports()
    took = time.monotonic() - start
    print(
        f"\n{SENDERS * PER_SENDER:,} messages from {SENDERS} Python senders to {NODES} Erlang "
        f"nodes: sent in {sent_in:.2f}s ({SENDERS * PER_SENDER / sent_in:,.0f} msg/s), all "
        f"counted after {took:.2f}s"
    )


def test_a_slow_consumer_makes_its_queue_grow_and_loses_nothing(
    peers: list[Erl], node: erlnode.Node
) -> None:
    """Nothing pushes back on the sender and nothing is dropped: the backlog waits in the
    queue (qsize shows it), and other mailboxes on the same connection are served
    meanwhile."""
    erl = peers[0]
    slow, other = node.mailbox("slow"), node.mailbox("other")
    erl.eval(f"Flood = erlnode_load:senders({{slow, '{node.name}'}}, 1, 1, {MESSAGES})")
    erl.eval("erlnode_load:go(Flood)")
    received = 0
    most_waiting = 0
    other_took = None
    while received < MESSAGES:
        waiting = slow.qsize()
        most_waiting = max(most_waiting, waiting)
        if other_took is None and waiting >= 1000:
            # Behind now: a message to another mailbox on the same connection still comes
            # at once.
            sent_at = time.monotonic()
            erl.eval(f"{{other, '{node.name}'}} ! hello")
            assert other.receive(timeout=2) == Atom("hello")
            other_took = time.monotonic() - sent_at
        batch = slow.receive_many(limit=100, timeout=10)
        for i, (sender, seq) in enumerate(batch, start=received + 1):
            assert (sender, seq) == (1, i)
        received += len(batch)
        time.sleep(0.002)  # 50,000 messages a second at most: slower than Erlang sends
    assert other_took is not None, f"never more than {most_waiting} messages waiting"
    print(
        f"\nslow consumer: up to {most_waiting:,} of {MESSAGES:,} messages waiting; another "
        f"mailbox served in {other_took:.3f}s meanwhile"
    )
    assert most_waiting > MESSAGES // 4
    assert slow.dropped == 0 and slow.qsize() == 0
