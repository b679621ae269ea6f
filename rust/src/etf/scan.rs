//! Walks encoded terms as their bytes arrive, without decoding them, to find each large
//! binary before its data comes: a receiver can then put that data straight where it will
//! end up (see `dist::packet::bulk`).
//!
//! Pure and forgiving: it reads only the headers of terms (tags, lengths, arities), never
//! fails, and stops (`Scan::Off`) at anything it does not know how to skip. The real decoder
//! checks everything later.

use super::tags;

/// What a [`Scanner`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// The bytes given end before the next binary of interest, or before a header is whole.
    NeedMore,
    /// A `BINARY_EXT` of `len` bytes (at least the scanner's minimum) whose tag is at `at`;
    /// its data starts 5 bytes further on.
    Binary { at: usize, len: usize },
    /// Something the scanner does not skip (compressed data, an old fun, an unknown tag):
    /// it looks no further.
    Off,
}

/// What is still to come at one level of nesting.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// This many more terms.
    Terms(u64),
    /// This many more bytes of data (an atom's text, a small binary, a pid's numbers).
    Bytes(u64),
}

/// A scan through a sequence of terms (a control message and its message, say), resumed
/// each time more bytes have arrived.
#[derive(Debug, Clone)]
pub struct Scanner {
    min: usize,
    /// Where the next unread header starts, in the bytes given to [`Scanner::scan`].
    pos: usize,
    stack: Vec<Expect>,
    off: bool,
}

impl Scanner {
    /// A scan for binaries of at least `min` bytes, through any number of terms.
    pub fn new(min: usize) -> Scanner {
        Scanner {
            min,
            pos: 0,
            stack: vec![Expect::Terms(u64::MAX)],
            off: false,
        }
    }

    /// Scans on through `data`, which holds every byte given before and maybe more. After
    /// [`Scan::Binary`], the caller leaves that binary's data out of what it passes next: the
    /// scan goes on from right after the binary's 5-byte header.
    pub fn scan(&mut self, data: &[u8]) -> Scan {
        if self.off {
            return Scan::Off;
        }
        loop {
            match self.stack.last().copied() {
                None => return Scan::NeedMore,
                Some(Expect::Bytes(n)) => {
                    let here = data.len().saturating_sub(self.pos) as u64;
                    let step = n.min(here);
                    self.pos += step as usize;
                    if step < n {
                        self.set_top(Expect::Bytes(n - step));
                        return Scan::NeedMore;
                    }
                    self.stack.pop();
                }
                Some(Expect::Terms(0)) => {
                    self.stack.pop();
                }
                Some(Expect::Terms(n)) => {
                    self.set_top(Expect::Terms(n - 1));
                    match self.header(data) {
                        Some(Step::Done) => {}
                        Some(Step::Found(found)) => return found,
                        None => {
                            // Not whole yet (nothing was pushed): read again when more came.
                            self.set_top(Expect::Terms(n));
                            return Scan::NeedMore;
                        }
                    }
                }
            }
        }
    }

    fn set_top(&mut self, expect: Expect) {
        if let Some(top) = self.stack.last_mut() {
            *top = expect;
        }
    }

    /// Reads the header of the term at `pos` and pushes what follows it; None if the header
    /// is not whole in `data`.
    fn header(&mut self, data: &[u8]) -> Option<Step> {
        let at = self.pos;
        let head = data.get(at..)?;
        let tag = *head.first()?;
        let u8_at = |i: usize| head.get(i).map(|&b| u64::from(b));
        let u16_at = |i: usize| {
            head.get(i..i + 2)
                .map(|b| u64::from(u16::from_be_bytes([b[0], b[1]])))
        };
        let u32_at = |i: usize| {
            head.get(i..i + 4)
                .map(|b| u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        };
        // (header length, then what follows: data bytes, then terms, then data bytes).
        let (size, bytes, terms, after) = match tag {
            tags::SMALL_INTEGER | tags::ATOM_CACHE_REF => (2, 0, 0, 0),
            tags::INTEGER => (5, 0, 0, 0),
            tags::NEW_FLOAT => (9, 0, 0, 0),
            tags::FLOAT => (32, 0, 0, 0),
            tags::NIL => (1, 0, 0, 0),
            tags::SMALL_ATOM | tags::SMALL_ATOM_UTF8 => (2, u8_at(1)?, 0, 0),
            tags::ATOM | tags::ATOM_UTF8 | tags::STRING => (3, u16_at(1)?, 0, 0),
            tags::SMALL_TUPLE => (2, 0, u8_at(1)?, 0),
            tags::LARGE_TUPLE => (5, 0, u32_at(1)?, 0),
            tags::MAP => (5, 0, 2 * u32_at(1)?, 0),
            tags::LIST => (5, 0, u32_at(1)? + 1, 0),
            tags::BINARY => {
                let len = u32_at(1)?;
                if len as usize >= self.min {
                    self.pos = at + 5;
                    return Some(Step::Found(Scan::Binary {
                        at,
                        len: len as usize,
                    }));
                }
                (5, len, 0, 0)
            }
            tags::BIT_BINARY => (6, u32_at(1)?, 0, 0),
            tags::SMALL_BIG => (3, u8_at(1)?, 0, 0),
            tags::LARGE_BIG => (6, u32_at(1)?, 0, 0),
            // Node name, then numbers.
            tags::NEW_PID => (1, 0, 1, 12),
            tags::PID => (1, 0, 1, 9),
            tags::V4_PORT => (1, 0, 1, 12),
            tags::NEW_PORT => (1, 0, 1, 8),
            tags::PORT => (1, 0, 1, 5),
            tags::REFERENCE => (1, 0, 1, 5),
            tags::NEWER_REFERENCE => (3, 0, 1, 4 + 4 * u16_at(1)?),
            tags::NEW_REFERENCE => (3, 0, 1, 1 + 4 * u16_at(1)?),
            tags::EXPORT => (1, 0, 3, 0),
            // Its size counts itself.
            tags::NEW_FUN => (5, u32_at(1)?.saturating_sub(4), 0, 0),
            _ => {
                self.off = true;
                return Some(Step::Found(Scan::Off));
            }
        };
        if head.len() < size {
            return None;
        }
        self.pos = at + size;
        if after > 0 {
            self.stack.push(Expect::Bytes(after));
        }
        if terms > 0 {
            self.stack.push(Expect::Terms(terms));
        }
        if bytes > 0 {
            self.stack.push(Expect::Bytes(bytes));
        }
        Some(Step::Done)
    }
}

enum Step {
    Done,
    Found(Scan),
}
