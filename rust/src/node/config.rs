//! How a node is started ([`NodeConfig`], with the defaults every layer above uses) and how
//! its operations fail ([`NodeError`]).

use super::transport::Transport;
use crate::dist::handshake;
use crate::dist::packet::bulk::Lander;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// OTP's default `net_ticktime`: a peer silent this long is gone.
pub const DEFAULT_TICKTIME: Duration = Duration::from_secs(60);

/// The largest message (and frame) a node accepts unless told otherwise. Erlang has no
/// limit; a bound keeps a broken or hostile peer from making us buffer gigabytes. Bulk
/// transfers of single binaries above it need a larger `max_message_size`.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 256 << 20;

/// How to start a node.
#[derive(Clone)]
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
    /// What carries the distribution connections.
    pub transport: Transport,
    /// Who may connect, as `net_kernel:allow/1` takes it (see [`allows`]); empty: everyone.
    pub allowed_nodes: Vec<String>,
    /// The largest frame and the largest reassembled message accepted from a peer: a peer
    /// that sends more is logged and disconnected.
    pub max_message_size: usize,
    /// Makes the destinations of large binaries received (Python's `bytes` objects, from the
    /// Python layer); None: plain buffers.
    pub lander: Option<Arc<dyn Lander>>,
}

/// The cookie is left out: it must never reach a log line.
impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("name", &self.name)
            .field("cookie", &self.cookie.as_ref().map(|_| "<hidden>"))
            .field("hidden", &self.hidden)
            .field("ticktime", &self.ticktime)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("listen", &self.listen)
            .field("epmd_port", &self.epmd_port)
            .field("transport", &self.transport)
            .field("allowed_nodes", &self.allowed_nodes)
            .field("max_message_size", &self.max_message_size)
            .field("lander", &self.lander.is_some())
            .finish()
    }
}

/// Whether the node `peer` (`alive@host`) may connect under the allow list `allowed`, with
/// `net_kernel:allow/1`'s meaning: an empty list lets everyone in; an entry is a full node
/// name, a host (`"host"`: any node on it), or a name (`"alive@"`: on any host).
pub fn allows(allowed: &[String], peer: &str) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let (alive, host) = super::names::split(peer);
    allowed.iter().any(|entry| match entry.split_once('@') {
        None => entry == host,
        Some((name, "")) => name == alive,
        Some(_) => entry == peer,
    })
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: None,
            cookie: None,
            hidden: true,
            ticktime: DEFAULT_TICKTIME,
            handshake_timeout: handshake::DEFAULT_TIMEOUT,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            epmd_port: None,
            transport: Transport::default(),
            allowed_nodes: Vec::new(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            lander: None,
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
