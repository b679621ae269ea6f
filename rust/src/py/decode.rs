//! The Python decoder: external-format bytes straight to Python objects, with no
//! intermediate [`etf::Term`]. The wire rules come from `etf::reader`; rare tags (funs,
//! exports, LOCAL_EXT, unknown tags) go through `etf::decode::decode_term`.
//!
//! The hot paths use the C API directly: preallocated tuples and lists filled in place, and
//! cached atom objects (the GIL is held throughout and only our own classes' Python code
//! runs meanwhile). Its other half is [`super::encode`].

use super::encode::encode_body;
use super::errors::decode_error;
use super::landing::PyLanding;
use super::owned;
use super::terms::{self, AtomMaker, PyExport, PyFun, PyPid, PyPort, PyReference, Types};
use crate::dist::packet::bulk::{Bulk, BULK_MIN};
use crate::etf::decode::{DEFAULT_MAX_INFLATED, STACK_RED_ZONE, STACK_SEGMENT};
use crate::etf::reader::{inflate, Reader};
use crate::etf::{self, tags};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

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

/// How Erlang text arrives in Python and how a Python `str` goes back: the `strings=` of
/// `Node`, `decode` and `encode`. Every mode keeps `encode(decode(b))` `=:=` to `b`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strings {
    /// `"str"`: every list sent as STRING_EXT is a `str` (one char per byte), a binary is
    /// `bytes`; a `str` encodes as a list (STRING_EXT when its chars are all below 256).
    #[default]
    Str,
    /// `"erlang"`: as `Str`, but a STRING_EXT list is a `str` only when
    /// `io_lib:printable_list/1` calls it text (as `~p` prints it), else a `list` of ints.
    Erlang,
    /// `"elixir"`: a binary that is valid UTF-8 is a `str`, every list a `list`; a `str`
    /// encodes as a UTF-8 binary (an Elixir string).
    Elixir,
}

impl Strings {
    /// The mode named `name` (None: the default).
    pub fn from_name(name: Option<&str>) -> PyResult<Strings> {
        match name {
            None | Some("str") => Ok(Strings::Str),
            Some("erlang") => Ok(Strings::Erlang),
            Some("elixir") => Ok(Strings::Elixir),
            Some(other) => Err(pyo3::exceptions::PyValueError::new_err(format!(
                "strings must be 'str', 'erlang' or 'elixir', not {other:?}"
            ))),
        }
    }

    /// The mode's name, as `from_name` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Strings::Str => "str",
            Strings::Erlang => "erlang",
            Strings::Elixir => "elixir",
        }
    }
}

/// Whether `io_lib:printable_list/1` (in OTP's default Latin-1 printable range) calls this
/// list of bytes text: the printable Latin-1 characters and the usual escapes.
fn printable_latin1(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| PRINTABLE_LATIN1[b as usize])
}

/// The bytes of [`printable_latin1`]: $\s..$~, 160..255, and \n \r \t \v \b \f \e.
static PRINTABLE_LATIN1: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] =
            matches!(b, 0x20..=0x7e | 0xa0..=0xff | 0x0a | 0x0d | 0x09 | 0x0b | 0x08 | 0x0c | 0x1b);
        b += 1;
    }
    table
};

struct Decoder<'a, 'py> {
    py: Python<'py>,
    /// The whole input, so a map can be decoded again from its start (see `map`).
    data: &'a [u8],
    r: Reader<'a>,
    cache: &'a [etf::Atom],
    types: &'static Types,
    atoms: AtomMaker,
    strings: Strings,
    /// Large binaries kept out of `data` (a received message's; see `dist::packet::bulk`).
    bulks: &'a [Bulk],
}

