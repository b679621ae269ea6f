//! Connected-phase frames: parsing what a peer sends and encoding what we send.
//!
//! <https://www.erlang.org/doc/apps/erts/erl_ext_dist.html#distribution-header>
//!
//! Each frame is a `u32` length and a body; an empty body is a tick (the caller handles
//! those). Bodies come in three forms:
//! - pass-through `112, 131, Control, [131, Message]` (no DIST_HDR_ATOM_CACHE);
//! - normal header `131, 68, atom cache section, Control, [Message]` (no version bytes);
//! - fragments: `131, 69, SeqId, FragId, atom cache section, data...` then
//!   `131, 70, SeqId, FragId, data...` with FragId counting down to 1.
//!
//! Pure: no I/O. [`Receiver`] and [`Sender`] each hold one direction of one connection.

use super::control::{self, Control};
use super::flags;
use super::DistError;
use crate::etf::decode::decode_term;
use crate::etf::reader::Reader;
use crate::etf::{self, Atom, Term};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::Arc;

/// A tick: a frame with an empty body.
pub const TICK: [u8; 4] = [0, 0, 0, 0];

const PASS_THROUGH: u8 = 112;
const HEADER: u8 = 68;
const FRAGMENT_FIRST: u8 = 69;
const FRAGMENT_CONT: u8 = 70;

/// Atom cache slots per connection and direction: 8 segments of 256.
const CACHE_SLOTS: usize = 2048;

/// The default cap on bytes buffered for incomplete fragmented messages (per connection).
pub const DEFAULT_MAX_REASSEMBLY: usize = 256 << 20;

/// The default largest message data per fragment (what OTP uses).
pub const DEFAULT_FRAGMENT_SIZE: usize = 64 * 1024;

/// A message payload, still encoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Payload {
    /// The message term without the `131` version byte; a slice of the frame when it
    /// arrived in one piece.
    pub body: Bytes,
    /// The atoms its ATOM_CACHE_REFs index (this frame's header); empty for pass-through.
    pub atoms: Arc<[Atom]>,
}

/// One received signal.
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    pub control: Control,
    /// The message, present exactly when `control.carries_message()`.
    pub payload: Option<Payload>,
}

/// A message whose first fragment has arrived.
struct Partial {
    atoms: Arc<[Atom]>,
    /// The FragId the next continuation must carry.
    next: u64,
    data: BytesMut,
}

/// The receiving half of a connection: atom cache and fragment reassembly.
pub struct Receiver {
    cache: Vec<Option<Atom>>,
    partials: HashMap<u64, Partial>,
    buffered: usize,
    max_reassembly: usize,
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver::new()
    }
}

fn err(message: impl Into<String>) -> DistError {
    DistError::new(message)
}

impl Receiver {
    pub fn new() -> Receiver {
        Receiver::with_limit(DEFAULT_MAX_REASSEMBLY)
    }

    /// A receiver that buffers at most `max_reassembly` bytes of incomplete messages.
    pub fn with_limit(max_reassembly: usize) -> Receiver {
        Receiver {
            cache: vec![None; CACHE_SLOTS],
            partials: HashMap::new(),
            buffered: 0,
            max_reassembly,
        }
    }

    /// Bytes currently held for incomplete fragmented messages.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Parses one frame body (length prefix stripped, not a tick). `None` while a
    /// fragmented message is incomplete.
    pub fn receive(&mut self, frame: Bytes) -> Result<Option<Incoming>, DistError> {
        match frame.first() {
            None => Err(err("empty frame (a tick) given to the receiver")),
            Some(&PASS_THROUGH) => pass_through(frame).map(Some),
            Some(&etf::VERSION) => match frame.get(1) {
                Some(&HEADER) => {
                    let mut r = Reader::new(&frame);
                    r.bytes(2)?;
                    let atoms = self.atom_cache_section(&mut r)?;
                    let start = r.position();
                    message(frame.slice(start..), atoms).map(Some)
                }
                Some(&FRAGMENT_FIRST) => self.first_fragment(frame),
                Some(&FRAGMENT_CONT) => self.continuation(frame),
                Some(other) => Err(err(format!("unknown distribution header tag {other}"))),
                None => Err(err("frame holds only a version byte")),
            },
            Some(other) => Err(err(format!("unknown frame type {other}"))),
        }
    }

    fn first_fragment(&mut self, frame: Bytes) -> Result<Option<Incoming>, DistError> {
        let mut r = Reader::new(&frame);
        r.bytes(2)?;
        let seq = r.u64()?;
        let frag = r.u64()?;
        let atoms = self.atom_cache_section(&mut r)?;
        let start = r.position();
        if frag == 0 {
            return Err(err("fragment id 0"));
        }
        if frag == 1 {
            return message(frame.slice(start..), atoms).map(Some);
        }
        if self.partials.contains_key(&seq) {
            return Err(err(format!(
                "first fragment of sequence {seq} while that sequence is incomplete"
            )));
        }
        let data = &frame[start..];
        self.reserve(data.len(), seq)?;
        self.partials.insert(
            seq,
            Partial {
                atoms,
                next: frag - 1,
                data: BytesMut::from(data),
            },
        );
        Ok(None)
    }

