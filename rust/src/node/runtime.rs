//! The Tokio runtime shared by every node of the process.
//!
//! Created lazily by the first node, never at import, so that `import erlnode` starts no
//! thread. It remembers the process id it was made in: a forked child (multiprocessing
//! workers) must not use the parent's runtime, whose threads do not exist in the child, so
//! the child gets a fresh one and the inherited one is leaked, never dropped.

use std::sync::Mutex;
use tokio::runtime::{Builder, Handle, Runtime};

struct Shared {
    pid: u32,
    runtime: &'static Runtime,
}

static SHARED: Mutex<Option<Shared>> = Mutex::new(None);

/// The runtime for this process, created on first use (or again after a fork).
pub fn handle() -> std::io::Result<Handle> {
    let pid = std::process::id();
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = shared.as_ref() {
        if s.pid == pid {
            return Ok(s.runtime.handle().clone());
        }
    }
    let runtime = Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("erlnode-net")
        .enable_all()
        .build()?;
    // Leaked on purpose: it lives as long as the process, and in a forked child the old one
    // must never run its destructor.
    let runtime: &'static Runtime = Box::leak(Box::new(runtime));
    *shared = Some(Shared { pid, runtime });
    Ok(runtime.handle().clone())
}

/// The id of the process a runtime handle was made in, to detect use after fork.
pub fn current_pid() -> u32 {
    std::process::id()
}
