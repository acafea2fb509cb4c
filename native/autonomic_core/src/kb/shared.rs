//! A knowledge base shared by many threads (the BEAM's schedulers), with optional persistence.
//!
//! # Locking
//!
//! The [`KnowledgeBase`] is kept with the left-right scheme of [`super::leftright`]: two copies,
//! readers on the active one, writers on the other one, then a swap. So:
//!
//! - a query never waits for a writer that is waiting for a long reader, nor for a stream of
//!   writes: at worst it waits for one batch of operations to be applied to the copy it is
//!   about to read (one record, or [`MERGE_CHUNK`] records of a merge);
//! - a writer waits only for the reads that started before the previous swap; a writer on a
//!   normal scheduler waits at most [`INSERT_WAIT`] ([`SharedKb::try_insert`]) and otherwise
//!   reports `Busy`, so that the caller retries on a dirty scheduler;
//! - parsing, validation and serialization happen outside the locks; disk I/O never happens
//!   under them.
//!
//! The price is memory (two copies of the records and the index) and applying each write twice.
//!
//! # Persistence
//!
//! With a directory ([`SharedKb::open`]), every added record's line also goes into a pending
//! buffer (under its own short mutex). [`SharedKb::flush`] appends the buffer to the log and
//! fdatasyncs it, or, once the log holds [`SharedKb::compact_after`] lines, writes a new
//! snapshot and empties the log. The owner process calls it every flush interval: a `kill -9`
//! loses at most the records added since the last flush. Disk I/O runs under a third mutex
//! (`store`), never under the knowledge base's locks. Lock order: `store`, then the knowledge
//! base, then `pending`.
//!
//! If an append fails (disk full), the batch stays pending and the next flush retries. The buffer
//! is bounded: past [`SharedKb::compact_after`] lines it stops growing and the next flush writes
//! a full snapshot instead, which covers everything.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLockReadGuard};
use serde::Serialize;

use super::json;
use super::leftright::{Absorb, LeftRight};
use super::store::{self, Store, StoreError};
use super::{Config, Digest, Evictions, Failure, Inserted, KbError, KnowledgeBase};

pub use super::leftright::Busy;

/// Records merged per write-lock acquisition.
pub const MERGE_CHUNK: usize = 128;
/// Longest a normal-scheduler insert waits for the lock before giving up.
pub const INSERT_WAIT: Duration = Duration::from_micros(100);
/// Fewest log lines that trigger a compaction (the threshold is at least the history limit).
pub const MIN_COMPACT_AFTER: u64 = 1024;

#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: u64,
    /// Lines were dropped (buffer full) or a snapshot failed: the next flush must write a
    /// snapshot.
    needs_snapshot: bool,
}

/// Query counters, for metrics.
#[derive(Debug, Default)]
pub struct Counters {
    pub similar: AtomicU64,
    pub recommend: AtomicU64,
    pub success_rate: AtomicU64,
    pub effectiveness: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A write, applied to both copies (so it must be deterministic: it carries its clock).
#[derive(Debug)]
enum Op {
    Insert(Arc<Failure>, i64),
    Prune(i64),
    SetEpoch(i64),
    Clear(i64),
}

#[derive(Debug)]
enum Out {
    Inserted(Result<Inserted, KbError>),
    Count(usize),
    Epoch(i64),
}

impl Absorb<KnowledgeBase> for Op {
    type Output = Out;
    fn absorb(&self, kb: &mut KnowledgeBase) -> Out {
        match self {
            Op::Insert(f, now) => Out::Inserted(kb.insert(f, *now)),
            Op::Prune(now) => Out::Count(kb.prune(*now)),
            Op::SetEpoch(e) => Out::Count(kb.set_epoch(*e)),
            Op::Clear(now) => Out::Epoch(kb.clear(*now)),
        }
    }
}

fn count(out: Vec<Out>) -> usize {
    match out.first() {
        Some(Out::Count(n)) => *n,
        _ => 0,
    }
}

/// An accepted record's line, for the caller to send to peers.
pub type Line = Vec<u8>;

/// Outcome of a merge or import.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MergeReport {
    /// Records offered.
    pub offered: usize,
    /// Records added.
    pub added: usize,
    /// Already present, identical.
    pub duplicates: usize,
    /// Not kept: too old (retention, epoch, full history) or conflicting with a record of the
    /// same id.
    pub rejected: usize,
    /// Lines of the added records (when asked for).
    #[serde(skip)]
    pub lines: Vec<u8>,
}

