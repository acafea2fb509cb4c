//! The planning workers: each takes a call handed over by a connection, reads the request,
//! answers it and sends the reply frame to the connection's writer.
//!
//! A `{plan, Input}` request is taken apart so that its topology's bytes can be matched against
//! the topologies kept ([`crate::cache`]): on a match, only the rest of the input is read. What
//! the reply does not need (the decoded request, a topology to keep) is dealt with after the
//! reply is sent.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use autonomic_core::planner::{plan_and_prepare, plan_prepared, PlanInput, PreparedTopology};
use smol::channel::Receiver;

use crate::convert::{self, InputError, TopologyFrom, Where};
use crate::dist;
use crate::etf::{Decoder, Encoder, EtfError, Term};
use crate::server::{inc, Job, Shared, MAX_TERMS};

/// Serves calls until the queue closes.
pub(crate) fn run(shared: &Arc<Shared>, queue: &Receiver<Job>) {
    while let Ok(job) = queue.recv_blocking() {
        let len = job.frame.len();
        serve_call(shared, &job);
        shared.in_flight.fetch_sub(len, Relaxed);
    }
}

fn serve_call(shared: &Shared, job: &Job) {
    let payload = &job.frame[job.payload_at..];
    let call = match dist::call_head(payload) {
        Ok(Some(call)) => call,
        // A plain message to `planner`, or garbage: there is nobody to answer.
        _ => {
            inc(&shared.stats.dropped);
            return;
        }
    };
    inc(&shared.stats.calls);
    let request = &payload[call.request_at..];
    // What the reply does not need is freed after the reply is sent: the caller need not wait
    // for a big topology's memory to be returned, or for it to be kept for later.
    let mut later = Later::default();
    // The planner has no known panic; should one surface, this caller gets an error and the
    // node keeps serving.
    let reply = catch_unwind(AssertUnwindSafe(|| {
        let mut e = Encoder::new();
        match plan_parts(request) {
            Ok(Some(parts)) => {
                let planned = plan_cached(shared, &parts, &mut e, &mut later);
                inc(if planned {
                    &shared.stats.plans
                } else {
                    &shared.stats.errors
                });
                later.terms.push(parts.input);
            }
            Ok(None) => match Decoder::new(request, MAX_TERMS).term() {
                Ok(req) => {
                    later.input = answer(shared, &req, &mut e);
                    later.terms.push(req);
                }
                Err(err) => bad_term(shared, &mut e, err),
            },
            Err(err) => bad_term(shared, &mut e, err),
        }
        e.buf
    }));
    let reply = reply.unwrap_or_else(|_| {
        inc(&shared.stats.panics);
        shared.log.error("a request made the planner panic");
        let mut e = Encoder::new();
        e.tuple(2).atom("error").atom("internal_error");
        e.buf
    });
    job.conn.reply(shared, &call, |e| {
        e.raw(&reply);
    });
    if let Some((bytes, topology)) = later.keep.take() {
        shared.cache.insert(bytes, topology);
    }
}

/// Work left for after the reply.
#[derive(Default)]
struct Later<'a> {
    terms: Vec<Term<'a>>,
    input: Option<PlanInput>,
    /// A topology to keep, with its encoding.
    keep: Option<(&'a [u8], PreparedTopology)>,
}

fn bad_term(shared: &Shared, e: &mut Encoder, err: EtfError) {
    inc(&shared.stats.errors);
    e.tuple(2)
        .atom("error")
        .tuple(2)
        .atom("bad_term")
        .atom(err.name());
}

/// A `{plan, Input}` request whose input is a map: the input with its `topology` value left
/// undecoded (an opaque placeholder), and that value's bytes.
struct PlanParts<'a> {
    input: Term<'a>,
    topology: Option<&'a [u8]>,
}

/// Takes a `{plan, Input}` request apart; `None` for any other request (or an input that is
/// not a map), which is read whole.
fn plan_parts(request: &[u8]) -> Result<Option<PlanParts<'_>>, EtfError> {
    let mut d = Decoder::new(request, MAX_TERMS);
    if d.cur.u8()? != 104 || d.cur.u8()? != 2 || !d.term()?.is_atom("plan") {
        return Ok(None);
    }
    if request.get(d.cur.pos()) != Some(&116) {
        return Ok(None);
    }
    let n = d.map_header()?;
    let mut pairs = Vec::with_capacity(n);
    let mut topology = None;
    for i in 0..n {
        let k = d.term()?;
        if topology.is_none() && k.is_atom("topology") {
            // Erlang writes a small map's keys in order, so `topology` comes last, and its value
            // runs to the end of the request: it need not be walked to find its end. Its bytes
            // are either those of a topology kept (validated when it was read) or read in full.
            topology = Some(if i + 1 == n {
                &request[d.cur.pos()..]
            } else {
                d.skip()?
            });
            pairs.push((k, Term::Opaque));
        } else {
            let v = d.term()?;
            pairs.push((k, v));
        }
    }
    Ok(Some(PlanParts {
        input: Term::Map(pairs),
        topology,
    }))
}

