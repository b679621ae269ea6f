//! The receiving half of a connection: distribution headers parsed (atom cache sections
//! included), fragments reassembled, the hot path for message sends.

use super::atom_cache::AtomCache;
use super::bulk::{self, Assembly, Bulk, Bulks, Lander, BULK_MIN};
use super::{err, Incoming, Payload, FRAGMENT_CONT, FRAGMENT_FIRST, HEADER, PASS_THROUGH};
use crate::dist::control::{self, Control};
use crate::dist::framing::{Deframer, FrameTooLarge};
use crate::dist::DistError;
use crate::etf::decode::decode_term;
use crate::etf::reader::Reader;
use crate::etf::{self, Atom, Term};
use bytes::{Buf, Bytes};
use std::collections::HashMap;
use std::mem::MaybeUninit;
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

/// A frame is read in pieces, its large binaries straight into their destinations, only if
/// at least this much of it is still to come; and a large frame is looked into only once this
/// much of it (or all) is buffered, enough for the header of the binary it may carry.
const STREAM_MIN: usize = 16 * 1024;
const LOOK_AT: usize = 4 * 1024;

/// A fragment continuation's header: `131, 70`, SeqId, FragId.
const CONTINUATION_HEAD: usize = 18;

/// A message whose first fragment has arrived.
struct Partial {
    atoms: Arc<[Atom]>,
    /// The FragId the next continuation must carry.
    next: u64,
    data: Assembly,
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
    /// The frame being read in pieces, if any (see [`Receiver::cut`]).
    streaming: Option<Streaming>,
    /// The large frame at the front was looked into and is read whole.
    front_declined: bool,
    lander: Option<Arc<dyn Lander>>,
    /// Bytes of large binaries read straight into their destinations, and copied there.
    pub bulk_landed: u64,
    pub bulk_copied: u64,
}

/// A frame whose body is read in pieces as it arrives: the rest of a large `131,68` frame,
/// or a continuation of a fragmented message.
struct Streaming {
    /// Body bytes still to come.
    remaining: usize,
    target: Target,
}

