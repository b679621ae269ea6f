"""Recognising Erlang terms in Python: small predicates.

The OTP layer reads decoded messages with these instead of spelling out tuple shapes at
every turn.
"""

from __future__ import annotations

from typing import Any, Optional

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
