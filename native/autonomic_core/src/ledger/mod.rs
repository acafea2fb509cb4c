//! The tamper-evident, durable ledger: an append-only hash chain of receipts in segment files,
//! with an RFC 6962 Merkle tree over the receipt hashes (DESIGN.md section 3).
//!
//! * **Chain.** Receipt `seq` carries `prev_hash`, the hash of receipt `seq - 1` (32 zero bytes
//!   for the first), and its own `hash = SHA-256(canonical encoding)` ([`record`]).
//! * **Merkle tree.** Leaf `seq` is `SHA-256(0x00 || hash)`; any receipt is provable with
//!   `O(log n)` hashes and any two sizes of the ledger are provably consistent ([`merkle`]).
//! * **Files.** Frames in segment files under one directory ([`segment`]), guarded by an
//!   exclusive `flock` on `LOCK`, so two ledgers (in one OS process or two) never write to the
//!   same directory.
//! * **Durability.** [`Writer::append`] writes a batch with one `write` and returns only after
//!   `fdatasync`; records become visible to readers only then. An I/O error makes the writer
//!   refuse further appends ([`LedgerError::Failed`]): after a failed `fsync` the page cache can
//!   no longer be trusted, and reopening (which recovers from the files) is the only safe way on.
//! * **Recovery.** [`open`] truncates a torn last frame (a crash mid-append) and reports it; it
//!   refuses, naming file, offset and seq, anything a crash cannot produce, and loads records whose
//!   content was changed so that [`Ledger::verify`] names them.
//!
//! Concurrency: one [`Writer`] (owned by one thread, see [`commit`]) and any number of [`Ledger`]
//! handles for reading. Readers take a read lock for microseconds (sizes, roots, proofs) and read
//! records from the files with positional reads; the writer holds the write lock only to publish
//! what it already wrote and hashed.

mod chunked;
pub mod commit;
mod error;
pub mod id;
pub mod merkle;
pub mod record;
mod segment;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};

pub use error::{Corruption, LedgerError};
pub use id::RecordId;
pub use merkle::{Hash, ProofError, VerifyError};
pub use record::{Appended, Receipt, MAX_PAYLOAD, ZERO_HASH};
pub use segment::Tail;

use chunked::ChunkedVec;
use merkle::{Frontier, Tree};
use record::{Body, Fields, FRAME_HEADER};

/// Name of the lock file in a ledger directory.
pub const LOCK_FILE: &str = "LOCK";
/// Default size at which a new segment is started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Largest segment size accepted (record locations keep the offset in 40 bits).
const MAX_SEGMENT_BYTES: u64 = 1 << 40;
const OFFSET_BITS: u32 = 40;

/// Options of [`open`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// A new segment is started when the next frame would take the current one past this size
    /// (a segment always holds at least one record, so a record larger than this still fits).
    pub segment_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }
}

/// One append: what was done and what came of it, at most [`MAX_PAYLOAD`] bytes together. Both
/// live in one allocation (an entry crosses threads, from the caller to the commit thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    bytes: Vec<u8>,
    action_len: usize,
}

impl Entry {
    pub fn new(action: impl AsRef<[u8]>, result: impl AsRef<[u8]>) -> Self {
        let (action, result) = (action.as_ref(), result.as_ref());
        let mut bytes = Vec::with_capacity(action.len() + result.len());
        bytes.extend_from_slice(action);
        bytes.extend_from_slice(result);
        Entry {
            bytes,
            action_len: action.len(),
        }
    }

    pub fn action(&self) -> &[u8] {
        self.bytes.get(..self.action_len).unwrap_or_default()
    }

    pub fn result(&self) -> &[u8] {
        self.bytes.get(self.action_len..).unwrap_or_default()
    }

    pub fn payload_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn check(&self) -> Result<(), LedgerError> {
        let size = self.payload_len();
        if size > MAX_PAYLOAD {
            Err(LedgerError::PayloadTooLarge {
                size,
                max: MAX_PAYLOAD,
            })
        } else {
            Ok(())
        }
    }
}