    fn continuation(&mut self, frame: Bytes) -> Result<Option<Incoming>, DistError> {
        let mut r = Reader::new(&frame);
        r.bytes(2)?;
        let seq = r.u64()?;
        let frag = r.u64()?;
        let data = r.rest();
        let Some(partial) = self.partials.get(&seq) else {
            return Err(err(format!(
                "fragment {frag} of sequence {seq}, which has no first fragment"
            )));
        };
        if partial.next != frag {
            let expected = partial.next;
            self.drop_sequence(seq);
            return Err(err(format!(
                "fragment {frag} of sequence {seq} out of order (expected {expected})"
            )));
        }
        self.reserve(data.len(), seq)?;
        let partial = self.partials.get_mut(&seq).expect("checked above");
        partial.data.extend_from_slice(data);
        partial.next -= 1;
        if frag > 1 {
            return Ok(None);
        }
        let partial = self.partials.remove(&seq).expect("checked above");
        self.buffered -= partial.data.len();
        message(partial.data.freeze(), partial.atoms).map(Some)
    }

    /// Accounts for `n` more buffered bytes, dropping sequence `seq` if that breaks the cap.
    fn reserve(&mut self, n: usize, seq: u64) -> Result<(), DistError> {
        if self.buffered + n > self.max_reassembly {
            self.drop_sequence(seq);
            return Err(err(format!(
                "fragmented messages exceed the reassembly limit of {} bytes",
                self.max_reassembly
            )));
        }
        self.buffered += n;
        Ok(())
    }

    fn drop_sequence(&mut self, seq: u64) {
        if let Some(partial) = self.partials.remove(&seq) {
            self.buffered -= partial.data.len();
        }
    }

    /// The atom cache section after `131,68` or the fragment ids: updates the cache with
    /// new entries and returns this message's ATOM_CACHE_REF table.
    fn atom_cache_section(&mut self, r: &mut Reader<'_>) -> Result<Arc<[Atom]>, DistError> {
        let count = r.u8()? as usize;
        if count == 0 {
            return Ok(Arc::from(Vec::new()));
        }
        let flags = r.bytes(count / 2 + 1)?;
        let nibble = |i: usize| (flags[i / 2] >> ((i % 2) * 4)) & 0x0F;
        let long_atoms = nibble(count) & 0x01 != 0;
        let mut atoms = Vec::with_capacity(count);
        for i in 0..count {
            let n = nibble(i);
            let slot = ((n & 0x07) as usize) * 256 + r.u8()? as usize;
            if n & 0x08 != 0 {
                let len = if long_atoms {
                    r.u16()? as usize
                } else {
                    r.u8()? as usize
                };
                let at = r.position();
                let text = std::str::from_utf8(r.bytes(len)?)
                    .map_err(|_| err(format!("atom cache entry at byte {at} is not UTF-8")))?;
                if text.chars().count() > etf::reader::MAX_ATOM_CHARS {
                    return Err(err("atom cache entry longer than 255 characters"));
                }
                let atom = Atom::new(text);
                self.cache[slot] = Some(atom.clone());
                atoms.push(atom);
            } else {
                match &self.cache[slot] {
                    Some(atom) => atoms.push(atom.clone()),
                    None => return Err(err(format!("atom cache reference to empty slot {slot}"))),
                }
            }
        }
        Ok(Arc::from(atoms))
    }
}

/// `112, 131, Control, [131, Message]`.
fn pass_through(frame: Bytes) -> Result<Incoming, DistError> {
    let mut r = Reader::new(&frame);
    r.u8()?;
    if r.u8()? != etf::VERSION {
        return Err(err("pass-through control message lacks its version byte"));
    }
    let control = decode_term(&mut r, &[])?;
    let payload = if r.remaining() == 0 {
        None
    } else {
        if r.u8()? != etf::VERSION {
            return Err(err("pass-through message lacks its version byte"));
        }
        Some(frame.slice(r.position()..))
    };
    finish(control, payload, Arc::from(Vec::new()))
}

/// Control and optional message, without version bytes, as in a `131,68` frame.
fn message(data: Bytes, atoms: Arc<[Atom]>) -> Result<Incoming, DistError> {
    let mut r = Reader::new(&data);
    let control = decode_term(&mut r, &atoms)?;
    let payload = (r.remaining() != 0).then(|| data.slice(r.position()..));
    finish(control, payload, atoms)
}

fn finish(
    control: Term,
    payload: Option<Bytes>,
    atoms: Arc<[Atom]>,
) -> Result<Incoming, DistError> {
    let op = control::op_of(&control);
    if op.is_some_and(control::payload_is_reason) {
        let Some(body) = payload else {
            return Err(err(format!("{control:?} lacks its exit reason payload")));
        };
        let mut r = Reader::new(&body);
        let reason = decode_term(&mut r, &atoms)?;
        if r.remaining() != 0 {
            return Err(err("trailing bytes after the exit reason"));
        }
        let control = Control::from_term(control, Some(reason))?;
        return Ok(Incoming {
            control,
            payload: None,
        });
    }
    let control = Control::from_term(control, None)?;
    // An unknown operation may or may not carry a message: pass along whatever came.
    if !matches!(control, Control::Unknown(_)) && payload.is_some() != control.carries_message() {
        return Err(err(if payload.is_some() {
            format!("unexpected message after {control:?}")
        } else {
            format!("{control:?} lacks its message")
        }));
    }
    Ok(Incoming {
        control,
        payload: payload.map(|body| Payload { body, atoms }),
    })
}

