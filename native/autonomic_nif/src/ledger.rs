//! NIFs of the hash-chain ledger (`autonomic_core::ledger`): handles, a registry of open ledgers,
//! argument checks and the mapping of results to terms. The logic (files, hashing, recovery,
//! proofs, the commit thread) is all in `autonomic_core`.
//!
//! * A handle is a resource; a ledger is also reachable by the name it was opened under. The
//!   registry maps directories and names to open ledgers, so a second open of a directory or a
//!   name already in use is refused (the core's `flock` refuses another OS process as well).
//! * The process that opens a ledger owns it: the ledger closes when that process exits (a
//!   resource monitor), or on `ledger_close/1`.
//! * Appends never touch a file on the caller's scheduler: `ledger_append/4` copies the payload,
//!   queues it for the ledger's commit thread and returns `ok`; the caller gets a message
//!   (`OwnedEnv::send_and_clear`, envs from a pool) once the fsync covering its record is done.
//!   Opening (recovery), closing (draining), verify and every read of records from disk run on
//!   dirty I/O schedulers; sizes, roots and proofs take microseconds on normal schedulers.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use autonomic_core::ledger::commit::{Committer, FsyncPolicy, Refused, Replier};
use autonomic_core::ledger::{
    self, Appended, ConsistencyProof, InclusionProof, Ledger, LedgerError, OpenReport, ProofError,
    Receipt, RecordId, StatsSnapshot, Verification, BATCH_CLASSES, MAX_PAYLOAD,
};
use parking_lot::{Condvar, Mutex, RwLock};
use rustler::env::SavedTerm;
use rustler::{
    Atom, Binary, Encoder, Env, LocalPid, Monitor, NewBinary, OwnedEnv, Resource, ResourceArc, Term,
};

mod atoms {
    rustler::atoms! {
        ok,
        error,
        none,
        always,
        group_commit,
        closed,
        failed,
        overloaded,
        locked,
        corrupt,
        already_open,
        name_in_use,
        unknown_ledger,
        not_binary,
        payload_too_large,
        invalid_id,
        invalid_count,
        invalid_seq,
        invalid_size,
        invalid_name,
        invalid_dir,
        invalid_fsync,
        no_such_record,
        bad_old_size,
        bad_size,
        unreadable,
        internal,
        io_error,
        chain_broken,
        not_found,
        action,
        result,
        seq,
        id,
        timestamp,
        prev_hash,
        hash,
        size,
        root,
        path,
        old_size,
        old_root,
        records,
        segments,
        truncated,
        segment,
        offset,
        bytes,
        zero_fill,
        removed_temp_files,
        what,
        name,
        dir,
        fsync,
        appends,
        append_errors,
        fsyncs,
        fsync_seconds,
        bytes_written,
        batches,
    }
}

/// Longest `{group_commit, Ms}` interval accepted.
const MAX_INTERVAL_MS: u64 = 60_000;
/// How long an open waits for a ledger of the same directory or name that is still closing
/// (draining its queue) after its owner exited.
const CLOSING_WAIT: Duration = Duration::from_secs(10);

/// One queued append: who waits, and the reference it waits for, kept in an env of its own so
/// the commit thread can send it back (the same env then carries the reply).
struct Tag {
    pid: LocalPid,
    env: OwnedEnv,
    reference: SavedTerm,
}

/// Length of the binary of a successful append's reply: id text, prev_hash, hash.
const PACKED_LEN: usize = RecordId::TEXT_LEN + 32 + 32;

/// Process-independent envs for reply messages, reused: allocating one per append (it embeds a
/// whole phony process) costs more than the rest of an append. Sending clears an env; the thread
/// that sends the replies hands the cleared envs of a batch back here at once.
#[derive(Default)]
struct EnvPool(Mutex<Vec<OwnedEnv>>);

/// Envs kept for reuse, at most (each is about a kilobyte).
const ENV_POOL_MAX: usize = 4096;

