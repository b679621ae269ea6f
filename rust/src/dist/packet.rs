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
use bytes::{Buf, Bytes, BytesMut};
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
/// Slots per segment of the atom cache.
const SEGMENT: usize = 256;

/// The default cap on bytes buffered (or set aside) for incomplete fragmented messages, per
/// connection.
pub const DEFAULT_MAX_REASSEMBLY: usize = 256 << 20;

/// At most this much is set aside for a fragmented message before its data arrives.
const PREALLOCATE_LIMIT: usize = 64 << 20;

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
    /// Bytes counted against the reassembly cap for this message: its data, or the room
    /// set aside for it if that is more.
    reserved: usize,
}

/// The receiving half of a connection: atom cache and fragment reassembly.
pub struct Receiver {
    cache: AtomCache,
    /// The last atom-cache section (its raw bytes) and the table it gave: a stream of like
    /// messages repeats the same section, and sharing the table spares an allocation and a
    /// reference count per atom per message.
    last_section: Vec<u8>,
    last_atoms: Arc<[Atom]>,
    /// Shared by every message without cache references.
    no_atoms: Arc<[Atom]>,
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
        let no_atoms: Arc<[Atom]> = Arc::from(Vec::new());
        Receiver {
            cache: AtomCache::default(),
            last_section: Vec::new(),
            last_atoms: no_atoms.clone(),
            no_atoms,
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
                    // Advanced, not sliced: a slice would count a reference more, then less.
                    let mut frame = frame;
                    frame.advance(start);
                    message(frame, atoms).map(Some)
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
        // Fragments are all about the size of the first: room for all of them at once saves
        // the copies of growing the buffer step by step. The claimed count is the peer's
        // word, so the room counts against the cap like data, and one message may set aside
        // at most a quarter of what is left of it (the others must still fit).
        let room = (frag as usize)
            .saturating_mul(data.len())
            .min(PREALLOCATE_LIMIT)
            .min(self.max_reassembly.saturating_sub(self.buffered) / 4)
            .max(data.len());
        self.reserve(room, seq)?;
        let mut buffer = BytesMut::with_capacity(room);
        buffer.extend_from_slice(data);
        self.partials.insert(
            seq,
            Partial {
                atoms,
                next: frag - 1,
                data: buffer,
                reserved: room,
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
        let beyond = (partial.data.len() + data.len()).saturating_sub(partial.reserved);
        if beyond > 0 {
            self.reserve(beyond, seq)?;
        }
        let partial = self.partials.get_mut(&seq).expect("checked above");
        partial.reserved += beyond;
        partial.data.extend_from_slice(data);
        partial.next -= 1;
        if frag > 1 {
            return Ok(None);
        }
        let partial = self.partials.remove(&seq).expect("checked above");
        self.buffered -= partial.reserved;
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
            self.buffered -= partial.reserved;
        }
    }

    /// The atom cache section after `131,68` or the fragment ids: updates the cache with
    /// new entries and returns this message's ATOM_CACHE_REF table.
    fn atom_cache_section(&mut self, r: &mut Reader<'_>) -> Result<Arc<[Atom]>, DistError> {
        let count = r.u8()? as usize;
        if count == 0 {
            return Ok(self.no_atoms.clone());
        }
        let flags = r.bytes(count / 2 + 1)?;
        let nibble = |i: usize| (flags[i / 2] >> ((i % 2) * 4)) & 0x0F;
        let long_atoms = nibble(count) & 0x01 != 0;
        // Only references to known entries: the section is `flags` + one index byte per ref.
        if (0..count).all(|i| nibble(i) & 0x08 == 0) {
            let start = r.position() - flags.len() - 1;
            r.bytes(count)?;
            let section = r.since(start);
            if section == self.last_section.as_slice() {
                return Ok(self.last_atoms.clone());
            }
            let indexes = &section[1 + flags.len()..];
            let mut atoms = Vec::with_capacity(count);
            for (i, &index) in indexes.iter().enumerate() {
                let slot = ((nibble(i) & 0x07) as usize) * 256 + index as usize;
                match self.cache.get(slot) {
                    Some(atom) => atoms.push(atom.clone()),
                    None => return Err(err(format!("atom cache reference to empty slot {slot}"))),
                }
            }
            let atoms: Arc<[Atom]> = Arc::from(atoms);
            self.last_section.clear();
            self.last_section.extend_from_slice(section);
            self.last_atoms = atoms.clone();
            return Ok(atoms);
        }
        // New entries change the cache: the remembered table may no longer match its bytes.
        self.last_section.clear();
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
                self.cache.set(slot, atom.clone());
                atoms.push(atom);
            } else {
                match self.cache.get(slot) {
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
fn message(mut data: Bytes, atoms: Arc<[Atom]>) -> Result<Incoming, DistError> {
    if let Some((control, at)) = plain_send(&data, &atoms) {
        data.advance(at);
        return Ok(Incoming {
            control,
            payload: Some(Payload { body: data, atoms }),
        });
    }
    let mut r = Reader::new(&data);
    let control = decode_term(&mut r, &atoms)?;
    let payload = (r.remaining() != 0).then(|| data.slice(r.position()..));
    finish(control, payload, atoms)
}

/// The hot path: a message send (`{22, From, To}`, `{2, '', To}` or `{6, From, '', Name}`)
/// followed by its message, read straight from the bytes without building a [`Term`]. Returns
/// the control and where the message starts, or None for anything else (which then takes the
/// general path, errors included).
fn plain_send(data: &[u8], atoms: &[Atom]) -> Option<(Control, usize)> {
    use etf::tags;
    let mut r = Reader::new(data);
    let pid = |r: &mut Reader<'_>| match r.u8().ok()? {
        tag @ (tags::NEW_PID | tags::PID) => r.pid(tag, atoms).ok(),
        _ => None,
    };
    let atom = |r: &mut Reader<'_>| r.atom(atoms).ok();
    // The unused '' of SEND and REG_SEND: checked, not made.
    let skip_atom = |r: &mut Reader<'_>| {
        let tag = r.u8().ok()?;
        r.atom_text(tag, atoms).ok().map(drop)
    };
    if r.u8().ok()? != tags::SMALL_TUPLE {
        return None;
    }
    let arity = r.u8().ok()?;
    if r.u8().ok()? != tags::SMALL_INTEGER {
        return None;
    }
    let control = match (arity, r.u8().ok()? as i64) {
        (3, control::SEND_SENDER) => {
            let from = pid(&mut r)?;
            Control::SendSender {
                from,
                to: pid(&mut r)?,
            }
        }
        (3, control::SEND) => {
            skip_atom(&mut r)?;
            Control::Send { to: pid(&mut r)? }
        }
        (4, control::REG_SEND) => {
            let from = pid(&mut r)?;
            skip_atom(&mut r)?;
            Control::RegSend {
                from,
                to_name: atom(&mut r)?,
            }
        }
        _ => return None,
    };
    (r.remaining() > 0).then_some((control, r.position()))
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
    /// What the peer's cache for this direction holds, slot by slot: atoms of control
    /// messages (node names, registered names) go out as one-byte references once known.
    cache: AtomCache,
    /// The last message-carrying control and the bytes its frames had before the message,
    /// while they can be sent again as they are: a stream of messages to one destination
    /// encodes its control once. Forgotten whenever the cache changes.
    repeat: Option<(Control, Vec<u8>)>,
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
            cache: AtomCache::default(),
            repeat: None,
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
        if let Some(body) = payload_body {
            if let Some(prefix) = self.repeat_prefix(control, body.len()) {
                let mut frame = frame_with_capacity(prefix.len() + body.len());
                frame.extend_from_slice(prefix);
                frame.extend_from_slice(body);
                out.push(finish_frame(frame));
                return Ok(());
            }
        }
        let before = out.len();
        self.encode_afresh(control, payload_body, out)?;
        if let (Some(body), [frame]) = (payload_body, &out[before..]) {
            let head = &frame[4..frame.len() - body.len()];
            if repeats(head) {
                self.repeat = Some((control.clone(), head.to_vec()));
            }
        }
        Ok(())
    }

    /// The most data a frame may hold before a message must be cut into fragments (or, without
    /// FRAGMENTS, refused).
    fn whole_limit(&self) -> usize {
        if self.flags & flags::FRAGMENTS != 0 {
            self.fragment_size
        } else {
            u32::MAX as usize - (1 << 16)
        }
    }

    /// The bytes before a message of `len` bytes under `control`, if the last frame's can
    /// be sent again as they are.
    fn repeat_prefix(&self, control: &Control, len: usize) -> Option<&[u8]> {
        match &self.repeat {
            Some((last, prefix)) if last == control && prefix.len() + len <= self.whole_limit() => {
                Some(prefix)
            }
            _ => None,
        }
    }

    fn encode_afresh(
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
        let reason_body = reason.map(|reason| {
            let mut body = Vec::new();
            etf::encode_term_body(&reason, &mut body);
            body
        });
        let payload = reason_body.as_deref().or(payload_body);

        if self.flags & flags::DIST_HDR_ATOM_CACHE == 0 {
            let mut head = Vec::with_capacity(64);
            etf::encode_term_body(&term, &mut head);
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
        let (section, head) = self.cached_control(&term);
        let total = section.len() + head.len() + payload.len();
        let fragments = self.flags & flags::FRAGMENTS != 0;
        if !fragments || total <= self.fragment_size {
            let mut frame = frame_with_capacity(2 + total);
            frame.extend_from_slice(&[etf::VERSION, HEADER]);
            frame.extend_from_slice(&section);
            frame.extend_from_slice(&head);
            frame.extend_from_slice(payload);
            out.push(finish_frame(frame));
            return Ok(());
        }

        // The control message must sit whole in the first fragment.
        let first_payload = self
            .fragment_size
            .saturating_sub(section.len() + head.len())
            .min(payload.len());
        let rest = &payload[first_payload..];
        let count = 1 + rest.len().div_ceil(self.fragment_size) as u64;
        let seq = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1).max(1);

        let mut frame = frame_with_capacity(18 + section.len() + head.len() + first_payload);
        frame.extend_from_slice(&[etf::VERSION, FRAGMENT_FIRST]);
        frame.extend_from_slice(&seq.to_be_bytes());
        frame.extend_from_slice(&count.to_be_bytes());
        frame.extend_from_slice(&section);
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

impl Sender {
    /// The atom-cache section and the control term encoded against it: the atoms at the
    /// top of the control tuple (and the nodes of its pids, references and ports) become
    /// ATOM_CACHE_REFs, entered into the peer's cache the first time and referred to after.
    /// Encodes one message per body, all under the same control message, as frames
    /// (length prefixes included) appended to `out`: as `encode` per body, into one buffer.
    pub fn encode_many<'b>(
        &mut self,
        control: &Control,
        bodies: impl IntoIterator<Item = &'b [u8]>,
        out: &mut Vec<u8>,
    ) -> Result<(), DistError> {
        let mut frames = Vec::with_capacity(1);
        for body in bodies {
            if let Some(prefix) = self.repeat_prefix(control, body.len()) {
                out.extend_from_slice(&((prefix.len() + body.len()) as u32).to_be_bytes());
                out.extend_from_slice(prefix);
                out.extend_from_slice(body);
                continue;
            }
            frames.clear();
            self.encode(control, Some(body), &mut frames)?;
            for frame in &frames {
                out.extend_from_slice(frame);
            }
        }
        Ok(())
    }

    fn cached_control(&mut self, control: &Term) -> (Vec<u8>, Vec<u8>) {
        let items: &[Term] = match control {
            Term::Tuple(items) => items,
            other => std::slice::from_ref(other),
        };
        let mut refs: Vec<&Atom> = Vec::new();
        for item in items {
            let atom = match item {
                Term::Atom(a) => a,
                Term::Pid(p) => &p.node,
                Term::Reference(r) => &r.node,
                Term::Port(p) => &p.node,
                _ => continue,
            };
            if !refs.contains(&atom) {
                refs.push(atom);
            }
        }
        let n = refs.len();
        let mut section = vec![0u8; 1 + n / 2 + 1];
        section[0] = n as u8;
        let long_atoms = refs.iter().any(|a| a.as_str().len() > 255);
        let mut entries = Vec::with_capacity(n * 2);
        for (i, atom) in refs.iter().enumerate() {
            let slot = cache_slot(atom);
            let new = self.cache.get(slot) != Some(*atom);
            if new {
                self.cache.set(slot, (*atom).clone());
                self.repeat = None;
            }
            let nibble = (u8::from(new) << 3) | (slot / 256) as u8;
            section[1 + i / 2] |= nibble << ((i % 2) * 4);
            entries.push((slot % 256) as u8);
            if new {
                let text = atom.as_str().as_bytes();
                if long_atoms {
                    entries.extend_from_slice(&(text.len() as u16).to_be_bytes());
                } else {
                    entries.push(text.len() as u8);
                }
                entries.extend_from_slice(text);
            }
        }
        if n > 0 {
            section[1 + n / 2] |= u8::from(long_atoms) << ((n % 2) * 4);
        } else {
            section.truncate(1);
        }
        section.extend_from_slice(&entries);

        let reference = |out: &mut Vec<u8>, atom: &Atom| match refs.iter().position(|r| *r == atom)
        {
            Some(i) => out.extend_from_slice(&[etf::tags::ATOM_CACHE_REF, i as u8]),
            None => etf::writer::atom(out, atom.as_str()),
        };
        let mut head = Vec::with_capacity(32);
        if let Term::Tuple(_) = control {
            etf::writer::tuple_header(&mut head, items.len());
        }
        for item in items {
            match item {
                Term::Atom(a) => reference(&mut head, a),
                Term::Pid(p) => etf::writer::pid_with(&mut head, p, |o| reference(o, &p.node)),
                Term::Reference(r) => {
                    etf::writer::reference_with(&mut head, r, |o| reference(o, &r.node))
                }
                Term::Port(p) => etf::writer::port_with(&mut head, p, |o| reference(o, &p.node)),
                other => etf::encode_term_body(other, &mut head),
            }
        }
        (section, head)
    }
}

/// The slot we give an atom in the peer's cache: a hash of its text. Only the first of the
/// 8 segments is used: we cache a few dozen atoms (node and registered names), and one
/// segment keeps our side of each connection's cache small.
fn cache_slot(atom: &Atom) -> usize {
    let hash = atom.as_str().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash as usize % SEGMENT
}

/// One side of a connection's atom cache: 2048 slots in 8 segments of 256, each segment
/// allocated when first written (a full table is 32 KiB per direction and connection, and
/// most connections use a fraction of it).
#[derive(Default)]
struct AtomCache {
    segments: [Option<Box<[Option<Atom>]>>; CACHE_SLOTS / SEGMENT],
}

impl AtomCache {
    fn get(&self, slot: usize) -> Option<&Atom> {
        self.segments.get(slot / SEGMENT)?.as_ref()?[slot % SEGMENT].as_ref()
    }

    /// `slot` must be below 2048 (the wire format cannot say more).
    fn set(&mut self, slot: usize, atom: Atom) {
        let segment =
            self.segments[slot / SEGMENT].get_or_insert_with(|| vec![None; SEGMENT].into());
        segment[slot % SEGMENT] = Some(atom);
    }
}

/// A buffer for a frame of `body_len` bytes, its length prefix reserved.
/// Whether a frame's part before the message (`112, 131, Control, 131` or `131, 68`, atom
/// cache section, control) can be sent again as it is: true unless its section creates cache
/// entries, which the next frames must refer to instead.
fn repeats(head: &[u8]) -> bool {
    match head {
        [PASS_THROUGH, ..] => true,
        [etf::VERSION, HEADER, count, rest @ ..] => {
            let count = *count as usize;
            let Some(flags) = rest.get(..count / 2 + 1) else {
                return false;
            };
            (0..count).all(|i| (flags[i / 2] >> ((i % 2) * 4)) & 0x08 == 0)
        }
        _ => false,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::control::tests::{all_controls, pid, reference};
    use crate::etf::Pid;
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

    fn body_of(term: &Term) -> Vec<u8> {
        let mut out = Vec::new();
        etf::encode_term_body(term, &mut out);
        out
    }

    fn message_body() -> Vec<u8> {
        body_of(&Term::tuple(vec![Term::atom("hello"), Term::Int(42)]))
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
        let ctl = body_of(&Term::tuple(vec![
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
        let send = body_of(&Term::tuple(vec![
            Term::Int(control::SEND),
            Term::atom(""),
            Term::Pid(pid(3)),
        ]));
        let mut frame = vec![131, 68, 0];
        frame.extend_from_slice(&send);
        let e = rx.receive(Bytes::from(frame)).unwrap_err();
        assert!(e.to_string().contains("lacks its message"), "{e}");
        let link = body_of(&Term::tuple(vec![
            Term::Int(control::LINK),
            Term::Pid(pid(1)),
            Term::Pid(pid(3)),
        ]));
        let mut frame = vec![131, 68, 0];
        frame.extend_from_slice(&link);
        frame.extend_from_slice(&[97, 1]);
        assert!(rx.receive(Bytes::from(frame)).is_err());
        // PAYLOAD_EXIT whose reason has trailing garbage.
        let exit = body_of(&Term::tuple(vec![
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
        frame.extend_from_slice(&body_of(&term));
        frame.extend_from_slice(&[97, 5]);
        let got = Receiver::new()
            .receive(Bytes::from(frame))
            .unwrap()
            .unwrap();
        assert_eq!(got.control, Control::Unknown(term));
        assert_eq!(&got.payload.unwrap().body[..], &[97, 5]);
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
        let mut data = body_of(&Term::tuple(vec![
            Term::Int(control::SEND),
            Term::atom(""),
            Term::Pid(pid(to)),
        ]));
        data.extend_from_slice(msg);
        data
    }

    #[test]
    fn fragments_in_order_and_interleaved() {
        let msg1 = body_of(&Term::Binary(Bytes::from(vec![1u8; 5000])));
        let msg2 = body_of(&Term::Binary(Bytes::from(vec![2u8; 3000])));
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
        let big = body_of(&Term::Binary(Bytes::from(vec![7u8; 200_000])));
        let f = flags::DIST_HDR_ATOM_CACHE | flags::FRAGMENTS;
        let mut tx = Sender::new(f);
        let ctl = Control::AliasSend(Box::new(super::control::AliasSend {
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
        let large = body_of(&Term::Binary(Bytes::from(vec![3u8; 3000])));
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
        let large = body_of(&Term::Binary(Bytes::from(vec![5u8; 2500])));
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

    #[test]
    fn tick_is_an_empty_frame() {
        assert_eq!(TICK, [0, 0, 0, 0]);
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
}
