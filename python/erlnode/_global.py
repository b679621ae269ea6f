"""A minimal `global_name_server` for visible nodes, so that OTP's `global` stays healthy.

A visible node is a cluster member for OTP's `global`: on nodeup the peer's name server
casts `{init_connect, ...}` to `{global_name_server, Us}`, its locker waits for our locker's
answer, and `global:sync()` on the peer waits until the connect session completes. A node
that drops these messages blocks `global:sync()` (and `global:register_name/2`, which locks
every known node) forever. This module answers them.

We hold no global names and have no partition of our own, so every session is short:

  peer gns  -> us : {init_connect, {Vsn, HisTag}, Node, {locker, _, _, HisLocker}}   (cast)
  us -> peer gns  : {init_connect, {Vsn, MyTag}, Us, {locker, _, [], OurLocker}}     (cast)
                    {init_connect_ack, Us, HisTag, MyTag}                  (vsn >= 8, info)
  peer locker     : sets the lock {global, [Lockers]} on us ({set_lock, Id} call, below),
                    then casts {lock_set, HisLocker, true, Known, MyTag} to us
  us -> peer gns  : {lock_set, OurLocker, true, [], HisTag}        (the peer's locker is done)
                    {exchange, Us, [], [], HisTag}                 (our names: none)
                    {resolved, Us, [], [], unused, [], HisTag}     (no ops, nobody else known)
  peer gns  -> us : {exchange, ...}, {resolved, ...}: the session is over, we are synced

Nodes that learn about us from the peer (its `new_nodes`) connect and cast `{in_sync, N, _}`;
we answer with our own `in_sync`, as OTP's `sync_others` would, so their `global:sync()`
completes too. The `gen_server` calls that `global` makes on every known node are served: a
real lock table for `set_lock`/`del_lock` (locks of dead callers are dropped through
monitors), `register`/`unregister` accepted (we keep no name table). One mailbox is both the
name server and "the locker": since protocol version 6 lockers talk only through the name
servers, a locker pid is just an identity.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from ._erlnode import NativeMailbox, NativeNode, NodeClosedError, Pid, Reference
from ._match import GenCall, GenCast, gen_message, is_atom, is_tuple
from ._terms import Atom

log = logging.getLogger("erlnode.global")

NAME = "global_name_server"

#: The newest protocol version we speak (OTP 25..29 announce 8). A newer peer speaks ours;
#: an older one (5..7) gets its own, as OTP's version rule says.
MAX_VSN = 8
#: Versions below this have no permanent locker; OTP itself dropped them.
MIN_VSN = 5
#: From this version on, lock_set carries the session tag and init_connect is acknowledged.
VERIFY_CONNECT_VSN = 8
#: Before this version, lock_set goes to the locker pid, not through the name server.
LOCKER_VIA_SERVER_VSN = 6

_GEN_CAST = Atom("$gen_cast")
_OK = Atom("ok")
_YES = Atom("yes")


@dataclass
class _Session:
    """A connect session started by `node`'s init_connect."""

    vsn: int
    his_tag: Any
    my_tag: int
    answered: bool = False


@dataclass
class _Lock:
    """`global`'s lock on `resource`, held by `requester` for the pids in `holders`."""

    resource: Any
    requester: Any
    holders: dict[Pid, Reference] = field(default_factory=dict)


