//! A local process (a mailbox): its identity, its message queue and its links and monitors.
//!
//! Messages wait here as encoded bytes; whoever receives decodes them (Python decodes into
//! Python objects, with the GIL it already holds). Network threads only push bytes.

use crate::dist::packet::bulk::{self, Bulks};
use crate::dist::packet::MAX_CONTROL_NESTING;
use crate::etf::{self, Atom, Pid, Reference, Term};
use bytes::Bytes;
use crossbeam_queue::SegQueue;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// One message: a term body (no version byte) and the atom-cache table its
/// ATOM_CACHE_REF tags point into (empty unless it came with a distribution header).
#[derive(Clone, Debug)]
pub struct Message {
    pub body: Bytes,
    pub atoms: Arc<[Atom]>,
    /// Large binaries received, kept out of `body` (see `dist::packet::bulk`); usually none.
    pub bulks: Bulks,
}

impl Message {
    /// A message made here from a term.
    pub fn from_term(term: &Term) -> Message {
        let mut body = Vec::with_capacity(64);
        etf::encode_term_body(term, &mut body);
        Message {
            body: Bytes::from(body),
            atoms: Arc::from(Vec::new()),
            bulks: Bulks::default(),
        }
    }

    /// Decodes the message as a [`Term`], for the node's own use (spawn requests,
    /// `net_kernel`). A term nested deeper than a control message may be is refused: dropping
    /// or printing it would recurse that deep (a peer could overflow the stack).
    pub fn to_term(&self) -> Result<Term, etf::DecodeError> {
        let body = bulk::contiguous(&self.body, self.bulks.as_slice());
        let mut reader = etf::reader::Reader::new(&body);
        let term = etf::decode::decode_term(&mut reader, &self.atoms)?;
        if reader.remaining() != 0 {
            term.drop_flat();
            return Err(reader.error("trailing bytes after the message"));
        }
        if term.nests_deeper_than(MAX_CONTROL_NESTING) {
            term.drop_flat();
            return Err(reader.error(format!(
                "a term nested deeper than {MAX_CONTROL_NESTING} levels"
            )));
        }
        Ok(term)
    }
}

/// Called for the first message after a receiver found the queue empty (a callback mailbox
/// or an asyncio waiter needs waking). It runs on a network thread: it must be quick and must
/// not touch Python.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// Something that can bring messages in on the caller's thread: a connection whose socket a
/// receiver with an empty queue reads itself, rather than waiting for the connection's reader
/// task to wake and hand the messages over.
pub trait Feed: Send + Sync {
    /// Reads and dispatches what has arrived, without blocking; does nothing if another
    /// thread is reading.
    fn feed(&self);

    /// Called before a spin that feeds: the caller will be reading for a while, and arriving
    /// data need not wake anyone else.
    fn hold(&self) {}

    /// Called when the caller stops feeding (a spin that found nothing, or before it sleeps).
    fn release(&self) {}
}

/// What a process is linked to and who monitors it.
#[derive(Default)]
pub struct Relations {
    /// Linked pids (local or remote).
    pub links: HashSet<Pid>,
    /// Monitors other processes hold on us: reference -> (watcher pid, how they named us).
    pub monitored_by: HashMap<Reference, (Pid, Term)>,
    /// Monitors we hold: reference -> (the target as we named it, target's node).
    pub monitoring: HashMap<Reference, (Term, Atom)>,
}

/// A local process.
pub struct Process {
    pub pid: Pid,
    pub name: Mutex<Option<Atom>>,
    /// The messages: a lock-free queue, so a network thread pushing and a Python thread
    /// popping never wait for each other's lock (with a mutex, the popper often slept on the
    /// lock while the pusher, preempted, held it).
    queue: SegQueue<Message>,
    /// Set when a receiver found the queue empty: the next push calls the wake hook and
    /// clears it. A flag written only on empties, not a count both threads update per
    /// message: a shared counter moved a cache line between the two cores for every message.
    want_wake: AtomicBool,
    /// Receivers that found the queue empty and are going to sleep: a pusher takes `sleep`'s
    /// lock and signals `arrived` only when this is non-zero, so a stream of messages to an
    /// awake receiver costs no lock and no system call.
    sleepers: AtomicUsize,
    spinner: Spinner,
    /// Where messages last came from: its id (checked per message without a lock or a
    /// write; 0 for none) and a handle on it, which a spinning receiver feeds from.
    source_id: AtomicUsize,
    source: Mutex<Option<Weak<dyn Feed>>>,
    sleep: Mutex<()>,
    arrived: Condvar,
    wake: Mutex<Option<Wake>>,
    closed: AtomicBool,
    pub relations: Mutex<Relations>,
    /// At most this many messages wait (0: no limit); beyond it, new ones are dropped and
    /// counted (see [`Process::set_queue_limit`]).
    queue_limit: AtomicUsize,
    dropped: AtomicU64,
}

