"""The codec on any input: ``decode`` of any bytes gives a value or raises ``DecodeError``,
``encode`` of any Python object gives bytes or raises ``EncodeError``. Nothing else, and never
a crash (which would take the whole test run down).

The Rust parsers are fuzzed too (``fuzz/``, ``make fuzz``); these properties cover the Python
layer on top: the Python codec, its buffer handling and its errors.
"""

from __future__ import annotations

import array
import collections
import enum
import fractions
import struct
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import erlnode
from erlnode import Atom

properties = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))

# Every tag of the external term format, and the lengths that matter around them.
TAGS = [70, 77, 80, 82, 88, 89, 90, 97, 98, 99, 100, 104, 105, 106, 107, 108, 109, 110, 111]
TAGS += [112, 113, 115, 116, 118, 119, 120, 121]
EDGES = [0, 1, 2, 3, 4, 7, 8, 127, 128, 255]


def decodes_or_refuses(data: bytes, **options: Any) -> Any:
    """``decode(data)``: the value, or None after a DecodeError with a sane offset. The same
    bytes as a bytearray or a memoryview give the same outcome."""
    outcomes = []
    for form in (data, bytearray(data), memoryview(data)):
        try:
            outcomes.append(("ok", erlnode.decode(form, **options)))
        except erlnode.DecodeError as e:
            assert isinstance(e, ValueError)
            assert isinstance(e.offset, int) and e.offset >= 0, e.offset
            assert str(e.offset) in str(e), str(e)
            outcomes.append(("error", str(e)))
    assert outcomes[1:] == outcomes[:1] * 2, outcomes
    kind, value = outcomes[0]
    return value if kind == "ok" else None


def rewritten(value: Any) -> None:
    """What decode gives, encode takes back, and the two agree from then on."""
    data = erlnode.encode(value)
    assert erlnode.encode(erlnode.decode(data)) == data


# --- decode ---------------------------------------------------------------------------------

# Bytes that look like terms: the version byte, then tags, small lengths and anything.
term_like = st.lists(
    st.sampled_from(TAGS) | st.sampled_from(EDGES) | st.integers(0, 255), max_size=60
).map(lambda body: bytes([131, *body]))

