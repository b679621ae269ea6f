//! The External Term Format: Erlang's binary encoding of terms.
//!
//! Pure: no I/O and no Python. See
//! <https://www.erlang.org/doc/apps/erts/erl_ext_dist.html>.
//!
//! - [`term`]: the [`Term`] type and the identifiers (pids, ports, references) it carries.
//! - [`reader`] / [`writer`]: the byte-level pieces (one tag at a time, every length checked
//!   against the input). Both the [`Term`] codec and the Python codec are built on them, so the
//!   wire rules live in one place.
//! - [`decode`] / [`encode`]: whole terms to and from [`Term`].
//! - [`syntax`]: terms as Erlang text: [`parse_term`] reads the literal subset of Erlang's
//!   syntax, [`format_term`] prints what `io_lib:format("~p", [T])` prints.

pub mod decode;
pub mod encode;
pub mod reader;
pub mod scan;
pub mod syntax;
pub mod tags;
pub mod term;
pub mod writer;

#[cfg(test)]
mod tests;

pub use decode::{decode, decode_with, DecodeOptions};
pub use encode::{encode, encode_into, encode_term_body, term_body};
pub use reader::DecodeError;
pub use syntax::{format_term, parse_term, SyntaxError};
pub use term::{Atom, BigInt, Fun, Pid, Port, Reference, Term};

/// The version byte that starts every standalone external term.
pub const VERSION: u8 = 131;
