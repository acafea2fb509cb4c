//! Import of the declarative resilience policy from RDF Turtle (the seed's `res:` vocabulary).
//!
//! [`import_turtle`] parses a Turtle document (with Oxigraph's `oxttl`), finds the one node typed
//! `res:ResiliencePolicy` and maps the `res:` statements reachable from it into a neutral
//! [`Value`]: exactly the Erlang terms an operator would write in `policy.config`. It checks the
//! *form* of the document (syntax, vocabulary, literal types and lexical forms, one value where
//! one is expected); it does not judge *values* (ranges, known strategy names, cross-field rules):
//! the Erlang validator `autonomic_policy_validate` does that, for the terms policy and the
//! Turtle policy alike, so there is one validator. The Turtle import answers the terms it could
//! map together with the problems it found; the Erlang side adds the validator's problems, so a
//! document with a bad literal and an out-of-range value gets both listed.
//!
//! # Namespace and scope
//!
//! `res:` is [`NAMESPACE`], `https://autonomic.dev/ns/resilience#`. The document must hold
//! exactly one node typed `res:ResiliencePolicy`. Statements whose predicate is in another
//! namespace are ignored (`rdfs:comment`, `dcterms:created`, ...), as are types of other nodes.
//! Every statement whose predicate is in `res:` must be part of the policy: an unknown predicate,
//! a predicate on the wrong kind of node (`res:mttr` on a failure mode) and a `res:` statement
//! about a node the policy never reaches are problems. A relative IRI needs an `@base`.
//!
//! # Vocabulary
//!
//! | node | predicate | policy field | object |
//! |---|---|---|---|
//! | policy | `res:name` | `name` | string |
//! | policy | `res:targetSystem` | `target_system` | string or IRI (its text) |
//! | policy | `res:slo` | `slo` | node |
//! | policy | `res:failureMode` (repeated) | `failure_modes` | node, keyed by its `res:type` |
//! | policy | `res:planner` | `planner` | node |
//! | policy | `res:gates` | `gates` | node |
//! | policy | `res:loop` | `loop` | node |
//! | policy | `res:chaosSchedule` | `chaos` | node |
//! | slo | `res:availabilitySLO` | `availability` | percent |
//! | slo | `res:mttd`, `res:mttr` | `mttd_ms`, `mttr_ms` | duration |
//! | slo | `res:maxDegradation` | `max_degradation` | percent |
//! | slo | `res:recoverySuccess` | `recovery_success` | percent |
//! | slo | `res:window` | `window_ms` | duration |
//! | failure mode | `res:type` | the key (`res:NodeDown` is `node_down`) | `res:` term |
//! | failure mode | `res:recoveryStrategy` | `recovery_strategies` | `res:` term or list `( ... )` |
//! | failure mode | `res:detectionTime`, `res:recoveryTime` | `detection_ms`, `recovery_ms` | duration |
//! | failure mode | `res:severity` | `severity` | `res:` term (`res:High`) |
//! | planner | `res:sloBudget` | `slo_budget_ms` | duration |
//! | planner | `res:blastRadiusLimit`, `res:quorumSize` | `blast_radius_limit`, `quorum_size` | number |
//! | planner | `res:stepTime` | `step_ms` | duration |
//! | planner | `res:shedPercent`, `res:throttlePercent` | `shed_percent`, `throttle_percent` | number (the planner's whole percent) |
//! | planner | `res:degradeImpact` | `degrade_impact` | percent |
//! | planner | `res:strategyRecoveryTime` (repeated) | `default_recovery_ms` | node: `res:strategy` and `res:recoveryTime` |
//! | gates | `res:errorBudget`, `res:blastRadius`, `res:capacityHeadroom` | `error_budget`, `blast_radius`, `capacity_headroom` | percent |
//! | gates | `res:cooldown` | `cooldown_ms` | duration |
//! | gates | `res:maxIncidentRate`, `res:maxConsecutiveFailures` | `max_incident_rate`, `max_consecutive_failures` | number |
//! | loop | `res:interval`, `res:maxCycleTime`, `res:lockTtl` | `interval_ms`, `max_cycle_ms`, `lock_ttl_ms` | duration |
//! | loop | `res:minConfidence` | `min_confidence` | percent |
//! | chaos schedule | `res:enabled`, `res:pauseOnAlert`, `res:safeMode`, `res:requireApproval` | `enabled`, `pause_on_alert`, `safe_mode`, `require_approval` | boolean |
//! | chaos schedule | `res:interval`, `res:duration` | `interval_ms`, `duration_ms` | duration |
//! | chaos schedule | `res:maxConcurrent`, `res:seed` | `max_concurrent`, `seed` | number |
//! | chaos schedule | `res:scenarios` | `weights` (1 each) | `res:` term or list |
//! | chaos schedule | `res:scenarioWeight` (repeated) | `weights` | node: `res:scenario` and `res:weight` |
//!
//! Objects:
//! - **duration**: an `xsd:duration` without years or months (`"PT30S"^^xsd:duration`,
//!   `"P1DT2H"`; `xsd:dayTimeDuration` and plain strings too), the seed's shorthand (`"30s"`,
//!   `"500ms"`, `"5m"`, `"2h"`, `"1d"`), or a plain number of **milliseconds** (`30000`).
//! - **percent**: a number 0..100 (`99.9`, `"99.9"^^xsd:decimal` as in the seed); it becomes
//!   `{percent, 99.9}`, which the validator turns into the fraction 0.999. The terms policy
//!   writes fractions, or `{percent, P}` as well.
//! - **number**: `xsd:integer` (and derived types), `xsd:decimal` (a whole decimal is an
//!   integer), `xsd:double`, `xsd:float` (always a float; `INF` and `NaN` are refused).
//! - a **`res:` term** where a literal is expected is read as a name, for the validator to judge:
//!   `res:Infinity` (a chaos duration), `res:Majority` (a quorum size), `res:Random` (a seed).
//! - names: `res:SupervisorRestart` is `supervisor_restart` (UpperCamelCase to snake_case; a
//!   run of capitals is one word: `res:CPUSaturation` is `cpu_saturation`). Strategies and
//!   scenarios are ordered or listed with RDF lists: several `res:recoveryStrategy` statements on
//!   one node are refused, since RDF gives them no order.
//!
//! Without `res:name`, a policy node named by an IRI takes the IRI's last segment as its name.
//!
//! # Problems
//!
//! A [`Problem`] names the policy field (as the terms policy spells it), the offending value as
//! written in the document, why, and, for syntax errors, the line and column (1-based, columns in
//! characters). Syntax errors stop the mapping: the document's problems are then every syntax
//! error the parser found (it resumes after each). Otherwise every problem of the mapping is
//! listed, not only the first.

