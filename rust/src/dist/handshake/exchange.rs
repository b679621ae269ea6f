//! The exchange: [`initiate`] and [`accept`] drive the messages over a byte stream, with the
//! node's part ([`HandshakeConfig`], [`Arbiter`]) and the ways a handshake fails.

use super::messages::{
    digest, digest_matches, frame, malformed, read_message, Challenge, ChallengeAck,
    ChallengeReply, Complement, LengthPrefix, SendName, Status, MAX_MESSAGE,
};
use crate::dist::flags;
use std::fmt;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// OTP's default `net_setuptime`: the limit for each handshake step.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(7);

/// What one side needs for a handshake.
#[derive(Clone)]
pub struct HandshakeConfig {
    /// Our full node name `alive@host`; when `name_me` is set, only the host.
    pub name: String,
    /// Our creation (non-zero; ignored with `name_me`, the acceptor assigns one).
    pub creation: u32,
    pub cookie: String,
    /// The flags we advertise (normally [`flags::DEFAULT`], plus `PUBLISHED` when visible).
    pub flags: u64,
    /// The limit for each step (sending or receiving one message).
    pub timeout: Duration,
    /// As initiator: ask the acceptor to name us (`DFLAG_NAME_ME`).
    pub name_me: bool,
    pub length_prefix: LengthPrefix,
}

/// The cookie is left out: it must never reach a log line.
impl fmt::Debug for HandshakeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeConfig")
            .field("name", &self.name)
            .field("creation", &self.creation)
            .field("cookie", &"<hidden>")
            .field("flags", &self.flags)
            .field("timeout", &self.timeout)
            .field("name_me", &self.name_me)
            .field("length_prefix", &self.length_prefix)
            .finish()
    }
}

impl HandshakeConfig {
    /// A TCP configuration with the default flags and timeout.
    pub fn new(name: &str, creation: u32, cookie: &str) -> HandshakeConfig {
        HandshakeConfig {
            name: name.to_string(),
            creation,
            cookie: cookie.to_string(),
            flags: flags::DEFAULT,
            timeout: DEFAULT_TIMEOUT,
            name_me: false,
            length_prefix: LengthPrefix::U16,
        }
    }
}

/// A finished handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connected {
    pub peer_name: String,
    pub peer_creation: u32,
    /// The peer's flags as sent.
    pub peer_flags: u64,
    /// The effective flags: ours AND the peer's (its `MANDATORY_25_DIGEST` expanded).
    pub flags: u64,
    /// The name and creation the acceptor assigned us (initiator with `name_me` only).
    pub our_name: Option<(String, u32)>,
}

/// What the node knows about a peer that is connecting to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// No connection and no attempt of ours: accept.
    None,
    /// Our own connection attempt to this peer is under way: arbitrate by name.
    Pending,
    /// We have a live connection: ask the peer whether that one is dead (`alive`).
    Connected,
    /// Refuse the peer (`not_allowed`), e.g. by policy or while shutting down.
    Refused,
}

/// The node's side of the acceptor's decisions.
pub trait Arbiter: Send + Sync {
    fn incoming(&self, peer_name: &str) -> PeerState;
}

/// With simultaneous attempts between `our_name` and `peer_name`, whether the peer's
/// (incoming) attempt survives. Erlang atom order: the greater name's own attempt wins.
pub fn incoming_wins(our_name: &str, peer_name: &str) -> bool {
    our_name.as_bytes() <= peer_name.as_bytes()
}

#[derive(Debug)]
pub enum HandshakeError {
    /// The digest did not match (or the peer closed right after our digest, which is how
    /// OTP rejects a wrong cookie).
    CookieMismatch {
        node: String,
        detail: &'static str,
    },
    /// The peer answered a status that ends the handshake (`not_allowed`, `alive` then
    /// `false`, ...), or we sent one.
    Refused {
        node: String,
        status: String,
    },
    /// Simultaneous connect: the other attempt between the two nodes wins (`nok`).
    LostRace {
        node: String,
    },
    MissingFlags {
        node: String,
        missing: Vec<&'static str>,
    },
    /// The acceptor's name is not the node we dialed.
    WrongPeer {
        dialed: String,
        got: String,
    },
    Timeout {
        step: &'static str,
    },
    Malformed(String),
    Io(std::io::Error),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::CookieMismatch { node, detail } => {
                write!(f, "cookie mismatch with node {node} ({detail})")
            }
            HandshakeError::Refused { node, status } => {
                write!(f, "connection with node {node} refused: status {status}")
            }
            HandshakeError::LostRace { node } => write!(
                f,
                "simultaneous connection attempts with node {node}: the other attempt wins (nok)"
            ),
            HandshakeError::MissingFlags { node, missing } => write!(
                f,
                "node {node} lacks required distribution flags: {}",
                missing.join(", ")
            ),
            HandshakeError::WrongPeer { dialed, got } => {
                write!(f, "dialed node {dialed} but the peer is {got}")
            }
            HandshakeError::Timeout { step } => write!(f, "handshake timed out ({step})"),
            HandshakeError::Malformed(what) => write!(f, "malformed handshake message: {what}"),
            HandshakeError::Io(e) => write!(f, "handshake I/O error: {e}"),
        }
    }
}

