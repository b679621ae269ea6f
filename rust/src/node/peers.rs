//! The node's peers: connecting on demand (EPMD lookup, the transport, the handshake),
//! accepting, installing a connection that finished its handshake, and noticing it end.
//! Messages for a peer still being connected to wait, in order, until it is up.

use super::connection::{self, Connection};
use super::transport::{tls, Accepted, ConnectError, Stream};
use super::{config, lock, names, Inner, Process};
use crate::dist::control::Control;
use crate::dist::flags;
use crate::dist::handshake::{self, Arbiter, HandshakeConfig, HandshakeError, PeerState};
use crate::epmd;
use crate::etf::Atom;
use rustls::pki_types::CertificateDer;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A message waiting for a connection that is being set up.
pub(super) struct Queued {
    control: Control,
    payload: Option<bytes::Bytes>,
}

/// Where the node stands with a peer it has a connection to, or is connecting to.
pub(super) enum Peer {
    Connecting {
        queue: Vec<Queued>,
        waiters: Vec<oneshot::Sender<bool>>,
    },
    Up(Arc<Connection>),
}

impl Inner {
    /// Sends a control message to a node, connecting on demand.
    pub(crate) fn send_remote(
        self: &Inner,
        node: &Atom,
        control: Control,
        payload: Option<bytes::Bytes>,
    ) {
        let mut table = lock(&self.table);
        match table.peers.get_mut(node) {
            Some(Peer::Up(conn)) => {
                let conn = conn.clone();
                drop(table);
                conn.send(&control, payload.as_deref());
            }
            Some(Peer::Connecting { queue, .. }) => queue.push(Queued { control, payload }),
            None => {
                if self.is_closed() {
                    return;
                }
                table.peers.insert(
                    node.clone(),
                    Peer::Connecting {
                        queue: vec![Queued { control, payload }],
                        waiters: Vec::new(),
                    },
                );
                drop(table);
                self.spawn_connect(node.clone());
            }
        }
    }

    /// Sends a signal over a live connection only: a signal for a node we are not connected
    /// to has nobody to reach.
    pub(crate) fn send_existing(&self, node: &Atom, control: Control) {
        let conn = match lock(&self.table).peers.get(node) {
            Some(Peer::Up(c)) => Some(c.clone()),
            _ => None,
        };
        if let Some(c) = conn {
            c.send(&control, None);
        }
    }

