"""RPC and gen_server calls across the boundary, both ways.

Python calling Erlang:
  * `rpc_call`: the C-node path into OTP's `rex` server (`{From, {call, M, F, A, GL}}` answered
    by `{rex, Result}`), with the temporary mailbox acting as group leader so that remote output
    does not hang the call (see `_io`);
  * `gen_call`: what `gen:call` does (monitor, `'$gen_call'`, reply or DOWN, demonitor).
Both are a `monitor_send_await`: only the request and the answer differ.

Erlang calling Python: `RpcServer` serves SPAWN_REQUESTs of `erpc:execute_call/4` and
`erpc:execute_cast/3` (how OTP 25+ `rpc:call`, `erpc:call` and `rpc:cast` arrive) and the
messages OTP still sends to a node's `rex` (`rpc:block_call`, old-style calls and casts).
Exposed functions run on a thread pool: the node's dispatcher thread only hands work out.
"""

from __future__ import annotations

import logging
import threading
import time
import types
from typing import Any, Callable, Mapping, Optional, Union

from ._erlnode import EncodeError, NativeMailbox, NativeNode, NodeClosedError, Pid, Reference
from ._errors import BadRpc, ErlangException, RemoteError, RemoteExit
from ._io import answer_io_request
from ._match import GenCall, GenCast, erlang_list, gen_message, is_atom, is_tuple
from ._terms import Atom, FrozenList

log = logging.getLogger("erlnode.rpc")

_BADRPC = Atom("badrpc")
_EXIT = Atom("EXIT")
_ERROR = Atom("error")
_UNDEF = Atom("undef")
_NORMAL = Atom("normal")
_GEN_CALL = Atom("$gen_call")

#: The longest atom Erlang accepts, in characters.
_MAX_ATOM = 255
#: How many Python frames a stack sent to Erlang keeps.
_MAX_FRAMES = 20

#: What a call into Python ended with: ("return", value), ("throw", value), ("exit", reason)
#: or ("error", reason, stacktrace).
Outcome = tuple[Any, ...]


# -- Python calling Erlang ------------------------------------------------------------------


def _remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


#: What a `monitor_send_await` reader returns for a message that is not the answer.
NO_ANSWER: Any = object()


