//! Tests of the control messages: every variant to a term and back, with and without exit
//! payloads, and malformed or unknown ones. `pid`, `reference` and `all_controls` serve the
//! packet tests too.

use super::*;

pub fn pid(n: u32) -> Pid {
    Pid {
        node: Atom::new("a@h"),
        id: n,
        serial: 0,
        creation: 7,
    }
}

pub fn reference(n: u32) -> Reference {
    Reference {
        node: Atom::new("a@h"),
        creation: 7,
        ids: vec![n, 1, 2],
    }
}

/// One of every variant.
pub fn all_controls() -> Vec<Control> {
    vec![
        Control::Link {
            from: pid(1),
            to: pid(2),
        },
        Control::Send { to: pid(2) },
        Control::Exit(Box::new(ExitSignal {
            from: pid(1),
            to: pid(2),
            reason: Term::atom("normal"),
        })),
        Control::Unlink {
            from: pid(1),
            to: pid(2),
        },
        Control::NodeLink,
        Control::RegSend {
            from: pid(1),
            to_name: Atom::new("net_kernel"),
        },
        Control::GroupLeader {
            from: pid(1),
            to: pid(2),
        },
        Control::Exit2(Box::new(ExitSignal {
            from: pid(1),
            to: pid(2),
            reason: Term::tuple(vec![Term::atom("shutdown"), Term::Int(1)]),
        })),
        Control::MonitorP(Box::new(Monitor {
            from: pid(1),
            target: ProcRef::Name(Atom::new("rex")),
            reference: reference(3),
        })),
        Control::DemonitorP(Box::new(Monitor {
            from: pid(1),
            target: ProcRef::Pid(pid(2)),
            reference: reference(3),
        })),
        Control::MonitorPExit(Box::new(MonitorExit {
            from: ProcRef::Name(Atom::new("rex")),
            to: pid(1),
            reference: reference(3),
            reason: Term::atom("noproc"),
        })),
        Control::SendSender {
            from: pid(1),
            to: pid(2),
        },
        Control::SpawnRequest(Box::new(SpawnRequest {
            req_id: reference(4),
            from: pid(1),
            group_leader: pid(5),
            module: Atom::new("erpc"),
            function: Atom::new("execute_call"),
            arity: 4,
            opts: Term::List(vec![Term::atom("monitor")]),
        })),
        Control::SpawnReply(Box::new(SpawnReply {
            req_id: reference(4),
            to: pid(1),
            flags: 2,
            result: Term::Pid(pid(9)),
        })),
        Control::AliasSend(Box::new(AliasSend {
            from: pid(1),
            alias: reference(6),
        })),
        Control::UnlinkId(Box::new(UnlinkIds {
            id: u64::MAX,
            from: pid(1),
            to: pid(2),
        })),
        Control::UnlinkIdAck(Box::new(UnlinkIds {
            id: 4,
            from: pid(2),
            to: pid(1),
        })),
        Control::Unknown(Term::tuple(vec![Term::Int(37), Term::atom("x")])),
    ]
}

#[test]
fn every_variant_round_trips_with_and_without_exit_payload() {
    for flags in [0, flags::EXIT_PAYLOAD | flags::SEND_SENDER] {
        for control in all_controls() {
            let (term, reason) = control.to_term(flags);
            if flags & flags::EXIT_PAYLOAD != 0 {
                assert_eq!(
                    reason.is_some(),
                    matches!(
                        control,
                        Control::Exit(_) | Control::Exit2(_) | Control::MonitorPExit(_)
                    )
                );
            } else {
                assert!(reason.is_none());
            }
            let back = Control::from_term(term, reason).unwrap();
            let expected = match (&control, flags) {
                (Control::SendSender { to, .. }, 0) => Control::Send { to: to.clone() },
                _ => control.clone(),
            };
            assert_eq!(back, expected);
        }
    }
}