impl std::error::Error for HandshakeError {}

impl From<std::io::Error> for HandshakeError {
    fn from(e: std::io::Error) -> Self {
        HandshakeError::Io(e)
    }
}

/// A random challenge (or creation) from the OS CSPRNG.
fn random_u32() -> Result<u32, HandshakeError> {
    getrandom::u32().map_err(|e| HandshakeError::Io(std::io::Error::other(e)))
}

async fn recv<S: AsyncRead + Unpin>(
    stream: &mut S,
    cfg: &HandshakeConfig,
    step: &'static str,
) -> Result<Vec<u8>, HandshakeError> {
    tokio::time::timeout(cfg.timeout, read_message(stream, cfg.length_prefix))
        .await
        .map_err(|_| HandshakeError::Timeout { step })?
}

async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    cfg: &HandshakeConfig,
    step: &'static str,
    message: &[u8],
) -> Result<(), HandshakeError> {
    if message.len() > MAX_MESSAGE {
        return Err(malformed(format!(
            "{step}: message of {} bytes is too long",
            message.len()
        )));
    }
    let bytes = frame(message, cfg.length_prefix);
    let write = async {
        stream.write_all(&bytes).await?;
        stream.flush().await
    };
    tokio::time::timeout(cfg.timeout, write)
        .await
        .map_err(|_| HandshakeError::Timeout { step })??;
    Ok(())
}

fn is_eof(e: &HandshakeError) -> bool {
    matches!(e, HandshakeError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof)
}

fn check_flags(node: &str, peer_flags: u64, required: u64) -> Result<(), HandshakeError> {
    let missing = flags::missing(peer_flags, required);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(HandshakeError::MissingFlags {
            node: node.to_string(),
            missing,
        })
    }
}

/// `alive@host` with both parts non-empty.
fn is_node_name(name: &str) -> bool {
    matches!(name.split_once('@'), Some((alive, host)) if !alive.is_empty() && !host.is_empty())
}

/// Connects as the initiator over an established stream to the node `peer` (full name).
pub async fn initiate<S>(
    stream: &mut S,
    cfg: &HandshakeConfig,
    peer: &str,
) -> Result<Connected, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let our_flags = if cfg.name_me {
        cfg.flags | flags::NAME_ME
    } else {
        cfg.flags & !flags::NAME_ME
    };
    let hello = SendName {
        flags: our_flags,
        creation: if cfg.name_me { 0 } else { cfg.creation },
        name: cfg.name.clone(),
        legacy: false,
    };
    send(stream, cfg, "send_name", &hello.encode()).await?;

    let mut our_name = None;
    let refused = |status: &str| HandshakeError::Refused {
        node: peer.to_string(),
        status: status.to_string(),
    };
    match Status::decode(&recv(stream, cfg, "recv_status").await?)? {
        Status::Ok | Status::OkSimultaneous => {}
        Status::Nok => {
            return Err(HandshakeError::LostRace {
                node: peer.to_string(),
            })
        }
        Status::NotAllowed => return Err(refused("not_allowed")),
        Status::Alive => {
            // The peer still has a connection from "us": we are dialing, so ours is gone.
            send(stream, cfg, "send_status", &Status::True.encode()).await?;
        }
        Status::Named { name, creation } if cfg.name_me => {
            if !is_node_name(&name) {
                return Err(malformed(format!(
                    "assigned name {name:?} is not alive@host"
                )));
            }
            our_name = Some((name, creation));
        }
        other => return Err(malformed(format!("unexpected status {other:?}"))),
    }
    if cfg.name_me && our_name.is_none() {
        return Err(malformed("the acceptor did not assign us a name"));
    }

    let challenge = Challenge::decode(&recv(stream, cfg, "recv_challenge").await?)?;
    if challenge.name != peer {
        return Err(HandshakeError::WrongPeer {
            dialed: peer.to_string(),
            got: challenge.name,
        });
    }
    check_flags(peer, challenge.flags, flags::REQUIRED)?;

    let ours = random_u32()?;
    let reply = ChallengeReply {
        challenge: ours,
        digest: digest(&cfg.cookie, challenge.challenge),
    };
    send(stream, cfg, "send_challenge_reply", &reply.encode()).await?;

    let ack = match recv(stream, cfg, "recv_challenge_ack").await {
        Ok(bytes) => ChallengeAck::decode(&bytes)?,
        Err(e) if is_eof(&e) => {
            return Err(HandshakeError::CookieMismatch {
                node: peer.to_string(),
                detail: "the peer closed the connection after our challenge reply",
            })
        }
        Err(e) => return Err(e),
    };
    if !digest_matches(&ack.digest, &digest(&cfg.cookie, ours)) {
        return Err(HandshakeError::CookieMismatch {
            node: peer.to_string(),
            detail: "wrong digest in the challenge ack",
        });
    }
    Ok(Connected {
        peer_name: challenge.name,
        peer_creation: challenge.creation,
        peer_flags: challenge.flags,
        flags: our_flags & flags::expand(challenge.flags) & !flags::NAME_ME,
        our_name,
    })
}

