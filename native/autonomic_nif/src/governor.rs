//! NIFs of the per-tenant governor: one `autonomic_core::governor::Governor` per tenant, kept in
//! a sharded map so that tenants never wait on each other's locks (a lock covers one shard, for
//! the tens of nanoseconds one transition takes), and one set of thresholds for the node.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

use autonomic_core::governor::{
    Action, Event, Governor, Outcome, Percent, State, ThresholdError, ThresholdName, Thresholds,
    FENCED,
};
use parking_lot::{Mutex, RwLock};
use rustler::{Atom, Binary, Encoder, Env, MapIterator, Term};

use crate::atoms;

/// Number of lock shards; a power of two well above the number of schedulers.
const SHARDS: usize = 64;
/// Longest tenant name accepted, in bytes (DESIGN.md: 1..256).
const MAX_TENANT_BYTES: usize = 256;

type Shard = Mutex<HashMap<Box<[u8]>, Governor>>;

/// The node's governors. Created on first use; lives as long as the library is loaded.
struct Registry {
    shards: Box<[Shard]>,
    shard_hasher: RandomState,
    thresholds: RwLock<Thresholds>,
    /// Raised while the node must not act (a minority partition): valid events are answered
    /// with [`FENCED`] and no governor changes.
    fenced: AtomicBool,
    clock: Instant,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
    shard_hasher: RandomState::new(),
    thresholds: RwLock::new(Thresholds::default()),
    fenced: AtomicBool::new(false),
    clock: Instant::now(),
});

impl Registry {
    fn shard(&self, tenant: &[u8]) -> &Shard {
        // The index is masked into range, so the lookup cannot fail.
        let i = (self.shard_hasher.hash_one(tenant) as usize) & (SHARDS - 1);
        &self.shards[i]
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Reads a tenant name: a binary of 1..=256 bytes.
fn tenant<'a>(term: Term<'a>) -> Option<Binary<'a>> {
    term.decode::<Binary>()
        .ok()
        .filter(|b| (1..=MAX_TENANT_BYTES).contains(&b.len()))
}

fn error<'a>(env: Env<'a>, reason: impl Encoder) -> Term<'a> {
    (atoms::error(), reason).encode(env)
}

/// Decodes an event, or returns the `{error, Reason}` term that explains why it is invalid.
fn decode_event<'a>(env: Env<'a>, term: Term<'a>) -> Result<Event, Term<'a>> {
    let unknown = || error(env, (atoms::unknown_event(), term));
    if let Ok(atom) = term.decode::<Atom>() {
        return if atom == atoms::action_succeeded() {
            Ok(Event::ActionSucceeded)
        } else if atom == atoms::action_failed() {
            Ok(Event::ActionFailed)
        } else if atom == atoms::reset() {
            Ok(Event::Reset)
        } else {
            Err(unknown())
        };
    }
    let Ok((tag, metric, value)) = term.decode::<(Atom, Term, Term)>() else {
        return Err(unknown());
    };
    if tag != atoms::signal() || !(metric.is_atom() || metric.is_binary()) {
        return Err(unknown());
    }
    // Integers and floats are accepted; bignums, atoms and anything else are not numbers here.
    value
        .decode::<f64>()
        .ok()
        .and_then(|v| Percent::new(v).ok())
        .map(Event::Signal)
        .ok_or_else(|| error(env, (atoms::invalid_signal(), value)))
}

fn state_atom(state: State) -> Atom {
    match state {
        State::Stable => atoms::stable(),
        State::Warn => atoms::warn(),
        State::Intervene => atoms::intervene(),
        State::Degrade => atoms::degrade(),
        State::Refuse => atoms::refuse(),
    }
}

fn encode_action<'a>(env: Env<'a>, action: Action) -> Term<'a> {
    match action {
        Action::None => atoms::none().encode(env),
        Action::Throttle(p) => (atoms::throttle(), p).encode(env),
        Action::Pause => atoms::pause().encode(env),
        Action::Shed(p) => (atoms::shed(), p).encode(env),
    }
}

