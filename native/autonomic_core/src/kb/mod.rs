//! The learning knowledge base: historical failures, similarity search and strategy effectiveness
//! (DESIGN.md section 3).
//!
//! # Model
//!
//! A record is a [`Failure`]: `id, failure_type, root_cause, symptoms, strategy, recovery_ms,
//! success, timestamp`. Records are immutable and identified by their id. The knowledge base holds
//! a set of records subject to three bounds, each a function of the records alone:
//!
//! - **history limit** ([`Config::max_records`], default 10,000): only the newest records are
//!   kept, "newest" ordering records by `(timestamp, id)`; inserting into a full base evicts the
//!   oldest, and a record older than every record of a full base is refused;
//! - **retention** ([`Config::retention_ms`], default 90 days): records with
//!   `timestamp < now - retention` are removed (on every insert and on [`KnowledgeBase::prune`]);
//! - **epoch** (set by [`KnowledgeBase::clear`]): records with `timestamp < epoch` are removed
//!   and refused. A clear is the epoch `max(now + 1, epoch + 1)`; peers adopt the higher epoch.
//!
//! A record stamped more than [`MAX_FUTURE_MS`] after the node's clock is refused: clocks may
//! drift by that much, not more. (Such a record would otherwise be the newest forever: never
//! evicted, never expired, and not removed by a clear, whose epoch is the time of the clear.)
//!
//! So the content is "the newest `max_records` of all records ever offered, minus the expired
//! and the cleared", whatever the order they were offered in: merging two knowledge bases is a
//! union, commutative and idempotent, and nodes that saw the same records hold the same base.
//!
//! # Similarity
//!
//! Symptoms are interned to integer ids ([`symbols`]) and each record keeps a sorted array of
//! them, so the Jaccard similarity `|Q ∩ R| / |Q ∪ R|` of a query `Q` and a record `R` is one
//! merge of two short integer arrays. Two empty sets have similarity 1. Each slot also has a
//! 64-byte signature (its generation and up to 14 symptom ids inline) beside the record, so that
//! verifying a candidate reads one cache line; the record is read only for the matches.
//!
//! [`KnowledgeBase::similar`] does not scan the history. It uses the inverted index (symptom id →
//! records) with the prefix filter of set-similarity joins: a record reaching threshold `t` shares
//! at least `m` of the query's `q` symptoms ([`similarity::min_overlap`]), hence at least one of
//! any `q - m + 1` of them; taking the rarest ones, only their posting lists are read, and each
//! candidate is verified exactly. A threshold of 0 (every record matches) falls back to a scan.
//! Results are ordered by score (descending), then timestamp (newer first), then id (ascending),
//! and cut at the limit.
//!
//! # Recommendation
//!
//! [`KnowledgeBase::recommend`] takes the records `R` with `J(Q, R) >= t` (default threshold 0.7)
//! and scores each strategy `s` seen among them by the posterior mean of its success probability
//! under a Beta(1, 1) prior, each record counting as `J(Q, R)` observations:
//!
//! ```text
//! W(s)  = Σ J(Q, R)              over the matching records R with strategy s
//! S(s)  = Σ J(Q, R)              over those that succeeded
//! score(s) = (1 + S(s)) / (2 + W(s))
//! ```
//!
//! A strategy that succeeded once in an identical failure scores 2/3; one that succeeded in 100
//! of 100 scores 101/102. Strategies are ranked by score, then by evidence `W` (descending), then
//! by name; sums run over the matches in the order of `similar`, so results are reproducible.
//!
//! # Statistics
//!
//! Per failure type: successes and failures. Per strategy: successes, failures, rate, and the
//! mean and 95th percentile (nearest rank) of `recovery_ms` over its successful recoveries. The
//! counts and a sorted multiset of recovery times are maintained on insert and eviction; the mean
//! (summed in ascending order, so independent of arrival order) and the percentile are read from
//! the multiset, in time proportional to its distinct values.

pub mod digest;
pub mod json;
pub mod leftright;
pub mod record;
pub mod shared;
pub mod similarity;
pub mod stats;
pub mod store;
pub mod symbols;

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use thiserror::Error;

