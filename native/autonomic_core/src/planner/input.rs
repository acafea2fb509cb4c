//! The planner's input: the analysis, the topology, the knowledge base's effectiveness figures
//! and the policy. These are plain data; [`super::plan`] validates them (ranges, references,
//! cycles) before planning, and the C-node converts Erlang terms into them (types, sizes).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use super::model::Strategy;

/// Most nodes a topology may have.
pub const MAX_NODES: usize = 10_000;
/// Most services a topology may have.
pub const MAX_SERVICES: usize = 100_000;
/// Most dependencies one service may list.
pub const MAX_DEPENDS_ON: usize = 1_000;
/// Most dependency edges in a topology, over all services.
pub const MAX_DEPENDENCIES: usize = 1_000_000;
/// Most failure types the policy's `allowed` map may name.
pub const MAX_ALLOWED: usize = 1_000;
/// Longest binary label, in bytes (atoms are at most 255 characters by construction).
pub const MAX_LABEL_BYTES: usize = 255;
/// Largest integer accepted anywhere (2^53): every integer is then exact as an `f64`, in Rust
/// and in Erlang alike, which keeps the two planners bit-for-bit identical.
pub const MAX_INTEGER: i64 = 1 << 53;
/// Largest recovery time accepted, in milliseconds (about 31 years).
pub const MAX_RECOVERY_MS: f64 = 1.0e12;
/// Largest SLO budget accepted, in milliseconds.
pub const MAX_SLO_BUDGET_MS: f64 = 1.0e15;
/// Largest per-step overhead accepted, in milliseconds.
pub const MAX_STEP_MS: f64 = 1.0e9;

/// A name on the Erlang side: an atom or a binary of 1 to [`MAX_LABEL_BYTES`] bytes. An atom and a
/// binary with the same text are different labels.
///
/// Labels are ordered as Erlang orders terms: every atom before every binary, atoms by their
/// text, binaries byte by byte. The planner breaks every tie with this order, so the Erlang
/// planner (which sorts with the standard term order) takes the same decisions.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Label(LabelKind);

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum LabelKind {
    Atom(String),
    Binary(Vec<u8>),
}

impl Label {
    /// An atom label (an atom's text is at most 255 characters on the Erlang side).
    pub fn atom(text: impl Into<String>) -> Label {
        Label(LabelKind::Atom(text.into()))
    }

    /// A binary label, if it is 1 to [`MAX_LABEL_BYTES`] bytes long.
    pub fn binary(bytes: impl Into<Vec<u8>>) -> Option<Label> {
        let bytes = bytes.into();
        if bytes.is_empty() || bytes.len() > MAX_LABEL_BYTES {
            None
        } else {
            Some(Label(LabelKind::Binary(bytes)))
        }
    }

    /// The atom's text, when the label is an atom.
    pub fn as_atom(&self) -> Option<&str> {
        match &self.0 {
            LabelKind::Atom(a) => Some(a),
            LabelKind::Binary(_) => None,
        }
    }

    /// A key that orders labels as [`Ord`] does whenever the keys differ: the kind (atoms
    /// first), then the first 8 bytes as a big-endian number (zero-padded).
    pub(crate) fn sort_prefix(&self) -> (u8, u64) {
        let (kind, bytes) = match &self.0 {
            LabelKind::Atom(a) => (0, a.as_bytes()),
            LabelKind::Binary(b) => (1, b.as_slice()),
        };
        let mut w = [0u8; 8];
        let n = bytes.len().min(8);
        w[..n].copy_from_slice(&bytes[..n]);
        (kind, u64::from_be_bytes(w))
    }

    /// The binary's bytes, when the label is a binary.
    pub fn as_binary(&self) -> Option<&[u8]> {
        match &self.0 {
            LabelKind::Atom(_) => None,
            LabelKind::Binary(b) => Some(b),
        }
    }
}

