//! NIFs of the knowledge base: a resource holding an `autonomic_core::kb::shared::SharedKb`,
//! argument decoding, and the mapping of results and errors to terms. No logic here.
//!
//! Scheduling: calls that touch a bounded amount of data run on the normal scheduler and take
//! microseconds. A search first estimates its work (posting entries to read, or records to scan,
//! and results to encode) and, over [`NORMAL_BUDGET`] or [`NORMAL_RESULTS`], returns the atom
//! `dirty` without doing it; the Erlang side then
//! calls the `_dirty` variant, which runs on a dirty CPU scheduler. An insert that cannot get the
//! write lock within 100 µs returns `busy`, and is retried on a dirty scheduler the same way.
//! Whole-base operations (open, flush, clear, export, import, merge, sync) always run dirty.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use autonomic_core::kb::record::{self, Field, InvalidField, MAX_SYMPTOMS};
use autonomic_core::kb::shared::{Counters, Info, LoadReport, MergeReport, SharedKb};
use autonomic_core::kb::{
    Config, Digest, Effectiveness, FailureRef, Inserted, KbError, Label, RawFailure, RecoveryMs,
    Strategy, Threshold,
};
use rustler::types::map::MapIterator;
use rustler::{Atom, Binary, Encoder, Env, NewBinary, ResourceArc, Term, TermType};

/// Work (posting entries or records) a search may do on a normal scheduler. Verifying a
/// candidate costs 30-100 ns (mostly cache misses; the upper end on a loaded machine), so this
/// keeps a normal-scheduler search under about 400 µs.
const NORMAL_BUDGET: usize = 4_096;
/// Results a search may encode on a normal scheduler (a failure map costs 1-2 µs to build).
const NORMAL_RESULTS: usize = 256;
/// Distinct recovery times `effectiveness` may walk on a normal scheduler.
const NORMAL_STATS: usize = 8_192;
/// Longest symptom list accepted, duplicates included (at most 256 distinct).
const MAX_LIST: usize = 4 * MAX_SYMPTOMS;
/// Lines per binary when records are shipped in chunks.
const LINES_PER_CHUNK: usize = 512;

mod atoms {
    rustler::atoms! {
        ok,
        error,
        undefined,
        dirty,
        busy,
        all,
        added,
        duplicate,
        true_ = "true",
        false_ = "false",
        // errors
        invalid_handle,
        invalid_failure,
        not_a_map,
        missing,
        unknown_key,
        invalid,
        duplicate_id,
        too_old,
        too_new,
        invalid_symptoms,
        invalid_threshold,
        invalid_limit,
        invalid_failure_type,
        unknown_strategy,
        invalid_options,
        invalid_path,
        invalid_file,
        invalid_digest,
        invalid_ids,
        invalid_lines,
        invalid_time,
        invalid_epoch,
        file_error,
        not_found,
        internal,
        // failure keys
        id,
        failure_type,
        root_cause,
        symptoms,
        strategy,
        recovery_ms,
        success,
        timestamp,
        // options, reports and figures
        max_records,
        retention_ms,
        snapshot_records,
        log_records,
        loaded,
        corrupt_lines,
        truncated_bytes,
        quarantined,
        offered,
        duplicates,
        rejected,
        lines,
        snapshot,
        score,
        weight,
        successes,
        failures,
        rate,
        mean_recovery_ms,
        p95_recovery_ms,
        records,
        symptom_count = "symptoms",
        posting_entries,
        epoch,
        evicted_limit,
        evicted_retention,
        evicted_cleared,
        persistent,
        pending_lines,
        log_lines,
        queries_similar,
        queries_recommend,
        queries_success_rate,
        queries_effectiveness,
        read_waits,
        read_wait_total_ns,
        read_wait_max_ns,
    }
}

/// The resource: one knowledge base.
pub struct KbResource(SharedKb);

#[rustler::resource_impl]
impl rustler::Resource for KbResource {}

type Handle = ResourceArc<KbResource>;

fn error<'a>(env: Env<'a>, reason: impl Encoder) -> Term<'a> {
    (atoms::error(), reason).encode(env)
}

fn ok<'a>(env: Env<'a>, value: impl Encoder) -> Term<'a> {
    (atoms::ok(), value).encode(env)
}

fn handle(term: Term) -> Result<Handle, Term> {
    term.decode::<Handle>()
        .map_err(|_| error(term.get_env(), atoms::invalid_handle()))
}

fn map<'a>(env: Env<'a>, pairs: &[(Atom, Term<'a>)]) -> Term<'a> {
    let keys: Vec<Term> = pairs.iter().map(|(k, _)| k.encode(env)).collect();
    let values: Vec<Term> = pairs.iter().map(|(_, v)| *v).collect();
    // Keys are distinct atoms, so building the map cannot fail.
    Term::map_from_term_arrays(env, &keys, &values)
        .unwrap_or_else(|_| atoms::internal().encode(env))
}

fn opt_f64<'a>(env: Env<'a>, v: Option<f64>) -> Term<'a> {
    match v {
        Some(v) => v.encode(env),
        None => atoms::undefined().encode(env),
    }
}

