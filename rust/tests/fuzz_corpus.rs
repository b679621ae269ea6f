//! Replays every committed fuzz input (`fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/`) through the fuzz targets' own harnesses, on the stable
//! toolchain and without sanitizers: a fixed crash stays fixed, in seconds.
//!
//! The seeds each corpus started from are here too: they must be accepted (so the harnesses
//! reach past the first refusal), and `cargo test --test fuzz_corpus -- --ignored write_seeds`
//! writes them into the corpus folders. See `fuzz/README.md`.

mod fuzz_harness;

use erlnode::dist::handshake::{
    digest, frame, Challenge, ChallengeAck, ChallengeReply, Complement, LengthPrefix, SendName,
    Status,
};
use erlnode::dist::packet::Sender;
use erlnode::dist::{flags, Control, TICK};
use erlnode::epmd::proto::{Alive2Resp, NamesResp, NodeInfo, Port2Resp, Request};
use erlnode::etf::{self, Atom, BigInt, Fun, Pid, Port, Reference, Term};
use fuzz_harness::{Harness, COOKIE, PEER_NAME, TARGETS};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of one folder, sorted; none if it does not exist.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable folder").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn harness(target: &str) -> Harness {
    TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target {target}"))
        .1
}

/// Runs every committed input of `target` through its harness; fails naming each input that
/// panics. The corpus must not be empty (a missing folder would otherwise pass).
fn replay(target: &str) {
    let run = harness(target);
    let corpus = files_in(&fuzz_dir().join("corpus").join(target));
    let regressions = files_in(&fuzz_dir().join("regressions").join(target));
    assert!(!corpus.is_empty(), "fuzz/corpus/{target} is empty");
    let mut failed = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let input = std::fs::read(path).expect("a readable input");
        if panic::catch_unwind(AssertUnwindSafe(|| run(&input))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: these inputs panic: {failed:#?}"
    );
    eprintln!(
        "{target}: {} corpus and {} regression inputs replayed",
        corpus.len(),
        regressions.len()
    );
}

#[test]
fn etf_inputs_replay() {
    replay("etf");
}

#[test]
fn handshake_inputs_replay() {
    replay("handshake");
}

#[test]
fn handshake_message_inputs_replay() {
    replay("handshake_messages");
}

#[test]
fn dist_frame_inputs_replay() {
    replay("dist_frames");
}

#[test]
fn epmd_inputs_replay() {
    replay("epmd");
}

#[test]
fn every_target_has_a_test_here() {
    let names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "etf",
            "handshake",
            "handshake_messages",
            "dist_frames",
            "epmd"
        ]
    );
}

#[test]
fn the_seeds_are_accepted() {
    for (target, seeds) in seeds() {
        let run = harness(target);
        for (i, seed) in seeds.iter().enumerate() {
            assert!(run(seed), "{target} seed {i} is refused: {seed:?}");
        }
    }
}

/// Writes the seeds into `fuzz/corpus/<target>/seed-<n>` (run by hand, before a first
/// campaign; `cargo fuzz cmin` keeps those that add coverage).
#[test]
#[ignore]
fn write_seeds() {
    for (target, seeds) in seeds() {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
        }
    }
}

// --- seeds: valid inputs of each target ---------------------------------------------------

fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    vec![
        ("etf", etf_seeds()),
        ("handshake", handshake_seeds()),
        ("handshake_messages", handshake_message_seeds()),
        ("dist_frames", dist_frame_seeds()),
        ("epmd", epmd_seeds()),
    ]
}

fn pid(node: &str, id: u32) -> Pid {
    Pid {
        node: Atom::new(node),
        id,
        serial: 1,
        creation: 7,
    }
}

fn reference(node: &str) -> Reference {
    Reference {
        node: Atom::new(node),
        creation: 7,
        ids: vec![3, 1, 2],
    }
}

