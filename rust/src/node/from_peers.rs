//! What comes from peers: each control message a connection receives (messages, links,
//! monitors, exits, spawn requests, `net_kernel` requests), and a peer coming or going.
//! The signals local processes send are in [`super::from_processes`].
//!
//! Runs on network threads: it routes bytes and small control terms, never Python objects.

use super::connection::Connection;
use super::from_processes::{down_message, exit_message};
use super::{lock, Dest, Inner, Message, Process};
use crate::dist::control::{self, Control, ExitSignal, MonitorExit, ProcRef, UnlinkIds};
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
            Control::UnlinkId(ids) => {
                let UnlinkIds { id, from, to } = *ids;
                // The ack goes out before any other signal from `to` to `from`.
                conn.send(
                    &Control::UnlinkIdAck(Box::new(UnlinkIds {
                        id,
                        from: to.clone(),
                        to: from.clone(),
                    })),
                    None,
                );
                if let Some(p) = self.local_process(&to) {
                    lock(&p.relations).links.remove(&from);
                }
            }
            Control::UnlinkIdAck(_) => {}
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

    /// Delivers a spawn request, with its decoded argument list, to the handler, or refuses it
    /// (`notsup`) when there is none.
    pub(crate) fn spawn_request(&self, request: control::SpawnRequest, args: Term) {
        let handler = lock(&self.spawn_handler)
            .clone()
            .and_then(|pid| self.local_process(&pid))
            .filter(|p| !p.is_closed());
        let Some(handler) = handler else {
            self.send_remote(
                &request.from.node.clone(),
                Control::SpawnReply(Box::new(control::SpawnReply {
                    req_id: request.req_id,
                    to: request.from,
                    flags: 0,
                    result: Term::atom("notsup"),
                })),
                None,
            );
            return;
        };
        let message = Term::Tuple(vec![
            Term::atom("$spawn_request"),
            Term::Reference(request.req_id),
            Term::Pid(request.from),
            Term::Pid(request.group_leader),
            Term::Tuple(vec![
                Term::Atom(request.module),
                Term::Atom(request.function),
                Term::Int(i64::from(request.arity)),
            ]),
            request.opts,
            args,
        ]);
        handler.deliver(Message::from_term(&message));
    }

    /// Tells node watchers that `node` came up or went down.
    pub(crate) fn node_event(&self, node: &Atom, up: bool) {
        let targets: Vec<Pid> = {
            let mut watchers = lock(&self.node_watchers);
            let mut targets = watchers.all.clone();
            if !up {
                targets.extend(watchers.one_shot.remove(node).unwrap_or_default());
            }
            targets
        };
        let tag = if up { "nodeup" } else { "nodedown" };
        let message = Message::from_term(&Term::Tuple(vec![
            Term::atom(tag),
            Term::Atom(node.clone()),
        ]));
        for pid in targets {
            if let Some(p) = self.local_process(&pid) {
                p.deliver(message.clone());
            }
        }
    }
}

fn to_message(payload: Payload) -> Message {
    Message {
        body: payload.body,
        atoms: payload.atoms,
        bulks: payload.bulks,
    }
}

fn procref_term(target: &ProcRef) -> Term {
    match target {
        ProcRef::Pid(p) => Term::Pid(p.clone()),
        ProcRef::Name(n) => Term::Atom(n.clone()),
    }
}
