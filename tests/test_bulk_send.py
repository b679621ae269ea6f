"""Big binaries sent from Python: written from the `bytes` object's own memory (no copy into
an encoded body or a frame), and received by the peer byte for byte as before.

Each test compares with what the receiver sees: Erlang's `erlang:md5/1` of every binary, in
the order sent, with small messages between the big ones; sizes around the threshold at which
a binary stops being copied (8 KiB), around the 64 KiB fragments OTP peers get, and up to
64 MiB. A hand-made peer without FRAGMENTS (tests/rawpeer.py) checks the frames themselves.
"""

from __future__ import annotations

import hashlib
import random
import struct
import sys
from typing import Any

import pytest
import rawpeer
from erl import Erl, random_name, wait_until
from rawpeer import RawPeer
from test_tls import pki  # noqa: F401 (the fixture: certificates for the TLS test)

import erlnode
from erlnode import Atom

KIB = 1024
MIB = 1024 * KIB
#: Binaries from this size on are sent from their own memory (SEND_SHARED_MIN in
#: rust/src/py/encode.rs); smaller ones are copied into the encoded message as before.
SHARED_MIN = 8 * KIB
FRAGMENT = 64 * KIB

BLOB = Atom("blob")
SMALL = Atom("small")

#: Erlang's digest of each message `{blob, I, Bin}` or `{small, I}` in the order received.
COLLECT = """
[receive
     {{blob, I, B}} -> {{I, byte_size(B), erlang:md5(B)}};
     {{small, I}} -> {{small, I}}
 after 60000 -> timeout
 end || _ <- lists:seq(1, {count})]
"""