fn binary<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    let mut b = NewBinary::new(env, bytes.len());
    b.as_mut_slice().copy_from_slice(bytes);
    b.into()
}

/// Splits lines into binaries of at most [`LINES_PER_CHUNK`] lines each.
fn chunks<'a>(env: Env<'a>, lines: &[u8]) -> Term<'a> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (i, &b) in lines.iter().enumerate() {
        if b == b'\n' {
            count += 1;
            if count == LINES_PER_CHUNK {
                out.push(binary(env, &lines[start..=i]));
                start = i + 1;
                count = 0;
            }
        }
    }
    if start < lines.len() {
        out.push(binary(env, &lines[start..]));
    }
    out.encode(env)
}

fn now_ms(term: Term) -> Result<i64, Term> {
    term.decode::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| error(term.get_env(), (atoms::invalid_time(), term)))
}

// ---- Decoding -------------------------------------------------------------------------------

fn utf8(term: Term) -> Option<String> {
    let b = term.decode::<Binary>().ok()?;
    std::str::from_utf8(b.as_slice()).ok().map(str::to_string)
}

/// A proper list of UTF-8 binaries of bounded length.
fn binaries(term: Term) -> Option<Vec<String>> {
    // list_length fails on improper lists, which the list iterator would panic on.
    let len = term.list_length().ok()?;
    if len > MAX_LIST {
        return None;
    }
    term.decode::<rustler::ListIterator>()
        .ok()?
        .map(utf8)
        .collect()
}

fn label(term: Term) -> Option<Label> {
    if term.is_atom() {
        // Only Latin-1 atoms decode (the others cannot be created again by a NIF on OTP 25).
        term.atom_to_string()
            .ok()
            .map(|s| Label::Atom(s.into_boxed_str()))
    } else {
        utf8(term).map(|s| Label::Binary(s.into_boxed_str()))
    }
}

fn strategy_of(term: Term) -> Option<Strategy> {
    if !term.is_atom() {
        return None;
    }
    term.atom_to_string()
        .ok()
        .and_then(|s| Strategy::from_name(&s))
}

fn recovery(term: Term) -> Option<RecoveryMs> {
    match term.get_type() {
        TermType::Integer => term.decode::<u64>().ok().map(RecoveryMs::Int),
        TermType::Float => term.decode::<f64>().ok().map(RecoveryMs::Float),
        _ => None,
    }
}

fn boolean(term: Term) -> Option<bool> {
    let a = term.decode::<Atom>().ok()?;
    if a == atoms::true_() {
        Some(true)
    } else if a == atoms::false_() {
        Some(false)
    } else {
        None
    }
}

const KEYS: [Field; 8] = [
    Field::Id,
    Field::FailureType,
    Field::RootCause,
    Field::Symptoms,
    Field::Strategy,
    Field::RecoveryMs,
    Field::Success,
    Field::Timestamp,
];

fn field_atom(f: Field) -> Atom {
    match f {
        Field::Id => atoms::id(),
        Field::FailureType => atoms::failure_type(),
        Field::RootCause => atoms::root_cause(),
        Field::Symptoms => atoms::symptoms(),
        Field::Strategy => atoms::strategy(),
        Field::RecoveryMs => atoms::recovery_ms(),
        Field::Success => atoms::success(),
        Field::Timestamp => atoms::timestamp(),
    }
}

