//! The sending side of a connection: an outbox that senders write through, and the writer
//! task.
//!
//! A send is written to the socket by the sending thread itself when nothing is queued and
//! the transport has a raw socket (no thread hop, so a reply leaves as soon as Python sends
//! it); whatever the socket does not take at once, and the rest of a burst of sends, waits in
//! the outbox for the writer task, which writes it in order, many frames per system call, and
//! gives the socket back to direct writers once the queue is empty. The writer also sends a
//! tick when nothing was written for a tick period.
//!
//! What goes through here are pieces of the byte stream: whole frames, or, for a message with
//! big binaries, frame headers and shares of the binaries' own memory (see
//! `Sender::encode_segments`). Runs of pieces go out with vectored writes, so a binary is
//! written from where it lies; on plain TCP by `sendmsg` on the raw socket, on other streams
//! through Tokio's vectored writes (TLS encrypts from the pieces into its records).

use super::socket::{self, MAX_SLICES};
use super::LastSeen;
use crate::dist::framing::TICK;
use crate::node::lock;
use crate::node::process;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::{IoSlice, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::Notify;

#[cfg(test)]
mod tests;

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
    /// Bytes and messages handed to the connection (written, or queued to be), for
    /// `Node::stats`: plain counts, as the lock is held anyway.
    bytes_out: u64,
    messages_out: u64,
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
pub(super) struct Output {
    outbox: Mutex<Outbox>,
    wake_writer: Notify,
    /// A second handle on the socket (plain TCP only) for writes from the sending thread.
    /// None for transports whose every byte goes through the writer task.
    direct: Option<Arc<std::net::TcpStream>>,
    /// When anything was last written: ticks only fill silence.
    last_write: LastSeen,
    /// Set when the writer task has ended, however it ended (see [`Output::wait_finished`]).
    finished: Mutex<bool>,
    finished_changed: Condvar,
}

impl Output {
    pub(super) fn new(direct: Option<Arc<std::net::TcpStream>>, epoch: Instant) -> Output {
        Output {
            outbox: Mutex::new(Outbox::default()),
            wake_writer: Notify::new(),
            direct,
            last_write: LastSeen::new(epoch),
            finished: Mutex::new(false),
            finished_changed: Condvar::new(),
        }
    }

    /// Writes or queues frames (or pieces of them: they go out one after the other), keeping
    /// their order; they carry `messages` messages (0 for a tick). False once the connection
    /// is closed.
    pub(super) fn push(&self, pieces: Vec<Bytes>, messages: u64) -> bool {
        let mut out = lock(&self.outbox);
        if out.closed {
            return false;
        }
        let bytes: usize = pieces.iter().map(Bytes::len).sum();
        let now = Instant::now();
        let in_burst = out
            .last_direct
            .is_some_and(|t| now.duration_since(t) < BURST_GAP);
        let mut written = 0;
        if !out.writer_busy && out.is_empty() && !in_burst {
            out.last_direct = Some(now);
            if let Some(socket) = &self.direct {
                written = write_now(socket, &pieces);
                self.last_write.touch();
            }
        }
        // What the socket did not take waits for the writer task.
        for piece in pieces {
            if written >= piece.len() {
                written -= piece.len();
            } else if written > 0 {
                out.enqueue(piece.slice(written..));
                written = 0;
            } else {
                out.enqueue(piece);
            }
        }
        out.bytes_out += bytes as u64;
        out.messages_out += messages;
        if !out.is_empty() && !out.writer_busy {
            out.writer_busy = true;
            self.wake_writer.notify_one();
        }
        true
    }

    /// Bytes and messages handed to the connection so far, and the bytes of them still
    /// waiting to be written.
    pub(super) fn counts(&self) -> (u64, u64, usize) {
        let out = lock(&self.outbox);
        let queued = out.queue.iter().map(Bytes::len).sum::<usize>() + out.tail.len();
        (out.bytes_out, out.messages_out, queued)
    }

    /// Since anything was last written.
    pub(super) fn since_write(&self) -> Duration {
        self.last_write.elapsed()
    }

    pub(super) fn close(&self) {
        lock(&self.outbox).closed = true;
        self.wake_writer.notify_one();
    }

    /// Blocks until the writer task has ended: after [`Output::close`], once it has written
    /// everything queued and shut the stream's write side (or the stream failed). Gives up,
    /// returning false, once the writer has written nothing for `stalled`: a peer that takes
    /// nothing for that long is gone. Must not run on the runtime's thread, which the writer
    /// needs.
    pub(super) fn wait_finished(&self, stalled: Duration) -> bool {
        let mut finished = lock(&self.finished);
        while !*finished {
            let idle = self.last_write.elapsed();
            if idle >= stalled {
                return false;
            }
            let wait = (stalled - idle).min(Duration::from_millis(100));
            finished = self
                .finished_changed
                .wait_timeout(finished, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Marks the writer task ended when it returns or is dropped with the runtime.
struct WriterEnded<'a>(&'a Output);

impl Drop for WriterEnded<'_> {
    fn drop(&mut self) {
        *lock(&self.0.finished) = true;
        self.0.finished_changed.notify_all();
    }
}

/// Writes what the socket takes now of `pieces`, in order, without blocking; returns the
/// bytes written. One frame goes out with `send`, several with `sendmsg`.
fn write_now(socket: &std::net::TcpStream, pieces: &[Bytes]) -> usize {
    if let [frame] = pieces {
        return write_some(socket, frame);
    }
    let mut at = Position::default();
    let mut written = 0;
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    while !at.done(pieces) {
        let n = at.slices(pieces, &mut slices);
        match socket::write_vectored_now(socket, &slices[..n]) {
            Ok(0) => break,
            Ok(n) => {
                written += n;
                at.advance(pieces, n);
                process::note_write();
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // As in `write_some`.
            Err(_) => break,
        }
    }
    written
}

/// How far a run of pieces has been written: the first piece not written whole, and how
/// many of its bytes were.
#[derive(Default, Clone, Copy, Debug, PartialEq)]
struct Position {
    piece: usize,
    offset: usize,
}

impl Position {
    fn done(&self, pieces: &[Bytes]) -> bool {
        self.piece >= pieces.len()
    }

    /// Moves on by `n` bytes written (past empty pieces too).
    fn advance(&mut self, pieces: &[Bytes], mut n: usize) {
        while let Some(piece) = pieces.get(self.piece) {
            let rest = piece.len() - self.offset;
            if n < rest {
                self.offset += n;
                return;
            }
            n -= rest;
            self.piece += 1;
            self.offset = 0;
        }
    }

    /// The unwritten rest, as up to [`MAX_SLICES`] slices at the start of `slices`; returns
    /// how many.
    fn slices<'a>(&self, pieces: &'a [Bytes], slices: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
        let mut offset = self.offset;
        let mut n = 0;
        for piece in pieces[self.piece..].iter().take(MAX_SLICES) {
            slices[n] = IoSlice::new(&piece[offset..]);
            offset = 0;
            n += 1;
        }
        n
    }
}

/// Writes what the socket takes now, without blocking (the socket is non-blocking: Tokio
/// owns it).
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

/// The writer task: writes what the outbox holds, ticks when idle, and shuts the stream's
/// write side once the outbox is closed and empty.
pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    writer: W,
    output: Arc<Output>,
    tick: Duration,
) {
    let _ended = WriterEnded(&output);
    let mut out = BufWriter::with_capacity(64 * 1024, writer);
    loop {
        let idle = output.last_write.elapsed();
        if idle >= tick {
            output.push(vec![Bytes::from_static(&TICK)], 0);
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
            let raw = output.direct.as_deref();
            if write_batch(&mut out, raw, &batch, &output).await.is_err() {
                return;
            }
            if out.flush().await.is_err() {
                return;
            }
            output.last_write.touch();
        }
    }
}

/// Writes `batch` in order, many pieces per system call. With the `raw` socket (plain TCP) by
/// `sendmsg` on it, bypassing the buffer; when the socket is full, Tokio waits until it takes
/// more and writes some of the next piece (which also tells Tokio's readiness it was full).
/// Without, through the buffer, which gathers short runs and hands long ones to the stream as
/// they are.
async fn write_batch<W: AsyncWrite + Unpin>(
    out: &mut BufWriter<W>,
    raw: Option<&std::net::TcpStream>,
    batch: &[Bytes],
    output: &Output,
) -> std::io::Result<()> {
    let mut at = Position::default();
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    while !at.done(batch) {
        let n = at.slices(batch, &mut slices);
        let written = match raw {
            Some(socket) => match socket::write_vectored_now(socket, &slices[..n]) {
                Ok(written) => written,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    out.get_mut().write(&slices[0]).await?
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            },
            None => out.write_vectored(&slices[..n]).await?,
        };
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        at.advance(batch, written);
        // Progress, for `wait_finished` (a long batch to a slow peer is no stall).
        output.last_write.touch();
    }
    Ok(())
}
