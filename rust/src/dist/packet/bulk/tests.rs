//! Large binaries through the receiver: whole frames and fragments, read through the buffer
//! or straight into destinations, destinations early, late or never, every split of the
//! stream; the message always comes out as it was sent.

use super::*;
use crate::dist::control::tests::pid;
use crate::dist::control::Control;
use crate::dist::flags;
use crate::dist::framing::Deframer;
use crate::dist::packet::{Incoming, Receiver, Sender};
use crate::etf::{term_body, Term};
use std::sync::Weak;

/// A lander whose destinations come only when [`TestLander::serve`] is called: as late as
/// the test wants.
#[derive(Default)]
struct TestLander {
    pending: Mutex<Vec<(usize, Weak<LandingSlot>)>>,
    immediate: bool,
}

impl Lander for TestLander {
    fn request(&self, len: usize, slot: &Arc<LandingSlot>) {
        if self.immediate {
            slot.put(Box::new(BufferLanding::new(len)));
            return;
        }
        self.pending
            .lock()
            .unwrap()
            .push((len, Arc::downgrade(slot)));
    }
}

impl TestLander {
    fn serve(&self) {
        for (len, slot) in self.pending.lock().unwrap().drain(..) {
            if let Some(slot) = slot.upgrade() {
                slot.put(Box::new(BufferLanding::new(len)));
            }
        }
    }
}

/// `{bin, N, <<...>>}` with a binary of `len` bytes that differ from place to place.
fn bulk_message(n: i64, len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..len).map(|i| (i * 31 + i / 251) as u8).collect();
    term_body(&Term::tuple(vec![
        Term::atom("bin"),
        Term::Int(n),
        Term::Binary(data.into()),
    ]))
}

fn small_message(n: i64) -> Vec<u8> {
    term_body(&Term::tuple(vec![Term::atom("small"), Term::Int(n)]))
}

fn send(to: u32) -> Control {
    Control::RegSend {
        from: pid(to),
        to_name: crate::etf::Atom::new("sink"),
    }
}

/// The wire bytes of `messages`, sent with `flags` (fragments of `fragment` bytes).
fn wire(flags: u64, fragment: usize, messages: &[Vec<u8>]) -> Vec<u8> {
    let mut tx = Sender::with_fragment_size(flags, fragment);
    let mut frames = Vec::new();
    for message in messages {
        tx.encode(&send(1), Some(message), &mut frames).unwrap();
    }
    frames.iter().flat_map(|f| f.iter().copied()).collect()
}

/// How the test reads the stream.
#[derive(Clone, Copy, Debug)]
struct Reading {
    /// Bytes per read at most.
    chunk: usize,
    /// Whether reads go into [`Receiver::window`] when it offers one (as the socket reader
    /// does), or always into the buffer.
    direct: bool,
    /// Serve the lander's requests every this many reads (0: never).
    serve_every: usize,
}

/// Receives `wire` as `reading` says; returns the messages' full encodings and the receiver
/// (with the reads made in `reads`).
fn receive(
    wire: &[u8],
    reading: Reading,
    lander: Option<Arc<TestLander>>,
) -> (Vec<Vec<u8>>, Receiver) {
    receive_counting(wire, reading, lander, &mut 0)
}

