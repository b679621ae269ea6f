"""Handshake, ping and messages both ways against another OTP release, by hand.

The OTP 25/27/29 CI matrix is future work; until then this checks a release that lives in a
Debian root made with ``debootstrap --variant=minbase --include=erlang-base trixie DIR`` (or
``sid``), which shares this machine's loopback and EPMD::

    .venv/bin/python scripts/otp_interop.py /path/to/root [--visible]

With ``--visible`` the Python node is visible, so the Erlang side's ``global`` syncs with it.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys

import erlnode
from erlnode import Atom


def main(root: str, visible: bool) -> int:
    shutil.copy("/etc/hosts", f"{root}/etc/hosts")
    host = socket.gethostname().split(".")[0]
    cookie = secrets.token_hex(8)
    py_name = f"py_{secrets.token_hex(3)}"
    erl_name = f"otp_{secrets.token_hex(3)}"
    with erlnode.Node(py_name, cookie=cookie, hidden=not visible) as node:
        script = (
            "register(probe, self()),"
            f"Pong = net_adm:ping('{node.name}'),"
            f"{{inbox, '{node.name}'}} ! {{self(), Pong, erlang:system_info(otp_release)}},"
            'receive {echo, T} -> io:format("echo ~p~n", [T]) after 10000 -> timeout end,'
            'io:format("global:sync ~p~n", [global:sync()]),'
            "halt()."
        )
        inbox = node.mailbox("inbox")
        erl = subprocess.Popen(
            [
                "chroot",
                root,
                "erl",
                "-sname",
                erl_name,
                "-setcookie",
                cookie,
                "-noshell",
                "-eval",
                script,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            sender, pong, release = inbox.receive(timeout=30)
            print(f"OTP {release}: net_adm:ping from Erlang -> {pong}")
            pinged = node.ping(f"{erl_name}@{host}")
            print(f"OTP {release}: Node.ping from Python -> {pinged}")
            inbox.send(sender, (Atom("echo"), [1, 2.5, b"bin", "text"]))
            out, _ = erl.communicate(timeout=30)
            print(f"OTP {release}: Erlang printed {out.strip()!r}")
            ok = (
                pong == Atom("pong")
                and pinged
                and 'echo [1,2.5,<<"bin">>' in out
                and "global:sync ok" in out
            )
        finally:
            if erl.poll() is None:
                erl.kill()
                erl.wait()
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], "--visible" in sys.argv[2:]))
