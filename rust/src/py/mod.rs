//! The PyO3 binding layer: the only module that touches Python.
//!
//! - [`encode`], [`decode`]: the codec, Python objects straight to and from the external
//!   term format: `erlnode.encode` / `erlnode.decode` and the entry points for the node code.
//! - [`terms`]: `Pid`, `Port`, `Reference`, `Export`, `Fun` and the atom cache.
//! - [`errors`]: `DecodeError`, `EncodeError`.
//! - [`landing`]: `bytes` objects that large binaries received are read straight into.
//! - [`logger`]: the core's log records, queued for Python's `logging` (`erlnode._logging`).
//! - [`tls`]: `TLSConfig`, the TLS distribution settings.
//! - [`syntax`]: `parse_term`, `format_term`: terms as Erlang text.
//! - [`cli`]: what the command line needs without a node (EPMD's names, a foreground EPMD).
//! - [`node`], [`mailbox`]: the native `Node` and `Mailbox` that `erlnode.Node` /
//!   `erlnode.Mailbox` wrap; [`dispatch`]: the thread that runs mailbox callbacks.

mod cli;
pub mod decode;
mod dispatch;
pub mod encode;
pub mod errors;
pub mod landing;
mod logger;
pub mod mailbox;
pub mod node;
pub mod syntax;
pub mod terms;
pub mod tls;

use pyo3::ffi;
use pyo3::prelude::*;

/// Takes ownership of a new reference returned by the C API (NULL: the raised exception).
///
/// # Safety
/// `ptr` is what a C-API function returning a new reference just gave: an object we own, or
/// NULL with a Python exception set.
unsafe fn owned(py: Python<'_>, ptr: *mut ffi::PyObject) -> Result<Bound<'_, PyAny>, PyErr> {
    // SAFETY: the caller's promise.
    unsafe { Bound::from_owned_ptr_or_err(py, ptr) }
}

#[pymodule]
fn _erlnode(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logger::register(m)?;
    errors::register(m)?;
    terms::register(m)?;
    encode::register(m)?;
    decode::register(m)?;
    syntax::register(m)?;
    cli::register(m)?;
    landing::register(m)?;
    m.add_class::<node::PyNode>()?;
    m.add_class::<mailbox::PyMailbox>()?;
    m.add_class::<tls::PyTlsConfig>()?;
    m.add(
        "NodeClosedError",
        m.py().get_type::<node::NodeClosedError>(),
    )?;
    m.add("EpmdError", m.py().get_type::<node::EpmdError>())?;
    // The node's defaults, for `erlnode.Node`'s signature: `NodeConfig` is their one source.
    let defaults = crate::node::NodeConfig::default();
    m.add("DEFAULT_TICKTIME", defaults.ticktime.as_secs_f64())?;
    m.add(
        "DEFAULT_HANDSHAKE_TIMEOUT",
        defaults.handshake_timeout.as_secs_f64(),
    )?;
    m.add("DEFAULT_MAX_MESSAGE_SIZE", defaults.max_message_size)?;
    Ok(())
}
