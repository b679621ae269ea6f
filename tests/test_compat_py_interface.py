"""erlnode.compat.py_interface: py_interface programs on erlnode.

The main test runs the client of the article this project grew from ("Python as an Erlang
Distributed Node": py_interface talking to the Erlang messenger), with only its import lines
changed, against our messenger server and a scripted Erlang user. The other tests cover the
event loop (timers, file descriptors, hand-over from other threads), the term constructors and
the rest of the node and mailbox API.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import erlnode
from erlnode import Atom
from erlnode.compat.py_interface import erl_common, erl_eventhandler, erl_node, erl_opts, erl_term

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "messenger"
TIMEOUT = 10.0

# The article's client, in Python 3 and with the host, node and cookie from the command line;
# the imports are the only other change.
ARTICLE_CLIENT = """
import sys
import types

from erlnode.compat.py_interface import erl_common
from erlnode.compat.py_interface import erl_term
from erlnode.compat.py_interface import erl_node
from erlnode.compat.py_interface import erl_opts
from erlnode.compat.py_interface import erl_eventhandler

ownNodeName, serverNode, cookie = sys.argv[1:4]


def main():
    global mb
    # Create Erl node and Publish it
    n = erl_node.ErlNode(ownNodeName, erl_opts.ErlNodeOpts(cookie=cookie))
    n.Publish()
    # Create a mailbox for receiving messages
    mb = n.CreateMBox(MBoxCallback)
    # Register mbox with a symbolic name - not used in this example
    mb.RegisterName("pyclient")
    # Create and start an eventhandler loop
    evhand = erl_eventhandler.GetEventHandler()
    timeout = 1
    # Add a timer event for the logon message to be sent
    evhand.AddTimerEvent(timeout, logon_callback)
    evhand.Loop()


def logon_callback():
    global mb
    msg = (mb.Self(), erl_term.ErlAtom('logon'), erl_term.ErlAtom('python'))
    mb.Send(('messenger', serverNode), msg)


def MBoxCallback(msg, *k, **kw):
    global mb
    if len(msg) > 2:
        # send back a vacation message to the sender
        m = (mb.Self(), erl_term.ErlAtom('message_to'), msg[1], "on vacation")
        mb.Send(('messenger', serverNode), m)
    print("Incoming msg=%s (k=%s, kw=%s)" % (repr(msg), repr(k), repr(kw)))


