"""Shared fixtures: real Erlang nodes (see tests/erl.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import erlnode

sys.path.insert(0, str(Path(__file__).parent))

from erl import (  # noqa: E402 - tests/ is on the path just above
    HOST_OTP,
    Erl,
    Otp,
    erl_available,
    random_name,
)


def _need_erl(otp: Otp = HOST_OTP) -> None:
    # Another release's root missing is a failure, never a skip: Otp.code_dir says why.
    if otp is HOST_OTP and not erl_available():
        if os.environ.get("CI"):
            pytest.fail("erl is not on PATH (and CI is set)")
        pytest.skip("erl is not on PATH")


@pytest.fixture(scope="session", autouse=True)
def private_epmd() -> Iterator[int | None]:
    """An EPMD of the test session's own on a free port, for every node the tests start.

    `ERL_EPMD_PORT` points both the `erl` nodes and erlnode's nodes at it, so the suite
    neither needs nor leaves a system-wide `epmd -daemon`, and never meets the names of
    whatever else runs on the machine. Stopped by its pid at the end. Without an `epmd`
    binary the tests use the default port (the erl-based ones are skipped or fail anyway).
    """
    binary = shutil.which("epmd")
    if binary is None:
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [binary, "-port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    saved = {key: os.environ.get(key) for key in ("ERL_EPMD_PORT", "ERL_FLAGS")}
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"epmd did not start on port {port}") from None
                time.sleep(0.05)
        os.environ["ERL_EPMD_PORT"] = str(port)
        # `erl` would otherwise try to start an `epmd -daemon` of its own for every node.
        os.environ["ERL_FLAGS"] = f"{saved['ERL_FLAGS'] or ''} -start_epmd false".strip()
        yield port
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def otp() -> Otp:
    """The OTP release the `erl` fixture runs: the host's, unless the test is parametrised
    over `OTP_RELEASES` (tests/erl.py), as the interop tests are."""
    return HOST_OTP


@pytest.fixture
def erl(otp: Otp) -> Iterator[Erl]:
    """A fresh Erlang node (random name and cookie) of the `otp` release, stopped after the
    test."""
    _need_erl(otp)
    node = Erl(otp=otp)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def session_erl() -> Iterator[Erl]:
    """One Erlang node shared by the codec tests of the whole session."""
    _need_erl()
    node = Erl()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def node(erl: Erl) -> Iterator[erlnode.Node]:
    """A Python node sharing the `erl` fixture's cookie, closed after the test."""
    n = erlnode.Node(random_name("py"), cookie=erl.cookie)
    try:
        yield n
    finally:
        n.close()
