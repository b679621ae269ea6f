//! What a transport is: how the node opens and accepts the byte streams its distribution
//! connections run on. The one place that names the socket types.
//!
//! A transport connects (with a timeout, `TCP_NODELAY` set), accepts, tells the handshake its
//! length prefix, and says whether a raw socket lies under the stream: plain TCP has one, and
//! the connection then uses its fast paths (writes from the sending thread, reads from a
//! receiving thread, peeking; see [`super::connection`]). Any other stream (TLS, the test
//! transports) is read and written through Tokio alone, by the same framing.

use crate::dist::handshake::LengthPrefix;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
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
}

impl Transport {
    /// The length prefix of handshake messages on this transport (TLS distribution uses 4
    /// bytes from the first byte on).
    pub fn length_prefix(&self) -> LengthPrefix {
        match self {
            Transport::Tcp => LengthPrefix::U16,
        }
    }

    /// Opens a stream to the node listening at `addr`, within `timeout`.
    pub async fn connect(&self, addr: SocketAddr, timeout: Duration) -> io::Result<Stream> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out"))??;
        tcp.set_nodelay(true)?;
        match self {
            Transport::Tcp => Ok(Stream::Tcp(tcp)),
        }
    }

    /// Listens for peers at `addr`.
    pub async fn listen(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind(addr).await
    }

    /// Turns a connection taken from the listener into a stream, ready for the handshake.
    /// Runs in the connection's own task, so a slow peer holds up no one else.
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<Stream> {
        tcp.set_nodelay(true)?;
        match self {
            Transport::Tcp => Ok(Stream::Tcp(tcp)),
        }
    }
}
