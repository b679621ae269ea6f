//! Whole terms from bytes into [`Term`].

use super::reader::{inflate, DecodeError, Reader};
use super::tags;
use super::term::{Atom, BigInt, Fun, Term};
use bytes::Bytes;

/// The default bound on the size a compressed term may declare (256 MiB).
pub const DEFAULT_MAX_INFLATED: usize = 256 << 20;

/// Red zone and segment size for growing the stack on deep nesting: recursion depth is
/// bounded only by the input (every level costs at least one byte), never by the thread's
/// stack.
pub(crate) const STACK_RED_ZONE: usize = 64 * 1024;
pub(crate) const STACK_SEGMENT: usize = 2 * 1024 * 1024;

/// How to decode.
#[derive(Clone, Copy, Debug)]
pub struct DecodeOptions<'a> {
    /// The atoms that ATOM_CACHE_REF indexes (a distribution header's); empty otherwise.
    pub atom_cache: &'a [Atom],
    /// The largest size a compressed term may declare.
    pub max_inflated: usize,
}

impl Default for DecodeOptions<'_> {
    fn default() -> Self {
        DecodeOptions {
            atom_cache: &[],
            max_inflated: DEFAULT_MAX_INFLATED,
        }
    }
}

/// Decodes a standalone external term (`131`, then the term, nothing after it).
pub fn decode(data: &[u8]) -> Result<Term, DecodeError> {
    decode_with(data, &DecodeOptions::default())
}

/// [`decode`] with options.
pub fn decode_with(data: &[u8], options: &DecodeOptions<'_>) -> Result<Term, DecodeError> {
    let mut reader = Reader::new(data);
    let version = reader.u8()?;
    if version != super::VERSION {
        return Err(reader.error_at(0, format!("version byte is {version}, not 131")));
    }
    let term = if reader.peek_u8() == Some(tags::COMPRESSED) {
        reader.u8()?;
        let inflated = inflate(&mut reader, options.max_inflated)?;
        let mut inner = Reader::new(&inflated);
        let term = decode_term(&mut inner, options.atom_cache)?;
        if inner.remaining() != 0 {
            term.drop_flat();
            return Err(inner.error("trailing bytes after the term (inside compressed data)"));
        }
        term
    } else {
        decode_term(&mut reader, options.atom_cache)?
    };
    if reader.remaining() != 0 {
        term.drop_flat();
        return Err(reader.error("trailing bytes after the term"));
    }
    Ok(term)
}

/// Decodes one term at the reader's position (no version byte).
pub fn decode_term(r: &mut Reader<'_>, cache: &[Atom]) -> Result<Term, DecodeError> {
    stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || decode_inner(r, cache))
}

fn decode_inner(r: &mut Reader<'_>, cache: &[Atom]) -> Result<Term, DecodeError> {
    let start = r.position();
    let tag = r.u8()?;
    Ok(match tag {
        tags::SMALL_INTEGER => Term::Int(r.u8()? as i64),
        tags::INTEGER => Term::Int(r.i32()? as i64),
        tags::SMALL_BIG | tags::LARGE_BIG => {
            let (negative, magnitude) = r.big(tag)?;
            big_to_term(negative, magnitude)
        }
        tags::NEW_FLOAT => {
            // Erlang floats are finite (OTP refuses the others, as FLOAT_EXT and the Python
            // codec do here); a NaN would also make the term unequal to itself.
            let f = r.f64()?;
            if !f.is_finite() {
                return Err(r.error_at(start, "float is not finite"));
            }
            Term::Float(f)
        }
        tags::FLOAT => Term::Float(r.old_float()?),
        tags::ATOM
        | tags::SMALL_ATOM
        | tags::ATOM_UTF8
        | tags::SMALL_ATOM_UTF8
        | tags::ATOM_CACHE_REF => Term::Atom(r.atom_body(tag, cache)?),
        tags::SMALL_TUPLE | tags::LARGE_TUPLE => {
            let arity = if tag == tags::SMALL_TUPLE {
                r.u8()? as u64
            } else {
                r.u32()? as u64
            };
            let arity = r.check_count(arity, 1, "tuple")?;
            Term::Tuple(decode_items(r, cache, arity)?.take())
        }
        tags::NIL => Term::List(Vec::new()),
        tags::STRING => {
            let len = r.u16()? as usize;
            match r.bytes(len)? {
                // `[]`, which has one form: `[1 | ""]` is the proper list `[1]`.
                [] => Term::nil(),
                bytes => Term::String(bytes.to_vec()),
            }
        }
        tags::LIST => {
            let len = r.u32()? as u64;
            let len = r.check_count(len + 1, 1, "list")? - 1;
            let mut items = decode_items(r, cache, len)?;
            match decode_term(r, cache)? {
                Term::List(tail) if tail.is_empty() => Term::List(items.take()),
                tail if items.0.is_empty() => tail,
                tail => Term::ImproperList(items.take(), Box::new(tail)),
            }
        }
        tags::BINARY => {
            let len = r.u32()? as usize;
            Term::Binary(Bytes::copy_from_slice(r.bytes(len)?))
        }
        tags::BIT_BINARY => {
            let (data, bits) = r.bit_binary()?;
            Term::BitBinary {
                data: Bytes::copy_from_slice(data),
                bits,
            }
        }
        tags::MAP => {
            let arity = r.u32()? as u64;
            let arity = r.check_count(arity, 2, "map")?;
            let mut keys_and_values = decode_items(r, cache, 2 * arity)?.take().into_iter();
            let mut pairs = Vec::with_capacity(arity);
            while let (Some(key), Some(value)) = (keys_and_values.next(), keys_and_values.next()) {
                pairs.push((key, value));
            }
            Term::Map(pairs)
        }
        tags::PID | tags::NEW_PID => Term::Pid(r.pid(tag, cache)?),
        tags::PORT | tags::NEW_PORT | tags::V4_PORT => Term::Port(r.port(tag, cache)?),
        tags::REFERENCE | tags::NEW_REFERENCE | tags::NEWER_REFERENCE => {
            Term::Reference(r.reference(tag, cache)?)
        }
        tags::EXPORT => {
            let module = r.atom(cache)?;
            let function = r.atom(cache)?;
            let at = r.position();
            if r.u8()? != tags::SMALL_INTEGER {
                return Err(r.error_at(at, "export arity must be a small integer"));
            }
            Term::Export {
                module,
                function,
                arity: r.u8()?,
            }
        }
        tags::NEW_FUN => Term::Fun(decode_fun(r, start, cache)?),
        tags::COMPRESSED => return Err(r.error_at(start, "compressed term nested inside a term")),
        tags::LOCAL => {
            return Err(r.error_at(start, "LOCAL_EXT is private to the node that encoded it"))
        }
        other => return Err(r.error_at(start, format!("unknown tag {other}"))),
    })
}

