"""The node against real Erlang nodes: EPMD, handshake, connections, mailboxes."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from erl import Erl, echo_forever, random_name, wait_until

import erlnode
from erlnode import Atom

HOST = socket.gethostname().split(".")[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ping_both_ways_and_hidden(erl: Erl, node: erlnode.Node) -> None:
    assert node.ping(erl.name)
    assert erl.name in node.connected_nodes()
    assert erl.eval(f"net_adm:ping('{node.name}')") == Atom("pong")
    # Hidden by default: only nodes(hidden) lists us.
    assert Atom(node.name) in erl.eval("nodes(hidden)")
    assert Atom(node.name) not in erl.eval("nodes()")


def test_ping_of_a_missing_node_is_false(node: erlnode.Node) -> None:
    assert not node.ping(f"{random_name('nobody')}@{HOST}", timeout=5)


def test_visible_node_is_listed_in_nodes(erl: Erl) -> None:
    with erlnode.Node(random_name("py"), cookie=erl.cookie, hidden=False) as node:
        assert erl.eval(f"net_adm:ping('{node.name}')") == Atom("pong")
        assert Atom(node.name) in erl.eval("nodes()")


# Messages both ways by name and by pid: tests/test_otp_matrix.py, on every OTP release.


def test_unknown_name_and_closed_mailbox_drop_messages(erl: Erl, node: erlnode.Node) -> None:
    closed = node.mailbox("gone")
    live = node.mailbox("live")
    closed.close()
    erl.eval(f"{{nobody, '{node.name}'}} ! lost")
    erl.eval(f"{{gone, '{node.name}'}} ! lost")
    erl.eval(f"{{live, '{node.name}'}} ! kept")
    assert live.receive(timeout=10) == Atom("kept")
    with pytest.raises(TimeoutError):
        live.receive(timeout=0.3)
    with pytest.raises(erlnode.NodeClosedError):
        closed.receive(timeout=0.1)


def test_a_name_taken_over_after_its_mailbox_closed_gets_the_next_messages(
    erl: Erl, node: erlnode.Node
) -> None:
    # Routing remembers a connection's last destination; closing a mailbox must end that.
    first = node.mailbox("desk")
    erl.bind("Old", erlnode.encode(first.pid))
    erl.eval(f"{{desk, '{node.name}'}} ! one, binary_to_term(Old) ! by_pid")
    assert first.receive(timeout=10) == Atom("one")
    assert first.receive(timeout=10) == Atom("by_pid")
    first.close()
    second = node.mailbox("desk")
    erl.eval(f"{{desk, '{node.name}'}} ! two")
    assert second.receive(timeout=10) == Atom("two")
    # The old pid now names nothing: a message to it is dropped, not given to `second`.
    erl.eval(f"binary_to_term(Old) ! three, {{desk, '{node.name}'}} ! four")
    assert second.receive(timeout=10) == Atom("four")
    with pytest.raises(TimeoutError):
        second.receive(timeout=0.3)


def test_gen_server_call_to_a_missing_name_fails_with_noproc(erl: Erl, node: erlnode.Node) -> None:
    result = erl.eval(f"catch gen_server:call({{nobody, '{node.name}'}}, hi, 20000)", timeout=30)
    assert result[0] == Atom("EXIT")
    assert result[1][0] == Atom("noproc")


ECHO_CORPUS = r"""
    [atom, 'ünïcødé', '', 0, 1, -1, 255, 256, -2147483648, 2147483647, 1 bsl 64, -(1 bsl 2048),
     3.14, -0.0, 1.0e300, <<>>, <<1,2,3>>, <<1:3>>, <<255, 7:5>>, "on vacation", "", [],
     [1, 2, 300], [a | b], [1, {2}, [3 | 4]], {}, {a, {b, {c, {d}}}}, #{}, #{a => 1},
     #{[1] => #{x => y}, {t} => [], 1 => 1.0, 1.0 => 1},
     maps:from_list([{N, N * N} || N <- lists:seq(1, 100)]),
     self(), make_ref(), list_to_pid("<0.42.0>"), fun lists:map/2,
     fun(X) -> X + 1 end, lists:seq(1, 1000), list_to_tuple(lists:seq(1, 70000)),
     lists:foldl(fun(_, Acc) -> [Acc] end, [], lists:seq(1, 5000)),
     unicode:characters_to_list("größer ☃"), binary:copy(<<"x">>, 300000),
     erlang:list_to_port("#Port<0.7>")]