impl EnvPool {
    fn take(&self) -> OwnedEnv {
        self.0.lock().pop().unwrap_or_default()
    }

    fn give_back(&self, envs: &mut Vec<OwnedEnv>) {
        let mut pool = self.0.lock();
        let room = ENV_POOL_MAX.saturating_sub(pool.len());
        pool.extend(envs.drain(..).take(room));
        envs.clear();
    }
}

struct Open {
    committer: Committer<Tag>,
    ledger: Ledger,
    policy: FsyncPolicy,
    monitor: Option<Monitor>,
}

/// An open ledger as the Erlang side holds it.
pub struct LedgerResource {
    name: Atom,
    dir: PathBuf,
    /// `None` once closed (the commit thread may still be draining).
    open: RwLock<Option<Open>>,
    envs: Arc<EnvPool>,
}

#[rustler::resource_impl]
impl Resource for LedgerResource {
    const IMPLEMENTS_DOWN: bool = true;

    /// The owner exited: stop taking appends; the commit thread finishes those queued, closes the
    /// files and leaves the registry. Never blocks the scheduler that runs this callback.
    fn down<'a>(&'a self, _env: Env<'a>, _pid: LocalPid, _monitor: Monitor) {
        drop(self.open.write().take());
    }
}

impl LedgerResource {
    fn ledger(&self) -> Option<Ledger> {
        self.open.read().as_ref().map(|o| o.ledger.clone())
    }
}

/// Where a directory's ledger stands. `resource` is `None` while it is being opened.
struct Slot {
    name: Atom,
    resource: Option<ResourceArc<LedgerResource>>,
}

#[derive(Default)]
struct Registry {
    by_dir: HashMap<PathBuf, Slot>,
    by_name: HashMap<Atom, PathBuf>,
}

enum SlotState {
    Opening,
    Open,
    Closing,
}

impl Registry {
    fn state(&self, dir: &Path) -> Option<SlotState> {
        let slot = self.by_dir.get(dir)?;
        Some(match &slot.resource {
            None => SlotState::Opening,
            Some(r) if r.open.read().is_some() => SlotState::Open,
            Some(_) => SlotState::Closing,
        })
    }

    fn release(&mut self, name: Atom, dir: &Path) {
        self.by_dir.remove(dir);
        if self.by_name.get(&name).is_some_and(|d| d == dir) {
            self.by_name.remove(&name);
        }
    }
}

static REGISTRY: LazyLock<(Mutex<Registry>, Condvar)> =
    LazyLock::new(|| (Mutex::new(Registry::default()), Condvar::new()));

fn lookup(name: Atom) -> Option<ResourceArc<LedgerResource>> {
    let reg = REGISTRY.0.lock();
    let dir = reg.by_name.get(&name)?;
    reg.by_dir.get(dir)?.resource.clone()
}

/// Answers appends from the commit thread and clears the registry when it ends.
struct NifReplier {
    name: Atom,
    dir: PathBuf,
    envs: Arc<EnvPool>,
    used: Vec<OwnedEnv>,
}

impl Replier<Tag> for NifReplier {
    /// Sends `{Ref, {ok, Seq, Timestamp, <<Id:36/binary, PrevHash:32/binary, Hash:32/binary>>}}`
    /// or `{Ref, {error, Reason}}`; the caller adds the action and result it holds to make the
    /// receipt.
    fn reply(&mut self, tag: Tag, outcome: Result<&Appended, &LedgerError>) {
        let Tag {
            pid,
            mut env,
            reference,
        } = tag;
        // A dead caller cannot receive: the record stays appended, like a call whose caller died.
        let _ = env.send_and_clear(&pid, |e| {
            let reply = match outcome {
                Ok(a) => {
                    // One binary for the id and both hashes: one allocation instead of three
                    // (the caller splits it into sub-binaries).
                    let mut packed = [0u8; PACKED_LEN];
                    let (id, hashes) = packed.split_at_mut(RecordId::TEXT_LEN);
                    let (prev, hash) = hashes.split_at_mut(32);
                    id.copy_from_slice(&a.id.to_text());
                    prev.copy_from_slice(&a.prev_hash);
                    hash.copy_from_slice(&a.hash);
                    (atoms::ok(), a.seq, a.timestamp, bin(e, &packed)).encode(e)
                }
                Err(err) => (atoms::error(), encode_error(e, err)).encode(e),
            };
            (reference.load(e), reply)
        });
        self.used.push(env);
    }