/// Decodes a failure map with every key present (the Erlang side fills `id` and `timestamp`).
/// Errors are `{invalid_failure, Why}` terms naming the key and echoing the value.
fn decode_failure<'a>(env: Env<'a>, term: Term<'a>) -> Result<record::Failure, Term<'a>> {
    let invalid = |why: Term<'a>| error(env, (atoms::invalid_failure(), why));
    let Some(iter) = MapIterator::new(term) else {
        return Err(invalid(atoms::not_a_map().encode(env)));
    };
    // Indexed like `Field` (KEYS is in declaration order).
    let mut values: [Option<Term<'a>>; 8] = [None; 8];
    for (k, v) in iter {
        match KEYS.iter().position(|f| field_atom(*f) == k) {
            Some(i) => values[i] = Some(v),
            None => return Err(invalid((atoms::unknown_key(), k).encode(env))),
        }
    }
    let bad = |f: Field, t: Term<'a>| invalid((atoms::invalid(), field_atom(f), t).encode(env));
    let field = |f: Field| -> Result<Term<'a>, Term<'a>> {
        values[f as usize].ok_or_else(|| invalid((atoms::missing(), field_atom(f)).encode(env)))
    };
    let id_t = field(Field::Id)?;
    let ft_t = field(Field::FailureType)?;
    let rc_t = field(Field::RootCause)?;
    let sy_t = field(Field::Symptoms)?;
    let st_t = field(Field::Strategy)?;
    let ms_t = field(Field::RecoveryMs)?;
    let ok_t = field(Field::Success)?;
    let ts_t = field(Field::Timestamp)?;
    let raw = RawFailure {
        id: utf8(id_t).ok_or_else(|| bad(Field::Id, id_t))?,
        failure_type: label(ft_t).ok_or_else(|| bad(Field::FailureType, ft_t))?,
        root_cause: label(rc_t).ok_or_else(|| bad(Field::RootCause, rc_t))?,
        symptoms: binaries(sy_t).ok_or_else(|| bad(Field::Symptoms, sy_t))?,
        strategy: strategy_of(st_t).ok_or_else(|| bad(Field::Strategy, st_t))?,
        recovery_ms: recovery(ms_t).ok_or_else(|| bad(Field::RecoveryMs, ms_t))?,
        success: boolean(ok_t).ok_or_else(|| bad(Field::Success, ok_t))?,
        timestamp: ts_t
            .decode::<i64>()
            .map_err(|_| bad(Field::Timestamp, ts_t))?,
    };
    record::Failure::new(raw).map_err(|InvalidField(f)| {
        let t = match f {
            Field::Id => id_t,
            Field::FailureType => ft_t,
            Field::RootCause => rc_t,
            Field::Symptoms => sy_t,
            Field::Strategy => st_t,
            Field::RecoveryMs => ms_t,
            Field::Success => ok_t,
            Field::Timestamp => ts_t,
        };
        bad(f, t)
    })
}

fn threshold(term: Term) -> Result<Threshold, Term> {
    term.decode::<f64>()
        .ok()
        .and_then(Threshold::new)
        .ok_or_else(|| error(term.get_env(), (atoms::invalid_threshold(), term)))
}

fn limit(term: Term) -> Result<usize, Term> {
    term.decode::<u64>()
        .ok()
        .filter(|v| *v >= 1)
        .map(|v| usize::try_from(v).unwrap_or(usize::MAX))
        .ok_or_else(|| error(term.get_env(), (atoms::invalid_limit(), term)))
}

fn symptom_list(term: Term) -> Result<Vec<String>, Term> {
    binaries(term)
        .filter(|v| record::normalize_symptoms(v.clone()).is_some())
        .ok_or_else(|| error(term.get_env(), (atoms::invalid_symptoms(), term)))
}

fn path(term: Term) -> Result<PathBuf, Term> {
    term.decode::<Binary>()
        .ok()
        .filter(|b| !b.is_empty() && !b.as_slice().contains(&0))
        .map(|b| PathBuf::from(OsStr::from_bytes(b.as_slice())))
        .ok_or_else(|| error(term.get_env(), (atoms::invalid_path(), term)))
}

fn config(term: Term) -> Result<Config, Term> {
    let env = term.get_env();
    let invalid = |why: Term| error(env, (atoms::invalid_options(), why));
    let Some(iter) = MapIterator::new(term) else {
        return Err(invalid(atoms::not_a_map().encode(env)));
    };
    let mut c = Config::default();
    for (k, v) in iter {
        if k == atoms::max_records().encode(env) {
            c.max_records = v
                .decode::<u64>()
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| invalid((atoms::max_records(), v).encode(env)))?;
        } else if k == atoms::retention_ms().encode(env) {
            c.retention_ms = v
                .decode::<u64>()
                .map_err(|_| invalid((atoms::retention_ms(), v).encode(env)))?;
        } else {
            return Err(invalid((atoms::unknown_key(), k).encode(env)));
        }
    }
    c.validate().map_err(|e| match e {
        KbError::InvalidMaxRecords(_) => invalid((atoms::max_records(), c.max_records).encode(env)),
        _ => invalid((atoms::retention_ms(), c.retention_ms).encode(env)),
    })
}

fn ids(term: Term) -> Result<Vec<String>, Term> {
    let err = || error(term.get_env(), atoms::invalid_ids());
    term.list_length().map_err(|_| err())?;
    term.decode::<rustler::ListIterator>()
        .map_err(|_| err())?
        .map(utf8)
        .collect::<Option<Vec<String>>>()
        .ok_or_else(err)
}

// ---- Encoding -------------------------------------------------------------------------------

fn encode_label<'a>(env: Env<'a>, l: &Label) -> Term<'a> {
    match l {
        // Stored atom labels are Latin-1 (checked on the way in), so creating them succeeds.
        Label::Atom(s) => Atom::from_str(env, s)
            .map(|a| a.encode(env))
            .unwrap_or_else(|_| s.encode(env)),
        Label::Binary(s) => s.encode(env),
    }
}

fn strategy_atom(env: Env, s: Strategy) -> Atom {
    // The eight names are valid atoms.
    Atom::from_str(env, s.name()).unwrap_or_else(|_| atoms::undefined())
}

