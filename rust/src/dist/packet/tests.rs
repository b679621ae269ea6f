//! Tests of frame parsing and encoding: atom cache sections, fragments, every flag
//! combination, and that malformed frames are errors, never panics.

use super::*;
use crate::dist::control::tests::{all_controls, pid, reference};
use crate::dist::control::{self, AliasSend};
use crate::dist::flags;
use crate::etf::{term_body, Pid, Term};
use proptest::prelude::*;

/// The bodies of encoded frames, checking each length prefix.
fn bodies(frames: &[Bytes]) -> Vec<Bytes> {
    frames
        .iter()
        .map(|f| {
            let len = u32::from_be_bytes(f[..4].try_into().unwrap()) as usize;
            assert_eq!(len, f.len() - 4);
            f.slice(4..)
        })
        .collect()
}

fn message_body() -> Vec<u8> {
    term_body(&Term::tuple(vec![Term::atom("hello"), Term::Int(42)]))
}

#[test]
fn a_received_message_is_small_to_move() {
    // Moved several times per message between the socket and the mailbox: above 128 bytes
    // each move is a call to memcpy (4.6 % of a received message's instructions at 264).
    assert!(
        std::mem::size_of::<Incoming>() <= 128,
        "Incoming is {} bytes, Control {}",
        std::mem::size_of::<Incoming>(),
        std::mem::size_of::<Control>()
    );
}

#[test]
fn pass_through_send_is_zero_copy() {
    let ctl = term_body(&Term::tuple(vec![
        Term::Int(control::SEND),
        Term::atom(""),
        Term::Pid(pid(3)),
    ]));
    let msg = message_body();
    let mut frame = vec![112, 131];
    frame.extend_from_slice(&ctl);
    frame.push(131);
    frame.extend_from_slice(&msg);
    let frame = Bytes::from(frame);
    let got = Receiver::new().receive(frame.clone()).unwrap().unwrap();
    assert_eq!(got.control, Control::Send { to: pid(3) });
    let payload = got.payload.unwrap();
    assert_eq!(&payload.body[..], &msg[..]);
    assert!(payload.atoms.is_empty());
    let start = frame.as_ptr() as usize;
    let at = payload.body.as_ptr() as usize;
    assert!(
        at > start && at < start + frame.len(),
        "payload is a slice of the frame"
    );
}

/// `131,68` frame: `{6, From, '', net_kernel}` + message, node and name atoms cached.
fn reg_send_frame(cache_section: &[u8]) -> Vec<u8> {
    let mut frame = vec![131, 68];
    frame.extend_from_slice(cache_section);
    // {6, Pid(node = cache ref 0), '', cache ref 1}
    frame.extend_from_slice(&[104, 4, 97, 6, 88, 82, 0]);
    frame.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 7]);
    frame.extend_from_slice(&[119, 0, 82, 1]);
    frame.extend_from_slice(&[82, 1]); // message: the atom net_kernel
    frame
}

fn new_pid(node: &str) -> Pid {
    Pid {
        node: Atom::new(node),
        id: 9,
        serial: 0,
        creation: 7,
    }
}

#[test]
fn a_repeated_section_shares_its_atom_table() {
    let mut rx = Receiver::new();
    let mut section = vec![2, 0x89, 0x00, 5, 3];
    section.extend_from_slice(b"a@h");
    section.extend_from_slice(&[7, 10]);
    section.extend_from_slice(b"net_kernel");
    rx.receive(Bytes::from(reg_send_frame(&section))).unwrap();
    let table = |rx: &mut Receiver| {
        rx.receive(Bytes::from(reg_send_frame(&[2, 0x01, 0x00, 5, 7])))
            .unwrap()
            .unwrap()
            .payload
            .unwrap()
            .atoms
    };
    let first = table(&mut rx);
    let second = table(&mut rx);
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(&second[..], &[Atom::new("a@h"), Atom::new("net_kernel")]);
}

