//! Connected-phase framing: every frame is a big-endian `u32` length and that many bytes; a
//! frame of length 0 is a tick (keep-alive) and carries nothing.
//! <https://www.erlang.org/doc/apps/erts/erl_dist_protocol.html#protocol-between-connected-nodes>
//!
//! Pure: bytes in, frames out, no I/O. Every transport reads into a [`Deframer`] and writes
//! frames made here, so plain TCP, TLS and the test transports cut and build frames alike.
//! What a frame's body holds (distribution header, control message, fragments) is
//! [`super::packet`]'s business.

use bytes::{Buf, Bytes, BytesMut};
use std::fmt;

/// A tick: an empty frame, sent when nothing else was written for a while.
pub const TICK: [u8; 4] = [0, 0, 0, 0];

/// The largest frame a [`Deframer`] accepts by default (a peer without FRAGMENTS sends big
/// messages whole, so this is large; it only stops a length that is nonsense).
pub const MAX_FRAME: usize = 1 << 30;

/// Room kept free in the buffer for the next read, and how much is added when less is left.
const READ_ROOM: usize = 16 * 1024;
const GROW_BY: usize = 256 * 1024;

/// A frame length the peer must not send: the connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameTooLarge {
    pub len: usize,
    pub max: usize,
}

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frame of {} bytes is over the limit of {} bytes",
            self.len, self.max
        )
    }
}

impl std::error::Error for FrameTooLarge {}

/// The receive side: bytes read from the connection go into [`Deframer::buffer`], whole
/// frames come out of [`Deframer::next_frame`] (ticks skipped). A frame's body is cut out of
/// the buffer without a copy.
pub struct Deframer {
    buf: BytesMut,
    max_frame: usize,
}

impl Default for Deframer {
    fn default() -> Self {
        Deframer::new(MAX_FRAME)
    }
}

impl Deframer {
    pub fn new(max_frame: usize) -> Deframer {
        Deframer {
            buf: BytesMut::with_capacity(GROW_BY),
            max_frame,
        }
    }

    /// The buffer reads append to (after [`Deframer::make_room`]).
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes read but not yet cut into frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Free room at the end of the buffer, for the next read.
    pub fn room(&self) -> usize {
        self.buf.capacity() - self.buf.len()
    }

    /// Keeps room in the buffer for the next read.
    pub fn make_room(&mut self) {
        if self.room() < READ_ROOM {
            self.buf.reserve(GROW_BY);
        }
    }

    /// How many more bytes the frame at the front of the buffer needs, once its length is
    /// known (0: it is whole).
    pub fn missing(&self) -> Option<usize> {
        let len = self.front_len()?;
        Some((4 + len).saturating_sub(self.buf.len()))
    }

    /// The body of the next whole frame, ticks skipped; `None` until one is whole (the buffer
    /// then has room reserved for the rest of it). An error means the connection must end.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameTooLarge> {
        let frame = self.next_whole_frame()?;
        if frame.is_none() {
            self.reserve_front();
        }
        Ok(frame)
    }

    /// As [`Deframer::next_frame`], without reserving room for an incomplete frame: the
    /// caller may take its body elsewhere ([`Deframer::take_front`]).
    pub fn next_whole_frame(&mut self) -> Result<Option<Bytes>, FrameTooLarge> {
        while let Some(len) = self.front_len() {
            if len == 0 {
                self.buf.advance(4);
                continue;
            }
            if len > self.max_frame {
                return Err(FrameTooLarge {
                    len,
                    max: self.max_frame,
                });
            }
            if self.buf.len() < 4 + len {
                return Ok(None);
            }
            self.buf.advance(4);
            return Ok(Some(self.buf.split_to(len).freeze()));
        }
        Ok(None)
    }

    /// Reserves room for the rest of the incomplete frame at the front, so that it is read
    /// into one piece of memory.
    pub fn reserve_front(&mut self) {
        if let Some(missing) = self.missing() {
            self.buf.reserve(missing);
        }
    }

    /// The incomplete frame at the front (after [`Deframer::next_whole_frame`] said `None`):
    /// its length and the part of its body buffered so far.
    pub fn front(&self) -> Option<(usize, &[u8])> {
        let len = self.front_len()?;
        let body = &self.buf[4..];
        Some((len, &body[..body.len().min(len)]))
    }

    /// Takes the incomplete frame at the front out: its length is dropped and the part of its
    /// body buffered so far returned. The rest of its body is then the caller's to read.
    pub fn take_front(&mut self) -> Bytes {
        self.buf.advance(4.min(self.buf.len()));
        self.buf.split().freeze()
    }

    /// Takes up to `n` buffered bytes (the rest of a frame whose front was taken).
    pub fn take(&mut self, n: usize) -> Bytes {
        let n = n.min(self.buf.len());
        self.buf.split_to(n).freeze()
    }

    fn front_len(&self) -> Option<usize> {
        let head: [u8; 4] = self.buf.get(..4)?.try_into().ok()?;
        Some(u32::from_be_bytes(head) as usize)
    }
}

