//! The EPMD client: register this node, look up other nodes, list names.
//!
//! Each call runs under [`TIMEOUT`]. A [`Registration`] owns the TCP connection that EPMD ties
//! the registration to: dropping it unregisters the node.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::proto::{Alive2Resp, NamesResp, NodeInfo, Port2Resp, ProtoError, Request};

/// The well-known EPMD port.
pub const DEFAULT_EPMD_PORT: u16 = 4369;

/// How long one EPMD exchange (connect, ask, answer) may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A NAMES answer larger than this is not from an EPMD we want to trust.
const MAX_NAMES_RESPONSE: usize = 1 << 20;

/// The EPMD port: `ERL_EPMD_PORT` when set to a valid port, as OTP does, else 4369.
pub fn epmd_port() -> u16 {
    port_from_env(std::env::var("ERL_EPMD_PORT").ok().as_deref())
}

fn port_from_env(value: Option<&str>) -> u16 {
    value
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(DEFAULT_EPMD_PORT)
}

/// Why an EPMD call failed.
#[derive(Debug)]
pub enum EpmdError {
    /// Nothing accepted the TCP connection (refused, unreachable, ...).
    NoEpmd { addr: SocketAddr, source: io::Error },
    /// EPMD refused the registration, which it does when the name is taken.
    NameTaken { name: String, addr: SocketAddr },
    /// The name cannot be registered at all (empty, contains `@`, too long).
    InvalidName { name: String, reason: &'static str },
    /// EPMD did not answer within [`TIMEOUT`].
    Timeout { addr: SocketAddr },
    /// The connection broke in the middle of an exchange.
    Io { addr: SocketAddr, source: io::Error },
    /// EPMD answered with bytes we cannot read.
    Protocol {
        addr: SocketAddr,
        source: ProtoError,
    },
    /// An embedded EPMD could not be started.
    Bind { addr: SocketAddr, source: io::Error },
}

impl EpmdError {
    /// True when nothing listens at the EPMD address (as opposed to an EPMD misbehaving).
    pub fn is_connection_refused(&self) -> bool {
        matches!(self, EpmdError::NoEpmd { source, .. }
            if source.kind() == io::ErrorKind::ConnectionRefused)
    }
}

impl fmt::Display for EpmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EpmdError::NoEpmd { addr, source } => write!(f, "no EPMD at {addr} ({source})"),
            EpmdError::NameTaken { name, addr } => {
                write!(
                    f,
                    "name '{name}' is already registered with the EPMD at {addr}"
                )
            }
            EpmdError::InvalidName { name, reason } => {
                write!(f, "cannot register node name '{name}': {reason}")
            }
            EpmdError::Timeout { addr } => {
                write!(f, "the EPMD at {addr} did not answer within {TIMEOUT:?}")
            }
            EpmdError::Io { addr, source } => {
                write!(f, "connection to the EPMD at {addr} failed: {source}")
            }
            EpmdError::Protocol { addr, source } => {
                write!(f, "the EPMD at {addr} sent a malformed answer: {source}")
            }
            EpmdError::Bind { addr, source } => {
                write!(f, "cannot start an embedded EPMD on {addr}: {source}")
            }
        }
    }
}

