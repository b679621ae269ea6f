//! Connected-phase frames: parsing what a peer sends and encoding what we send.
//!
//! <https://www.erlang.org/doc/apps/erts/erl_ext_dist.html#distribution-header>
//!
//! Each frame is a `u32` length and a body; an empty body is a tick (the caller handles
//! those). Bodies come in three forms:
//! - pass-through `112, 131, Control, [131, Message]` (no DIST_HDR_ATOM_CACHE);
//! - normal header `131, 68, atom cache section, Control, [Message]` (no version bytes);
//! - fragments: `131, 69, SeqId, FragId, atom cache section, data...` then
//!   `131, 70, SeqId, FragId, data...` with FragId counting down to 1.
//!
//! Pure: no I/O. [`Receiver`] and [`Sender`] each hold one direction of one connection.
//!
//! - `receiver`: [`Receiver`], parsing distribution headers and reassembling fragments.
//! - `sender`: [`Sender`], encoding signals into frames and cutting large messages into
//!   fragments.
//! - `atom_cache`: one direction's atom cache, which both halves keep.

mod atom_cache;
pub mod bulk;
mod receiver;
mod sender;

#[cfg(test)]
mod tests;

pub use receiver::{Receiver, DEFAULT_MAX_REASSEMBLY, MAX_CONTROL_NESTING};
pub use sender::{Sender, DEFAULT_FRAGMENT_SIZE};

use super::control::Control;
use super::DistError;
use crate::etf::Atom;
use bytes::Bytes;
use std::sync::Arc;

// The frame body types: the first byte of a pass-through body, the byte after `131` of the
// others.
const PASS_THROUGH: u8 = 112;
const HEADER: u8 = 68;
const FRAGMENT_FIRST: u8 = 69;
const FRAGMENT_CONT: u8 = 70;

/// A message payload, still encoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Payload {
    /// The message term without the `131` version byte; a slice of the frame when it
    /// arrived in one piece.
    pub body: Bytes,
    /// The atoms its ATOM_CACHE_REFs index (this frame's header); empty for pass-through.
    pub atoms: Arc<[Atom]>,
    /// Its large binaries, kept out of `body` (see [`bulk`]); usually none.
    pub bulks: bulk::Bulks,
}

/// One received signal.
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    pub control: Control,
    /// The message, present exactly when `control.carries_message()`.
    pub payload: Option<Payload>,
}

fn err(message: impl Into<String>) -> DistError {
    DistError::new(message)
}
