//! What local processes (mailboxes) send: links, monitors, exit signals, node monitors,
//! spawn replies, and the signals a process's end sends. What arrives from peers is handled
//! in [`super::from_peers`]; both sides share the bookkeeping in
//! [`super::process::Relations`].

use super::{lock, Dest, Inner, Message, Node, Process};
use crate::dist::control::{self, Control, ExitSignal, Monitor, MonitorExit, ProcRef, UnlinkIds};
use crate::etf::{Atom, Pid, Reference, Term};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Who wants to hear about nodes coming and going.
#[derive(Default)]
pub struct NodeWatchers {
    /// `monitor_node/2`: one `{nodedown, Node}` per watch.
    pub one_shot: HashMap<Atom, Vec<Pid>>,
    /// `net_kernel:monitor_nodes/1`: every nodeup and nodedown.
    pub all: Vec<Pid>,
}

impl Node {
    /// Links `process` to `target` (`link/1`). A missing local target gives an immediate
    /// `{'EXIT', Target, noproc}`.
    pub fn link(&self, process: &Arc<Process>, target: &Pid) {
        let inner = &self.inner;
        if inner.is_local(&target.node) {
            match inner.local_process(target) {
                Some(other) if !other.is_closed() => {
                    lock(&other.relations).links.insert(process.pid.clone());
                    lock(&process.relations).links.insert(target.clone());
                }
                _ => {
                    process.deliver(exit_message(target, Term::atom("noproc")));
                }
            }
            return;
        }
        lock(&process.relations).links.insert(target.clone());
        inner.send_remote(
            &target.node,
            Control::Link {
                from: process.pid.clone(),
                to: target.clone(),
            },
            None,
        );
    }

    /// Removes a link (`unlink/1`), with the UNLINK_ID protocol towards peers.
    pub fn unlink(&self, process: &Arc<Process>, target: &Pid) {
        let inner = &self.inner;
        if !lock(&process.relations).links.remove(target) {
            return;
        }
        if inner.is_local(&target.node) {
            if let Some(other) = inner.local_process(target) {
                lock(&other.relations).links.remove(&process.pid);
            }
            return;
        }
        let id = inner.next_ref.fetch_add(1, Ordering::Relaxed);
        inner.send_existing(
            &target.node,
            Control::UnlinkId(Box::new(UnlinkIds {
                id,
                from: process.pid.clone(),
                to: target.clone(),
            })),
        );
    }

    /// Sends an exit signal (`exit/2`). A Python mailbox traps exits: it gets a message.
    pub fn exit_signal(&self, from: &Pid, target: &Pid, reason: Term) {
        let inner = &self.inner;
        if inner.is_local(&target.node) {
            if let Some(p) = inner.local_process(target) {
                p.deliver(exit_message(from, reason));
            }
            return;
        }
        inner.send_remote(
            &target.node,
            Control::Exit2(Box::new(ExitSignal {
                from: from.clone(),
                to: target.clone(),
                reason,
            })),
            None,
        );
    }

    /// Monitors a process (`monitor(process, Target)`); DOWN arrives as a message.
    pub fn monitor(&self, process: &Arc<Process>, target: &Dest) -> Reference {
        let inner = &self.inner;
        let reference = inner.make_ref();
        let me = process.pid.clone();
        let (named, node) = match target {
            Dest::Pid(pid) => (Term::Pid(pid.clone()), pid.node.clone()),
            Dest::Name(name) => (name_node(name, &inner.name()), inner.name()),
            Dest::Remote(name, node) => (name_node(name, node), node.clone()),
        };
        if inner.is_local(&node) {
            let found = match target {
                Dest::Pid(pid) => inner.local_process(pid),
                Dest::Name(name) | Dest::Remote(name, _) => {
                    lock(&inner.table).names.get(name).cloned()
                }
            };
            match found {
                Some(t) if !t.is_closed() => {
                    lock(&t.relations)
                        .monitored_by
                        .insert(reference.clone(), (me, named.clone()));
                    lock(&process.relations)
                        .monitoring
                        .insert(reference.clone(), (named, node));
                }
                _ => {
                    process.deliver(down_message(&reference, named, Term::atom("noproc")));
                }
            }
            return reference;
        }
        let proc_ref = match target {
            Dest::Pid(pid) => ProcRef::Pid(pid.clone()),
            Dest::Name(name) | Dest::Remote(name, _) => ProcRef::Name(name.clone()),
        };
        lock(&process.relations)
            .monitoring
            .insert(reference.clone(), (named, node.clone()));
        inner.send_remote(
            &node,
            Control::MonitorP(Box::new(Monitor {
                from: me,
                target: proc_ref,
                reference: reference.clone(),
            })),
            None,
        );
        reference
    }

    /// Removes a monitor (`demonitor/1`). Returns false if it was not active.
    pub fn demonitor(&self, process: &Arc<Process>, reference: &Reference) -> bool {
        let inner = &self.inner;
        let Some((named, node)) = lock(&process.relations).monitoring.remove(reference) else {
            return false;
        };
        let proc_ref = match &named {
            Term::Pid(pid) => ProcRef::Pid(pid.clone()),
            Term::Tuple(items) => match items.first() {
                Some(Term::Atom(name)) => ProcRef::Name(name.clone()),
                _ => return true,
            },
            _ => return true,
        };
        if inner.is_local(&node) {
            let target = match &proc_ref {
                ProcRef::Pid(pid) => inner.local_process(pid),
                ProcRef::Name(name) => lock(&inner.table).names.get(name).cloned(),
            };
            if let Some(t) = target {
                lock(&t.relations).monitored_by.remove(reference);
            }
        } else {
            inner.send_existing(
                &node,
                Control::DemonitorP(Box::new(Monitor {
                    from: process.pid.clone(),
                    target: proc_ref,
                    reference: reference.clone(),
                })),
            );
        }
        true
    }