/// A term with one of everything.
fn sample_term() -> Term {
    let fun = Fun::from_parts(
        1,
        [9; 16],
        0,
        &Atom::new("erl_eval"),
        &Term::Int(1),
        &Term::Int(2),
        &Term::Pid(pid("a@h", 1)),
        &[Term::atom("free")],
    );
    Term::Tuple(vec![
        Term::atom("ok"),
        Term::atom("é"),
        Term::Int(-1),
        Term::Int(1 << 40),
        Term::BigInt(BigInt {
            negative: true,
            magnitude: vec![1; 12],
        }),
        Term::Float(-0.0),
        Term::Binary(b"bin".to_vec().into()),
        Term::BitBinary {
            data: vec![0xA0].into(),
            bits: 3,
        },
        Term::List(vec![Term::Int(1), Term::List(vec![])]),
        Term::String(b"text".to_vec()),
        Term::ImproperList(vec![Term::Int(1)], Box::new(Term::atom("tail"))),
        Term::Map(vec![(Term::atom("k"), Term::Int(2))]),
        Term::Pid(pid("a@h", 1)),
        Term::Port(Port {
            node: Atom::new("a@h"),
            id: 1 << 40,
            creation: 7,
        }),
        Term::Reference(reference("a@h")),
        Term::Export {
            module: Atom::new("lists"),
            function: Atom::new("reverse"),
            arity: 1,
        },
        Term::Fun(fun),
    ])
}

fn etf_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        etf::encode(&sample_term()),
        etf::encode(&Term::Tuple(vec![Term::Int(1); 300])),
        // From OTP 25's term_to_binary: a compressed list, an old-style float, a Latin-1
        // atom, a map, a pid, a reference, a port, an export and a closure.
        vec![
            131, 80, 0, 0, 2, 94, 120, 156, 203, 97, 96, 96, 208, 200, 96, 74, 97, 96, 202, 207,
            206, 5, 178, 153, 19, 147, 146, 71, 185, 163, 92, 170, 112, 179, 0, 100, 206, 130, 255,
        ],
        vec![
            131, 99, 49, 46, 53, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48,
            48, 48, 48, 101, 43, 48, 48, 0, 0, 0, 0, 0,
        ],
        vec![131, 100, 0, 4, 99, 97, 102, 233],
        vec![
            131, 116, 0, 0, 0, 2, 100, 0, 1, 97, 97, 1, 107, 0, 1, 107, 108, 0, 0, 0, 4, 70, 63,
            240, 0, 0, 0, 0, 0, 0, 98, 255, 255, 255, 253, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64,
            77, 0, 0, 0, 1, 3, 32, 106,
        ],
        vec![
            131, 88, 100, 0, 13, 110, 111, 110, 111, 100, 101, 64, 110, 111, 104, 111, 115, 116, 0,
            0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        vec![
            131, 90, 0, 3, 100, 0, 13, 110, 111, 110, 111, 100, 101, 64, 110, 111, 104, 111, 115,
            116, 0, 0, 0, 0, 0, 3, 102, 242, 74, 204, 0, 1, 2, 5, 128, 96,
        ],
        vec![
            131, 89, 100, 0, 13, 110, 111, 110, 111, 100, 101, 64, 110, 111, 104, 111, 115, 116, 0,
            0, 0, 0, 0, 0, 0, 0,
        ],
        vec![
            131, 113, 100, 0, 5, 108, 105, 115, 116, 115, 100, 0, 7, 114, 101, 118, 101, 114, 115,
            101, 97, 1,
        ],
        vec![
            131, 112, 0, 0, 0, 160, 1, 6, 83, 97, 170, 70, 21, 144, 209, 189, 241, 235, 98, 209,
            166, 235, 8, 0, 0, 0, 42, 0, 0, 0, 1, 100, 0, 8, 101, 114, 108, 95, 101, 118, 97, 108,
            97, 42, 98, 0, 50, 155, 13, 88, 100, 0, 13, 110, 111, 110, 111, 100, 101, 64, 110, 111,
            104, 111, 115, 116, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 104, 6, 97, 10, 106, 100, 0, 4,
            110, 111, 110, 101, 100, 0, 4, 110, 111, 110, 101, 116, 0, 0, 0, 0, 108, 0, 0, 0, 1,
            104, 5, 100, 0, 6, 99, 108, 97, 117, 115, 101, 97, 10, 108, 0, 0, 0, 1, 104, 3, 100, 0,
            3, 118, 97, 114, 97, 10, 100, 0, 1, 88, 106, 106, 108, 0, 0, 0, 1, 104, 3, 100, 0, 3,
            118, 97, 114, 97, 10, 100, 0, 1, 88, 106, 106,
        ],
    ];
    // An ATOM_CACHE_REF, which only the decoder given an atom cache resolves.
    seeds.push(vec![131, 104, 2, 82, 0, 97, 1]);
    seeds
}