"""


def test_echo_of_a_varied_corpus_is_exact(erl: Erl, node: erlnode.Node) -> None:
    mbox = node.mailbox("echo")
    echo_forever(mbox)
    # The codec corpus (200+ terms made by Erlang) and a few node-specific ones, each sent
    # through distribution (atom cache, fragments for the big ones) and echoed back.
    assert erl.eval("length(codec_corpus:terms())") >= 200
    bad = erl.eval(
        f"""
        Terms = codec_corpus:terms() ++ {ECHO_CORPUS},
        [T || T <- Terms,
              begin {{echo, '{node.name}'}} ! {{self(), T}},
                    receive R -> R =/= T after 10000 -> true end
              end]
        """,
        timeout=120,
    )
    assert bad == []


def test_large_binary_each_way_uses_fragments(erl: Erl, node: erlnode.Node) -> None:
    mbox = node.mailbox("echo")
    echo_forever(mbox)
    ok = erl.eval(
        f"""
        Big = binary:copy(crypto:strong_rand_bytes(4099), 4096),
        {{echo, '{node.name}'}} ! {{self(), {{big, Big}}}},
        receive {{big, Back}} -> Back =:= Big after 60000 -> timeout end
        """,
        timeout=120,
    )
    assert ok is True


def test_interleaved_fragmented_messages_arrive_whole(erl: Erl, node: erlnode.Node) -> None:
    # Several Erlang processes send big (fragmented) and small messages at once, so the
    # fragments of different messages and whole small messages interleave on the connection.
    mbox = node.mailbox("echo")
    echo_forever(mbox)
    result = erl.eval(
        f"""
        Self = self(),
        Senders = [spawn(fun() ->
            Msgs = [case I rem 3 of
                        0 -> crypto:strong_rand_bytes(300000 + I * 7919);
                        _ -> {{small, K, I}}
                    end || I <- lists:seq(1, 12)],
            Bad = [M || M <- Msgs,
                        begin {{echo, '{node.name}'}} ! {{self(), M}},
                              receive R -> R =/= M after 30000 -> true end
                        end],
            Self ! {{done, K, Bad}}
          end) || K <- lists:seq(1, 4)],
        [receive {{done, K, Bad}} -> Bad after 60000 -> timeout end || K <- lists:seq(1, 4)]
        """,
        timeout=120,
    )
    assert result == [[], [], [], []]


def test_python_to_python(node: erlnode.Node) -> None:
    with erlnode.Node(random_name("py"), cookie=node.cookie) as other:
        assert other.ping(node.name)
        assert node.ping(other.name)
        a = node.mailbox("a")
        b = other.mailbox("b")
        a.send(("b", other.name), (a.pid, "hi", [1, 2, 3]))
        sender, text, items = b.receive(timeout=10)
        assert sender == a.pid and text == "hi" and items == [1, 2, 3]
        b.send(sender, Atom("back"))
        assert a.receive(timeout=10) == Atom("back")
        assert other.name in node.connected_nodes()


def test_local_send_by_name_and_pid(node: erlnode.Node) -> None:
    a = node.mailbox()
    b = node.mailbox("local_b")
    a.send("local_b", 1)
    a.send(("local_b", node.name), 2)
    a.send(b.pid, 3)
    node.send(b.pid, 4)
    assert [b.receive(timeout=5) for _ in range(4)] == [1, 2, 3, 4]


def test_node_defaults_come_from_the_rust_core() -> None:
    from erlnode import _erlnode

    params = inspect.signature(erlnode.Node).parameters
    assert params["ticktime"].default == _erlnode.DEFAULT_TICKTIME == 60.0
    assert params["handshake_timeout"].default == _erlnode.DEFAULT_HANDSHAKE_TIMEOUT == 7.0


def test_receive_many_takes_limit_and_still_its_old_name_max(node: erlnode.Node) -> None:
    mbox = node.mailbox()
    mbox.send_many(mbox.pid, range(10))
    assert mbox.receive_many(3, 5.0) == [0, 1, 2]
    assert mbox.receive_many(limit=3, timeout=5) == [3, 4, 5]
    assert mbox.receive_many(max=3, timeout=5) == [6, 7, 8]
    with pytest.raises(TypeError, match="both 'limit' and its old name 'max'"):
        mbox.receive_many(limit=1, max=1, timeout=5)
    with pytest.raises(TypeError, match="both 'limit' and its old name 'max'"):
        mbox.receive_many(1, max=1)
    assert mbox.receive_many(timeout=5) == [9]  # the refused calls took nothing
    mbox.send_many(mbox.pid, range(1500))
    assert mbox.receive_many(timeout=5) == list(range(1024))  # the default limit
    assert mbox.receive_many(limit=1000, timeout=5) == list(range(1024, 1500))


def test_long_names(tmp_path: Any) -> None:
    with Erl(longnames=True) as erl:
        with erlnode.Node(f"{random_name('py')}@127.0.0.1", cookie=erl.cookie) as node:
            assert node.name.endswith("@127.0.0.1")
            assert node.ping(erl.name)
            assert erl.eval(f"net_adm:ping('{node.name}')") == Atom("pong")


def test_dynamic_name_is_assigned_by_the_peer(erl: Erl) -> None:
    with erlnode.Node(None, cookie=erl.cookie) as node:
        with pytest.raises(ValueError):
            node.mailbox()
        assert node.ping(erl.name)
        assert node.name.endswith(f"@{HOST}") and node.name != "nonode@nohost"
        mbox = node.mailbox()
        erl.eval("register(erl_dyn, self())")
        mbox.send(("erl_dyn", erl.name), (Atom("pid"), mbox.pid))
        seen = erl.eval("receive {pid, P} -> P ! welcome, node(P) after 5000 -> timeout end")
        assert seen == Atom(node.name)
        assert mbox.receive(timeout=10) == Atom("welcome")


def test_wrong_cookie_is_refused_both_ways(erl: Erl, caplog: pytest.LogCaptureFixture) -> None:
    with erlnode.Node(random_name("py"), cookie="not-" + erl.cookie) as node:
        assert not node.ping(erl.name, timeout=5)
        assert erl.eval(f"net_adm:ping('{node.name}')") == Atom("pang")
        assert node.connected_nodes() == []
    # Both refusals leave a clear WARNING record (emitted by the thread that drains the
    # core's records: soon, not at once).

    def both_logged() -> bool:
        logged = caplog.text
        return (
            f"handshake with {erl.name} failed: cookie mismatch" in logged
            and "refused a connection from" in logged
            and "wrong digest" in logged
        )

    assert wait_until(both_logged), caplog.text


def test_killed_peer_disappears_and_receive_still_times_out(node: erlnode.Node) -> None:
    with Erl(cookie=node.cookie) as victim:
        assert node.ping(victim.name)
        mbox = node.mailbox()
        outcome: list[str] = []

        def wait() -> None:
            try:
                mbox.receive(timeout=3)
                outcome.append("message")
            except TimeoutError:
                outcome.append("timeout")

        waiter = threading.Thread(target=wait)
        waiter.start()
        os.kill(int(victim.eval("os:getpid()")), signal.SIGKILL)
        assert wait_until(lambda: victim.name not in node.connected_nodes(), timeout=10)
        waiter.join(timeout=10)
        assert outcome == ["timeout"]


def test_ticks_keep_an_idle_connection_alive() -> None:
    with Erl(extra_args=["-kernel", "net_ticktime", "4"]) as erl:
        with erlnode.Node(random_name("py"), cookie=erl.cookie, ticktime=4) as node:
            assert node.ping(erl.name)
            time.sleep(9)
            assert erl.name in node.connected_nodes()
            assert Atom(node.name) in erl.eval("nodes(hidden)")


def test_asyncio_receive(erl: Erl, node: erlnode.Node) -> None:
    mbox = node.mailbox("aio")

    async def main() -> list[Any]:
        with pytest.raises(TimeoutError):
            await mbox.receive_async(timeout=0.2)
        erl.eval(f"[{{aio, '{node.name}'}} ! N || N <- lists:seq(1, 50)]")
        got = []
        async for message in mbox:
            got.append(message)
            if len(got) == 50:
                break
        return got

    assert asyncio.run(main()) == list(range(1, 51))


def test_callback_mode_delivers_in_order_on_one_thread(erl: Erl, node: erlnode.Node) -> None:
    got: list[Any] = []
    threads: set[int] = set()
    done = threading.Event()

    def on_message(message: Any) -> None:
        got.append(message)
        threads.add(threading.get_ident())
        if len(got) == 200:
            done.set()

    node.mailbox("cb", callback=on_message)
    erl.eval(f"[{{cb, '{node.name}'}} ! N || N <- lists:seq(1, 200)]")
    assert done.wait(10)
    assert got == list(range(1, 201))
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_embedded_epmd_serves_erl_and_survives_its_node() -> None:
    port = free_port()
    cookie = random_name("cookie")
    host_node = erlnode.Node(random_name("py"), cookie=cookie, epmd_port=port)
    env = {"ERL_EPMD_PORT": str(port)}
    with Erl(cookie=cookie, env=env, extra_args=["-start_epmd", "false"]) as erl:
        with erlnode.Node(random_name("py"), cookie=cookie, epmd_port=port) as other:
            assert host_node.ping(erl.name)
            assert erl.eval(f"net_adm:ping('{other.name}')") == Atom("pong")
            # The node that serves EPMD closes: erl and `other` stay registered and reachable.
            host_node.close()
            erl.eval(f"erlang:disconnect_node('{other.name}')")
            assert wait_until(lambda: erl.name not in other.connected_nodes(), timeout=5)
            assert other.ping(erl.name)
            assert erl.eval(f"net_adm:ping('{other.name}')") == Atom("pong")


def test_erlnode_nodes_take_over_epmd_when_its_process_exits() -> None:
    port = free_port()
    cookie = random_name("cookie")
    script = (
        "import erlnode, sys, time\n"
        f"n = erlnode.Node('{random_name('host')}', cookie='{cookie}', epmd_port={port})\n"
        "print('up', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"up"
        with erlnode.Node(random_name("py"), cookie=cookie, epmd_port=port) as survivor:
            holder.kill()
            holder.wait(10)
            # The survivor notices the EPMD is gone, serves it itself and registers again,
            # so an erl started afterwards can find it.
            time.sleep(1.5)
            env = {"ERL_EPMD_PORT": str(port)}
            with Erl(cookie=cookie, env=env, extra_args=["-start_epmd", "false"]) as erl:
                assert erl.eval(f"net_adm:ping('{survivor.name}')") == Atom("pong")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_closed_node_refuses_work(erl: Erl) -> None:
    node = erlnode.Node(random_name("py"), cookie=erl.cookie)
    mbox = node.mailbox("x")
    node.close()
    assert node.closed
    with pytest.raises(erlnode.NodeClosedError):
        node.mailbox()
    with pytest.raises(erlnode.NodeClosedError):
        mbox.receive(timeout=1)
    node.close()  # idempotent


def test_send_many_keeps_order_to_erlang_and_python(erl: Erl, node: erlnode.Node) -> None:
    erl.eval("register(many, self())")
    mbox = node.mailbox()
    mbox.send_many(("many", erl.name), [(Atom("n"), i) for i in range(1000)])
    got = erl.eval("[receive {n, I} -> I after 5000 -> timeout end || _ <- lists:seq(1, 1000)]")
    assert got == list(range(1000))
    with erlnode.Node(random_name("py"), cookie=node.cookie) as other:
        sink = other.mailbox("sink")
        mbox.send_many(("sink", other.name), range(500))
        received: list[Any] = []
        while len(received) < 500:
            received.extend(sink.receive_many(timeout=10))
        assert received == list(range(500))


def test_a_burst_of_small_and_big_sends_arrives_in_order(erl: Erl, node: erlnode.Node) -> None:
    # Sends in quick succession go through the writer task, small frames copied into one
    # buffer and big ones (fragments) queued as they are: the order must survive both.
    erl.eval("register(burst, self())")
    mbox = node.mailbox()
    big = bytes(range(256)) * 400
    for i in range(2000):
        mbox.send(("burst", erl.name), (Atom("n"), i, big if i % 97 == 0 else b"s"))
    got = erl.eval(
        "[receive {n, I, B} -> {I, byte_size(B)} after 10000 -> timeout end"
        " || _ <- lists:seq(1, 2000)]",
        timeout=60,
    )
    assert got == [(i, len(big) if i % 97 == 0 else 1) for i in range(2000)]


def test_two_receivers_reading_one_connection_get_every_message_in_order(
    erl: Erl, node: erlnode.Node
) -> None:
    # Both receiving threads read the socket themselves when their mailbox runs dry, while
    # the network thread reads it too: whoever reads, each message arrives once, in order,
    # big (fragmented) ones included.
    count = 20000
    results: dict[str, list[Any]] = {}

    def drain(name: str, mbox: erlnode.Mailbox) -> None:
        got: list[Any] = []
        try:
            while len(got) < count:
                got.append(mbox.receive(timeout=20))
        finally:
            results[name] = got

    threads = [threading.Thread(target=drain, args=(n, node.mailbox(n))) for n in ("left", "right")]
    for t in threads:
        t.start()
    erl.eval(
        f"""Big = binary:copy(<<7>>, 200000),
            [spawn(fun() ->
                [{{Name, '{node.name}'}} ! (case I rem 500 of 0 -> {{I, Big}}; _ -> I end)
                 || I <- lists:seq(1, {count})]
             end) || Name <- [left, right]],
            ok"""
    )
    for t in threads:
        t.join(timeout=60)
    big = b"\x07" * 200000
    expected = [(i, big) if i % 500 == 0 else i for i in range(1, count + 1)]
    assert results["left"] == expected
    assert results["right"] == expected


def test_disconnect_closes_the_connection_while_the_callback_thread_is_idle(
    erl: Erl, node: erlnode.Node
) -> None:
    # The callback dispatcher reads the socket of the mailbox it served last while it spins;
    # once idle it must not keep a connection open that the program disconnected. Whether
    # it spun after the last message depends on timing, hence a few rounds.
    got: list[Any] = []
    node.mailbox("cb", callback=got.append)
    for _ in range(3):
        got.clear()
        assert node.ping(erl.name)
        # A burst, so that the dispatcher's spin pays and it spins (and reads) after the last.
        erl.eval(f"[{{cb, '{node.name}'}} ! I || I <- lists:seq(1, 2000)]")
        assert wait_until(lambda: got == list(range(1, 2001)), timeout=5)
        time.sleep(0.2)  # the dispatcher's spin is over: it waits for the next job
        erl.eval(f"monitor_node('{node.name}', true)")
        assert node.disconnect(erl.name)
        nodedown = erl.eval("receive {nodedown, N} -> N after 5000 -> timeout end")
        assert nodedown == Atom(node.name)


def test_disconnect_fires_links_and_monitors(erl: Erl, node: erlnode.Node) -> None:
    mbox = node.mailbox()
    erl.eval("P = spawn(fun() -> receive stop -> ok end end)")
    target = erl.eval("P")
    mbox.link(target)
    mbox.monitor(target)
    # Signals are asynchronous: wait until the link has reached P.
    assert wait_until(lambda: erl.eval("process_info(P, links)")[1] != [], timeout=5)
    assert node.disconnect(erl.name)
    assert not node.disconnect(erl.name)
    assert erl.name not in node.connected_nodes()
    got = {mbox.receive(timeout=5)[0] for _ in range(2)}
    assert got == {Atom("EXIT"), Atom("DOWN")}
    assert wait_until(lambda: Atom(node.name) not in erl.eval("nodes(hidden)"), timeout=5)


def test_a_receiver_that_stops_receiving_does_not_hold_up_its_connection(
    erl: Erl, node: erlnode.Node
) -> None:
    # A receiver spinning on an empty mailbox reads the socket itself and keeps the kernel
    # from waking the network thread for each arriving message (it holds the socket). Once
    # it stops receiving, a small message for another mailbox on the same connection must
    # still arrive: the network thread takes the socket back. Whether the last round trip
    # left the socket held depends on timing (a Rust test holds it on purpose); this checks
    # the whole path against a real Erlang peer.
    stream, other = node.mailbox("stream"), node.mailbox("other")
    rounds = 300
    for _ in range(3):
        erl.eval(
            f"""Dest = {{stream, '{node.name}'}},
                spawn(fun() ->
                    [begin Dest ! {{self(), I}}, receive I -> ok end end
                     || I <- lists:seq(1, {rounds})],
                    {{other, '{node.name}'}} ! small
                end),
                ok"""
        )
        # Round trips: each ping comes while the receiver spins, which so holds the socket.
        for i in range(1, rounds + 1):
            sender, got = stream.receive(timeout=10)
            assert got == i
            stream.send(sender, got)
        started = time.monotonic()
        assert other.receive(timeout=5) == Atom("small")
        assert time.monotonic() - started < 1.0


def network_thread_policy() -> int:
    """The scheduling policy of this process's erlnode network thread."""
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/comm") as comm:
            if comm.read().strip() == "erlnode-net":
                return os.sched_getscheduler(int(tid))
    raise AssertionError("no erlnode-net thread")


