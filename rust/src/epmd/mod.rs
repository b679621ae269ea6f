//! EPMD, the Erlang Port Mapper Daemon: how nodes on a host find each other's distribution
//! ports. <https://www.erlang.org/doc/apps/erts/erl_dist_protocol.html> (EPMD section).
//!
//! - [`proto`]: the messages, encoded and decoded without I/O.
//! - [`client`]: register this node ([`Registration`] keeps the name while it lives), look up
//!   a node's port, list names.
//! - [`server`]: an embedded EPMD for hosts that run none (see its lifetime rule).
//! - [`register_or_serve`]: what a starting node does: register with the local EPMD, or start
//!   the embedded one when there is none.

pub mod client;
pub mod proto;
pub mod server;

use std::net::{Ipv4Addr, SocketAddr};

pub use client::{epmd_port, names, port_please, register, EpmdError, Registration};
pub use proto::NodeInfo;
pub use server::EmbeddedEpmd;

/// How often to go round "register, else bind" when other processes race us for the port.
const REGISTER_OR_SERVE_ATTEMPTS: usize = 5;

/// Registers `alive` with the EPMD on `127.0.0.1:epmd_port`. When nothing listens there,
/// starts an embedded EPMD on that port (all interfaces, like `epmd`) and registers with it;
/// the caller then holds the returned [`EmbeddedEpmd`] and calls
/// [`EmbeddedEpmd::release`] when the node shuts down.
///
/// If another process binds the port between our failed connect and our bind, we simply
/// try registering again.
pub async fn register_or_serve(
    epmd_port: u16,
    alive: &str,
    port: u16,
    hidden: bool,
) -> Result<(Registration, Option<EmbeddedEpmd>), EpmdError> {
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, epmd_port));
    let listen = SocketAddr::from((Ipv4Addr::UNSPECIFIED, epmd_port));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let err = match register(local, alive, port, hidden).await {
            Ok(registration) => return Ok((registration, None)),
            Err(e) if e.is_connection_refused() => e,
            Err(e) => return Err(e),
        };
        match EmbeddedEpmd::bind(listen).await {
            Ok(server) => {
                // On failure `server` is dropped, which releases it; with no registration it
                // stops at once.
                let registration = register(local, alive, port, hidden).await?;
                return Ok((registration, Some(server)));
            }
            Err(bind_err)
                if bind_err.kind() == std::io::ErrorKind::AddrInUse
                    && attempt < REGISTER_OR_SERVE_ATTEMPTS =>
            {
                log::debug!("EPMD port {epmd_port} taken meanwhile ({err}); registering again");
                // Give the winner a moment to start accepting.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(source) => {
                return Err(EpmdError::Bind {
                    addr: listen,
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod test_support;
