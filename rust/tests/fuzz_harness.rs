//! The fuzz harnesses: one function per cargo-fuzz target (`fuzz/fuzz_targets/<name>.rs`).
//!
//! This file is shared: the fuzz crate includes it (`fuzz/src/lib.rs`), and the replay test
//! `fuzz_corpus.rs` runs every committed corpus and regression input through the same
//! functions with plain `cargo test`. Only the crate's public API is used.
//!
//! A harness panics only on a bug: every input must be either accepted or refused with an
//! error (never a panic, an overflow or a runaway allocation), and what is accepted must come
//! out the same after being encoded again. Each returns whether the input was accepted, so
//! the replay test can check that its seeds reach past the first refusal.

use bytes::Bytes;
use erlnode::dist::framing::{Deframer, FrameTooLarge};
use erlnode::dist::handshake::{
    self, Arbiter, Challenge, ChallengeAck, ChallengeReply, Complement, HandshakeConfig,
    HandshakeError, LengthPrefix, PeerState, SendName, Status, MAX_MESSAGE,
};
use erlnode::dist::packet::{Incoming, Receiver, Sender, DEFAULT_MAX_REASSEMBLY};
use erlnode::dist::{flags, Control};
use erlnode::epmd::proto::{Alive2Resp, NamesResp, Port2Resp, Request};
use erlnode::etf::decode::decode_term;
use erlnode::etf::reader::Reader;
use erlnode::etf::{self, Atom, DecodeOptions, Term};
use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A harness: runs one input, panics on a bug, says whether the input was accepted.
pub type Harness = fn(&[u8]) -> bool;

/// Every target: its name (the fuzz target's and its corpus folder's) and its harness.
pub const TARGETS: &[(&str, Harness)] = &[
    ("etf", etf),
    ("handshake", handshake),
    ("handshake_messages", handshake_messages),
    ("dist_frames", dist_frames),
    ("epmd", epmd),
];

/// Our side of a fuzzed handshake.
pub const OUR_NAME: &str = "fuzz@localhost";
pub const COOKIE: &str = "fuzzcookie";
/// The node the initiator dials.
pub const PEER_NAME: &str = "peer@localhost";

/// The largest frame the fuzzed deframer takes (the node's is larger; a frame longer than a
/// fuzz input never completes either way, and this keeps each run's reservation small).
pub const MAX_FRAME: usize = 1 << 16;
/// The small reassembly cap, one the fuzzer can reach (the other runs use the node's default).
pub const SMALL_REASSEMBLY: usize = 4096;

// --- the ETF decoder ---------------------------------------------------------------------

/// `etf::decode` on the input, and `etf::decode_with` with an atom cache (ATOM_CACHE_REF
/// resolves) and a small inflate limit.
pub fn etf(data: &[u8]) -> bool {
    let plain = etf::decode(data);
    if let Ok(term) = &plain {
        assert_reencodes(term);
    }
    let cache = [Atom::new("cached"), Atom::new("a@h"), Atom::new("é")];
    let options = DecodeOptions {
        atom_cache: &cache,
        max_inflated: 1 << 16,
    };
    let cached = etf::decode_with(data, &options);
    if let Ok(term) = &cached {
        assert_reencodes(term);
        if let Ok(plain) = &plain {
            let same = etf::encode(plain) == etf::encode(term);
            assert!(same, "the atom cache changed a term without references");
        }
    }
    plain.is_ok() || cached.is_ok()
}

/// A decoded term encodes to bytes that decode to the same term again. Compared as bytes,
/// which `-0.0 == 0.0` would miss and which never recurses, and with `==`, which a NaN fails,
/// on terms shallow enough for it (`==` recurses: 2,000 levels overflow a debug build's 2 MiB
/// test thread).
fn assert_reencodes(term: &Term) {
    let bytes = etf::encode(term);
    let again = etf::decode(&bytes)
        .unwrap_or_else(|e| panic!("our encoding of a term does not decode: {e}"));
    assert!(
        etf::encode(&again) == bytes,
        "a term changed on its way out and back: {bytes:?}"
    );
    if !term.nests_deeper_than(100) {
        assert_eq!(&again, term, "a term changed on its way out and back");
    }
}

// --- the handshake -----------------------------------------------------------------------