/// Why a receive returned without a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Empty {
    Timeout,
    Closed,
}

impl Process {
    pub fn new(pid: Pid) -> Process {
        Process {
            pid,
            name: Mutex::new(None),
            queue: SegQueue::new(),
            want_wake: AtomicBool::new(true),
            sleepers: AtomicUsize::new(0),
            spinner: Spinner::default(),
            source_id: AtomicUsize::new(0),
            source: Mutex::new(None),
            sleep: Mutex::new(()),
            arrived: Condvar::new(),
            wake: Mutex::new(None),
            closed: AtomicBool::new(false),
            relations: Mutex::new(Relations::default()),
            queue_limit: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Limits the queue to `limit` waiting messages (None: no limit, as an Erlang process).
    /// A message that arrives at a full queue is dropped, counted ([`Process::dropped`]) and
    /// logged (the first, then every 10,000th): the sender is not told, as in Erlang a send
    /// never fails. Protects memory from a consumer that cannot keep up.
    pub fn set_queue_limit(&self, limit: Option<usize>) {
        self.queue_limit
            .store(limit.unwrap_or(0), Ordering::Relaxed);
    }

    /// How many messages a full queue has dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Marks the process closed and wakes every receiver. Returns false if it already was.
    pub fn close(&self) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        let sleep = lock(&self.sleep);
        self.arrived.notify_all();
        drop(sleep);
        // Taken, not cloned: the hook may own whatever serves this process, and a closed
        // process needs it only this last time.
        let wake = lock(&self.wake).take();
        if let Some(wake) = wake {
            wake();
        }
        true
    }

    /// Sets (or clears) the hook called for the first message after a receiver found the
    /// queue empty.
    pub fn set_wake(&self, wake: Option<Wake>) {
        *lock(&self.wake) = wake;
        // The new hook's first call is owed to the next message, whatever came before.
        self.want_wake.store(true, Ordering::SeqCst);
    }

    /// Queues a message. Returns false (message dropped) if the process is closed or its
    /// queue is full.
    pub fn deliver(&self, message: Message) -> bool {
        if self.is_closed() {
            return false;
        }
        let limit = self.queue_limit.load(Ordering::Relaxed);
        if limit != 0 && self.queue.len() >= limit {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed);
            if dropped % 10_000 == 0 {
                log::warn!(
                    "mailbox {:?} is full ({limit} messages waiting): dropped {} message(s)",
                    self.pid,
                    dropped + 1
                );
            }
            return false;
        }
        self.queue.push(message);
        // Pairs with the fences in `wait` and `ask_for_wake`: either the receiver sees this
        // message when it looks again, or this push sees the sleeper (or the flag).
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            let sleep = lock(&self.sleep);
            self.arrived.notify_all();
            drop(sleep);
        }
        if self.want_wake.load(Ordering::Relaxed) && self.want_wake.swap(false, Ordering::AcqRel) {
            let wake = lock(&self.wake).clone();
            if let Some(wake) = wake {
                wake();
            }
        }
        true
    }

    /// Notes where a message is coming from (`id` tells sources apart; `source` is called
    /// only when it changed).
    pub fn note_source(&self, id: usize, source: impl FnOnce() -> Weak<dyn Feed>) {
        if self.source_id.load(Ordering::Relaxed) != id {
            *lock(&self.source) = Some(source());
            self.source_id.store(id, Ordering::Relaxed);
        }
    }

    /// Where the last message came from, if it can still feed: a waiter may read it while
    /// it spins.
    pub fn source(&self) -> Option<Arc<dyn Feed>> {
        lock(&self.source).as_ref().and_then(Weak::upgrade)
    }

    /// Takes the next message if there is one, without asking for the wake hook: the first
    /// look of a receiver that looks again (spinning, or before it sleeps) if it finds none.
    /// Asking here would make every message the spin then finds call the hook (for asyncio, a
    /// write to the loop's descriptor and a needless turn of the loop per message).
    pub fn pop(&self) -> Option<Message> {
        self.queue.pop()
    }

    /// Takes the next message if there is one. Finding none asks for the wake hook.
    pub fn try_receive(&self) -> Option<Message> {
        if let Some(message) = self.queue.pop() {
            return Some(message);
        }
        self.ask_for_wake();
        self.queue.pop()
    }

    /// Called on finding the queue empty: the next push calls the wake hook. The fence pairs
    /// with the one in `deliver`: a message pushed before it is seen by the caller's next
    /// look at the queue, one pushed after it sees the flag.
    fn ask_for_wake(&self) {
        self.want_wake.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Takes up to `max` waiting messages.
    pub fn drain(&self, max: usize, into: &mut Vec<Message>) {
        for _ in 0..max {
            match self.queue.pop() {
                Some(message) => into.push(message),
                None => break,
            }
        }
        if self.queue.is_empty() {
            self.ask_for_wake();
        }
    }

    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// A message that arrives within [`SPIN`], looked for without sleeping, while messages
    /// have lately come that close together (see [`Spinner`]); None otherwise.
    ///
    /// Each look also feeds from the source of the last message: the receiver reads that
    /// socket itself, so a message arriving meanwhile does not wait for a network thread to
    /// wake (on a VM, tens of µs when its vCPU had gone idle).
    pub fn spin_for_message(&self, after_write: AfterWrite) -> Option<Message> {
        // Plain pops: `try_receive` would write the wake flag, a line the pusher reads, on
        // every look.
        self.spinner
            .spin_feeding(after_write, || self.source(), || self.pop())
    }

    /// Whether the next [`Process::spin_for_message`] will spin rather than just count a
    /// miss: a caller holding the GIL lets go of it only then.
    pub fn spin_is_due(&self) -> bool {
        self.spinner.is_due()
    }

    /// Waits for a message until `deadline` (None: forever). Callers that must stay
    /// interruptible (Python's Ctrl-C) pass short deadlines and loop.
    pub fn wait(&self, deadline: Option<Instant>) -> Result<Message, Empty> {
        if let Some(message) = self.pop() {
            return Ok(message);
        }
        // No spinning past the caller's deadline: `receive(timeout=0)` only looks.
        let room_to_spin = deadline.is_none_or(|d| d > Instant::now() + SPIN);
        if room_to_spin {
            if let Some(message) = self.spin_for_message(AfterWrite::Spin) {
                return Ok(message);
            }
        }
        if let Some(source) = self.source() {
            source.release();
        }
        let mut sleep = lock(&self.sleep);
        self.sleepers.fetch_add(1, Ordering::Relaxed);
        let result = loop {
            // Pairs with the fence in `deliver` (see there).
            fence(Ordering::SeqCst);
            if let Some(message) = self.try_receive() {
                break Ok(message);
            }
            if self.is_closed() {
                break Err(Empty::Closed);
            }
            let timeout = match deadline {
                None => Duration::from_secs(3600),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break Err(Empty::Timeout);
                    }
                    d - now
                }
            };
            // A pusher signals under `sleep`'s lock, which this thread holds from its last
            // look at the queue until it sleeps: no signal falls in between.
            sleep = self
                .arrived
                .wait_timeout(sleep, timeout)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
        result
    }
}

