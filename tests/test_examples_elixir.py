"""The Elixir example (examples/elixir) end to end: the Python server and the `elixir` script,
each run as a user runs them, on the session's private EPMD."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from erl import random_name

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "elixir"
TIMEOUT = 60.0


def read_lines(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line.rstrip("\n"))


def test_elixir_example() -> None:
    if shutil.which("elixir") is None:
        if os.environ.get("CI"):
            pytest.fail("elixir is not on PATH (and CI is set)")
        pytest.skip("elixir is not on PATH (make erlang installs it)")
    cookie = random_name("cookie")
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "inventory.py"), random_name("py"), cookie],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(server, lines), daemon=True).start()
    try:
        ready = lines.get(timeout=TIMEOUT)
        assert ready.startswith("ready: {inventory, '"), ready
        node_name = ready.split("'")[1]
        client = subprocess.run(
            [
                "elixir",
                "--sname",
                random_name("ex"),
                "--cookie",
                cookie,
                str(EXAMPLE / "client.exs"),
                node_name,
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert client.returncode == 0, client.stdout + client.stderr
        assert client.stdout.splitlines() == [
            "add apples: {:ok, 5}",
            "add pears: {:ok, 2}",
            'stock: %{"apples" => 5, "pears" => 2}',
            'receipt: %Receipt{item: "apples", qty: 3, left: 2}',
            "blob checked: {true, true}",
            "take 10 apples: {:error, :not_enough}",
            "stop: :ok",
        ]
        assert server.wait(timeout=TIMEOUT) == 0
        rest = [lines.get(timeout=TIMEOUT) for _ in range(3)]
        assert rest == ["order: 3 x apples", "blob: 1048576 bytes", "stopped"]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=TIMEOUT)
