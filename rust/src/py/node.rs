//! `Node` and `Mailbox` for Python.
//!
//! Threading rules: Tokio threads never hold the GIL. A blocking `receive` waits with the GIL
//! released, in short slices so Ctrl-C works; while it spins it may read and route what its
//! connection received (`Process::spin_for_message`), still without the GIL. Callback
//! mailboxes and asyncio waiters are served by one dispatcher thread per node, started on
//! first need: the network thread only tells it "this mailbox has messages"; the dispatcher
//! takes the GIL once per batch, decodes and calls the callbacks in arrival order, or wakes
//! the asyncio futures through their loops.

use super::codec::{decode_body, encode_body, py_to_term, term_to_py};
use super::terms::PyPid;
use crate::etf::{Atom, Pid, Term};
use crate::node::process::{AfterWrite, Spinner};
use crate::node::wake::WakeFd;
use crate::node::{self, Dest, Empty, Message, Node, NodeConfig, NodeError, Process};
use pyo3::exceptions::{PyConnectionError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pyo3::create_exception!(
    _erlnode,
    NodeClosedError,
    PyConnectionError,
    "The node (or mailbox) is closed."
);
pyo3::create_exception!(
    _erlnode,
    EpmdError,
    PyConnectionError,
    "The node could not register with EPMD (nor serve EPMD itself)."
);

/// How long a blocking receive waits between checks for Ctrl-C.
const SIGNAL_SLICE: Duration = Duration::from_millis(100);
/// Messages a dispatcher hands to one callback per GIL hold.
const DISPATCH_BATCH: usize = 256;
/// How long the dispatcher looks for its next job before it sleeps (see `Spinner`).
const DISPATCH_SPIN: Duration = Duration::from_micros(50);

pub(crate) fn node_error(e: NodeError) -> PyErr {
    match e {
        NodeError::Config(m) => PyValueError::new_err(m),
        NodeError::Closed => NodeClosedError::new_err("the node is closed"),
        NodeError::Epmd(m) => EpmdError::new_err(m),
        NodeError::Connect(m) => PyConnectionError::new_err(m),
        NodeError::Io(e) => PyConnectionError::new_err(e.to_string()),
        NodeError::Timeout => PyTimeoutError::new_err("timed out"),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    node::lock(m)
}

/// Python-side state of a mailbox that the dispatcher serves.
struct Served {
    process: Arc<Process>,
    callback: Mutex<Option<Py<PyAny>>>,
    /// For asyncio: the network thread makes this readable when messages arrive, and the
    /// event loop, watching it with `add_reader`, wakes without any other thread.
    wake_fd: Mutex<Option<WakeFd>>,
}

enum Job {
    Serve(Arc<Served>),
    Stop,
}

/// One thread per node that runs callbacks and wakes asyncio futures.
#[derive(Default)]
struct Dispatcher {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
}

impl Dispatcher {
    fn sender(&self) -> mpsc::Sender<Job> {
        let mut jobs = lock(&self.jobs);
        if let Some(tx) = jobs.as_ref() {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let again = tx.clone();
        std::thread::Builder::new()
            .name("erlnode-dispatch".into())
            .spawn(move || dispatch_loop(rx, again))
            .expect("spawning the dispatcher thread");
        *jobs = Some(tx.clone());
        tx
    }

    fn stop(&self) {
        if let Some(tx) = lock(&self.jobs).take() {
            let _ = tx.send(Job::Stop);
        }
    }

    /// Makes the process tell the dispatcher when messages arrive.
    fn watch(&self, served: &Arc<Served>) {
        // The hook owns the mailbox state: a callback mailbox works while the program keeps
        // no reference to it, until it is closed (closing drops the hook).
        let tx = Mutex::new(self.sender());
        let served_by_hook = served.clone();
        served.process.set_wake(Some(Arc::new(move || {
            let _ = lock(&tx).send(Job::Serve(served_by_hook.clone()));
        })));
    }
}

fn dispatch_loop(jobs: mpsc::Receiver<Job>, again: mpsc::Sender<Job>) {
    // Attached once for the thread's life, detached while waiting: re-attaching per job would
    // make and destroy a Python thread state each time, a large part of a callback's latency.
    // Only this thread receives; the Mutex makes the receiver Sync for detach.
    let jobs = Mutex::new(jobs);
    // A callback's round trip has a hop more than a receive's (the hook, this channel).
    let spinner = Spinner::new(DISPATCH_SPIN);
    // The mailbox served last: while spinning, the dispatcher reads the socket its messages
    // come from (see `Process::spin_for_message`). Weak, so as not to keep a closed mailbox.
    let last_served: Mutex<std::sync::Weak<Process>> = Mutex::new(std::sync::Weak::new());
    let next_job = || {
        let jobs = lock(&jobs);
        let source = || lock(&last_served).upgrade().and_then(|p| p.source());
        match spinner.spin_feeding(AfterWrite::Spin, source, || jobs.try_recv().ok()) {
            Some(job) => Ok(job),
            None => jobs.recv(),
        }
    };
    Python::attach(|py| {
        while let Ok(Job::Serve(served)) = py.detach(next_job) {
            let callback = lock(&served.callback).as_ref().map(|c| c.clone_ref(py));
            let Some(callback) = callback else { continue };
            let mut batch = Vec::with_capacity(DISPATCH_BATCH);
            served.process.drain(DISPATCH_BATCH, &mut batch);
            *lock(&last_served) = Arc::downgrade(&served.process);
            for message in batch {
                let result = decode_message(py, &message).and_then(|m| callback.call1(py, (m,)));
                if let Err(e) = result {
                    report_callback_error(py, e);
                }
            }
            if served.process.pending() > 0 {
                // More arrived: go round again after the others, so one busy mailbox cannot
                // starve the rest.
                let _ = again.send(Job::Serve(served.clone()));
            }
        }
    });
}

fn report_callback_error(py: Python<'_>, e: PyErr) {
    let logged = py.import("logging").and_then(|logging| {
        let logger = logging.call_method1("getLogger", ("erlnode",))?;
        logger.call_method1(
            "error",
            ("mailbox callback raised %r", e.value(py).clone().unbind()),
        )
    });
    if logged.is_err() {
        e.print(py);
    }
}

fn decode_message(py: Python<'_>, message: &Message) -> PyResult<Py<PyAny>> {
    decode_body(py, &message.body, &message.atoms)
}

fn to_duration(seconds: f64) -> PyResult<Duration> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(PyValueError::new_err(
            "timeout must be a non-negative number of seconds",
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The native node; `erlnode.Node` wraps it.
#[pyclass(name = "NativeNode", module = "erlnode._erlnode", frozen)]
pub struct PyNode {
    node: Node,
    dispatcher: Dispatcher,
    /// The pid anonymous sends come from (never receives anything).
    anonymous: Mutex<Option<Arc<Process>>>,
}

#[pymethods]
impl PyNode {
    #[new]
    #[pyo3(signature = (name=None, cookie=None, *, hidden=true, ticktime=60.0, epmd_port=None, listen="0.0.0.0:0", handshake_timeout=7.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: Option<String>,
        cookie: Option<String>,
        hidden: bool,
        ticktime: f64,
        epmd_port: Option<u16>,
        listen: &str,
        handshake_timeout: f64,
    ) -> PyResult<Self> {
        let listen: SocketAddr = listen.parse().map_err(|_| {
            PyValueError::new_err(format!("listen address {listen:?} is not ip:port"))
        })?;
        let ticktime = to_duration(ticktime)?;
        if ticktime < Duration::from_secs(1) {
            return Err(PyValueError::new_err("ticktime must be at least 1 second"));
        }
        let config = NodeConfig {
            name,
            cookie,
            hidden,
            ticktime,
            handshake_timeout: to_duration(handshake_timeout)?,
            listen,
            epmd_port,
            ..NodeConfig::default()
        };
        let node = py.detach(|| Node::start(config)).map_err(node_error)?;
        Ok(PyNode {
            node,
            dispatcher: Dispatcher::default(),
            anonymous: Mutex::new(None),
        })
    }

    #[getter]
    fn name(&self) -> String {
        self.node.name().to_string()
    }

    #[getter]
    fn cookie(&self) -> String {
        self.node.cookie().to_string()
    }

    #[getter]
    fn creation(&self) -> u32 {
        self.node.creation()
    }

    #[getter]
    fn port(&self) -> u16 {
        self.node.port()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.node.is_closed()
    }

    /// A new mailbox, registered under `name` if given.
    #[pyo3(signature = (name=None, callback=None))]
    fn mailbox(
        slf: &Bound<'_, Self>,
        name: Option<&str>,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<PyMailbox> {
        let this = slf.get();
        let process = this.node.spawn_process(name).map_err(node_error)?;
        let served = Arc::new(Served {
            process,
            callback: Mutex::new(None),
            wake_fd: Mutex::new(None),
        });
        if let Some(cb) = callback {
            *lock(&served.callback) = Some(cb);
            this.dispatcher.watch(&served);
        }
        let pid = Py::new(
            slf.py(),
            PyPid {
                pid: served.process.pid.clone(),
            },
        )?;
        Ok(PyMailbox {
            node: slf.clone().unbind(),
            served,
            pid,
        })
    }

    /// Sends from an anonymous pid of this node.
    fn send(&self, dest: &Bound<'_, PyAny>, message: &Bound<'_, PyAny>) -> PyResult<()> {
        let from = {
            let mut anon = lock(&self.anonymous);
            if anon.is_none() {
                *anon = Some(self.node.spawn_process(None).map_err(node_error)?);
            }
            anon.as_ref().map(|p| p.pid.clone()).expect("just set")
        };
        send_from(&self.node, &from, dest, message)
    }

    /// `net_adm:ping`: True when the peer answers `yes`.
    #[pyo3(signature = (peer, timeout=5.0))]
    fn ping(&self, py: Python<'_>, peer: &str, timeout: f64) -> PyResult<bool> {
        let timeout = to_duration(timeout)?;
        py.detach(|| self.node.ping(peer, timeout))
            .map_err(node_error)
    }

    /// `erlang:disconnect_node/1`: False if not connected.
    fn disconnect(&self, py: Python<'_>, node: &str) -> bool {
        py.detach(|| self.node.disconnect(node))
    }

    fn connected_nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .node
            .connected_nodes()
            .iter()
            .map(|a| a.to_string())
            .collect();
        nodes.sort();
        nodes
    }

    /// A new unique reference of this node.
    fn make_ref(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        term_to_py(py, &Term::Reference(self.node.make_ref()))
    }

    /// `monitor_node/2` on behalf of `mailbox`.
    #[pyo3(signature = (mailbox, node, flag=true))]
    fn monitor_node(&self, mailbox: &PyMailbox, node: &str, flag: bool) {
        self.node
            .monitor_node(mailbox.process(), &Atom::new(node), flag);
    }

    /// `net_kernel:monitor_nodes/1` on behalf of `mailbox`.
    #[pyo3(signature = (mailbox, flag=true))]
    fn monitor_nodes(&self, mailbox: &PyMailbox, flag: bool) {
        self.node.monitor_nodes(mailbox.process(), flag);
    }

    /// Routes SPAWN_REQUESTs to `mailbox` (None: refuse them with `notsup`).
    fn set_spawn_handler(&self, mailbox: Option<&PyMailbox>) {
        self.node.set_spawn_handler(mailbox.map(|m| m.process()));
    }

    /// Answers a SPAWN_REQUEST with `mailbox`'s pid, or with the atom `error`.
    #[pyo3(signature = (req_id, to, mailbox, link=false, monitor=false, error=None))]
    fn spawn_reply(
        &self,
        req_id: &Bound<'_, PyAny>,
        to: &Bound<'_, PyAny>,
        mailbox: Option<&PyMailbox>,
        link: bool,
        monitor: bool,
        error: Option<&str>,
    ) -> PyResult<()> {
        let req_id = parse_reference(req_id)?;
        let to = parse_pid(to)?;
        self.node.spawn_reply(
            req_id,
            &to,
            mailbox.map(|m| m.process()),
            link,
            monitor,
            error.unwrap_or("badarg"),
        );
        Ok(())
    }

    fn close(&self, py: Python<'_>) {
        py.detach(|| self.node.close());
        self.dispatcher.stop();
    }
}

fn parse_pid(obj: &Bound<'_, PyAny>) -> PyResult<Pid> {
    match obj.cast::<PyPid>() {
        Ok(pid) => Ok(pid.get().pid.clone()),
        Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "expected a Pid, not {}",
            obj.repr()?
        ))),
    }
}

fn parse_reference(obj: &Bound<'_, PyAny>) -> PyResult<crate::etf::Reference> {
    match py_to_term(obj) {
        Ok(Term::Reference(r)) => Ok(r),
        _ => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "expected a Reference, not {}",
            obj.repr()?
        ))),
    }
}

