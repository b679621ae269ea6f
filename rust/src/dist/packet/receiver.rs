//! The receiving half of a connection: distribution headers parsed (atom cache sections
//! included), fragments reassembled, the hot path for message sends.

use super::atom_cache::AtomCache;
use super::{err, Incoming, Payload, FRAGMENT_CONT, FRAGMENT_FIRST, HEADER, PASS_THROUGH};
use crate::dist::control::{self, Control};
use crate::dist::DistError;
use crate::etf::decode::decode_term;
use crate::etf::reader::Reader;
use crate::etf::{self, Atom, Term};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::Arc;

/// The default cap on bytes buffered (or set aside) for incomplete fragmented messages, per
/// connection.
pub const DEFAULT_MAX_REASSEMBLY: usize = 256 << 20;

/// At most this much is set aside for a fragmented message before its data arrives.
const PREALLOCATE_LIMIT: usize = 64 << 20;

/// The deepest nesting of lists, tuples and maps accepted in a control message or an exit
/// reason (real ones nest a few levels). The node logs, compares, converts and drops these
/// terms, each of which recurses once per level: a peer's term nested tens of thousands deep
/// would overflow the stack and abort the process. Deeper is a malformed frame.
pub const MAX_CONTROL_NESTING: usize = 1000;

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
    let control = control_term(&mut r, &[])?;
    let payload = if r.remaining() == 0 {
        None
    } else {
        if r.u8()? != etf::VERSION {
            return Err(err("pass-through message lacks its version byte"));
        }
        // A version byte and no term is no message (as a `131,68` frame without one is).
        if r.remaining() == 0 {
            return Err(err("pass-through message is empty"));
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
    let control = control_term(&mut r, &atoms)?;
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

/// A control message or exit reason: a term nested at most [`MAX_CONTROL_NESTING`] deep.
fn control_term(r: &mut Reader<'_>, atoms: &[Atom]) -> Result<Term, DistError> {
    let term = decode_term(r, atoms)?;
    if term.nests_deeper_than(MAX_CONTROL_NESTING) {
        term.drop_flat();
        return Err(err(format!(
            "control message or exit reason nested more than {MAX_CONTROL_NESTING} deep"
        )));
    }
    Ok(term)
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
        let reason = control_term(&mut r, &atoms)?;
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
