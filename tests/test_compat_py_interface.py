"""erlnode.compat.py_interface: py_interface programs on erlnode.

The main test runs the client of the article this project grew from ("Python as an Erlang
Distributed Node": py_interface talking to the Erlang messenger), with only its import lines
changed, against our messenger server and a scripted Erlang user. The other tests cover the
event loop (timers, file descriptors, hand-over from other threads), the term constructors and
the rest of the node and mailbox API.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import erlnode
from erlnode import Atom
from erlnode.compat import py_interface as py_interface_package
from erlnode.compat.py_interface import (
    erl_common,
    erl_epmd,
    erl_eventhandler,
    erl_node,
    erl_opts,
    erl_term,
)

sys.path.insert(0, str(Path(__file__).parent))
from erl import Erl  # noqa: E402 - tests/ is on the path just above

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
    handler.SetStateStandAlone()
    # A failed test must not leave callbacks on closed file descriptors to the next one.
    for table in (handler.readEvents, handler.writeEvents, handler.exceptEvents):
        table.clear()


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
    # Pids, ports, references are py_interface's classes (node an ErlAtom), sent as erlnode's.
    pid = erl_term.ErlPid("py@host", 1, 0, 3)
    native = erl_term.ToErlnode(pid)
    assert isinstance(native, erlnode.Pid) and erl_term.IsErlPid(pid) and erl_term.IsErlPid(native)
    assert (pid.node, pid.id, pid.serial, pid.creation) == ("py@host", 1, 0, 3)
    assert pid.node.atomText == "py@host" and pid == native and hash(pid) == hash(native)
    assert erl_term.FromErlnode(native).equals(pid)
    ref = erl_term.ErlRef("py@host", 5, 3)
    assert erl_term.IsErlRef(ref) and erl_term.ToErlnode(ref) == erlnode.Reference(
        "py@host", [5], 3
    )
    improper = erl_term.ErlImproperList([1], Atom("tail"))
    assert erl_term.IsErlImproperList(improper) and isinstance(improper, erlnode.ImproperList)
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


# -- a py_interface program with a long name: timers, stdin, names, RPC, node up/down ---------

CONSOLE = Path(__file__).resolve().parent / "py_interface_console.py"


@pytest.fixture
def long_erl() -> Iterator[Erl]:
    """An erl node with a long name (`-name x@127.0.0.1`)."""
    if shutil.which("erl") is None:
        pytest.fail("erl is not on PATH: install Erlang/OTP (make erlang)")
    node = Erl(longnames=True)
    try:
        yield node
    finally:
        node.stop()


def test_a_py_interface_program_with_a_long_name_against_erl(long_erl: Erl) -> None:
    output: list[str] = []
    s = demo.Scenario(show=output.append)
    me = f"console_{s.suffix}@127.0.0.1"
    erl = long_erl.name
    try:
        console = s.start("py", [sys.executable, "-u", str(CONSOLE), me, long_erl.cookie])
        # Publish() called the callback set before it; timers re-armed themselves in the loop.
        s.expect("py", f"^published {re.escape(me)}$", "published")
        s.expect("py", "^tick 3$", "three timer rounds")

        # A command read from stdin by a read event; the connection brings a nodeup.
        console.write_line(f"ping {erl}")
        s.expect("py", f"^ping {re.escape(erl)} pong$", "pong")
        s.expect("py", f"^nodeup {re.escape(erl)}$", "nodeup")

        # Erlang sends to the registered name and gets the echo back.
        send_and_wait = (
            "{%s, '%s'} ! {self(), hello}, receive {echo, X} -> X after 3000 -> timeout end"
        )
        assert long_erl.eval(send_and_wait % ("console", me)) == "hello"
        s.expect("py", r"^got \(<erl-pid: node=<erl-atom: '.*'>.*<erl-atom: 'hello'>\)$", "echo")

        console.write_line(f"rpc {erl} lists seq 300 302")
        s.expect("py", re.escape("rpc [300, 301, 302]"), "rpc answer")
        console.write_line("whereis console")
        s.expect("py", "^whereis console True$", "WhereisPid")

        # Unregistered, the name reaches nobody; registered again under another name, it does.
        console.write_line("unregister")
        s.expect("py", "^unregistered None$", "UnregisterName")
        assert long_erl.eval(send_and_wait.replace("3000", "300") % ("console", me)) == "timeout"
        console.write_line("register console2")
        s.expect("py", "^registered console2$", "RegisterName again")
        assert long_erl.eval(send_and_wait % ("console2", me)) == "hello"

        # Sending to a registered name on the erl node, from the program.
        long_erl.eval("register(inbox, self())")
        console.write_line(f"send inbox {erl} hi")
        reply = long_erl.eval("receive {_Pid, Text} -> Text after 3000 -> timeout end")
        assert reply == "hi"

        # The erl node drops the connection: nodedown, in the loop.
        long_erl.eval(f"erlang:disconnect_node('{me}')")
        s.expect("py", f"^nodedown {re.escape(erl)}$", "nodedown")

        # An RPC to a node that is not there answers py_interface's nodedown tuple.
        nobody = f"nobody_{s.suffix}@127.0.0.1"
        console.write_line(f"rpc {nobody} erlang node")
        s.expect(
            "py",
            re.escape(
                f"rpc (<erl-atom: 'EXIT'>, (<erl-atom: 'nodedown'>, <erl-atom: '{nobody}'>))"
            ),
            "rpc to a missing node",
        )

        # Unsubscribed, the next nodeup is not reported.
        console.write_line("unsubscribe")
        s.expect("py", "^unsubscribed$", "unsubscribed")
        console.write_line(f"ping {erl}")
        deadline = time.monotonic() + TIMEOUT
        while [line for _, line in s.seen].count(f"ping {erl} pong") < 2:
            assert time.monotonic() < deadline, "no second pong"
            s._take(0.1)
        console.write_line("quit")
        s.expect("py", "^bye$", "the loop stopped and the node closed")
        assert console.popen.wait(timeout=TIMEOUT) == 0
        assert [line for _, line in s.seen].count(f"nodeup {erl}") == 1
    except BaseException:
        print("\n".join(output + [f"{label}: {line}" for label, line in s.seen]))
        raise
    finally:
        s.close()


def test_names_are_checked_like_py_interface(server: Any) -> None:
    node = erl_node.ErlNode(f"names_{server.suffix}", erl_opts.ErlNodeOpts(cookie=server.cookie))
    try:
        a = node.CreateMBox()
        b = node.CreateMBox()
        a.RegisterName("a")
        with pytest.raises(erl_node.ErlNodeIsRegisteredError):
            b.RegisterName("a")
        with pytest.raises(erl_node.ErlNodeIsRegisteredError):
            a.RegisterName("other")
        with pytest.raises(erl_node.ErlNodeNotRegisteredError):
            b.UnregisterName()
        assert node.WhereisMBox("a") is a and node.WhereisPid(b"a") == a.Self()
        assert node.WhereisMBox("b") is None and node.WhereisPid("b") is None
        a.UnregisterName()
        b.RegisterName(erl_term.ErlAtom("a"))
        assert node.WhereisMBox("a") is b
        with pytest.raises(erl_node.ErlNodeBadPeerNameError):
            node.Ping("nohost", print)
        # A name closed with its mailbox is free again.
        b.Close()
        assert node.WhereisMBox("a") is None
        a.RegisterName("a")
    finally:
        node.Close()


# -- Tk state ---------------------------------------------------------------------------------


class TclTop:
    """What the event handler uses of a ``tkinter.Tk()`` top level, on a Tcl interpreter: Tk's
    file handlers and timers without a display. ``mainloop`` runs Tcl's event loop as Tk's
    does (Tk's own ``mainloop`` returns at once when there is no window)."""

    def __init__(self, tkinter: Any) -> None:
        self.tcl = tkinter.Tcl()
        self.tk = self.tcl.tk
        self.quitting = False

    def after(self, ms: int, func: Any) -> str:
        return str(self.tcl.after(ms, func))

    def after_cancel(self, id: str) -> None:
        self.tcl.after_cancel(id)

    def mainloop(self) -> None:
        self.quitting = False
        while not self.quitting:
            self.tk.dooneevent()

    def quit(self) -> None:
        self.quitting = True


def test_tk_state_runs_timers_reads_and_messages_in_tk_mainloop(
    evhand: erl_eventhandler._EventHandler,
) -> None:
    top = TclTop(pytest.importorskip("tkinter"))
    erl_eventhandler.SetEventHandlerStateTk(top)
    r, w = os.pipe()
    events: list[Any] = []
    try:
        assert evhand.state == evhand.STATE_TK

        def readable() -> None:
            events.append(("read", os.read(r, 10)))
            evhand.PopReadEvent(r)
            threading.Thread(target=lambda: evhand.Post(lambda: events.append("posted"))).start()
            evhand.AddTimerEvent(0.05, evhand.StopLooping)

        evhand.PushReadEvent(r, readable)
        cancelled = evhand.AddTimerEvent(0.01, events.append, "cancelled")
        evhand.DelTimerEvent(cancelled)
        evhand.AddTimerEvent(0.02, lambda: os.write(w, b"x"))
        evhand.AddTimerEvent(TIMEOUT, evhand.StopLooping)  # a safety net
        started = time.monotonic()
        evhand.Loop()
        assert time.monotonic() - started < TIMEOUT
        assert events == [("read", b"x"), "posted"]
    finally:
        erl_eventhandler.SetEventHandlerStateStandalone()
        os.close(r)
        os.close(w)
    assert evhand.state == evhand.STATE_STANDALONE


# -- EPMD ---------------------------------------------------------------------------------------


def run_until(evhand: erl_eventhandler._EventHandler, done: Any) -> None:
    """Runs the loop until DONE() is true (checked every 10 ms) or TIMEOUT passes."""
    deadline = time.monotonic() + TIMEOUT

    def check() -> None:
        if done() or time.monotonic() > deadline:
            evhand.StopLooping()
        else:
            evhand.AddTimerEvent(0.01, check)

    evhand.AddTimerEvent(0, check)
    evhand.Loop()
    assert done(), "the loop timed out"


def test_epmd_requests(long_erl: Erl, evhand: erl_eventhandler._EventHandler) -> None:
    port = int(os.environ.get("ERL_EPMD_PORT", "4369"))
    epmd = erl_epmd.ErlEpmd("127.0.0.1", port)
    alive = long_erl.name.split("@")[0]
    answers: dict[str, Any] = {}
    epmd.PortPlease2Req(alive, lambda *a: answers.__setitem__("port2", a))
    epmd.PortPleaseReq(alive, lambda p: answers.__setitem__("port", p))
    epmd.PortPlease2Req("nobody_here", lambda *a: answers.__setitem__("missing", a))
    epmd.NamesReq(lambda epmdPort, names: answers.__setitem__("names", (epmdPort, names)))
    run_until(evhand, lambda: len(answers) == 4)
    result, node_port, node_type, protocol, versions, name, extra = answers["port2"]
    assert (result, node_type, protocol, name) == (0, erl_epmd.NODETYPE_NORMAL, 0, alive)
    assert node_port == answers["port"] > 0 and max(versions) >= 6
    assert answers["missing"][0] != 0 and answers["missing"][1:] == (None,) * 6
    assert (
        answers["names"][0] == port and f"name {alive} at port {node_port}" in answers["names"][1]
    )

    # Registering a name of our own (ALIVE2) lasts as long as the connection.
    own = f"pyepmd_{secrets.token_hex(3)}"
    epmd.SetOwnNodeName(f"{own}@127.0.0.1")
    epmd.SetOwnPortNum(5999)
    registered: list[Any] = []
    epmd.Connect(registered.append, lambda result: registered.append(("failed", result)))
    run_until(evhand, lambda: registered)
    assert isinstance(registered[0], int), registered
    names: list[str] = []
    epmd.NamesReq(lambda _, text: names.append(text))
    run_until(evhand, lambda: names)
    assert f"name {own} at port 5999" in names[0]
    epmd.Close()
    names.clear()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:  # EPMD sees the close a moment later
        epmd.NamesReq(lambda _, text: names.append(text))
        run_until(evhand, lambda: names)
        if own not in names.pop():
            break
    else:
        pytest.fail("the name stayed registered after Close()")


def test_epmd_stop_and_kill(evhand: erl_eventhandler._EventHandler) -> None:
    binary = shutil.which("epmd")
    if binary is None:
        pytest.fail("epmd is not on PATH: install Erlang/OTP (make erlang)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # An EPMD of this test's own: it is told to stop.
    proc = subprocess.Popen([binary, "-port", str(port), "-relaxed_command_check"])
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "epmd did not start"
                time.sleep(0.05)
        epmd = erl_epmd.ErlEpmd("127.0.0.1", port)
        answers: list[Any] = []
        epmd.StopReq("nobody", answers.append)
        run_until(evhand, lambda: answers)
        epmd.DumpReq(lambda epmdPort, text: answers.append((epmdPort, text)))
        run_until(evhand, lambda: len(answers) == 2)
        epmd.KillReq(answers.append)
        run_until(evhand, lambda: len(answers) == 3)
        # (EPMD 25 writes STOPPED after NOEXIST on the same connection.)
        assert answers[0].startswith("NOEXIST") and answers[1][0] == port and answers[2] == "OK"
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- terms --------------------------------------------------------------------------------------


def test_terms_from_erl_keep_py_interface_types(session_erl: Erl) -> None:
    term = erl_term.BinaryToTerm(
        session_erl.eval_raw(
            "{self(), make_ref(), fun(X) -> X + 1 end, fun lists:reverse/1,"
            " #{[300, 301] => <<5:3>>, 1.0 => float}, [a | b]}"
        )
    )
    pid, ref, fun, export, mapping, improper = term
    assert pid.node.atomText == session_erl.name and isinstance(ref.id, list)
    assert erl_term.IsErlFun(fun) and fun.arity == 1 and len(fun.uniq) == 16
    assert erl_term.IsErlPid(fun.pid) and fun.module.atomText == "erl_eval"
    assert export.equals(erl_term.ErlFunExport("lists", "reverse", 1))
    assert mapping[[300, 301]].equals(erl_term.ErlBitBinary(b"\xa0", 3)) and mapping[1.0] == "float"
    assert improper.equals(erl_term.ErlImproperList([Atom("a")], Atom("b")))
    assert list(improper) == ["a", "b"] and improper[1] == "b"
    # Sent back, each is the term Erlang sent (the fun still runs).
    session_erl.bind("Back", erl_term.TermToBinary(term))
    assert session_erl.eval("{_, _, F, _, _, _} = binary_to_term(Back), F(41)") == 42
    assert session_erl.eval("binary_to_term(Back) =:= binary_to_term(Back)") is True


def test_a_fun_built_here_runs_in_erlang(session_erl: Erl) -> None:
    original = erl_term.BinaryToTerm(session_erl.eval_raw("fun(X) -> X * 2 end"))
    copy = erl_term.ErlFun(
        original.pid, original.module, original.index, original.uniq,
        original.oldIndex, original.oldUniq, original.arity, original.freeVars,
    )  # fmt: skip
    assert copy == original and copy.ToErlnode() == original.ToErlnode()
    session_erl.bind("F", erl_term.TermToBinary(copy))
    assert session_erl.eval("(binary_to_term(F))(21)") == 42
    with pytest.raises(erl_term.ErlTermError):
        erl_term.TermToBinary(erl_term.ErlFun(copy.pid, "m", 0, 7, 0, 0, 0, []))


def test_buffers_of_terms_split_where_each_ends() -> None:
    whole = [
        erl_term.TermToBinary(t)
        for t in ((1, "a", b"b"), [1.5, 2**80], {"k": [erl_term.ErlAtom("v")]})
    ]
    compressed = erlnode.encode(list(range(200)), compressed=True)
    data = b"".join(whole) + compressed
    assert erl_term.BinariesToTerms(data)[-1] == list(range(200))
    terms, rest = erl_term.BufToTerm(data + whole[0][:4])
    assert len(terms) == 4 and rest == whole[0][:4]
    with pytest.raises(erl_term.ErlTermError):
        erl_term.BinariesToTerms(data + b"\x00")


# -- the docstrings' examples -----------------------------------------------------------------


def examples(module: ModuleType) -> Iterator[tuple[str, str]]:
    """(owner, code) for every ``Example::`` block in MODULE's docstrings."""
    owners: list[tuple[str, Any]] = [(module.__name__, module)]
    for name, obj in vars(module).items():
        if getattr(obj, "__module__", None) == module.__name__:
            owners.append((name, obj))
            owners += [(f"{name}.{m}", v) for m, v in vars(obj).items() if callable(v)]
    for owner, obj in owners:
        doc = inspect.getdoc(obj) or ""
        for block in doc.split("Example::")[1:]:
            lines = []
            for line in block.split("\n")[1:]:
                if line and not line.startswith("    "):
                    break
                lines.append(line[4:])
            yield owner, textwrap.dedent("\n".join(lines))


@pytest.mark.parametrize("module", [erl_common, erl_term, erl_opts], ids=lambda m: m.__name__)
def test_the_examples_of_the_pure_modules_run(module: ModuleType, tmp_path: Path) -> None:
    os.environ.setdefault("HOME", str(tmp_path))
    ran = 0
    for owner, code in examples(module):
        if "ErlNode(" in code:
            compile(code, owner, "exec")
            continue
        namespace = {**vars(module), "erlnode": erlnode, "erl_term": erl_term}
        try:
            exec(compile(code.replace("/tmp/", f"{tmp_path}/"), owner, "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"the example of {owner} fails: {e!r}\n{code}") from e
        ran += 1
    assert ran >= 3


@pytest.mark.parametrize("module", [erl_node, erl_eventhandler, erl_epmd], ids=lambda m: m.__name__)
def test_the_examples_of_the_node_modules_compile(module: ModuleType) -> None:
    # They need a node and a loop to run: the tests above run the same calls.
    blocks = list(examples(module))
    assert len(blocks) >= 10
    for owner, code in blocks:
        compile(code, owner, "exec")


def test_every_public_name_has_an_example() -> None:
    missing = []
    for name in py_interface_package.__all__:
        module = getattr(py_interface_package, name)
        owners: list[tuple[str, Any]] = [(module.__name__, module)]
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(obj) or inspect.isfunction(obj):
                owners.append((f"{name}.{attr}", obj))
            if inspect.isclass(obj):
                for member, value in vars(obj).items():
                    if not member.startswith("_") and (
                        callable(value) or isinstance(value, property)
                    ):
                        owners.append((f"{name}.{attr}.{member}", value))
        missing += [owner for owner, obj in owners if "Example::" not in (obj.__doc__ or "")]
    assert missing == [], "\n".join(missing)
