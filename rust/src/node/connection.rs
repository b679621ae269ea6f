//! One distribution connection: a reader task, and an outbox that senders write through.
//!
//! Sending writes straight to the socket from the sending thread when nothing is queued (no
//! thread hop, so a reply leaves as soon as Python sends it); whatever the socket does not take
//! at once, and the rest of a burst of sends, waits in the outbox for the writer task, which
//! writes it in order, many frames per system call, and gives the socket back to direct
//! writers once the queue is empty. The writer also sends a tick when
//! nothing was written for a tick period.
//!
//! Reading is the mirror image. The read state (buffer, [`Receiver`]) sits behind a lock that
//! the reader task takes when the socket becomes readable, and that a receiving thread with
//! an empty mailbox takes too ([`Connection::feed`]): it reads the socket itself, without
//! waiting for the reader task to wake, as one Erlang scheduler polls and runs processes.
//! Whoever holds the lock cuts frames, hands them to the [`Receiver`] (distribution header,
//! atom cache, fragments) and routes them. Neither side ever touches Python.

use super::process::{self, Feed};
use super::{lock, Inner};
use crate::dist::control::Control;
use crate::dist::packet::{Incoming, Receiver, Sender, TICK};
use crate::etf::Atom;
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter, Interest};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// The largest frame we accept (a peer without FRAGMENTS sends big messages whole).
const MAX_FRAME: usize = 1 << 30;

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

/// Sends closer together than this form a burst: after the first, they go through the
/// writer task, which writes what piled up in one system call, instead of one write each.
const BURST_GAP: Duration = Duration::from_micros(10);

/// Queued frames smaller than this are copied into one buffer rather than queued one by one:
/// the writer task then frees one buffer per batch instead of one allocation of the sending
/// thread per frame (a free from another thread is glibc's slow path).
const COALESCE_BELOW: usize = 4096;

/// When something last happened, in ms since the connection started: a time any thread
/// can set or read without a lock.
struct LastSeen {
    ms: AtomicU64,
    epoch: Instant,
}

impl LastSeen {
    fn new(epoch: Instant) -> LastSeen {
        LastSeen {
            ms: AtomicU64::new(0),
            epoch,
        }
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.ms.store(ms, Ordering::Relaxed);
    }

    fn elapsed(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.ms.load(Ordering::Relaxed)))
    }
}

#[derive(Default)]
struct Outbox {
    /// Frames waiting for the writer task, in order, then `tail`.
    queue: VecDeque<Bytes>,
    /// The newest small frames, copied one after the other.
    tail: BytesMut,
    /// The writer task owns the socket until it has emptied the queue.
    writer_busy: bool,
    closed: bool,
    /// When a sending thread last wrote to the socket itself.
    last_direct: Option<Instant>,
}

impl Outbox {
    fn enqueue(&mut self, frame: Bytes) {
        if frame.len() < COALESCE_BELOW {
            self.tail.extend_from_slice(&frame);
            return;
        }
        if !self.tail.is_empty() {
            let small = self.tail.split().freeze();
            self.queue.push_back(small);
        }
        self.queue.push_back(frame);
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.tail.is_empty()
    }

    /// Everything queued, in order.
    fn take(&mut self) -> Vec<Bytes> {
        let mut batch: Vec<Bytes> = self.queue.drain(..).collect();
        if !self.tail.is_empty() {
            batch.push(self.tail.split().freeze());
        }
        batch
    }
}

/// What the senders and the writer task share.
struct Output {
    outbox: Mutex<Outbox>,
    wake_writer: Notify,
    /// A second handle on the socket (plain TCP only) for writes from the sending thread.
    /// None for transports that need the writer task for every byte (TLS later).
    direct: Option<Arc<std::net::TcpStream>>,
    /// When anything was last written: ticks only fill silence.
    last_write: LastSeen,
}

