//! erlnode: a Python program as a node of an Erlang cluster.
//!
//! # Layout
//! Data flows one way through the layers; each module depends only on those above it
//! (`etf` <- `epmd`, `dist` <- `node` <- `py`).
//!
//! - [`etf`]: the External Term Format codec, and Erlang's term syntax (pure, no I/O).
//!   <https://www.erlang.org/doc/apps/erts/erl_ext_dist.html>
//! - [`epmd`]: EPMD's messages (pure), the client, and the embedded EPMD server.
//! - [`dist`]: the distribution protocol: framing (lengths, ticks, the size cap), what a
//!   frame holds (distribution header, atom cache, fragments: `packet`), control messages,
//!   and the handshake over any byte stream.
//!   <https://www.erlang.org/doc/apps/erts/erl_dist_protocol.html>
//! - [`node`]: the node itself: its configuration; the transport (plain TCP or TLS, the one
//!   place that opens connections); peers and dialing; each connection's reader and writer
//!   (with plain TCP's raw-socket fast paths); processes, routing, links and monitors.
//! - `py` (feature `python`): the PyO3 binding layer, the only module that touches Python.
//!
//! Tests sit beside the code in `tests.rs` files; those that need a real `erl` and EPMD are
//! the integration tests in `rust/tests/`.

pub mod dist;
pub mod epmd;
pub mod etf;
pub mod node;

#[cfg(feature = "python")]
mod py;

#[cfg(test)]
pub(crate) mod test_support;
