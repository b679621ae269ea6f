//! The Python encoder: Python objects straight to external-format bytes, with no
//! intermediate [`etf::Term`]. The wire rules come from `etf::writer`.
//!
//! The hot paths use the C API directly: exact-type checks by type pointer, and borrowed
//! items from `PyDict_Next` / `PyList_GetItem` (the GIL is held throughout and only our own
//! classes' Python code runs meanwhile). Its other half is [`super::decode`].

use super::decode::Strings;
use super::errors::{decode_error, EncodeError};
use super::owned;
use super::terms::{self, PyExport, PyFun, PyPid, PyPort, PyReference, Types};
use crate::etf::decode::{STACK_RED_ZONE, STACK_SEGMENT};
use crate::etf::reader::{Reader, MAX_ATOM_CHARS};
use crate::etf::{self, tags, writer};
use bytes::Bytes;
use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::cell::Cell;
use std::collections::HashSet;
use std::os::raw::c_char;
use std::ptr::{addr_of_mut, NonNull};

extern "C" {
    // Part of the stable ABI only from 3.10, but exported by every CPython 3 (and the abi3
    // build targets 3.9); the alternative, PyUnicode_AsUTF8String, allocates a bytes object.
    fn PyUnicode_AsUTF8AndSize(
        unicode: *mut ffi::PyObject,
        size: *mut ffi::Py_ssize_t,
    ) -> *const c_char;
}

enum EncErr {
    /// No Erlang equivalent: message, and the path to the value (innermost first).
    Type(String, Vec<String>),
    Py(PyErr),
}

impl From<PyErr> for EncErr {
    fn from(e: PyErr) -> Self {
        EncErr::Py(e)
    }
}

impl EncErr {
    /// Adds the position of the failing value inside its container.
    fn at(mut self, segment: impl FnOnce() -> String) -> Self {
        if let EncErr::Type(_, path) = &mut self {
            path.push(segment());
        }
        self
    }

    fn into_py(self) -> PyErr {
        match self {
            EncErr::Type(message, path) => {
                if path.is_empty() {
                    EncodeError::new_err(format!("{message} (the term itself)"))
                } else {
                    let path: String = path.iter().rev().map(String::as_str).collect();
                    EncodeError::new_err(format!("{message} at {path}"))
                }
            }
            EncErr::Py(e) => e,
        }
    }
}

type EncResult = Result<(), EncErr>;

/// Containers deeper than this are tracked, so that a cyclic structure fails instead of
/// growing the stack forever; shallower ones cost nothing.
const TRACK_DEPTH: usize = 10_000;

/// Writes one term. Its methods take objects as raw pointers (the hot path works on the C
/// API). The invariant that makes them sound: every `obj` is a live object, reachable from
/// the term being encoded (which the caller holds) or held by the method passing it, and
/// the GIL is held throughout. Each `unsafe fn` also needs `obj` to be of the type it
/// handles (`term` and `other` check it before the call).
struct Encoder<'py, 'o> {
    py: Python<'py>,
    out: &'o mut Vec<u8>,
    types: &'static Types,
    atom_type: *mut ffi::PyTypeObject,
    depth: usize,
    active: HashSet<usize>,
    /// `bytes` of at least this size are recorded in `splices` instead of being copied into
    /// `out` (`usize::MAX`: none are).
    splice_from: usize,
    splices: Vec<Splice<'py>>,
    /// How a `str` is written (see [`Strings`]).
    strings: Strings,
}

/// A binary left out of the buffer: its data belongs at `at`.
struct Splice<'py> {
    at: usize,
    data: Bound<'py, PyBytes>,
}

/// `encode` leaves binaries of at least this size out of its buffer and copies them straight
/// from their `bytes` into the result: each of their bytes is copied once instead of twice.
const SPLICE_MIN: usize = 64 * 1024;

/// A map key's encoding, for comparing keys: where it is in the output, or, for a list of
/// integers 0..=255 (which Erlang writes as STRING_EXT, and a `str` key may be), that string
/// form.
enum KeyBytes {
    At(usize, usize),
    String(Vec<u8>),
}

