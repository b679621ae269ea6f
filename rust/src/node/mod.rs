//! The node: its identity, its processes (mailboxes), its peers, and routing between them.
//!
//! - [`config`]: how a node is started (the defaults) and how its operations fail.
//! - [`transport`]: what carries a connection (plain TCP today); the only place that opens
//!   sockets for connections.
//! - [`peers`]: connecting on demand, accepting, the handshake's outcome installed.
//! - [`connection`]: the reader and writer tasks of one distribution connection.
//! - [`from_peers`]: what the node does with the control messages peers send.
//! - [`from_processes`]: the signals local processes send (links, monitors, exits).
//! - [`process`]: a local process: message queue, links and monitors.
//! - [`registration`]: the EPMD registration, held and renewed.
//! - [`names`]: node names, host names and cookies as `erl` computes them.
//! - [`runtime`]: the lazily created, fork-aware Tokio runtime.
//! - [`wake`]: the descriptor that wakes an asyncio loop.
//!
//! Everything here is plain Rust: the Python layer drives it through [`Node`].

pub mod config;
pub mod connection;
mod from_peers;
mod from_processes;
pub mod names;
mod peers;
pub mod process;
mod registration;
pub mod runtime;
#[cfg(test)]
mod testing;
pub mod transport;
pub mod wake;

#[cfg(test)]
mod tests;

use crate::dist::control::Control;
use crate::dist::flags;
use crate::epmd;
use crate::etf::{Atom, Pid, Reference, Term};
pub use config::{NodeConfig, NodeError, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_TICKTIME};
pub use connection::ConnectionStats;
use peers::Peer;
pub use process::{lock, Empty, Message, Process};
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
pub use transport::{Stream, Transport};

/// Where a message goes.
#[derive(Clone, Debug)]
pub enum Dest {
    Pid(Pid),
    /// A registered name on this node.
    Name(Atom),
    /// A registered name on a node (which may be this one).
    Remote(Atom, Atom),
}

#[derive(Default)]
struct Table {
    // FxHash: pids are ours, and a peer can look names up but never add one, so a fast
    // hash without a random key is safe here (routing does a lookup per message).
    processes: FxHashMap<u32, Arc<Process>>,
    names: FxHashMap<Atom, Arc<Process>>,
    /// Peers connected or being connected to.
    peers: HashMap<Atom, Peer>,
}

struct Identity {
    name: Atom,
    creation: u32,
    /// False for a NAME_ME node until a peer has named it.
    named: bool,
}

/// The shared state behind a [`Node`]; connection tasks hold it too.
pub struct Inner {
    config: NodeConfig,
    rt: Handle,
    /// The fork generation the node was made in: in a forked child it is dead.
    made_in: u32,
    identity: RwLock<Identity>,
    cookie: String,
    flags: u64,
    table: Mutex<Table>,
    next_pid: AtomicU32,
    next_ref: AtomicU64,
    closed: AtomicBool,
    port: u16,
    /// The task that holds our EPMD registration and renews it if the EPMD goes away.
    epmd_keeper: Mutex<Option<tokio::task::AbortHandle>>,
    embedded_epmd: Mutex<Option<epmd::EmbeddedEpmd>>,
    listener: Mutex<Option<tokio::task::AbortHandle>>,
    node_watchers: Mutex<from_processes::NodeWatchers>,
    /// The process that SPAWN_REQUESTs are delivered to (the Python RPC server).
    spawn_handler: Mutex<Option<Pid>>,
    /// Who may connect (`net_kernel:allow/1`); starts as the configuration's list.
    allowed: RwLock<Vec<String>>,
    /// Ourselves, for tasks that need an owning handle.
    me: std::sync::Weak<Inner>,
}

/// How a node stands: [`Node::stats`].
#[derive(Clone, Debug)]
pub struct NodeStats {
    /// Live mailboxes (processes), those of the Python layer's own servers included.
    pub mailboxes: usize,
    /// One per live connection, by peer name.
    pub connections: Vec<ConnectionStats>,
}