impl<'a, 'py> Decoder<'a, 'py> {
    /// Decodes `data[start..]` as exactly one term.
    fn run(
        py: Python<'py>,
        data: &'a [u8],
        start: usize,
        cache: &'a [etf::Atom],
        strings: Strings,
        bulks: &'a [Bulk],
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
            strings,
            bulks,
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
            tags::SMALL_INTEGER => int_object(py, self.r.u8()? as _)?,
            tags::INTEGER => int_object(py, self.r.i32()? as _)?,
            tags::SMALL_BIG | tags::LARGE_BIG => {
                let (negative, magnitude) = self.r.big(tag)?;
                big_to_py(py, negative, magnitude)?
            }
            tags::NEW_FLOAT => {
                let f = self.r.f64()?;
                if !f.is_finite() {
                    return Err(self.r.error_at(start, "float is not finite").into());
                }
                float_object(py, f)?
            }
            tags::FLOAT => float_object(py, self.r.old_float()?)?,
            tags::SMALL_ATOM_UTF8 | tags::ATOM_UTF8 | tags::SMALL_ATOM | tags::ATOM => {
                // Known bytes skip the checks and go straight to the cached object. Latin-1
                // bytes name the same atom as UTF-8 ones only when they are ASCII.
                let raw = self.r.atom_bytes(tag)?;
                match raw {
                    b"true" => return Ok(bool_object(py, true)),
                    b"false" => return Ok(bool_object(py, false)),
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
                    "true" => bool_object(py, true),
                    "false" => bool_object(py, false),
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
                let text = match self.strings {
                    Strings::Str => true,
                    Strings::Erlang => printable_latin1(bytes),
                    Strings::Elixir => false,
                };
                if !text {
                    return self.char_list(bytes, key);
                }
                // SAFETY: PyUnicode_DecodeLatin1 reads `bytes` (a live slice, its exact
                // length) and returns a new reference, or NULL with an exception set.
                unsafe {
                    owned(
                        py,
                        ffi::PyUnicode_DecodeLatin1(
                            bytes.as_ptr().cast(),
                            bytes.len() as ffi::Py_ssize_t,
                            std::ptr::null(),
                        ),
                    )
                }?
            }
            tags::BINARY => {
                let len = self.r.u32()? as usize;
                if len >= BULK_MIN && !self.bulks.is_empty() {
                    if let Some(bulk) = self.bulks.iter().find(|b| b.at == start) {
                        return self.landed(bulk);
                    }
                }
                let data = self.r.bytes(len)?;
                if self.strings == Strings::Elixir {
                    if let Ok(text) = std::str::from_utf8(data) {
                        return Ok(PyString::new(py, text).into_any());
                    }
                }
                PyBytes::new(py, data).into_any()
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
                // SAFETY: PyTuple_New returns a new reference, or NULL with an exception set.
                let tuple = unsafe { owned(py, ffi::PyTuple_New(n as ffi::Py_ssize_t)) }?;
                for i in 0..n {
                    let item = self.term(key)?;
                    // SAFETY: filling slot `i` (< n) of our new tuple, not yet seen by any
                    // other code; it takes the item's reference. Unfilled slots are NULL,
                    // which a tuple dropped on an error handles.
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
        // SAFETY: PyTuple_New and PyList_New return a new reference, or NULL with an
        // exception set.
        let seq = unsafe {
            owned(
                py,
                if key {
                    ffi::PyTuple_New(n as ffi::Py_ssize_t)
                } else {
                    ffi::PyList_New(n as ffi::Py_ssize_t)
                },
            )
        }?;
        for i in 0..n {
            let item = self.term(key)?.into_ptr();
            // SAFETY: as for a tuple in `container`: slot `i` (< n) of our new sequence, which
            // takes the item's reference.
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

    /// A STRING_EXT list as a list of ints (a `FrozenList` in a map key).
    fn char_list(&mut self, bytes: &[u8], key: bool) -> DecResult<'py> {
        let py = self.py;
        let n = bytes.len() as ffi::Py_ssize_t;
        // SAFETY: PyTuple_New and PyList_New return a new reference, or NULL with an
        // exception set.
        let seq = unsafe {
            owned(
                py,
                if key {
                    ffi::PyTuple_New(n)
                } else {
                    ffi::PyList_New(n)
                },
            )
        }?;
        for (i, &byte) in bytes.iter().enumerate() {
            let item = int_object(py, byte.into())?.into_ptr();
            // SAFETY: as in `list`: slot `i` (< n) of our new sequence, which takes the
            // item's reference.
            unsafe {
                if key {
                    ffi::PyTuple_SetItem(seq.as_ptr(), i as _, item);
                } else {
                    ffi::PyList_SetItem(seq.as_ptr(), i as _, item);
                }
            }
        }
        if key {
            return Ok(self.types.frozen_list.bind(py).call1((seq,))?);
        }
        Ok(seq)
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
        let proper = if tail_tag == Some(tags::STRING) && tail.is_instance_of::<PyString>() {
            // [a | "bc"] is the proper list [a, $b, $c] (a STRING_EXT tail that did not
            // become a `str` is a list, just below).
            for c in tail
                .cast::<PyString>()
                .map_err(PyErr::from)?
                .to_cow()?
                .chars()
            {
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
            // SAFETY: live objects; PyDict_SetItem takes its own references.
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

    /// A large binary kept out of the message: the `bytes` object it landed in (or, with
    /// `strings="elixir"`, text when it is UTF-8).
    fn landed(&self, bulk: &Bulk) -> DecResult<'py> {
        let py = self.py;
        if self.strings == Strings::Elixir {
            if let Ok(text) = std::str::from_utf8(bulk.bytes()) {
                return Ok(PyString::new(py, text).into_any());
            }
        }
        Ok(match bulk.data.as_any().downcast_ref::<PyLanding>() {
            Some(landing) => landing.object(py).into_bound(py).into_any(),
            None => PyBytes::new(py, bulk.bytes()).into_any(),
        })
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
                encode_body(&k, &mut mine, self.strings)?;
                for existing in dict.keys() {
                    let mut theirs = Vec::new();
                    encode_body(&existing, &mut theirs, self.strings)?;
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

/// A Python int.
fn int_object(py: Python<'_>, value: std::os::raw::c_long) -> PyResult<Bound<'_, PyAny>> {
    // SAFETY: PyLong_FromLong returns a new reference, or NULL with an exception set.
    unsafe { owned(py, ffi::PyLong_FromLong(value)) }
}

/// A Python float.
fn float_object(py: Python<'_>, value: f64) -> PyResult<Bound<'_, PyAny>> {
    // SAFETY: PyFloat_FromDouble returns a new reference, or NULL with an exception set.
    unsafe { owned(py, ffi::PyFloat_FromDouble(value)) }
}

/// `True` or `False` (the atoms `true` and `false`).
fn bool_object(py: Python<'_>, value: bool) -> Bound<'_, PyAny> {
    // SAFETY: True and False are static objects; the Bound holds a new strong reference.
    unsafe {
        Bound::from_borrowed_ptr(
            py,
            if value {
                ffi::Py_True()
            } else {
                ffi::Py_False()
            },
        )
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
            // SAFETY: the C API returns a new reference, or NULL with an exception set.
            return unsafe { owned(py, ffi::PyLong_FromUnsignedLongLong(value)) };
        }
        if value <= 1u64 << 63 {
            let v = (value as i64).wrapping_neg();
            // SAFETY: as above.
            return unsafe { owned(py, ffi::PyLong_FromLongLong(v)) };
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
    strings: Strings,
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
        return Decoder::run(py, data, 1, &[], strings, &[]);
    }
    let wire = |e: etf::DecodeError| decode_error(py, &e);
    r.u8().map_err(wire)?;
    let inflated = inflate(&mut r, max_inflated).map_err(wire)?;
    if r.remaining() != 0 {
        return Err(wire(r.error("trailing bytes after the compressed term")));
    }
    Decoder::run(py, &inflated, 0, &[], strings, &[])
}

/// Decodes a term without a version byte (as in a distribution message), resolving
/// ATOM_CACHE_REF from `atoms`; nothing may follow it.
pub fn decode_body(
    py: Python<'_>,
    body: &[u8],
    atoms: &[etf::Atom],
    strings: Strings,
    bulks: &[Bulk],
) -> PyResult<Py<PyAny>> {
    Ok(Decoder::run(py, body, 0, atoms, strings, bulks)?.unbind())
}

/// A [`etf::Term`] as a Python object (through its encoding, so the mapping rules live only
/// in this codec).
pub fn term_to_py(py: Python<'_>, term: &etf::Term) -> PyResult<Py<PyAny>> {
    let mut body = Vec::with_capacity(64);
    etf::encode_term_body(term, &mut body);
    decode_body(py, &body, &[], Strings::default(), &[])
}

/// The term in `data` (bytes-like), in the external term format that `term_to_binary/1`
/// writes (starts with 131). docs/types.md has what each Erlang type becomes.
///
/// A compressed term may declare at most `max_inflated` bytes (`DEFAULT_MAX_INFLATED`,
/// 256 MiB). `strings` picks how Erlang text arrives: `"str"` (None, the default),
/// `"erlang"` or `"elixir"`. Malformed data raises `DecodeError`.
///
/// >>> decode(b"\x83h\x02w\x02okl\x00\x00\x00\x02a\x01a\x02j")
/// (Atom('ok'), [1, 2])
/// >>> data = bytes([131, 107, 0, 3, 1, 2, 3])  # term_to_binary([1, 2, 3]): a STRING_EXT
/// >>> decode(data), decode(data, strings="erlang")
/// ('\x01\x02\x03', [1, 2, 3])
/// >>> data = encode("café".encode())           # a binary: <<"café"/utf8>>
/// >>> decode(data), decode(data, strings="elixir")
/// (b'caf\xc3\xa9', 'café')
#[pyfunction]
#[pyo3(signature = (data, *, max_inflated = DEFAULT_MAX_INFLATED, strings = None))]
pub fn decode<'py>(
    data: &Bound<'py, PyAny>,
    max_inflated: usize,
    strings: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = data.py();
    let strings = Strings::from_name(strings)?;
    if let Ok(bytes) = data.cast::<PyBytes>() {
        return decode_standalone(py, bytes.as_bytes(), max_inflated, strings);
    }
    // bytearray, memoryview, ...: a private copy, which decoding cannot see change.
    // SAFETY: a live object; PyBytes_FromObject returns a new reference, or NULL with an
    // exception set (not a buffer).
    let copy = unsafe { owned(py, ffi::PyBytes_FromObject(data.as_ptr())) }?;
    let copy = copy.cast::<PyBytes>().map_err(PyErr::from)?;
    decode_standalone(py, copy.as_bytes(), max_inflated, strings)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add("DEFAULT_MAX_INFLATED", DEFAULT_MAX_INFLATED)?;
    Ok(())
}
