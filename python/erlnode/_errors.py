"""Exceptions of the OTP layer: failed calls into Erlang; Erlang exceptions raised from Python.

Calling Erlang (`Node.rpc`, `Node.call`) raises a subclass of `RpcError`; each carries the
Erlang term it got as `.reason`. A timeout on the Python side is the built-in `TimeoutError`.

A Python function called from Erlang (`Node.expose`) may raise `ErlangError`, `ErlangExit` or
`ErlangThrow` to raise exactly that Erlang exception in the caller; any other Python exception
reaches Erlang as the error `{python, TypeName, Message}` (see docs/otp.md).
"""

from __future__ import annotations

from typing import Any


class RpcError(Exception):
    """A call into Erlang failed; `reason` is the Erlang term describing why.

    Example::

        try:
            node.rpc("erl@host", "erlang", "binary_to_atom", [42])
        except erlnode.RpcError as e:
            print(type(e).__name__, e.reason)       # RemoteError badarg
    """

    def __init__(self, reason: Any, message: str = "") -> None:
        super().__init__(message or f"{type(self).__name__}: {reason!r}")
        self.reason = reason


class BadRpc(RpcError):
    """`{badrpc, Reason}` that is not an exception of the called function: `nodedown`, `notsup`…

    Example::

        try:
            node.rpc("gone@host", "erlang", "node", [])
        except erlnode.BadRpc as e:
            print(e.reason)                         # nodedown
    """


class RemoteError(RpcError):
    """The called function raised an error (`erlang:error/1`); `stacktrace` is its Erlang stack.

    Example::

        try:
            node.rpc("erl@host", "erlang", "binary_to_atom", [42])
        except erlnode.RemoteError as e:
            e.reason                                # Atom('badarg')
            e.stacktrace[0]                         # (Atom('erlang'), Atom('binary_to_atom'), ...)
    """

    def __init__(self, reason: Any, stacktrace: Any = None) -> None:
        super().__init__(reason, f"remote error: {reason!r}")
        self.stacktrace: list[Any] = list(stacktrace) if stacktrace else []


class RemoteExit(RpcError):
    """The called function exited (`exit/1`), or the called process is gone (`noproc`, …).

    Example::

        try:
            node.call(("no_such_server", "erl@host"), Atom("get"))
        except erlnode.RemoteExit as e:
            e.reason                                # Atom('noproc')
    """


class ErlangException(Exception):
    """Raise a subclass from a function exposed to Erlang to raise that Erlang exception there.

    `ErlangError`, `ErlangExit` and `ErlangThrow` raise an error, an exit and a throw; `kind`
    is `"error"`, `"exit"` or `"throw"`, `reason` the Erlang term.

    Example::

        @node.expose_function("accounts")
        def withdraw(account, amount):
            if account not in balances:
                raise erlnode.ErlangError(Atom("badarg"))     # error:badarg in the caller
            if amount > balances[account]:
                raise erlnode.ErlangThrow((Atom("error"), Atom("insufficient_funds")))
            balances[account] -= amount
            return Atom("ok")
    """

    kind = ""

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


class ErlangError(ErlangException):
    """`erlang:error(Reason)` in the caller (`rpc:call`: `{badrpc, {'EXIT', {Reason, Stack}}}`).

    Example::

        @node.expose_function("kv")
        def fetch(key):
            if key not in table:
                raise erlnode.ErlangError((Atom("not_found"), key))
            return table[key]
        # Erlang: erpc:call('py@host', kv, fetch, [nokey])
        #   raises error:{exception, {not_found, nokey}, Stack}
    """

    kind = "error"


class ErlangExit(ErlangException):
    """`exit(Reason)` in the caller (rpc:call returns `{badrpc, {'EXIT', Reason}}`).

    Example::

        @node.expose_function("jobs")
        def wait(job_id):
            if job_id in cancelled:
                raise erlnode.ErlangExit(Atom("cancelled"))
            return results.get(job_id)
        # Erlang: rpc:call('py@host', jobs, wait, [7]) -> {badrpc, {'EXIT', cancelled}}
    """

    kind = "exit"


class ErlangThrow(ErlangException):
    """`throw(Value)` in the caller (rpc:call returns `Value`, as for an Erlang function).

    Example::

        @node.expose_function("kv")
        def fetch(key):
            if key not in table:
                raise erlnode.ErlangThrow((Atom("error"), Atom("not_found")))
            return (Atom("ok"), table[key])
        # Erlang: rpc:call('py@host', kv, fetch, [nokey]) -> {error, not_found}
    """

    kind = "throw"