/// A frame buffer with room for the length and `body_len` bytes of body; the body is appended
/// after the 4 reserved bytes, then [`finish_frame`] writes the length.
pub fn frame_with_capacity(body_len: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + body_len);
    frame.extend_from_slice(&[0; 4]);
    frame
}

/// Writes the body's length in front of it (see [`frame_with_capacity`]).
pub fn finish_frame(mut frame: Vec<u8>) -> Bytes {
    let len = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    Bytes::from(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut frame = frame_with_capacity(body.len());
        frame.extend_from_slice(body);
        finish_frame(frame).to_vec()
    }

    #[test]
    fn a_frame_is_its_length_and_its_body() {
        assert_eq!(frame(b"abc"), [0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(frame(b""), TICK);
    }

    #[test]
    fn frames_are_cut_whole_from_any_split_and_ticks_are_skipped() {
        let bodies: [&[u8]; 3] = [b"first", &[7; 300], b"x"];
        let mut stream = TICK.to_vec();
        for body in bodies {
            stream.extend(frame(body));
            stream.extend(TICK);
        }
        for piece in 1..stream.len() {
            let mut deframer = Deframer::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                deframer.buffer().extend_from_slice(chunk);
                while let Some(body) = deframer.next_frame().unwrap() {
                    got.push(body);
                }
            }
            assert_eq!(got, bodies, "pieces of {piece} bytes");
            assert_eq!(deframer.buffered(), 0);
        }
    }

    #[test]
    fn the_front_frame_says_how_many_bytes_it_still_needs() {
        let mut deframer = Deframer::default();
        assert_eq!(deframer.missing(), None);
        deframer.buffer().extend_from_slice(&[0, 0, 0]);
        assert_eq!(deframer.missing(), None);
        deframer.buffer().extend_from_slice(&[10, 1, 2]);
        assert_eq!(deframer.missing(), Some(8));
        assert_eq!(deframer.next_frame(), Ok(None));
        assert!(deframer.room() >= 8, "room is reserved for the rest");
        deframer.buffer().extend_from_slice(&[3; 8]);
        assert_eq!(deframer.missing(), Some(0));
        assert_eq!(deframer.next_frame().unwrap().unwrap().len(), 10);
    }

    #[test]
    fn a_frame_over_the_limit_is_an_error_before_its_body_comes() {
        let mut deframer = Deframer::new(100);
        deframer.buffer().extend_from_slice(&frame(&[1; 100]));
        assert_eq!(deframer.next_frame().unwrap().unwrap().len(), 100);
        deframer.buffer().extend_from_slice(&101u32.to_be_bytes());
        let error = deframer.next_frame().unwrap_err();
        assert_eq!(error, FrameTooLarge { len: 101, max: 100 });
        assert!(error.to_string().contains("over the limit"), "{error}");
        let mut deframer = Deframer::default();
        deframer
            .buffer()
            .extend_from_slice(&(MAX_FRAME as u32 + 1).to_be_bytes());
        assert!(deframer.next_frame().is_err());
    }
}