def monitor_send_await(
    native: NativeNode,
    dest: Any,
    request: Callable[[Pid, Reference], Any],
    answer: Callable[[NativeMailbox, Any, Reference], Any],
    down: Callable[[Any], Exception],
    timeout: Optional[float],
    no_answer: Callable[[], str],
) -> Any:
    """A request and its answer, as `gen:call` does it: from a temporary mailbox, monitors
    `dest`, sends it `request(pid, ref)` and waits for the first message that
    `answer(mailbox, message, ref)` returns other than `NO_ANSWER` for.

    The monitor's DOWN before the answer (`dest` does not exist, died, or its node cannot be
    reached) raises `down(reason)`; no answer within `timeout` seconds (None: wait forever)
    raises `TimeoutError("<no_answer()> within <timeout>s")` (made only then: a repr costs).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    mbox = native.mailbox(None, None)
    try:
        ref = mbox.monitor(dest)
        mbox.send(dest, request(mbox.pid, ref))
        while True:
            try:
                msg = mbox.receive(_remaining(deadline))
            except TimeoutError:
                raise TimeoutError(f"{no_answer()} within {timeout}s") from None
            result = answer(mbox, msg, ref)
            if result is not NO_ANSWER:
                mbox.demonitor(ref)
                return result
            if is_tuple(msg, 5) and is_atom(msg[0], "DOWN") and msg[1] == ref:
                raise down(msg[4])
    finally:
        mbox.close()


def rpc_call(
    native: NativeNode,
    node: str,
    module: str,
    function: str,
    args: list[Any],
    timeout: Optional[float],
) -> Any:
    """`rpc:call(Node, M, F, A)` through `{rex, Node}`; see `Node.rpc`."""
    # The temporary mailbox is the call's group leader too: its output comes as io requests.
    result = monitor_send_await(
        native,
        ("rex", node),
        lambda pid, _ref: (pid, (Atom("call"), Atom(module), Atom(function), list(args), pid)),
        _rex_answer,
        _rex_down,
        timeout,
        lambda: f"rpc {module}:{function}/{len(args)} on {node}: no answer",
    )
    return interpret_rpc_result(result)


def _rex_answer(mbox: NativeMailbox, msg: Any, _ref: Reference) -> Any:
    if is_tuple(msg, 2) and is_atom(msg[0], "rex"):
        return msg[1]
    if is_tuple(msg, 4) and is_atom(msg[0], "io_request"):
        answer_io_request(mbox, msg)
    return NO_ANSWER


def _rex_down(reason: Any) -> Exception:
    # Watching rex tells us at once when the node cannot be reached (DOWN noconnection).
    if is_atom(reason, "noconnection"):
        return BadRpc(Atom("nodedown"))
    return BadRpc(reason)


def interpret_rpc_result(result: Any) -> Any:
    """The value of an `rpc:call` result, raising for `{badrpc, Reason}`."""
    if not (is_tuple(result, 2) and is_atom(result[0], "badrpc")):
        return result
    reason = result[1]
    if is_tuple(reason, 2) and is_atom(reason[0], "EXIT"):
        inner = reason[1]
        # An error's reason comes as {Reason, Stack}; an exit's as the bare reason.
        if is_tuple(inner, 2) and _looks_like_stack(inner[1]):
            raise RemoteError(inner[0], inner[1])
        raise RemoteExit(inner)
    raise BadRpc(reason)


def _looks_like_stack(term: Any) -> bool:
    if not isinstance(term, (list, FrozenList)) or not term:
        return False
    return all(isinstance(f, tuple) and len(f) in (3, 4) and isinstance(f[0], Atom) for f in term)


def gen_call(native: NativeNode, dest: Any, request: Any, timeout: Optional[float]) -> Any:
    """`gen_server:call(Dest, Request)`; see `Node.call`."""
    # The monitor reference doubles as the call's tag, as gen:call does.
    return monitor_send_await(
        native,
        dest,
        lambda pid, ref: (_GEN_CALL, (pid, ref), request),
        _gen_reply,
        lambda reason: RemoteExit(
            reason, f"call to {dest!r} failed: the server exited ({reason!r})"
        ),
        timeout,
        lambda: f"call to {dest!r}: no reply",
    )


def _gen_reply(_mbox: NativeMailbox, msg: Any, ref: Reference) -> Any:
    if is_tuple(msg, 2) and msg[0] == ref:
        return msg[1]
    return NO_ANSWER


# -- Erlang calling Python ------------------------------------------------------------------

Functions = Union[Mapping[str, Callable[..., Any]], types.ModuleType]


def _module_functions(functions: Functions) -> dict[str, Callable[..., Any]]:
    if isinstance(functions, types.ModuleType):
        # Only what the module defines itself: not what it imported (`from os import system`).
        name = functions.__name__
        return {
            attr: value
            for attr, value in vars(functions).items()
            if not attr.startswith("_")
            and callable(value)
            and getattr(value, "__module__", None) == name
        }
    table = dict(functions)
    for fname, fn in table.items():
        if not isinstance(fname, str) or not callable(fn):
            raise TypeError(f"expose needs names mapped to callables, got {fname!r}: {fn!r}")
    return table


def _accepts(fn: Callable[..., Any], arity: int) -> bool:
    try:
        import inspect

        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True  # some builtins have no signature: let the call decide
    try:
        signature.bind(*([None] * arity))
    except TypeError:
        return False
    return True


def python_error(exc: BaseException) -> tuple[Any, ...]:
    """The Erlang reason for a Python exception: `{python, TypeName, Message}`."""
    name = type(exc).__name__[:_MAX_ATOM]
    return (Atom("python"), Atom(name), str(exc).encode("utf-8", "replace"))


def python_stack(exc: BaseException, skip: int = 1) -> list[Any]:
    """The traceback as an Erlang stacktrace (innermost first)."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    stack = []
    for entry in reversed(frames[skip:]):
        code = entry.tb_frame.f_code
        module = str(entry.tb_frame.f_globals.get("__name__", "?"))
        location = [
            (Atom("file"), [ord(c) for c in code.co_filename]),
            (Atom("line"), entry.tb_lineno),
        ]
        stack.append(
            (Atom(module[:_MAX_ATOM]), Atom(code.co_name[:_MAX_ATOM]), code.co_argcount, location)
        )
    return stack[:_MAX_FRAMES]


