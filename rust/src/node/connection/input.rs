//! The receiving side of a connection: frames in, dispatched to the node.
//!
//! Any transport is read by [`read_stream`], through Tokio: read, cut frames
//! ([`Deframer`]), hand each to the [`Receiver`] (distribution header, atom cache,
//! fragments) and route what comes out.
//!
//! Plain TCP has a fast path, [`read_socket`], the mirror image of direct writes. The read
//! state (buffer, [`Receiver`]) sits behind a lock that the reader task takes when the
//! socket becomes readable, and that a receiving thread with an empty mailbox takes too
//! ([`Input::feed`]): it reads the socket itself, without waiting for the reader task to
//! wake, as one Erlang scheduler polls and runs processes. A spinning receiver holds the
//! socket meanwhile ([`Lease`]), and while a peer streams, reads leave the socket's last byte
//! in the kernel's queue ([`ReadState::read`]). Neither side ever touches Python.

use super::socket;
use super::{Connection, LastSeen};
use crate::dist::framing::Deframer;
use crate::dist::packet::bulk::Lander;
use crate::dist::packet::{Incoming, Receiver};
use crate::node::{lock, runtime, Inner};
use bytes::BufMut;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, Interest, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::Notify;
use tokio::time::Sleep;

/// A receiving thread reads at most this much at a time: enough for the messages it waits
/// for, little enough that the reader task, which may wait for the read state meanwhile, is
/// not held up for long. Measured (31 rounds) against reading 4 KiB only while the reader
/// task was parked: W1 4 % faster, W2 level; with 64 KiB, W1 3 % faster.
const FEED_AT_MOST: usize = 16 * 1024;

/// While a receiving thread holds the socket (see [`Lease`]), the kernel signals it readable
/// only once this much has piled up: the reader task then helps with a backlog the receiver
/// does not keep up with. Below the receive buffer's initial size, so that setting it does
/// not make the kernel grow the buffer.
const LEASED_LOW_WATER: libc::c_int = 32 * 1024;

/// A lease whose holder has not read for this long is taken back by the reader task: a
/// receiver that stopped receiving must not leave a small message (or a tick) unread.
const LEASE_IDLE: Duration = Duration::from_millis(2);

/// How many reads the reader task makes in a row before it lets other tasks run.
const READS_PER_WAKE: usize = 8;

/// A read of at least this much, less than [`BACKLOG_FRESH`] before the next, means the peer
/// is streaming: the reader task then leaves the socket's last byte in it (see
/// [`ReadState::read`]).
const BACKLOG_READ: usize = 8 * 1024;
const BACKLOG_FRESH: Duration = Duration::from_millis(1);

/// While a frame larger than this is coming in, the reader task reads plainly: its sender
/// writes it in large pieces anyway, and keeping a byte back costs a second system call per
/// read (a first version that made one before every read: W4, 8 MiB messages, 0.89x).
const LARGE_FRAME: usize = 64 * 1024;

/// A byte kept in the socket is taken out at the latest this long after, if no more data came
/// and no receiving thread read first (the timer's resolution adds up to 1 ms). Only the
/// kernel waits for it: its message was delivered when the byte was first read.
const KEPT_AT_MOST: Duration = Duration::from_millis(1);

/// The read side: what the reader task and feeding receivers share.
pub(super) struct Input {
    /// The raw socket and its shared read state: plain TCP only.
    pub(super) socket: Option<SocketInput>,
    /// Rung by a receiving thread that found the connection must end (the reader task ends
    /// it).
    ended: Notify,
    /// Set once the reader task has ended: nobody reads any more.
    pub(super) stopped: AtomicBool,
    /// When data last came in: net_ticktime counts from it.
    last_data: LastSeen,
    /// The largest frame, and the largest message reassembled from fragments, accepted.
    max_message: usize,
    /// Makes the destinations of large binaries (see `dist::packet::bulk`).
    lander: Option<Arc<dyn Lander>>,
    /// Bytes read, and signals (messages, links, monitors, ...; not ticks) dispatched, for
    /// `Node::stats`: added to once per read, never per byte (see [`Input::note_read`]).
    pub(super) bytes_in: AtomicU64,
    pub(super) messages_in: AtomicU64,
    /// The read state's counts of large binaries' bytes landed and copied (see
    /// `dist::packet::bulk`), as of its last read.
    pub(super) bulk_landed: AtomicU64,
    pub(super) bulk_copied: AtomicU64,
}

