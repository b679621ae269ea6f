//! A [`Term`] as `io_lib:format("~p", [T])` prints it, on one line.

use super::lex::{is_atom_start, is_name_char, RESERVED, RESERVED_FROM_OTP_27};
use super::natural::Natural;
use super::order::{bitstring, list_view, resolve, sorted_pairs, Element};
use crate::etf::decode::{decode_term, STACK_RED_ZONE, STACK_SEGMENT};
use crate::etf::reader::Reader;
use crate::etf::term::{Atom, Fun, Term};
use std::fmt::Write;

pub(super) fn write_term(term: &Term, out: &mut String) {
    stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || write_inner(term, out))
}

fn write_inner(term: &Term, out: &mut String) {
    match resolve(term) {
        Term::Atom(atom) => write_atom(atom.as_str(), out),
        Term::Int(i) => write!(out, "{i}").expect("writing to a String"),
        Term::BigInt(big) => {
            let magnitude = Natural::from_le_bytes(&big.magnitude);
            if big.negative && !magnitude.is_zero() {
                out.push('-');
            }
            out.push_str(&magnitude.to_decimal());
        }
        Term::Float(f) => write_float(*f, out),
        term @ (Term::Binary(_) | Term::BitBinary { .. }) => {
            write_bitstring(bitstring(term).expect("a bitstring"), out)
        }
        term @ (Term::List(_) | Term::String(_) | Term::ImproperList(..)) => write_list(term, out),
        Term::Tuple(items) => {
            out.push('{');
            write_sequence(items.iter(), out);
            out.push('}');
        }
        Term::Map(pairs) => {
            out.push_str("#{");
            for (i, (key, value)) in sorted_pairs(pairs).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_term(key, out);
                out.push_str(" => ");
                write_term(value, out);
            }
            out.push('}');
        }
        Term::Pid(pid) => {
            out.push('<');
            write_node(&pid.node, false, out);
            write!(out, ".{}.{}>", pid.id, pid.serial).expect("writing to a String");
        }
        Term::Port(port) => {
            out.push_str("#Port<");
            write_node(&port.node, false, out);
            write!(out, ".{}>", port.id).expect("writing to a String");
        }
        Term::Reference(reference) => {
            out.push_str("#Ref<");
            write_node(&reference.node, true, out);
            for word in reference.ids.iter().rev() {
                write!(out, ".{word}").expect("writing to a String");
            }
            out.push('>');
        }
        Term::Export {
            module,
            function,
            arity,
        } => {
            out.push_str("fun ");
            write_atom(module.as_str(), out);
            out.push(':');
            write_atom(function.as_str(), out);
            write!(out, "/{arity}").expect("writing to a String");
        }
        Term::Fun(fun) => write_fun(fun, out),
    }
}

fn write_sequence<'a>(items: impl Iterator<Item = &'a Term>, out: &mut String) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_term(item, out);
    }
}

/// A list: `"text"` when every element is a printable Latin-1 character, else `[a,b|c]`.
fn write_list(term: &Term, out: &mut String) {
    let view = list_view(term).expect("a list");
    let printable = view.tail.is_none()
        && !view.elements.is_empty()
        && view
            .elements
            .iter()
            .all(|e| e.as_int().is_some_and(is_printable));
    if printable {
        out.push('"');
        for element in &view.elements {
            write_char(element.as_int().expect("checked") as u32, '"', out);
        }
        out.push('"');
        return;
    }
    out.push('[');
    for (i, element) in view.elements.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match element {
            Element::Term(t) => write_term(t, out),
            Element::Byte(b) => write!(out, "{b}").expect("writing to a String"),
        }
    }
    if let Some(tail) = view.tail {
        out.push('|');
        write_term(tail, out);
    }
    out.push(']');
}

/// A binary as `<<"text">>` when every byte is printable, else as integers; a bitstring as
/// integers, its last segment with its size (`<<1,2,3:4>>`).
fn write_bitstring((data, bits): (&[u8], usize), out: &mut String) {
    out.push_str("<<");
    let partial = bits % 8;
    if partial == 0 && !data.is_empty() && data.iter().all(|&b| is_printable(b as i64)) {
        out.push('"');
        for &byte in data {
            write_char(byte as u32, '"', out);
        }
        out.push('"');
    } else {
        let whole = bits / 8;
        for (i, byte) in data[..whole].iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write!(out, "{byte}").expect("writing to a String");
        }
        if partial > 0 {
            if whole > 0 {
                out.push(',');
            }
            let value = data[whole] >> (8 - partial);
            write!(out, "{value}:{partial}").expect("writing to a String");
        }
    }
    out.push_str(">>");
}

/// Whether `~p` prints this character inside a string (`io_lib:printable_latin1_list/1`).
fn is_printable(c: i64) -> bool {
    matches!(c, 32..=126 | 160..=255 | 8..=13 | 27)
}

