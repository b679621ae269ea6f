"""py_interface's term classes, constructors and predicates, carried by erlnode's codec.

Messages keep py_interface's types: a received pid is an :class:`ErlPid` whose ``node`` is an
:class:`ErlAtom`, a map an :class:`ErlMap`, a bitstring an :class:`ErlBitBinary`, and so on;
:func:`FromErlnode` makes them from what erlnode decodes, :func:`ToErlnode` turns them back
before a message is sent. The plain types are Python's, as in py_interface for Python 3: a
tuple is a ``tuple``, a list a ``list``, a binary ``bytes``, a string ``str``, a number an
``int`` or ``float``.

==================  =========================================================================
py_interface         here
==================  =========================================================================
``ErlAtom``          a subclass of :class:`erlnode.Atom` (so a ``str``) with ``atomText``
``ErlPid``           a class with ``node``, ``id``, ``serial``, ``creation``
``ErlPort``          a class with ``node``, ``id``, ``creation``
``ErlRef``           a class with ``node``, ``id`` (int or list of ints), ``creation``
``ErlFun``           a class with py_interface's eight fields, sent as ``NEW_FUN_EXT``
``ErlFunExport``     a class with ``module``, ``function``, ``arity``
``ErlBitBinary``     a subclass of :class:`erlnode.BitBinary` with ``contents`` and ``bits``
``ErlImproperList``  a subclass of :class:`erlnode.ImproperList`, indexable like py_interface's
``ErlMap``           a ``dict`` subclass whose keys may be lists and maps
==================  =========================================================================

Example::

    from erlnode.compat.py_interface import erl_term

    msg = erl_term.BinaryToTerm(erl_term.TermToBinary((erl_term.ErlAtom("ok"), [1, 2])))
    assert msg[0].atomText == "ok" and msg[1] == [1, 2]
"""

from __future__ import annotations

import builtins
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import erlnode
from erlnode import Atom

if TYPE_CHECKING:
    from typing_extensions import Self


class HMarker:
    """A tag mixed into the hashes of py_interface's term classes, so that a pid and a port
    with the same fields hash apart.

    Example::

        assert repr(hPid) == "<hmarker/pid"
    """

    def __init__(self, discr: str) -> None:
        self.discr = discr

    def __repr__(self) -> str:
        return f"<hmarker/{self.discr}"


hAtom = HMarker("atom")
hRef = HMarker("ref")
hPort = HMarker("port")
hPid = HMarker("pid")
hBitBinary = HMarker("bit-binary")
hFun = HMarker("fun")
hFunExport = HMarker("fun-export")
hMapKey = HMarker("map-key")