/// What reading a raw socket from several threads needs.
pub(super) struct SocketInput {
    /// A second handle on the socket, for reads from a receiving thread.
    socket: Arc<std::net::TcpStream>,
    state: Mutex<ReadState>,
    lease: Lease,
}

/// A receiving thread that spins on an empty mailbox reads the socket itself (`feed`); while
/// it does, it holds the socket: the kernel is told to signal the socket readable only for a
/// backlog (`SO_RCVLOWAT`), so an arriving message wakes neither the reader task nor,
/// through it, the CPU the peer is sending from. Without it, on a 2-core VM, every message
/// of a stream could wake the reader task on the sender's CPU (a `perf sched` trace of W1
/// showed the peer's scheduler and our reader task taking turns there, one message each).
/// Measured (31 paired rounds): W2 round trips 25.2 -> 24.3 µs and their slowest round 54 ->
/// 30 µs; with one core busy 14.0 -> 13.6 µs; our CPU per round trip 30 -> 28 µs (10 -> 8
/// with a busy core); W1, W3, W5 level.
struct Lease {
    /// Read without the lock; changed only under `switch`, together with the socket option,
    /// so that a hold and a release racing each other cannot leave the mark high with no
    /// holder (the reader task would then not watch it).
    held: AtomicBool,
    switch: Mutex<()>,
    /// When the holder last read: an idle lease is taken back (see [`LEASE_IDLE`]).
    last_feed: LastSeen,
    /// Tells the reader task a lease was taken, so it watches it.
    taken: Notify,
}

pub(super) struct ReadState {
    pub(super) receiver: Receiver,
    pub(super) frames: Deframer,
    /// How many bytes at the front of the socket's queue were already read, by peeking: they
    /// are in `frames` (or delivered), and are skipped by the next read.
    pub(super) kept: usize,
    /// Whether the kernel supports `SO_PEEK_OFF` on TCP (Linux 6.9 and later), which keeping
    /// a byte needs.
    pub(super) can_keep: bool,
    /// Why the connection must end, when a receiving thread found out (the reader task ends
    /// it).
    ended: Option<String>,
    /// Bytes the last read put straight into a large binary's destination (not the buffer).
    direct: usize,
    /// How many bytes the last read asked for: one that got fewer emptied the socket.
    pub(super) asked: usize,
}

impl Input {
    /// The read side of a stream read through Tokio only.
    pub(super) fn for_stream(
        epoch: Instant,
        max_message: usize,
        lander: Option<Arc<dyn Lander>>,
    ) -> Input {
        Input {
            socket: None,
            ended: Notify::new(),
            stopped: AtomicBool::new(false),
            last_data: LastSeen::new(epoch),
            max_message,
            lander,
            bytes_in: AtomicU64::new(0),
            messages_in: AtomicU64::new(0),
            bulk_landed: AtomicU64::new(0),
            bulk_copied: AtomicU64::new(0),
        }
    }

