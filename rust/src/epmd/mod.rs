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
mod tests {
    use super::*;
    use crate::epmd::client::TIMEOUT;
    use crate::test_support::{eventually, free_port, random_name, spawn_or_skip};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn register_or_serve_starts_one_server_and_shares_it() {
        let epmd_port = free_port();
        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, epmd_port));

        // Several nodes start at once on a host without EPMD: exactly one serves.
        let starts = (0..4).map(|i| {
            tokio::spawn(async move {
                let alive = random_name(&format!("n{i}_"));
                let result = register_or_serve(epmd_port, &alive, 1000 + i, true).await;
                (alive, result)
            })
        });
        let mut nodes = Vec::new();
        for start in starts {
            let (alive, result) = start.await.unwrap();
            let (registration, server) = result.unwrap_or_else(|e| panic!("{alive}: {e}"));
            assert_eq!(registration.alive(), alive);
            assert_ne!(registration.creation, 0);
            nodes.push((alive, registration, server));
        }
        assert_eq!(nodes.iter().filter(|(_, _, s)| s.is_some()).count(), 1);
        let listed = names(local).await.unwrap();
        for (alive, registration, _) in &nodes {
            assert!(
                listed.contains(&(alive.clone(), registration.port())),
                "{listed:?}"
            );
        }

        // The serving node shuts down first: the others keep their EPMD.
        let serving = nodes.iter().position(|(_, _, s)| s.is_some()).unwrap();
        let (alive, registration, server) = nodes.remove(serving);
        let server = server.unwrap();
        drop(registration);
        server.release();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(server.is_serving());
        assert_eq!(port_please(local, &alive).await.unwrap(), None);
        assert_eq!(names(local).await.unwrap().len(), 3);

        // A node joining now registers with the released but still serving server.
        let (late, late_server) = register_or_serve(epmd_port, &random_name("late"), 7, true)
            .await
            .unwrap();
        assert!(late_server.is_none());

        drop(late);
        drop(nodes);
        tokio::time::timeout(TIMEOUT, server.wait_stopped())
            .await
            .expect("the last node leaving stops the released server");
        assert!(names(local).await.unwrap_err().is_connection_refused());
    }

    /// Registers through `register_or_serve` with the EPMD at `epmd_port`, which must be used
    /// as it is.
    async fn uses_existing(epmd_port: u16) {
        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, epmd_port));
        let alive = random_name("py");
        let (registration, server) = register_or_serve(epmd_port, &alive, 4242, true)
            .await
            .unwrap();
        assert!(
            server.is_none(),
            "an EPMD already runs, none must be started"
        );
        let info = port_please(local, &alive)
            .await
            .unwrap()
            .expect("registered");
        assert_eq!((info.port, info.is_hidden()), (4242, true));
        drop(registration);
    }

    #[tokio::test]
    async fn register_or_serve_uses_a_running_epmd() {
        // A private real epmd on a free port, killed (by pid) when the guard drops.
        let epmd_port = free_port();
        let command = &mut std::process::Command::new("epmd");
        let Some(_epmd) = spawn_or_skip(command.args(["-port", &epmd_port.to_string()])) else {
            return;
        };
        let local = SocketAddr::from((Ipv4Addr::LOCALHOST, epmd_port));
        let up = eventually(TIMEOUT, || async { names(local).await.ok() }).await;
        assert!(up.is_some(), "epmd on port {epmd_port} did not come up");
        uses_existing(epmd_port).await;

        // The host's own EPMD, only if one runs (never started or stopped here).
        let system = SocketAddr::from((Ipv4Addr::LOCALHOST, client::DEFAULT_EPMD_PORT));
        match names(system).await {
            Ok(_) => uses_existing(client::DEFAULT_EPMD_PORT).await,
            Err(e) => eprintln!("note: no EPMD on port 4369 ({e}), system EPMD check skipped"),
        }
    }
}
