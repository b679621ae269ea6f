"""erlnode: make a Python program a node of an Erlang cluster.

Terms map to Python values as described in docs/types.md; ``encode`` and ``decode`` convert
between them and Erlang's external term format (what ``term_to_binary`` produces),
``parse_term`` and ``format_term`` between them and Erlang's syntax. ``python -m erlnode`` is
the command line (docs/cli.md).

Every public name has an example. The ``>>>`` ones need no Erlang node and run as tests
(tests/test_docstrings.py) after ``from erlnode import *``:

>>> from erlnode import *
>>> decode(encode((Atom("ok"), [1, 2])))
(Atom('ok'), [1, 2])

The ``Example::`` blocks need a running Erlang node (``erl -sname erl``): ``node`` is an
``erlnode.Node``, ``mbox`` one of its mailboxes, ``erl@host`` the Erlang node.
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
    TermSyntaxError,
    TLSConfig,
    decode,
    encode,
    format_term,
    parse_term,
)
from ._errors import (
    BadRpc,
    ErlangError,
    ErlangException,
    ErlangExit,
    ErlangThrow,
    RemoteError,
    RemoteExit,
    RpcError,
)
from ._genserver import GenServer
from ._node import ConnectionStats, Mailbox, Node, NodeStats
from ._pool import WorkerInfo, WorkerPool
from ._terms import Atom, BitBinary, ExactKey, FrozenList, FrozenMap, ImproperList

__all__ = [
    "DEFAULT_MAX_INFLATED",
    "Atom",
    "BadRpc",
    "BitBinary",
    "ConnectionStats",
    "DecodeError",
    "EncodeError",
    "EpmdError",
    "ErlangError",
    "ErlangException",
    "ErlangExit",
    "ErlangThrow",
    "ExactKey",
    "Export",
    "FrozenList",
    "FrozenMap",
    "Fun",
    "GenServer",
    "ImproperList",
    "Mailbox",
    "Node",
    "NodeClosedError",
    "NodeStats",
    "Pid",
    "Port",
    "Reference",
    "RemoteError",
    "RemoteExit",
    "RpcError",
    "TLSConfig",
    "TermSyntaxError",
    "WorkerInfo",
    "WorkerPool",
    "decode",
    "encode",
    "format_term",
    "parse_term",
]
