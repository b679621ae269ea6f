//! The sending half of a connection: signals encoded into frames (atom cache references,
//! fragments, a repeated control sent again as it is), one at a time or many at once; and a
//! message whose body comes in segments framed around them, so that big binaries are written
//! from where they lie ([`Sender::encode_segments`]).

use super::atom_cache::{cache_slot, AtomCache};
use super::{err, FRAGMENT_CONT, FRAGMENT_FIRST, HEADER, PASS_THROUGH};
use crate::dist::control::Control;
use crate::dist::flags;
use crate::dist::framing::{finish_frame, frame_with_capacity};
use crate::dist::DistError;
use crate::etf::{self, Atom, Term};
use bytes::Bytes;
use std::ops::Range;

#[cfg(test)]
mod tests;

/// The default largest message data per fragment (what OTP uses).
pub const DEFAULT_FRAGMENT_SIZE: usize = 64 * 1024;

/// The sending half of a connection: frames for the effective flags.
pub struct Sender {
    /// Visible to the tests, which switch it.
    pub(super) flags: u64,
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
            MAX_DATA
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
        check_payload(control, payload_body.map(<[u8]>::len))?;
        let (term, reason) = control.to_term(self.flags);
        let reason_body = reason.map(|reason| {
            let mut body = Vec::new();
            etf::encode_term_body(&reason, &mut body);
            body
        });
        let payload = reason_body.as_deref().or(payload_body);
        let (mut frame, cut) = self.start_frame(&term, payload.map(<[u8]>::len), true);
        let payload = payload.unwrap_or(&[]);
        frame.extend_from_slice(&payload[..cut.first]);
        out.push(finish_frame(frame));
        if let Some((seq, count)) = cut.fragments {
            for (i, chunk) in payload[cut.first..].chunks(self.fragment_size).enumerate() {
                let mut frame = frame_with_capacity(18 + chunk.len());
                frame.extend_from_slice(&fragment_header(seq, count - 1 - i as u64));
                frame.extend_from_slice(chunk);
                out.push(finish_frame(frame));
            }
        }
        Ok(())
    }

    /// The first frame of a signal up to its data (the message, or an exit reason), with 4
    /// bytes reserved for the length; and how data of `data_len` bytes is cut into frames.
    /// With `data_inline` the frame has room for the data it takes, to be appended.
    fn start_frame(
        &mut self,
        control: &Term,
        data_len: Option<usize>,
        data_inline: bool,
    ) -> (Vec<u8>, Cut) {
        let len = data_len.unwrap_or(0);
        let room = |n: usize| if data_inline { n } else { 0 };
        let whole = Cut {
            first: len,
            fragments: None,
        };
        if self.flags & flags::DIST_HDR_ATOM_CACHE == 0 {
            let mut head = Vec::with_capacity(64);
            etf::encode_term_body(control, &mut head);
            let before = 2 + head.len() + usize::from(data_len.is_some());
            let mut frame = frame_with_capacity(before + room(len));
            frame.extend_from_slice(&[PASS_THROUGH, etf::VERSION]);
            frame.extend_from_slice(&head);
            if data_len.is_some() {
                frame.push(etf::VERSION);
            }
            return (frame, whole);
        }

        let (section, head) = self.cached_control(control);
        let total = section.len() + head.len() + len;
        if self.flags & flags::FRAGMENTS == 0 || total <= self.fragment_size {
            let mut frame = frame_with_capacity(2 + section.len() + head.len() + room(len));
            frame.extend_from_slice(&[etf::VERSION, HEADER]);
            frame.extend_from_slice(&section);
            frame.extend_from_slice(&head);
            return (frame, whole);
        }

        // The control message must sit whole in the first fragment.
        let first = self
            .fragment_size
            .saturating_sub(section.len() + head.len())
            .min(len);
        let count = 1 + (len - first).div_ceil(self.fragment_size) as u64;
        let seq = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1).max(1);
        let mut frame = frame_with_capacity(18 + section.len() + head.len() + room(first));
        frame.extend_from_slice(&[etf::VERSION, FRAGMENT_FIRST]);
        frame.extend_from_slice(&seq.to_be_bytes());
        frame.extend_from_slice(&count.to_be_bytes());
        frame.extend_from_slice(&section);
        frame.extend_from_slice(&head);
        let cut = Cut {
            first,
            fragments: Some((seq, count)),
        };
        (frame, cut)
    }

    /// As [`Sender::encode`], for a message whose body is `segments` one after the other,
    /// which are not copied: `out` gets the frames as pieces of the byte stream, in order
    /// (frame headers, and the segments cut where fragments end). Pieces under
    /// [`SHARE_FROM`] bytes are copied into the frame header before them instead, so that
    /// a writer does not see a run of tiny pieces. The peer receives exactly the bytes
    /// `encode` would give for the segments joined.
    pub fn encode_segments(
        &mut self,
        control: &Control,
        segments: &[Bytes],
        out: &mut Vec<Bytes>,
    ) -> Result<(), DistError> {
        let len: usize = segments.iter().map(Bytes::len).sum();
        let mut data = Segments::new(segments);
        if let Some(prefix) = self.repeat_prefix(control, len) {
            let mut frame = frame_with_capacity(prefix.len());
            frame.extend_from_slice(prefix);
            let mut pieces = Pieces::new(out, frame, len);
            data.take(len, &mut pieces);
            pieces.finish();
            return Ok(());
        }
        check_payload(control, Some(len))?;
        let (term, reason) = control.to_term(self.flags);
        if reason.is_some() {
            // A control that carries a reason carries no message: `check_payload` refuses
            // all such but unknown ones, which have no reason.
            return Err(err(format!("{control:?} takes no message payload")));
        }
        let (frame, cut) = self.start_frame(&term, Some(len), false);
        if cut.fragments.is_none() && repeats(&frame[4..]) {
            self.repeat = Some((control.clone(), frame[4..].to_vec()));
        }
        let mut pieces = Pieces::new(out, frame, cut.first);
        data.take(cut.first, &mut pieces);
        if let Some((seq, count)) = cut.fragments {
            let mut left = len - cut.first;
            for fragment in (1..count).rev() {
                let chunk = left.min(self.fragment_size);
                pieces.bytes(&((18 + chunk) as u32).to_be_bytes());
                pieces.bytes(&fragment_header(seq, fragment));
                data.take(chunk, &mut pieces);
                left -= chunk;
            }
        }
        pieces.finish();
        Ok(())
    }

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

    /// The atom-cache section and the control term encoded against it: the atoms at the
    /// top of the control tuple (and the nodes of its pids, references and ports) become
    /// ATOM_CACHE_REFs, entered into the peer's cache the first time and referred to after.
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