/// What the peer says in one handshake: its messages, each with its length prefix.
fn said(prefix: LengthPrefix, messages: &[Vec<u8>]) -> Vec<u8> {
    messages.iter().flat_map(|m| frame(m, prefix)).collect()
}

fn handshake_seeds() -> Vec<Vec<u8>> {
    let challenge = |name: &str| {
        Challenge {
            flags: flags::DEFAULT,
            challenge: 12345,
            creation: 9,
            name: name.to_string(),
        }
        .encode()
    };
    let ack = ChallengeAck {
        digest: digest(COOKIE, 1),
    }
    .encode();
    let send_name = |flags: u64, name: &str, legacy: bool| {
        SendName {
            flags,
            creation: 9,
            name: name.to_string(),
            legacy,
        }
        .encode()
    };
    let reply = ChallengeReply {
        challenge: 54321,
        digest: [0; 16],
    }
    .encode();
    let named = Status::Named {
        name: "ABC@localhost".to_string(),
        creation: 3,
    };
    let complement = Complement {
        flags_high: (flags::DEFAULT >> 32) as u32,
        creation: 9,
    }
    .encode();
    let (u16, u32) = (LengthPrefix::U16, LengthPrefix::U32);
    // The setup byte: bit 0 U32 prefixes, bit 1 accept, bits 2-3 the arbiter's answer (or
    // bit 2 NAME_ME as initiator).
    let seed = |setup: u8, prefix, messages: &[Vec<u8>]| {
        let mut seed = vec![setup];
        seed.extend(said(prefix, messages));
        seed
    };
    let ok = Status::Ok.encode();
    vec![
        // We initiate: the acceptor says ok, challenges, acks (the wrong digest).
        seed(0, u16, &[ok.clone(), challenge(PEER_NAME), ack.clone()]),
        seed(1, u32, &[ok.clone(), challenge(PEER_NAME), ack.clone()]),
        // ... says alive (we answer true); names us; closes after our reply.
        seed(0, u16, &[Status::Alive.encode(), challenge(PEER_NAME), ack]),
        seed(4, u16, &[named.encode(), challenge(PEER_NAME)]),
        // We accept a peer that is new, pending (it wins / we win), connected, legacy,
        // asking to be named.
        seed(
            2,
            u16,
            &[send_name(flags::DEFAULT, PEER_NAME, false), reply.clone()],
        ),
        seed(
            3,
            u32,
            &[send_name(flags::DEFAULT, PEER_NAME, false), reply.clone()],
        ),
        seed(
            6,
            u16,
            &[
                send_name(flags::DEFAULT, "zzz@localhost", false),
                reply.clone(),
            ],
        ),
        seed(
            6,
            u16,
            &[
                send_name(flags::DEFAULT, "aaa@localhost", false),
                reply.clone(),
            ],
        ),
        seed(
            10,
            u16,
            &[
                send_name(flags::DEFAULT, PEER_NAME, false),
                Status::True.encode(),
                reply.clone(),
            ],
        ),
        seed(
            2,
            u16,
            &[
                send_name(flags::DEFAULT, PEER_NAME, true),
                complement,
                reply.clone(),
            ],
        ),
        seed(
            2,
            u16,
            &[
                send_name(flags::DEFAULT | flags::NAME_ME, "localhost", false),
                reply,
            ],
        ),
    ]
}