    fn batch_done(&mut self) {
        self.envs.give_back(&mut self.used);
    }

    fn closed(&mut self) {
        let (lock, cv) = &*REGISTRY;
        lock.lock().release(self.name, &self.dir);
        cv.notify_all();
    }
}

// --- encoding ------------------------------------------------------------------------------

fn bin<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    let mut b = NewBinary::new(env, bytes.len());
    b.as_mut_slice().copy_from_slice(bytes);
    b.into()
}

fn map<'a>(env: Env<'a>, pairs: &[(Atom, Term<'a>)]) -> Term<'a> {
    let keys: Vec<Term> = pairs.iter().map(|(k, _)| k.encode(env)).collect();
    let values: Vec<Term> = pairs.iter().map(|(_, v)| *v).collect();
    // Only fails on duplicate keys, which the callers' literal key lists do not have.
    Term::map_from_term_arrays(env, &keys, &values).unwrap_or_else(|_| atoms::error().encode(env))
}

fn path_bin<'a>(env: Env<'a>, p: &Path) -> Term<'a> {
    bin(env, p.as_os_str().as_bytes())
}

fn encode_receipt<'a>(env: Env<'a>, r: &Receipt) -> Term<'a> {
    map(
        env,
        &[
            (atoms::seq(), r.seq.encode(env)),
            (atoms::id(), bin(env, &r.id.to_text())),
            (atoms::timestamp(), r.timestamp.encode(env)),
            (atoms::action(), bin(env, &r.action)),
            (atoms::result(), bin(env, &r.result)),
            (atoms::prev_hash(), bin(env, &r.prev_hash)),
            (atoms::hash(), bin(env, &r.hash)),
        ],
    )
}

fn encode_receipts<'a>(env: Env<'a>, rs: &[Receipt]) -> Term<'a> {
    let list: Vec<Term> = rs.iter().map(|r| encode_receipt(env, r)).collect();
    (atoms::ok(), list).encode(env)
}

fn encode_path<'a>(env: Env<'a>, path: &[ledger::Hash]) -> Term<'a> {
    let list: Vec<Term> = path.iter().map(|h| bin(env, h)).collect();
    list.encode(env)
}

/// The POSIX error name Erlang's `file` module would use, for the common cases.
fn posix_name(e: &std::io::Error) -> Option<&'static str> {
    Some(match e.raw_os_error()? {
        libc::EACCES => "eacces",
        libc::EAGAIN => "eagain",
        libc::EBADF => "ebadf",
        libc::EBUSY => "ebusy",
        libc::EDQUOT => "edquot",
        libc::EEXIST => "eexist",
        libc::EFBIG => "efbig",
        libc::EINVAL => "einval",
        libc::EIO => "eio",
        libc::EISDIR => "eisdir",
        libc::ELOOP => "eloop",
        libc::EMFILE => "emfile",
        libc::ENAMETOOLONG => "enametoolong",
        libc::ENFILE => "enfile",
        libc::ENOENT => "enoent",
        libc::ENOSPC => "enospc",
        libc::ENOTDIR => "enotdir",
        libc::EPERM => "eperm",
        libc::EROFS => "erofs",
        _ => return None,
    })
}