class ErlTermError(Exception):
    """A term that does not fit: ``reason`` says why.

    Example::

        try:
            erl_term.BinaryToTerm(b"junk")
        except erl_term.ErlTermError as e:
            print(e.reason)
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- strings -----------------------------------------------------------------------------------


def IODataToStr(iodata: Any) -> str:
    """A ``str`` from iodata: a str, bytes (latin-1), a list of character codes, or a deep list
    of these.

    Example::

        assert IODataToStr(["ab", [99, b"d"]]) == "abcd"
    """
    if isinstance(iodata, str):
        return iodata
    if isinstance(iodata, (bytes, bytearray)):
        return bytes(iodata).decode("latin-1")
    if isinstance(iodata, list):
        return "".join(chr(e) if isinstance(e, int) else IODataToStr(e) for e in iodata)
    raise ErlTermError(f"badarg, expected iodata but found {type(iodata)!r} ({iodata!r})")


def StrToList(s: str) -> list[int]:
    """The character codes of S.

    Example::

        assert StrToList("hi") == [104, 105]
    """
    return [ord(c) for c in s]


# -- atoms -------------------------------------------------------------------------------------

_atom_cache: dict[int, str] = {}


class ErlAtom(Atom):
    """An Erlang atom: a ``str`` (through :class:`erlnode.Atom`) with py_interface's
    ``atomText`` attribute. Unlike py_interface's, it compares equal to a ``str`` of the same
    text, as every erlnode atom does.

    ``cache`` is py_interface's atom-cache slot: ``ErlAtom(text, n)`` remembers TEXT under N and
    ``ErlAtom(None, n)`` recalls it.

    Example::

        ok = ErlAtom("ok")
        assert ok.atomText == "ok" and ok == "ok" and repr(ok) == "<erl-atom: 'ok'>"
    """

    __slots__ = ()

    def __new__(cls, atomText: str | bytes | None, cache: int = -1) -> Self:
        if isinstance(atomText, bytes):
            atomText = atomText.decode("latin-1")
        if atomText is None:
            if cache not in _atom_cache:
                raise ErlTermError(f"No such cached atom: {cache!r}")
            atomText = _atom_cache[cache]
        elif cache != -1:
            _atom_cache[cache] = atomText
        return super().__new__(cls, atomText)

    @property
    def atomText(self) -> str:
        """The atom's text.

        Example::

            assert ErlAtom("ok").atomText == "ok"
        """
        return str(self)

    def equals(self, other: object) -> bool:
        """True when OTHER is an atom with the same text.

        Example::

            assert ErlAtom("ok").equals(erlnode.Atom("ok")) and not ErlAtom("ok").equals("ok")
        """
        return isinstance(other, Atom) and str(self) == str(other)

    def __repr__(self) -> str:
        return f"<erl-atom: {str(self)!r}>"


def _atom(text: Any) -> ErlAtom:
    return text if isinstance(text, ErlAtom) else ErlAtom(str(text))


def IsErlAtom(term: Any) -> bool:
    """True for an atom (an :class:`ErlAtom` or any other :class:`erlnode.Atom`).

    Example::

        assert IsErlAtom(ErlAtom("x")) and not IsErlAtom("x")
    """
    return isinstance(term, Atom)


# -- pids, ports, references -------------------------------------------------------------------


class _Identifier:
    """What pids, ports and references share: fields compared with ``equals`` and ``==``, a
    hash that matches the erlnode value's (they compare equal to it), and the conversion."""

    __slots__ = ()
    _marker: HMarker

    def _fields(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def ToErlnode(self) -> Any:
        """The equivalent erlnode value (what is sent)."""
        raise NotImplementedError

    def equals(self, other: object) -> bool:
        """True when OTHER is the same kind of identifier with the same fields."""
        if type(other) is type(self):
            return self._fields() == other._fields()
        return False

    def __eq__(self, other: object) -> bool:
        if type(other) is type(self):
            return self.equals(other)
        if isinstance(other, (erlnode.Pid, erlnode.Port, erlnode.Reference)):
            return bool(self.ToErlnode() == other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self.ToErlnode())


class ErlPid(_Identifier):
    """An Erlang process id: ``node`` (an :class:`ErlAtom`), ``id``, ``serial``, ``creation``.

    Equal to the :class:`erlnode.Pid` with the same fields.

    Example::

        pid = ErlPid(ErlAtom("py@host"), 1, 0, 3)
        assert pid.node.atomText == "py@host" and pid == erlnode.Pid("py@host", 1, 0, 3)
    """

    __slots__ = ("node", "id", "serial", "creation")
    _marker = hPid

    def __init__(self, node: str, id: int, serial: int, creation: int) -> None:
        self.node = _atom(node)
        self.id = id
        self.serial = serial
        self.creation = creation

    def _fields(self) -> tuple[Any, ...]:
        return (str(self.node), self.id, self.serial, self.creation)

    def ToErlnode(self) -> erlnode.Pid:
        """The :class:`erlnode.Pid`.

        Example::

            assert ErlPid("a@b", 1, 0, 1).ToErlnode() == erlnode.Pid("a@b", 1, 0, 1)
        """
        return erlnode.Pid(str(self.node), self.id, self.serial, self.creation)

    def __repr__(self) -> str:
        return (
            f"<erl-pid: node={self.node!r}, id={self.id}, serial={self.serial}, "
            f"creation={self.creation}>"
        )


class ErlPort(_Identifier):
    """An Erlang port: ``node`` (an :class:`ErlAtom`), ``id``, ``creation``.

    Example::

        port = ErlPort("erl@host", 5, 1)
        assert port == erlnode.Port("erl@host", 5, 1)
    """

    __slots__ = ("node", "id", "creation")
    _marker = hPort

    def __init__(self, node: str, id: int, creation: int) -> None:
        self.node = _atom(node)
        self.id = id
        self.creation = creation

    def _fields(self) -> tuple[Any, ...]:
        return (str(self.node), self.id, self.creation)

    def ToErlnode(self) -> erlnode.Port:
        """The :class:`erlnode.Port`.

        Example::

            assert ErlPort("a@b", 1, 1).ToErlnode() == erlnode.Port("a@b", 1, 1)
        """
        return erlnode.Port(str(self.node), self.id, self.creation)

    def __repr__(self) -> str:
        return f"<erl-port: node={self.node!r}, id={self.id}, creation={self.creation}>"


class ErlRef(_Identifier):
    """An Erlang reference: ``node`` (an :class:`ErlAtom`), ``id`` (an int, or the list of the
    reference's words, as references arrive), ``creation``.

    Example::

        ref = ErlRef("erl@host", [1, 2, 3], 1)
        assert ref == erlnode.Reference("erl@host", [1, 2, 3], 1)
    """

    __slots__ = ("node", "id", "creation")
    _marker = hRef

    def __init__(self, node: str, id: int | list[int], creation: int) -> None:
        self.node = _atom(node)
        self.id = id
        self.creation = creation

    def _ids(self) -> list[int]:
        return [self.id] if isinstance(self.id, int) else list(self.id)

    def _fields(self) -> tuple[Any, ...]:
        return (str(self.node), tuple(self._ids()), self.creation)

    def ToErlnode(self) -> erlnode.Reference:
        """The :class:`erlnode.Reference`.

        Example::

            assert ErlRef("a@b", 7, 1).ToErlnode().ids == (7,)
        """
        return erlnode.Reference(str(self.node), self._ids(), self.creation)

    def __repr__(self) -> str:
        return f"<erl-ref: node={self.node!r}, id={self.id!r}, creation={self.creation}>"


def IsErlPid(term: Any) -> bool:
    """True for a pid (an :class:`ErlPid` or an :class:`erlnode.Pid`).

    Example::

        assert IsErlPid(ErlPid("py@host", 1, 0, 1))
    """
    return isinstance(term, (ErlPid, erlnode.Pid))


def IsErlPort(term: Any) -> bool:
    """True for a port (an :class:`ErlPort` or an :class:`erlnode.Port`).

    Example::

        assert IsErlPort(ErlPort("py@host", 1, 1))
    """
    return isinstance(term, (ErlPort, erlnode.Port))


def IsErlRef(term: Any) -> bool:
    """True for a reference (an :class:`ErlRef` or an :class:`erlnode.Reference`).

    Example::

        assert IsErlRef(ErlRef("py@host", [1, 2, 3], 1))
    """
    return isinstance(term, (ErlRef, erlnode.Reference))


# -- funs --------------------------------------------------------------------------------------

_NEW_FUN_EXT = 112


def _body(term: Any) -> bytes:
    """The external format of TERM without the version byte."""
    return bytes(erlnode.encode(ToErlnode(term))[1:])


class ErlFun:
    """An Erlang closure, with py_interface's fields: ``pid``, ``module``, ``index``, ``uniq``
    (16 bytes), ``oldIndex``, ``oldUniq``, ``arity``, ``freeVars``.

    Received funs carry their exact encoding and are sent back unchanged; a fun built here is
    encoded as ``NEW_FUN_EXT`` (OTP no longer accepts the older ``FUN_EXT``, so ``uniq`` must
    be the 16-byte MD5).

    Example::

        pid = ErlPid("py@host", 1, 0, 1)
        fun = ErlFun(pid, ErlAtom("m"), 0, bytes(16), 0, 0, 1, [42])
        assert IsErlFun(fun) and BinaryToTerm(TermToBinary(fun)).freeVars == [42]
    """

    def __init__(
        self,
        pid: Any,
        module: Any,
        index: int,
        uniq: Any,
        oldIndex: int,
        oldUniq: int,
        arity: int,
        freeVars: list[Any],
    ) -> None:
        self.pid = pid
        self.module = _atom(module)
        self.index = index
        self.uniq = uniq
        self.oldIndex = oldIndex
        self.oldUniq = oldUniq
        self.arity = arity
        self.freeVars = freeVars
        # The decoded fun this one came from, sent back as it arrived.
        self._native: erlnode.Fun | None = None

    @classmethod
    def _FromErlnode(cls, fun: erlnode.Fun) -> ErlFun:
        data = bytes(erlnode.encode(fun))
        if data[1] != _NEW_FUN_EXT:
            raise ErlTermError(f"unexpected fun encoding (tag {data[1]})")
        arity = data[6]
        uniq = data[7:23]
        index = int.from_bytes(data[23:27], "big")
        numFree = int.from_bytes(data[27:31], "big")
        # Module, OldIndex, OldUniq, Pid and the free variables are consecutive terms: read
        # them as the elements of one list.
        count = (4 + numFree).to_bytes(4, "big")
        fields = erlnode.decode(b"\x83l" + count + data[31:] + b"j")
        module, oldIndex, oldUniq, pid, *freeVars = FromErlnode(fields)
        result = cls(pid, module, index, uniq, oldIndex, oldUniq, arity, freeVars)
        result._native = fun
        return result

    def ToErlnode(self) -> erlnode.Fun:
        """The :class:`erlnode.Fun` (what is sent).

        Example::

            fun = ErlFun(ErlPid("a@b", 1, 0, 1), "m", 0, bytes(16), 0, 0, 0, [])
            assert isinstance(fun.ToErlnode(), erlnode.Fun)
        """
        if self._native is not None:
            return self._native
        if not isinstance(self.uniq, (bytes, bytearray)) or len(self.uniq) != 16:
            raise ErlTermError("a fun needs a 16-byte uniq (OTP only accepts NEW_FUN_EXT)")
        rest = b"".join(
            [
                bytes([self.arity]),
                bytes(self.uniq),
                self.index.to_bytes(4, "big"),
                len(self.freeVars).to_bytes(4, "big"),
                _body(self.module),
                _body(self.oldIndex),
                _body(self.oldUniq),
                _body(self.pid),
                *(_body(v) for v in self.freeVars),
            ]
        )
        size = (4 + len(rest)).to_bytes(4, "big")
        fun: erlnode.Fun = erlnode.decode(bytes([131, _NEW_FUN_EXT]) + size + rest)
        return fun

    def _fields(self) -> tuple[Any, ...]:
        return (self.pid, str(self.module), self.index, bytes(self.uniq), self.oldIndex,
                self.oldUniq, self.arity, self.freeVars)  # fmt: skip

    def equals(self, other: object) -> bool:
        """True when OTHER is a fun with the same fields.

        Example::

            pid = ErlPid("a@b", 1, 0, 1)
            assert ErlFun(pid, "m", 0, bytes(16), 0, 0, 0, []).equals(
                ErlFun(pid, "m", 0, bytes(16), 0, 0, 0, [])
            )
        """
        return isinstance(other, ErlFun) and self._fields() == other._fields()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ErlFun):
            return self.equals(other)
        if isinstance(other, erlnode.Fun):
            return bool(self.ToErlnode() == other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash((hFun, self.pid, str(self.module), self.index, bytes(self.uniq)))

    def __repr__(self) -> str:
        return (
            f"<erl-fun: pid={self.pid!r}, module={self.module!r}, index={self.index}, "
            f"uniq={self.uniq!r}, oldIndex={self.oldIndex}, oldUniq={self.oldUniq}, "
            f"arity={self.arity}, freeVars={self.freeVars!r}>"
        )


def IsErlFun(term: Any) -> bool:
    """True for a closure (an :class:`ErlFun` or an :class:`erlnode.Fun`).

    Example::

        assert not IsErlFun(ErlFunExport("lists", "map", 2))
    """
    return isinstance(term, (ErlFun, erlnode.Fun))


class ErlFunExport:
    """An external fun ``fun Module:Function/Arity``: ``module`` and ``function`` (atoms),
    ``arity``.

    Example::

        f = ErlFunExport("lists", "reverse", 1)
        assert f.module.atomText == "lists" and f == erlnode.Export("lists", "reverse", 1)
    """

    def __init__(self, module: Any, function: Any, arity: int) -> None:
        self.module = _atom(module)
        self.function = _atom(function)
        self.arity = arity

    def ToErlnode(self) -> erlnode.Export:
        """The :class:`erlnode.Export`.

        Example::

            assert ErlFunExport("m", "f", 1).ToErlnode() == erlnode.Export("m", "f", 1)
        """
        return erlnode.Export(str(self.module), str(self.function), self.arity)

    def equals(self, other: object) -> bool:
        """True when OTHER is the same ``fun M:F/A``.

        Example::

            assert ErlFunExport("m", "f", 1).equals(ErlFunExport("m", "f", 1))
        """
        return isinstance(other, ErlFunExport) and (
            (self.module, self.function, self.arity) == (other.module, other.function, other.arity)
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ErlFunExport):
            return self.equals(other)
        if isinstance(other, erlnode.Export):
            return bool(self.ToErlnode() == other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self.ToErlnode())

    def __repr__(self) -> str:
        return (
            f"<erl-export: module={self.module!r}, function={self.function!r}, arity={self.arity}>"
        )


def IsErlFunExport(term: Any) -> bool:
    """True for an external fun (an :class:`ErlFunExport` or an :class:`erlnode.Export`).

    Example::

        assert IsErlFunExport(ErlFunExport("lists", "map", 2))
    """
    return isinstance(term, (ErlFunExport, erlnode.Export))


# -- lists, binaries ---------------------------------------------------------------------------


class ErlImproperList(erlnode.ImproperList):
    """The list ``[ELEMENTS... | TAIL]``: an :class:`erlnode.ImproperList` that indexes like
    py_interface's, the tail coming after the elements unless USETAIL is false.

    Example::

        lst = ErlImproperList([1, 2], ErlAtom("t"))
        assert lst[0] == 1 and lst[2] == "t" and lst.tail == "t"
    """

    __slots__ = ("iterOnTail",)
    iterOnTail: int

    def __init__(self, elements: Iterable[Any], tail: Any, useTail: int = 1) -> None:
        super().__init__(elements, tail)
        object.__setattr__(self, "iterOnTail", useTail)

    def equals(self, other: object) -> bool:
        """True when OTHER is an improper list with equal elements and tail.

        Example::

            assert ErlImproperList([1], 2).equals(erlnode.ImproperList([1], 2))
        """
        return (
            isinstance(other, erlnode.ImproperList)
            and self.elements == other.elements
            and self.tail == other.tail
        )

    def __getitem__(self, key: int) -> Any:
        if key == len(self.elements) and self.iterOnTail:
            return self.tail
        return self.elements[key]

    def __iter__(self) -> Iterator[Any]:
        yield from self.elements
        if self.iterOnTail:
            yield self.tail

    def __repr__(self) -> str:
        return f"<erl-improper-list: head={self.elements!r}, tail={self.tail!r}>"


def IsErlImproperList(term: Any) -> bool:
    """True for an improper list.

    Example::

        assert IsErlImproperList(ErlImproperList([1], 2))
    """
    return isinstance(term, erlnode.ImproperList)


class ErlBitBinary(erlnode.BitBinary):
    """A bitstring: CONTENTS, of which the last byte holds BITS (1..8) bits, counted from its
    most significant bit. An :class:`erlnode.BitBinary` with py_interface's ``contents``.

    Example::

        b = ErlBitBinary(b"\\xa0", 3)    # <<5:3>>
        assert b.contents == b.data == b"\\xa0" and b.bits == 3
    """

    __slots__ = ()

    def __init__(self, contents: bytes, bits: int) -> None:
        super().__init__(contents, bits)

    @property
    def contents(self) -> bytes:
        """The bytes; only the ``bits`` high bits of the last one count.

        Example::

            assert ErlBitBinary(b"\\xa0", 3).contents == b"\\xa0"
        """
        return self.data

    def equals(self, other: object) -> bool:
        """True when OTHER is a bitstring with the same bits.

        Example::

            assert ErlBitBinary(b"\\xa0", 3).equals(ErlBitBinary(b"\\xa1", 3))
        """
        return isinstance(other, erlnode.BitBinary) and self.eqContents(other)

    def eqContents(self, other: erlnode.BitBinary) -> bool:
        """True when OTHER holds the same bits (the unused low bits of the last byte aside).

        Example::

            assert ErlBitBinary(b"\\xa0", 3).eqContents(erlnode.BitBinary(b"\\xbf", 3))
        """
        if self.bits != other.bits or self.data[:-1] != other.data[:-1]:
            return False
        mask = (0xFF << (8 - self.bits)) & 0xFF
        return (self.data[-1] & mask) == (other.data[-1] & mask)

    def __repr__(self) -> str:
        return f"<erl-bit-binary: size={len(self.data) - 1} octets + {self.bits} bits>"


def IsErlBitBinary(term: Any) -> bool:
    """True for a bitstring that is not a whole number of bytes.

    Example::

        assert IsErlBitBinary(ErlBitBinary(b"\\x80", 1)) and not IsErlBitBinary(b"x")
    """
    return isinstance(term, erlnode.BitBinary)


# -- maps --------------------------------------------------------------------------------------


class ErlMapKey:
    """A map key Python cannot hash as it is (a list, a map) or must keep apart from an
    equal-comparing one (a float from an int): wrapped, it compares and hashes by its exact
    Erlang encoding.

    Example::

        assert MakeErlMapKey(1.0) != MakeErlMapKey(1)
        assert UnmakeErlMapKey(MakeErlMapKey([1, 2])) == [1, 2]
    """

    def __init__(self, elem: Any) -> None:
        self.e = elem
        try:
            self._etf = _body(elem)
        except (TypeError, ValueError):
            self._etf = repr(elem).encode()
        self.h = hash((hMapKey, self._etf))

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErlMapKey) and self._etf == other._etf

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __repr__(self) -> str:
        return f"<erlmapkey:{self.e!r}>"

    def GetElem(self) -> Any:
        """The wrapped key.

        Example::

            assert ErlMapKey([1]).GetElem() == [1]
        """
        return self.e