impl KeyBytes {
    /// `encoded` starts with the key's encoding, at `start` in the output, and holds nothing
    /// after it.
    fn of(encoded: &[u8], start: usize) -> KeyBytes {
        match string_form(encoded) {
            Some(string) => KeyBytes::String(string),
            None => KeyBytes::At(start, start + encoded.len()),
        }
    }

    fn bytes<'a>(&'a self, out: &'a [u8]) -> &'a [u8] {
        match self {
            KeyBytes::At(start, end) => &out[*start..*end],
            KeyBytes::String(string) => string,
        }
    }
}

/// A LIST_EXT of SMALL_INTEGER_EXTs ending in NIL, as the STRING_EXT Erlang makes of it.
fn string_form(encoded: &[u8]) -> Option<Vec<u8>> {
    let (&tag, rest) = encoded.split_first()?;
    if tag != tags::LIST {
        return None;
    }
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let items = rest.get(4..)?;
    if len > u16::MAX as usize || items.len() != 2 * len + 1 || items[2 * len] != tags::NIL {
        return None;
    }
    let mut string = Vec::with_capacity(3 + len);
    string.push(tags::STRING);
    string.extend_from_slice(&(len as u16).to_be_bytes());
    for item in items[..2 * len].chunks(2) {
        if item[0] != tags::SMALL_INTEGER {
            return None;
        }
        string.push(item[1]);
    }
    Some(string)
}

/// A message sent leaves binaries of at least this size in their `bytes` objects, and its
/// frames are written from there (see [`encode_message`]). Measured (a stream of messages
/// with one binary each to an Erlang sink, the sending process's CPU time per message): the
/// two ways cost the same at 1-2 KiB, sharing half as much from 4 KiB on; below the
/// threshold a binary is copied into the encoded body, as small messages always were.
pub const SEND_SHARED_MIN: usize = 8 * 1024;

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn repr(obj: &Bound<'_, PyAny>) -> String {
    let text = obj
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| format!("<{}>", type_name(obj)));
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// The UTF-8 text of a str (or subclass), borrowed from the object.
///
/// # Safety
/// `obj` is a live str; the text lives as long as it does (the caller picks `'s` so).
unsafe fn utf8<'s>(obj: *mut ffi::PyObject) -> Option<&'s str> {
    let mut size: ffi::Py_ssize_t = 0;
    let data = PyUnicode_AsUTF8AndSize(obj, &mut size);
    if data.is_null() {
        ffi::PyErr_Clear();
        return None;
    }
    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), size as usize);
    Some(std::str::from_utf8_unchecked(bytes))
}