impl PartialOrd for Label {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Label {
    fn cmp(&self, other: &Self) -> Ordering {
        // Derived on LabelKind: Atom < Binary, then String / Vec<u8> order, which is byte order
        // (UTF-8 byte order is code point order, as Erlang compares atoms).
        self.0.cmp(&other.0)
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            LabelKind::Atom(a) => write!(f, "{a}"),
            LabelKind::Binary(b) => write!(f, "<<{:?}>>", String::from_utf8_lossy(b)),
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What the Analyze phase concluded.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Selects the allowed strategies in the policy (`node_down`, `process_crash`, ...).
    pub failure_type: Label,
    /// Carried into an `escalate` step for the human; `undefined` when unknown.
    pub root_cause: Label,
    /// Confidence in the diagnosis, 0..=1.
    pub confidence: f64,
    /// Nodes that failed (duplicates are ignored).
    pub affected_nodes: Vec<String>,
    /// Services that failed (duplicates are ignored).
    pub affected_services: Vec<Label>,
}

/// A node of the cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    pub name: String,
    /// Spare capacity as a fraction of the node, 0..=1 (default 0: unknown means none).
    pub headroom: f64,
    /// Whether the node is running (default true).
    pub up: bool,
}

impl NodeSpec {
    /// A running node with the given headroom.
    pub fn new(name: impl Into<String>, headroom: f64) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            headroom,
            up: true,
        }
    }
}

/// A service (an OTP application, a supervised child, a backend) placed on a node.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSpec {
    pub name: Label,
    pub node: String,
    /// Services this one needs (duplicates are ignored). Must form a DAG.
    pub depends_on: Vec<Label>,
    /// The supervisor this service is a child of, on its node; children of the same supervisor
    /// on the same node are siblings. `None`: no known supervisor (no full or cold restart).
    pub supervisor: Option<Label>,
    /// Load as a fraction of one node's capacity, 0..=1 (default 0).
    pub load: f64,
}

impl ServiceSpec {
    /// A service without dependencies, supervisor or load.
    pub fn new(name: Label, node: impl Into<String>) -> ServiceSpec {
        ServiceSpec {
            name,
            node: node.into(),
            depends_on: Vec::new(),
            supervisor: None,
            load: 0.0,
        }
    }
}

/// The cluster as the planner sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Topology {
    pub nodes: Vec<NodeSpec>,
    pub services: Vec<ServiceSpec>,
}

/// How a strategy has fared, as the knowledge base's `effectiveness` reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StrategyStats {
    pub successes: i64,
    pub failures: i64,
    /// Mean time of the successful recoveries; `None` when there were none.
    pub mean_recovery_ms: Option<f64>,
}

/// The policy. Every field is optional; [`Policy::resolve`] fills in the defaults documented on
/// [`Policy`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicySpec {
    /// Allowed strategies per failure type, in order of preference (ties in cost go to the
    /// earlier one). Merged over [`default_allowed`]; the key `default` applies to failure types
    /// not listed.
    pub allowed: BTreeMap<Label, Vec<Strategy>>,
    pub slo_budget_ms: Option<f64>,
    pub blast_radius_limit: Option<i64>,
    pub quorum_size: Option<i64>,
    /// Recovery time per strategy when the knowledge base has none; merged over the defaults.
    pub default_recovery_ms: BTreeMap<Strategy, f64>,
    pub step_ms: Option<f64>,
    pub shed_percent: Option<i64>,
    pub throttle_percent: Option<i64>,
    pub degrade_impact: Option<f64>,
}

/// Everything the planner needs.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanInput {
    pub analysis: Analysis,
    pub topology: Topology,
    /// Per strategy; a strategy not listed has no history (0 successes, 0 failures).
    pub effectiveness: BTreeMap<Strategy, StrategyStats>,
    pub policy: PolicySpec,
}

