//! Erlang's term order, as map keys are sorted, and the list view that text needs (a list
//! may be spread over [`Term::String`], [`Term::List`] and [`Term::ImproperList`] parts).

use crate::etf::decode::{STACK_RED_ZONE, STACK_SEGMENT};
use crate::etf::term::Term;
use std::cmp::Ordering;

/// Erlang's term order in its exact form, the one map keys are sorted by (what `~p` shows):
/// number < atom < reference < fun < port < pid < tuple < map < `[]` < list < bitstring.
///
/// - integers (of any size) come before floats, whatever their values (`1 < 1.0`,
///   `2 < 1.0`), as in Erlang's map-key order; among themselves each by value, with `-0.0`
///   before `0.0` (distinct terms from OTP 27);
/// - atoms by their text; tuples by size, then element by element; maps by size, then keys
///   in order, then values in key order; lists element by element, a shorter list first;
///   bitstrings bit by bit, a prefix first;
/// - pids, ports and references (Erlang orders these by internals of the node that made
///   them) by node name, then their numbers, then creation; closures before `fun M:F/A`.
///
/// A list of small integers compares the same whether held as [`Term::String`] or
/// [`Term::List`].
pub fn term_order(a: &Term, b: &Term) -> Ordering {
    stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || order(a, b))
}

/// Whether `a` and `b` are the same Erlang term (`=:=`, with `0.0 =/= -0.0` as from OTP 27),
/// whatever their [`Term`] representation (see [`term_order`]).
pub fn exactly_equal(a: &Term, b: &Term) -> bool {
    term_order(a, b) == Ordering::Equal
}

/// One element of a list: a term, or a byte of a [`Term::String`] (the integer it stands for).
#[derive(Clone, Copy)]
pub(super) enum Element<'a> {
    Term(&'a Term),
    Byte(u8),
}

impl Element<'_> {
    /// The element as an integer, if it is one.
    pub(super) fn as_int(&self) -> Option<i64> {
        match self {
            Element::Byte(b) => Some(*b as i64),
            Element::Term(Term::Int(i)) => Some(*i),
            Element::Term(_) => None,
        }
    }
}

/// A list's elements, across tails that are lists themselves, and its tail when it is not
/// `[]`.
pub(super) struct ListView<'a> {
    pub(super) elements: Vec<Element<'a>>,
    pub(super) tail: Option<&'a Term>,
}

/// The list view of `term`, or `None` when it is not a list (`[]` is a list).
pub(super) fn list_view(term: &Term) -> Option<ListView<'_>> {
    if !matches!(
        term,
        Term::List(_) | Term::String(_) | Term::ImproperList(..)
    ) {
        return None;
    }
    let mut elements = Vec::new();
    let mut current = term;
    loop {
        match current {
            Term::List(items) => {
                elements.extend(items.iter().map(Element::Term));
                return Some(ListView {
                    elements,
                    tail: None,
                });
            }
            Term::String(bytes) => {
                elements.extend(bytes.iter().map(|&b| Element::Byte(b)));
                return Some(ListView {
                    elements,
                    tail: None,
                });
            }
            Term::ImproperList(items, tail) => {
                elements.extend(items.iter().map(Element::Term));
                current = tail;
            }
            other => {
                return Some(ListView {
                    elements,
                    tail: Some(other),
                })
            }
        }
    }
}

/// `term`, or the tail an [`Term::ImproperList`] without elements stands for.
pub(super) fn resolve(mut term: &Term) -> &Term {
    while let Term::ImproperList(items, tail) = term {
        if !items.is_empty() {
            break;
        }
        term = tail;
    }
    term
}

/// A bitstring's bytes and its length in bits (the unused low bits of the last byte are
/// masked off when compared).
pub(super) fn bitstring(term: &Term) -> Option<(&[u8], usize)> {
    match term {
        Term::Binary(data) => Some((data, data.len() * 8)),
        Term::BitBinary { data, bits } if (1..8).contains(bits) && !data.is_empty() => {
            Some((data, (data.len() - 1) * 8 + *bits as usize))
        }
        Term::BitBinary { data, .. } => Some((data, data.len() * 8)),
        _ => None,
    }
}