impl<'py> Encoder<'py, '_> {
    fn new<'o>(
        py: Python<'py>,
        out: &'o mut Vec<u8>,
        strings: Strings,
    ) -> PyResult<Encoder<'py, 'o>> {
        let types = terms::types(py)?;
        Ok(Encoder {
            py,
            out,
            types,
            atom_type: Types::ptr(&types.atom),
            depth: 0,
            active: HashSet::new(),
            splice_from: usize::MAX,
            splices: Vec::new(),
            strings,
        })
    }

    fn bound(&self, obj: *mut ffi::PyObject) -> Bound<'py, PyAny> {
        // SAFETY: `obj` is live (the Encoder's invariant); the Bound holds a new reference.
        unsafe { Bound::from_borrowed_ptr(self.py, obj) }
    }

    fn term(&mut self, obj: *mut ffi::PyObject) -> EncResult {
        // SAFETY: `obj` is live (the Encoder's invariant), and each branch hands it to the
        // method for the exact type it has just checked.
        unsafe {
            let tp = ffi::Py_TYPE(obj);
            if tp == self.atom_type {
                self.atom(obj)
            } else if tp == addr_of_mut!(ffi::PyUnicode_Type) {
                self.string(obj)
            } else if tp == addr_of_mut!(ffi::PyLong_Type) {
                self.int(obj)
            } else if tp == addr_of_mut!(ffi::PyFloat_Type) {
                self.float(obj)
            } else if tp == addr_of_mut!(ffi::PyBool_Type) {
                let text = if obj == ffi::Py_True() {
                    "true"
                } else {
                    "false"
                };
                writer::atom(self.out, text);
                Ok(())
            } else if tp == addr_of_mut!(ffi::PyDict_Type) {
                self.nested(obj, |e| e.dict(obj))
            } else if tp == addr_of_mut!(ffi::PyList_Type) {
                self.nested(obj, |e| e.list(obj))
            } else if tp == addr_of_mut!(ffi::PyTuple_Type) {
                self.nested(obj, |e| e.tuple(obj))
            } else if tp == addr_of_mut!(ffi::PyBytes_Type) {
                self.bytes(obj);
                Ok(())
            } else if obj == ffi::Py_None() {
                writer::atom(self.out, "undefined");
                Ok(())
            } else {
                self.other(obj)
            }
        }
    }

    /// Runs `f` one level deeper: on a bigger stack when needed, and with cycle tracking
    /// past [`TRACK_DEPTH`].
    fn nested(
        &mut self,
        obj: *mut ffi::PyObject,
        f: impl FnOnce(&mut Self) -> EncResult,
    ) -> EncResult {
        self.depth += 1;
        let tracked = self.depth > TRACK_DEPTH;
        if tracked && !self.active.insert(obj as usize) {
            self.depth -= 1;
            return Err(EncErr::Type(
                "cannot encode a structure that contains itself".into(),
                Vec::new(),
            ));
        }
        let result = stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || f(self));
        if tracked {
            self.active.remove(&(obj as usize));
        }
        self.depth -= 1;
        result
    }

    unsafe fn atom(&mut self, obj: *mut ffi::PyObject) -> EncResult {
        let text = match utf8(obj) {
            Some(t) => t,
            None => {
                return Err(EncErr::Type(
                    "cannot encode an atom with surrogates".into(),
                    vec![],
                ))
            }
        };
        if text.len() > MAX_ATOM_CHARS && text.chars().count() > MAX_ATOM_CHARS {
            return Err(EncErr::Type(
                "cannot encode an atom longer than 255 characters".into(),
                vec![],
            ));
        }
        writer::atom(self.out, text);
        Ok(())
    }

    /// STRING_EXT when every character is below 256 and there are at most 65535, else a
    /// list of code points (as OTP encodes such a list); with `Strings::Elixir`, a UTF-8
    /// binary.
    unsafe fn string(&mut self, obj: *mut ffi::PyObject) -> EncResult {
        let text = match utf8(obj) {
            Some(t) => t,
            None => {
                return Err(EncErr::Type(
                    "cannot encode a str with surrogates".into(),
                    vec![],
                ))
            }
        };
        if self.strings == Strings::Elixir {
            writer::binary(self.out, text.as_bytes());
            return Ok(());
        }
        if text.is_ascii() {
            writer::string(self.out, text.as_bytes());
            return Ok(());
        }
        let count = text.chars().count();
        if count <= u16::MAX as usize && text.chars().all(|c| (c as u32) < 256) {
            self.out.push(tags::STRING);
            self.out.extend_from_slice(&(count as u16).to_be_bytes());
            self.out.extend(text.chars().map(|c| c as u8));
        } else {
            writer::list_header(self.out, count);
            for c in text.chars() {
                writer::int(self.out, c as i64);
            }
            writer::nil(self.out);
        }
        Ok(())
    }

    unsafe fn int(&mut self, obj: *mut ffi::PyObject) -> EncResult {
        let mut overflow = 0;
        let value = ffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
        if overflow == 0 {
            if value == -1 && !ffi::PyErr_Occurred().is_null() {
                return Err(PyErr::fetch(self.py).into());
            }
            writer::int(self.out, value);
            return Ok(());
        }
        let int = self.bound(obj);
        let negative = overflow < 0;
        let magnitude = if negative { int.neg()? } else { int };
        let bits: usize = magnitude.call_method0("bit_length")?.extract()?;
        let bytes = magnitude.call_method1("to_bytes", (bits.div_ceil(8), "little"))?;
        let bytes = bytes.cast::<PyBytes>().map_err(PyErr::from)?;
        if bytes.as_bytes().len() > u32::MAX as usize {
            return Err(EncErr::Type(
                "cannot encode an int this large".into(),
                vec![],
            ));
        }
        writer::big(self.out, negative, bytes.as_bytes());
        Ok(())
    }

    unsafe fn float(&mut self, obj: *mut ffi::PyObject) -> EncResult {
        let value = ffi::PyFloat_AsDouble(obj);
        if value == -1.0 && !ffi::PyErr_Occurred().is_null() {
            return Err(PyErr::fetch(self.py).into());
        }
        if !value.is_finite() {
            return Err(EncErr::Type(
                format!("cannot encode the float {value} (Erlang floats are finite)"),
                vec![],
            ));
        }
        writer::float(self.out, value);
        Ok(())
    }

    unsafe fn bytes(&mut self, obj: *mut ffi::PyObject) {
        let data = ffi::PyBytes_AsString(obj);
        let len = ffi::PyBytes_Size(obj) as usize;
        if len >= self.splice_from {
            // Only `bytes` (and subclasses) get here: immutable, and kept alive by the
            // reference.
            writer::binary_header(self.out, len);
            let splice = Splice {
                at: self.out.len(),
                data: self.bound(obj).cast_into_unchecked::<PyBytes>(),
            };
            self.splices.push(splice);
            return;
        }
        writer::binary(self.out, std::slice::from_raw_parts(data.cast::<u8>(), len));
    }

    unsafe fn dict(&mut self, obj: *mut ffi::PyObject) -> EncResult {
        let n = ffi::PyDict_Size(obj) as usize;
        writer::map_header(self.out, n);
        let mut pos: ffi::Py_ssize_t = 0;
        let mut key: *mut ffi::PyObject = std::ptr::null_mut();
        let mut value: *mut ffi::PyObject = std::ptr::null_mut();
        let mut seen = 0;
        // Keys Python tells apart may be one term to Erlang, unless they are all of one type
        // among `str`, `int`, `bytes` and `Atom` (two different keys of one of these always
        // encode differently): only then are the keys compared, after the map is written.
        let mut first_type = std::ptr::null_mut();
        let mut mixed = false;
        while ffi::PyDict_Next(obj, &mut pos, &mut key, &mut value) != 0 {
            self.term(key)
                .map_err(|e| e.at(|| format!("<key {}>", repr(&self.bound(key)))))?;
            self.term(value)
                .map_err(|e| e.at(|| format!("[{}]", repr(&self.bound(key)))))?;
            let tp = ffi::Py_TYPE(key);
            if seen == 0 {
                first_type = tp;
                mixed = !self.keys_never_collide(tp);
            } else if tp != first_type {
                mixed = true;
            }
            seen += 1;
        }
        if seen != n {
            return Err(EncErr::Type(
                "dict changed size while being encoded".into(),
                vec![],
            ));
        }
        if mixed && n > 1 {
            return self.check_distinct_keys(obj);
        }
        Ok(())
    }

    /// Whether two different keys of type `tp` always encode differently.
    fn keys_never_collide(&self, tp: *mut ffi::PyTypeObject) -> bool {
        tp == self.atom_type
            || tp == addr_of_mut!(ffi::PyUnicode_Type)
            || tp == addr_of_mut!(ffi::PyLong_Type)
            || tp == addr_of_mut!(ffi::PyBytes_Type)
    }

    fn splice_count(&self) -> usize {
        self.splices.len()
    }

    /// Two keys with one encoding (`None` and `Atom("undefined")`, `1` and `ExactKey(1)`,
    /// `"abc"` and `FrozenList([97, 98, 99])`, ...) are one key to Erlang, which refuses such
    /// a map: so do we. The keys (already written once) are encoded again apart, to compare.
    ///
    /// # Safety
    /// `obj` is a live dict (the Encoder's invariant).
    unsafe fn check_distinct_keys(&mut self, obj: *mut ffi::PyObject) -> EncResult {
        let mut scratch = Vec::new();
        std::mem::swap(self.out, &mut scratch);
        let mut keys = Vec::new();
        let (mut pos, mut key, mut value) = (0, std::ptr::null_mut(), std::ptr::null_mut());
        let mut result = Ok(());
        // SAFETY: the caller's promise; PyDict_Next lends borrowed references.
        while unsafe { ffi::PyDict_Next(obj, &mut pos, &mut key, &mut value) } != 0 {
            let (start, splices) = (self.out.len(), self.splice_count());
            result = self.term(key);
            if result.is_err() {
                break;
            }
            // A spliced key's bytes are not in `out`: such keys (large binaries, see
            // `splice_from`) are left out of the comparison.
            if self.splice_count() == splices {
                keys.push((KeyBytes::of(&self.out[start..], start), key));
            } else {
                self.splices.truncate(splices);
            }
        }
        std::mem::swap(self.out, &mut scratch);
        result?;
        let out = scratch.as_slice();
        fn bytes<'a>(key: &'a (KeyBytes, *mut ffi::PyObject), out: &'a [u8]) -> &'a [u8] {
            key.0.bytes(out)
        }
        let mut sorted: Vec<_> = keys.iter().collect();
        sorted.sort_unstable_by(|a, b| bytes(a, out).cmp(bytes(b, out)));
        let duplicate = sorted
            .windows(2)
            .find(|pair| bytes(pair[0], out) == bytes(pair[1], out));
        match duplicate {
            None => Ok(()),
            Some(pair) => Err(EncErr::Type(
                format!(
                    "dict keys {} and {} are the same term in Erlang",
                    repr(&self.bound(pair[0].1)),
                    repr(&self.bound(pair[1].1))
                ),
                vec![],
            )),
        }
    }

    unsafe fn list(&mut self, obj: *mut ffi::PyObject) -> EncResult {
        let n = ffi::PyList_Size(obj) as usize;
        if n > 0 {
            writer::list_header(self.out, n);
            for i in 0..n {
                let item = ffi::PyList_GetItem(obj, i as ffi::Py_ssize_t);
                if item.is_null() {
                    ffi::PyErr_Clear();
                    return Err(EncErr::Type(
                        "list changed size while being encoded".into(),
                        vec![],
                    ));
                }
                self.term(item).map_err(|e| e.at(|| format!("[{i}]")))?;
            }
        }
        writer::nil(self.out);
        if ffi::PyList_Size(obj) as usize != n {
            return Err(EncErr::Type(
                "list changed size while being encoded".into(),
                vec![],
            ));
        }
        Ok(())
    }

    unsafe fn tuple(&mut self, obj: *mut ffi::PyObject) -> EncResult {
        let n = ffi::PyTuple_Size(obj) as usize;
        writer::tuple_header(self.out, n);
        for i in 0..n {
            let item = ffi::PyTuple_GetItem(obj, i as ffi::Py_ssize_t);
            self.term(item).map_err(|e| e.at(|| format!("[{i}]")))?;
        }
        Ok(())
    }

    /// Everything but the exact builtin types: our own classes, then subclasses of builtins.
    unsafe fn other(&mut self, obj: *mut ffi::PyObject) -> EncResult {
        let py = self.py;
        let b = self.bound(obj);
        let t = self.types;
        if let Ok(pid) = b.cast::<PyPid>() {
            writer::pid(self.out, &pid.get().pid);
        } else if let Ok(r) = b.cast::<PyReference>() {
            writer::reference(self.out, &r.get().reference);
        } else if let Ok(p) = b.cast::<PyPort>() {
            writer::port(self.out, &p.get().port);
        } else if let Ok(f) = b.cast::<PyFun>() {
            self.out.extend_from_slice(&f.get().fun.raw);
        } else if let Ok(x) = b.cast::<PyExport>() {
            let x = x.get();
            writer::export(self.out, x.module.as_str(), x.function.as_str(), x.arity);
        } else if b.is_instance(t.atom.bind(py))? {
            return self.atom(obj);
        } else if b.is_instance(t.frozen_list.bind(py))? {
            let items = b.getattr("_items")?;
            return self.nested(obj, |e| e.list_items(&items));
        } else if b.is_instance(t.frozen_map.bind(py))? {
            let dict = b.getattr("_dict")?;
            return self.nested(obj, |e| e.dict(dict.as_ptr()));
        } else if b.is_instance(t.exact_key.bind(py))? {
            let value = b.getattr("value")?;
            return self.term(value.as_ptr());
        } else if b.is_instance(t.improper_list.bind(py))? {
            return self.nested(obj, |e| e.improper(&b));
        } else if b.is_instance(t.bit_binary.bind(py))? {
            let data = b.getattr("data")?;
            let data = data.cast::<PyBytes>().map_err(PyErr::from)?;
            let bits: u8 = b.getattr("bits")?.extract()?;
            if data.as_bytes().is_empty() || !(1..=8).contains(&bits) {
                return Err(EncErr::Type(
                    "cannot encode a BitBinary with no data or bits not in 1..8".into(),
                    vec![],
                ));
            }
            writer::bit_binary(self.out, data.as_bytes(), bits);
        } else if ffi::PyUnicode_Check(obj) != 0 {
            return self.string(obj);
        } else if ffi::PyLong_Check(obj) != 0 {
            return self.int(obj);
        } else if ffi::PyFloat_Check(obj) != 0 {
            return self.float(obj);
        } else if ffi::PyBytes_Check(obj) != 0 {
            self.bytes(obj);
        } else if ffi::PyDict_Check(obj) != 0 {
            return self.nested(obj, |e| e.dict(obj));
        } else if ffi::PyList_Check(obj) != 0 {
            return self.nested(obj, |e| e.list(obj));
        } else if ffi::PyTuple_Check(obj) != 0 {
            return self.nested(obj, |e| e.tuple(obj));
        } else if ffi::PyByteArray_Check(obj) != 0 || ffi::PyMemoryView_Check(obj) != 0 {
            let copy = owned(py, ffi::PyBytes_FromObject(obj))?;
            self.bytes(copy.as_ptr());
        } else {
            return Err(EncErr::Type(
                format!("cannot encode an object of type '{}'", type_name(&b)),
                vec![],
            ));
        }
        Ok(())
    }

    /// The items of a `FrozenList` (a tuple) as a proper list.
    fn list_items(&mut self, items: &Bound<'py, PyAny>) -> EncResult {
        let items = items.cast::<PyTuple>().map_err(PyErr::from)?;
        if !items.is_empty() {
            writer::list_header(self.out, items.len());
            for (i, item) in items.iter().enumerate() {
                self.term(item.as_ptr())
                    .map_err(|e| e.at(|| format!("[{i}]")))?;
            }
        }
        writer::nil(self.out);
        Ok(())
    }

    fn improper(&mut self, b: &Bound<'py, PyAny>) -> EncResult {
        let elements = b.getattr("elements")?;
        let elements = elements.cast::<PyList>().map_err(PyErr::from)?.to_tuple();
        if elements.is_empty() {
            return Err(EncErr::Type(
                "cannot encode an ImproperList with no elements".into(),
                vec![],
            ));
        }
        writer::list_header(self.out, elements.len());
        for (i, item) in elements.iter().enumerate() {
            self.term(item.as_ptr())
                .map_err(|e| e.at(|| format!("[{i}]")))?;
        }
        let tail = b.getattr("tail")?;
        self.term(tail.as_ptr())
            .map_err(|e| e.at(|| ".tail".into()))
    }
}

