"""The Rust core's log records reach Python's `logging`, with the peer as an attribute."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from erl import Erl, random_name, wait_until

import erlnode


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def find(self, logger: str, level: int, text: str) -> logging.LogRecord | None:
        for record in self.records:
            if record.name == logger and record.levelno == level and text in record.getMessage():
                return record
        return None


@pytest.fixture
def collect(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collect]:
    # ERLNODE_LOG, when set, filters instead of the logger's level: these tests need the latter.
    monkeypatch.delenv("ERLNODE_LOG", raising=False)
    handler = Collect()
    logger = logging.getLogger("erlnode")
    saved = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


def test_a_failed_handshake_is_a_warning_about_its_peer(erl: Erl, collect: Collect) -> None:
    with erlnode.Node(random_name("py"), cookie="not-" + erl.cookie) as node:
        assert not node.ping(erl.name)
        assert wait_until(
            lambda: collect.find("erlnode.handshake", logging.WARNING, "handshake with") is not None
        )
    record = collect.find("erlnode.handshake", logging.WARNING, "handshake with")
    assert record is not None
    assert record.peer == erl.name  # type: ignore[attr-defined]
    assert erl.cookie not in record.getMessage()


def test_connections_up_and_down_are_info_records(erl: Erl, collect: Collect) -> None:
    with erlnode.Node(random_name("py"), cookie=erl.cookie) as node:
        assert node.ping(erl.name)
        assert wait_until(
            lambda: collect.find("erlnode.connection", logging.INFO, "connected to") is not None
        )
        assert node.disconnect(erl.name)
        assert wait_until(
            lambda: collect.find("erlnode.connection", logging.INFO, "lost") is not None
        )
    up = collect.find("erlnode.connection", logging.INFO, "connected to")
    assert up is not None and up.peer == erl.name  # type: ignore[attr-defined]


def test_records_below_the_loggers_level_are_not_emitted(erl: Erl, collect: Collect) -> None:
    logging.getLogger("erlnode").setLevel(logging.ERROR)
    with erlnode.Node(random_name("py"), cookie=erl.cookie) as node:
        assert node.ping(erl.name)
        assert node.disconnect(erl.name)
    assert collect.find("erlnode.connection", logging.INFO, "connected to") is None


def test_without_logging_configured_warnings_reach_stderr(erl: Erl) -> None:
    # Python's last-resort handler: WARNING and above, on stderr, as before.
    script = (
        "import erlnode, sys\n"
        f"node = erlnode.Node('{random_name('py')}', cookie='wrong')\n"
        f"assert not node.ping('{erl.name}')\n"
        "node.close()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ERLNODE_LOG"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert f"handshake with {erl.name} failed" in done.stderr
    assert "connected to" not in done.stderr, "INFO stays quiet by default"


def test_a_flood_of_debug_records_overflows_the_queue_and_the_node_keeps_working(
    erl: Erl, collect: Collect
) -> None:
    # Each message to a name nobody registered is one DEBUG record of the core; 50,000 of
    # them at once are more than the queue holds (10,000) before the drain gets to them.
    logging.getLogger("erlnode").setLevel(logging.DEBUG)
    flood = 50_000
    nobody = random_name("nobody")
    dropped_before = erlnode._erlnode.log_records_dropped()
    with erlnode.Node(random_name("py"), cookie=erl.cookie) as node:
        mbox = node.mailbox("echo")
        erl.eval(f"[{{{nobody}, '{node.name}'}} ! {{flood, I}} || I <- lists:seq(1, {flood})], ok")

        def flooded() -> list[logging.LogRecord]:
            return [r for r in collect.records if r.getMessage().endswith(f"name {nobody}")]

        def dropped() -> int:
            return erlnode._erlnode.log_records_dropped() - dropped_before

        # Every record the core made is accounted for: emitted, or dropped and counted.
        assert wait_until(lambda: len(flooded()) + dropped() >= flood, timeout=60)
        assert dropped() > 0
        assert flooded() and all(r.levelno == logging.DEBUG for r in flooded())
        assert wait_until(
            lambda: collect.find("erlnode", logging.WARNING, "were dropped") is not None,
            timeout=60,
        )
        # The node still works: a round trip through the same connection.
        erl.eval(f"{{echo, '{node.name}'}} ! {{self(), after_flood}}, ok")
        assert mbox.receive(timeout=30)[1] == erlnode.Atom("after_flood")
