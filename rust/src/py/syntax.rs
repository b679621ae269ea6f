//! `erlnode.parse_term` and `erlnode.format_term`: Python values as Erlang text.
//!
//! The text rules are [`etf::syntax`]'s. Between a [`etf::Term`] and a Python value both go
//! through the codec's own mapping ([`term_to_py`], [`py_to_term`]), so `parse_term` gives
//! exactly what `decode` would give for the same term, and `format_term` accepts exactly what
//! `encode` accepts.

use super::decode::{term_to_py, Strings};
use super::encode::py_to_term;
use crate::etf;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

pyo3::create_exception!(
    erlnode,
    TermSyntaxError,
    PyValueError,
    r#"Text that is not an Erlang term (from `parse_term`).

    `line` and `column` (counted from 1) and `offset` (an index into the text, counted from
    0) say where; the message says what was found.

    >>> try:
    ...     parse_term("{ok, [1, 2}")
    ... except TermSyntaxError as e:
    ...     print(e.line, e.column, e.offset)
    1 11 10
    "#
);

/// A `TermSyntaxError` for `err`, with its position as attributes.
fn syntax_error(py: Python<'_>, text: &str, err: &etf::SyntaxError) -> PyErr {
    let exc = TermSyntaxError::new_err(err.to_string());
    let value = exc.value(py);
    // Python indexes a str by characters; the Rust offset counts UTF-8 bytes.
    let offset = text[..err.offset()].chars().count();
    for (name, position) in [
        ("line", err.line()),
        ("column", err.column()),
        ("offset", offset),
    ] {
        if let Err(e) = value.setattr(name, position) {
            return e;
        }
    }
    exc
}

/// One term in Erlang syntax (a final `.` is allowed), as `decode` would give it. Pids,
/// ports and references are written with their node's name, as `format_term` prints them
/// (`<erl@host.85.0>`). Text that is not a term raises `TermSyntaxError`.
///
/// >>> parse_term('{ok, [1, 2], <<"bin">>, #{name => "Joe"}}.')
/// (Atom('ok'), [1, 2], b'bin', {Atom('name'): 'Joe'})
#[pyfunction]
pub fn parse_term(py: Python<'_>, text: &str) -> PyResult<Py<PyAny>> {
    let term = etf::parse_term(text).map_err(|e| syntax_error(py, text, &e))?;
    term_to_py(py, &term)
}

/// `term` as `io_lib:format("~p", [Term])` prints it, on one line (pids, ports and
/// references with their node's name). It takes what `encode` takes; `parse_term` reads it
/// back.
///
/// >>> format_term((Atom("ok"), [1, 2], b"bin", {Atom("name"): "Joe"}))
/// '{ok,[1,2],<<"bin">>,#{name => "Joe"}}'
#[pyfunction]
pub fn format_term(term: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(etf::format_term(&py_to_term(term, Strings::default())?))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("TermSyntaxError", m.py().get_type::<TermSyntaxError>())?;
    m.add_function(wrap_pyfunction!(parse_term, m)?)?;
    m.add_function(wrap_pyfunction!(format_term, m)?)?;
    Ok(())
}
