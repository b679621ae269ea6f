//! Control messages: the first term of every distribution frame.
//!
//! <https://www.erlang.org/doc/apps/erts/erl_dist_protocol.html#control-messages>
//!
//! [`Control`] has one variant per operation. Receiving normalizes the wire's variants:
//! `_TT` forms lose their trace token, and `PAYLOAD_EXIT`/`PAYLOAD_EXIT2`/
//! `PAYLOAD_MONITOR_P_EXIT` become [`Control::Exit`]/[`Control::Exit2`]/
//! [`Control::MonitorPExit`] with the reason taken from the payload. Sending picks the wire
//! form from the effective flags ([`Control::to_term`]).

use super::flags;
use super::DistError;
use crate::etf::{Atom, Pid, Reference, Term};

pub const LINK: i64 = 1;
pub const SEND: i64 = 2;
pub const EXIT: i64 = 3;
pub const UNLINK: i64 = 4;
pub const NODE_LINK: i64 = 5;
pub const REG_SEND: i64 = 6;
pub const GROUP_LEADER: i64 = 7;
pub const EXIT2: i64 = 8;
pub const SEND_TT: i64 = 12;
pub const EXIT_TT: i64 = 13;
pub const REG_SEND_TT: i64 = 16;
pub const EXIT2_TT: i64 = 18;
pub const MONITOR_P: i64 = 19;
pub const DEMONITOR_P: i64 = 20;
pub const MONITOR_P_EXIT: i64 = 21;
pub const SEND_SENDER: i64 = 22;
pub const SEND_SENDER_TT: i64 = 23;
pub const PAYLOAD_EXIT: i64 = 24;
pub const PAYLOAD_EXIT_TT: i64 = 25;
pub const PAYLOAD_EXIT2: i64 = 26;
pub const PAYLOAD_EXIT2_TT: i64 = 27;
pub const PAYLOAD_MONITOR_P_EXIT: i64 = 28;
pub const SPAWN_REQUEST: i64 = 29;
pub const SPAWN_REQUEST_TT: i64 = 30;
pub const SPAWN_REPLY: i64 = 31;
pub const SPAWN_REPLY_TT: i64 = 32;
pub const ALIAS_SEND: i64 = 33;
pub const ALIAS_SEND_TT: i64 = 34;
pub const UNLINK_ID: i64 = 35;
pub const UNLINK_ID_ACK: i64 = 36;

/// The operation code of a control tuple, if it has one.
pub fn op_of(control: &Term) -> Option<i64> {
    control.as_tuple()?.first()?.as_int()
}

/// Whether the payload of operation `op` is the exit reason (decoded into the [`Control`])
/// rather than a message.
pub fn payload_is_reason(op: i64) -> bool {
    (PAYLOAD_EXIT..=PAYLOAD_MONITOR_P_EXIT).contains(&op)
}

/// A monitored process: by pid or by registered name.
#[derive(Clone, Debug, PartialEq)]
pub enum ProcRef {
    Pid(Pid),
    Name(Atom),
}

impl ProcRef {
    fn from_term(term: &Term) -> Option<ProcRef> {
        match term {
            Term::Pid(p) => Some(ProcRef::Pid(p.clone())),
            Term::Atom(a) => Some(ProcRef::Name(a.clone())),
            _ => None,
        }
    }

    fn to_term(&self) -> Term {
        match self {
            ProcRef::Pid(p) => Term::Pid(p.clone()),
            ProcRef::Name(a) => Term::Atom(a.clone()),
        }
    }
}

/// An exit signal ([`Control::Exit`], [`Control::Exit2`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ExitSignal {
    pub from: Pid,
    pub to: Pid,
    pub reason: Term,
}

/// A monitor set up or taken down ([`Control::MonitorP`], [`Control::DemonitorP`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Monitor {
    pub from: Pid,
    pub target: ProcRef,
    pub reference: Reference,
}

/// A monitor fired ([`Control::MonitorPExit`]).
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorExit {
    /// The monitored process as it was monitored (pid or name).
    pub from: ProcRef,
    pub to: Pid,
    pub reference: Reference,
    pub reason: Term,
}

/// [`Control::SpawnRequest`].
#[derive(Clone, Debug, PartialEq)]
pub struct SpawnRequest {
    pub req_id: Reference,
    pub from: Pid,
    pub group_leader: Pid,
    pub module: Atom,
    pub function: Atom,
    pub arity: u8,
    pub opts: Term,
}

