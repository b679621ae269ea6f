"""A Python interpreter in another process, driven over stdin/stdout like tests/erl.py's `Erl`.

Used where the node under test must live somewhere the test process is not: in another
network namespace (`PyProcess(prefix=["ip", "netns", "exec", ns])`), or in a process that
exits right after `node.close()`. Run as a script, this file is the child: it executes each
request's code in one namespace that persists, and answers with the value of the variable
`result` (JSON), or the traceback.

    with PyProcess() as py:
        py.run("import erlnode; node = erlnode.Node('a', cookie='c')")
        assert py.run("result = node.name").startswith("a@")
"""

from __future__ import annotations

import base64
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

MARK = "@@PYREPL@@ "


class PyProcessError(RuntimeError):
    """The code raised in the child, or the child failed; the message says which."""


class PyProcess:
    """A child Python running this file; `run` executes code there."""

    def __init__(
        self,
        prefix: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.timeout = timeout
        full_env = dict(os.environ)
        full_env.update(env or {})
        # The child imports erlnode from wherever this interpreter does.
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self._log: deque[str] = deque(maxlen=200)
        self._replies: queue.Queue[str | None] = queue.Queue()
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [*prefix, sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith(MARK):
                self._replies.put(line[len(MARK) :])
            else:
                self._log.append(line)
        self._replies.put(None)

    def output(self) -> str:
        """What the child printed other than answers (its stderr too: erlnode's log)."""
        return "\n".join(self._log)

    def run(self, code: str, timeout: float | None = None) -> Any:
        """Executes `code` in the child; returns the JSON value of its `result` variable (set
        to None before each request)."""
        proc = self.proc
        if proc is None or proc.stdin is None:
            raise PyProcessError("the child is stopped")
        proc.stdin.write(base64.b64encode(code.encode()) + b"\n")
        proc.stdin.flush()
        wait = self.timeout if timeout is None else timeout
        try:
            line = self._replies.get(timeout=wait)
        except queue.Empty:
            raise PyProcessError(
                f"no answer within {wait}s to {code[:200]!r}; output:\n{self.output()}"
            ) from None
        if line is None:
            raise PyProcessError(f"the child exited ({proc.poll()}); output:\n{self.output()}")
        kind, _, payload = line.partition(" ")
        text = base64.b64decode(payload).decode()
        if kind == "error":
            raise PyProcessError(f"{code[:200]!r} raised in the child:\n{text}")
        return json.loads(text)

    def wait(self, timeout: float) -> int:
        """Waits for the child to exit by itself (its code called `sys.exit`, say)."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """Kills the child's process group. Safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self._reader.join(timeout=2)

    def __enter__(self) -> PyProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve() -> None:
    namespace: dict[str, Any] = {"__name__": "__pyrepl__"}
    out = sys.stdout
    for line in sys.stdin:
        namespace["result"] = None
        try:
            exec(base64.b64decode(line).decode(), namespace)
            kind, text = "ok", json.dumps(namespace.get("result"))
        except SystemExit:
            raise  # the code ends the child, as a program's main would
        except BaseException:  # noqa: BLE001 - reported to the test, which raises it
            kind, text = "error", traceback.format_exc()
        out.write(f"{MARK}{kind} {base64.b64encode(text.encode()).decode()}\n")
        out.flush()


if __name__ == "__main__":
    _serve()