def MakeErlMapKey(term: Any) -> Any:
    """TERM as a dict key: floats and unhashable terms wrapped in :class:`ErlMapKey`.

    Example::

        assert MakeErlMapKey("a") == "a" and IsErlMapKey(MakeErlMapKey([1]))
    """
    if type(term) is float:
        return ErlMapKey(term)
    try:
        hash(term)
    except TypeError:
        return ErlMapKey(term)
    return term


def UnmakeErlMapKey(k: Any) -> Any:
    """The key K stands for (unwraps an :class:`ErlMapKey`).

    Example::

        assert UnmakeErlMapKey(MakeErlMapKey([1])) == [1]
    """
    return k.GetElem() if isinstance(k, ErlMapKey) else k


def IsErlMapKey(x: Any) -> bool:
    """True for an :class:`ErlMapKey`.

    Example::

        assert not IsErlMapKey("a")
    """
    return isinstance(x, ErlMapKey)


def _dict_key(key: Any) -> Any:
    """KEY as ErlMap stores it: lists and maps frozen (erlnode's hashable forms, which encode
    back as lists and maps)."""
    key = UnmakeErlMapKey(key)
    if isinstance(key, list):
        return erlnode.FrozenList(key)
    if isinstance(key, dict):
        return erlnode.FrozenMap(key)
    return key


