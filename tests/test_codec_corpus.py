"""Terms made by a real Erlang node, decoded and re-encoded by erlnode, checked by Erlang."""

from __future__ import annotations

from typing import Any

from erl import Erl

import erlnode
from erlnode import Atom

# The corpus round trip (decode, encode, checked by Erlang) runs against every OTP release in
# tests/test_otp_matrix.py.


def test_corpus_values_have_the_documented_types(session_erl: Erl) -> None:
    e = session_erl.eval
    assert e("ok") == Atom("ok") and type(e("ok")) is Atom
    assert e("true") is True and e("false") is False
    assert e("'日本語'") == "日本語"
    assert e("1 bsl 2048") == 1 << 2048
    assert e("-(1 bsl 2048)") == -(1 << 2048)
    neg_zero = e("-0.0")
    assert isinstance(neg_zero, float) and str(neg_zero) == "-0.0"
    assert e("<<1, 2>>") == b"\x01\x02"
    assert e("<<1:1>>") == erlnode.BitBinary(b"\x80", 1)
    assert e('"abc"') == "abc"
    assert e("[1000, 2000]") == [1000, 2000]
    assert e("[1 | 2]") == erlnode.ImproperList([1], 2)
    assert e("{a, {}}") == (Atom("a"), ())
    assert e("#{[1000] => #{a => 1}}") == {erlnode.FrozenList([1000]): {Atom("a"): 1}}
    assert e("#{[1] => x}") == {"\x01": Atom("x")}
    assert e("#{#{a => [b]} => c}") == {
        erlnode.FrozenMap({Atom("a"): erlnode.FrozenList([Atom("b")])}): Atom("c")
    }
    pid = e("self()")
    assert isinstance(pid, erlnode.Pid) and pid.node == Atom(session_erl.name)
    assert isinstance(e("make_ref()"), erlnode.Reference)
    assert isinstance(e("hd(erlang:ports())"), erlnode.Port)
    assert e("fun lists:map/2") == erlnode.Export("lists", "map", 2)
    fun = e("Y = 3, fun(X) -> X + Y end")
    assert isinstance(fun, erlnode.Fun) and fun.module == Atom("erl_eval")


def test_colliding_map_keys_round_trip(session_erl: Erl) -> None:
    m = session_erl.eval(
        "M = #{1 => int, 1.0 => float, true => t, 0.0 => zero, -0.0 => negzero,"
        ' a => atom, "a" => string}'
    )
    # (OTP 25 treats 0.0 and -0.0 as the same key; later OTPs do not.)
    assert len(m) == session_erl.eval("maps:size(M)")
    wrapped = [k for k in m if isinstance(k, erlnode.ExactKey)]
    assert sorted(repr(k.value) for k in wrapped) == ["'a'", "1.0", "True"]
    assert [type(k.value) for k in wrapped if k.value == "a"] == [str]
    session_erl.bind("Back", erlnode.encode(m))
    assert session_erl.eval("binary_to_term(Back) =:= M") is True


def test_python_values_checked_by_erlang(session_erl: Erl) -> None:
    cases: list[tuple[Any, str]] = [
        (None, "undefined"),
        ("", "[]"),
        ("héllo", '"héllo"'),
        ("日本", "[26085, 26412]"),
        (bytearray(b"ab"), '<<"ab">>'),
        (memoryview(b"cd"), '<<"cd">>'),
        (erlnode.FrozenList([1, 2]), "[1, 2]"),
        (erlnode.FrozenMap({1: 2}), "#{1 => 2}"),
        (erlnode.ExactKey(1.0), "1.0"),
        (erlnode.Pid("a@b", 1, 2, 3), "codec_corpus_pid"),
        ({True: False}, "#{true => false}"),
        (-0.0, "-0.0"),
        ((), "{}"),
    ]
    for value, expr in cases:
        if expr == "codec_corpus_pid":
            continue
        session_erl.bind("V", erlnode.encode(value))
        assert session_erl.eval(f"binary_to_term(V) =:= {expr}") is True, (value, expr)


def test_big_binaries_inside_terms_are_checked_by_erlang(session_erl: Erl) -> None:
    # `encode` assembles a term holding big binaries from its buffer and the binaries'
    # own bytes; Erlang must see exactly the term its own term_to_binary would describe.
    big = bytes(range(256)) * 512  # 128 KiB
    other = b"\x01" * (64 * 1024)
    value = (Atom("blobs"), [big, b"small", other, big], {Atom("k"): other}, 7)
    encoded = erlnode.encode(value)
    session_erl.bind("V", encoded)
    expr = (
        "begin Big = list_to_binary(lists:duplicate(512, lists:seq(0, 255))),"
        " Other = binary:copy(<<1>>, 65536),"
        ' {blobs, [Big, <<"small">>, Other, Big], #{k => Other}, 7} end'
    )
    assert session_erl.eval(f"binary_to_term(V) =:= {expr}") is True
    assert session_erl.eval(f"term_to_binary({expr}, [{{minor_version, 2}}]) =:= V") is True
    assert erlnode.decode(encoded) == value