/// [`Control::SpawnReply`]. `flags`: bit 0 link set up, bit 1 monitor set up; `result`: the
/// new pid or an error atom.
#[derive(Clone, Debug, PartialEq)]
pub struct SpawnReply {
    pub req_id: Reference,
    pub to: Pid,
    pub flags: i64,
    pub result: Term,
}

/// [`Control::AliasSend`].
#[derive(Clone, Debug, PartialEq)]
pub struct AliasSend {
    pub from: Pid,
    pub alias: Reference,
}

/// [`Control::UnlinkId`] and [`Control::UnlinkIdAck`].
#[derive(Clone, Debug, PartialEq)]
pub struct UnlinkIds {
    pub id: u64,
    pub from: Pid,
    pub to: Pid,
}

/// One control message. Variants marked "+ message" are followed by a message payload
/// ([`Control::carries_message`]). The larger, rarer operations are boxed: a message send, the
/// hot path, is moved several times on its way to a mailbox, and the enum is as big as its
/// biggest variant (216 bytes with `SpawnRequest` inline; a `memcpy` of each received
/// message's control was 4.6 % of all instructions per received message).
#[derive(Clone, Debug, PartialEq)]
pub enum Control {
    Link {
        from: Pid,
        to: Pid,
    },
    /// + message. SEND / SEND_TT (the sender is not on the wire).
    Send {
        to: Pid,
    },
    /// EXIT / EXIT_TT / PAYLOAD_EXIT / PAYLOAD_EXIT_TT: a link broke.
    Exit(Box<ExitSignal>),
    /// The obsolete UNLINK (op 4): never sent by us, tolerated on receipt.
    Unlink {
        from: Pid,
        to: Pid,
    },
    NodeLink,
    /// + message. REG_SEND / REG_SEND_TT.
    RegSend {
        from: Pid,
        to_name: Atom,
    },
    GroupLeader {
        from: Pid,
        to: Pid,
    },
    /// EXIT2 / EXIT2_TT / PAYLOAD_EXIT2 / PAYLOAD_EXIT2_TT: `exit(To, Reason)`.
    Exit2(Box<ExitSignal>),
    MonitorP(Box<Monitor>),
    DemonitorP(Box<Monitor>),
    /// MONITOR_P_EXIT / PAYLOAD_MONITOR_P_EXIT.
    MonitorPExit(Box<MonitorExit>),
    /// + message. SEND_SENDER / SEND_SENDER_TT.
    SendSender {
        from: Pid,
        to: Pid,
    },
    /// + message: the argument list. SPAWN_REQUEST / SPAWN_REQUEST_TT.
    SpawnRequest(Box<SpawnRequest>),
    /// SPAWN_REPLY / SPAWN_REPLY_TT.
    SpawnReply(Box<SpawnReply>),
    /// + message. ALIAS_SEND / ALIAS_SEND_TT.
    AliasSend(Box<AliasSend>),
    /// Boxed, as the other rare signals: the id and two pids would make every `Control`
    /// (and every received signal) 8 bytes larger.
    UnlinkId(Box<UnlinkIds>),
    UnlinkIdAck(Box<UnlinkIds>),
    /// An operation we do not know (e.g. OTP 28's ALTACT_SIG_SEND), kept as received.
    Unknown(Term),
}

fn bad(op: i64, what: &str, control: &Term) -> DistError {
    DistError::new(format!(
        "control message with op {op}: {what} in {control:?}"
    ))
}

fn pid(items: &[Term], i: usize, op: i64, control: &Term) -> Result<Pid, DistError> {
    items
        .get(i)
        .and_then(Term::as_pid)
        .cloned()
        .ok_or_else(|| bad(op, &format!("element {} is not a pid", i + 1), control))
}

fn reference(items: &[Term], i: usize, op: i64, control: &Term) -> Result<Reference, DistError> {
    items
        .get(i)
        .and_then(Term::as_reference)
        .cloned()
        .ok_or_else(|| {
            bad(
                op,
                &format!("element {} is not a reference", i + 1),
                control,
            )
        })
}

fn atom(items: &[Term], i: usize, op: i64, control: &Term) -> Result<Atom, DistError> {
    match items.get(i) {
        Some(Term::Atom(a)) => Ok(a.clone()),
        _ => Err(bad(
            op,
            &format!("element {} is not an atom", i + 1),
            control,
        )),
    }
}