/// Appends the term without a version byte. On error, `out` is left as it was.
pub fn encode_body(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>, strings: Strings) -> PyResult<()> {
    let start = out.len();
    let result = Encoder::new(obj.py(), out, strings)?.term(obj.as_ptr());
    if let Err(e) = result {
        out.truncate(start);
        return Err(e.into_py());
    }
    Ok(())
}

/// A message encoded for sending (a term body, no version byte).
pub enum MessageBody {
    /// The body, in one buffer.
    Whole(Vec<u8>),
    /// The body in segments, one after the other: the encoded term around its binaries of
    /// at least [`SEND_SHARED_MIN`] bytes, which are shares of their `bytes` objects' memory.
    Segments(Vec<Bytes>),
}

/// Encodes a message for sending: binaries of at least [`SEND_SHARED_MIN`] bytes are not
/// copied but left in their `bytes` objects, which the segments hold until written.
pub fn encode_message(obj: &Bound<'_, PyAny>, strings: Strings) -> PyResult<MessageBody> {
    let mut body = Vec::with_capacity(64);
    let mut encoder = Encoder::new(obj.py(), &mut body, strings)?;
    encoder.splice_from = SEND_SHARED_MIN;
    let result = encoder.term(obj.as_ptr());
    let splices = std::mem::take(&mut encoder.splices);
    result.map_err(|e| e.into_py())?;
    if splices.is_empty() {
        return Ok(MessageBody::Whole(body));
    }
    let body = Bytes::from(body);
    let mut segments = Vec::with_capacity(2 * splices.len() + 1);
    let mut from = 0;
    for splice in splices {
        if splice.at > from {
            segments.push(body.slice(from..splice.at));
        }
        segments.push(Bytes::from_owner(SharedBytes::new(splice.data)));
        from = splice.at;
    }
    if body.len() > from {
        segments.push(body.slice(from..));
    }
    Ok(MessageBody::Segments(segments))
}

