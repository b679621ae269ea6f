//! `NativeNode` for Python, and what it shares with `NativeMailbox` (errors, destinations).
//!
//! Threading rules: Tokio threads never hold the GIL. Blocking calls release it (see
//! [`super::mailbox`] for `receive`); callbacks run on the node's dispatcher thread
//! ([`super::dispatch`]).

use super::decode::{term_to_py, Strings};
use super::dispatch::{Dispatcher, Served};
use super::encode::{encode_message, py_to_term, MessageBody};
use super::mailbox::PyMailbox;
use super::terms::PyPid;
use super::tls::PyTlsConfig;
use crate::etf::{Atom, Pid, Term};
use crate::node::{lock, Dest, Node, NodeConfig, NodeError, Process};
use pyo3::exceptions::{PyConnectionError, PyTimeoutError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pyo3::create_exception!(
    _erlnode,
    NodeClosedError,
    PyConnectionError,
    r#"The node (or mailbox) is closed: raised by what needs it open.

    Example::

        node.close()
        try:
            mbox.receive(timeout=1.0)
        except erlnode.NodeClosedError:
            print("the node is closed")
    "#
);
pyo3::create_exception!(
    _erlnode,
    EpmdError,
    PyConnectionError,
    r#"The node could not register with EPMD (nor serve EPMD itself).

    Example::

        try:
            node = erlnode.Node("py", cookie="secret")
        except erlnode.EpmdError as e:
            sys.exit(f"cannot start the node: {e}")
            # name 'py' is already registered with the EPMD at 127.0.0.1:4369
    "#
);

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

pub(super) fn to_duration(seconds: f64) -> PyResult<Duration> {
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
    pub(super) node: Node,
    dispatcher: Dispatcher,
    /// The pid anonymous sends come from (never receives anything).
    anonymous: Mutex<Option<Arc<Process>>>,
    /// How the text of every message the node's mailboxes receive is decoded, and how their
    /// `str`s are sent (`strings=`, see [`Strings`]).
    strings: Strings,
}

#[pymethods]
impl PyNode {
    // `ticktime` and `handshake_timeout` in seconds; None takes `NodeConfig::default()`'s
    // (the module's `DEFAULT_TICKTIME`, `DEFAULT_HANDSHAKE_TIMEOUT`).
    #[new]
    #[pyo3(signature = (name=None, cookie=None, *, hidden=true, ticktime=None, epmd_port=None, listen="0.0.0.0:0", handshake_timeout=None, tls=None, allowed_nodes=None, max_message_size=None, strings=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: Option<String>,
        cookie: Option<String>,
        hidden: bool,
        ticktime: Option<f64>,
        epmd_port: Option<u16>,
        listen: &str,
        handshake_timeout: Option<f64>,
        tls: Option<PyRef<'_, PyTlsConfig>>,
        allowed_nodes: Option<Vec<String>>,
        max_message_size: Option<usize>,
        strings: Option<&str>,
    ) -> PyResult<Self> {
        let defaults = NodeConfig::default();
        let strings = Strings::from_name(strings)?;
        let listen: SocketAddr = listen.parse().map_err(|_| {
            PyValueError::new_err(format!("listen address {listen:?} is not ip:port"))
        })?;
        let ticktime = match ticktime {
            Some(seconds) => to_duration(seconds)?,
            None => defaults.ticktime,
        };
        if ticktime < Duration::from_secs(1) {
            return Err(PyValueError::new_err("ticktime must be at least 1 second"));
        }
        let handshake_timeout = match handshake_timeout {
            Some(seconds) => to_duration(seconds)?,
            None => defaults.handshake_timeout,
        };
        let config = NodeConfig {
            name,
            cookie,
            hidden,
            ticktime,
            handshake_timeout,
            listen,
            epmd_port,
            transport: tls.map_or(defaults.transport, |tls| tls.transport()),
            allowed_nodes: allowed_nodes.unwrap_or_default(),
            max_message_size: max_message_size.unwrap_or(defaults.max_message_size),
            lander: Some(super::landing::lander()),
        };
        let node = py.detach(|| Node::start(config)).map_err(node_error)?;
        Ok(PyNode {
            node,
            dispatcher: Dispatcher::default(),
            anonymous: Mutex::new(None),
            strings,
        })
    }

    /// The `strings=` mode's name.
    #[getter]
    fn strings(&self) -> &'static str {
        self.strings.name()
    }

    #[getter]
    fn name(&self) -> String {
        self.node.name().to_string()
    }

    /// Adds to the nodes allowed to connect (`net_kernel:allow/1`).
    fn allow(&self, nodes: Vec<String>) {
        self.node.allow(&nodes);
    }

    /// The nodes allowed to connect (empty: everyone).
    #[getter]
    fn allowed_nodes(&self) -> Vec<String> {
        self.node.allowed()
    }

    /// Whether connections run over TLS.
    #[getter]
    fn tls(&self) -> bool {
        matches!(self.node.transport(), crate::node::Transport::Tls(_))
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
            strings: this.strings,
        });
        if let Some(cb) = callback {
            *lock(&served.callback) = Some(cb);
            this.dispatcher.watch(&served);
        }
        PyMailbox::new(slf.py(), slf.clone().unbind(), served)
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
        send_from(&self.node, &from, dest, message, self.strings)
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

    /// `{"mailboxes": n, "connections": {peer: {...}}}`: see `Node.stats` for the keys.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.node.stats();
        let connections = PyDict::new(py);
        for c in &stats.connections {
            let up_since = c
                .up_since
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let entry = PyDict::new(py);
            entry.set_item("bytes_in", c.bytes_in)?;
            entry.set_item("bytes_out", c.bytes_out)?;
            entry.set_item("messages_in", c.messages_in)?;
            entry.set_item("messages_out", c.messages_out)?;
            entry.set_item("send_queue", c.send_queue)?;
            entry.set_item("bulk_landed", c.bulk_landed)?;
            entry.set_item("bulk_copied", c.bulk_copied)?;
            entry.set_item("last_in", c.last_in.as_secs_f64())?;
            entry.set_item("last_out", c.last_out.as_secs_f64())?;
            entry.set_item("up_since", up_since)?;
            connections.set_item(c.peer.as_str(), entry)?;
        }
        let result = PyDict::new(py);
        result.set_item("mailboxes", stats.mailboxes)?;
        result.set_item("connections", connections)?;
        Ok(result)
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