/// Atoms recently made from destination strings, per thread: a program sends to the same
/// few names over and over, and each `Atom::new` is an allocation (and a free after). Kept
/// small: looking through it must stay cheaper than the allocation it saves.
const DEST_ATOMS: usize = 8;

thread_local! {
    static DEST_ATOM_CACHE: std::cell::RefCell<Vec<Atom>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn dest_atom(text: &Bound<'_, PyString>) -> PyResult<Atom> {
    let text = text.to_cow()?;
    DEST_ATOM_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(atom) = cache.iter().find(|a| a.as_str() == text) {
            return Ok(atom.clone());
        }
        if cache.len() == DEST_ATOMS {
            cache.remove(0);
        }
        let atom = Atom::new(&text);
        cache.push(atom.clone());
        Ok(atom)
    })
}

fn parse_dest(dest: &Bound<'_, PyAny>) -> PyResult<Dest> {
    if let Ok(name) = dest.cast::<PyString>() {
        return Ok(Dest::Name(dest_atom(name)?));
    }
    if let Ok(pair) = dest.cast::<PyTuple>() {
        if pair.len() == 2 {
            let name = pair.get_item(0)?;
            let node = pair.get_item(1)?;
            if let (Ok(name), Ok(node)) = (name.cast::<PyString>(), node.cast::<PyString>()) {
                return Ok(Dest::Remote(dest_atom(name)?, dest_atom(node)?));
            }
        }
    }
    match dest.cast::<PyPid>() {
        Ok(pid) => Ok(Dest::Pid(pid.get().pid.clone())),
        Err(_) => Err(PyValueError::new_err(format!(
            "a destination is a Pid, a registered name, or a (name, node) tuple, not {}",
            dest.repr()?
        ))),
    }
}

