//! Byte-level encoding: one tag at a time, in the forms OTP itself emits.

use super::tags;
use super::term::{Pid, Port, Reference};

/// An atom as SMALL_ATOM_UTF8 or ATOM_UTF8. The caller keeps it within 255 characters.
pub fn atom(out: &mut Vec<u8>, text: &str) {
    let len = text.len();
    if len <= 255 {
        out.push(tags::SMALL_ATOM_UTF8);
        out.push(len as u8);
    } else {
        out.push(tags::ATOM_UTF8);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
    out.extend_from_slice(text.as_bytes());
}

/// An integer in the smallest form: SMALL_INTEGER, INTEGER or SMALL_BIG.
pub fn int(out: &mut Vec<u8>, value: i64) {
    if (0..=255).contains(&value) {
        out.push(tags::SMALL_INTEGER);
        out.push(value as u8);
    } else if i32::try_from(value).is_ok() {
        out.push(tags::INTEGER);
        out.extend_from_slice(&(value as i32).to_be_bytes());
    } else {
        let magnitude = value.unsigned_abs().to_le_bytes();
        let significant = 8 - magnitude.iter().rev().take_while(|&&b| b == 0).count();
        big(out, value < 0, &magnitude[..significant]);
    }
}

/// A big integer from sign and little-endian magnitude (no high zero bytes).
pub fn big(out: &mut Vec<u8>, negative: bool, magnitude: &[u8]) {
    if magnitude.len() <= 255 {
        out.push(tags::SMALL_BIG);
        out.push(magnitude.len() as u8);
    } else {
        out.push(tags::LARGE_BIG);
        out.extend_from_slice(&(magnitude.len() as u32).to_be_bytes());
    }
    out.push(negative as u8);
    out.extend_from_slice(magnitude);
}

pub fn float(out: &mut Vec<u8>, value: f64) {
    out.push(tags::NEW_FLOAT);
    out.extend_from_slice(&value.to_bits().to_be_bytes());
}

pub fn binary(out: &mut Vec<u8>, data: &[u8]) {
    binary_header(out, data.len());
    out.extend_from_slice(data);
}

/// The tag and length of a binary, for a writer that places the data itself.
pub fn binary_header(out: &mut Vec<u8>, len: usize) {
    out.push(tags::BINARY);
    out.extend_from_slice(&(len as u32).to_be_bytes());
}

pub fn bit_binary(out: &mut Vec<u8>, data: &[u8], bits: u8) {
    out.push(tags::BIT_BINARY);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.push(bits);
    out.extend_from_slice(data);
}

pub fn tuple_header(out: &mut Vec<u8>, arity: usize) {
    if arity <= 255 {
        out.push(tags::SMALL_TUPLE);
        out.push(arity as u8);
    } else {
        out.push(tags::LARGE_TUPLE);
        out.extend_from_slice(&(arity as u32).to_be_bytes());
    }
}

pub fn nil(out: &mut Vec<u8>) {
    out.push(tags::NIL);
}

/// The header of a LIST_EXT of `len` elements; the elements and the tail follow.
pub fn list_header(out: &mut Vec<u8>, len: usize) {
    out.push(tags::LIST);
    out.extend_from_slice(&(len as u32).to_be_bytes());
}

/// A list of bytes: STRING_EXT when it fits, else a LIST_EXT of small integers (as OTP).
pub fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        nil(out);
    } else if bytes.len() <= u16::MAX as usize {
        out.push(tags::STRING);
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(bytes);
    } else {
        list_header(out, bytes.len());
        for &b in bytes {
            out.push(tags::SMALL_INTEGER);
            out.push(b);
        }
        nil(out);
    }
}

pub fn map_header(out: &mut Vec<u8>, arity: usize) {
    out.push(tags::MAP);
    out.extend_from_slice(&(arity as u32).to_be_bytes());
}

pub fn pid(out: &mut Vec<u8>, pid: &Pid) {
    pid_with(out, pid, |out| atom(out, pid.node.as_str()));
}

/// A pid whose node atom `node` writes (inline, or as an atom-cache reference).
pub fn pid_with(out: &mut Vec<u8>, pid: &Pid, node: impl FnOnce(&mut Vec<u8>)) {
    out.push(tags::NEW_PID);
    node(out);
    out.extend_from_slice(&pid.id.to_be_bytes());
    out.extend_from_slice(&pid.serial.to_be_bytes());
    out.extend_from_slice(&pid.creation.to_be_bytes());
}

pub fn port(out: &mut Vec<u8>, port: &Port) {
    port_with(out, port, |out| atom(out, port.node.as_str()));
}

/// A port whose node atom `node` writes.
pub fn port_with(out: &mut Vec<u8>, port: &Port, node: impl FnOnce(&mut Vec<u8>)) {
    if let Ok(id) = u32::try_from(port.id) {
        out.push(tags::NEW_PORT);
        node(out);
        out.extend_from_slice(&id.to_be_bytes());
    } else {
        out.push(tags::V4_PORT);
        node(out);
        out.extend_from_slice(&port.id.to_be_bytes());
    }
    out.extend_from_slice(&port.creation.to_be_bytes());
}

pub fn reference(out: &mut Vec<u8>, reference: &Reference) {
    reference_with(out, reference, |out| atom(out, reference.node.as_str()));
}

/// A reference whose node atom `node` writes.
pub fn reference_with(out: &mut Vec<u8>, reference: &Reference, node: impl FnOnce(&mut Vec<u8>)) {
    out.push(tags::NEWER_REFERENCE);
    out.extend_from_slice(&(reference.ids.len() as u16).to_be_bytes());
    node(out);
    out.extend_from_slice(&reference.creation.to_be_bytes());
    for id in &reference.ids {
        out.extend_from_slice(&id.to_be_bytes());
    }
}

pub fn export(out: &mut Vec<u8>, module: &str, function: &str, arity: u8) {
    out.push(tags::EXPORT);
    atom(out, module);
    atom(out, function);
    out.push(tags::SMALL_INTEGER);
    out.push(arity);
}

/// Wraps a finished standalone term (`131` + body) as a compressed term (`131, 80, ...`) at
/// zlib `level` (0..=9). Like OTP, keeps the plain form when compressing does not pay.
pub fn compress(term: Vec<u8>, level: u32) -> Vec<u8> {
    use std::io::Write;
    let body = &term[1..];
    let mut out = Vec::with_capacity(body.len() / 2 + 16);
    out.extend_from_slice(&[super::VERSION, tags::COMPRESSED]);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    let mut z = flate2::write::ZlibEncoder::new(out, flate2::Compression::new(level.min(9)));
    z.write_all(body).expect("writing to a Vec");
    let out = z.finish().expect("writing to a Vec");
    if out.len() < term.len() {
        out
    } else {
        term
    }
}