pub(super) fn parse_pid(obj: &Bound<'_, PyAny>) -> PyResult<Pid> {
    match obj.cast::<PyPid>() {
        Ok(pid) => Ok(pid.get().pid.clone()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "expected a Pid, not {}",
            obj.repr()?
        ))),
    }
}

pub(super) fn parse_reference(obj: &Bound<'_, PyAny>) -> PyResult<crate::etf::Reference> {
    match py_to_term(obj, Strings::default()) {
        Ok(Term::Reference(r)) => Ok(r),
        _ => Err(PyTypeError::new_err(format!(
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

pub(super) fn parse_dest(dest: &Bound<'_, PyAny>) -> PyResult<Dest> {
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

pub(super) fn send_from(
    node: &Node,
    from: &Pid,
    dest: &Bound<'_, PyAny>,
    message: &Bound<'_, PyAny>,
    strings: Strings,
) -> PyResult<()> {
    let dest = parse_dest(dest)?;
    match encode_message(message, strings)? {
        MessageBody::Whole(body) => node.send(from, &dest, bytes::Bytes::from(body)),
        // Big binaries: written without the GIL (the segments hold their objects), which
        // other threads can have meanwhile.
        MessageBody::Segments(segments) => message
            .py()
            .detach(|| node.send_segments(from, &dest, segments)),
    }
    .map_err(node_error)
}
