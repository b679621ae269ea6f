#!/usr/bin/env python3
"""The messenger, end to end: an Erlang server, a Python client and an Erlang user talking.

What `make demo` runs. It starts three programs, each its own OS process:

* the messenger server, an `erl` node running messenger.erl;
* the Python client (client.py, on erlnode) in `--away` mode, answering every message itself;
* a scripted Erlang user node (erl_user.erl) that logs on and writes to the Python user.

and prints their output as it happens while it checks, step by step, that the conversation takes
place: both log on, the Erlang user's message reaches Python, Python's automatic reply reaches the
Erlang user, a message typed into the Python client reaches the Erlang user, and when the Python
client stops, the server logs it off because its link to the client's mailbox broke.

Exit status 0 when every step happened, 1 (with the step that failed) otherwise. Every process the
demo starts is stopped at the end, whatever happens. Only the standard library is used here; the
client needs erlnode (`make build`).
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
# How long any one step may take; a normal run needs a few seconds in all.
STEP_TIMEOUT = 15.0

ERLANG_TEXT = "Hello Python, this is Erlang speaking"
AWAY_TEXT = "on vacation"
PYTHON_TEXT = "Hello Erlang, greetings from Python"


class DemoFailure(Exception):
    """A step of the scenario did not happen."""


class Process:
    """A child process whose output lines (stdout and stderr merged) go to a shared queue."""

    def __init__(
        self,
        label: str,
        argv: Sequence[str],
        lines: queue.Queue[tuple[str, str]],
        env: dict[str, str] | None = None,
    ) -> None:
        self.label = label
        self.popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=env,
        )
        self._reader = threading.Thread(
            target=self._read, args=(lines,), name=f"read-{label}", daemon=True
        )
        self._reader.start()

    def _read(self, lines: queue.Queue[tuple[str, str]]) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            lines.put((self.label, line.rstrip("\n")))

    def write_line(self, text: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(text + "\n")
        self.popen.stdin.flush()

    def stop(self, grace: float = 5.0) -> None:
        """Closes stdin (our erl nodes halt on end of input, the client stops), then
        escalates to SIGTERM and SIGKILL, always addressed to this child's pid."""
        if self.popen.stdin is not None:
            try:
                self.popen.stdin.close()
            except OSError:
                # Already gone: the child exited with unread input in the pipe.
                pass
        for escalate in (self.popen.terminate, self.popen.kill):
            try:
                self.popen.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                escalate()
        else:
            self.popen.wait()
        self._reader.join(timeout=grace)