small_terms = st.recursive(
    st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8).map(Atom)
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.builds(erlnode.Pid, st.just("a@h"), st.integers(0, 2**15), st.integers(0, 2**13)),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.integers() | st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid encoding with bytes flipped, cut, inserted or repeated."""
    data = bytearray(erlnode.encode(draw(small_terms), compressed=draw(st.booleans())))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "truncate"]))
        if action == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[at : at + draw(st.integers(1, 8))]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 16))]
        elif action == "truncate":
            del data[at:]
    return bytes(data)


# A compressed term whose inflated body is anything, with a declared size that may lie.
compressed = st.builds(
    lambda body, lie: b"\x83P" + struct.pack(">I", max(0, len(body) + lie)) + zlib.compress(body),
    term_like.map(lambda b: b[1:]) | st.binary(max_size=40),
    st.sampled_from([0, 0, -1, 1, 1000]),
)


@properties
@given(data=st.binary(max_size=200))
def test_decode_of_any_bytes_gives_a_value_or_decode_error(data: bytes) -> None:
    decodes_or_refuses(data)
    decodes_or_refuses(b"\x83" + data)


@properties
@given(data=term_like | mutated() | compressed)
def test_decode_of_term_like_bytes_gives_a_value_or_decode_error(data: bytes) -> None:
    value = decodes_or_refuses(data)
    event("DecodeError" if value is None else "decoded")
    if value is not None:
        rewritten(value)
    decodes_or_refuses(data, max_inflated=16)


def test_a_fun_holding_a_deep_term_decodes() -> None:
    # Found writing the fuzz harnesses: a closure whose free variable nests a million deep
    # (2 MB) made decode overflow the stack: a segfault, the process gone.
    depth = 1_000_000
    deep = b"h\x01" * depth + b"j"
    body = b"\x01" + b"\x09" * 16 + struct.pack(">II", 0, 1) + b"w\x01m"
    body += b"a\x00a\x00X" + b"w\x03a@h" + struct.pack(">III", 1, 0, 1)
    fun = b"\x83p" + struct.pack(">I", 4 + len(body) + len(deep)) + body + deep
    decoded = erlnode.decode(fun)
    assert isinstance(decoded, erlnode.Fun) and decoded.module == "m"
    assert erlnode.encode(decoded) == fun
    # A deep term then a bad tag: the error, and nothing worse.
    bad = b"\x83p" + struct.pack(">I", 4 + len(body) + len(deep) + 1) + body + deep + b"\xff"
    decodes_or_refuses(bad[:-1] + b"\xff\xff")
    decodes_or_refuses(bad)


# --- encode ---------------------------------------------------------------------------------


class Colour(enum.IntEnum):
    RED = 1


class Bytes(bytes):
    pass


class Text(str):
    pass


class Number(int):
    pass


class Real(float):
    pass


class Listy(list[Any]):
    pass


class Table(dict[Any, Any]):
    pass


class Thing:
    pass


Point = collections.namedtuple("Point", "x y")


def made(factory: Any, *args: Any) -> Any:
    """``factory(*args)``, or a plain object when the arguments are refused (only what
    encode does is under test)."""
    try:
        return factory(*args)
    except (ValueError, TypeError, OverflowError):
        return object()


any_text = st.text() | st.lists(st.integers(0, 0x10FFFF).map(chr), max_size=20).map("".join)
# Around the powers of two up to 2**20000 (LARGE_BIG), either sign.
huge_int = st.builds(
    lambda bits, sign, offset: sign * 2**bits + offset,
    st.integers(0, 2100) | st.sampled_from([20000]),
    st.sampled_from([1, -1]),
    st.integers(-2, 2),
)
any_int = st.integers() | huge_int
node_names = st.sampled_from(["a@h", "", "@", "\ud800@h"]) | any_text


# Objects made afresh for each example (some are unhashable, and hypothesis hashes what it
# samples).
ODDITIES: list[Any] = [
    object,
    Thing,
    lambda: Thing,
    lambda: len,
    lambda: lambda: None,
    lambda: ...,
    lambda: NotImplemented,
    lambda: 1j,
    lambda: fractions.Fraction(1, 3),
    lambda: range(3),
    lambda: slice(1),
    lambda: memoryview(b"abcdef")[::2],
    lambda: memoryview(array.array("i", [1, 2])),
    lambda: memoryview(b"abcd").cast("B", (2, 2)),
    lambda: Point(1, 2),
    lambda: Text("text"),
    lambda: Colour.RED,
    lambda: "x" * 65535,
    lambda: "x" * 65536,
    lambda: "\udc80",
    lambda: Atom("a" * 255),
    lambda: Atom("a" * 256),
    lambda: Atom("é" * 255),
    lambda: Atom("\ud800"),
    lambda: "x" * 300 + "@h",
]
oddities = st.integers(0, len(ODDITIES) - 1).map(lambda i: ODDITIES[i]())

leaves = (
    st.none()
    | st.booleans()
    | any_int
    | st.floats()
    | any_text
    | st.binary(max_size=20)
    | st.binary(max_size=20).map(bytearray)
    | st.binary(max_size=20).map(memoryview)
    | st.binary(max_size=20).map(Bytes)
    | st.builds(Number, any_int)
    | st.builds(Real, st.floats())
    | any_text.map(Atom)
    | st.builds(made, st.just(erlnode.Pid), node_names, any_int, any_int, any_int)
    | st.builds(made, st.just(erlnode.Port), node_names, any_int, any_int)
    | st.builds(made, st.just(erlnode.Reference), node_names, st.lists(any_int), any_int)
    | st.builds(made, st.just(erlnode.Export), any_text, any_text, any_int)
    | st.builds(made, st.just(erlnode.BitBinary), st.binary(max_size=4), any_int)
    | oddities
)


def keys_distinct_in_erlang(mapping: dict[Any, Any]) -> bool:
    """Whether no two keys encode alike (a map Erlang refuses, and encode too: see
    test_keys_equal_in_erlang_are_refused)."""
    try:
        return len({erlnode.encode(key) for key in mapping}) == len(mapping)
    except erlnode.EncodeError:
        return True


hashable = st.recursive(
    st.none() | st.booleans() | any_int | st.floats() | any_text | any_text.map(Atom),
    lambda inner: (
        st.lists(inner, max_size=3).map(tuple)
        | st.lists(inner, max_size=3).map(erlnode.FrozenList)
        | st.frozensets(inner, max_size=3)
        | st.builds(made, st.just(erlnode.ExactKey), inner)
    ),
    max_leaves=6,
)


def maps_of(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[Any, Any]]:
    return st.dictionaries(hashable, values, max_size=3).filter(keys_distinct_in_erlang)


def contains_itself(kind: str, items: list[Any]) -> Any:
    """A structure that holds itself, directly or through another container."""
    if kind == "list":
        result: list[Any] = list(items)
        result.insert(len(items) // 2, result)
        return result
    if kind == "dict":
        mapping: dict[Any, Any] = dict(enumerate(items))
        mapping["self"] = mapping
        return mapping
    if kind == "tuple":
        inner: list[Any] = list(items)
        outer = (inner,)
        inner.append(outer)
        return outer
    holder: list[Any] = []
    improper = erlnode.ImproperList([holder], 1)
    holder.append(improper)
    return improper


objects = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.lists(inner, max_size=4).map(Listy)
        | maps_of(inner)
        | maps_of(inner).map(Table)
        | maps_of(inner).map(collections.OrderedDict)
        | st.lists(inner, max_size=3).map(collections.deque)
        | st.sets(hashable, max_size=3)
        | st.builds(made, st.just(erlnode.ImproperList), st.lists(inner, max_size=3), inner)
        | st.builds(made, st.just(erlnode.FrozenList), st.lists(hashable, max_size=3))
        | st.builds(made, st.just(erlnode.FrozenMap), maps_of(hashable))
        | st.builds(
            contains_itself,
            st.sampled_from(["list", "dict", "tuple", "improper"]),
            st.lists(inner, max_size=3),
        )
    ),
    max_leaves=20,
)


@properties
@given(value=objects, level=st.none() | st.booleans() | st.integers(0, 9))
def test_encode_of_any_object_gives_bytes_or_encode_error(value: Any, level: Any) -> None:
    try:
        data = erlnode.encode(value)
    except erlnode.EncodeError as e:
        event("EncodeError")
        assert isinstance(e, TypeError)
        # Compressing changes nothing about what can be encoded.
        try:
            erlnode.encode(value, compressed=level)
        except erlnode.EncodeError:
            return
        raise AssertionError(f"{value!r} encodes only when compressed={level!r}") from e
    event("encoded")
    assert data[:1] == b"\x83"
    # What we write, we read; compressed or not, it is the same term.
    decoded = erlnode.decode(data)
    assert erlnode.encode(erlnode.decode(erlnode.encode(value, compressed=level))) == (
        erlnode.encode(decoded)
    )


def test_keys_equal_in_erlang_are_refused() -> None:
    # Found by test_encode_of_any_object_gives_bytes_or_encode_error: each map's two keys are
    # one term to Erlang, so OTP's binary_to_term refuses the encoding (badarg).
    for mapping in (
        {None: 1, Atom("undefined"): 2},
        {True: 1, Atom("true"): 2},
        {1: 1, erlnode.ExactKey(1): 2},
        {"abc": 1, erlnode.FrozenList([97, 98, 99]): 2},
    ):
        with pytest.raises(erlnode.EncodeError, match="same term in Erlang"):
            erlnode.encode(mapping)
    # Many keys take the sorting path; a spliced (large) binary key is skipped, not misread.
    many = {i: i for i in range(40)} | {erlnode.ExactKey(39): 0}
    with pytest.raises(erlnode.EncodeError, match="same term in Erlang"):
        erlnode.encode(many)
    big_keys = {bytes(100_000): 1, b"\x01" * 100_000: 2}
    assert erlnode.decode(erlnode.encode(big_keys)) == big_keys
