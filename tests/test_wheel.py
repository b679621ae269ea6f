"""The release artifacts work where users install them.

* The wheel `make wheel` built (dist/erlnode-*.whl) installs into a fresh venv of every
  CPython 3.10-3.13 on this machine, with no Rust toolchain on PATH, imports, and talks to a
  real erl node: ping, an RPC, a message echoed by an Erlang process.
* The sdist `make sdist` built (dist/erlnode-*.tar.gz) builds a wheel from source in a clean
  directory, which installs and imports.

`make test` builds both first. When they are missing or older than the sources (`make pytest`
alone), the tests skip and say so; under CI they fail instead, as for a missing erl.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from erl import Erl

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"
VERSIONS = [(3, 10), (3, 11), (3, 12), (3, 13)]
# What the wheel is built from: it is out of date when any of these is newer.
SOURCES = [ROOT / "rust", ROOT / "python", ROOT / "Cargo.toml", ROOT / "Cargo.lock",
           ROOT / "pyproject.toml"]  # fmt: skip


def missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} (and CI is set)")
    pytest.skip(what)


def newest_source() -> float:
    newest = 0.0
    for source in SOURCES:
        paths = source.rglob("*") if source.is_dir() else [source]
        for path in paths:
            if path.is_file() and path.suffix != ".so" and "__pycache__" not in path.parts:
                newest = max(newest, path.stat().st_mtime)
    return newest


def artifact(pattern: str, make: str) -> Path:
    """The one file of dist/ matching PATTERN, built after the last change to the sources."""
    found = sorted(DIST.glob(pattern))
    if len(found) != 1:
        missing(f"expected one {pattern} in dist/, found {len(found)}: run `make {make}`")
    if found[0].stat().st_mtime < newest_source():
        missing(f"{found[0].name} is older than the sources: run `make {make}`")
    return found[0]


def find_pythons() -> dict[tuple[int, int], str]:
    """One CPython per minor version 3.10-3.13: pyenv's, then those on PATH."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(str(p) for p in pyenv.glob("3.*/bin/python3"))
    candidates += [shutil.which(f"python{major}.{minor}") or "" for major, minor in VERSIONS]
    candidates.append(sys.executable)
    found: dict[tuple[int, int], str] = {}
    probe = "import sys, platform; print(platform.python_implementation(), *sys.version_info[:2])"
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run(
                [candidate, "-c", probe], capture_output=True, text=True, timeout=30, check=True
            ).stdout.split()
        except (OSError, subprocess.SubprocessError):
            continue
        version = (int(out[1]), int(out[2]))
        if out[0] == "CPython" and version in VERSIONS:
            found.setdefault(version, candidate)
    return found


PYTHONS = find_pythons()


def no_rust_env(bin_dir: Path) -> dict[str, str]:
    """The environment a user without Rust has: PATH is the venv and the system's binaries."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARGO", "RUSTUP"))}
    env["PATH"] = os.pathsep.join([str(bin_dir), "/usr/local/bin", "/usr/bin", "/bin"])
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    for tool in ("cargo", "rustc", "maturin"):
        assert shutil.which(tool, path=env["PATH"]) is None, f"{tool} is on the test's PATH"
    return env


def fresh_venv(python: str, where: Path) -> Path:
    """A new venv of PYTHON (with pip, from the interpreter's own ensurepip): its python."""
    subprocess.run([python, "-m", "venv", str(where)], check=True, timeout=300)
    return where / "bin" / "python"


def install(python: Path, wheel: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)],
        check=True, timeout=300, env=env,
    )  # fmt: skip


# Run by each venv's python, from an empty directory: the installed erlnode, not python/.
PING_ECHO = """
import sys
import erlnode
from erlnode.compat.py_interface import erl_term

peer, cookie, name = sys.argv[1:4]
assert "site-packages" in erlnode.__file__, erlnode.__file__
assert erl_term.BinaryToTerm(erl_term.TermToBinary((1, "a"))) == (1, "a")
with erlnode.Node(name, cookie=cookie) as node:
    assert node.ping(peer), "pang"
    assert node.rpc(peer, "erlang", "node", []) == peer
    box = node.mailbox()
    box.send(("echo", peer), (box.pid, erlnode.Atom("hello")))
    assert box.receive(timeout=10) == ("echo", "hello")
print("ok", sys.version_info[:2], flush=True)
"""


