//! The node's EPMD registration: made when the node starts, held for its life, renewed (by
//! serving EPMD itself if nobody else does) when the EPMD goes away.

use super::{lock, Inner};
use crate::epmd;
use std::time::Duration;

/// Holds the EPMD registration for the node's life. If the EPMD goes away (the node that
/// served it embedded exited, or `epmd` was killed), registers again, serving EPMD itself
/// when nobody else does, so that peers can still find this node.
pub(super) async fn keep_registered(
    node: std::sync::Weak<Inner>,
    mut registration: epmd::Registration,
    alive: String,
) {
    loop {
        registration.closed().await;
        let Some(inner) = node.upgrade() else { return };
        if inner.is_closed() {
            return;
        }
        log::warn!("the EPMD closed our registration; registering again");
        let epmd_port = inner.config.epmd_port.unwrap_or_else(epmd::epmd_port);
        let (port, hidden) = (inner.port, inner.config.hidden);
        drop(inner);
        loop {
            match epmd::register_or_serve(epmd_port, &alive, port, hidden).await {
                Ok((renewed, embedded)) => {
                    registration = renewed;
                    if let (Some(embedded), Some(inner)) = (embedded, node.upgrade()) {
                        log::info!("now serving EPMD on port {epmd_port}");
                        *lock(&inner.embedded_epmd) = Some(embedded);
                    }
                    break;
                }
                Err(e) => {
                    log::warn!("cannot register with EPMD again: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if node.upgrade().is_none_or(|n| n.is_closed()) {
                        return;
                    }
                }
            }
        }
    }
}
