"""Recognising Erlang terms in Python: small predicates, and the gen_server messages.

The OTP layer reads decoded messages with these instead of spelling out tuple shapes at
every turn.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

from ._terms import Atom, FrozenList


def is_atom(term: Any, name: str) -> bool:
    """True when `term` is the atom `name` (a plain `str` is not an atom)."""
    return isinstance(term, Atom) and term == name


def is_tuple(term: Any, size: int) -> bool:
    """True when `term` is an Erlang tuple of `size` elements."""
    return isinstance(term, tuple) and len(term) == size


def erlang_list(term: Any) -> Optional[list[Any]]:
    """A proper Erlang list as a Python list (a byte string comes as `str`); None otherwise."""
    if isinstance(term, (list, FrozenList)):
        return list(term)
    if isinstance(term, str) and not isinstance(term, Atom):
        return [ord(c) for c in term]
    return None


class GenCall(NamedTuple):
    """`{'$gen_call', {Caller, Tag}, Request}`: answer with `Caller ! {Tag, Reply}`."""

    caller: Any
    tag: Any
    request: Any


class GenCast(NamedTuple):
    """`{'$gen_cast', Request}`."""

    request: Any


#: Builds a NamedTuple without its Python-level constructor (as `namedtuple._make` does):
#: `gen_message` runs for every message a server gets.
_new_tuple = tuple.__new__


def gen_message(msg: Any) -> Union[GenCall, GenCast, None]:
    """The gen_server call or cast that `msg` is; None for any other message (an info)."""
    if not isinstance(msg, tuple) or not msg:
        return None
    kind = msg[0]
    if not isinstance(kind, Atom):
        return None
    if kind == "$gen_call" and len(msg) == 3:
        from_ = msg[1]
        if isinstance(from_, tuple) and len(from_) == 2:
            return _new_tuple(GenCall, (from_[0], from_[1], msg[2]))
    elif kind == "$gen_cast" and len(msg) == 2:
        return _new_tuple(GenCast, (msg[1],))
    return None