    /// `monitor_node(Node, Flag)`: one `{nodedown, Node}` message when the connection goes
    /// (at once if it cannot be made). With `on == false`, removes one such watch.
    pub fn monitor_node(&self, process: &Arc<Process>, node: &Atom, on: bool) {
        let inner = &self.inner;
        let mut watchers = lock(&inner.node_watchers);
        let list = watchers.one_shot.entry(node.clone()).or_default();
        if !on {
            if let Some(i) = list.iter().position(|p| *p == process.pid) {
                list.remove(i);
            }
            return;
        }
        list.push(process.pid.clone());
        drop(watchers);
        if !inner.is_local(node) {
            // Connecting on demand; a failure fires the nodedown.
            drop(inner.connection_waiter(node));
        }
    }

    /// `net_kernel:monitor_nodes(Flag)`: `{nodeup, Node}` / `{nodedown, Node}` messages.
    pub fn monitor_nodes(&self, process: &Arc<Process>, on: bool) {
        let mut watchers = lock(&self.inner.node_watchers);
        watchers.all.retain(|p| *p != process.pid);
        if on {
            watchers.all.push(process.pid.clone());
        }
    }

    /// Routes every SPAWN_REQUEST (how `rpc:call` and `erpc` reach us) to `process` as the
    /// message `{'$spawn_request', ReqId, From, GroupLeader, {M, F, Arity}, Opts, Args}`.
    pub fn set_spawn_handler(&self, process: Option<&Arc<Process>>) {
        *lock(&self.inner.spawn_handler) = process.map(|p| p.pid.clone());
    }

    /// Answers a spawn request: `process` stands for the spawned process (its pid is the
    /// result), linked to and/or monitored by the caller as asked; with no process the
    /// request fails with `error`.
    pub fn spawn_reply(
        &self,
        req_id: Reference,
        to: &Pid,
        process: Option<&Arc<Process>>,
        link: bool,
        monitor: bool,
        error: &str,
    ) {
        let (result, flags) = match process {
            Some(p) => {
                let mut rel = lock(&p.relations);
                if link {
                    rel.links.insert(to.clone());
                }
                if monitor {
                    rel.monitored_by
                        .insert(req_id.clone(), (to.clone(), Term::Pid(p.pid.clone())));
                }
                (
                    Term::Pid(p.pid.clone()),
                    i64::from(link) | (i64::from(monitor) << 1),
                )
            }
            None => (Term::atom(error), 0),
        };
        self.inner.send_remote(
            &to.node,
            Control::SpawnReply(Box::new(control::SpawnReply {
                req_id,
                to: to.clone(),
                flags,
                result,
            })),
            None,
        );
    }
}

fn name_node(name: &Atom, node: &Atom) -> Term {
    Term::Tuple(vec![Term::Atom(name.clone()), Term::Atom(node.clone())])
}

impl Inner {
    /// Closes a process and sends the exit signals and monitor messages its end causes.
    pub(crate) fn close_process(&self, process: &Arc<Process>, reason: &Term) {
        if !process.close() {
            return;
        }
        {
            let mut table = lock(&self.table);
            table.processes.remove(&process.pid.id);
            if let Some(name) = lock(&process.name).as_ref() {
                if matches!(table.names.get(name), Some(p) if Arc::ptr_eq(p, process)) {
                    table.names.remove(name);
                }
            }
        }
        let relations = std::mem::take(&mut *lock(&process.relations));
        let me = &process.pid;
        for linked in relations.links {
            if self.is_local(&linked.node) {
                if let Some(p) = self.local_process(&linked) {
                    if lock(&p.relations).links.remove(me) {
                        p.deliver(exit_message(me, reason.clone()));
                    }
                }
            } else {
                self.send_existing(
                    &linked.node,
                    Control::Exit(Box::new(ExitSignal {
                        from: me.clone(),
                        to: linked.clone(),
                        reason: reason.clone(),
                    })),
                );
            }
        }
        for (reference, (watcher, named)) in relations.monitored_by {
            if self.is_local(&watcher.node) {
                if let Some(p) = self.local_process(&watcher) {
                    if lock(&p.relations).monitoring.remove(&reference).is_some() {
                        p.deliver(down_message(&reference, named, reason.clone()));
                    }
                }
            } else {
                let from = match named {
                    Term::Atom(name) => ProcRef::Name(name),
                    _ => ProcRef::Pid(me.clone()),
                };
                self.send_existing(
                    &watcher.node,
                    Control::MonitorPExit(Box::new(MonitorExit {
                        from,
                        to: watcher.clone(),
                        reference,
                        reason: reason.clone(),
                    })),
                );
            }
        }
    }
}

/// `{'EXIT', From, Reason}`.
pub(crate) fn exit_message(from: &Pid, reason: Term) -> Message {
    Message::from_term(&Term::Tuple(vec![
        Term::atom("EXIT"),
        Term::Pid(from.clone()),
        reason,
    ]))
}

/// `{'DOWN', Ref, process, Target, Reason}`.
pub(crate) fn down_message(reference: &Reference, target: Term, reason: Term) -> Message {
    Message::from_term(&Term::Tuple(vec![
        Term::atom("DOWN"),
        Term::Reference(reference.clone()),
        Term::atom("process"),
        target,
        reason,
    ]))
}
