//! A descriptor that any thread can make readable, for an event loop (asyncio) to watch.
//!
//! On Linux it is an eventfd: one descriptor holding a counter, so a wake-up is one small
//! system call with no socket buffers behind it. Elsewhere it is a Unix socket pair.
//! Either way the loop drains it with `os.read(fd, 4096)` (an eventfd read needs 8 bytes).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};

pub struct WakeFd {
    /// The end the event loop watches and reads.
    reader: File,
    /// The end a wake-up writes to (the same descriptor for an eventfd).
    writer: File,
}

impl WakeFd {
    pub fn new() -> io::Result<WakeFd> {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: eventfd has no memory arguments; a non-negative result is a new
            // descriptor that nothing else owns.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` was just created and is owned by nothing else.
            let reader = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            let writer = reader.try_clone()?;
            Ok(WakeFd { reader, writer })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
            reader.set_nonblocking(true)?;
            writer.set_nonblocking(true)?;
            Ok(WakeFd {
                reader: File::from(std::os::fd::OwnedFd::from(reader)),
                writer: File::from(std::os::fd::OwnedFd::from(writer)),
            })
        }
    }

    /// The descriptor to watch.
    pub fn fd(&self) -> RawFd {
        self.reader.as_raw_fd()
    }

    /// A handle that makes the descriptor readable, for another thread.
    pub fn waker(&self) -> io::Result<Waker> {
        Ok(Waker(self.writer.try_clone()?))
    }
}

pub struct Waker(File);

impl Waker {
    pub fn wake(&self) {
        // A full counter or socket already means "readable": nothing is lost by failing.
        let _ = (&self.0).write(&1u64.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn readable_after_wakes_and_drained_by_one_read() {
        let wake = WakeFd::new().unwrap();
        let mut buf = [0u8; 4096];
        let err = (&wake.reader).read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "nothing to read yet");
        let waker = wake.waker().unwrap();
        waker.wake();
        waker.wake();
        assert!((&wake.reader).read(&mut buf).unwrap() > 0);
        let err = (&wake.reader).read(&mut buf).unwrap_err();
        assert_eq!(
            err.kind(),
            io::ErrorKind::WouldBlock,
            "one read drains every wake"
        );
    }
}
