//! An append-only vector kept in fixed-size chunks.
//!
//! The ledger's in-memory columns (Merkle levels, record locations) grow to millions of entries
//! and are extended while a lock that readers on normal schedulers also take is held. A plain
//! `Vec` would, on growth, copy the whole column under that lock (32 MB for a million hashes);
//! here a push never moves existing elements: only the first chunk grows by doubling (so a small
//! ledger stays small), later chunks are allocated at their full size once.

const CHUNK_BITS: u32 = 14;
const CHUNK: usize = 1 << CHUNK_BITS;
const MASK: usize = CHUNK - 1;

#[derive(Debug, Clone)]
pub(crate) struct ChunkedVec<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for ChunkedVec<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Copy> ChunkedVec<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(value),
            _ => {
                let capacity = if self.chunks.is_empty() { 16 } else { CHUNK };
                let mut chunk = Vec::with_capacity(capacity);
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    pub(crate) fn get(&self, index: usize) -> Option<T> {
        self.chunks
            .get(index >> CHUNK_BITS)
            .and_then(|chunk| chunk.get(index & MASK))
            .copied()
    }

    /// Appends to `out` up to `count` elements starting at `start` (fewer when the vector ends
    /// first).
    pub(crate) fn copy_to(&self, start: usize, out: &mut Vec<T>, count: usize) {
        let end = start.saturating_add(count).min(self.len);
        let mut i = start;
        while i < end {
            let Some(chunk) = self.chunks.get(i >> CHUNK_BITS) else {
                return;
            };
            let from = i & MASK;
            let take = (chunk.len() - from.min(chunk.len())).min(end - i);
            if take == 0 {
                return;
            }
            out.extend_from_slice(&chunk[from..from + take]);
            i += take;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_get_across_chunks() {
        let mut v = ChunkedVec::default();
        let n = CHUNK * 2 + 17;
        for i in 0..n {
            v.push(i as u64);
        }
        assert_eq!(v.len(), n);
        for i in 0..n {
            assert_eq!(v.get(i), Some(i as u64));
        }
        assert_eq!(v.get(n), None);
        let mut out = Vec::new();
        v.copy_to(CHUNK - 3, &mut out, 10);
        assert_eq!(
            out,
            ((CHUNK - 3) as u64..(CHUNK + 7) as u64).collect::<Vec<_>>()
        );
        out.clear();
        v.copy_to(n - 2, &mut out, 10);
        assert_eq!(out, vec![(n - 2) as u64, (n - 1) as u64]);
    }
}
