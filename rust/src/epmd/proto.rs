//! EPMD messages as plain values, with encoders and total decoders (no I/O).
//!
//! Every request travels as `u16 length` + body; [`Request::encode`] produces the whole frame
//! and [`Request::decode`] takes the body alone (the server reads the length itself so it can
//! cap it). Responses carry no length prefix: ALIVE2 and PORT2 answers are self-delimiting,
//! so their decoders are incremental (`Ok(None)` = "need more bytes"); the NAMES answer runs
//! until the server closes the connection, so its decoder takes everything that was read.
//!
//! Layouts: <https://www.erlang.org/doc/apps/erts/erl_dist_protocol.html> (EPMD section).

use std::fmt;

pub const ALIVE2_REQ: u8 = 120;
pub const ALIVE2_X_RESP: u8 = 118;
/// The pre-OTP-23 answer with a 16-bit creation; still decoded for old EPMDs.
pub const ALIVE2_RESP: u8 = 121;
pub const PORT_PLEASE2_REQ: u8 = 122;
pub const PORT2_RESP: u8 = 119;
pub const NAMES_REQ: u8 = 110;
pub const DUMP_REQ: u8 = 100;
pub const KILL_REQ: u8 = 107;
pub const STOP_REQ: u8 = 115;

/// NodeType of a visible node.
pub const NODE_TYPE_NORMAL: u8 = 77;
/// NodeType of a hidden node (C nodes, Jinterface, erlnode by default).
pub const NODE_TYPE_HIDDEN: u8 = 72;
/// Protocol 0 = TCP/IPv4; OTP registers 0 for every transport in practice.
pub const PROTOCOL_TCP: u8 = 0;

/// Distribution protocol versions we register: OTP 25 registers 6/5 and older tools that look
/// at the range are happiest with it; every peer we can talk to speaks 6.
pub const HIGHEST_VERSION: u16 = 6;
pub const LOWEST_VERSION: u16 = 5;

/// Why some bytes are not a valid EPMD message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// The message stopped before a field it announces.
    Truncated { what: &'static str },
    /// Bytes left over after a request that should have ended.
    TrailingBytes { what: &'static str, count: usize },
    /// The first byte is not a message this side understands.
    UnknownTag(u8),
    /// A request body of length zero.
    Empty,
    /// A node name that is not UTF-8.
    BadName,
    /// A field too long for its 16-bit length prefix.
    TooLong { what: &'static str, len: usize },
    /// A NAMES line that does not read `name <Name> at port <Port>`.
    BadNamesLine(String),
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::Truncated { what } => write!(f, "truncated {what}"),
            ProtoError::TrailingBytes { what, count } => {
                write!(f, "{count} unexpected bytes after {what}")
            }
            ProtoError::UnknownTag(tag) => write!(f, "unknown EPMD message tag {tag}"),
            ProtoError::Empty => write!(f, "empty EPMD request"),
            ProtoError::BadName => write!(f, "node name is not valid UTF-8"),
            ProtoError::TooLong { what, len } => {
                write!(f, "{what} of {len} bytes does not fit a 16-bit length")
            }
            ProtoError::BadNamesLine(line) => write!(f, "malformed NAMES line {line:?}"),
        }
    }
}

impl std::error::Error for ProtoError {}

/// What a node registers and what PORT_PLEASE2 hands back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's distribution listen port.
    pub port: u16,
    /// [`NODE_TYPE_NORMAL`] or [`NODE_TYPE_HIDDEN`].
    pub node_type: u8,
    pub protocol: u8,
    pub highest_version: u16,
    pub lowest_version: u16,
    /// The alive part of the node name (before `@`).
    pub name: String,
    pub extra: Vec<u8>,
}

impl NodeInfo {
    /// The record erlnode registers for itself.
    pub fn new(name: &str, port: u16, hidden: bool) -> NodeInfo {
        NodeInfo {
            port,
            node_type: if hidden {
                NODE_TYPE_HIDDEN
            } else {
                NODE_TYPE_NORMAL
            },
            protocol: PROTOCOL_TCP,
            highest_version: HIGHEST_VERSION,
            lowest_version: LOWEST_VERSION,
            name: name.to_owned(),
            extra: Vec::new(),
        }
    }

    pub fn is_hidden(&self) -> bool {
        self.node_type == NODE_TYPE_HIDDEN
    }

