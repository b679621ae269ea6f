"""Type stubs of the Rust extension: the codec, term types and the native node."""

import os
import pathlib
from typing import Any, Literal, NoReturn, Optional, Union, final

__all__ = [
    "DecodeError",
    "EncodeError",
    "Pid",
    "Port",
    "Reference",
    "Export",
    "Fun",
    "encode",
    "decode",
    "DEFAULT_MAX_INFLATED",
    "NativeNode",
    "NativeMailbox",
    "TLSConfig",
    "NodeClosedError",
    "EpmdError",
    "DEFAULT_TICKTIME",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "serve_landings",
    "take_log_records",
    "wait_log_records",
    "log_records_dropped",
    "set_log_level",
    "TermSyntaxError",
    "parse_term",
    "format_term",
    "epmd_names",
    "EmbeddedEpmd",
]

DEFAULT_MAX_INFLATED: int
#: The node's defaults, from the Rust core's `NodeConfig::default()` (seconds).
DEFAULT_TICKTIME: float
DEFAULT_HANDSHAKE_TIMEOUT: float
#: The largest message (and frame) a node accepts from a peer by default, in bytes.
DEFAULT_MAX_MESSAGE_SIZE: int

def serve_landings() -> NoReturn:
    """Makes the `bytes` objects large binaries are received into, forever (one thread)."""

def take_log_records(timeout: float) -> list[tuple[int, str, str, Optional[str]]]:
    """The core's log records that arrived, waiting up to `timeout` s for the first."""

def wait_log_records(timeout: float) -> None:
    """Waits up to `timeout` s until the core has queued records; takes none."""

def log_records_dropped() -> int:
    """How many log records were dropped because the queue was full."""

def set_log_level(levelno: int) -> bool:
    """Sets the core's pre-filter from a Python level (unless ERLNODE_LOG is set)."""

class DecodeError(ValueError):
    r"""Malformed external term format (from `decode`); `offset` is the byte where decoding
    stopped (in the inflated data, for a compressed term).

    >>> try:
    ...     decode(b"\x83h\x02w\x02ok")  # a 2-tuple cut after its first element
    ... except DecodeError as e:
    ...     print(e.offset, e)
    7 truncated input: a term was expected at byte 7
    """

    offset: int

class EncodeError(TypeError):
    """A Python value with no Erlang equivalent (from `encode`, or sending a message); the
    message names its type and where it sits in the term.

    >>> encode({Atom("tags"): {1, 2}})
    Traceback (most recent call last):
        ...
    erlnode.EncodeError: cannot encode an object of type 'set' at [Atom('tags')]
    """

#: How Erlang text arrives in Python and how a ``str`` goes back (docs/types.md):
#: ``"str"`` (the default), ``"erlang"`` or ``"elixir"``.
_Strings = Literal["str", "erlang", "elixir"]

def encode(
    term: Any,
    *,
    compressed: Union[bool, int, None] = None,
    strings: Optional[_Strings] = None,
) -> bytes:
    r"""`term` in the external term format, as `term_to_binary/1` writes it (starts with 131):
    Erlang reads it with `binary_to_term/1`. docs/types.md has how each type is written.

    `compressed`: True (zlib level 6, as OTP) or a level 0..9; the plain form is kept when it
    is smaller. False or None (the default): plain. `strings` says how a `str` is written:
    `"str"` (None, the default) and `"erlang"` as a list of character codes (a STRING_EXT
    when it can), `"elixir"` as a UTF-8 binary.

    >>> encode((Atom("ok"), [1, 2]))
    b'\x83h\x02w\x02okl\x00\x00\x00\x02a\x01a\x02j'
    >>> encode("hi"), encode("hi", strings="elixir")
    (b'\x83k\x00\x02hi', b'\x83m\x00\x00\x00\x02hi')
    >>> len(encode(b"a" * 1000)), len(encode(b"a" * 1000, compressed=True))
    (1006, 36)
    """