fn receive_counting(
    wire: &[u8],
    reading: Reading,
    lander: Option<Arc<TestLander>>,
    reads: &mut usize,
) -> (Vec<Vec<u8>>, Receiver) {
    let mut frames = Deframer::default();
    let mut rx = Receiver::new();
    rx.set_lander(lander.clone().map(|l| l as Arc<dyn Lander>));
    let mut got: Vec<Incoming> = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        *reads += 1;
        if let Some(lander) = &lander {
            if reading.serve_every > 0 && *reads % reading.serve_every == 0 {
                lander.serve();
            }
        }
        if reading.direct {
            if let Some(window) = rx.window() {
                let n = window.len().min(reading.chunk).min(wire.len() - at);
                for (to, &from) in window[..n].iter_mut().zip(&wire[at..at + n]) {
                    to.write(from);
                }
                at += n;
                if let Some(incoming) = rx.wrote(n).unwrap() {
                    got.push(incoming);
                }
                rx.cut(&mut frames, |i| got.push(i)).unwrap();
                continue;
            }
        }
        let limit = if reading.direct {
            rx.read_limit(&frames).unwrap_or(usize::MAX)
        } else {
            usize::MAX
        };
        let n = reading.chunk.min(limit).min(wire.len() - at);
        frames.buffer().extend_from_slice(&wire[at..at + n]);
        at += n;
        rx.cut(&mut frames, |i| got.push(i)).unwrap();
    }
    let bodies = got
        .into_iter()
        .map(|incoming| {
            assert_eq!(incoming.control, send(1));
            let payload = incoming.payload.expect("a message");
            contiguous(&payload.body, payload.bulks.as_slice()).to_vec()
        })
        .collect();
    (bodies, rx)
}

const READINGS: [Reading; 5] = [
    Reading {
        chunk: 1 << 20,
        direct: true,
        serve_every: 1,
    },
    Reading {
        chunk: 65_536,
        direct: true,
        serve_every: 3,
    },
    Reading {
        chunk: 7_919,
        direct: true,
        serve_every: 0,
    },
    Reading {
        chunk: 100_000,
        direct: false,
        serve_every: 2,
    },
    Reading {
        chunk: 1_000,
        direct: true,
        serve_every: 50,
    },
];

#[test]
fn large_binaries_arrive_intact_whole_or_in_fragments_however_they_are_read() {
    let messages = vec![
        small_message(1),
        bulk_message(2, BULK_MIN - 1),
        bulk_message(3, BULK_MIN),
        small_message(4),
        bulk_message(5, 3 * 65_536 + 7),
        bulk_message(6, 2 << 20),
        small_message(7),
    ];
    let all = flags::DIST_HDR_ATOM_CACHE | flags::FRAGMENTS;
    for flags in [all, flags::DIST_HDR_ATOM_CACHE] {
        let wire = wire(flags, 65_536, &messages);
        for reading in READINGS {
            for lander in [None, Some(false), Some(true)] {
                let lander = lander.map(|immediate| {
                    Arc::new(TestLander {
                        immediate,
                        ..TestLander::default()
                    })
                });
                let (got, rx) = receive(&wire, reading, lander.clone());
                assert!(
                    got == messages,
                    "flags {flags:x}, {reading:?}, lander {}",
                    lander.is_some()
                );
                if reading.direct && lander.as_ref().is_some_and(|l| l.immediate) {
                    assert!(
                        rx.bulk_landed > rx.bulk_copied,
                        "{reading:?}: landed {} copied {}",
                        rx.bulk_landed,
                        rx.bulk_copied
                    );
                }
            }
        }
    }
}

#[test]
fn reads_between_fragments_take_whole_heads_not_single_bytes() {
    // A first version read the rest of a short last fragment one byte at a time.
    let messages = vec![bulk_message(1, (2 << 20) + 5_000), small_message(2)];
    let wire = wire(
        flags::DIST_HDR_ATOM_CACHE | flags::FRAGMENTS,
        65_536,
        &messages,
    );
    let reading = Reading {
        chunk: 1 << 20,
        direct: true,
        serve_every: 1,
    };
    let mut reads = 0;
    let lander = Arc::new(TestLander::default());
    let (got, _) = receive_counting(&wire, reading, Some(lander), &mut reads);
    assert!(got == messages);
    // About two per fragment: its head, then its body with the next head.
    let fragments = wire.len() / 65_536 + 1;
    assert!(
        reads <= 3 * fragments,
        "{reads} reads for {fragments} fragments"
    );
}

