"""The interop core against every OTP release of the matrix: OTP 25 (the host's erl), 27 and
the newest (Debian roots from `make otp-roots`, run with chroot: tests/erl.py).

Handshake both ways, ping, messages, the codec corpus (decoded and re-encoded by erlnode,
checked by that release's binary_to_term, and echoed through a connection), rpc both ways.
Links, monitors and gen_server run over the same releases in tests/test_otp.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from erl import OTP_RELEASES, Erl, Otp, echo_forever, random_name, wait_until

import erlnode
from erlnode import Atom

#: Runs the test once per OTP release (the `otp` fixture the `erl` fixture starts).
every_otp = pytest.mark.parametrize("otp", OTP_RELEASES, ids=str)


@every_otp
def test_the_release_under_test_is_the_one_running(erl: Erl, otp: Otp) -> None:
    assert otp.version is not None
    assert erl.eval("erlang:system_info(otp_release)") == otp.version.split(".")[0]


@every_otp
def test_handshake_and_ping_both_ways(erl: Erl, node: erlnode.Node) -> None:
    # Python initiates the handshake.
    assert node.ping(erl.name)
    assert erl.name in node.connected_nodes()
    assert erl.eval(f"net_adm:ping('{node.name}')") == Atom("pong")
    assert Atom(node.name) in erl.eval("nodes(hidden)")
    assert Atom(node.name) not in erl.eval("nodes()")
    # Erlang initiates the handshake, to a node it has never seen.
    with erlnode.Node(random_name("py"), cookie=erl.cookie) as other:
        assert erl.eval(f"net_adm:ping('{other.name}')") == Atom("pong")
        assert wait_until(lambda: erl.name in other.connected_nodes())
        assert other.ping(erl.name)
    # A wrong cookie is refused.
    with erlnode.Node(random_name("py"), cookie="not-the-cookie") as stranger:
        assert not stranger.ping(erl.name, timeout=5)


@every_otp
def test_visible_node_and_global_sync(erl: Erl) -> None:
    with erlnode.Node(random_name("py"), cookie=erl.cookie, hidden=False) as visible:
        assert erl.eval(f"net_adm:ping('{visible.name}')") == Atom("pong")
        assert erl.eval("nodes()") == [Atom(visible.name)]
        assert erl.eval("global:sync()", timeout=15) == Atom("ok")
        assert visible.ping(erl.name)


@every_otp
def test_messages_both_ways_by_name_and_pid(erl: Erl, node: erlnode.Node) -> None:
    mbox = node.mailbox("inbox")
    erl.eval(f'{{inbox, \'{node.name}\'}} ! {{hello, self(), [1, 2.5, <<"bin">>, "text"]}}')
    tag, shell, payload = mbox.receive(timeout=10)
    assert (tag, payload) == (Atom("hello"), [1, 2.5, b"bin", "text"])
    assert isinstance(shell, erlnode.Pid) and shell.node == erl.name
    mbox.send(shell, (Atom("reply"), mbox.pid))
    assert erl.eval("receive {reply, P} -> P after 5000 -> timeout end") == mbox.pid
    erl.eval("P ! {to_pid, 42}")
    assert mbox.receive(timeout=10) == (Atom("to_pid"), 42)
    erl.eval("register(erl_inbox, self())")
    mbox.send(("erl_inbox", erl.name), "on vacation")
    assert erl.eval("receive M -> M after 5000 -> timeout end") == "on vacation"


# -- the term corpus (tests/erlang/codec_corpus.erl) --------------------------------------------


@every_otp
def test_codec_corpus_round_trips_through_this_release(erl: Erl, otp: Otp) -> None:
    encodings = erl.eval("codec_corpus:encodings()", timeout=120)
    assert len({i for i, _, _ in encodings}) >= 200
    results = []
    exact_mismatches = []
    for index, options, data in encodings:
        term = erlnode.decode(data)
        out = erlnode.encode(term)
        results.append((index, options, out))
        results.append((index, options, erlnode.encode(term, compressed=True)))
        # Ours are the bytes of OTP's {minor_version, 2} (UTF-8 atoms; OTP 26's default).
        if options == [(Atom("minor_version"), 2)] and out != data:
            exact_mismatches.append(index)
    erl.bind("Results", erlnode.encode(results))
    assert erl.eval("codec_corpus:check(binary_to_term(Results))", timeout=120) == []
    # OTP 26+ writes every port as V4_PORT_EXT, we (as OTP 25) NEW_PORT_EXT when it fits.
    assert otp.version is not None
    if int(otp.version.split(".")[0]) >= 26:
        # (A tuple: a list of small integers would arrive as a str.)
        port_indices = erl.eval("list_to_tuple(codec_corpus:port_indices())")
        assert len(port_indices) >= 5
        assert tuple(exact_mismatches) == port_indices
    else:
        assert exact_mismatches == []


@every_otp
def test_codec_corpus_echoed_through_a_connection(erl: Erl, node: erlnode.Node) -> None:
    echo_forever(node.mailbox("echo"))
    # Each term sent through distribution (atom cache; fragments for the big ones), decoded by
    # erlnode, encoded again and sent back: it must come back exactly.
    bad = erl.eval(
        f"""
        Big = binary:copy(<<"0123456789abcdef">>, 65536),
        Terms = codec_corpus:terms() ++ [Big, {{Big, self(), make_ref()}}],
        [T || T <- Terms,
              begin {{echo, '{node.name}'}} ! {{self(), T}},
                    receive R -> R =/= T after 10000 -> true end
              end]
        """,
        timeout=120,
    )
    assert bad == []


# -- rpc both ways ------------------------------------------------------------------------------


@every_otp
def test_python_calls_erlang_rpc(erl: Erl, node: erlnode.Node) -> None:
    assert node.rpc(erl.name, "erlang", "node") == Atom(erl.name)
    assert node.rpc(erl.name, "lists", "reverse", [[1, 2, 300]]) == [300, 2, 1]
    assert node.rpc(erl.name, "erlang", "list_to_binary", ["abc"]) == b"abc"
    with pytest.raises(erlnode.RemoteError) as error:
        node.rpc(erl.name, "erlang", "error", [Atom("badarg")])
    assert error.value.reason == Atom("badarg")
    with pytest.raises(erlnode.RemoteExit) as exited:
        node.rpc(erl.name, "erlang", "exit", [(Atom("shutdown"), 7)])
    assert exited.value.reason == (Atom("shutdown"), 7)
    assert node.rpc(erl.name, "erlang", "throw", [Atom("ball")]) == Atom("ball")
    with pytest.raises(erlnode.RemoteError) as undef:
        node.rpc(erl.name, "no_such_module", "f", [1])
    assert undef.value.reason == Atom("undef")
    with pytest.raises(TimeoutError):
        node.rpc(erl.name, "timer", "sleep", [3000], timeout=0.3)
    assert node.rpc(erl.name, "erlang", "abs", [-4]) == 4


def div(a: Any, b: Any) -> Any:
    return a / b


@every_otp
def test_erlang_calls_python_rpc_and_erpc(erl: Erl, node: erlnode.Node) -> None:
    seen: list[Any] = []
    node.expose("pymath", {"add": lambda a, b: a + b, "div": div, "put": seen.append})
    py = node.name
    assert erl.eval(f"rpc:call('{py}', pymath, add, [1, 2])") == 3
    assert erl.eval(f'erpc:call(\'{py}\', pymath, add, [<<"a">>, <<"b">>])') == b"ab"
    assert erl.eval(f"rpc:block_call('{py}', pymath, add, [20, 22])") == 42
    assert erl.eval(f"rpc:multicall(['{py}', '{py}'], pymath, add, [1, 1])") == ("\x02\x02", [])
    assert erl.eval(f"rpc:cast('{py}', pymath, put, [hello])") is True
    assert erl.eval(f"erpc:cast('{py}', pymath, put, [world])") == Atom("ok")
    assert wait_until(lambda: len(seen) == 2)
    assert sorted(seen) == [Atom("hello"), Atom("world")]
    # A Python exception, as rpc and erpc report it.
    badrpc, (exit_tag, (reason, stack)) = erl.eval(f"rpc:call('{py}', pymath, 'div', [1, 0])")
    assert (badrpc, exit_tag) == (Atom("badrpc"), Atom("EXIT"))
    assert reason == (Atom("python"), Atom("ZeroDivisionError"), b"division by zero")
    assert stack[0][:3] == (Atom(__name__), Atom("div"), 2)
    caught = erl.eval(
        f"try erpc:call('{py}', pymath, 'div', [1, 0]) "
        f"catch error:{{exception, {{python, T, M}}, _}} -> {{T, M}} end"
    )
    assert caught == (Atom("ZeroDivisionError"), b"division by zero")
    # An unknown function is undef, in the very shape this release's BEAM gives.
    beam = erl.eval(f"rpc:call('{erl.name}', lists, nope, [1])")
    ours = erl.eval(f"rpc:call('{py}', lists, nope, [1])")
    assert ours == beam
    assert erl.eval(
        f"try erpc:call('{py}', pymath, add, [1, 2, 3]) "
        "catch error:{exception, undef, _} -> undef end"
    ) == Atom("undef")
