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
    """A call into Erlang failed; `reason` is the Erlang term describing why."""

    def __init__(self, reason: Any, message: str = "") -> None:
        super().__init__(message or f"{type(self).__name__}: {reason!r}")
        self.reason = reason


class BadRpc(RpcError):
    """`{badrpc, Reason}` that is not an exception of the called function: `nodedown`, `notsup`…"""


class RemoteError(RpcError):
    """The called function raised an error (`erlang:error/1`); `stacktrace` is its Erlang stack."""

    def __init__(self, reason: Any, stacktrace: Any = None) -> None:
        super().__init__(reason, f"remote error: {reason!r}")
        self.stacktrace: list[Any] = list(stacktrace) if stacktrace else []


class RemoteExit(RpcError):
    """The called function exited (`exit/1`), or the called process is gone (`noproc`, …)."""


class ErlangException(Exception):
    """Raise a subclass from a function exposed to Erlang to raise that Erlang exception there."""

    kind = ""

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


class ErlangError(ErlangException):
    """`erlang:error(Reason)` in the caller (`rpc:call`: `{badrpc, {'EXIT', {Reason, Stack}}}`)."""

    kind = "error"


class ErlangExit(ErlangException):
    """`exit(Reason)` in the caller (rpc:call returns `{badrpc, {'EXIT', Reason}}`)."""

    kind = "exit"


class ErlangThrow(ErlangException):
    """`throw(Value)` in the caller (rpc:call returns `Value`, as for an Erlang function)."""

    kind = "throw"