fn encode_error<'a>(env: Env<'a>, e: &LedgerError) -> Term<'a> {
    let atom = |s: &str| {
        Atom::from_str(env, s).map_or_else(|_| atoms::error().encode(env), |a| a.encode(env))
    };
    match e {
        LedgerError::Io { op, path, source } => {
            let reason = match posix_name(source) {
                Some(name) => atom(name),
                None => bin(env, source.to_string().as_bytes()),
            };
            (
                atoms::io_error(),
                atom(&op.replace(' ', "_")),
                path_bin(env, path),
                reason,
            )
                .encode(env)
        }
        LedgerError::Locked(dir) => (atoms::locked(), path_bin(env, dir)).encode(env),
        LedgerError::Corrupt {
            segment,
            offset,
            seq,
            what,
        } => (
            atoms::corrupt(),
            map(
                env,
                &[
                    (atoms::segment(), path_bin(env, segment)),
                    (atoms::offset(), offset.encode(env)),
                    (atoms::seq(), seq.encode(env)),
                    (atoms::what(), atom(what.name())),
                ],
            ),
        )
            .encode(env),
        LedgerError::PayloadTooLarge { size, max } => {
            (atoms::payload_too_large(), *size, *max).encode(env)
        }
        LedgerError::Failed => atoms::failed().encode(env),
        LedgerError::Closed => atoms::closed().encode(env),
        LedgerError::Overloaded { .. } => atoms::overloaded().encode(env),
        LedgerError::NoSuchRecord { seq, size } => {
            (atoms::no_such_record(), *seq, *size).encode(env)
        }
        LedgerError::Proof(ProofError::IndexOutOfRange { index, size }) => {
            (atoms::no_such_record(), *index, *size).encode(env)
        }
        LedgerError::Proof(ProofError::BadOldSize { old, new }) => {
            (atoms::bad_old_size(), *old, *new).encode(env)
        }
        LedgerError::Proof(ProofError::SizeOutOfRange { size, available }) => {
            (atoms::bad_size(), *size, *available).encode(env)
        }
        LedgerError::Unreadable { path, offset } => {
            (atoms::unreadable(), path_bin(env, path), *offset).encode(env)
        }
        other @ (LedgerError::Proof(ProofError::MissingNode { .. }) | LedgerError::Internal(_)) => {
            (atoms::internal(), bin(env, other.to_string().as_bytes())).encode(env)
        }
    }
}

fn err<'a>(env: Env<'a>, reason: impl Encoder) -> Term<'a> {
    (atoms::error(), reason).encode(env)
}

fn ledger_err<'a>(env: Env<'a>, e: &LedgerError) -> Term<'a> {
    err(env, encode_error(env, e))
}

// --- argument decoding ---------------------------------------------------------------------

/// A ledger handle or the name of an open ledger.
fn resolve<'a>(env: Env<'a>, handle: Term<'a>) -> Result<ResourceArc<LedgerResource>, Term<'a>> {
    if let Ok(res) = handle.decode::<ResourceArc<LedgerResource>>() {
        return Ok(res);
    }
    if let Ok(name) = handle.decode::<Atom>() {
        if let Some(res) = lookup(name) {
            return Ok(res);
        }
    }
    Err(err(env, (atoms::unknown_ledger(), handle)))
}

/// The reading handle of an open ledger, or the `{error, _}` term to return.
fn open_ledger<'a>(env: Env<'a>, handle: Term<'a>) -> Result<Ledger, Term<'a>> {
    resolve(env, handle)?
        .ledger()
        .ok_or_else(|| err(env, atoms::closed()))
}

fn decode_policy(term: Term) -> Option<FsyncPolicy> {
    if let Ok(a) = term.decode::<Atom>() {
        return (a == atoms::always()).then_some(FsyncPolicy::Always);
    }
    let (tag, ms) = term.decode::<(Atom, u64)>().ok()?;
    (tag == atoms::group_commit() && ms <= MAX_INTERVAL_MS).then(|| FsyncPolicy::GroupCommit {
        interval: Duration::from_millis(ms),
    })
}

fn encode_policy<'a>(env: Env<'a>, p: FsyncPolicy) -> Term<'a> {
    match p {
        FsyncPolicy::Always => atoms::always().encode(env),
        FsyncPolicy::GroupCommit { interval } => {
            let ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
            (atoms::group_commit(), ms).encode(env)
        }
    }
}