/// Decides whether a receiver that found nothing spins before it sleeps: while spinning pays
/// (the awaited item came within the window, [`SPIN`] by default) it spins every time, and once it stops paying only
/// on every [`SPIN_PROBE_EVERY`]th wait.
pub struct Spinner {
    window: Duration,
    /// Waits in a row in which spinning did not pay; 0 while it does.
    misses: AtomicU32,
    /// Whether a spin that follows a write yields first ([`AfterWrite::MayYield`] only).
    yield_first: AtomicBool,
}

/// What a spin that follows a write to a socket by the same thread does first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterWrite {
    /// Spins at once.
    Spin,
    /// Gives the CPU first to whatever waits for it (`sched_yield`), if that found the awaited
    /// item lately: every such spin that misses flips between yielding and not, so the
    /// spinner settles on the way that finds it.
    ///
    /// The thread our write woke (the peer's, when it runs on this machine) may be queued for
    /// this CPU, behind our spin. Measured on a 2-core VM with one core busy, for an asyncio
    /// loop thread answering pings: its spin then missed 70 % of the pings (each came 18 µs
    /// after the spin ended); with this, W2 round trips 18.7 -> 12.6 µs, and level on an idle
    /// machine (0.98, 31 rounds). Not for `receive()`: there the same rule cost 15 % of W2 on an
    /// idle machine (31 rounds), whose spins rarely wait behind the peer.
    MayYield,
}

