"""Generated Python values through a real Erlang node and back."""

from __future__ import annotations

import struct
from typing import Any

from erl import Erl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import erlnode
from erlnode import Atom


def exact(value: Any) -> Any:
    """A form of a decoded value where equality is Erlang's exact equality."""
    kind = type(value)
    if kind is float:
        return ("float", struct.pack(">d", value))
    if kind is str:  # STRING_EXT: to Erlang, a list of small integers
        return ("list", tuple(("int", ord(c)) for c in value))
    if kind in (list, erlnode.FrozenList):
        return ("list", tuple(exact(v) for v in value))
    if kind is tuple:
        return ("tuple", tuple(exact(v) for v in value))
    if kind in (dict, erlnode.FrozenMap):
        return ("map", frozenset((exact(k), exact(v)) for k, v in value.items()))
    if kind is erlnode.ImproperList:
        return ("improper", exact(value.elements), exact(value.tail))
    return (kind.__name__, value)


atoms = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20).map(
    Atom
) | st.sampled_from([Atom("ok"), Atom("a@b"), Atom("é")])
floats = st.floats(allow_nan=False, allow_infinity=False)
ints = st.integers() | st.integers(min_value=-(2**2100), max_value=2**2100)
latin1 = st.text(st.characters(max_codepoint=255, blacklist_categories=("Cs",)), min_size=1)
idents = st.sampled_from(["x@h", "other@host", "ñ@h"])
pids = st.builds(
    erlnode.Pid,
    idents,
    st.integers(0, 2**15 - 1),
    st.integers(0, 2**13 - 1),
    st.integers(0, 2**32 - 1),
)
refs = st.builds(
    erlnode.Reference,
    idents,
    st.tuples(st.integers(0, 2**18 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.integers(0, 2**32 - 1),
)
ports = st.builds(erlnode.Port, idents, st.integers(0, 2**28 - 1), st.integers(0, 2**32 - 1))
bitbins = st.builds(
    lambda data, bits: erlnode.BitBinary(
        data[:-1] + bytes([data[-1] & (0xFF << (8 - bits)) & 0xFF]), bits
    ),
    st.binary(min_size=1, max_size=8),
    st.integers(1, 7),
)
leaves = (
    atoms
    | st.booleans()
    | ints
    | floats
    | st.binary(max_size=40)
    | latin1
    | pids
    | refs
    | ports
    | bitbins
    | st.builds(erlnode.Export, atoms, atoms, st.integers(0, 255))
)
hashable = st.recursive(
    leaves,
    lambda inner: (
        st.tuples(inner, inner) | st.lists(inner, min_size=1, max_size=4).map(erlnode.FrozenList)
    ),
    max_leaves=8,
)


def non_string_list(items: list[Any]) -> list[Any]:
    # A list of small ints is a STRING_EXT, which decodes as a str: not what we compare.
    if items and all(type(i) is int and 0 <= i < 256 for i in items):
        return items + [Atom("end")]
    return items


terms = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=5).map(non_string_list)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(hashable, inner, max_size=5)
        | st.builds(
            erlnode.ImproperList,
            st.lists(inner, min_size=1, max_size=3),
            leaves.filter(lambda t: t != ""),
        )
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=terms)
def test_values_survive_erlang(session_erl: Erl, value: Any) -> None:
    data = erlnode.encode(value)
    session_erl.bind("V", data)
    back_bytes = session_erl.eval("term_to_binary(binary_to_term(V), [{minor_version, 2}])")
    back = erlnode.decode(back_bytes)
    assert exact(back) == exact(erlnode.decode(data))
    # Our encoding of what came back is Erlang's own (map keys may come back reordered).
    session_erl.bind("W", erlnode.encode(back))
    assert session_erl.eval("binary_to_term(W) =:= binary_to_term(V)") is True