fn encode_recovery<'a>(env: Env<'a>, ms: RecoveryMs) -> Term<'a> {
    match ms {
        RecoveryMs::Int(v) => v.encode(env),
        RecoveryMs::Float(v) => v.encode(env),
    }
}

fn encode_failure<'a>(env: Env<'a>, f: &FailureRef) -> Term<'a> {
    let symptoms: Vec<Term> = f.symptoms().iter().map(|s| s.encode(env)).collect();
    map(
        env,
        &[
            (atoms::id(), f.id().encode(env)),
            (atoms::failure_type(), encode_label(env, f.failure_type())),
            (atoms::root_cause(), encode_label(env, f.root_cause())),
            (atoms::symptoms(), symptoms.encode(env)),
            (
                atoms::strategy(),
                strategy_atom(env, f.strategy()).encode(env),
            ),
            (atoms::recovery_ms(), encode_recovery(env, f.recovery_ms())),
            (atoms::success(), f.success().encode(env)),
            (atoms::timestamp(), f.timestamp().encode(env)),
        ],
    )
}

fn encode_effectiveness<'a>(env: Env<'a>, e: &Effectiveness) -> Term<'a> {
    map(
        env,
        &[
            (atoms::successes(), e.counts.successes.encode(env)),
            (atoms::failures(), e.counts.failures.encode(env)),
            (atoms::rate(), opt_f64(env, e.rate)),
            (atoms::mean_recovery_ms(), opt_f64(env, e.mean_recovery_ms)),
            (atoms::p95_recovery_ms(), opt_f64(env, e.p95_recovery_ms)),
        ],
    )
}

fn encode_merge<'a>(env: Env<'a>, r: &MergeReport) -> Term<'a> {
    map(
        env,
        &[
            (atoms::offered(), r.offered.encode(env)),
            (atoms::added(), r.added.encode(env)),
            (atoms::duplicates(), r.duplicates.encode(env)),
            (atoms::rejected(), r.rejected.encode(env)),
        ],
    )
}

fn encode_load<'a>(env: Env<'a>, r: &LoadReport) -> Term<'a> {
    let quarantined = match &r.quarantined {
        Some((path, why)) => (binary(env, path.as_os_str().as_bytes()), why.as_str()).encode(env),
        None => atoms::undefined().encode(env),
    };
    map(
        env,
        &[
            (atoms::snapshot_records(), r.snapshot_records.encode(env)),
            (atoms::log_records(), r.log_records.encode(env)),
            (atoms::loaded(), r.loaded.encode(env)),
            (atoms::corrupt_lines(), r.corrupt_lines.encode(env)),
            (atoms::truncated_bytes(), r.truncated_bytes.encode(env)),
            (atoms::quarantined(), quarantined),
        ],
    )
}

fn encode_info<'a>(env: Env<'a>, i: &Info) -> Term<'a> {
    map(
        env,
        &[
            (atoms::records(), i.records.encode(env)),
            (atoms::max_records(), i.max_records.encode(env)),
            (atoms::retention_ms(), i.retention_ms.encode(env)),
            (atoms::symptom_count(), i.symptoms.encode(env)),
            (atoms::posting_entries(), i.posting_entries.encode(env)),
            (atoms::epoch(), i.epoch.encode(env)),
            (atoms::evicted_limit(), i.evictions.limit.encode(env)),
            (
                atoms::evicted_retention(),
                i.evictions.retention.encode(env),
            ),
            (atoms::evicted_cleared(), i.evictions.cleared.encode(env)),
            (atoms::persistent(), i.persistent.encode(env)),
            (atoms::pending_lines(), i.pending_lines.encode(env)),
            (atoms::log_lines(), i.log_lines.encode(env)),
            (atoms::queries_similar(), i.queries_similar.encode(env)),
            (atoms::queries_recommend(), i.queries_recommend.encode(env)),
            (
                atoms::queries_success_rate(),
                i.queries_success_rate.encode(env),
            ),
            (
                atoms::queries_effectiveness(),
                i.queries_effectiveness.encode(env),
            ),
            (atoms::read_waits(), i.read_waits.count.encode(env)),
            (
                atoms::read_wait_total_ns(),
                i.read_waits.total_ns.encode(env),
            ),
            (atoms::read_wait_max_ns(), i.read_waits.max_ns.encode(env)),
        ],
    )
}