/// What [`open`] found and repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    pub records: u64,
    pub segments: usize,
    /// The torn tail that was cut off, if any.
    pub truncated: Option<Truncation>,
    /// Temporary segment files of an interrupted segment creation, removed.
    pub removed_temp_files: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    pub segment: PathBuf,
    /// Where the torn frame started (the new end of the file).
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes: u64,
    /// The cut bytes were all zero (a file extension without its data).
    pub zero_fill: bool,
}

/// The result of [`Ledger::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Intact { records: u64 },
    Broken { seq: u64, problem: Problem },
}

/// Why a record fails verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Its segment's header changed.
    SegmentHeader,
    /// The file ends before it.
    Missing,
    /// Its frame header (length and checksum) changed.
    Frame,
    /// Its action and result lengths no longer add up.
    Layout,
    /// Its `seq` field is not its position.
    Seq,
    /// Its `prev_hash` is not the hash of the record before it.
    PrevHash,
    /// Its hash is not the hash of its fields.
    Hash,
    /// Its hash on disk differs from the one this ledger loaded or appended (and has served in
    /// roots and proofs): the file was rewritten while open.
    Memory,
}

impl Problem {
    pub fn name(self) -> &'static str {
        match self {
            Problem::SegmentHeader => "segment_header",
            Problem::Missing => "missing",
            Problem::Frame => "frame_header",
            Problem::Layout => "record_layout",
            Problem::Seq => "seq",
            Problem::PrevHash => "prev_hash",
            Problem::Hash => "hash",
            Problem::Memory => "changed_since_open",
        }
    }
}

/// An inclusion (audit) proof: `path` leads from receipt `seq`'s leaf to `root`, the root of the
/// ledger at `size` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub seq: u64,
    pub size: u64,
    pub root: Hash,
    pub path: Vec<Hash>,
}

/// A consistency proof: the ledger at `old_size` (root `old_root`) is a prefix of the ledger at
/// `size` (root `root`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub size: u64,
    pub old_root: Hash,
    pub root: Hash,
    pub path: Vec<Hash>,
}

/// Bounds of the batch-size classes counted by [`StatsSnapshot::batches`].
pub const BATCH_CLASSES: [(&str, u64); 5] = [
    ("1", 1),
    ("2-15", 15),
    ("16-127", 127),
    ("128-1023", 1023),
    ("1024+", u64::MAX),
];

#[derive(Debug, Default)]
struct Stats {
    appends: AtomicU64,
    append_errors: AtomicU64,
    fsyncs: AtomicU64,
    fsync_nanos: AtomicU64,
    bytes: AtomicU64,
    batches: [AtomicU64; BATCH_CLASSES.len()],
}

/// Counters of one ledger since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Records appended (durable and acknowledged).
    pub appends: u64,
    /// Appends that failed (I/O errors).
    pub append_errors: u64,
    pub fsyncs: u64,
    pub fsync_nanos: u64,
    /// Bytes written to segment files.
    pub bytes: u64,
    /// Written batches by size class ([`BATCH_CLASSES`]); one batch is one write and one fsync.
    pub batches: [u64; BATCH_CLASSES.len()],
}

#[derive(Debug, Clone)]
struct SegmentInfo {
    first_seq: u64,
    path: PathBuf,
    /// Bytes of published frames (header included).
    len: u64,
}

/// What readers see: only records that are durable.
#[derive(Debug)]
struct State {
    tree: Tree,
    root: Hash,
    /// Per seq: segment index (high bits) and byte offset of its frame.
    locs: ChunkedVec<u64>,
    /// Per seq: the receipt id. The writer makes ids strictly increasing, so `get` is a binary
    /// search; only a ledger whose files were changed can break the order (`ids_sorted` turns
    /// false, and `get` falls back to a scan).
    ids: ChunkedVec<RecordId>,
    ids_sorted: bool,
    segments: Vec<SegmentInfo>,
}