class Scenario:
    """Starts the three programs and follows their output."""

    def __init__(self, show: Callable[[str], None] = print) -> None:
        self.show = show
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.seen: list[tuple[str, str]] = []
        self.processes: list[Process] = []
        self.steps_done: list[str] = []
        self.suffix = secrets.token_hex(3)
        self.cookie = secrets.token_hex(16)
        self.beam_dir = tempfile.mkdtemp(prefix="erlnode-messenger-")
        self.server_node = ""

    # -- following output --------------------------------------------------------------------

    def _take(self, timeout: float) -> bool:
        try:
            label, line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return False
        self.seen.append((label, line))
        self.show(f"  {label:>8} | {line}")
        return True

    def expect(self, label: str, pattern: str, step: str) -> re.Match[str]:
        """Waits until a line of `label` matches `pattern` (lines seen earlier count too)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + STEP_TIMEOUT
        checked = 0
        while True:
            for source, line in self.seen[checked:]:
                match = regex.search(line) if source == label else None
                if match:
                    self.steps_done.append(step)
                    self.show(f"==> ok: {step}")
                    return match
            checked = len(self.seen)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DemoFailure(
                    f"{step}: {label} printed nothing matching {pattern!r} "
                    f"within {STEP_TIMEOUT:.0f} s"
                )
            self._take(min(remaining, 0.5))

    def drain(self, quiet_for: float = 0.3) -> None:
        while self._take(quiet_for):
            pass

    # -- the programs ------------------------------------------------------------------------

    def start(self, label: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Process:
        process = Process(label, argv, self.lines, env)
        self.processes.append(process)
        return process

    def erl(self, sname: str, *args: str) -> list[str]:
        # halt_on_eof: the node stops when our pipe to its stdin closes, even if we are killed.
        return [
            "erl", "-sname", sname, "-setcookie", self.cookie, "-noshell",
            "-pa", self.beam_dir, "-s", "messenger", "halt_on_eof", *args,
        ]  # fmt: skip

    def compile_erlang(self) -> None:
        for tool in ("erl", "erlc"):
            if shutil.which(tool) is None:
                raise DemoFailure(f"`{tool}` is not on PATH: install Erlang/OTP (make erlang)")
        sources = [str(HERE / "messenger.erl"), str(HERE / "erl_user.erl")]
        result = subprocess.run(
            ["erlc", "-o", self.beam_dir, *sources], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise DemoFailure(f"erlc failed:\n{result.stdout}{result.stderr}")

    def run(self) -> None:
        self.compile_erlang()

        self.show("--- starting the messenger server (an erl node)")
        self.start("server", self.erl(f"messenger_{self.suffix}", "-s", "messenger", "start"))
        match = self.expect("server", r"started on node (\S+)", "the messenger server is up")
        self.server_node = match.group(1)

        self.show("--- starting the Python client (erlnode) in --away mode")
        client = self.start(
            "python",
            [
                sys.executable, "-u", str(HERE / "client.py"),
                "--server", self.server_node, "--name", "python", "--cookie", self.cookie,
                "--node-name", f"pyclient_{self.suffix}", "--away", AWAY_TEXT,
            ],
        )  # fmt: skip
        self.expect("python", r"logged on to ", "Python logged on")
        self.expect("server", r"logon: python ", "the server saw Python's logon")

        self.show("--- starting the scripted Erlang user")
        self.start(
            "erlang",
            self.erl(
                f"erlang_user_{self.suffix}",
                "-run", "erl_user", "main", self.server_node, "erlang_user", "python",
                ERLANG_TEXT,
            ),
        )  # fmt: skip
        self.expect("server", r"logon: erlang_user ", "the server saw erlang_user's logon")
        self.expect(
            "python",
            re.escape(f"message from erlang_user: {ERLANG_TEXT}"),
            "the Erlang user's message reached Python",
        )
        self.expect(
            "erlang",
            re.escape(f'message from python: "{AWAY_TEXT}"'),
            "Python's automatic reply reached the Erlang user",
        )

        self.show("--- typing a message into the Python client")
        client.write_line(f"erlang_user: {PYTHON_TEXT}")
        self.expect(
            "erlang",
            re.escape(f'message from python: "{PYTHON_TEXT}"'),
            "the message typed into Python reached the Erlang user",
        )

        self.show("--- stopping the Python client (SIGTERM)")
        client.popen.send_signal(signal.SIGTERM)
        self.expect("python", r"stopping", "the Python client stopped")
        self.expect(
            "server",
            r"EXIT: python ",
            "the server logged Python off: it saw the link to the client break",
        )
        try:
            code = client.popen.wait(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise DemoFailure("the Python client did not exit after SIGTERM") from None
        if code != 0:
            raise DemoFailure(f"the Python client exited with status {code}")

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.drain(quiet_for=0.1)
        shutil.rmtree(self.beam_dir, ignore_errors=True)


def main() -> int:
    try:
        import erlnode  # noqa: F401  (the client needs it; say so before starting anything)
    except ImportError as exc:
        print(f"demo: cannot import erlnode ({exc}); run `make build` first", file=sys.stderr)
        return 1
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    scenario = Scenario()
    started = time.monotonic()
    try:
        scenario.run()
        scenario.drain()
    except DemoFailure as failure:
        scenario.drain()
        print(f"\ndemo FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        scenario.close()
    print(
        f"\ndemo OK: all {len(scenario.steps_done)} steps happened "
        f"in {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