/// One character inside quotes (`quote` is `"` or `'`), escaped as `io_lib` does.
fn write_char(c: u32, quote: char, out: &mut String) {
    let escaped = match c {
        10 => "\\n",
        13 => "\\r",
        9 => "\\t",
        11 => "\\v",
        8 => "\\b",
        12 => "\\f",
        27 => "\\e",
        127 => "\\d",
        92 => "\\\\",
        _ if c == quote as u32 => {
            out.push('\\');
            out.push(quote);
            return;
        }
        0..=31 | 128..=159 => {
            write!(out, "\\{c:03o}").expect("writing to a String");
            return;
        }
        32..=126 | 160..=255 => {
            out.push(char::from_u32(c).expect("Latin-1"));
            return;
        }
        _ => {
            write!(out, "\\x{{{c:X}}}").expect("writing to a String");
            return;
        }
    };
    out.push_str(escaped);
}

/// An atom, quoted when it must be (`io_lib:write_atom/1`).
pub(super) fn write_atom(name: &str, out: &mut String) {
    let bare = name.starts_with(is_atom_start)
        && name.chars().all(is_name_char)
        && !RESERVED.contains(&name)
        && !RESERVED_FROM_OTP_27.contains(&name);
    if bare {
        out.push_str(name);
    } else {
        write_quoted_atom(name, out);
    }
}

fn write_quoted_atom(name: &str, out: &mut String) {
    out.push('\'');
    for c in name.chars() {
        write_char(c as u32, '\'', out);
    }
    out.push('\'');
}

/// The node name of a pid, port or reference: bare when it is a plain `name@host` that reads
/// back as itself, else quoted. A reference's words vary in number, so its node is also
/// quoted when the host ends in a number part (unless the host is an IPv4 address).
fn write_node(node: &Atom, is_reference: bool, out: &mut String) {
    let plain_part = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let numeric = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let bare = match node.as_str().split_once('@') {
        Some((name, host)) => {
            let labels: Vec<&str> = host.split('.').collect();
            let ipv4 = labels.len() == 4 && labels.iter().all(|l| numeric(l));
            plain_part(name)
                && labels.iter().all(|l| plain_part(l))
                && (!is_reference || ipv4 || !numeric(labels[labels.len() - 1]))
        }
        None => false,
    };
    if bare {
        out.push_str(node.as_str());
    } else {
        write_quoted_atom(node.as_str(), out);
    }
}

/// A closure as `erl` prints it, `#Fun<Module.OldIndex.OldUniq>` (not readable as text).
fn write_fun(fun: &Fun, out: &mut String) {
    out.push_str("#Fun<");
    write_atom(fun.module.as_str(), out);
    // The canonical encoding: tag, size (4), arity, uniq (16), index (4), free count (4),
    // module, old index, old uniq, ...
    let old = fun.raw.get(30..).and_then(|rest| {
        let mut reader = Reader::new(rest);
        reader.atom(&[]).ok()?;
        let index = decode_term(&mut reader, &[]).ok()?;
        let uniq = decode_term(&mut reader, &[]).ok()?;
        Some((index, uniq))
    });
    if let Some((index, uniq)) = old {
        out.push('.');
        write_term(&index, out);
        out.push('.');
        write_term(&uniq, out);
    }
    out.push('>');
}

/// A float as `io_lib_format:fwrite_g/1` prints it (OTP 25+): the shortest digits that read
/// back as the same float, written in fixed or scientific notation, whichever is shorter
/// (fixed on a tie), and in scientific notation for whole numbers from 2^53 on.
fn write_float(f: f64, out: &mut String) {
    if !f.is_finite() {
        out.push_str(if f.is_nan() {
            "#Float<nan>"
        } else if f > 0.0 {
            "#Float<inf>"
        } else {
            "#Float<-inf>"
        });
        return;
    }
    if f.is_sign_negative() {
        out.push('-');
    }
    if f == 0.0 {
        out.push_str("0.0");
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `1.2345e-4`, `1e16`.
    let scientific = format!("{:e}", f.abs());
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} has an exponent");
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    let exponent: i64 = exponent.parse().expect("a decimal exponent");
    let len = digits.len() as i64;
    // The value is digits × 10^place.
    let place = exponent - len + 1;
    let exponent_text = exponent.to_string();
    let scientific_len = len + if len == 1 { 2 } else { 1 } + 1 + exponent_text.len() as i64;
    let fixed = if place >= 0 {
        // ddd000.0
        len + place + 2 <= scientific_len && f.abs() < 9_007_199_254_740_992.0
    } else if exponent >= 0 {
        // ddd.ddd: always shorter
        true
    } else {
        // 0.000ddd
        2 - place <= scientific_len
    };
    if fixed {
        if place >= 0 {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', place as usize));
            out.push_str(".0");
        } else if exponent >= 0 {
            let point = (len + place) as usize;
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-place - len) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        out.push_str(if len == 1 { "0" } else { &digits[1..] });
        out.push('e');
        out.push_str(&exponent_text);
    }
}
