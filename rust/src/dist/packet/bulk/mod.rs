//! Large binaries put straight where they end up.
//!
//! A message carrying a large binary (a file, a frame, a tensor) is assembled in two parts:
//! its *skeleton* (everything but that binary's data, `BINARY_EXT` header included) and, for
//! each large binary, a [`Landed`] destination the data is read into as it arrives. The node
//! asks a [`Lander`] for destinations: the Python layer's makes `bytes` objects, so a binary
//! reaches Python with no copy beyond the kernel's. A destination may come late (it is made
//! by a thread that must first take Python's GIL): what arrives before it waits in a plain
//! buffer and is copied over once it comes.
//!
//! Pure: no I/O. The connection's reader reads into [`Assembly::window`] where it can.

use crate::etf::scan::{Scan, Scanner};
use bytes::{Bytes, BytesMut};
use std::any::Any;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

/// Binaries at least this large are landed apart from their message. Below it, asking for a
/// destination (a wake-up of the lander's thread, tens of µs) costs about what copying the
/// data once does.
pub const BULK_MIN: usize = 256 * 1024;

/// Memory that becomes one binary once every byte of it is written.
pub trait Landed: Send + Sync + 'static {
    /// All of the destination, written or not.
    fn memory(&mut self) -> &mut [MaybeUninit<u8>];
    /// Called once every byte of [`Landed::memory`] was written.
    fn finish(&mut self);
    /// The binary; only called after [`Landed::finish`].
    fn bytes(&self) -> &[u8];
    /// For a consumer that knows the concrete type (Python takes its `bytes` object).
    fn as_any(&self) -> &dyn Any;
}

/// Makes destinations for large binaries.
pub trait Lander: Send + Sync {
    /// Asks for a destination of `len` bytes, put into `slot` when made (maybe later, by
    /// another thread). A request whose slot nobody else holds any more may be skipped.
    fn request(&self, len: usize, slot: &Arc<LandingSlot>);
}

/// Where a requested destination is put.
#[derive(Default)]
pub struct LandingSlot(Mutex<Option<Box<dyn Landed>>>);

impl LandingSlot {
    pub fn put(&self, landed: Box<dyn Landed>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(landed);
    }

    fn take(&self) -> Option<Box<dyn Landed>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// A plain buffer as a destination: when no lander is set, and for what arrives before the
/// lander's destination.
pub struct BufferLanding {
    buf: Vec<u8>,
    len: usize,
}

impl BufferLanding {
    pub fn new(len: usize) -> BufferLanding {
        BufferLanding {
            buf: Vec::with_capacity(len),
            len,
        }
    }

    /// The first `n` bytes of the memory, once written.
    fn written(&self, n: usize) -> &[MaybeUninit<u8>] {
        &self.buf.spare_capacity_ref()[..n]
    }
}

impl Landed for BufferLanding {
    fn memory(&mut self) -> &mut [MaybeUninit<u8>] {
        &mut self.buf.spare_capacity_mut()[..self.len]
    }

    fn finish(&mut self) {
        // SAFETY: `finish` is called only once every byte of `memory` (`len` bytes of the
        // capacity) was written.
        unsafe { self.buf.set_len(self.len) };
    }

    fn bytes(&self) -> &[u8] {
        &self.buf
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A large binary of a received message: its data, and where its `BINARY_EXT` header sits
/// in the message's skeleton (the data is not there).
#[derive(Clone)]
pub struct Bulk {
    pub at: usize,
    pub data: Arc<dyn Landed>,
}

impl Bulk {
    pub fn bytes(&self) -> &[u8] {
        self.data.bytes()
    }
}

impl fmt::Debug for Bulk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bulk {{ at: {}, len: {} }}", self.at, self.bytes().len())
    }
}

impl PartialEq for Bulk {
    fn eq(&self, other: &Bulk) -> bool {
        self.at == other.at && self.bytes() == other.bytes()
    }
}

/// A message's large binaries: usually none, and then one word (a received signal is moved
/// several times between the socket and the mailbox: it stays small).
/// (A boxed slice would take two words.)
#[derive(Clone, Debug, Default, PartialEq)]
#[allow(clippy::box_collection)]
pub struct Bulks(Option<Box<Vec<Bulk>>>);

impl Bulks {
    pub fn new(bulks: Vec<Bulk>) -> Bulks {
        Bulks((!bulks.is_empty()).then(|| Box::new(bulks)))
    }

