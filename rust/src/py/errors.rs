//! The codec's Python exceptions.

use crate::etf;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(
    erlnode,
    DecodeError,
    PyValueError,
    r#"Malformed external term format (from `decode`); `offset` is the byte where decoding
    stopped (in the inflated data, for a compressed term).

    >>> try:
    ...     decode(b"\x83h\x02w\x02ok")  # a 2-tuple cut after its first element
    ... except DecodeError as e:
    ...     print(e.offset, e)
    7 truncated input: a term was expected at byte 7
    "#
);
pyo3::create_exception!(
    erlnode,
    EncodeError,
    PyTypeError,
    r#"A Python value with no Erlang equivalent (from `encode`, or sending a message); the
    message names its type and where it sits in the term.

    >>> encode({Atom("tags"): {1, 2}})
    Traceback (most recent call last):
        ...
    erlnode.EncodeError: cannot encode an object of type 'set' at [Atom('tags')]
    "#
);

/// A `DecodeError` carrying `offset` as an attribute and in its message.
pub fn decode_error(py: Python<'_>, err: &etf::DecodeError) -> PyErr {
    let exc = DecodeError::new_err(err.to_string());
    let value = exc.value(py);
    if let Err(e) = value.setattr("offset", err.offset) {
        return e;
    }
    exc
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("EncodeError", py.get_type::<EncodeError>())?;
    Ok(())
}