#[test]
fn trace_token_forms_are_normalized() {
    let token = Term::atom("token");
    let cases = vec![
        (
            vec![
                Term::Int(SEND_TT),
                empty_atom(),
                Term::Pid(pid(2)),
                token.clone(),
            ],
            Control::Send { to: pid(2) },
        ),
        (
            vec![
                Term::Int(EXIT_TT),
                Term::Pid(pid(1)),
                Term::Pid(pid(2)),
                token.clone(),
                Term::atom("kill"),
            ],
            Control::Exit(Box::new(ExitSignal {
                from: pid(1),
                to: pid(2),
                reason: Term::atom("kill"),
            })),
        ),
        (
            vec![
                Term::Int(REG_SEND_TT),
                Term::Pid(pid(1)),
                empty_atom(),
                Term::atom("rex"),
                token.clone(),
            ],
            Control::RegSend {
                from: pid(1),
                to_name: Atom::new("rex"),
            },
        ),
        (
            vec![
                Term::Int(ALIAS_SEND_TT),
                Term::Pid(pid(1)),
                Term::Reference(reference(1)),
                token.clone(),
            ],
            Control::AliasSend(Box::new(AliasSend {
                from: pid(1),
                alias: reference(1),
            })),
        ),
        (
            vec![
                Term::Int(SPAWN_REPLY_TT),
                Term::Reference(reference(1)),
                Term::Pid(pid(1)),
                Term::Int(0),
                Term::atom("badarg"),
                token.clone(),
            ],
            Control::SpawnReply(Box::new(SpawnReply {
                req_id: reference(1),
                to: pid(1),
                flags: 0,
                result: Term::atom("badarg"),
            })),
        ),
    ];
    for (items, expected) in cases {
        assert_eq!(
            Control::from_term(Term::Tuple(items), None).unwrap(),
            expected
        );
    }
    let payload_tt = Term::Tuple(vec![
        Term::Int(PAYLOAD_EXIT2_TT),
        Term::Pid(pid(1)),
        Term::Pid(pid(2)),
        token,
    ]);
    assert_eq!(
        Control::from_term(payload_tt, Some(Term::atom("bye"))).unwrap(),
        Control::Exit2(Box::new(ExitSignal {
            from: pid(1),
            to: pid(2),
            reason: Term::atom("bye")
        }))
    );
}

#[test]
fn malformed_and_unknown() {
    let unknown = Term::tuple(vec![Term::Int(99)]);
    assert_eq!(
        Control::from_term(unknown.clone(), None).unwrap(),
        Control::Unknown(unknown)
    );
    assert!(Control::from_term(Term::atom("x"), None).is_err());
    assert!(Control::from_term(Term::tuple(vec![]), None).is_err());
    // LINK with a non-pid.
    let bad_link = Term::tuple(vec![Term::Int(LINK), Term::atom("a"), Term::Pid(pid(1))]);
    let err = Control::from_term(bad_link, None).unwrap_err();
    assert!(err.to_string().contains("not a pid"), "{err}");
    // PAYLOAD_EXIT without its payload.
    let no_reason = Term::tuple(vec![
        Term::Int(PAYLOAD_EXIT),
        Term::Pid(pid(1)),
        Term::Pid(pid(2)),
    ]);
    assert!(Control::from_term(no_reason, None).is_err());
    // A reason for an operation that has none.
    let link = Term::tuple(vec![Term::Int(LINK), Term::Pid(pid(1)), Term::Pid(pid(2))]);
    assert!(Control::from_term(link, Some(Term::Int(1))).is_err());
    // Wrong arity.
    let short = Term::tuple(vec![Term::Int(SEND), empty_atom()]);
    assert!(Control::from_term(short, None).is_err());
}

#[test]
fn unused_fields_are_the_empty_atom() {
    let (term, _) = Control::RegSend {
        from: pid(1),
        to_name: Atom::new("x"),
    }
    .to_term(0);
    assert_eq!(term.as_tuple().unwrap()[2], Term::atom(""));
    let (term, _) = Control::Send { to: pid(1) }.to_term(0);
    assert_eq!(term.as_tuple().unwrap()[1], Term::atom(""));
}