    pub fn as_slice(&self) -> &[Bulk] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

/// The skeleton with every binary's data put back: one contiguous encoding, for the node's
/// own decoders (which read a term from one slice). A copy, made only off the bulk path.
pub fn contiguous(skeleton: &Bytes, bulks: &[Bulk]) -> Bytes {
    if bulks.is_empty() {
        return skeleton.clone();
    }
    let total = skeleton.len() + bulks.iter().map(|b| b.bytes().len()).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    let mut from = 0;
    for bulk in bulks {
        let data_at = bulk.at + 5;
        out.extend_from_slice(&skeleton[from..data_at]);
        out.extend_from_slice(bulk.bytes());
        from = data_at;
    }
    out.extend_from_slice(&skeleton[from..]);
    Bytes::from(out)
}

/// Bulks of a message whose skeleton was cut at `start`: their positions from there.
pub fn rebase(bulks: Vec<Bulk>, start: usize) -> Bulks {
    Bulks::new(
        bulks
            .into_iter()
            .map(|b| Bulk {
                at: b.at - start,
                data: b.data,
            })
            .collect(),
    )
}

/// The binary being filled.
struct Filling {
    /// Where its header is in the skeleton.
    at: usize,
    len: usize,
    written: usize,
    /// The lander's destination once it came; until then, `early`.
    landed: Option<Box<dyn Landed>>,
    early: Option<BufferLanding>,
    slot: Option<Arc<LandingSlot>>,
}

impl Filling {
    fn new(at: usize, len: usize, lander: Option<&dyn Lander>) -> Filling {
        let mut filling = Filling {
            at,
            len,
            written: 0,
            landed: None,
            early: None,
            slot: None,
        };
        match lander {
            Some(lander) => {
                let slot = Arc::new(LandingSlot::default());
                lander.request(len, &slot);
                filling.slot = Some(slot);
                filling.take_landed();
            }
            None => filling.landed = Some(Box::new(BufferLanding::new(len))),
        }
        filling
    }

    /// Moves to the lander's destination if it has come, with what arrived before it.
    fn take_landed(&mut self) {
        if self.landed.is_some() {
            return;
        }
        let Some(mut landed) = self.slot.as_ref().and_then(|s| s.take()) else {
            return;
        };
        self.slot = None;
        if let Some(early) = self.early.take() {
            landed.memory()[..self.written].copy_from_slice(early.written(self.written));
        }
        self.landed = Some(landed);
    }

    /// The part of the destination still to be written.
    fn window(&mut self) -> &mut [MaybeUninit<u8>] {
        self.take_landed();
        let (written, len) = (self.written, self.len);
        let memory = match &mut self.landed {
            Some(landed) => landed.memory(),
            None => self
                .early
                .get_or_insert_with(|| BufferLanding::new(len))
                .memory(),
        };
        &mut memory[written..len]
    }

    /// Copies in as much of `data` as this binary still needs; returns how much.
    fn write(&mut self, data: &[u8]) -> usize {
        let window = self.window();
        let n = data.len().min(window.len());
        for (to, &from) in window[..n].iter_mut().zip(&data[..n]) {
            to.write(from);
        }
        self.written += n;
        n
    }

    fn is_full(&self) -> bool {
        self.written == self.len
    }

    fn into_bulk(mut self) -> Bulk {
        self.take_landed();
        let mut landed: Box<dyn Landed> = match (self.landed, self.early) {
            (Some(landed), _) => landed,
            (None, Some(early)) => Box::new(early),
            (None, None) => Box::new(BufferLanding::new(0)),
        };
        landed.finish();
        Bulk {
            at: self.at,
            data: Arc::from(landed),
        }
    }

    /// Whether the data is going into the lander's destination (for statistics).
    fn direct(&self) -> bool {
        self.landed.is_some() && self.early.is_none()
    }
}

/// A vector's spare capacity, read-only.
trait SpareRef {
    fn spare_capacity_ref(&self) -> &[MaybeUninit<u8>];
}

impl SpareRef for Vec<u8> {
    fn spare_capacity_ref(&self) -> &[MaybeUninit<u8>] {
        let spare = self.capacity() - self.len();
        // SAFETY: the spare capacity is allocated memory of the vector, `spare` elements
        // long after its length; reading it as `MaybeUninit` makes no claim on its contents.
        unsafe {
            std::slice::from_raw_parts(
                self.as_ptr().add(self.len()).cast::<MaybeUninit<u8>>(),
                spare,
            )
        }
    }
}

/// One message being put together from pieces (fragments, or the rest of a large frame):
/// its skeleton, the binaries landed so far and the one being filled.
pub struct Assembly {
    skeleton: BytesMut,
    scanner: Scanner,
    filling: Option<Filling>,
    bulks: Vec<Bulk>,
    /// Bytes written straight into a lander's destination, and bytes of large binaries
    /// copied on the way (what arrived before their destination).
    pub landed: usize,
    pub copied: usize,
}

impl Assembly {
    /// An assembly expecting about `capacity` bytes of skeleton.
    pub fn new(capacity: usize) -> Assembly {
        Assembly {
            skeleton: BytesMut::with_capacity(capacity),
            scanner: Scanner::new(BULK_MIN),
            filling: None,
            bulks: Vec::new(),
            landed: 0,
            copied: 0,
        }
    }