    /// A receiver that resolves once connected to `node` (true) or failing (false).
    pub(super) fn connection_waiter(self: &Arc<Self>, node: &Atom) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        let mut table = lock(&self.table);
        match table.peers.get_mut(node) {
            Some(Peer::Up(_)) => {
                let _ = tx.send(true);
            }
            Some(Peer::Connecting { waiters, .. }) => waiters.push(tx),
            None => {
                table.peers.insert(
                    node.clone(),
                    Peer::Connecting {
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

    /// Looks `peer` up with the EPMD of its host, connects and completes the handshake.
    pub(super) async fn dial(self: &Arc<Self>, peer: &Atom) -> Result<(), DialError> {
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
        let transport = &self.config.transport;
        let stream = match transport
            .connect(addr, host, self.config.handshake_timeout)
            .await
        {
            Ok(stream) => stream,
            Err(ConnectError::Unreachable(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(fail(format!("connecting to {peer} at {addr} timed out")));
            }
            Err(ConnectError::Unreachable(e)) => {
                return Err(fail(format!("cannot connect to {peer} at {addr}: {e}")));
            }
            Err(ConnectError::Refused(why)) => {
                log::warn!(target: "handshake", peer = peer.as_str(); "TLS handshake with {peer} failed: {why}");
                return Err(fail(format!("TLS handshake with {peer} failed: {why}")));
            }
        };
        self.initiate(stream, peer).await
    }

    /// Our side of the handshake as the initiator over `stream`, then the connection is
    /// installed.
    pub(crate) async fn initiate(
        self: &Arc<Self>,
        mut stream: Stream,
        peer: &Atom,
    ) -> Result<(), DialError> {
        let config = self.handshake_config();
        let connected = match handshake::initiate(&mut stream, &config, peer.as_str()).await {
            Ok(c) => c,
            Err(HandshakeError::LostRace { .. }) => return Err(DialError::LostRace),
            Err(e) => {
                // Refused by the peer (cookie, flags, policy): worth a warning, unlike a node
                // that is simply not there.
                log::warn!(target: "handshake", peer = peer.as_str(); "handshake with {peer} failed: {e}");
                return Err(DialError::Failed(e.to_string()));
            }
        };
        if let Some((name, creation)) = &connected.our_name {
            let mut identity = self.identity.write().unwrap_or_else(|e| e.into_inner());
            identity.name = Atom::new(name);
            identity.creation = *creation;
            identity.named = true;
            log::info!(target: "handshake", peer = peer.as_str(); "the peer {peer} named this node {name}");
        }
        self.install(
            stream,
            peer.clone(),
            connected.peer_creation,
            connected.flags,
        );
        Ok(())
    }

    /// The acceptor's side of the handshake over the accepted stream (which came from
    /// `from`), then the connection is installed.
    pub(crate) async fn accept(self: &Arc<Self>, accepted: Accepted, from: &str) {
        let Accepted {
            mut stream,
            certificate,
        } = accepted;
        let config = self.handshake_config();
        let gate = Gate {
            node: self,
            certificate,
        };
        match handshake::accept(&mut stream, &config, &gate).await {
            Ok(connected) => {
                let peer = Atom::new(&connected.peer_name);
                self.install(stream, peer, connected.peer_creation, connected.flags);
            }
            Err(HandshakeError::LostRace { node }) => {
                log::debug!(target: "handshake", peer = node.as_str(); "connection race with {node}: keeping ours")
            }
            Err(e) => log::warn!(target: "handshake", "refused a connection from {from}: {e}"),
        }
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
            length_prefix: self.config.transport.length_prefix(),
        }
    }

    /// Makes a connection that finished its handshake live, flushing what waited for it.
    fn install(self: &Arc<Self>, stream: Stream, peer: Atom, peer_creation: u32, flags: u64) {
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
                log::warn!(target: "connection", peer = peer.as_str(); "lost the connection to {peer} while setting it up: {e}");
                return;
            }
        };
        let mut table = lock(&self.table);
        if self.is_closed() {
            drop(table);
            conn.shutdown();
            return;
        }
        let previous = table.peers.insert(peer.clone(), Peer::Up(conn.clone()));
        match previous {
            Some(Peer::Connecting { queue, waiters }) => {
                for q in queue {
                    conn.send(&q.control, q.payload.as_deref());
                }
                for w in waiters {
                    let _ = w.send(true);
                }
            }
            Some(Peer::Up(old)) => {
                log::warn!(target: "connection", peer = peer.as_str(); "replaced a connection to {peer} that was still up");
                old.shutdown();
            }
            None => {}
        }
        drop(table);
        log::info!(target: "connection", peer = peer.as_str(); "connected to {peer}");
        self.node_event(&peer, true);
    }

    /// Our attempt lost a simultaneous-connect race: the peer's own connection is on its
    /// way in and will take over the queue; give up only if it never arrives.
    fn lost_race(&self, peer: &Atom) {
        log::debug!(target: "handshake", peer = peer.as_str(); "connection race with {peer}: keeping the incoming one");
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
        if let Some(Peer::Connecting { .. }) = table.peers.get(peer) {
            if let Some(Peer::Connecting { queue, waiters }) = table.peers.remove(peer) {
                drop(table);
                log::info!(target: "connection", peer = peer.as_str(); "cannot connect to {peer}: {error}");
                if !queue.is_empty() {
                    log::warn!(
                        target: "connection", peer = peer.as_str();
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
    pub(super) fn connection_lost(&self, conn: &Arc<Connection>, reason: &str) {
        let mut table = lock(&self.table);
        let ours = matches!(table.peers.get(&conn.peer), Some(Peer::Up(c)) if Arc::ptr_eq(c, conn));
        if ours {
            table.peers.remove(&conn.peer);
        }
        let processes: Vec<Arc<Process>> = table.processes.values().cloned().collect();
        drop(table);
        if !ours {
            return;
        }
        if !self.is_closed() {
            log::info!(target: "connection", peer = conn.peer.as_str(); "connection to {} lost: {reason}", conn.peer);
        }
        self.node_down(&conn.peer, &processes);
    }
}

/// Why dialing a peer did not give a connection.
#[derive(Debug)]
pub(crate) enum DialError {
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

/// Takes connections from the listener; each runs its transport's set-up and the handshake
/// in a task of its own, so a slow or silent peer holds up no one else.
pub(super) async fn accept_loop(node: Arc<Inner>, listener: TcpListener) {
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!(target: "connection", "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let node = node.clone();
        tokio::spawn(async move {
            let timeout = node.config.handshake_timeout;
            match node.config.transport.accept(tcp, timeout).await {
                Ok(accepted) => node.accept(accepted, &addr.to_string()).await,
                Err(why) => {
                    log::warn!(target: "handshake", "refused a connection from {addr}: {why}")
                }
            }
        });
    }
}

/// What the acceptor's handshake asks of the node about one incoming peer: whether it may
/// connect at all (the allow list, and the host its certificate names), then where the node
/// stands with it.
struct Gate<'a> {
    node: &'a Inner,
    certificate: Option<CertificateDer<'static>>,
}

impl Arbiter for Gate<'_> {
    fn incoming(&self, peer_name: &str) -> PeerState {
        let allowed = self.node.allowed.read().unwrap_or_else(|e| e.into_inner());
        if !config::allows(&allowed, peer_name) {
            log::warn!(target: "handshake", peer = peer_name; "refused a connection from disallowed node {peer_name}");
            return PeerState::Refused;
        }
        drop(allowed);
        let host = names::split(peer_name).1;
        if let Some(certificate) = &self.certificate {
            if !tls::certificate_names(certificate, host) {
                log::warn!(target: "handshake", peer = peer_name; "refused {peer_name}: its certificate does not name the host {host}");
                return PeerState::Refused;
            }
        }
        self.node.incoming(peer_name)
    }
}

impl Arbiter for Inner {
    fn incoming(&self, peer_name: &str) -> PeerState {
        match lock(&self.table).peers.get(&Atom::new(peer_name)) {
            None => PeerState::None,
            Some(Peer::Connecting { .. }) => PeerState::Pending,
            Some(Peer::Up(_)) => PeerState::Connected,
        }
    }
}
