"""The command line: ``erlnode`` (console script) and ``python -m erlnode``; see docs/cli.md.

Each command starts a short-lived hidden node (except ``names`` and ``epmd``, which need none),
does one thing and exits: 0 on success, 1 when the thing failed (pang, badrpc, timeout, no
EPMD), 2 when the command line is wrong. Failures print one line on stderr. Terms are read
and printed in Erlang syntax (``parse_term``, ``format_term``); ``--json`` prints one JSON
object per result instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any, NoReturn, Optional, Sequence

from . import _erlnode
from ._erlnode import (
    EmbeddedEpmd,
    EpmdError,
    Export,
    Fun,
    Pid,
    Port,
    Reference,
    TermSyntaxError,
    epmd_names,
    format_term,
    parse_term,
)
from ._errors import BadRpc, RemoteError, RemoteExit
from ._node import Node
from ._terms import Atom, BitBinary, FrozenList, FrozenMap, ImproperList

PROG = "erlnode"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
DEFAULT_TIMEOUT = 5.0
DEFAULT_EPMD_PORT = 4369
#: How often `epmd` looks for registrations coming and going.
EPMD_POLL = 0.2


class UsageError(Exception):
    """The command line is wrong (exit status 2)."""


class Failure(Exception):
    """The command ran and failed (exit status 1); `kind` and `fields` go into its JSON."""

    def __init__(self, kind: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.fields = fields


# -- output ---------------------------------------------------------------------------------


def term_type(term: Any) -> str:
    """The Erlang type of a decoded term, as `--json` names it."""
    if term is None or isinstance(term, (bool, Atom)):
        return "atom"
    if isinstance(term, int):
        return "integer"
    if isinstance(term, float):
        return "float"
    if isinstance(term, (bytes, bytearray, memoryview)):
        return "binary"
    if isinstance(term, BitBinary):
        return "bitstring"
    if isinstance(term, (str, list, FrozenList, ImproperList)):
        return "list"
    if isinstance(term, tuple):
        return "tuple"
    if isinstance(term, (dict, FrozenMap)):
        return "map"
    if isinstance(term, Pid):
        return "pid"
    if isinstance(term, Port):
        return "port"
    if isinstance(term, Reference):
        return "reference"
    if isinstance(term, (Export, Fun)):
        return "fun"
    return type(term).__name__


def json_term(term: Any) -> dict[str, str]:
    """A term in `--json` output: its type and its text in Erlang syntax (docs/cli.md)."""
    return {"type": term_type(term), "text": format_term(term)}


class Output:
    """Where results go: text lines, or one JSON object per result (`--json`), on stdout."""

    def __init__(self, as_json: bool) -> None:
        self.json = as_json

    def result(self, text: str, obj: dict[str, Any]) -> None:
        print(json.dumps(obj, ensure_ascii=False) if self.json else text, flush=True)

    def failure(self, failure: Failure) -> None:
        print(f"{PROG}: {failure}", file=sys.stderr, flush=True)
        if self.json:
            obj = {"error": failure.kind, "message": str(failure), **failure.fields}
            print(json.dumps(obj, ensure_ascii=False), flush=True)

    def status(self, text: str) -> None:
        """A line for the person watching (never part of the results): stderr."""
        print(f"{PROG}: {text}", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def remote_output(self) -> Iterator[None]:
        """What an rpc prints (`io:format`) goes to stdout, or to stderr with `--json`, so
        that stdout stays JSON."""
        if not self.json:
            yield
            return
        with contextlib.redirect_stdout(sys.stderr):
            yield


# -- reading the command line ---------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: {message} (see '{PROG} --help')\n")


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"the timeout must be a positive number: {text!r}")
    return value


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return value


def add_node_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """The options every command takes, before or after the command's name (`suppress`: as
    repeated on a command's parser, where a missing option must not hide the main one)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("node options (as erl spells them)")
    group.add_argument(
        "-sname",
        metavar="NAME",
        default=default(None),
        help="short node name (default: a random erlnode_cli_XXXX)",
    )
    group.add_argument(
        "-name", metavar="NAME", default=default(None), help="long node name (NAME@host.domain)"
    )
    group.add_argument(
        "-setcookie",
        metavar="COOKIE",
        default=default(None),
        help="the cookie (default: ~/.erlang.cookie, as erl reads it)",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=seconds,
        default=default(DEFAULT_TIMEOUT),
        help=f"how long to wait for an answer (default {DEFAULT_TIMEOUT:g})",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print one JSON object per result (see docs/cli.md)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default(False),
        help="also print the node's log (connections, handshakes: why a ping got pang)",
    )


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        allow_abbrev=False,
        description="Talk to Erlang nodes from the shell: a short-lived hidden erlnode node "
        "runs one command. Terms are written and printed in Erlang syntax.",
        epilog="Exit status: 0 success; 1 pang, badrpc, timeout or no EPMD; 2 usage error.",
    )
    add_node_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, allow_abbrev=False)
        add_node_options(sub, suppress=True)
        return sub

    ping = command("ping", "net_adm:ping a node: prints pong (exit 0) or pang (exit 1)")
    ping.add_argument("node", metavar="NODE", help="name@host (a bare name: on this host)")

    names = command("names", "list the nodes registered with a host's EPMD (net_adm:names)")
    names.add_argument("host", metavar="HOST", nargs="?", default="localhost")

    rpc = command("rpc", "rpc:call(NODE, MOD, FUN, ARGS) and print the result")
    rpc.add_argument("node", metavar="NODE", help="name@host (a bare name: on this host)")
    rpc.add_argument("module", metavar="MOD", help="the module, e.g. lists")
    rpc.add_argument("function", metavar="FUN", help="the function, e.g. seq")
    rpc.add_argument(
        "args",
        metavar="ARGS",
        nargs="?",
        default="[]",
        help="the arguments as one Erlang list, e.g. '[1,5]' (default [])",
    )

    send = command("send", "send TERM to a registered process or a pid")
    send.add_argument(
        "dest", metavar="DEST", help="{Name,'node@host'}, or a pid as printed: <node@host.42.0>"
    )
    send.add_argument("term", metavar="TERM", help="the message, in Erlang syntax")

    listen = command(
        "listen", "register a mailbox as NAME and print every message it gets, until Ctrl-C"
    )
    listen.add_argument("mailbox", metavar="NAME")

    epmd = command("epmd", "run an EPMD in the foreground until Ctrl-C")
    epmd.add_argument(
        "-port",
        type=port_number,
        default=None,
        help="the port (default: ERL_EPMD_PORT, else 4369)",
    )
    epmd.add_argument(
        "-address", default="0.0.0.0", help="the address to listen on (default 0.0.0.0)"
    )
    return parser