/// Where a term's type stands in the term order.
fn rank(term: &Term) -> u8 {
    match term {
        Term::Int(_) | Term::BigInt(_) | Term::Float(_) => 0,
        Term::Atom(_) => 1,
        Term::Reference(_) => 2,
        Term::Fun(_) | Term::Export { .. } => 3,
        Term::Port(_) => 4,
        Term::Pid(_) => 5,
        Term::Tuple(_) => 6,
        Term::Map(_) => 7,
        Term::List(items) if items.is_empty() => 8,
        Term::String(bytes) if bytes.is_empty() => 8,
        Term::List(_) | Term::String(_) | Term::ImproperList(..) => 9,
        Term::Binary(_) | Term::BitBinary { .. } => 10,
    }
}

fn order(a: &Term, b: &Term) -> Ordering {
    let (a, b) = (resolve(a), resolve(b));
    let by_rank = rank(a).cmp(&rank(b));
    if by_rank != Ordering::Equal {
        return by_rank;
    }
    match (a, b) {
        (Term::Float(x), Term::Float(y)) => x.total_cmp(y),
        (Term::Float(_), _) => Ordering::Greater,
        (_, Term::Float(_)) => Ordering::Less,
        (Term::Int(_) | Term::BigInt(_), _) => integer_order(a, b),
        (Term::Atom(x), Term::Atom(y)) => x.as_str().cmp(y.as_str()),
        (Term::Reference(x), Term::Reference(y)) => x
            .node
            .cmp(&y.node)
            .then_with(|| x.ids.len().cmp(&y.ids.len()))
            .then_with(|| x.ids.iter().rev().cmp(y.ids.iter().rev()))
            .then(x.creation.cmp(&y.creation)),
        (Term::Fun(x), Term::Fun(y)) => x.module.cmp(&y.module).then_with(|| x.raw.cmp(&y.raw)),
        (Term::Fun(_), _) => Ordering::Less,
        (_, Term::Fun(_)) => Ordering::Greater,
        (
            Term::Export {
                module: m1,
                function: f1,
                arity: a1,
            },
            Term::Export {
                module: m2,
                function: f2,
                arity: a2,
            },
        ) => m1.cmp(m2).then_with(|| f1.cmp(f2)).then(a1.cmp(a2)),
        (Term::Port(x), Term::Port(y)) => x
            .node
            .cmp(&y.node)
            .then(x.id.cmp(&y.id))
            .then(x.creation.cmp(&y.creation)),
        (Term::Pid(x), Term::Pid(y)) => x
            .node
            .cmp(&y.node)
            .then(x.id.cmp(&y.id))
            .then(x.serial.cmp(&y.serial))
            .then(x.creation.cmp(&y.creation)),
        (Term::Tuple(x), Term::Tuple(y)) => {
            x.len().cmp(&y.len()).then_with(|| sequence_order(x, y))
        }
        (Term::Map(x), Term::Map(y)) => map_order(x, y),
        (Term::Binary(_) | Term::BitBinary { .. }, _) => {
            let (x, y) = (bitstring(a).expect("ranked"), bitstring(b).expect("ranked"));
            bitstring_order(x, y)
        }
        // Both `[]` or both non-empty lists.
        _ => match (list_view(a), list_view(b)) {
            (Some(x), Some(y)) => list_order(&x, &y),
            _ => unreachable!("every other rank is handled above"),
        },
    }
}

