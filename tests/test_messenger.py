"""The messenger example end to end, against real erl nodes.

The demo's scenario runs as a test, step by step; then the server's protocol is checked from
erlnode mailboxes in this process, and the client's other way of stopping (end of input).
Every erl node is started with a random name and cookie and stopped at the end (the nodes also
halt by themselves when their stdin pipe closes).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import erlnode
from erlnode import Atom

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "messenger"
TIMEOUT = 10.0


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("messenger_demo", EXAMPLE / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = load_demo()


def require_erl() -> None:
    if shutil.which("erl") is None:
        pytest.fail("erl is not on PATH: install Erlang/OTP (make erlang)")


@pytest.fixture
def scenario() -> Iterator[Any]:
    require_erl()
    output: list[str] = []
    s = demo.Scenario(show=output.append)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def server(scenario: Any) -> Any:
    """A running messenger server; `scenario.server_node` is its node name."""
    scenario.compile_erlang()
    scenario.start(
        "server", scenario.erl(f"messenger_{scenario.suffix}", "-s", "messenger", "start")
    )
    match = scenario.expect("server", r"started on node (\S+)", "server up")
    scenario.server_node = match.group(1)
    return scenario


def lines_of(scenario: Any, label: str) -> list[str]:
    return [line for source, line in scenario.seen if source == label]


def test_demo_scenario_every_step(scenario: Any) -> None:
    scenario.run()
    scenario.drain()
    assert scenario.steps_done == [
        "the messenger server is up",
        "Python logged on",
        "the server saw Python's logon",
        "the server saw erlang_user's logon",
        "the Erlang user's message reached Python",
        "Python's automatic reply reached the Erlang user",
        "the message typed into Python reached the Erlang user",
        "the Python client stopped",
        "the server logged Python off: it saw the link to the client break",
    ]
    server = lines_of(scenario, "server")
    assert any(f'transfer: erlang_user -> python: "{demo.ERLANG_TEXT}"' in x for x in server)
    assert any(f'transfer: python -> erlang_user: "{demo.AWAY_TEXT}"' in x for x in server)
    assert any(f'transfer: python -> erlang_user: "{demo.PYTHON_TEXT}"' in x for x in server)
    python = lines_of(scenario, "python")
    assert f"[python] auto-reply to erlang_user: {demo.AWAY_TEXT}" in python
    # The client stopped without a logoff request: only the link told the server.
    assert not any("logoff:" in x for x in server)


def test_demo_main_exits_zero() -> None:
    require_erl()
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "demo.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo OK" in result.stdout


def logon(mbox: erlnode.Mailbox, server: Any, name: str) -> Any:
    mbox.send(("messenger", server.server_node), (mbox.pid, Atom("logon"), Atom(name)))
    return mbox.receive(timeout=TIMEOUT)


def test_server_protocol_from_python_mailboxes(server: Any) -> None:
    dest = ("messenger", server.server_node)
    with erlnode.Node(f"pytest_{server.suffix}", cookie=server.cookie) as node:
        alice = node.mailbox()
        bob = node.mailbox()
        stranger = node.mailbox()

        assert logon(alice, server, "alice") == (Atom("messenger"), Atom("logged_on"))
        assert logon(bob, server, "bob") == ("messenger", "logged_on")
        # A name is taken while its owner is logged on.
        assert logon(stranger, server, "alice") == (
            "messenger",
            "stop",
            "user_exists_at_other_node",
        )

        alice.send(dest, (alice.pid, Atom("message_to"), Atom("bob"), "hi bob"))
        assert bob.receive(timeout=TIMEOUT) == ("message_from", Atom("alice"), "hi bob")
        assert alice.receive(timeout=TIMEOUT) == ("messenger", "sent")

        # Any term is a message: here a binary and a tuple with a float.
        bob.send(dest, (bob.pid, Atom("message_to"), Atom("alice"), (b"bin", 2.5)))
        assert alice.receive(timeout=TIMEOUT) == ("message_from", "bob", (b"bin", 2.5))
        assert bob.receive(timeout=TIMEOUT) == ("messenger", "sent")

        alice.send(dest, (alice.pid, Atom("message_to"), Atom("nobody"), "hello?"))
        assert alice.receive(timeout=TIMEOUT) == ("messenger", "receiver_not_found")

        stranger.send(dest, (stranger.pid, Atom("message_to"), Atom("bob"), "let me in"))
        assert stranger.receive(timeout=TIMEOUT) == ("messenger", "stop", "you_are_not_logged_on")

        # An explicit logoff.
        bob.send(dest, (bob.pid, Atom("logoff")))
        server.expect("server", r"logoff: bob$", "bob logged off")
        alice.send(dest, (alice.pid, Atom("message_to"), Atom("bob"), "still there?"))
        assert alice.receive(timeout=TIMEOUT) == ("messenger", "receiver_not_found")

        # Closing a mailbox breaks the server's link to it: logged off, the name is free again.
        alice.close()
        server.expect("server", r"EXIT: alice ", "alice's mailbox closed")
        assert logon(stranger, server, "alice") == ("messenger", "logged_on")


def test_node_close_logs_every_user_off(server: Any) -> None:
    node = erlnode.Node(f"pytest_{server.suffix}", cookie=server.cookie)
    try:
        for name in ("carol", "dave"):
            assert logon(node.mailbox(), server, name) == ("messenger", "logged_on")
    finally:
        node.close()
    server.expect("server", r"EXIT: carol ", "carol left with the node")
    server.expect("server", r"EXIT: dave ", "dave left with the node")


def test_client_stops_at_end_of_input(server: Any) -> None:
    client = server.start(
        "python",
        [
            sys.executable, "-u", str(EXAMPLE / "client.py"),
            "--server", server.server_node, "--name", "eve", "--cookie", server.cookie,
            "--node-name", f"pyclient_{server.suffix}",
        ],
    )  # fmt: skip
    server.expect("python", r"logged on to ", "eve logged on")
    # A line without "to:" is refused with a hint, not sent.
    client.write_line("no recipient here")
    server.expect("python", r"type messages as `to: text`", "hint shown")
    client.write_line("nobody: anyone there?")
    server.expect("python", r"receiver not found", "unknown recipient reported")
    assert client.popen.stdin is not None
    client.popen.stdin.close()
    assert client.popen.wait(timeout=TIMEOUT) == 0
    server.expect("server", r"EXIT: eve ", "eve logged off through the link")


def test_client_refused_when_name_taken(server: Any) -> None:
    with erlnode.Node(f"pytest_{server.suffix}", cookie=server.cookie) as node:
        assert logon(node.mailbox(), server, "python") == ("messenger", "logged_on")
        result = subprocess.run(
            [
                sys.executable, str(EXAMPLE / "client.py"),
                "--server", server.server_node, "--name", "python", "--cookie", server.cookie,
                "--node-name", f"pyclient_{server.suffix}",
            ],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert "user_exists_at_other_node" in result.stdout
