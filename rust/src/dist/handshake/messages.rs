//! The handshake messages as plain types with `encode`/`decode` (the bytes after the length
//! prefix), the cookie digest, and the length prefix that frames each message.

use super::HandshakeError;
use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest handshake message we accept (names are at most a few hundred bytes).
pub const MAX_MESSAGE: usize = 64 * 1024;

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

pub(super) fn malformed(what: impl Into<String>) -> HandshakeError {
    HandshakeError::Malformed(what.into())
}

/// MD5 of the cookie followed by the challenge in decimal.
pub fn digest(cookie: &str, challenge: u32) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(cookie.as_bytes());
    md5.update(challenge.to_string().as_bytes());
    md5.finalize().into()
}

/// Whether the digest a peer sent is `expected`, in time that does not depend on where they
/// differ (the digest proves the cookie).
pub fn digest_matches(received: &[u8; 16], expected: &[u8; 16]) -> bool {
    use subtle::ConstantTimeEq;
    received.ct_eq(expected).into()
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

/// Reads one message after its length prefix; empty and oversized messages are errors.
pub(super) async fn read_message<S: AsyncRead + Unpin>(
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