fn encode_report<'a>(env: Env<'a>, r: &OpenReport) -> Term<'a> {
    let truncated = match &r.truncated {
        None => atoms::none().encode(env),
        Some(t) => map(
            env,
            &[
                (atoms::segment(), path_bin(env, &t.segment)),
                (atoms::offset(), t.offset.encode(env)),
                (atoms::bytes(), t.bytes.encode(env)),
                (atoms::zero_fill(), t.zero_fill.encode(env)),
            ],
        ),
    };
    map(
        env,
        &[
            (atoms::records(), r.records.encode(env)),
            (atoms::segments(), r.segments.encode(env)),
            (atoms::truncated(), truncated),
            (
                atoms::removed_temp_files(),
                r.removed_temp_files.encode(env),
            ),
        ],
    )
}

// --- NIFs ------------------------------------------------------------------------------------

/// Waits until neither `dir` nor `name` is held by a ledger that is still closing, then reserves
/// both. Refuses when either is open (or being opened) by someone else.
fn reserve<'a>(env: Env<'a>, name: Atom, dir: &Path) -> Result<(), Term<'a>> {
    let (lock, cv) = &*REGISTRY;
    let deadline = Instant::now() + CLOSING_WAIT;
    let mut reg = lock.lock();
    loop {
        let name_dir = reg.by_name.get(&name).cloned();
        let name_state = name_dir.as_deref().and_then(|d| reg.state(d));
        let dir_state = reg.state(dir);
        let closing = matches!(dir_state, Some(SlotState::Closing))
            || matches!(name_state, Some(SlotState::Closing));
        match (dir_state, name_state) {
            (Some(SlotState::Open | SlotState::Opening), _) => {
                return Err(err(env, (atoms::already_open(), path_bin(env, dir))))
            }
            (_, Some(SlotState::Open | SlotState::Opening)) => {
                return Err(err(env, (atoms::name_in_use(), name)))
            }
            _ if closing => {
                if cv.wait_until(&mut reg, deadline).timed_out() {
                    return Err(err(env, (atoms::already_open(), path_bin(env, dir))));
                }
            }
            _ => break,
        }
    }
    reg.by_dir.insert(
        dir.to_path_buf(),
        Slot {
            name,
            resource: None,
        },
    );
    reg.by_name.insert(name, dir.to_path_buf());
    Ok(())
}

fn unreserve(name: Atom, dir: &Path) {
    let (lock, cv) = &*REGISTRY;
    lock.lock().release(name, dir);
    cv.notify_all();
}

