//! What the node does with each control message, and the signals a process's death sends.
//!
//! Runs on network threads: it routes bytes and small control terms, never Python objects.

use super::connection::Connection;
use super::{lock, Dest, Inner, Message, Process};
use crate::dist::control::{Control, ExitSignal, MonitorExit, ProcRef};
use crate::dist::packet::{Incoming, Payload};
use crate::etf::{Atom, Pid, Reference, Term};
use std::sync::Arc;

/// Names whose behaviour the node provides itself, as `erl` would.
const NET_KERNEL: &str = "net_kernel";

impl Inner {
    /// Handles one incoming control message (and its payload) from `conn`.
    pub(crate) fn dispatch(&self, conn: &Connection, incoming: Incoming) {
        let Incoming { control, payload } = incoming;
        match control {
            Control::Send { to } | Control::SendSender { to, .. } => {
                self.deliver_payload(conn, &to, payload)
            }
            Control::RegSend { to_name, .. } => {
                if to_name.as_str() == NET_KERNEL {
                    self.net_kernel(conn, payload);
                    return;
                }
                let process = lock(&self.table).names.get(&to_name).cloned();
                match (process, payload) {
                    (Some(p), Some(payload)) => {
                        p.note_source(conn.id(), || conn.as_source());
                        if !p.deliver(to_message(payload)) {
                            log::debug!("dropped a message to closed mailbox {to_name}");
                        }
                    }
                    _ => log::debug!("dropped a message to unregistered name {to_name}"),
                }
            }
            Control::AliasSend(send) => {
                log::debug!("dropped a message to unknown alias {:?}", send.alias)
            }
            Control::Link { from, to } => match self.local_process(&to) {
                Some(p) if !p.is_closed() => {
                    lock(&p.relations).links.insert(from);
                }
                _ => {
                    // Linking to a process that does not exist gives an immediate exit.
                    conn.send(
                        &Control::Exit(Box::new(ExitSignal {
                            from: to,
                            to: from,
                            reason: Term::atom("noproc"),
                        })),
                        None,
                    );
                }
            },
            Control::UnlinkId { id, from, to } => {
                // The ack goes out before any other signal from `to` to `from`.
                conn.send(
                    &Control::UnlinkIdAck {
                        id,
                        from: to.clone(),
                        to: from.clone(),
                    },
                    None,
                );
                if let Some(p) = self.local_process(&to) {
                    lock(&p.relations).links.remove(&from);
                }
            }
            Control::UnlinkIdAck { .. } => {}
            Control::Unlink { from, to } => {
                // The old unlink (before UNLINK_ID): nothing to acknowledge.
                if let Some(p) = self.local_process(&to) {
                    lock(&p.relations).links.remove(&from);
                }
            }
            Control::Exit(signal) => {
                let ExitSignal { from, to, reason } = *signal;
                if let Some(p) = self.local_process(&to) {
                    let linked = lock(&p.relations).links.remove(&from);
                    if linked {
                        p.deliver(exit_message(&from, reason));
                    }
                }
            }
            Control::Exit2(signal) => {
                let ExitSignal { from, to, reason } = *signal;
                // Python mailboxes trap exits: the signal becomes a message.
                if let Some(p) = self.local_process(&to) {
                    p.deliver(exit_message(&from, reason));
                }
            }
            Control::MonitorP(monitor) => {
                let m = *monitor;
                self.monitored(conn, m.from, m.target, m.reference)
            }
            Control::DemonitorP(monitor) => {
                if let Some(p) = self.resolve(&monitor.target) {
                    lock(&p.relations).monitored_by.remove(&monitor.reference);
                }
            }
            Control::MonitorPExit(exit) => {
                if let Some(p) = self.local_process(&exit.to) {
                    let held = lock(&p.relations).monitoring.remove(&exit.reference);
                    if let Some((target, _)) = held {
                        p.deliver(down_message(&exit.reference, target, exit.reason));
                    }
                }
            }
            Control::SpawnRequest(request) => {
                let args = match payload.map(to_message).map(|m| m.to_term()) {
                    Some(Ok(args)) => args,
                    _ => Term::nil(),
                };
                self.spawn_request(*request, args);
            }
            Control::SpawnReply(_) | Control::GroupLeader { .. } | Control::NodeLink => {}
            Control::Unknown(term) => {
                log::warn!(
                    "ignored an unknown control message from {}: {term:?}",
                    conn.peer
                )
            }
        }
    }

    fn deliver_payload(&self, conn: &Connection, to: &Pid, payload: Option<Payload>) {
        let Some(payload) = payload else { return };
        match self.local_process(to) {
            Some(p) => {
                p.note_source(conn.id(), || conn.as_source());
                if !p.deliver(to_message(payload)) {
                    log::debug!("dropped a message to closed mailbox {to:?}");
                }
            }
            None => log::debug!("dropped a message to unknown pid {to:?}"),
        }
    }