/// A `bytes` object's data as the owner of a [`Bytes`]: frames are written from the object's
/// own memory, on whatever thread writes them, with or without the GIL.
struct SharedBytes {
    /// Keeps the object, and so its data, alive. Dropped without the GIL (by the writer
    /// task), PyO3 defers the decref to the next time a thread attaches.
    _object: Py<PyBytes>,
    data: NonNull<u8>,
    len: usize,
}

impl SharedBytes {
    fn new(object: Bound<'_, PyBytes>) -> SharedBytes {
        let data = object.as_bytes();
        SharedBytes {
            data: NonNull::from(data).cast(),
            len: data.len(),
            _object: object.unbind(),
        }
    }
}

// SAFETY: `data` and `len` are the buffer of the `bytes` object `_object` holds a strong
// reference to. That buffer is part of the object (`ob_sval`): it neither moves nor is freed
// while the object lives, which the reference ensures for as long as this owner exists. A
// `bytes` object never changes once made (the C API resizes only a new object no one else
// has seen yet, and ours has been seen), so reading the buffer needs no GIL and races with
// nothing: any thread may hold this and read through it.
unsafe impl Send for SharedBytes {}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: see `unsafe impl Send for SharedBytes`: `len` bytes at `data`, alive and
        // unchanging while `self` is.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }
}