/// Plans from a request taken apart, on the kept prepared topology when its bytes match one;
/// true for a plan.
fn plan_cached<'a>(
    shared: &Shared,
    parts: &PlanParts<'a>,
    e: &mut Encoder,
    later: &mut Later<'a>,
) -> bool {
    if let Some(prepared) = parts.topology.and_then(|b| shared.cache.get(b)) {
        inc(&shared.stats.topology_hits);
        let result = convert::read(&parts.input, TopologyFrom::Prepared)
            .and_then(|(req, _)| plan_prepared(&prepared, &req).map_err(InputError::Invalid));
        return convert::encode_result(e, result);
    }
    let topology_term = match parts.topology.map(|b| Decoder::new(b, MAX_TERMS).term()) {
        Some(Ok(t)) => Some(t),
        Some(Err(err)) => {
            bad_term(shared, e, err);
            return false;
        }
        None => None,
    };
    let from = topology_term
        .as_ref()
        .map_or(TopologyFrom::Prepared, TopologyFrom::Term);
    let read = convert::read(&parts.input, from);
    if let Some(t) = topology_term {
        later.terms.push(t);
    }
    let (request, topology) = match read {
        Ok((request, Some(topology))) => (request, topology),
        // A missing topology is an error `read` reports; this is for the type checker.
        Ok((_, None)) => {
            return convert::encode_result(e, Err(InputError::MissingKey(Where::Input, "topology")))
        }
        Err(err) => return convert::encode_result(e, Err(err)),
    };
    inc(&shared.stats.topology_misses);
    let (result, prepared) = plan_and_prepare(PlanInput {
        analysis: request.analysis,
        topology,
        effectiveness: request.effectiveness,
        policy: request.policy,
    });
    if let (Some(prepared), Some(bytes)) = (prepared, parts.topology) {
        later.keep = Some((bytes, prepared));
    }
    convert::encode_result(e, result.map_err(InputError::Invalid))
}

/// Writes the reply to a request; returns the plan input read, if any, to be freed later.
fn answer(shared: &Shared, req: &Term<'_>, e: &mut Encoder) -> Option<PlanInput> {
    match req {
        Term::Tuple(t) if t.len() == 2 && t[0].is_atom("plan") => {
            let (planned, input) = convert::plan_reply(e, &t[1]);
            inc(if planned {
                &shared.stats.plans
            } else {
                &shared.stats.errors
            });
            input
        }
        Term::Atom(a) if a == "stats" => {
            stats(shared, e);
            None
        }
        _ => {
            inc(&shared.stats.errors);
            e.tuple(2).atom("error").atom("unknown_request");
            None
        }
    }
}

fn stats(shared: &Shared, e: &mut Encoder) {
    let s = &shared.stats;
    let load = |c: &AtomicU64| i64::try_from(c.load(Relaxed)).unwrap_or(i64::MAX);
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let figures: Vec<(&str, i64)> = vec![
        ("calls", load(&s.calls)),
        ("connections", load(&s.connections)),
        ("dropped", load(&s.dropped)),
        ("errors", load(&s.errors)),
        ("handshake_failures", load(&s.handshake_failures)),
        ("net_kernel_calls", load(&s.net_kernel_calls)),
        ("overloaded", load(&s.overloaded)),
        ("panics", load(&s.panics)),
        ("plans", load(&s.plans)),
        ("replies_dropped", load(&s.replies_dropped)),
        ("too_large", load(&s.too_large)),
        ("topologies_kept", count(shared.cache.len())),
        ("topology_hits", load(&s.topology_hits)),
        ("topology_misses", load(&s.topology_misses)),
        ("unknown_name", load(&s.unknown_name)),
        ("workers", count(shared.cfg.workers.max(1))),
    ];
    // The pair count is the list's length plus `version`: the two cannot drift apart.
    e.tuple(2).atom("ok").map(figures.len() + 1);
    for (k, v) in figures {
        e.atom(k).int(v);
    }
    e.atom("version")
        .binary(env!("CARGO_PKG_VERSION").as_bytes());
}
