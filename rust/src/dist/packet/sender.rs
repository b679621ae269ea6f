//! The sending half of a connection: signals encoded into frames (atom cache references,
//! fragments, a repeated control sent again as it is), one at a time or many at once.

use super::atom_cache::{cache_slot, AtomCache};
use super::{err, FRAGMENT_CONT, FRAGMENT_FIRST, HEADER, PASS_THROUGH};
use crate::dist::control::Control;
use crate::dist::flags;
use crate::dist::framing::{finish_frame, frame_with_capacity};
use crate::dist::DistError;
use crate::etf::{self, Atom, Term};
use bytes::Bytes;

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
