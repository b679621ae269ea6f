//! The Erlang distribution protocol: handshake, control messages and connected-phase
//! frames. <https://www.erlang.org/doc/apps/erts/erl_dist_protocol.html>
//!
//! - [`flags`]: the capability flags and what we require of a peer.
//! - [`handshake`]: the version-6 handshake as initiator and acceptor (the only I/O here):
//!   its messages, and the exchange that drives them over a stream.
//! - [`control`]: control messages as a Rust enum.
//! - [`framing`]: connected-phase frames: the length prefix, ticks, the size cap.
//! - [`packet`]: what a frame's body holds, parsed ([`Receiver`]) and built ([`Sender`]):
//!   distribution header, control message, atom cache, fragments.
//!
//! `dist` depends on `etf` only. The tests against a real `erl`, which need EPMD as well, are
//! the integration test `rust/tests/otp.rs`.

pub mod control;
pub mod flags;
pub mod framing;
pub mod handshake;
pub mod packet;

pub use control::{Control, ProcRef};
pub use framing::TICK;
pub use handshake::{
    accept, initiate, Arbiter, Connected, HandshakeConfig, HandshakeError, LengthPrefix, PeerState,
};
pub use packet::{Incoming, Payload, Receiver, Sender};

use std::fmt;

/// A malformed or unacceptable connected-phase frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistError {
    pub message: String,
}

impl DistError {
    pub fn new(message: impl Into<String>) -> DistError {
        DistError {
            message: message.into(),
        }
    }
}

impl fmt::Display for DistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "distribution frame: {}", self.message)
    }
}

impl std::error::Error for DistError {}

impl From<crate::etf::DecodeError> for DistError {
    fn from(e: crate::etf::DecodeError) -> Self {
        DistError::new(e.to_string())
    }
}