fn send_from(
    node: &Node,
    from: &Pid,
    dest: &Bound<'_, PyAny>,
    message: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let dest = parse_dest(dest)?;
    let mut body = Vec::with_capacity(64);
    encode_body(message, &mut body)?;
    node.send(from, &dest, bytes::Bytes::from(body))
        .map_err(node_error)
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
    fn process(&self) -> &Arc<Process> {
        &self.served.process
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

    fn register(&self, name: &str) -> PyResult<()> {
        self.node
            .get()
            .node
            .register(self.process(), name)
            .map_err(node_error)
    }

    fn send(&self, dest: &Bound<'_, PyAny>, message: &Bound<'_, PyAny>) -> PyResult<()> {
        let node = &self.node.get().node;
        send_from(node, &self.process().pid, dest, message)
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
            encode_body(&message?, &mut encoded)?;
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
            return decode_message(py, &message);
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
                Ok(message) => return decode_message(py, &message),
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

    /// Up to `max` messages: waits like `receive` for the first, then takes what is queued.
    #[pyo3(signature = (max=1024, timeout=None))]
    fn receive_many<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let first = self.receive(py, timeout)?;
        let mut batch = Vec::new();
        self.process().drain(max.saturating_sub(1), &mut batch);
        let list = PyList::empty(py);
        list.append(first)?;
        for message in &batch {
            list.append(decode_message(py, message)?)?;
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
            Some(message) => decode_message(py, &message),
            None => self.try_receive(py, default),
        }
    }

    /// The next message if one is waiting, else `default`.
    #[pyo3(signature = (default=None))]
    fn try_receive(&self, py: Python<'_>, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        match self.process().try_receive() {
            Some(message) => decode_message(py, &message),
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
        let reason = py_to_term(reason)?;
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
            Some(r) => py_to_term(r)?,
            None => Term::atom("normal"),
        };
        let node = &self.node.get().node;
        py.detach(|| node.close_process(self.process(), &reason));
        Ok(())
    }
}
