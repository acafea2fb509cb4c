//! The recovery planner: from an analysis, a topology, the knowledge base's effectiveness
//! figures and a policy, the cheapest safe recovery plan (DESIGN.md section 3, "Plan").
//!
//! Pure and deterministic: no I/O, no clock, no randomness, and no hash-map iteration reaches
//! the output (maps are only used for lookups; every order comes from names or from lists). The
//! same input always gives the same plan, whatever the order of the input's lists. The C-node
//! (`native/autonomic_planner`) runs it behind the Erlang distribution protocol, and
//! `autonomic_planner_builtin` implements the same model in Erlang, bit for bit: every float is
//! computed with the same operations in the same order (sums in topological or name order).
//!
//! # The model
//!
//! **Targets.** The affected services and every service on an affected node, in topological
//! order: by *level* (0 without dependencies, else one more than the deepest dependency), then by
//! name (atoms before binaries, as Erlang orders terms). Dependencies therefore always come
//! before their dependents.
//!
//! **Candidates**, for each strategy the policy allows for the failure type, in the policy's
//! order:
//!
//! | strategy | steps (rollback) | extra load | impact | coverage |
//! |---|---|---|---|---|
//! | `supervisor_restart`, scope `quick` | `restart_child` per target | their load | 1 | c |
//! | scope `full` (when some target has siblings) | `restart_child` per child of the targets' supervisors | their load | 1 | c + (1 - c) / 2 |
//! | scope `cold` (when every target has a supervisor) | `restart_supervisor` per supervisor; takes twice the base time | children's load | 1 | 1 |
//! | `quorum_reconfiguration` | `remove_node` per affected node (`add_node`) | load of their services | 1 | c |
//! | `backend_failover` | `failover` per target to the healthy node with most headroom (`failback`) | moved load | 1 | c |
//! | `load_shedding` | `shed` per target (`stop_shedding`) | 0 | shed % / 100 | c |
//! | `throttle` | `throttle` per target (`unthrottle`) | 0 | throttle % / 100 | c |
//! | `graceful_degradation` | `degrade` per target (`restore`) | 0 | degrade_impact | c |
//! | `pause` | `pause` per target (`resume`) | 0 | 1 | c |
//! | `escalate` | one `escalate` step naming the rejected candidates | 0 | 1 | 1 |
//!
//! where c is the analysis's confidence: a plan that acts on the diagnosed targets only works if
//! the diagnosis is right; a wider restart also covers faults next to them.
//!
//! **Eligibility**, checked in this order: something to act on; a restart's services are on
//! running nodes; a quorum reconfiguration leaves at least `quorum_size` healthy (running,
//! unaffected) nodes, so no plan ever removes more nodes than the quorum allows; the blast
//! radius (the plan's services plus all their transitive dependents) is within
//! `blast_radius_limit`; the healthy nodes have the headroom for the work moved to them.
//!
//! **Cost**, with p the strategy's success rate under a Beta(1,1) prior,
//! `(successes + 1) / (successes + failures + 2)`, and base its mean recovery time from the
//! knowledge base (the policy's default when unknown):
//!
//! ```text
//! estimated_ms = round(base * factor + step_ms * (steps - 1))
//! downtime     = estimated_ms * impact / slo_budget_ms
//! resource     = extra_load / running_nodes
//! risk         = (1 - p * coverage) + blast_radius / services
//! total        = downtime + resource + risk
//! confidence   = p * coverage
//! ```
//!
//! The plan is the eligible candidate with the lowest total (ties: the policy's earlier
//! strategy, then quick before full before cold). When no candidate is eligible, the plan is
//! `escalate` with reason `no_feasible_plan`, whether or not the policy allows it. Every
//! reversible step has its inverse in the rollback, last step first; restarts and escalation
//! cannot be undone.

mod error;
mod evaluate;
mod fxhash;
mod input;
mod model;
mod problem;

#[cfg(test)]
mod tests;

