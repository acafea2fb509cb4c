//! Erlang terms to the planner's input, and its plan (or error) back to terms.
//!
//! The input is read in a fixed order (input keys, analysis, topology, effectiveness, policy;
//! within each, key by key as listed below) and the first problem is reported, so the same
//! input always gives the same error. `autonomic_planner_builtin` reads it in the same order and
//! reports the same errors. Sizes are checked before anything is built from a list.
//!
//! Types: a *label* is an atom or a binary of 1 to 255 bytes; a *number* is a float or an
//! integer of magnitude at most 2^53 (exact as a float); an *integer* is an integer of magnitude
//! at most 2^53. Maps of data (analysis, topology, nodes, services, effectiveness entries) may
//! carry extra keys, which are ignored; the input map and the policy, which a human writes,
//! may not (a misspelt key is an error, not a silently ignored setting).

use std::collections::BTreeMap;

use autonomic_core::planner::*;

use crate::etf::{Encoder, Term};

/// Where in the input a problem is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Where {
    Input,
    Analysis,
    Topology,
    Node,
    Service,
    Effectiveness,
    Stats(Strategy),
    Policy,
    Allowed,
    DefaultRecovery,
}

/// A key that is a fixed atom or a label (a failure type in `allowed`).
#[derive(Clone, Debug, PartialEq)]
pub enum Key {
    Name(&'static str),
    Label(Label),
}

/// Why an input term was rejected.
#[derive(Clone, Debug, PartialEq)]
pub enum InputError {
    NotAMap(Where),
    MissingKey(Where, &'static str),
    UnknownKey(Where, String),
    BadKey(Where),
    BadValue(Where, Key),
    TooMany(&'static str, usize),
    UnknownStrategy(String),
    Invalid(PlanError),
}

type R<T> = Result<T, InputError>;

fn bad(w: Where, k: &'static str) -> InputError {
    InputError::BadValue(w, Key::Name(k))
}

fn as_map<'t, 'a>(t: &'t Term<'a>, w: Where) -> R<&'t [(Term<'a>, Term<'a>)]> {
    match t {
        Term::Map(pairs) => Ok(pairs),
        _ => Err(InputError::NotAMap(w)),
    }
}

fn required<'t, 'a>(m: &'t Term<'a>, w: Where, k: &'static str) -> R<&'t Term<'a>> {
    m.get(k).ok_or(InputError::MissingKey(w, k))
}

/// Checks that every key is an atom and one of `known`; the smallest unknown one is named.
fn known_keys(pairs: &[(Term<'_>, Term<'_>)], w: Where, known: &[&str]) -> R<()> {
    let mut unknown: Option<&str> = None;
    for (k, _) in pairs {
        let Some(a) = k.atom() else {
            return Err(InputError::BadKey(w));
        };
        if !known.contains(&a) && unknown.is_none_or(|u| a < u) {
            unknown = Some(a);
        }
    }
    match unknown {
        Some(a) => Err(InputError::UnknownKey(w, a.to_owned())),
        None => Ok(()),
    }
}

const MAX_EXACT: i64 = MAX_INTEGER;

fn label(t: &Term<'_>) -> Option<Label> {
    match t {
        Term::Atom(a) => Some(Label::atom(a.as_ref())),
        Term::Binary(b) => Label::binary(b.to_vec()),
        _ => None,
    }
}

fn number(t: &Term<'_>) -> Option<f64> {
    match *t {
        Term::Float(f) if f.is_finite() => Some(f),
        Term::Int(i) if (-MAX_EXACT..=MAX_EXACT).contains(&i) => Some(i as f64),
        _ => None,
    }
}

fn integer(t: &Term<'_>) -> Option<i64> {
    match *t {
        Term::Int(i) if (-MAX_EXACT..=MAX_EXACT).contains(&i) => Some(i),
        _ => None,
    }
}

fn boolean(t: &Term<'_>) -> Option<bool> {
    match t.atom() {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    }
}

/// A proper list's elements (a list of bytes is a list too, of integers).
fn list<'t, 'a>(t: &'t Term<'a>) -> Option<ListView<'t, 'a>> {
    match t {
        Term::List(items) => Some(ListView::Terms(items)),
        Term::Bytes(b) => Some(ListView::Bytes(b)),
        _ => None,
    }
}

enum ListView<'t, 'a> {
    Terms(&'t [Term<'a>]),
    Bytes(&'a [u8]),
}

impl<'t, 'a> ListView<'t, 'a> {
    fn len(&self) -> usize {
        match self {
            ListView::Terms(t) => t.len(),
            ListView::Bytes(b) => b.len(),
        }
    }