/// Maps an error of a whole-base operation to a reason term.
fn kb_error<'a>(env: Env<'a>, e: KbError) -> Term<'a> {
    match e {
        KbError::Conflict(id) => error(env, (atoms::duplicate_id(), &*id)),
        KbError::TooOld(ts) => error(env, (atoms::too_old(), ts)),
        KbError::TooNew(ts) => error(env, (atoms::too_new(), ts)),
        KbError::Json(j) => error(env, (atoms::invalid_file(), j.to_string())),
        KbError::Store(s) => {
            // Linux errno values of the errors an operator can act on, as file:posix() atoms.
            let posix = match s.source.raw_os_error() {
                Some(2) => Some("enoent"),
                Some(5) => Some("eio"),
                Some(13) => Some("eacces"),
                Some(17) => Some("eexist"),
                Some(20) => Some("enotdir"),
                Some(21) => Some("eisdir"),
                Some(28) => Some("enospc"),
                Some(30) => Some("erofs"),
                _ => None,
            };
            let why = match posix.and_then(|p| Atom::from_str(env, p).ok()) {
                Some(a) => a.encode(env),
                None => s.source.to_string().encode(env),
            };
            let op = Atom::from_str(env, s.op).map_or_else(|_| s.op.encode(env), |a| a.encode(env));
            let path = binary(env, s.path.as_os_str().as_bytes());
            error(env, (atoms::file_error(), op, path, why))
        }
        other => error(env, (atoms::internal(), other.to_string())),
    }
}

// ---- NIFs: lifecycle -------------------------------------------------------------------------

/// `kb_new(Opts) -> {ok, Handle} | {error, {invalid_options, Why}}`: an in-memory knowledge base.
#[rustler::nif]
fn kb_new<'a>(env: Env<'a>, opts: Term<'a>) -> Term<'a> {
    let c = match config(opts) {
        Ok(c) => c,
        Err(e) => return e,
    };
    match SharedKb::new(c) {
        Ok(kb) => ok(env, ResourceArc::new(KbResource(kb))),
        Err(e) => kb_error(env, e),
    }
}

/// `kb_open(Dir, Opts, NowMs) -> {ok, Handle, LoadReport} | {error, Reason}`.
#[rustler::nif(schedule = "DirtyIo")]
fn kb_open<'a>(env: Env<'a>, dir: Term<'a>, opts: Term<'a>, now: Term<'a>) -> Term<'a> {
    let (dir, c, now) = match (path(dir), config(opts), now_ms(now)) {
        (Ok(d), Ok(c), Ok(n)) => (d, c, n),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    match SharedKb::open(&dir, c, now) {
        Ok((kb, report)) => (
            atoms::ok(),
            ResourceArc::new(KbResource(kb)),
            encode_load(env, &report),
        )
            .encode(env),
        Err(e) => kb_error(env, e),
    }
}

// ---- NIFs: writes ----------------------------------------------------------------------------

fn insert_result<'a>(
    env: Env<'a>,
    r: Result<(Inserted, Option<Vec<u8>>), KbError>,
    id: &str,
) -> Term<'a> {
    match r {
        Ok((Inserted::Added { .. }, line)) => (
            atoms::added(),
            id,
            binary(env, line.as_deref().unwrap_or_default()),
        )
            .encode(env),
        Ok((Inserted::Duplicate, _)) => (atoms::duplicate(), id).encode(env),
        Err(e) => kb_error(env, e),
    }
}