fn proc_ref(items: &[Term], i: usize, op: i64, control: &Term) -> Result<ProcRef, DistError> {
    items.get(i).and_then(ProcRef::from_term).ok_or_else(|| {
        bad(
            op,
            &format!("element {} is not a pid or an atom", i + 1),
            control,
        )
    })
}

fn any(items: &[Term], i: usize, op: i64, control: &Term) -> Result<Term, DistError> {
    items
        .get(i)
        .cloned()
        .ok_or_else(|| bad(op, &format!("element {} is missing", i + 1), control))
}

fn unlink_id(items: &[Term], op: i64, control: &Term) -> Result<u64, DistError> {
    match items.get(1) {
        Some(Term::Int(i)) if *i >= 0 => Ok(*i as u64),
        Some(Term::BigInt(b)) if !b.negative && b.magnitude.len() <= 8 => {
            let mut word = [0u8; 8];
            word[..b.magnitude.len()].copy_from_slice(&b.magnitude);
            Ok(u64::from_le_bytes(word))
        }
        _ => Err(bad(
            op,
            "the unlink id is not a 64-bit unsigned integer",
            control,
        )),
    }
}

fn id_term(id: u64) -> Term {
    match i64::try_from(id) {
        Ok(i) => Term::Int(i),
        Err(_) => crate::etf::decode::big_to_term(false, &id.to_le_bytes()),
    }
}

fn empty_atom() -> Term {
    Term::atom("")
}

impl Control {
    /// Whether a message payload follows this control message on the wire.
    pub fn carries_message(&self) -> bool {
        matches!(
            self,
            Control::Send { .. }
                | Control::RegSend { .. }
                | Control::SendSender { .. }
                | Control::SpawnRequest(_)
                | Control::AliasSend(_)
        )
    }