/// What loading found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    pub snapshot_records: usize,
    pub log_records: usize,
    /// Records in the knowledge base after loading (bounds applied).
    pub loaded: usize,
    pub corrupt_lines: usize,
    pub truncated_bytes: u64,
    /// An unreadable snapshot moved aside, and why.
    pub quarantined: Option<(PathBuf, String)>,
}

/// Outcome of a flush.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Lines appended to the log.
    pub lines: u64,
    /// A snapshot was written (and the log emptied).
    pub snapshot: bool,
}

/// A snapshot of the figures of a knowledge base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    pub records: usize,
    pub max_records: usize,
    pub retention_ms: u64,
    pub symptoms: usize,
    pub posting_entries: usize,
    pub epoch: i64,
    pub evictions: Evictions,
    pub persistent: bool,
    pub pending_lines: u64,
    pub log_lines: u64,
    pub queries_similar: u64,
    pub queries_recommend: u64,
    pub queries_success_rate: u64,
    pub queries_effectiveness: u64,
    /// Reads that waited for a writer, their total and longest wait.
    pub read_waits: super::leftright::ReadWaits,
}

/// A thread-safe knowledge base, persistent when opened on a directory.
#[derive(Debug)]
pub struct SharedKb {
    kb: LeftRight<KnowledgeBase, Op>,
    pending: Mutex<Pending>,
    store: Mutex<Option<Store>>,
    persistent: bool,
    compact_after: u64,
    /// Lines in the log, mirrored out of `store` so that `info` never waits for disk I/O.
    log_lines: AtomicU64,
    pub counters: Counters,
}

impl SharedKb {
    /// An in-memory knowledge base.
    pub fn new(config: Config) -> Result<SharedKb, KbError> {
        Ok(Self::with(KnowledgeBase::new(config)?, None))
    }

    fn with(kb: KnowledgeBase, store: Option<Store>) -> SharedKb {
        let compact_after = (kb.config().max_records as u64).max(MIN_COMPACT_AFTER);
        let log_lines = store.as_ref().map_or(0, Store::log_lines);
        SharedKb {
            log_lines: AtomicU64::new(log_lines),
            kb: LeftRight::new(kb),
            pending: Mutex::new(Pending::default()),
            persistent: store.is_some(),
            store: Mutex::new(store),
            compact_after,
            counters: Counters::default(),
        }
    }

    /// Opens the knowledge base persisted in `dir` (created if missing), applying `config` and
    /// retention at `now_ms` to what is loaded.
    pub fn open(
        dir: &Path,
        config: Config,
        now_ms: i64,
    ) -> Result<(SharedKb, LoadReport), KbError> {
        let mut kb = KnowledgeBase::new(config)?;
        let (store, loaded) = Store::open(dir)?;
        kb.set_epoch(loaded.epoch);
        let report = LoadReport {
            snapshot_records: loaded.snapshot_records.len(),
            log_records: loaded.log_records.len(),
            loaded: 0,
            corrupt_lines: loaded.corrupt_lines,
            truncated_bytes: loaded.truncated_bytes,
            quarantined: loaded.quarantined,
        };
        for f in loaded
            .snapshot_records
            .iter()
            .chain(loaded.log_records.iter())
        {
            // Duplicates (log lines also in the snapshot) and records outside the bounds are
            // expected here and skipped.
            let _ = kb.insert(f, now_ms);
        }
        let loaded = kb.len();
        Ok((Self::with(kb, Some(store)), LoadReport { loaded, ..report }))
    }