/// `kb_insert(H, Failure, NowMs) -> {added, Id, Line} | {duplicate, Id} | busy | {error, R}`.
#[rustler::nif]
fn kb_insert<'a>(env: Env<'a>, h: Term<'a>, failure: Term<'a>, now: Term<'a>) -> Term<'a> {
    let (h, f, now) = match (handle(h), decode_failure(env, failure), now_ms(now)) {
        (Ok(h), Ok(f), Ok(n)) => (h, f, n),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    match h.0.try_insert(&f, now) {
        Ok(r) => insert_result(env, r, f.id()),
        Err(_busy) => atoms::busy().encode(env),
    }
}

/// `kb_insert_dirty/3`: as `kb_insert/3`, waiting for the lock (never `busy`).
#[rustler::nif(schedule = "DirtyCpu")]
fn kb_insert_dirty<'a>(env: Env<'a>, h: Term<'a>, failure: Term<'a>, now: Term<'a>) -> Term<'a> {
    let (h, f, now) = match (handle(h), decode_failure(env, failure), now_ms(now)) {
        (Ok(h), Ok(f), Ok(n)) => (h, f, n),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    insert_result(env, h.0.insert(&f, now), f.id())
}

/// `kb_merge(H, Lines, NowMs) -> {ok, Report}`: records from a peer (lines, see
/// `autonomic_core::kb::json`); damaged lines are counted as rejected.
#[rustler::nif(schedule = "DirtyCpu")]
fn kb_merge<'a>(env: Env<'a>, h: Term<'a>, lines: Term<'a>, now: Term<'a>) -> Term<'a> {
    let h = match handle(h) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let Ok(lines) = lines.decode::<Binary>() else {
        return error(env, atoms::invalid_lines());
    };
    let now = match now_ms(now) {
        Ok(n) => n,
        Err(e) => return e,
    };
    ok(
        env,
        encode_merge(env, &h.0.merge_lines(lines.as_slice(), now)),
    )
}

/// `kb_flush(H) -> {ok, #{lines, snapshot}} | {error, R}`.
#[rustler::nif(schedule = "DirtyIo")]
fn kb_flush<'a>(env: Env<'a>, h: Term<'a>) -> Term<'a> {
    let h = match handle(h) {
        Ok(h) => h,
        Err(e) => return e,
    };
    match h.0.flush() {
        Ok(r) => ok(
            env,
            map(
                env,
                &[
                    (atoms::lines(), r.lines.encode(env)),
                    (atoms::snapshot(), r.snapshot.encode(env)),
                ],
            ),
        ),
        Err(e) => kb_error(env, e),
    }
}

/// `kb_compact(H) -> ok | {error, R}`: writes a snapshot now.
#[rustler::nif(schedule = "DirtyIo")]
fn kb_compact<'a>(env: Env<'a>, h: Term<'a>) -> Term<'a> {
    let h = match handle(h) {
        Ok(h) => h,
        Err(e) => return e,
    };
    match h.0.compact() {
        Ok(()) => atoms::ok().encode(env),
        Err(e) => kb_error(env, e),
    }
}

/// `kb_clear(H, NowMs) -> {ok, Epoch} | {error, R}`.
#[rustler::nif(schedule = "DirtyIo")]
fn kb_clear<'a>(env: Env<'a>, h: Term<'a>, now: Term<'a>) -> Term<'a> {
    let (h, now) = match (handle(h), now_ms(now)) {
        (Ok(h), Ok(n)) => (h, n),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match h.0.clear(now) {
        Ok(epoch) => ok(env, epoch),
        Err(e) => kb_error(env, e),
    }
}

/// `kb_adopt_epoch(H, Epoch) -> {ok, Removed} | {error, R}`.
#[rustler::nif(schedule = "DirtyIo")]
fn kb_adopt_epoch<'a>(env: Env<'a>, h: Term<'a>, epoch: Term<'a>) -> Term<'a> {
    let h = match handle(h) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let Ok(epoch) = epoch.decode::<i64>() else {
        return error(env, (atoms::invalid_epoch(), epoch));
    };
    match h.0.adopt_epoch(epoch) {
        Ok(n) => ok(env, n),
        Err(e) => kb_error(env, e),
    }
}

/// `kb_prune(H, NowMs) -> {ok, Removed}`: applies retention.
#[rustler::nif(schedule = "DirtyCpu")]
fn kb_prune<'a>(env: Env<'a>, h: Term<'a>, now: Term<'a>) -> Term<'a> {
    let (h, now) = match (handle(h), now_ms(now)) {
        (Ok(h), Ok(n)) => (h, n),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    ok(env, h.0.prune(now))
}

/// `kb_import(H, Path, NowMs) -> {ok, Report, [Lines]} | {error, R}`: the lines of the added
/// records come back in chunks, for the caller to send to peers.
#[rustler::nif(schedule = "DirtyIo")]
fn kb_import<'a>(env: Env<'a>, h: Term<'a>, file: Term<'a>, now: Term<'a>) -> Term<'a> {
    let (h, file, now) = match (handle(h), path(file), now_ms(now)) {
        (Ok(h), Ok(p), Ok(n)) => (h, p, n),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    match h.0.import(&file, now, true) {
        Ok(r) => (atoms::ok(), encode_merge(env, &r), chunks(env, &r.lines)).encode(env),
        Err(e) => kb_error(env, e),
    }
}

// ---- NIFs: reads -----------------------------------------------------------------------------

fn do_similar<'a>(env: Env<'a>, args: [Term<'a>; 4], dirty_ok: bool) -> Term<'a> {
    let [h, symptoms, t, l] = args;
    let (h, symptoms, t, l) = match (handle(h), symptom_list(symptoms), threshold(t), limit(l)) {
        (Ok(h), Ok(s), Ok(t), Ok(l)) => (h, s, t, l),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => return e,
    };
    let kb = h.0.read();
    let q = match kb.query(&symptoms) {
        Ok(q) => q,
        Err(_) => return error(env, (atoms::invalid_symptoms(), args[1])),
    };
    let cost = kb.search_cost(&q, t);
    if !dirty_ok && (cost > NORMAL_BUDGET || cost.min(l) > NORMAL_RESULTS) {
        return atoms::dirty().encode(env);
    }
    Counters::bump(&h.0.counters.similar);
    let results: Vec<Term> = kb
        .similar(&q, t, l)
        .iter()
        .map(|m| (m.score, encode_failure(env, &m.failure)).encode(env))
        .collect();
    results.encode(env)
}

/// `kb_similar(H, Symptoms, Threshold, Limit) -> [{Score, Failure}] | dirty | {error, R}`.
#[rustler::nif]
fn kb_similar<'a>(env: Env<'a>, h: Term<'a>, s: Term<'a>, t: Term<'a>, l: Term<'a>) -> Term<'a> {
    do_similar(env, [h, s, t, l], false)
}