@pytest.fixture(scope="module")
def wheel() -> Path:
    return artifact("erlnode-*.whl", "wheel")


@pytest.fixture(scope="module")
def echo_erl() -> Iterator[Erl]:
    """An erl node with a registered `echo` process: `{Pid, M}` -> `Pid ! {echo, M}`."""
    if shutil.which("erl") is None:
        missing("erl is not on PATH")
    node = Erl()
    try:
        node.eval(
            "register(echo, spawn(fun Loop() -> receive {P, M} -> P ! {echo, M}, Loop() end end))"
        )
        yield node
    finally:
        node.stop()


def test_other_pythons_exist() -> None:
    others = {v for v in PYTHONS if v != sys.version_info[:2]}
    if not others:
        missing("no CPython 3.10-3.13 besides this one: the wheel is tested with this one only")
    assert len(PYTHONS) >= 2


def test_the_wheel_is_abi3_manylinux_and_stripped(wheel: Path) -> None:
    # One wheel for every CPython >= 3.10, on glibc >= 2.17 (manylinux2014).
    assert "-cp310-abi3-" in wheel.name and "manylinux_2_17_" in wheel.name, wheel.name
    with zipfile.ZipFile(wheel) as archive:
        so = next(i for i in archive.infolist() if i.filename.endswith(".so"))
        assert so.file_size < 8_000_000, f"the extension is {so.file_size} bytes: not stripped?"


@pytest.mark.parametrize("version", sorted(PYTHONS), ids=lambda v: f"py{v[0]}.{v[1]}")
def test_the_wheel_installs_and_talks_to_erl(
    version: tuple[int, int], wheel: Path, echo_erl: Erl, tmp_path: Path
) -> None:
    python = fresh_venv(PYTHONS[version], tmp_path / "venv")
    env = no_rust_env(python.parent)
    install(python, wheel, env)
    work = tmp_path / "work"
    work.mkdir()
    name = f"wheel_{version[0]}{version[1]}_{os.getpid()}"
    result = subprocess.run(
        [str(python), "-c", PING_ECHO, echo_erl.name, echo_erl.cookie, name],
        cwd=work, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"ok {version}"


def test_the_sdist_builds_a_working_wheel(tmp_path: Path) -> None:
    sdist = artifact("erlnode-*.tar.gz", "sdist")
    # Unpacked in a directory of its own, outside the repository; built there by pip with
    # maturin (the build backend pyproject names), then installed in a fresh venv.
    build_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "erlnode"
    build_dir = build_dir / "sdist-build"
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    with tarfile.open(sdist) as archive:
        archive.extractall(build_dir, filter="data")
    (source,) = build_dir.iterdir()
    # Newer than any build of the repository: cargo compiles erlnode from these files, not
    # from what it compiled before (the paths it tracks are relative to the crate).
    now = time.time()
    for path in source.rglob("*"):
        os.utime(path, (now, now))
    assert not (source / "dist").exists() and not (source / "target").exists()
    env = dict(os.environ)
    # Compiled dependencies are reused from the repository's builds (the same versions, from
    # the same Cargo.lock); erlnode itself is compiled from the unpacked sources.
    env.setdefault("CARGO_TARGET_DIR", str(ROOT / "target"))
    out = tmp_path / "wheelhouse"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(source)],
        check=True, timeout=1200, env=env,
    )  # fmt: skip
    (built,) = out.glob("erlnode-*.whl")
    python = fresh_venv(sys.executable, tmp_path / "venv")
    install(python, built, no_rust_env(python.parent))
    check = "import erlnode; assert erlnode.decode(erlnode.encode([1, 'a'])) == [1, 'a']"
    env = no_rust_env(python.parent)
    subprocess.run([str(python), "-c", check], check=True, cwd=tmp_path, env=env, timeout=60)
    shutil.rmtree(build_dir, ignore_errors=True)