/// `ledger_open(Name, Dir, Fsync) -> {ok, Handle, Report} | {error, Reason}`: opens (and
/// recovers) the ledger in `Dir` for the calling process.
#[rustler::nif(schedule = "DirtyIo")]
fn ledger_open<'a>(env: Env<'a>, name: Term<'a>, dir: Term<'a>, fsync: Term<'a>) -> Term<'a> {
    let Ok(name) = name.decode::<Atom>() else {
        return err(env, (atoms::invalid_name(), name));
    };
    let dir_bytes = match dir.decode::<Binary>() {
        Ok(b) if !b.is_empty() && !b.as_slice().contains(&0) => b,
        _ => return err(env, (atoms::invalid_dir(), dir)),
    };
    let Some(policy) = decode_policy(fsync) else {
        return err(env, (atoms::invalid_fsync(), fsync));
    };
    let raw = Path::new(OsStr::from_bytes(dir_bytes.as_slice()));
    // Canonical, so that two spellings of one directory are one registry entry.
    let dir = match std::fs::create_dir_all(raw).and_then(|()| raw.canonicalize()) {
        Ok(d) => d,
        Err(e) => {
            return ledger_err(
                env,
                &LedgerError::Io {
                    op: "create",
                    path: raw.to_path_buf(),
                    source: e,
                },
            )
        }
    };
    if let Err(reason) = reserve(env, name, &dir) {
        return reason;
    }
    let envs = Arc::new(EnvPool::default());
    let opened =
        ledger::open(&dir, ledger::Options::default()).and_then(|(ledger, writer, report)| {
            let replier = NifReplier {
                name,
                dir: dir.clone(),
                envs: Arc::clone(&envs),
                used: Vec::new(),
            };
            let thread_name = format!("ledger-{}", name_text(env, name));
            let committer = Committer::spawn(writer, policy, replier, &thread_name)?;
            Ok((ledger, committer, report))
        });
    let (ledger, committer, report) = match opened {
        Ok(o) => o,
        Err(e) => {
            unreserve(name, &dir);
            return ledger_err(env, &e);
        }
    };
    let resource = ResourceArc::new(LedgerResource {
        name,
        dir: dir.clone(),
        open: RwLock::new(None),
        envs,
    });
    let monitor = env.monitor(&resource, &env.pid());
    *resource.open.write() = Some(Open {
        committer,
        ledger,
        policy,
        monitor,
    });
    {
        let (lock, cv) = &*REGISTRY;
        if let Some(slot) = lock.lock().by_dir.get_mut(&dir) {
            slot.resource = Some(resource.clone());
        }
        cv.notify_all();
    }
    (atoms::ok(), resource, encode_report(env, &report)).encode(env)
}

fn name_text(env: Env, name: Atom) -> String {
    name.to_term(env)
        .atom_to_string()
        .unwrap_or_else(|_| String::from("?"))
}

/// `ledger_close(Ledger) -> ok | {error, Reason}`: waits until every queued append is answered
/// and the files are closed.
#[rustler::nif(schedule = "DirtyIo")]
fn ledger_close<'a>(env: Env<'a>, handle: Term<'a>) -> Term<'a> {
    let res = match resolve(env, handle) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let Some(open) = res.open.write().take() else {
        return err(env, atoms::closed());
    };
    if let Some(m) = open.monitor {
        env.demonitor(&res, &m);
    }
    open.committer.close();
    atoms::ok().encode(env)
}

/// `ledger_append(Ledger, Action, Result, Ref) -> ok | {error, Reason}`; on `ok` the caller
/// receives its reply (see `NifReplier::reply`) after the record's fsync.
#[rustler::nif]
fn ledger_append<'a>(
    env: Env<'a>,
    handle: Term<'a>,
    action: Term<'a>,
    result: Term<'a>,
    reference: Term<'a>,
) -> Term<'a> {
    let res = match resolve(env, handle) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let Ok(action_bin) = action.decode::<Binary>() else {
        return err(env, (atoms::not_binary(), atoms::action()));
    };
    let Ok(result_bin) = result.decode::<Binary>() else {
        return err(env, (atoms::not_binary(), atoms::result()));
    };
    let size = action_bin.len() + result_bin.len();
    if size > MAX_PAYLOAD {
        return err(env, (atoms::payload_too_large(), size, MAX_PAYLOAD));
    }
    if !reference.is_ref() {
        return err(env, (atoms::internal(), reference));
    }
    let tag_env = res.envs.take();
    let saved = tag_env.save(reference);
    let tag = Tag {
        pid: env.pid(),
        env: tag_env,
        reference: saved,
    };
    let entry = ledger::Entry::new(action_bin.as_slice(), result_bin.as_slice());
    let guard = res.open.read();
    let Some(open) = guard.as_ref() else {
        return err(env, atoms::closed());
    };
    match open.committer.submit(entry, tag) {
        Ok(()) => atoms::ok().encode(env),
        Err((refused, _tag)) => match refused {
            Refused::Closed => err(env, atoms::closed()),
            other => ledger_err(env, &LedgerError::from(other)),
        },
    }
}

