//! `NativeMailbox`: a process of the node, as Python sees it.
//!
//! A blocking `receive` waits with the GIL released, in short slices so Ctrl-C works; while
//! it spins it may read and route what its connection received (`Process::spin_for_message`),
//! still without the GIL.

use super::decode::{decode_body, term_to_py, Strings};
use super::dispatch::Served;
use super::encode::{encode_body, py_to_term};
use super::node::{
    node_error, parse_dest, parse_pid, parse_reference, send_from, to_duration, NodeClosedError,
    PyNode,
};
use super::terms::PyPid;
use crate::etf::Term;
use crate::node::process::AfterWrite;
use crate::node::wake::WakeFd;
use crate::node::{lock, Empty, Message, Process};
use pyo3::exceptions::{PyTimeoutError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many messages `receive_many` takes at most when not told.
const RECEIVE_MANY_LIMIT: usize = 1024;
/// How long a blocking receive waits between checks for Ctrl-C.
const SIGNAL_SLICE: Duration = Duration::from_millis(100);

/// A received message as a Python object, decoded now, in the calling thread.
pub(super) fn decode_message(
    py: Python<'_>,
    message: &Message,
    strings: Strings,
) -> PyResult<Py<PyAny>> {
    decode_body(
        py,
        &message.body,
        &message.atoms,
        strings,
        message.bulks.as_slice(),
    )
}

/// The native mailbox; `erlnode.Mailbox` wraps it.
#[pyclass(name = "NativeMailbox", module = "erlnode._erlnode", frozen)]
pub struct PyMailbox {
    node: Py<PyNode>,
    served: Arc<Served>,
    /// `mbox.pid` is read for nearly every message sent: made once.
    pid: Py<PyPid>,
}

impl PyMailbox {
    pub(super) fn new(py: Python<'_>, node: Py<PyNode>, served: Arc<Served>) -> PyResult<Self> {
        let pid = Py::new(
            py,
            PyPid {
                pid: served.process.pid.clone(),
            },
        )?;
        Ok(PyMailbox { node, served, pid })
    }

    pub(super) fn process(&self) -> &Arc<Process> {
        &self.served.process
    }

    /// A received message as a Python object, with the node's `strings=`.
    fn decode(&self, py: Python<'_>, message: &Message) -> PyResult<Py<PyAny>> {
        decode_message(py, message, self.served.strings)
    }
}

#[pymethods]
impl PyMailbox {
    #[getter]
    fn pid(&self, py: Python<'_>) -> Py<PyPid> {
        self.pid.clone_ref(py)
    }

    #[getter]
    fn name(&self) -> Option<String> {
        lock(&self.process().name).as_ref().map(|a| a.to_string())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.process().is_closed()
    }

    /// How many messages wait in the queue.
    fn qsize(&self) -> usize {
        self.process().pending()
    }

    /// Limits the queue (None: no limit); see `Mailbox.set_queue_limit`.
    #[pyo3(signature = (limit))]
    fn set_queue_limit(&self, limit: Option<usize>) -> PyResult<()> {
        if limit == Some(0) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "a queue limit is at least 1 (None: no limit)",
            ));
        }
        self.process().set_queue_limit(limit);
        Ok(())
    }

    /// How many messages a full queue dropped.
    #[getter]
    fn dropped(&self) -> u64 {
        self.process().dropped()
    }

    fn register(&self, name: &str) -> PyResult<()> {
        self.node
            .get()
            .node
            .register(self.process(), name)
            .map_err(node_error)
    }

    fn send(&self, dest: &Bound<'_, PyAny>, message: &Bound<'_, PyAny>) -> PyResult<()> {
        let node = &self.node.get().node;
        send_from(
            node,
            &self.process().pid,
            dest,
            message,
            self.served.strings,
        )
    }

    /// Sends every message of `messages` to `dest`, in order: `send` in a loop, for less.
    fn send_many(
        &self,
        py: Python<'_>,
        dest: &Bound<'_, PyAny>,
        messages: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let dest = parse_dest(dest)?;
        // All bodies in one buffer, then cut into slices of it: no allocation per message.
        let mut encoded = Vec::new();
        let mut ends = Vec::new();
        for message in messages.try_iter()? {
            encode_body(&message?, &mut encoded, self.served.strings)?;
            ends.push(encoded.len());
        }
        let encoded = bytes::Bytes::from(encoded);
        let starts = std::iter::once(0).chain(ends.iter().copied());
        let bodies: Vec<bytes::Bytes> = starts
            .zip(&ends)
            .map(|(a, &b)| encoded.slice(a..b))
            .collect();
        let node = &self.node.get().node;
        py.detach(|| node.send_many(&self.process().pid, &dest, bodies))
            .map_err(node_error)
    }

    /// The next message; waits up to `timeout` seconds (None: forever), raising TimeoutError.
    #[pyo3(signature = (timeout=None))]
    fn receive(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let process = self.process();
        if let Some(message) = process.pop() {
            return self.decode(py, &message);
        }
        let deadline = match timeout {
            Some(t) => Some(Instant::now() + to_duration(t)?),
            None => None,
        };
        loop {
            let slice_end = Instant::now() + SIGNAL_SLICE;
            let until = match deadline {
                Some(d) if d < slice_end => d,
                _ => slice_end,
            };
            match py.detach(|| process.wait(Some(until))) {
                Ok(message) => return self.decode(py, &message),
                Err(Empty::Closed) => {
                    return Err(NodeClosedError::new_err("the mailbox is closed"))
                }
                Err(Empty::Timeout) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(PyTimeoutError::new_err("no message within the timeout"));
                    }
                    py.check_signals()?;
                }
            }
        }
    }

    /// Up to `limit` messages (default 1024): waits like `receive` for the first, then takes
    /// what is queued. `max` is the old name of `limit`.
    #[pyo3(signature = (limit=None, timeout=None, *, max=None))]
    fn receive_many<'py>(
        &self,
        py: Python<'py>,
        limit: Option<usize>,
        timeout: Option<f64>,
        max: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        if limit.is_some() && max.is_some() {
            return Err(PyTypeError::new_err(
                "receive_many() got both 'limit' and its old name 'max'",
            ));
        }
        let limit = limit.or(max).unwrap_or(RECEIVE_MANY_LIMIT);
        let first = self.receive(py, timeout)?;
        let mut batch = Vec::new();
        self.process().drain(limit.saturating_sub(1), &mut batch);
        let list = PyList::empty(py);
        list.append(first)?;
        for message in &batch {
            list.append(self.decode(py, message)?)?;
        }
        Ok(list)
    }

    /// The next message if one is waiting or comes within 30 µs while messages have lately
    /// come that fast (see `Spinner`), else `default`: the first look of `receive_async`,
    /// which so skips a turn of the event loop for a message that is just behind.
    #[pyo3(signature = (default=None))]
    fn receive_soon(&self, py: Python<'_>, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let process = self.process();
        let found = match process.pop() {
            Some(message) => Some(message),
            // Letting go of the GIL costs more than a look that only counts a miss.
            // An asyncio loop thread: see `AfterWrite::MayYield`.
            None if process.spin_is_due() => {
                py.detach(|| process.spin_for_message(AfterWrite::MayYield))
            }
            None => process.spin_for_message(AfterWrite::MayYield),
        };
        match found {
            Some(message) => self.decode(py, &message),
            None => self.try_receive(py, default),
        }
    }

    /// The next message if one is waiting, else `default`.
    #[pyo3(signature = (default=None))]
    fn try_receive(&self, py: Python<'_>, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        match self.process().try_receive() {
            Some(message) => self.decode(py, &message),
            None => {
                if self.process().is_closed() {
                    return Err(NodeClosedError::new_err("the mailbox is closed"));
                }
                Ok(default.unwrap_or_else(|| py.None()))
            }
        }
    }

    /// A file descriptor that becomes readable when messages arrive (or the mailbox closes),
    /// for `loop.add_reader`; the reader drains it with `os.read`. Made on first use.
    fn wake_fd(&self) -> PyResult<i32> {
        let mut slot = lock(&self.served.wake_fd);
        if let Some(wake) = slot.as_ref() {
            return Ok(wake.fd());
        }
        let wake = WakeFd::new()?;
        let waker = wake.waker()?;
        self.process()
            .set_wake(Some(Arc::new(move || waker.wake())));
        // Set before this check, so a message arriving meanwhile wakes the loop either way.
        if self.process().pending() > 0 || self.process().is_closed() {
            wake.waker()?.wake();
        }
        let fd = wake.fd();
        *slot = Some(wake);
        Ok(fd)
    }

    /// Links to `pid`; an exit signal arrives as `('EXIT', pid, reason)`.
    fn link(&self, pid: &Bound<'_, PyAny>) -> PyResult<()> {
        let pid = parse_pid(pid)?;
        self.node.get().node.link(self.process(), &pid);
        Ok(())
    }

    fn unlink(&self, pid: &Bound<'_, PyAny>) -> PyResult<()> {
        let pid = parse_pid(pid)?;
        self.node.get().node.unlink(self.process(), &pid);
        Ok(())
    }

    /// Sends the exit signal `reason` to `pid` (`exit/2`).
    fn exit(&self, pid: &Bound<'_, PyAny>, reason: &Bound<'_, PyAny>) -> PyResult<()> {
        let pid = parse_pid(pid)?;
        let reason = py_to_term(reason, self.served.strings)?;
        self.node
            .get()
            .node
            .exit_signal(&self.process().pid, &pid, reason);
        Ok(())
    }

    /// Monitors a Pid, a local name or a `(name, node)`; returns the monitor's reference.
    fn monitor(&self, py: Python<'_>, target: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let dest = parse_dest(target)?;
        let reference = self.node.get().node.monitor(self.process(), &dest);
        term_to_py(py, &Term::Reference(reference))
    }

    /// Removes a monitor; False if it was not active.
    fn demonitor(&self, reference: &Bound<'_, PyAny>) -> PyResult<bool> {
        let reference = parse_reference(reference)?;
        Ok(self.node.get().node.demonitor(self.process(), &reference))
    }

    /// Closes the mailbox; links and monitors see `reason` (default `normal`).
    #[pyo3(signature = (reason=None))]
    fn close(&self, py: Python<'_>, reason: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let reason = match reason {
            Some(r) => py_to_term(r, self.served.strings)?,
            None => Term::atom("normal"),
        };
        let node = &self.node.get().node;
        py.detach(|| node.close_process(self.process(), &reason));
        Ok(())
    }
}