/// One handshake over a stream whose peer says the input. The first byte sets it up: bit 0
/// TLS-style 4-byte length prefixes; bit 1 we accept (else we initiate); as acceptor bits 2-3
/// what the node knows of the peer, as initiator bit 2 asks the acceptor to name us. Accepted:
/// the peer's messages were well-formed and the exchange ended in a decision (the furthest is
/// the cookie check: fuzzed bytes cannot know our random challenge).
pub fn handshake(data: &[u8]) -> bool {
    let Some((&setup, peer_says)) = data.split_first() else {
        return false;
    };
    let mut cfg = HandshakeConfig::new(OUR_NAME, 7, COOKIE);
    if setup & 0x01 != 0 {
        cfg.length_prefix = LengthPrefix::U32;
    }
    let acceptor = setup & 0x02 != 0;
    let mut stream = Scripted {
        input: peer_says,
        written: Vec::new(),
    };
    let result = block_on(async {
        if acceptor {
            let states = [
                PeerState::None,
                PeerState::Pending,
                PeerState::Connected,
                PeerState::Refused,
            ];
            let knows = KnownPeer(states[(setup >> 2) as usize & 3]);
            handshake::accept(&mut stream, &cfg, &knows).await
        } else {
            if setup & 0x04 != 0 {
                cfg.name_me = true;
                cfg.name = "localhost".to_string();
            }
            handshake::initiate(&mut stream, &cfg, PEER_NAME).await
        }
    });
    check_we_wrote(&stream.written, &cfg, acceptor);
    match result {
        Ok(connected) => {
            let (alive, host) = connected.peer_name.split_once('@').expect("alive@host");
            assert!(!alive.is_empty() && !host.is_empty(), "{connected:?}");
            assert_eq!(connected.flags & !cfg.flags, 0, "flags we did not offer");
            true
        }
        Err(
            HandshakeError::Malformed(_) | HandshakeError::Io(_) | HandshakeError::Timeout { .. },
        ) => false,
        Err(_) => true,
    }
}

/// What we wrote is well-framed messages, the first one ours to send first.
fn check_we_wrote(written: &[u8], cfg: &HandshakeConfig, acceptor: bool) {
    let prefix = match cfg.length_prefix {
        LengthPrefix::U16 => 2,
        LengthPrefix::U32 => 4,
    };
    let mut rest = written;
    let mut messages = Vec::new();
    while !rest.is_empty() {
        assert!(rest.len() >= prefix, "a torn length prefix");
        let len = rest[..prefix]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        assert!(len > 0 && len <= MAX_MESSAGE, "a message of {len} bytes");
        assert!(rest.len() >= prefix + len, "a torn message");
        messages.push(&rest[prefix..prefix + len]);
        rest = &rest[prefix + len..];
    }
    match messages.first() {
        Some(first) if acceptor => {
            Status::decode(first).expect("the acceptor answers a status first");
        }
        Some(first) => {
            let hello = SendName::decode(first).expect("the initiator sends its name first");
            assert_eq!(hello.name, cfg.name);
        }
        None => assert!(acceptor, "the initiator speaks first"),
    }
}

/// What the node knows of a connecting peer: one fixed answer.
struct KnownPeer(PeerState);

impl Arbiter for KnownPeer {
    fn incoming(&self, _peer_name: &str) -> PeerState {
        self.0
    }
}

/// A stream whose reads give the fuzz input (then end of file) and whose writes are kept.
/// Never pending, so no handshake timeout ever runs.
struct Scripted<'a> {
    input: &'a [u8],
    written: Vec<u8>,
}

impl AsyncRead for Scripted<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let (now, later) = this.input.split_at(buf.remaining().min(this.input.len()));
        buf.put_slice(now);
        this.input = later;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().written.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

thread_local! {
    /// One runtime per thread, built once: the handshake's timeouts need Tokio's timer.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
}

fn block_on<F: Future>(future: F) -> F::Output {
    RUNTIME.with(|runtime| runtime.block_on(future))
}

/// Every handshake message decoder on the input; what one accepts encodes to bytes it
/// decodes to the same message.
pub fn handshake_messages(data: &[u8]) -> bool {
    let mut accepted = false;
    accepted |= reencodes(data, SendName::decode, SendName::encode);
    accepted |= reencodes(data, Status::decode, Status::encode);
    accepted |= reencodes(data, Challenge::decode, Challenge::encode);
    accepted |= reencodes(data, Complement::decode, Complement::encode);
    accepted |= reencodes(data, ChallengeReply::decode, ChallengeReply::encode);
    accepted |= reencodes(data, ChallengeAck::decode, ChallengeAck::encode);
    accepted
}

fn reencodes<M: PartialEq + Debug, E: Debug>(
    data: &[u8],
    decode: fn(&[u8]) -> Result<M, E>,
    encode: fn(&M) -> Vec<u8>,
) -> bool {
    let Ok(message) = decode(data) else {
        return false;
    };
    let again = decode(&encode(&message))
        .unwrap_or_else(|e| panic!("our encoding of {message:?} does not decode: {e:?}"));
    assert_eq!(again, message);
    true
}

// --- connected-phase frames --------------------------------------------------------------