def data(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def expected(messages: list[tuple[Any, ...]]) -> list[Any]:
    out: list[Any] = []
    for m in messages:
        if m[0] == BLOB:
            out.append((m[1], len(m[2]), hashlib.md5(m[2]).digest()))
        else:
            out.append(m)
    return out


def around(sizes: list[int], spread: list[int]) -> list[int]:
    return sorted({max(0, s + d) for s in sizes for d in spread})


def send_and_check(erl: Erl, mbox: erlnode.Mailbox, dest: Any, sizes: list[int]) -> None:
    """Sends a blob of each size with a small message after each, then compares with what
    Erlang received (the eval process is registered as `bulk`, or is `dest` itself)."""
    messages: list[tuple[Any, ...]] = []
    for i, size in enumerate(sizes):
        messages.append((BLOB, i, data(size, i)))
        messages.append((SMALL, i))
    for m in messages:
        mbox.send(dest, m)
    got = erl.eval(COLLECT.format(count=len(messages)), timeout=300)
    assert got == expected(messages)


@pytest.fixture
def bulk(erl: Erl, node: erlnode.Node) -> tuple[Erl, erlnode.Mailbox]:
    erl.eval("register(bulk, self())")
    mbox = node.mailbox()
    assert node.ping(erl.name)
    return erl, mbox


def test_binaries_around_the_threshold_and_the_fragment_size(
    bulk: tuple[Erl, erlnode.Mailbox],
) -> None:
    erl, mbox = bulk
    # The message is {blob, I, Bin}: some 15 bytes before the binary's data, the control
    # message before that in the first fragment; a spread of ±40 crosses every edge.
    edges = [SHARED_MIN, FRAGMENT, 2 * FRAGMENT, 3 * FRAGMENT]
    sizes = around(edges, [-40, -17, -1, 0, 1, 17, 40])
    sizes += [0, 1, 4095, 4096, MIB + 3, 8 * MIB + 7]
    send_and_check(erl, mbox, ("bulk", erl.name), sizes)


def test_to_a_pid_and_interleaved_with_a_burst_of_small_messages(
    bulk: tuple[Erl, erlnode.Mailbox],
) -> None:
    erl, mbox = bulk
    pid = erl.eval("self()")
    # Small sends close together go through the writer task's queue: big ones between them
    # must keep their place.
    messages: list[tuple[Any, ...]] = []
    for i in range(300):
        if i % 50 == 7:
            messages.append((BLOB, i, data(SHARED_MIN + 1000 * i, i)))
        else:
            messages.append((SMALL, i))
    for m in messages:
        mbox.send(pid, m)
    got = erl.eval(COLLECT.format(count=len(messages)), timeout=120)
    assert got == expected(messages)


def test_a_64_mib_binary(bulk: tuple[Erl, erlnode.Mailbox]) -> None:
    erl, mbox = bulk
    send_and_check(erl, mbox, ("bulk", erl.name), [64 * MIB])


class BytesSubclass(bytes):
    pass


def test_several_big_binaries_in_one_message_and_other_binary_types(
    bulk: tuple[Erl, erlnode.Mailbox],
) -> None:
    erl, mbox = bulk
    parts = [data(SHARED_MIN + i * 1111, 100 + i) for i in range(6)]
    message = [
        parts[0],
        (Atom("two"), parts[1], b"short"),
        {Atom("k"): parts[2]},
        BytesSubclass(parts[3]),
        bytearray(parts[4]),
        memoryview(parts[5]),
        erlnode.BitBinary(parts[0], 3),
    ]
    mbox.send(("bulk", erl.name), message)
    got = erl.eval(
        """
        receive [A, {two, B, <<"short">>}, #{k := C}, D, E, F, G] ->
            [erlang:md5(X) || X <- [A, B, C, D, E, F]] ++ [bit_size(G)]
        after 60000 -> timeout
        end
        """
    )
    bits = 8 * (len(parts[0]) - 1) + 3
    assert got == [hashlib.md5(p).digest() for p in parts] + [bits]


def test_a_sent_bytes_object_is_released_once_written(bulk: tuple[Erl, erlnode.Mailbox]) -> None:
    erl, mbox = bulk
    blob = data(8 * MIB, 1)
    before = sys.getrefcount(blob)
    for i in range(3):
        mbox.send(("bulk", erl.name), (BLOB, i, blob))
    assert erl.eval(COLLECT.format(count=3), timeout=120) == expected(
        [(BLOB, i, blob) for i in range(3)]
    )
    # The writer task drops its references without the GIL; they are given back the next
    # time a thread enters erlnode (here: `qsize`).
    assert wait_until(lambda: mbox.qsize() == 0 and sys.getrefcount(blob) == before)


def test_big_binaries_to_local_and_python_mailboxes(node: erlnode.Node) -> None:
    blob = data(3 * MIB + 5, 2)
    local = node.mailbox("local_sink")
    node.mailbox().send("local_sink", (BLOB, 1, blob))
    assert local.receive(timeout=10) == (BLOB, 1, blob)
    with erlnode.Node(random_name("py"), cookie=node.cookie) as other:
        sink = other.mailbox("sink")
        sender = node.mailbox()
        for i in range(3):
            sender.send(("sink", other.name), (BLOB, i, blob[i:]))
            sender.send(("sink", other.name), (SMALL, i))
        for i in range(3):
            assert sink.receive(timeout=30) == (BLOB, i, blob[i:])
            assert sink.receive(timeout=10) == (SMALL, i)


# -- a peer without FRAGMENTS ---------------------------------------------------------------


def read_frame(peer: RawPeer) -> bytes:
    """The next frame's body, ticks skipped."""
    while True:
        (length,) = struct.unpack(">I", peer._recv_exact(4))
        if length:
            return peer._recv_exact(length)


@pytest.mark.parametrize("atom_cache", [True, False], ids=["header", "pass-through"])
def test_a_peer_without_fragments_gets_each_message_in_one_frame(
    node: erlnode.Node, monkeypatch: pytest.MonkeyPatch, atom_cache: bool
) -> None:
    flags = rawpeer.FLAGS & ~rawpeer.FRAGMENTS
    if not atom_cache:
        flags &= ~rawpeer.DIST_HDR_ATOM_CACHE
    monkeypatch.setattr(rawpeer, "FLAGS", flags)
    host = node.name.split("@", 1)[1]
    peer_name = f"{random_name('raw')}@{host}"
    with RawPeer(node.port) as peer:
        peer.handshake(peer_name, node.name, node.cookie)
        target = erlnode.Pid(peer_name, 1, 0, peer.creation)
        mbox = node.mailbox()
        sizes = [10, SHARED_MIN - 1, SHARED_MIN, FRAGMENT + 100, 3 * MIB + 1]
        for i, size in enumerate(sizes):
            message = (BLOB, i, data(size, i))
            mbox.send(target, message)
            mbox.send(target, (SMALL, i))
            for sent in (message, (SMALL, i)):
                frame = read_frame(peer)
                encoded = erlnode.encode(sent)
                if atom_cache:
                    assert frame[:2] == bytes([rawpeer.VERSION, rawpeer.HEADER])
                    assert frame.endswith(encoded[1:])
                else:
                    # 112, 131, Control, 131, Message: the control is what is left.
                    assert frame[0] == rawpeer.PASS_THROUGH
                    assert frame.endswith(encoded)
                    control = erlnode.decode(frame[1 : len(frame) - len(encoded)])
                    assert control[-1] == target


# -- TLS ------------------------------------------------------------------------------------


def test_big_binaries_over_tls(pki: dict[str, Any]) -> None:  # noqa: F811 (the fixture)
    from test_tls import tls_erl

    erl = tls_erl(pki["optfile"])
    try:
        tls = erlnode.TLSConfig(pki["cert"], pki["key"], pki["ca"].ca)
        with erlnode.Node(random_name("py"), cookie=erl.cookie, tls=tls) as node:
            erl.eval("register(bulk, self())")
            assert node.ping(erl.name)
            sizes = around([SHARED_MIN, 2 * FRAGMENT], [-1, 0, 1]) + [8 * MIB + 7]
            send_and_check(erl, node.mailbox(), ("bulk", erl.name), sizes)
    finally:
        erl.stop()
