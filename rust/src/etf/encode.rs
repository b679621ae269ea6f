//! Whole terms from [`Term`] into bytes.

use super::term::Term;
use super::writer;

/// Encodes a standalone external term (`131` + term).
pub fn encode(term: &Term) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(term, &mut out);
    out
}

/// Appends `131` and the term to `out`.
pub fn encode_into(term: &Term, out: &mut Vec<u8>) {
    out.push(super::VERSION);
    encode_term_body(term, out);
}

/// Appends the term without a version byte (the form used inside a distribution header).
pub fn encode_term_body(term: &Term, out: &mut Vec<u8>) {
    stacker::maybe_grow(
        super::decode::STACK_RED_ZONE,
        super::decode::STACK_SEGMENT,
        || encode_inner(term, out),
    )
}

/// The term without a version byte, in a new vector: the form a message body takes in a
/// distribution frame.
pub fn term_body(term: &Term) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_term_body(term, &mut out);
    out
}

fn encode_inner(term: &Term, out: &mut Vec<u8>) {
    match term {
        Term::Atom(a) => writer::atom(out, a.as_str()),
        Term::Int(i) => writer::int(out, *i),
        Term::BigInt(b) => writer::big(out, b.negative, &b.magnitude),
        Term::Float(f) => writer::float(out, *f),
        Term::Binary(b) => writer::binary(out, b),
        Term::BitBinary { data, bits } => writer::bit_binary(out, data, *bits),
        Term::List(items) => {
            if !items.is_empty() {
                writer::list_header(out, items.len());
                for item in items {
                    encode_term_body(item, out);
                }
            }
            writer::nil(out);
        }
        Term::String(bytes) => writer::string(out, bytes),
        Term::ImproperList(items, tail) => {
            writer::list_header(out, items.len());
            for item in items {
                encode_term_body(item, out);
            }
            encode_term_body(tail, out);
        }
        Term::Tuple(items) => {
            writer::tuple_header(out, items.len());
            for item in items {
                encode_term_body(item, out);
            }
        }
        Term::Map(pairs) => {
            writer::map_header(out, pairs.len());
            for (k, v) in pairs {
                encode_term_body(k, out);
                encode_term_body(v, out);
            }
        }
        Term::Pid(p) => writer::pid(out, p),
        Term::Port(p) => writer::port(out, p),
        Term::Reference(r) => writer::reference(out, r),
        Term::Export {
            module,
            function,
            arity,
        } => writer::export(out, module.as_str(), function.as_str(), *arity),
        Term::Fun(f) => out.extend_from_slice(&f.raw),
    }
}