#[test]
fn a_destination_that_comes_late_takes_what_arrived_before_it() {
    let messages = vec![bulk_message(1, 1 << 20)];
    let wire = wire(
        flags::DIST_HDR_ATOM_CACHE | flags::FRAGMENTS,
        65_536,
        &messages,
    );
    let lander = Arc::new(TestLander::default());
    let reading = Reading {
        chunk: 65_536,
        direct: true,
        serve_every: 5,
    };
    let (got, rx) = receive(&wire, reading, Some(lander));
    assert!(got == messages);
    assert!(
        rx.bulk_copied > 0 && rx.bulk_landed > 0,
        "{} {}",
        rx.bulk_copied,
        rx.bulk_landed
    );
    assert_eq!(rx.bulk_copied + rx.bulk_landed, 1 << 20);
}

#[test]
fn a_small_message_between_fragments_is_delivered_in_its_place() {
    // A whole frame of another sender's arrives between two fragments of a large message.
    let big = bulk_message(1, 1 << 20);
    let mut tx = Sender::with_fragment_size(flags::DIST_HDR_ATOM_CACHE | flags::FRAGMENTS, 65_536);
    let mut frames = Vec::new();
    tx.encode(&send(1), Some(&big), &mut frames).unwrap();
    let mut other = Sender::new(flags::DIST_HDR_ATOM_CACHE | flags::FRAGMENTS);
    let mut small = Vec::new();
    other
        .encode(&send(1), Some(&small_message(9)), &mut small)
        .unwrap();
    frames.insert(3, small[0].clone());
    let wire: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
    for reading in READINGS {
        let (got, _) = receive(&wire, reading, Some(Arc::new(TestLander::default())));
        assert!(got == vec![small_message(9), big.clone()], "{reading:?}");
    }
}

#[test]
fn a_binary_longer_than_its_message_is_not_landed_and_fails_to_decode() {
    // A frame whose binary claims 1 MiB but carries 300 KiB: no destination of the claimed
    // size beyond the frame, and the message decodes as an error (not a panic).
    let mut body = term_body(&Term::tuple(vec![Term::atom("bin"), Term::Int(1)]));
    body[1] = 3; // arity 3: the binary below is the third element
    body.extend_from_slice(&[crate::etf::tags::BINARY]);
    body.extend_from_slice(&(1u32 << 20).to_be_bytes());
    body.extend(std::iter::repeat_n(5u8, 300 * 1024));
    let wire = wire(flags::DIST_HDR_ATOM_CACHE, 65_536, &[body.clone()]);
    let reading = Reading {
        chunk: 65_536,
        direct: true,
        serve_every: 1,
    };
    let (got, _) = receive(&wire, reading, Some(Arc::new(TestLander::default())));
    assert!(got == vec![body.clone()]);
    let mut reader = crate::etf::reader::Reader::new(&got[0]);
    assert!(crate::etf::decode::decode_term(&mut reader, &[]).is_err());
}

#[test]
fn contiguous_puts_every_binary_back_in_place() {
    let skeleton = Bytes::from_static(&[1, 109, 0, 0, 0, 3, 2, 109, 0, 0, 0, 2, 3]);
    let landed = |data: &[u8]| {
        let mut landing = BufferLanding::new(data.len());
        for (to, &from) in landing.memory().iter_mut().zip(data) {
            to.write(from);
        }
        landing.finish();
        Arc::new(landing) as Arc<dyn Landed>
    };
    let bulks = [
        Bulk {
            at: 1,
            data: landed(b"abc"),
        },
        Bulk {
            at: 7,
            data: landed(b"de"),
        },
    ];
    assert_eq!(
        &contiguous(&skeleton, &bulks)[..],
        &[1, 109, 0, 0, 0, 3, b'a', b'b', b'c', 2, 109, 0, 0, 0, 2, b'd', b'e', 3]
    );
}