    fn resolve(&self, target: &ProcRef) -> Option<Arc<Process>> {
        match target {
            ProcRef::Pid(pid) => self.local_process(pid),
            ProcRef::Name(name) => lock(&self.table).names.get(name).cloned(),
        }
    }

    /// A remote process monitors one of ours: remember it, or answer `noproc` at once so a
    /// `gen_server:call` to a missing name fails fast instead of waiting for its timeout.
    fn monitored(&self, conn: &Connection, from: Pid, target: ProcRef, reference: Reference) {
        if matches!(&target, ProcRef::Name(n) if n.as_str() == NET_KERNEL) {
            return;
        }
        match self.resolve(&target) {
            Some(p) if !p.is_closed() => {
                let named = procref_term(&target);
                lock(&p.relations)
                    .monitored_by
                    .insert(reference, (from, named));
            }
            _ => {
                conn.send(
                    &Control::MonitorPExit(Box::new(MonitorExit {
                        from: target,
                        to: from,
                        reference,
                        reason: Term::atom("noproc"),
                    })),
                    None,
                );
            }
        }
    }

    /// `net_kernel`'s part of `net_adm:ping`: `{'$gen_call', {From, Tag}, {is_auth, Node}}`
    /// is answered `{Tag, yes}` with the tag echoed exactly (`[alias | Ref]` from OTP 24 on).
    fn net_kernel(&self, conn: &Connection, payload: Option<Payload>) {
        let Some(payload) = payload else { return };
        let request = match to_message(payload).to_term() {
            Ok(t) => t,
            Err(e) => {
                log::warn!("undecodable message to net_kernel from {}: {e}", conn.peer);
                return;
            }
        };
        let Some([call, client, body]) = request
            .as_tuple()
            .and_then(|t| <&[Term; 3]>::try_from(t).ok())
        else {
            return;
        };
        let is_auth = body
            .as_tuple()
            .is_some_and(|b| b.first().and_then(Term::as_atom) == Some("is_auth"));
        if call.as_atom() != Some("$gen_call") || !is_auth {
            log::debug!(
                "ignored a net_kernel request from {}: {request:?}",
                conn.peer
            );
            return;
        }
        let Some([Term::Pid(caller), tag]) = client
            .as_tuple()
            .and_then(|t| <&[Term; 2]>::try_from(t).ok())
        else {
            return;
        };
        let reply = Term::Tuple(vec![tag.clone(), Term::atom("yes")]);
        let me = Pid {
            node: self.name(),
            id: 0,
            serial: 0,
            creation: self.creation(),
        };
        self.send(
            &me,
            &Dest::Pid(caller.clone()),
            Message::from_term(&reply).body,
        );
    }

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

    /// Sends a signal over a live connection only: a signal for a node we are not connected
    /// to has nobody to reach.
    pub(crate) fn send_existing(&self, node: &Atom, control: Control) {
        let conn = match lock(&self.table).links.get(node) {
            Some(super::Link::Up(c)) => Some(c.clone()),
            _ => None,
        };
        if let Some(c) = conn {
            c.send(&control, None);
        }
    }

    /// A connection is gone: links across it exit with `noconnection`, monitors fire.
    pub(crate) fn node_down(&self, peer: &Atom, processes: &[Arc<Process>]) {
        self.node_event(peer, false);
        let noconnection = Term::atom("noconnection");
        for p in processes {
            let mut messages = Vec::new();
            {
                let mut rel = lock(&p.relations);
                let lost: Vec<Pid> = rel
                    .links
                    .iter()
                    .filter(|l| l.node == *peer)
                    .cloned()
                    .collect();
                for pid in lost {
                    rel.links.remove(&pid);
                    messages.push(exit_message(&pid, noconnection.clone()));
                }
                let lost: Vec<Reference> = rel
                    .monitoring
                    .iter()
                    .filter(|(_, (_, node))| node == peer)
                    .map(|(r, _)| r.clone())
                    .collect();
                for r in lost {
                    if let Some((target, _)) = rel.monitoring.remove(&r) {
                        messages.push(down_message(&r, target, noconnection.clone()));
                    }
                }
                rel.monitored_by
                    .retain(|_, (watcher, _)| watcher.node != *peer);
            }
            for m in messages {
                p.deliver(m);
            }
        }
    }
}

fn to_message(payload: Payload) -> Message {
    Message {
        body: payload.body,
        atoms: payload.atoms,
    }
}

fn procref_term(target: &ProcRef) -> Term {
    match target {
        ProcRef::Pid(p) => Term::Pid(p.clone()),
        ProcRef::Name(n) => Term::Atom(n.clone()),
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