    /// One read of `bytes` that completed `signals` signals: for the connection's statistics.
    /// Relaxed: nothing is ordered by these counts, and a reader may see one a read behind.
    fn note_read(&self, bytes: usize, signals: u64, receiver: &Receiver) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        if signals > 0 {
            self.messages_in.fetch_add(signals, Ordering::Relaxed);
            if receiver.bulk_landed + receiver.bulk_copied > 0 {
                self.bulk_landed
                    .store(receiver.bulk_landed, Ordering::Relaxed);
                self.bulk_copied
                    .store(receiver.bulk_copied, Ordering::Relaxed);
            }
        }
    }

    /// Since data (a message or a tick) last came in.
    pub(super) fn since_data(&self) -> Duration {
        self.last_data.elapsed()
    }

    /// The read side of a plain TCP socket, which receiving threads may read too.
    pub(super) fn for_socket(
        socket: Arc<std::net::TcpStream>,
        epoch: Instant,
        max_message: usize,
        lander: Option<Arc<dyn Lander>>,
    ) -> Input {
        let can_keep = socket::peek_from_last_end(&socket);
        Input {
            socket: Some(SocketInput {
                socket,
                state: Mutex::new(ReadState::new(can_keep, max_message, lander.clone())),
                lease: Lease {
                    held: AtomicBool::new(false),
                    switch: Mutex::new(()),
                    last_feed: LastSeen::new(epoch),
                    taken: Notify::new(),
                },
            }),
            ..Input::for_stream(epoch, max_message, lander)
        }
    }

    /// Lets a receiving thread hold the socket (see [`Lease`]).
    pub(super) fn hold(&self) {
        let Some(input) = &self.socket else { return };
        let lease = &input.lease;
        lease.last_feed.touch();
        if lease.held.load(Ordering::Acquire) {
            return;
        }
        let _switch = lock(&lease.switch);
        if !lease.held.load(Ordering::Acquire) {
            socket::set_low_water(&input.socket, LEASED_LOW_WATER);
            lease.held.store(true, Ordering::Release);
            lease.taken.notify_one();
        }
    }

    /// Gives the socket back to the reader task: the kernel signals it readable at once if
    /// anything is waiting.
    pub(super) fn release(&self) {
        let Some(input) = &self.socket else { return };
        let lease = &input.lease;
        if !lease.held.load(Ordering::Acquire) {
            return;
        }
        let _switch = lock(&lease.switch);
        if lease.held.load(Ordering::Acquire) {
            socket::set_low_water(&input.socket, 1);
            lease.held.store(false, Ordering::Release);
        }
    }

    /// A receiving thread reads what has arrived and dispatches it, without blocking; it
    /// does nothing if another thread is reading (or the transport has no raw socket).
    pub(super) fn feed(&self, node: &Inner, conn: &Connection) {
        let Some(input) = &self.socket else { return };
        input.lease.last_feed.touch();
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        let Some(mut state) = input.try_state() else {
            return;
        };
        if state.ended.is_some() {
            return;
        }
        state.frames.make_room();
        let ended = match state.read(&input.socket, FEED_AT_MOST, false) {
            Ok(0) => Some("closed by peer".to_string()),
            Ok(got) => {
                self.last_data.touch();
                match state.cut_frames(|incoming| node.dispatch(conn, incoming)) {
                    Ok(signals) => {
                        self.note_read(got, signals, &state.receiver);
                        None
                    }
                    Err(reason) => Some(broke_protocol(conn, reason)),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => None,
            Err(e) => Some(format!("read error: {e}")),
        };
        if ended.is_some() {
            state.ended = ended;
            drop(state);
            self.ended.notify_one();
        }
    }
}

impl Input {
    /// When the watchdog fires: whether nothing came for `timeout` (net_ticktime: the peer
    /// is gone); if something did, the watchdog is moved on to when it would be.
    fn silent_too_long(&self, timeout: Duration, watchdog: Pin<&mut Sleep>) -> bool {
        let silent = self.last_data.elapsed();
        if silent >= timeout {
            return true;
        }
        watchdog.reset(tokio::time::Instant::now() + (timeout - silent));
        false
    }
}

impl SocketInput {
    /// The read state, unless another thread is using it.
    fn try_state(&self) -> Option<MutexGuard<'_, ReadState>> {
        match self.state.try_lock() {
            Ok(state) => Some(state),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

impl ReadState {
    /// `max_message` bounds each frame and each message reassembled from fragments.
    pub(super) fn new(
        can_keep: bool,
        max_message: usize,
        lander: Option<Arc<dyn Lander>>,
    ) -> ReadState {
        let mut receiver = Receiver::with_limit(max_message);
        receiver.set_lander(lander);
        ReadState {
            receiver,
            frames: Deframer::new(max_message),
            kept: 0,
            can_keep,
            ended: None,
            direct: 0,
            asked: 0,
        }
    }

    /// Reads up to `max` new bytes of what the socket holds now into the buffer, without
    /// blocking; with `keep_last`, the socket's last byte stays in its queue (once read).
    ///
    /// Linux acknowledges at once a read that empties the receive queue, and each
    /// acknowledgement lets the sender put its next messages on the wire one segment each,
    /// where it would otherwise add them to a segment it is still holding back. On one
    /// machine each segment costs the sender a transmit and the loopback delivery. Measured
    /// in W1 (an Erlang node streaming to us on 2 vCPUs), per 1,000 messages: reads that
    /// emptied the queue drew a median of 41 acknowledgements, Erlang's own remote, reading a
    /// frame or two at a time, 13; keeping the byte brought ours to 10-22, the driver's
    /// segments from 130-230 to 50-110, and W1 up 15 %. So while the peer streams, a read
    /// peeks at the data (every byte of it is parsed and delivered now) and takes all but the
    /// last byte out of the queue; the next read skips that byte (`SO_PEEK_OFF`) and takes it
    /// out.
    pub(super) fn read(
        &mut self,
        tcp: &std::net::TcpStream,
        max: usize,
        keep_last: bool,
    ) -> std::io::Result<usize> {
        if self.receiver.window().is_some() {
            // A large binary's data: straight into its destination, and nothing kept back
            // (the sender writes it in large pieces anyway).
            self.take_kept(tcp)?;
            self.frames.make_room();
            let window = self.receiver.window().expect("checked above");
            let window_len = window.len();
            // The frame ends with this window: the same read takes the next frame's head
            // into the buffer (one system call per fragment, not two).
            let head = if self.receiver.frame_ends_within(window_len) {
                Receiver::NEXT_HEAD
            } else {
                0
            };
            let window = self.receiver.window().expect("checked above");
            let (direct, buffered) = socket::read_split(tcp, window, self.frames.buffer(), head)?;
            self.asked = window_len + head;
            self.direct = direct;
            return Ok(direct + buffered);
        }
        let limit = self.receiver.read_limit(&self.frames);
        let max = limit.map_or(max, |limit| limit.min(max));
        self.asked = max.min(self.frames.room());
        // Between the fragments of a large binary no byte is kept back (the sender writes
        // them in large pieces anyway).
        if keep_last && self.can_keep && limit.is_none() {
            let got = socket::read_now(tcp, self.frames.buffer(), max, libc::MSG_PEEK)?;
            if got > 0 {
                socket::discard(tcp, self.kept + got - 1)?;
                self.kept = 1;
            }
            return Ok(got);
        }
        self.take_kept(tcp)?;
        socket::read_now(tcp, self.frames.buffer(), max, 0)
    }

    /// Takes the kept byte out of the socket's queue: if nothing else is there, Linux now
    /// acknowledges what came.
    pub(super) fn take_kept(&mut self, tcp: &std::net::TcpStream) -> std::io::Result<()> {
        if self.kept > 0 {
            socket::discard(tcp, self.kept)?;
            self.kept = 0;
        }
        Ok(())
    }

    /// Hands every signal that what was read completes to `dispatch`; returns how many. An
    /// error means the connection must end.
    pub(super) fn cut_frames(&mut self, mut dispatch: impl FnMut(Incoming)) -> Result<u64, String> {
        let mut signals = 0;
        if self.direct > 0 {
            let wrote = std::mem::take(&mut self.direct);
            if let Some(incoming) = self
                .receiver
                .wrote(wrote)
                .map_err(|e| format!("bad frame: {e}"))?
            {
                dispatch(incoming);
                signals += 1;
            }
        }
        Ok(signals + self.receiver.cut(&mut self.frames, dispatch)?)
    }
}

/// A peer that sent what the protocol does not allow (a frame over the size limit, one that
/// does not parse, a fragment out of place) is disconnected, and unlike a peer that leaves it
/// is worth a warning at the default log level, as Erlang logs bad distribution data too.
fn broke_protocol(conn: &Connection, reason: String) -> String {
    log::warn!("disconnecting {}: {reason}", conn.peer);
    reason
}

/// The reader task of a stream read through Tokio (any transport without a raw socket).
/// Returns why the connection ended.
pub(super) async fn read_stream<R: AsyncRead + Unpin>(
    node: &Inner,
    conn: &Connection,
    mut reader: R,
    timeout: Duration,
) -> String {
    let input = &conn.input;
    let mut state = ReadState::new(false, input.max_message, input.lander.clone());
    let watchdog = tokio::time::sleep(timeout);
    let mut watchdog = std::pin::pin!(watchdog);
    loop {
        state.frames.make_room();
        let read = tokio::select! {
            biased;
            read = read_some(&mut reader, &mut state) => read,
            _ = watchdog.as_mut() => {
                if input.silent_too_long(timeout, watchdog.as_mut()) {
                    return format!("no data for {timeout:?} (net_ticktime)");
                }
                continue;
            }
        };
        match read {
            Ok(0) => return "closed by peer".to_string(),
            Ok(got) => {
                input.last_data.touch();
                match state.cut_frames(|incoming| node.dispatch(conn, incoming)) {
                    Ok(signals) => input.note_read(got, signals, &state.receiver),
                    Err(reason) => return broke_protocol(conn, reason),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // TLS: an OTP node that exits closes without TLS's close_notify.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return "closed by peer".to_string()
            }
            Err(e) => return format!("read error: {e}"),
        }
    }
}

/// One read of a stream: into a large binary's destination when its data comes next, else
/// into the frame buffer. Over TLS, rustls copies the plaintext from its own buffer.
async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut R,
    state: &mut ReadState,
) -> std::io::Result<usize> {
    let Some(window) = state.receiver.window() else {
        return match state.receiver.read_limit(&state.frames) {
            Some(limit) => {
                let mut buffer = state.frames.buffer().limit(limit);
                reader.read_buf(&mut buffer).await
            }
            None => reader.read_buf(state.frames.buffer()).await,
        };
    };
    let mut buf = ReadBuf::uninit(window);
    std::future::poll_fn(|cx| Pin::new(&mut *reader).poll_read(cx, &mut buf)).await?;
    let got = buf.filled().len();
    state.direct = got;
    Ok(got)
}

/// The reader task of a plain TCP socket: reads under the read state's lock, so a receiving
/// thread may read in between. Returns why the connection ended.
pub(super) async fn read_socket(
    node: &Inner,
    conn: &Connection,
    read_half: &OwnedReadHalf,
    timeout: Duration,
) -> String {
    let input = &conn.input;
    let Some(SocketInput {
        socket: tcp,
        state: shared,
        lease,
    }) = &input.socket
    else {
        return "no socket to read".to_string();
    };
    // One timer for the connection's life, moved on only when it fires: a timer per read
    // costs a timer-wheel entry per read.
    let watchdog = tokio::time::sleep(timeout);
    let mut watchdog = std::pin::pin!(watchdog);
    // When a read last found a backlog (see `ReadState::read`), and when a byte kept in the
    // socket must be taken out at the latest.
    let mut backlog_at: Option<Instant> = None;
    let mut kept = false;
    let kept_due = tokio::time::sleep(Duration::ZERO);
    let mut kept_due = std::pin::pin!(kept_due);
    loop {
        let mut kept_overdue = false;
        tokio::select! {
            biased;
            ready = read_half.readable() => {
                if let Err(e) = ready {
                    return format!("read error: {e}");
                }
            }
            _ = kept_due.as_mut(), if kept => kept_overdue = true,
            _ = input.ended.notified() => {}
            _ = lease.taken.notified() => continue,
            _ = tokio::time::sleep(LEASE_IDLE), if lease.held.load(Ordering::Acquire) => {
                if lease.last_feed.elapsed() >= LEASE_IDLE {
                    input.release();
                }
                continue;
            }
            _ = watchdog.as_mut() => {
                if input.silent_too_long(timeout, watchdog.as_mut()) {
                    return format!("no data for {timeout:?} (net_ticktime)");
                }
                continue;
            }
        }
        // A receiving thread may be reading: it holds the state for one read of at most
        // FEED_AT_MOST bytes, tens of µs.
        let mut state = lock(shared);
        if let Some(reason) = state.ended.take() {
            return reason;
        }
        if kept_overdue {
            kept = false;
            if let Err(e) = state.take_kept(tcp) {
                return format!("read error: {e}");
            }
            continue;
        }
        // A few reads per wake-up, then back through `readable`, which lets other tasks run.
        for _ in 0..READS_PER_WAKE {
            state.frames.make_room();
            let room = state.frames.room();
            let streaming = backlog_at.is_some_and(|at| at.elapsed() < BACKLOG_FRESH);
            let keep_last = streaming
                && state
                    .frames
                    .missing()
                    .is_none_or(|missing| missing < LARGE_FRAME);
            let mut got = 0;
            // A read that does not fill the room emptied the socket (but for a kept byte): as
            // Tokio's own reads do, it clears the readiness (from before the read, so nothing
            // arriving since is lost), which spares a read that would only say "would block".
            let read = read_half.as_ref().try_io(Interest::READABLE, || {
                got = state.read(tcp, room, keep_last)?;
                match got {
                    n if n > 0 && n < state.asked => Err(std::io::ErrorKind::WouldBlock.into()),
                    _ => Ok(()),
                }
            });
            if state.kept > 0 && !kept {
                kept_due
                    .as_mut()
                    .reset((Instant::now() + KEPT_AT_MOST).into());
            }
            kept = state.kept > 0;
            if got >= BACKLOG_READ {
                backlog_at = Some(Instant::now());
            }
            let drained = match read {
                Ok(()) if got == 0 => return "closed by peer".to_string(),
                Ok(()) => false,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return format!("read error: {e}"),
            };
            if got > 0 {
                runtime::note_read(got);
                input.last_data.touch();
                let dispatch = |incoming| node.dispatch(conn, incoming);
                match state.cut_frames(dispatch) {
                    Ok(signals) => input.note_read(got, signals, &state.receiver),
                    Err(reason) => return broke_protocol(conn, reason),
                }
            }
            if drained {
                break;
            }
        }
    }
}
