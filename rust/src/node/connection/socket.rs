//! Every raw system call on a connection's TCP socket, for the plain-TCP fast paths: reads
//! that neither block nor go through Tokio, peeking, dropping bytes already peeked, vectored
//! writes, and the socket options these need. The only `unsafe` of the connection.

use bytes::BytesMut;
use std::io::IoSlice;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// Reads up to `max` bytes of what the socket holds now into the buffer's spare room, without
/// blocking and without Tokio (whose readiness flags only its own event loop sets). `flags`
/// are `recv(2)`'s, e.g. `MSG_PEEK`.
pub(super) fn read_now(
    socket: &TcpStream,
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
/// One read into `first` (a large binary's destination, see `dist::packet::bulk`) and then
/// up to `then` bytes into `buf`'s spare room, without blocking; returns how many bytes went
/// to each.
pub(super) fn read_split(
    socket: &TcpStream,
    first: &mut [std::mem::MaybeUninit<u8>],
    buf: &mut BytesMut,
    then: usize,
) -> std::io::Result<(usize, usize)> {
    let spare = buf.spare_capacity_mut();
    let then = then.min(spare.len());
    let mut parts = [
        libc::iovec {
            iov_base: first.as_mut_ptr().cast(),
            iov_len: first.len(),
        },
        libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: then,
        },
    ];
    // SAFETY: a zeroed msghdr is valid (no address, no control data); it points at `parts`,
    // which lives across the call.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = parts.as_mut_ptr();
    message.msg_iovlen = if then > 0 { 2 } else { 1 };
    // SAFETY: recvmsg writes at most each part's length into memory we hold exclusively
    // (`first`, and `buf`'s spare capacity); we count as written only what it reports.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut message, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = n as usize;
    let direct = n.min(first.len());
    // SAFETY: recvmsg filled `first` before the second part: the bytes past it are in `buf`.
    unsafe { buf.set_len(buf.len() + (n - direct)) };
    Ok((direct, n - direct))
}

pub(super) fn discard(socket: &TcpStream, bytes: usize) -> std::io::Result<()> {
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

/// The most buffers one [`write_vectored_now`] passes (Linux's `IOV_MAX` is 1024).
pub(super) const MAX_SLICES: usize = 64;

/// Writes what the socket takes now of `slices` (at most [`MAX_SLICES`] of them), in order,
/// in one `sendmsg`, without blocking. `MSG_NOSIGNAL`, as std's `write` passes too: a peer
/// gone makes this an `EPIPE` error, never a SIGPIPE that would kill a program which put
/// that signal back to its default (`writev` has no such flag).
pub(super) fn write_vectored_now(
    socket: &TcpStream,
    slices: &[IoSlice<'_>],
) -> std::io::Result<usize> {
    let slices = &slices[..slices.len().min(MAX_SLICES)];
    // SAFETY: an all-zero msghdr is a valid one (no address, no control data).
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` on Unix (std documents it); sendmsg only reads
    // through this pointer.
    message.msg_iov = slices.as_ptr().cast_mut().cast();
    message.msg_iovlen = slices.len() as _;
    // SAFETY: a valid descriptor, and a msghdr whose `slices.len()` iovecs point into
    // buffers borrowed for the duration of the call, which the kernel only reads.
    let n = unsafe {
        libc::sendmsg(
            socket.as_raw_fd(),
            &message,
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Turns on `SO_PEEK_OFF`, so that peeking reads go on where the last one ended; false where
/// the kernel does not support it for TCP (before Linux 6.9).
pub(super) fn peek_from_last_end(socket: &TcpStream) -> bool {
    set_int_option(socket, libc::SO_PEEK_OFF, 0).is_ok()
}

/// Sets the socket's `SO_RCVLOWAT`. Linux signals a waiting `epoll` at once when lowering it
/// uncovers data already queued, so lowering it loses no wake-up.
pub(super) fn set_low_water(socket: &TcpStream, bytes: libc::c_int) {
    if let Err(e) = set_int_option(socket, libc::SO_RCVLOWAT, bytes) {
        log::warn!("setting SO_RCVLOWAT to {bytes} failed: {e}");
    }
}

/// Sets a socket-level option that takes an int.
fn set_int_option(
    socket: &TcpStream,
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

/// How many bytes wait unread in the socket's receive queue.
#[cfg(test)]
pub(super) fn unread(socket: &TcpStream) -> usize {
    let mut bytes: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let result = unsafe { libc::ioctl(socket.as_raw_fd(), libc::FIONREAD, &mut bytes) };
    assert_eq!(result, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    bytes as usize
}
