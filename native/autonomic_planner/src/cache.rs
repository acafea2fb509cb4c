//! The last few prepared topologies, keyed by the bytes of their encoding.
//!
//! Most plans of a cluster are asked with the same topology (it changes when nodes or services
//! come and go, far less often than failures happen), and preparing a big topology (decoding
//! it, validating it, indexing its dependency graph) is most of a plan's work: for 500 nodes and
//! 5,000 services about 5 ms of the C-node's 5.5. A request whose `topology` is byte for byte one
//! seen before reuses its prepared form; the bytes themselves are compared, not only their hash,
//! so a hash collision can only cost a miss. Only topologies found valid are kept. Bounded in
//! entries and in bytes, least recently used out first.

use std::sync::{Arc, Mutex, PoisonError};

use autonomic_core::planner::PreparedTopology;

/// Topologies kept.
pub const MAX_ENTRIES: usize = 4;
/// Encoded bytes kept, over all entries (a topology larger than a quarter of this is not kept).
pub const MAX_BYTES: usize = 64 * 1024 * 1024;

struct Entry {
    hash: u64,
    bytes: Vec<u8>,
    topology: Arc<PreparedTopology>,
}

/// See the module documentation.
#[derive(Default)]
pub struct TopologyCache {
    /// Most recently used first.
    entries: Mutex<Vec<Entry>>,
}

/// A fast hash of bytes (a multiply-rotate over 8-byte words, then an avalanche).
pub fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut h = bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(a)).wrapping_mul(K);
    }
    let rest = words.remainder();
    let mut a = [0u8; 8];
    a[..rest.len()].copy_from_slice(rest);
    h = (h.rotate_left(5) ^ u64::from_le_bytes(a)).wrapping_mul(K);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl TopologyCache {
    pub fn new() -> Self {
        TopologyCache::default()
    }

    /// The prepared topology encoded as `bytes`, if kept.
    pub fn get(&self, bytes: &[u8]) -> Option<Arc<PreparedTopology>> {
        let h = hash(bytes);
        // A panic elsewhere while the lock was held cannot leave the list inconsistent (every
        // change is a single insert or remove), so a poisoned lock is used as it is.
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let at = entries
            .iter()
            .position(|e| e.hash == h && e.bytes == bytes)?;
        let entry = entries.remove(at);
        let topology = Arc::clone(&entry.topology);
        entries.insert(0, entry);
        Some(topology)
    }

    /// Keeps a prepared topology encoded as `bytes`.
    pub fn insert(&self, bytes: &[u8], topology: PreparedTopology) {
        if bytes.len() > MAX_BYTES / MAX_ENTRIES {
            return;
        }
        let h = hash(bytes);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|e| !(e.hash == h && e.bytes == bytes));
        entries.insert(
            0,
            Entry {
                hash: h,
                bytes: bytes.to_vec(),
                topology: Arc::new(topology),
            },
        );
        entries.truncate(MAX_ENTRIES);
    }

    /// Topologies kept.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autonomic_core::planner::{NodeSpec, Topology};

    fn topology(n: usize) -> PreparedTopology {
        let t = Topology {
            nodes: (0..n)
                .map(|i| NodeSpec::new(format!("n{i}@h"), 0.5))
                .collect(),
            services: Vec::new(),
        };
        PreparedTopology::new(t).unwrap()
    }

    #[test]
    fn keeps_the_most_recently_used() {
        let c = TopologyCache::new();
        for i in 0..6u8 {
            c.insert(&[i; 100], topology(usize::from(i) + 1));
        }
        assert_eq!(c.len(), MAX_ENTRIES);
        assert!(c.get(&[0; 100]).is_none());
        assert!(c.get(&[1; 100]).is_none());
        let t = c.get(&[2; 100]).unwrap();
        assert_eq!(t.topology().nodes.len(), 3);
        // 2 is now the most recent: inserting one more drops 3.
        c.insert(&[9; 100], topology(1));
        assert!(c.get(&[2; 100]).is_some());
        assert!(c.get(&[3; 100]).is_none());
    }

    #[test]
    fn bytes_not_only_hashes_are_compared() {
        let c = TopologyCache::new();
        c.insert(b"abcdefgh", topology(1));
        assert!(c.get(b"abcdefgh").is_some());
        assert!(c.get(b"abcdefgi").is_none());
        assert!(c.get(b"abcdefg").is_none());
        assert_ne!(hash(b"abc"), hash(b"abc\0"));
    }

    #[test]
    fn huge_topologies_are_not_kept() {
        let c = TopologyCache::new();
        c.insert(&vec![0u8; MAX_BYTES / MAX_ENTRIES + 1], topology(1));
        assert!(c.is_empty());
    }
}