/// The policy with every default applied and every value checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Per failure type (and `default`), the allowed strategies without duplicates.
    pub allowed: BTreeMap<Label, Vec<Strategy>>,
    /// Downtime budget in ms: downtime cost is estimated downtime over this. Default 300,000.
    pub slo_budget_ms: f64,
    /// Most services a plan may disrupt (its targets and their transitive dependents).
    /// Default 100.
    pub blast_radius_limit: u64,
    /// Fewest healthy nodes that must remain. Default: a majority of the topology's nodes.
    pub quorum_size: u64,
    /// Recovery time per strategy when the knowledge base has none (see [`default_recovery_ms`]).
    pub default_recovery_ms: [f64; Strategy::COUNT],
    /// Time each step after the first adds to a plan (steps run one after another). Default 100.
    pub step_ms: f64,
    /// Percentage of requests a `load_shedding` plan drops. Default 25.
    pub shed_percent: u8,
    /// Percentage by which a `throttle` plan slows admission. Default 50.
    pub throttle_percent: u8,
    /// Fraction of service lost while degraded, 0..=1. Default 0.3.
    pub degrade_impact: f64,
}

/// Default allowed strategies per failure type, in order of preference.
pub fn default_allowed() -> BTreeMap<Label, Vec<Strategy>> {
    use Strategy::*;
    let table: [(&str, &[Strategy]); 10] = [
        (
            "backend_down",
            &[BackendFailover, GracefulDegradation, Escalate],
        ),
        ("default", &[SupervisorRestart, Throttle, Escalate]),
        ("memory_leak", &[SupervisorRestart, Escalate]),
        (
            "network_partition",
            &[QuorumReconfiguration, Pause, Escalate],
        ),
        (
            "node_down",
            &[QuorumReconfiguration, BackendFailover, Escalate],
        ),
        ("node_suspected", &[BackendFailover, Escalate]),
        (
            "overload",
            &[Throttle, LoadShedding, GracefulDegradation, Escalate],
        ),
        ("process_crash", &[SupervisorRestart, Escalate]),
        (
            "resource_exhausted",
            &[SupervisorRestart, LoadShedding, Throttle, Escalate],
        ),
        (
            "service_crash",
            &[SupervisorRestart, BackendFailover, Escalate],
        ),
    ];
    table
        .iter()
        .map(|(ft, s)| (Label::atom(*ft), s.to_vec()))
        .collect()
}

/// Default recovery time per strategy, in ms, indexed by [`Strategy::index`].
pub fn default_recovery_ms() -> [f64; Strategy::COUNT] {
    let mut t = [0.0; Strategy::COUNT];
    for s in Strategy::ALL {
        t[s.index()] = match s {
            Strategy::BackendFailover => 5_000.0,
            Strategy::Escalate => 900_000.0,
            Strategy::GracefulDegradation => 1_000.0,
            Strategy::LoadShedding => 1_000.0,
            Strategy::Pause => 500.0,
            Strategy::QuorumReconfiguration => 10_000.0,
            Strategy::SupervisorRestart => 2_000.0,
            Strategy::Throttle => 500.0,
        };
    }
    t
}

/// Default downtime budget, ms.
pub const DEFAULT_SLO_BUDGET_MS: f64 = 300_000.0;
/// Default blast-radius limit, services.
pub const DEFAULT_BLAST_RADIUS_LIMIT: u64 = 100;
/// Default per-step overhead, ms.
pub const DEFAULT_STEP_MS: f64 = 100.0;
/// Default shedding percentage.
pub const DEFAULT_SHED_PERCENT: u8 = 25;
/// Default throttle percentage.
pub const DEFAULT_THROTTLE_PERCENT: u8 = 50;
/// Default fraction of service lost while degraded.
pub const DEFAULT_DEGRADE_IMPACT: f64 = 0.3;

impl Policy {
    /// The allowed strategies for a failure type: its own entry, else `default`, else none.
    pub fn allowed_for(&self, failure_type: &Label) -> &[Strategy] {
        self.allowed
            .get(failure_type)
            .or_else(|| self.allowed.get(&Label::atom("default")))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}
