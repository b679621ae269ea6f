"""erlnode: make a Python program a node of an Erlang cluster.

Terms map to Python values as described in docs/types.md; ``encode`` and ``decode`` convert
between them and Erlang's external term format (what ``term_to_binary`` produces).
"""

from ._erlnode import (
    DEFAULT_MAX_INFLATED,
    DecodeError,
    EncodeError,
    EpmdError,
    Export,
    Fun,
    NodeClosedError,
    Pid,
    Port,
    Reference,
    decode,
    encode,
)
from ._node import Mailbox, Node
from ._terms import Atom, BitBinary, ExactKey, FrozenList, FrozenMap, ImproperList

__all__ = [
    "DEFAULT_MAX_INFLATED",
    "Atom",
    "BitBinary",
    "DecodeError",
    "EncodeError",
    "EpmdError",
    "ExactKey",
    "Export",
    "FrozenList",
    "FrozenMap",
    "Fun",
    "ImproperList",
    "Mailbox",
    "Node",
    "NodeClosedError",
    "Pid",
    "Port",
    "Reference",
    "decode",
    "encode",
]
