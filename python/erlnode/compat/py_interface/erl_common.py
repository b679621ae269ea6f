"""py_interface's common helpers: node name alignment, debug printing, callback objects and
big-endian integer packing.

Example::

    from erlnode.compat.py_interface import erl_common

    erl_common.DebugOn(["erl_node"])
    name = erl_common.AlignNodeName("py")     # "py@myhost"
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any, Callable, TypeVar

T = TypeVar("T")


# -- node names ------------------------------------------------------------------------------


def AlignNodeName(nodeName: str, useShortNodeNames: int = 1) -> str:
    """``name@host`` from ``name`` (a name that has an ``@`` is returned unchanged); the host
    part is the short host name or the fully qualified one.

    Example::

        assert AlignNodeName("py@host") == "py@host"
        assert AlignNodeName("py").startswith("py@")
    """
    if useShortNodeNames:
        return AlignShortNodeName(nodeName)
    return AlignLongNodeName(nodeName)


def AlignShortNodeName(nodeName: str) -> str:
    """``name@host`` with this host's short name (a name that has an ``@`` is returned as is).

    Example::

        short = AlignShortNodeName("py")    # "py@myhost"
        assert "." not in short.split("@")[1]
    """
    if "@" in nodeName:
        return nodeName
    # Like `erl -sname`: the host name up to its first dot.
    return nodeName + "@" + socket.gethostname().split(".")[0]


def AlignLongNodeName(nodeName: str) -> str:
    """``name@host`` with this host's fully qualified name (a name with an ``@`` stays).

    Example::

        name = AlignLongNodeName("py")    # "py@myhost.example.com"
    """
    if "@" in nodeName:
        return nodeName
    return nodeName + "@" + GetFullyQualifiedHostName()


def GetFullyQualifiedHostName(name: str = "") -> str:
    """The fully qualified name of host NAME (this host when empty).

    Example::

        host = GetFullyQualifiedHostName()
    """
    return socket.getfqdn(name)


def getenv(envName: str) -> str:
    """The environment variable's value, or "" when it is not set.

    Example::

        assert getenv("ERLNODE_SURELY_UNSET_VARIABLE") == ""
    """
    return os.environ.get(envName, "")


def IndexSeq(seq: Sequence[T]) -> list[tuple[int, T]]:
    """``(index, item)`` pairs of SEQ, in order.

    Example::

        assert IndexSeq("ab") == [(0, "a"), (1, "b")]
    """
    return list(enumerate(seq))


# -- integers --------------------------------------------------------------------------------


def ReadInt1(s: bytes | int) -> int:
    """The first byte of S, as an unsigned integer (S itself if it is an int, as when indexing
    bytes).

    Example::

        assert ReadInt1(b"\\x07rest") == 7 and ReadInt1(7) == 7
    """
    return s if isinstance(s, int) else s[0]


def ReadInt2(s: bytes) -> int:
    """The first 2 bytes of S, as a big-endian unsigned integer.

    Example::

        assert ReadInt2(b"\\x01\\x02") == 258
    """
    return int.from_bytes(s[:2], "big")


def ReadInt4(s: bytes) -> int:
    """The first 4 bytes of S, as a big-endian unsigned integer.

    Example::

        assert ReadInt4(b"\\x00\\x00\\x01\\x00") == 256
    """
    return int.from_bytes(s[:4], "big")


def PackInt1(i: int) -> bytes:
    """The low byte of I.

    Example::

        assert PackInt1(257) == b"\\x01"
    """
    return (i & 0xFF).to_bytes(1, "big")


def PackInt2(i: int) -> bytes:
    """The low 16 bits of I, big-endian.

    Example::

        assert PackInt2(258) == b"\\x01\\x02"
    """
    return (i & 0xFFFF).to_bytes(2, "big")


def PackInt4(i: int) -> bytes:
    """The low 32 bits of I, big-endian.

    Example::

        assert PackInt4(256) == b"\\x00\\x00\\x01\\x00"
    """
    return (i & 0xFFFFFFFF).to_bytes(4, "big")


# -- logging and debugging -------------------------------------------------------------------

_logFileName: str | None = None
_modulesToDebug: list[str] = []
_debugAllModules = False
_debugFileName: str | None = None


def SetLogFile(fileName: str) -> None:
    """Makes :func:`Log` append to FILENAME.

    Example::

        SetLogFile("/tmp/py.log")
    """
    global _logFileName
    _logFileName = fileName


def Log(str: str) -> None:
    """Appends the line STR to the log file set with SetLogFile (nothing when none is set).

    Example::

        SetLogFile("/tmp/py.log")
        Log("started")
    """
    if _logFileName is not None:
        _append_line(_logFileName, str)


def _append_line(fileName: str, text: str) -> None:
    try:
        with open(fileName, "a") as f:
            f.write(text + "\n")
    except OSError:
        # Logging must never take the program down.
        pass


def DebugToFile(fileName: str) -> None:
    """Makes debug output go to FILENAME instead of standard output.

    Example::

        DebugToFile("/tmp/py-debug.log")
    """
    global _debugFileName
    _debugFileName = fileName


def DebugOnAll() -> None:
    """Turns debug output on for every module.

    Example::

        DebugOnAll()
    """
    global _debugAllModules
    _debugAllModules = True


def DebugOn(moduleList: list[str]) -> None:
    """Turns debug output on for the modules in MODULELIST only.

    Example::

        DebugOn(["erl_node"])
    """
    global _debugAllModules, _modulesToDebug
    _debugAllModules = False
    _modulesToDebug = list(moduleList)


def Debug(module: str, txt: str) -> None:
    """Prints ``module: txt`` when debugging is on for that module.

    Example::

        Debug("erl_node", "connected")    # printed when erl_node is being debugged
    """
    if _debugAllModules or module in _modulesToDebug:
        _DebugEmitText(f"{module}: {txt}")


def DebugHex(module: str, txt: str, msg: bytes) -> None:
    """Like :func:`Debug`, followed by a hex dump of MSG.

    Example::

        DebugHex("erl_node", "received", b"\\x83j")
    """
    if _debugAllModules or module in _modulesToDebug:
        _DebugEmitText(f"{module}: {txt}\n{_HexDump(msg)}")


def _DebugEmitText(txt: str) -> None:
    if _debugFileName is None:
        print(txt)
    else:
        _append_line(_debugFileName, txt)


def _HexDump(data: bytes) -> str:
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:04x}: {hexes:<47}   {text}")
    return "\n".join(lines)


# -- callbacks -------------------------------------------------------------------------------


class Callback:
    """A callable that calls ``callback(*invoker_args, *optArgs, **namedArgs)``: the invoker's
    arguments come first, the ones given here are appended.

    Example::

        cb = Callback(print, "world")
        cb("hello")    # prints "hello world"
    """

    def __init__(self, callback: Callable[..., Any], *optArgs: Any, **namedArgs: Any) -> None:
        self.callback = callback
        self.optArgs: tuple[Any, ...] = optArgs
        self.namedArgs: dict[str, Any] = namedArgs

    def __call__(self, *extraArgs: Any) -> Any:
        return self.callback(*(extraArgs + self.optArgs), **self.namedArgs)

    def __repr__(self) -> str:
        return f"<Callback to {self.callback!r}>"


class VCallback(Callback):
    """Callback with the extra arguments given as a tuple and a dict.

    Example::

        cb = VCallback(print, ("world",), {"sep": ", "})
        cb("hello")    # prints "hello, world"
    """

    def __init__(
        self, callback: Callable[..., Any], optArgs: Sequence[Any], namedArgs: dict[str, Any]
    ) -> None:
        super().__init__(callback, *optArgs, **namedArgs)

    def __repr__(self) -> str:
        return f"<VCallback to {self.callback!r}>"
