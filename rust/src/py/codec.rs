//! The Python codec: Python objects straight to and from external-format bytes, with no
//! intermediate [`etf::Term`]. The wire rules come from `etf::reader` / `etf::writer`; rare
//! tags (funs, exports, LOCAL_EXT, unknown tags) go through `etf::decode::decode_term`.
//!
//! The hot paths use the C API directly: exact-type checks by type pointer, borrowed items
//! from `PyDict_Next` / `PyList_GetItem` (the GIL is held throughout and only our own
//! classes' Python code runs meanwhile), and preallocated tuples and lists.

use super::errors::{decode_error, EncodeError};
use super::terms::{self, AtomMaker, PyExport, PyFun, PyPid, PyPort, PyReference, Types};
use crate::etf::decode::{DEFAULT_MAX_INFLATED, STACK_RED_ZONE, STACK_SEGMENT};
use crate::etf::reader::{inflate, Reader, MAX_ATOM_CHARS};
use crate::etf::{self, tags, writer};
use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use std::cell::Cell;
use std::collections::HashSet;
use std::os::raw::c_char;
use std::ptr::addr_of_mut;

extern "C" {
    // Part of the stable ABI only from 3.10, but exported by every CPython 3 (and the abi3
    // build targets 3.9); the alternative, PyUnicode_AsUTF8String, allocates a bytes object.
    fn PyUnicode_AsUTF8AndSize(
        unicode: *mut ffi::PyObject,
        size: *mut ffi::Py_ssize_t,
    ) -> *const c_char;
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

enum DecErr {
    Wire(etf::DecodeError),
    Py(PyErr),
}

impl From<etf::DecodeError> for DecErr {
    fn from(e: etf::DecodeError) -> Self {
        DecErr::Wire(e)
    }
}

impl From<PyErr> for DecErr {
    fn from(e: PyErr) -> Self {
        DecErr::Py(e)
    }
}

impl DecErr {
    fn into_py(self, py: Python<'_>) -> PyErr {
        match self {
            DecErr::Wire(e) => decode_error(py, &e),
            DecErr::Py(e) => e,
        }
    }
}

type DecResult<'py> = Result<Bound<'py, PyAny>, DecErr>;

struct Decoder<'a, 'py> {
    py: Python<'py>,
    /// The whole input, so a map can be decoded again from its start (see `map`).
    data: &'a [u8],
    r: Reader<'a>,
    cache: &'a [etf::Atom],
    types: &'static Types,
    atoms: AtomMaker,
}

/// Takes ownership of a new reference returned by the C API (NULL: the raised exception).
fn owned(py: Python<'_>, ptr: *mut ffi::PyObject) -> Result<Bound<'_, PyAny>, PyErr> {
    unsafe { Bound::from_owned_ptr_or_err(py, ptr) }
}

impl<'a, 'py> Decoder<'a, 'py> {
    /// Decodes `data[start..]` as exactly one term.
    fn run(
        py: Python<'py>,
        data: &'a [u8],
        start: usize,
        cache: &'a [etf::Atom],
    ) -> PyResult<Bound<'py, PyAny>> {
        let types = terms::types(py)?;
        let mut r = Reader::new(data);
        r.bytes(start).map_err(|e| decode_error(py, &e))?;
        let mut d = Decoder {
            py,
            data,
            r,
            cache,
            types,
            atoms: AtomMaker::new(types),
        };
        let term = d.term(false).map_err(|e| e.into_py(py))?;
        if d.r.remaining() != 0 {
            return Err(decode_error(
                py,
                &d.r.error("trailing bytes after the term"),
            ));
        }
        Ok(term)
    }

    /// One term. `key`: inside a map key, where everything must be hashable (lists become
    /// `FrozenList`, maps `FrozenMap`).
    fn term(&mut self, key: bool) -> DecResult<'py> {
        let py = self.py;
        let start = self.r.position();
        let tag = match self.r.peek_u8() {
            Some(tag) => tag,
            None => return Err(self.r.error("truncated input: a term was expected").into()),
        };
        match tag {
            tags::NEW_FUN | tags::EXPORT => return self.via_term(),
            tags::SMALL_TUPLE | tags::LARGE_TUPLE | tags::LIST | tags::MAP => {
                return stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || self.container(key))
            }
            _ => {}
        }
        self.r.u8()?;
        Ok(match tag {
            tags::SMALL_INTEGER => owned(py, unsafe { ffi::PyLong_FromLong(self.r.u8()? as _) })?,
            tags::INTEGER => owned(py, unsafe { ffi::PyLong_FromLong(self.r.i32()? as _) })?,
            tags::SMALL_BIG | tags::LARGE_BIG => {
                let (negative, magnitude) = self.r.big(tag)?;
                big_to_py(py, negative, magnitude)?
            }
            tags::NEW_FLOAT => {
                let f = self.r.f64()?;
                if !f.is_finite() {
                    return Err(self.r.error_at(start, "float is not finite").into());
                }
                owned(py, unsafe { ffi::PyFloat_FromDouble(f) })?
            }
            tags::FLOAT => owned(py, unsafe { ffi::PyFloat_FromDouble(self.r.old_float()?) })?,
            tags::SMALL_ATOM_UTF8 | tags::ATOM_UTF8 | tags::SMALL_ATOM | tags::ATOM => {
                // Known bytes skip the checks and go straight to the cached object. Latin-1
                // bytes name the same atom as UTF-8 ones only when they are ASCII.
                let raw = self.r.atom_bytes(tag)?;
                match raw {
                    b"true" => return Ok(unsafe { Bound::from_borrowed_ptr(py, ffi::Py_True()) }),
                    b"false" => {
                        return Ok(unsafe { Bound::from_borrowed_ptr(py, ffi::Py_False()) })
                    }
                    _ => {}
                }
                let utf8 = matches!(tag, tags::SMALL_ATOM_UTF8 | tags::ATOM_UTF8);
                let known = if utf8 || raw.is_ascii() {
                    self.atoms.cached(py, raw)
                } else {
                    None
                };
                match (raw, known) {
                    (_, Some(atom)) => atom,
                    (_, None) if utf8 => {
                        let text = self.r.utf8_atom_text(raw, start)?;
                        self.atoms.get(py, text)?
                    }
                    (_, None) => {
                        let text = self.r.latin1_atom_text(raw, start)?;
                        self.atoms.get(py, &text)?
                    }
                }
            }
            tags::ATOM_CACHE_REF => {
                let text = self.r.atom_text(tag, self.cache)?;
                match &*text {
                    "true" => unsafe { Bound::from_borrowed_ptr(py, ffi::Py_True()) },
                    "false" => unsafe { Bound::from_borrowed_ptr(py, ffi::Py_False()) },
                    text => self.atoms.get(py, text)?,
                }
            }
            tags::NIL => {
                if key {
                    self.types.frozen_list.bind(py).call0()?
                } else {
                    PyList::empty(py).into_any()
                }
            }
            tags::STRING => {
                let len = self.r.u16()? as usize;
                let bytes = self.r.bytes(len)?;
                owned(py, unsafe {
                    ffi::PyUnicode_DecodeLatin1(
                        bytes.as_ptr().cast(),
                        bytes.len() as ffi::Py_ssize_t,
                        std::ptr::null(),
                    )
                })?
            }
            tags::BINARY => {
                let len = self.r.u32()? as usize;
                PyBytes::new(py, self.r.bytes(len)?).into_any()
            }
            tags::BIT_BINARY => {
                let (data, bits) = self.r.bit_binary()?;
                let data = PyBytes::new(py, data);
                self.types.bit_binary.bind(py).call1((data, bits))?
            }
            tags::PID | tags::NEW_PID => Bound::new(
                py,
                PyPid {
                    pid: self.r.pid(tag, self.cache)?,
                },
            )?
            .into_any(),
            tags::PORT | tags::NEW_PORT | tags::V4_PORT => Bound::new(
                py,
                PyPort {
                    port: self.r.port(tag, self.cache)?,
                },
            )?
            .into_any(),
            tags::REFERENCE | tags::NEW_REFERENCE | tags::NEWER_REFERENCE => Bound::new(
                py,
                PyReference {
                    reference: self.r.reference(tag, self.cache)?,
                },
            )?
            .into_any(),
            _ => {
                // LOCAL_EXT, a nested COMPRESSED, unknown tags: the shared decoder has the
                // wire rule (and the error message) for each.
                let mut r = Reader::new(self.data);
                r.bytes(start)?;
                self.r = r;
                return self.via_term();
            }
        })
    }

    /// Decodes the term at the cursor with the shared [`etf::decode::decode_term`] and
    /// converts the (small, leaf) result: funs and exports.
    fn via_term(&mut self) -> DecResult<'py> {
        let py = self.py;
        let start = self.r.position();
        match etf::decode::decode_term(&mut self.r, self.cache)? {
            etf::Term::Fun(fun) => Ok(Bound::new(py, PyFun { fun })?.into_any()),
            etf::Term::Export {
                module,
                function,
                arity,
            } => Ok(Bound::new(
                py,
                PyExport {
                    module,
                    function,
                    arity,
                },
            )?
            .into_any()),
            _ => Err(self.r.error_at(start, "unexpected term").into()),
        }
    }

    fn container(&mut self, key: bool) -> DecResult<'py> {
        let py = self.py;
        let tag = self.r.u8()?;
        match tag {
            tags::SMALL_TUPLE | tags::LARGE_TUPLE => {
                let arity = if tag == tags::SMALL_TUPLE {
                    self.r.u8()? as u64
                } else {
                    self.r.u32()? as u64
                };
                let n = self.r.check_count(arity, 1, "tuple")?;
                let tuple = owned(py, unsafe { ffi::PyTuple_New(n as ffi::Py_ssize_t) })?;
                for i in 0..n {
                    let item = self.term(key)?;
                    unsafe { ffi::PyTuple_SetItem(tuple.as_ptr(), i as _, item.into_ptr()) };
                }
                Ok(tuple)
            }
            tags::LIST => self.list(key),
            _ => self.map(key),
        }
    }

    fn list(&mut self, key: bool) -> DecResult<'py> {
        let py = self.py;
        let len = self.r.u32()? as u64;
        let n = self.r.check_count(len + 1, 1, "list")? - 1;
        let seq = owned(py, unsafe {
            if key {
                ffi::PyTuple_New(n as ffi::Py_ssize_t)
            } else {
                ffi::PyList_New(n as ffi::Py_ssize_t)
            }
        })?;
        for i in 0..n {
            let item = self.term(key)?.into_ptr();
            unsafe {
                if key {
                    ffi::PyTuple_SetItem(seq.as_ptr(), i as _, item);
                } else {
                    ffi::PyList_SetItem(seq.as_ptr(), i as _, item);
                }
            }
        }
        if self.r.peek_u8() == Some(tags::NIL) {
            self.r.u8()?;
            return if key {
                Ok(self.types.frozen_list.bind(py).call1((seq,))?)
            } else {
                Ok(seq)
            };
        }
        let tail_tag = self.r.peek_u8();
        let tail = self.term(key)?;
        self.join_tail(seq, tail, tail_tag, key)
    }

    /// A list whose tail is not `[]`. OTP always emits the canonical form (an improper
    /// tail that is not a list); other encodings of the same list are folded into it.
    fn join_tail(
        &mut self,
        seq: Bound<'py, PyAny>,
        tail: Bound<'py, PyAny>,
        tail_tag: Option<u8>,
        key: bool,
    ) -> DecResult<'py> {
        let py = self.py;
        let elements = PyList::empty(py);
        for item in seq.try_iter()? {
            elements.append(item?)?;
        }
        let improper = self.types.improper_list.bind(py);
        let proper = if tail_tag == Some(tags::STRING) {
            // [a | "bc"] is the proper list [a, $b, $c].
            for c in tail.str()?.to_cow()?.chars() {
                elements.append(c as u32)?;
            }
            true
        } else if tail.is_instance_of::<PyList>()
            || tail.is_instance(self.types.frozen_list.bind(py))?
        {
            for item in tail.try_iter()? {
                elements.append(item?)?;
            }
            true
        } else if tail.is_instance(improper)? {
            for item in tail.getattr("elements")?.try_iter()? {
                elements.append(item?)?;
            }
            return Ok(improper.call1((elements, tail.getattr("tail")?))?);
        } else {
            false
        };
        if !proper {
            if elements.is_empty() {
                return Ok(tail);
            }
            return Ok(improper.call1((elements, tail))?);
        }
        if key {
            Ok(self
                .types
                .frozen_list
                .bind(py)
                .call1((elements.to_tuple(),))?)
        } else {
            Ok(elements.into_any())
        }
    }

    fn map(&mut self, key: bool) -> DecResult<'py> {
        let py = self.py;
        let arity = self.r.u32()? as u64;
        let n = self.r.check_count(arity, 2, "map")?;
        let body = self.r.position();
        let dict = PyDict::new(py);
        for _ in 0..n {
            let k = self.term(true)?;
            let v = self.term(key)?;
            if unsafe { ffi::PyDict_SetItem(dict.as_ptr(), k.as_ptr(), v.as_ptr()) } < 0 {
                return Err(PyErr::fetch(py).into());
            }
        }
        let dict = if dict.len() == n {
            dict
        } else {
            // Keys that Python finds equal and Erlang does not (1 and 1.0, ...) overwrote each
            // other: decode the pairs again, this time wrapping each later one in ExactKey.
            let mut r = Reader::new(self.data);
            r.bytes(body)?;
            self.r = r;
            self.map_exact(n)?
        };
        if key {
            Ok(self.types.frozen_map.bind(py).call1((dict,))?)
        } else {
            Ok(dict.into_any())
        }
    }

    fn map_exact(&mut self, n: usize) -> Result<Bound<'py, PyDict>, DecErr> {
        let py = self.py;
        let dict = PyDict::new(py);
        for _ in 0..n {
            let at = self.r.position();
            let mut k = self.term(true)?;
            let v = self.term(false)?;
            if dict.contains(&k)? {
                // Erlang refuses a map with two exactly equal keys; so do we.
                let mut mine = Vec::new();
                encode_body(&k, &mut mine)?;
                for existing in dict.keys() {
                    let mut theirs = Vec::new();
                    encode_body(&existing, &mut theirs)?;
                    if theirs == mine {
                        return Err(self.r.error_at(at, "map has a duplicate key").into());
                    }
                }
                k = self.types.exact_key.bind(py).call1((k,))?;
            }
            dict.set_item(k, v)?;
        }
        Ok(dict)
    }
}