pub use error::{Place, PlanError};
pub use input::*;
pub use model::*;

use std::collections::BTreeMap;

use evaluate::Evaluator;
use problem::{Prepared, Problem};

/// Every candidate the policy allows for the failure type, evaluated, in the policy's order.
pub fn rank(input: &PlanInput) -> Result<Vec<Candidate>, PlanError> {
    let (prepared, policy, affected) = problem::check_all(input)?;
    let p = Problem::new(
        &input.topology,
        &prepared,
        &input.analysis,
        &input.effectiveness,
        policy,
        affected,
    );
    Ok(Evaluator::new(&p).candidates())
}

/// The cheapest eligible plan, or an `escalate` plan when none is eligible.
pub fn plan(input: &PlanInput) -> Result<Plan, PlanError> {
    let (prepared, policy, affected) = problem::check_all(input)?;
    Ok(choose(&Problem::new(
        &input.topology,
        &prepared,
        &input.analysis,
        &input.effectiveness,
        policy,
        affected,
    )))
}

fn choose(p: &Problem<'_>) -> Plan {
    let ev = Evaluator::new(p);
    let candidates = ev.candidates();
    let mut best: Option<&Plan> = None;
    for c in &candidates {
        if let Ok(plan) = &c.outcome {
            // Strictly lower: on equal cost the earlier candidate stays.
            let better = match best {
                None => true,
                Some(b) => plan.cost.total < b.cost.total,
            };
            if better {
                best = Some(plan);
            }
        }
    }
    match best {
        Some(plan) => plan.clone(),
        None => ev.escalate(&candidates),
    }
}

/// A topology validated and indexed once, for planning many times: building the indexes (name
/// lookups, the dependency graph's levels and order) is most of the work of a plan on a big
/// topology, and topologies change far less often than failures happen.
pub struct PreparedTopology {
    topology: Topology,
    prepared: Prepared,
}

impl PreparedTopology {
    /// Validates and indexes a topology (the error [`plan`] would report for it, given a valid
    /// request).
    pub fn new(topology: Topology) -> Result<PreparedTopology, PlanError> {
        let prepared = problem::prepare(&topology)?;
        Ok(PreparedTopology { topology, prepared })
    }

    /// The topology.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }
}

/// What a plan needs besides its topology.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanRequest {
    pub analysis: Analysis,
    pub effectiveness: BTreeMap<Strategy, StrategyStats>,
    pub policy: PolicySpec,
}

/// [`plan`] on a prepared topology: the same plan, and for an invalid request the same error,
/// as `plan` on the whole input.
pub fn plan_prepared(
    topology: &PreparedTopology,
    request: &PlanRequest,
) -> Result<Plan, PlanError> {
    let p = problem::request_on_prepared(
        &topology.topology,
        &topology.prepared,
        &request.analysis,
        &request.effectiveness,
        &request.policy,
    )?;
    Ok(choose(&p))
}

/// [`plan`], also returning the topology prepared when it is valid (whether or not the rest of
/// the input is), for [`plan_prepared`] to reuse.
pub fn plan_and_prepare(input: PlanInput) -> (Result<Plan, PlanError>, Option<PreparedTopology>) {
    let result = problem::check_all(&input).map(|(prepared, policy, affected)| {
        let plan = choose(&Problem::new(
            &input.topology,
            &prepared,
            &input.analysis,
            &input.effectiveness,
            policy,
            affected,
        ));
        (prepared, plan)
    });
    match result {
        Ok((prepared, plan)) => (
            Ok(plan),
            Some(PreparedTopology {
                topology: input.topology,
                prepared,
            }),
        ),
        Err(e) => {
            // The error is the first in the documented order; the topology may still be valid.
            let prepared = problem::prepare(&input.topology).ok();
            let topology = input.topology;
            (
                Err(e),
                prepared.map(|prepared| PreparedTopology { topology, prepared }),
            )
        }
    }
}
