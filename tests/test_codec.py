"""The codec on its own: mapping details, bad input, limits."""

from __future__ import annotations

import struct
import zlib

import pytest

import erlnode
from erlnode import Atom, DecodeError, EncodeError


def body(term: object) -> bytes:
    return erlnode.encode(term)[1:]


def rt(term: object) -> object:
    return erlnode.decode(erlnode.encode(term))


# -- mapping -------------------------------------------------------------------------------


def test_scalars() -> None:
    assert rt(0) == 0 and rt(-1) == -1 and rt(255) == 255 and rt(256) == 256
    for n in [
        2**31 - 1,
        -(2**31),
        2**31,
        2**63 - 1,
        -(2**63),
        2**63,
        2**64 - 1,
        2**64,
        -(2**64),
        2**2048 - 1,
        -(2**2048) + 1,
        10**3000,
    ]:
        assert rt(n) == n
    assert erlnode.encode(255) == b"\x83a\xff"
    assert erlnode.encode(-1) == b"\x83b\xff\xff\xff\xff"
    assert erlnode.encode(2**40) == b"\x83n\x06\x00" + (2**40).to_bytes(6, "little")
    assert rt(True) is True and rt(False) is False
    assert rt(None) == Atom("undefined") and type(rt(None)) is Atom
    neg = rt(-0.0)
    assert isinstance(neg, float) and struct.pack(">d", neg) == struct.pack(">d", -0.0)
    assert rt(3.14) == 3.14 and rt(5e-324) == 5e-324
    assert erlnode.encode(1.5) == b"\x83F" + struct.pack(">d", 1.5)


def test_old_float_decodes() -> None:
    text = b"%.20e" % 1.5
    assert erlnode.decode(b"\x83c" + text.ljust(31, b"\x00")) == 1.5


def test_strings_and_lists() -> None:
    assert erlnode.encode("") == b"\x83j"
    assert erlnode.encode("ab") == b"\x83k\x00\x02ab"
    assert erlnode.encode("é") == b"\x83k\x00\x01\xe9"
    assert rt("héllo") == "héllo"
    assert erlnode.encode("€") == b"\x83l\x00\x00\x00\x01b\x00\x00\x20\xacj"
    assert rt("€") == [0x20AC]
    assert rt("a" * 65536) == [97] * 65536
    assert rt([1, 2, 3]) == [1, 2, 3]
    assert rt([1000]) == [1000]
    assert rt([]) == []
    assert rt([[]]) == [[]]


def test_binaries() -> None:
    assert rt(b"") == b"" and rt(b"abc") == b"abc"
    assert rt(bytearray(b"xy")) == b"xy"
    assert rt(memoryview(b"zz")) == b"zz"
    big = bytes(range(256)) * 4096
    assert rt(big) == big
    bits = erlnode.BitBinary(b"\xff\x80", 1)
    assert erlnode.encode(bits) == b"\x83M\x00\x00\x00\x02\x01\xff\x80"
    assert rt(bits) == bits
    with pytest.raises(ValueError):
        erlnode.BitBinary(b"", 3)
    with pytest.raises(ValueError):
        erlnode.BitBinary(b"a", 9)


def test_tuples_maps_improper() -> None:
    assert rt(()) == () and rt((1, (2, ()))) == (1, (2, ()))
    assert rt(tuple(range(300))) == tuple(range(300))
    assert rt({}) == {}
    m = {Atom("a"): 1, "a": 2, b"a": 3, (1,): 4}
    assert rt(m) == m
    assert rt(erlnode.ImproperList([1, 2], Atom("t"))) == erlnode.ImproperList([1, 2], Atom("t"))
    with pytest.raises(ValueError):
        erlnode.ImproperList([], 1)
    with pytest.raises(TypeError):
        erlnode.ImproperList([1], [2])


def test_unhashable_keys_become_frozen() -> None:
    key_list = erlnode.FrozenList([1000, [2000], {Atom("k"): [3000]}])
    m = {key_list: [1], erlnode.FrozenMap({Atom("x"): [1000]}): 2}
    back = rt(m)
    assert back == m
    (k1, k2) = back.keys()
    assert type(k1) is erlnode.FrozenList and type(k1[1]) is erlnode.FrozenList
    assert type(k1[2]) is erlnode.FrozenMap and type(k1[2][Atom("k")]) is erlnode.FrozenList
    assert type(k2) is erlnode.FrozenMap
    assert type(back[k1]) is list  # values stay mutable
    assert hash(k1) == hash(erlnode.FrozenList([1000, [2000], {Atom("k"): [3000]}]))
    assert erlnode.FrozenList([1]) == [1] and erlnode.FrozenList([1]) != (1,)