    /// Converts every element, or fails on the first that does not convert (integers never
    /// convert to the labels and atoms lists hold).
    fn all<T>(&self, f: impl Fn(&Term<'a>) -> Option<T>) -> Option<Vec<T>> {
        match self {
            ListView::Terms(items) => items.iter().map(f).collect(),
            ListView::Bytes(b) => b.iter().map(|&x| f(&Term::Int(i64::from(x)))).collect(),
        }
    }
}

/// A list of at most `max` elements, each converted by `f`.
fn list_of<T>(
    t: &Term<'_>,
    w: Where,
    k: &'static str,
    max: usize,
    f: impl Fn(&Term<'_>) -> Option<T>,
) -> R<Vec<T>> {
    let l = list(t).ok_or(bad(w, k))?;
    if l.len() > max {
        return Err(InputError::TooMany(k, max));
    }
    l.all(f).ok_or(bad(w, k))
}

fn optional<'t, 'a, T>(
    m: &'t Term<'a>,
    k: &'static str,
    f: impl FnOnce(&'t Term<'a>) -> R<T>,
) -> R<Option<T>> {
    m.get(k).map(f).transpose()
}

/// Where an input's topology comes from.
#[derive(Clone, Copy)]
pub enum TopologyFrom<'t, 'a> {
    /// This term, to be read.
    Term(&'t Term<'a>),
    /// A topology already read and prepared: the input's `topology` value is not looked at.
    Prepared,
}

/// Reads a plan request's input, in the documented order, converting the topology only when
/// it comes as a term.
pub fn read(t: &Term<'_>, from: TopologyFrom<'_, '_>) -> R<(PlanRequest, Option<Topology>)> {
    let pairs = as_map(t, Where::Input)?;
    known_keys(
        pairs,
        Where::Input,
        &["analysis", "effectiveness", "policy", "topology"],
    )?;
    let analysis_t = required(t, Where::Input, "analysis")?;
    required(t, Where::Input, "topology")?;
    let analysis = analysis(analysis_t)?;
    let topology = match from {
        TopologyFrom::Term(topology_t) => Some(topology(topology_t)?),
        TopologyFrom::Prepared => None,
    };
    let effectiveness = match t.get("effectiveness") {
        Some(e) => effectiveness(e)?,
        None => BTreeMap::new(),
    };
    let policy = match t.get("policy") {
        Some(p) => policy(p)?,
        None => PolicySpec::default(),
    };
    Ok((
        PlanRequest {
            analysis,
            effectiveness,
            policy,
        },
        topology,
    ))
}

/// Reads a plan request's whole input.
pub fn input(t: &Term<'_>) -> R<PlanInput> {
    let from = t
        .get("topology")
        .map_or(TopologyFrom::Prepared, TopologyFrom::Term);
    let (request, topology) = read(t, from)?;
    Ok(PlanInput {
        analysis: request.analysis,
        // Only missing when `topology` is, which `read` reports.
        topology: topology.unwrap_or_default(),
        effectiveness: request.effectiveness,
        policy: request.policy,
    })
}

fn analysis(t: &Term<'_>) -> R<Analysis> {
    let w = Where::Analysis;
    as_map(t, w)?;
    let failure_type = label(required(t, w, "failure_type")?).ok_or(bad(w, "failure_type"))?;
    let root_cause = optional(t, "root_cause", |v| label(v).ok_or(bad(w, "root_cause")))?
        .unwrap_or_else(|| Label::atom("undefined"));
    let confidence = number(required(t, w, "confidence")?).ok_or(bad(w, "confidence"))?;
    let affected_nodes = optional(t, "affected_nodes", |v| {
        list_of(v, w, "affected_nodes", MAX_NODES, |x| {
            x.atom().map(str::to_owned)
        })
    })?
    .unwrap_or_default();
    let affected_services = optional(t, "affected_services", |v| {
        list_of(v, w, "affected_services", MAX_SERVICES, label)
    })?
    .unwrap_or_default();
    Ok(Analysis {
        failure_type,
        root_cause,
        confidence,
        affected_nodes,
        affected_services,
    })
}

fn topology(t: &Term<'_>) -> R<Topology> {
    let w = Where::Topology;
    as_map(t, w)?;
    let nodes_t = list(required(t, w, "nodes")?).ok_or(bad(w, "nodes"))?;
    if nodes_t.len() > MAX_NODES {
        return Err(InputError::TooMany("nodes", MAX_NODES));
    }
    let mut nodes = Vec::with_capacity(nodes_t.len());
    match nodes_t {
        ListView::Terms(items) => {
            for n in items {
                nodes.push(node(n)?);
            }
        }
        // A list of integers: the first is not a map.
        ListView::Bytes(b) if !b.is_empty() => return Err(InputError::NotAMap(Where::Node)),
        ListView::Bytes(_) => {}
    }
    let mut services = Vec::new();
    if let Some(st) = t.get("services") {
        let l = list(st).ok_or(bad(w, "services"))?;
        if l.len() > MAX_SERVICES {
            return Err(InputError::TooMany("services", MAX_SERVICES));
        }
        match l {
            ListView::Terms(items) => {
                services.reserve(items.len());
                let mut edges = 0usize;
                for s in items {
                    let s = service(s)?;
                    edges += s.depends_on.len();
                    if edges > MAX_DEPENDENCIES {
                        return Err(InputError::TooMany("dependencies", MAX_DEPENDENCIES));
                    }
                    services.push(s);
                }
            }
            ListView::Bytes(b) if !b.is_empty() => return Err(InputError::NotAMap(Where::Service)),
            ListView::Bytes(_) => {}
        }
    }
    Ok(Topology { nodes, services })
}

fn node(t: &Term<'_>) -> R<NodeSpec> {
    let w = Where::Node;
    as_map(t, w)?;
    let name = required(t, w, "name")?
        .atom()
        .ok_or(bad(w, "name"))?
        .to_owned();
    let headroom = optional(t, "headroom", |v| number(v).ok_or(bad(w, "headroom")))?;
    let up = optional(t, "up", |v| boolean(v).ok_or(bad(w, "up")))?;
    Ok(NodeSpec {
        name,
        headroom: headroom.unwrap_or(0.0),
        up: up.unwrap_or(true),
    })
}

fn service(t: &Term<'_>) -> R<ServiceSpec> {
    let w = Where::Service;
    as_map(t, w)?;
    let name = label(required(t, w, "name")?).ok_or(bad(w, "name"))?;
    let node = required(t, w, "node")?
        .atom()
        .ok_or(bad(w, "node"))?
        .to_owned();
    let depends_on = optional(t, "depends_on", |v| {
        list_of(v, w, "depends_on", MAX_DEPENDS_ON, label)
    })?
    .unwrap_or_default();
    let supervisor = optional(t, "supervisor", |v| label(v).ok_or(bad(w, "supervisor")))?;
    let load = optional(t, "load", |v| number(v).ok_or(bad(w, "load")))?;
    Ok(ServiceSpec {
        name,
        node,
        depends_on,
        supervisor,
        load: load.unwrap_or(0.0),
    })
}

/// Atom keys naming strategies, sorted by name; a non-atom key or an unknown strategy (the
/// smallest) is an error.
fn strategy_keys<'t, 'a>(
    pairs: &'t [(Term<'a>, Term<'a>)],
    w: Where,
) -> R<Vec<(Strategy, &'t Term<'a>)>> {
    let mut keyed: Vec<(&str, &Term<'a>)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        keyed.push((k.atom().ok_or(InputError::BadKey(w))?, v));
    }
    keyed.sort_by(|a, b| a.0.cmp(b.0));
    keyed
        .into_iter()
        .map(|(k, v)| {
            Strategy::from_name(k)
                .map(|s| (s, v))
                .ok_or_else(|| InputError::UnknownStrategy(k.to_owned()))
        })
        .collect()
}

fn effectiveness(t: &Term<'_>) -> R<BTreeMap<Strategy, StrategyStats>> {
    let pairs = as_map(t, Where::Effectiveness)?;
    let mut out = BTreeMap::new();
    for (s, v) in strategy_keys(pairs, Where::Effectiveness)? {
        let w = Where::Stats(s);
        as_map(v, w)?;
        let successes = integer(required(v, w, "successes")?).ok_or(bad(w, "successes"))?;
        let failures = integer(required(v, w, "failures")?).ok_or(bad(w, "failures"))?;
        let mean_recovery_ms = optional(v, "mean_recovery_ms", |m| {
            if m.is_atom("undefined") {
                Ok(None)
            } else {
                number(m).map(Some).ok_or(bad(w, "mean_recovery_ms"))
            }
        })?
        .flatten();
        out.insert(
            s,
            StrategyStats {
                successes,
                failures,
                mean_recovery_ms,
            },
        );
    }
    Ok(out)
}

const POLICY_KEYS: [&str; 9] = [
    "allowed",
    "blast_radius_limit",
    "default_recovery_ms",
    "degrade_impact",
    "quorum_size",
    "shed_percent",
    "slo_budget_ms",
    "step_ms",
    "throttle_percent",
];

fn policy(t: &Term<'_>) -> R<PolicySpec> {
    let w = Where::Policy;
    let pairs = as_map(t, w)?;
    known_keys(pairs, w, &POLICY_KEYS)?;
    let allowed = optional(t, "allowed", allowed)?.unwrap_or_default();
    let num = |k: &'static str| optional(t, k, |v| number(v).ok_or(bad(w, k)));
    let int = |k: &'static str| optional(t, k, |v| integer(v).ok_or(bad(w, k)));
    let slo_budget_ms = num("slo_budget_ms")?;
    let blast_radius_limit = int("blast_radius_limit")?;
    let quorum_size = int("quorum_size")?;
    let default_recovery_ms = optional(t, "default_recovery_ms", |v| {
        let pairs = match v {
            Term::Map(p) => p,
            _ => return Err(bad(w, "default_recovery_ms")),
        };
        let mut out = BTreeMap::new();
        for (s, ms) in strategy_keys(pairs, Where::DefaultRecovery)? {
            let ms = number(ms).ok_or(bad(Where::DefaultRecovery, s.name()))?;
            out.insert(s, ms);
        }
        Ok(out)
    })?
    .unwrap_or_default();
    let step_ms = num("step_ms")?;
    let shed_percent = int("shed_percent")?;
    let throttle_percent = int("throttle_percent")?;
    let degrade_impact = num("degrade_impact")?;
    Ok(PolicySpec {
        allowed,
        slo_budget_ms,
        blast_radius_limit,
        quorum_size,
        default_recovery_ms,
        step_ms,
        shed_percent,
        throttle_percent,
        degrade_impact,
    })
}

fn allowed(t: &Term<'_>) -> R<BTreeMap<Label, Vec<Strategy>>> {
    let pairs = match t {
        Term::Map(p) => p,
        _ => return Err(bad(Where::Policy, "allowed")),
    };
    if pairs.len() > MAX_ALLOWED {
        return Err(InputError::TooMany("allowed", MAX_ALLOWED));
    }
    let mut keyed: Vec<(Label, &Term<'_>)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        keyed.push((label(k).ok_or(InputError::BadKey(Where::Allowed))?, v));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = BTreeMap::new();
    for (ft, v) in keyed {
        let not_list = || InputError::BadValue(Where::Allowed, Key::Label(ft.clone()));
        let l = list(v).ok_or_else(not_list)?;
        let names = l
            .all(|x| x.atom().map(str::to_owned))
            .ok_or_else(not_list)?;
        let mut strategies = Vec::with_capacity(names.len());
        for n in names {
            strategies.push(Strategy::from_name(&n).ok_or(InputError::UnknownStrategy(n))?);
        }
        out.insert(ft, strategies);
    }
    Ok(out)
}

// --- encoding ---

fn label_term(e: &mut Encoder, l: &Label) {
    match (l.as_atom(), l.as_binary()) {
        (Some(a), _) => e.atom(a),
        (_, Some(b)) => e.binary(b),
        _ => e.atom("undefined"),
    };
}

fn where_term(e: &mut Encoder, w: Where) {
    match w {
        Where::Input => e.atom("input"),
        Where::Analysis => e.atom("analysis"),
        Where::Topology => e.atom("topology"),
        Where::Node => e.atom("node"),
        Where::Service => e.atom("service"),
        Where::Effectiveness => e.atom("effectiveness"),
        Where::Stats(s) => e.tuple(2).atom("effectiveness").atom(s.name()),
        Where::Policy => e.atom("policy"),
        Where::Allowed => e.atom("allowed"),
        Where::DefaultRecovery => e.atom("default_recovery_ms"),
    };
}

fn place_where(p: Place) -> Where {
    match p {
        Place::Analysis => Where::Analysis,
        Place::Node => Where::Node,
        Place::Service => Where::Service,
        Place::Effectiveness(s) => Where::Stats(s),
        Place::Policy => Where::Policy,
        Place::DefaultRecovery => Where::DefaultRecovery,
    }
}

/// `{invalid_input, Detail}`.
pub fn encode_input_error(e: &mut Encoder, err: &InputError) {
    e.tuple(2).atom("invalid_input");
    match err {
        InputError::NotAMap(w) => {
            e.tuple(2).atom("not_a_map");
            where_term(e, *w);
        }
        InputError::MissingKey(w, k) => {
            e.tuple(3).atom("missing_key");
            where_term(e, *w);
            e.atom(k);
        }
        InputError::UnknownKey(w, k) => {
            e.tuple(3).atom("unknown_key");
            where_term(e, *w);
            e.atom(k);
        }
        InputError::BadKey(w) => {
            e.tuple(2).atom("bad_key");
            where_term(e, *w);
        }
        InputError::BadValue(w, k) => {
            e.tuple(3).atom("bad_value");
            where_term(e, *w);
            match k {
                Key::Name(n) => e.atom(n),
                Key::Label(l) => {
                    label_term(e, l);
                    e
                }
            };
        }
        InputError::TooMany(what, max) => {
            e.tuple(3)
                .atom("too_many")
                .atom(what)
                .int(i64::try_from(*max).unwrap_or(i64::MAX));
        }
        InputError::UnknownStrategy(s) => {
            e.tuple(2).atom("unknown_strategy").atom(s);
        }
        InputError::Invalid(p) => encode_plan_error(e, p),
    }
}

fn encode_plan_error(e: &mut Encoder, p: &PlanError) {
    match p {
        PlanError::TooMany { what, max } => {
            e.tuple(3)
                .atom("too_many")
                .atom(what)
                .int(i64::try_from(*max).unwrap_or(i64::MAX));
        }
        PlanError::OutOfRange { place, key } => {
            e.tuple(3).atom("bad_value");
            where_term(e, place_where(*place));
            e.atom(key);
        }
        PlanError::DuplicateNode(n) => {
            e.tuple(2).atom("duplicate_node").atom(n);
        }
        PlanError::DuplicateService(s) => {
            e.tuple(2).atom("duplicate_service");
            label_term(e, s);
        }
        PlanError::UnknownNode(n) => {
            e.tuple(2).atom("unknown_node").atom(n);
        }
        PlanError::UnknownService(s) => {
            e.tuple(2).atom("unknown_service");
            label_term(e, s);
        }
        PlanError::UnknownDependency {
            service,
            dependency,
        } => {
            e.tuple(3).atom("unknown_dependency");
            label_term(e, service);
            label_term(e, dependency);
        }
        PlanError::DependencyCycle(s) => {
            e.tuple(2).atom("dependency_cycle");
            label_term(e, s);
        }
    }
}

fn int_u64(e: &mut Encoder, v: u64) {
    e.int(i64::try_from(v).unwrap_or(i64::MAX));
}

fn reject_reason(e: &mut Encoder, r: &RejectReason) {
    match r {
        RejectReason::BlastRadius { radius, limit } => {
            e.tuple(3).atom("blast_radius");
            int_u64(e, *radius);
            int_u64(e, *limit);
        }
        RejectReason::Quorum { remaining, quorum } => {
            e.tuple(3).atom("quorum");
            int_u64(e, *remaining);
            int_u64(e, *quorum);
        }
        RejectReason::NoCapacity => {
            e.atom("no_capacity");
        }
        RejectReason::NodeDown(n) => {
            e.tuple(2).atom("node_down").atom(n);
        }
        RejectReason::NothingToActOn => {
            e.atom("nothing_to_act_on");
        }
    }
}

fn step(e: &mut Encoder, s: &Step) {
    let action = s.action();
    match s {
        Step::RestartChild {
            service,
            node,
            scope,
        } => {
            e.map(4).atom("action").atom(action).atom("service");
            label_term(e, service);
            e.atom("node").atom(node).atom("scope").atom(scope.name());
        }
        Step::RestartSupervisor { supervisor, node } => {
            e.map(3).atom("action").atom(action).atom("supervisor");
            label_term(e, supervisor);
            e.atom("node").atom(node);
        }
        Step::RemoveNode { node } | Step::AddNode { node } => {
            e.map(2).atom("action").atom(action).atom("node").atom(node);
        }
        Step::Failover { service, from, to } | Step::Failback { service, from, to } => {
            e.map(4).atom("action").atom(action).atom("service");
            label_term(e, service);
            e.atom("from").atom(from).atom("to").atom(to);
        }
        Step::Shed { service, percent } | Step::Throttle { service, percent } => {
            e.map(3).atom("action").atom(action).atom("service");
            label_term(e, service);
            e.atom("percent").int(i64::from(*percent));
        }
        Step::StopShedding { service }
        | Step::Unthrottle { service }
        | Step::Degrade { service }
        | Step::Restore { service }
        | Step::Pause { service }
        | Step::Resume { service } => {
            e.map(2).atom("action").atom(action).atom("service");
            label_term(e, service);
        }
        Step::Escalate {
            failure_type,
            root_cause,
            reason,
            rejected,
        } => {
            e.map(5).atom("action").atom(action).atom("failure_type");
            label_term(e, failure_type);
            e.atom("root_cause");
            label_term(e, root_cause);
            e.atom("reason").atom(reason.name()).atom("rejected");
            e.list(rejected.len());
            for r in rejected {
                e.map(if r.scope.is_some() { 3 } else { 2 })
                    .atom("strategy")
                    .atom(r.strategy.name())
                    .atom("reason");
                reject_reason(e, &r.reason);
                if let Some(scope) = r.scope {
                    e.atom("scope").atom(scope.name());
                }
            }
            if !rejected.is_empty() {
                e.nil();
            }
        }
    }
}

fn steps(e: &mut Encoder, list: &[Step]) {
    e.list(list.len());
    for s in list {
        step(e, s);
    }
    if !list.is_empty() {
        e.nil();
    }
}

/// The plan map, with `planner => cnode`.
pub fn encode_plan(e: &mut Encoder, p: &Plan) {
    e.map(7).atom("strategy").atom(p.strategy.name());
    e.atom("steps");
    steps(e, &p.steps);
    e.atom("rollback");
    steps(e, &p.rollback);
    e.atom("estimated_ms");
    int_u64(e, p.estimated_ms);
    e.atom("cost").map(4);
    e.atom("downtime").float(p.cost.downtime);
    e.atom("resource").float(p.cost.resource);
    e.atom("risk").float(p.cost.risk);
    e.atom("total").float(p.cost.total);
    e.atom("confidence").float(p.confidence);
    e.atom("planner").atom("cnode");
}

/// `{ok, Plan}` or `{error, {invalid_input, Detail}}`; true for a plan.
pub fn encode_result(e: &mut Encoder, result: Result<Plan, InputError>) -> bool {
    match result {
        Ok(p) => {
            e.tuple(2).atom("ok");
            encode_plan(e, &p);
            true
        }
        Err(err) => {
            e.tuple(2).atom("error");
            encode_input_error(e, &err);
            false
        }
    }
}

/// Plans a request's input: `{ok, Plan}` or `{error, {invalid_input, Detail}}`. Returns
/// whether it made a plan, and the input read, so that the caller can free it after sending the
/// reply (freeing a big topology takes a millisecond the caller need not wait for).
pub fn plan_reply(e: &mut Encoder, t: &Term<'_>) -> (bool, Option<PlanInput>) {
    let input = match input(t) {
        Ok(i) => i,
        Err(err) => {
            e.tuple(2).atom("error");
            encode_input_error(e, &err);
            return (false, None);
        }
    };
    match plan(&input) {
        Ok(p) => {
            e.tuple(2).atom("ok");
            encode_plan(e, &p);
            (true, Some(input))
        }
        Err(err) => {
            e.tuple(2).atom("error");
            encode_input_error(e, &InputError::Invalid(err));
            (false, Some(input))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etf::Decoder;

    /// Decodes `term_to_binary` output taken from a real OTP 25 node.
    fn with_term<T>(bytes: &[u8], f: impl FnOnce(&Term<'_>) -> T) -> T {
        let t = Decoder::new(bytes, 1_000_000).versioned().unwrap();
        f(&t)
    }

    fn enc(build: impl FnOnce(&mut Encoder)) -> Vec<u8> {
        let mut e = Encoder::new();
        e.version();
        build(&mut e);
        e.buf
    }

    fn minimal(extra: impl FnOnce(&mut Encoder), extra_pairs: u32) -> Vec<u8> {
        enc(|e| {
            e.map(2 + extra_pairs as usize).atom("analysis").map(2);
            e.atom("failure_type").atom("process_crash");
            e.atom("confidence").float(0.5);
            e.atom("topology").map(1).atom("nodes").list(1);
            e.map(1).atom("name").atom("n1@h").nil();
            extra(e);
        })
    }

    #[test]
    fn minimal_input_plans() {
        let bytes = minimal(|_| {}, 0);
        with_term(&bytes, |t| {
            let i = input(t).unwrap();
            assert_eq!(i.topology.nodes[0].name, "n1@h");
            assert_eq!(i.topology.nodes[0].headroom, 0.0);
            assert!(i.topology.nodes[0].up);
            assert_eq!(i.analysis.root_cause, Label::atom("undefined"));
            let p = plan(&i).unwrap();
            assert_eq!(p.strategy, Strategy::Escalate);
        });
    }

    #[test]
    fn type_errors_are_named_in_order() {
        let check = |bytes: Vec<u8>, want: InputError| {
            with_term(&bytes, |t| assert_eq!(input(t), Err(want)));
        };
        check(
            enc(|e| {
                e.atom("nope");
            }),
            InputError::NotAMap(Where::Input),
        );
        check(
            minimal(
                |e| {
                    e.atom("zeta").int(1).atom("beta").int(2);
                },
                2,
            ),
            InputError::UnknownKey(Where::Input, "beta".into()),
        );
        check(
            minimal(
                |e| {
                    e.int(7).int(1);
                },
                1,
            ),
            InputError::BadKey(Where::Input),
        );
        check(
            enc(|e| {
                e.map(1).atom("analysis").map(0);
            }),
            InputError::MissingKey(Where::Input, "topology"),
        );
        check(
            enc(|e| {
                e.map(2).atom("analysis").map(1).atom("failure_type").int(3);
                e.atom("topology").map(0);
            }),
            bad(Where::Analysis, "failure_type"),
        );
        check(
            minimal(
                |e| {
                    e.atom("policy").map(1).atom("slo_budget").int(1);
                },
                1,
            ),
            InputError::UnknownKey(Where::Policy, "slo_budget".into()),
        );
        check(
            minimal(
                |e| {
                    e.atom("policy").map(1).atom("allowed").map(1);
                    e.atom("node_down").list(1).atom("reboot").nil();
                },
                1,
            ),
            InputError::UnknownStrategy("reboot".into()),
        );
        check(
            minimal(
                |e| {
                    e.atom("effectiveness").map(1).atom("throttle").map(1);
                    e.atom("successes").int(1);
                },
                1,
            ),
            InputError::MissingKey(Where::Stats(Strategy::Throttle), "failures"),
        );
        // Integers beyond 2^53 are refused.
        check(
            minimal(
                |e| {
                    e.atom("policy")
                        .map(1)
                        .atom("quorum_size")
                        .int((1 << 53) + 1);
                },
                1,
            ),
            bad(Where::Policy, "quorum_size"),
        );
    }

    #[test]
    fn byte_lists_are_lists_of_integers() {
        // affected_services => "ab": a list, but of integers, not labels.
        let bytes = enc(|e| {
            e.map(2).atom("analysis").map(3);
            e.atom("failure_type").atom("x").atom("confidence").int(1);
            e.atom("affected_services").raw(&[107, 0, 2, b'a', b'b']);
            e.atom("topology").map(1).atom("nodes").nil();
        });
        with_term(&bytes, |t| {
            assert_eq!(input(t), Err(bad(Where::Analysis, "affected_services")))
        });
    }

    #[test]
    fn plans_encode_to_terms_that_decode() {
        let bytes = minimal(|_| {}, 0);
        let mut e = Encoder::new();
        e.version();
        assert!(with_term(&bytes, |t| plan_reply(&mut e, t).0));
        let back = Decoder::new(&e.buf, 1_000_000).versioned().unwrap();
        let Term::Tuple(items) = back else { panic!() };
        assert!(items[0].is_atom("ok"));
        assert!(items[1].get("planner").unwrap().is_atom("cnode"));
        assert!(items[1].get("strategy").unwrap().is_atom("escalate"));
    }
}
