"""Python-side term types of erlnode (the Rust codec imports these by name).

Pid, Port, Reference, Export and Fun live in Rust (``erlnode._erlnode``); the types here are
plain Python because Python code builds and inspects them most.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, overload


class Atom(str):
    """An Erlang atom. A ``str`` subclass: ``Atom("ok") == "ok"`` and it hashes like the str.

    A plain ``str`` is an Erlang string (a list of character codes); wrap text in ``Atom`` to
    send an atom. Atoms received from Erlang are ``Atom`` objects.

    >>> format_term([Atom("ok"), "ok"])
    '[ok,"ok"]'
    >>> decode(encode(Atom("ok")))
    Atom('ok')
    >>> Atom("ok") == "ok"
    True
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


def _freeze(value: Any) -> Any:
    """``value`` with every list and dict inside it made hashable (FrozenList, FrozenMap)."""
    kind = type(value)
    if kind is list:
        return FrozenList(value)
    if kind is dict:
        return FrozenMap(value)
    if kind is tuple:
        return tuple(_freeze(v) for v in value)
    return value


class FrozenList(Sequence[Any]):
    """A hashable, immutable Erlang list: what a list decodes to inside a map key.

    Encodes back as a list. Equal to a ``list`` or ``FrozenList`` with equal items, never to a
    tuple (an Erlang tuple is a different term). Lists and dicts inside are frozen too.

    >>> positions = parse_term("#{[1, 2] => start}")
    >>> positions
    {FrozenList([1, 2]): Atom('start')}
    >>> positions[FrozenList([1, 2])]
    Atom('start')
    >>> FrozenList([1, 2]) == [1, 2]
    True
    """

    __slots__ = ("_items",)
    _items: tuple[Any, ...]

    def __init__(self, items: Iterable[Any] = ()) -> None:
        object.__setattr__(self, "_items", tuple(_freeze(v) for v in items))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenList is immutable")

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> FrozenList: ...
    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return FrozenList(self._items[index])
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenList):
            return self._items == other._items
        if isinstance(other, list):
            return list(self._items) == other
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash((FrozenList, self._items))

    def __repr__(self) -> str:
        return f"FrozenList({list(self._items)!r})"


class FrozenMap(Mapping[Any, Any]):
    """A hashable, immutable Erlang map: what a map decodes to inside a map key.

    Encodes back as a map. Equal to a ``dict`` or ``FrozenMap`` with equal items. Lists and
    dicts inside are frozen too.

    >>> parse_term("#{#{x => 1} => point}")
    {FrozenMap({Atom('x'): 1}): Atom('point')}
    >>> FrozenMap({Atom("x"): 1}) == {Atom("x"): 1}
    True
    """

    __slots__ = ("_dict", "_hash")
    _dict: dict[Any, Any]
    _hash: int | None

    def __init__(self, mapping: Any = ()) -> None:
        items = dict(mapping).items()
        object.__setattr__(self, "_dict", {_freeze(k): _freeze(v) for k, v in items})
        object.__setattr__(self, "_hash", None)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMap is immutable")

    def __getitem__(self, key: Any) -> Any:
        return self._dict[key]

    def __len__(self) -> int:
        return len(self._dict)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._dict)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._dict == other._dict
        if isinstance(other, dict):
            return self._dict == other
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        if self._hash is None:
            object.__setattr__(self, "_hash", hash(frozenset(self._dict.items())))
        return self._hash  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"FrozenMap({self._dict!r})"


class ImproperList:
    """A list whose tail is not ``[]``: ``[1, 2 | tail]`` is ``ImproperList([1, 2], tail)``.

    ``elements`` holds the elements, ``tail`` the final tail.

    >>> cell = parse_term("[1, 2 | more]")
    >>> cell
    ImproperList([1, 2], Atom('more'))
    >>> cell.elements, cell.tail
    ([1, 2], Atom('more'))
    >>> format_term(ImproperList([Atom("a")], Atom("b")))
    '[a|b]'
    """

    __slots__ = ("elements", "tail")
    elements: list[Any]
    tail: Any

    def __init__(self, elements: Iterable[Any], tail: Any) -> None:
        items = list(elements)
        if not items:
            raise ValueError("an improper list needs at least one element")
        if isinstance(tail, (list, FrozenList)):
            raise TypeError("the tail of an improper list cannot be a list")
        object.__setattr__(self, "elements", items)
        object.__setattr__(self, "tail", tail)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ImproperList is immutable")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ImproperList):
            return self.elements == other.elements and self.tail == other.tail
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash((ImproperList, tuple(self.elements), self.tail))

    def __repr__(self) -> str:
        return f"ImproperList({self.elements!r}, {self.tail!r})"


class BitBinary:
    """A bitstring whose size is not a whole number of bytes.

    ``data`` holds the bytes; only the ``bits`` (1..8) high bits of the last byte count.
    ``<<1:3>>`` is ``BitBinary(b"\\x20", 3)``.

    >>> parse_term("<<1:3>>") == BitBinary(bytes([0b00100000]), 3)
    True
    >>> format_term(BitBinary(bytes([0xF0]), 4))  # the high 4 bits of 0xF0
    '<<15:4>>'
    """

    __slots__ = ("bits", "data")
    data: bytes
    bits: int

    def __init__(self, data: bytes, bits: int) -> None:
        data = bytes(data)
        if not data:
            raise ValueError("a BitBinary needs at least one byte")
        if not 1 <= bits <= 8:
            raise ValueError("bits (in the last byte) must be 1 to 8")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "bits", bits)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("BitBinary is immutable")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BitBinary):
            return self.data == other.data and self.bits == other.bits
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash((BitBinary, self.data, self.bits))

    def __repr__(self) -> str:
        return f"BitBinary({self.data!r}, {self.bits})"


class ExactKey:
    """A map key that Python would confuse with another key of the same map.

    Erlang tells ``1`` from ``1.0``, ``true`` from ``1``, ``0.0`` from ``-0.0`` and the atom
    ``a`` from the string ``"a"``; Python does not. When a decoded map has such keys, the first
    stays as it is and each later one is wrapped in ``ExactKey``, which compares and hashes by
    the key's exact encoding. It encodes back as the wrapped value, so the map round-trips.

    >>> kinds = parse_term("#{1 => integer, 1.0 => float}")
    >>> kinds
    {1: Atom('integer'), ExactKey(1.0): Atom('float')}
    >>> kinds[ExactKey(1.0)]
    Atom('float')
    >>> format_term(kinds)
    '#{1 => integer,1.0 => float}'
    """

    __slots__ = ("_etf", "value")
    value: Any
    _etf: bytes

    def __init__(self, value: Any) -> None:
        from ._erlnode import encode

        object.__setattr__(self, "value", value)
        object.__setattr__(self, "_etf", encode(value))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ExactKey is immutable")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ExactKey):
            return self._etf == other._etf
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash((ExactKey, self._etf))

    def __repr__(self) -> str:
        return f"ExactKey({self.value!r})"
