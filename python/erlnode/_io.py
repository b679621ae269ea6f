"""The Erlang io protocol, as far as a group leader for remote calls needs it.

`Node.rpc` makes its temporary mailbox the group leader of the remote call, so output of
the called function (`io:format`, ...) comes here as io requests: the text is written to
`sys.stdout`, input requests are refused (`{error, enotsup}`), and every request is
answered, so that the remote caller never hangs on its output.
"""

from __future__ import annotations

import sys
from typing import Any

from ._erlnode import NativeMailbox, Pid
from ._match import is_atom, is_tuple
from ._terms import Atom, FrozenList

_ERROR = Atom("error")


def answer_io_request(mbox: NativeMailbox, msg: tuple[Any, ...]) -> None:
    """Acts as a group leader: prints output requests, refuses input, always answers."""
    _, sender, reply_as, request = msg
    reply: Any = Atom("ok")
    try:
        text = _io_text(request)
    except _Unsupported:
        text = None
        reply = (_ERROR, Atom("enotsup"))
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()
    if isinstance(sender, Pid):
        mbox.send(sender, (Atom("io_reply"), reply_as, reply))


class _Unsupported(Exception):
    pass


def _io_text(request: Any) -> str:
    """The text an io-protocol output request writes; `_Unsupported` for input requests."""
    if is_tuple(request, 2) and is_atom(request[0], "requests"):
        return "".join(_io_text(r) for r in request[1])
    if isinstance(request, tuple) and request and is_atom(request[0], "put_chars"):
        rest = request[1:]
        if rest and isinstance(rest[0], Atom) and len(rest) in (2, 4):
            rest = rest[1:]  # drop the encoding
        if len(rest) == 1:
            return chardata_text(rest[0])
        if len(rest) == 3 and is_atom(rest[0], "io_lib") and is_atom(rest[1], "format"):
            fmt, fargs = (list(rest[2]) + [[], []])[:2]
            return format_erlang(chardata_text(fmt), list(fargs))
        return ""
    if is_tuple(request, 2) and is_atom(request[0], "setopts"):
        return ""
    raise _Unsupported()


def chardata_text(data: Any) -> str:
    """Erlang chardata (binaries, strings, nested lists of them) as text."""
    if isinstance(data, str):
        return str(data)
    if isinstance(data, (bytes, bytearray)):
        return bytes(data).decode("utf-8", "replace")
    if isinstance(data, int):
        return chr(data) if 0 <= data <= 0x10FFFF else ""
    if isinstance(data, (list, tuple, FrozenList)):
        return "".join(chardata_text(d) for d in data)
    return ""


def format_erlang(fmt: str, args: list[Any]) -> str:
    """A small `io_lib:format`: ~n ~~ ~s ~p ~w ~b ~B ~c ~e ~f ~g ~i; others show the argument."""
    out: list[str] = []
    queue = list(args)
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "~" or i + 1 >= len(fmt):
            out.append(ch)
            i += 1
            continue
        j = i + 1
        # Skip field width, precision, padding and modifiers (e.g. ~-10.3ts).
        while j < len(fmt) and (fmt[j].isdigit() or fmt[j] in ".-*tlk"):
            j += 1
        directive = fmt[j] if j < len(fmt) else ""
        i = j + 1
        if directive == "n":
            out.append("\n")
        elif directive == "~":
            out.append("~")
        elif directive == "i":
            if queue:
                queue.pop(0)
        elif queue:
            arg = queue.pop(0)
            if directive == "s":
                out.append(chardata_text(arg) if not isinstance(arg, Atom) else str(arg))
            elif directive == "c" and isinstance(arg, int):
                out.append(chr(arg))
            elif directive in "bBdefg" and isinstance(arg, (int, float)):
                out.append(str(arg))
            else:
                out.append(_show(arg))
    return "".join(out)


def _show(term: Any) -> str:
    """Roughly how `~p` shows a term."""
    if isinstance(term, Atom):
        return str(term)
    if isinstance(term, tuple):
        return "{" + ",".join(_show(t) for t in term) + "}"
    if isinstance(term, list):
        return "[" + ",".join(_show(t) for t in term) + "]"
    if isinstance(term, (bytes, bytearray)):
        return "<<" + repr(bytes(term).decode("utf-8", "replace")) + ">>"
    if isinstance(term, str):
        return repr(term)
    return str(term)