    /// The layout shared by ALIVE2_REQ and PORT2_RESP, from PortNo to Extra.
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        out.extend_from_slice(&self.port.to_be_bytes());
        out.push(self.node_type);
        out.push(self.protocol);
        out.extend_from_slice(&self.highest_version.to_be_bytes());
        out.extend_from_slice(&self.lowest_version.to_be_bytes());
        put_u16_prefixed(out, self.name.as_bytes(), "node name")?;
        put_u16_prefixed(out, &self.extra, "extra field")
    }

    fn decode_from(cur: &mut Cursor<'_>) -> Result<NodeInfo, ProtoError> {
        let port = cur.u16("port")?;
        let node_type = cur.u8("node type")?;
        let protocol = cur.u8("protocol")?;
        let highest_version = cur.u16("highest version")?;
        let lowest_version = cur.u16("lowest version")?;
        let name_len = cur.u16("name length")? as usize;
        let name = std::str::from_utf8(cur.take(name_len, "node name")?)
            .map_err(|_| ProtoError::BadName)?
            .to_owned();
        let extra_len = cur.u16("extra length")? as usize;
        let extra = cur.take(extra_len, "extra field")?.to_vec();
        Ok(NodeInfo {
            port,
            node_type,
            protocol,
            highest_version,
            lowest_version,
            name,
            extra,
        })
    }
}

/// A request from a client to EPMD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Alive2(NodeInfo),
    PortPlease2 { name: String },
    Names,
    Dump,
    Kill,
    Stop { name: String },
}

impl Request {
    /// The whole frame: `u16 length` + body.
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        let mut body = Vec::new();
        match self {
            Request::Alive2(info) => {
                body.push(ALIVE2_REQ);
                info.encode_into(&mut body)?;
            }
            Request::PortPlease2 { name } => {
                body.push(PORT_PLEASE2_REQ);
                body.extend_from_slice(name.as_bytes());
            }
            Request::Names => body.push(NAMES_REQ),
            Request::Dump => body.push(DUMP_REQ),
            Request::Kill => body.push(KILL_REQ),
            Request::Stop { name } => {
                body.push(STOP_REQ);
                body.extend_from_slice(name.as_bytes());
            }
        }
        let mut frame = Vec::with_capacity(body.len() + 2);
        put_u16_prefixed(&mut frame, &body, "request")?;
        Ok(frame)
    }

    /// Decodes a request body (the bytes after the length prefix).
    pub fn decode(body: &[u8]) -> Result<Request, ProtoError> {
        let (&tag, rest) = body.split_first().ok_or(ProtoError::Empty)?;
        let name_of = |bytes: &[u8]| {
            std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| ProtoError::BadName)
        };
        let request = match tag {
            ALIVE2_REQ => {
                let mut cur = Cursor::new(rest);
                let info = NodeInfo::decode_from(&mut cur)?;
                cur.finish("ALIVE2_REQ")?;
                Request::Alive2(info)
            }
            PORT_PLEASE2_REQ => Request::PortPlease2 {
                name: name_of(rest)?,
            },
            STOP_REQ => Request::Stop {
                name: name_of(rest)?,
            },
            NAMES_REQ | DUMP_REQ | KILL_REQ => {
                if !rest.is_empty() {
                    return Err(ProtoError::TrailingBytes {
                        what: "request tag",
                        count: rest.len(),
                    });
                }
                match tag {
                    NAMES_REQ => Request::Names,
                    DUMP_REQ => Request::Dump,
                    _ => Request::Kill,
                }
            }
            other => return Err(ProtoError::UnknownTag(other)),
        };
        Ok(request)
    }
}

/// EPMD's answer to ALIVE2_REQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alive2Resp {
    /// 0 = registered; anything else = refused (EPMD uses 1, "name taken").
    pub result: u8,
    /// Meaningful only when `result == 0`.
    pub creation: u32,
    /// `true` for ALIVE2_X_RESP (32-bit creation), `false` for the legacy ALIVE2_RESP.
    pub extended: bool,
}

impl Alive2Resp {
    /// Always writes the creation field, even on failure, as EPMD does: a reader of either
    /// length is then satisfied.
    pub fn encode(&self) -> Vec<u8> {
        if self.extended {
            let mut out = vec![ALIVE2_X_RESP, self.result];
            out.extend_from_slice(&self.creation.to_be_bytes());
            out
        } else {
            let mut out = vec![ALIVE2_RESP, self.result];
            // The legacy field is 16 bits wide; only the low bits can travel.
            out.extend_from_slice(&(self.creation as u16).to_be_bytes());
            out
        }
    }

