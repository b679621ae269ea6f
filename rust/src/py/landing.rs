//! Python `bytes` objects as the destinations of large binaries received (see
//! `dist::packet::bulk`): the data is read from the socket straight into the object the
//! user gets.
//!
//! Making a `bytes` object takes the GIL, which network threads never wait for: they ask,
//! and a Python thread (`erlnode._landing`, started with the first node) makes the object
//! and hands it back. Until it comes, the data waits in a plain buffer, copied over then.

use crate::dist::packet::bulk::{Landed, Lander, LandingSlot};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::any::Any;
use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, Weak};

/// A `bytes` object made for a binary still to arrive.
pub struct PyLanding {
    object: Py<PyBytes>,
    data: *mut u8,
    len: usize,
}

// SAFETY: the object is owned (`Py` is Send) and nobody else sees it until the binary is
// whole: the pointer is to its data, which a `bytes` object never moves, written by one
// thread at a time (the connection's reader, under its read lock) and only read after.
unsafe impl Send for PyLanding {}
// SAFETY: see above; once shared (`Arc<dyn Landed>`), it is only read.
unsafe impl Sync for PyLanding {}

impl PyLanding {
    /// The `bytes` object the data landed in.
    pub fn object(&self, py: Python<'_>) -> Py<PyBytes> {
        self.object.clone_ref(py)
    }
}

impl Landed for PyLanding {
    fn memory(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: `data` is the object's `len` bytes, which only this landing writes (see
        // the Send impl).
        unsafe { std::slice::from_raw_parts_mut(self.data.cast(), self.len) }
    }

    fn finish(&mut self) {}

    fn bytes(&self) -> &[u8] {
        // SAFETY: called after every byte was written (the `Landed` contract); the object
        // lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Requests waiting for the serving thread.
struct Requests {
    queue: Mutex<VecDeque<(usize, Weak<LandingSlot>)>>,
    ready: Condvar,
    /// The process whose thread serves requests (0: none): a forked child inherits the
    /// value but not the thread, and then makes no requests (its binaries are copied once).
    serving_pid: AtomicU32,
}

/// The one lander of the process, which every node uses.
pub struct PyLander {
    requests: Requests,
}

static LANDER: LazyLock<Arc<PyLander>> = LazyLock::new(|| {
    Arc::new(PyLander {
        requests: Requests {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            serving_pid: AtomicU32::new(0),
        },
    })
});

/// The lander a node made from Python uses.
pub fn lander() -> Arc<dyn Lander> {
    LANDER.clone()
}

impl Lander for PyLander {
    fn request(&self, len: usize, slot: &Arc<LandingSlot>) {
        if self.requests.serving_pid.load(Ordering::Relaxed) != std::process::id() {
            return;
        }
        let mut queue = self
            .requests
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        queue.push_back((len, Arc::downgrade(slot)));
        self.requests.ready.notify_one();
    }
}

impl PyLander {
    /// The next request whose asker still waits.
    fn next(&self) -> (usize, Arc<LandingSlot>) {
        let mut queue = self
            .requests
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        loop {
            while let Some((len, slot)) = queue.pop_front() {
                if let Some(slot) = slot.upgrade() {
                    return (len, slot);
                }
            }
            queue = self
                .requests
                .ready
                .wait(queue)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A `bytes` object of `len` bytes whose contents are not set yet.
fn unfilled_bytes(py: Python<'_>, len: usize) -> PyResult<PyLanding> {
    let size = ffi::Py_ssize_t::try_from(len)
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("binary too large"))?;
    // SAFETY: with a NULL source, PyBytes_FromStringAndSize makes an object of `size` bytes
    // left unset (a new reference, or NULL with an exception set).
    let object =
        unsafe { super::owned(py, ffi::PyBytes_FromStringAndSize(std::ptr::null(), size)) }?;
    // SAFETY: `object` is a live bytes object; its data is `size` bytes (and a NUL).
    let data = unsafe { ffi::PyBytes_AsString(object.as_ptr()) }.cast::<u8>();
    Ok(PyLanding {
        object: object.cast_into::<PyBytes>()?.unbind(),
        data,
        len,
    })
}

/// `serve_landings()`: makes the `bytes` objects network threads ask for, forever (run by
/// `erlnode._landing`'s daemon thread; one per process).
#[pyfunction]
fn serve_landings(py: Python<'_>) {
    let lander = LANDER.clone();
    lander
        .requests
        .serving_pid
        .store(std::process::id(), Ordering::Relaxed);
    loop {
        let (len, slot) = py.detach(|| lander.next());
        // Without an object (no memory for it), the data stays in the reader's buffer.
        if let Ok(landing) = unfilled_bytes(py, len) {
            slot.put(Box::new(landing));
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(serve_landings, m)?)?;
    Ok(())
}
