//! The distribution handshake, version 6 (OTP 23+), both directions.
//!
//! <https://www.erlang.org/doc/apps/erts/erl_dist_protocol.html#distribution-handshake>
//!
//! The messages are plain types with `encode`/`decode` (the bytes after the length prefix);
//! [`initiate`] and [`accept`] drive them over any byte stream. The stream is the only seam
//! to the transport: TCP uses 2-byte length prefixes during the handshake, TLS distribution
//! uses 4-byte ones ([`LengthPrefix`]).
//!
//! Simultaneous connect (both nodes dial each other): the acceptor that already has its own
//! attempt pending compares the two node names as Erlang atoms (UTF-8 byte order, which is
//! code point order). If **our** name is greater we answer `nok` (our own outgoing attempt
//! wins); otherwise `ok_simultaneous` (the incoming one wins and the node must drop its own
//! outgoing attempt). This is OTP's rule (`net_kernel`, `accept_pending`: `MyNode > Node`
//! → `nok_pending`); [`incoming_wins`] states it for the node.

use super::flags;
use md5::{Digest, Md5};
use std::fmt;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest handshake message we accept (names are at most a few hundred bytes).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// OTP's default `net_setuptime`: the limit for each handshake step.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(7);

/// The size of the length prefix of each handshake message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LengthPrefix {
    /// 2 bytes: plain TCP distribution.
    U16,
    /// 4 bytes: TLS distribution (`inet_tls_dist`).
    U32,
}

impl LengthPrefix {
    fn size(self) -> usize {
        match self {
            LengthPrefix::U16 => 2,
            LengthPrefix::U32 => 4,
        }
    }
}

/// What one side needs for a handshake.
#[derive(Clone, Debug)]
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

fn malformed(what: impl Into<String>) -> HandshakeError {
    HandshakeError::Malformed(what.into())
}

/// MD5 of the cookie followed by the challenge in decimal.
pub fn digest(cookie: &str, challenge: u32) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(cookie.as_bytes());
    md5.update(challenge.to_string().as_bytes());
    md5.finalize().into()
}

/// A random challenge (or creation) from the OS CSPRNG.
fn random_u32() -> Result<u32, HandshakeError> {
    getrandom::u32().map_err(|e| HandshakeError::Io(std::io::Error::other(e)))
}

/// A field-by-field reader over one message body.
struct Fields<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Fields<'a> {
    fn new(data: &'a [u8], tag: u8, what: &'static str) -> Result<Fields<'a>, HandshakeError> {
        match data.split_first() {
            Some((&t, rest)) if t == tag => Ok(Fields { data: rest, what }),
            Some((&t, _)) => Err(malformed(format!(
                "expected {what} (tag {:?}), got tag {t}",
                tag as char
            ))),
            None => Err(malformed(format!("empty message instead of {what}"))),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], HandshakeError> {
        if n > self.data.len() {
            return Err(malformed(format!("{} is truncated", self.what)));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, HandshakeError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, HandshakeError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, HandshakeError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn digest(&mut self) -> Result<[u8; 16], HandshakeError> {
        Ok(self.take(16)?.try_into().expect("16 bytes"))
    }

    fn text(&mut self, n: usize) -> Result<String, HandshakeError> {
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec())
            .map_err(|_| malformed(format!("node name in {} is not UTF-8", self.what)))
    }

    fn rest_text(&mut self) -> Result<String, HandshakeError> {
        let n = self.data.len();
        self.text(n)
    }

    fn finish(&self) -> Result<(), HandshakeError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(malformed(format!("trailing bytes after {}", self.what)))
        }
    }
}

/// `send_name`, initiator to acceptor. `N` (version 6), or the legacy `n` (version 5, only
/// the low 32 flag bits; a [`Complement`] follows the challenge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendName {
    pub flags: u64,
    /// 0 in the legacy form (it arrives in the complement) and with `NAME_ME`.
    pub creation: u32,
    /// `alive@host`, or only the host with `NAME_ME`.
    pub name: String,
    pub legacy: bool,
}

