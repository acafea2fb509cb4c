//! The recovery strategies (DESIGN.md section 3, "Plan"): one type for the knowledge base (its
//! records and effectiveness tables) and the planner (its plans and per-strategy tables).

use serde::{Deserialize, Serialize};

/// Recovery strategies (DESIGN.md section 3, Plan). The declaration order is alphabetical, so the
/// derived `Ord` is the order of the Erlang atoms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    BackendFailover,
    Escalate,
    GracefulDegradation,
    LoadShedding,
    Pause,
    QuorumReconfiguration,
    SupervisorRestart,
    Throttle,
}

impl Strategy {
    /// Number of strategies.
    pub const COUNT: usize = 8;

    /// Every strategy, in the order of their names.
    pub const ALL: [Strategy; Strategy::COUNT] = [
        Strategy::BackendFailover,
        Strategy::Escalate,
        Strategy::GracefulDegradation,
        Strategy::LoadShedding,
        Strategy::Pause,
        Strategy::QuorumReconfiguration,
        Strategy::SupervisorRestart,
        Strategy::Throttle,
    ];

    /// The snake_case name, as the Erlang atom and the JSON string.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::BackendFailover => "backend_failover",
            Strategy::Escalate => "escalate",
            Strategy::GracefulDegradation => "graceful_degradation",
            Strategy::LoadShedding => "load_shedding",
            Strategy::Pause => "pause",
            Strategy::QuorumReconfiguration => "quorum_reconfiguration",
            Strategy::SupervisorRestart => "supervisor_restart",
            Strategy::Throttle => "throttle",
        }
    }

    /// The strategy with this name, if any.
    pub fn from_name(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Position in [`Strategy::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}
