"""`erlnode.parse_term` and `erlnode.format_term`: Erlang syntax to Python values and back.

The rules themselves are tested in Rust (rust/src/etf/syntax/tests.rs, and a large corpus
against a real `erl` in rust/tests/term_syntax.rs); here: the Python binding, every Python
type, the round trip over generated values, error positions, and a few terms printed by `erl`.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from erl import Erl
from hypothesis import HealthCheck, given, settings
from test_codec_hypothesis import terms

import erlnode
from erlnode import (
    Atom,
    BitBinary,
    ExactKey,
    Export,
    FrozenList,
    FrozenMap,
    ImproperList,
    Pid,
    Port,
    Reference,
    TermSyntaxError,
    format_term,
    parse_term,
)


def exact(value: Any) -> Any:
    """A form of a decoded value where equality is Erlang's `=:=`, creations left out (text
    has none: pids, ports and references read back with creation 0)."""
    kind = type(value)
    if kind is float:
        return ("float", struct.pack(">d", value))
    if kind is str:  # to Erlang, a list of character codes
        return ("list", tuple(("int", ord(c)) for c in value))
    if kind in (list, FrozenList):
        return ("list", tuple(exact(v) for v in value))
    if kind is ImproperList:
        head = tuple(exact(v) for v in value.elements)
        tail = exact(value.tail)
        if tail[0] == "list":  # [a | "bc"] is the proper list [a, $b, $c]
            return ("list", head + tail[1])
        return ("improper", head, tail)
    if kind is tuple:
        return ("tuple", tuple(exact(v) for v in value))
    if kind in (dict, FrozenMap):
        return ("map", frozenset((exact(k), exact(v)) for k, v in value.items()))
    if kind is ExactKey:
        return exact(value.value)
    if kind is Pid:
        return ("pid", value.node, value.id, value.serial)
    if kind is Port:
        return ("port", value.node, value.id)
    if kind is Reference:
        return ("ref", value.node, value.ids)
    if kind is BitBinary and value.bits == 8:
        return ("bytes", value.data)
    return (kind.__name__, value)


# -- every type -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("ok", Atom("ok")),
        ("'hello world'", Atom("hello world")),
        ("'Caps'", Atom("Caps")),
        ("node@host", Atom("node@host")),
        ("true", True),
        ("false", False),
        ("42", 42),
        ("-7", -7),
        ("1_000", 1000),
        ("16#ff", 255),
        ("2#1010", 10),
        ("$a", 97),
        ("36#" + "z" * 30, int("z" * 30, 36)),
        ("1.5", 1.5),
        ("-2.5e-3", -2.5e-3),
        ("1.0e10", 1e10),
        ('"abc"', "abc"),
        ('"tab\\there\\n"', "tab\there\n"),
        ('"ab" "cd"', "abcd"),
        ('"héllo"', "héllo"),
        ('"日本"', [26085, 26412]),  # beyond Latin-1: a list of code points, as decode gives
        ('""', []),
        ("[]", []),
        ("[1, 2, 3]", [1, 2, 3]),
        ("[a | b]", ImproperList([Atom("a")], Atom("b"))),
        ("[1, 2 | 3]", ImproperList([1, 2], 3)),
        ("{}", ()),
        ("{ok, {1, 2}}", (Atom("ok"), (1, 2))),
        ("<<>>", b""),
        ('<<"bin">>', b"bin"),
        ('<<"a", 1, 255>>', b"a\x01\xff"),
        ('<<"héllo"/utf8>>', "héllo".encode()),
        ("<<1:3>>", BitBinary(b"\x20", 3)),
        ("<<1, 2, 3:4>>", BitBinary(b"\x01\x02\x30", 4)),
        ("#{}", {}),
        ('#{a => 1, <<"k">> => [x]}', {Atom("a"): 1, b"k": [Atom("x")]}),
        ("#{[1] => #{x => y}}", {FrozenList([1]): {Atom("x"): Atom("y")}}),
        ("fun lists:seq/2", Export("lists", "seq", 2)),
        ("<py@host.42.0>", Pid("py@host", 42, 0, 0)),
        ("#Port<py@host.5>", Port("py@host", 5, 0)),
        ("#Ref<py@host.3.2.1>", Reference("py@host", (1, 2, 3), 0)),
        ("{a, b}.", (Atom("a"), Atom("b"))),
        ("  % a comment\n {a, % another\n b} . ", (Atom("a"), Atom("b"))),
    ],
)
def test_parse_term(text: str, value: Any) -> None:
    parsed = parse_term(text)
    assert parsed == value
    assert type(parsed) is type(value)
    # What parse_term gives is what decode gives for the same term.
    assert erlnode.decode(erlnode.encode(parsed)) == parsed


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Atom("ok"), "ok"),
        (Atom("hello world"), "'hello world'"),
        (Atom("Caps"), "'Caps'"),
        (Atom("end"), "'end'"),
        (Atom("a@b"), "a@b"),
        (None, "undefined"),
        (True, "true"),
        (42, "42"),
        (-(2**70), "-1180591620717411303424"),
        (1.0, "1.0"),
        (0.1, "0.1"),
        (-0.0, "-0.0"),
        (1e10, "1.0e10"),
        (1e-5, "1.0e-5"),
        ("abc", '"abc"'),
        ("\x01\x02", "[1,2]"),  # not printable: a list, as erl prints it
        ([97, 98], '"ab"'),  # printable: a string, as erl prints it
        ("日本", "[26085,26412]"),
        ("", "[]"),
        (b"bin", '<<"bin">>'),
        (bytearray(b"\x00\x01"), "<<0,1>>"),
        (BitBinary(b"\x20", 3), "<<1:3>>"),
        (ImproperList([1], Atom("b")), "[1|b]"),
        ((Atom("ok"), [1, 2.5]), "{ok,[1,2.5]}"),
        ({Atom("b"): 1, 2: 3, Atom("a"): [4]}, "#{2 => 3,a => [4],b => 1}"),  # Erlang order
        ({1: Atom("int"), ExactKey(1.0): Atom("float")}, "#{1 => int,1.0 => float}"),
        (FrozenMap({Atom("k"): FrozenList([1])}), "#{k => [1]}"),
        (Export("lists", "seq", 2), "fun lists:seq/2"),
        (Pid("py@host", 42, 0, 7), "<py@host.42.0>"),  # the creation is not written
        (Port("py@host", 5, 7), "#Port<py@host.5>"),
        (Reference("py@host", (1, 2, 3), 7), "#Ref<py@host.3.2.1>"),
        (Pid("odd node", 1, 2), "<'odd node'.1.2>"),
    ],
)
def test_format_term(value: Any, text: str) -> None:
    assert format_term(value) == text


def test_a_closure_prints_as_erl_prints_it_and_does_not_parse(session_erl: Erl) -> None:
    fun = session_erl.eval("fun(X) -> X end")
    assert isinstance(fun, erlnode.Fun)
    text = format_term(fun)
    assert text.startswith("#Fun<erl_eval.") and text.endswith(">")
    with pytest.raises(TermSyntaxError):
        parse_term(text)


def test_map_keys_python_confuses_come_back_exact() -> None:
    value = parse_term("#{1 => a, 1.0 => b, true => c, 0.0 => d, -0.0 => e}")
    assert value[1] == Atom("a")
    assert value[ExactKey(1.0)] == Atom("b")
    assert value[ExactKey(True)] == Atom("c")
    # Erlang's map-key order: integers before floats, numbers before atoms.
    assert format_term(value) == "#{1 => a,-0.0 => e,0.0 => d,1.0 => b,true => c}"


def test_pids_ports_and_refs_read_back_with_creation_zero() -> None:
    for value in (Pid("a@h", 1, 2, 99), Port("a@h", 3, 99), Reference("a@h", (1, 2, 3), 99)):
        back = parse_term(format_term(value))
        assert back.creation == 0
        assert exact(back) == exact(value)


def test_format_term_refuses_what_encode_refuses() -> None:
    with pytest.raises(erlnode.EncodeError, match="'set'"):
        format_term({1, 2})
    with pytest.raises(erlnode.EncodeError):
        format_term([1, object()])
    with pytest.raises(erlnode.EncodeError):
        format_term(float("nan"))


# -- the round trip -------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=terms)
def test_parse_format_round_trip(value: Any) -> None:
    term = erlnode.decode(erlnode.encode(value))  # a term as the codec produces it
    text = format_term(term)
    back = parse_term(text)
    assert exact(back) == exact(term), text
    assert format_term(back) == text


def test_round_trip_is_equality_where_python_keeps_no_other_form() -> None:
    # Where Python has one form per Erlang term, the round trip gives an equal value.
    for value in [
        (Atom("ok"), [1, [2.5, -3]], b"\x00bin", {Atom("k"): (Atom("v"),)}),
        ImproperList([Atom("a"), "text"], Atom("tail")),
        {b"key": [True, False, Atom("undefined")], 7: BitBinary(b"\xf0", 4)},
        Export("m", "f", 0),
        "printable text",
        2**200,
    ]:
        assert parse_term(format_term(value)) == value


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "offset", "says"),
    [
        ("", 1, 1, 0, "end of input"),
        ("[1, 2", 1, 6, 5, "end of input"),
        ("{a,}", 1, 4, 3, "found '}'"),
        ("X", 1, 1, 0, "variable"),
        ("{ok,\n  [1,\n   foo(1)]}", 3, 7, 17, "function call"),
        ('{"é", Y}', 1, 7, 6, "variable"),  # columns and offsets count characters
        ("<<300>>", 1, 3, 2, ""),
        ("{a} b", 1, 5, 4, ""),
    ],
)
def test_syntax_errors_say_where(text: str, line: int, column: int, offset: int, says: str) -> None:
    with pytest.raises(TermSyntaxError) as info:
        parse_term(text)
    error = info.value
    assert isinstance(error, ValueError)
    assert (error.line, error.column, error.offset) == (line, column, offset)
    assert f"at line {line}, column {column}" in str(error)
    assert says in str(error)


def test_parse_term_takes_only_str() -> None:
    with pytest.raises(TypeError):
        parse_term(b"ok")  # type: ignore[arg-type]


# -- against erl ----------------------------------------------------------------------------

#: Short terms (erl breaks lines beyond 80 columns) printed the same by erl and format_term.
#: Pids, ports and references differ on purpose (erl prints `<0.42.0>`: see the Rust docs).
ERL_CORPUS = [
    Atom("ok"),
    [Atom("hello world"), Atom("Caps"), Atom("end"), Atom("a@b"), Atom("é")],
    (42, -7, 2**70, -(2**64)),
    [1.0, 0.1, -0.0, 1e10, 1.0e-5, 123456789.125, 5e-324],
    ("abc", "héllo", "tab\there\n", "\x01\x02", "", [97, 98]),
    (b"bin", b"\x00\x01", b"", "héllo".encode()),
    (BitBinary(b"\x20", 3), BitBinary(b"ab\x30", 4)),
    ImproperList([1, 2], Atom("tail")),
    {Atom("b"): 1, 2: [3.5], Atom("a"): {b"k": ()}, 1.0: 2},
    Export("lists", "seq", 2),
    [True, False, Atom("undefined"), (), []],
    [[1, 2], "ab", (Atom("x"), [Atom("y")])],
]


@pytest.mark.parametrize("value", ERL_CORPUS, ids=lambda v: format_term(v)[:30])
def test_format_term_prints_what_erl_prints(session_erl: Erl, value: Any) -> None:
    session_erl.bind("V", erlnode.encode(value))
    printed = session_erl.eval(
        'unicode:characters_to_binary(io_lib:format("~p", [binary_to_term(V)]))'
    )
    assert format_term(value) == printed.decode()
    # And erl reads our text back as the same term.
    text = format_term(value)
    session_erl.bind("T", text.encode())
    assert session_erl.eval(
        "element(2, erl_parse:parse_term(element(2,"
        ' erl_scan:string(unicode:characters_to_list(<<T/binary, ".">>)))))'
        " =:= binary_to_term(V)"
    )