def test_colliding_keys_are_wrapped_and_round_trip() -> None:
    pairs = [(1, "a"), (1.0, "b"), (True, "c"), (0.0, "d"), (-0.0, "e"), (Atom("x"), 1), ("x", 2)]
    data = b"\x83t" + struct.pack(">I", len(pairs)) + b"".join(body(k) + body(v) for k, v in pairs)
    m = erlnode.decode(data)
    assert len(m) == 7
    assert m[1] == "a" and m[erlnode.ExactKey(1.0)] == "b" and m[erlnode.ExactKey(True)] == "c"
    assert m[erlnode.ExactKey(-0.0)] == "e" and m[erlnode.ExactKey("x")] == 2
    assert erlnode.encode(m) == data


def test_duplicate_map_keys_are_refused() -> None:
    data = b"\x83t\x00\x00\x00\x02" + body(1) + body(2) + body(1) + body(3)
    with pytest.raises(DecodeError, match="duplicate key"):
        erlnode.decode(data)


def test_identifiers() -> None:
    pid = erlnode.Pid("a@h", 42, 1, 3)
    assert repr(pid) == "Pid('a@h', 42, 1, 3)" and str(pid) == "<a@h.42.1>"
    assert (pid.node, pid.id, pid.serial, pid.creation) == ("a@h", 42, 1, 3)
    assert type(pid.node) is Atom
    assert rt(pid) == pid and hash(rt(pid)) == hash(pid)
    assert pid < erlnode.Pid("a@h", 43, 0, 0)
    assert {pid: 1}[erlnode.Pid("a@h", 42, 1, 3)] == 1
    port = erlnode.Port("a@h", 7, 2)
    assert rt(port) == port and repr(port) == "Port('a@h', 7, 2)"
    assert rt(erlnode.Port("a@h", 2**40, 2)) == erlnode.Port("a@h", 2**40, 2)
    ref = erlnode.Reference("a@h", (1, 2, 3), 9)
    assert rt(ref) == ref and ref.ids == (1, 2, 3) and str(ref) == "#Ref<a@h.3.2.1>"
    with pytest.raises(ValueError):
        erlnode.Reference("a@h", (), 1)
    exp = erlnode.Export("lists", "map", 2)
    assert rt(exp) == exp and exp.module == "lists" and str(exp) == "fun lists:map/2"
    import pickle

    assert pickle.loads(pickle.dumps([pid, port, ref])) == [pid, port, ref]


def test_compressed() -> None:
    term = [Atom("x")] * 1000
    assert erlnode.decode(erlnode.encode(term, compressed=0)) == term
    for level in (True, 1, 9):
        data = erlnode.encode(term, compressed=level)
        assert data[:2] == b"\x83P"
        assert erlnode.decode(data) == term
    assert erlnode.encode(1, compressed=True) == erlnode.encode(1)  # does not pay: plain
    assert erlnode.encode(term, compressed=False) == erlnode.encode(term)
    with pytest.raises(ValueError):
        erlnode.encode(1, compressed=10)


# -- bad input ----------------------------------------------------------------------------


def bad(data: bytes, fragment: str, **kw: int) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        erlnode.decode(data, **kw)
    assert fragment in str(info.value), str(info.value)
    assert f"at byte {info.value.offset}" in str(info.value)
    assert isinstance(info.value, ValueError)
    return info.value


def test_truncated_everywhere() -> None:
    whole = erlnode.encode(
        [{Atom("a"): (1, 2.5, b"xyz", "str", 2**70)}, erlnode.Pid("n@h", 1, 2, 3)]
    )
    for cut in range(len(whole)):
        with pytest.raises(DecodeError):
            erlnode.decode(whole[:cut])


def test_bad_inputs() -> None:
    assert bad(b"", "truncated").offset == 0
    assert bad(b"\x82a\x01", "version byte").offset == 0
    assert bad(b"\x83\xff", "unknown tag").offset == 1
    assert bad(b"\x83h\x02a\x01\xee", "unknown tag").offset == 5
    assert bad(b"\x83w\x02\xff\xfe", "UTF-8").offset == 1
    assert bad(b"\x83v\x01\x00" + b"a" * 256, "255").offset == 1
    assert bad(b"\x83d\x01\x00" + b"a" * 256, "255").offset == 1
    assert bad(b"\x83a\x01\x00", "trailing").offset == 3
    assert bad(b"\x83y" + b"\x00" * 20, "LOCAL_EXT").offset == 1
    assert bad(b"\x83F" + struct.pack(">d", float("nan")), "finite").offset == 1
    assert bad(b"\x83M\x00\x00\x00\x01\x09\x00", "bit").offset == 2


def test_huge_declared_lengths_fail_at_once() -> None:
    e = bad(b"\x83l\xff\xff\xff\xff" + b"\x00" * 4, "declares")
    assert e.offset == 6
    bad(b"\x83h\xff", "declares")
    bad(b"\x83i\xff\xff\xff\xff", "declares")
    bad(b"\x83t\xff\xff\xff\xff", "declares")
    bad(b"\x83m\xff\xff\xff\xff", "truncated")
    bad(b"\x83k\xff\xff", "truncated")