thread_local! {
    /// Whether this thread wrote to a socket since its last spin (see [`AfterWrite`]).
    static WROTE: Cell<bool> = const { Cell::new(false) };
}

/// Notes that this thread wrote to a socket (see [`AfterWrite`]).
pub fn note_write() {
    WROTE.with(|wrote| wrote.set(true));
}

impl Default for Spinner {
    fn default() -> Self {
        Spinner::new(SPIN)
    }
}

impl Spinner {
    /// A spinner that looks for up to `window` each time.
    pub fn new(window: Duration) -> Spinner {
        Spinner {
            window,
            misses: AtomicU32::new(0),
            yield_first: AtomicBool::new(false),
        }
    }

    /// Whether the next `spin` will look more than once.
    pub fn is_due(&self) -> bool {
        self.misses.load(Ordering::Relaxed) % SPIN_PROBE_EVERY == 0
    }

    /// Calls `look` until it gives something or the window has passed (or not at all, see
    /// above).
    pub fn spin<T>(
        &self,
        after_write: AfterWrite,
        mut look: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let may_yield =
            WROTE.with(|wrote| wrote.replace(false)) && after_write == AfterWrite::MayYield;
        let yield_first = may_yield && self.yield_first.load(Ordering::Relaxed);
        let misses = self.misses.load(Ordering::Relaxed);
        let due = misses % SPIN_PROBE_EVERY == 0;
        if due {
            if yield_first {
                // SAFETY: no arguments, no memory touched; returns at once if nothing waits.
                unsafe { libc::sched_yield() };
            }
            let until = Instant::now() + self.window;
            while Instant::now() < until {
                for _ in 0..32 {
                    std::hint::spin_loop();
                }
                if let Some(found) = look() {
                    self.misses.store(0, Ordering::Relaxed);
                    return Some(found);
                }
            }
        }
        if may_yield && due {
            self.yield_first.store(!yield_first, Ordering::Relaxed);
        }
        self.misses.store(misses.wrapping_add(1), Ordering::Relaxed);
        None
    }

    /// Like `spin`, and between looks reads the socket the awaited items come from, so an
    /// item arriving meanwhile does not wait for a network thread to wake. `source` is
    /// asked only if the spin is due, and let go when it ends: a connection must not
    /// outlive its disconnection because a waiting thread still holds it.
    pub fn spin_feeding<T>(
        &self,
        after_write: AfterWrite,
        source: impl FnOnce() -> Option<Arc<dyn Feed>>,
        mut look: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let source = if self.is_due() { source() } else { None };
        // Not for spinners that may yield (asyncio): holding the socket there cost W2 with a
        // busy core 13.6 -> 18.8 µs (11 rounds, cause not established). Callback dispatcher
        // (31 rounds): W1 1.10x, W2 level.
        if let (Some(source), AfterWrite::Spin) = (&source, after_write) {
            source.hold();
        }
        let found = self.spin(after_write, || {
            look().or_else(|| {
                source.as_ref()?.feed();
                look()
            })
        });
        // A spin that found something keeps the lease: the caller is likely back soon.
        if let (None, Some(source)) = (&found, &source) {
            source.release();
        }
        found
    }
}

/// A receiver that finds the queue empty looks again for up to this long before it sleeps, as
/// Erlang's schedulers busy-wait before they sleep: a message arriving meanwhile is taken at
/// once, where a sleeping thread (and its idle vCPU) takes tens of µs to run again. Measured
/// on a 2-core VM (31-round A/B): W2 round trips 62 -> 27 µs, W1 and W5 within noise; a 50 µs
/// window cost W1 5 % there.
const SPIN: Duration = Duration::from_micros(30);

/// While spinning does not pay (messages come further apart than [`SPIN`]), it is tried only
/// on every this many waits, so that sparse traffic costs no spinning to speak of.
const SPIN_PROBE_EVERY: u32 = 16;

/// Locks a mutex, ignoring poisoning: our critical sections leave no broken invariants.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