main()
"""


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("messenger_demo", EXAMPLE / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = load_demo()


@pytest.fixture
def server() -> Iterator[Any]:
    """A running messenger server (through the demo's process helpers)."""
    if shutil.which("erl") is None:
        pytest.fail("erl is not on PATH: install Erlang/OTP (make erlang)")
    output: list[str] = []
    s = demo.Scenario(show=output.append)
    try:
        s.compile_erlang()
        s.start("server", s.erl(f"messenger_{s.suffix}", "-s", "messenger", "start"))
        s.server_node = s.expect("server", r"started on node (\S+)", "server up").group(1)
        yield s
    finally:
        s.close()


def test_article_client_logs_on_answers_and_is_logged_off_through_the_link(
    server: Any, tmp_path: Path
) -> None:
    script = tmp_path / "article_client.py"
    script.write_text(ARTICLE_CLIENT)
    client = server.start(
        "python",
        [sys.executable, "-u", str(script), f"pyclient_{server.suffix}", server.server_node,
         server.cookie],
    )  # fmt: skip
    # The timer fired in the loop and sent the logon; the reply's atoms are ErlAtoms.
    server.expect("server", r"logon: python ", "the article client logged on")
    server.expect(
        "python",
        re.escape("Incoming msg=(<erl-atom: 'messenger'>, <erl-atom: 'logged_on'>) (k=(), kw={})"),
        "the client printed the logon reply",
    )

    server.start(
        "erlang",
        server.erl(
            f"erlang_user_{server.suffix}",
            "-run", "erl_user", "main", server.server_node, "erlang_user", "python", "hi there",
        ),
    )  # fmt: skip
    server.expect(
        "python",
        re.escape(
            "Incoming msg=(<erl-atom: 'message_from'>, <erl-atom: 'erlang_user'>, 'hi there')"
        ),
        "the Erlang user's message reached the article client",
    )
    server.expect(
        "server", re.escape('transfer: python -> erlang_user: "on vacation"'), "auto-reply sent"
    )
    server.expect("erlang", re.escape('message from python: "on vacation"'), "auto-reply arrived")
    server.expect(
        "python",
        re.escape("Incoming msg=(<erl-atom: 'messenger'>, <erl-atom: 'sent'>)"),
        "the server confirmed the auto-reply",
    )

    # The article's client runs until killed; the server sees the link break.
    os.kill(client.popen.pid, signal.SIGTERM)
    client.popen.wait(timeout=TIMEOUT)
    server.expect("server", r"EXIT: python ", "the article client was logged off through the link")


# -- the event loop --------------------------------------------------------------------------


@pytest.fixture
def evhand() -> Iterator[erl_eventhandler._EventHandler]:
    handler = erl_eventhandler.GetEventHandler()
    assert handler is erl_eventhandler.GetEventHandler()
    yield handler
    handler.StopLooping()


def run_loop(evhand: erl_eventhandler._EventHandler, limit: float = TIMEOUT) -> None:
    """Runs the loop until a callback stops it; a safety timer fails the test instead of
    hanging it."""
    expired: list[bool] = []

    def safety() -> None:
        expired.append(True)
        evhand.StopLooping()

    safety_id = evhand.AddTimerEvent(limit, safety)
    evhand.Loop()
    evhand.DelTimerEvent(safety_id)
    assert not expired, "the event loop was not stopped by the test's callbacks"


def test_timers_fire_in_due_order_with_arguments(evhand: erl_eventhandler._EventHandler) -> None:
    fired: list[Any] = []
    evhand.AddTimerEvent(0.15, fired.append, "third")
    evhand.AddTimerEvent(0.05, fired.append, "first")
    evhand.AddTimerEvent(0.05, lambda x, y=0: fired.append((x, y)), "second", y=2)
    cancelled = evhand.AddTimerEvent(0.1, fired.append, "cancelled")
    evhand.DelTimerEvent(cancelled)
    evhand.AddTimerEvent(0.2, evhand.StopLooping)
    started = time.monotonic()
    run_loop(evhand)
    assert fired == ["first", ("second", 2), "third"]
    assert time.monotonic() - started >= 0.2


def test_posted_work_runs_on_the_loop_thread(evhand: erl_eventhandler._EventHandler) -> None:
    threads: list[threading.Thread] = []

    def from_other_thread() -> None:
        time.sleep(0.05)
        evhand.Post(lambda: threads.append(threading.current_thread()))
        evhand.Post(evhand.StopLooping)

    threading.Thread(target=from_other_thread).start()
    run_loop(evhand)
    assert threads == [threading.current_thread()]


def test_read_events_stack_per_connection(evhand: erl_eventhandler._EventHandler) -> None:
    r, w = os.pipe()
    calls: list[str] = []
    try:

        def bottom() -> None:
            calls.append("bottom")
            os.read(r, 1)
            evhand.StopLooping()

        def top() -> None:
            calls.append("top")
            os.read(r, 1)
            evhand.PopReadEvent(r)

        evhand.PushReadEvent(r, bottom)
        evhand.PushReadEvent(r, top)
        os.write(w, b"ab")
        run_loop(evhand)
        evhand.PopReadEvent(r)
        assert calls == ["top", "bottom"]
        assert r not in evhand.readEvents
    finally:
        os.close(r)
        os.close(w)


# -- terms -----------------------------------------------------------------------------------


def test_term_constructors_map_onto_erlnode_types() -> None:
    atom = erl_term.ErlAtom("logon")
    assert isinstance(atom, Atom) and atom.atomText == "logon" and atom == Atom("logon")
    assert erl_term.ErlAtom(b"caf\xe9").atomText == "café"
    assert erl_term.IsErlAtom(Atom("x")) and not erl_term.IsErlAtom("x")
    assert erl_term.ErlString(b"abc") == "abc" and erl_term.ErlString("abc") == "abc"
    assert erl_term.ErlBinary(b"\x00\xff") == b"\x00\xff" and erl_term.IsErlBinary(b"")
    assert erl_term.ErlTuple([1, 2]) == (1, 2)
    assert erl_term.ErlList((1, 2)) == [1, 2]
    assert erl_term.ErlNumber(7) == 7
    assert erl_term.ErlMap({"a": 1}, b=2) == {"a": 1, "b": 2}
    pid = erl_term.ErlPid("py@host", 1, 0, 3)
    assert isinstance(pid, erlnode.Pid) and erl_term.IsErlPid(pid)
    assert (pid.node, pid.id, pid.serial, pid.creation) == ("py@host", 1, 0, 3)
    ref = erl_term.ErlRef("py@host", 5, 3)
    assert erl_term.IsErlRef(ref)
    improper = erl_term.ErlImproperList([1], Atom("tail"))
    assert erl_term.IsErlImproperList(improper)
    assert erl_term.IODataToStr(["ab", [99, b"d"]]) == "abcd"
    assert erl_term.StrToList("hi") == [104, 105]


def test_received_atoms_become_erl_atoms() -> None:
    term = (Atom("a"), [Atom("b"), "s", b"x"], {Atom("k"): (Atom("v"),)}, 1)
    converted = erl_term.FromErlnode(term)
    assert converted == term
    assert converted[0].atomText == "a"
    assert converted[1][0].atomText == "b"
    key = next(iter(converted[2]))
    assert isinstance(key, erl_term.ErlAtom) and converted[2][key][0].atomText == "v"
    assert erl_term.BinaryToTerm(erl_term.TermToBinary(term))[1][0].atomText == "b"


def test_node_names_are_aligned_like_py_interface() -> None:
    assert erl_common.AlignNodeName("a@b") == "a@b"
    short = erl_common.AlignNodeName("a")
    assert short.startswith("a@") and "." not in short
    assert erl_common.AlignNodeName("a", 0).startswith("a@")
    cb = erl_common.Callback(lambda *a, **kw: (a, kw), 3, k=4)
    assert cb(1, 2) == ((1, 2, 3), {"k": 4})
    assert erl_opts.ErlNodeOpts(cookie="c").GetCookie() == "c"


# -- node and mailboxes in this process ------------------------------------------------------


def test_mailboxes_callbacks_ping_and_rpc_in_the_loop(
    server: Any, evhand: erl_eventhandler._EventHandler
) -> None:
    opts = erl_opts.ErlNodeOpts(cookie=server.cookie)
    node = erl_node.ErlNode(f"compat_{server.suffix}", opts)
    try:
        node.Publish()
        seen: list[Any] = []
        loop_thread = threading.current_thread()

        def on_message(msg: Any, *k: Any, **kw: Any) -> None:
            assert threading.current_thread() is loop_thread
            seen.append(msg)
            if msg == ("messenger", "sent"):
                evhand.StopLooping()

        alice = node.CreateMBox(on_message)
        bob = node.CreateMBox(on_message)
        bob.RegisterName("bob")
        results: list[Any] = []

        def logon() -> None:
            for mbox, name in ((alice, "alice"), (bob, "bob")):
                mbox.Send(
                    ("messenger", server.server_node),
                    (mbox.Self(), erl_term.ErlAtom("logon"), erl_term.ErlAtom(name)),
                )
            node.Ping(server.server_node, lambda result: results.append(("ping", result)))
            nobody = f"nobody_{server.suffix}@{server.server_node.split('@')[1]}"
            node.Ping(nobody, lambda r: results.append(("ping", r)))
            alice.SendRPC(server.server_node, "erlang", "node", [], results.append)
            # To a local registered name, as py_interface allowed.
            alice.Send("bob", (Atom("local"), alice.Self()))
            evhand.AddTimerEvent(0.5, send_message)

        def send_message() -> None:
            alice.Send(
                ("messenger", server.server_node),
                (alice.Self(), erl_term.ErlAtom("message_to"), erl_term.ErlAtom("bob"), "hey"),
            )

        evhand.AddTimerEvent(0, logon)
        run_loop(evhand)
        assert seen.count(("messenger", "logged_on")) == 2
        assert (Atom("local"), alice.Self()) in seen
        assert ("message_from", "alice", "hey") in seen
        assert ("ping", "pong") in results
        assert Atom(server.server_node) in results
        # The failing ping may take a moment longer: give the loop a second to deliver it.
        evhand.AddTimerEvent(1.0, evhand.StopLooping)
        run_loop(evhand)
        assert ("ping", "pang") in results
    finally:
        node.Close()
    server.expect("server", r"EXIT: alice ", "alice logged off when the node closed")