impl Output {
    /// Writes or queues frames, keeping their order. False once the connection is closed.
    fn push(&self, frames: impl IntoIterator<Item = Bytes>) -> bool {
        let mut out = lock(&self.outbox);
        if out.closed {
            return false;
        }
        let mut frames = frames.into_iter();
        let now = Instant::now();
        let in_burst = out
            .last_direct
            .is_some_and(|t| now.duration_since(t) < BURST_GAP);
        if !out.writer_busy && out.is_empty() && !in_burst {
            out.last_direct = Some(now);
            if let Some(socket) = &self.direct {
                for frame in frames.by_ref() {
                    let written = write_some(socket, &frame);
                    if written < frame.len() {
                        out.enqueue(frame.slice(written..));
                        break;
                    }
                }
                self.last_write.touch();
            }
        }
        for frame in frames {
            out.enqueue(frame);
        }
        if !out.is_empty() && !out.writer_busy {
            out.writer_busy = true;
            self.wake_writer.notify_one();
        }
        true
    }

    fn close(&self) {
        lock(&self.outbox).closed = true;
        self.wake_writer.notify_one();
    }
}

/// Writes what the socket takes now, without blocking.
fn write_some(mut socket: &std::net::TcpStream, frame: &[u8]) -> usize {
    let mut written = 0;
    while written < frame.len() {
        match socket.write(&frame[written..]) {
            Ok(0) => break,
            Ok(n) => {
                written += n;
                process::note_write();
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // WouldBlock: the writer task goes on; other errors: the reader sees the close.
            Err(_) => break,
        }
    }
    written
}

/// The read side: what the reader task and feeding receivers share.
struct Input {
    state: Mutex<ReadState>,
    /// A second handle on the socket, for reads from a receiving thread (plain TCP only).
    socket: Option<Arc<std::net::TcpStream>>,
    /// Rung by a receiving thread that found the connection must end (the reader task ends
    /// it).
    ended: Notify,
    /// Set once the reader task has ended: nobody reads any more.
    stopped: AtomicBool,
    /// When data last came in: net_ticktime counts from it.
    last_data: LastSeen,
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

struct ReadState {
    receiver: Receiver,
    buf: BytesMut,
    /// How many bytes at the front of the socket's queue were already read, by peeking: they
    /// are in `buf` (or delivered), and are skipped by the next read.
    kept: usize,
    /// Whether the kernel supports `SO_PEEK_OFF` on TCP (Linux 6.9 and later), which keeping
    /// a byte needs.
    can_keep: bool,
    /// Why the connection must end, when a receiving thread found out (the reader task ends
    /// it).
    ended: Option<String>,
}

impl Input {
    /// Lets a receiving thread hold the socket (see [`Lease`]).
    fn hold(&self) {
        let Some(socket) = &self.socket else { return };
        self.lease.last_feed.touch();
        if self.lease.held.load(Ordering::Acquire) {
            return;
        }
        let _switch = lock(&self.lease.switch);
        if !self.lease.held.load(Ordering::Acquire) {
            set_low_water(socket, LEASED_LOW_WATER);
            self.lease.held.store(true, Ordering::Release);
            self.lease.taken.notify_one();
        }
    }

    /// Gives the socket back to the reader task: the kernel signals it readable at once if
    /// anything is waiting.
    fn release(&self) {
        let Some(socket) = &self.socket else { return };
        if !self.lease.held.load(Ordering::Acquire) {
            return;
        }
        let _switch = lock(&self.lease.switch);
        if self.lease.held.load(Ordering::Acquire) {
            set_low_water(socket, 1);
            self.lease.held.store(false, Ordering::Release);
        }
    }

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
    fn read(
        &mut self,
        socket: &std::net::TcpStream,
        max: usize,
        keep_last: bool,
    ) -> std::io::Result<usize> {
        if keep_last && self.can_keep {
            let got = read_now(socket, &mut self.buf, max, libc::MSG_PEEK)?;
            if got > 0 {
                discard(socket, self.kept + got - 1)?;
                self.kept = 1;
            }
            return Ok(got);
        }
        self.take_kept(socket)?;
        read_now(socket, &mut self.buf, max, 0)
    }

    /// Takes the kept byte out of the socket's queue: if nothing else is there, Linux now
    /// acknowledges what came.
    fn take_kept(&mut self, socket: &std::net::TcpStream) -> std::io::Result<()> {
        if self.kept > 0 {
            discard(socket, self.kept)?;
            self.kept = 0;
        }
        Ok(())
    }

    /// How many more bytes the frame at the front of the buffer needs, if its length is known.
    fn missing(&self) -> Option<usize> {
        let head: [u8; 4] = self.buf.get(..4)?.try_into().ok()?;
        let len = u32::from_be_bytes(head) as usize;
        Some((4 + len).saturating_sub(self.buf.len()))
    }

    /// Keeps room in the buffer for the next read.
    fn make_room(&mut self) {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(256 * 1024);
        }
    }

    /// Cuts every complete frame out of the buffer and hands each incoming signal to
    /// `dispatch`. An error means the connection must end.
    fn cut_frames(&mut self, mut dispatch: impl FnMut(Incoming)) -> Result<(), String> {
        let buf = &mut self.buf;
        while buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len == 0 {
                buf.advance(4);
                continue;
            }
            if len > MAX_FRAME {
                return Err(format!("frame of {len} bytes is over the limit"));
            }
            if buf.len() < 4 + len {
                buf.reserve(4 + len - buf.len());
                break;
            }
            buf.advance(4);
            let frame = buf.split_to(len).freeze();
            match self.receiver.receive(frame) {
                Ok(Some(incoming)) => dispatch(incoming),
                Ok(None) => {}
                Err(e) => return Err(format!("bad frame: {e}")),
            }
        }
        Ok(())
    }
}