class ErlMap(builtins.dict[Any, Any]):
    """An Erlang map: a ``dict`` whose keys may also be lists and maps (stored frozen).

    Built from DICT's items, then the keyword arguments.

    Example::

        m = ErlMap({"a": 1}, b=2)
        m[[1, 2]] = "list key"
        assert m["b"] == 2 and m[[1, 2]] == "list key"
    """

    def __init__(self, dict: Mapping[Any, Any] | None = None, **kwargs: Any) -> None:
        super().__init__()
        if dict is not None:
            self.update(dict)
        self.update(kwargs)

    def __getitem__(self, key: Any) -> Any:
        return super().__getitem__(_dict_key(key))

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(_dict_key(key), value)

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(_dict_key(key))

    def __contains__(self, key: object) -> bool:
        return super().__contains__(_dict_key(key))

    def get(self, key: Any, default: Any = None) -> Any:
        """The value under KEY (which may be a list or a map), or DEFAULT.

        Example::

            assert ErlMap({(1,): "t"}).get([1]) is None
        """
        return super().get(_dict_key(key), default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Adds the items of a mapping or of ``(key, value)`` pairs, then the keyword arguments.

        Example::

            m = ErlMap()
            m.update([([1, 2], "list key")], b=2)
            assert m[[1, 2]] == "list key"
        """
        if len(args) > 1:
            raise TypeError(f"update expected at most 1 argument, got {len(args)}")
        for items in (*args, kwargs):
            pairs = items.items() if isinstance(items, Mapping) else items
            for key, value in pairs:
                self[key] = value

    def keys(self) -> list[Any]:  # type: ignore[override]
        """The keys, as a list (as in py_interface).

        Example::

            assert ErlMap({"a": 1}).keys() == ["a"]
        """
        return list(super().keys())

    def __repr__(self) -> str:
        return f"ErlMap({builtins.dict(self)!r})"


def IsErlMap(term: Any) -> bool:
    """True for a map (an :class:`ErlMap` or any other ``Mapping``).

    Example::

        assert IsErlMap(ErlMap()) and IsErlMap({})
    """
    return isinstance(term, Mapping)


# -- the plain types ---------------------------------------------------------------------------


def ErlNumber(number: float) -> int | float:
    """A number is a Python ``int`` or ``float``: NUMBER itself.

    Example::

        assert ErlNumber(7) == 7
    """
    return number


def ErlString(s: str | bytes) -> str:
    """An Erlang string is a ``str`` (sent as a string, received as one).

    Example::

        assert ErlString(b"abc") == "abc"
    """
    return s.decode("latin-1") if isinstance(s, bytes) else s


def ErlList(elements: Iterable[Any]) -> list[Any]:
    """A list is a Python ``list``.

    Example::

        assert ErlList((1, 2)) == [1, 2]
    """
    return list(elements)


def ErlTuple(elementsAsList: Iterable[Any]) -> tuple[Any, ...]:
    """A tuple is a Python ``tuple``.

    Example::

        assert ErlTuple([1, 2]) == (1, 2)
    """
    return tuple(elementsAsList)


def ErlBinary(contents: bytes | bytearray | memoryview | str) -> bytes:
    """A binary is ``bytes``; a ``str`` is taken as latin-1, as py_interface's strings were.

    Example::

        assert ErlBinary("é") == b"\\xe9"
    """
    if isinstance(contents, str):
        return contents.encode("latin-1")
    return bytes(contents)


def IsErlBinary(term: Any) -> bool:
    """True for a binary (``bytes``).

    Example::

        assert IsErlBinary(b"") and not IsErlBinary("")
    """
    return isinstance(term, bytes)


# -- the external term format ------------------------------------------------------------------

MAGIC_VERSION = 131
MAGIC_STRING = 107
MAGIC_NIL = 106
MAGIC_LIST = 108
MAGIC_SMALL_TUPLE = 104
MAGIC_LARGE_TUPLE = 105
MAGIC_LARGE_BIG = 111
MAGIC_SMALL_BIG = 110
MAGIC_FLOAT = 99
MAGIC_SMALL_INTEGER = 97
MAGIC_INTEGER = 98
MAGIC_ATOM = 100
MAGIC_SMALL_ATOM = 115
MAGIC_ATOM_UTF8 = 118
MAGIC_SMALL_ATOM_UTF8 = 119
MAGIC_NEW_REFERENCE = 114
MAGIC_REFERENCE = 101
MAGIC_PORT = 102
MAGIC_PID = 103
MAGIC_BINARY = 109
MAGIC_BIT_BINARY = 77
MAGIC_FUN = 117
MAGIC_NEW_FUN = 112
MAGIC_NEW_CACHE = 78
MAGIC_CACHED_ATOM = 67
MAGIC_MAP = 116
MAGIC_EXPORT = 113
MAGIC_NEW_FLOAT = 70


def TermToBinary(term: Any, flags: int = 0xFFFFFFFF) -> bytes:
    """The external term format of TERM (with the leading version byte 131).

    FLAGS chose encodings for old peers in py_interface; erlnode always writes the current
    ones.

    Example::

        data = TermToBinary((ErlAtom("ok"), 1))
        assert data == bytes([131, 104, 2, 119, 2]) + b"ok" + bytes([97, 1])
    """
    try:
        return bytes(erlnode.encode(ToErlnode(term)))
    except erlnode.EncodeError as e:
        raise ErlTermError(f"Can't pack value of type {type(term)!r}: {e}") from e


def BinaryToTerm(binary: bytes) -> Any:
    """The term in BINARY (external term format), in py_interface's types.

    Example::

        assert BinaryToTerm(TermToBinary([1, "a"])) == [1, "a"]
    """
    try:
        return FromErlnode(erlnode.decode(binary))
    except erlnode.DecodeError as e:
        raise ErlTermError(f"BinaryToTerm: {e}") from e


def BinariesToTerms(binary: bytes) -> list[Any]:
    """The terms of several external-format binaries laid end to end.

    Example::

        assert BinariesToTerms(TermToBinary(1) + TermToBinary(2)) == [1, 2]
    """
    terms, remaining = BufToTerm(binary)
    if remaining:
        raise ErlTermError(f"BinariesToTerms: Extraneous data in binary: {remaining!r}")
    return terms


def BufToTerm(data: bytes) -> tuple[list[Any], bytes]:
    """``(terms, rest)``: the whole terms at the start of DATA, and what follows them (an
    incomplete term, or data that does not start with the version byte).

    Example::

        whole = TermToBinary("abc")
        assert BufToTerm(whole + whole[:3]) == (["abc"], whole[:3])
    """
    terms = []
    data = bytes(data)
    while data and data[0] == MAGIC_VERSION:
        try:
            end = _TermEnd(data, 1)
        except IndexError:  # the term is not all there yet
            break
        terms.append(BinaryToTerm(data[:end]))
        data = data[end:]
    return terms, data


def _TermEnd(data: bytes, at: int) -> int:
    """Where the term starting at AT in DATA ends. IndexError when DATA ends before it."""

    def u(n: int, at: int) -> int:
        if at + n > len(data):
            raise IndexError("incomplete term")
        return int.from_bytes(data[at : at + n], "big")

    def seq(count: int, at: int) -> int:
        for _ in range(count):
            at = _TermEnd(data, at)
        return at

    tag = u(1, at)
    at += 1
    fixed = {97: 1, 98: 4, 99: 31, 70: 8, 106: 0, 82: 1}
    if tag in fixed:
        end = at + fixed[tag]
    elif tag in (100, 118, 107):  # atoms with a 2-byte length, strings
        end = at + 2 + u(2, at)
    elif tag in (115, 119):  # small atoms
        end = at + 1 + u(1, at)
    elif tag == 109:  # binary
        end = at + 4 + u(4, at)
    elif tag == 77:  # bitstring
        end = at + 5 + u(4, at)
    elif tag == 110:  # small big
        end = at + 2 + u(1, at)
    elif tag == 111:  # large big
        end = at + 5 + u(4, at)
    elif tag == 104:
        end = seq(u(1, at), at + 1)
    elif tag == 105:
        end = seq(u(4, at), at + 4)
    elif tag == 108:  # list: elements and tail
        end = seq(u(4, at) + 1, at + 4)
    elif tag == 116:  # map: key/value pairs
        end = seq(2 * u(4, at), at + 4)
    elif tag in (101, 102, 103, 88, 89, 120):  # node, then fixed fields
        end = _TermEnd(data, at) + {101: 5, 102: 5, 103: 9, 88: 12, 89: 8, 120: 12}[tag]
    elif tag in (114, 90):  # new references: id count, node, creation, ids
        words = u(2, at)
        end = _TermEnd(data, at + 2) + (1 if tag == 114 else 4) + 4 * words
    elif tag == 112:  # new fun: its size counts itself
        end = at + u(4, at)
    elif tag == 117:  # old fun: free var count, pid, module, index, uniq, free vars
        end = seq(4 + u(4, at), at + 4)
    elif tag == 113:  # export: module, function, arity
        end = seq(3, at)
    elif tag == 80:  # compressed: the zlib stream ends where it says
        inflater = zlib.decompressobj()
        inflater.decompress(data[at + 4 :])
        if not inflater.eof:
            raise IndexError("incomplete term")
        end = len(data) - len(inflater.unused_data)
    else:
        raise ErlTermError(f"bad tag {tag} in term")
    if end > len(data):
        raise IndexError("incomplete term")
    return end


# -- between erlnode's terms and py_interface's ------------------------------------------------


def FromErlnode(term: Any) -> Any:
    """TERM as decoded by erlnode, in py_interface's types: atoms :class:`ErlAtom`, pids
    :class:`ErlPid`, maps :class:`ErlMap`..., through tuples, lists and maps.

    Example::

        msg = FromErlnode((erlnode.Atom("ok"), erlnode.Pid("a@b", 1, 0, 1)))
        assert msg[0].atomText == "ok" and msg[1].node.atomText == "a@b"
    """
    kind = type(term)
    if kind is tuple:
        return tuple(FromErlnode(e) for e in term)
    if kind is list:
        return [FromErlnode(e) for e in term]
    if kind in (str, bytes, int, float, bool):
        return term
    if isinstance(term, Atom):
        return term if isinstance(term, ErlAtom) else ErlAtom(term)
    if isinstance(term, dict):
        result = ErlMap()
        for k, v in term.items():
            result[FromErlnode(k)] = FromErlnode(v)
        return result
    if kind is erlnode.Pid:
        return ErlPid(term.node, term.id, term.serial, term.creation)
    if kind is erlnode.Port:
        return ErlPort(term.node, term.id, term.creation)
    if kind is erlnode.Reference:
        return ErlRef(term.node, list(term.ids), term.creation)
    if kind is erlnode.Export:
        return ErlFunExport(term.module, term.function, term.arity)
    if kind is erlnode.Fun:
        return ErlFun._FromErlnode(term)
    if kind is erlnode.ImproperList:
        return ErlImproperList([FromErlnode(e) for e in term.elements], FromErlnode(term.tail))
    if kind is erlnode.BitBinary:
        return ErlBitBinary(term.data, term.bits)
    if kind is erlnode.FrozenList:
        return erlnode.FrozenList(FromErlnode(e) for e in term)
    return term


def ToErlnode(term: Any) -> Any:
    """TERM in the types erlnode sends: the inverse of :func:`FromErlnode` (py_interface's
    classes replaced by erlnode's, through tuples, lists, maps and improper lists).

    Example::

        assert ToErlnode((ErlPid("a@b", 1, 0, 1),)) == (erlnode.Pid("a@b", 1, 0, 1),)
    """
    kind = type(term)
    if kind in (str, bytes, int, float, bool, ErlAtom):
        return term
    if kind is tuple:
        return tuple(ToErlnode(e) for e in term)
    if kind is list:
        return [ToErlnode(e) for e in term]
    if isinstance(term, (_Identifier, ErlFun, ErlFunExport)):
        return term.ToErlnode()
    if isinstance(term, dict):
        return {ToErlnode(UnmakeErlMapKey(k)): ToErlnode(v) for k, v in term.items()}
    if isinstance(term, ErlImproperList):
        return erlnode.ImproperList([ToErlnode(e) for e in term.elements], ToErlnode(term.tail))
    if isinstance(term, ErlMapKey):
        return ToErlnode(term.e)
    if isinstance(term, erlnode.FrozenList):
        return erlnode.FrozenList(ToErlnode(e) for e in term)
    return term