/// `transition(Tenant, Event) -> {ok, State, Action} | {error, Reason}`.
/// Validation happens before any lock is taken, so bad input never changes state; it also
/// comes before the fence, so bad input gets its error whether or not the node is fenced.
#[rustler::nif]
fn governor_transition<'a>(env: Env<'a>, tenant_term: Term<'a>, event: Term<'a>) -> Term<'a> {
    let Some(tenant) = tenant(tenant_term) else {
        return error(env, atoms::invalid_tenant());
    };
    let event = match decode_event(env, event) {
        Ok(event) => event,
        Err(reason) => return reason,
    };
    let reg = &*REGISTRY;
    let outcome = if reg.fenced.load(Ordering::Acquire) {
        FENCED
    } else {
        apply(reg, tenant.as_slice(), event)
    };
    (
        atoms::ok(),
        state_atom(outcome.state),
        encode_action(env, outcome.action),
    )
        .encode(env)
}

/// Applies a valid event to the tenant's governor, creating it on first use.
fn apply(reg: &Registry, tenant: &[u8], event: Event) -> Outcome {
    let th = *reg.thresholds.read();
    let now = reg.now_ms();
    {
        let mut shard = reg.shard(tenant).lock();
        match shard.get_mut(tenant) {
            Some(g) => g.apply(event, &th, now),
            None => {
                let mut g = Governor::new(now);
                let o = g.apply(event, &th, now);
                shard.insert(Box::from(tenant), g);
                o
            }
        }
    }
}

/// `set_fence(Up :: boolean()) -> ok`: raises or lowers the node's fence (an atomic store).
#[rustler::nif]
fn governor_set_fence(up: bool) -> Atom {
    REGISTRY.fenced.store(up, Ordering::Release);
    atoms::ok()
}

/// `fenced() -> boolean()`.
#[rustler::nif]
fn governor_fenced() -> bool {
    REGISTRY.fenced.load(Ordering::Acquire)
}

/// `governor_info(Tenant) -> {ok, #{state, consecutive_high, time_in_state_ms, transitions}}`.
#[rustler::nif]
fn governor_info<'a>(env: Env<'a>, tenant_term: Term<'a>) -> Term<'a> {
    let Some(tenant) = tenant(tenant_term) else {
        return error(env, atoms::invalid_tenant());
    };
    let reg = &*REGISTRY;
    let now = reg.now_ms();
    let info = reg
        .shard(tenant.as_slice())
        .lock()
        .get(tenant.as_slice())
        .map(|g| g.info(now));
    let Some(info) = info else {
        return error(env, atoms::not_found());
    };
    let keys = [
        atoms::state().encode(env),
        atoms::consecutive_high().encode(env),
        atoms::time_in_state_ms().encode(env),
        atoms::transitions().encode(env),
    ];
    let values = [
        state_atom(info.state).encode(env),
        info.consecutive_high.encode(env),
        info.time_in_state_ms.encode(env),
        info.transitions.encode(env),
    ];
    match Term::map_from_term_arrays(env, &keys, &values) {
        Ok(map) => (atoms::ok(), map).encode(env),
        // Only possible with duplicate keys, which the arrays above do not have.
        Err(_) => error(env, atoms::error()),
    }
}

/// `forget_tenant(Tenant) -> ok`: drops the tenant's governor; its next event starts afresh.
#[rustler::nif]
fn governor_forget<'a>(env: Env<'a>, tenant_term: Term<'a>) -> Term<'a> {
    let Some(tenant) = tenant(tenant_term) else {
        return error(env, atoms::invalid_tenant());
    };
    REGISTRY
        .shard(tenant.as_slice())
        .lock()
        .remove(tenant.as_slice());
    atoms::ok().encode(env)
}

/// `governor_count() -> non_neg_integer()`: number of tenants with a governor on this node.
#[rustler::nif]
fn governor_count() -> usize {
    REGISTRY.shards.iter().map(|s| s.lock().len()).sum()
}

/// `governor_state_counts() -> #{State => Count}` over every tenant of the node. Walks all shards
/// (one lock at a time), which takes milliseconds with millions of tenants: dirty scheduler.
#[rustler::nif(schedule = "DirtyCpu")]
fn governor_state_counts(env: Env) -> Term {
    let mut counts = [0usize; State::ALL.len()];
    for shard in REGISTRY.shards.iter() {
        for g in shard.lock().values() {
            counts[g.state() as usize] += 1;
        }
    }
    let keys: Vec<Term> = State::ALL
        .iter()
        .map(|s| state_atom(*s).encode(env))
        .collect();
    let values: Vec<Term> = counts.iter().map(|c| c.encode(env)).collect();
    Term::map_from_term_arrays(env, &keys, &values).unwrap_or_else(|_| atoms::error().encode(env))
}

