//! A historical failure (DESIGN.md section 3) and the validation every record passes, whether it
//! comes from `record/1`, a peer, the log or an imported file.
//!
//! A [`Failure`] can only be built through [`Failure::new`] (or deserialized, which calls it), so
//! every value of the type is valid and normalized: symptoms are a set, kept sorted by their bytes
//! without duplicates, which makes a record's representation, and so its JSON, canonical.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest record id, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Most symptoms one record (or one query) may carry, after removing duplicates.
pub const MAX_SYMPTOMS: usize = 256;
/// Longest symptom, in bytes.
pub const MAX_SYMPTOM_BYTES: usize = 1024;
/// Longest binary label (`failure_type`, `root_cause`), in bytes.
pub const MAX_LABEL_BYTES: usize = 1024;
/// Longest atom label, in characters (the Erlang limit).
pub const MAX_ATOM_CHARS: usize = 255;

/// Recovery strategies: one type shared with the planner (see [`crate::strategy`]).
pub use crate::strategy::Strategy;

/// A `failure_type` or `root_cause`: an Erlang atom or a binary, kept apart so that a round trip
/// through JSON gives back the same term. Atoms are limited to Latin-1 (the NIF API of OTP 25
/// cannot create other atoms). JSON: `{"atom": "node_down"}` or `{"binary": "disk full"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Atom(Box<str>),
    Binary(Box<str>),
}

impl Label {
    /// The label's text.
    pub fn text(&self) -> &str {
        match self {
            Label::Atom(s) | Label::Binary(s) => s,
        }
    }

    fn validate(&self) -> bool {
        match self {
            Label::Atom(s) => {
                s.chars().count() <= MAX_ATOM_CHARS && s.chars().all(|c| u32::from(c) < 256)
            }
            Label::Binary(s) => s.len() <= MAX_LABEL_BYTES,
        }
    }
}

/// Time a recovery took, in milliseconds: an integer or a float, kept as given so that the Erlang
/// term survives a round trip. Always finite and non-negative.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecoveryMs {
    Int(u64),
    Float(f64),
}

impl RecoveryMs {
    /// The value as a float (`-0.0` reads as `0.0`), for statistics.
    pub fn as_f64(self) -> f64 {
        match self {
            RecoveryMs::Int(v) => v as f64,
            RecoveryMs::Float(v) => v + 0.0,
        }
    }
}

/// The fields of a failure as given by a caller, before validation and normalization.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailure {
    pub id: String,
    pub failure_type: Label,
    pub root_cause: Label,
    pub symptoms: Vec<String>,
    pub strategy: Strategy,
    pub recovery_ms: RecoveryMs,
    pub success: bool,
    pub timestamp: i64,
}

/// A field of a failure, to say which one is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Id,
    FailureType,
    RootCause,
    Symptoms,
    Strategy,
    RecoveryMs,
    Success,
    Timestamp,
}

impl Field {
    /// The field's key, as in the Erlang map and the JSON object.
    pub fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::FailureType => "failure_type",
            Field::RootCause => "root_cause",
            Field::Symptoms => "symptoms",
            Field::Strategy => "strategy",
            Field::RecoveryMs => "recovery_ms",
            Field::Success => "success",
            Field::Timestamp => "timestamp",
        }
    }
}

/// Why a failure was rejected.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[error("invalid {}", .0.name())]
pub struct InvalidField(pub Field);

/// A validated, normalized historical failure. Immutable: records are identified by their id, and
/// merging two knowledge bases is the union of their records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawFailure")]
pub struct Failure {
    id: Box<str>,
    failure_type: Label,
    root_cause: Label,
    symptoms: Box<[Box<str>]>,
    strategy: Strategy,
    recovery_ms: RecoveryMs,
    success: bool,
    timestamp: i64,
}

impl TryFrom<RawFailure> for Failure {
    type Error = InvalidField;

    fn try_from(raw: RawFailure) -> Result<Self, Self::Error> {
        Failure::new(raw)
    }
}

