//! Byte-level decoding: one field or one tag body at a time.
//!
//! Every length read from the input is checked against what remains *before* anything is
//! allocated, so a short input that claims a huge list fails at once. Errors carry the byte
//! offset where decoding stopped.

use super::tags;
use super::term::{Atom, Pid, Port, Reference};
use std::borrow::Cow;
use std::fmt;

/// Malformed external-format input: what was wrong and at which byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// The most characters an atom may have (OTP's limit).
pub const MAX_ATOM_CHARS: usize = 255;

/// A cursor over external-format bytes.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The bytes from `start` up to the current position.
    pub fn since(&self, start: usize) -> &'a [u8] {
        &self.data[start..self.pos]
    }

    /// The unread bytes.
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }

    pub fn error_at(&self, offset: usize, message: impl Into<String>) -> DecodeError {
        DecodeError {
            offset,
            message: message.into(),
        }
    }

    pub fn error(&self, message: impl Into<String>) -> DecodeError {
        self.error_at(self.pos, message)
    }

    // The readers below run for every byte of every term: inlined, with the error built
    // out of line, a read is a bounds check and a load.
    #[inline]
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        // A wrapped end lies before `pos`, which `get` refuses like any other bad range.
        match self.data.get(self.pos..self.pos.wrapping_add(n)) {
            Some(out) => {
                self.pos += n;
                Ok(out)
            }
            _ => Err(self.truncated(n)),
        }
    }

    #[cold]
    #[inline(never)]
    fn truncated(&self, n: usize) -> DecodeError {
        self.error(format!(
            "truncated input: {n} bytes needed, {} left",
            self.remaining()
        ))
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    #[inline]
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn peek_u8(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    #[inline]
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    #[inline]
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    #[inline]
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    /// Checks that `count` items of at least `min_each` bytes can still follow, so that a
    /// declared length never drives an allocation the input cannot back.
    pub fn check_count(&self, count: u64, min_each: u64, what: &str) -> Result<usize, DecodeError> {
        let need = count.saturating_mul(min_each);
        if need > self.remaining() as u64 {
            return Err(self.error(format!(
                "{what} declares {count} elements but only {} bytes remain",
                self.remaining()
            )));
        }
        Ok(count as usize)
    }

    /// The text of an atom whose tag has been read. `cache` resolves ATOM_CACHE_REF
    /// (the atoms of the current distribution header; empty outside distribution).
    pub fn atom_text<'c>(&mut self, tag: u8, cache: &'c [Atom]) -> Result<Cow<'c, str>, DecodeError>
    where
        'a: 'c,
    {
        let start = self.pos.saturating_sub(1);
        let (len, utf8) = match tag {
            tags::ATOM_UTF8 => (self.u16()? as usize, true),
            tags::SMALL_ATOM_UTF8 => (self.u8()? as usize, true),
            tags::ATOM => (self.u16()? as usize, false),
            tags::SMALL_ATOM => (self.u8()? as usize, false),
            tags::ATOM_CACHE_REF => {
                let index = self.u8()? as usize;
                return match cache.get(index) {
                    Some(atom) => Ok(Cow::Borrowed(atom.as_str())),
                    None => Err(self.error_at(
                        start,
                        format!("atom cache reference {index} is not in this message's header"),
                    )),
                };
            }
            other => {
                return Err(self.error_at(start, format!("expected an atom, found tag {other}")))
            }
        };
        let raw = self.bytes(len)?;
        if utf8 {
            Ok(Cow::Borrowed(self.utf8_atom_text(raw, start)?))
        } else {
            self.latin1_atom_text(raw, start)
        }
    }

    /// The bytes of an atom (ATOM, SMALL_ATOM, ATOM_UTF8, SMALL_ATOM_UTF8) whose tag has been
    /// read, not yet checked: a caller that has seen these exact bytes before may skip the
    /// checks of [`Reader::utf8_atom_text`] / [`Reader::latin1_atom_text`].
    #[inline]
    pub fn atom_bytes(&mut self, tag: u8) -> Result<&'a [u8], DecodeError> {
        let len = if matches!(tag, tags::SMALL_ATOM_UTF8 | tags::SMALL_ATOM) {
            self.u8()? as usize
        } else {
            self.u16()? as usize
        };
        self.bytes(len)
    }

    /// The text of a Latin-1 atom (ATOM_EXT, SMALL_ATOM_EXT); `start` is where its tag was.
    pub fn latin1_atom_text<'b>(
        &self,
        raw: &'b [u8],
        start: usize,
    ) -> Result<Cow<'b, str>, DecodeError> {
        if raw.len() > MAX_ATOM_CHARS {
            return Err(self.error_at(start, "atom is longer than 255 characters"));
        }
        match std::str::from_utf8(raw) {
            Ok(text) if raw.is_ascii() => Ok(Cow::Borrowed(text)),
            _ => Ok(Cow::Owned(raw.iter().map(|&b| b as char).collect())),
        }
    }

    /// Checks a UTF-8 atom's bytes (valid UTF-8, at most 255 characters); `start` is where
    /// its tag was, for the error.
    pub fn utf8_atom_text<'b>(&self, raw: &'b [u8], start: usize) -> Result<&'b str, DecodeError> {
        let text = std::str::from_utf8(raw)
            .map_err(|_| self.error_at(start, "atom is not valid UTF-8"))?;
        if raw.len() > MAX_ATOM_CHARS && text.chars().count() > MAX_ATOM_CHARS {
            return Err(self.error_at(start, "atom is longer than 255 characters"));
        }
        Ok(text)
    }

    /// Reads a tag and an atom.
    pub fn atom(&mut self, cache: &[Atom]) -> Result<Atom, DecodeError> {
        let tag = self.u8()?;
        self.atom_body(tag, cache)
    }

    /// An atom whose tag has been read; a cache reference shares the cached atom.
    pub fn atom_body(&mut self, tag: u8, cache: &[Atom]) -> Result<Atom, DecodeError> {
        if tag == tags::ATOM_CACHE_REF {
            let at = self.pos.saturating_sub(1);
            let index = self.u8()? as usize;
            return cache.get(index).cloned().ok_or_else(|| {
                self.error_at(
                    at,
                    format!("atom cache reference {index} is not in this message's header"),
                )
            });
        }
        Ok(Atom::new(&self.atom_text(tag, cache)?))
    }

    /// The 31-byte textual float of FLOAT_EXT (`"%.20e"`, NUL padded).
    pub fn old_float(&mut self) -> Result<f64, DecodeError> {
        let start = self.pos;
        let raw = self.bytes(31)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        std::str::from_utf8(&raw[..end])
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|f| f.is_finite())
            .ok_or_else(|| self.error_at(start, "FLOAT_EXT is not a valid float"))
    }

    /// The sign and little-endian magnitude of SMALL_BIG / LARGE_BIG, tag read.
    pub fn big(&mut self, tag: u8) -> Result<(bool, &'a [u8]), DecodeError> {
        let n = if tag == tags::SMALL_BIG {
            self.u8()? as usize
        } else {
            self.u32()? as usize
        };
        let sign = self.u8()?;
        if sign > 1 {
            return Err(self.error("big integer sign byte must be 0 or 1"));
        }
        Ok((sign == 1, self.bytes(n)?))
    }

    /// A PID_EXT / NEW_PID_EXT body, tag read.
    pub fn pid(&mut self, tag: u8, cache: &[Atom]) -> Result<Pid, DecodeError> {
        let node = self.atom(cache)?;
        let id = self.u32()?;
        let serial = self.u32()?;
        let creation = if tag == tags::NEW_PID {
            self.u32()?
        } else {
            self.u8()? as u32
        };
        Ok(Pid {
            node,
            id,
            serial,
            creation,
        })
    }

    /// A PORT_EXT / NEW_PORT_EXT / V4_PORT_EXT body, tag read.
    pub fn port(&mut self, tag: u8, cache: &[Atom]) -> Result<Port, DecodeError> {
        let node = self.atom(cache)?;
        let (id, creation) = match tag {
            tags::V4_PORT => (self.u64()?, self.u32()?),
            tags::NEW_PORT => (self.u32()? as u64, self.u32()?),
            _ => (self.u32()? as u64, self.u8()? as u32),
        };
        Ok(Port { node, id, creation })
    }

    /// A REFERENCE_EXT / NEW_REFERENCE_EXT / NEWER_REFERENCE_EXT body, tag read.
    pub fn reference(&mut self, tag: u8, cache: &[Atom]) -> Result<Reference, DecodeError> {
        if tag == tags::REFERENCE {
            let node = self.atom(cache)?;
            let id = self.u32()?;
            let creation = self.u8()? as u32;
            return Ok(Reference {
                node,
                creation,
                ids: vec![id],
            });
        }
        let start = self.pos;
        let len = self.u16()? as usize;
        if len == 0 || len > 5 {
            return Err(self.error_at(start, format!("reference has {len} words (1 to 5 allowed)")));
        }
        let node = self.atom(cache)?;
        let creation = if tag == tags::NEWER_REFERENCE {
            self.u32()?
        } else {
            self.u8()? as u32
        };
        let mut ids = Vec::with_capacity(len);
        for _ in 0..len {
            ids.push(self.u32()?);
        }
        Ok(Reference {
            node,
            creation,
            ids,
        })
    }

    /// The header of a BIT_BINARY_EXT, tag read: (data, significant bits in the last byte).
    pub fn bit_binary(&mut self) -> Result<(&'a [u8], u8), DecodeError> {
        let start = self.pos;
        let len = self.u32()? as usize;
        let bits = self.u8()?;
        if len == 0 || !(1..=8).contains(&bits) {
            return Err(self.error_at(start, "bit binary needs at least one byte and 1 to 8 bits"));
        }
        Ok((self.bytes(len)?, bits))
    }
}