fn sequence_order(x: &[Term], y: &[Term]) -> Ordering {
    x.iter()
        .zip(y)
        .map(|(a, b)| term_order(a, b))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

fn map_order(x: &[(Term, Term)], y: &[(Term, Term)]) -> Ordering {
    let by_size = x.len().cmp(&y.len());
    if by_size.is_ne() {
        return by_size;
    }
    let (x, y) = (sorted_pairs(x), sorted_pairs(y));
    x.iter()
        .zip(&y)
        .map(|(a, b)| term_order(&a.0, &b.0))
        .chain(x.iter().zip(&y).map(|(a, b)| term_order(&a.1, &b.1)))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// A map's pairs in key order (a stable sort: equal keys keep their order).
pub(super) fn sorted_pairs(pairs: &[(Term, Term)]) -> Vec<&(Term, Term)> {
    let mut sorted: Vec<&(Term, Term)> = pairs.iter().collect();
    sorted.sort_by(|a, b| term_order(&a.0, &b.0));
    sorted
}

fn list_order(x: &ListView<'_>, y: &ListView<'_>) -> Ordering {
    for (a, b) in x.elements.iter().zip(&y.elements) {
        let o = element_order(a, b);
        if o.is_ne() {
            return o;
        }
    }
    // What follows the common elements: more elements (a list), a tail, or `[]`.
    let rest_rank = |view: &ListView<'_>, common: usize| match view.tail {
        _ if view.elements.len() > common => 9,
        Some(tail) => rank(tail),
        None => 8,
    };
    let common = x.elements.len().min(y.elements.len());
    let (rx, ry) = (rest_rank(x, common), rest_rank(y, common));
    match (x.tail, y.tail) {
        (Some(tx), Some(ty)) if x.elements.len() == y.elements.len() => term_order(tx, ty),
        _ => rx.cmp(&ry),
    }
}

fn element_order(a: &Element<'_>, b: &Element<'_>) -> Ordering {
    match (a, b) {
        (Element::Byte(x), Element::Byte(y)) => x.cmp(y),
        (Element::Byte(x), Element::Term(t)) => term_order(&Term::Int(*x as i64), t),
        (Element::Term(t), Element::Byte(y)) => term_order(t, &Term::Int(*y as i64)),
        (Element::Term(s), Element::Term(t)) => term_order(s, t),
    }
}

fn bitstring_order((x, x_bits): (&[u8], usize), (y, y_bits): (&[u8], usize)) -> Ordering {
    let common = x_bits.min(y_bits);
    let whole = common / 8;
    let by_bytes = x[..whole].cmp(&y[..whole]);
    if by_bytes.is_ne() {
        return by_bytes;
    }
    let partial = common % 8;
    if partial > 0 {
        let mask = 0xffu8 << (8 - partial);
        let by_bits = (x[whole] & mask).cmp(&(y[whole] & mask));
        if by_bits.is_ne() {
            return by_bits;
        }
    }
    x_bits.cmp(&y_bits)
}

/// Two integers ([`Term::Int`] or [`Term::BigInt`]) by value.
fn integer_order(a: &Term, b: &Term) -> Ordering {
    let (a_negative, a_magnitude) = sign_magnitude(a);
    let (b_negative, b_magnitude) = sign_magnitude(b);
    match (a_negative, b_negative) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (negative, _) => {
            let by_magnitude = a_magnitude
                .len()
                .cmp(&b_magnitude.len())
                .then_with(|| a_magnitude.iter().rev().cmp(b_magnitude.iter().rev()));
            if negative {
                by_magnitude.reverse()
            } else {
                by_magnitude
            }
        }
    }
}

/// Sign and little-endian magnitude without high zero bytes; zero is not negative.
fn sign_magnitude(term: &Term) -> (bool, Vec<u8>) {
    let (negative, mut magnitude) = match term {
        Term::Int(i) => (*i < 0, i.unsigned_abs().to_le_bytes().to_vec()),
        Term::BigInt(b) => (b.negative, b.magnitude.clone()),
        _ => unreachable!("called on integers"),
    };
    while magnitude.last() == Some(&0) {
        magnitude.pop();
    }
    (negative && !magnitude.is_empty(), magnitude)
}
