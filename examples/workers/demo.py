#!/usr/bin/env python3
"""The worker pool, end to end: Erlang spreads CPU-bound calls over Python workers via `pg`.

It starts two programs, each its own OS process (and the pool's workers, one per core):

* the caller, an `erl` node running caller.erl: it waits for the group `primes` to have the
  workers, then makes `--requests` `gen_server:call`s, several at a time, each to a member
  found with `pg:get_members(primes)` at that moment;
* the pool, primes.py (erlnode's `WorkerPool`): `--workers` Python processes, each a visible
  node in the group.

Mid-run it kills one worker with SIGKILL, and checks that the pool starts it again (it joins
the group again), that every request ended with an answer or an error (the calls caught in
the killed worker are sent again to another member: none is lost), and that all answers
agree. Exit status 0 when every step happened, 1 (with the step that failed) otherwise.
Every process started here is stopped at the end, whatever happens.

    python examples/workers/demo.py [--workers 2] [--requests 120]
"""

from __future__ import annotations

import argparse
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
#: How long any one step may take.
STEP_TIMEOUT = 30.0
#: The work of one request: primes below this, counted in pure Python (tens of ms).
LIMIT = 20000


class DemoFailure(Exception):
    """A step of the scenario did not happen."""


class Child:
    """A child process whose output lines go, labelled, to a shared queue."""

    def __init__(self, label: str, argv: Sequence[str], lines: queue.Queue[tuple[str, str]]):
        self.label = label
        self.popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read, args=(lines,), daemon=True).start()

    def _read(self, lines: queue.Queue[tuple[str, str]]) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            lines.put((self.label, line.rstrip("\n")))

    def stop(self, grace: float = 10.0) -> None:
        """Closes stdin (both programs stop on end of input), then TERM, then KILL."""
        if self.popen.stdin is not None:
            try:
                self.popen.stdin.close()
            except OSError:
                pass
        for escalate in (self.popen.terminate, self.popen.kill):
            try:
                self.popen.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                escalate()
        self.popen.wait()


class Scenario:
    """Runs the caller and the pool and follows their output."""

    def __init__(
        self, workers: int = 2, requests: int = 120, show: Callable[[str], None] = print
    ) -> None:
        self.workers = workers
        self.requests = requests
        self.show = show
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.seen: list[tuple[str, str]] = []
        self.children: list[Child] = []
        self.suffix = secrets.token_hex(3)
        self.cookie = secrets.token_hex(16)
        self.beam_dir = tempfile.mkdtemp(prefix="erlnode-workers-")
        self.summary: dict[str, float] = {}

    def expect(self, label: str, pattern: str, step: str) -> re.Match[str]:
        """Waits until a line of `label` matches `pattern` (lines seen earlier count too)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + STEP_TIMEOUT
        checked = 0
        while True:
            for source, line in self.seen[checked:]:
                match = regex.search(line) if source == label else None
                if match:
                    self.show(f"==> ok: {step}")
                    return match
            checked = len(self.seen)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DemoFailure(f"{step}: {label} printed nothing like {pattern!r} in time")
            try:
                source, line = self.lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            self.seen.append((source, line))
            self.show(f"  {source:>6} | {line}")

    def start(self, label: str, argv: Sequence[str]) -> Child:
        child = Child(label, argv, self.lines)
        self.children.append(child)
        return child

    def compile_erlang(self) -> None:
        for tool in ("erl", "erlc"):
            if shutil.which(tool) is None:
                raise DemoFailure(f"`{tool}` is not on PATH: install Erlang/OTP (make erlang)")
        result = subprocess.run(
            ["erlc", "-o", self.beam_dir, str(HERE / "caller.erl")],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise DemoFailure(f"erlc failed:\n{result.stdout}{result.stderr}")

    def run(self) -> None:
        self.compile_erlang()
        self.show("--- starting the Erlang caller")
        self.start(
            "caller",
            [
                "erl", "-sname", f"caller_{self.suffix}", "-setcookie", self.cookie,
                "-noshell", "-pa", self.beam_dir, "-eval", "caller:main()", "-extra",
                "primes", str(self.requests), str(2 * self.workers), str(self.workers),
                str(LIMIT),
            ],
        )  # fmt: skip
        caller = self.expect("caller", r"caller (\S+) up", "the caller is up").group(1)

        self.show(f"--- starting a pool of {self.workers} Python workers")
        self.start(
            "pool",
            [
                sys.executable, "-u", str(HERE / "primes.py"), "--cookie", self.cookie,
                "--connect", caller, "--workers", str(self.workers),
                "--name", f"primes_{self.suffix}_",
            ],
        )  # fmt: skip
        victim = self.expect("pool", r"worker (\S+) up, os pid (\d+)", "a worker is up")
        self.expect("pool", r"pool ready", "the pool is ready")
        self.expect("caller", rf"members {self.workers}:", "Erlang sees every worker")

        self.expect("caller", r"progress \d+/", "requests are being answered")
        self.show(f"--- killing worker {victim.group(1)} (SIGKILL to os pid {victim.group(2)})")
        os.kill(int(victim.group(2)), signal.SIGKILL)
        self.expect(
            "pool", rf"worker {re.escape(victim.group(1))} restarted", "the pool restarted it"
        )
        done = self.expect(
            "caller",
            r"done total=(\d+) answered=(\d+) errors=(\d+) retries=(\d+) seconds=([\d.]+)",
            "every request ended",
        )
        total, answered, errors, retries = (int(done.group(i)) for i in range(1, 5))
        self.summary = {
            "total": total,
            "answered": answered,
            "errors": errors,
            "retries": retries,
            "seconds": float(done.group(5)),
        }
        if total != self.requests or answered + errors != total:
            raise DemoFailure(f"requests lost: {self.summary}")
        if errors:
            raise DemoFailure(f"requests failed although a worker was always up: {self.summary}")
        counts = self.expect("caller", r"prime counts seen: \[(.*)\]", "the answers are in")
        if "," in counts.group(1):
            raise DemoFailure(f"the workers disagree: {counts.group(1)}")
        self.expect("caller", rf"members again {self.workers}: ok", "the group is whole again")

        self.show("--- stopping the pool")
        pool = self.children[1]
        pool.stop()
        self.expect("pool", r"pool stopped", "the pool stopped")

    def close(self) -> None:
        for child in reversed(self.children):
            child.stop()
        shutil.rmtree(self.beam_dir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=120)
    args = parser.parse_args(argv)
    scenario = Scenario(args.workers, args.requests)
    try:
        scenario.run()
    except DemoFailure as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        scenario.close()
    print(f"all steps passed: {scenario.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
