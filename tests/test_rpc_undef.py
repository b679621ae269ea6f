"""A call into a Python node that has nothing to run answers `undef`, as BEAM does for a missing
function, from Erlang (every OTP release of the matrix) and from Elixir: never `{erpc, notsup}`,
whether anything is exposed or not."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from erl import OTP_RELEASES, Erl, random_name

import erlnode
from erlnode import Atom

every_otp = pytest.mark.parametrize("otp", OTP_RELEASES, ids=str)

UNDEF = Atom("undef")


def erpc_outcome(erl: Erl, node: str, module: str, function: str, args: str = "[]") -> Any:
    """What `erpc:call` raised (class and reason), or ('returned', value)."""
    # Fresh variable names: the erl shell keeps every binding between evaluations.
    c, r = random_name("C"), random_name("R")
    return erl.eval(
        f"try {{returned, erpc:call('{node}', {module}, {function}, {args}, 5000)}}"
        f" catch {c}:{r} -> {{{c}, {r}}} end"
    )


def assert_undef_like_beam(erl: Erl, node: str, module: str, function: str) -> None:
    """erpc and rpc (`call` and `block_call`) see `undef` for `module:function()` on `node`,
    in the shape a BEAM node gives for a module it does not have."""
    # What BEAM itself says for a missing function, called the same way on itself.
    beam = erpc_outcome(erl, erl.name, "no_such_module", "no_such_function")
    assert beam[:1] == (Atom("error"),) and beam[1][:2] == (Atom("exception"), UNDEF), beam
    cls, reason = erpc_outcome(erl, node, module, function)
    assert (cls, reason[:2]) == (Atom("error"), (Atom("exception"), UNDEF)), (cls, reason)
    assert reason[2][0] == (Atom(module), Atom(function), [], [])
    for call in ("call", "block_call"):
        badrpc = erl.eval(f"rpc:{call}('{node}', {module}, {function}, [], 5000)")
        assert badrpc[0] == Atom("badrpc") and badrpc[1][0] == Atom("EXIT"), badrpc
        assert badrpc[1][1][0] == UNDEF, badrpc
        assert badrpc[1][1][1][0] == (Atom(module), Atom(function), [], [])


@every_otp
def test_a_node_exposing_nothing_answers_undef(erl: Erl, node: erlnode.Node) -> None:
    assert node.exposed() == {}
    assert_undef_like_beam(erl, node.name, "erlang", "node")
    assert_undef_like_beam(erl, node.name, "nomod", "nofun")


@every_otp
def test_undef_whether_or_not_anything_is_exposed(erl: Erl, node: erlnode.Node) -> None:
    node.expose("pymath", {"add": lambda a, b: a + b})
    assert_undef_like_beam(erl, node.name, "erlang", "node")
    assert_undef_like_beam(erl, node.name, "pymath", "sub")
    assert erpc_outcome(erl, node.name, "pymath", "add", "[1, 2]") == (Atom("returned"), 3)
    # Everything withdrawn again: still undef, not notsup.
    node.unexpose("pymath")
    assert node.exposed() == {}
    assert_undef_like_beam(erl, node.name, "pymath", "add")


def test_a_node_named_by_its_peer_answers_undef_once_named(erl: Erl) -> None:
    # A NAME_ME node cannot be reached before its first connection (it has no name to be
    # called by); once it has pinged, the RPC server is there.
    with erlnode.Node(None, cookie=erl.cookie) as node:
        assert node.ping(erl.name)
        assert_undef_like_beam(erl, node.name, "erlang", "node")


def test_elixir_erpc_into_a_node_exposing_nothing_gets_undef(
    erl: Erl, node: erlnode.Node, tmp_path: Path
) -> None:
    if shutil.which("elixir") is None:
        if os.environ.get("CI"):
            pytest.fail("elixir is not on PATH (and CI is set)")
        pytest.skip("elixir is not on PATH")
    script = tmp_path / "undef.exs"
    script.write_text(
        f"py = :'{node.name}'\n"
        "outcome =\n"
        "  try do\n"
        "    {:returned, :erpc.call(py, :erlang, :node, [])}\n"
        "  catch\n"
        "    kind, reason -> {kind, reason}\n"
        "  end\n"
        "IO.inspect(outcome)\n"
        "IO.inspect(:rpc.call(py, :erlang, :node, []))\n"
        "IO.inspect(:rpc.call(py, Enum, :count, [[1, 2]]))\n"
    )
    done = subprocess.run(
        ["elixir", "--sname", random_name("ex"), "--cookie", erl.cookie, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == [
        "{:error, {:exception, :undef, [{:erlang, :node, [], []}]}}",
        "{:badrpc, {:EXIT, {:undef, [{:erlang, :node, [], []}]}}}",
        "{:badrpc, {:EXIT, {:undef, [{Enum, :count, [[1, 2]], []}]}}}",
    ], done.stdout