/// `ledger_verify(Ledger) -> ok | {error, {chain_broken, Seq, Problem}} | {error, Reason}`.
#[rustler::nif(schedule = "DirtyIo")]
fn ledger_verify<'a>(env: Env<'a>, handle: Term<'a>) -> Term<'a> {
    let ledger = match open_ledger(env, handle) {
        Ok(l) => l,
        Err(e) => return e,
    };
    match ledger.verify() {
        Ok(Verification::Intact { .. }) => atoms::ok().encode(env),
        Ok(Verification::Broken { seq, problem }) => err(
            env,
            (
                atoms::chain_broken(),
                seq,
                Atom::from_str(env, problem.name()).unwrap_or_else(|_| atoms::error()),
            ),
        ),
        Err(e) => ledger_err(env, &e),
    }
}

/// `ledger_get(Ledger, Id) -> {ok, Receipt} | {error, not_found | Reason}`.
#[rustler::nif(schedule = "DirtyIo")]
fn ledger_get<'a>(env: Env<'a>, handle: Term<'a>, id: Term<'a>) -> Term<'a> {
    let ledger = match open_ledger(env, handle) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let Some(id) = id
        .decode::<Binary>()
        .ok()
        .and_then(|b| RecordId::parse(b.as_slice()))
    else {
        return err(env, atoms::invalid_id());
    };
    match ledger.get(&id) {
        Ok(Some(r)) => (atoms::ok(), encode_receipt(env, &r)).encode(env),
        Ok(None) => err(env, atoms::not_found()),
        Err(e) => ledger_err(env, &e),
    }
}

/// `ledger_tail(Ledger, N) -> {ok, [Receipt]} | {error, Reason}`: the last `N`, oldest first.
#[rustler::nif(schedule = "DirtyIo")]
fn ledger_tail<'a>(env: Env<'a>, handle: Term<'a>, n: Term<'a>) -> Term<'a> {
    let ledger = match open_ledger(env, handle) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let Ok(count) = n.decode::<u64>() else {
        return err(env, (atoms::invalid_count(), n));
    };
    match ledger.tail(count) {
        Ok(rs) => encode_receipts(env, &rs),
        Err(e) => ledger_err(env, &e),
    }
}

/// `ledger_by_action(Ledger, Action) -> {ok, [Receipt]} | {error, Reason}`, oldest first.
#[rustler::nif(schedule = "DirtyIo")]
fn ledger_by_action<'a>(env: Env<'a>, handle: Term<'a>, action: Term<'a>) -> Term<'a> {
    let ledger = match open_ledger(env, handle) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let Ok(action) = action.decode::<Binary>() else {
        return err(env, (atoms::not_binary(), atoms::action()));
    };
    match ledger.by_action(action.as_slice()) {
        Ok(rs) => encode_receipts(env, &rs),
        Err(e) => ledger_err(env, &e),
    }
}

/// `ledger_size(Ledger) -> Size | {error, Reason}`.
#[rustler::nif]
fn ledger_size<'a>(env: Env<'a>, handle: Term<'a>) -> Term<'a> {
    match open_ledger(env, handle) {
        Ok(l) => l.size().encode(env),
        Err(e) => e,
    }
}

/// `ledger_root(Ledger) -> {Size, Root} | {error, Reason}`.
#[rustler::nif]
fn ledger_root<'a>(env: Env<'a>, handle: Term<'a>) -> Term<'a> {
    match open_ledger(env, handle) {
        Ok(l) => {
            let (size, root) = l.root();
            (size, bin(env, &root)).encode(env)
        }
        Err(e) => e,
    }
}

fn encode_inclusion<'a>(env: Env<'a>, p: &InclusionProof) -> Term<'a> {
    map(
        env,
        &[
            (atoms::seq(), p.seq.encode(env)),
            (atoms::size(), p.size.encode(env)),
            (atoms::root(), bin(env, &p.root)),
            (atoms::path(), encode_path(env, &p.path)),
        ],
    )
}

