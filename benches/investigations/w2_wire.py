"""Where a W2 round trip goes, read off the wire: each side's turnaround, from packet times.

Runs W2 (the Erlang driver pinging a remote) while tcpdump records the connection's packets
on the loopback interface, then splits every round trip into the remote's turnaround (ping
packet seen -> pong packet seen) and the driver's (pong seen -> next ping seen). Packet times
are taken as the sending process hands the packet to the loopback device, so each figure is
one side's whole receive, work and send, including its wake-up if it had gone to sleep.

Needs tcpdump and the right to capture (root); prints one line per remote and condition:

    .venv/bin/python benches/investigations/w2_wire.py \
        [--remote erlang,plain] [--pings 30000] [--busy-core]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# run.py and the remotes are one folder up, in benches/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from run import BenchError, Child, Cluster, Driver, busy_core

PACKET = re.compile(r"^(\d+\.\d+) IP \S+\.(\d+) > \S+\.(\d+): .* length (\d+)")


def start_remote(cluster: Cluster, kind: str) -> Child:
    if kind == "erlang":
        return cluster.erl("wire_erl", "-eval", "bench_remote:start()")
    return cluster.py_remote(kind)


def remote_port(pid: int, epmd_port: int) -> str:
    """The local port of the remote's distribution connection (not its EPMD connection)."""
    listing = subprocess.run(
        ["ss", "-tnpH", "state", "established"], capture_output=True, text=True, check=True
    ).stdout
    for line in listing.splitlines():
        local, peer = line.split()[2:4]
        if f"pid={pid}," in line and peer.rsplit(":", 1)[1] != str(epmd_port):
            return local.rsplit(":", 1)[1]
    raise BenchError(f"no connection of pid {pid} in ss output")


def turnarounds(pcap: Path, port: str) -> tuple[list[float], list[float]]:
    """(remote turnarounds, driver turnarounds) in µs, from consecutive data packets."""
    text = subprocess.run(
        ["tcpdump", "-r", str(pcap), "-nn", "-tt", "--time-stamp-precision=nano"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    packets = []
    for line in text.splitlines():
        m = PACKET.match(line)
        if m and int(m.group(4)) > 0:
            packets.append((float(m.group(1)), m.group(2) == port))
    remote, driver = [], []
    for (t0, from_remote0), (t1, from_remote1) in zip(packets, packets[1:], strict=False):
        if not from_remote0 and from_remote1:
            remote.append((t1 - t0) * 1e6)
        elif from_remote0 and not from_remote1:
            driver.append((t1 - t0) * 1e6)
    return remote, driver


def measure(kind: str, pings: int, busy: bool) -> str:
    cluster = Cluster()
    workdir = Path(tempfile.mkdtemp(prefix="erlnode-wire-"))
    try:
        cluster.start()
        driver = Driver(cluster.erl("wire_drv", "-eval", "bench_driver:main()", stdin=True))
        remote = start_remote(cluster, kind)
        node = remote.wait_line("READY ", 60)
        driver.request(f"{{warm, '{node}'}}")
        port = remote_port(remote.pid, cluster.epmd_port)
        pcap = workdir / "w2.pcap"
        dump = cluster.spawn(
            "tcpdump",
            [
                "tcpdump",
                "-i",
                "lo",
                "-nn",
                "-U",
                "-B",
                "65536",
                "-w",
                str(pcap),
                "tcp",
                "port",
                port,
            ],
        )
        time.sleep(0.5)
        result: dict[str, float] = {}
        with busy_core(cluster, busy):
            run = threading.Thread(
                target=lambda: result.update(driver.request(f"{{w2, '{node}', {pings}}}"))
            )
            run.start()
            run.join()
        time.sleep(0.5)
        dump.stop()
        remote_us, driver_us = turnarounds(pcap, port)
        return (
            f"{kind:8} {'one core busy' if busy else 'idle machine':14} round trip "
            f"{result['median_us']:5.1f} µs = remote {statistics.median(remote_us):4.1f} "
            f"+ driver {statistics.median(driver_us):4.1f} µs (medians of {len(remote_us)} "
            f"packet pairs)"
        )
    finally:
        cluster.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remote", default="erlang,plain", help="erlang and/or py_remote modes")
    parser.add_argument("--pings", type=int, default=30_000)
    parser.add_argument("--busy-core", action="store_true", help="also with one core kept busy")
    args = parser.parse_args()
    if shutil.which("tcpdump") is None:
        sys.exit("w2_wire.py needs tcpdump (apt-get install tcpdump)")
    for busy in (False, True) if args.busy_core else (False,):
        for kind in args.remote.split(","):
            print(measure(kind, args.pings, busy), flush=True)


if __name__ == "__main__":
    main()
