"""Shared fixtures: real Erlang nodes (see tests/erl.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import erlnode

sys.path.insert(0, str(Path(__file__).parent))

from erl import Erl, erl_available, random_name  # noqa: E402 - tests/ is on the path just above


def _need_erl() -> None:
    if not erl_available():
        if os.environ.get("CI"):
            pytest.fail("erl is not on PATH (and CI is set)")
        pytest.skip("erl is not on PATH")


@pytest.fixture
def erl() -> Iterator[Erl]:
    """A fresh Erlang node (random name and cookie), stopped after the test."""
    _need_erl()
    node = Erl()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def session_erl() -> Iterator[Erl]:
    """One Erlang node shared by the codec tests of the whole session."""
    _need_erl()
    node = Erl()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def node(erl: Erl) -> Iterator[erlnode.Node]:
    """A Python node sharing the `erl` fixture's cookie, closed after the test."""
    n = erlnode.Node(random_name("py"), cookie=erl.cookie)
    try:
        yield n
    finally:
        n.close()