enum Target {
    /// A whole message in one frame.
    Whole { atoms: Arc<[Atom]>, data: Assembly },
    /// Fragment `frag` of sequence `seq` (in `partials`).
    Fragment { seq: u64, frag: u64 },
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
            streaming: None,
            front_declined: false,
            lander: None,
            bulk_landed: 0,
            bulk_copied: 0,
        }
    }

    /// Large binaries get their destinations from `lander` (without one, plain buffers).
    pub fn set_lander(&mut self, lander: Option<Arc<dyn Lander>>) {
        self.lander = lander;
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
        let mut assembly = Assembly::new(data.len().max(1024));
        let cap_room = self.max_reassembly.saturating_sub(self.buffered);
        assembly.absorb(data, self.lander.as_deref(), cap_room);
        self.partials.insert(
            seq,
            Partial {
                atoms,
                next: frag - 1,
                data: assembly,
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
        self.account(seq, data.len())?;
        let cap_room = self.max_reassembly.saturating_sub(self.buffered);
        let partial = self.partials.get_mut(&seq).expect("checked above");
        partial.data.absorb(data, self.lander.as_deref(), cap_room);
        partial.next -= 1;
        if frag > 1 {
            return Ok(None);
        }
        self.complete(seq).map(Some)
    }

    /// Counts `more` bytes of data for sequence `seq` against the reassembly limit.
    fn account(&mut self, seq: u64, more: usize) -> Result<(), DistError> {
        let Some(partial) = self.partials.get(&seq) else {
            return Ok(());
        };
        let beyond = (partial.data.len() + more).saturating_sub(partial.reserved);
        if beyond > 0 {
            self.reserve(beyond, seq)?;
        }
        if let Some(partial) = self.partials.get_mut(&seq) {
            partial.reserved += beyond;
        }
        Ok(())
    }

    /// The message of sequence `seq`, whose last fragment has come.
    fn complete(&mut self, seq: u64) -> Result<Incoming, DistError> {
        let Some(partial) = self.partials.remove(&seq) else {
            return Err(err(format!("sequence {seq} ended, but it was dropped")));
        };
        self.buffered -= partial.reserved;
        self.count_bulk(&partial.data);
        let (skeleton, bulks) = partial.data.finish();
        assembled(skeleton, bulks, partial.atoms)
    }

    fn count_bulk(&mut self, data: &Assembly) {
        self.bulk_landed += data.landed as u64;
        self.bulk_copied += data.copied as u64;
    }

    /// Cuts what `frames` holds into signals for `dispatch`; returns how many. A large frame
    /// (or a fragment) that carries a large binary is not waited for whole: its buffered part
    /// is taken and the rest is read in pieces ([`Receiver::window`] for the binary's data,
    /// the buffer for the rest). An error means the connection must end.
    pub fn cut(
        &mut self,
        frames: &mut Deframer,
        mut dispatch: impl FnMut(Incoming),
    ) -> Result<u64, String> {
        let mut signals = 0;
        loop {
            if let Some(streaming) = &self.streaming {
                let piece = frames.take(streaming.remaining);
                if piece.is_empty() {
                    break;
                }
                if let Some(incoming) = self.stream(&piece).map_err(bad_frame)? {
                    dispatch(incoming);
                    signals += 1;
                }
                continue;
            }
            match frames
                .next_whole_frame()
                .map_err(|e: FrameTooLarge| e.to_string())?
            {
                Some(frame) => {
                    self.front_declined = false;
                    if let Some(incoming) = self.receive(frame).map_err(bad_frame)? {
                        dispatch(incoming);
                        signals += 1;
                    }
                }
                None => {
                    if !self.start_streaming(frames).map_err(bad_frame)? {
                        frames.reserve_front();
                        break;
                    }
                }
            }
        }
        Ok(signals)
    }

    /// How much the next read into the frame buffer should take at most: while a large
    /// binary is being filled from fragments, up to the next frame's length and header, so
    /// that a continuation's data is read straight into [`Receiver::window`], not the buffer.
    pub fn read_limit(&self, frames: &Deframer) -> Option<usize> {
        if self.streaming.is_some() || !self.partials.values().any(|p| p.data.is_filling()) {
            return None;
        }
        // A frame at the front that is not read in pieces (it would be already): the rest of
        // it, and the next one's head, so that reads line up with frames again.
        Some(match frames.missing() {
            Some(missing) => missing + Self::NEXT_HEAD,
            None => Self::NEXT_HEAD - frames.buffered(),
        })
    }

    /// Whether the frame being read in pieces ends within `n` more bytes: a read that fills
    /// [`Receiver::window`] may then take the next frame's head too.
    pub fn frame_ends_within(&self, n: usize) -> bool {
        self.streaming.as_ref().is_some_and(|s| s.remaining <= n)
    }

    /// How many bytes a frame's length and a continuation's header take: what a read after
    /// a streamed frame takes into the buffer.
    pub const NEXT_HEAD: usize = 4 + CONTINUATION_HEAD;

    /// Where the next bytes of the frame being read in pieces go, when they are a large
    /// binary's data: at most the rest of the frame.
    pub fn window(&mut self) -> Option<&mut [MaybeUninit<u8>]> {
        let remaining = self.streaming.as_ref()?.remaining;
        let window = self.streamed_into(0).ok()??.window()?;
        let n = window.len().min(remaining);
        Some(&mut window[..n])
    }

    /// `n` bytes were read into [`Receiver::window`]; the message, if that completed it.
    pub fn wrote(&mut self, n: usize) -> Result<Option<Incoming>, DistError> {
        let cap_room = self.max_reassembly.saturating_sub(self.buffered);
        let lander = self.lander.clone();
        if let Some(data) = self.streamed_into(n)? {
            data.wrote(n, lander.as_deref(), cap_room);
        }
        self.end_of_piece()
    }

    /// Bytes of the frame being read in pieces, from the buffer.
    fn stream(&mut self, piece: &[u8]) -> Result<Option<Incoming>, DistError> {
        let cap_room = self.max_reassembly.saturating_sub(self.buffered);
        let lander = self.lander.clone();
        if let Some(data) = self.streamed_into(piece.len())? {
            data.absorb(piece, lander.as_deref(), cap_room);
        }
        self.end_of_piece()
    }

    /// The message the frame being read in pieces belongs to, once `n` more of its bytes
    /// came (None when no frame is).
    fn streamed_into(&mut self, n: usize) -> Result<Option<&mut Assembly>, DistError> {
        let Some(streaming) = self.streaming.as_mut() else {
            return Ok(None);
        };
        streaming.remaining -= n;
        match &mut streaming.target {
            Target::Whole { data, .. } => Ok(Some(data)),
            Target::Fragment { seq, .. } => match self.partials.get_mut(seq) {
                Some(partial) => Ok(Some(&mut partial.data)),
                None => Err(err("fragment of a dropped sequence")),
            },
        }
    }

    /// After a piece: when the frame is all read, its message if it completes one.
    fn end_of_piece(&mut self) -> Result<Option<Incoming>, DistError> {
        if self.streaming.as_ref().is_some_and(|s| s.remaining > 0) {
            return Ok(None);
        }
        let Some(streaming) = self.streaming.take() else {
            return Ok(None);
        };
        self.front_declined = false;
        match streaming.target {
            Target::Whole { atoms, data } => {
                self.count_bulk(&data);
                let (skeleton, bulks) = data.finish();
                assembled(skeleton, bulks, atoms).map(Some)
            }
            Target::Fragment { seq, frag } => {
                if let Some(partial) = self.partials.get_mut(&seq) {
                    partial.next -= 1;
                }
                if frag > 1 {
                    return Ok(None);
                }
                self.complete(seq).map(Some)
            }
        }
    }

    /// Looks at the incomplete frame at the front of `frames`: if the rest of it is better
    /// read in pieces (it carries a large binary's data), takes its buffered part and
    /// returns true.
    fn start_streaming(&mut self, frames: &mut Deframer) -> Result<bool, DistError> {
        let Some((len, body)) = frames.front() else {
            return Ok(false);
        };
        if self.front_declined || len - body.len() < STREAM_MIN || body.len() < 2 {
            return Ok(false);
        }
        let started = match (body[0], body[1]) {
            (etf::VERSION, FRAGMENT_CONT) => self.start_fragment(len, body)?,
            (etf::VERSION, HEADER) if len >= BULK_MIN => self.start_whole(len, body)?,
            _ => {
                self.front_declined = true;
                false
            }
        };
        if started {
            frames.take_front();
        }
        Ok(started)
    }

    /// A continuation whose data goes on with a large binary being filled.
    fn start_fragment(&mut self, len: usize, body: &[u8]) -> Result<bool, DistError> {
        if body.len() < CONTINUATION_HEAD {
            return Ok(false);
        }
        let mut r = Reader::new(body);
        r.bytes(2)?;
        let seq = r.u64()?;
        let frag = r.u64()?;
        let filling = self
            .partials
            .get(&seq)
            .is_some_and(|p| p.next == frag && p.data.is_filling());
        if !filling {
            // Read whole; `continuation` checks it.
            self.front_declined = true;
            return Ok(false);
        }
        self.account(seq, len - CONTINUATION_HEAD)?;
        self.streaming = Some(Streaming {
            remaining: len - CONTINUATION_HEAD,
            target: Target::Fragment { seq, frag },
        });
        let buffered = &body[CONTINUATION_HEAD..];
        self.stream(buffered)?;
        Ok(true)
    }

    /// A large `131,68` frame whose buffered part shows a large binary.
    fn start_whole(&mut self, len: usize, body: &[u8]) -> Result<bool, DistError> {
        if body.len() < LOOK_AT {
            return Ok(false);
        }
        // Looked into once: read whole if no large binary shows in what is buffered.
        self.front_declined = true;
        let mut r = Reader::new(body);
        r.bytes(2)?;
        // A section whose end is not buffered yet: read whole. (Parsing it updates the cache
        // with what the frame says; parsing it again later sets the same entries.)
        let Ok(atoms) = self.atom_cache_section(&mut r) else {
            return Ok(false);
        };
        let start = r.position();
        let mut data = Assembly::new(LOOK_AT);
        data.absorb(&body[start..], self.lander.as_deref(), len - start);
        if !data.is_filling() {
            return Ok(false);
        }
        self.streaming = Some(Streaming {
            remaining: len - body.len(),
            target: Target::Whole { atoms, data },
        });
        Ok(true)
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

/// A message put together from pieces: its skeleton and its large binaries.
fn assembled(skeleton: Bytes, bulks: Vec<Bulk>, atoms: Arc<[Atom]>) -> Result<Incoming, DistError> {
    if bulks.is_empty() {
        return message(skeleton, atoms);
    }
    // The hot path keeps the binaries apart; anything else reads one contiguous encoding.
    if let Some((control, at)) = plain_send(&skeleton, &atoms) {
        if bulks[0].at >= at {
            let mut body = skeleton;
            body.advance(at);
            return Ok(Incoming {
                control,
                payload: Some(Payload {
                    body,
                    atoms,
                    bulks: bulk::rebase(bulks, at),
                }),
            });
        }
    }
    message(bulk::contiguous(&skeleton, &bulks), atoms)
}

fn bad_frame(e: DistError) -> String {
    format!("bad frame: {e}")
}

/// Control and optional message, without version bytes, as in a `131,68` frame.
fn message(mut data: Bytes, atoms: Arc<[Atom]>) -> Result<Incoming, DistError> {
    if let Some((control, at)) = plain_send(&data, &atoms) {
        data.advance(at);
        return Ok(Incoming {
            control,
            payload: Some(Payload {
                body: data,
                atoms,
                bulks: Bulks::default(),
            }),
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
        payload: payload.map(|body| Payload {
            body,
            atoms,
            bulks: Bulks::default(),
        }),
    })
}