/// A Python object as a [`etf::Term`] (through its encoding, so the mapping rules live only
/// in this codec).
pub fn py_to_term(obj: &Bound<'_, PyAny>, strings: Strings) -> PyResult<etf::Term> {
    let mut body = Vec::with_capacity(64);
    encode_body(obj, &mut body, strings)?;
    let mut r = Reader::new(&body);
    etf::decode::decode_term(&mut r, &[]).map_err(|e| decode_error(obj.py(), &e))
}

thread_local! {
    /// The output buffer of `encode`, kept between calls so its capacity is reused.
    static BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Buffers bigger than this are not kept between calls.
const KEEP_BUFFER: usize = 4 << 20;

/// zlib level for `compressed=True` (OTP's default).
const DEFAULT_LEVEL: u32 = 6;

fn compression_level(compressed: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u32>> {
    let Some(c) = compressed else { return Ok(None) };
    if c.is_none() {
        return Ok(None);
    }
    if let Ok(flag) = c.cast::<pyo3::types::PyBool>() {
        return Ok(flag.is_true().then_some(DEFAULT_LEVEL));
    }
    match c.extract::<u32>() {
        Ok(level) if level <= 9 => Ok(Some(level)),
        _ => Err(PyValueError::new_err(
            "compressed must be True, False or a zlib level 0..9",
        )),
    }
}

/// Encodes into `buf` with big binaries left out, then copies the buffer's pieces and those
/// binaries into one new `bytes`.
fn encode_spliced<'py>(
    term: &Bound<'py, PyAny>,
    buf: &mut Vec<u8>,
    strings: Strings,
) -> PyResult<Bound<'py, PyBytes>> {
    let py = term.py();
    let mut encoder = Encoder::new(py, buf, strings)?;
    encoder.splice_from = SPLICE_MIN;
    let result = encoder.term(term.as_ptr());
    let splices = std::mem::take(&mut encoder.splices);
    result.map_err(|e| e.into_py())?;
    if splices.is_empty() {
        return Ok(PyBytes::new(py, buf));
    }
    let total = buf.len()
        + splices
            .iter()
            .map(|s| s.data.as_bytes().len())
            .sum::<usize>();
    // SAFETY: a new bytes object of `total` uninitialised bytes, filled completely below:
    // the buffer's pieces and the spliced binaries add up to `total`, each copied from a
    // live buffer into its own part of `out`; the copied `bytes` are immutable.
    unsafe {
        let out = owned(
            py,
            ffi::PyBytes_FromStringAndSize(std::ptr::null(), total as ffi::Py_ssize_t),
        )?;
        let mut dst = ffi::PyBytes_AsString(out.as_ptr()).cast::<u8>();
        let mut from = 0;
        for splice in &splices {
            let head = &buf[from..splice.at];
            std::ptr::copy_nonoverlapping(head.as_ptr(), dst, head.len());
            dst = dst.add(head.len());
            let data = splice.data.as_bytes();
            std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
            dst = dst.add(data.len());
            from = splice.at;
        }
        let tail = &buf[from..];
        std::ptr::copy_nonoverlapping(tail.as_ptr(), dst, tail.len());
        Ok(out.cast_into_unchecked::<PyBytes>())
    }
}