/// A random alive part for a `NAME_ME` peer: 12 characters of `[A-Z0-9]`, like OTP's.
fn random_alive() -> Result<String, HandshakeError> {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut raw = [0u8; 12];
    getrandom::fill(&mut raw).map_err(|e| HandshakeError::Io(std::io::Error::other(e)))?;
    Ok(raw
        .iter()
        .map(|&b| CHARS[b as usize % CHARS.len()] as char)
        .collect())
}

/// Accepts a connection as the acceptor; `arbiter` tells what the node knows of the peer.
pub async fn accept<S>(
    stream: &mut S,
    cfg: &HandshakeConfig,
    arbiter: &dyn Arbiter,
) -> Result<Connected, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let hello = SendName::decode(&recv(stream, cfg, "recv_name").await?)?;
    let name_me = !hello.legacy && hello.flags & flags::NAME_ME != 0;
    let peer_name = if name_me {
        if hello.name.is_empty() || hello.name.contains('@') {
            return Err(malformed(format!(
                "NAME_ME with {:?} instead of a host name",
                hello.name
            )));
        }
        format!("{}@{}", random_alive()?, hello.name)
    } else {
        if !is_node_name(&hello.name) {
            return Err(malformed(format!(
                "node name {:?} is not alive@host",
                hello.name
            )));
        }
        hello.name.clone()
    };

    // A legacy peer sends its high flag bits later: check what it has sent so far.
    let required_now = if hello.legacy {
        flags::REQUIRED & 0xFFFF_FFFF
    } else {
        flags::REQUIRED
    };
    if let Err(e) = check_flags(&peer_name, hello.flags, required_now) {
        let _ = send(stream, cfg, "send_status", &Status::NotAllowed.encode()).await;
        return Err(e);
    }

    let mut peer_creation = hello.creation;
    let mut our_flags = cfg.flags & !flags::NAME_ME;
    if name_me {
        // A dynamically named node is always hidden; the acceptor echoes NAME_ME.
        our_flags = (our_flags & !flags::PUBLISHED) | flags::NAME_ME;
        peer_creation = loop {
            let c = random_u32()?;
            if c != 0 {
                break c;
            }
        };
        let named = Status::Named {
            name: peer_name.clone(),
            creation: peer_creation,
        };
        send(stream, cfg, "send_status", &named.encode()).await?;
    } else {
        match arbiter.incoming(&peer_name) {
            PeerState::None => send(stream, cfg, "send_status", &Status::Ok.encode()).await?,
            PeerState::Pending => {
                if incoming_wins(&cfg.name, &peer_name) {
                    send(stream, cfg, "send_status", &Status::OkSimultaneous.encode()).await?;
                } else {
                    send(stream, cfg, "send_status", &Status::Nok.encode()).await?;
                    return Err(HandshakeError::LostRace { node: peer_name });
                }
            }
            PeerState::Connected => {
                send(stream, cfg, "send_status", &Status::Alive.encode()).await?;
                match Status::decode(&recv(stream, cfg, "recv_status").await?)? {
                    Status::True => {}
                    Status::False => {
                        return Err(HandshakeError::Refused {
                            node: peer_name,
                            status: "alive (the peer answered false)".to_string(),
                        })
                    }
                    other => {
                        return Err(malformed(format!(
                            "expected true/false after alive, got {other:?}"
                        )))
                    }
                }
            }
            PeerState::Refused => {
                send(stream, cfg, "send_status", &Status::NotAllowed.encode()).await?;
                return Err(HandshakeError::Refused {
                    node: peer_name,
                    status: "not_allowed (by us)".to_string(),
                });
            }
        }
    }

    let ours = random_u32()?;
    let challenge = Challenge {
        flags: our_flags,
        challenge: ours,
        creation: cfg.creation,
        name: cfg.name.clone(),
    };
    send(stream, cfg, "send_challenge", &challenge.encode()).await?;

    let mut peer_flags = hello.flags;
    if hello.legacy {
        let c = Complement::decode(&recv(stream, cfg, "recv_complement").await?)?;
        peer_flags |= (c.flags_high as u64) << 32;
        peer_creation = c.creation;
        check_flags(&peer_name, peer_flags, flags::REQUIRED)?;
    }

    let reply = ChallengeReply::decode(&recv(stream, cfg, "recv_challenge_reply").await?)?;
    if !digest_matches(&reply.digest, &digest(&cfg.cookie, ours)) {
        return Err(HandshakeError::CookieMismatch {
            node: peer_name,
            detail: "wrong digest in the challenge reply",
        });
    }
    let ack = ChallengeAck {
        digest: digest(&cfg.cookie, reply.challenge),
    };
    send(stream, cfg, "send_challenge_ack", &ack.encode()).await?;

    Ok(Connected {
        peer_name,
        peer_creation,
        peer_flags,
        flags: our_flags & flags::expand(peer_flags) & !flags::NAME_ME,
        our_name: None,
    })
}
