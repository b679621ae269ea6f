//! What a transport is: how the node opens and accepts the byte streams its distribution
//! connections run on. The one place that names the socket types.
//!
//! A transport connects (with a timeout, `TCP_NODELAY` set), accepts, tells the handshake its
//! length prefix, and says whether a raw socket lies under the stream: plain TCP has one, and
//! the connection then uses its fast paths (writes from the sending thread, reads from a
//! receiving thread, peeking; see [`super::connection`]). Any other stream ([`tls`], the test
//! transports) is read and written through Tokio alone, by the same framing.

pub mod optfile;
#[cfg(test)]
mod tests;
pub mod tls;

use crate::dist::handshake::LengthPrefix;
use rustls::pki_types::CertificateDer;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tls::Tls;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// A byte stream that is not a plain TCP socket.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ByteStream for T {}

/// The stream of one distribution connection, from its handshake on.
pub enum Stream {
    /// Plain TCP: the connection's fast paths work on the socket itself.
    Tcp(TcpStream),
    /// Anything else: read and written through Tokio only.
    Other(Box<dyn ByteStream>),
}

/// A stream cut in two for a connection's reader and writer tasks.
pub enum Halves {
    /// Plain TCP, with a second handle on the socket for the fast paths: sending threads
    /// write to it and receiving threads read from it, without a hop to a Tokio thread.
    Socket {
        raw: Arc<std::net::TcpStream>,
        read: OwnedReadHalf,
        write: OwnedWriteHalf,
    },
    /// Anything else: Tokio's halves of the stream.
    Stream {
        read: ReadHalf<Box<dyn ByteStream>>,
        write: WriteHalf<Box<dyn ByteStream>>,
    },
}

impl Stream {
    /// A stream of another transport (TLS, a test pipe).
    pub fn other(stream: impl ByteStream) -> Stream {
        Stream::Other(Box::new(stream))
    }

    /// Cuts the stream in two for the connection's tasks.
    pub fn split(self) -> io::Result<Halves> {
        match self {
            Stream::Tcp(tcp) => {
                let tcp = tcp.into_std()?;
                let raw = Arc::new(tcp.try_clone()?);
                let (read, write) = TcpStream::from_std(tcp)?.into_split();
                Ok(Halves::Socket { raw, read, write })
            }
            Stream::Other(stream) => {
                let (read, write) = tokio::io::split(stream);
                Ok(Halves::Stream { read, write })
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Other(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Other(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Other(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Other(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// How the node's distribution connections are carried.
#[derive(Clone, Debug, Default)]
pub enum Transport {
    /// `inet_tcp_dist`: plain TCP, 2-byte handshake length prefixes.
    #[default]
    Tcp,
    /// `inet_tls_dist`: TLS over TCP, 4-byte length prefixes from the first byte.
    Tls(Arc<Tls>),
}

/// A connection a peer opened, ready for the distribution handshake.
pub struct Accepted {
    pub stream: Stream,
    /// The certificate the peer showed (TLS with client certificates): the node it claims to
    /// be must be on a host the certificate names.
    pub certificate: Option<CertificateDer<'static>>,
}

/// Why a connection to a peer could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// Nothing answered, or the TCP connection failed: the peer is not there.
    Unreachable(io::Error),
    /// The peer answered but the transport's own handshake (TLS) failed: worth a warning.
    Refused(String),
}

impl Transport {
    /// The length prefix of handshake messages on this transport.
    pub fn length_prefix(&self) -> LengthPrefix {
        match self {
            Transport::Tcp => LengthPrefix::U16,
            Transport::Tls(_) => LengthPrefix::U32,
        }
    }

    /// Opens a stream to the node on `host` listening at `addr`; each step (the TCP
    /// connection, the TLS handshake) within `timeout`.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        host: &str,
        timeout: Duration,
    ) -> Result<Stream, ConnectError> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out"))
            .and_then(|connected| connected)
            .and_then(|tcp| tcp.set_nodelay(true).map(|()| tcp))
            .map_err(ConnectError::Unreachable)?;
        match self {
            Transport::Tcp => Ok(Stream::Tcp(tcp)),
            Transport::Tls(tls) => within(timeout, tls.connect(tcp, host))
                .await
                .map_err(|e| ConnectError::Refused(tls::describe(&e))),
        }
    }

    /// Listens for peers at `addr`.
    pub async fn listen(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind(addr).await
    }

    /// Turns a connection taken from the listener into a stream, ready for the distribution
    /// handshake; the TLS handshake within `timeout`. Runs in the connection's own task, so
    /// a slow peer holds up no one else. The error says why, in words.
    pub async fn accept(&self, tcp: TcpStream, timeout: Duration) -> Result<Accepted, String> {
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        match self {
            Transport::Tcp => Ok(Accepted {
                stream: Stream::Tcp(tcp),
                certificate: None,
            }),
            Transport::Tls(tls) => within(timeout, tls.accept(tcp))
                .await
                .map_err(|e| format!("TLS handshake failed: {}", tls::describe(&e))),
        }
    }
}

/// `step`, or a `TimedOut` error once `timeout` has passed.
async fn within<T>(
    timeout: Duration,
    step: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    tokio::time::timeout(timeout, step)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out"))?
}