mod literal;
mod turtle;
mod vocab;

#[cfg(test)]
mod tests;

use std::fmt;

use thiserror::Error;

pub use literal::{boolean, decimal, double, duration_ms, integer, LiteralError};
pub use turtle::import_turtle;

/// The `res:` namespace this importer reads.
pub const NAMESPACE: &str = "https://autonomic.dev/ns/resilience#";
/// The seed's namespace: a document in it is refused with a hint to change its `@prefix`.
pub const SEED_NAMESPACE: &str = "http://ggen.io/resilience#";
/// Largest document read, in bytes. A policy is a few kilobytes.
pub const MAX_INPUT_BYTES: usize = 1 << 20;
/// Most statements read from a document.
pub const MAX_STATEMENTS: usize = 100_000;

/// A number as the document gave it: whole, or not.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

/// The neutral structure: Erlang terms without the BEAM.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A binary.
    Text(String),
    /// A snake_case name: an atom on the Erlang side when such an atom exists (every name the
    /// validator knows does), else a binary, which the validator then reports as unknown.
    Name(String),
    /// `{percent, P}`.
    Percent(Number),
    List(Vec<Value>),
    /// A map, in the order the fields were found.
    Map(Vec<(Key, Value)>),
}

impl From<Number> for Value {
    fn from(n: Number) -> Value {
        match n {
            Number::Int(i) => Value::Int(i),
            Number::Float(f) => Value::Float(f),
        }
    }
}