/// The input after its first byte is what a connected peer sends: cut into frames by a
/// [`Deframer`] (fed in pieces of the first byte's low 6 bits, 0 = all at once) and parsed by
/// a [`Receiver`] (bit 6: a small reassembly cap, else the node's). Every signal that comes
/// out is sent again through a [`Sender`], with and without the atom cache, and must come
/// back the same. Accepted: at least one signal and no error.
pub fn dist_frames(data: &[u8]) -> bool {
    let Some((&setup, stream)) = data.split_first() else {
        return false;
    };
    let piece = match setup & 0x3F {
        0 => stream.len().max(1),
        n => n as usize,
    };
    let cap = if setup & 0x40 != 0 {
        SMALL_REASSEMBLY
    } else {
        DEFAULT_MAX_REASSEMBLY
    };
    let (frames, too_large) = cut_frames(stream, piece);
    let (whole_frames, whole_too_large) = cut_frames(stream, stream.len().max(1));
    assert_eq!(
        (&frames, &too_large),
        (&whole_frames, &whole_too_large),
        "the frames depend on how the bytes arrived"
    );
    let mut receiver = Receiver::with_limit(cap);
    let mut signals = 0;
    for frame in frames {
        let result = receiver.receive(frame);
        assert!(receiver.buffered() <= cap, "reassembly over its cap");
        match result {
            Ok(Some(incoming)) => {
                check_incoming(&incoming);
                signals += 1;
            }
            Ok(None) => {}
            // The node closes the connection here.
            Err(_) => return false,
        }
    }
    too_large.is_none() && signals > 0
}

/// The frames in `stream` given to a deframer `piece` bytes at a time, up to the first
/// frame over [`MAX_FRAME`].
fn cut_frames(stream: &[u8], piece: usize) -> (Vec<Bytes>, Option<FrameTooLarge>) {
    let mut deframer = Deframer::new(MAX_FRAME);
    let mut frames = Vec::new();
    for chunk in stream.chunks(piece) {
        deframer.make_room();
        deframer.buffer().extend_from_slice(chunk);
        loop {
            match deframer.next_frame() {
                Ok(Some(frame)) => {
                    assert!(!frame.is_empty(), "a tick came out as a frame");
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
        if let Some(missing) = deframer.missing() {
            assert!(missing > 0, "a whole frame was left in the buffer");
        }
    }
    (frames, None)
}

/// A received signal: its message decodes or is refused cleanly, and the signal survives
/// being sent again.
fn check_incoming(incoming: &Incoming) {
    if let Some(payload) = &incoming.payload {
        if let Ok(term) = decode_term(&mut Reader::new(&payload.body), &payload.atoms) {
            assert_reencodes(&term);
        }
    }
    let with_cache = flags::DEFAULT;
    let pass_through = flags::DEFAULT & !flags::DIST_HDR_ATOM_CACHE;
    for flags in [with_cache, pass_through] {
        // Small fragments, so that resending cuts and reassembles too.
        let mut sender = Sender::with_fragment_size(flags, 64);
        let mut frames = Vec::new();
        let body = incoming.payload.as_ref().map(|p| &p.body[..]);
        sender
            .encode(&incoming.control, body, &mut frames)
            .unwrap_or_else(|e| panic!("{incoming:?} cannot be sent again: {e}"));
        let mut receiver = Receiver::new();
        let mut again = None;
        for frame in frames {
            let signal = receiver
                .receive(frame.slice(4..))
                .unwrap_or_else(|e| panic!("{incoming:?} sent again is refused: {e}"));
            assert!(again.is_none(), "one signal came out twice");
            again = signal;
        }
        let again = again.expect("the signal sent again came out");
        assert!(
            control_bytes(&again.control) == control_bytes(&incoming.control),
            "{incoming:?} came back as {again:?} (flags {flags:#x})"
        );
        assert_eq!(
            again.payload.map(|p| p.body),
            incoming.payload.as_ref().map(|p| p.body.clone()),
            "flags {flags:#x}"
        );
    }
}

/// A control message's encoding: its wire term and exit reason, if any (compared as bytes, as
/// terms are in [`assert_reencodes`]).
fn control_bytes(control: &Control) -> Vec<u8> {
    let (term, reason) = control.to_term(flags::DEFAULT);
    let mut bytes = etf::encode(&term);
    if let Some(reason) = reason {
        etf::encode_into(&reason, &mut bytes);
    }
    bytes
}

// --- the EPMD messages -------------------------------------------------------------------

/// The input as a request body (what the embedded EPMD server decodes) and as each answer
/// (what the client decodes). Accepted: any of them decoded.
pub fn epmd(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Ok(request) = Request::decode(data) {
        accepted = true;
        if let Ok(len) = u16::try_from(data.len()) {
            let frame = request.encode().expect("a decoded request encodes");
            assert_eq!(frame[..2], len.to_be_bytes());
            assert_eq!(&frame[2..], data, "{request:?} encodes differently");
        }
    }
    if let Ok(Some((answer, used))) = Alive2Resp::decode(data) {
        accepted = true;
        assert!(used <= data.len());
        let again = Alive2Resp::decode(&answer.encode());
        assert_eq!(again.map(|a| a.map(|(a, _)| a)), Ok(Some(answer)));
    }
    if let Ok(Some((answer, used))) = Port2Resp::decode(data) {
        accepted = true;
        assert!(used <= data.len());
        let bytes = answer.encode().expect("a decoded PORT2_RESP encodes");
        let again = Port2Resp::decode(&bytes);
        assert_eq!(again.map(|a| a.map(|(a, _)| a)), Ok(Some(answer)));
    }
    if let Ok(answer) = NamesResp::decode(data) {
        accepted = true;
        assert_eq!(NamesResp::decode(&answer.encode()), Ok(answer));
    }
    accepted
}