class GlobalServer:
    """Our `global_name_server`: started by `Node` when it is visible."""

    def __init__(self, native: NativeNode) -> None:
        self._native = native
        self._lock = threading.Lock()
        self._tags = itertools.count(1)
        self._sessions: dict[str, _Session] = {}
        self._synced: set[str] = set()
        self._in_sync_sent: set[str] = set()
        self._locks: list[_Lock] = []
        self._mbox: NativeMailbox = native.mailbox(NAME, self._on_message)
        native.monitor_nodes(self._mbox)

    # -- public view ------------------------------------------------------------------------

    def synced_nodes(self) -> list[str]:
        """Nodes whose `global` has completed a connect session (or `in_sync`) with us."""
        with self._lock:
            return sorted(self._synced)

    def locks(self) -> list[tuple[Any, Any, list[Pid]]]:
        """The locks set on this node: `(resource_id, requester_id, holder_pids)`."""
        with self._lock:
            return [(lk.resource, lk.requester, list(lk.holders)) for lk in self._locks]

    def close(self) -> None:
        if not self._mbox.closed:
            self._mbox.close()

    # -- dispatch ---------------------------------------------------------------------------

    def _on_message(self, msg: Any) -> None:
        try:
            with self._lock:
                gen = gen_message(msg)
                if isinstance(gen, GenCall) and isinstance(gen.caller, Pid):
                    self._send(gen.caller, (gen.tag, self._call(gen.request, gen.caller)))
                elif isinstance(gen, GenCast):
                    self._cast(gen.request)
                else:
                    self._info(msg)
        except NodeClosedError:
            pass  # the node is closing: nobody is left to answer

    def _us(self) -> Atom:
        return Atom(self._mbox.pid.node)

    def _send(self, dest: Any, message: Any) -> None:
        self._mbox.send(dest, message)

    def _to_server(self, node: str, message: Any) -> None:
        self._send((NAME, node), message)

    def _cast_to(self, node: str, request: Any) -> None:
        self._to_server(node, (_GEN_CAST, request))

    # -- gen_server calls (global's multi_calls on every known node) --------------------------

    def _call(self, request: Any, caller: Pid) -> Any:
        if is_tuple(request, 2) and is_atom(request[0], "set_lock") and is_tuple(request[1], 2):
            return self._set_lock(request[1][0], request[1][1], caller)
        if is_tuple(request, 2) and is_atom(request[0], "del_lock") and is_tuple(request[1], 2):
            self._del_lock(request[1][0], request[1][1], caller)
            return True
        if (is_tuple(request, 4) and is_atom(request[0], "register")) or (
            is_tuple(request, 5) and is_atom(request[0], "register_ext")
        ):
            return _YES  # accepted; we keep no name table (see docs/global.md)
        if is_tuple(request, 2) and is_atom(request[0], "unregister"):
            return _OK
        if is_atom(request, "get_known"):
            return [Atom(n) for n in sorted(self._synced)]
        if is_atom(request, "get_synced"):
            return [Atom(n) for n in sorted(self._synced)]
        if is_atom(request, "get_protocol_version"):
            return MAX_VSN
        if is_atom(request, "get_names_ext"):
            return []
        if is_tuple(request, 2) and is_atom(request[0], "sync"):
            return _OK  # we start no sessions, so there is nothing to wait for
        log.debug("global_name_server: unsupported call %r", request)
        return (Atom("error"), (Atom("unsupported"), request))

    def _find_lock(self, resource: Any) -> Optional[_Lock]:
        for lk in self._locks:
            if lk.resource == resource:
                return lk
        return None

    def _set_lock(self, resource: Any, requester: Any, caller: Pid) -> bool:
        # As global's can_set_lock: free, or already held by the same requester id.
        lk = self._find_lock(resource)
        if lk is None:
            lk = _Lock(resource, requester)
            self._locks.append(lk)
        elif lk.requester != requester:
            return False
        if caller not in lk.holders:
            lk.holders[caller] = self._mbox.monitor(caller)
        return True

    def _del_lock(self, resource: Any, requester: Any, caller: Pid) -> None:
        lk = self._find_lock(resource)
        if lk is None or lk.requester != requester:
            return
        ref = lk.holders.pop(caller, None)
        if ref is not None:
            self._mbox.demonitor(ref)
        if not lk.holders:
            self._locks.remove(lk)

    def _drop_holder(self, pid: Pid) -> None:
        for lk in list(self._locks):
            lk.holders.pop(pid, None)
            if not lk.holders:
                self._locks.remove(lk)

    # -- casts (the connect protocol) --------------------------------------------------------

    def _cast(self, request: Any) -> None:
        if not isinstance(request, tuple) or not request or not isinstance(request[0], Atom):
            log.debug("global_name_server: unexpected cast %r", request)
            return
        kind = str(request[0])
        if kind == "init_connect" and len(request) == 4:
            self._init_connect(request[1], str(request[2]), request[3])
        elif kind == "lock_set" and len(request) in (4, 5):
            self._lock_set(request)
        elif kind == "resolved" and len(request) == 7:
            self._resolved(str(request[1]), request[6])
        elif kind == "in_sync" and len(request) == 3:
            self._in_sync(str(request[1]))
        # exchange (the peer's names), new_nodes (nodes the peer met; they come to us with
        # in_sync), async_del_name, async_del_lock: nothing to do for a node without names.

    def _init_connect(self, vsn: Any, node: str, init_msg: Any) -> None:
        his_vsn = vsn[0] if isinstance(vsn, tuple) and len(vsn) >= 2 else None
        if not isinstance(his_vsn, int) or his_vsn < MIN_VSN:
            log.warning("global: unsupported protocol version %r from %s", vsn, node)
            return
        if not (is_tuple(init_msg, 4) and is_atom(init_msg[0], "locker")):
            log.warning("global: malformed init_connect from %s: %r", node, init_msg)
            return
        session = _Session(vsn=min(his_vsn, MAX_VSN), his_tag=vsn[1], my_tag=next(self._tags))
        self._sessions[node] = session  # a new attempt replaces an older one
        us = self._us()
        my_locker = self._mbox.pid
        self._cast_to(
            node,
            (
                Atom("init_connect"),
                (session.vsn, session.my_tag),
                us,
                (Atom("locker"), Atom("no_longer_a_pid"), [], my_locker),
            ),
        )
        if session.vsn >= VERIFY_CONNECT_VSN:
            self._to_server(node, (Atom("init_connect_ack"), us, session.his_tag, session.my_tag))

    def _lock_set(self, msg: tuple[Any, ...]) -> None:
        his_locker, is_set = msg[1], msg[2]
        if not isinstance(his_locker, Pid) or is_set is not True:
            return  # a refusal: the peer's locker retries with a new attempt
        node = his_locker.node
        session = self._sessions.get(node)
        if session is None or session.answered:
            return
        if len(msg) == 5 and msg[4] != session.my_tag:
            return  # from an older session; the peer cancels it
        session.answered = True
        # Our partition is this node alone, and the peer's locker already holds global's
        # lock here: our side of the lock is set. Say so, then send our (empty) names and
        # (empty) resolution at once; the peer buffers them until its own side is ready.
        us = self._us()
        tag = session.his_tag
        if session.vsn >= VERIFY_CONNECT_VSN:
            reply: tuple[Any, ...] = (Atom("lock_set"), self._mbox.pid, True, [], tag)
        else:
            reply = (Atom("lock_set"), self._mbox.pid, True, [])
        if session.vsn >= LOCKER_VIA_SERVER_VSN:
            self._cast_to(node, reply)
        else:
            self._send(his_locker, reply)
        self._cast_to(node, (Atom("exchange"), us, [], [], tag))
        self._cast_to(node, (Atom("resolved"), us, [], [], Atom("unused"), [], tag))

    def _resolved(self, node: str, my_tag: Any) -> None:
        session = self._sessions.get(node)
        if session is None or session.my_tag != my_tag or not session.answered:
            return
        del self._sessions[node]
        self._synced.add(node)

    def _in_sync(self, node: str) -> None:
        # `node` learnt about us from a node we are synced with, and counts us as known.
        # Tell it the same, once per connection, so that its global:sync() completes.
        self._synced.add(node)
        if node not in self._in_sync_sent:
            self._in_sync_sent.add(node)
            self._cast_to(node, (Atom("in_sync"), self._us(), True))

    # -- other messages ----------------------------------------------------------------------

    def _info(self, msg: Any) -> None:
        if is_tuple(msg, 2) and is_atom(msg[0], "nodedown"):
            self._forget(str(msg[1]))
        elif is_tuple(msg, 5) and is_atom(msg[0], "DOWN") and isinstance(msg[3], Pid):
            self._drop_holder(msg[3])
        elif is_tuple(msg, 3) and is_atom(msg[0], "cancel_connect"):
            session = self._sessions.get(str(msg[1]))
            if session is not None and session.my_tag == msg[2]:
                del self._sessions[str(msg[1])]  # the peer restarts with a new init_connect
        elif (is_tuple(msg, 4) or is_tuple(msg, 5)) and is_atom(msg[0], "lock_set"):
            self._lock_set(msg)  # protocol version 5: straight to "the locker"
        elif is_tuple(msg, 2) and is_atom(msg[0], "remove_connection"):
            self._remove_connection(str(msg[1]))
        # nodeup: the peer starts the session; init_connect_ack: we never restart a session
        # ourselves; lost_connection: we keep no partition view to prune, and the nodes that
        # do tell each other.

    def _remove_connection(self, node: str) -> None:
        # prevent_overlapping_partitions: `node` heard that a node we are synced with lost
        # us, has already forgotten us, and asks us to take the connection down. Keeping it
        # would leave us in its nodes() but not in its global state: its global:sync() would
        # wait for us forever.
        self._forget(node)
        self._native.disconnect(node)

    def _forget(self, node: str) -> None:
        self._sessions.pop(node, None)
        self._synced.discard(node)
        self._in_sync_sent.discard(node)
        for lk in list(self._locks):
            for pid in [p for p in lk.holders if p.node == node]:
                self._mbox.demonitor(lk.holders.pop(pid))
            if not lk.holders:
                self._locks.remove(lk)