#[test]
fn atom_cache_new_then_reused_entries() {
    let mut rx = Receiver::new();
    // Two new entries: (segment 1, index 5) = "a@h", (segment 0, index 7) = "net_kernel".
    let mut section = vec![2, 0x89, 0x00, 5, 3];
    section.extend_from_slice(b"a@h");
    section.extend_from_slice(&[7, 10]);
    section.extend_from_slice(b"net_kernel");
    let got = rx
        .receive(Bytes::from(reg_send_frame(&section)))
        .unwrap()
        .unwrap();
    let expected = Control::RegSend {
        from: new_pid("a@h"),
        to_name: Atom::new("net_kernel"),
    };
    assert_eq!(got.control, expected);
    let payload = got.payload.unwrap();
    assert_eq!(&payload.body[..], &[82, 1]);
    assert_eq!(
        &payload.atoms[..],
        &[Atom::new("a@h"), Atom::new("net_kernel")]
    );

    // The same slots again, now as references to existing entries.
    let section = vec![2, 0x01, 0x00, 5, 7];
    let got = rx
        .receive(Bytes::from(reg_send_frame(&section)))
        .unwrap()
        .unwrap();
    assert_eq!(got.control, expected);

    // LongAtoms: one new entry in segment 2 with a 2-byte length, replacing nothing.
    let mut section = vec![2, 0x0A, 0x01, 200, 0, 3];
    section.extend_from_slice(b"b@h");
    section.extend_from_slice(&[7]); // (0, 7) still "net_kernel"
    let got = rx
        .receive(Bytes::from(reg_send_frame(&section)))
        .unwrap()
        .unwrap();
    assert_eq!(
        got.control,
        Control::RegSend {
            from: new_pid("b@h"),
            to_name: Atom::new("net_kernel"),
        }
    );

    // A new entry overwrites a slot; later references see the new atom.
    let mut section = vec![2, 0x89, 0x00, 5, 3];
    section.extend_from_slice(b"c@h");
    section.extend_from_slice(&[7, 3]);
    section.extend_from_slice(b"rex");
    rx.receive(Bytes::from(reg_send_frame(&section))).unwrap();
    let got = rx
        .receive(Bytes::from(reg_send_frame(&[2, 0x01, 0x00, 5, 7])))
        .unwrap()
        .unwrap();
    assert_eq!(
        got.control,
        Control::RegSend {
            from: new_pid("c@h"),
            to_name: Atom::new("rex"),
        }
    );
}

#[test]
fn atom_cache_errors() {
    let mut rx = Receiver::new();
    // Reference to a slot never filled.
    let e = rx
        .receive(Bytes::from(reg_send_frame(&[2, 0x01, 0x00, 5, 7])))
        .unwrap_err();
    assert!(e.to_string().contains("empty slot"), "{e}");
    // ATOM_CACHE_REF beyond this header's table.
    let mut section = vec![1, 0x08, 5, 3];
    section.extend_from_slice(b"a@h");
    let e = rx
        .receive(Bytes::from(reg_send_frame(&section)))
        .unwrap_err();
    assert!(
        e.to_string().contains("not in this message's header"),
        "{e}"
    );
    // Invalid UTF-8 in a new entry.
    let section = vec![1, 0x08, 5, 2, 0xff, 0xfe];
    assert!(rx.receive(Bytes::from(reg_send_frame(&section))).is_err());
}

