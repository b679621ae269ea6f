"""Two network namespaces joined by a veth pair, for the partition test (needs root).

    with NamespacePair() as net:
        net.run_in(0, ["epmd", "-port", "4369"])   # a process in the first namespace
        net.cut()                                  # the link goes down: a partition
        net.heal()

Namespace ``i`` holds the veth end ``veth[i]`` with the address ``addr[i]`` (a random
10.x.y.0/24, so that two runs never meet), and its loopback up. `close` deletes both
namespaces, which deletes the veth pair with them; the processes started in them are the
caller's to stop (by pid) before that.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess

from erl import HOST_OTP, Otp


def can_make_namespaces() -> str | None:
    """None when this process can make namespaces, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    return None


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


class NamespacePair:
    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.ns = (f"erlnode-{tag}-a", f"erlnode-{tag}-b")
        # Interface names have at most 15 characters.
        self.veth = (f"en{tag}a", f"en{tag}b")
        x, y = secrets.randbelow(254) + 1, secrets.randbelow(254) + 1
        self.addr = (f"10.{x}.{y}.1", f"10.{x}.{y}.2")
        self._made: list[str] = []
        try:
            for ns in self.ns:
                ip("netns", "add", ns)
                self._made.append(ns)
            ip("link", "add", self.veth[0], "type", "veth", "peer", "name", self.veth[1])
            for ns, veth, addr in zip(self.ns, self.veth, self.addr, strict=True):
                ip("link", "set", veth, "netns", ns)
                ip("-n", ns, "addr", "add", f"{addr}/24", "dev", veth)
                ip("-n", ns, "link", "set", veth, "up")
                ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def prefix(self, i: int) -> list[str]:
        """The command prefix that runs a program in namespace `i`."""
        return ["ip", "netns", "exec", self.ns[i]]

    def cut(self) -> None:
        """Takes the link down: nothing passes between the namespaces."""
        ip("-n", self.ns[0], "link", "set", self.veth[0], "down")

    def heal(self) -> None:
        ip("-n", self.ns[0], "link", "set", self.veth[0], "up")

    def close(self) -> None:
        """Deletes the namespaces (and so the veth pair). Safe to call twice."""
        made, self._made = self._made, []
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        # A veth end still outside (set-up failed before moving it) goes on its own.
        for veth in self.veth:
            subprocess.run(["ip", "link", "del", veth], capture_output=True, check=False)

    def __enter__(self) -> NamespacePair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NamespaceOtp(Otp):
    """The host's Erlang/OTP, its nodes run in a network namespace (`Erl(otp=...)`)."""

    def __init__(self, netns: str) -> None:
        super().__init__()
        self.netns = netns
        self.id = f"{HOST_OTP.id}-in-{netns}"

    def command(self, tool: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, tool, *args]

    def code_dir(self) -> str:
        # The mount namespace is shared: the host's compiled modules serve.
        return HOST_OTP.code_dir()