pub use digest::Digest;
pub use record::{Failure, Field, InvalidField, Label, RawFailure, RecoveryMs, Strategy};
pub use similarity::{jaccard, Threshold};
pub use stats::{Counts, Effectiveness};

use similarity::{intersection_len, min_overlap};
use stats::StrategyStats;
use symbols::{Posting, SymbolId, Symbols};

/// Default history limit.
pub const DEFAULT_MAX_RECORDS: usize = 10_000;
/// Default retention: 90 days.
pub const DEFAULT_RETENTION_MS: u64 = 90 * 24 * 3600 * 1000;
/// How far in the future (beyond the node's clock) a record's timestamp may be.
pub const MAX_FUTURE_MS: i64 = 60_000;
/// Largest history limit (slots are 32-bit).
pub const MAX_MAX_RECORDS: usize = 1 << 30;

/// Bounds of a knowledge base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Most records kept (1 to [`MAX_MAX_RECORDS`]).
    pub max_records: usize,
    /// Records older than this (by `timestamp`) are removed; at least 1 ms.
    pub retention_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_records: DEFAULT_MAX_RECORDS,
            retention_ms: DEFAULT_RETENTION_MS,
        }
    }
}

/// Errors of the knowledge base.
#[derive(Debug, Error)]
pub enum KbError {
    #[error("max_records must be in 1..={MAX_MAX_RECORDS}, got {0}")]
    InvalidMaxRecords(usize),
    #[error("retention_ms must be in 1..={max}, got {0}", max = i64::MAX)]
    InvalidRetention(u64),
    #[error(transparent)]
    InvalidField(#[from] InvalidField),
    #[error(
        "a query has at most {} distinct symptoms of 1 to {} bytes",
        record::MAX_SYMPTOMS,
        record::MAX_SYMPTOM_BYTES
    )]
    InvalidSymptoms,
    #[error("record {0} exists with different content")]
    Conflict(Box<str>),
    #[error("timestamp {0} is before the retention window, the last clear, or a full history")]
    TooOld(i64),
    #[error("timestamp {0} is more than {MAX_FUTURE_MS} ms ahead of this node's clock")]
    TooNew(i64),
    #[error(transparent)]
    Json(#[from] json::JsonError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Digest(#[from] digest::BadDigest),
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl Config {
    pub fn validate(self) -> Result<Config, KbError> {
        if !(1..=MAX_MAX_RECORDS).contains(&self.max_records) {
            return Err(KbError::InvalidMaxRecords(self.max_records));
        }
        if self.retention_ms == 0 || i64::try_from(self.retention_ms).is_err() {
            return Err(KbError::InvalidRetention(self.retention_ms));
        }
        Ok(self)
    }
}

/// What an insert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// The record is new; `evicted` older records made room for it (0 or 1) or had expired.
    Added { evicted: usize },
    /// A record with this id and the same content was already there: nothing changed.
    Duplicate,
}

/// Why records left the knowledge base, since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Evictions {
    /// Evicted to respect the history limit.
    pub limit: u64,
    /// Removed by retention.
    pub retention: u64,
    /// Removed by a clear (local or adopted from a peer).
    pub cleared: u64,
}

/// A record as stored: symptoms as sorted symbol ids.
#[derive(Clone, Debug)]
struct Stored {
    id: Arc<str>,
    failure_type: Label,
    root_cause: Label,
    symptoms: Box<[SymbolId]>,
    strategy: Strategy,
    recovery_ms: RecoveryMs,
    success: bool,
    timestamp: i64,
}

#[derive(Clone, Debug, Default)]
struct Slot {
    record: Option<Stored>,
}

/// Symptom ids a [`Sig`] holds inline; a record with more is verified from its [`Stored`].
const INLINE: usize = 14;

/// What a search reads of each candidate, in one 64-byte cache line: the slot's generation (a
/// posting is live when its generation matches) and the record's sorted symptom ids. Verifying a
/// candidate is then one cache miss instead of three (slot, record, symptom array); the record
/// itself is read only for the matches.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Sig {
    generation: u32,
    len: u32,
    ids: [SymbolId; INLINE],
}

