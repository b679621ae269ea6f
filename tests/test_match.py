"""The term predicates and the gen_server message parser the OTP layer reads messages with."""

from __future__ import annotations

import erlnode
from erlnode import Atom, FrozenList
from erlnode._match import GenCall, GenCast, erlang_list, gen_message, is_atom, is_tuple

PID = erlnode.Pid("a@host", 1)


def test_predicates() -> None:
    assert is_atom(Atom("ok"), "ok") and not is_atom("ok", "ok") and not is_atom(Atom("no"), "ok")
    assert is_tuple((1, 2), 2) and not is_tuple((1, 2), 3) and not is_tuple([1, 2], 2)
    assert erlang_list([1, 2]) == [1, 2] and erlang_list(FrozenList([1])) == [1]
    assert erlang_list("ab") == [97, 98]  # an Erlang string is a list of character codes
    assert erlang_list(Atom("ab")) is None and erlang_list((1,)) is None


def test_gen_message_reads_calls_and_casts_and_nothing_else() -> None:
    call = gen_message((Atom("$gen_call"), (PID, "tag"), "req"))
    assert isinstance(call, GenCall) and call == (PID, "tag", "req")
    assert (call.caller, call.tag, call.request) == (PID, "tag", "req")
    cast = gen_message((Atom("$gen_cast"), "req"))
    assert isinstance(cast, GenCast) and cast.request == "req"
    for info in [
        ("$gen_call", (PID, "tag"), "req"),  # a str, not an atom
        (Atom("$gen_call"), [PID, "tag"], "req"),  # From must be a tuple
        (Atom("$gen_call"), (PID,), "req"),
        (Atom("$gen_call"), (PID, "tag")),
        (Atom("$gen_cast"), "req", "extra"),
        (Atom("$gen_cast"),),
        (),
        [Atom("$gen_cast"), "req"],
        Atom("$gen_cast"),
    ]:
        assert gen_message(info) is None, info