def decode(
    data: Union[bytes, bytearray, memoryview],
    *,
    max_inflated: int = ...,
    strings: Optional[_Strings] = None,
) -> Any:
    r"""The term in `data` (bytes-like), in the external term format that `term_to_binary/1`
    writes (starts with 131). docs/types.md has what each Erlang type becomes.

    A compressed term may declare at most `max_inflated` bytes (`DEFAULT_MAX_INFLATED`,
    256 MiB). `strings` picks how Erlang text arrives: `"str"` (None, the default),
    `"erlang"` or `"elixir"`. Malformed data raises `DecodeError`.

    >>> decode(b"\x83h\x02w\x02okl\x00\x00\x00\x02a\x01a\x02j")
    (Atom('ok'), [1, 2])
    >>> data = bytes([131, 107, 0, 3, 1, 2, 3])  # term_to_binary([1, 2, 3]): a STRING_EXT
    >>> decode(data), decode(data, strings="erlang")
    ('\x01\x02\x03', [1, 2, 3])
    >>> data = encode("café".encode())           # a binary: <<"café"/utf8>>
    >>> decode(data), decode(data, strings="elixir")
    (b'caf\xc3\xa9', 'café')
    """

class TermSyntaxError(ValueError):
    """Text that is not an Erlang term (from `parse_term`).

    `line` and `column` (counted from 1) and `offset` (an index into the text, counted from
    0) say where; the message says what was found.

    >>> try:
    ...     parse_term("{ok, [1, 2}")
    ... except TermSyntaxError as e:
    ...     print(e.line, e.column, e.offset)
    1 11 10
    """

    line: int
    column: int
    offset: int

def parse_term(text: str) -> Any:
    """One term in Erlang syntax (a final `.` is allowed), as `decode` would give it. Pids,
    ports and references are written with their node's name, as `format_term` prints them
    (`<erl@host.85.0>`). Text that is not a term raises `TermSyntaxError`.

    >>> parse_term('{ok, [1, 2], <<"bin">>, #{name => "Joe"}}.')
    (Atom('ok'), [1, 2], b'bin', {Atom('name'): 'Joe'})
    """

def format_term(term: Any) -> str:
    """`term` as `io_lib:format("~p", [Term])` prints it, on one line (pids, ports and
    references with their node's name). It takes what `encode` takes; `parse_term` reads it
    back.

    >>> format_term((Atom("ok"), [1, 2], b"bin", {Atom("name"): "Joe"}))
    '{ok,[1,2],<<"bin">>,#{name => "Joe"}}'
    """

