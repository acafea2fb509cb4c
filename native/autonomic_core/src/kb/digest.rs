//! A summary of the set of record ids, for anti-entropy between nodes.
//!
//! Ids are hashed with a fixed function (FNV-1a 64 and a SplitMix64 finalizer: the same on every
//! node and every build) into [`BUCKETS`] buckets; a bucket's digest is its record count and the
//! XOR of its ids' hashes. Two nodes compare digests (12 KiB) and exchange ids only for the
//! buckets that differ, so a catch-up costs in proportion to the difference, not to the history.
//! The digest is maintained on every insert and eviction: reading it is a copy.

use thiserror::Error;

/// Number of buckets (a power of two).
pub const BUCKETS: usize = 1024;
const BUCKET_SHIFT: u32 = 64 - BUCKETS.trailing_zeros();
/// Encoded size: per bucket a 32-bit count and a 64-bit XOR, big-endian.
pub const ENCODED_BYTES: usize = BUCKETS * 12;

/// The stable 64-bit hash of a record id.
pub fn id_hash(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // SplitMix64 finalizer: FNV's low-entropy high bits pick the bucket otherwise.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The bucket of an id.
pub fn bucket_of(id: &str) -> u16 {
    (id_hash(id) >> BUCKET_SHIFT) as u16
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    count: Box<[u32]>,
    xor: Box<[u64]>,
}

#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("a digest is {ENCODED_BYTES} bytes, got {0}")]
pub struct BadDigest(pub usize);

impl Default for Digest {
    fn default() -> Self {
        Digest {
            count: vec![0; BUCKETS].into_boxed_slice(),
            xor: vec![0; BUCKETS].into_boxed_slice(),
        }
    }
}

impl Digest {
    /// Adds or removes an id (XOR is its own inverse; the count tells which).
    pub fn toggle(&mut self, id: &str, added: bool) {
        let h = id_hash(id);
        let b = (h >> BUCKET_SHIFT) as usize;
        self.xor[b] ^= h;
        self.count[b] = if added {
            self.count[b].wrapping_add(1)
        } else {
            self.count[b].wrapping_sub(1)
        };
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCODED_BYTES);
        for (c, x) in self.count.iter().zip(self.xor.iter()) {
            out.extend_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&x.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Digest, BadDigest> {
        if bytes.len() != ENCODED_BYTES {
            return Err(BadDigest(bytes.len()));
        }
        let mut d = Digest::default();
        for (i, chunk) in bytes.chunks_exact(12).enumerate() {
            let (c, x) = chunk.split_at(4);
            // The chunks are exactly 12 bytes, so both conversions succeed.
            d.count[i] = u32::from_be_bytes(c.try_into().unwrap_or([0; 4]));
            d.xor[i] = u64::from_be_bytes(x.try_into().unwrap_or([0; 8]));
        }
        Ok(d)
    }

    /// The buckets where the two digests differ, ascending.
    pub fn diff(&self, other: &Digest) -> Vec<u16> {
        (0..BUCKETS)
            .filter(|&b| self.count[b] != other.count[b] || self.xor[b] != other.xor[b])
            .map(|b| b as u16)
            .collect()
    }

    pub fn clear(&mut self) {
        *self = Digest::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_fixed() {
        // Must never change: nodes of different builds compare digests. Values computed by an
        // independent implementation of FNV-1a 64 + SplitMix64's finalizer.
        assert_eq!(id_hash(""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(id_hash("abc"), 0x0dd4_9049_0804_b508);
        assert_eq!(
            id_hash("0193f1c2a7b84d2e9f00112233445566"),
            0x4405_108d_c449_fb8b
        );
        assert_eq!(bucket_of("abc"), 0x0dd4 >> 6);
    }

    #[test]
    fn digests_diff_and_round_trip() {
        let mut a = Digest::default();
        let mut b = Digest::default();
        for i in 0..1000 {
            a.toggle(&format!("id-{i}"), true);
            b.toggle(&format!("id-{i}"), true);
        }
        assert!(a.diff(&b).is_empty());
        b.toggle("extra", true);
        assert_eq!(a.diff(&b), vec![bucket_of("extra")]);
        b.toggle("extra", false);
        assert!(a.diff(&b).is_empty());
        let decoded = Digest::decode(&a.encode()).unwrap();
        assert_eq!(decoded, a);
        assert_eq!(Digest::decode(&[0; 5]), Err(BadDigest(5)));
    }
}
