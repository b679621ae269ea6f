"""`WorkerPool`: Python worker processes that Erlang finds through a `pg` group, supervised.

CPU-bound Python code uses one core per process, so a Python service that needs more is a
set of processes. Each worker here is its own visible node (named `<prefix><n>`), runs the
user's server (a `GenServer` subclass, or exposed functions) and joins a `pg` group, where
Erlang finds it with `pg:get_members/1,2`. The parent process has no node: it starts the
workers (multiprocessing), restarts those that crash or are killed (with back-off), and stops
them all on `close()`.

A worker ends by itself when its server crashes (the supervisor starts a new one) and when
the parent goes away (its pipe closes), so none outlives the pool.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import time
import types
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, NamedTuple, Optional, Union

from ._erlnode import Pid
from ._genserver import GenServer

if TYPE_CHECKING:  # multiprocessing is imported when a pool starts: `import erlnode` stays fast
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from ._node import Mailbox, Node

log = logging.getLogger("erlnode.pool")

#: What a worker runs: a `GenServer` subclass, or functions (names mapped to them, or a
#: module) exposed to Erlang's rpc/erpc under `module=`.
Server = Union["type[GenServer]", Mapping[str, Callable[..., Any]], types.ModuleType]

START_METHODS = ("spawn", "forkserver", "fork")

#: A worker that ran this long before it ended was healthy: its next restart waits only
#: `restart_delay` again.
STABLE_RUN = 10.0
#: How often a worker checks its server, its parent and its connections (seconds).
WORKER_TICK = 0.25


class WorkerInfo(
    NamedTuple(
        "WorkerInfo",
        # Real types, not the strings `from __future__ import annotations` would make: the
        # API reference resolves them.
        [
            ("number", int),
            ("node", str),
            ("member", Optional[Pid]),
            ("os_pid", Optional[int]),
            ("restarts", int),
        ],
    )
):
    """One worker of a pool, as `WorkerPool.workers()` reports it.

    `number` is 1 to `size` (the worker's node name ends with it); `node` the worker's node
    name (kept across restarts); `member` the pid that joined the group (None while the
    worker (re)starts); `os_pid` its OS process id (None between a crash and the restart);
    `restarts` how many times it was started again.

    Example::

        for w in pool.workers():
            print(w.number, w.node, w.member, w.os_pid, w.restarts)
            # 1 worker1@host <worker1@host.5.0> 41250 0
    """

    __slots__ = ()


def restart_delay_after(failures: int, base: float, cap: float) -> float:
    """The back-off before restarting a worker that failed `failures` times in a row
    (1 for the first): `base`, doubled for each further failure, at most `cap`."""
    return float(min(cap, base * 2 ** max(0, failures - 1)))


# -- the worker process ----------------------------------------------------------------------


class _Spec:
    """Everything a worker needs, sent to it (pickled) when it starts."""

    def __init__(
        self,
        server: Any,
        group: Any,
        scope: str,
        cookie: Optional[str],
        connect: tuple[str, ...],
        module: Optional[str],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        register: Optional[str],
        node_options: dict[str, Any],
    ) -> None:
        self.server = server
        self.group = group
        self.scope = scope
        self.cookie = cookie
        self.connect = connect
        self.module = module
        self.args = args
        self.kwargs = kwargs
        self.register = register
        self.node_options = node_options


def _start_server(spec: _Spec, node: Node) -> tuple[Optional[GenServer], Mailbox]:
    """Starts the worker's server; returns it (None for exposed functions) and the mailbox
    that joins the group."""
    if isinstance(spec.server, type) and issubclass(spec.server, GenServer):
        server = spec.server.start(node, *spec.args, name=spec.register, **spec.kwargs)
        return server, server.mailbox
    assert spec.module is not None
    node.expose(spec.module, spec.server)
    # The member stands for this node: Erlang calls erpc:call(node(Member), Module, F, Args).
    return None, node.mailbox(spec.register, callback=lambda _message: None)


def _run_worker(spec: _Spec, node_name: str, control: Connection, status: Connection) -> None:
    """The body of a worker process."""
    # Ctrl-C in a terminal reaches the whole process group: the parent handles it and stops
    # us cleanly; a KeyboardInterrupt here would only race it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import multiprocessing
    from multiprocessing.connection import wait

    from ._node import Node

    parent_pid = os.getppid()
    parent = multiprocessing.parent_process()
    try:
        node = Node(node_name, spec.cookie, hidden=False, **spec.node_options)
    except BaseException as e:  # noqa: BLE001 - reported to the parent, then exit
        status.send(("failed", f"{type(e).__name__}: {e}"))
        sys.exit(1)
    try:
        for peer in spec.connect:
            node.ping(peer, timeout=2.0)  # a peer not up yet is tried again below
        server, member = _start_server(spec, node)
        member.join_group(spec.group, scope=spec.scope)
        status.send(("ready", node.name, member.pid))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, then exit
        try:
            status.send(("failed", f"{type(e).__name__}: {e}"))
        finally:
            node.close()
        sys.exit(1)

    # The parent's end of `control` closes when it dies; with `fork`, other workers may
    # hold a copy of it, so its sentinel and our parent pid are watched too.
    watched: list[Any] = [control]
    if parent is not None and parent.sentinel is not None:
        watched.append(parent.sentinel)
    exit_code = 0
    next_ping = time.monotonic() + 1.0
    while True:
        ready = wait(watched, timeout=WORKER_TICK)
        if control in ready:
            try:
                if control.recv() == "stop":
                    break
            except EOFError:
                break  # the parent is gone
        if any(r is not control for r in ready) or os.getppid() != parent_pid:
            break  # the parent is gone
        if server is not None and not server.running:
            exit_code = 1  # the server crashed (logged by GenServer): the supervisor restarts us
            break
        if spec.connect and time.monotonic() >= next_ping:
            next_ping = time.monotonic() + 1.0  # a peer that is down is tried once a second
            connected = set(node.connected_nodes())
            for peer in spec.connect:
                if peer not in connected:
                    node.ping(peer, timeout=1.0)
    try:
        if server is not None and server.running:
            server.stop(timeout=5.0)
    finally:
        node.close()
    sys.exit(exit_code)


# -- the pool --------------------------------------------------------------------------------


class _Slot:
    """One worker's place in the pool, across its restarts."""

    def __init__(self, index: int, node: str) -> None:
        self.index = index
        self.node = node
        self.process: Optional[BaseProcess] = None
        self.control: Optional[Connection] = None
        self.status: Optional[Connection] = None
        self.member: Optional[Pid] = None
        self.started_at = 0.0
        self.ever_ready = False
        self.failures = 0  # in a row, for the back-off
        self.restarts = 0
        self.restart_at: Optional[float] = None
        self.error: Optional[str] = None


_live_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


class WorkerPool:
    """`size` worker processes, each its own visible node running `server` and joined to the
    `pg` group `group`, where Erlang finds them; supervised.

    Example::

        class Primes(erlnode.GenServer):
            def handle_call(self, request, from_):
                return count_primes(request)          # CPU-bound: one core per worker

        if __name__ == "__main__":
            with erlnode.WorkerPool(Primes, 4, group=Atom("primes"), cookie="secret",
                                    connect=["app@host"]) as pool:
                ...  # Erlang: [W | _] = pg:get_members(primes), gen_server:call(W, 1000000)

    `server` is a `GenServer` subclass, started in each worker as
    `server.start(node, *args, name=register, **kwargs)`, whose mailbox joins the group; or
    functions (a mapping of names to functions, or a module) exposed as `module` (required
    then), in which case a plain mailbox of the worker joins the group and Erlang calls
    `erpc:call(node(Member), Module, Function, Args)`. With the `spawn` and `forkserver`
    start methods, `server` and the arguments are pickled: define them at the top level of
    an importable module (or of the main script, under `if __name__ == "__main__":`).

    `size` is the number of workers (None: one per core). Worker `n` (1 to `size`) is the
    visible node `<name>n` (`name` may carry a host: `"w@host"` gives `w1@host`), with
    `cookie` (None: `~/.erlang.cookie`) and any other `Node` arguments in `node_options`
    (`ticktime`, `listen`, `epmd_port`…); `pg` only sees visible nodes. Each worker pings
    the nodes in `connect` when it starts, and again whenever the connection is down, so
    that the cluster finds it; the group is `group` of the pg scope `scope`.

    Supervision: a worker that ends for any reason but `close` (its server crashed, it was
    killed, it failed to start) is started again under the same node name after
    `restart_delay` seconds, doubled for each further failure in a row up to
    `max_restart_delay` (a worker that ran `STABLE_RUN` seconds counts as healthy again).
    `start_method` is `"spawn"` (default), `"forkserver"` or `"fork"`; the parent needs no
    node of its own (a forked child never uses one made before the fork).

    The constructor returns once every worker is in the group, and raises if one cannot
    start (RuntimeError, with the worker's error) or not within `start_timeout` seconds
    (TimeoutError); no worker is left running then. `close()` (or leaving a `with` block)
    stops them all; they leave the group as they go.
    """

    def __init__(
        self,
        server: Server,
        size: Optional[int] = None,
        *,
        group: Any,
        cookie: Optional[str] = None,
        connect: Iterable[str] = (),
        name: str = "worker",
        scope: str = "pg",
        module: Optional[str] = None,
        args: Iterable[Any] = (),
        kwargs: Optional[Mapping[str, Any]] = None,
        register: Optional[str] = None,
        node_options: Optional[Mapping[str, Any]] = None,
        start_method: Optional[str] = None,
        start_timeout: float = 30.0,
        restart_delay: float = 0.1,
        max_restart_delay: float = 10.0,
    ) -> None:
        if size is None:
            size = os.cpu_count() or 1
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int, not {size!r}")
        if isinstance(server, type):
            if not issubclass(server, GenServer):
                raise TypeError(f"server must be a GenServer subclass, not {server!r}")
            if module is not None:
                raise TypeError("module= names exposed functions; a GenServer takes none")
            functions: Any = server
        else:
            if module is None:
                raise TypeError("exposed functions need module= (the Erlang module name)")
            from ._rpc import _module_functions

            functions = _module_functions(server)
        method = start_method or "spawn"
        if method not in START_METHODS:
            raise ValueError(f"start_method must be one of {START_METHODS}, not {method!r}")
        options = dict(node_options or {})
        for reserved in ("name", "cookie", "hidden"):
            if reserved in options:
                raise TypeError(f"node_options cannot set {reserved!r}: the pool sets it")
        alive, at, host = name.partition("@")
        if not alive:
            raise ValueError(f"name must start with the node name prefix, not {name!r}")
        self._spec = _Spec(
            server=functions,
            group=group,
            scope=scope,
            cookie=cookie,
            connect=tuple(connect),
            module=module,
            args=tuple(args),
            kwargs=dict(kwargs or {}),
            register=register,
            node_options=options,
        )
        import multiprocessing

        _register_exit_handler()  # after multiprocessing's own: see there
        self._ctx: Any = multiprocessing.get_context(method)
        self._restart_delay = restart_delay
        self._max_restart_delay = max_restart_delay
        self._group = group
        self._scope = scope
        self._slots = [_Slot(i, f"{alive}{i}{at}{host}") for i in range(1, size + 1)]
        self._cond = threading.Condition()
        self._closing = False
        self._wake_r, self._wake_w = os.pipe()
        self._supervisor: Optional[threading.Thread] = None
        try:
            with self._cond:
                for slot in self._slots:
                    self._start(slot)
            self._supervisor = threading.Thread(
                target=self._supervise, name="erlnode-pool-supervisor", daemon=True
            )
            self._supervisor.start()
            self._wait_started(start_timeout)
        except BaseException:
            self.close()
            raise
        _live_pools.add(self)

    # -- the public view ---------------------------------------------------------------------

    @property
    def size(self) -> int:
        """The number of workers.

        Example::

            with erlnode.WorkerPool(Primes, group=Atom("primes")) as pool:
                pool.size               # os.cpu_count(): size=None starts one per core
        """
        return len(self._slots)

    @property
    def group(self) -> Any:
        """The `pg` group the workers join.

        Example::

            pool.group                      # Atom('primes'): pg:get_members(primes) in Erlang
        """
        return self._group

    @property
    def scope(self) -> str:
        """The `pg` scope of the group.

        Example::

            pool.scope                      # 'pg', the default scope
        """
        return self._scope

    @property
    def members(self) -> list[Pid]:
        """The pids in the group of the workers running now (fewer while some restart).

        Example::

            pool.members                    # [Pid('worker1@host', 5, 0, 1718893742), ...]
        """
        with self._cond:
            return [slot.member for slot in self._slots if slot.member is not None]

    @property
    def nodes(self) -> list[str]:
        """The workers' node names, worker 1 first.

        Example::

            pool.nodes                      # ['worker1@host', 'worker2@host', ...]
        """
        return [slot.node for slot in self._slots]

    @property
    def restarts(self) -> int:
        """How many times workers were started again, in all.

        Example::

            if pool.restarts:
                log.warning("workers restarted %d times", pool.restarts)
        """
        with self._cond:
            return sum(slot.restarts for slot in self._slots)

    @property
    def closed(self) -> bool:
        """True once `close` has begun.

        Example::

            pool.close()
            pool.closed                     # True
        """
        return self._closing

    def workers(self) -> list[WorkerInfo]:
        """Each worker as it is now.

        Example::

            restarting = [w.node for w in pool.workers() if w.member is None]
        """
        with self._cond:
            return [
                WorkerInfo(
                    slot.index,
                    slot.node,
                    slot.member,
                    slot.process.pid if slot.process is not None else None,
                    slot.restarts,
                )
                for slot in self._slots
            ]

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Waits until every worker is in the group (e.g. after a restart); False if that
        did not happen within `timeout` seconds (None: no limit) or the pool closed.

        Example::

            os.kill(pool.workers()[0].os_pid, signal.SIGKILL)    # the supervisor starts it again
            pool.wait_ready(timeout=10.0)                        # True once it is back in the group
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closing:
                if all(slot.member is not None for slot in self._slots):
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return False

    def close(self, timeout: float = 10.0) -> None:
        """Stops every worker: each leaves the group, stops its server and its node, and
        exits. A worker still running after `timeout` seconds is terminated, then killed.
        Safe to call twice.

        Example::

            pool.close(timeout=5.0)         # or leave its `with erlnode.WorkerPool(...)` block
        """
        with self._cond:
            if self._closing and self._wake_w < 0:
                return
            self._closing = True
            self._cond.notify_all()
        self._wake()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join()
        for slot in self._slots:
            if slot.control is not None:
                try:
                    slot.control.send("stop")
                except OSError:
                    pass  # already gone
        deadline = time.monotonic() + timeout
        for slot in self._slots:
            process = slot.process
            if process is None:
                continue
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                log.warning("worker %s did not stop in time: terminating it", slot.node)
                process.terminate()
                process.join(2.0)
            if process.exitcode is None:
                process.kill()
                process.join()
            self._forget_process(slot)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._wake_w = -1
        _live_pools.discard(self)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self._closing else ""
        return f"<WorkerPool {self.size} x {self._group!r}{state}>"

    # -- supervision -------------------------------------------------------------------------

    def _start(self, slot: _Slot) -> None:
        """Starts `slot`'s worker process (with the condition held)."""
        control_r, control_w = self._ctx.Pipe(duplex=False)
        status_r, status_w = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=_run_worker,
            args=(self._spec, slot.node, control_r, status_w),
            name=f"erlnode-worker-{slot.index}",
        )
        try:
            process.start()
        finally:
            control_r.close()  # the child has its own copies now
            status_w.close()
        slot.process, slot.control, slot.status = process, control_w, status_r
        slot.started_at = time.monotonic()
        slot.restart_at = None

    def _wait_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                failed = [s for s in self._slots if s.error is not None and not s.ever_ready]
                if failed:
                    slot = failed[0]
                    raise RuntimeError(f"worker {slot.index} ({slot.node}) failed: {slot.error}")
                if all(slot.member is not None for slot in self._slots):
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    waiting = [s.node for s in self._slots if s.member is None]
                    raise TimeoutError(
                        f"workers {', '.join(waiting)} not in the group after {timeout} s"
                    )
                self._cond.wait(remaining)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def _supervise(self) -> None:
        from multiprocessing.connection import wait

        while True:
            with self._cond:
                if self._closing:
                    return
                watched: list[Any] = [self._wake_r]
                for slot in self._slots:
                    if slot.process is not None:
                        watched.append(slot.process.sentinel)
                    if slot.status is not None:
                        watched.append(slot.status)
                due = [s.restart_at for s in self._slots if s.restart_at is not None]
            timeout = None if not due else max(0.0, min(due) - time.monotonic())
            ready = wait(watched, timeout)
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
            with self._cond:
                if self._closing:
                    return
                try:
                    self._supervise_once()
                except Exception:  # noqa: BLE001 - the supervisor must not die
                    log.exception("worker pool supervisor")
                    time.sleep(0.1)
                self._cond.notify_all()

    def _supervise_once(self) -> None:
        """Takes in what happened to the workers; starts those whose restart is due."""
        for slot in self._slots:
            self._check(slot)
        now = time.monotonic()
        for slot in self._slots:
            if slot.restart_at is not None and slot.restart_at <= now:
                slot.restarts += 1
                try:
                    self._start(slot)
                except Exception as e:  # noqa: BLE001 - try again later
                    log.error("could not start worker %s: %s", slot.node, e)
                    self._schedule_restart(slot)

    def _check(self, slot: _Slot) -> None:
        """Takes in what `slot`'s worker said, and whether it ended (with the condition)."""
        status = slot.status
        while status is not None:
            try:
                if not status.poll():
                    break
                message = status.recv()
            except (EOFError, OSError):
                # The worker is ending; its sentinel says when it is gone.
                status.close()
                slot.status = status = None
                break
            if message[0] == "ready":
                slot.member = message[2]
                slot.ever_ready = True
                slot.error = None
                log.info("worker %s is in the group as %s", message[1], message[2])
            elif message[0] == "failed":
                slot.error = message[1]
        process = slot.process
        if process is None or process.exitcode is None:
            return
        ran = time.monotonic() - slot.started_at
        exit_code = process.exitcode
        reason = slot.error or f"exit code {exit_code}"
        self._forget_process(slot)
        if slot.error is None and exit_code != 0:
            slot.error = reason
        if ran >= STABLE_RUN:
            slot.failures = 0
        log.warning("worker %s ended (%s) after %.1f s: restarting it", slot.node, reason, ran)
        self._schedule_restart(slot)

    def _schedule_restart(self, slot: _Slot) -> None:
        slot.failures += 1
        delay = restart_delay_after(slot.failures, self._restart_delay, self._max_restart_delay)
        slot.restart_at = time.monotonic() + delay

    def _forget_process(self, slot: _Slot) -> None:
        for conn in (slot.control, slot.status):
            if conn is not None:
                conn.close()
        if slot.process is not None:
            try:
                slot.process.close()
            except ValueError:
                pass  # still running (close after a failed kill): leave it to the OS
        slot.process = slot.control = slot.status = None
        slot.member = None


def _close_all() -> None:
    for pool in list(_live_pools):
        try:
            pool.close()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


_exit_handler_registered = False


def _register_exit_handler() -> None:
    """Closes the pools left open at interpreter exit. Registered once multiprocessing is
    imported, after its own exit handler, so that it runs first (atexit runs the last
    registered first): the workers stop before multiprocessing joins its children, which
    are not daemonic (a daemonic process may not start processes of its own)."""
    global _exit_handler_registered
    if not _exit_handler_registered:
        import multiprocessing.util  # noqa: F401 - registers multiprocessing's handler

        atexit.register(_close_all)
        _exit_handler_registered = True
