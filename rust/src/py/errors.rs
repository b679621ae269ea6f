//! The codec's Python exceptions.

use crate::etf;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(
    erlnode,
    DecodeError,
    PyValueError,
    "Malformed external term format; `offset` is the byte where decoding stopped."
);
pyo3::create_exception!(
    erlnode,
    EncodeError,
    PyTypeError,
    "A Python value with no Erlang equivalent; the message names its type and position."
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