# -- the node -------------------------------------------------------------------------------


def env_epmd_port() -> int:
    """`ERL_EPMD_PORT` when it is a port number, else 4369 (as erl and the Rust core read it)."""
    try:
        port = int(os.environ.get("ERL_EPMD_PORT", "").strip())
    except ValueError:
        return DEFAULT_EPMD_PORT
    return port if 0 < port <= 65535 else DEFAULT_EPMD_PORT


def node_name(args: argparse.Namespace) -> Optional[str]:
    """The name given with -sname or -name (None: make one up)."""
    sname: Optional[str] = args.sname
    name: Optional[str] = args.name
    if sname is not None and name is not None:
        raise UsageError("give -sname or -name, not both")
    if name is None:
        return sname
    if "@" not in name:
        host = socket.getfqdn()
        if "." not in host:
            raise UsageError(
                f"-name {name}: this host's name ({host}) has no domain; "
                f"give -name {name}@HOST.DOMAIN (or an IP address)"
            )
        return f"{name}@{host}"
    return name


def start_node(args: argparse.Namespace) -> Node:
    name = node_name(args)
    attempts = 1 if name else 3  # a made-up name may be taken: make up another
    for attempt in range(attempts):
        try:
            return Node(name or f"erlnode_cli_{secrets.token_hex(2)}", cookie=args.setcookie)
        except ValueError as e:
            raise UsageError(str(e)) from None
        except EpmdError as e:
            if attempt + 1 == attempts:
                raise Failure("epmd", f"cannot start the node: {e}") from None
    raise AssertionError("unreachable")