def test_compressed_limits() -> None:
    payload = erlnode.encode(b"\x00" * 100_000)
    data = erlnode.encode(b"\x00" * 100_000, compressed=True)
    assert erlnode.decode(data) == b"\x00" * 100_000
    bad(data, "above the limit", max_inflated=1000)
    assert erlnode.decode(data, max_inflated=len(payload) - 1) == b"\x00" * 100_000
    # A size that lies about the inflated length.
    z = zlib.compress(payload[1:])
    bad(b"\x83P" + struct.pack(">I", len(payload)) + z[:-3], "inflate")
    bad(b"\x83P" + struct.pack(">I", 10) + z, "inflate")
    bad(b"\x83P" + struct.pack(">I", len(payload) - 1) + z + b"\x00", "trailing")
    bad(b"\x83P\xff\xff\xff\xff" + z, "above the limit")


def test_million_deep_nesting() -> None:
    depth = 1_000_000
    deep_list = b"\x83" + b"l\x00\x00\x00\x01" * depth + b"j" * (depth + 1)
    value = erlnode.decode(deep_list)
    for _ in range(10):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert erlnode.encode(erlnode.decode(deep_list)) == deep_list
    deep_tuple = b"\x83" + b"h\x01" * depth + b"j"
    assert erlnode.encode(erlnode.decode(deep_tuple)) == deep_tuple
    # Truncated at the bottom: an error, not a crash.
    bad(b"\x83" + b"h\x01" * depth, "tuple declares 1 elements")
    bad(b"\x83" + b"t\x00\x00\x00\x01" * depth, "map declares 1 elements")


def test_bytes_like_inputs() -> None:
    data = erlnode.encode({Atom("a"): [1, 2]})
    assert (
        erlnode.decode(bytearray(data)) == erlnode.decode(memoryview(data)) == {Atom("a"): [1, 2]}
    )
    with pytest.raises(TypeError):
        erlnode.decode("not bytes")  # type: ignore[arg-type]


# -- encode errors ------------------------------------------------------------------------


def test_encode_error_names_type_and_path() -> None:
    with pytest.raises(EncodeError) as info:
        erlnode.encode([1, 2, {"key": {1, 2}}])
    assert str(info.value) == "cannot encode an object of type 'set' at [2]['key']"
    assert isinstance(info.value, TypeError)
    with pytest.raises(EncodeError, match=r"type 'object' \(the term itself\)"):
        erlnode.encode(object())
    with pytest.raises(EncodeError, match=r"at \[0\]\[1\]\.tail"):
        erlnode.encode([(0, erlnode.ImproperList([1], object()))])
    with pytest.raises(EncodeError, match=r"'object' at \[Atom\('k'\)\]<key \(1, <object"):
        erlnode.encode({Atom("k"): {(1, object()): 2}})


def test_encode_refuses_long_atoms_and_odd_floats() -> None:
    assert rt(Atom("a" * 255)) == "a" * 255
    assert rt(Atom("あ" * 255)) == "あ" * 255
    with pytest.raises(EncodeError, match="255"):
        erlnode.encode([Atom("a" * 256)])
    with pytest.raises(EncodeError, match="finite"):
        erlnode.encode(float("inf"))
    with pytest.raises(EncodeError, match="surrogates"):
        erlnode.encode("\ud800")


def test_encode_cycles_and_deep_python_values() -> None:
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises(EncodeError, match="contains itself"):
        erlnode.encode(cyclic)
    deep: object = []
    for _ in range(1_000_000):
        deep = [deep]
    data = erlnode.encode(deep)
    assert data == b"\x83" + b"l\x00\x00\x00\x01" * 1_000_000 + b"j" * 1_000_001


def test_subclasses_encode_as_their_base() -> None:
    import collections
    import enum

    class Color(enum.IntEnum):
        RED = 1

    Point = collections.namedtuple("Point", "x y")
    assert rt(Color.RED) == 1
    assert rt(Point(1, 2)) == (1, 2)
    assert rt(collections.OrderedDict(a=1)) == {"a": 1}
    assert rt(type("S", (str,), {})("hi")) == "hi"


def test_latin1_atom_bytes_never_hit_a_utf8_cache_entry() -> None:
    # The atom cache is keyed by UTF-8 bytes; Latin-1 bytes that happen to match a cached
    # non-ASCII UTF-8 atom must still decode as their own Latin-1 text.
    assert erlnode.decode(bytes([131, 119, 3]) + "éa".encode()) == "éa"
    latin1 = erlnode.decode(bytes([131, 100, 0, 3, 0xC3, 0xA9, 0x61]))
    assert latin1 == "Ã©a" and isinstance(latin1, erlnode.Atom)
    assert erlnode.decode(bytes([131, 115, 2, 0xE9, 0x61])) == "éa"