impl std::error::Error for EpmdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EpmdError::NoEpmd { source, .. }
            | EpmdError::Io { source, .. }
            | EpmdError::Bind { source, .. } => Some(source),
            EpmdError::Protocol { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A live registration with an EPMD. It lasts exactly as long as this value: EPMD drops the
/// name when the connection closes, which happens when this is dropped.
#[derive(Debug)]
pub struct Registration {
    /// The creation EPMD assigned; use it in the handshake and in every pid/port/ref minted.
    pub creation: u32,
    alive: String,
    port: u16,
    epmd: SocketAddr,
    stream: TcpStream,
}

impl Registration {
    /// The registered alive name.
    pub fn alive(&self) -> &str {
        &self.alive
    }

    /// The distribution port that was registered.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The EPMD holding the registration.
    pub fn epmd(&self) -> SocketAddr {
        self.epmd
    }

    /// Resolves when EPMD closes the connection (it died or was restarted), at which point the
    /// name is no longer registered and the node should register again. Cancel-safe: it can
    /// sit in a `select!` and be called again.
    pub async fn closed(&mut self) {
        // EPMD sends nothing after its answer; anything that arrives anyway is ignored.
        let mut scratch = [0u8; 64];
        loop {
            match self.stream.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    }
}

/// Registers `alive` (the part before `@`) with its distribution `port`.
pub async fn register(
    epmd: SocketAddr,
    alive: &str,
    port: u16,
    hidden: bool,
) -> Result<Registration, EpmdError> {
    check_alive(alive)?;
    let request = Request::Alive2(NodeInfo::new(alive, port, hidden));
    let frame = request
        .encode()
        .map_err(|source| EpmdError::Protocol { addr: epmd, source })?;
    with_timeout(epmd, async {
        let mut stream = connect(epmd).await?;
        stream.write_all(&frame).await.map_err(io_err(epmd))?;
        let resp = read_incremental(&mut stream, epmd, Alive2Resp::decode).await?;
        if resp.result != 0 {
            return Err(EpmdError::NameTaken {
                name: alive.to_owned(),
                addr: epmd,
            });
        }
        Ok(Registration {
            creation: resp.creation,
            alive: alive.to_owned(),
            port,
            epmd,
            stream,
        })
    })
    .await
}

/// Looks up `alive` (the part before `@`); `None` when no such node is registered.
pub async fn port_please(epmd: SocketAddr, alive: &str) -> Result<Option<NodeInfo>, EpmdError> {
    let frame = Request::PortPlease2 {
        name: alive.to_owned(),
    }
    .encode()
    .map_err(|source| EpmdError::Protocol { addr: epmd, source })?;
    with_timeout(epmd, async {
        let mut stream = connect(epmd).await?;
        stream.write_all(&frame).await.map_err(io_err(epmd))?;
        match read_incremental(&mut stream, epmd, Port2Resp::decode).await? {
            Port2Resp::Found(info) => Ok(Some(info)),
            Port2Resp::NotFound(_) => Ok(None),
        }
    })
    .await
}

/// All names registered with the EPMD, with their distribution ports.
pub async fn names(epmd: SocketAddr) -> Result<Vec<(String, u16)>, EpmdError> {
    let frame = Request::Names
        .encode()
        .map_err(|source| EpmdError::Protocol { addr: epmd, source })?;
    with_timeout(epmd, async {
        let mut stream = connect(epmd).await?;
        stream.write_all(&frame).await.map_err(io_err(epmd))?;
        // The answer runs until EPMD closes the connection.
        let mut buf = Vec::new();
        (&mut stream)
            .take(MAX_NAMES_RESPONSE as u64 + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(io_err(epmd))?;
        if buf.len() > MAX_NAMES_RESPONSE {
            return Err(EpmdError::Io {
                addr: epmd,
                source: io::Error::new(io::ErrorKind::InvalidData, "NAMES answer too large"),
            });
        }
        let resp =
            NamesResp::decode(&buf).map_err(|source| EpmdError::Protocol { addr: epmd, source })?;
        Ok(resp.names)
    })
    .await
}

/// EPMD would take these names, but no Erlang node could be reached under them.
fn check_alive(alive: &str) -> Result<(), EpmdError> {
    let reason = if alive.is_empty() {
        "it is empty"
    } else if alive.contains('@') {
        "give only the part before '@'"
    } else if alive.len() > 255 {
        "it is longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(EpmdError::InvalidName {
        name: alive.to_owned(),
        reason,
    })
}

async fn connect(epmd: SocketAddr) -> Result<TcpStream, EpmdError> {
    TcpStream::connect(epmd)
        .await
        .map_err(|source| EpmdError::NoEpmd { addr: epmd, source })
}

async fn with_timeout<T>(
    epmd: SocketAddr,
    work: impl std::future::Future<Output = Result<T, EpmdError>>,
) -> Result<T, EpmdError> {
    tokio::time::timeout(TIMEOUT, work)
        .await
        .unwrap_or(Err(EpmdError::Timeout { addr: epmd }))
}

fn io_err(epmd: SocketAddr) -> impl Fn(io::Error) -> EpmdError {
    move |source| EpmdError::Io { addr: epmd, source }
}

/// Reads until `decode` recognises a complete answer. Bytes past the answer are dropped:
/// EPMD sends none (only junk after a refused ALIVE2, which is meaningless).
async fn read_incremental<T>(
    stream: &mut TcpStream,
    epmd: SocketAddr,
    decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, ProtoError>,
) -> Result<T, EpmdError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        if let Some((answer, _)) =
            decode(&buf).map_err(|source| EpmdError::Protocol { addr: epmd, source })?
        {
            return Ok(answer);
        }
        let n = stream.read(&mut chunk).await.map_err(io_err(epmd))?;
        if n == 0 {
            return Err(EpmdError::Io {
                addr: epmd,
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EPMD closed the connection before answering",
                ),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        // Two u16-prefixed fields bound any real answer well below this.
        if buf.len() > 1 << 18 {
            return Err(EpmdError::Io {
                addr: epmd,
                source: io::Error::new(io::ErrorKind::InvalidData, "EPMD answer too large"),
            });
        }
    }
}

#[cfg(test)]
mod tests;