def test_the_network_thread_gives_up_wake_up_preemption_only_during_bulk_traffic(
    erl: Erl, node: erlnode.Node
) -> None:
    # A read that finds a backlog turns the network thread SCHED_BATCH, a small read turns it
    # back (see runtime::note_read). Nobody receives while the messages come, so the network
    # thread is the only reader of the socket. 1 MB comes in 64 KiB loopback segments, so even
    # its last read is over the 8 KiB mark.
    if os.sched_getscheduler(0) != os.SCHED_OTHER:
        pytest.skip("the test runs under another policy, which the network thread keeps")
    mbox = node.mailbox("bulk")
    assert node.ping(erl.name)
    # A small message of the connection's opening exchanges (global's) may still come after
    # the bulk one and turn the thread back: then the next bulk message shows it.
    sent = 0
    while True:
        erl.eval(f"{{bulk, '{node.name}'}} ! binary:copy(<<7>>, 1000000), ok")
        sent += 1
        if wait_until(lambda: network_thread_policy() == os.SCHED_BATCH, timeout=5):
            break
        assert sent < 3, "bulk traffic did not turn the network thread SCHED_BATCH"
    for _ in range(sent):
        assert mbox.receive(timeout=10) == b"\x07" * 1_000_000
    erl.eval(f"{{bulk, '{node.name}'}} ! small, ok")
    assert wait_until(lambda: network_thread_policy() == os.SCHED_OTHER, timeout=10)
    assert mbox.receive(timeout=10) == Atom("small")


def test_the_last_message_of_a_stream_arrives_while_nobody_reads_the_socket(
    erl: Erl, node: erlnode.Node
) -> None:
    # While a peer streams, the network thread keeps the socket's last byte in its queue
    # (after peeking at it), so that Linux does not acknowledge every read (see
    # ReadState::read); the next read skips it. `receive(timeout=0)` only looks and never
    # reads the socket itself: every message must come, each once, from the network thread.
    mbox = node.mailbox("stream")
    assert node.ping(erl.name)
    for burst in range(5):
        erl.eval(
            f"[{{stream, '{node.name}'}} ! {{{burst}, I, binary:copy(<<1>>, 4000)}}"
            " || I <- lists:seq(1, 500)], ok"
        )
        got: list[Any] = []
        deadline = time.monotonic() + 5
        while len(got) < 500 and time.monotonic() < deadline:
            try:
                got.append(mbox.receive(timeout=0))
            except TimeoutError:
                time.sleep(0.002)
        assert [(m[0], m[1]) for m in got] == [(burst, i) for i in range(1, 501)]
