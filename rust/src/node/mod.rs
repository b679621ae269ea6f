//! The node: its identity, its processes (mailboxes), its connections, and routing.
//!
//! - [`process`]: a local process: message queue, links and monitors.
//! - [`connection`]: the reader and writer tasks of one distribution connection.
//! - [`names`]: node names, host names and cookies as `erl` computes them.
//! - [`runtime`]: the lazily created, fork-aware Tokio runtime.
//!
//! Everything here is plain Rust: the Python layer drives it through [`Node`].

pub mod connection;
mod control_plane;
pub mod names;
pub mod process;
pub mod runtime;
mod signals;
pub mod wake;

use crate::dist::control::Control;
use crate::dist::flags;
use crate::dist::handshake::{self, Arbiter, HandshakeConfig, HandshakeError, PeerState};
use crate::epmd;
use crate::etf::{Atom, Pid, Reference, Term};
use connection::Connection;
pub use process::{lock, Empty, Message, Process};
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// `alive` (short name on this host), `alive@host` (long name when host has a dot), or
    /// None for a name assigned by the first peer (NAME_ME).
    pub name: Option<String>,
    /// None: `~/.erlang.cookie`, as erl.
    pub cookie: Option<String>,
    pub hidden: bool,
    /// `net_ticktime`: a peer silent this long is gone; we tick every quarter of it.
    pub ticktime: Duration,
    /// Time allowed for each handshake step (OTP's `net_setuptime`).
    pub handshake_timeout: Duration,
    /// Where to listen for connections (port 0: any).
    pub listen: SocketAddr,
    /// The EPMD port (None: `ERL_EPMD_PORT` or 4369).
    pub epmd_port: Option<u16>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: None,
            cookie: None,
            hidden: true,
            ticktime: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(7),
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            epmd_port: None,
        }
    }
}

/// Errors of node operations.
#[derive(Debug)]
pub enum NodeError {
    /// Bad configuration (name, cookie).
    Config(String),
    /// The node is closed (or was made in the parent of a forked process).
    Closed,
    /// Could not reach or authenticate with a peer.
    Connect(String),
    /// EPMD registration failed.
    Epmd(String),
    Io(std::io::Error),
    Timeout,
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::Config(m) => write!(f, "{m}"),
            NodeError::Closed => write!(f, "the node is closed"),
            NodeError::Connect(m) => write!(f, "{m}"),
            NodeError::Epmd(m) => write!(f, "{m}"),
            NodeError::Io(e) => write!(f, "{e}"),
            NodeError::Timeout => write!(f, "timed out"),
        }
    }
}

impl std::error::Error for NodeError {}

impl From<std::io::Error> for NodeError {
    fn from(e: std::io::Error) -> Self {
        NodeError::Io(e)
    }
}

/// Where a message goes.
#[derive(Clone, Debug)]
pub enum Dest {
    Pid(Pid),
    /// A registered name on this node.
    Name(Atom),
    /// A registered name on a node (which may be this one).
    Remote(Atom, Atom),
}

/// A message waiting for a connection that is being set up.
struct Queued {
    control: Control,
    payload: Option<bytes::Bytes>,
}

enum Link {
    Connecting {
        queue: Vec<Queued>,
        waiters: Vec<oneshot::Sender<bool>>,
    },
    Up(Arc<Connection>),
}

