"""Nodes and multiprocessing: a forked child cannot use its parent's node, but makes its own."""

from __future__ import annotations

import multiprocessing
import sys

import pytest
from erl import Erl, random_name

import erlnode
from erlnode import Atom


def _child(
    node: erlnode.Node, erl_name: str, cookie: str, results: "multiprocessing.Queue[str]"
) -> None:
    try:
        node.mailbox()
        results.put("parent node still usable")
    except erlnode.NodeClosedError:
        results.put("parent node closed")
    with erlnode.Node(random_name("child"), cookie=cookie) as own:
        results.put(f"own node ping {own.ping(erl_name)}")


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_forked_child_gets_its_own_node(erl: Erl) -> None:
    with erlnode.Node(random_name("parent"), cookie=erl.cookie) as node:
        assert node.ping(erl.name)
        ctx = multiprocessing.get_context("fork")
        results: multiprocessing.Queue[str] = ctx.Queue()
        child = ctx.Process(target=_child, args=(node, erl.name, erl.cookie, results))
        child.start()
        got = [results.get(timeout=30), results.get(timeout=30)]
        child.join(30)
        assert got == ["parent node closed", "own node ping True"]
        assert child.exitcode == 0
        # The parent's node is untouched by the child.
        assert erl.eval(f"net_adm:ping('{node.name}')") == Atom("pong")
