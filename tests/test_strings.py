"""How Erlang text arrives: the `strings=` modes of `decode`, `encode` and `Node`.

`"str"` (the default: every STRING_EXT list is a `str`), `"erlang"` (only when
`io_lib:printable_list/1` calls it text) and `"elixir"` (a UTF-8 binary is a `str`, a `str` goes
out as a binary). In every mode what was decoded goes back as the same Erlang term.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from erl import Erl, random_name
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_codec_hypothesis import exact, terms

import erlnode
from erlnode import Atom, FrozenList, ImproperList, decode, encode

MODES = ("str", "erlang", "elixir")

#: The bytes `io_lib:printable_list/1` accepts in a list (OTP's default Latin-1 range).
PRINTABLE = set(range(0x20, 0x7F)) | set(range(0xA0, 0x100)) | set(b"\n\r\t\v\b\f\x1b")


def string_ext(data: bytes) -> bytes:
    """A standalone STRING_EXT, as Erlang encodes a list of small integers."""
    return b"\x83k" + struct.pack(">H", len(data)) + data


def binary_ext(data: bytes) -> bytes:
    return b"\x83m" + struct.pack(">I", len(data)) + data


# -- the codec ----------------------------------------------------------------------------


def test_the_default_is_the_round_one_behaviour() -> None:
    for data in (string_ext(b"abc"), string_ext(b"\x01\x02"), binary_ext(b"abc")):
        assert decode(data, strings="str") == decode(data)
        assert type(decode(data, strings="str")) is type(decode(data))
    assert decode(string_ext(b"\x01\x02")) == "\x01\x02"
    assert decode(binary_ext("é".encode())) == "é".encode()
    assert encode("abc", strings="str") == encode("abc") == string_ext(b"abc")
    assert encode("abc", strings="erlang") == encode("abc")


def test_an_unknown_mode_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'str', 'erlang' or 'elixir'"):
        decode(encode(1), strings="latin9")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'str', 'erlang' or 'elixir'"):
        encode(1, strings="Elixir")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'str', 'erlang' or 'elixir'"):
        erlnode.Node("x", cookie="c", strings="utf8")  # type: ignore[arg-type]


def test_erlang_mode_keeps_text_that_erlang_prints_as_text() -> None:
    assert decode(string_ext(b"on vacation"), strings="erlang") == "on vacation"
    assert decode(string_ext(b"line\n\ttab\x1b"), strings="erlang") == "line\n\ttab\x1b"
    assert decode(string_ext("naïve".encode("latin-1")), strings="erlang") == "naïve"
    # lists:seq(1, 5) and other lists of small numbers are numbers.
    assert decode(string_ext(bytes([1, 2, 3, 4, 5])), strings="erlang") == [1, 2, 3, 4, 5]
    assert decode(string_ext(b"abc\x00"), strings="erlang") == [97, 98, 99, 0]
    assert decode(string_ext(b"\x7f"), strings="erlang") == [127]
    # Binaries stay bytes.
    assert decode(binary_ext(b"text"), strings="erlang") == b"text"
    for byte in range(256):
        got = decode(string_ext(bytes([byte])), strings="erlang")
        assert got == (chr(byte) if byte in PRINTABLE else [byte]), byte


def test_elixir_mode_reads_utf8_binaries_as_str_and_charlists_as_lists() -> None:
    assert decode(binary_ext("héllo".encode()), strings="elixir") == "héllo"
    assert decode(binary_ext(b""), strings="elixir") == ""
    assert decode(binary_ext(b"\xff\x00"), strings="elixir") == b"\xff\x00"
    assert decode(binary_ext(b"\xc3"), strings="elixir") == b"\xc3"  # cut in a character
    assert decode(string_ext(b"abc"), strings="elixir") == [97, 98, 99]
    # A str goes out as a UTF-8 binary (an Elixir string), atoms stay atoms.
    assert encode("héllo", strings="elixir") == binary_ext("héllo".encode())
    assert encode("", strings="elixir") == binary_ext(b"")
    assert encode(Atom("ok"), strings="elixir") == encode(Atom("ok"))
    assert encode("🙂" * 3, strings="elixir") == binary_ext("🙂🙂🙂".encode())
    with pytest.raises(erlnode.EncodeError, match="surrogates"):
        encode("\ud800", strings="elixir")


def test_modes_apply_inside_containers_and_map_keys() -> None:
    term = encode({"k": ("\x01\x02", [b"caf\xc3\xa9"]), ("\x01",): "ok"})
    erlang = decode(term, strings="erlang")
    assert erlang == {"k": ([1, 2], [b"caf\xc3\xa9"]), (FrozenList([1]),): "ok"}
    elixir = decode(term, strings="elixir")
    assert elixir == {
        FrozenList([107]): ([1, 2], ["café"]),
        (FrozenList([1]),): [111, 107],
    }
    # In a map key a charlist is a FrozenList, so it can be hashed.
    assert all(isinstance(k, (FrozenList, tuple)) for k in elixir)
    assert decode(encode({"\x01": 1}), strings="erlang") == {FrozenList([1]): 1}


def test_an_atom_and_a_binary_of_the_same_text_stay_two_keys_in_elixir_mode() -> None:
    # Erlang: #{a => 1, <<"a">> => 2}. As str, the binary equals the atom: ExactKey keeps both.
    data = b"\x83t\x00\x00\x00\x02w\x01aa\x01m\x00\x00\x00\x01aa\x02"
    m = decode(data, strings="elixir")
    assert len(m) == 2 and m[Atom("a")] == 1 and m[erlnode.ExactKey("a")] == 2
    assert encode(m, strings="elixir") == data


def test_a_string_tail_is_folded_into_the_list_in_every_mode() -> None:
    # [1 | "ab"] and [1 | [2]] as another encoder might write them: the proper list.
    printable = b"\x83l\x00\x00\x00\x01a\x01k\x00\x02ab"
    control = b"\x83l\x00\x00\x00\x01a\x01k\x00\x02\x02\x03"
    for mode in MODES:
        assert decode(printable, strings=mode) == [1, 97, 98]
        assert decode(control, strings=mode) == [1, 2, 3]


def test_modes_of_compressed_terms() -> None:
    data = encode(("\x01" * 500, "text " * 100), compressed=True)
    assert decode(data, strings="erlang") == ([1] * 500, "text " * 100)
    data = encode(("é" * 500).encode(), compressed=True)
    assert decode(data, strings="elixir") == "é" * 500
    assert decode(encode("é" * 500, strings="elixir", compressed=True), strings="elixir") == (
        "é" * 500
    )


# Leaves that exercise the modes: text of every kind, as STRING_EXT lists and as binaries.
latin1_text = st.text(st.characters(max_codepoint=255, blacklist_categories=("Cs",)), max_size=12)
utf8_binaries = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12).map(
    lambda t: t.encode()
)
byte_lists = st.lists(st.integers(0, 255), min_size=1, max_size=8)
mode_terms = st.recursive(
    latin1_text | utf8_binaries | st.binary(max_size=8) | byte_lists | terms,
    lambda inner: (
        st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(latin1_text | utf8_binaries | st.integers(0, 3), inner, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=mode_terms)
def test_every_mode_round_trips(mode: Any, value: Any) -> None:
    data = encode(value)
    again = encode(decode(data, strings=mode), strings=mode)
    # Compared as Erlang compares: a STRING_EXT list is the list of its bytes.
    assert exact(decode(again)) == exact(decode(data))


# -- against a real erl -------------------------------------------------------------------


def test_erlang_mode_agrees_with_io_lib_printable_list(session_erl: Erl) -> None:
    printable = session_erl.eval("[B || B <- lists:seq(0, 255), io_lib:printable_list([B])]")
    # (A list of small integers comes back as STRING_EXT: decoded as a str by default.)
    assert set(map(ord, printable)) == PRINTABLE
    samples = ["on vacation", "tab\there", "\x01\x02", "abc\x00", "naïve", "\x7f", "\xa0\xff"]
    for sample in samples:
        session_erl.bind("S", encode(sample))
        shown = 'lists:flatten(io_lib:format("~p", [binary_to_term(S)]))'
        text = session_erl.eval(f'lists:prefix("\\"", {shown})')
        assert isinstance(decode(encode(sample), strings="erlang"), str) == text, sample


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=mode_terms)
def test_every_mode_round_trips_through_erlang(session_erl: Erl, mode: Any, value: Any) -> None:
    # Erlang's own encoding of the term: a list of small integers is a STRING_EXT there.
    session_erl.bind("V", encode(value))
    data = session_erl.eval("term_to_binary(binary_to_term(V), [{minor_version, 2}])")
    session_erl.bind("Back", encode(decode(data, strings=mode), strings=mode))
    assert session_erl.eval("binary_to_term(Back) =:= binary_to_term(V)") is True


@pytest.fixture
def erlang_node(erl: Erl) -> Iterator[erlnode.Node]:
    with erlnode.Node(random_name("py"), cookie=erl.cookie, strings="erlang") as node:
        yield node


def test_an_erlang_mode_node_gets_numbers_as_lists_and_text_as_str(
    erl: Erl, erlang_node: erlnode.Node
) -> None:
    node = erlang_node
    assert node.strings == "erlang"
    assert node.rpc(erl.name, "lists", "seq", [1, 5]) == [1, 2, 3, 4, 5]
    assert node.rpc(erl.name, "lists", "seq", [65, 70]) == "ABCDEF"  # as ~p prints it
    assert node.rpc(erl.name, "erlang", "atom_to_list", [Atom("on_vacation")]) == "on_vacation"
    # The messenger's auto-reply still reads as text, numbers from Erlang as numbers.
    mbox = node.mailbox("inbox")
    erl.eval(f"{{inbox, '{node.name}'}} ! {{message_from, erlang_user, \"on vacation\"}}")
    assert mbox.receive(timeout=5) == (Atom("message_from"), Atom("erlang_user"), "on vacation")
    erl.eval(f"{{inbox, '{node.name}'}} ! {{scores, [3, 1, 2], <<\"bin\">>}}")
    assert mbox.receive(timeout=5) == (Atom("scores"), [3, 1, 2], b"bin")
    # Callback mailboxes decode the same way.
    got: list[Any] = []
    seen = threading.Event()
    node.mailbox("cb", callback=lambda m: (got.append(m), seen.set()))
    erl.eval(f"{{cb, '{node.name}'}} ! [1, 2, 3]")
    assert seen.wait(5) and got == [[1, 2, 3]]
    # What came in goes back as the same term.
    erl.eval("register(erl_inbox, self())")
    for sent in ('"on vacation"', "[1, 2, 3]", '{"a", [0], <<"b">>}'):
        erl.eval(f"{{inbox, '{node.name}'}} ! {{back, {sent}}}")
        message = mbox.receive(timeout=5)
        mbox.send(("erl_inbox", erl.name), message)
        m = random_name("M")  # (the erl shell keeps its bindings)
        assert erl.eval(f"receive {m} -> {m} =:= {{back, {sent}}} after 5000 -> timeout end")


def test_the_default_node_keeps_round_one_strings(erl: Erl, node: erlnode.Node) -> None:
    assert node.strings == "str"
    assert node.rpc(erl.name, "lists", "seq", [1, 5]) == "\x01\x02\x03\x04\x05"


def test_an_elixir_mode_node_speaks_binaries_to_erlang(erl: Erl) -> None:
    with erlnode.Node(random_name("py"), cookie=erl.cookie, strings="elixir") as node:
        # A str argument arrives in Erlang as a binary, a binary result comes back as str.
        assert node.rpc(erl.name, "erlang", "is_binary", ["text"]) is True
        assert node.rpc(erl.name, "string", "uppercase", ["héllo"]) == "HÉLLO"
        assert node.rpc(erl.name, "lists", "seq", [97, 99]) == [97, 98, 99]
        node.expose("pystr", {"upper": lambda s: s.upper(), "kind": lambda s: type(s).__name__})
        # erpc results travel as exit reasons: those follow the mode too. (`erl.eval` decodes
        # in the default mode: a binary is bytes there.)
        assert erl.eval(f"erpc:call('{node.name}', pystr, upper, [<<\"ok\">>])") == b"OK"
        assert erl.eval(f"rpc:call('{node.name}', pystr, upper, [<<\"ok\">>])") == b"OK"
        assert erl.eval(f"erpc:call('{node.name}', pystr, kind, [\"abc\"])") == b"list"
        assert erl.eval(f"erpc:call('{node.name}', pystr, kind, [<<\"abc\">>])") == b"str"


def test_elixir_strings_arrive_as_str_and_go_back_as_binaries(erl: Erl, tmp_path: Path) -> None:
    if shutil.which("elixir") is None:
        if os.environ.get("CI"):
            pytest.fail("elixir is not on PATH (and CI is set)")
        pytest.skip("elixir is not on PATH")
    with erlnode.Node(random_name("py"), cookie=erl.cookie, strings="elixir") as node:
        mbox = node.mailbox("inbox")
        node.expose("pystr", {"upper": lambda s: s.upper()})
        received: list[Any] = []

        def answer() -> None:
            msg = mbox.receive(timeout=30)
            received.append(msg)
            sender, text, charlist, mapping, raw = msg
            mbox.send(sender, (text.upper(), charlist, mapping, raw, "naïve 🙂"))

        thread = threading.Thread(target=answer)
        thread.start()
        script = tmp_path / "strings.exs"
        script.write_text(
            f"py = :'{node.name}'\n"
            'send({:inbox, py}, {self(), "héllo", \'abc\', %{"k" => "v"}, <<255, 0>>})\n'
            "receive do\n"
            "  reply ->\n"
            '    IO.inspect(reply == {"HÉLLO", \'abc\', %{"k" => "v"}, <<255, 0>>, "naïve 🙂"})\n'
            "after\n"
            '  10_000 -> IO.puts("no reply")\n'
            "end\n"
            'IO.inspect(:erpc.call(py, :pystr, :upper, ["élan"]) == "ÉLAN")\n'
            'IO.inspect(:rpc.call(py, :pystr, :upper, ["élan"]) == "ÉLAN")\n'
        )
        done = subprocess.run(
            ["elixir", "--sname", random_name("ex"), "--cookie", erl.cookie, str(script)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        thread.join(timeout=10)
        assert done.returncode == 0, done.stderr
        assert received and received[0][1:] == ("héllo", [97, 98, 99], {"k": "v"}, b"\xff\x00")
        assert done.stdout.split() == ["true", "true", "true"], done.stdout


def test_improper_lists_with_text_tails_keep_their_tail(session_erl: Erl) -> None:
    # [1 | <<"ab">>]: an improper list whose tail is a binary; in elixir mode the tail is a str.
    data = session_erl.eval('term_to_binary([1 | <<"ab">>])')
    term = decode(data, strings="elixir")
    assert term == ImproperList([1], "ab")
    session_erl.bind("Back", encode(term, strings="elixir"))
    assert session_erl.eval('binary_to_term(Back) =:= [1 | <<"ab">>]') is True