class RpcServer:
    """The node's server for calls from Erlang into exposed Python functions."""

    def __init__(self, native: NativeNode, workers: int) -> None:
        self._native = native
        self._lock = threading.Lock()
        self._modules: dict[str, dict[str, Callable[..., Any]]] = {}
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="erlnode-rpc")
        self._spawner: Optional[NativeMailbox] = None
        self._rex: Optional[NativeMailbox] = None

    def install(self) -> bool:
        """Creates the spawn handler and `rex` mailboxes (once). False while the node has no
        name yet (NAME_ME: the first peer assigns it, so nothing can call us before)."""
        if self._rex is not None:
            return True
        with self._lock:
            if self._rex is not None:
                return True
            try:
                spawner = self._native.mailbox(None, self._on_spawn_request)
            except ValueError:
                return False
            self._native.set_spawn_handler(spawner)
            self._spawner = spawner
            self._rex = self._native.mailbox("rex", self._on_rex)
            return True

    # -- the exposed table -----------------------------------------------------------------

    def expose(self, module: str, functions: Functions) -> None:
        table = _module_functions(functions)
        with self._lock:
            self._modules.setdefault(module, {}).update(table)

    def expose_one(self, module: str, name: str, fn: Callable[..., Any]) -> None:
        if not callable(fn):
            raise TypeError(f"{fn!r} is not callable")
        with self._lock:
            self._modules.setdefault(module, {})[name] = fn

    def unexpose(self, module: str, name: Optional[str] = None) -> None:
        with self._lock:
            if name is None:
                self._modules.pop(module, None)
            else:
                self._modules.get(module, {}).pop(name, None)

    def exposed(self) -> dict[str, list[str]]:
        with self._lock:
            return {m: sorted(fs) for m, fs in self._modules.items()}

    def apply(self, module: Any, function: Any, args: Any) -> Outcome:
        """Calls the exposed `module:function(args...)`, catching everything like a BEAM process."""
        argv = erlang_list(args)
        fn = None
        if argv is not None and isinstance(module, str) and isinstance(function, str):
            with self._lock:
                fn = self._modules.get(str(module), {}).get(str(function))
        if fn is None or argv is None or not _accepts(fn, len(argv)):
            undef_args = argv if argv is not None else args
            return ("error", _UNDEF, [(module, function, undef_args, [])])
        try:
            return ("return", fn(*argv))
        except ErlangException as e:
            if e.kind == "error":
                return ("error", e.reason, python_stack(e))
            return (e.kind, e.reason)
        except Exception as e:  # noqa: BLE001 - every failure is reported to the Erlang caller
            return ("error", python_error(e), python_stack(e))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- SPAWN_REQUEST (erpc) ------------------------------------------------------------

    def _on_spawn_request(self, msg: Any) -> None:
        if not (is_tuple(msg, 7) and is_atom(msg[0], "$spawn_request")):
            log.warning("unexpected message to the spawn handler: %r", msg)
            return
        _, req_id, caller, _group_leader, mfa, opts, args = msg
        options = list(opts) if isinstance(opts, (list, FrozenList)) else []
        link = any(is_atom(o, "link") for o in options)
        monitor = any(
            is_atom(o, "monitor") or (is_tuple(o, 2) and is_atom(o[0], "monitor")) for o in options
        )
        argv = erlang_list(args) or []
        if mfa == (Atom("erpc"), Atom("execute_call"), 4) and len(argv) == 4:
            self._start(req_id, caller, link, monitor, self._execute_call, argv)
        elif mfa == (Atom("erpc"), Atom("execute_cast"), 3) and len(argv) == 3:
            self._start(req_id, caller, link, monitor, self._execute_cast, argv)
        else:
            # Only the erpc entry points are served: Python cannot run arbitrary Erlang code.
            self._native.spawn_reply(req_id, caller, None, False, False, error=Atom("notsup"))

    def _start(
        self,
        req_id: Any,
        caller: Any,
        link: bool,
        monitor: bool,
        work: Callable[[NativeMailbox, list[Any]], None],
        argv: list[Any],
    ) -> None:
        worker = self._native.mailbox(None, None)
        self._native.spawn_reply(req_id, caller, worker, link, monitor)
        try:
            self._pool.submit(work, worker, argv)
        except RuntimeError:  # the pool is shut down: the node is closing
            _close(worker, Atom("shutdown"))

    def _execute_call(self, worker: NativeMailbox, argv: list[Any]) -> None:
        res, module, function, args = argv
        outcome = self.apply(module, function, args)
        # erpc reads the result from the DOWN reason: {Res, return | throw | exit, X}
        # or {Res, error, Reason, Stack}.
        if not _close(worker, (res, Atom(outcome[0]), *outcome[1:])):
            error = python_error(EncodeError("the result cannot be encoded as an Erlang term"))
            _close(worker, (res, _ERROR, error, []))

    def _execute_cast(self, worker: NativeMailbox, argv: list[Any]) -> None:
        module, function, args = argv
        outcome = self.apply(module, function, args)
        if outcome[0] != "return":
            log.error("rpc:cast %s:%s failed: %r", module, function, outcome)
        _close(worker, _NORMAL)

    # -- the rex server ----------------------------------------------------------------------

    def _on_rex(self, msg: Any) -> None:
        gen = gen_message(msg)
        if isinstance(gen, GenCall):
            if _is_call(gen.request, ("call", "block_call")):
                self._submit(self._rex_call, gen.caller, gen.tag, gen.request)
            else:
                log.warning("rex: unsupported call %r", gen.request)
        elif isinstance(gen, GenCast):
            if _is_call(gen.request, ("cast",)):
                self._submit(self._rex_cast, gen.request)
        elif is_tuple(msg, 2) and isinstance(msg[0], Pid):
            sender, request = msg
            if _is_call(request, ("call",)):
                self._submit(self._rex_reply, sender, request)
            elif is_atom(request, "features_request"):
                node = Atom(self._native.name)
                self._rex_send(sender, (Atom("features_reply"), node, [Atom("erpc")]))
        else:
            log.debug("rex: ignored %r", msg)

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._pool.submit(fn, *args)
        except RuntimeError:
            pass  # the node is closing

    def _rex_result(self, request: tuple[Any, ...]) -> Any:
        outcome = self.apply(request[1], request[2], request[3])
        kind = outcome[0]
        if kind in ("return", "throw"):
            return outcome[1]
        if kind == "exit":
            return (_BADRPC, (_EXIT, outcome[1]))
        return (_BADRPC, (_EXIT, (outcome[1], outcome[2])))

    def _rex_send(self, dest: Any, message: Any) -> None:
        rex = self._rex
        if rex is None:
            return
        try:
            rex.send(dest, message)
        except EncodeError:
            error = python_error(EncodeError("the result cannot be encoded as an Erlang term"))
            rex.send(dest, _replace_result(message, (_BADRPC, (_EXIT, (error, [])))))
        except NodeClosedError:
            pass

    def _rex_call(self, sender: Any, tag: Any, request: tuple[Any, ...]) -> None:
        self._rex_send(sender, (tag, self._rex_result(request)))

    def _rex_reply(self, sender: Any, request: tuple[Any, ...]) -> None:
        self._rex_send(sender, (Atom("rex"), self._rex_result(request)))

    def _rex_cast(self, request: tuple[Any, ...]) -> None:
        outcome = self.apply(request[1], request[2], request[3])
        if outcome[0] != "return":
            log.error("rpc:cast %s:%s failed: %r", request[1], request[2], outcome)


def _is_call(request: Any, kinds: tuple[str, ...]) -> bool:
    """`{Kind, M, F, A}` or `{Kind, M, F, A, GroupLeader}` with Kind in `kinds`."""
    return (
        isinstance(request, tuple)
        and len(request) in (4, 5)
        and isinstance(request[0], Atom)
        and request[0] in kinds
    )


def _replace_result(message: tuple[Any, ...], result: Any) -> tuple[Any, ...]:
    return (*message[:-1], result)


def _close(mbox: NativeMailbox, reason: Any) -> bool:
    """Closes `mbox` with `reason`; False if `reason` cannot be encoded (then it stays open)."""
    try:
        mbox.close(reason)
    except EncodeError:
        return False
    except NodeClosedError:
        pass
    return True