def full_node_name(name: str, node: Node) -> str:
    """`name@host` as given, or a bare `name` on this node's host (as `erl_call -sname`)."""
    if "@" in name:
        return name
    return f"{name}@{node.name.partition('@')[2]}"


def parse_arg(what: str, text: str) -> Any:
    try:
        return parse_term(text)
    except TermSyntaxError as e:
        raise UsageError(f"{what} {text!r}: {e}") from None


# -- the commands ---------------------------------------------------------------------------


def cmd_ping(args: argparse.Namespace, out: Output) -> int:
    with start_node(args) as node:
        target = full_node_name(args.node, node)
        if not node.ping(target, args.timeout):
            raise Failure(
                "pang",
                f"pang: {target} did not answer (not running, unreachable, or another cookie)",
                node=target,
            )
    out.result("pong", {"node": target, "result": "pong"})
    return EXIT_OK


def cmd_names(args: argparse.Namespace, out: Output) -> int:
    port = env_epmd_port()
    try:
        names = epmd_names(args.host, port, args.timeout)
    except TimeoutError as e:
        raise Failure("timeout", str(e), host=args.host) from None
    except OSError as e:
        raise Failure("epmd", str(e), host=args.host) from None
    if out.json:
        listed = [{"name": name, "port": p} for name, p in names]
        out.result("", {"host": args.host, "epmd_port": port, "names": listed})
    else:
        for name, p in names:
            out.result(f"name {name} at port {p}", {})
    return EXIT_OK


def rpc_arguments(text: str) -> list[Any]:
    args = parse_arg("ARGS", text)
    if isinstance(args, str):  # a string literal is a list of character codes
        return [ord(c) for c in args]
    if not isinstance(args, list):
        raise UsageError(f"ARGS {text!r} is not a list (write the arguments as [A1, A2, ...])")
    return args


def cmd_rpc(args: argparse.Namespace, out: Output) -> int:
    call_args = rpc_arguments(args.args)
    with start_node(args) as node:
        target = full_node_name(args.node, node)
        try:
            with out.remote_output():
                value = node.rpc(target, args.module, args.function, call_args, args.timeout)
        except TimeoutError:
            message = f"timeout: no answer from {target} within {args.timeout:g} s"
            raise Failure("timeout", message, node=target) from None
        except (BadRpc, RemoteError, RemoteExit) as e:
            reason = badrpc_reason(e)
            raise Failure(
                "badrpc", f"badrpc: {format_term(reason)}", node=target, reason=json_term(reason)
            ) from None
    out.result(format_term(value), {"node": target, "result": json_term(value)})
    return EXIT_OK


def badrpc_reason(e: BadRpc | RemoteError | RemoteExit) -> Any:
    """The `Reason` of the `{badrpc, Reason}` that `rpc:call` would have returned."""
    if isinstance(e, RemoteError):
        return (Atom("EXIT"), (e.reason, e.stacktrace))
    if isinstance(e, RemoteExit):
        return (Atom("EXIT"), e.reason)
    return e.reason


def send_destination(text: str) -> tuple[Any, str]:
    """DEST as `Node.send` takes it, and the node it is on (maybe a bare name)."""
    dest = parse_arg("DEST", text)
    if isinstance(dest, Pid):
        return dest, str(dest.node)
    if (
        isinstance(dest, tuple)
        and len(dest) == 2
        and isinstance(dest[0], Atom)
        and isinstance(dest[1], Atom)
    ):
        return dest, str(dest[1])
    raise UsageError(f"DEST {text!r} is not {{Name,'node@host'}} or a pid (<node@host.42.0>)")