    /// Interprets a received control tuple. `reason` is the decoded payload of a
    /// `PAYLOAD_*` exit operation (see [`payload_is_reason`]), `None` otherwise.
    /// Unknown operations become [`Control::Unknown`]; a known operation of the wrong
    /// shape is an error.
    pub fn from_term(control: Term, reason: Option<Term>) -> Result<Control, DistError> {
        let Some(op) = op_of(&control) else {
            return Err(DistError::new(format!(
                "control message is not a tuple starting with an integer: {control:?}"
            )));
        };
        let items = control.as_tuple().unwrap_or(&[]);
        let c = &control;
        let arity = |n: usize| -> Result<(), DistError> {
            if items.len() == n {
                Ok(())
            } else {
                Err(bad(op, &format!("expected {n} elements"), c))
            }
        };
        let payload_reason = |reason: Option<Term>| {
            reason.ok_or_else(|| bad(op, "the exit reason payload is missing", c))
        };
        if reason.is_some() && !payload_is_reason(op) {
            return Err(bad(op, "unexpected reason payload", c));
        }
        Ok(match op {
            LINK => {
                arity(3)?;
                Control::Link {
                    from: pid(items, 1, op, c)?,
                    to: pid(items, 2, op, c)?,
                }
            }
            SEND | SEND_TT => {
                arity(if op == SEND { 3 } else { 4 })?;
                Control::Send {
                    to: pid(items, 2, op, c)?,
                }
            }
            EXIT | EXIT_TT | EXIT2 | EXIT2_TT => {
                let tt = op == EXIT_TT || op == EXIT2_TT;
                arity(if tt { 5 } else { 4 })?;
                let (from, to) = (pid(items, 1, op, c)?, pid(items, 2, op, c)?);
                let reason = any(items, if tt { 4 } else { 3 }, op, c)?;
                let signal = Box::new(ExitSignal { from, to, reason });
                if op == EXIT || op == EXIT_TT {
                    Control::Exit(signal)
                } else {
                    Control::Exit2(signal)
                }
            }
            PAYLOAD_EXIT | PAYLOAD_EXIT_TT | PAYLOAD_EXIT2 | PAYLOAD_EXIT2_TT => {
                let tt = op == PAYLOAD_EXIT_TT || op == PAYLOAD_EXIT2_TT;
                arity(if tt { 4 } else { 3 })?;
                let (from, to) = (pid(items, 1, op, c)?, pid(items, 2, op, c)?);
                let reason = payload_reason(reason)?;
                let signal = Box::new(ExitSignal { from, to, reason });
                if op == PAYLOAD_EXIT || op == PAYLOAD_EXIT_TT {
                    Control::Exit(signal)
                } else {
                    Control::Exit2(signal)
                }
            }
            UNLINK => {
                arity(3)?;
                Control::Unlink {
                    from: pid(items, 1, op, c)?,
                    to: pid(items, 2, op, c)?,
                }
            }
            NODE_LINK => Control::NodeLink,
            REG_SEND | REG_SEND_TT => {
                arity(if op == REG_SEND { 4 } else { 5 })?;
                Control::RegSend {
                    from: pid(items, 1, op, c)?,
                    to_name: atom(items, 3, op, c)?,
                }
            }
            GROUP_LEADER => {
                arity(3)?;
                Control::GroupLeader {
                    from: pid(items, 1, op, c)?,
                    to: pid(items, 2, op, c)?,
                }
            }
            MONITOR_P | DEMONITOR_P => {
                arity(4)?;
                let from = pid(items, 1, op, c)?;
                let target = proc_ref(items, 2, op, c)?;
                let reference = reference(items, 3, op, c)?;
                let monitor = Box::new(Monitor {
                    from,
                    target,
                    reference,
                });
                if op == MONITOR_P {
                    Control::MonitorP(monitor)
                } else {
                    Control::DemonitorP(monitor)
                }
            }
            MONITOR_P_EXIT => {
                arity(5)?;
                Control::MonitorPExit(Box::new(MonitorExit {
                    from: proc_ref(items, 1, op, c)?,
                    to: pid(items, 2, op, c)?,
                    reference: reference(items, 3, op, c)?,
                    reason: any(items, 4, op, c)?,
                }))
            }
            PAYLOAD_MONITOR_P_EXIT => {
                arity(4)?;
                Control::MonitorPExit(Box::new(MonitorExit {
                    from: proc_ref(items, 1, op, c)?,
                    to: pid(items, 2, op, c)?,
                    reference: reference(items, 3, op, c)?,
                    reason: payload_reason(reason)?,
                }))
            }
            SEND_SENDER | SEND_SENDER_TT => {
                arity(if op == SEND_SENDER { 3 } else { 4 })?;
                Control::SendSender {
                    from: pid(items, 1, op, c)?,
                    to: pid(items, 2, op, c)?,
                }
            }
            SPAWN_REQUEST | SPAWN_REQUEST_TT => {
                arity(if op == SPAWN_REQUEST { 6 } else { 7 })?;
                let mfa = items[4].as_tuple().filter(|t| t.len() == 3);
                let Some(mfa) = mfa else {
                    return Err(bad(op, "element 5 is not {M, F, Arity}", c));
                };
                let arity = mfa[2]
                    .as_int()
                    .and_then(|a| u8::try_from(a).ok())
                    .ok_or_else(|| bad(op, "the arity is not 0..255", c))?;
                Control::SpawnRequest(Box::new(SpawnRequest {
                    req_id: reference(items, 1, op, c)?,
                    from: pid(items, 2, op, c)?,
                    group_leader: pid(items, 3, op, c)?,
                    module: atom(mfa, 0, op, c)?,
                    function: atom(mfa, 1, op, c)?,
                    arity,
                    opts: items[5].clone(),
                }))
            }
            SPAWN_REPLY | SPAWN_REPLY_TT => {
                arity(if op == SPAWN_REPLY { 5 } else { 6 })?;
                Control::SpawnReply(Box::new(SpawnReply {
                    req_id: reference(items, 1, op, c)?,
                    to: pid(items, 2, op, c)?,
                    flags: items[3]
                        .as_int()
                        .ok_or_else(|| bad(op, "the flags are not an integer", c))?,
                    result: items[4].clone(),
                }))
            }
            ALIAS_SEND | ALIAS_SEND_TT => {
                arity(if op == ALIAS_SEND { 3 } else { 4 })?;
                Control::AliasSend(Box::new(AliasSend {
                    from: pid(items, 1, op, c)?,
                    alias: reference(items, 2, op, c)?,
                }))
            }
            UNLINK_ID | UNLINK_ID_ACK => {
                arity(4)?;
                let id = unlink_id(items, op, c)?;
                let (from, to) = (pid(items, 2, op, c)?, pid(items, 3, op, c)?);
                let ids = Box::new(UnlinkIds { id, from, to });
                if op == UNLINK_ID {
                    Control::UnlinkId(ids)
                } else {
                    Control::UnlinkIdAck(ids)
                }
            }
            _ => Control::Unknown(control),
        })
    }

