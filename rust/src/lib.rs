//! erlnode: a Python program as a node of an Erlang cluster.
//!
//! # Layout
//! Data flows one way through the layers; each module depends only on those above it.
//!
//! - [`etf`]: the External Term Format codec (pure, no I/O).
//!   <https://www.erlang.org/doc/apps/erts/erl_ext_dist.html>
//! - [`epmd`]: the EPMD client and the embedded EPMD server.
//! - [`dist`]: the distribution protocol: handshake, framing, control messages, atom cache,
//!   fragments. <https://www.erlang.org/doc/apps/erts/erl_dist_protocol.html>
//! - [`node`]: the node itself: connections, process table, routing, links and monitors.
//! - `py` (feature `python`): the PyO3 binding layer, the only module that touches Python.

pub mod dist;
pub mod epmd;
pub mod etf;
pub mod node;

#[cfg(feature = "python")]
mod py;

#[cfg(test)]
pub(crate) mod test_support;