def current_pid(node: Node, pid: Pid, timeout: float) -> Pid:
    """`pid` as its node knows it now. A pid as printed has no creation (the incarnation of
    its node), and an Erlang node takes a pid of creation 0 for one of another incarnation:
    like `list_to_pid/1` there, this takes the node's current one. A node that does not
    answer `erlang:system_info(creation)` (an erlnode node) gets the pid as it is."""
    try:
        creation = node.rpc(pid.node, "erlang", "system_info", [Atom("creation")], timeout)
    except (BadRpc, RemoteError, RemoteExit, TimeoutError):
        return pid
    if not isinstance(creation, int) or isinstance(creation, bool):
        return pid
    return Pid(pid.node, pid.id, pid.serial, creation)


def cmd_send(args: argparse.Namespace, out: Output) -> int:
    dest, dest_node = send_destination(args.dest)
    message = parse_arg("TERM", args.term)
    with start_node(args) as node:
        target = full_node_name(dest_node, node)
        if isinstance(dest, tuple):
            dest = (dest[0], Atom(target))
        # Connected first, so that an unreachable node is an error rather than a message
        # dropped in silence; the second ping comes back after the peer has read the
        # message (one connection keeps order), so exiting then loses nothing.
        if not node.ping(target, args.timeout):
            raise Failure("pang", f"pang: cannot reach {target}", node=target)
        if isinstance(dest, Pid) and dest.creation == 0:
            dest = current_pid(node, dest, args.timeout)
        node.send(dest, message)
        if not node.ping(target, args.timeout):
            raise Failure("pang", f"pang: {target} went away while sending", node=target)
    out.result("ok", {"dest": json_term(dest), "message": json_term(message)})
    return EXIT_OK


def cmd_listen(args: argparse.Namespace, out: Output) -> int:
    with start_node(args) as node:
        try:
            mbox = node.mailbox(args.mailbox)
        except ValueError as e:
            raise UsageError(str(e)) from None
        me = format_term((Atom(args.mailbox), Atom(node.name)))
        out.status(f"listening as {me}, pid {mbox.pid} (Ctrl-C stops)")
        try:
            while True:
                message = mbox.receive()
                out.result(format_term(message), {"message": json_term(message)})
        except KeyboardInterrupt:
            return EXIT_OK


def cmd_epmd(args: argparse.Namespace, out: Output) -> int:
    port = env_epmd_port() if args.port is None else args.port
    try:
        server = EmbeddedEpmd(args.address, port)
    except ValueError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise Failure("epmd", str(e)) from None
    out.status(f"EPMD listening on {server.address} (Ctrl-C stops)")
    known: dict[str, int] = {}
    try:
        while True:
            now = dict(server.names())
            for name, p in now.items():
                if known.get(name) != p:
                    out.result(
                        f"registered {name} at port {p}",
                        {"event": "registered", "name": name, "port": p},
                    )
            for name, p in known.items():
                if name not in now:
                    out.result(
                        f"unregistered {name}", {"event": "unregistered", "name": name, "port": p}
                    )
            known = now
            time.sleep(EPMD_POLL)
    except KeyboardInterrupt:
        return EXIT_OK


COMMANDS = {
    "ping": cmd_ping,
    "names": cmd_names,
    "rpc": cmd_rpc,
    "send": cmd_send,
    "listen": cmd_listen,
    "epmd": cmd_epmd,
}


def quiet_or_verbose(verbose: bool) -> None:
    """The node's own log records (the `erlnode` loggers): with `--verbose`, INFO and above on
    stderr; else none, so that a failure is the one line the CLI prints."""
    logger = logging.getLogger("erlnode")
    logger.propagate = False
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("erlnode: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    else:
        logger.addHandler(logging.NullHandler())
        logger.setLevel(logging.CRITICAL + 1)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs one command; returns the exit status."""
    args = build_parser().parse_args(argv)
    quiet_or_verbose(args.verbose)
    out = Output(args.json)
    try:
        return COMMANDS[args.command](args, out)
    except UsageError as e:
        print(f"{PROG}: {e}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except Failure as e:
        out.failure(e)
        return EXIT_FAILED
    except _erlnode.NodeClosedError as e:
        out.failure(Failure("closed", f"the node closed: {e}"))
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining
        # again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def run() -> NoReturn:
    """The console script's entry point."""
    sys.exit(main())
