//! Erlang term syntax: [`parse_term`] reads the literal subset of Erlang's syntax into a
//! [`Term`], [`format_term`] writes a [`Term`] the way `io_lib:format("~p", [T])` does, on
//! one line.
//!
//! Pure: no I/O.
//!
//! # What `parse_term` reads
//!
//! One term, optionally followed by `.` (so a file such as an `-ssl_dist_optfile` reads as it
//! is), with whitespace and `%` comments anywhere between tokens:
//!
//! - integers: `42`, `-7`, `1_000` (digit separators, OTP 23+), `16#ff`, `2#1010` (bases 2 to
//!   36), `$a` and `$\n` (characters); any size (beyond `i64` they become [`BigInt`](crate::etf::BigInt)s);
//! - floats: `1.5`, `1.0e10`, `-2.5e-3` (digits on both sides of the point, as in Erlang);
//! - atoms: `ok`, `'hello world'`, with Erlang's escapes; `true` and `false` are atoms;
//! - strings: `"text"` with Erlang's escapes (`\n`, `\t`, `\xNN`, `\x{...}`, octal `\NNN`,
//!   `\^a`, ...), adjacent strings joined (`"ab" "cd"`);
//! - binaries: `<<>>`, `<<"text">>`, `<<1,2,3>>`, `<<"héllo"/utf8>>` and bit-sized integer
//!   segments `<<1:3>>`, `<<1,2,3:4>>` (a value must fit its size: `<<300>>` is refused, not
//!   truncated as Erlang's compiler would); a total size that is not a whole number of bytes
//!   gives a [`Term::BitBinary`];
//! - lists `[1,2]`, improper lists `[a|b]`, tuples `{a,b}`, maps `#{k => v}` (a repeated key
//!   keeps its last value, as in Erlang);
//! - `fun Module:Function/Arity` (a [`Term::Export`]);
//! - pids, ports and references as erlnode's Python `str()` prints them (see below).
//!
//! Anything else (variables, operators, function calls, records, closures) is a
//! [`SyntaxError`] that says what was found and where (line, column, byte offset). Nesting is
//! bounded by [`MAX_DEPTH`].
//!
//! # What `format_term` writes
//!
//! What `io_lib:format("~p", [T])` prints (Erlang's default `latin1` printable range), without
//! its line breaking, checked against a real `erl` by the `term_syntax` integration test:
//! lists of printable Latin-1 characters as `"strings"` and binaries of them as `<<"text">>`
//! (anything else as integers), bit binaries as `<<1,2,3:4>>`, atoms quoted only when needed
//! (reserved words, a start other than a lowercase letter, other characters), floats in the
//! shortest form that reads back to the same float (`1.0`, `0.1`, `1.0e10`, `1.0e-5`), map
//! keys in Erlang's map-key order (integers before floats), `fun m:f/2`.
//!
//! Where it differs from `erl`, on purpose:
//! - pids, ports and references carry their node name, as erlnode's Python `str()` prints
//!   them: `<node@host.42.0>`, `#Port<node@host.5>`, `#Ref<node@host.3.2.1>` (words most
//!   significant first), where `erl` prints `<0.42.0>` (a node index that only means something
//!   inside one Erlang node). A node name that is not a plain `name@host` is quoted as an atom
//!   (`<'odd node'.1.2>`), and so is a reference's node whose host ends in a number part,
//!   since the number of words varies (`#Ref<'a@h.1'.3.2.1>`); an IPv4 host
//!   (`#Ref<py@10.0.0.1.3.2.1>`) is read as one.
//!   The creation is not written: these parse back with creation 0.
//! - `maybe` and `else` are quoted: they are reserved words from OTP 27 (OTP 25 and 26 print
//!   them bare, and read either form).
//! - the atoms of `fun M:F/A` are quoted as any atom is; `erl` prints them by the emulator's
//!   own rules (OTP 25: reserved words bare, `@` quoted, other characters as UTF-8 bytes
//!   read as Latin-1), which need not read back (`fun m:end/1`).
//! - maps of more than 32 keys are in key order too (`erl` prints those in hash order).
//! - a closure prints as `erl` prints it, `#Fun<module.index.uniq>`, which does not parse:
//!   a closure cannot be rebuilt from text. A NaN or infinite float (Erlang has none) prints
//!   as `#Float<nan>`, `#Float<inf>` or `#Float<-inf>`, which does not parse either.
//!
//! # Round trip
//!
//! `parse_term(&format_term(&t))` gives a term [`exactly_equal`] to `t` (Erlang's `=:=`) for
//! every term the codec produces, except closures and non-finite floats (above), and with the
//! creation of pids, ports and references set to 0. [`Term`] keeps distinctions that `=:=`
//! does not make, and text cannot keep them, so the `==` of [`Term`] may differ:
//! - a list of integers 0..=255 is one Erlang term whether held as [`Term::String`] or
//!   [`Term::List`]: `format_term` prints both as `"ab"` when printable and as `[1,2]`
//!   otherwise; `parse_term` gives a `Term::String` for a string literal whose characters are
//!   all below 256, a `Term::List` for a bracketed list, and `[]` (an empty `Term::List`) for
//!   `""`;
//! - an [`Term::ImproperList`] whose tail is a list is one longer list;
//! - a [`Term::BitBinary`] of 8 bits in its last byte is a [`Term::Binary`], and the unused
//!   low bits of its last byte do not count;
//! - maps are printed in key order, so pairs come back in that order.
//!
//! [`exactly_equal`] compares terms as `=:=` does, and [`term_order`] is the order map keys
//! are printed in.

mod format;
mod lex;
mod natural;
mod order;
mod parse;

#[cfg(test)]
mod tests;

pub use order::{exactly_equal, term_order};

use super::term::Term;
use std::fmt;

/// How deeply lists, tuples, maps and binaries may nest in text given to [`parse_term`].
pub const MAX_DEPTH: usize = 10_000;

/// Reads one term in Erlang syntax (see the [module documentation](self)).
pub fn parse_term(text: &str) -> Result<Term, SyntaxError> {
    parse::parse(text)
}

/// Writes `term` as `io_lib:format("~p", [T])` does, on one line (see the
/// [module documentation](self) for where it differs).
pub fn format_term(term: &Term) -> String {
    let mut out = String::new();
    format::write_term(term, &mut out);
    out
}

/// Text that is not a term: what was wrong and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    message: String,
    line: usize,
    column: usize,
    offset: usize,
}

impl SyntaxError {
    /// An error about the text at byte `offset` of `text`.
    pub(crate) fn at(text: &str, offset: usize, message: impl Into<String>) -> SyntaxError {
        let offset = offset.min(text.len());
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        SyntaxError {
            message: message.into(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            offset,
        }
    }

    /// What is wrong, without the position (`expected ',' or ']', found end of input`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The line, counted from 1.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The column in characters (not bytes), counted from 1.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The byte offset into the text, counted from 0.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {}, column {}",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for SyntaxError {}