/// An integer from SMALL_BIG / LARGE_BIG: through a machine word when it fits.
fn big_to_py<'py>(
    py: Python<'py>,
    negative: bool,
    magnitude: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    let (magnitude, word) = etf::reader::big_magnitude(magnitude);
    if let Some(value) = word {
        if !negative {
            return owned(py, unsafe { ffi::PyLong_FromUnsignedLongLong(value) });
        }
        if value <= 1u64 << 63 {
            let v = (value as i64).wrapping_neg();
            return owned(py, unsafe { ffi::PyLong_FromLongLong(v) });
        }
    }
    let int_type = py.get_type::<pyo3::types::PyInt>();
    let value = int_type.call_method1("from_bytes", (PyBytes::new(py, magnitude), "little"))?;
    if negative {
        value.neg()
    } else {
        Ok(value)
    }
}

/// Decodes a standalone term: `131`, optionally compressed, nothing after it.
pub fn decode_standalone<'py>(
    py: Python<'py>,
    data: &[u8],
    max_inflated: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let mut r = Reader::new(data);
    let version = r.u8().map_err(|e| decode_error(py, &e))?;
    if version != etf::VERSION {
        return Err(decode_error(
            py,
            &r.error_at(0, format!("version byte is {version}, not 131")),
        ));
    }
    if r.peek_u8() != Some(tags::COMPRESSED) {
        return Decoder::run(py, data, 1, &[]);
    }
    let wire = |e: etf::DecodeError| decode_error(py, &e);
    r.u8().map_err(wire)?;
    let inflated = inflate(&mut r, max_inflated).map_err(wire)?;
    if r.remaining() != 0 {
        return Err(wire(r.error("trailing bytes after the compressed term")));
    }
    Decoder::run(py, &inflated, 0, &[])
}