impl SendName {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(15 + self.name.len());
        if self.legacy {
            out.push(b'n');
            out.extend_from_slice(&5u16.to_be_bytes());
            out.extend_from_slice(&(self.flags as u32).to_be_bytes());
        } else {
            out.push(b'N');
            out.extend_from_slice(&self.flags.to_be_bytes());
            out.extend_from_slice(&self.creation.to_be_bytes());
            out.extend_from_slice(&(self.name.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(self.name.as_bytes());
        out
    }

    /// Bytes after the name of an `N` message are ignored (the protocol reserves them).
    pub fn decode(data: &[u8]) -> Result<SendName, HandshakeError> {
        if data.first() == Some(&b'n') {
            let mut f = Fields::new(data, b'n', "send_name")?;
            let _version = f.u16()?;
            let flags = f.u32()? as u64;
            let name = f.rest_text()?;
            return Ok(SendName {
                flags,
                creation: 0,
                name,
                legacy: true,
            });
        }
        let mut f = Fields::new(data, b'N', "send_name")?;
        let flags = f.u64()?;
        let creation = f.u32()?;
        let len = f.u16()? as usize;
        let name = f.text(len)?;
        Ok(SendName {
            flags,
            creation,
            name,
            legacy: false,
        })
    }
}

/// `send_status` (`s` + text), and the initiator's answer to `alive`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    OkSimultaneous,
    Nok,
    NotAllowed,
    Alive,
    /// The initiator's answer to `alive`: its old connection is gone, continue.
    True,
    False,
    /// The answer to `NAME_ME`: the name and creation assigned to the initiator.
    Named {
        name: String,
        creation: u32,
    },
}

impl Status {
    pub fn encode(&self) -> Vec<u8> {
        let text: &str = match self {
            Status::Ok => "ok",
            Status::OkSimultaneous => "ok_simultaneous",
            Status::Nok => "nok",
            Status::NotAllowed => "not_allowed",
            Status::Alive => "alive",
            Status::True => "true",
            Status::False => "false",
            Status::Named { name, creation } => {
                let mut out = b"snamed:".to_vec();
                out.extend_from_slice(&(name.len() as u16).to_be_bytes());
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(&creation.to_be_bytes());
                return out;
            }
        };
        let mut out = vec![b's'];
        out.extend_from_slice(text.as_bytes());
        out
    }

    pub fn decode(data: &[u8]) -> Result<Status, HandshakeError> {
        let mut f = Fields::new(data, b's', "send_status")?;
        if f.data.starts_with(b"named:") {
            f.take(6)?;
            let len = f.u16()? as usize;
            let name = f.text(len)?;
            let creation = f.u32()?;
            // Bytes after the creation are reserved for extensions and ignored.
            return Ok(Status::Named { name, creation });
        }
        Ok(match f.data {
            b"ok" => Status::Ok,
            b"ok_simultaneous" => Status::OkSimultaneous,
            b"nok" => Status::Nok,
            b"not_allowed" => Status::NotAllowed,
            b"alive" => Status::Alive,
            b"true" => Status::True,
            b"false" => Status::False,
            other => {
                return Err(malformed(format!(
                    "unknown status {:?}",
                    String::from_utf8_lossy(other)
                )))
            }
        })
    }
}

/// `send_challenge` (`N`), acceptor to initiator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub flags: u64,
    pub challenge: u32,
    pub creation: u32,
    pub name: String,
}

impl Challenge {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(19 + self.name.len());
        out.push(b'N');
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend_from_slice(&self.challenge.to_be_bytes());
        out.extend_from_slice(&self.creation.to_be_bytes());
        out.extend_from_slice(&(self.name.len() as u16).to_be_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out
    }

    /// Bytes after the name are ignored (reserved).
    pub fn decode(data: &[u8]) -> Result<Challenge, HandshakeError> {
        let mut f = Fields::new(data, b'N', "send_challenge")?;
        let flags = f.u64()?;
        let challenge = f.u32()?;
        let creation = f.u32()?;
        let len = f.u16()? as usize;
        let name = f.text(len)?;
        Ok(Challenge {
            flags,
            challenge,
            creation,
            name,
        })
    }
}

/// `send_complement` (`c`): the rest of a legacy `n` initiator's flags and its creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Complement {
    pub flags_high: u32,
    pub creation: u32,
}

impl Complement {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![b'c'];
        out.extend_from_slice(&self.flags_high.to_be_bytes());
        out.extend_from_slice(&self.creation.to_be_bytes());
        out
    }

    pub fn decode(data: &[u8]) -> Result<Complement, HandshakeError> {
        let mut f = Fields::new(data, b'c', "send_complement")?;
        let flags_high = f.u32()?;
        let creation = f.u32()?;
        f.finish()?;
        Ok(Complement {
            flags_high,
            creation,
        })
    }
}

