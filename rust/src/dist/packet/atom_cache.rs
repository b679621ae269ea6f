//! One direction's atom cache: the slots a connection's frames refer to by index.

use crate::etf::Atom;

/// Atom cache slots per connection and direction: 8 segments of 256.
const CACHE_SLOTS: usize = 2048;
/// Slots per segment of the atom cache.
const SEGMENT: usize = 256;

/// The slot we give an atom in the peer's cache: a hash of its text. Only the first of the
/// 8 segments is used: we cache a few dozen atoms (node and registered names), and one
/// segment keeps our side of each connection's cache small.
pub(super) fn cache_slot(atom: &Atom) -> usize {
    let hash = atom.as_str().bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash as usize % SEGMENT
}

/// One side of a connection's atom cache: 2048 slots in 8 segments of 256, each segment
/// allocated when first written (a full table is 32 KiB per direction and connection, and
/// most connections use a fraction of it).
#[derive(Default)]
pub(super) struct AtomCache {
    segments: [Option<Box<[Option<Atom>]>>; CACHE_SLOTS / SEGMENT],
}

impl AtomCache {
    pub(super) fn get(&self, slot: usize) -> Option<&Atom> {
        self.segments.get(slot / SEGMENT)?.as_ref()?[slot % SEGMENT].as_ref()
    }

    /// `slot` must be below 2048 (the wire format cannot say more).
    pub(super) fn set(&mut self, slot: usize, atom: Atom) {
        let segment =
            self.segments[slot / SEGMENT].get_or_insert_with(|| vec![None; SEGMENT].into());
        segment[slot % SEGMENT] = Some(atom);
    }
}