/// Decodes a term without a version byte (as in a distribution message), resolving
/// ATOM_CACHE_REF from `atoms`; nothing may follow it.
pub fn decode_body(py: Python<'_>, body: &[u8], atoms: &[etf::Atom]) -> PyResult<Py<PyAny>> {
    Ok(Decoder::run(py, body, 0, atoms)?.unbind())
}

/// A [`etf::Term`] as a Python object (through its encoding, so the mapping rules live only
/// in this codec).
pub fn term_to_py(py: Python<'_>, term: &etf::Term) -> PyResult<Py<PyAny>> {
    let mut body = Vec::with_capacity(64);
    etf::encode_term_body(term, &mut body);
    decode_body(py, &body, &[])
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

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

struct Encoder<'py, 'o> {
    py: Python<'py>,
    out: &'o mut Vec<u8>,
    types: &'static Types,
    atom_type: *mut ffi::PyTypeObject,
    depth: usize,
    active: HashSet<usize>,
    /// Set by `encode`: big `bytes` are recorded here instead of being copied into `out`.
    splices: Option<Vec<Splice<'py>>>,
}

/// A binary left out of the buffer: its data belongs at `at`.
struct Splice<'py> {
    at: usize,
    data: Bound<'py, PyBytes>,
}

/// `encode` leaves binaries of at least this size out of its buffer and copies them straight
/// from their `bytes` into the result: each of their bytes is copied once instead of twice.
const SPLICE_MIN: usize = 64 * 1024;

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
    fn new<'o>(py: Python<'py>, out: &'o mut Vec<u8>) -> PyResult<Encoder<'py, 'o>> {
        let types = terms::types(py)?;
        Ok(Encoder {
            py,
            out,
            types,
            atom_type: Types::ptr(&types.atom),
            depth: 0,
            active: HashSet::new(),
            splices: None,
        })
    }

    fn bound(&self, obj: *mut ffi::PyObject) -> Bound<'py, PyAny> {
        unsafe { Bound::from_borrowed_ptr(self.py, obj) }
    }

    fn term(&mut self, obj: *mut ffi::PyObject) -> EncResult {
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
    /// list of code points (as OTP encodes such a list).
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
        if self.splices.is_some() && len >= SPLICE_MIN {
            // Only exact `bytes` get here: immutable, and kept alive by the reference.
            writer::binary_header(self.out, len);
            let splice = Splice {
                at: self.out.len(),
                data: self.bound(obj).cast_into_unchecked::<PyBytes>(),
            };
            self.splices.get_or_insert_with(Vec::new).push(splice);
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
        while ffi::PyDict_Next(obj, &mut pos, &mut key, &mut value) != 0 {
            self.term(key)
                .map_err(|e| e.at(|| format!("<key {}>", repr(&self.bound(key)))))?;
            self.term(value)
                .map_err(|e| e.at(|| format!("[{}]", repr(&self.bound(key)))))?;
            seen += 1;
        }
        if seen != n {
            return Err(EncErr::Type(
                "dict changed size while being encoded".into(),
                vec![],
            ));
        }
        Ok(())
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
pub fn encode_body(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    let start = out.len();
    let result = Encoder::new(obj.py(), out)?.term(obj.as_ptr());
    if let Err(e) = result {
        out.truncate(start);
        return Err(e.into_py());
    }
    Ok(())
}

/// A Python object as a [`etf::Term`] (through its encoding, so the mapping rules live only
/// in this codec).
pub fn py_to_term(obj: &Bound<'_, PyAny>) -> PyResult<etf::Term> {
    let mut body = Vec::with_capacity(64);
    encode_body(obj, &mut body)?;
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
) -> PyResult<Bound<'py, PyBytes>> {
    let py = term.py();
    let mut encoder = Encoder::new(py, buf)?;
    encoder.splices = Some(Vec::new());
    let result = encoder.term(term.as_ptr());
    let splices = encoder.splices.take().unwrap_or_default();
    result.map_err(|e| e.into_py())?;
    if splices.is_empty() {
        return Ok(PyBytes::new(py, buf));
    }
    let total = buf.len()
        + splices
            .iter()
            .map(|s| s.data.as_bytes().len())
            .sum::<usize>();
    unsafe {
        // Uninitialised, then filled completely below.
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

/// `encode(term, *, compressed=False) -> bytes`: the term as a standalone external term.
#[pyfunction]
#[pyo3(signature = (term, *, compressed = None))]
pub fn encode<'py>(
    term: &Bound<'py, PyAny>,
    compressed: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let py = term.py();
    let level = compression_level(compressed)?;
    let mut buf = BUFFER.with(Cell::take);
    buf.clear();
    buf.push(etf::VERSION);
    let result = match level {
        None => encode_spliced(term, &mut buf),
        Some(level) => encode_body(term, &mut buf)
            .map(|()| PyBytes::new(py, &writer::compress(buf.clone(), level))),
    };
    if buf.capacity() <= KEEP_BUFFER {
        BUFFER.with(|b| b.set(buf));
    }
    result
}

/// `decode(data, *, max_inflated=...) -> term`: a standalone external term (bytes-like).
#[pyfunction]
#[pyo3(signature = (data, *, max_inflated = DEFAULT_MAX_INFLATED))]
pub fn decode<'py>(data: &Bound<'py, PyAny>, max_inflated: usize) -> PyResult<Bound<'py, PyAny>> {
    let py = data.py();
    if let Ok(bytes) = data.cast::<PyBytes>() {
        return decode_standalone(py, bytes.as_bytes(), max_inflated);
    }
    // bytearray, memoryview, ...: a private copy, which decoding cannot see change.
    let copy = owned(py, unsafe { ffi::PyBytes_FromObject(data.as_ptr()) })?;
    let copy = copy.cast::<PyBytes>().map_err(PyErr::from)?;
    decode_standalone(py, copy.as_bytes(), max_inflated)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add("DEFAULT_MAX_INFLATED", DEFAULT_MAX_INFLATED)?;
    Ok(())
}
