"""A real Erlang node for tests, driven over stdin/stdout.

``Erl()`` starts ``erl`` with distribution on (random ``-sname`` and cookie) running the
read-eval loop of ``tests/erlang/erlnode_repl.erl``; ``eval`` sends an Erlang expression and
returns its value. Bindings persist across calls, so a test can do ``erl.eval("P = spawn(...)")``
and use ``P`` later. Every read has a timeout, errors carry erl's own output, and ``stop``
always kills the OS process.

    with Erl() as erl:
        assert erl.eval("1 + 2") == 3

``Erl(otp=release)`` runs another OTP release: ``OTP_RELEASES`` holds the host's ``erl`` (Debian
12: OTP 25) and the ones in the Debian roots that ``make otp-roots`` builds (trixie: OTP 27;
sid: the newest), run with ``chroot`` on this machine's loopback and EPMD.
"""

from __future__ import annotations

import atexit
import base64
import os
import queue
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from typing_extensions import Self

import erlnode

ERLANG_SRC = Path(__file__).parent / "erlang"
MARK = "@@ERLREPL@@ "

#: Where `make otp-roots` builds the Debian roots, one directory per suite, and beside each
#: a `<suite>.done` stamp (written last: a root without it is half-built and not used).
OTP_ROOTS = Path(
    os.environ.get("ERLNODE_OTP_ROOTS") or Path.home() / ".cache" / "erlnode" / "otp-roots"
)
#: The Debian suites whose Erlang/OTP the interop tests run against besides the host's.
OTP_SUITES = ("trixie", "sid")


class ErlError(RuntimeError):
    """The expression raised in Erlang, or the node failed; the message says which."""


class Otp:
    """An Erlang/OTP release to run nodes of: the host's ``erl`` on PATH (``suite`` None), or
    the one installed in the Debian root of ``suite``, run with ``chroot``. A chroot'ed node
    shares this machine's network (loopback, the test session's EPMD) and process ids (it is
    stopped and killed like a host one); only its files are the root's."""

    def __init__(self, suite: str | None = None) -> None:
        self.suite = suite
        self.root = None if suite is None else OTP_ROOTS / suite
        #: The full version, e.g. "27.3.4.1"; None when this release is not installed.
        self.version: str | None = None
        if self.root is None:
            erl = shutil.which("erl")
            if erl is not None:  # /usr/bin/erl -> /usr/lib/erlang/bin/erl
                for found in Path(erl).resolve().parents[1].glob("releases/*/OTP_VERSION"):
                    self.version = found.read_text().strip()
        elif (OTP_ROOTS / f"{suite}.done").exists():
            self.version = (OTP_ROOTS / f"{suite}.done").read_text().strip()
        major = self.version.split(".")[0] if self.version else None
        #: The test id: "otp27"; "otp-trixie-missing" when the root is not built.
        self.id = f"otp{major}" if major else f"otp-{suite or 'host'}-missing"
        self._beams: str | None = None
        self._lock = threading.Lock()

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"Otp({self.id}, {self.root or 'host'})"

    def command(self, tool: str, *args: str) -> list[str]:
        """The command line running one of this release's tools (erl, erlc)."""
        if self.root is None:
            return [tool, *args]
        return ["chroot", str(self.root), tool, *args]

    def _check_root(self) -> Path:
        """The root, made ready to run nodes; raises (never skips) when it cannot be used."""
        assert self.root is not None
        if self.version is None:
            raise ErlError(
                f"the Debian {self.suite} root ({self.root}) is missing or half-built (no"
                f" {OTP_ROOTS / f'{self.suite}.done'}): run `make otp-roots`"
            )
        if os.geteuid() != 0:
            raise ErlError(f"running the OTP {self.version} of {self.root} needs chroot: be root")
        # Names resolve inside the root: its nodes need this machine's host name, which may
        # have changed since the root was built.
        for name in ("hosts", "resolv.conf"):
            source, target = Path("/etc") / name, self.root / "etc" / name
            if source.exists() and (
                target.is_symlink()
                or not target.exists()
                or target.read_bytes() != source.read_bytes()
            ):
                target.unlink(missing_ok=True)  # (a symlink would be followed out of the root)
                shutil.copyfile(source, target)
        return self.root

    def code_dir(self) -> str:
        """Compiles every module in tests/erlang with this release's ``erlc``, once per
        process; returns the .beam directory as this release's ``erl`` sees it."""
        with self._lock:
            if self._beams is None:
                if self.root is None:
                    out = Path(tempfile.mkdtemp(prefix="erlnode-beams-"))
                    seen_as = str(out)
                    sources = sorted(str(p) for p in ERLANG_SRC.glob("*.erl"))
                else:
                    # The sources and beams live in the root's /tmp, where its erlc and erl
                    # find them.
                    root = self._check_root()
                    out = Path(tempfile.mkdtemp(prefix="erlnode-beams-", dir=root / "tmp"))
                    seen_as = f"/{out.relative_to(root)}"
                    sources = []
                    for source in sorted(ERLANG_SRC.glob("*.erl")):
                        shutil.copyfile(source, out / source.name)
                        sources.append(f"{seen_as}/{source.name}")
                atexit.register(shutil.rmtree, out, True)
                done = subprocess.run(
                    self.command("erlc", "-o", seen_as, *sources),
                    capture_output=True,
                    check=False,
                    text=True,
                    errors="replace",
                    timeout=120,
                )
                if done.returncode != 0:
                    raise ErlError(f"erlc of {self!r} failed:\n{done.stdout}\n{done.stderr}")
                self._beams = seen_as
            return self._beams