/// A node of an Erlang cluster.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl Node {
    /// Starts a node: listens, registers with EPMD (serving EPMD itself when none runs).
    pub fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let (name, named) = match &config.name {
            Some(n) => (names::full_name(n).map_err(NodeError::Config)?.0, true),
            None => ("nonode@nohost".to_string(), false),
        };
        let cookie = match &config.cookie {
            Some(c) => c.clone(),
            None => names::default_cookie()
                .map_err(|e| NodeError::Config(format!("cannot read ~/.erlang.cookie: {e}")))?,
        };
        let rt = runtime::handle()?;
        let mut flags = flags::DEFAULT;
        if !config.hidden {
            flags |= flags::PUBLISHED;
        }
        let listener = if named {
            Some(rt.block_on(config.transport.listen(config.listen))?)
        } else {
            None
        };
        let port = match &listener {
            Some(l) => l.local_addr()?.port(),
            None => 0,
        };
        let mut creation = 0;
        let mut registration = None;
        let mut embedded = None;
        if named {
            let alive = names::split(&name).0.to_string();
            let epmd_port = config.epmd_port.unwrap_or_else(epmd::epmd_port);
            let (reg, emb) = rt
                .block_on(epmd::register_or_serve(
                    epmd_port,
                    &alive,
                    port,
                    config.hidden,
                ))
                .map_err(|e| NodeError::Epmd(e.to_string()))?;
            creation = reg.creation;
            registration = Some(reg);
            embedded = emb;
        }
        let inner = Arc::new_cyclic(|me| Inner {
            me: me.clone(),
            rt: rt.clone(),
            made_in: runtime::fork_generation(),
            identity: RwLock::new(Identity {
                name: Atom::new(&name),
                creation,
                named,
            }),
            cookie,
            flags,
            table: Mutex::new(Table::default()),
            next_pid: AtomicU32::new(1),
            next_ref: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            port,
            epmd_keeper: Mutex::new(None),
            embedded_epmd: Mutex::new(embedded),
            listener: Mutex::new(None),
            node_watchers: Mutex::new(from_processes::NodeWatchers::default()),
            spawn_handler: Mutex::new(None),
            allowed: RwLock::new(config.allowed_nodes.clone()),
            config,
        });
        if let Some(registration) = registration {
            let alive = names::split(&name).0.to_string();
            let task = rt.spawn(registration::keep_registered(
                Arc::downgrade(&inner),
                registration,
                alive,
            ));
            *lock(&inner.epmd_keeper) = Some(task.abort_handle());
        }
        if let Some(listener) = listener {
            let task = rt.spawn(peers::accept_loop(inner.clone(), listener));
            *lock(&inner.listener) = Some(task.abort_handle());
        }
        Ok(Node { inner })
    }

    pub fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    pub fn name(&self) -> Atom {
        self.inner
            .identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .name
            .clone()
    }

    pub fn creation(&self) -> u32 {
        self.inner.creation()
    }

    /// False for a NAME_ME node that no peer has named yet.
    pub fn is_named(&self) -> bool {
        self.inner
            .identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .named
    }

    pub fn cookie(&self) -> &str {
        &self.inner.cookie
    }

    /// The port we listen on (0 for a NAME_ME node, which cannot be dialed).
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    pub fn runtime(&self) -> &Handle {
        &self.inner.rt
    }

    /// Creates a process (a mailbox), registered under `name` if given.
    pub fn spawn_process(&self, name: Option<&str>) -> Result<Arc<Process>, NodeError> {
        self.inner.check_open()?;
        if !self.is_named() {
            return Err(NodeError::Config(
                "this node's name is assigned by its first peer: connect (ping) first".into(),
            ));
        }
        let process = Arc::new(Process::new(self.inner.make_pid()));
        let mut table = lock(&self.inner.table);
        if let Some(name) = name {
            let atom = Atom::new(name);
            if table.names.contains_key(&atom) {
                return Err(NodeError::Config(format!(
                    "name {name:?} is already registered"
                )));
            }
            *lock(&process.name) = Some(atom.clone());
            table.names.insert(atom, process.clone());
        }
        table.processes.insert(process.pid.id, process.clone());
        Ok(process)
    }

    /// Registers an existing process under `name`.
    pub fn register(&self, process: &Arc<Process>, name: &str) -> Result<(), NodeError> {
        self.inner.check_open()?;
        let atom = Atom::new(name);
        let mut table = lock(&self.inner.table);
        if table.names.contains_key(&atom) {
            return Err(NodeError::Config(format!(
                "name {name:?} is already registered"
            )));
        }
        if lock(&process.name).is_some() {
            return Err(NodeError::Config("this mailbox already has a name".into()));
        }
        *lock(&process.name) = Some(atom.clone());
        table.names.insert(atom, process.clone());
        Ok(())
    }

    /// The registered process for `name`, if any.
    pub fn whereis(&self, name: &str) -> Option<Arc<Process>> {
        lock(&self.inner.table).names.get(&Atom::new(name)).cloned()
    }

    /// Closes a process: unregisters it and sends the exit signals and monitor
    /// notifications its death causes.
    pub fn close_process(&self, process: &Arc<Process>, reason: &Term) {
        self.inner.close_process(process, reason);
    }

    /// Sends a message (a term body, no version byte) from `from`. Like Erlang's `!`, it never
    /// fails for an unknown or unreachable destination: such messages are dropped and logged.
    pub fn send(&self, from: &Pid, dest: &Dest, body: bytes::Bytes) -> Result<(), NodeError> {
        self.inner.check_open()?;
        self.inner.send(from, dest, body);
        Ok(())
    }

    /// As [`Node::send`], for a body in segments that join into the term body (e.g. the
    /// encoded term around big binaries left in their own buffers): a connected peer gets
    /// frames written from the segments themselves, anyone else the segments joined.
    pub fn send_segments(
        &self,
        from: &Pid,
        dest: &Dest,
        segments: Vec<bytes::Bytes>,
    ) -> Result<(), NodeError> {
        self.inner.check_open()?;
        let inner = &self.inner;
        if let Some((control, node)) = inner.remote_control(from, dest) {
            let conn = match lock(&inner.table).peers.get(node) {
                Some(Peer::Up(conn)) => Some(conn.clone()),
                _ => None,
            };
            if let Some(conn) = conn {
                conn.send_segments(&control, &segments);
                return Ok(());
            }
        }
        inner.send(from, dest, segments.concat().into());
        Ok(())
    }

    /// Sends many messages from `from` to one destination, in order, with one lock and one
    /// write for the batch when the destination is a connected peer.
    pub fn send_many(
        &self,
        from: &Pid,
        dest: &Dest,
        bodies: Vec<bytes::Bytes>,
    ) -> Result<(), NodeError> {
        self.inner.check_open()?;
        let inner = &self.inner;
        let Some((control, node)) = inner.remote_control(from, dest) else {
            for body in bodies {
                inner.send(from, dest, body);
            }
            return Ok(());
        };
        let conn = match lock(&inner.table).peers.get(node) {
            Some(Peer::Up(conn)) => Some(conn.clone()),
            _ => None,
        };
        match conn {
            Some(conn) => {
                conn.send_many(&control, &bodies);
            }
            None => {
                for body in bodies {
                    inner.send_remote(node, control.clone(), Some(body));
                }
            }
        }
        Ok(())
    }

    pub fn make_ref(&self) -> Reference {
        self.inner.make_ref()
    }

    /// Adds to the nodes allowed to connect, as `net_kernel:allow/1` does (it never removes;
    /// while the list is empty, everyone may connect). See [`config::allows`] for the
    /// entries' forms.
    pub fn allow(&self, nodes: &[String]) {
        let mut allowed = self
            .inner
            .allowed
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for node in nodes {
            if !allowed.contains(node) {
                allowed.push(node.clone());
            }
        }
    }

    /// What carries the node's connections.
    pub fn transport(&self) -> &Transport {
        &self.inner.config.transport
    }

    /// The nodes allowed to connect (empty: everyone).
    pub fn allowed(&self) -> Vec<String> {
        self.inner
            .allowed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The nodes we have live connections to.
    pub fn connected_nodes(&self) -> Vec<Atom> {
        lock(&self.inner.table)
            .peers
            .iter()
            .filter(|(_, l)| matches!(l, Peer::Up(_)))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The node's mailboxes, and what each live connection has carried and how it stands.
    pub fn stats(&self) -> NodeStats {
        let (mailboxes, connections) = {
            let table = lock(&self.inner.table);
            let up: Vec<Arc<connection::Connection>> = table
                .peers
                .values()
                .filter_map(|peer| match peer {
                    Peer::Up(conn) => Some(conn.clone()),
                    Peer::Connecting { .. } => None,
                })
                .collect();
            (table.processes.len(), up)
        };
        // Each connection's counts take its outbox lock: not while holding the table's.
        let mut connections: Vec<ConnectionStats> =
            connections.iter().map(|conn| conn.stats()).collect();
        connections.sort_by(|a, b| a.peer.as_str().cmp(b.peer.as_str()));
        NodeStats {
            mailboxes,
            connections,
        }
    }

    /// Closes the connection to `peer` (`erlang:disconnect_node/1`): links across it exit
    /// with `noconnection`, monitors fire. False if there was no connection.
    pub fn disconnect(&self, peer: &str) -> bool {
        let conn = match lock(&self.inner.table).peers.get(&Atom::new(peer)) {
            Some(Peer::Up(conn)) => conn.clone(),
            _ => return false,
        };
        conn.shutdown();
        self.inner
            .connection_lost(&conn, "disconnected by this node");
        true
    }

    /// Connects to `peer` if not connected; true once connected. Blocks the calling thread
    /// (which must not be a runtime thread).
    pub fn connect(&self, peer: &str, timeout: Duration) -> Result<bool, NodeError> {
        self.inner.check_open()?;
        let waiter = self.inner.connection_waiter(&Atom::new(peer));
        Ok(self.inner.rt.block_on(async {
            matches!(tokio::time::timeout(timeout, waiter).await, Ok(Ok(true)))
        }))
    }

    /// `net_adm:ping`: connects, then asks the peer's `net_kernel` whether it accepts us.
    pub fn ping(&self, peer: &str, timeout: Duration) -> Result<bool, NodeError> {
        let deadline = Instant::now() + timeout;
        if peer == self.name().as_str() {
            return Ok(true);
        }
        if !self.connect(peer, timeout)? {
            return Ok(false);
        }
        let me = self.spawn_process(None)?;
        let tag = self.make_ref();
        let request = Term::Tuple(vec![
            Term::atom("$gen_call"),
            Term::Tuple(vec![
                Term::Pid(me.pid.clone()),
                Term::Reference(tag.clone()),
            ]),
            Term::Tuple(vec![Term::atom("is_auth"), Term::Atom(self.name())]),
        ]);
        let body = Message::from_term(&request).body;
        self.inner.send(
            &me.pid,
            &Dest::Remote(Atom::new("net_kernel"), Atom::new(peer)),
            body,
        );
        let mut answer = false;
        while let Ok(message) = me.wait(Some(deadline)) {
            if let Ok(Term::Tuple(items)) = message.to_term() {
                if items.len() == 2 && items[0] == Term::Reference(tag.clone()) {
                    answer = items[1] == Term::atom("yes");
                    break;
                }
            }
        }
        self.inner.close_process(&me, &Term::atom("normal"));
        Ok(answer)
    }

    /// Closes the node: every process exits, connections close, the EPMD registration ends.
    pub fn close(&self) {
        self.inner.close();
    }
}

impl Inner {
    /// An owning handle on ourselves, from the table of a live node.
    fn me(&self) -> Arc<Inner> {
        self.me
            .upgrade()
            .expect("a node's state outlives its own methods")
    }

    fn check_open(&self) -> Result<(), NodeError> {
        if self.is_closed() || runtime::fork_generation() != self.made_in {
            return Err(NodeError::Closed);
        }
        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn name(&self) -> Atom {
        self.identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .name
            .clone()
    }

    pub fn creation(&self) -> u32 {
        self.identity
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .creation
    }

    fn make_pid(&self) -> Pid {
        let id = self.next_pid.fetch_add(1, Ordering::Relaxed);
        let identity = self.identity.read().unwrap_or_else(|e| e.into_inner());
        Pid {
            node: identity.name.clone(),
            id,
            serial: 0,
            creation: identity.creation,
        }
    }

    pub fn make_ref(&self) -> Reference {
        let n = self.next_ref.fetch_add(1, Ordering::Relaxed);
        let mut salt = [0u8; 4];
        let _ = getrandom::fill(&mut salt);
        let identity = self.identity.read().unwrap_or_else(|e| e.into_inner());
        Reference {
            node: identity.name.clone(),
            creation: identity.creation,
            ids: vec![
                (n & 0x3ffff) as u32,
                (n >> 18) as u32,
                u32::from_be_bytes(salt),
            ],
        }
    }

    fn is_local(&self, node: &Atom) -> bool {
        *node == self.identity.read().unwrap_or_else(|e| e.into_inner()).name
    }

    fn local_process(&self, pid: &Pid) -> Option<Arc<Process>> {
        if !self.is_local(&pid.node) || pid.creation != self.creation() {
            return None;
        }
        lock(&self.table).processes.get(&pid.id).cloned()
    }

    /// The control message that carries a message from `from` to `dest` and the node it goes
    /// to, when that is a peer (None for a local destination).
    fn remote_control<'d>(&self, from: &Pid, dest: &'d Dest) -> Option<(Control, &'d Atom)> {
        match dest {
            Dest::Pid(pid) if !self.is_local(&pid.node) => Some((
                Control::SendSender {
                    from: from.clone(),
                    to: pid.clone(),
                },
                &pid.node,
            )),
            Dest::Remote(name, node) if !self.is_local(node) => Some((
                Control::RegSend {
                    from: from.clone(),
                    to_name: name.clone(),
                },
                node,
            )),
            _ => None,
        }
    }

    fn send(&self, from: &Pid, dest: &Dest, body: bytes::Bytes) {
        match dest {
            Dest::Pid(pid) if self.is_local(&pid.node) => self.deliver_local(pid, body),
            Dest::Name(name) => self.deliver_named(name, body),
            Dest::Remote(name, node) if self.is_local(node) => self.deliver_named(name, body),
            Dest::Pid(pid) => {
                // Goes out as SEND when the peer lacks SEND_SENDER (the encoder decides).
                let control = Control::SendSender {
                    from: from.clone(),
                    to: pid.clone(),
                };
                self.send_remote(&pid.node, control, Some(body));
            }
            Dest::Remote(name, node) => {
                let control = Control::RegSend {
                    from: from.clone(),
                    to_name: name.clone(),
                };
                self.send_remote(node, control, Some(body));
            }
        }
    }

    fn deliver_local(&self, pid: &Pid, body: bytes::Bytes) {
        match self.local_process(pid) {
            Some(p) => {
                if !p.deliver(Message {
                    body,
                    atoms: Arc::from(Vec::new()),
                    bulks: Default::default(),
                }) {
                    log::debug!("dropped a message to closed mailbox {pid:?}");
                }
            }
            None => log::debug!("dropped a message to unknown local pid {pid:?}"),
        }
    }

    fn deliver_named(&self, name: &Atom, body: bytes::Bytes) {
        let process = lock(&self.table).names.get(name).cloned();
        match process {
            Some(p) => {
                p.deliver(Message {
                    body,
                    atoms: Arc::from(Vec::new()),
                    bulks: Default::default(),
                });
            }
            None => log::debug!("dropped a message to unregistered name {name}"),
        }
    }

    fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let processes: Vec<Arc<Process>> = lock(&self.table).processes.values().cloned().collect();
        for p in &processes {
            self.close_process(p, &Term::atom("normal"));
        }
        if let Some(listener) = lock(&self.listener).take() {
            listener.abort();
        }
        let peers: Vec<Peer> = lock(&self.table).peers.drain().map(|(_, p)| p).collect();
        let mut closing = Vec::new();
        for peer in peers {
            match peer {
                // The writer ends once the queue is written.
                Peer::Up(conn) => {
                    conn.shutdown();
                    closing.push(conn);
                }
                Peer::Connecting { waiters, .. } => {
                    for w in waiters {
                        let _ = w.send(false);
                    }
                }
            }
        }
        // Everything a send accepted reaches the peer before `close` returns, even when the
        // program exits right after (the runtime's threads die with it). A thread of the
        // runtime cannot wait: the writers need it.
        if tokio::runtime::Handle::try_current().is_err() {
            for conn in closing {
                if !conn.wait_written(self.config.ticktime) {
                    log::warn!(
                        "closing: {} took nothing for {:?}; unwritten messages dropped",
                        conn.peer,
                        self.config.ticktime
                    );
                }
            }
        }
        if let Some(keeper) = lock(&self.epmd_keeper).take() {
            keeper.abort();
        }
        if let Some(epmd) = lock(&self.embedded_epmd).take() {
            epmd.release();
        }
    }
}
