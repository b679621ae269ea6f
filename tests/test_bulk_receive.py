"""Large binaries from a real Erlang node land in their Python `bytes` intact, in order,
through every receive style, and (from 256 KiB) without a copy beyond the kernel's."""

from __future__ import annotations

import asyncio
import hashlib
import threading

from erl import Erl, random_name, wait_until

import erlnode
from erlnode import Atom

KIB = 1024
MIB = 1024 * KIB
#: The landing threshold (rust/src/dist/packet/bulk.rs) and OTP's fragment size.
BULK_MIN = 256 * KIB
FRAGMENT = 64 * KIB

SIZES = [
    BULK_MIN - 1,
    BULK_MIN,
    BULK_MIN + 1,
    FRAGMENT - 1,
    FRAGMENT,
    FRAGMENT + 1,
    3 * FRAGMENT + 7,
    8 * MIB,
    64 * MIB,
]


def send_binaries(erl: Erl, dest: str, sizes: list[int]) -> list[str]:
    """Makes Erlang send, for each size, a small message, then `{bin, I, Bin}` with a binary
    of that size (bytes from a seeded generator), then a small one again; returns the md5 of
    each binary as Erlang computed it."""
    listing = ",".join(str(s) for s in sizes)
    reply = erl.eval(
        f"""
        Dest = {dest},
        Sizes = [{listing}],
        Make = fun(I, Size) ->
            Block = crypto:strong_rand_bytes(4096),
            Full = binary:copy(Block, Size div 4096 + 1),
            <<B:Size/binary, _/binary>> = <<(I):32, Full/binary>>,
            B
        end,
        Sums = lists:map(fun({{I, Size}}) ->
            Bin = Make(I, Size),
            Dest ! {{before, I}},
            Dest ! {{bin, I, Bin}},
            Dest ! {{'after', I}},
            binary:encode_hex(erlang:md5(Bin))
        end, lists:zip(lists:seq(1, length(Sizes)), Sizes)),
        Sums
        """,
        timeout=120,
    )
    return [s.decode().lower() if isinstance(s, bytes) else str(s).lower() for s in reply]


def check_stream(received: list[object], sums: list[str], sizes: list[int]) -> None:
    expected_len = 3 * len(sizes)
    assert len(received) == expected_len
    for i, (size, digest) in enumerate(zip(sizes, sums, strict=True), start=1):
        before, bulk, after = received[3 * (i - 1) : 3 * i]
        assert before == (Atom("before"), i)
        assert after == (Atom("after"), i)
        assert isinstance(bulk, tuple) and bulk[:2] == (Atom("bin"), i)
        data = bulk[2]
        assert type(data) is bytes, type(data)
        assert len(data) == size
        assert hashlib.md5(data).hexdigest() == digest, f"binary {i} of {size} bytes"


def landed(node: erlnode.Node, peer: str) -> tuple[int, int]:
    conn = node.stats()["connections"][peer]
    return conn["bulk_landed"], conn["bulk_copied"]


def test_binaries_around_the_thresholds_arrive_intact_with_plain_receive(
    erl: Erl, node: erlnode.Node
) -> None:
    mbox = node.mailbox("bulk")
    assert node.ping(erl.name)
    sums = send_binaries(erl, f"{{bulk, '{node.name}'}}", SIZES)
    received = [mbox.receive(timeout=60) for _ in range(3 * len(SIZES))]
    check_stream(received, sums, SIZES)
    landed_bytes, copied_bytes = landed(node, erl.name)
    large = sum(s for s in SIZES if s >= BULK_MIN)
    # Every byte of the large binaries went one way or the other; most straight in.
    assert landed_bytes + copied_bytes >= large - len(SIZES) * 2 * FRAGMENT
    assert landed_bytes > large // 2, (landed_bytes, copied_bytes)


def test_binaries_queued_while_nobody_receives_arrive_intact(erl: Erl, node: erlnode.Node) -> None:
    mbox = node.mailbox("queued")
    sizes = [BULK_MIN + 3, 8 * MIB, 2 * MIB]
    sums = send_binaries(erl, f"{{queued, '{node.name}'}}", sizes)
    assert wait_until(lambda: mbox.qsize() == 3 * len(sizes), timeout=60)
    check_stream(mbox.receive_many(limit=100, timeout=5), sums, sizes)
    landed_bytes, _ = landed(node, erl.name)
    assert landed_bytes > 0


def test_binaries_arrive_intact_through_a_callback(erl: Erl, node: erlnode.Node) -> None:
    received: list[object] = []
    done = threading.Event()
    sizes = [BULK_MIN, 4 * MIB + 1]

    def on_message(message: object) -> None:
        received.append(message)
        if len(received) == 3 * len(sizes):
            done.set()

    node.mailbox("cb", callback=on_message)
    assert node.ping(erl.name)
    sums = send_binaries(erl, f"{{cb, '{node.name}'}}", sizes)
    assert done.wait(60)
    check_stream(received, sums, sizes)


def test_binaries_arrive_intact_through_asyncio(erl: Erl, node: erlnode.Node) -> None:
    sizes = [BULK_MIN + 1, 8 * MIB]
    mbox = node.mailbox("aio")
    assert node.ping(erl.name)

    async def main() -> list[object]:
        task = asyncio.get_running_loop().run_in_executor(
            None, send_binaries, erl, f"{{aio, '{node.name}'}}", sizes
        )
        got = [await asyncio.wait_for(mbox.receive_async(), 60) for _ in range(3 * len(sizes))]
        sums.extend(await task)
        return got

    sums: list[str] = []
    received = asyncio.run(main())
    check_stream(received, sums, sizes)


def test_a_large_binary_in_a_nested_term_and_two_in_one_message(
    erl: Erl, node: erlnode.Node
) -> None:
    mbox = node.mailbox("nested")
    assert node.ping(erl.name)
    erl.eval(
        f"""
        A = binary:copy(<<"ab">>, 300000),
        B = binary:copy(<<7>>, 1000000),
        Meta = {{self(), make_ref(), 1.5}},
        {{nested, '{node.name}'}} ! #{{first => [A], meta => Meta, second => B}},
        ok
        """
    )
    message = mbox.receive(timeout=30)
    assert isinstance(message, dict)
    assert message[Atom("first")] == [b"ab" * 300000]
    assert message[Atom("second")] == bytes([7]) * 1000000
    assert message[Atom("meta")][2] == 1.5


def test_a_large_utf8_binary_is_text_in_elixir_mode(erl: Erl) -> None:
    with erlnode.Node(random_name("py"), cookie=erl.cookie, strings="elixir") as node:
        mbox = node.mailbox("text")
        assert node.ping(erl.name)
        erl.eval(f"{{text, '{node.name}'}} ! binary:copy(<<\"héllo \"/utf8>>, 100000), ok")
        assert mbox.receive(timeout=30) == "héllo " * 100000