/// An integer from sign and little-endian magnitude: `Int` when it fits in `i64`.
pub fn big_to_term(negative: bool, magnitude: &[u8]) -> Term {
    let (magnitude, word) = super::reader::big_magnitude(magnitude);
    if let Some(value) = word {
        if !negative && value <= i64::MAX as u64 {
            return Term::Int(value as i64);
        }
        if negative && value <= 1u64 << 63 {
            return Term::Int((value as i64).wrapping_neg());
        }
    }
    Term::BigInt(BigInt {
        negative,
        magnitude: magnitude.to_vec(),
    })
}

/// NEW_FUN_EXT, tag read at `start`. The fields are decoded (they may use the atom cache)
/// and the fun is kept as its canonical encoding, which goes back out unchanged.
fn decode_fun(r: &mut Reader<'_>, start: usize, cache: &[Atom]) -> Result<Fun, DecodeError> {
    let size = r.u32()? as usize;
    if size < 4 || size - 4 > r.remaining() {
        return Err(r.error_at(
            start,
            format!("fun declares {size} bytes, input is shorter"),
        ));
    }
    let end = start + 1 + size;
    let arity = r.u8()?;
    let uniq: [u8; 16] = r.bytes(16)?.try_into().expect("16 bytes");
    let index = r.u32()?;
    let num_free = r.u32()? as u64;
    let module = r.atom(cache)?;
    // OldIndex, OldUniq and Pid, then the free variables (any terms, dropped flat).
    let mut parts = decode_items(r, cache, 3)?;
    let num_free = r.check_count(num_free, 1, "fun environment")?;
    parts.0.reserve(num_free);
    for _ in 0..num_free {
        parts.0.push(decode_term(r, cache)?);
    }
    if r.position() != end {
        return Err(r.error_at(start, "fun size does not match its contents"));
    }
    let [old_index, old_uniq, pid, free @ ..] = &parts.0[..] else {
        unreachable!("three parts decoded");
    };
    Ok(Fun::from_parts(
        arity, uniq, index, &module, old_index, old_uniq, pid, free,
    ))
}

/// `count` terms in a row.
fn decode_items(r: &mut Reader<'_>, cache: &[Atom], count: usize) -> Result<Items, DecodeError> {
    let mut items = Items(Vec::with_capacity(count));
    for _ in 0..count {
        items.0.push(decode_term(r, cache)?);
    }
    Ok(items)
}

/// Terms decoded so far, dropped flat ([`Term::drop_flat`]) unless taken: when decoding fails
/// part way, or when they were only needed for a while (a fun's parts), one of them may be
/// nested deeper than the stack could drop.
struct Items(Vec<Term>);

impl Items {
    fn take(&mut self) -> Vec<Term> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for Items {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            Term::List(self.take()).drop_flat();
        }
    }
}