    /// Log lines after which a flush writes a snapshot instead of appending.
    pub fn compact_after(&self) -> u64 {
        self.compact_after
    }

    /// The directory, for a persistent knowledge base.
    pub fn dir(&self) -> Option<PathBuf> {
        self.store.lock().as_ref().map(|s| s.dir().to_path_buf())
    }

    /// Read access to the current state (see the module documentation for what it may wait
    /// for). A long read delays the writes that follow it, never other reads.
    pub fn read(&self) -> RwLockReadGuard<'_, KnowledgeBase> {
        self.kb.read()
    }

    fn log_line(&self, pending: &mut Pending, line: &[u8]) {
        if pending.needs_snapshot {
            return;
        }
        if pending.lines >= self.compact_after {
            pending.bytes = Vec::new();
            pending.lines = 0;
            pending.needs_snapshot = true;
            return;
        }
        pending.bytes.extend_from_slice(line);
        pending.lines += 1;
    }

    /// Logs the line of an added record (persistent bases only) and returns it.
    fn added(&self, f: &Failure) -> Line {
        let mut line = Vec::with_capacity(256);
        json::push_failure_line(&mut line, f);
        if self.persistent {
            self.log_line(&mut self.pending.lock(), &line);
        }
        line
    }

    fn inserted(&self, f: &Failure, out: Vec<Out>) -> Result<(Inserted, Option<Line>), KbError> {
        match out.into_iter().next() {
            Some(Out::Inserted(Ok(Inserted::Added { evicted }))) => {
                Ok((Inserted::Added { evicted }, Some(self.added(f))))
            }
            Some(Out::Inserted(Ok(Inserted::Duplicate))) => Ok((Inserted::Duplicate, None)),
            Some(Out::Inserted(Err(e))) => Err(e),
            // An insert operation always gives an insert outcome.
            _ => Err(KbError::Internal("an insert gave no outcome")),
        }
    }

    /// Inserts a record, waiting at most [`INSERT_WAIT`] for the write to start. Returns the
    /// record's line when it was added.
    pub fn try_insert(
        &self,
        f: &Failure,
        now_ms: i64,
    ) -> Result<Result<(Inserted, Option<Line>), KbError>, Busy> {
        let op = Op::Insert(Arc::new(f.clone()), now_ms);
        let out = self.kb.try_apply(vec![op], INSERT_WAIT)?;
        Ok(self.inserted(f, out))
    }

    /// Inserts a record, waiting as long as it takes (dirty schedulers only).
    pub fn insert(&self, f: &Failure, now_ms: i64) -> Result<(Inserted, Option<Line>), KbError> {
        let out = self.kb.apply(vec![Op::Insert(Arc::new(f.clone()), now_ms)]);
        self.inserted(f, out)
    }

    /// Merges records (from a peer, the log, a file) in batches of [`MERGE_CHUNK`].
    pub fn merge(&self, records: &[Failure], now_ms: i64, want_lines: bool) -> MergeReport {
        let mut report = MergeReport {
            offered: records.len(),
            ..MergeReport::default()
        };
        for chunk in records.chunks(MERGE_CHUNK) {
            let ops = chunk
                .iter()
                .map(|f| Op::Insert(Arc::new(f.clone()), now_ms))
                .collect();
            for (f, out) in chunk.iter().zip(self.kb.apply(ops)) {
                match out {
                    Out::Inserted(Ok(Inserted::Duplicate)) => report.duplicates += 1,
                    Out::Inserted(Ok(Inserted::Added { .. })) => {
                        report.added += 1;
                        let line = self.added(f);
                        if want_lines {
                            report.lines.extend_from_slice(&line);
                        }
                    }
                    _ => report.rejected += 1,
                }
            }
        }
        report
    }

    /// Decodes lines (from a peer) and merges them; damaged lines count as rejected.
    pub fn merge_lines(&self, bytes: &[u8], now_ms: i64) -> MergeReport {
        let lines = json::decode_lines(bytes);
        let torn = usize::from(lines.clean_len < bytes.len());
        let mut report = self.merge(&lines.records, now_ms, false);
        report.offered += lines.corrupt + torn;
        report.rejected += lines.corrupt + torn;
        report
    }

    /// Lines of the records with these ids (those present).
    pub fn lines_for<S: AsRef<str>>(&self, ids: &[S]) -> Vec<u8> {
        let kb = self.read();
        let mut out = Vec::new();
        for id in ids {
            if let Some(f) = kb.get(id.as_ref()) {
                json::push_ref_line(&mut out, &f);
            }
        }
        out
    }

    /// Anti-entropy, the answer to a peer's digest: the buckets that differ from ours, and our
    /// ids in them.
    pub fn sync_diff(&self, peer: &Digest) -> (Vec<u16>, Vec<String>) {
        let kb = self.read();
        let buckets = kb.digest().diff(peer);
        let ids = kb
            .ids_in_buckets(&buckets)
            .into_iter()
            .map(str::to_string)
            .collect();
        (buckets, ids)
    }

    /// Anti-entropy, given the buckets that differ and the peer's ids in them: the lines of our
    /// records in those buckets that the peer lacks, and the peer's ids that we lack.
    pub fn sync_missing<S: AsRef<str>>(
        &self,
        buckets: &[u16],
        peer_ids: &[S],
    ) -> (Vec<u8>, Vec<String>) {
        let peer: HashSet<&str> = peer_ids.iter().map(AsRef::as_ref).collect();
        let (give, want) = {
            let kb = self.read();
            let ours = kb.ids_in_buckets(buckets);
            let mine: HashSet<&str> = ours.iter().copied().collect();
            let want: Vec<String> = peer
                .iter()
                .filter(|id| !mine.contains(*id))
                .map(|id| id.to_string())
                .collect();
            let give: Vec<String> = ours
                .into_iter()
                .filter(|id| !peer.contains(id))
                .map(str::to_string)
                .collect();
            (give, want)
        };
        (self.lines_for(&give), want)
    }

    /// Applies retention; returns the records removed. Not logged: loading applies retention.
    pub fn prune(&self, now_ms: i64) -> usize {
        count(self.kb.apply(vec![Op::Prune(now_ms)]))
    }

    /// Makes what was added durable: appends the pending lines to the log and fdatasyncs, or
    /// writes a snapshot when the log is long enough. A no-op in memory.
    pub fn flush(&self) -> Result<FlushReport, KbError> {
        let mut store = self.store.lock();
        let Some(st) = store.as_mut() else {
            return Ok(FlushReport::default());
        };
        let (bytes, lines, needs_snapshot) = {
            let mut p = self.pending.lock();
            let taken = std::mem::take(&mut *p);
            (taken.bytes, taken.lines, taken.needs_snapshot)
        };
        if needs_snapshot || st.log_lines() + lines >= self.compact_after {
            self.snapshot_locked(st)?;
            return Ok(FlushReport {
                lines: 0,
                snapshot: true,
            });
        }
        if lines == 0 {
            return Ok(FlushReport::default());
        }
        if let Err(e) = st.append(&bytes, lines) {
            // Put the batch back in front of what arrived meanwhile, for the next flush.
            let mut p = self.pending.lock();
            let mut restored = bytes;
            restored.extend_from_slice(&p.bytes);
            p.bytes = restored;
            p.lines += lines;
            return Err(e.into());
        }
        self.log_lines.store(st.log_lines(), Ordering::Relaxed);
        Ok(FlushReport {
            lines,
            snapshot: false,
        })
    }

    /// Writes a snapshot of the current content. The pending lines were taken by the caller (or
    /// are superseded: every pending record is in the knowledge base, or was evicted from it).
    fn snapshot_locked(&self, st: &mut Store) -> Result<(), StoreError> {
        {
            let mut p = self.pending.lock();
            *p = Pending::default();
        }
        let (bytes, _) = json::encode_file(&self.read(), json::FileKind::Snapshot);
        st.write_snapshot(&bytes).inspect_err(|_| {
            self.pending.lock().needs_snapshot = true;
        })?;
        self.log_lines.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Writes a snapshot now (a no-op in memory).
    pub fn compact(&self) -> Result<(), KbError> {
        let mut store = self.store.lock();
        match store.as_mut() {
            Some(st) => Ok(self.snapshot_locked(st)?),
            None => Ok(()),
        }
    }

    /// Applies a change that the log cannot express (a new epoch), then writes a snapshot.
    fn rewrite(&self, op: Op) -> Result<Out, KbError> {
        let mut store = self.store.lock();
        let out = self.kb.apply(vec![op]).pop();
        if let Some(st) = store.as_mut() {
            self.snapshot_locked(st)?;
        }
        Ok(out.unwrap_or(Out::Count(0)))
    }

    /// Clears (see [`KnowledgeBase::clear`]) and persists the new epoch; returns it.
    pub fn clear(&self, now_ms: i64) -> Result<i64, KbError> {
        match self.rewrite(Op::Clear(now_ms))? {
            Out::Epoch(e) => Ok(e),
            _ => Ok(self.read().epoch()),
        }
    }

    /// Adopts a peer's higher epoch (see [`KnowledgeBase::set_epoch`]); returns the records
    /// removed. Does nothing, and writes nothing, when the epoch is not higher.
    pub fn adopt_epoch(&self, epoch: i64) -> Result<usize, KbError> {
        if epoch <= self.read().epoch() {
            return Ok(0);
        }
        Ok(count(vec![self.rewrite(Op::SetEpoch(epoch))?]))
    }

    /// Writes the knowledge base to `path` (file format, atomically); returns the records written.
    pub fn export(&self, path: &Path) -> Result<usize, KbError> {
        let (bytes, n) = json::encode_file(&self.read(), json::FileKind::Export);
        store::write_atomically(path, &bytes)?;
        Ok(n)
    }

    /// Reads `path` and merges its records. The file is parsed and validated as a whole first:
    /// on any error nothing changes. The file's epoch is ignored (an import adds knowledge).
    pub fn import(
        &self,
        path: &Path,
        now_ms: i64,
        want_lines: bool,
    ) -> Result<MergeReport, KbError> {
        let bytes = std::fs::read(path).map_err(|source| StoreError {
            op: "read",
            path: path.to_path_buf(),
            source,
        })?;
        let contents = json::decode_file(&bytes)?;
        Ok(self.merge(&contents.records, now_ms, want_lines))
    }

    pub fn info(&self) -> Info {
        let pending_lines = self.pending.lock().lines;
        let log_lines = self.log_lines.load(Ordering::Relaxed);
        let kb = self.read();
        let c = &self.counters;
        Info {
            records: kb.len(),
            max_records: kb.config().max_records,
            retention_ms: kb.config().retention_ms,
            symptoms: kb.symptom_count(),
            posting_entries: kb.posting_entries(),
            epoch: kb.epoch(),
            evictions: kb.evictions(),
            persistent: self.persistent,
            pending_lines,
            log_lines,
            queries_similar: c.similar.load(Ordering::Relaxed),
            queries_recommend: c.recommend.load(Ordering::Relaxed),
            queries_success_rate: c.success_rate.load(Ordering::Relaxed),
            queries_effectiveness: c.effectiveness.load(Ordering::Relaxed),
            read_waits: self.kb.read_waits(),
        }
    }
}
