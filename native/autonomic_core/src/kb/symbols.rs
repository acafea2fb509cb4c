//! Symptom interning and the inverted index.
//!
//! Every distinct symptom of the live records has a small integer id and a posting list: the
//! records that carry it. A symptom's entry lives exactly as long as some live record carries it
//! (a reference count); when the last such record is evicted, the name is forgotten and its id
//! reused. So the table never holds more than the distinct symptoms of the live records: bounded
//! by the history limit times [`super::record::MAX_SYMPTOMS`], and in practice far smaller.
//!
//! Postings are deleted lazily: an evicted record's postings stay in their lists, recognisable by
//! a slot generation that no longer matches, until a list holds more dead entries than live ones
//! (plus a small slack) and is compacted. Eviction is then amortized O(1) per symptom.

use std::collections::HashMap;
use std::sync::Arc;

/// An interned symptom.
pub type SymbolId = u32;

/// A record's slot and the slot's generation when the posting was made, packed in 64 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posting(u64);

impl Posting {
    pub fn new(slot: u32, generation: u32) -> Posting {
        Posting((u64::from(generation) << 32) | u64::from(slot))
    }
    pub fn slot(self) -> u32 {
        self.0 as u32
    }
    pub fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// Dead postings a list may hold beyond its live count before it is compacted.
const COMPACT_SLACK: usize = 8;

#[derive(Clone, Debug, Default)]
struct Symbol {
    name: Option<Arc<str>>,
    live: u32,
    postings: Vec<Posting>,
}

/// The symptom table: names, reference counts and posting lists.
#[derive(Clone, Debug, Default)]
pub struct Symbols {
    by_name: HashMap<Arc<str>, SymbolId>,
    table: Vec<Symbol>,
    free: Vec<SymbolId>,
    /// Sum of the posting list lengths.
    postings_len: usize,
}

impl Symbols {
    /// The id of a symptom carried by some live record.
    pub fn lookup(&self, name: &str) -> Option<SymbolId> {
        self.by_name.get(name).copied()
    }

    /// The name of a live symptom (empty for a freed id, which no live record refers to).
    pub fn name(&self, id: SymbolId) -> &str {
        self.table
            .get(id as usize)
            .and_then(|s| s.name.as_deref())
            .unwrap_or("")
    }

    /// The posting list of a symptom, dead entries included.
    pub fn postings(&self, id: SymbolId) -> &[Posting] {
        self.table
            .get(id as usize)
            .map_or(&[], |s| s.postings.as_slice())
    }

    /// How many live records carry the symptom.
    pub fn live(&self, id: SymbolId) -> u32 {
        self.table.get(id as usize).map_or(0, |s| s.live)
    }

    /// Number of symptoms carried by live records.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Total posting entries, dead ones included (for memory accounting).
    pub fn posting_entries(&self) -> usize {
        self.postings_len
    }

    /// Adds a record's posting to `name`, interning the name if it is new.
    pub fn add(&mut self, name: &str, posting: Posting) -> SymbolId {
        let id = match self.by_name.get(name) {
            Some(&id) => id,
            None => {
                let name: Arc<str> = Arc::from(name);
                let id = match self.free.pop() {
                    Some(id) => id,
                    None => {
                        self.table.push(Symbol::default());
                        (self.table.len() - 1) as SymbolId
                    }
                };
                self.table[id as usize].name = Some(Arc::clone(&name));
                self.by_name.insert(name, id);
                id
            }
        };
        let sym = &mut self.table[id as usize];
        sym.live += 1;
        sym.postings.push(posting);
        self.postings_len += 1;
        id
    }

    /// Drops one live record's reference to `id`. `is_live` tells live postings from dead ones
    /// (the record being removed must already read as dead).
    pub fn remove(&mut self, id: SymbolId, is_live: impl Fn(Posting) -> bool) {
        let Some(sym) = self.table.get_mut(id as usize) else {
            return;
        };
        sym.live = sym.live.saturating_sub(1);
        if sym.live == 0 {
            if let Some(name) = sym.name.take() {
                self.by_name.remove(&name);
            }
            self.postings_len -= sym.postings.len();
            sym.postings = Vec::new();
            self.free.push(id);
        } else if sym.postings.len() > 2 * sym.live as usize + COMPACT_SLACK {
            let before = sym.postings.len();
            sym.postings.retain(|p| is_live(*p));
            self.postings_len -= before - sym.postings.len();
            if sym.postings.capacity() > 4 * sym.postings.len() + COMPACT_SLACK {
                sym.postings.shrink_to_fit();
            }
        }
    }

    pub fn clear(&mut self) {
        *self = Symbols::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_pack_slot_and_generation() {
        let p = Posting::new(u32::MAX - 1, 7);
        assert_eq!(p.slot(), u32::MAX - 1);
        assert_eq!(p.generation(), 7);
    }

    #[test]
    fn names_are_forgotten_with_their_last_record_and_ids_reused() {
        let mut s = Symbols::default();
        let a = s.add("a", Posting::new(0, 0));
        let b = s.add("b", Posting::new(0, 0));
        assert_eq!(s.add("a", Posting::new(1, 0)), a);
        assert_eq!(s.live(a), 2);
        assert_eq!(s.len(), 2);
        s.remove(a, |_| true);
        assert_eq!(s.lookup("a"), Some(a));
        s.remove(a, |_| true);
        assert_eq!(s.lookup("a"), None);
        assert_eq!(s.name(a), "");
        assert_eq!(s.len(), 1);
        // The freed id is reused, with an empty posting list.
        let c = s.add("c", Posting::new(2, 0));
        assert_eq!(c, a);
        assert_eq!(s.postings(c), &[Posting::new(2, 0)]);
        assert_eq!(s.lookup("b"), Some(b));
    }

    #[test]
    fn dead_postings_are_compacted() {
        let mut s = Symbols::default();
        let id = (0..100)
            .map(|i| s.add("x", Posting::new(i, 0)))
            .last()
            .unwrap();
        // Records 0..90 die; the list is compacted once dead entries outnumber live ones.
        for _ in 0..90 {
            s.remove(id, |p| p.slot() >= 90);
        }
        assert_eq!(s.live(id), 10);
        assert!(s.postings(id).len() <= 2 * 10 + COMPACT_SLACK);
        // Every live posting survives compaction.
        assert_eq!(s.postings(id).iter().filter(|p| p.slot() >= 90).count(), 10);
    }
}
