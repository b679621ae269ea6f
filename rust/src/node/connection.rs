//! One distribution connection: a reader task and a writer task on Tokio.
//!
//! The writer owns the socket's write half and a queue of ready frames: it writes whatever is
//! queued in one go, flushes once, and sends a tick when it has written nothing for a tick
//! period. The reader owns the read half: it cuts frames, hands them to the connection's
//! [`Receiver`] (distribution header, atom cache, fragments) and routes the result. Neither
//! ever touches Python.

use super::{lock, Inner};
use crate::dist::control::Control;
use crate::dist::packet::{Receiver, Sender};
use crate::etf::Atom;
use bytes::{Buf, Bytes, BytesMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

/// The largest frame we accept (a peer without FRAGMENTS sends big messages whole).
const MAX_FRAME: usize = 1 << 30;

/// A live connection to a peer node.
pub struct Connection {
    pub peer: Atom,
    pub peer_creation: u32,
    /// The flags both sides share.
    pub flags: u64,
    /// The encoder; held while frames are queued so concurrent senders cannot interleave
    /// fragments or reorder one sender's messages.
    sender: Mutex<Sender>,
    frames: mpsc::UnboundedSender<Bytes>,
    reader: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Connection {
    /// Queues a control message and its payload (a term body, no version byte).
    /// Returns false when the connection is already gone.
    pub fn send(&self, control: &Control, payload: Option<&[u8]>) -> bool {
        let mut frames = Vec::with_capacity(1);
        let mut sender = lock(&self.sender);
        if let Err(e) = sender.encode(control, payload, &mut frames) {
            log::warn!("cannot send to {}: {e}", self.peer);
            return false;
        }
        frames.into_iter().all(|f| self.frames.send(f).is_ok())
    }

    /// Queues one control message per payload, as one write: the batch path of `send_many`.
    pub fn send_many(&self, control: &Control, payloads: &[bytes::Bytes]) -> bool {
        let mut frames = Vec::with_capacity(payloads.len());
        let mut sender = lock(&self.sender);
        for payload in payloads {
            if let Err(e) = sender.encode(control, Some(payload), &mut frames) {
                log::warn!("cannot send to {}: {e}", self.peer);
                return false;
            }
        }
        let mut batch = bytes::BytesMut::with_capacity(frames.iter().map(Bytes::len).sum());
        for frame in &frames {
            batch.extend_from_slice(frame);
        }
        self.frames.send(batch.freeze()).is_ok()
    }

    pub fn has_flag(&self, flag: u64) -> bool {
        self.flags & flag != 0
    }

    /// Stops both tasks; the reader reports the loss.
    pub fn shutdown(&self) {
        if let Some(reader) = lock(&self.reader).take() {
            reader.abort();
        }
    }
}

/// Starts the reader and writer tasks of a connection that has completed its handshake.
pub fn start<S>(
    node: &Arc<Inner>,
    stream: S,
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
    let (tx, rx) = mpsc::unbounded_channel();
    let conn = Arc::new(Connection {
        peer,
        peer_creation,
        flags,
        sender: Mutex::new(Sender::new(flags)),
        frames: tx,
        reader: Mutex::new(None),
    });
    let rt = tokio::runtime::Handle::current();
    rt.spawn(write_loop(write_half, rx, tick));
    let reader = rt.spawn(read_loop(node.clone(), conn.clone(), read_half, timeout));
    *lock(&conn.reader) = Some(reader.abort_handle());
    conn
}

async fn write_loop<W: AsyncWrite>(
    write_half: W,
    mut frames: mpsc::UnboundedReceiver<Bytes>,
    tick: Duration,
) {
    let out = BufWriter::with_capacity(64 * 1024, write_half);
    let mut batch = Vec::with_capacity(256);
    let mut out = std::pin::pin!(out);
    loop {
        let got = tokio::select! {
            n = frames.recv_many(&mut batch, 256) => n,
            _ = tokio::time::sleep(tick) => {
                if out.write_all(&[0, 0, 0, 0]).await.is_err() || out.flush().await.is_err() {
                    return;
                }
                continue;
            }
        };
        if got == 0 {
            // Every sender is gone: the connection is closing.
            let _ = out.shutdown().await;
            return;
        }
        for frame in batch.drain(..) {
            if out.write_all(&frame).await.is_err() {
                return;
            }
        }
        if out.flush().await.is_err() {
            return;
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