/// `send_challenge_reply` (`r`): the initiator's own challenge and its digest of ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeReply {
    pub challenge: u32,
    pub digest: [u8; 16],
}

impl ChallengeReply {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![b'r'];
        out.extend_from_slice(&self.challenge.to_be_bytes());
        out.extend_from_slice(&self.digest);
        out
    }

    pub fn decode(data: &[u8]) -> Result<ChallengeReply, HandshakeError> {
        let mut f = Fields::new(data, b'r', "send_challenge_reply")?;
        let challenge = f.u32()?;
        let digest = f.digest()?;
        f.finish()?;
        Ok(ChallengeReply { challenge, digest })
    }
}

/// `send_challenge_ack` (`a`): the acceptor's digest of the initiator's challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeAck {
    pub digest: [u8; 16],
}

impl ChallengeAck {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![b'a'];
        out.extend_from_slice(&self.digest);
        out
    }

    pub fn decode(data: &[u8]) -> Result<ChallengeAck, HandshakeError> {
        let mut f = Fields::new(data, b'a', "send_challenge_ack")?;
        let digest = f.digest()?;
        f.finish()?;
        Ok(ChallengeAck { digest })
    }
}

/// One message with its length prefix.
pub fn frame(message: &[u8], prefix: LengthPrefix) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + message.len());
    match prefix {
        LengthPrefix::U16 => out.extend_from_slice(&(message.len() as u16).to_be_bytes()),
        LengthPrefix::U32 => out.extend_from_slice(&(message.len() as u32).to_be_bytes()),
    }
    out.extend_from_slice(message);
    out
}

