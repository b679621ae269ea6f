//! The PyO3 binding layer: the only module that touches Python.
//!
//! - [`codec`]: `encode` / `decode` and the Rust entry points for the node code.
//! - [`terms`]: `Pid`, `Port`, `Reference`, `Export`, `Fun` and the atom cache.
//! - [`errors`]: `DecodeError`, `EncodeError`.

pub mod codec;
pub mod errors;
pub mod terms;

use pyo3::prelude::*;

#[pymodule]
fn _erlnode(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    terms::register(m)?;
    codec::register(m)?;
    Ok(())
}
