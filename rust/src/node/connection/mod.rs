//! One distribution connection: a reader task, a writer task, and the senders and receivers
//! that share them. Neither side ever touches Python.
//!
//! - [`output`]: the outbox senders write through, and the writer task (ticks too).
//! - [`input`]: the reader task, and receiving threads that read the socket themselves.
//! - [`socket`]: the raw socket calls of plain TCP's fast paths (all the `unsafe` here).
//!
//! A connection runs on any [`Stream`]; a plain TCP one gets the fast paths (direct writes
//! from the sending thread, reads from a receiving thread), any other is read and written
//! through Tokio alone.

mod input;
mod output;
mod socket;
#[cfg(test)]
mod tests;

use super::process::Feed;
use super::transport::{Halves, Stream};
use super::{lock, Inner};
use crate::dist::control::Control;
use crate::dist::packet::Sender;
use crate::etf::Atom;
use bytes::Bytes;
use input::Input;
use output::Output;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

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
    /// When the handshake completed.
    up_since: SystemTime,
}

/// What a connection has carried, and how it stands: [`Connection::stats`].
#[derive(Clone, Debug)]
pub struct ConnectionStats {
    pub peer: Atom,
    /// Bytes read from and written to the peer since the handshake, ticks included.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Signals received and sent: messages, and links, monitors, exits... (not ticks).
    pub messages_in: u64,
    pub messages_out: u64,
    /// Bytes sent but not yet written to the socket.
    pub send_queue: usize,
    /// Bytes of large binaries received that were read straight into their destinations
    /// (Python `bytes` objects), and that were copied there (see `dist::packet::bulk`).
    pub bulk_landed: u64,
    pub bulk_copied: u64,
    /// Since anything (a signal or a tick) last came from the peer: `net_ticktime` counts
    /// from it.
    pub last_in: Duration,
    /// Since anything was last written to the peer (a tick goes out when this reaches a
    /// tick period).
    pub last_out: Duration,
    /// When the connection came up (its handshake completed).
    pub up_since: SystemTime,
}

/// The last connection id handed out.
static CONNECTION_IDS: AtomicUsize = AtomicUsize::new(0);

impl Drop for Connection {
    fn drop(&mut self) {
        // The writer finishes what is queued, then closes the stream's write side.
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
        self.output.push(frames, 1)
    }

    /// As [`Connection::send`], for a message body in segments (one after the other): the
    /// frames are written from the segments' own memory, never copied into a frame buffer
    /// (see `Sender::encode_segments`).
    pub fn send_segments(&self, control: &Control, segments: &[Bytes]) -> bool {
        let mut pieces = Vec::with_capacity(2 + segments.len());
        let mut sender = lock(&self.sender);
        if let Err(e) = sender.encode_segments(control, segments, &mut pieces) {
            log::warn!("cannot send to {}: {e}", self.peer);
            return false;
        }
        self.output.push(pieces, 1)
    }

    /// Sends one control message per payload, as one write: the batch path of `send_many`.
    pub fn send_many(&self, control: &Control, payloads: &[Bytes]) -> bool {
        let mut batch = Vec::with_capacity(payloads.iter().map(|p| p.len() + 32).sum());
        let mut sender = lock(&self.sender);
        let result = sender.encode_many(control, payloads.iter().map(|p| &p[..]), &mut batch);
        // The frames made before a failure go out all the same: they may carry atom cache
        // entries the sender now counts as known to the peer. (Their messages are not
        // counted then: the sender does not say how many it made.)
        let messages = if result.is_ok() { payloads.len() } else { 0 };
        let pushed = self.output.push(vec![Bytes::from(batch)], messages as u64);
        if let Err(e) = result {
            log::warn!("cannot send to {}: {e}", self.peer);
            return false;
        }
        pushed
    }

    /// Whether the fast paths run on a raw socket (plain TCP), or every byte goes through the
    /// stream's Tokio halves (TLS, test transports).
    pub fn has_raw_socket(&self) -> bool {
        self.input.socket.is_some()
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

    /// What the connection has carried, and how it stands.
    pub fn stats(&self) -> ConnectionStats {
        let (bytes_out, messages_out, send_queue) = self.output.counts();
        ConnectionStats {
            peer: self.peer.clone(),
            bytes_in: self.input.bytes_in.load(Ordering::Relaxed),
            bytes_out,
            messages_in: self.input.messages_in.load(Ordering::Relaxed),
            messages_out,
            send_queue,
            bulk_landed: self.input.bulk_landed.load(Ordering::Relaxed),
            bulk_copied: self.input.bulk_copied.load(Ordering::Relaxed),
            last_in: self.input.since_data(),
            last_out: self.output.since_write(),
            up_since: self.up_since,
        }
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

    /// After [`Connection::shutdown`]: blocks until everything queued is written and the
    /// write side shut, or the peer has taken nothing for `stalled` (false). Not on the
    /// runtime's thread.
    pub fn wait_written(&self, stalled: Duration) -> bool {
        self.output.wait_finished(stalled)
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
        if let Some(node) = self.node.upgrade() {
            self.input.feed(&node, self);
        }
    }
}

/// Starts the reader and writer tasks of a connection that has completed its handshake.
pub fn start(
    node: &Arc<Inner>,
    stream: Stream,
    peer: Atom,
    peer_creation: u32,
    flags: u64,
    tick: Duration,
    timeout: Duration,
) -> std::io::Result<Arc<Connection>> {
    let epoch = Instant::now();
    let up_since = SystemTime::now();
    let max_message = node.config.max_message_size;
    let lander = node.config.lander.clone();
    let rt = tokio::runtime::Handle::current();
    let make = |input: Input, output: Arc<Output>| {
        Arc::new_cyclic(|me| Connection {
            peer,
            peer_creation,
            flags,
            sender: Mutex::new(Sender::new(flags)),
            output,
            input,
            node: Arc::downgrade(node),
            me: me.clone(),
            id: CONNECTION_IDS.fetch_add(1, Ordering::Relaxed) + 1,
            reader: Mutex::new(None),
            up_since,
        })
    };
    let (conn, reader) = match stream.split()? {
        Halves::Socket { raw, read, write } => {
            let output = Arc::new(Output::new(Some(raw.clone()), epoch));
            let conn = make(
                Input::for_socket(raw, epoch, max_message, lander.clone()),
                output.clone(),
            );
            rt.spawn(output::write_loop(write, output, tick));
            let (task_node, task_conn) = (node.clone(), conn.clone());
            let reader = rt.spawn(async move {
                let reason = input::read_socket(&task_node, &task_conn, &read, timeout).await;
                reader_ended(&task_node, &task_conn, &reason);
            });
            (conn, reader)
        }
        Halves::Stream { read, write } => {
            let output = Arc::new(Output::new(None, epoch));
            let conn = make(
                Input::for_stream(epoch, max_message, lander.clone()),
                output.clone(),
            );
            rt.spawn(output::write_loop(write, output, tick));
            let (task_node, task_conn) = (node.clone(), conn.clone());
            let reader = rt.spawn(async move {
                let reason = input::read_stream(&task_node, &task_conn, read, timeout).await;
                reader_ended(&task_node, &task_conn, &reason);
            });
            (conn, reader)
        }
    };
    *lock(&conn.reader) = Some(reader.abort_handle());
    Ok(conn)
}

/// The reader task has ended: nobody reads any more, and the node learns why.
fn reader_ended(node: &Inner, conn: &Arc<Connection>, reason: &str) {
    conn.input.stopped.store(true, Ordering::Release);
    node.connection_lost(conn, reason);
}