async fn read_message<S: AsyncRead + Unpin>(
    stream: &mut S,
    prefix: LengthPrefix,
) -> Result<Vec<u8>, HandshakeError> {
    let mut header = [0u8; 4];
    let header = &mut header[..prefix.size()];
    stream.read_exact(header).await?;
    let len = header
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | b as usize);
    if len == 0 {
        return Err(malformed("empty message"));
    }
    if len > MAX_MESSAGE {
        return Err(malformed(format!(
            "message of {len} bytes exceeds the limit of {MAX_MESSAGE}"
        )));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok(body)
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
    if ack.digest != digest(&cfg.cookie, ours) {
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
    if reply.digest != digest(&cfg.cookie, ours) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, DuplexStream};

    struct Fixed(PeerState);

    impl Arbiter for Fixed {
        fn incoming(&self, _peer_name: &str) -> PeerState {
            self.0
        }
    }

    fn cfg(name: &str, cookie: &str) -> HandshakeConfig {
        let mut c = HandshakeConfig::new(name, 0x1234, cookie);
        c.timeout = Duration::from_secs(2);
        c
    }

    async fn run(
        a: &HandshakeConfig,
        b: &HandshakeConfig,
        dialed: &str,
        state: PeerState,
    ) -> (
        Result<Connected, HandshakeError>,
        Result<Connected, HandshakeError>,
    ) {
        let (mut sa, mut sb) = duplex(4096);
        let arbiter = Fixed(state);
        let acceptor = async {
            let r = accept(&mut sb, b, &arbiter).await;
            drop(sb); // closing is how a refusing side ends the handshake
            r
        };
        let initiator = async {
            let r = initiate(&mut sa, a, dialed).await;
            drop(sa);
            r
        };
        tokio::join!(initiator, acceptor)
    }

    #[test]
    fn digest_matches_otp() {
        assert_eq!(
            digest("x", 3192159469),
            [194, 192, 115, 214, 187, 58, 0, 203, 205, 51, 19, 211, 100, 111, 206, 236]
        );
    }

    #[test]
    fn messages_round_trip() {
        let name = SendName {
            flags: flags::DEFAULT,
            creation: 9,
            name: "a@h".into(),
            legacy: false,
        };
        assert_eq!(SendName::decode(&name.encode()).unwrap(), name);
        let legacy = SendName {
            flags: 0x1234_5678,
            creation: 0,
            name: "old@h".into(),
            legacy: true,
        };
        assert_eq!(SendName::decode(&legacy.encode()).unwrap(), legacy);
        for s in [
            Status::Ok,
            Status::OkSimultaneous,
            Status::Nok,
            Status::NotAllowed,
            Status::Alive,
            Status::True,
            Status::False,
            Status::Named {
                name: "X@h".into(),
                creation: 77,
            },
        ] {
            assert_eq!(Status::decode(&s.encode()).unwrap(), s);
        }
        let ch = Challenge {
            flags: 5,
            challenge: 6,
            creation: 7,
            name: "b@h".into(),
        };
        assert_eq!(Challenge::decode(&ch.encode()).unwrap(), ch);
        let c = Complement {
            flags_high: 4,
            creation: 8,
        };
        assert_eq!(Complement::decode(&c.encode()).unwrap(), c);
        let r = ChallengeReply {
            challenge: 1,
            digest: [3; 16],
        };
        assert_eq!(ChallengeReply::decode(&r.encode()).unwrap(), r);
        let a = ChallengeAck { digest: [9; 16] };
        assert_eq!(ChallengeAck::decode(&a.encode()).unwrap(), a);
        // Reserved trailing bytes after the name are ignored.
        let mut extended = ch.encode();
        extended.extend_from_slice(b"future");
        assert_eq!(Challenge::decode(&extended).unwrap(), ch);
    }

    #[test]
    fn malformed_messages_are_errors() {
        let name = SendName {
            flags: 1,
            creation: 2,
            name: "a@h".into(),
            legacy: false,
        }
        .encode();
        for cut in 0..name.len() {
            assert!(SendName::decode(&name[..cut]).is_err(), "cut at {cut}");
        }
        assert!(Status::decode(b"sweird").is_err());
        assert!(Status::decode(b"xok").is_err());
        assert!(ChallengeAck::decode(&[b'a'; 18]).is_err()); // trailing byte
        assert!(ChallengeReply::decode(b"r\0\0").is_err());
        assert!(Challenge::decode(&[b'N', 0, 0]).is_err());
        let bad_utf8 = [b'n', 0, 5, 0, 0, 0, 0, 0xff];
        assert!(SendName::decode(&bad_utf8).is_err());
    }

    #[tokio::test]
    async fn oversized_and_empty_frames_are_refused() {
        let c = cfg("b@h", "c");
        let arbiter = Fixed(PeerState::None);
        for prefix in [LengthPrefix::U16, LengthPrefix::U32] {
            let mut c = c.clone();
            c.length_prefix = prefix;
            let (mut a, mut b) = duplex(64);
            let header: Vec<u8> = match prefix {
                LengthPrefix::U16 => vec![0, 0],
                LengthPrefix::U32 => vec![0, 2, 0, 0],
            };
            a.write_all(&header).await.unwrap();
            let e = accept(&mut b, &c, &arbiter).await.unwrap_err();
            assert!(matches!(e, HandshakeError::Malformed(_)), "{e}");
        }
    }

    #[tokio::test]
    async fn connects_both_ways() {
        let a = cfg("a@h", "secret");
        let b = cfg("b@h", "secret");
        let (ra, rb) = run(&a, &b, "b@h", PeerState::None).await;
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.peer_name, "b@h");
        assert_eq!(rb.peer_name, "a@h");
        assert_eq!(ra.peer_creation, 0x1234);
        assert_eq!(ra.flags, flags::DEFAULT);
        assert_eq!(rb.flags, flags::DEFAULT);
        assert_eq!(ra.our_name, None);
    }

    #[tokio::test]
    async fn four_byte_framing() {
        let mut a = cfg("a@h", "secret");
        let mut b = cfg("b@h", "secret");
        a.length_prefix = LengthPrefix::U32;
        b.length_prefix = LengthPrefix::U32;
        let (ra, rb) = run(&a, &b, "b@h", PeerState::None).await;
        assert!(ra.is_ok() && rb.is_ok());
    }

    #[tokio::test]
    async fn effective_flags_are_the_intersection() {
        let mut a = cfg("a@h", "k");
        a.flags = flags::REQUIRED | flags::PUBLISHED | flags::SPAWN;
        let mut b = cfg("b@h", "k");
        b.flags = flags::REQUIRED | flags::SPAWN | flags::ALIAS;
        let (ra, rb) = run(&a, &b, "b@h", PeerState::None).await;
        assert_eq!(ra.unwrap().flags, flags::REQUIRED | flags::SPAWN);
        assert_eq!(rb.unwrap().flags, flags::REQUIRED | flags::SPAWN);
    }

    #[tokio::test]
    async fn wrong_cookie_fails_on_both_sides() {
        let a = cfg("a@h", "one");
        let b = cfg("b@h", "two");
        let (ra, rb) = run(&a, &b, "b@h", PeerState::None).await;
        let (ea, eb) = (ra.unwrap_err(), rb.unwrap_err());
        assert!(
            ea.to_string().contains("cookie mismatch with node b@h"),
            "{ea}"
        );
        assert!(
            eb.to_string().contains("cookie mismatch with node a@h"),
            "{eb}"
        );
    }

    #[tokio::test]
    async fn simultaneous_connect_greater_name_wins() {
        // The acceptor "b" has its own attempt pending; "a" < "b", so b's attempt wins.
        let a = cfg("a@h", "k");
        let b = cfg("b@h", "k");
        let (ra, rb) = run(&a, &b, "b@h", PeerState::Pending).await;
        assert!(matches!(ra, Err(HandshakeError::LostRace { ref node }) if node == "b@h"));
        assert!(matches!(rb, Err(HandshakeError::LostRace { ref node }) if node == "a@h"));
        // Acceptor "a" with a pending attempt to "b": the incoming one wins.
        let (rb, ra) = run(&b, &a, "a@h", PeerState::Pending).await;
        assert!(rb.is_ok() && ra.is_ok());
        assert!(incoming_wins("a@h", "b@h"));
        assert!(!incoming_wins("b@h", "a@h"));
        assert!(incoming_wins("z@h", "é@h")); // UTF-8 byte order = code point order
    }

    #[tokio::test]
    async fn alive_and_refused() {
        let a = cfg("a@h", "k");
        let b = cfg("b@h", "k");
        let (ra, rb) = run(&a, &b, "b@h", PeerState::Connected).await;
        assert!(ra.is_ok() && rb.is_ok(), "initiator answers true to alive");
        let (ra, rb) = run(&a, &b, "b@h", PeerState::Refused).await;
        let ea = ra.unwrap_err();
        assert!(ea.to_string().contains("not_allowed"), "{ea}");
        assert!(matches!(rb, Err(HandshakeError::Refused { .. })));
    }

    #[tokio::test]
    async fn acceptor_handles_alive_false() {
        let b = cfg("b@h", "k");
        let (mut sa, mut sb) = duplex(4096);
        let arbiter = Fixed(PeerState::Connected);
        let peer = async {
            let hello = SendName {
                flags: flags::DEFAULT,
                creation: 1,
                name: "a@h".into(),
                legacy: false,
            };
            sa.write_all(&frame(&hello.encode(), LengthPrefix::U16))
                .await
                .unwrap();
            let status = read_message(&mut sa, LengthPrefix::U16).await.unwrap();
            assert_eq!(Status::decode(&status).unwrap(), Status::Alive);
            sa.write_all(&frame(&Status::False.encode(), LengthPrefix::U16))
                .await
                .unwrap();
        };
        let (_, rb) = tokio::join!(peer, accept(&mut sb, &b, &arbiter));
        assert!(matches!(rb, Err(HandshakeError::Refused { .. })));
    }

    #[tokio::test]
    async fn name_me_assigns_a_name() {
        let mut a = cfg("somehost", "k");
        a.name_me = true;
        a.flags |= flags::PUBLISHED;
        let mut b = cfg("b@h", "k");
        b.flags |= flags::PUBLISHED;
        let (ra, rb) = run(&a, &b, "b@h", PeerState::None).await;
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let (name, creation) = ra.our_name.clone().unwrap();
        let (alive, host) = name.split_once('@').unwrap();
        assert_eq!(alive.len(), 12);
        assert!(alive
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        assert_eq!(host, "somehost");
        assert_ne!(creation, 0);
        assert_eq!(rb.peer_name, name);
        assert_eq!(rb.peer_creation, creation);
        // Dynamically named nodes are hidden.
        assert_eq!(ra.flags & flags::PUBLISHED, 0);
        assert_eq!(rb.flags & flags::PUBLISHED, 0);
        assert_eq!(ra.flags & flags::NAME_ME, 0);
    }

    #[tokio::test]
    async fn missing_flags_are_refused_with_not_allowed() {
        let mut a = cfg("a@h", "k");
        a.flags = flags::MANDATORY_25; // lacks UNLINK_ID and V4_NC
        let b = cfg("b@h", "k");
        let (ra, rb) = run(&a, &b, "b@h", PeerState::None).await;
        let ea = ra.unwrap_err();
        assert!(ea.to_string().contains("not_allowed"), "{ea}");
        match rb.unwrap_err() {
            HandshakeError::MissingFlags { missing, .. } => {
                assert_eq!(missing, vec!["UNLINK_ID", "V4_NC"])
            }
            e => panic!("unexpected {e}"),
        }
        // The digest bit stands for the 25 set.
        a.flags = flags::MANDATORY_25_DIGEST | flags::MANDATORY_26;
        let (ra, rb) = run(&a, &b, "b@h", PeerState::None).await;
        assert!(ra.is_ok() && rb.is_ok());
        // The initiator checks the acceptor too.
        let a = cfg("a@h", "k");
        let mut b = cfg("b@h", "k");
        b.flags = flags::REQUIRED & !flags::MAP_TAG;
        let (ra, _) = run(&a, &b, "b@h", PeerState::None).await;
        assert!(
            matches!(ra, Err(HandshakeError::MissingFlags { ref missing, .. }) if missing == &vec!["MAP_TAG"])
        );
    }

    #[tokio::test]
    async fn wrong_peer_name_is_refused() {
        let a = cfg("a@h", "k");
        let b = cfg("b@h", "k");
        let (ra, _) = run(&a, &b, "c@h", PeerState::None).await;
        let e = ra.unwrap_err();
        assert!(matches!(e, HandshakeError::WrongPeer { .. }), "{e}");
        assert_eq!(e.to_string(), "dialed node c@h but the peer is b@h");
    }

    #[tokio::test]
    async fn bad_incoming_names_are_refused() {
        let b = cfg("b@h", "k");
        for name in ["nohost", "@h", "a@"] {
            let (mut sa, mut sb) = duplex(4096);
            let hello = SendName {
                flags: flags::DEFAULT,
                creation: 1,
                name: name.into(),
                legacy: false,
            };
            sa.write_all(&frame(&hello.encode(), LengthPrefix::U16))
                .await
                .unwrap();
            let r = accept(&mut sb, &b, &Fixed(PeerState::None)).await;
            assert!(matches!(r, Err(HandshakeError::Malformed(_))), "{name}");
        }
    }

    #[tokio::test]
    async fn timeout_per_step() {
        let mut a = cfg("a@h", "k");
        a.timeout = Duration::from_millis(50);
        let (mut sa, _sb) = duplex(4096);
        let e = initiate(&mut sa, &a, "b@h").await.unwrap_err();
        assert!(
            matches!(
                e,
                HandshakeError::Timeout {
                    step: "recv_status"
                }
            ),
            "{e}"
        );
    }

    /// An OTP 23/24-style initiator: legacy `n`, then a complement after the challenge.
    #[tokio::test]
    async fn acceptor_takes_legacy_name_and_complement() {
        let b = cfg("b@h", "k");
        let (mut sa, mut sb): (DuplexStream, DuplexStream) = duplex(4096);
        let peer = async {
            let p = LengthPrefix::U16;
            let hello = SendName {
                flags: flags::DEFAULT,
                creation: 0,
                name: "old@h".into(),
                legacy: true,
            };
            sa.write_all(&frame(&hello.encode(), p)).await.unwrap();
            let status = read_message(&mut sa, p).await.unwrap();
            assert_eq!(Status::decode(&status).unwrap(), Status::Ok);
            let ch = Challenge::decode(&read_message(&mut sa, p).await.unwrap()).unwrap();
            let comp = Complement {
                flags_high: (flags::DEFAULT >> 32) as u32,
                creation: 4242,
            };
            sa.write_all(&frame(&comp.encode(), p)).await.unwrap();
            let reply = ChallengeReply {
                challenge: 99,
                digest: digest("k", ch.challenge),
            };
            sa.write_all(&frame(&reply.encode(), p)).await.unwrap();
            let ack = ChallengeAck::decode(&read_message(&mut sa, p).await.unwrap()).unwrap();
            assert_eq!(ack.digest, digest("k", 99));
        };
        let (_, rb) = tokio::join!(peer, accept(&mut sb, &b, &Fixed(PeerState::None)));
        let rb = rb.unwrap();
        assert_eq!(rb.peer_name, "old@h");
        assert_eq!(rb.peer_creation, 4242);
        assert_eq!(rb.peer_flags, flags::DEFAULT);
    }
}