#[derive(Default)]
struct Table {
    // FxHash: pids are ours, and a peer can look names up but never add one, so a fast
    // hash without a random key is safe here (routing does a lookup per message).
    processes: FxHashMap<u32, Arc<Process>>,
    names: FxHashMap<Atom, Arc<Process>>,
    links: HashMap<Atom, Link>,
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
    node_watchers: Mutex<signals::NodeWatchers>,
    /// The process that SPAWN_REQUESTs are delivered to (the Python RPC server).
    spawn_handler: Mutex<Option<Pid>>,
    /// Ourselves, for tasks that need an owning handle.
    me: std::sync::Weak<Inner>,
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
            Some(rt.block_on(TcpListener::bind(config.listen))?)
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
            node_watchers: Mutex::new(signals::NodeWatchers::default()),
            spawn_handler: Mutex::new(None),
            config,
        });
        if let Some(registration) = registration {
            let alive = names::split(&name).0.to_string();
            let task = rt.spawn(keep_registered(Arc::downgrade(&inner), registration, alive));
            *lock(&inner.epmd_keeper) = Some(task.abort_handle());
        }
        if let Some(listener) = listener {
            let task = rt.spawn(accept_loop(inner.clone(), listener));
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
        let (control, node) = match dest {
            Dest::Pid(pid) if !inner.is_local(&pid.node) => (
                Control::SendSender {
                    from: from.clone(),
                    to: pid.clone(),
                },
                &pid.node,
            ),
            Dest::Remote(name, node) if !inner.is_local(node) => (
                Control::RegSend {
                    from: from.clone(),
                    to_name: name.clone(),
                },
                node,
            ),
            _ => {
                for body in bodies {
                    inner.send(from, dest, body);
                }
                return Ok(());
            }
        };
        let conn = match lock(&inner.table).links.get(node) {
            Some(Link::Up(conn)) => Some(conn.clone()),
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

    /// The nodes we have live connections to.
    pub fn connected_nodes(&self) -> Vec<Atom> {
        lock(&self.inner.table)
            .links
            .iter()
            .filter(|(_, l)| matches!(l, Link::Up(_)))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Closes the connection to `peer` (`erlang:disconnect_node/1`): links across it exit
    /// with `noconnection`, monitors fire. False if there was no connection.
    pub fn disconnect(&self, peer: &str) -> bool {
        let conn = match lock(&self.inner.table).links.get(&Atom::new(peer)) {
            Some(Link::Up(conn)) => conn.clone(),
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
                });
            }
            None => log::debug!("dropped a message to unregistered name {name}"),
        }
    }

    /// Sends a control message to a node, connecting on demand.
    pub(crate) fn send_remote(
        self: &Inner,
        node: &Atom,
        control: Control,
        payload: Option<bytes::Bytes>,
    ) {
        let mut table = lock(&self.table);
        match table.links.get_mut(node) {
            Some(Link::Up(conn)) => {
                let conn = conn.clone();
                drop(table);
                conn.send(&control, payload.as_deref());
            }
            Some(Link::Connecting { queue, .. }) => queue.push(Queued { control, payload }),
            None => {
                if self.is_closed() {
                    return;
                }
                table.links.insert(
                    node.clone(),
                    Link::Connecting {
                        queue: vec![Queued { control, payload }],
                        waiters: Vec::new(),
                    },
                );
                drop(table);
                self.spawn_connect(node.clone());
            }
        }
    }

    /// A receiver that resolves once connected to `node` (true) or failing (false).
    fn connection_waiter(self: &Arc<Self>, node: &Atom) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        let mut table = lock(&self.table);
        match table.links.get_mut(node) {
            Some(Link::Up(_)) => {
                let _ = tx.send(true);
            }
            Some(Link::Connecting { waiters, .. }) => waiters.push(tx),
            None => {
                table.links.insert(
                    node.clone(),
                    Link::Connecting {
                        queue: Vec::new(),
                        waiters: vec![tx],
                    },
                );
                drop(table);
                self.spawn_connect(node.clone());
            }
        }
        rx
    }

    fn spawn_connect(&self, peer: Atom) {
        let me = self.me();
        self.rt.spawn(async move {
            match me.dial(&peer).await {
                Ok(()) => {}
                Err(DialError::LostRace) => me.lost_race(&peer),
                Err(DialError::Failed(e)) => me.give_up_connecting(&peer, &e),
            }
        });
    }

    /// An owning handle on ourselves, from the table of a live node.
    fn me(&self) -> Arc<Inner> {
        self.me
            .upgrade()
            .expect("a node's state outlives its own methods")
    }

    async fn dial(self: &Arc<Self>, peer: &Atom) -> Result<(), DialError> {
        let (alive, host) = names::split(peer.as_str());
        if alive.is_empty() || host.is_empty() {
            return Err(DialError::Failed(format!(
                "{peer} is not a node name (alive@host)"
            )));
        }
        let fail = DialError::Failed;
        let ip = resolve(host).await.map_err(fail)?;
        let epmd_port = self.config.epmd_port.unwrap_or_else(epmd::epmd_port);
        let info = epmd::port_please(SocketAddr::new(ip, epmd_port), alive)
            .await
            .map_err(|e| fail(format!("cannot look up {peer}: {e}")))?
            .ok_or_else(|| fail(format!("{peer} is not registered with EPMD on {host}")))?;
        let addr = SocketAddr::new(ip, info.port);
        let mut stream =
            tokio::time::timeout(self.config.handshake_timeout, TcpStream::connect(addr))
                .await
                .map_err(|_| fail(format!("connecting to {peer} at {addr} timed out")))?
                .map_err(|e| fail(format!("cannot connect to {peer} at {addr}: {e}")))?;
        stream.set_nodelay(true).map_err(|e| fail(e.to_string()))?;
        let config = self.handshake_config();
        let connected = match handshake::initiate(&mut stream, &config, peer.as_str()).await {
            Ok(c) => c,
            Err(HandshakeError::LostRace { .. }) => return Err(DialError::LostRace),
            Err(e) => {
                // Refused by the peer (cookie, flags, policy): worth a warning, unlike a node
                // that is simply not there.
                log::warn!("handshake with {peer} failed: {e}");
                return Err(DialError::Failed(e.to_string()));
            }
        };
        if let Some((name, creation)) = &connected.our_name {
            let mut identity = self.identity.write().unwrap_or_else(|e| e.into_inner());
            identity.name = Atom::new(name);
            identity.creation = *creation;
            identity.named = true;
            log::info!("the peer {peer} named this node {name}");
        }
        self.install(
            stream,
            peer.clone(),
            connected.peer_creation,
            connected.flags,
        );
        Ok(())
    }

    fn handshake_config(&self) -> HandshakeConfig {
        let identity = self.identity.read().unwrap_or_else(|e| e.into_inner());
        let name_me = !identity.named;
        HandshakeConfig {
            name: if name_me {
                names::short_hostname()
            } else {
                identity.name.as_str().to_string()
            },
            creation: identity.creation,
            cookie: self.cookie.clone(),
            flags: if name_me {
                self.flags | flags::NAME_ME
            } else {
                self.flags
            },
            timeout: self.config.handshake_timeout,
            name_me,
            length_prefix: handshake::LengthPrefix::U16,
        }
    }

    /// Makes a connection that finished its handshake live, flushing what waited for it.
    fn install(self: &Arc<Self>, stream: TcpStream, peer: Atom, peer_creation: u32, flags: u64) {
        let tick = self.config.ticktime / 4;
        let started = connection::start(
            self,
            stream,
            peer.clone(),
            peer_creation,
            flags,
            tick,
            self.config.ticktime,
        );
        let conn = match started {
            Ok(conn) => conn,
            Err(e) => {
                log::warn!("lost the connection to {peer} while setting it up: {e}");
                return;
            }
        };
        let mut table = lock(&self.table);
        if self.is_closed() {
            drop(table);
            conn.shutdown();
            return;
        }
        let previous = table.links.insert(peer.clone(), Link::Up(conn.clone()));
        match previous {
            Some(Link::Connecting { queue, waiters }) => {
                for q in queue {
                    conn.send(&q.control, q.payload.as_deref());
                }
                for w in waiters {
                    let _ = w.send(true);
                }
            }
            Some(Link::Up(old)) => {
                log::warn!("replaced a connection to {peer} that was still up");
                old.shutdown();
            }
            None => {}
        }
        drop(table);
        log::info!("connected to {peer}");
        self.node_event(&peer, true);
    }

    /// Our attempt lost a simultaneous-connect race: the peer's own connection is on its
    /// way in and will take over the queue; give up only if it never arrives.
    fn lost_race(&self, peer: &Atom) {
        log::debug!("connection race with {peer}: keeping the incoming one");
        let me = self.me();
        let peer = peer.clone();
        let wait = self.config.handshake_timeout * 2;
        self.rt.spawn(async move {
            tokio::time::sleep(wait).await;
            me.give_up_connecting(&peer, "the incoming connection never completed");
        });
    }

    fn give_up_connecting(&self, peer: &Atom, error: &str) {
        let mut table = lock(&self.table);
        if let Some(Link::Connecting { .. }) = table.links.get(peer) {
            if let Some(Link::Connecting { queue, waiters }) = table.links.remove(peer) {
                drop(table);
                log::info!("cannot connect to {peer}: {error}");
                if !queue.is_empty() {
                    log::warn!(
                        "dropped {} message(s) for unreachable node {peer}",
                        queue.len()
                    );
                }
                for w in waiters {
                    let _ = w.send(false);
                }
                let processes: Vec<Arc<Process>> =
                    lock(&self.table).processes.values().cloned().collect();
                self.node_down(peer, &processes);
            }
        }
    }

    /// Called by the reader task when a connection ends.
    fn connection_lost(&self, conn: &Arc<Connection>, reason: &str) {
        let mut table = lock(&self.table);
        let ours = matches!(table.links.get(&conn.peer), Some(Link::Up(c)) if Arc::ptr_eq(c, conn));
        if ours {
            table.links.remove(&conn.peer);
        }
        let processes: Vec<Arc<Process>> = table.processes.values().cloned().collect();
        drop(table);
        if !ours {
            return;
        }
        if !self.is_closed() {
            log::info!("connection to {} lost: {reason}", conn.peer);
        }
        self.node_down(&conn.peer, &processes);
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
        let links: Vec<Link> = lock(&self.table).links.drain().map(|(_, l)| l).collect();
        for link in links {
            match link {
                // Dropping the connection ends its writer once the queue is written.
                Link::Up(conn) => conn.shutdown(),
                Link::Connecting { waiters, .. } => {
                    for w in waiters {
                        let _ = w.send(false);
                    }
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

/// Why dialing a peer did not give a connection.
enum DialError {
    /// The peer's simultaneous attempt wins; it completes the connection.
    LostRace,
    Failed(String),
}

async fn resolve(host: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| format!("cannot resolve host {host}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .map(|a| a.ip())
        .ok_or_else(|| format!("host {host} has no address"))
}

/// Holds the EPMD registration for the node's life. If the EPMD goes away (the node that
/// served it embedded exited, or `epmd` was killed), registers again, serving EPMD itself
/// when nobody else does, so that peers can still find this node.
async fn keep_registered(
    node: std::sync::Weak<Inner>,
    mut registration: epmd::Registration,
    alive: String,
) {
    loop {
        registration.closed().await;
        let Some(inner) = node.upgrade() else { return };
        if inner.is_closed() {
            return;
        }
        log::warn!("the EPMD closed our registration; registering again");
        let epmd_port = inner.config.epmd_port.unwrap_or_else(epmd::epmd_port);
        let (port, hidden) = (inner.port, inner.config.hidden);
        drop(inner);
        loop {
            match epmd::register_or_serve(epmd_port, &alive, port, hidden).await {
                Ok((renewed, embedded)) => {
                    registration = renewed;
                    if let (Some(embedded), Some(inner)) = (embedded, node.upgrade()) {
                        log::info!("now serving EPMD on port {epmd_port}");
                        *lock(&inner.embedded_epmd) = Some(embedded);
                    }
                    break;
                }
                Err(e) => {
                    log::warn!("cannot register with EPMD again: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if node.upgrade().is_none_or(|n| n.is_closed()) {
                        return;
                    }
                }
            }
        }
    }
}

async fn accept_loop(node: Arc<Inner>, listener: TcpListener) {
    loop {
        let (mut stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let node = node.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let config = node.handshake_config();
            match handshake::accept(&mut stream, &config, &*node).await {
                Ok(connected) => {
                    let peer = Atom::new(&connected.peer_name);
                    node.install(stream, peer, connected.peer_creation, connected.flags);
                }
                Err(HandshakeError::LostRace { node }) => {
                    log::debug!("connection race with {node}: keeping ours")
                }
                Err(e) => log::warn!("refused a connection from {addr}: {e}"),
            }
        });
    }
}

impl Arbiter for Inner {
    fn incoming(&self, peer_name: &str) -> PeerState {
        match lock(&self.table).links.get(&Atom::new(peer_name)) {
            None => PeerState::None,
            Some(Link::Connecting { .. }) => PeerState::Pending,
            Some(Link::Up(_)) => PeerState::Connected,
        }
    }
}