    /// Incremental: `Ok(None)` while `buf` is too short, else the answer and the bytes used.
    /// A refusal is complete after two bytes (EPMD's creation field is junk then).
    pub fn decode(buf: &[u8]) -> Result<Option<(Alive2Resp, usize)>, ProtoError> {
        let (tag, result) = match buf {
            [tag, result, ..] => (*tag, *result),
            [tag] if *tag != ALIVE2_X_RESP && *tag != ALIVE2_RESP => {
                return Err(ProtoError::UnknownTag(*tag))
            }
            _ => return Ok(None),
        };
        let extended = match tag {
            ALIVE2_X_RESP => true,
            ALIVE2_RESP => false,
            other => return Err(ProtoError::UnknownTag(other)),
        };
        if result != 0 {
            let resp = Alive2Resp {
                result,
                creation: 0,
                extended,
            };
            return Ok(Some((resp, 2)));
        }
        let creation = match (extended, &buf[2..]) {
            (true, [a, b, c, d, ..]) => u32::from_be_bytes([*a, *b, *c, *d]),
            (false, [a, b, ..]) => u16::from_be_bytes([*a, *b]) as u32,
            _ => return Ok(None),
        };
        let used = if extended { 6 } else { 4 };
        let resp = Alive2Resp {
            result,
            creation,
            extended,
        };
        Ok(Some((resp, used)))
    }
}

/// EPMD's answer to PORT_PLEASE2_REQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Port2Resp {
    Found(NodeInfo),
    /// The non-zero result code; EPMD sends 1 for "no such name".
    NotFound(u8),
}

impl Port2Resp {
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        match self {
            Port2Resp::Found(info) => {
                let mut out = vec![PORT2_RESP, 0];
                info.encode_into(&mut out)?;
                Ok(out)
            }
            // A zero code would read as success; keep "not found" non-zero whatever we are given.
            Port2Resp::NotFound(code) => Ok(vec![PORT2_RESP, (*code).max(1)]),
        }
    }

    /// Incremental: `Ok(None)` while `buf` is too short, else the answer and the bytes used.
    pub fn decode(buf: &[u8]) -> Result<Option<(Port2Resp, usize)>, ProtoError> {
        let mut cur = Cursor::new(buf);
        let decoded = (|| {
            if cur.u8("PORT2_RESP tag")? != PORT2_RESP {
                return Err(ProtoError::UnknownTag(buf[0]));
            }
            match cur.u8("PORT2_RESP result")? {
                0 => Ok(Port2Resp::Found(NodeInfo::decode_from(&mut cur)?)),
                code => Ok(Port2Resp::NotFound(code)),
            }
        })();
        match decoded {
            Ok(resp) => Ok(Some((resp, cur.pos))),
            Err(ProtoError::Truncated { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// EPMD's answer to NAMES_REQ: its own port, then one line per registered node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamesResp {
    pub epmd_port: u32,
    pub names: Vec<(String, u16)>,
}

impl NamesResp {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.epmd_port.to_be_bytes().to_vec();
        for (name, port) in &self.names {
            out.extend_from_slice(format!("name {name} at port {port}\n").as_bytes());
        }
        out
    }

    /// Decodes the complete answer (everything up to the server's close).
    pub fn decode(buf: &[u8]) -> Result<NamesResp, ProtoError> {
        let (port_bytes, text) = match buf {
            [a, b, c, d, rest @ ..] => ([*a, *b, *c, *d], rest),
            _ => return Err(ProtoError::Truncated { what: "NAMES port" }),
        };
        let text = std::str::from_utf8(text).map_err(|_| ProtoError::BadName)?;
        let names = text
            .lines()
            .filter(|line| !line.is_empty())
            .map(parse_names_line)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NamesResp {
            epmd_port: u32::from_be_bytes(port_bytes),
            names,
        })
    }
}

/// `name <Name> at port <Port>`; the name is taken up to the last " at port " so that even an
/// odd name containing spaces survives.
fn parse_names_line(line: &str) -> Result<(String, u16), ProtoError> {
    let bad = || ProtoError::BadNamesLine(line.to_owned());
    let rest = line.strip_prefix("name ").ok_or_else(bad)?;
    let (name, port) = rest.rsplit_once(" at port ").ok_or_else(bad)?;
    let port = port.trim().parse::<u16>().map_err(|_| bad())?;
    Ok((name.to_owned(), port))
}

fn put_u16_prefixed(out: &mut Vec<u8>, bytes: &[u8], what: &'static str) -> Result<(), ProtoError> {
    let len = u16::try_from(bytes.len()).map_err(|_| ProtoError::TooLong {
        what,
        len: bytes.len(),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// A bounds-checked reader over a byte slice.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ProtoError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(ProtoError::Truncated { what })?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ProtoError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, ProtoError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn finish(&self, what: &'static str) -> Result<(), ProtoError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            count => Err(ProtoError::TrailingBytes { what, count }),
        }
    }
}

#[cfg(test)]
mod tests;