/// `term` in the external term format, as `term_to_binary/1` writes it (starts with 131):
/// Erlang reads it with `binary_to_term/1`. docs/types.md has how each type is written.
///
/// `compressed`: True (zlib level 6, as OTP) or a level 0..9; the plain form is kept when it
/// is smaller. False or None (the default): plain. `strings` says how a `str` is written:
/// `"str"` (None, the default) and `"erlang"` as a list of character codes (a STRING_EXT
/// when it can), `"elixir"` as a UTF-8 binary.
///
/// >>> encode((Atom("ok"), [1, 2]))
/// b'\x83h\x02w\x02okl\x00\x00\x00\x02a\x01a\x02j'
/// >>> encode("hi"), encode("hi", strings="elixir")
/// (b'\x83k\x00\x02hi', b'\x83m\x00\x00\x00\x02hi')
/// >>> len(encode(b"a" * 1000)), len(encode(b"a" * 1000, compressed=True))
/// (1006, 36)
#[pyfunction]
#[pyo3(signature = (term, *, compressed = None, strings = None))]
pub fn encode<'py>(
    term: &Bound<'py, PyAny>,
    compressed: Option<&Bound<'py, PyAny>>,
    strings: Option<&str>,
) -> PyResult<Bound<'py, PyBytes>> {
    let py = term.py();
    let level = compression_level(compressed)?;
    let strings = Strings::from_name(strings)?;
    let mut buf = BUFFER.with(Cell::take);
    buf.clear();
    buf.push(etf::VERSION);
    let result = match level {
        None => encode_spliced(term, &mut buf, strings),
        Some(level) => encode_body(term, &mut buf, strings)
            .map(|()| PyBytes::new(py, &writer::compress(buf.clone(), level))),
    };
    if buf.capacity() <= KEEP_BUFFER {
        BUFFER.with(|b| b.set(buf));
    }
    result
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    Ok(())
}