#[test]
fn truncated_frames_are_errors() {
    let mut tx = Sender::new(flags::DIST_HDR_ATOM_CACHE);
    let link = Control::Link {
        from: pid(1),
        to: pid(2),
    };
    for hdr in [0, flags::DIST_HDR_ATOM_CACHE] {
        tx.flags = hdr;
        let mut out = Vec::new();
        tx.encode(&link, None, &mut out).unwrap();
        let body = bodies(&out).remove(0);
        assert_eq!(
            Receiver::new()
                .receive(body.clone())
                .unwrap()
                .unwrap()
                .control,
            link
        );
        for cut in 0..body.len() {
            assert!(
                Receiver::new().receive(body.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
    }
    let mut section = vec![2, 0x89, 0x00, 5, 3];
    section.extend_from_slice(b"a@h");
    section.extend_from_slice(&[7, 10]);
    section.extend_from_slice(b"net_kernel");
    let frame = reg_send_frame(&section);
    // Cutting inside the header or control (the message is opaque bytes).
    for cut in 0..frame.len() - 2 {
        assert!(
            Receiver::new()
                .receive(Bytes::copy_from_slice(&frame[..cut]))
                .is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn malformed_frames_are_errors() {
    let mut rx = Receiver::new();
    for bad in [
        &[][..],
        &[1, 2, 3],
        &[131],
        &[131, 99],
        &[112, 100],
        &[131, 68, 0, 97, 1], // control is not a tuple
    ] {
        assert!(rx.receive(Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
    }
    // SEND without its message; LINK with a message.
    let send = term_body(&Term::tuple(vec![
        Term::Int(control::SEND),
        Term::atom(""),
        Term::Pid(pid(3)),
    ]));
    let mut frame = vec![131, 68, 0];
    frame.extend_from_slice(&send);
    let e = rx.receive(Bytes::from(frame)).unwrap_err();
    assert!(e.to_string().contains("lacks its message"), "{e}");
    let link = term_body(&Term::tuple(vec![
        Term::Int(control::LINK),
        Term::Pid(pid(1)),
        Term::Pid(pid(3)),
    ]));
    let mut frame = vec![131, 68, 0];
    frame.extend_from_slice(&link);
    frame.extend_from_slice(&[97, 1]);
    assert!(rx.receive(Bytes::from(frame)).is_err());
    // A pass-through SEND whose message is a version byte and nothing (found by the
    // dist_frames fuzzer: it came out as an empty message).
    let mut frame = vec![112, 131];
    frame.extend_from_slice(&send);
    frame.push(131);
    let e = rx.receive(Bytes::from(frame)).unwrap_err();
    assert!(e.to_string().contains("message is empty"), "{e}");
    // PAYLOAD_EXIT whose reason has trailing garbage.
    let exit = term_body(&Term::tuple(vec![
        Term::Int(control::PAYLOAD_EXIT),
        Term::Pid(pid(1)),
        Term::Pid(pid(3)),
    ]));
    let mut frame = vec![131, 68, 0];
    frame.extend_from_slice(&exit);
    frame.extend_from_slice(&[97, 1, 97]);
    assert!(rx.receive(Bytes::from(frame)).is_err());
}

#[test]
fn unknown_operation_is_kept() {
    let term = Term::tuple(vec![Term::Int(37), Term::atom("future")]);
    let mut frame = vec![131, 68, 0];
    frame.extend_from_slice(&term_body(&term));
    frame.extend_from_slice(&[97, 5]);
    let got = Receiver::new()
        .receive(Bytes::from(frame))
        .unwrap()
        .unwrap();
    assert_eq!(got.control, Control::Unknown(term));
    assert_eq!(&got.payload.unwrap().body[..], &[97, 5]);
}

/// `n` one-element tuples around `[]`, without the version byte.
fn nested(n: usize) -> Vec<u8> {
    let mut body: Vec<u8> = std::iter::repeat_n([104u8, 1], n).flatten().collect();
    body.push(106);
    body
}

#[test]
fn deeply_nested_controls_and_reasons_are_errors_not_stack_overflows() {
    // A control or exit reason nested 100,000 deep used to come out of the receiver and
    // overflow the stack wherever the node dropped or logged it (found writing the fuzz
    // harnesses). The test thread has the default 2 MiB stack.
    let exit = term_body(&Term::tuple(vec![
        Term::Int(control::PAYLOAD_EXIT),
        Term::Pid(pid(1)),
        Term::Pid(pid(3)),
    ]));
    for depth in [MAX_CONTROL_NESTING, 100_000] {
        // {99, Nested}: an unknown operation, kept as a term.
        let mut unknown = vec![104, 2, 97, 99];
        unknown.extend(nested(depth - 1));
        let mut pass_through = vec![112, 131];
        pass_through.extend_from_slice(&unknown);
        let mut with_header = vec![131, 68, 0];
        with_header.extend_from_slice(&unknown);
        let mut payload_exit = vec![131, 68, 0];
        payload_exit.extend_from_slice(&exit);
        payload_exit.extend(nested(depth));
        for frame in [pass_through, with_header, payload_exit] {
            let got = Receiver::new().receive(Bytes::from(frame));
            if depth == MAX_CONTROL_NESTING {
                assert!(got.unwrap().is_some(), "nested {depth} deep");
            } else {
                let e = got.unwrap_err();
                assert!(e.to_string().contains("nested more than"), "{e}");
            }
        }
    }
}

fn fragment(first: bool, seq: u64, frag: u64, data: &[u8]) -> Bytes {
    let mut f = vec![131, if first { 69 } else { 70 }];
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&frag.to_be_bytes());
    if first {
        f.push(0);
    }
    f.extend_from_slice(data);
    Bytes::from(f)
}

fn send_data(to: u32, msg: &[u8]) -> Vec<u8> {
    let mut data = term_body(&Term::tuple(vec![
        Term::Int(control::SEND),
        Term::atom(""),
        Term::Pid(pid(to)),
    ]));
    data.extend_from_slice(msg);
    data
}

#[test]
fn fragments_in_order_and_interleaved() {
    let msg1 = term_body(&Term::Binary(Bytes::from(vec![1u8; 5000])));
    let msg2 = term_body(&Term::Binary(Bytes::from(vec![2u8; 3000])));
    let d1 = send_data(1, &msg1);
    let d2 = send_data(2, &msg2);
    let (a1, rest1) = d1.split_at(100);
    let (b1, c1) = rest1.split_at(2000);
    let (a2, b2) = d2.split_at(1000);
    let mut rx = Receiver::new();
    assert_eq!(rx.receive(fragment(true, 7, 3, a1)).unwrap(), None);
    assert_eq!(rx.receive(fragment(true, 9, 2, a2)).unwrap(), None);
    assert_eq!(rx.receive(fragment(false, 7, 2, b1)).unwrap(), None);
    assert!(rx.buffered() > 0);
    let got2 = rx.receive(fragment(false, 9, 1, b2)).unwrap().unwrap();
    assert_eq!(got2.control, Control::Send { to: pid(2) });
    assert_eq!(&got2.payload.unwrap().body[..], &msg2[..]);
    let got1 = rx.receive(fragment(false, 7, 1, c1)).unwrap().unwrap();
    assert_eq!(got1.control, Control::Send { to: pid(1) });
    assert_eq!(&got1.payload.unwrap().body[..], &msg1[..]);
    assert_eq!(rx.buffered(), 0);
    // A single-fragment message completes at once.
    let got = rx.receive(fragment(true, 11, 1, &d2)).unwrap().unwrap();
    assert_eq!(got.control, Control::Send { to: pid(2) });
}

#[test]
fn fragment_errors() {
    let d = send_data(1, &message_body());
    let mut rx = Receiver::new();
    // Continuation without a first fragment.
    assert!(rx.receive(fragment(false, 1, 1, &d)).is_err());
    // Out of order: expected 2, got 1.
    rx.receive(fragment(true, 2, 3, &d[..5])).unwrap();
    let e = rx.receive(fragment(false, 2, 1, &d[5..])).unwrap_err();
    assert!(e.to_string().contains("out of order"), "{e}");
    assert_eq!(rx.buffered(), 0, "a broken sequence is dropped");
    // First fragment twice for the same sequence.
    rx.receive(fragment(true, 3, 2, &d[..5])).unwrap();
    assert!(rx.receive(fragment(true, 3, 2, &d[..5])).is_err());
    // Fragment id 0.
    assert!(rx.receive(fragment(true, 4, 0, &d)).is_err());
}

#[test]
fn reassembly_is_capped() {
    let mut rx = Receiver::with_limit(1000);
    let chunk = vec![0u8; 400];
    rx.receive(fragment(true, 1, 10, &chunk)).unwrap();
    rx.receive(fragment(false, 1, 9, &chunk)).unwrap();
    let e = rx.receive(fragment(false, 1, 8, &chunk)).unwrap_err();
    assert!(e.to_string().contains("reassembly limit"), "{e}");
    assert_eq!(rx.buffered(), 0);
    // Two sequences share the cap.
    rx.receive(fragment(true, 2, 3, &chunk)).unwrap();
    rx.receive(fragment(true, 3, 3, &chunk)).unwrap();
    assert!(rx.receive(fragment(true, 4, 3, &chunk)).is_err());
    assert_eq!(rx.buffered(), 800);
}

#[test]
fn a_claimed_fragment_count_sets_aside_bounded_room() {
    let mut rx = Receiver::with_limit(1 << 20);
    let chunk = vec![7u8; 1000];
    // A peer's word for the fragment count is not memory: at most a quarter of the cap.
    rx.receive(fragment(true, 1, u64::MAX, &chunk)).unwrap();
    assert_eq!(rx.buffered(), (1 << 20) / 4);
    // Every further message gets a quarter of what is left, and the total stays capped.
    for seq in 2..200 {
        if rx.receive(fragment(true, seq, u64::MAX, &chunk)).is_err() {
            break;
        }
    }
    assert!(rx.buffered() <= 1 << 20);
    // A real message whose fragments fit in its room completes, and frees what it held.
    let d = send_data(1, &message_body());
    let half = d.len() / 2;
    let mut rx = Receiver::with_limit(1 << 20);
    rx.receive(fragment(true, 9, 2, &d[..half])).unwrap();
    assert_eq!(rx.buffered(), 2 * half, "room for both fragments");
    let done = rx
        .receive(fragment(false, 9, 1, &d[half..]))
        .unwrap()
        .unwrap();
    assert!(done.payload.is_some());
    assert_eq!(rx.buffered(), 0);
}

#[test]
fn sender_frame_shapes() {
    let to = pid(1);
    let msg = message_body();
    let send = Control::Send { to: to.clone() };
    let mut out = Vec::new();
    Sender::new(0).encode(&send, Some(&msg), &mut out).unwrap();
    let b = bodies(&out);
    assert_eq!(&b[0][..2], &[112, 131]);
    assert_eq!(b[0][b[0].len() - msg.len() - 1], 131);
    out.clear();
    // With the atom cache: '' and the node name are new entries the first time, plain
    // references after, and the receiver resolves both forms to the same control.
    let mut tx = Sender::new(flags::DIST_HDR_ATOM_CACHE);
    tx.encode(&send, Some(&msg), &mut out).unwrap();
    tx.encode(&send, Some(&msg), &mut out).unwrap();
    let b = bodies(&out);
    assert_eq!(&b[0][..3], &[131, 68, 2]);
    assert_eq!(b[0][3] & 0x88, 0x88, "both entries new");
    assert_eq!(&b[1][..3], &[131, 68, 2]);
    assert_eq!(b[1][3] & 0x88, 0, "both entries known");
    assert!(b[1].len() < b[0].len());
    let mut rx = Receiver::new();
    for frame in b {
        assert!(frame.ends_with(&msg));
        let got = rx.receive(frame).unwrap().unwrap();
        assert_eq!(got.control, send);
    }
    out.clear();
    // Payload mismatches are refused.
    let mut tx = Sender::new(0);
    assert!(tx.encode(&send, None, &mut out).is_err());
    let link = Control::Link {
        from: pid(1),
        to: pid(2),
    };
    assert!(tx.encode(&link, Some(&msg), &mut out).is_err());
}

#[test]
fn sender_fragments_large_messages() {
    let big = term_body(&Term::Binary(Bytes::from(vec![7u8; 200_000])));
    let f = flags::DIST_HDR_ATOM_CACHE | flags::FRAGMENTS;
    let mut tx = Sender::new(f);
    let ctl = Control::AliasSend(Box::new(AliasSend {
        from: pid(1),
        alias: reference(2),
    }));
    let mut out = Vec::new();
    tx.encode(&ctl, Some(&big), &mut out).unwrap();
    let b = bodies(&out);
    assert_eq!(b.len(), 4, "200 kB in 64 KiB fragments");
    assert_eq!(&b[0][..2], &[131, 69]);
    let seq = b[0].slice(2..10);
    for (i, frame) in b.iter().enumerate() {
        assert_eq!(&frame[2..10], &seq[..]);
        let frag = u64::from_be_bytes(frame[10..18].try_into().unwrap());
        assert_eq!(frag, 4 - i as u64);
        if i > 0 {
            assert_eq!(frame[1], 70);
        }
        assert!(frame.len() <= 19 + DEFAULT_FRAGMENT_SIZE);
    }
    let mut rx = Receiver::new();
    let mut last = None;
    for frame in b {
        last = rx.receive(frame).unwrap();
    }
    let got = last.unwrap();
    assert_eq!(got.control, ctl);
    assert_eq!(&got.payload.unwrap().body[..], &big[..]);
    // The next message gets a fresh sequence id.
    let mut out2 = Vec::new();
    tx.encode(&ctl, Some(&big), &mut out2).unwrap();
    assert_ne!(&bodies(&out2)[0][2..10], &seq[..]);
    // Without FRAGMENTS the message goes whole.
    out.clear();
    Sender::new(flags::DIST_HDR_ATOM_CACHE)
        .encode(&ctl, Some(&big), &mut out)
        .unwrap();
    assert_eq!(out.len(), 1);
}

#[test]
fn round_trip_every_flag_combination() {
    let bits = [
        flags::DIST_HDR_ATOM_CACHE,
        flags::FRAGMENTS,
        flags::EXIT_PAYLOAD,
        flags::SEND_SENDER,
    ];
    let small = message_body();
    let large = term_body(&Term::Binary(Bytes::from(vec![3u8; 3000])));
    for mask in 0..16u32 {
        let f = bits
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .fold(0, |acc, (_, b)| acc | b);
        // A small fragment size so that large messages are cut into several pieces.
        let mut tx = Sender::with_fragment_size(f, 1000);
        let mut rx = Receiver::new();
        for msg in [&small, &large] {
            for control in all_controls() {
                let payload = control.carries_message().then_some(&msg[..]);
                let mut out = Vec::new();
                tx.encode(&control, payload, &mut out).unwrap();
                let frames = bodies(&out);
                let n = frames.len();
                let mut got = None;
                for (i, frame) in frames.into_iter().enumerate() {
                    got = rx.receive(frame).unwrap();
                    assert_eq!(got.is_some(), i + 1 == n, "flags {f:#x}");
                }
                let got = got.unwrap();
                let expected = match &control {
                    Control::SendSender { to, .. } if f & flags::SEND_SENDER == 0 => {
                        Control::Send { to: to.clone() }
                    }
                    other => other.clone(),
                };
                assert_eq!(got.control, expected, "flags {f:#x}");
                assert_eq!(
                    got.payload.map(|p| p.body.to_vec()),
                    payload.map(<[u8]>::to_vec),
                    "flags {f:#x}"
                );
            }
        }
        assert_eq!(rx.buffered(), 0);
    }
}

#[test]
fn a_repeated_control_is_re_encoded_after_the_cache_changes() {
    // 3000 names cannot share 2048 slots: some take the slot of `bench`, and every frame
    // for `bench` after that must bring the atom again, not reuse the old reference.
    let body = message_body();
    let mut tx = Sender::new(flags::DIST_HDR_ATOM_CACHE);
    let mut rx = Receiver::new();
    let bench = Atom::new("bench");
    for i in 0..3000 {
        for name in [Atom::new(&format!("name{i}")), bench.clone()] {
            let control = Control::RegSend {
                from: pid(1),
                to_name: name.clone(),
            };
            let mut out = Vec::new();
            tx.encode(&control, Some(&body), &mut out).unwrap();
            let got = rx.receive(bodies(&out).remove(0)).unwrap().unwrap();
            assert_eq!(got.control, control, "round {i}");
        }
    }
}

#[test]
fn encode_many_matches_one_encode_per_message() {
    let small = message_body();
    let large = term_body(&Term::Binary(Bytes::from(vec![5u8; 2500])));
    let batch: Vec<&[u8]> = vec![&small, &small, &large, &small, &large, &small];
    let controls = [
        Control::RegSend {
            from: pid(1),
            to_name: Atom::new("bench"),
        },
        Control::SendSender {
            from: pid(1),
            to: pid(2),
        },
    ];
    for f in [
        flags::DIST_HDR_ATOM_CACHE | flags::FRAGMENTS | flags::SEND_SENDER,
        flags::DIST_HDR_ATOM_CACHE | flags::SEND_SENDER,
        flags::SEND_SENDER,
    ] {
        for control in &controls {
            // Two senders with the same history: one batch against one call per message.
            let mut one_by_one = Sender::with_fragment_size(f, 1000);
            let mut batched = Sender::with_fragment_size(f, 1000);
            let mut expected = Vec::new();
            for body in &batch {
                let mut frames = Vec::new();
                one_by_one.encode(control, Some(body), &mut frames).unwrap();
                frames.iter().for_each(|fr| expected.extend_from_slice(fr));
            }
            let mut got = Vec::new();
            batched
                .encode_many(control, batch.iter().copied(), &mut got)
                .unwrap();
            // Fragmented messages differ in their sequence ids only; compare decoded.
            let mut rx = Receiver::new();
            let mut received = Vec::new();
            let mut rest = &got[..];
            while !rest.is_empty() {
                let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                let frame = Bytes::copy_from_slice(&rest[4..4 + len]);
                rest = &rest[4 + len..];
                if let Some(incoming) = rx.receive(frame).unwrap() {
                    assert_eq!(&incoming.control, control, "flags {f:#x}");
                    received.push(incoming.payload.unwrap().body.to_vec());
                }
            }
            let sent: Vec<Vec<u8>> = batch.iter().map(|b| b.to_vec()).collect();
            assert_eq!(received, sent, "flags {f:#x}");
            if f & flags::FRAGMENTS == 0 {
                assert_eq!(got, expected, "flags {f:#x}");
            }
        }
    }
}

proptest! {
    #[test]
    fn receiver_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut rx = Receiver::with_limit(4096);
        let _ = rx.receive(Bytes::from(data));
    }

    #[test]
    fn receiver_survives_mutations(pos in 0usize..64, byte in any::<u8>()) {
        let mut section = vec![2, 0x89, 0x00, 5, 3];
        section.extend_from_slice(b"a@h");
        section.extend_from_slice(&[7, 10]);
        section.extend_from_slice(b"net_kernel");
        let mut frame = reg_send_frame(&section);
        let at = pos % frame.len();
        frame[at] = byte;
        let _ = Receiver::new().receive(Bytes::from(frame));
    }
}