/// `kb_similar_dirty/4`: as `kb_similar/4`, any size, on a dirty scheduler.
#[rustler::nif(schedule = "DirtyCpu")]
fn kb_similar_dirty<'a>(
    env: Env<'a>,
    h: Term<'a>,
    s: Term<'a>,
    t: Term<'a>,
    l: Term<'a>,
) -> Term<'a> {
    do_similar(env, [h, s, t, l], true)
}

fn do_recommend<'a>(env: Env<'a>, args: [Term<'a>; 3], dirty_ok: bool) -> Term<'a> {
    let [h, symptoms, t] = args;
    let (h, symptoms, t) = match (handle(h), symptom_list(symptoms), threshold(t)) {
        (Ok(h), Ok(s), Ok(t)) => (h, s, t),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return e,
    };
    let kb = h.0.read();
    let q = match kb.query(&symptoms) {
        Ok(q) => q,
        Err(_) => return error(env, (atoms::invalid_symptoms(), args[1])),
    };
    if !dirty_ok && kb.search_cost(&q, t) > NORMAL_BUDGET {
        return atoms::dirty().encode(env);
    }
    Counters::bump(&h.0.counters.recommend);
    let out: Vec<Term> = kb
        .recommend(&q, t)
        .iter()
        .map(|r| {
            map(
                env,
                &[
                    (
                        atoms::strategy(),
                        strategy_atom(env, r.strategy).encode(env),
                    ),
                    (atoms::score(), r.score.encode(env)),
                    (atoms::weight(), r.weight.encode(env)),
                    (atoms::successes(), r.successes.encode(env)),
                    (atoms::failures(), r.failures.encode(env)),
                ],
            )
        })
        .collect();
    out.encode(env)
}

/// `kb_recommend(H, Symptoms, Threshold) -> [Recommendation] | dirty | {error, R}`.
#[rustler::nif]
fn kb_recommend<'a>(env: Env<'a>, h: Term<'a>, s: Term<'a>, t: Term<'a>) -> Term<'a> {
    do_recommend(env, [h, s, t], false)
}

/// `kb_recommend_dirty/3`: as `kb_recommend/3`, any size, on a dirty scheduler.
#[rustler::nif(schedule = "DirtyCpu")]
fn kb_recommend_dirty<'a>(env: Env<'a>, h: Term<'a>, s: Term<'a>, t: Term<'a>) -> Term<'a> {
    do_recommend(env, [h, s, t], true)
}

/// `kb_success_rate(H, FailureType) -> #{successes, failures, rate} | {error, R}`.
#[rustler::nif]
fn kb_success_rate<'a>(env: Env<'a>, h: Term<'a>, ty: Term<'a>) -> Term<'a> {
    let h = match handle(h) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let Some(l) = label(ty) else {
        return error(env, (atoms::invalid_failure_type(), ty));
    };
    Counters::bump(&h.0.counters.success_rate);
    let c = h.0.read().success_rate(&l);
    map(
        env,
        &[
            (atoms::successes(), c.successes.encode(env)),
            (atoms::failures(), c.failures.encode(env)),
            (atoms::rate(), opt_f64(env, c.rate())),
        ],
    )
}

fn do_effectiveness<'a>(env: Env<'a>, h: Term<'a>, which: Term<'a>, dirty_ok: bool) -> Term<'a> {
    let h = match handle(h) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let all = which.decode::<Atom>().is_ok_and(|a| a == atoms::all());
    let strategies: Vec<Strategy> = if all {
        Strategy::ALL.to_vec()
    } else {
        match strategy_of(which) {
            Some(s) => vec![s],
            None => return error(env, (atoms::unknown_strategy(), which)),
        }
    };
    let kb = h.0.read();
    if !dirty_ok && kb.effectiveness_cost(&strategies) > NORMAL_STATS {
        return atoms::dirty().encode(env);
    }
    Counters::bump(&h.0.counters.effectiveness);
    if all {
        let pairs: Vec<(Atom, Term)> = strategies
            .iter()
            .map(|s| {
                (
                    strategy_atom(env, *s),
                    encode_effectiveness(env, &kb.effectiveness(*s)),
                )
            })
            .collect();
        map(env, &pairs)
    } else {
        encode_effectiveness(env, &kb.effectiveness(strategies[0]))
    }
}

/// `kb_effectiveness(H, Strategy | all) -> Map | dirty | {error, {unknown_strategy, S}}`.
#[rustler::nif]
fn kb_effectiveness<'a>(env: Env<'a>, h: Term<'a>, which: Term<'a>) -> Term<'a> {
    do_effectiveness(env, h, which, false)
}