impl Sig {
    /// The symptom ids, when they fit inline.
    fn ids(&self) -> Option<&[SymbolId]> {
        self.ids.get(..self.len as usize)
    }
}

/// A prepared query: the distinct symptoms, those known as sorted ids.
#[derive(Clone, Debug)]
pub struct Query {
    /// Known symptom ids, ascending.
    known: Vec<SymbolId>,
    /// Number of distinct symptoms, known or not.
    size: usize,
}

impl Query {
    /// Number of distinct symptoms in the query.
    pub fn size(&self) -> usize {
        self.size
    }
}

/// A failure in the knowledge base, borrowed.
#[derive(Clone, Copy)]
pub struct FailureRef<'a> {
    kb: &'a KnowledgeBase,
    rec: &'a Stored,
}

impl<'a> FailureRef<'a> {
    pub fn id(&self) -> &'a str {
        &self.rec.id
    }
    pub fn failure_type(&self) -> &'a Label {
        &self.rec.failure_type
    }
    pub fn root_cause(&self) -> &'a Label {
        &self.rec.root_cause
    }
    /// The symptoms, sorted by their bytes.
    pub fn symptoms(&self) -> Vec<&'a str> {
        let mut v: Vec<&str> = self
            .rec
            .symptoms
            .iter()
            .map(|&s| self.kb.symbols.name(s))
            .collect();
        v.sort_unstable();
        v
    }
    pub fn strategy(&self) -> Strategy {
        self.rec.strategy
    }
    pub fn recovery_ms(&self) -> RecoveryMs {
        self.rec.recovery_ms
    }
    pub fn success(&self) -> bool {
        self.rec.success
    }
    pub fn timestamp(&self) -> i64 {
        self.rec.timestamp
    }

    /// An owned copy (every stored record was a valid failure, so this succeeds).
    pub fn to_failure(&self) -> Result<Failure, InvalidField> {
        Failure::new(RawFailure {
            id: self.id().to_string(),
            failure_type: self.failure_type().clone(),
            root_cause: self.root_cause().clone(),
            symptoms: self.symptoms().into_iter().map(str::to_string).collect(),
            strategy: self.strategy(),
            recovery_ms: self.recovery_ms(),
            success: self.success(),
            timestamp: self.timestamp(),
        })
    }

    fn same_as(&self, f: &Failure) -> bool {
        self.rec.failure_type == *f.failure_type()
            && self.rec.root_cause == *f.root_cause()
            && self.rec.strategy == f.strategy()
            && self.rec.recovery_ms == f.recovery_ms()
            && self.rec.success == f.success()
            && self.rec.timestamp == f.timestamp()
            && self
                .symptoms()
                .iter()
                .copied()
                .eq(f.symptoms().iter().map(|s| &**s))
    }
}

impl std::fmt::Debug for FailureRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureRef")
            .field("id", &self.id())
            .field("timestamp", &self.timestamp())
            .finish()
    }
}

/// A search result.
#[derive(Clone, Copy, Debug)]
pub struct Match<'a> {
    pub score: f64,
    pub failure: FailureRef<'a>,
}

/// A ranked strategy (see the module documentation for the formula).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recommendation {
    pub strategy: Strategy,
    /// `(1 + S) / (2 + W)`.
    pub score: f64,
    /// `W`: the similarity-weighted number of matching records with this strategy.
    pub weight: f64,
    /// Matching records with this strategy that succeeded.
    pub successes: u64,
    /// Matching records with this strategy that failed.
    pub failures: u64,
}

/// The knowledge base. Not synchronized: see [`shared::SharedKb`] for concurrent use.
#[derive(Clone, Debug)]
pub struct KnowledgeBase {
    config: Config,
    slots: Vec<Slot>,
    /// Parallel to `slots`.
    sigs: Vec<Sig>,
    free_slots: Vec<u32>,
    by_id: HashMap<Arc<str>, u32>,
    /// Eviction order: oldest first.
    order: BTreeMap<(i64, Arc<str>), u32>,
    symbols: Symbols,
    /// Records without symptoms (they match an empty query).
    empty: HashSet<u32>,
    types: HashMap<Label, Counts>,
    strategies: [StrategyStats; 8],
    digest: Digest,
    epoch: i64,
    evictions: Evictions,
}

