"""OTP process groups (`pg`) on a visible node: a scope process that Erlang's `pg` talks to.

Each scope (`pg` by default; any atom, as `pg:start_link(Scope)`) is a mailbox registered
under the scope's name, with a callback on the node's dispatcher thread. To the `pg` scope
processes of the other nodes it is one of them; the protocol is the one OTP's scopes speak
among themselves (kernel's pg.erl, OTP 25 to 29; docs/pg.md):

  on nodeup, and for every connected node when the scope starts:
      {Scope, Node} ! {discover, Us}
  peer -> us : {discover, Peer}            (OTP 29 sends {discover, Peer, 1}; same meaning)
  us -> peer : gen_server:cast(Peer, {sync, Us, [{Group, [Pid]}]})   (our members)
               Peer ! {discover, Us}, and monitor Peer      (the first time we meet Peer)
  peer -> us : {'$gen_cast', {sync, Peer, Groups}}   (replaces what we know of Peer's members)
  either way : {join, Scope, Group, PidOrPids}, {leave, Scope, PidOrPids, [Group]}

We always announce protocol version 0 (the plain `{discover, Us}`): OTP 25 and 27 know no
other, and OTP 29 answers a version-0 peer with the version-0 messages above. A scope that
goes down (DOWN of our monitor; `noconnection` when its node is lost) takes all its members
with it, on either side. Our own members are monitored: a mailbox that closes leaves all its
groups, and every peer is told.

Groups are Erlang terms; they are told apart by their encoding (`erlnode.encode`), so the
atom `workers` and the string `"workers"` are different groups, as in Erlang.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from ._erlnode import NativeMailbox, NativeNode, NodeClosedError, Pid, Reference, encode
from ._match import GenCast, erlang_list, gen_message, is_atom, is_tuple
from ._terms import Atom, ExactKey, FrozenList, FrozenMap, ImproperList

log = logging.getLogger("erlnode.pg")

#: The default scope, as `pg:start_link()` names it.
DEFAULT_SCOPE = "pg"

_GEN_CAST = Atom("$gen_cast")
_DISCOVER = Atom("discover")
_SYNC = Atom("sync")
_JOIN = Atom("join")
_LEAVE = Atom("leave")

HIDDEN_ERROR = (
    "pg sees only visible nodes, and this node is hidden: make it with "
    "erlnode.Node(..., hidden=False) to join process groups or see their members"
)


def group_key(group: Any) -> bytes:
    """The key a group is known by: the encoding of its canonical form. Erlang tells `a`
    from `"a"` and `1` from `1.0` (Python does not), so the key is an encoding; but one
    Erlang term has several (a list of bytes, written as a list or as a string; a map's
    keys in any order), so the term is first put in the form that Erlang would send."""
    return encode(_canonical(group))


def _canonical(term: Any) -> Any:
    if isinstance(term, (list, FrozenList)):
        items = [_canonical(item) for item in term]
        if 0 < len(items) <= 0xFFFF and all(type(i) is int and 0 <= i <= 255 for i in items):
            return "".join(map(chr, items))  # what term_to_binary writes: STRING_EXT
        return items
    if isinstance(term, tuple):
        return tuple(_canonical(item) for item in term)
    if isinstance(term, (dict, FrozenMap)):
        pairs = [(_canonical(k), _canonical(v)) for k, v in term.items()]
        pairs.sort(key=lambda kv: encode(kv[0]))
        return {ExactKey(k): v for k, v in pairs}
    if isinstance(term, ExactKey):
        return _canonical(term.value)
    if isinstance(term, ImproperList):
        return ImproperList([_canonical(item) for item in term.elements], _canonical(term.tail))
    return term


def _pids(term: Any) -> list[Pid]:
    """`PidOrPids` of a join or leave message as a list."""
    if isinstance(term, Pid):
        return [term]
    items = erlang_list(term)
    return [p for p in items if isinstance(p, Pid)] if items is not None else []


def _remove_each(items: list[Pid], remove: list[Pid]) -> list[Pid]:
    """`Items -- Remove`: one occurrence of each element of `remove` taken out of `items`."""
    rest = list(items)
    for pid in remove:
        try:
            rest.remove(pid)
        except ValueError:
            pass
    return rest


@dataclass
class _Group:
    """A group with members in this scope: `members` is every member (newest first, a pid
    that joined twice is there twice, as `pg:get_members/2` gives them); `local` those of
    this node."""

    term: Any
    members: list[Pid] = field(default_factory=list)
    local: list[Pid] = field(default_factory=list)


@dataclass
class _Member:
    """A mailbox of this node in some groups (a group once per join), monitored by `ref`."""

    ref: Reference
    groups: list[bytes] = field(default_factory=list)


@dataclass
class _Peer:
    """Another node's scope process, monitored by `ref`, and its members as it told us."""

    ref: Reference
    groups: dict[bytes, list[Pid]] = field(default_factory=dict)