impl State {
    fn push_id(&mut self, id: RecordId) {
        let len = self.ids.len();
        if len > 0 && self.ids.get(len - 1).is_some_and(|last| last >= id) {
            self.ids_sorted = false;
        }
        self.ids.push(id);
    }
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    state: RwLock<State>,
    /// Only read by `by_action` (a dirty-scheduler call in the NIF), so a resize under this lock
    /// never delays the readers of `state`.
    actions: Mutex<HashMap<Vec<u8>, Vec<u64>>>,
    stats: Stats,
}

fn pack(segment: usize, offset: u64) -> u64 {
    ((segment as u64) << OFFSET_BITS) | offset
}

fn unpack(loc: u64) -> (usize, u64) {
    (
        (loc >> OFFSET_BITS) as usize,
        loc & ((1 << OFFSET_BITS) - 1),
    )
}

fn now() -> (i64, u64) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (
        i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
    )
}

fn lock_dir(dir: &Path) -> Result<File, LedgerError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| LedgerError::io("open", &path, e))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(file);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Err(LedgerError::Locked(dir.to_path_buf()))
    } else {
        Err(LedgerError::io("lock", &path, err))
    }
}

/// Opens (creating if needed) the ledger in `dir`: takes the directory lock, scans every segment,
/// truncates a torn tail, and rebuilds the in-memory indexes and Merkle tree. Returns the reading
/// handle, the single writer and what recovery did.
pub fn open(dir: &Path, options: Options) -> Result<(Ledger, Writer, OpenReport), LedgerError> {
    std::fs::create_dir_all(dir).map_err(|e| LedgerError::io("create", dir, e))?;
    let lock = lock_dir(dir)?;
    let segment_bytes = options
        .segment_bytes
        .clamp(segment::HEADER_LEN + 1, MAX_SEGMENT_BYTES);

    let (mut found, removed_temp_files) = segment::list(dir)?;
    if found.is_empty() {
        let (_, path) = segment::create(dir, 0)?;
        found.push((0, path));
    }

    let mut state = State {
        tree: Tree::default(),
        root: ZERO_HASH,
        locs: ChunkedVec::default(),
        ids: ChunkedVec::default(),
        ids_sorted: true,
        segments: Vec::new(),
    };
    let mut actions: HashMap<Vec<u8>, Vec<u64>> = HashMap::new();
    let mut frontier = Frontier::default();
    let mut tip = ZERO_HASH;
    let mut last_id = None;
    let mut truncated = None;
    let mut next_seq = 0u64;
    let last_index = found.len() - 1;

    for (index, (first_seq, path)) in found.iter().enumerate() {
        if *first_seq != next_seq {
            return Err(LedgerError::Corrupt {
                segment: path.clone(),
                offset: 0,
                seq: next_seq,
                what: Corruption::SegmentSequence,
            });
        }
        let mut seq = *first_seq;
        let scan = segment::scan(path, *first_seq, index == last_index, |offset, body| {
            let tree = &mut state.tree;
            frontier.push(merkle::leaf_hash(&body.hash), |level, hash| {
                tree.push_node(level, hash)
            });
            state.locs.push(pack(index, offset));
            state.push_id(body.id);
            match actions.get_mut(body.action) {
                Some(seqs) => seqs.push(seq),
                None => {
                    actions.insert(body.action.to_vec(), vec![seq]);
                }
            }
            tip = body.hash;
            last_id = Some(body.id);
            seq += 1;
        })?;
        if let Tail::Torn {
            offset,
            bytes,
            zero_fill,
        } = scan.tail
        {
            segment::truncate(path, offset)?;
            truncated = Some(Truncation {
                segment: path.clone(),
                offset,
                bytes,
                zero_fill,
            });
        }
        state.segments.push(SegmentInfo {
            first_seq: *first_seq,
            path: path.clone(),
            len: scan.valid_len,
        });
        next_seq = first_seq + scan.records;
    }
    state.root = frontier.root();

    let (seg_index, current) = match state.segments.last() {
        Some(s) => (state.segments.len() - 1, s.clone()),
        None => return Err(LedgerError::Internal("no segment after open")),
    };
    let file = OpenOptions::new()
        .write(true)
        .open(&current.path)
        .map_err(|e| LedgerError::io("open", &current.path, e))?;
    let seed = getrandom::u64().map_err(|_| LedgerError::Internal("no OS randomness"))?;

    let report = OpenReport {
        records: next_seq,
        segments: state.segments.len(),
        truncated,
        removed_temp_files,
    };
    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        state: RwLock::new(state),
        actions: Mutex::new(actions),
        stats: Stats::default(),
    });
    let writer = Writer {
        shared: Arc::clone(&shared),
        _lock: lock,
        segment_bytes,
        file,
        seg_index,
        seg_path: current.path.clone(),
        seg_len: current.len,
        seg_records: next_seq - current.first_seq,
        next_seq,
        tip,
        frontier,
        ids: id::IdGenerator::new(seed, last_id),
        buf: Vec::new(),
        failed: false,
    };
    Ok((Ledger { shared }, writer, report))
}