/// Orders matches best first: score, then newer, then id.
fn best_first(a: (f64, &Stored), b: (f64, &Stored)) -> Ordering {
    b.0.total_cmp(&a.0)
        .then(b.1.timestamp.cmp(&a.1.timestamp))
        .then(a.1.id.cmp(&b.1.id))
}

impl KnowledgeBase {
    pub fn new(config: Config) -> Result<KnowledgeBase, KbError> {
        Ok(KnowledgeBase {
            config: config.validate()?,
            slots: Vec::new(),
            sigs: Vec::new(),
            free_slots: Vec::new(),
            by_id: HashMap::new(),
            order: BTreeMap::new(),
            symbols: Symbols::default(),
            empty: HashSet::new(),
            types: HashMap::new(),
            strategies: Default::default(),
            digest: Digest::default(),
            epoch: 0,
            evictions: Evictions::default(),
        })
    }

    pub fn config(&self) -> Config {
        self.config
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Number of distinct symptoms of the live records (the interned names).
    pub fn symptom_count(&self) -> usize {
        self.symbols.len()
    }

    /// Posting entries in the inverted index, dead ones not yet compacted included.
    pub fn posting_entries(&self) -> usize {
        self.symbols.posting_entries()
    }

    /// Records are refused and removed below this timestamp (0 until the first clear).
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    pub fn evictions(&self) -> Evictions {
        self.evictions
    }

    /// The digest of the record ids (see [`digest`]).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    fn stored(&self, slot: u32) -> Option<&Stored> {
        self.slots.get(slot as usize)?.record.as_ref()
    }

    fn view<'a>(&'a self, rec: &'a Stored) -> FailureRef<'a> {
        FailureRef { kb: self, rec }
    }

