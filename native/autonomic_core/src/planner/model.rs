//! The planner's output: strategies, steps and plans (DESIGN.md section 3, "Plan").

use super::input::Label;

/// A recovery strategy: one type shared with the knowledge base (see [`crate::strategy`]).
pub use crate::strategy::Strategy;

/// How much a `supervisor_restart` restarts: `quick` the failed children only, `full` every
/// child of their supervisors, `cold` the supervisors themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RestartScope {
    Quick,
    Full,
    Cold,
}

impl RestartScope {
    /// The Erlang atom.
    pub fn name(self) -> &'static str {
        match self {
            RestartScope::Quick => "quick",
            RestartScope::Full => "full",
            RestartScope::Cold => "cold",
        }
    }
}

/// Why a candidate plan was not eligible.
#[derive(Clone, Debug, PartialEq)]
pub enum RejectReason {
    /// It would disrupt `radius` services, over the policy's limit.
    BlastRadius { radius: u64, limit: u64 },
    /// It would leave `remaining` healthy nodes, fewer than the quorum.
    Quorum { remaining: u64, quorum: u64 },
    /// The healthy nodes lack the headroom to take the work over.
    NoCapacity,
    /// A service it would restart runs on a node that is down.
    NodeDown(String),
    /// The analysis names nothing this strategy acts on.
    NothingToActOn,
}

/// A candidate that was not eligible, for the record in an `escalate` step.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub strategy: Strategy,
    /// The restart scope, for `supervisor_restart` candidates.
    pub scope: Option<RestartScope>,
    pub reason: RejectReason,
}

/// Why a plan escalates to a human.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EscalateReason {
    /// Escalation is allowed for this failure type and was the cheapest eligible plan.
    Cheapest,
    /// No allowed strategy gave an eligible plan (blast radius, quorum, capacity, ...).
    NoFeasiblePlan,
}

impl EscalateReason {
    /// The Erlang atom.
    pub fn name(self) -> &'static str {
        match self {
            EscalateReason::Cheapest => "cheapest",
            EscalateReason::NoFeasiblePlan => "no_feasible_plan",
        }
    }
}

/// One action of a plan, or of its rollback.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Restart one supervised child (`scope` is `quick` or `full`). Not reversible.
    RestartChild {
        service: Label,
        node: String,
        scope: RestartScope,
    },
    /// Restart a supervisor with all its children (a cold restart). Not reversible.
    RestartSupervisor {
        supervisor: Label,
        node: String,
    },
    /// Take a node out of the cluster's membership. Undone by [`Step::AddNode`].
    RemoveNode {
        node: String,
    },
    AddNode {
        node: String,
    },
    /// Move a service to another node. Undone by [`Step::Failback`].
    Failover {
        service: Label,
        from: String,
        to: String,
    },
    Failback {
        service: Label,
        from: String,
        to: String,
    },
    /// Drop `percent` of a service's requests. Undone by [`Step::StopShedding`].
    Shed {
        service: Label,
        percent: u8,
    },
    StopShedding {
        service: Label,
    },
    /// Admit `percent` less of a service's requests. Undone by [`Step::Unthrottle`].
    Throttle {
        service: Label,
        percent: u8,
    },
    Unthrottle {
        service: Label,
    },
    /// Switch a service to its degraded mode. Undone by [`Step::Restore`].
    Degrade {
        service: Label,
    },
    Restore {
        service: Label,
    },
    /// Stop a service's work. Undone by [`Step::Resume`].
    Pause {
        service: Label,
    },
    Resume {
        service: Label,
    },
    /// Hand the failure to a human. Not reversible.
    Escalate {
        failure_type: Label,
        root_cause: Label,
        reason: EscalateReason,
        rejected: Vec<Rejection>,
    },
}

impl Step {
    /// The step's `action` atom.
    pub fn action(&self) -> &'static str {
        match self {
            Step::RestartChild { .. } => "restart_child",
            Step::RestartSupervisor { .. } => "restart_supervisor",
            Step::RemoveNode { .. } => "remove_node",
            Step::AddNode { .. } => "add_node",
            Step::Failover { .. } => "failover",
            Step::Failback { .. } => "failback",
            Step::Shed { .. } => "shed",
            Step::StopShedding { .. } => "stop_shedding",
            Step::Throttle { .. } => "throttle",
            Step::Unthrottle { .. } => "unthrottle",
            Step::Degrade { .. } => "degrade",
            Step::Restore { .. } => "restore",
            Step::Pause { .. } => "pause",
            Step::Resume { .. } => "resume",
            Step::Escalate { .. } => "escalate",
        }
    }

    /// The step that undoes this one, if it is a plan step that can be undone.
    pub fn inverse(&self) -> Option<Step> {
        match self {
            Step::RestartChild { .. } | Step::RestartSupervisor { .. } | Step::Escalate { .. } => {
                None
            }
            Step::RemoveNode { node } => Some(Step::AddNode { node: node.clone() }),
            Step::Failover { service, from, to } => Some(Step::Failback {
                service: service.clone(),
                from: to.clone(),
                to: from.clone(),
            }),
            Step::Shed { service, .. } => Some(Step::StopShedding {
                service: service.clone(),
            }),
            Step::Throttle { service, .. } => Some(Step::Unthrottle {
                service: service.clone(),
            }),
            Step::Degrade { service } => Some(Step::Restore {
                service: service.clone(),
            }),
            Step::Pause { service } => Some(Step::Resume {
                service: service.clone(),
            }),
            // Undo steps only ever run as a rollback; a rollback is not itself rolled back.
            Step::AddNode { .. }
            | Step::Failback { .. }
            | Step::StopShedding { .. }
            | Step::Unthrottle { .. }
            | Step::Restore { .. }
            | Step::Resume { .. } => None,
        }
    }

    /// Whether the step can be undone.
    pub fn is_reversible(&self) -> bool {
        self.inverse().is_some()
    }
}

/// The three parts of a plan's cost and their sum (see the module documentation for the
/// formulas).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    pub downtime: f64,
    pub resource: f64,
    pub risk: f64,
    pub total: f64,
}

/// A recovery plan: DESIGN.md's plan shape without the `planner` field, which the C-node or the
/// Erlang planner adds.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub strategy: Strategy,
    pub steps: Vec<Step>,
    /// The inverse of every reversible step, last step first.
    pub rollback: Vec<Step>,
    pub estimated_ms: u64,
    pub cost: Cost,
    /// Probability that the plan recovers the failure.
    pub confidence: f64,
}

/// One evaluated candidate of [`super::rank`].
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub strategy: Strategy,
    /// The restart scope, for `supervisor_restart` candidates.
    pub scope: Option<RestartScope>,
    /// The plan, or why it is not eligible.
    pub outcome: Result<Plan, RejectReason>,
}