/// The sending half of a connection: frames for the effective flags.
pub struct Sender {
    flags: u64,
    fragment_size: usize,
    next_sequence: u64,
}

impl Sender {
    /// A sender for a connection with effective `flags` (from the handshake).
    pub fn new(flags: u64) -> Sender {
        Sender::with_fragment_size(flags, DEFAULT_FRAGMENT_SIZE)
    }

    /// As [`Sender::new`], cutting messages into fragments of `fragment_size` data bytes
    /// (when FRAGMENTS is negotiated).
    pub fn with_fragment_size(flags: u64, fragment_size: usize) -> Sender {
        Sender {
            flags,
            fragment_size: fragment_size.max(1),
            next_sequence: 1,
        }
    }

    pub fn flags(&self) -> u64 {
        self.flags
    }

    /// Appends the frames (each with its 4-byte length prefix) for one signal to `out`.
    /// `payload_body` is the message term without its `131` version byte; it must be
    /// given exactly when `control.carries_message()`.
    pub fn encode(
        &mut self,
        control: &Control,
        payload_body: Option<&[u8]>,
        out: &mut Vec<Bytes>,
    ) -> Result<(), DistError> {
        let unknown = matches!(control, Control::Unknown(_));
        if !unknown && payload_body.is_some() != control.carries_message() {
            return Err(err(if control.carries_message() {
                format!("{control:?} needs a message payload")
            } else {
                format!("{control:?} takes no message payload")
            }));
        }
        if payload_body.map_or(0, <[u8]>::len) > u32::MAX as usize - (1 << 16) {
            return Err(err("message too large for one distribution frame"));
        }
        let (term, reason) = control.to_term(self.flags);
        let mut head = Vec::with_capacity(64);
        etf::encode_term_body(&term, &mut head);
        let reason_body = reason.map(|reason| {
            let mut body = Vec::new();
            etf::encode_term_body(&reason, &mut body);
            body
        });
        let payload = reason_body.as_deref().or(payload_body);

        if self.flags & flags::DIST_HDR_ATOM_CACHE == 0 {
            let len = 2 + head.len() + payload.map_or(0, |p| 1 + p.len());
            let mut frame = frame_with_capacity(len);
            frame.extend_from_slice(&[PASS_THROUGH, etf::VERSION]);
            frame.extend_from_slice(&head);
            if let Some(p) = payload {
                frame.push(etf::VERSION);
                frame.extend_from_slice(p);
            }
            out.push(finish_frame(frame));
            return Ok(());
        }

        let payload = payload.unwrap_or(&[]);
        let total = head.len() + payload.len();
        let fragments = self.flags & flags::FRAGMENTS != 0;
        if !fragments || total <= self.fragment_size {
            let mut frame = frame_with_capacity(3 + total);
            frame.extend_from_slice(&[etf::VERSION, HEADER, 0]);
            frame.extend_from_slice(&head);
            frame.extend_from_slice(payload);
            out.push(finish_frame(frame));
            return Ok(());
        }

        // The control message must sit whole in the first fragment.
        let first_payload = self
            .fragment_size
            .saturating_sub(head.len())
            .min(payload.len());
        let rest = &payload[first_payload..];
        let count = 1 + rest.len().div_ceil(self.fragment_size) as u64;
        let seq = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1).max(1);

        let mut frame = frame_with_capacity(19 + head.len() + first_payload);
        frame.extend_from_slice(&[etf::VERSION, FRAGMENT_FIRST]);
        frame.extend_from_slice(&seq.to_be_bytes());
        frame.extend_from_slice(&count.to_be_bytes());
        frame.push(0);
        frame.extend_from_slice(&head);
        frame.extend_from_slice(&payload[..first_payload]);
        out.push(finish_frame(frame));
        for (i, chunk) in rest.chunks(self.fragment_size).enumerate() {
            let mut frame = frame_with_capacity(18 + chunk.len());
            frame.extend_from_slice(&[etf::VERSION, FRAGMENT_CONT]);
            frame.extend_from_slice(&seq.to_be_bytes());
            frame.extend_from_slice(&(count - 1 - i as u64).to_be_bytes());
            frame.extend_from_slice(chunk);
            out.push(finish_frame(frame));
        }
        Ok(())
    }
}

/// A buffer for a frame of `body_len` bytes, its length prefix reserved.
fn frame_with_capacity(body_len: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + body_len);
    frame.extend_from_slice(&[0; 4]);
    frame
}

fn finish_frame(mut frame: Vec<u8>) -> Bytes {
    let len = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    Bytes::from(frame)
}
