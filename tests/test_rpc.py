"""RPC both ways against a real erl: `Node.rpc` into OTP's rex, and rpc/erpc into exposed Python."""

from __future__ import annotations

import socket
import threading
import time
import types
from typing import Any

import pytest
from erl import Erl, random_name, wait_until

import erlnode
from erlnode import Atom

HOST = socket.gethostname().split(".")[0]


def div(a: Any, b: Any) -> Any:
    return a / b


@pytest.fixture
def pymath(node: erlnode.Node) -> erlnode.Node:
    node.expose("pymath", {"add": lambda a, b: a + b, "div": div})
    return node


# -- Python calling Erlang --------------------------------------------------------------------


def test_rpc_returns_values(erl: Erl, node: erlnode.Node) -> None:
    assert node.rpc(erl.name, "erlang", "node") == Atom(erl.name)
    assert node.rpc(erl.name, "lists", "reverse", [[1, 2, 300]]) == [300, 2, 1]
    assert node.rpc(erl.name, "erlang", "list_to_binary", ["abc"]) == b"abc"


def test_rpc_error_exit_throw_undef(erl: Erl, node: erlnode.Node) -> None:
    with pytest.raises(erlnode.RemoteError) as error:
        node.rpc(erl.name, "erlang", "error", [Atom("badarg")])
    assert error.value.reason == Atom("badarg")
    assert error.value.stacktrace and error.value.stacktrace[0][:2] == (Atom("erlang"), "error")

    with pytest.raises(erlnode.RemoteExit) as exited:
        node.rpc(erl.name, "erlang", "exit", [(Atom("shutdown"), 7)])
    assert exited.value.reason == (Atom("shutdown"), 7)

    # As rpc:call: a throw is a value.
    assert node.rpc(erl.name, "erlang", "throw", [Atom("ball")]) == Atom("ball")

    with pytest.raises(erlnode.RemoteError) as undef:
        node.rpc(erl.name, "no_such_module", "f", [1])
    assert undef.value.reason == Atom("undef")
    assert isinstance(undef.value, erlnode.RpcError)


def test_rpc_to_a_missing_node_is_badrpc_nodedown(node: erlnode.Node) -> None:
    started = time.monotonic()
    with pytest.raises(erlnode.BadRpc) as bad:
        node.rpc(f"{random_name('nobody')}@{HOST}", "erlang", "node", timeout=10)
    assert bad.value.reason == Atom("nodedown")
    assert time.monotonic() - started < 8


def test_rpc_timeout_is_timeout_error(erl: Erl, node: erlnode.Node) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        node.rpc(erl.name, "timer", "sleep", [3000], timeout=0.3)
    assert time.monotonic() - started < 2
    # The node is still usable afterwards.
    assert node.rpc(erl.name, "erlang", "abs", [-4]) == 4


def test_rpc_remote_output_does_not_hang(
    erl: Erl, node: erlnode.Node, capsys: pytest.CaptureFixture[str]
) -> None:
    assert node.rpc(erl.name, "io", "format", ["hello ~s ~p~n", ["world", [1, Atom("a")]]]) == "ok"
    assert node.rpc(erl.name, "io", "put_chars", [b"raw bytes\n"]) == "ok"
    out = capsys.readouterr().out
    assert "hello world [1,a]\n" in out
    assert "raw bytes\n" in out


def test_rpc_between_two_python_nodes(erl: Erl, pymath: erlnode.Node) -> None:
    with erlnode.Node(random_name("py2"), cookie=erl.cookie) as other:
        assert other.rpc(pymath.name, "pymath", "add", [2, 3]) == 5
        with pytest.raises(erlnode.RemoteError) as error:
            other.rpc(pymath.name, "pymath", "div", [1, 0])
        assert error.value.reason[:2] == (Atom("python"), Atom("ZeroDivisionError"))


# -- Erlang calling Python --------------------------------------------------------------------


