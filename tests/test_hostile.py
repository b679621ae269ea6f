"""Hostile and broken peers: each is logged and disconnected, and the node keeps serving the
real Erlang node beside it (checked by exchanging messages while the bad peer is connected
and after).

The raw peers (tests/rawpeer.py) speak the distribution protocol by hand: silence, one byte a
second, garbage, a frame over the size limit, fragments that never end, and 2,000 connections
that never get past the handshake while Erlang measures its round trips.
"""

from __future__ import annotations

import os
import resource
import secrets
import socket
import statistics
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from erl import Erl, random_name, wait_until
from rawpeer import RawPeer

import erlnode
from erlnode import Atom

HANDSHAKE_TIMEOUT = 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Serving:
    """Checks that the node still serves a real Erlang node: a message each way."""

    def __init__(self, node: erlnode.Node, erl: Erl) -> None:
        self.node, self.erl = node, erl
        self.inbox = node.mailbox()
        self.inbox.register(random_name("inbox"))
        erl.eval("register(tally, erlnode_load:counter())")
        self.sent = 0

    def check(self) -> None:
        tag = secrets.randbits(32)
        self.erl.eval(f"{{{self.inbox.name}, '{self.node.name}'}} ! {tag}")
        assert self.inbox.receive(timeout=5) == tag
        self.node.send(("tally", self.erl.name), tag)
        self.sent += 1
        expected = (Atom("count"), self.sent)
        assert wait_until(lambda: self.erl.eval("erlnode_load:count(tally)") == expected)


@pytest.fixture
def hosting(erl: Erl) -> Iterator[tuple[erlnode.Node, Serving]]:
    """A node with a short handshake timeout, already serving the `erl` fixture's node."""
    with erlnode.Node(
        random_name("py"), cookie=erl.cookie, handshake_timeout=HANDSHAKE_TIMEOUT
    ) as node:
        serving = Serving(node, erl)
        serving.check()
        yield node, serving


def _host(node: erlnode.Node) -> str:
    return node.name.split("@", 1)[1]


def test_a_peer_that_sends_nothing_is_dropped_at_the_handshake_timeout(
    hosting: tuple[erlnode.Node, Serving], caplog: pytest.LogCaptureFixture
) -> None:
    node, serving = hosting
    with RawPeer(node.port) as silent:
        serving.check()
        took = silent.wait_closed(timeout=HANDSHAKE_TIMEOUT + 5)
        assert took is not None and HANDSHAKE_TIMEOUT * 0.9 <= took <= HANDSHAKE_TIMEOUT + 2
    assert logged(caplog, "handshake timed out (recv_name)"), caplog.text
    serving.check()


def test_a_peer_that_dribbles_one_byte_a_second_is_dropped_at_the_handshake_timeout(
    hosting: tuple[erlnode.Node, Serving], caplog: pytest.LogCaptureFixture
) -> None:
    node, serving = hosting
    name = f"dribbler@{_host(node)}".encode()
    # A well-formed send_name, one byte at a time.
    hello = b"N" + struct.pack(">QIH", 0xD07DF7FBC, 1, len(name)) + name
    message = struct.pack(">H", len(hello)) + hello
    with RawPeer(node.port) as dribbler:
        start = time.monotonic()
        closed = None
        for byte in message:
            try:
                dribbler.sock.sendall(bytes([byte]))
            except OSError:
                closed = time.monotonic() - start
                break
            closed = dribbler.wait_closed(timeout=1.0)
            if closed is not None:
                closed = time.monotonic() - start
                break
        assert closed is not None, "the dribbler was never dropped"
        assert closed <= HANDSHAKE_TIMEOUT + 2
        serving.check()
    assert logged(caplog, "handshake timed out (recv_name)"), caplog.text


GARBAGE = {
    "random bytes": secrets.token_bytes(2000),
    "an HTTP request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "an empty message": b"\0\0",
    "an unknown message": b"\0\x05Zabcd",
    "a send_name cut short": b"\0\x05N\0\0\0\0",
    "a TLS client hello": bytes.fromhex("16030100a5010000a10303") + secrets.token_bytes(160),
}


def logged(caplog: pytest.LogCaptureFixture, text: str, count: int = 1) -> bool:
    """Whether the node's log (WARNING records, through Python's logging) says `text`, `count`
    times, soon: the records are emitted by a thread of their own."""
    return wait_until(lambda: caplog.text.count(text) >= count, timeout=15)