impl Value {
    /// The value under `key` in a map (`None` for anything else).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == key)
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A map key: a field of the policy (an atom), or a name from the document (a failure type, a
/// strategy, a scenario).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    Field(&'static str),
    Name(String),
}

impl Key {
    pub fn as_str(&self) -> &str {
        match self {
            Key::Field(f) => f,
            Key::Name(n) => n,
        }
    }
}

/// One step of a problem's field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathElem {
    /// A field of the policy: an atom.
    Field(&'static str),
    /// A name from the document (`node_down`): an existing atom, else a binary.
    Name(String),
    /// Text that is no field (an unknown predicate's local name): a binary.
    Raw(String),
}

impl fmt::Display for PathElem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElem::Field(s) => f.write_str(s),
            PathElem::Name(s) | PathElem::Raw(s) => f.write_str(s),
        }
    }
}

/// Where in the document, 1-based; the column counts characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

/// One thing wrong with a document.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The policy field concerned (`[slo, mttr_ms]`); empty for the whole document.
    pub field: Vec<PathElem>,
    /// The offending text as the document has it (`"PT3X"^^xsd:duration`, `res:mtr`).
    pub value: String,
    pub why: Why,
    /// For syntax errors.
    pub position: Option<Position>,
}

impl Problem {
    pub(crate) fn new(field: Vec<PathElem>, value: impl Into<String>, why: Why) -> Problem {
        Problem {
            field,
            value: value.into(),
            why,
            position: None,
        }
    }

    /// The field path joined with dots, for messages and tests (`slo.mttr_ms`).
    pub fn field_text(&self) -> String {
        let parts: Vec<String> = self.field.iter().map(ToString::to_string).collect();
        parts.join(".")
    }
}

/// Why a document, or a part of it, cannot be mapped. The text is what the operator reads.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum Why {
    #[error("Turtle syntax error: {0}")]
    Syntax(String),
    #[error("the document is {size} bytes; at most {max} are read")]
    TooLarge { size: usize, max: usize },
    #[error("more than {0} statements")]
    TooManyStatements(usize),
    #[error("no node has the type res:ResiliencePolicy (res: is <{NAMESPACE}>){}",
        if *.seed_namespace { "; the document uses the seed's namespace <http://ggen.io/resilience#>: change its @prefix res: line" } else { "" })]
    NoPolicy { seed_namespace: bool },
    #[error("{0} nodes have the type res:ResiliencePolicy: one policy per document")]
    SeveralPolicies(usize),
    #[error("unknown predicate res:{predicate} on a {node} node (it takes {known})")]
    UnknownPredicate {
        predicate: String,
        node: &'static str,
        known: String,
    },
    #[error("res:{predicate} does not apply to a {node} node (it belongs on a {belongs} node)")]
    Misplaced {
        predicate: String,
        node: &'static str,
        belongs: String,
    },
    #[error("a res: statement about a node that is not part of the policy (no path leads to it from the res:ResiliencePolicy node)")]
    Unattached,
    #[error("res:{predicate} is given {count} times: one value expected")]
    Repeated {
        predicate: &'static str,
        count: usize,
    },
    #[error("res:{0} is given several times and RDF does not order them: give one list, ( res:A res:B )")]
    Unordered(&'static str),
    #[error("expected a node (an IRI or a blank node [ ... ]), got a literal")]
    ExpectedNode,
    #[error("expected a term of the res: vocabulary, such as res:NodeDown")]
    ExpectedName,
    #[error("expected a string literal")]
    ExpectedText,
    #[error("expected a literal ({0})")]
    ExpectedLiteral(&'static str),
    #[error("datatype {datatype} where {expected} is expected")]
    Datatype {
        datatype: String,
        expected: &'static str,
    },
    #[error("{0}")]
    Literal(#[from] LiteralError),
    #[error("a {node} node without res:{key}")]
    MissingKey {
        node: &'static str,
        key: &'static str,
    },
    #[error("{name} is given by two {node} nodes")]
    DuplicateKey { name: String, node: &'static str },
    #[error("malformed RDF list: {0}")]
    BadList(&'static str),
    #[error("{0} appears twice in the list")]
    DuplicateInList(String),
    #[error("res:{0} and res:{1} both set this field: give one")]
    Conflict(&'static str, &'static str),
}

/// A mapped document: the policy's terms, and the problems found while mapping (the terms leave
/// out whatever had a problem). Empty `problems` means the form is right; the values still go
/// through the validator.
#[derive(Clone, Debug, PartialEq)]
pub struct Import {
    pub policy: Value,
    pub problems: Vec<Problem>,
}