def test_rpc_and_erpc_call_into_python(erl: Erl, pymath: erlnode.Node) -> None:
    py = pymath.name
    assert erl.eval(f"rpc:call('{py}', pymath, add, [1, 2])") == 3
    assert erl.eval(f'erpc:call(\'{py}\', pymath, add, [<<"a">>, <<"b">>])') == b"ab"
    assert erl.eval(f"rpc:block_call('{py}', pymath, add, [20, 22])") == 42
    # Several at once (rpc:multicall goes through erpc too).
    assert erl.eval(f"rpc:multicall(['{py}', '{py}'], pymath, add, [1, 1])") == ("\x02\x02", [])


def test_unknown_functions_are_undef_like_beam(erl: Erl, pymath: erlnode.Node) -> None:
    py = pymath.name
    assert erl.eval(f"rpc:call('{py}', pymath, nope, [7])") == (
        Atom("badrpc"),
        (Atom("EXIT"), (Atom("undef"), [(Atom("pymath"), Atom("nope"), "\x07", [])])),
    )
    # Wrong arity and unexposed module: undef too, exactly as BEAM reports it.
    for expr in [f"rpc:call('{py}', pymath, add, [1])", f"rpc:call('{py}', nomod, f, [])"]:
        reply = erl.eval(expr)
        assert reply[0] == "badrpc" and reply[1][1][0] == Atom("undef"), reply
    assert erl.eval(
        f"try erpc:call('{py}', pymath, add, [1, 2, 3]) "
        "catch error:{exception, undef, _} -> undef end"
    ) == Atom("undef")
    # The same shape BEAM gives for a missing function.
    beam = erl.eval(f"rpc:call('{erl.name}', lists, nope, [1])")
    ours = erl.eval(f"rpc:call('{py}', lists, nope, [1])")
    assert beam == ours


def test_python_exception_reaches_erlang(erl: Erl, pymath: erlnode.Node) -> None:
    py = pymath.name
    badrpc, (exit_tag, (reason, stack)) = erl.eval(f"rpc:call('{py}', pymath, 'div', [1, 0])")
    assert (badrpc, exit_tag) == (Atom("badrpc"), Atom("EXIT"))
    assert reason == (Atom("python"), Atom("ZeroDivisionError"), b"division by zero")
    # The Python stack, innermost first, in Erlang's stack format.
    assert stack[0][:3] == (Atom(__name__), Atom("div"), 2)
    assert dict(stack[0][3])[Atom("line")] > 0
    caught = erl.eval(
        f"try erpc:call('{py}', pymath, 'div', [1, 0]) "
        f"catch error:{{exception, {{python, T, M}}, _}} -> {{T, M}} end"
    )
    assert caught == (Atom("ZeroDivisionError"), b"division by zero")


def test_erlang_exceptions_raised_from_python(erl: Erl, node: erlnode.Node) -> None:
    def fail(kind: Any) -> None:
        if kind == "throw":
            raise erlnode.ErlangThrow(Atom("ball"))
        if kind == "exit":
            raise erlnode.ErlangExit(Atom("bye"))
        raise erlnode.ErlangError((Atom("badarg"), 1))

    node.expose("fail", {"fail": fail})
    py = node.name
    assert erl.eval(f"rpc:call('{py}', fail, fail, [throw])") == Atom("ball")
    assert erl.eval(f"catch erpc:call('{py}', fail, fail, [throw])") == Atom("ball")
    assert erl.eval(f"rpc:call('{py}', fail, fail, [exit])") == (
        Atom("badrpc"),
        (Atom("EXIT"), Atom("bye")),
    )
    assert erl.eval(
        f"try erpc:call('{py}', fail, fail, [exit]) catch exit:{{exception, R1}} -> R1 end"
    ) == Atom("bye")
    assert erl.eval(
        f"try erpc:call('{py}', fail, fail, [error]) catch error:{{exception, R2, _}} -> R2 end"
    ) == (Atom("badarg"), 1)