@pytest.mark.parametrize("garbage", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_on_the_distribution_port_is_refused(
    hosting: tuple[erlnode.Node, Serving], caplog: pytest.LogCaptureFixture, garbage: bytes
) -> None:
    node, serving = hosting
    with RawPeer(node.port) as peer:
        try:
            peer.sock.sendall(garbage)
        except OSError:
            pass  # already closed: fine
        serving.check()
        assert peer.wait_closed(timeout=HANDSHAKE_TIMEOUT + 5) is not None
    assert logged(caplog, "refused a connection from 127.0.0.1"), caplog.text
    serving.check()


EPMD_GARBAGE = {
    "random bytes": b"\xff\xff" + secrets.token_bytes(500),
    "an empty request": b"\0\0",
    "an unknown request": b"\0\x04\x01abc",
    "ALIVE2 cut short": b"\0\x03x\0\0",
    "PORT_PLEASE2 of a bad name": b"\0\x03z\xff\xfe",
}


def test_garbage_on_the_embedded_epmd_port_is_refused_and_epmd_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    epmd_port = _free_port()  # nothing runs there: the node serves EPMD itself
    cookie = random_name("cookie")
    with erlnode.Node(random_name("py"), cookie=cookie, epmd_port=epmd_port) as node:
        for what, garbage in EPMD_GARBAGE.items():
            seen = caplog.text.count("embedded EPMD: bad request from 127.0.0.1")
            with socket.create_connection(("127.0.0.1", epmd_port), timeout=5) as s:
                s.sendall(garbage)
                try:
                    assert s.recv(100) == b"", what
                except ConnectionResetError:
                    pass
            assert logged(caplog, "embedded EPMD: bad request from 127.0.0.1", seen + 1), what
        # A real Erlang node registers with it, and both find each other through it.
        with Erl(cookie=cookie, env={"ERL_EPMD_PORT": str(epmd_port)}) as erl:
            assert erl.eval(f"net_adm:ping('{node.name}')") == Atom("pong")
            serving = Serving(node, erl)
            serving.check()
            node.disconnect(erl.name)
            assert node.ping(erl.name)
            serving.check()


def _handshaken(node: erlnode.Node, cookie: str) -> RawPeer:
    peer = RawPeer(node.port)
    peer.handshake(random_name("raw") + "@" + _host(node), node.name, cookie)
    return peer


def test_a_frame_over_max_message_size_after_the_handshake_ends_the_connection(
    erl: Erl, caplog: pytest.LogCaptureFixture
) -> None:
    limit = 64 * 1024
    with erlnode.Node(random_name("py"), cookie=erl.cookie, max_message_size=limit) as node:
        serving = Serving(node, erl)
        mbox = node.mailbox()
        with _handshaken(node, erl.cookie) as peer:
            peer.send_message(mbox.pid, bytes(limit - 100))
            assert mbox.receive(timeout=5) == bytes(limit - 100)
            # Only the length: the node must not wait for (or buffer) the body.
            peer.sock.sendall(struct.pack(">I", limit + 1) + b"p")
            assert peer.wait_closed(timeout=5) is not None
        assert logged(caplog, f"frame of {limit + 1} bytes is over the limit of {limit} bytes")
        serving.check()


def test_a_garbage_frame_after_the_handshake_ends_the_connection(
    erl: Erl, caplog: pytest.LogCaptureFixture
) -> None:
    with erlnode.Node(random_name("py"), cookie=erl.cookie) as node:
        serving = Serving(node, erl)
        with _handshaken(node, erl.cookie) as peer:
            peer.send_frame(b"\x70" + secrets.token_bytes(50))
            assert peer.wait_closed(timeout=5) is not None
        assert logged(caplog, "bad frame"), caplog.text
        serving.check()


def test_a_fragmented_message_that_never_ends_is_held_within_max_message_size(
    erl: Erl, caplog: pytest.LogCaptureFixture
) -> None:
    limit = 1 << 20
    with erlnode.Node(random_name("py"), cookie=erl.cookie, max_message_size=limit) as node:
        serving = Serving(node, erl)
        mbox = node.mailbox()
        body = RawPeer.message_body(mbox.pid, bytes(10_000))
        with _handshaken(node, erl.cookie) as peer:
            # A first fragment, and never the rest: the connection lives on (ticks keep it
            # up), other messages on it still arrive, and the node serves everyone.
            peer.send_first_fragment(1, 1000, body[:5000])
            peer.send_message(mbox.pid, "meanwhile")
            assert mbox.receive(timeout=5) == "meanwhile"
            serving.check()
            assert peer.wait_closed(timeout=1) is None

            # A sequence whose fragments keep coming: dropped once they add up to more than
            # the limit, having held no more than that meanwhile.
            rss = _rss()
            chunk = secrets.token_bytes(16 * 1024)
            fragments = 1_000_000
            peer.send_first_fragment(2, fragments, chunk)
            sent = len(chunk)
            with pytest.raises(OSError):  # the node closes: a write fails
                while sent < 64 * limit:
                    fragments -= 1
                    peer.send_fragment(2, fragments, chunk)
                    sent += len(chunk)
            # What the socket buffers took before the node read past the limit, and no more.
            assert sent < 32 * limit, f"{sent} bytes taken before the node dropped the peer"
            assert _rss() - rss < 16 * limit
        assert logged(caplog, "exceed the reassembly limit of 1048576 bytes"), caplog.text
        serving.check()

        # Many sequences at once count against the same limit.
        with _handshaken(node, erl.cookie) as peer:
            try:
                for seq in range(1, 1000):
                    peer.send_first_fragment(seq, 1000, secrets.token_bytes(4096))
            except OSError:
                pass
            assert peer.wait_closed(timeout=5) is not None
        assert logged(caplog, "exceed the reassembly limit"), caplog.text
        serving.check()


# -- 2,000 connections that never get past the handshake --------------------------------------

HALF_OPEN = 2000
ROUND_TRIPS = 1000


def _median_round_trip(erl: Erl, node: erlnode.Node) -> float:
    """Erlang's median round trip to the node's echo mailbox, in microseconds."""
    times = erl.eval(f"erlnode_load:round_trips({{echo, '{node.name}'}}, {ROUND_TRIPS}, 5000)")
    if isinstance(times, str):  # all under 256 µs: Erlang sends the list as a string
        times = [ord(c) for c in times]
    assert isinstance(times, list) and len(times) == ROUND_TRIPS, times
    return float(statistics.median(times))


def test_two_thousand_half_open_connections_leave_erlang_latency_within_2x(
    erl: Erl, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * HALF_OPEN + 512  # our ends and the node's, in this process
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= needed, "ulimit -n too low"

    timeout = 12.0
    with erlnode.Node(random_name("py"), cookie=erl.cookie, handshake_timeout=timeout) as node:
        echo = node.mailbox("echo")
        stop = threading.Event()

        def serve_echo() -> None:
            while not stop.is_set():
                try:
                    sender, term = echo.receive(timeout=0.2)
                except TimeoutError:
                    continue
                except erlnode.NodeClosedError:
                    return
                echo.send(sender, term)

        echoer = threading.Thread(target=serve_echo, daemon=True)
        echoer.start()
        try:
            assert node.ping(erl.name)
            _median_round_trip(erl, node)  # warm-up
            unloaded = _median_round_trip(erl, node)
            fds = len(os.listdir("/proc/self/fd"))

            socks: list[socket.socket] = []
            opened = time.monotonic()

            def open_all() -> None:
                for _ in range(HALF_OPEN):
                    socks.append(socket.create_connection(("127.0.0.1", node.port), timeout=30))

            opener = threading.Thread(target=open_all)
            opener.start()
            # As for `held` below: the machine is shared, and the opener is a Python thread
            # taking the GIL from this process's echo thread in bursts. The best of the
            # medians begun while the connections are being opened.
            while_opening = _median_round_trip(erl, node)
            while opener.is_alive() and while_opening > 2 * unloaded:
                while_opening = min(while_opening, _median_round_trip(erl, node))
            opener.join()
            open_took = time.monotonic() - opened
            assert len(socks) == HALF_OPEN
            # The machine is shared with other work (one median of a quiet run here moved
            # from 31 to 64 µs between two unloaded runs): the best of up to six medians, all
            # taken while every connection is still held.
            held = _median_round_trip(erl, node)
            for _ in range(5):
                if held <= 2 * unloaded or time.monotonic() - opened > timeout - 3:
                    break
                held = min(held, _median_round_trip(erl, node))
            held_at = time.monotonic() - opened
            assert held_at < timeout, "the measurement outlasted the handshake timeout"

            # The node drops every one of them at the handshake timeout.
            deadline = opened + timeout + 15
            for s in socks:
                s.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    assert s.recv(16) == b""
                except ConnectionResetError:
                    pass
            dropped_after = time.monotonic() - opened
            for s in socks:
                s.close()
            assert wait_until(lambda: len(os.listdir("/proc/self/fd")) <= fds, timeout=10)
            again = _median_round_trip(erl, node)
        finally:
            stop.set()
            echoer.join(timeout=5)
    every_one_logged = logged(caplog, "handshake timed out", HALF_OPEN)
    baseline = (unloaded + again) / 2
    figures = (
        f"\nround trip medians (µs): unloaded {unloaded:.0f} and {again:.0f}, while opening "
        f"{HALF_OPEN} connections ({open_took:.1f}s) {while_opening:.0f}, with them all held "
        f"{held:.0f}; all dropped {dropped_after:.1f}s after the first opened"
    )
    with capsys.disabled():
        print(figures)
    assert every_one_logged, caplog.text.count("handshake timed out")
    assert held <= 2 * baseline
    assert while_opening <= 2 * baseline