fn handshake_message_seeds() -> Vec<Vec<u8>> {
    vec![
        SendName {
            flags: flags::DEFAULT,
            creation: 9,
            name: PEER_NAME.to_string(),
            legacy: false,
        }
        .encode(),
        SendName {
            flags: flags::DEFAULT,
            creation: 0,
            name: PEER_NAME.to_string(),
            legacy: true,
        }
        .encode(),
        Status::OkSimultaneous.encode(),
        Status::Named {
            name: "ABC@localhost".to_string(),
            creation: 3,
        }
        .encode(),
        Complement {
            flags_high: 1,
            creation: 9,
        }
        .encode(),
        ChallengeReply {
            challenge: 1,
            digest: digest(COOKIE, 2),
        }
        .encode(),
        ChallengeAck {
            digest: digest(COOKIE, 3),
        }
        .encode(),
    ]
}

fn dist_frame_seeds() -> Vec<Vec<u8>> {
    let a = pid("a@localhost", 1);
    let b = pid("b@localhost", 2);
    let message = etf::term_body(&sample_term());
    let signals: Vec<(Control, Option<&[u8]>)> = vec![
        (Control::Send { to: b.clone() }, Some(&message[..])),
        (
            Control::SendSender {
                from: a.clone(),
                to: b.clone(),
            },
            Some(b"a\x01"),
        ),
        (
            Control::RegSend {
                from: a.clone(),
                to_name: Atom::new("net_kernel"),
            },
            Some(&message),
        ),
        (
            Control::Link {
                from: a.clone(),
                to: b.clone(),
            },
            None,
        ),
        (Control::NodeLink, None),
        (Control::Unknown(Term::Tuple(vec![Term::Int(99)])), None),
    ];
    // The first byte: pieces of 0 (all at once) or 7 bytes; bit 6 the small reassembly cap.
    let mut seeds = Vec::new();
    for (setup, flags, fragment_size) in [
        (0, flags::DEFAULT, 1 << 16),
        (7, flags::DEFAULT, 40),
        (0x40, flags::DEFAULT, 100),
        (0, flags::DEFAULT & !flags::DIST_HDR_ATOM_CACHE, 1 << 16),
    ] {
        let mut sender = Sender::with_fragment_size(flags, fragment_size);
        let mut frames = Vec::new();
        for (control, payload) in &signals {
            sender.encode(control, *payload, &mut frames).unwrap();
        }
        let mut seed = vec![setup];
        seed.extend_from_slice(&TICK);
        for frame in frames {
            seed.extend_from_slice(&frame);
        }
        seeds.push(seed);
    }
    seeds
}

fn epmd_seeds() -> Vec<Vec<u8>> {
    let info = NodeInfo::new("py", 4242, true);
    let requests = [
        Request::Alive2(info.clone()),
        Request::PortPlease2 {
            name: "py".to_string(),
        },
        Request::Names,
        Request::Dump,
        Request::Kill,
        Request::Stop {
            name: "py".to_string(),
        },
    ];
    let mut seeds: Vec<Vec<u8>> = requests
        .iter()
        .map(|r| r.encode().unwrap()[2..].to_vec())
        .collect();
    for extended in [true, false] {
        let answer = Alive2Resp {
            result: 0,
            creation: 5,
            extended,
        };
        seeds.push(answer.encode());
    }
    seeds.push(Port2Resp::Found(info).encode().unwrap());
    seeds.push(Port2Resp::NotFound(1).encode().unwrap());
    let names = NamesResp {
        epmd_port: 4369,
        names: vec![("py".to_string(), 4242), ("a b".to_string(), 1)],
    };
    seeds.push(names.encode());
    seeds
}
