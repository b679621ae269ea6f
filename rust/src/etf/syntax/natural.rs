//! Non-negative integers of any size, only as far as text needs them: digits in some base to
//! the little-endian bytes a [`BigInt`](crate::etf::BigInt) holds, and bytes back to decimal.
//!
//! Schoolbook arithmetic on 32-bit limbs: converting n digits costs O(n²) limb operations,
//! fine for the integers people write or send (a 10 000-digit number takes milliseconds).

/// A natural number as little-endian 32-bit limbs, without high zero limbs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Natural {
    limbs: Vec<u32>,
}

impl Natural {
    pub(super) fn zero() -> Natural {
        Natural { limbs: Vec::new() }
    }

    pub(super) fn from_u64(value: u64) -> Natural {
        let mut n = Natural {
            limbs: vec![value as u32, (value >> 32) as u32],
        };
        n.trim();
        n
    }

    /// The number whose digits (each below `base`, most significant first) are given.
    pub(super) fn from_digits(digits: &[u8], base: u32) -> Natural {
        // Several digits at a time: the largest power of `base` that fits in a limb.
        let mut per_chunk = 1;
        let mut chunk_base = base as u64;
        while chunk_base * base as u64 <= u32::MAX as u64 {
            chunk_base *= base as u64;
            per_chunk += 1;
        }
        let mut n = Natural::zero();
        let head = digits.len() % per_chunk;
        let (first, rest) = digits.split_at(head);
        if !first.is_empty() {
            n.mul_add(base.pow(first.len() as u32), chunk_value(first, base));
        }
        for chunk in rest.chunks(per_chunk) {
            n.mul_add(chunk_base as u32, chunk_value(chunk, base));
        }
        n
    }

    /// The number whose little-endian bytes are given.
    pub(super) fn from_le_bytes(bytes: &[u8]) -> Natural {
        let mut n = Natural {
            limbs: bytes
                .chunks(4)
                .map(|chunk| {
                    let mut word = [0u8; 4];
                    word[..chunk.len()].copy_from_slice(chunk);
                    u32::from_le_bytes(word)
                })
                .collect(),
        };
        n.trim();
        n
    }

    /// Little-endian bytes without high zero bytes (empty for zero).
    pub(super) fn to_le_bytes(&self) -> Vec<u8> {
        let mut bytes: Vec<u8> = self.limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        bytes
    }

    /// The value, if it fits in a `u64`.
    pub(super) fn to_u64(&self) -> Option<u64> {
        match self.limbs.as_slice() {
            [] => Some(0),
            [low] => Some(*low as u64),
            [low, high] => Some(*low as u64 | (*high as u64) << 32),
            _ => None,
        }
    }

    pub(super) fn is_zero(&self) -> bool {
        self.limbs.is_empty()
    }

    /// Decimal digits.
    pub(super) fn to_decimal(&self) -> String {
        const CHUNK: u32 = 1_000_000_000;
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.is_zero() {
            chunks.push(n.div_rem(CHUNK));
        }
        let mut out = chunks.pop().unwrap_or(0).to_string();
        for chunk in chunks.iter().rev() {
            out.push_str(&format!("{chunk:09}"));
        }
        out
    }

    /// `self = self * mul + add`.
    fn mul_add(&mut self, mul: u32, add: u32) {
        let mut carry = add as u64;
        for limb in &mut self.limbs {
            let value = *limb as u64 * mul as u64 + carry;
            *limb = value as u32;
            carry = value >> 32;
        }
        if carry != 0 {
            self.limbs.push(carry as u32);
        }
    }

    /// Divides in place by `divisor` (not zero) and returns the remainder.
    fn div_rem(&mut self, divisor: u32) -> u32 {
        let mut remainder = 0u64;
        for limb in self.limbs.iter_mut().rev() {
            let value = remainder << 32 | *limb as u64;
            *limb = (value / divisor as u64) as u32;
            remainder = value % divisor as u64;
        }
        self.trim();
        remainder as u32
    }

    fn trim(&mut self) {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }
}

/// The value of a few digits that fit in a limb.
fn chunk_value(digits: &[u8], base: u32) -> u32 {
    digits.iter().fold(0, |acc, &d| acc * base + d as u32)
}