/// The only writer of an open ledger. Dropping it closes the files and releases the lock.
#[derive(Debug)]
pub struct Writer {
    shared: Arc<Shared>,
    _lock: File,
    segment_bytes: u64,
    file: File,
    seg_index: usize,
    seg_path: PathBuf,
    seg_len: u64,
    seg_records: u64,
    next_seq: u64,
    tip: Hash,
    frontier: Frontier,
    ids: id::IdGenerator,
    buf: Vec<u8>,
    failed: bool,
}

/// New segment lengths and segments, applied at publication.
#[derive(Default)]
struct Rolled {
    finished: Vec<(usize, u64)>,
    created: Vec<SegmentInfo>,
}

impl Writer {
    /// A reading handle on the same ledger.
    pub fn ledger(&self) -> Ledger {
        Ledger {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Whether an earlier I/O error stopped this writer.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Appends `entries` in order, writes them with one `write` (two around a segment change) and
    /// returns after one `fdatasync` made them durable; then publishes them to readers. All or
    /// nothing for the caller: on error none is acknowledged (some may be on disk and reappear on
    /// reopen, like any write whose acknowledgement was lost), and the writer refuses further
    /// appends.
    pub fn append(&mut self, entries: &[Entry]) -> Result<Vec<Appended>, LedgerError> {
        if self.failed {
            return Err(LedgerError::Failed);
        }
        for e in entries {
            e.check()?;
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let result = self.append_durably(entries);
        match &result {
            Ok(_) => {
                self.shared
                    .stats
                    .appends
                    .fetch_add(entries.len() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.failed = true;
                self.shared
                    .stats
                    .append_errors
                    .fetch_add(entries.len() as u64, Ordering::Relaxed);
            }
        }
        result
    }

    fn append_durably(&mut self, entries: &[Entry]) -> Result<Vec<Appended>, LedgerError> {
        let (timestamp, now_ms) = now();
        let mut appended = Vec::with_capacity(entries.len());
        let mut nodes: Vec<(usize, Hash)> = Vec::with_capacity(entries.len() * 2);
        let mut locs = Vec::with_capacity(entries.len());
        let mut rolled = Rolled::default();
        self.buf.clear();

        for (i, e) in entries.iter().enumerate() {
            let seq = self.next_seq + i as u64;
            let frame = record::frame_len(e.action().len(), e.result().len()) as u64;
            if self.seg_records > 0
                && self.seg_len + self.buf.len() as u64 + frame > self.segment_bytes
            {
                self.roll_over(seq, &mut rolled)?;
            }
            let offset = self.seg_len + self.buf.len() as u64;
            let id = self.ids.next(now_ms);
            let prev_hash = self.tip;
            let hash = record::encode_frame(
                &mut self.buf,
                &Fields {
                    seq,
                    id: &id,
                    prev_hash: &prev_hash,
                    timestamp,
                    action: e.action(),
                    result: e.result(),
                },
            );
            self.tip = hash;
            self.frontier
                .push(merkle::leaf_hash(&hash), |level, h| nodes.push((level, h)));
            locs.push(pack(self.seg_index, offset));
            self.seg_records += 1;
            appended.push(Appended {
                seq,
                id,
                timestamp,
                prev_hash,
                hash,
            });
        }
        self.write_buffer()?;
        self.sync()?;
        self.next_seq += entries.len() as u64;
        self.publish(entries, &appended, nodes, locs, rolled);
        Ok(appended)
    }

    /// Writes what is buffered, makes it durable and starts the segment of `first_seq`.
    fn roll_over(&mut self, first_seq: u64, rolled: &mut Rolled) -> Result<(), LedgerError> {
        self.write_buffer()?;
        self.sync()?;
        rolled.finished.push((self.seg_index, self.seg_len));
        let (file, path) = segment::create(&self.shared.dir, first_seq)?;
        self.file = file;
        self.seg_index += 1;
        self.seg_path = path.clone();
        self.seg_len = segment::HEADER_LEN;
        self.seg_records = 0;
        rolled.created.push(SegmentInfo {
            first_seq,
            path,
            len: segment::HEADER_LEN,
        });
        Ok(())
    }

    fn write_buffer(&mut self) -> Result<(), LedgerError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all_at(&self.buf, self.seg_len)
            .map_err(|e| LedgerError::io("write", &self.seg_path, e))?;
        self.seg_len += self.buf.len() as u64;
        self.shared
            .stats
            .bytes
            .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        self.buf.clear();
        Ok(())
    }

    fn sync(&mut self) -> Result<(), LedgerError> {
        let started = Instant::now();
        self.file
            .sync_data()
            .map_err(|e| LedgerError::io("fdatasync", &self.seg_path, e))?;
        let stats = &self.shared.stats;
        stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        stats.fsync_nanos.fetch_add(
            u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        Ok(())
    }

    fn publish(
        &mut self,
        entries: &[Entry],
        appended: &[Appended],
        nodes: Vec<(usize, Hash)>,
        locs: Vec<u64>,
        rolled: Rolled,
    ) {
        let root = self.frontier.root();
        {
            let mut st = self.shared.state.write();
            st.segments.extend(rolled.created);
            for (index, len) in rolled.finished {
                if let Some(s) = st.segments.get_mut(index) {
                    s.len = len;
                }
            }
            if let Some(s) = st.segments.get_mut(self.seg_index) {
                s.len = self.seg_len;
            }
            for (level, hash) in nodes {
                st.tree.push_node(level, hash);
            }
            for loc in locs {
                st.locs.push(loc);
            }
            for a in appended {
                st.push_id(a.id);
            }
            st.root = root;
        }
        {
            let mut actions = self.shared.actions.lock();
            for (e, a) in entries.iter().zip(appended) {
                match actions.get_mut(e.action()) {
                    Some(seqs) => seqs.push(a.seq),
                    None => {
                        actions.insert(e.action().to_vec(), vec![a.seq]);
                    }
                }
            }
        }
        let n = entries.len() as u64;
        if let Some(i) = BATCH_CLASSES.iter().position(|(_, max)| n <= *max) {
            if let Some(c) = self.shared.stats.batches.get(i) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A run of consecutive records of one segment, located for reading.
#[derive(Debug)]
struct Span {
    segment: usize,
    first_seq: u64,
    count: u64,
    start: u64,
    end: u64,
}

/// A reading handle on an open ledger (cheap to clone, usable from any thread).
#[derive(Debug, Clone)]
pub struct Ledger {
    shared: Arc<Shared>,
}

impl Ledger {
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Number of durable records.
    pub fn size(&self) -> u64 {
        self.shared.state.read().tree.size()
    }

    /// `(size, Merkle root at that size)`.
    pub fn root(&self) -> (u64, Hash) {
        let st = self.shared.state.read();
        (st.tree.size(), st.root)
    }

    /// Proof that receipt `seq` is in the ledger at its current size.
    pub fn inclusion_proof(&self, seq: u64) -> Result<InclusionProof, LedgerError> {
        let st = self.shared.state.read();
        let size = st.tree.size();
        let path = st.tree.inclusion_proof(seq, size)?;
        Ok(InclusionProof {
            seq,
            size,
            root: st.root,
            path,
        })
    }

    /// Proof that the ledger at `old_size` records is a prefix of the ledger now.
    pub fn consistency_proof(&self, old_size: u64) -> Result<ConsistencyProof, LedgerError> {
        let st = self.shared.state.read();
        let size = st.tree.size();
        let path = st.tree.consistency_proof(old_size, size)?;
        Ok(ConsistencyProof {
            old_size,
            size,
            old_root: st.tree.root_at(old_size)?,
            root: st.root,
            path,
        })
    }

    /// Counters since open.
    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.shared.stats;
        let mut batches = [0; BATCH_CLASSES.len()];
        for (out, c) in batches.iter_mut().zip(&s.batches) {
            *out = c.load(Ordering::Relaxed);
        }
        StatsSnapshot {
            appends: s.appends.load(Ordering::Relaxed),
            append_errors: s.append_errors.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            fsync_nanos: s.fsync_nanos.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            batches,
        }
    }

    /// The receipt with this id, read from disk.
    pub fn get(&self, id: &RecordId) -> Result<Option<Receipt>, LedgerError> {
        match self.find_id(id) {
            Some(seq) => self.read_seqs(&[seq]).map(|mut v| v.pop()),
            None => Ok(None),
        }
    }

    fn find_id(&self, id: &RecordId) -> Option<u64> {
        let st = self.shared.state.read();
        let n = st.ids.len();
        if st.ids_sorted {
            let (mut lo, mut hi) = (0usize, n);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match st.ids.get(mid)?.cmp(id) {
                    std::cmp::Ordering::Less => lo = mid + 1,
                    std::cmp::Ordering::Greater => hi = mid,
                    std::cmp::Ordering::Equal => return Some(mid as u64),
                }
            }
            return None;
        }
        // Only for a ledger whose files were changed: a scan, in chunks so that the read lock
        // is never held for long.
        drop(st);
        const CHUNK: usize = 1 << 16;
        let mut buf = Vec::with_capacity(CHUNK);
        let mut start = 0usize;
        while start < n {
            buf.clear();
            self.shared.state.read().ids.copy_to(start, &mut buf, CHUNK);
            if buf.is_empty() {
                break;
            }
            if let Some(i) = buf.iter().position(|x| x == id) {
                return Some((start + i) as u64);
            }
            start += buf.len();
        }
        None
    }

    /// Receipt `seq`.
    pub fn read(&self, seq: u64) -> Result<Receipt, LedgerError> {
        let size = self.size();
        if seq >= size {
            return Err(LedgerError::NoSuchRecord { seq, size });
        }
        self.read_seqs(&[seq])?
            .pop()
            .ok_or(LedgerError::NoSuchRecord { seq, size })
    }

    /// The last `n` receipts (all when there are fewer), oldest first.
    pub fn tail(&self, n: u64) -> Result<Vec<Receipt>, LedgerError> {
        let size = self.size();
        let first = size.saturating_sub(n);
        let seqs: Vec<u64> = (first..size).collect();
        self.read_seqs(&seqs)
    }

    /// Every receipt whose action is `action`, oldest first.
    pub fn by_action(&self, action: &[u8]) -> Result<Vec<Receipt>, LedgerError> {
        let seqs = self
            .shared
            .actions
            .lock()
            .get(action)
            .cloned()
            .unwrap_or_default();
        self.read_seqs(&seqs)
    }

    /// Locates ascending `seqs` (all below the size) as runs of consecutive records per segment.
    fn spans(&self, seqs: &[u64]) -> Result<(Vec<Span>, Vec<PathBuf>), LedgerError> {
        let st = self.shared.state.read();
        let size = st.tree.size();
        let mut spans: Vec<Span> = Vec::new();
        let loc = |seq: u64| {
            usize::try_from(seq)
                .ok()
                .and_then(|i| st.locs.get(i))
                .map(unpack)
                .ok_or(LedgerError::NoSuchRecord { seq, size })
        };
        for &seq in seqs {
            let (segment, start) = loc(seq)?;
            let end = match seq + 1 < size {
                true => match loc(seq + 1)? {
                    (s, off) if s == segment => off,
                    _ => st.segments.get(segment).map_or(start, |s| s.len),
                },
                false => st.segments.get(segment).map_or(start, |s| s.len),
            };
            match spans.last_mut() {
                Some(span)
                    if span.segment == segment
                        && span.first_seq + span.count == seq
                        && span.end == start =>
                {
                    span.count += 1;
                    span.end = end;
                }
                _ => spans.push(Span {
                    segment,
                    first_seq: seq,
                    count: 1,
                    start,
                    end,
                }),
            }
        }
        let paths = st.segments.iter().map(|s| s.path.clone()).collect();
        Ok((spans, paths))
    }

    fn read_seqs(&self, seqs: &[u64]) -> Result<Vec<Receipt>, LedgerError> {
        let (spans, paths) = self.spans(seqs)?;
        let mut out = Vec::with_capacity(seqs.len());
        let mut open: Option<(usize, File)> = None;
        let mut buf = Vec::new();
        for span in spans {
            let path = paths
                .get(span.segment)
                .ok_or(LedgerError::Internal("record in unknown segment"))?;
            let file = match open.take() {
                Some((index, file)) if index == span.segment => file,
                _ => File::open(path).map_err(|e| LedgerError::io("open", path, e))?,
            };
            let len = usize::try_from(span.end - span.start)
                .map_err(|_| LedgerError::Internal("span too large"))?;
            buf.resize(len, 0);
            file.read_exact_at(&mut buf, span.start)
                .map_err(|e| LedgerError::io("read", path, e))?;
            let mut pos = 0usize;
            for _ in 0..span.count {
                let unreadable = || LedgerError::Unreadable {
                    path: path.clone(),
                    offset: span.start + pos as u64,
                };
                let header: [u8; FRAME_HEADER] = buf
                    .get(pos..pos + FRAME_HEADER)
                    .and_then(|h| h.try_into().ok())
                    .ok_or_else(unreadable)?;
                let body_len = record::decode_header(&header).map_err(|_| unreadable())?;
                let body = buf
                    .get(pos + FRAME_HEADER..pos + FRAME_HEADER + body_len)
                    .and_then(record::decode_body)
                    .ok_or_else(unreadable)?;
                out.push(body.to_receipt());
                pos += FRAME_HEADER + body_len;
            }
            open = Some((span.segment, file));
        }
        Ok(out)
    }

    /// Re-reads every record from disk and checks, in order: its frame, that its `seq` is its
    /// position, that `prev_hash` is the previous record's hash (zero for the first), that its
    /// hash is the SHA-256 of its fields, and that it is the hash this ledger loaded or appended.
    /// Names the first record that fails. Takes the read lock only briefly, per chunk of leaves,
    /// so appends go on meanwhile (records appended after the call started are not checked).
    pub fn verify(&self) -> Result<Verification, LedgerError> {
        let (size, segments) = {
            let st = self.shared.state.read();
            (st.tree.size(), st.segments.clone())
        };
        let mut prev = ZERO_HASH;
        let mut leaves: Vec<Hash> = Vec::new();
        let mut leaves_from = 0u64;
        const CHUNK: usize = 4096;

        for (index, seg) in segments.iter().enumerate() {
            let end_seq = segments
                .get(index + 1)
                .map_or(size, |next| next.first_seq)
                .min(size);
            if seg.first_seq >= end_seq {
                continue;
            }
            let mut check = |seq: u64, body: &Body<'_>| -> Option<Problem> {
                if body.seq != seq {
                    return Some(Problem::Seq);
                }
                if body.prev_hash != prev {
                    return Some(Problem::PrevHash);
                }
                if !body.hash_matches() {
                    return Some(Problem::Hash);
                }
                let offset = seq - leaves_from;
                if offset >= leaves.len() as u64 {
                    leaves.clear();
                    leaves_from = seq;
                    self.shared
                        .state
                        .read()
                        .tree
                        .leaves(seq, CHUNK, &mut leaves);
                }
                let expected = leaves.get((seq - leaves_from) as usize);
                if expected != Some(&merkle::leaf_hash(&body.hash)) {
                    return Some(Problem::Memory);
                }
                prev = body.hash;
                None
            };
            if let Some((seq, problem)) =
                verify_segment(&seg.path, seg.first_seq, end_seq, seg.len, &mut check)?
            {
                return Ok(Verification::Broken { seq, problem });
            }
        }
        Ok(Verification::Intact { records: size })
    }
}

/// Reads records `[first_seq, end_seq)` of one segment (at most `len` bytes of it) and runs
/// `check` on each; returns the first failure.
fn verify_segment(
    path: &Path,
    first_seq: u64,
    end_seq: u64,
    len: u64,
    check: &mut impl FnMut(u64, &Body<'_>) -> Option<Problem>,
) -> Result<Option<(u64, Problem)>, LedgerError> {
    use std::io::{BufReader, ErrorKind, Read};
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Ok(Some((first_seq, Problem::Missing)))
        }
        Err(e) => return Err(LedgerError::io("open", path, e)),
    };
    let file_len = file
        .metadata()
        .map_err(|e| LedgerError::io("stat", path, e))?
        .len();
    let limit = file_len.min(len);
    let mut r = BufReader::with_capacity(1 << 20, file.take(limit));
    let read_err = |e| LedgerError::io("read", path, e);

    let mut head = [0u8; segment::HEADER_LEN as usize];
    if limit < segment::HEADER_LEN {
        return Ok(Some((first_seq, Problem::Missing)));
    }
    r.read_exact(&mut head).map_err(read_err)?;
    if head != segment::header(first_seq) {
        return Ok(Some((first_seq, Problem::SegmentHeader)));
    }
    let mut offset = segment::HEADER_LEN;
    let mut body = Vec::new();
    for seq in first_seq..end_seq {
        let remaining = limit - offset;
        if remaining < FRAME_HEADER as u64 {
            return Ok(Some((seq, Problem::Missing)));
        }
        let mut fh = [0u8; FRAME_HEADER];
        r.read_exact(&mut fh).map_err(read_err)?;
        let Ok(body_len) = record::decode_header(&fh) else {
            return Ok(Some((seq, Problem::Frame)));
        };
        if remaining - (FRAME_HEADER as u64) < body_len as u64 {
            return Ok(Some((seq, Problem::Missing)));
        }
        body.resize(body_len, 0);
        r.read_exact(&mut body).map_err(read_err)?;
        let Some(decoded) = record::decode_body(&body) else {
            return Ok(Some((seq, Problem::Layout)));
        };
        if let Some(problem) = check(seq, &decoded) {
            return Ok(Some((seq, problem)));
        }
        offset += (FRAME_HEADER + body_len) as u64;
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
