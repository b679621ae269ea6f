//! The [`Term`] type: an Erlang term as plain Rust data.

use bytes::Bytes;
use std::fmt;
use std::sync::Arc;

/// An atom. Cheap to clone; compares by text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Atom(Arc<str>);

impl Atom {
    pub fn new(text: &str) -> Atom {
        Atom(Arc::from(text))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Atom {
    fn from(text: &str) -> Atom {
        Atom::new(text)
    }
}

impl fmt::Debug for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}'", self.0)
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An integer outside `i64`: sign and magnitude, little-endian, without high zero bytes
/// (exactly the SMALL_BIG/LARGE_BIG payload).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BigInt {
    pub negative: bool,
    pub magnitude: Vec<u8>,
}

/// A process identifier. `id` and `serial` are full 32-bit values (V4_NC).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    pub node: Atom,
    pub id: u32,
    pub serial: u32,
    pub creation: u32,
}

/// A port identifier (NEW_PORT_EXT / V4_PORT_EXT).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    pub node: Atom,
    pub id: u64,
    pub creation: u32,
}

/// A reference: up to 5 32-bit words, kept exactly as received.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub node: Atom,
    pub creation: u32,
    pub ids: Vec<u32>,
}

/// A closure (NEW_FUN_EXT), opaque: its canonical encoding (tag included, no atom-cache
/// references), which goes back out unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fun {
    pub module: Atom,
    pub arity: u8,
    pub raw: Bytes,
}

impl Fun {
    /// Encodes a fun from its decoded fields.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        arity: u8,
        uniq: [u8; 16],
        index: u32,
        module: &Atom,
        old_index: &Term,
        old_uniq: &Term,
        pid: &Term,
        free: &[Term],
    ) -> Fun {
        use super::{encode::encode_term_body, writer};
        let mut out = vec![super::tags::NEW_FUN, 0, 0, 0, 0, arity];
        out.extend_from_slice(&uniq);
        out.extend_from_slice(&index.to_be_bytes());
        out.extend_from_slice(&(free.len() as u32).to_be_bytes());
        writer::atom(&mut out, module.as_str());
        encode_term_body(old_index, &mut out);
        encode_term_body(old_uniq, &mut out);
        encode_term_body(pid, &mut out);
        for term in free {
            encode_term_body(term, &mut out);
        }
        let size = (out.len() - 1) as u32;
        out[1..5].copy_from_slice(&size.to_be_bytes());
        Fun {
            module: module.clone(),
            arity,
            raw: Bytes::from(out),
        }
    }
}

/// An Erlang term.
///
/// The representation keeps what `=:=` can tell apart: a STRING_EXT list stays a
/// [`Term::String`] (it is a list of small integers to Erlang), and integers are `i64`
/// when they fit and [`BigInt`] otherwise.
#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    Atom(Atom),
    Int(i64),
    BigInt(BigInt),
    Float(f64),
    Binary(Bytes),
    /// A bitstring whose last byte holds `bits` (1..=8) significant bits, high bits first.
    BitBinary {
        data: Bytes,
        bits: u8,
    },
    /// A proper list; the empty list is `List(vec![])`.
    List(Vec<Term>),
    /// A list of bytes sent as STRING_EXT.
    String(Vec<u8>),
    /// A list whose tail is not `[]`: elements (at least one) and the tail.
    ImproperList(Vec<Term>, Box<Term>),
    Tuple(Vec<Term>),
    /// Key/value pairs in the order they were decoded.
    Map(Vec<(Term, Term)>),
    Pid(Pid),
    Port(Port),
    Reference(Reference),
    Export {
        module: Atom,
        function: Atom,
        arity: u8,
    },
    Fun(Fun),
}

impl Term {
    pub fn atom(text: &str) -> Term {
        Term::Atom(Atom::new(text))
    }

    pub fn tuple(items: Vec<Term>) -> Term {
        Term::Tuple(items)
    }

    pub fn nil() -> Term {
        Term::List(Vec::new())
    }

    /// The atom's text, if this is an atom.
    pub fn as_atom(&self) -> Option<&str> {
        match self {
            Term::Atom(a) => Some(a.as_str()),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Term::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_tuple(&self) -> Option<&[Term]> {
        match self {
            Term::Tuple(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_pid(&self) -> Option<&Pid> {
        match self {
            Term::Pid(p) => Some(p),
            _ => None,
        }
    }

    pub fn as_reference(&self) -> Option<&Reference> {
        match self {
            Term::Reference(r) => Some(r),
            _ => None,
        }
    }

    /// Drops the term without recursing. An ordinary drop (like `==`, `clone` and `{:?}`)
    /// recurses once per level of nesting, so a term nested a few tens of thousands deep, which
    /// a peer can send in a few hundred kilobytes, would overflow the thread's stack; code that
    /// may hold such a term drops it with this instead.
    pub fn drop_flat(self) {
        if !self.has_elements() {
            return;
        }
        let mut pending = vec![self];
        while let Some(term) = pending.pop() {
            match term {
                Term::List(items) | Term::Tuple(items) => pending.extend(items),
                Term::ImproperList(items, tail) => {
                    pending.extend(items);
                    pending.push(*tail);
                }
                Term::Map(pairs) => pending.extend(pairs.into_iter().flat_map(|(k, v)| [k, v])),
                _ => {}
            }
        }
    }

    /// Whether containers (lists, tuples, maps) nest more than `limit` deep in the term
    /// (`{[1]}` nests 2 deep); found without recursing.
    pub fn nests_deeper_than(&self, limit: usize) -> bool {
        let mut pending = vec![(self, 0)];
        while let Some((term, depth)) = pending.pop() {
            if !term.has_elements() {
                continue;
            }
            if depth == limit {
                return true;
            }
            let inner = depth + 1;
            match term {
                Term::List(items) | Term::Tuple(items) => {
                    pending.extend(items.iter().map(|t| (t, inner)));
                }
                Term::ImproperList(items, tail) => {
                    pending.extend(items.iter().map(|t| (t, inner)));
                    pending.push((tail, inner));
                }
                Term::Map(pairs) => {
                    pending.extend(pairs.iter().flat_map(|(k, v)| [(k, inner), (v, inner)]));
                }
                _ => {}
            }
        }
        false
    }

    /// A container with at least one element.
    fn has_elements(&self) -> bool {
        match self {
            Term::List(items) | Term::Tuple(items) => !items.is_empty(),
            Term::ImproperList(..) => true,
            Term::Map(pairs) => !pairs.is_empty(),
            _ => false,
        }
    }
}

impl From<Atom> for Term {
    fn from(a: Atom) -> Term {
        Term::Atom(a)
    }
}

impl From<Pid> for Term {
    fn from(p: Pid) -> Term {
        Term::Pid(p)
    }
}

impl From<Reference> for Term {
    fn from(r: Reference) -> Term {
        Term::Reference(r)
    }
}

impl From<i64> for Term {
    fn from(i: i64) -> Term {
        Term::Int(i)
    }
}