/// A big integer's little-endian magnitude without its high zero bytes, and its value when it
/// fits in a `u64` (the common case, which needs no arbitrary-precision path).
pub fn big_magnitude(magnitude: &[u8]) -> (&[u8], Option<u64>) {
    let significant = magnitude.len() - magnitude.iter().rev().take_while(|&&b| b == 0).count();
    let magnitude = &magnitude[..significant];
    if magnitude.len() > 8 {
        return (magnitude, None);
    }
    let mut word = [0u8; 8];
    word[..magnitude.len()].copy_from_slice(magnitude);
    (magnitude, Some(u64::from_le_bytes(word)))
}

/// Inflates the body of a compressed term (after tag 80), refusing a declared size above
/// `limit` before inflating anything.
pub fn inflate(reader: &mut Reader<'_>, limit: usize) -> Result<Vec<u8>, DecodeError> {
    use std::io::Read;
    let start = reader.position();
    let size = reader.u32()? as usize;
    if size > limit {
        return Err(reader.error_at(
            start,
            format!("compressed term declares {size} bytes, above the limit of {limit}"),
        ));
    }
    let compressed = reader.rest();
    let mut out = Vec::with_capacity(size);
    let mut z = flate2::read::ZlibDecoder::new(compressed).take(size as u64 + 1);
    z.read_to_end(&mut out)
        .map_err(|e| reader.error_at(start, format!("compressed term does not inflate: {e}")))?;
    if out.len() != size {
        return Err(reader.error_at(
            start,
            format!(
                "compressed term inflates to {} bytes, not the {size} it declares",
                out.len()
            ),
        ));
    }
    let used = z.into_inner().total_in() as usize;
    reader.bytes(used)?;
    Ok(out)
}