fn threshold_key(name: ThresholdName) -> Atom {
    match name {
        ThresholdName::Warn => atoms::warn(),
        ThresholdName::Intervene => atoms::intervene(),
        ThresholdName::Recover => atoms::recover(),
        ThresholdName::Calm => atoms::calm(),
        ThresholdName::Refuse => atoms::refuse(),
    }
}

fn encode_thresholds<'a>(env: Env<'a>, th: &Thresholds) -> Term<'a> {
    let pairs = [
        (atoms::warn(), th.warn),
        (atoms::intervene(), th.intervene),
        (atoms::recover(), th.recover),
        (atoms::calm(), th.calm),
        (atoms::refuse(), th.refuse),
    ];
    let mut keys: Vec<Term> = pairs.iter().map(|(k, _)| k.encode(env)).collect();
    let mut values: Vec<Term> = pairs.iter().map(|(_, v)| v.encode(env)).collect();
    keys.push(atoms::sustain().encode(env));
    values.push(th.sustain.encode(env));
    Term::map_from_term_arrays(env, &keys, &values).unwrap_or_else(|_| atoms::error().encode(env))
}

/// `governor_thresholds() -> #{warn, intervene, recover, calm, refuse, sustain}`.
#[rustler::nif]
fn governor_thresholds(env: Env) -> Term {
    encode_thresholds(env, &REGISTRY.thresholds.read())
}

/// `configure_governor(Map) -> ok | {error, {invalid_thresholds, Why}}`. The keys given are merged
/// over the thresholds in force; the result is validated as a whole and installed atomically.
#[rustler::nif]
fn governor_configure<'a>(env: Env<'a>, map: Term<'a>) -> Term<'a> {
    let invalid = |why: Term<'a>| error(env, (atoms::invalid_thresholds(), why));
    let Some(entries) = MapIterator::new(map) else {
        return invalid(atoms::not_a_map().encode(env));
    };
    let mut lock = REGISTRY.thresholds.write();
    let mut th = *lock;
    // The caller's terms per threshold, so an out-of-range error can echo what they passed.
    let mut given: Vec<(ThresholdName, Term<'a>)> = Vec::with_capacity(6);
    for (key, value) in entries {
        let slot = match key.decode::<Atom>() {
            Ok(k) if k == atoms::warn() => Some((ThresholdName::Warn, &mut th.warn)),
            Ok(k) if k == atoms::intervene() => Some((ThresholdName::Intervene, &mut th.intervene)),
            Ok(k) if k == atoms::recover() => Some((ThresholdName::Recover, &mut th.recover)),
            Ok(k) if k == atoms::calm() => Some((ThresholdName::Calm, &mut th.calm)),
            Ok(k) if k == atoms::refuse() => Some((ThresholdName::Refuse, &mut th.refuse)),
            Ok(k) if k == atoms::sustain() => None,
            _ => return invalid((atoms::unknown_key(), key).encode(env)),
        };
        match slot {
            Some((name, field)) => match value.decode::<f64>() {
                Ok(v) => {
                    *field = v;
                    given.push((name, value));
                }
                Err(_) => return invalid((atoms::not_a_number(), key, value).encode(env)),
            },
            None => match value.decode::<u32>() {
                Ok(v) => th.sustain = v,
                Err(_) => return invalid((atoms::invalid_sustain(), value).encode(env)),
            },
        }
    }
    match th.validate() {
        Ok(()) => {
            *lock = th;
            atoms::ok().encode(env)
        }
        Err(ThresholdError::OutOfRange { name, value }) => {
            let shown = given
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| *t)
                .unwrap_or_else(|| value.encode(env));
            invalid((atoms::out_of_range(), threshold_key(name), shown).encode(env))
        }
        Err(ThresholdError::Order { lower, upper, .. }) => {
            invalid((atoms::order(), threshold_key(lower), threshold_key(upper)).encode(env))
        }
        Err(ThresholdError::Sustain(v)) => invalid((atoms::invalid_sustain(), v).encode(env)),
    }
}