@final
class Pid:
    def __new__(cls, node: str, id: int, serial: int = 0, creation: int = 0) -> Pid: ...
    @property
    def node(self) -> str: ...
    @property
    def id(self) -> int: ...
    @property
    def serial(self) -> int: ...
    @property
    def creation(self) -> int: ...
    def __lt__(self, other: Pid, /) -> bool: ...
    def __le__(self, other: Pid, /) -> bool: ...
    def __gt__(self, other: Pid, /) -> bool: ...
    def __ge__(self, other: Pid, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Port:
    def __new__(cls, node: str, id: int, creation: int = 0) -> Port: ...
    @property
    def node(self) -> str: ...
    @property
    def id(self) -> int: ...
    @property
    def creation(self) -> int: ...
    def __lt__(self, other: Port, /) -> bool: ...
    def __le__(self, other: Port, /) -> bool: ...
    def __gt__(self, other: Port, /) -> bool: ...
    def __ge__(self, other: Port, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Reference:
    def __new__(cls, node: str, ids: Any, creation: int = 0) -> Reference: ...
    @property
    def node(self) -> str: ...
    @property
    def ids(self) -> tuple[int, ...]: ...
    @property
    def creation(self) -> int: ...
    def __lt__(self, other: Reference, /) -> bool: ...
    def __le__(self, other: Reference, /) -> bool: ...
    def __gt__(self, other: Reference, /) -> bool: ...
    def __ge__(self, other: Reference, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Export:
    def __new__(cls, module: str, function: str, arity: int) -> Export: ...
    @property
    def module(self) -> str: ...
    @property
    def function(self) -> str: ...
    @property
    def arity(self) -> int: ...
    def __lt__(self, other: Export, /) -> bool: ...
    def __le__(self, other: Export, /) -> bool: ...
    def __gt__(self, other: Export, /) -> bool: ...
    def __ge__(self, other: Export, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Fun:
    @property
    def module(self) -> str: ...
    @property
    def arity(self) -> int: ...
    def __hash__(self) -> int: ...

class NodeClosedError(ConnectionError):
    """The node (or mailbox) is closed: raised by what needs it open.

    Example::

        node.close()
        try:
            mbox.receive(timeout=1.0)
        except erlnode.NodeClosedError:
            print("the node is closed")
    """

class EpmdError(ConnectionError):
    """The node could not register with EPMD (nor serve EPMD itself).

    Example::

        try:
            node = erlnode.Node("py", cookie="secret")
        except erlnode.EpmdError as e:
            sys.exit(f"cannot start the node: {e}")
            # name 'py' is already registered with the EPMD at 127.0.0.1:4369
    """

@final
class TLSConfig:
    """TLS distribution (`-proto_dist inet_tls`) for a node: `Node(..., tls=TLSConfig(...))`.

    `TLSConfig(certfile, keyfile, cafile)` uses one certificate for both roles and mutual TLS:
    a dialing node checks the peer's certificate against `cafile` and the host part of its
    node name; an accepting node requires a client certificate from the same CA. With
    `verify=False` neither role checks certificates (for experiments only). `server_name`
    replaces the host name checked (and sent as SNI) when dialing. `versions` limits the TLS
    versions offered (`"tlsv1.2"`, `"tlsv1.3"`); by default both, so that an OTP node, which
    offers TLS 1.2 only unless told otherwise, gets 1.2.

    Example::

        tls = erlnode.TLSConfig("node.pem", "node.key", "ca.pem")
        node = erlnode.Node("py", tls=tls)

    The files are read (and checked) here: a missing file or a key that does not fit its
    certificate is a `ValueError` now, not a failed connection later.
    """

    def __new__(
        cls,
        certfile: Union[str, os.PathLike[str]],
        keyfile: Union[str, os.PathLike[str]],
        cafile: Optional[Union[str, os.PathLike[str]]],
        *,
        verify: bool = True,
        server_name: Optional[str] = None,
        versions: Optional[list[str]] = None,
    ) -> TLSConfig: ...
    @classmethod
    def from_optfile(cls, path: Union[str, os.PathLike[str]]) -> TLSConfig:
        """The settings of an `-ssl_dist_optfile` (`[{server, Opts}, {client, Opts}]`, Erlang
        term syntax), the file the cluster's Erlang nodes use. Reads `certfile`, `keyfile`,
        `cacertfile`, `verify`, `fail_if_no_peer_cert`, `versions` and
        `server_name_indication`; any other option is a `ValueError` naming it.

        Example::

            tls = erlnode.TLSConfig.from_optfile("/etc/myapp/dist.conf")
        """
    @property
    def certfile(self) -> pathlib.Path: ...
    @property
    def keyfile(self) -> pathlib.Path: ...
    @property
    def cafile(self) -> Optional[pathlib.Path]: ...
    @property
    def verify(self) -> bool: ...
    @property
    def server_name(self) -> Optional[str]: ...
    @property
    def versions(self) -> list[str]: ...

@final
class NativeNode:
    def __new__(
        cls,
        name: Optional[str] = None,
        cookie: Optional[str] = None,
        *,
        hidden: bool = True,
        ticktime: Optional[float] = None,
        epmd_port: Optional[int] = None,
        listen: str = "0.0.0.0:0",
        handshake_timeout: Optional[float] = None,
        tls: Optional[TLSConfig] = None,
        allowed_nodes: Optional[list[str]] = None,
        max_message_size: Optional[int] = None,
        strings: Optional[_Strings] = None,
    ) -> NativeNode:
        """`ticktime` and `handshake_timeout` in seconds; None: `DEFAULT_TICKTIME`,
        `DEFAULT_HANDSHAKE_TIMEOUT`."""
    @property
    def name(self) -> str: ...
    @property
    def strings(self) -> _Strings:
        """The `strings=` mode: how the node's mailboxes decode text and send a `str`."""
    def allow(self, nodes: list[str]) -> None:
        """Adds to the nodes allowed to connect (`net_kernel:allow/1`)."""
    @property
    def allowed_nodes(self) -> list[str]:
        """The nodes allowed to connect (empty: everyone)."""
    @property
    def tls(self) -> bool:
        """Whether connections run over TLS."""
    @property
    def cookie(self) -> str: ...
    @property
    def creation(self) -> int: ...
    @property
    def port(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def mailbox(self, name: Optional[str] = None, callback: Any = None) -> NativeMailbox: ...
    def send(self, dest: Any, message: Any) -> None: ...
    def ping(self, peer: str, timeout: float = 5.0) -> bool: ...
    def connected_nodes(self) -> list[str]: ...
    def stats(self) -> dict[str, Any]:
        """`{"mailboxes": n, "connections": {peer: {...}}}`: see `Node.stats`."""
    def disconnect(self, node: str) -> bool: ...
    def make_ref(self) -> Reference: ...
    def monitor_node(self, mailbox: NativeMailbox, node: str, flag: bool = True) -> None: ...
    def monitor_nodes(self, mailbox: NativeMailbox, flag: bool = True) -> None: ...
    def set_spawn_handler(self, mailbox: Optional[NativeMailbox]) -> None: ...
    def spawn_reply(
        self,
        req_id: Reference,
        to: Pid,
        mailbox: Optional[NativeMailbox],
        link: bool = False,
        monitor: bool = False,
        error: Optional[str] = None,
    ) -> None: ...
    def close(self) -> None: ...

@final
class NativeMailbox:
    @property
    def pid(self) -> Pid: ...
    @property
    def name(self) -> Optional[str]: ...
    @property
    def closed(self) -> bool: ...
    def qsize(self) -> int:
        """How many messages wait in the queue."""
    def set_queue_limit(self, limit: Optional[int]) -> None:
        """Limits the queue (None: no limit)."""
    @property
    def dropped(self) -> int:
        """How many messages a full queue dropped."""
    def register(self, name: str) -> None: ...
    def send(self, dest: Any, message: Any) -> None: ...
    def receive(self, timeout: Optional[float] = None) -> Any: ...
    def receive_many(
        self,
        limit: Optional[int] = None,
        timeout: Optional[float] = None,
        *,
        max: Optional[int] = None,
    ) -> list[Any]: ...
    def try_receive(self, default: Any = None) -> Any: ...
    def receive_soon(self, default: Any = None) -> Any: ...
    def wake_fd(self) -> int: ...
    def send_many(self, dest: Any, messages: Any) -> None: ...
    def link(self, pid: Pid) -> None: ...
    def unlink(self, pid: Pid) -> None: ...
    def exit(self, pid: Pid, reason: Any) -> None: ...
    def monitor(self, target: Any) -> Reference: ...
    def demonitor(self, reference: Reference) -> bool: ...
    def close(self, reason: Any = None) -> None: ...

# -- for the command line (python/erlnode/_cli.py) ------------------------------------------

def epmd_names(host: str, port: int, timeout: float) -> list[tuple[str, int]]:
    """The names registered with the EPMD on ``host:port``, with their ports."""

@final
class EmbeddedEpmd:
    """An EPMD served by this process while the object lives."""

    def __new__(cls, address: str, port: int) -> EmbeddedEpmd: ...
    @property
    def address(self) -> str: ...
    def names(self) -> list[tuple[str, int]]: ...
