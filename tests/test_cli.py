"""The command line (`python -m erlnode`, docs/cli.md) end to end, against real `erl` nodes.

Every command runs as a subprocess, as a user runs it; the session's private EPMD reaches it
through `ERL_EPMD_PORT` in the environment (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Optional

import pytest
from erl import Erl, random_name

import erlnode
from erlnode import Atom

TIMEOUT = 30.0


def cli(*args: str, env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    """Runs `python -m erlnode ARGS...` to the end."""
    return subprocess.run(
        [sys.executable, "-m", "erlnode", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=None if env is None else {**os.environ, **env},
    )


def our_lines(stderr: str) -> list[str]:
    """The CLI's own messages on stderr."""
    return [line for line in stderr.splitlines() if line.startswith("erlnode: ")]


def assert_fails(done: subprocess.CompletedProcess[str], status: int, says: str) -> str:
    """Exit `status`, with exactly one message on stderr, containing `says`."""
    assert done.returncode == status, (done.stdout, done.stderr)
    lines = our_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert says in lines[0], lines[0]
    return lines[0]


def short(name: str) -> str:
    return name.partition("@")[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Running:
    """A command that runs until interrupted (`listen`, `epmd`), read line by line."""

    def __init__(self, args: Sequence[str], env: Optional[dict[str, str]] = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "erlnode", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=None if env is None else {**os.environ, **env},
        )
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for stream, lines in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            threading.Thread(target=self._read, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _read(stream: IO[str], lines: queue.Queue[str]) -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))

    def line(self, lines: queue.Queue[str], what: str) -> str:
        try:
            return lines.get(timeout=TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no {what} within {TIMEOUT} s") from None

    def line_about(self, name: str, what: str) -> str:
        """The next line on stdout that mentions `name` (others, such as the nodes the
        command line starts, come and go meanwhile)."""
        while True:
            line = self.line(self.stdout, what)
            if name in line:
                return line

    def interrupt(self) -> int:
        """Ctrl-C; the exit status."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=TIMEOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)


@pytest.fixture
def running() -> Iterator[list[Running]]:
    """Long-running commands of a test, killed (by pid) at its end if still running."""
    started: list[Running] = []
    yield started
    for command in started:
        command.stop()


# -- ping -----------------------------------------------------------------------------------


def test_ping_pong(erl: Erl) -> None:
    done = cli("-setcookie", erl.cookie, "ping", erl.name)
    assert (done.returncode, done.stdout) == (0, "pong\n"), done.stderr
    # A bare name is on this host; options may also follow the command.
    done = cli("ping", short(erl.name), "-setcookie", erl.cookie)
    assert (done.returncode, done.stdout) == (0, "pong\n"), done.stderr
    done = cli("--json", "-setcookie", erl.cookie, "ping", erl.name)
    assert json.loads(done.stdout) == {"node": erl.name, "result": "pong"}


def test_ping_pang(erl: Erl) -> None:
    assert_fails(cli("-setcookie", "wrong", "ping", erl.name), 1, "pang")
    done = cli("--json", "-setcookie", erl.cookie, "ping", "nobody_here")
    assert_fails(done, 1, "pang")
    answer = json.loads(done.stdout)
    assert answer["error"] == "pang" and answer["node"].startswith("nobody_here@")
    # --verbose: the node's log says why.
    done = cli("-v", "-setcookie", "wrong", "ping", erl.name)
    assert done.returncode == 1
    assert f"erlnode: WARNING: handshake with {erl.name} failed: cookie mismatch" in done.stderr


def test_the_cookie_comes_from_the_cookie_file_by_default(erl: Erl, tmp_path: Path) -> None:
    cookie_file = tmp_path / ".erlang.cookie"
    cookie_file.write_text(erl.cookie)
    cookie_file.chmod(0o400)
    done = cli("ping", erl.name, env={"HOME": str(tmp_path)})
    assert (done.returncode, done.stdout) == (0, "pong\n"), done.stderr


def test_node_names(erl: Erl) -> None:
    name = random_name("cli")
    # The node is named as asked: erl sees it connected (hidden) under that name.
    options = ("-sname", name, "-setcookie", erl.cookie)
    done = cli(*options, "rpc", erl.name, "erlang", "nodes")
    assert done.stdout == "[]\n", done.stderr
    done = cli(*options, "rpc", erl.name, "erlang", "nodes", "[hidden]")
    assert done.stdout.startswith(f"[{name}@"), done.stderr
    assert_fails(cli("-sname", "a", "-name", "b", "ping", erl.name), 2, "not both")
    assert_fails(cli("-sname", "bad name!", "ping", erl.name), 2, "bad name!")


def test_long_names() -> None:
    with Erl(longnames=True) as erl:
        name = f"{random_name('cli')}@127.0.0.1"
        done = cli(
            "-name", name, "-setcookie", erl.cookie, "rpc", erl.name, "erlang", "nodes", "[hidden]"
        )
        assert done.stdout == f"['{name}']\n", done.stderr


# -- names ----------------------------------------------------------------------------------


def test_names(erl: Erl) -> None:
    done = cli("names")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    ours = [line for line in lines if line.startswith(f"name {short(erl.name)} at port ")]
    assert len(ours) == 1, lines
    port = int(ours[0].rsplit(" ", 1)[1])
    done = cli("--json", "names", "localhost")
    answer = json.loads(done.stdout)
    assert answer["host"] == "localhost"
    assert answer["epmd_port"] == int(os.environ["ERL_EPMD_PORT"])
    assert {"name": short(erl.name), "port": port} in answer["names"]


def test_names_without_an_epmd() -> None:
    port = str(free_port())
    assert_fails(cli("names", env={"ERL_EPMD_PORT": port}), 1, "no EPMD")
    done = cli("--json", "names", env={"ERL_EPMD_PORT": port})
    assert json.loads(done.stdout)["error"] == "epmd"


# -- rpc ------------------------------------------------------------------------------------


def test_rpc(erl: Erl) -> None:
    done = cli("-setcookie", erl.cookie, "rpc", erl.name, "lists", "seq", "[1,5]")
    assert (done.returncode, done.stdout) == (0, "[1,2,3,4,5]\n"), done.stderr
    done = cli("-setcookie", erl.cookie, "rpc", erl.name, "erlang", "node")
    assert done.stdout == f"{erlnode.format_term(Atom(erl.name))}\n"
    args = '[[{ok, "text", <<"bin">>, #{k => [1.5, -2]}, \'Quoted atom\'}]]'
    done = cli("-setcookie", erl.cookie, "rpc", short(erl.name), "erlang", "hd", args)
    assert done.stdout == '{ok,"text",<<"bin">>,#{k => [1.5,-2]},\'Quoted atom\'}\n'
    done = cli("--json", "-setcookie", erl.cookie, "rpc", erl.name, "lists", "seq", "[1,3]")
    assert json.loads(done.stdout) == {
        "node": erl.name,
        "result": {"type": "list", "text": "[1,2,3]"},
    }


def test_rpc_output_of_the_call(erl: Erl) -> None:
    call = ("rpc", erl.name, "io", "format", '["hello ~p~n", [world]]')
    done = cli("-setcookie", erl.cookie, *call)
    assert done.stdout == "hello world\nok\n"
    # With --json, stdout stays JSON: the call's output goes to stderr.
    done = cli("--json", "-setcookie", erl.cookie, *call)
    assert json.loads(done.stdout)["result"] == {"type": "atom", "text": "ok"}
    assert "hello world" in done.stderr


def test_rpc_badrpc(erl: Erl) -> None:
    done = cli("-setcookie", erl.cookie, "rpc", erl.name, "nosuchmod", "f", "[1]")
    assert assert_fails(done, 1, "badrpc") == (
        "erlnode: badrpc: {'EXIT',{undef,[{nosuchmod,f,[1],[]}]}}"
    )
    done = cli("--json", "-setcookie", erl.cookie, "rpc", erl.name, "erlang", "exit", "[bye]")
    assert_fails(done, 1, "badrpc: {'EXIT',bye}")
    answer = json.loads(done.stdout)
    assert answer["error"] == "badrpc"
    assert answer["reason"] == {"type": "tuple", "text": "{'EXIT',bye}"}
    # A throw is a value, as for rpc:call.
    done = cli("-setcookie", erl.cookie, "rpc", erl.name, "erlang", "throw", "[ball]")
    assert (done.returncode, done.stdout) == (0, "ball\n")
    done = cli("-setcookie", erl.cookie, "rpc", "nobody_here", "erlang", "node")
    assert_fails(done, 1, "badrpc: nodedown")


def test_rpc_timeout(erl: Erl) -> None:
    done = cli(
        "-setcookie", erl.cookie, "--timeout", "0.5", "rpc", erl.name, "timer", "sleep", "[5000]"
    )
    assert_fails(done, 1, "timeout")


def test_rpc_arguments_are_one_erlang_list(erl: Erl) -> None:
    base = ("-setcookie", erl.cookie, "rpc", erl.name, "erlang")
    line = assert_fails(cli(*base, "abs", "[-5"), 2, "ARGS")
    assert "end of input at line 1, column 4" in line
    assert_fails(cli(*base, "abs", "-5"), 2, "is not a list")
    assert_fails(cli(*base, "abs", "[X]"), 2, "variable")
    # A string is a list of character codes: length("abc") takes one argument, not three.
    done = cli(*base, "length", '[[1|"ab"]]')
    assert done.stdout == "3\n"
    done = cli(*base, "max", '"ab"')
    assert done.stdout == "98\n"


# -- send -----------------------------------------------------------------------------------


def test_send_to_a_registered_name(erl: Erl) -> None:
    erl.eval("register(inbox, self())")
    message = '{hello, [1, 2], <<"bin">>, #{a => 1.5}, "text"}'
    for dest in (f"{{inbox, '{erl.name}'}}", f"{{inbox, {short(erl.name)}}}"):
        done = cli("-setcookie", erl.cookie, "send", dest, message)
        assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr
        got = erl.eval("receive M -> M after 5000 -> timeout end")
        assert got == (Atom("hello"), "\x01\x02", b"bin", {Atom("a"): 1.5}, "text")


def test_send_to_a_pid(erl: Erl) -> None:
    pid = erl.eval("self()")
    assert pid.creation != 0
    text = erlnode.format_term(pid)  # as erlnode prints it: <erl@host.N.0>, no creation
    done = cli("--json", "-setcookie", erl.cookie, "send", text, "[ping, 42]")
    assert json.loads(done.stdout) == {
        "dest": {"type": "pid", "text": text},
        "message": {"type": "list", "text": "[ping,42]"},
    }
    assert erl.eval("receive M -> M after 5000 -> timeout end") == [Atom("ping"), 42]


def test_send_failures(erl: Erl) -> None:
    assert_fails(cli("-setcookie", erl.cookie, "send", "{inbox, nobody_here}", "hi"), 1, "pang")
    assert_fails(cli("send", "inbox", "hi"), 2, "DEST")
    assert_fails(cli("send", "{inbox, node, x}", "hi"), 2, "DEST")
    assert_fails(cli("send", "{inbox, n@h}", "{unclosed"), 2, "TERM")


# -- listen ---------------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_listen(erl: Erl, running: list[Running], as_json: bool) -> None:
    name = random_name("cli")
    options = ["--json"] if as_json else []
    listener = Running([*options, "-sname", name, "-setcookie", erl.cookie, "listen", "inbox"])
    running.append(listener)
    status = listener.line(listener.stderr, "status line")
    assert status.startswith("erlnode: listening as {inbox,") and name in status
    full_name = status.split(",", 1)[1].split("}", 1)[0].strip("'")
    for message in ('{from_erl, <<"x">>, [1, 2], self()}', '"text"', "[]"):
        erl.eval(f"{{inbox, '{full_name}'}} ! {message}")
    lines = [listener.line(listener.stdout, "message") for _ in range(3)]
    me = erlnode.format_term(erl.eval("self()"))
    expected = [f'{{from_erl,<<"x">>,[1,2],{me}}}', '"text"', "[]"]
    if as_json:
        assert [json.loads(line) for line in lines] == [
            {"message": {"type": "tuple", "text": expected[0]}},
            {"message": {"type": "list", "text": expected[1]}},
            {"message": {"type": "list", "text": expected[2]}},
        ]
    else:
        assert lines == expected
    # A message from the command line itself reaches it too.
    done = cli("-setcookie", erl.cookie, "send", f"{{inbox, '{full_name}'}}", "bye")
    assert done.returncode == 0, done.stderr
    last = listener.line(listener.stdout, "message")
    assert (json.loads(last)["message"]["text"] if as_json else last) == "bye"
    assert listener.interrupt() == 0


def test_listen_on_a_taken_name(erl: Erl, running: list[Running]) -> None:
    name = random_name("cli")
    first = Running(["-sname", name, "-setcookie", erl.cookie, "listen", "inbox"])
    running.append(first)
    first.line(first.stderr, "status line")
    # The node name is taken: the second cannot register it with EPMD.
    second = cli("-sname", name, "-setcookie", erl.cookie, "listen", "inbox")
    assert_fails(second, 1, "cannot start the node")
    assert first.interrupt() == 0


# -- epmd -----------------------------------------------------------------------------------


def test_epmd_in_the_foreground(running: list[Running]) -> None:
    port = str(free_port())
    epmd = Running(["epmd", "-port", port, "-address", "127.0.0.1"])
    running.append(epmd)
    assert epmd.line(epmd.stderr, "status line") == (
        f"erlnode: EPMD listening on 127.0.0.1:{port} (Ctrl-C stops)"
    )
    env = {"ERL_EPMD_PORT": port}
    with Erl(env=env) as other:
        registered = epmd.line_about(short(other.name), "registration")
        assert registered.startswith(f"registered {short(other.name)} at port ")
        done = cli("names", env=env)
        assert registered.replace("registered", "name", 1) in done.stdout.splitlines()
        done = cli("-setcookie", other.cookie, "ping", other.name, env=env)
        assert done.stdout == "pong\n", done.stderr
        # A second EPMD on the same port: refused.
        assert_fails(cli("epmd", "-port", port), 1, "cannot start an EPMD")
    assert epmd.line_about(short(other.name), "unregistration") == (
        f"unregistered {short(other.name)}"
    )
    assert epmd.interrupt() == 0


def test_epmd_json_events(running: list[Running]) -> None:
    port = str(free_port())
    epmd = Running(["--json", "epmd", "-port", port, "-address", "127.0.0.1"])
    running.append(epmd)
    epmd.line(epmd.stderr, "status line")
    with Erl(env={"ERL_EPMD_PORT": port}) as other:
        event = json.loads(epmd.line_about(short(other.name), "registration"))
        assert event["event"] == "registered" and event["name"] == short(other.name)
        assert isinstance(event["port"], int)
    event = json.loads(epmd.line_about(short(other.name), "unregistration"))
    assert event["event"] == "unregistered" and event["name"] == short(other.name)
    assert epmd.interrupt() == 0


# -- usage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "COMMAND"),
        (("bogus",), "invalid choice"),
        (("ping",), "NODE"),
        (("rpc", "n@h", "m"), "FUN"),
        (("--timeout", "0", "ping", "n@h"), "positive"),
        (("--timeout", "soon", "ping", "n@h"), "not a number"),
        (("epmd", "-port", "99999"), "not a port"),
        (("epmd", "-address", "nowhere"), "not an IP address"),
        (("-sname", "x", "-sname"), "expected one argument"),
    ],
)
def test_usage_errors(args: tuple[str, ...], says: str) -> None:
    done = cli(*args)
    assert_fails(done, 2, says)
    assert done.stderr.count("\n") == 1 and done.stdout == ""


def test_help() -> None:
    done = cli("--help")
    assert done.returncode == 0
    for command in ("ping", "names", "rpc", "send", "listen", "epmd", "-setcookie", "--json"):
        assert command in done.stdout
    done = cli("rpc", "--help")
    assert done.returncode == 0 and "ARGS" in done.stdout


def test_the_console_script() -> None:
    script = Path(sys.executable).with_name("erlnode")
    if not script.exists():
        why = f"no console script beside {sys.executable} (not installed with pip/maturin)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    done = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: erlnode")


def test_output_to_a_closed_pipe(erl: Erl) -> None:
    # `erlnode names | head -0`: no traceback when the reader is gone.
    reader, writer = os.pipe()
    os.close(reader)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "erlnode", "names"],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        os.close(writer)
    assert "Traceback" not in done.stderr, done.stderr