#: The host's Erlang/OTP (Debian 12's erlang-nox: OTP 25).
HOST_OTP = Otp()
#: Every release the interop tests run against: the host's, then one per Debian root.
OTP_RELEASES = [HOST_OTP, *(Otp(suite) for suite in OTP_SUITES)]


def erl_available() -> bool:
    return shutil.which("erl") is not None and shutil.which("erlc") is not None


def random_name(prefix: str = "erltest") -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


class Erl:
    """A real ``erl`` node evaluating expressions sent from Python."""

    def __init__(
        self,
        sname: str | None = None,
        cookie: str | None = None,
        longnames: bool = False,
        extra_args: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        start_timeout: float = 30.0,
        timeout: float = 60.0,
        otp: Otp = HOST_OTP,
    ) -> None:
        self.otp = otp
        self.cookie = cookie or secrets.token_hex(12)
        self.timeout = timeout
        base = sname or random_name()
        if longnames and "@" not in base:
            base = f"{base}@127.0.0.1"
        args = otp.command(
            "erl",
            "-name" if longnames else "-sname",
            base,
            "-setcookie",
            self.cookie,
            "-noinput",  # (erlnode_repl reads stdin itself)
            "-pa",
            otp.code_dir(),
            *extra_args,
            "-eval",
            "erlnode_repl:main()",
        )
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self._log: deque[str] = deque(maxlen=200)
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True)
        self._reader.start()
        try:
            kind, payload = self._reply(start_timeout, "starting")
            if kind != "ready":
                raise ErlError(f"unexpected first reply {kind!r}")
            self.name: str = payload.decode()
        except BaseException:
            self.stop()
            raise

    # -- plumbing -------------------------------------------------------------------------

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith(MARK):
                self._replies.put(line[len(MARK) :])
            else:
                self._log.append(line)
        self._replies.put(None)

    def output(self) -> str:
        """The node's recent output other than replies (for error messages)."""
        return "\n".join(self._log)

    def _reply(self, timeout: float, doing: str) -> tuple[str, bytes]:
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise ErlError(
                f"erl did not answer within {timeout}s while {doing}; output:\n{self.output()}"
            ) from None
        if line is None:
            code = self._proc.poll() if self._proc else None
            raise ErlError(f"erl exited (status {code}) while {doing}; output:\n{self.output()}")
        kind, _, payload = line.partition(" ")
        return kind, base64.b64decode(payload)

    def _request(self, line: str, doing: str, timeout: float | None) -> bytes:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise ErlError("the erl node is stopped")
        try:
            proc.stdin.write(line.encode() + b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise ErlError(f"erl is gone ({e}); output:\n{self.output()}") from None
        kind, payload = self._reply(self.timeout if timeout is None else timeout, doing)
        if kind == "error":
            raise ErlError(f"{doing} failed in Erlang:\n{payload.decode('utf-8', 'replace')}")
        if kind != "ok":
            raise ErlError(f"unexpected reply {kind!r} while {doing}")
        return payload

    # -- API ------------------------------------------------------------------------------

    def eval_raw(self, expr: str, timeout: float | None = None) -> bytes:
        """Evaluates an Erlang expression; returns ``term_to_binary(Result)``."""
        expr = expr.strip()
        if not expr.endswith("."):
            expr += "."
        encoded = base64.b64encode(expr.encode()).decode()
        return self._request(f"E {encoded}", f"evaluating {expr[:200]!r}", timeout)

    def eval(self, expr: str, timeout: float | None = None) -> Any:
        """Evaluates an Erlang expression; returns its value decoded by erlnode."""
        return erlnode.decode(self.eval_raw(expr, timeout))

    def bind(self, name: str, data: bytes) -> None:
        """Binds the Erlang variable ``name`` to the binary ``data`` (replacing any value)."""
        encoded = base64.b64encode(data).decode()
        self._request(f"S {name} {encoded}", f"binding {name}", None)

    def forget(self, name: str) -> None:
        """Unbinds the Erlang variable ``name``."""
        self._request(f"F {name}", f"unbinding {name}", None)

    def stop(self) -> None:
        """Halts the node; kills it if it does not exit promptly. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None and proc.stdin is not None:
                proc.stdin.write(b"Q\n")
                proc.stdin.flush()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.kill()
            proc.wait(timeout=5)
        finally:
            # The session (process group) is ours alone: make sure nothing in it survives.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
            self._reader.join(timeout=2)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        if getattr(self, "_proc", None) is not None:
            self.stop()


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Polls ``predicate()`` until it is true or ``timeout`` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return bool(value)
        time.sleep(interval)


def echo_forever(mbox: erlnode.Mailbox) -> threading.Thread:
    """Answers every `{From, Term}` with `Term` on a thread of its own, until the node (or
    the mailbox) closes."""

    def run() -> None:
        while True:
            try:
                sender, term = mbox.receive()
            except erlnode.NodeClosedError:
                return
            mbox.send(sender, term)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
