//! Why an input was rejected.

use std::fmt;

use thiserror::Error;

use super::input::Label;
use super::model::Strategy;

/// Where a value that is out of range sits in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Analysis,
    /// An entry of `topology.nodes`.
    Node,
    /// An entry of `topology.services`.
    Service,
    /// The effectiveness figures of one strategy.
    Effectiveness(Strategy),
    Policy,
    /// The policy's `default_recovery_ms` table.
    DefaultRecovery,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Analysis => f.write_str("analysis"),
            Place::Node => f.write_str("node"),
            Place::Service => f.write_str("service"),
            Place::Effectiveness(s) => write!(f, "effectiveness of {}", s.name()),
            Place::Policy => f.write_str("policy"),
            Place::DefaultRecovery => f.write_str("default_recovery_ms"),
        }
    }
}

/// A rejected input. Checked in a fixed order (sizes, then ranges, then references, then
/// cycles), each in list order, so the same input always gives the same error.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum PlanError {
    #[error("too many {what} (at most {max})")]
    TooMany { what: &'static str, max: usize },
    #[error("{place}: {key} is out of range")]
    OutOfRange { place: Place, key: &'static str },
    #[error("node {0} is listed twice")]
    DuplicateNode(String),
    #[error("service {0} is listed twice")]
    DuplicateService(Label),
    #[error("node {0} is not in the topology")]
    UnknownNode(String),
    #[error("service {0} is not in the topology")]
    UnknownService(Label),
    #[error("service {service} depends on {dependency}, which is not in the topology")]
    UnknownDependency { service: Label, dependency: Label },
    #[error("service {0} is on a dependency cycle")]
    DependencyCycle(Label),
}
