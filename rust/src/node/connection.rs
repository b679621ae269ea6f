//! One distribution connection: a reader task, and an outbox that senders write through.
//!
//! Sending writes straight to the socket from the sending thread when nothing is queued (no
//! thread hop, so a reply leaves as soon as Python sends it); whatever the socket does not take
//! at once, and the rest of a burst of sends, waits in the outbox for the writer task, which
//! writes it in order, many frames per system call, and gives the socket back to direct
//! writers once the queue is empty. The writer also sends a tick when
//! nothing was written for a tick period. The reader cuts frames, hands them to the
//! connection's [`Receiver`] (distribution header, atom cache, fragments) and routes them.
//! Neither task ever touches Python.

use super::{lock, Inner};
use crate::dist::control::Control;
use crate::dist::packet::{Receiver, Sender, TICK};
use crate::etf::Atom;
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::Notify;

/// The largest frame we accept (a peer without FRAGMENTS sends big messages whole).
const MAX_FRAME: usize = 1 << 30;

/// Sends closer together than this form a burst: after the first, they go through the
/// writer task, which writes what piled up in one system call, instead of one write each.
const BURST_GAP: Duration = Duration::from_micros(10);

/// Queued frames smaller than this are copied into one buffer rather than queued one by one:
/// the writer task then frees one buffer per batch instead of one allocation of the sending
/// thread per frame (a free from another thread is glibc's slow path).
const COALESCE_BELOW: usize = 4096;

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
    direct: Option<std::net::TcpStream>,
    /// When anything was last written, in ms since `epoch`: ticks only fill silence.
    last_write_ms: AtomicU64,
    epoch: Instant,
}

impl Output {
    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_write_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_write_ms.load(Ordering::Relaxed)))
    }

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
                self.touch();
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
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // WouldBlock: the writer task goes on; other errors: the reader sees the close.
            Err(_) => break,
        }
    }
    written
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
    reader: Mutex<Option<tokio::task::AbortHandle>>,
}

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

    /// Stops the reader; the writer ends once the connection is dropped.
    pub fn shutdown(&self) {
        if let Some(reader) = lock(&self.reader).take() {
            reader.abort();
        }
    }
}

/// Starts the reader and writer tasks of a connection that has completed its handshake.
/// `direct` is a second handle on a plain TCP socket, for writes from sending threads.
#[allow(clippy::too_many_arguments)]
pub fn start<S>(
    node: &Arc<Inner>,
    stream: S,
    direct: Option<std::net::TcpStream>,
    peer: Atom,
    peer_creation: u32,
    flags: u64,
    tick: Duration,
    timeout: Duration,
) -> Arc<Connection>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read_half, write_half) = tokio::io::split(stream);
    let output = Arc::new(Output {
        outbox: Mutex::new(Outbox::default()),
        wake_writer: Notify::new(),
        direct,
        last_write_ms: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    let conn = Arc::new(Connection {
        peer,
        peer_creation,
        flags,
        sender: Mutex::new(Sender::new(flags)),
        output: output.clone(),
        reader: Mutex::new(None),
    });
    let rt = tokio::runtime::Handle::current();
    rt.spawn(write_loop(write_half, output, tick));
    let reader = rt.spawn(read_loop(node.clone(), conn.clone(), read_half, timeout));
    *lock(&conn.reader) = Some(reader.abort_handle());
    conn
}

async fn write_loop<W: AsyncWrite>(write_half: W, output: Arc<Output>, tick: Duration) {
    let out = BufWriter::with_capacity(64 * 1024, write_half);
    let mut out = std::pin::pin!(out);
    loop {
        let idle = output.idle_for();
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
            output.touch();
        }
    }
}

async fn read_loop<R: AsyncRead>(
    node: Arc<Inner>,
    conn: Arc<Connection>,
    read_half: R,
    timeout: Duration,
) {
    let mut read_half = std::pin::pin!(read_half);
    let mut receiver = Receiver::new();
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let reason = loop {
        // Cut every complete frame out of the buffer.
        let mut failed = None;
        while buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len == 0 {
                buf.advance(4);
                continue;
            }
            if len > MAX_FRAME {
                failed = Some(format!("frame of {len} bytes is over the limit"));
                break;
            }
            if buf.len() < 4 + len {
                buf.reserve(4 + len - buf.len());
                break;
            }
            buf.advance(4);
            let frame = buf.split_to(len).freeze();
            match receiver.receive(frame) {
                Ok(Some(incoming)) => node.dispatch(&conn, incoming),
                Ok(None) => {}
                Err(e) => {
                    failed = Some(format!("bad frame: {e}"));
                    break;
                }
            }
        }
        if let Some(reason) = failed {
            break reason;
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(256 * 1024);
        }
        match tokio::time::timeout(timeout, read_half.read_buf(&mut buf)).await {
            Err(_) => break format!("no data for {timeout:?} (net_ticktime)"),
            Ok(Ok(0)) => break "closed by peer".to_string(),
            Ok(Err(e)) => break format!("read error: {e}"),
            Ok(Ok(_)) => {}
        }
    };
    node.connection_lost(&conn, &reason);
}