    /// Bytes held (skeleton and binaries), for the reassembly limit.
    pub fn len(&self) -> usize {
        self.skeleton.len()
            + self.bulks.iter().map(|b| b.bytes().len()).sum::<usize>()
            + self.filling.as_ref().map_or(0, |f| f.written)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a binary is being filled (its bytes can be read straight into [`Assembly::window`]).
    pub fn is_filling(&self) -> bool {
        self.filling.is_some()
    }

    /// Takes the next bytes of the message. `lander` makes destinations for large binaries;
    /// `room` is how many more bytes the message may hold (a binary claiming more is not
    /// landed: the decoder refuses it later).
    pub fn absorb(&mut self, mut data: &[u8], lander: Option<&dyn Lander>, room: usize) {
        while !data.is_empty() {
            if let Some(filling) = &mut self.filling {
                let n = filling.write(data);
                self.copied += n;
                data = &data[n..];
                self.close_filled();
                continue;
            }
            self.skeleton.extend_from_slice(data);
            data = &[];
            self.look_for_binary(lander, room);
        }
    }

    /// Scans the skeleton's new bytes; a large binary found moves its data (whatever of it
    /// is in the skeleton) into a destination of its own.
    fn look_for_binary(&mut self, lander: Option<&dyn Lander>, room: usize) {
        while self.filling.is_none() {
            let Scan::Binary { at, len } = self.scanner.scan(&self.skeleton) else {
                return;
            };
            if len > room {
                // The peer's word only: no destination that large; a scan that stops here
                // leaves the data in the skeleton, where the decoder finds it short.
                self.scanner = Scanner::new(usize::MAX);
                return;
            }
            let data_at = at + 5;
            let rest = self.skeleton.split_off(data_at);
            self.filling = Some(Filling::new(at, len, lander));
            if let Some(filling) = &mut self.filling {
                let n = filling.write(&rest);
                self.copied += n;
                if n < rest.len() {
                    // The binary is whole already: what follows it is skeleton again.
                    self.close_filled();
                    self.skeleton.extend_from_slice(&rest[n..]);
                } else {
                    self.close_filled();
                }
            }
        }
    }

    fn close_filled(&mut self) {
        if self.filling.as_ref().is_some_and(Filling::is_full) {
            if let Some(filling) = self.filling.take() {
                self.bulks.push(filling.into_bulk());
            }
        }
    }

    /// Where the next bytes of the binary being filled go, when one is.
    pub fn window(&mut self) -> Option<&mut [MaybeUninit<u8>]> {
        self.filling.as_mut().map(Filling::window)
    }

    /// `n` bytes were written at the start of [`Assembly::window`].
    pub fn wrote(&mut self, n: usize, lander: Option<&dyn Lander>, room: usize) {
        let Some(filling) = &mut self.filling else {
            return;
        };
        if filling.direct() {
            self.landed += n;
        } else {
            self.copied += n;
        }
        filling.written += n;
        self.close_filled();
        if self.filling.is_none() {
            // The scan goes on over skeleton bytes that came before the binary ended.
            self.look_for_binary(lander, room);
        }
    }

    /// The message: its skeleton and its binaries. A binary still unfilled means the
    /// message ended early: its skeleton keeps the header, and the decoder finds it short.
    pub fn finish(mut self) -> (Bytes, Vec<Bulk>) {
        if let Some(filling) = self.filling.take() {
            if !filling.is_full() {
                return (self.skeleton.freeze(), self.bulks);
            }
            self.bulks.push(filling.into_bulk());
        }
        (self.skeleton.freeze(), self.bulks)
    }
}

#[cfg(test)]
mod tests;
