"""What the benchmark scripts share for their reports: the machine, the command, the block.

Each script owns a block of BENCHMARKS.md between its own markers and rewrites only that.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict[str, str]:
    """The machine and the build the figures come from."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    otp = subprocess.run(
        ["erl", "-noshell", "-eval", 'io:format("~s", [erlang:system_info(otp_release)]), halt().'],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    version_file = Path("/usr/lib/erlang/releases") / otp / "OTP_VERSION"
    if version_file.exists():
        otp = version_file.read_text().strip()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "otp": otp,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "commit": commit or "unknown",
    }


def machine_line(extra: str = "") -> str:
    """`machine()` as one sentence; `extra` (a tool's version) goes after Python's."""
    m = machine()
    tools = ", ".join(filter(None, [f"Python {m['python']}", extra]))
    return (
        f"nproc {m['nproc']}, {m['cpu']}, kernel {m['kernel']}; Erlang/OTP {m['otp']}, "
        f"{tools}, erlnode commit {m['commit']}"
    )


def python_command() -> str:
    """The interpreter as typed from the repository root (`.venv/bin/python`)."""
    try:
        return str(Path(sys.executable).relative_to(ROOT))
    except ValueError:
        return sys.executable


def write_block(
    path: Path, block: str, begin: str, end: str, heading: str, after: list[str]
) -> None:
    """Replaces the text between `begin` and `end`, or adds the section (`heading`, markers,
    block) after the first of the `after` markers found, else at the end of the file."""
    text = path.read_text()
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + begin + "\n" + block + "\n" + end + rest.split(end, 1)[1]
    else:
        section = f"\n\n{heading}\n\n{begin}\n{block}\n{end}"
        anchor = next((a for a in after if a in text), None)
        if anchor is None:
            text = text.rstrip("\n") + section + "\n"
        else:
            head, tail = text.split(anchor, 1)
            text = head + anchor + section + tail
    path.write_text(text)