/// Reads up to `max` bytes of what the socket holds now into the buffer's spare room, without
/// blocking and without Tokio (whose readiness flags only its own event loop sets).
fn read_now(
    socket: &std::net::TcpStream,
    buf: &mut BytesMut,
    max: usize,
    flags: libc::c_int,
) -> std::io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let room = max.min(spare.len());
    let spare = &mut spare[..room];
    // SAFETY: recv writes at most `spare.len()` bytes into memory we own, and we count as
    // initialised only the bytes it reports written.
    let n = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            spare.as_mut_ptr().cast(),
            spare.len(),
            libc::MSG_DONTWAIT | flags,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: see above.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Takes `bytes` already read (by peeking) out of the socket's queue, without copying them.
fn discard(socket: &std::net::TcpStream, bytes: usize) -> std::io::Result<()> {
    if bytes == 0 {
        return Ok(());
    }
    // SAFETY: with MSG_TRUNC, TCP drops the bytes without writing to the (null) buffer.
    let n = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            std::ptr::null_mut(),
            bytes,
            libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        )
    };
    match n {
        n if n < 0 => Err(std::io::Error::last_os_error()),
        n if n as usize == bytes => Ok(()),
        n => Err(std::io::Error::other(format!(
            "{bytes} bytes already read were not in the socket (only {n})"
        ))),
    }
}

/// Turns on `SO_PEEK_OFF`, so that peeking reads go on where the last one ended (see
/// [`ReadState::read`]); false where the kernel does not support it for TCP (before 6.9).
fn peek_from_last_end(socket: &std::net::TcpStream) -> bool {
    set_socket_option(socket, libc::SO_PEEK_OFF, 0).is_ok()
}

