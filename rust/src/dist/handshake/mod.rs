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
//!
//! - `messages`: the handshake messages ([`SendName`], [`Status`], [`Challenge`],
//!   [`Complement`], [`ChallengeReply`], [`ChallengeAck`]), the cookie [`digest`] and the
//!   length prefix.
//! - `exchange`: the exchange itself ([`initiate`], [`accept`]), what it needs from the node
//!   ([`HandshakeConfig`], [`Arbiter`]) and how it fails ([`HandshakeError`]).

mod exchange;
mod messages;

#[cfg(test)]
mod tests;

pub use exchange::{
    accept, incoming_wins, initiate, Arbiter, Connected, HandshakeConfig, HandshakeError,
    PeerState, DEFAULT_TIMEOUT,
};
pub use messages::{
    digest, frame, Challenge, ChallengeAck, ChallengeReply, Complement, LengthPrefix, SendName,
    Status, MAX_MESSAGE,
};
