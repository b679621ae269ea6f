"""Where the time of W1–W4 over TLS goes: erlnode's remote beside Erlang's, both over TLS.

The contenders (a), (b) and (c) of benches/tls.py: an Erlang driver node over TLS with the
Erlang remote and the erlnode `receive()` remote, both over TLS, and a plain Erlang driver with
the erlnode remote over plain TCP (for comparison). Three views, printed as markdown (and saved
to benches/.results/tls_profile.md):

1. CPU per unit of work (message, round trip, MiB) of every thread of the remote and of its
   driver node (/proc/<pid>/task/*/stat), with context switches.
2. The TLS records on the wire: a packet socket on `lo` (root) sees every segment between the
   driver and each remote; the two byte streams are put together again and cut at the TLS
   record headers (5 bytes, in the clear). Per workload and direction: records, their median
   and mean length, messages per record, TCP segments. Also the cipher suite of each
   connection, read from the server's ServerHello (TLS 1.2 sends it in the clear).
3. `perf record` on the erlnode TLS remote during each workload: the hottest symbols.

    .venv/bin/python benches/investigations/tls_profile.py [--n 200000] [--rounds 3]
        [--views threads,records,perf] [--workloads W1,W2,W3,W4]

The sniffer (view 2) is a Python thread in this process: it costs CPU while the workloads run,
so its rates are not the benchmark's; its record counts are what it is for.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# run.py, tls.py and the remotes are one folder up, in benches/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from run import (
    RESULTS,
    BenchError,
    Child,
    Cluster,
    Driver,
    Settings,
    Workload,
    beam_pid,
    workloads,
)
from tls import erlnode_remote, make_certificates, tls_args, units

CIPHERS = {
    0xC02B: "ECDHE-ECDSA-AES128-GCM-SHA256",
    0xC02C: "ECDHE-ECDSA-AES256-GCM-SHA384",
    0xCCA9: "ECDHE-ECDSA-CHACHA20-POLY1305",
    0xC02F: "ECDHE-RSA-AES128-GCM-SHA256",
    0xC030: "ECDHE-RSA-AES256-GCM-SHA384",
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
}
#: Linux's numbers (not in Python's socket module).
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35


# -- view 1: threads ------------------------------------------------------------------------


def thread_stats(pid: int) -> dict[str, tuple[float, int, int]]:
    """(CPU seconds, voluntary, involuntary context switches) per thread name (Erlang's
    numbered threads, 1_scheduler, 2_scheduler, …, summed under one name)."""
    tick = os.sysconf("SC_CLK_TCK")
    per: dict[str, tuple[float, int, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            stat = (task / "stat").read_text()
            status = (task / "status").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        waits = preempted = 0
        for line in status.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                waits = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                preempted = int(line.split()[1])
        name = name.lstrip("0123456789_") or name
        old = per.get(name, (0.0, 0, 0))
        per[name] = (old[0] + cpu, old[1] + waits, old[2] + preempted)
    return per


def delta_rows(
    before: dict[str, tuple[float, int, int]],
    after: dict[str, tuple[float, int, int]],
    count: float,
    unit: str,
) -> list[str]:
    zero = (0.0, 0, 0)
    delta = {
        k: (v[0] - was[0], v[1] - was[1], v[2] - was[2])
        for k, v in after.items()
        for was in [before.get(k, zero)]
    }
    rows = sorted(delta.items(), key=lambda kv: -kv[1][0])
    total = (
        sum(v[0] for v in delta.values()),
        sum(v[1] for v in delta.values()),
        sum(v[2] for v in delta.values()),
    )
    rows.append(("**all threads**", total))
    out = [
        f"| thread | CPU µs per {unit} | blocking waits per {unit} | preemptions per {unit} |",
        "|---|---|---|---|",
    ]
    for name, (cpu, waits, preempted) in rows:
        if cpu > 0 or waits > 0:
            out.append(
                f"| {name} | {cpu / count * 1e6:.2f} | {waits / count:.3f} "
                f"| {preempted / count:.3f} |"
            )
    return out


# -- view 2: TLS records on the wire -------------------------------------------------------


@dataclass
class Direction:
    """One direction of one TCP connection, put together again and cut into TLS records."""

    next_seq: int | None = None
    buffer: bytearray = field(default_factory=bytearray)
    synced: bool = True
    gaps: int = 0
    #: (kernel time, record type, record length) of every complete record.
    records: list[tuple[float, int, int]] = field(default_factory=list)
    #: (kernel time, payload bytes) of every segment with data.
    segments: list[tuple[float, int]] = field(default_factory=list)
    #: The first handshake record (for the ServerHello).
    first_handshake: bytes = b""

    def add(self, t: float, seq: int, payload: bytes) -> None:
        if not payload:
            return
        self.segments.append((t, len(payload)))
        if self.next_seq is not None:
            ahead = (seq - self.next_seq) % (1 << 32)
            if ahead >= 1 << 31:  # behind: a retransmission, in part or whole
                behind = (1 << 32) - ahead
                if behind >= len(payload):
                    return
                payload = payload[behind:]
            elif ahead > 0:  # bytes we did not see: records can no longer be cut
                self.gaps += 1
                self.synced = False
                self.buffer.clear()
        self.next_seq = (seq + len(payload)) % (1 << 32)
        if not self.synced:
            return
        self.buffer += payload
        while len(self.buffer) >= 5:
            kind = self.buffer[0]
            length = int.from_bytes(self.buffer[3:5], "big")
            if len(self.buffer) < 5 + length:
                break
            if kind == 22 and not self.first_handshake:
                self.first_handshake = bytes(self.buffer[5 : 5 + length])
            self.records.append((t, kind, length))
            del self.buffer[: 5 + length]


class Sniffer:
    """Every TCP segment to or from the given ports on `lo`, by direction (root only)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind(("lo", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 256 * 1024 * 1024)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.settimeout(0.2)
        self.ports: set[int] = set()
        #: (source port, destination port) -> its direction.
        self.flows: dict[tuple[int, int], Direction] = collections.defaultdict(Direction)
        self.others = 0
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                data, anc, _, addr = self.sock.recvmsg(256 * 1024, 64)
            except TimeoutError:
                continue
            except OSError:
                return
            if addr[2] != PACKET_OUTGOING:  # lo shows each packet twice: once each way
                continue
            t = time.time()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    t = sec + nsec / 1e9
            self._packet(t, data[14:])  # after lo's (zero) Ethernet header

    def _packet(self, t: float, ip: bytes) -> None:
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            self.others += 1
            return
        header = (ip[0] & 0x0F) * 4
        total = int.from_bytes(ip[2:4], "big") or len(ip)
        tcp = ip[header:total]
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        if sport not in self.ports and dport not in self.ports:
            return
        offset = (tcp[12] >> 4) * 4
        self.flows[(sport, dport)].add(t, seq, tcp[offset:])

    def stop(self) -> None:
        time.sleep(0.5)
        self.running = False
        self.thread.join(timeout=5)
        self.sock.close()


def epmd_port_of(node: str, epmd_port: int) -> int:
    """The distribution port of `node` (alive@host), asked of EPMD (PORT_PLEASE2)."""
    alive = node.split("@")[0].encode()
    with socket.create_connection(("127.0.0.1", epmd_port), timeout=5) as s:
        s.sendall(struct.pack("!HB", 1 + len(alive), 122) + alive)
        reply = b""
        while len(reply) < 4:
            chunk = s.recv(64)
            if not chunk:
                break
            reply += chunk
    if len(reply) < 4 or reply[0] != 119 or reply[1] != 0:
        raise BenchError(f"EPMD does not know {node}: {reply!r}")
    return int(struct.unpack("!H", reply[2:4])[0])


def cipher_of(server_hello: bytes) -> str:
    """The cipher suite a ServerHello chose (TLS 1.2 sends it in the clear)."""
    if len(server_hello) < 40 or server_hello[0] != 2:
        return "?"
    session = server_hello[38]
    at = 39 + session
    suite = int.from_bytes(server_hello[at : at + 2], "big")
    return CIPHERS.get(suite, f"0x{suite:04X}")


def record_rows(
    label: str,
    flows: dict[str, Direction],
    window: tuple[float, float],
    messages: float,
) -> list[str]:
    out = []
    for way, flow in flows.items():
        recs = [length for t, kind, length in flow.records if kind == 23 and in_(t, window)]
        segs = [size for t, size in flow.segments if in_(t, window)]
        if not recs:
            out.append(f"| {label} | {way} | 0 | – | – | – | {len(segs)} |")
            continue
        per_record = messages / len(recs)
        per = f"{per_record:,.2f}" if per_record >= 1 else f"1/{len(recs) / messages:,.0f}"
        out.append(
            f"| {label} | {way} | {len(recs):,} | {statistics.median(recs):,.0f} "
            f"| {statistics.mean(recs):,.0f} | {per} | {len(segs):,} |"
        )
    return out


def in_(t: float, window: tuple[float, float]) -> bool:
    return window[0] <= t <= window[1]


# -- view 3: perf ---------------------------------------------------------------------------


def perf_report(data: Path) -> list[str]:
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", "comm,dso,sym"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows = [
        line.rstrip()
        for line in report.stdout.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return ["```", *[r[:160] for r in rows[:30]], "```"]


# -- the run --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--pings", type=int, default=5_000)
    parser.add_argument("--bulk-count", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--views", default="threads,records,perf")
    parser.add_argument("--workloads", default="W1,W2,W3,W4")
    args = parser.parse_args()
    views = args.views.split(",")
    wanted = args.workloads.split(",")
    s = Settings(
        runs=args.rounds, n=args.n, pings=args.pings, bulk_mib=8, bulk_count=args.bulk_count,
        fan_procs=1, idle_seconds=0, startup_runs=0, quick=False, out_md=Path(), out_png=Path(),
    )  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sniffer = Sniffer() if "records" in views else None
    cluster = Cluster()
    certs = Path(tempfile.mkdtemp(prefix="erlnode-tls-profile-"))
    out: list[str] = ["# Where the time of W1–W4 over TLS goes", ""]
    try:
        optfile = make_certificates(certs, cluster.host)
        cluster.start()
        tls_driver = Driver(
            cluster.erl("btdrv", *tls_args(optfile), "-eval", "bench_driver:main()", stdin=True)
        )
        plain_driver = Driver(cluster.erl("bpdrv", "-eval", "bench_driver:main()", stdin=True))
        erl_remote = cluster.erl("bta", *tls_args(optfile), "-eval", "bench_remote:start()")
        # label -> (remote, its driver, over TLS)
        remotes: dict[str, tuple[Child, Driver, bool]] = {
            "(a) Erlang remote, TLS": (erl_remote, tls_driver, True),
            "(b) erlnode remote, TLS": (erlnode_remote(cluster, "btb", optfile), tls_driver, True),
            "(c) erlnode remote, plain TCP": (
                erlnode_remote(cluster, "btc", None),
                plain_driver,
                False,
            ),
        }
        nodes = {label: r[0].wait_line("READY ", 60) for label, r in remotes.items()}
        ports = {
            label: epmd_port_of(nodes[label], cluster.epmd_port)
            for label, (_, _, tls) in remotes.items()
            if tls
        }
        if sniffer is not None:
            sniffer.ports.update(ports.values())
        for label, (_, driver, _) in remotes.items():
            driver.request(f"{{warm, '{nodes[label]}'}}")
        wls = [w for w in workloads(s, "nohelper") if w.key in wanted]
        windows: dict[tuple[str, str], list[tuple[float, float]]] = collections.defaultdict(list)
        threads: dict[tuple[str, str], list[str]] = {}
        rates: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
        for w in wls:
            count, unit = units(s, w.key)
            for label, (remote, driver, tls) in remotes.items():
                pid, driver_pid = beam_pid(remote), beam_pid(driver.child)
                before_r, before_d = thread_stats(pid), thread_stats(driver_pid)
                for _ in range(args.rounds):
                    t0 = time.time()
                    figures = driver.request(w.request(nodes[label]))
                    windows[(w.key, label)].append((t0, time.time()))
                    rates[(w.key, label)].append(figures[w.figure])
                after_r, after_d = thread_stats(pid), thread_stats(driver_pid)
                total = count * args.rounds
                threads[(w.key, label)] = [
                    f"Remote, {label}:",
                    "",
                    *delta_rows(before_r, after_r, total, unit),
                    "",
                    f"Driver (Erlang, {'TLS' if tls else 'plain TCP'}), talking to the {label}:",
                    "",
                    *delta_rows(before_d, after_d, total, unit),
                ]
                figures_text = ", ".join(f"{r:,.1f}" for r in rates[(w.key, label)])
                print(f"{w.key} {label}: {figures_text} {w.unit}", flush=True)
        if "threads" in views:
            out += ["## 1. CPU per unit of work, by thread", ""]
            for (key, label), rows in threads.items():
                figures_text = ", ".join(f"{r:,.1f}" for r in rates[(key, label)])
                out += [f"### {key}, {label} ({figures_text})", "", *rows, ""]
        if sniffer is not None:
            sniffer.stop()
            out += records_view(sniffer, ports, wls, windows, s, args.rounds)
        if "perf" in views and shutil.which("perf"):
            label = "(b) erlnode remote, TLS"
            out += perf_view(cluster, tls_driver, remotes[label][0], nodes[label], wls)
    finally:
        cluster.close()
        shutil.rmtree(certs, ignore_errors=True)
        if sniffer is not None and sniffer.running:
            sniffer.stop()
    text = "\n".join(out)
    print(text)
    (RESULTS / "tls_profile.md").write_text(text)
    print(f"wrote {RESULTS / 'tls_profile.md'}")


def records_view(
    sniffer: Sniffer,
    ports: dict[str, int],
    wls: list[Workload],
    windows: dict[tuple[str, str], list[tuple[float, float]]],
    s: Settings,
    rounds: int,
) -> list[str]:
    out = ["## 2. TLS records on the wire (application data)", ""]
    for label, port in ports.items():
        hello = sniffer.flows[
            (port, next((d for (sp, d) in sniffer.flows if sp == port), 0))
        ].first_handshake
        out.append(f"- {label}: cipher suite {cipher_of(hello)}")
    gaps = sum(f.gaps for f in sniffer.flows.values())
    out += [f"- streams with bytes the sniffer missed: {gaps} gaps", ""]
    out += [
        "Record length is the TLS record's (ciphertext: payload + 24 bytes of nonce and tag for "
        "AES-GCM in TLS 1.2). Messages per record: the workload's messages (W2: round trips; "
        "W4: 8 MiB messages) over the records of that direction.",
        "",
        "| workload, remote | direction | records | median length | mean length "
        "| messages per record | TCP segments with data |",
        "|---|---|---|---|---|---|---|",
    ]
    for w in wls:
        for label, port in ports.items():
            spans = windows[(w.key, label)]
            window = (min(a for a, _ in spans), max(b for _, b in spans))
            driver_port = next((d for (sp, d) in sniffer.flows if sp == port), 0)
            flows = {
                "driver → remote": sniffer.flows[(driver_port, port)],
                "remote → driver": sniffer.flows[(port, driver_port)],
            }
            messages = s.bulk_count if w.key == "W4" else units(s, w.key)[0]
            out += record_rows(f"{w.key}, {label}", flows, window, messages * rounds)
    return out + [""]


def perf_view(
    cluster: Cluster, driver: Driver, remote: Child, node: str, wls: list[Workload]
) -> list[str]:
    out = ["## 3. perf on the erlnode TLS remote, by workload", ""]
    for w in wls:
        data = RESULTS / f"tls_{w.key}.perf.data"
        args = ["perf", "record", "-q", "-F", "2000", "-o", str(data), "-p", str(remote.pid)]
        recorder = cluster.spawn("perf", args)
        time.sleep(1.0)
        for _ in range(3):
            driver.request(w.request(node))
        recorder.popen.send_signal(signal.SIGINT)
        try:
            recorder.popen.wait(timeout=60)
        finally:
            recorder.stop()
            cluster.children.remove(recorder)
        out += [f"### {w.key}", "", *perf_report(data), ""]
    return out


if __name__ == "__main__":
    main()
