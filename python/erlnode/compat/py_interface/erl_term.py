"""py_interface's term constructors and predicates, mapped onto erlnode's term types.

Terms are erlnode's own: a tuple is a tuple, a list a list, a binary ``bytes``, an Erlang
string a ``str``, a map a ``dict``. The classes py_interface had become erlnode's:

==================  ==========================================================
py_interface         here
==================  ==========================================================
``ErlAtom``          a subclass of :class:`erlnode.Atom` that keeps ``atomText``
``ErlPid``           :class:`erlnode.Pid` (same constructor arguments)
``ErlPort``          :class:`erlnode.Port` (same constructor arguments)
``ErlRef``           builds an :class:`erlnode.Reference`
``ErlFunExport``     :class:`erlnode.Export`
``ErlFun``           :class:`erlnode.Fun` (received only)
``ErlBitBinary``     builds an :class:`erlnode.BitBinary`
``ErlImproperList``  builds an :class:`erlnode.ImproperList`
``ErlMap``           builds a ``dict``
==================  ==========================================================

Atoms in received messages are turned into :class:`ErlAtom` (see :func:`FromErlnode`), so
``msg[0].atomText`` works as it did.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import erlnode
from erlnode import Atom

if TYPE_CHECKING:
    from typing_extensions import Self

ErlPid = erlnode.Pid
ErlPort = erlnode.Port
ErlFunExport = erlnode.Export
ErlFun = erlnode.Fun


class ErlTermError(Exception):
    """A term that does not fit: ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ErlAtom(Atom):
    """An Erlang atom; a ``str`` (through :class:`erlnode.Atom`) with py_interface's
    ``atomText`` attribute. Unlike py_interface's, it compares equal to a ``str`` of the same
    text, as every erlnode atom does."""

    __slots__ = ()

    def __new__(cls, atomText: str | bytes, cache: int = -1) -> Self:
        # `cache` was py_interface's atom-cache slot: erlnode handles the atom cache itself.
        if isinstance(atomText, bytes):
            atomText = atomText.decode("latin-1")
        return super().__new__(cls, atomText)

    @property
    def atomText(self) -> str:
        """The atom's text."""
        return str(self)

    def equals(self, other: object) -> bool:
        """True when OTHER is an atom with the same text."""
        return isinstance(other, Atom) and str(self) == str(other)

    def __repr__(self) -> str:
        return f"<erl-atom: {str(self)!r}>"


def ErlNumber(number: float) -> int | float:
    """A number is a Python ``int`` or ``float``: NUMBER itself."""
    return number


def ErlString(s: str | bytes) -> str:
    """An Erlang string is a ``str`` (sent as a string, received as one)."""
    return s.decode("latin-1") if isinstance(s, bytes) else s


def ErlList(elements: Iterable[Any]) -> list[Any]:
    """A list is a Python ``list``."""
    return list(elements)


def ErlTuple(elementsAsList: Iterable[Any]) -> tuple[Any, ...]:
    """A tuple is a Python ``tuple``."""
    return tuple(elementsAsList)


def ErlBinary(contents: bytes | bytearray | memoryview | str) -> bytes:
    """A binary is ``bytes``; a ``str`` is taken as latin-1, as py_interface's strings were."""
    if isinstance(contents, str):
        return contents.encode("latin-1")
    return bytes(contents)


def ErlBitBinary(contents: bytes, bits: int) -> erlnode.BitBinary:
    """A bitstring: CONTENTS, of which the last byte holds BITS (1..8) bits."""
    return erlnode.BitBinary(contents, bits)


def ErlRef(node: str, id: int | Sequence[int], creation: int) -> erlnode.Reference:
    """A reference of NODE; ID is one integer or the list of the reference's words."""
    ids = [id] if isinstance(id, int) else list(id)
    return erlnode.Reference(str(node), ids, creation)


def ErlImproperList(elements: Iterable[Any], tail: Any, useTail: int = 1) -> erlnode.ImproperList:
    """The list ``[ELEMENTS... | TAIL]``."""
    # `useTail` chose whether iteration included the tail; erlnode's ImproperList is not
    # iterable: read `.elements` and `.tail`.
    return erlnode.ImproperList(elements, tail)


def ErlMap(dict: Mapping[Any, Any] | None = None, **kwargs: Any) -> builtins.dict[Any, Any]:
    """A map is a ``dict``: DICT's items, then the keyword arguments."""
    result: builtins.dict[Any, Any] = {}
    if dict is not None:
        result.update(dict)
    result.update(kwargs)
    return result


def IsErlAtom(term: Any) -> bool:
    """True for an atom (any :class:`erlnode.Atom`)."""
    return isinstance(term, Atom)


def IsErlPid(term: Any) -> bool:
    """True for a pid."""
    return isinstance(term, erlnode.Pid)


def IsErlPort(term: Any) -> bool:
    """True for a port."""
    return isinstance(term, erlnode.Port)


def IsErlRef(term: Any) -> bool:
    """True for a reference."""
    return isinstance(term, erlnode.Reference)


def IsErlBinary(term: Any) -> bool:
    """True for a binary (``bytes``)."""
    return isinstance(term, bytes)


def IsErlBitBinary(term: Any) -> bool:
    """True for a bitstring that is not a whole number of bytes."""
    return isinstance(term, erlnode.BitBinary)


def IsErlFun(term: Any) -> bool:
    """True for a closure received from Erlang."""
    return isinstance(term, erlnode.Fun)


def IsErlFunExport(term: Any) -> bool:
    """True for an external fun (``fun M:F/A``)."""
    return isinstance(term, erlnode.Export)


def IsErlImproperList(term: Any) -> bool:
    """True for an improper list."""
    return isinstance(term, erlnode.ImproperList)


def IsErlMap(term: Any) -> bool:
    """True for a map (any ``Mapping``)."""
    return isinstance(term, Mapping)


def IODataToStr(iodata: Any) -> str:
    """A ``str`` from iodata: a str, bytes (latin-1), a list of character codes, or a deep list
    of these."""
    if isinstance(iodata, str):
        return iodata
    if isinstance(iodata, (bytes, bytearray)):
        return bytes(iodata).decode("latin-1")
    if isinstance(iodata, list):
        return "".join(chr(e) if isinstance(e, int) else IODataToStr(e) for e in iodata)
    raise ErlTermError(f"badarg, expected iodata but found {type(iodata)!r} ({iodata!r})")


def StrToList(s: str) -> list[int]:
    """The character codes of S."""
    return [ord(c) for c in s]


def TermToBinary(term: Any) -> bytes:
    """The external term format of TERM (with the leading version byte 131)."""
    data: bytes = erlnode.encode(term)
    return data


def BinaryToTerm(binary: bytes) -> Any:
    """The term in BINARY (external term format), its atoms made :class:`ErlAtom`."""
    return FromErlnode(erlnode.decode(binary))


def FromErlnode(term: Any) -> Any:
    """TERM with every atom inside tuples, lists and maps made an :class:`ErlAtom`."""
    if isinstance(term, Atom):
        return term if isinstance(term, ErlAtom) else ErlAtom(term)
    if isinstance(term, tuple):
        return tuple(FromErlnode(e) for e in term)
    if isinstance(term, list):
        return [FromErlnode(e) for e in term]
    if isinstance(term, dict):
        return {FromErlnode(k): FromErlnode(v) for k, v in term.items()}
    return term