impl Failure {
    /// Validates and normalizes `raw`:
    /// - `id`: 1 to [`MAX_ID_BYTES`] bytes;
    /// - labels: atoms of at most 255 Latin-1 characters, binaries of at most
    ///   [`MAX_LABEL_BYTES`] bytes;
    /// - `symptoms`: at most [`MAX_SYMPTOMS`] distinct symptoms of 1 to [`MAX_SYMPTOM_BYTES`]
    ///   bytes each; duplicates are dropped and the rest sorted;
    /// - `recovery_ms`: finite and non-negative;
    /// - `timestamp`: milliseconds since the Unix epoch, non-negative.
    pub fn new(raw: RawFailure) -> Result<Failure, InvalidField> {
        if raw.id.is_empty() || raw.id.len() > MAX_ID_BYTES {
            return Err(InvalidField(Field::Id));
        }
        if !raw.failure_type.validate() {
            return Err(InvalidField(Field::FailureType));
        }
        if !raw.root_cause.validate() {
            return Err(InvalidField(Field::RootCause));
        }
        let symptoms = normalize_symptoms(raw.symptoms).ok_or(InvalidField(Field::Symptoms))?;
        if let RecoveryMs::Float(v) = raw.recovery_ms {
            if !v.is_finite() || v < 0.0 {
                return Err(InvalidField(Field::RecoveryMs));
            }
        }
        if raw.timestamp < 0 {
            return Err(InvalidField(Field::Timestamp));
        }
        Ok(Failure {
            id: raw.id.into_boxed_str(),
            failure_type: raw.failure_type,
            root_cause: raw.root_cause,
            symptoms,
            strategy: raw.strategy,
            recovery_ms: raw.recovery_ms,
            success: raw.success,
            timestamp: raw.timestamp,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn failure_type(&self) -> &Label {
        &self.failure_type
    }
    pub fn root_cause(&self) -> &Label {
        &self.root_cause
    }
    /// The symptoms, sorted by their bytes, without duplicates.
    pub fn symptoms(&self) -> &[Box<str>] {
        &self.symptoms
    }
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }
    pub fn recovery_ms(&self) -> RecoveryMs {
        self.recovery_ms
    }
    pub fn success(&self) -> bool {
        self.success
    }
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
}

/// Sorts and deduplicates a symptom list, checking sizes; `None` when it breaks a limit.
pub fn normalize_symptoms<S: AsRef<str> + Into<Box<str>>>(
    symptoms: Vec<S>,
) -> Option<Box<[Box<str>]>> {
    if symptoms
        .iter()
        .any(|s| s.as_ref().is_empty() || s.as_ref().len() > MAX_SYMPTOM_BYTES)
    {
        return None;
    }
    let mut v: Vec<Box<str>> = symptoms.into_iter().map(Into::into).collect();
    v.sort_unstable();
    v.dedup();
    (v.len() <= MAX_SYMPTOMS).then(|| v.into_boxed_slice())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid raw failure for tests: an atom type, a binary root cause.
    pub fn raw(id: &str, symptoms: &[&str], timestamp: i64) -> RawFailure {
        RawFailure {
            id: id.to_string(),
            failure_type: Label::Atom("node_down".into()),
            root_cause: Label::Binary("network partition".into()),
            symptoms: symptoms.iter().map(|s| s.to_string()).collect(),
            strategy: Strategy::SupervisorRestart,
            recovery_ms: RecoveryMs::Int(120),
            success: true,
            timestamp,
        }
    }

    #[test]
    fn symptoms_are_a_sorted_set() {
        let f = Failure::new(raw("a", &["z", "a", "m", "a"], 1)).unwrap();
        let names: Vec<&str> = f.symptoms().iter().map(|s| &**s).collect();
        assert_eq!(names, ["a", "m", "z"]);
    }

    #[test]
    fn limits_are_enforced() {
        let bad = |r: RawFailure| Failure::new(r).unwrap_err().0;
        assert_eq!(bad(raw("", &[], 1)), Field::Id);
        assert_eq!(bad(raw(&"x".repeat(MAX_ID_BYTES + 1), &[], 1)), Field::Id);
        assert_eq!(bad(raw("a", &[""], 1)), Field::Symptoms);
        let long = "s".repeat(MAX_SYMPTOM_BYTES + 1);
        assert_eq!(bad(raw("a", &[&long], 1)), Field::Symptoms);
        let many: Vec<String> = (0..=MAX_SYMPTOMS).map(|i| i.to_string()).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(bad(raw("a", &many, 1)), Field::Symptoms);
        // Duplicates do not count towards the limit.
        let dup = vec!["same"; MAX_SYMPTOMS + 10];
        assert!(Failure::new(raw("a", &dup, 1)).is_ok());
        assert_eq!(bad(raw("a", &[], -1)), Field::Timestamp);
        let mut r = raw("a", &[], 1);
        r.recovery_ms = RecoveryMs::Float(-1.0);
        assert_eq!(bad(r), Field::RecoveryMs);
        let mut r = raw("a", &[], 1);
        r.recovery_ms = RecoveryMs::Float(f64::INFINITY);
        assert_eq!(bad(r), Field::RecoveryMs);
        let mut r = raw("a", &[], 1);
        r.failure_type = Label::Atom("ǅ".into());
        assert_eq!(bad(r), Field::FailureType);
        let mut r = raw("a", &[], 1);
        r.root_cause = Label::Atom("é".repeat(255).into());
        assert!(Failure::new(r).is_ok());
        let mut r = raw("a", &[], 1);
        r.root_cause = Label::Atom("e".repeat(256).into());
        assert_eq!(bad(r), Field::RootCause);
    }

    #[test]
    fn strategies_are_in_name_order() {
        let mut names: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        let ours: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names, ours);
        for (i, s) in Strategy::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
            assert_eq!(Strategy::from_name(s.name()), Some(*s));
        }
        assert_eq!(Strategy::from_name("reboot"), None);
    }
}
