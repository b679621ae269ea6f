//! How a node is started ([`NodeConfig`], with the defaults every layer above uses) and how
//! its operations fail ([`NodeError`]).

use super::transport::Transport;
use crate::dist::handshake;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// OTP's default `net_ticktime`: a peer silent this long is gone.
pub const DEFAULT_TICKTIME: Duration = Duration::from_secs(60);

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
    /// What carries the distribution connections.
    pub transport: Transport,
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