/// `kb_effectiveness_dirty/2`: as `kb_effectiveness/2`, on a dirty scheduler.
#[rustler::nif(schedule = "DirtyCpu")]
fn kb_effectiveness_dirty<'a>(env: Env<'a>, h: Term<'a>, which: Term<'a>) -> Term<'a> {
    do_effectiveness(env, h, which, true)
}

/// `kb_get(H, Id) -> {ok, Failure} | {error, not_found}`.
#[rustler::nif]
fn kb_get<'a>(env: Env<'a>, h: Term<'a>, id: Term<'a>) -> Term<'a> {
    let h = match handle(h) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let Some(id) = utf8(id) else {
        return error(env, (atoms::invalid(), atoms::id(), id));
    };
    let kb = h.0.read();
    match kb.get(&id) {
        Some(f) => ok(env, encode_failure(env, &f)),
        None => error(env, atoms::not_found()),
    }
}

/// `kb_size(H) -> non_neg_integer() | {error, invalid_handle}`.
#[rustler::nif]
fn kb_size<'a>(env: Env<'a>, h: Term<'a>) -> Term<'a> {
    match handle(h) {
        Ok(h) => h.0.read().len().encode(env),
        Err(e) => e,
    }
}

/// `kb_info(H) -> Map`: figures for metrics and operators.
#[rustler::nif]
fn kb_info<'a>(env: Env<'a>, h: Term<'a>) -> Term<'a> {
    match handle(h) {
        Ok(h) => encode_info(env, &h.0.info()),
        Err(e) => e,
    }
}

/// `kb_export(H, Path) -> {ok, Count} | {error, R}`: read-only, callable from any process.
#[rustler::nif(schedule = "DirtyIo")]
fn kb_export<'a>(env: Env<'a>, h: Term<'a>, file: Term<'a>) -> Term<'a> {
    let (h, file) = match (handle(h), path(file)) {
        (Ok(h), Ok(p)) => (h, p),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match h.0.export(&file) {
        Ok(n) => ok(env, n),
        Err(e) => kb_error(env, e),
    }
}

// ---- NIFs: anti-entropy ----------------------------------------------------------------------

/// `kb_digest(H) -> {Epoch, Digest :: binary()}`.
#[rustler::nif]
fn kb_digest<'a>(env: Env<'a>, h: Term<'a>) -> Term<'a> {
    let h = match handle(h) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let (epoch, bytes) = {
        let kb = h.0.read();
        (kb.epoch(), kb.digest().encode())
    };
    (epoch, binary(env, &bytes)).encode(env)
}

/// `kb_sync_diff(H, PeerDigest) -> {ok, Buckets :: [0..1023], Ids :: [binary()]}`: the buckets
/// where the peer's digest differs from ours, and our ids in them.
#[rustler::nif(schedule = "DirtyCpu")]
fn kb_sync_diff<'a>(env: Env<'a>, h: Term<'a>, digest: Term<'a>) -> Term<'a> {
    let h = match handle(h) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let Some(peer) = digest
        .decode::<Binary>()
        .ok()
        .and_then(|b| Digest::decode(b.as_slice()).ok())
    else {
        return error(env, atoms::invalid_digest());
    };
    let (buckets, ids) = h.0.sync_diff(&peer);
    let ids: Vec<Term> = ids.iter().map(|id| id.encode(env)).collect();
    (atoms::ok(), buckets, ids).encode(env)
}

/// `kb_sync_missing(H, Buckets, PeerIds) -> {ok, [Lines], Want :: [binary()]}`: given the
/// buckets that differ and the peer's ids in them, our records the peer lacks (as chunks of
/// lines) and the ids we lack.
#[rustler::nif(schedule = "DirtyCpu")]
fn kb_sync_missing<'a>(
    env: Env<'a>,
    h: Term<'a>,
    buckets: Term<'a>,
    peer_ids: Term<'a>,
) -> Term<'a> {
    let h = match handle(h) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let Ok(buckets) = buckets.decode::<Vec<u16>>() else {
        return error(env, atoms::invalid_digest());
    };
    if buckets
        .iter()
        .any(|&b| b as usize >= autonomic_core::kb::digest::BUCKETS)
    {
        return error(env, atoms::invalid_digest());
    }
    let peer_ids = match ids(peer_ids) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let (lines, want) = h.0.sync_missing(&buckets, &peer_ids);
    (atoms::ok(), chunks(env, &lines), want).encode(env)
}

/// `kb_lines(H, Ids) -> {ok, [Lines]}`: the records with these ids, as chunks of lines.
#[rustler::nif(schedule = "DirtyCpu")]
fn kb_lines<'a>(env: Env<'a>, h: Term<'a>, wanted: Term<'a>) -> Term<'a> {
    let h = match handle(h) {
        Ok(h) => h,
        Err(e) => return e,
    };
    match ids(wanted) {
        Ok(v) => ok(env, chunks(env, &h.0.lines_for(&v))),
        Err(e) => e,
    }
}
