//! The Tokio runtime shared by every node of the process.
//!
//! Created lazily by the first node, never at import, so that `import erlnode` starts no
//! thread. It remembers the process id it was made in: a forked child (multiprocessing
//! workers) must not use the parent's runtime, whose threads do not exist in the child, so
//! the child gets a fresh one and the inherited one is leaked, never dropped.
//!
//! Its network thread also sets its own scheduling policy from what its reads find
//! ([`note_read`]).

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

/// A read of at least this much found a backlog: the network thread is in bulk mode.
const BULK_READ: usize = 8 * 1024;

/// A read of less than this found a message or two: request and reply traffic.
const SMALL_READ: usize = 1024;

/// How the calling thread (a network thread) is scheduled, from what its reads find.
///
/// A read that finds a backlog ([`BULK_READ`] or more) means the receivers are busy with what
/// was delivered already: waking the network thread at once gains nothing, and on a busy
/// machine it preempts a receiver or the local sender, and they take turns a few messages at
/// a time. So the thread becomes `SCHED_BATCH`: the same share of the CPU, but its wake-ups
/// do not preempt (it runs when a CPU is free or at the next slice). A read that finds less
/// than [`SMALL_READ`] is request and reply traffic, where the reader's prompt wake-up is the
/// latency (an asyncio loop waits for it), and it goes back to the normal policy. In between,
/// it stays as it is, so that a mixed stream does not switch on every read. A thread that
/// started under another policy (the program's choice) is never switched.
///
/// Measured on a 2-core VM (31 paired rounds against the normal policy throughout): W1 1.04x
/// and 1.09x, callback W1 1.16x and 1.14x, asyncio W1 1.09x; W2 (idle or one core busy), W3,
/// W4, W5 level.
/// `SCHED_BATCH` throughout did as well on W1 but cost asyncio's W2 with one core busy 27 %:
/// there the loop thread sleeps until the network thread reads the ping and wakes it.
pub fn note_read(bytes: usize) {
    let bulk = if bytes >= BULK_READ {
        true
    } else if bytes < SMALL_READ {
        false
    } else {
        return;
    };
    PACE.with(|pace| {
        let now = match pace.get() {
            Pace::Unknown => Pace::of_this_thread(),
            known => known,
        };
        let wanted = if bulk { Pace::Bulk } else { Pace::Normal };
        if now == Pace::LeftAlone || now == wanted {
            pace.set(now);
            return;
        }
        let policy = if bulk {
            libc::SCHED_BATCH
        } else {
            libc::SCHED_OTHER
        };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sets the calling thread's own policy (pid 0); both policies are for
        // ordinary threads and need no privilege.
        if unsafe { libc::sched_setscheduler(0, policy, &param) } == 0 {
            pace.set(wanted);
        } else {
            log::debug!(
                "network thread scheduling policy unchanged: {}",
                std::io::Error::last_os_error()
            );
            pace.set(Pace::LeftAlone);
        }
    });
}

/// Where a network thread stands (see [`note_read`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// Not looked at yet.
    Unknown,
    /// The normal policy, set by us or found.
    Normal,
    /// `SCHED_BATCH`, set by us.
    Bulk,
    /// Never switched: the thread started under another policy (the program's choice, say a
    /// real-time one, inherited from the thread that made the runtime), or the system refused.
    LeftAlone,
}

impl Pace {
    fn of_this_thread() -> Pace {
        // SAFETY: reads the calling thread's own policy.
        match unsafe { libc::sched_getscheduler(0) } {
            libc::SCHED_OTHER => Pace::Normal,
            _ => Pace::LeftAlone,
        }
    }
}

thread_local! {
    static PACE: std::cell::Cell<Pace> = const { std::cell::Cell::new(Pace::Unknown) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_batch() -> bool {
        // SAFETY: reads the calling thread's own policy.
        unsafe { libc::sched_getscheduler(0) == libc::SCHED_BATCH }
    }

    #[test]
    fn a_bulk_read_makes_the_thread_batch_and_a_small_one_makes_it_normal_again() {
        std::thread::spawn(|| {
            assert!(!is_batch());
            note_read(SMALL_READ);
            assert!(!is_batch(), "a middle-sized read changes nothing");
            note_read(BULK_READ);
            assert!(is_batch());
            note_read(4 * 1024);
            assert!(is_batch(), "a middle-sized read keeps bulk mode");
            note_read(100);
            assert!(!is_batch());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_thread_started_under_another_policy_is_left_alone() {
        std::thread::spawn(|| {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: sets this test thread's own policy, from a valid sched_param.
            let set = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
            assert_eq!(set, 0);
            note_read(BULK_READ);
            note_read(100);
            // SAFETY: reads this thread's own policy.
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_IDLE);
        })
        .join()
        .unwrap();
    }
}