/// How a signal's data is cut into frames (see [`Sender::start_frame`]).
struct Cut {
    /// Data bytes in the first frame.
    first: usize,
    /// The sequence id and the number of fragments, when the data goes in fragments: the
    /// rest of it follows in fragments of `fragment_size` bytes, the last one shorter.
    fragments: Option<(u64, u64)>,
}

/// The largest message data a frame's 32-bit length leaves room for, with its header.
const MAX_DATA: usize = u32::MAX as usize - (1 << 16);

/// Refuses a payload where the control takes none and the reverse (unknown controls pass
/// either way), and a payload too large for a frame.
fn check_payload(control: &Control, payload_len: Option<usize>) -> Result<(), DistError> {
    let unknown = matches!(control, Control::Unknown(_));
    if !unknown && payload_len.is_some() != control.carries_message() {
        return Err(err(if control.carries_message() {
            format!("{control:?} needs a message payload")
        } else {
            format!("{control:?} takes no message payload")
        }));
    }
    if payload_len.unwrap_or(0) > MAX_DATA {
        return Err(err("message too large for one distribution frame"));
    }
    Ok(())
}

/// A continuing fragment's header: `131, 70`, the sequence id, the fragment number.
fn fragment_header(seq: u64, fragment: u64) -> [u8; 18] {
    let mut header = [0; 18];
    header[..2].copy_from_slice(&[etf::VERSION, FRAGMENT_CONT]);
    header[2..10].copy_from_slice(&seq.to_be_bytes());
    header[10..].copy_from_slice(&fragment.to_be_bytes());
    header
}

/// Pieces of message data at least this long go out as they are (a share of the segment
/// they come from); shorter ones are copied next to the frame header they follow.
const SHARE_FROM: usize = 4096;

/// The byte stream of a message's frames, built as pieces: bytes written here gather in one
/// buffer, which goes out before the next shared piece.
struct Pieces<'o> {
    out: &'o mut Vec<Bytes>,
    buffer: Vec<u8>,
}

impl<'o> Pieces<'o> {
    /// Starts with `frame` (a header from [`Sender::start_frame`], its first 4 bytes
    /// reserved), which `data_len` bytes of data follow.
    fn new(out: &'o mut Vec<Bytes>, mut frame: Vec<u8>, data_len: usize) -> Pieces<'o> {
        let len = (frame.len() - 4 + data_len) as u32;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        Pieces { out, buffer: frame }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes `range` of `segment`: shared, or copied when short.
    fn share(&mut self, segment: &Bytes, range: Range<usize>) {
        if range.len() < SHARE_FROM {
            self.buffer.extend_from_slice(&segment[range]);
            return;
        }
        if !self.buffer.is_empty() {
            let buffer = std::mem::take(&mut self.buffer);
            self.out.push(Bytes::from(buffer));
        }
        self.out.push(segment.slice(range));
    }

    fn finish(self) {
        if !self.buffer.is_empty() {
            self.out.push(Bytes::from(self.buffer));
        }
    }
}

/// A read position in a message body given as segments.
struct Segments<'s> {
    segments: &'s [Bytes],
    /// Bytes of `segments[0]` already taken.
    offset: usize,
}

impl<'s> Segments<'s> {
    fn new(segments: &'s [Bytes]) -> Segments<'s> {
        Segments {
            segments,
            offset: 0,
        }
    }

    /// Hands the next `len` bytes to `pieces`, as shares of the segments.
    fn take(&mut self, mut len: usize, pieces: &mut Pieces<'_>) {
        while len > 0 {
            let Some(segment) = self.segments.first() else {
                return;
            };
            let n = (segment.len() - self.offset).min(len);
            pieces.share(segment, self.offset..self.offset + n);
            len -= n;
            self.offset += n;
            if self.offset == segment.len() {
                self.segments = &self.segments[1..];
                self.offset = 0;
            }
        }
    }
}