    /// The wire form for a connection with effective `flags`: the control tuple, and the
    /// payload term the control itself supplies (the exit reason, when `EXIT_PAYLOAD` is
    /// negotiated). A message payload, if [`Control::carries_message`], comes from the
    /// caller. Without `SEND_SENDER`, [`Control::SendSender`] goes out as SEND.
    pub fn to_term(&self, flags: u64) -> (Term, Option<Term>) {
        let exit_payload = flags & flags::EXIT_PAYLOAD != 0;
        let op = |code: i64| Term::Int(code);
        let p = |pid: &Pid| Term::Pid(pid.clone());
        let r = |reference: &Reference| Term::Reference(reference.clone());
        let t = Term::Tuple;
        match self {
            Control::Link { from, to } => (t(vec![op(LINK), p(from), p(to)]), None),
            Control::Send { to } => (t(vec![op(SEND), empty_atom(), p(to)]), None),
            Control::SendSender { from, to } if flags & flags::SEND_SENDER != 0 => {
                (t(vec![op(SEND_SENDER), p(from), p(to)]), None)
            }
            Control::SendSender { to, .. } => (t(vec![op(SEND), empty_atom(), p(to)]), None),
            Control::Exit(signal) | Control::Exit2(signal) => {
                let ExitSignal { from, to, reason } = &**signal;
                let is_exit = matches!(self, Control::Exit(_));
                if exit_payload {
                    let code = if is_exit { PAYLOAD_EXIT } else { PAYLOAD_EXIT2 };
                    (t(vec![op(code), p(from), p(to)]), Some(reason.clone()))
                } else {
                    let code = if is_exit { EXIT } else { EXIT2 };
                    (t(vec![op(code), p(from), p(to), reason.clone()]), None)
                }
            }
            Control::Unlink { from, to } => (t(vec![op(UNLINK), p(from), p(to)]), None),
            Control::NodeLink => (t(vec![op(NODE_LINK)]), None),
            Control::RegSend { from, to_name } => (
                t(vec![
                    op(REG_SEND),
                    p(from),
                    empty_atom(),
                    Term::Atom(to_name.clone()),
                ]),
                None,
            ),
            Control::GroupLeader { from, to } => (t(vec![op(GROUP_LEADER), p(from), p(to)]), None),
            Control::MonitorP(m) | Control::DemonitorP(m) => {
                let code = if matches!(self, Control::MonitorP(_)) {
                    MONITOR_P
                } else {
                    DEMONITOR_P
                };
                let reference = r(&m.reference);
                (
                    t(vec![op(code), p(&m.from), m.target.to_term(), reference]),
                    None,
                )
            }
            Control::MonitorPExit(exit) => {
                let MonitorExit {
                    from,
                    to,
                    reference,
                    reason,
                } = &**exit;
                if exit_payload {
                    (
                        t(vec![
                            op(PAYLOAD_MONITOR_P_EXIT),
                            from.to_term(),
                            p(to),
                            r(reference),
                        ]),
                        Some(reason.clone()),
                    )
                } else {
                    (
                        t(vec![
                            op(MONITOR_P_EXIT),
                            from.to_term(),
                            p(to),
                            r(reference),
                            reason.clone(),
                        ]),
                        None,
                    )
                }
            }
            Control::SpawnRequest(request) => {
                let SpawnRequest {
                    req_id,
                    from,
                    group_leader,
                    module,
                    function,
                    arity,
                    opts,
                } = &**request;
                (
                    t(vec![
                        op(SPAWN_REQUEST),
                        r(req_id),
                        p(from),
                        p(group_leader),
                        t(vec![
                            Term::Atom(module.clone()),
                            Term::Atom(function.clone()),
                            Term::Int(*arity as i64),
                        ]),
                        opts.clone(),
                    ]),
                    None,
                )
            }
            Control::SpawnReply(reply) => (
                t(vec![
                    op(SPAWN_REPLY),
                    r(&reply.req_id),
                    p(&reply.to),
                    Term::Int(reply.flags),
                    reply.result.clone(),
                ]),
                None,
            ),
            Control::AliasSend(send) => {
                (t(vec![op(ALIAS_SEND), p(&send.from), r(&send.alias)]), None)
            }
            Control::UnlinkId(ids) => (
                t(vec![
                    op(UNLINK_ID),
                    id_term(ids.id),
                    p(&ids.from),
                    p(&ids.to),
                ]),
                None,
            ),
            Control::UnlinkIdAck(ids) => (
                t(vec![
                    op(UNLINK_ID_ACK),
                    id_term(ids.id),
                    p(&ids.from),
                    p(&ids.to),
                ]),
                None,
            ),
            Control::Unknown(term) => (term.clone(), None),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