fn encode_consistency<'a>(env: Env<'a>, p: &ConsistencyProof) -> Term<'a> {
    map(
        env,
        &[
            (atoms::old_size(), p.old_size.encode(env)),
            (atoms::size(), p.size.encode(env)),
            (atoms::old_root(), bin(env, &p.old_root)),
            (atoms::root(), bin(env, &p.root)),
            (atoms::path(), encode_path(env, &p.path)),
        ],
    )
}

/// `ledger_inclusion_proof(Ledger, Seq) -> {ok, #{seq, size, root, path}} | {error, Reason}`.
/// `O(log n)` stored hashes plus at most `O(log n)` hashes recomputed: microseconds.
#[rustler::nif]
fn ledger_inclusion_proof<'a>(env: Env<'a>, handle: Term<'a>, seq: Term<'a>) -> Term<'a> {
    let ledger = match open_ledger(env, handle) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let Ok(s) = seq.decode::<u64>() else {
        return err(env, (atoms::invalid_seq(), seq));
    };
    match ledger.inclusion_proof(s) {
        Ok(p) => (atoms::ok(), encode_inclusion(env, &p)).encode(env),
        Err(e) => ledger_err(env, &e),
    }
}

/// `ledger_consistency_proof(Ledger, OldSize) ->
/// {ok, #{old_size, size, old_root, root, path}} | {error, Reason}`.
#[rustler::nif]
fn ledger_consistency_proof<'a>(env: Env<'a>, handle: Term<'a>, old: Term<'a>) -> Term<'a> {
    let ledger = match open_ledger(env, handle) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let Ok(o) = old.decode::<u64>() else {
        return err(env, (atoms::invalid_size(), old));
    };
    match ledger.consistency_proof(o) {
        Ok(p) => (atoms::ok(), encode_consistency(env, &p)).encode(env),
        Err(e) => ledger_err(env, &e),
    }
}

fn encode_stats<'a>(env: Env<'a>, s: &StatsSnapshot) -> Vec<(Atom, Term<'a>)> {
    let batches: Vec<Term> = BATCH_CLASSES
        .iter()
        .zip(s.batches)
        .map(|((label, _), n)| (bin(env, label.as_bytes()), n).encode(env))
        .collect();
    vec![
        (atoms::appends(), s.appends.encode(env)),
        (atoms::append_errors(), s.append_errors.encode(env)),
        (atoms::fsyncs(), s.fsyncs.encode(env)),
        (
            atoms::fsync_seconds(),
            (s.fsync_nanos as f64 / 1e9).encode(env),
        ),
        (atoms::bytes_written(), s.bytes.encode(env)),
        (atoms::batches(), batches.encode(env)),
    ]
}

/// `ledger_info(Ledger) -> {ok, #{name, dir, fsync, size, appends, ...}} | {error, Reason}`.
#[rustler::nif]
fn ledger_info<'a>(env: Env<'a>, handle: Term<'a>) -> Term<'a> {
    let res = match resolve(env, handle) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let guard = res.open.read();
    let Some(open) = guard.as_ref() else {
        return err(env, atoms::closed());
    };
    let mut pairs = vec![
        (atoms::name(), res.name.encode(env)),
        (atoms::dir(), path_bin(env, &res.dir)),
        (atoms::fsync(), encode_policy(env, open.policy)),
        (atoms::size(), open.ledger.size().encode(env)),
    ];
    pairs.extend(encode_stats(env, &open.ledger.stats()));
    (atoms::ok(), map(env, &pairs)).encode(env)
}

/// `ledger_list() -> [{Name, Handle}]`: the open ledgers of this node.
#[rustler::nif]
fn ledger_list(env: Env) -> Term {
    let reg = REGISTRY.0.lock();
    let list: Vec<Term> = reg
        .by_dir
        .values()
        .filter_map(|slot| {
            let r = slot.resource.as_ref()?;
            r.open
                .read()
                .is_some()
                .then(|| (slot.name, r.clone()).encode(env))
        })
        .collect();
    list.encode(env)
}