    /// The record with this id.
    pub fn get(&self, id: &str) -> Option<FailureRef<'_>> {
        let slot = *self.by_id.get(id)?;
        self.stored(slot).map(|rec| self.view(rec))
    }

    /// Every record, oldest first (by timestamp, then id).
    pub fn iter(&self) -> impl Iterator<Item = FailureRef<'_>> {
        self.order
            .values()
            .filter_map(|&slot| self.stored(slot).map(|rec| self.view(rec)))
    }

    /// Lowest timestamp a record may have at `now_ms` and be kept.
    fn cutoff(&self, now_ms: i64) -> i64 {
        let retention = i64::try_from(self.config.retention_ms).unwrap_or(i64::MAX);
        self.epoch.max(now_ms.saturating_sub(retention))
    }

    /// Inserts a record (see the module documentation for what is kept).
    ///
    /// Errors: [`KbError::Conflict`] when a different record has the same id,
    /// [`KbError::TooOld`] when the record would not be kept, [`KbError::TooNew`] when it is
    /// stamped more than [`MAX_FUTURE_MS`] ahead of `now_ms`. Nothing changes on error (except
    /// that expired records are removed first, as on every call).
    pub fn insert(&mut self, f: &Failure, now_ms: i64) -> Result<Inserted, KbError> {
        let expired = self.prune(now_ms);
        if let Some(existing) = self.get(f.id()) {
            return if existing.same_as(f) {
                Ok(Inserted::Duplicate)
            } else {
                Err(KbError::Conflict(f.id().into()))
            };
        }
        if f.timestamp() < self.cutoff(now_ms) {
            return Err(KbError::TooOld(f.timestamp()));
        }
        if f.timestamp() > now_ms.saturating_add(MAX_FUTURE_MS) {
            return Err(KbError::TooNew(f.timestamp()));
        }
        let mut evicted = expired;
        if self.len() >= self.config.max_records {
            let newer_than_oldest = self
                .order
                .keys()
                .next()
                .map_or(true, |(ts, id)| (f.timestamp(), f.id()) > (*ts, &**id));
            if !newer_than_oldest {
                return Err(KbError::TooOld(f.timestamp()));
            }
            while self.len() >= self.config.max_records {
                if !self.evict_oldest() {
                    break;
                }
                self.evictions.limit += 1;
                evicted += 1;
            }
        }
        self.add(f);
        Ok(Inserted::Added { evicted })
    }

    fn add(&mut self, f: &Failure) {
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot::default());
                self.sigs.push(Sig::default());
                (self.slots.len() - 1) as u32
            }
        };
        let generation = self.sigs[slot as usize].generation;
        let posting = Posting::new(slot, generation);
        let mut symptoms: Vec<SymbolId> = f
            .symptoms()
            .iter()
            .map(|s| self.symbols.add(s, posting))
            .collect();
        symptoms.sort_unstable();
        if symptoms.is_empty() {
            self.empty.insert(slot);
        }
        let sig = &mut self.sigs[slot as usize];
        sig.len = symptoms.len() as u32;
        if let Some(inline) = sig.ids.get_mut(..symptoms.len()) {
            inline.copy_from_slice(&symptoms);
        }
        let id: Arc<str> = Arc::from(f.id());
        self.by_id.insert(Arc::clone(&id), slot);
        self.order.insert((f.timestamp(), Arc::clone(&id)), slot);
        self.types
            .entry(f.failure_type().clone())
            .or_default()
            .add(f.success());
        self.strategies[f.strategy().index()].add(f);
        self.digest.toggle(f.id(), true);
        self.slots[slot as usize].record = Some(Stored {
            id,
            failure_type: f.failure_type().clone(),
            root_cause: f.root_cause().clone(),
            symptoms: symptoms.into_boxed_slice(),
            strategy: f.strategy(),
            recovery_ms: f.recovery_ms(),
            success: f.success(),
            timestamp: f.timestamp(),
        });
    }

    /// Removes the oldest record; false when empty.
    fn evict_oldest(&mut self) -> bool {
        match self.order.pop_first() {
            Some((_, slot)) => {
                self.remove_slot(slot);
                true
            }
            None => false,
        }
    }

    /// Removes the record in `slot` from every structure but `order` (the caller's job).
    fn remove_slot(&mut self, slot: u32) {
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let Some(rec) = s.record.take() else {
            return;
        };
        if let Some(sig) = self.sigs.get_mut(slot as usize) {
            // The record's postings die with this generation.
            sig.generation = sig.generation.wrapping_add(1);
            sig.len = 0;
        }
        self.free_slots.push(slot);
        let sigs = &self.sigs;
        let is_live = |p: Posting| {
            sigs.get(p.slot() as usize)
                .is_some_and(|s| s.generation == p.generation())
        };
        for &sym in rec.symptoms.iter() {
            self.symbols.remove(sym, is_live);
        }
        if rec.symptoms.is_empty() {
            self.empty.remove(&slot);
        }
        self.by_id.remove(&rec.id);
        if let Some(c) = self.types.get_mut(&rec.failure_type) {
            c.remove(rec.success);
            if c.total() == 0 {
                self.types.remove(&rec.failure_type);
            }
        }
        self.strategies[rec.strategy.index()].remove(rec.success, rec.recovery_ms);
        self.digest.toggle(&rec.id, false);
    }

    /// Removes records with `timestamp < cutoff`; returns how many.
    fn remove_before(&mut self, cutoff: i64) -> usize {
        let mut n = 0;
        while let Some(entry) = self.order.first_entry() {
            if entry.key().0 >= cutoff {
                break;
            }
            let slot = entry.remove();
            self.remove_slot(slot);
            n += 1;
        }
        n
    }

    /// Applies retention at `now_ms`; returns the number of records removed.
    pub fn prune(&mut self, now_ms: i64) -> usize {
        let n = self.remove_before(self.cutoff(now_ms));
        self.evictions.retention += n as u64;
        n
    }

    /// Raises the epoch to `epoch` (no-op if it is not higher), removing the records below it;
    /// returns how many were removed.
    pub fn set_epoch(&mut self, epoch: i64) -> usize {
        if epoch <= self.epoch {
            return 0;
        }
        self.epoch = epoch;
        let n = self.remove_before(epoch);
        self.evictions.cleared += n as u64;
        if self.is_empty() {
            // Release the memory of a large history, not only its contents.
            self.slots = Vec::new();
            self.sigs = Vec::new();
            self.free_slots = Vec::new();
            self.symbols.clear();
            self.empty = HashSet::new();
        }
        n
    }

    /// Clears: every record stamped at or before `now_ms` is removed, and refused from now on,
    /// here and (through the epoch) on every peer. Records stamped after `now_ms` (at most
    /// [`MAX_FUTURE_MS`] ahead, a skewed clock) are kept. Returns the new epoch.
    pub fn clear(&mut self, now_ms: i64) -> i64 {
        let epoch = now_ms.saturating_add(1).max(self.epoch.saturating_add(1));
        self.set_epoch(epoch);
        epoch
    }

    /// Prepares a query from its symptoms (deduplicated; each 1 to 1024 bytes, at most 256).
    pub fn query<S: AsRef<str>>(&self, symptoms: &[S]) -> Result<Query, KbError> {
        let mut names: Vec<&str> = symptoms.iter().map(AsRef::as_ref).collect();
        if names
            .iter()
            .any(|s| s.is_empty() || s.len() > record::MAX_SYMPTOM_BYTES)
        {
            return Err(KbError::InvalidSymptoms);
        }
        names.sort_unstable();
        names.dedup();
        if names.len() > record::MAX_SYMPTOMS {
            return Err(KbError::InvalidSymptoms);
        }
        let mut known: Vec<SymbolId> = names
            .iter()
            .filter_map(|s| self.symbols.lookup(s))
            .collect();
        known.sort_unstable();
        Ok(Query {
            known,
            size: names.len(),
        })
    }

    /// The plan of a search: `None` for a full scan, or the symbols whose postings to read.
    fn plan(&self, q: &Query, t: Threshold) -> Plan {
        if q.size == 0 {
            return if t.get() <= 0.0 {
                Plan::Scan
            } else {
                Plan::EmptyOnly
            };
        }
        let m = min_overlap(q.size, t);
        if m == 0 {
            return Plan::Scan;
        }
        if m > q.known.len() {
            return Plan::Nothing;
        }
        let mut by_rarity = q.known.clone();
        by_rarity.sort_by_key(|&s| (self.symbols.live(s), s));
        by_rarity.truncate(q.known.len() - m + 1);
        Plan::Prefix(by_rarity)
    }

    /// An estimate of the work of a search, in records touched: meant to decide whether it can
    /// run on a normal scheduler.
    pub fn search_cost(&self, q: &Query, t: Threshold) -> usize {
        match self.plan(q, t) {
            Plan::Scan => self.len(),
            Plan::EmptyOnly => self.empty.len(),
            Plan::Nothing => 0,
            Plan::Prefix(prefix) => prefix.iter().map(|&s| self.symbols.postings(s).len()).sum(),
        }
    }

    /// Calls `f` with every record whose similarity to `q` is at least `t`, in no set order.
    fn for_each_match<'a>(&'a self, q: &Query, t: Threshold, mut f: impl FnMut(f64, &'a Stored)) {
        let score = |rec: &Stored| {
            let inter = intersection_len(&q.known, &rec.symptoms);
            jaccard(inter, q.size, rec.symptoms.len())
        };
        match self.plan(q, t) {
            Plan::Nothing => {}
            Plan::EmptyOnly => {
                for &slot in &self.empty {
                    if let Some(rec) = self.stored(slot) {
                        f(1.0, rec);
                    }
                }
            }
            Plan::Scan => {
                for rec in self.slots.iter().filter_map(|s| s.record.as_ref()) {
                    let s = score(rec);
                    if s >= t.get() {
                        f(s, rec);
                    }
                }
            }
            Plan::Prefix(prefix) => {
                for (j, &sym) in prefix.iter().enumerate() {
                    for p in self.symbols.postings(sym) {
                        let Some(sig) = self.sigs.get(p.slot() as usize) else {
                            continue;
                        };
                        if sig.generation != p.generation() {
                            continue;
                        }
                        let ids = match sig.ids() {
                            Some(ids) => ids,
                            None => match self.stored(p.slot()) {
                                Some(rec) => &rec.symptoms[..],
                                None => continue,
                            },
                        };
                        // Seen already through an earlier (rarer) prefix symptom.
                        if prefix[..j].iter().any(|e| ids.binary_search(e).is_ok()) {
                            continue;
                        }
                        let s = jaccard(intersection_len(&q.known, ids), q.size, ids.len());
                        if s >= t.get() {
                            if let Some(rec) = self.stored(p.slot()) {
                                f(s, rec);
                            }
                        }
                    }
                }
            }
        }
    }

    fn matches(&self, q: &Query, t: Threshold) -> Vec<(f64, &Stored)> {
        let mut out = Vec::new();
        self.for_each_match(q, t, |s, rec| out.push((s, rec)));
        out
    }

    /// The `limit` records most similar to `q` with similarity at least `t`, best first (score,
    /// then newer, then id).
    pub fn similar(&self, q: &Query, t: Threshold, limit: usize) -> Vec<Match<'_>> {
        let mut found = self.matches(q, t);
        if found.len() > limit && limit > 0 {
            found.select_nth_unstable_by(limit - 1, |a, b| best_first(*a, *b));
        }
        found.truncate(limit);
        found.sort_unstable_by(|a, b| best_first(*a, *b));
        found
            .into_iter()
            .map(|(score, rec)| Match {
                score,
                failure: self.view(rec),
            })
            .collect()
    }

    /// Strategies ranked for `q` (see the module documentation).
    pub fn recommend(&self, q: &Query, t: Threshold) -> Vec<Recommendation> {
        let mut found = self.matches(q, t);
        found.sort_unstable_by(|a, b| best_first(*a, *b));
        let mut acc: [(f64, f64, u64, u64); 8] = [(0.0, 0.0, 0, 0); 8];
        for (score, rec) in &found {
            let a = &mut acc[rec.strategy.index()];
            a.0 += score;
            if rec.success {
                a.1 += score;
                a.2 += 1;
            } else {
                a.3 += 1;
            }
        }
        let mut out: Vec<Recommendation> = Strategy::ALL
            .iter()
            .zip(acc)
            .filter(|(_, (_, _, s, f))| s + f > 0)
            .map(|(&strategy, (w, sw, successes, failures))| Recommendation {
                strategy,
                score: (1.0 + sw) / (2.0 + w),
                weight: w,
                successes,
                failures,
            })
            .collect();
        out.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.weight.total_cmp(&a.weight))
                .then(a.strategy.cmp(&b.strategy))
        });
        out
    }

    /// Successes and failures of the records of a failure type.
    pub fn success_rate(&self, failure_type: &Label) -> Counts {
        self.types.get(failure_type).copied().unwrap_or_default()
    }

    /// What is known about a strategy.
    pub fn effectiveness(&self, strategy: Strategy) -> Effectiveness {
        self.strategies[strategy.index()].effectiveness()
    }

    /// Work of [`KnowledgeBase::effectiveness`] for these strategies (distinct recovery times).
    pub fn effectiveness_cost(&self, strategies: &[Strategy]) -> usize {
        strategies
            .iter()
            .map(|s| self.strategies[s.index()].cost())
            .sum()
    }

    /// Ids of the records in the given digest buckets.
    pub fn ids_in_buckets(&self, buckets: &[u16]) -> Vec<&str> {
        let wanted: HashSet<u16> = buckets.iter().copied().collect();
        self.by_id
            .keys()
            .map(|id| &**id)
            .filter(|id| wanted.contains(&digest::bucket_of(id)))
            .collect()
    }
}

enum Plan {
    Scan,
    EmptyOnly,
    Nothing,
    Prefix(Vec<SymbolId>),
}

#[cfg(test)]
mod tests;
