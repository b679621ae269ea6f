//! The Tokio runtime shared by every node of the process.
//!
//! Created lazily by the first node, never at import, so that `import erlnode` starts no
//! thread. It remembers the process id it was made in: a forked child (multiprocessing
//! workers) must not use the parent's runtime, whose threads do not exist in the child, so
//! the child gets a fresh one and the inherited one is leaked, never dropped.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use tokio::runtime::{Builder, Handle, Runtime};

struct Shared {
    pid: u32,
    runtime: &'static Runtime,
}

static SHARED: Mutex<Option<Shared>> = Mutex::new(None);

/// Bumped in the child after every fork: telling a node made before the fork costs one
/// atomic load instead of a getpid(2) call on every send.
static FORKS: AtomicU32 = AtomicU32::new(0);
static WATCH_FORKS: Once = Once::new();

extern "C" fn after_fork_in_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// How many forks this process is away from the one that loaded erlnode.
pub fn fork_generation() -> u32 {
    WATCH_FORKS.call_once(|| {
        // SAFETY: registers a handler that only does an atomic add, which is async-signal-safe.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
    FORKS.load(Ordering::Relaxed)
}

/// The runtime for this process, created on first use (or again after a fork).
pub fn handle() -> std::io::Result<Handle> {
    let pid = std::process::id();
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = shared.as_ref() {
        if s.pid == pid {
            return Ok(s.runtime.handle().clone());
        }
    }
    // One worker: the receivers read their sockets themselves while they spin (see
    // `Process::spin_for_message`), so a second worker mostly competed with them and with the
    // peers for the cores. Measured on a 2-core VM against two workers (31 paired rounds):
    // W5 (two connections) 1.17x, W1 1.03x, W3 0.97x.
    let runtime = Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("erlnode-net")
        .enable_all()
        .build()?;
    // Leaked on purpose: it lives as long as the process, and in a forked child the old one
    // must never run its destructor.
    let runtime: &'static Runtime = Box::leak(Box::new(runtime));
    *shared = Some(Shared { pid, runtime });
    Ok(runtime.handle().clone())
}