/// Sets a socket-level option that takes an int.
fn set_socket_option(
    socket: &std::net::TcpStream,
    option: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: a valid descriptor, and a pointer to an int with its size.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match result {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// A live connection to a peer node.
pub struct Connection {
    pub peer: Atom,
    pub peer_creation: u32,
    /// The flags both sides share.
    pub flags: u64,
    /// The encoder; held while frames go out so concurrent senders cannot interleave
    /// fragments or reorder one sender's messages.
    sender: Mutex<Sender>,
    output: Arc<Output>,
    input: Input,
    node: Weak<Inner>,
    me: Weak<Connection>,
    /// Unique in the process: not the address, which a later connection may reuse.
    id: usize,
    reader: Mutex<Option<tokio::task::AbortHandle>>,
}

/// The last connection id handed out.
static CONNECTION_IDS: AtomicUsize = AtomicUsize::new(0);

impl Drop for Connection {
    fn drop(&mut self) {
        // The writer finishes what is queued, then closes the socket's write side.
        self.output.close();
    }
}

impl Connection {
    /// Sends a control message and its payload (a term body, no version byte).
    /// Returns false when the connection is already gone.
    pub fn send(&self, control: &Control, payload: Option<&[u8]>) -> bool {
        let mut frames = Vec::with_capacity(1);
        let mut sender = lock(&self.sender);
        if let Err(e) = sender.encode(control, payload, &mut frames) {
            log::warn!("cannot send to {}: {e}", self.peer);
            return false;
        }
        self.output.push(frames)
    }

    /// Sends one control message per payload, as one write: the batch path of `send_many`.
    pub fn send_many(&self, control: &Control, payloads: &[Bytes]) -> bool {
        let mut batch = Vec::with_capacity(payloads.iter().map(|p| p.len() + 32).sum());
        let mut sender = lock(&self.sender);
        let result = sender.encode_many(control, payloads.iter().map(|p| &p[..]), &mut batch);
        // The frames made before a failure go out all the same: they may carry atom cache
        // entries the sender now counts as known to the peer.
        let pushed = self.output.push([Bytes::from(batch)]);
        if let Err(e) = result {
            log::warn!("cannot send to {}: {e}", self.peer);
            return false;
        }
        pushed
    }

    pub fn has_flag(&self, flag: u64) -> bool {
        self.flags & flag != 0
    }

    /// Tells messages from this connection apart from others' (see [`Process::note_source`]).
    ///
    /// [`Process::note_source`]: super::process::Process::note_source
    pub fn id(&self) -> usize {
        self.id
    }

    /// A handle a process keeps on where its messages come from.
    pub fn as_source(&self) -> Weak<dyn Feed> {
        self.me.clone()
    }

    /// Stops the reader, and the writer once it has written what is queued (then the peer
    /// sees the connection close), whoever still holds this connection.
    pub fn shutdown(&self) {
        self.input.stopped.store(true, Ordering::Release);
        if let Some(reader) = lock(&self.reader).take() {
            reader.abort();
        }
        self.output.close();
    }
}

/// Sets the socket's `SO_RCVLOWAT`. Linux signals a waiting `epoll` at once when lowering it
/// uncovers data already queued, so lowering it loses no wake-up.
fn set_low_water(socket: &std::net::TcpStream, bytes: libc::c_int) {
    if let Err(e) = set_socket_option(socket, libc::SO_RCVLOWAT, bytes) {
        log::warn!("setting SO_RCVLOWAT to {bytes} failed: {e}");
    }
}

impl Feed for Connection {
    fn hold(&self) {
        self.input.hold();
    }

    fn release(&self) {
        self.input.release();
    }

    fn feed(&self) {
        let Some(socket) = &self.input.socket else {
            return;
        };
        self.input.lease.last_feed.touch();
        if self.input.stopped.load(Ordering::Acquire) {
            return;
        }
        let Some(mut state) = self.input.try_state() else {
            return;
        };
        if state.ended.is_some() {
            return;
        }
        let Some(node) = self.node.upgrade() else {
            return;
        };
        state.make_room();
        let ended = match state.read(socket, FEED_AT_MOST, false) {
            Ok(0) => Some("closed by peer".to_string()),
            Ok(_) => {
                self.input.last_data.touch();
                state
                    .cut_frames(|incoming| node.dispatch(self, incoming))
                    .err()
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => None,
            Err(e) => Some(format!("read error: {e}")),
        };
        if ended.is_some() {
            state.ended = ended;
            drop(state);
            self.input.ended.notify_one();
        }
    }
}

/// Starts the reader and writer tasks of a connection that has completed its handshake.
pub fn start(
    node: &Arc<Inner>,
    stream: TcpStream,
    peer: Atom,
    peer_creation: u32,
    flags: u64,
    tick: Duration,
    timeout: Duration,
) -> std::io::Result<Arc<Connection>> {
    // A second handle on the socket lets senders write, and receivers read, without a
    // thread hop.
    let std_stream = stream.into_std()?;
    let socket = Arc::new(std_stream.try_clone()?);
    let stream = TcpStream::from_std(std_stream)?;
    let (read_half, write_half) = stream.into_split();
    let epoch = Instant::now();
    let output = Arc::new(Output {
        outbox: Mutex::new(Outbox::default()),
        wake_writer: Notify::new(),
        direct: Some(socket.clone()),
        last_write: LastSeen::new(epoch),
    });
    let conn = Arc::new_cyclic(|me| Connection {
        peer,
        peer_creation,
        flags,
        sender: Mutex::new(Sender::new(flags)),
        output: output.clone(),
        input: Input {
            state: Mutex::new(ReadState {
                receiver: Receiver::new(),
                buf: BytesMut::with_capacity(256 * 1024),
                ended: None,
                kept: 0,
                can_keep: peek_from_last_end(&socket),
            }),
            socket: Some(socket),
            ended: Notify::new(),
            stopped: AtomicBool::new(false),
            last_data: LastSeen::new(epoch),
            lease: Lease {
                held: AtomicBool::new(false),
                switch: Mutex::new(()),
                last_feed: LastSeen::new(epoch),
                taken: Notify::new(),
            },
        },
        node: Arc::downgrade(node),
        me: me.clone(),
        id: CONNECTION_IDS.fetch_add(1, Ordering::Relaxed) + 1,
        reader: Mutex::new(None),
    });
    let rt = tokio::runtime::Handle::current();
    rt.spawn(write_loop(write_half, output, tick));
    let reader = rt.spawn(read_loop(node.clone(), conn.clone(), read_half, timeout));
    *lock(&conn.reader) = Some(reader.abort_handle());
    Ok(conn)
}

async fn write_loop<W: AsyncWrite>(write_half: W, output: Arc<Output>, tick: Duration) {
    let out = BufWriter::with_capacity(64 * 1024, write_half);
    let mut out = std::pin::pin!(out);
    loop {
        let idle = output.last_write.elapsed();
        if idle >= tick {
            output.push([Bytes::from_static(&TICK)]);
        }
        let wait = tick
            .saturating_sub(idle.min(tick))
            .max(Duration::from_millis(10));
        tokio::select! {
            _ = output.wake_writer.notified() => {}
            _ = tokio::time::sleep(wait) => continue,
        }
        loop {
            let (batch, closed) = {
                let mut outbox = lock(&output.outbox);
                if outbox.is_empty() {
                    outbox.writer_busy = false;
                }
                let batch = outbox.take();
                (batch, outbox.closed)
            };
            if batch.is_empty() {
                if closed {
                    let _ = out.shutdown().await;
                    return;
                }
                break;
            }
            for frame in batch {
                if out.write_all(&frame).await.is_err() {
                    return;
                }
            }
            if out.flush().await.is_err() {
                return;
            }
            output.last_write.touch();
        }
    }
}

async fn read_loop(
    node: Arc<Inner>,
    conn: Arc<Connection>,
    read_half: OwnedReadHalf,
    timeout: Duration,
) {
    let input = &conn.input;
    let reason = read_until_ended(&node, &conn, &read_half, timeout).await;
    input.stopped.store(true, Ordering::Release);
    node.connection_lost(&conn, &reason);
}

/// The reader task's loop: reads under the read state's lock, so a receiving thread may read
/// in between. Returns why the connection ended.
async fn read_until_ended(
    node: &Inner,
    conn: &Connection,
    read_half: &OwnedReadHalf,
    timeout: Duration,
) -> String {
    let input = &conn.input;
    let Some(socket) = input.socket.as_deref() else {
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
            _ = input.lease.taken.notified() => continue,
            _ = tokio::time::sleep(LEASE_IDLE), if input.lease.held.load(Ordering::Acquire) => {
                if input.lease.last_feed.elapsed() >= LEASE_IDLE {
                    input.release();
                }
                continue;
            }
            _ = watchdog.as_mut() => {
                let silent = input.last_data.elapsed();
                if silent >= timeout {
                    return format!("no data for {timeout:?} (net_ticktime)");
                }
                watchdog.as_mut().reset(tokio::time::Instant::now() + (timeout - silent));
                continue;
            }
        }
        // A receiving thread may be reading: it holds the state for one read of at most
        // FEED_AT_MOST bytes, tens of µs.
        let mut state = lock(&input.state);
        if let Some(reason) = state.ended.take() {
            return reason;
        }
        if kept_overdue {
            kept = false;
            if let Err(e) = state.take_kept(socket) {
                return format!("read error: {e}");
            }
            continue;
        }
        // A few reads per wake-up, then back through `readable`, which lets other tasks run.
        for _ in 0..READS_PER_WAKE {
            state.make_room();
            let room = state.buf.capacity() - state.buf.len();
            let streaming = backlog_at.is_some_and(|at| at.elapsed() < BACKLOG_FRESH);
            let keep_last =
                streaming && state.missing().is_none_or(|missing| missing < LARGE_FRAME);
            let mut got = 0;
            // A read that does not fill the room emptied the socket (but for a kept byte): as
            // Tokio's own reads do, it clears the readiness (from before the read, so nothing
            // arriving since is lost), which spares a read that would only say "would block".
            let read = read_half.as_ref().try_io(Interest::READABLE, || {
                got = state.read(socket, room, keep_last)?;
                match got {
                    n if n > 0 && n < room => Err(std::io::ErrorKind::WouldBlock.into()),
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
                super::runtime::note_read(got);
                input.last_data.touch();
                let dispatch = |incoming| node.dispatch(conn, incoming);
                if let Err(reason) = state.cut_frames(dispatch) {
                    return reason;
                }
            }
            if drained {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::flags;
    use crate::etf::{Pid, Term};

    fn empty_state() -> ReadState {
        ReadState {
            receiver: Receiver::new(),
            buf: BytesMut::new(),
            ended: None,
            kept: 0,
            can_keep: false,
        }
    }

    fn tcp_pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let writer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (reader, _) = listener.accept().unwrap();
        (writer, reader)
    }

    fn unread(socket: &std::net::TcpStream) -> usize {
        let mut bytes: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int.
        assert_eq!(
            unsafe { libc::ioctl(socket.as_raw_fd(), libc::FIONREAD, &mut bytes) },
            0
        );
        bytes as usize
    }

    #[test]
    fn reads_that_keep_the_last_byte_see_every_byte_once() {
        let (mut writer, reader) = tcp_pair();
        let mut state = empty_state();
        state.can_keep = peek_from_last_end(&reader);
        // Older kernels read plainly, which must see every byte once too.
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut version = release.split(['.', '-']).map(|part| part.parse::<u32>());
        if let (Some(Ok(major)), Some(Ok(minor))) = (version.next(), version.next()) {
            if (major, minor) >= (6, 9) {
                assert!(state.can_keep, "Linux {release} has SO_PEEK_OFF for TCP");
            }
        }
        state.buf.reserve(64 * 1024);
        let mut sent = Vec::new();
        // Reads that keep and reads that do not, in turn, some of them of less than what
        // waits, one of them after the writer sent a single byte.
        let plan: [(usize, usize, bool); 7] = [
            (1000, 4096, true),
            (3000, 1000, true),
            (0, 4096, true),
            (1, 4096, true),
            (500, 4096, false),
            (2000, 4096, true),
            (700, 100, false),
        ];
        for (round, (write, max, keep_last)) in plan.into_iter().enumerate() {
            let chunk: Vec<u8> = (0..write).map(|i| (i * 7 + round) as u8).collect();
            writer.write_all(&chunk).unwrap();
            sent.extend_from_slice(&chunk);
            std::thread::sleep(Duration::from_millis(20));
            let before = state.buf.len();
            let got = match state.read(&reader, max, keep_last) {
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                Err(e) => panic!("round {round}: {e}"),
            };
            assert!(got <= max && before + got == state.buf.len());
            // A read that took all there was leaves exactly one byte in the socket.
            if state.can_keep && keep_last && got > 0 && got < max {
                assert_eq!((state.kept, unread(&reader)), (1, 1), "round {round}");
            }
        }
        while state.read(&reader, 4096, false).is_ok_and(|got| got > 0) {}
        assert_eq!(&state.buf[..], &sent[..]);
        assert_eq!((state.kept, unread(&reader)), (0, 0));

        // The kept byte taken out alone.
        writer.write_all(b"xyz").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(state.read(&reader, 4096, true).unwrap(), 3);
        assert_eq!(unread(&reader), usize::from(state.can_keep));
        state.take_kept(&reader).unwrap();
        assert_eq!((state.kept, unread(&reader)), (0, 0));
        assert!(state.buf.ends_with(b"xyz"));
    }

    #[test]
    fn the_frame_at_the_front_says_how_many_bytes_it_still_needs() {
        let mut state = empty_state();
        assert_eq!(state.missing(), None);
        state.buf.extend_from_slice(&[0, 0, 0]);
        assert_eq!(state.missing(), None);
        state.buf.extend_from_slice(&[10, 1, 2]);
        assert_eq!(state.missing(), Some(8));
    }

    #[test]
    fn frames_are_cut_whole_across_reads_and_ticks_are_skipped() {
        let to = Pid {
            node: Atom::new("py@host"),
            id: 7,
            serial: 0,
            creation: 1,
        };
        let send = Control::Send { to: to.clone() };
        let mut body = Vec::new();
        crate::etf::encode_term_body(&Term::atom("hello"), &mut body);
        let mut sender = Sender::new(flags::DIST_HDR_ATOM_CACHE);
        let mut frames = vec![Bytes::from_static(&TICK)];
        for _ in 0..3 {
            sender.encode(&send, Some(&body), &mut frames).unwrap();
            frames.push(Bytes::from_static(&TICK));
        }
        let stream: Vec<u8> = frames.concat();
        // Fed in pieces of every size, as reads may cut the stream anywhere.
        for piece in 1..stream.len() {
            let mut state = empty_state();
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                state.buf.extend_from_slice(chunk);
                state.cut_frames(|incoming| got.push(incoming)).unwrap();
            }
            assert_eq!(got.len(), 3, "pieces of {piece} bytes");
            for incoming in &got {
                assert_eq!(incoming.control, send);
            }
            assert!(state.buf.is_empty());
        }
    }

    #[test]
    fn an_oversized_frame_ends_the_connection() {
        let mut state = empty_state();
        state
            .buf
            .extend_from_slice(&(MAX_FRAME as u32 + 1).to_be_bytes());
        let error = state
            .cut_frames(|_| panic!("nothing to dispatch"))
            .unwrap_err();
        assert!(error.contains("over the limit"), "{error}");
        let mut state = empty_state();
        state.buf.extend_from_slice(&[0, 0, 0, 3, 1, 2, 3]);
        let error = state
            .cut_frames(|_| panic!("nothing to dispatch"))
            .unwrap_err();
        assert!(error.starts_with("bad frame"), "{error}");
    }

    /// Two nodes of this process on loopback, sharing a private EPMD (the first serves it).
    fn node_pair() -> (crate::node::Node, crate::node::Node) {
        use crate::node::{Node, NodeConfig};
        let epmd_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let suffix = std::process::id() ^ (Instant::now().elapsed().subsec_nanos());
        let start = |alive: &str| {
            Node::start(NodeConfig {
                name: Some(format!("{alive}_{suffix}")),
                cookie: Some("lease-test".to_string()),
                listen: "127.0.0.1:0".parse().unwrap(),
                epmd_port: Some(epmd_port),
                ..NodeConfig::default()
            })
            .expect("node starts")
        };
        (start("lease_a"), start("lease_b"))
    }

    fn body(term: &Term) -> Bytes {
        let mut out = Vec::new();
        crate::etf::encode_term_body(term, &mut out);
        Bytes::from(out)
    }

    #[test]
    fn a_lease_whose_holder_stopped_reading_is_taken_back() {
        use crate::node::Dest;
        let (a, b) = node_pair();
        let stream = a.spawn_process(Some("stream")).unwrap();
        let other = a.spawn_process(Some("other")).unwrap();
        let sender = b.spawn_process(None).unwrap();
        let to = |name: &str| Dest::Remote(Atom::new(name), a.name());
        let deadline = || Some(Instant::now() + Duration::from_secs(5));
        b.send(&sender.pid, &to("stream"), body(&Term::Int(1)))
            .unwrap();
        assert!(stream.wait(deadline()).is_ok());
        // The receiver of `stream` holds the socket and then reads no more: a small message
        // for another mailbox stays below the low-water mark, so only the reader task taking
        // the lease back brings it in.
        let source = stream.source().expect("stream knows its connection");
        source.hold();
        let sent = Instant::now();
        b.send(&sender.pid, &to("other"), body(&Term::atom("small")))
            .unwrap();
        let got = other.wait(deadline()).expect("the message arrives");
        assert_eq!(got.to_term().unwrap(), Term::atom("small"));
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "{:?}",
            sent.elapsed()
        );
        // Held again and given back: whatever waits is read at once.
        source.hold();
        b.send(&sender.pid, &to("other"), body(&Term::Int(2)))
            .unwrap();
        std::thread::sleep(Duration::from_micros(300));
        source.release();
        let got = other.wait(deadline()).expect("the message arrives");
        assert_eq!(got.to_term().unwrap(), Term::Int(2));
        a.close();
        b.close();
    }
}
