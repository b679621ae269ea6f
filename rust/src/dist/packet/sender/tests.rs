//! Tests of sending a message body in segments: the bytes on the wire are exactly those of
//! the body sent whole, and big segments go out as shares of their memory, not copies.

use super::*;
use crate::dist::control::tests::{all_controls, pid, reference};
use crate::dist::control::AliasSend;

/// Every combination of the flags that change how a message is framed.
fn flag_sets() -> Vec<u64> {
    let bits = [
        flags::DIST_HDR_ATOM_CACHE,
        flags::FRAGMENTS,
        flags::SEND_SENDER,
    ];
    (0..8u32)
        .map(|mask| {
            bits.iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .fold(0, |acc, (_, b)| acc | b)
        })
        .collect()
}

fn message_controls() -> Vec<Control> {
    vec![
        Control::SendSender {
            from: pid(1),
            to: pid(2),
        },
        Control::RegSend {
            from: pid(1),
            to_name: Atom::new("bench"),
        },
        Control::AliasSend(Box::new(AliasSend {
            from: pid(1),
            alias: reference(3),
        })),
    ]
}

/// A body of `len` bytes that differ (a shifted byte would show).
fn body(len: usize) -> Bytes {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// `body` cut at `cuts` (offsets, any order, duplicates give empty segments).
fn cut(body: &Bytes, cuts: &[usize]) -> Vec<Bytes> {
    let mut at: Vec<usize> = cuts.iter().map(|&c| c.min(body.len())).collect();
    at.sort_unstable();
    let mut segments = Vec::new();
    let mut from = 0;
    for to in at.into_iter().chain([body.len()]) {
        segments.push(body.slice(from..to));
        from = to;
    }
    segments
}

fn joined(pieces: &[Bytes]) -> Vec<u8> {
    let mut all = Vec::with_capacity(pieces.iter().map(Bytes::len).sum());
    pieces.iter().for_each(|p| all.extend_from_slice(p));
    all
}

/// The ways one body is cut in these tests: whole, in two, around the fragment size, in
/// many small segments, with empty segments.
fn cuttings(len: usize, fragment: usize) -> Vec<Vec<usize>> {
    vec![
        vec![],
        vec![len / 2],
        vec![0, 0, len],
        vec![1, fragment - 1, fragment, fragment + 1, 2 * fragment],
        (0..len).step_by(97).collect(),
        vec![3, 10, 10, len.saturating_sub(5)],
    ]
}

#[test]
fn segments_put_the_same_bytes_on_the_wire_as_one_body() {
    let fragment = 1000;
    let sizes = [
        0, 1, 100, 979, 980, 981, 999, 1000, 1001, 1979, 1980, 1981, 2000, 4095, 4096, 4097,
        10_000, 70_000,
    ];
    for f in flag_sets() {
        for control in message_controls() {
            // Two senders with one history: the reference sends every body whole, the other
            // in segments, so their atom caches, repeated headers and fragment sequence ids
            // go the same way.
            let mut whole = Sender::with_fragment_size(f, fragment);
            let mut segmented = Sender::with_fragment_size(f, fragment);
            for &len in &sizes {
                let b = body(len);
                for cuts in cuttings(len, fragment) {
                    let mut frames = Vec::new();
                    whole.encode(&control, Some(&b), &mut frames).unwrap();
                    let mut pieces = Vec::new();
                    let segments = cut(&b, &cuts);
                    segmented
                        .encode_segments(&control, &segments, &mut pieces)
                        .unwrap();
                    assert!(pieces.iter().all(|p| !p.is_empty()));
                    assert_eq!(
                        joined(&pieces),
                        joined(&frames),
                        "flags {f:#x}, {control:?}, {len} bytes cut at {cuts:?}"
                    );
                    // A small message sent whole in between, as a program interleaves them.
                    let small = body(5);
                    let mut expected = Vec::new();
                    whole.encode(&control, Some(&small), &mut expected).unwrap();
                    let mut got = Vec::new();
                    segmented.encode(&control, Some(&small), &mut got).unwrap();
                    assert_eq!(joined(&got), joined(&expected), "flags {f:#x}, {control:?}");
                }
            }
        }
    }
}

#[test]
fn default_fragments_of_a_big_body_are_shares_of_its_memory() {
    let big = body(8 << 20);
    let head = Bytes::from_static(&[104, 2, 100, 0, 3, b'b', b'i', b'g', 109, 0, 128, 0, 0]);
    let range = big.as_ptr() as usize..big.as_ptr() as usize + big.len();
    let shared = |p: &Bytes| range.contains(&(p.as_ptr() as usize));
    let control = Control::SendSender {
        from: pid(1),
        to: pid(2),
    };
    for f in [
        flags::DIST_HDR_ATOM_CACHE | flags::FRAGMENTS | flags::SEND_SENDER,
        flags::DIST_HDR_ATOM_CACHE | flags::SEND_SENDER,
        flags::SEND_SENDER,
    ] {
        let mut tx = Sender::new(f);
        let mut pieces = Vec::new();
        tx.encode_segments(&control, &[head.clone(), big.clone()], &mut pieces)
            .unwrap();
        let copied: usize = pieces.iter().filter(|p| !shared(p)).map(Bytes::len).sum();
        let from_big: usize = pieces.iter().filter(|p| shared(p)).map(Bytes::len).sum();
        // Every byte of the binary is shared, but for the end of the last fragment when it
        // is short.
        assert!(
            big.len() - from_big < SHARE_FROM,
            "flags {f:#x}: {from_big} bytes shared"
        );
        if f & flags::FRAGMENTS != 0 {
            // 128 fragments: 22 bytes of length and fragment header each, the control in
            // the first, and the head segment (short: copied beside it).
            let fragments = (big.len() + head.len()).div_ceil(DEFAULT_FRAGMENT_SIZE);
            let most = fragments * 22 + 64 + head.len() + (big.len() - from_big);
            assert!(copied <= most, "{copied} bytes copied");
            assert_eq!(
                pieces.len(),
                2 * fragments - 1,
                "a header, then a share, per fragment"
            );
        } else {
            assert_eq!(pieces.len(), 2, "the frame's header, then the binary");
            assert!(copied < 80, "{copied} bytes copied");
        }
        let mut reference = Vec::new();
        let mut joined_body = head.to_vec();
        joined_body.extend_from_slice(&big);
        Sender::new(f)
            .encode(&control, Some(&joined_body), &mut reference)
            .unwrap();
        assert_eq!(joined(&pieces), joined(&reference), "flags {f:#x}");
    }
}

#[test]
fn segments_are_refused_where_a_body_is() {
    let mut tx = Sender::new(flags::DIST_HDR_ATOM_CACHE | flags::FRAGMENTS);
    let mut out = Vec::new();
    for control in all_controls() {
        let result = tx.encode_segments(&control, &[body(10)], &mut out);
        // An unknown control goes out with whatever it is given, as with `encode`.
        let unknown = matches!(control, Control::Unknown(_));
        assert_eq!(
            result.is_ok(),
            control.carries_message() || unknown,
            "{control:?}"
        );
    }
    // Over what a frame's length can say: refused before anything is framed. The segments
    // share one buffer, so the test needs no 4 GiB.
    let chunk = Bytes::from(vec![0u8; 64 << 20]);
    let segments = vec![chunk; 65];
    out.clear();
    let send = Control::Send { to: pid(2) };
    assert!(tx.encode_segments(&send, &segments, &mut out).is_err());
    assert!(out.is_empty());
}