@dataclass
class _Watcher:
    """A `monitor_group` subscription: notifications go to `pid`; `owned` is our own
    callback mailbox for a callable watcher (closed with the subscription); `down_ref`
    monitors a watching mailbox so that its subscription goes when it closes."""

    key: bytes
    pid: Pid
    owned: Optional[NativeMailbox]
    down_ref: Optional[Reference]


class Scope:
    """One `pg` scope of a visible node (see the module docstring)."""

    def __init__(self, native: NativeNode, name: str) -> None:
        self.name = name
        self._native = native
        self._lock = threading.Lock()
        self._groups: dict[bytes, _Group] = {}
        self._local: dict[Pid, _Member] = {}
        self._peers: dict[Pid, _Peer] = {}
        self._watchers: dict[Reference, _Watcher] = {}
        self._watcher_downs: dict[Reference, Reference] = {}  # monitor ref -> watcher ref
        # Held until the scope is set up: a message may come as soon as the name exists.
        with self._lock:
            self._mbox: NativeMailbox = native.mailbox(name, self._on_message)
            native.monitor_nodes(self._mbox)
            # As pg's init: every node already connected hears about the new scope.
            for node in native.connected_nodes():
                self._discover(node)

    @property
    def pid(self) -> Pid:
        """The scope process's pid (what the other nodes' scopes monitor)."""
        return self._mbox.pid

    def close(self) -> None:
        if not self._mbox.closed:
            self._mbox.close()
        with self._lock:
            for watcher in self._watchers.values():
                if watcher.owned is not None and not watcher.owned.closed:
                    watcher.owned.close()

    # -- the Python API ----------------------------------------------------------------------

    def join(self, group: Any, pid: Pid) -> None:
        """`pg:join(Scope, Group, Pid)` for a mailbox of this node."""
        key = group_key(group)
        with self._lock:
            member = self._local.get(pid)
            if member is None:
                # Monitored before anyone hears of it: if it is already gone, the DOWN
                # (noproc) follows and takes it out again.
                member = self._local[pid] = _Member(self._mbox.monitor(pid))
            member.groups.append(key)
            entry = self._groups.get(key)
            if entry is None:
                entry = self._groups[key] = _Group(group)
            entry.members.insert(0, pid)
            entry.local.insert(0, pid)
            self._notify(key, _JOIN, [pid])
            self._broadcast((_JOIN, self._mbox.pid, entry.term, pid))

    def leave(self, group: Any, pid: Pid) -> bool:
        """`pg:leave(Scope, Group, Pid)`: False (`not_joined`) when `pid` is not in it."""
        key = group_key(group)
        with self._lock:
            member = self._local.get(pid)
            if member is None or key not in member.groups:
                return False
            member.groups.remove(key)
            if not member.groups:
                del self._local[pid]
                self._mbox.demonitor(member.ref)
            entry = self._groups[key]
            entry.local.remove(pid)
            self._drop_members(key, [pid])
            self._broadcast((_LEAVE, self._mbox.pid, pid, [entry.term]))
            return True

    def members(self, group: Any) -> list[Pid]:
        """`pg:get_members(Scope, Group)`."""
        with self._lock:
            entry = self._groups.get(group_key(group))
            return list(entry.members) if entry is not None else []

    def local_members(self, group: Any) -> list[Pid]:
        """`pg:get_local_members(Scope, Group)`."""
        with self._lock:
            entry = self._groups.get(group_key(group))
            return list(entry.local) if entry is not None else []

    def which_groups(self) -> list[Any]:
        """`pg:which_groups(Scope)`."""
        with self._lock:
            return [entry.term for entry in self._groups.values()]

    def monitor(
        self, group: Any, pid: Pid, owned: Optional[NativeMailbox] = None
    ) -> tuple[Reference, list[Pid]]:
        """`pg:monitor(Scope, Group)` on behalf of `pid`: its members now, and from then on
        `(Ref, join | leave, Group, Pids)` messages to `pid`."""
        key = group_key(group)
        with self._lock:
            ref = self._native.make_ref()
            down_ref = None if owned is not None else self._mbox.monitor(pid)
            self._watchers[ref] = _Watcher(key, pid, owned, down_ref)
            if down_ref is not None:
                self._watcher_downs[down_ref] = ref
            entry = self._groups.get(key)
            return ref, list(entry.members) if entry is not None else []

    def demonitor(self, ref: Reference) -> bool:
        """`pg:demonitor(Scope, Ref)`: False when `ref` is not a monitor of this scope."""
        with self._lock:
            watcher = self._watchers.pop(ref, None)
            if watcher is None:
                return False
            self._forget_watcher(watcher)
            return True

    # -- messages from the other scopes ------------------------------------------------------

    def _on_message(self, msg: Any) -> None:
        try:
            with self._lock:
                self._handle(msg)
        except NodeClosedError:
            pass  # the node is closing: nobody is left to tell

    def _handle(self, msg: Any) -> None:
        if not isinstance(msg, tuple) or not msg or not isinstance(msg[0], Atom):
            log.debug("pg %s: unexpected message %r", self.name, msg)
            return
        kind = msg[0]
        if kind == "join" and len(msg) == 4 and isinstance(msg[1], Pid):
            self._remote_join(msg[1], msg[2], _pids(msg[3]))
        elif kind == "leave" and len(msg) == 4 and isinstance(msg[1], Pid):
            groups = erlang_list(msg[3])
            self._remote_leave(msg[1], _pids(msg[2]), groups or [])
        elif kind == "discover" and len(msg) in (2, 3) and isinstance(msg[1], Pid):
            self._handle_discover(msg[1])
        elif kind == "$gen_cast":
            gen = gen_message(msg)
            request: Any = gen.request if isinstance(gen, GenCast) else None
            if is_tuple(request, 3) and is_atom(request[0], "sync"):
                if isinstance(request[1], Pid):
                    self._handle_sync(request[1], erlang_list(request[2]) or [])
            else:
                log.debug("pg %s: unexpected cast %r", self.name, msg)
        elif kind == "DOWN" and len(msg) == 5 and isinstance(msg[3], Pid):
            self._handle_down(msg[1], msg[3])
        elif kind == "nodeup" and len(msg) == 2:
            self._discover(str(msg[1]))
        elif kind != "nodedown":  # a lost node's scope goes with its monitor's DOWN
            log.debug("pg %s: unexpected message %r", self.name, msg)

    def _connected(self, node: str) -> bool:
        return node in self._native.connected_nodes()

    def _discover(self, node: str) -> None:
        # Like OTP 27+'s `noconnect`: a nodeup handled after the node went again (the
        # dispatcher thread may lag) must not connect to it anew.
        if self._connected(node):
            self._mbox.send((self.name, node), (_DISCOVER, self._mbox.pid))

    def _handle_discover(self, peer: Pid) -> None:
        if not self._connected(peer.node):
            return  # gone already: monitoring or answering it would connect again
        # Our members, as one sync cast; then, the first time, the same question back.
        self._mbox.send(peer, (_GEN_CAST, (_SYNC, self._mbox.pid, self._local_groups())))
        if peer not in self._peers:
            self._peers[peer] = _Peer(self._mbox.monitor(peer))
            self._mbox.send(peer, (_DISCOVER, self._mbox.pid))

    def _local_groups(self) -> list[tuple[Any, list[Pid]]]:
        by_group: dict[bytes, list[Pid]] = {}
        for pid, member in self._local.items():
            for key in member.groups:
                by_group.setdefault(key, []).insert(0, pid)
        return [(self._groups[key].term, pids) for key, pids in by_group.items()]

    def _handle_sync(self, peer_pid: Pid, groups: list[Any]) -> None:
        peer = self._peers.get(peer_pid)
        if peer is None:
            if not self._connected(peer_pid.node):
                return  # gone already: its members with it
            peer = self._peers[peer_pid] = _Peer(self._mbox.monitor(peer_pid))
        new: dict[bytes, tuple[Any, list[Pid]]] = {}
        for item in groups:
            if is_tuple(item, 2):
                key = group_key(item[0])
                term, pids = new.setdefault(key, (item[0], []))
                pids.extend(_pids(item[1]))
        # What the peer tells us now replaces what it told us before.
        for key, old_pids in list(peer.groups.items()):
            if key not in new:
                self._drop_members(key, old_pids)
        for key, (term, pids) in new.items():
            old_pids = peer.groups.get(key, [])
            gone = _remove_each(old_pids, pids)
            came = _remove_each(pids, old_pids)
            if gone:
                self._drop_members(key, gone)
            if came:
                self._add_members(key, term, came)
        peer.groups = {key: pids for key, (_, pids) in new.items() if pids}

    def _remote_join(self, peer_pid: Pid, group: Any, pids: list[Pid]) -> None:
        peer = self._peers.get(peer_pid)
        if peer is None or not pids:
            return  # not (yet) a scope we know: its sync will tell us
        key = group_key(group)
        peer.groups[key] = pids + peer.groups.get(key, [])
        self._add_members(key, group, pids)

    def _remote_leave(self, peer_pid: Pid, pids: list[Pid], groups: list[Any]) -> None:
        peer = self._peers.get(peer_pid)
        if peer is None:
            return
        for group in groups:
            key = group_key(group)
            rest = _remove_each(peer.groups.get(key, []), pids)
            if rest:
                peer.groups[key] = rest
            else:
                peer.groups.pop(key, None)
            self._drop_members(key, pids)

    def _handle_down(self, ref: Any, pid: Pid) -> None:
        member = self._local.get(pid)
        if member is not None and member.ref == ref:
            # A mailbox of ours closed: it leaves every group it was in, everywhere.
            del self._local[pid]
            terms = []
            for key in member.groups:
                entry = self._groups[key]
                terms.append(entry.term)
                entry.local.remove(pid)
                self._drop_members(key, [pid])
            self._broadcast((_LEAVE, self._mbox.pid, pid, terms))
            return
        peer = self._peers.get(pid)
        if peer is not None and peer.ref == ref:
            # Another node's scope went (or its node did): its members go with it.
            del self._peers[pid]
            for key, pids in peer.groups.items():
                self._drop_members(key, pids)
            return
        watcher_ref = self._watcher_downs.pop(ref, None) if isinstance(ref, Reference) else None
        if watcher_ref is not None:
            watcher = self._watchers.pop(watcher_ref, None)
            if watcher is not None:
                watcher.down_ref = None
                self._forget_watcher(watcher)

    # -- the group table ---------------------------------------------------------------------

    def _add_members(self, key: bytes, term: Any, pids: list[Pid]) -> None:
        entry = self._groups.get(key)
        if entry is None:
            entry = self._groups[key] = _Group(term)
        entry.members[:0] = pids
        self._notify(key, _JOIN, pids)

    def _drop_members(self, key: bytes, pids: list[Pid]) -> None:
        entry = self._groups.get(key)
        if entry is None:
            return
        entry.members = _remove_each(entry.members, pids)
        if not entry.members:
            del self._groups[key]
        self._notify(key, _LEAVE, pids, entry.term)

    def _notify(self, key: bytes, event: Atom, pids: list[Pid], term: Any = None) -> None:
        if not self._watchers:
            return
        if term is None:
            term = self._groups[key].term
        for ref, watcher in self._watchers.items():
            if watcher.key == key:
                self._mbox.send(watcher.pid, (ref, event, term, list(pids)))

    def _forget_watcher(self, watcher: _Watcher) -> None:
        if watcher.down_ref is not None:
            self._watcher_downs.pop(watcher.down_ref, None)
            self._mbox.demonitor(watcher.down_ref)
        if watcher.owned is not None and not watcher.owned.closed:
            watcher.owned.close()

    def _broadcast(self, msg: Any) -> None:
        if not self._peers:
            return
        # As OTP's `noconnect`: a peer whose connection just went (its DOWN not handled
        # yet) is skipped, not connected to again.
        connected = set(self._native.connected_nodes())
        for peer in self._peers:
            if peer.node in connected:
                self._mbox.send(peer, msg)


class Scopes:
    """The `pg` scopes of one visible node: started on first use, or with the node."""

    def __init__(self, native: NativeNode) -> None:
        self._native = native
        self._lock = threading.Lock()
        self._scopes: dict[str, Scope] = {}

    def get(self, name: str) -> Scope:
        """The scope `name`, started now if it is not running yet."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a pg scope is an atom name (a non-empty str), not {name!r}")
        with self._lock:
            scope = self._scopes.get(name)
            if scope is None:
                scope = self._scopes[name] = Scope(self._native, name)
            return scope

    def all(self) -> list[Scope]:
        with self._lock:
            return list(self._scopes.values())

    def close(self) -> None:
        for scope in self.all():
            scope.close()
