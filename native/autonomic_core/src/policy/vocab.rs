//! The `res:` vocabulary: which predicates each kind of node takes, and the field of the policy
//! each one sets. One table drives the mapping ([`super::turtle`]) and its error messages, and the
//! module documentation of [`super`] lists the same table for people.

/// How a literal (or a `res:` term standing for a value) is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    /// Milliseconds: an `xsd:duration` (or `xsd:dayTimeDuration`, or a plain string in either
    /// form), or a number of milliseconds.
    Duration,
    /// An `xsd:integer` (or derived), `xsd:decimal`, `xsd:double` or `xsd:float`.
    Number,
    /// A percentage 0..100 as a number; becomes `{percent, P}`, which the validator turns into a
    /// fraction.
    Percent,
    /// An `xsd:boolean`.
    Bool,
    /// A string literal.
    Text,
    /// A string literal, or an IRI (its text).
    TextOrIri,
    /// A `res:` term (`res:NodeDown`), read as its snake_case name (`node_down`).
    Name,
}

/// What a predicate's objects become.
#[derive(Clone, Copy, Debug)]
pub enum PropKind {
    /// One value. Apart from `Text`, `TextOrIri` and `Name`, a `res:` term is also accepted and
    /// read as a name (`res:Infinity` is `infinity`), for the validator to judge.
    Scalar(Scalar),
    /// One `res:` term or one RDF list of them, in order of preference.
    NameList,
    /// One `res:` term or one RDF list of them; each becomes a key with the value 1.
    NameSet,
    /// One node, whose own predicates form a map.
    Section(&'static NodeKind),
    /// Any number of nodes, each a map keyed by its name under the kind's `Key` predicate.
    Keyed(&'static NodeKind),
    /// Any number of nodes, each giving one entry: its `Key` name and its `value` field.
    KeyedValue(&'static NodeKind),
    /// Inside a keyed kind: the name the parent keys the node by.
    Key,
}

/// One predicate of a kind of node.
#[derive(Clone, Copy, Debug)]
pub struct Prop {
    /// The local name in the `res:` namespace (`availabilitySLO`).
    pub predicate: &'static str,
    /// The field it sets in the policy's terms (`availability`).
    pub key: &'static str,
    pub kind: PropKind,
}

/// A kind of node: the policy itself, its sections, and the nodes inside them.
#[derive(Debug)]
pub struct NodeKind {
    /// How messages name it ("failure mode").
    pub name: &'static str,
    pub props: &'static [Prop],
}

impl NodeKind {
    /// The property with this local name, if this kind takes it.
    pub fn prop(&self, predicate: &str) -> Option<&'static Prop> {
        self.props.iter().find(|p| p.predicate == predicate)
    }

    /// The predicate that keys this kind's nodes (for `Keyed` and `KeyedValue`).
    pub fn key_predicate(&self) -> Option<&'static str> {
        self.props
            .iter()
            .find(|p| matches!(p.kind, PropKind::Key))
            .map(|p| p.predicate)
    }

    /// "res:a, res:b, ...": the predicates this kind takes, for messages.
    pub fn predicate_list(&self) -> String {
        let names: Vec<String> = self
            .props
            .iter()
            .map(|p| format!("res:{}", p.predicate))
            .collect();
        names.join(", ")
    }
}

const fn prop(predicate: &'static str, key: &'static str, kind: PropKind) -> Prop {
    Prop {
        predicate,
        key,
        kind,
    }
}

use PropKind::{Key, Keyed, KeyedValue, NameList, NameSet, Section};
use Scalar::{Bool, Duration, Name, Number, Percent, Text, TextOrIri};

const fn s(kind: Scalar) -> PropKind {
    PropKind::Scalar(kind)
}

/// The node typed `res:ResiliencePolicy`.
pub static POLICY: NodeKind = NodeKind {
    name: "policy",
    props: &[
        prop("name", "name", s(Text)),
        prop("targetSystem", "target_system", s(TextOrIri)),
        prop("slo", "slo", Section(&SLO)),
        prop("failureMode", "failure_modes", Keyed(&FAILURE_MODE)),
        prop("planner", "planner", Section(&PLANNER)),
        prop("gates", "gates", Section(&GATES)),
        prop("loop", "loop", Section(&LOOP)),
        prop("chaosSchedule", "chaos", Section(&CHAOS)),
    ],
};

pub static SLO: NodeKind = NodeKind {
    name: "slo",
    props: &[
        prop("availabilitySLO", "availability", s(Percent)),
        prop("mttd", "mttd_ms", s(Duration)),
        prop("mttr", "mttr_ms", s(Duration)),
        prop("maxDegradation", "max_degradation", s(Percent)),
        prop("recoverySuccess", "recovery_success", s(Percent)),
        prop("window", "window_ms", s(Duration)),
    ],
};

pub static FAILURE_MODE: NodeKind = NodeKind {
    name: "failure mode",
    props: &[
        prop("type", "type", Key),
        prop("recoveryStrategy", "recovery_strategies", NameList),
        prop("detectionTime", "detection_ms", s(Duration)),
        prop("recoveryTime", "recovery_ms", s(Duration)),
        prop("severity", "severity", s(Name)),
    ],
};

pub static PLANNER: NodeKind = NodeKind {
    name: "planner",
    props: &[
        prop("sloBudget", "slo_budget_ms", s(Duration)),
        prop("blastRadiusLimit", "blast_radius_limit", s(Number)),
        prop("quorumSize", "quorum_size", s(Number)),
        prop("stepTime", "step_ms", s(Duration)),
        prop("shedPercent", "shed_percent", s(Number)),
        prop("throttlePercent", "throttle_percent", s(Number)),
        prop("degradeImpact", "degrade_impact", s(Percent)),
        prop(
            "strategyRecoveryTime",
            "default_recovery_ms",
            KeyedValue(&STRATEGY_TIME),
        ),
    ],
};

pub static STRATEGY_TIME: NodeKind = NodeKind {
    name: "strategy recovery time",
    props: &[
        prop("strategy", "strategy", Key),
        prop("recoveryTime", "value", s(Duration)),
    ],
};

pub static GATES: NodeKind = NodeKind {
    name: "gates",
    props: &[
        prop("errorBudget", "error_budget", s(Percent)),
        prop("blastRadius", "blast_radius", s(Percent)),
        prop("cooldown", "cooldown_ms", s(Duration)),
        prop("capacityHeadroom", "capacity_headroom", s(Percent)),
        prop("maxIncidentRate", "max_incident_rate", s(Number)),
        prop(
            "maxConsecutiveFailures",
            "max_consecutive_failures",
            s(Number),
        ),
    ],
};

pub static LOOP: NodeKind = NodeKind {
    name: "loop",
    props: &[
        prop("interval", "interval_ms", s(Duration)),
        prop("maxCycleTime", "max_cycle_ms", s(Duration)),
        prop("minConfidence", "min_confidence", s(Percent)),
        prop("lockTtl", "lock_ttl_ms", s(Duration)),
    ],
};

pub static CHAOS: NodeKind = NodeKind {
    name: "chaos schedule",
    props: &[
        prop("enabled", "enabled", s(Bool)),
        prop("interval", "interval_ms", s(Duration)),
        prop("duration", "duration_ms", s(Duration)),
        prop("maxConcurrent", "max_concurrent", s(Number)),
        prop("pauseOnAlert", "pause_on_alert", s(Bool)),
        prop("safeMode", "safe_mode", s(Bool)),
        prop("requireApproval", "require_approval", s(Bool)),
        prop("seed", "seed", s(Number)),
        prop("scenarios", "weights", NameSet),
        prop("scenarioWeight", "weights", KeyedValue(&SCENARIO_WEIGHT)),
    ],
};

pub static SCENARIO_WEIGHT: NodeKind = NodeKind {
    name: "scenario weight",
    props: &[
        prop("scenario", "scenario", Key),
        prop("weight", "value", s(Number)),
    ],
};

/// Every kind, for "res:x belongs on a ... node" messages.
pub static ALL_KINDS: [&NodeKind; 9] = [
    &POLICY,
    &SLO,
    &FAILURE_MODE,
    &PLANNER,
    &STRATEGY_TIME,
    &GATES,
    &LOOP,
    &CHAOS,
    &SCENARIO_WEIGHT,
];

/// The names of the kinds that take this predicate ("slo, loop"); empty when none does.
pub fn kinds_taking(predicate: &str) -> Vec<&'static str> {
    ALL_KINDS
        .iter()
        .filter(|k| k.prop(predicate).is_some())
        .map(|k| k.name)
        .collect()
}

/// The class of the policy node.
pub const POLICY_CLASS: &str = "ResiliencePolicy";