def test_unencodable_result_is_an_error_not_a_hang(erl: Erl, node: erlnode.Node) -> None:
    node.expose("weird", {"obj": lambda: object()})
    reply = erl.eval(f"rpc:call('{node.name}', weird, obj, [])")
    assert reply[0] == Atom("badrpc")
    assert reply[1][1][0][:2] == (Atom("python"), Atom("EncodeError"))
    reply = erl.eval(f"rpc:block_call('{node.name}', weird, obj, [])")
    assert reply[1][1][0][:2] == (Atom("python"), Atom("EncodeError"))


def test_expose_module_object_and_decorator(erl: Erl, node: erlnode.Node) -> None:
    mod = types.ModuleType("shapes")
    exec(
        "import os\nfrom os import getcwd\n"
        "def area(w, h):\n    return w * h\n"
        "def _private():\n    return 1\n",
        mod.__dict__,
    )
    node.expose("shapes", mod)
    assert node.exposed()["shapes"] == ["area"]  # not os, getcwd or _private

    @node.expose_function("shapes")
    def perimeter(w: int, h: int) -> int:
        return 2 * (w + h)

    @node.expose_function("shapes", name="square")
    def sq(x: int) -> int:
        return x * x

    assert perimeter(1, 1) == 4  # still a plain function
    assert erl.eval(f"rpc:call('{node.name}', shapes, area, [3, 4])") == 12
    assert erl.eval(f"erpc:call('{node.name}', shapes, perimeter, [3, 4])") == 14
    assert erl.eval(f"erpc:call('{node.name}', shapes, square, [5])") == 25
    assert erl.eval(f"rpc:call('{node.name}', shapes, getcwd, [])")[1][1][0] == Atom("undef")
    node.unexpose("shapes", "area")
    assert erl.eval(f"rpc:call('{node.name}', shapes, area, [3, 4])")[1][1][0] == Atom("undef")


def test_rpc_cast_runs_the_function(erl: Erl, node: erlnode.Node) -> None:
    seen: list[Any] = []
    node.expose("sink", {"put": seen.append})
    assert erl.eval(f"rpc:cast('{node.name}', sink, put, [hello])") is True
    assert erl.eval(f"erpc:cast('{node.name}', sink, put, [world])") == Atom("ok")
    assert wait_until(lambda: len(seen) == 2)
    assert sorted(seen) == [Atom("hello"), Atom("world")]


def test_slow_function_does_not_block_others_and_erpc_timeout(erl: Erl, node: erlnode.Node) -> None:
    release = threading.Event()

    def slow() -> Atom:
        release.wait(10)
        return Atom("slow_done")

    node.expose("work", {"slow": slow, "fast": lambda: Atom("fast")})
    py = node.name
    try:
        # erpc:call with a timeout gives up while Python is still busy.
        assert erl.eval(
            f"try erpc:call('{py}', work, slow, [], 300) catch error:{{erpc, R3}} -> R3 end"
        ) == Atom("timeout")
        # Meanwhile a second slow call is running, and a fast one is not held up.
        erl.eval(
            "Parent = self(), "
            f"spawn(fun() -> Parent ! {{slow, rpc:call('{py}', work, slow, [])}} end)"
        )
        started = time.monotonic()
        assert erl.eval(f"rpc:call('{py}', work, fast, [])") == Atom("fast")
        assert time.monotonic() - started < 2
    finally:
        release.set()
    assert erl.eval("receive {slow, Slow} -> Slow after 10000 -> timeout end") == Atom("slow_done")


def test_spawn_of_anything_but_erpc_is_refused(erl: Erl, node: erlnode.Node) -> None:
    reply = erl.eval(
        f"Req = erlang:spawn_request('{node.name}', lists, seq, [1, 2], []), "
        "receive {spawn_reply, Req, error, E} -> {error, E}; {spawn_reply, Req, ok, _} -> ok "
        "after 5000 -> timeout end"
    )
    assert reply == (Atom("error"), Atom("notsup"))
