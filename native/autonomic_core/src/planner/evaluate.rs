//! Candidate plans and their cost (the formulas are documented on the `planner` module).

use std::cmp::Ordering;
use std::collections::BTreeSet;

use super::input::Label;
use super::model::*;
use super::problem::Problem;

/// A headroom for ordering: validated finite and non-negative, so the partial order is total.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Room(f64);

impl Eq for Room {}

impl PartialOrd for Room {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Room {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.partial_cmp(&other.0).unwrap_or(Ordering::Equal)
    }
}

/// The parts every candidate's cost is computed from.
struct Sizing {
    /// Number of steps.
    steps: usize,
    /// Multiplier of the strategy's base recovery time (2 for a cold restart).
    time_factor: f64,
    /// Fraction of the disrupted services' work lost while the plan runs.
    impact: f64,
    /// Load the plan adds to the cluster (restarted or moved services).
    extra_load: f64,
    /// Services disrupted.
    radius: u64,
    /// Probability that the plan's scope contains the fault.
    coverage: f64,
}

pub(crate) struct Evaluator<'p, 'a> {
    p: &'p Problem<'a>,
    /// Services the analysis points at: the affected services and every service on an affected
    /// node, in topological order.
    targets: Vec<usize>,
    confidence: f64,
}

impl<'p, 'a> Evaluator<'p, 'a> {
    pub fn new(p: &'p Problem<'a>) -> Self {
        let mut targets = p.affected_services.clone();
        for &n in &p.affected_nodes {
            targets.extend(p.prepared.services_on.row(n));
        }
        let targets = p.in_topo_order(targets);
        Evaluator {
            p,
            targets,
            confidence: p.analysis.confidence,
        }
    }

    fn label(&self, s: usize) -> Label {
        self.p.topology.services[s].name.clone()
    }

    fn node_name(&self, n: usize) -> String {
        self.p.topology.nodes[n].name.clone()
    }

    fn service_node_name(&self, s: usize) -> String {
        self.node_name(self.p.prepared.service_node[s])
    }

    fn is_up(&self, n: usize) -> bool {
        self.p.topology.nodes[n].up
    }

    fn is_healthy(&self, n: usize) -> bool {
        self.is_up(n) && !self.p.affected_node[n]
    }

    /// Sum of the services' loads, in the given (topological) order.
    fn load_of(&self, services: &[usize]) -> f64 {
        services
            .iter()
            .fold(0.0, |acc, &s| acc + self.p.topology.services[s].load)
    }

    /// The strategy's recovery time: the knowledge base's mean, else the policy's default.
    fn base_ms(&self, s: Strategy) -> f64 {
        self.p
            .effectiveness
            .get(&s)
            .and_then(|e| e.mean_recovery_ms)
            .unwrap_or(self.p.policy.default_recovery_ms[s.index()])
    }

    /// Posterior mean of the strategy's success rate under a Beta(1,1) prior.
    fn success_rate(&self, s: Strategy) -> f64 {
        let (ok, ko) = self
            .p
            .effectiveness
            .get(&s)
            .map_or((0, 0), |e| (e.successes, e.failures));
        (ok as f64 + 1.0) / (ok as f64 + ko as f64 + 2.0)
    }

    fn check_radius(&self, radius: u64) -> Result<(), RejectReason> {
        let limit = self.p.policy.blast_radius_limit;
        if radius > limit {
            Err(RejectReason::BlastRadius { radius, limit })
        } else {
            Ok(())
        }
    }

    fn finish(&self, strategy: Strategy, steps: Vec<Step>, z: Sizing) -> Plan {
        let pol = &self.p.policy;
        let extra_steps = z.steps.max(1) - 1;
        let estimated =
            (self.base_ms(strategy) * z.time_factor + pol.step_ms * extra_steps as f64).round();
        // Bounded by the input limits (recovery <= 1e12 ms, step <= 1e9 ms, < 2e5 steps).
        let estimated_ms = estimated as u64;
        let success = self.success_rate(strategy) * z.coverage;
        let n_up = self.p.prepared.n_up.max(1);
        let n_services = self.p.topology.services.len().max(1);
        let downtime = estimated_ms as f64 * z.impact / pol.slo_budget_ms;
        let resource = z.extra_load / n_up as f64;
        let risk = (1.0 - success) + z.radius as f64 / n_services as f64;
        let total = downtime + resource + risk;
        let rollback = steps.iter().rev().filter_map(Step::inverse).collect();
        Plan {
            strategy,
            steps,
            rollback,
            estimated_ms,
            cost: Cost {
                downtime,
                resource,
                risk,
                total,
            },
            confidence: success,
        }
    }

    /// Every candidate the policy allows, in the policy's order of preference.
    pub fn candidates(&self) -> Vec<Candidate> {
        let allowed = self.p.policy.allowed_for(&self.p.analysis.failure_type);
        let mut out: Vec<Candidate> = Vec::new();
        let mut escalate_at = None;
        for &s in allowed {
            match s {
                Strategy::SupervisorRestart => self.restarts(&mut out),
                Strategy::Escalate => escalate_at = Some(out.len()),
                _ => out.push(Candidate {
                    strategy: s,
                    scope: None,
                    outcome: self.single(s),
                }),
            }
        }
        if let Some(at) = escalate_at {
            let plan = self.escalate(&out);
            out.insert(
                at,
                Candidate {
                    strategy: Strategy::Escalate,
                    scope: None,
                    outcome: Ok(plan),
                },
            );
        }
        out
    }

    /// The `escalate` plan; it records why the other candidates were not eligible.
    pub fn escalate(&self, others: &[Candidate]) -> Plan {
        let rejected: Vec<Rejection> = others
            .iter()
            .filter_map(|c| match &c.outcome {
                Err(reason) => Some(Rejection {
                    strategy: c.strategy,
                    scope: c.scope,
                    reason: reason.clone(),
                }),
                Ok(_) => None,
            })
            .collect();
        let reason = if others.iter().any(|c| c.outcome.is_ok()) {
            EscalateReason::Cheapest
        } else {
            EscalateReason::NoFeasiblePlan
        };
        let a = &self.p.analysis;
        let step = Step::Escalate {
            failure_type: a.failure_type.clone(),
            root_cause: a.root_cause.clone(),
            reason,
            rejected,
        };
        self.finish(
            Strategy::Escalate,
            vec![step],
            Sizing {
                steps: 1,
                time_factor: 1.0,
                impact: 1.0,
                extra_load: 0.0,
                radius: 0,
                coverage: 1.0,
            },
        )
    }

    /// The three scopes of `supervisor_restart`. `full` only when it reaches further than
    /// `quick` (some target has siblings), `cold` only when every target has a supervisor.
    fn restarts(&self, out: &mut Vec<Candidate>) {
        let candidate = |scope, outcome| Candidate {
            strategy: Strategy::SupervisorRestart,
            scope: Some(scope),
            outcome,
        };
        let t = &self.targets;
        out.push(candidate(
            RestartScope::Quick,
            self.restart_children(t, RestartScope::Quick),
        ));
        if t.is_empty() {
            return;
        }
        let mut wide = Vec::new();
        for &s in t {
            match self.p.prepared.group[s] {
                Some(g) => wide.extend(self.p.prepared.group_members.row(g)),
                None => wide.push(s),
            }
        }
        let wide = self.p.in_topo_order(wide);
        if wide.len() > t.len() {
            out.push(candidate(
                RestartScope::Full,
                self.restart_children(&wide, RestartScope::Full),
            ));
        }
        if t.iter().all(|&s| self.p.prepared.group[s].is_some()) {
            out.push(candidate(RestartScope::Cold, self.restart_cold(&wide)));
        }
    }

    fn first_down_node(&self, services: &[usize]) -> Option<RejectReason> {
        services
            .iter()
            .map(|&s| self.p.prepared.service_node[s])
            .find(|&n| !self.is_up(n))
            .map(|n| RejectReason::NodeDown(self.node_name(n)))
    }

    fn restart_children(
        &self,
        services: &[usize],
        scope: RestartScope,
    ) -> Result<Plan, RejectReason> {
        if services.is_empty() {
            return Err(RejectReason::NothingToActOn);
        }
        if let Some(r) = self.first_down_node(services) {
            return Err(r);
        }
        let radius = self.p.blast_radius(services);
        self.check_radius(radius)?;
        let steps: Vec<Step> = services
            .iter()
            .map(|&s| Step::RestartChild {
                service: self.label(s),
                node: self.service_node_name(s),
                scope,
            })
            .collect();
        let c = self.confidence;
        let coverage = match scope {
            RestartScope::Quick => c,
            _ => c + (1.0 - c) * 0.5,
        };
        Ok(self.finish(
            Strategy::SupervisorRestart,
            steps,
            Sizing {
                steps: services.len(),
                time_factor: 1.0,
                impact: 1.0,
                extra_load: self.load_of(services),
                radius,
                coverage,
            },
        ))
    }

    fn restart_cold(&self, services: &[usize]) -> Result<Plan, RejectReason> {
        if let Some(r) = self.first_down_node(services) {
            return Err(r);
        }
        let radius = self.p.blast_radius(services);
        self.check_radius(radius)?;
        // One step per supervisor, in the order of its first child (services are in
        // topological order, so the first time a group is met is its earliest child).
        let mut groups: Vec<usize> = Vec::new();
        for &s in services {
            if let Some(g) = self.p.prepared.group[s] {
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
        let steps: Vec<Step> = groups
            .iter()
            .filter_map(|&g| {
                let first = self.p.prepared.group_members.row(g).next()?;
                let sup = self.p.topology.services[first].supervisor.clone()?;
                Some(Step::RestartSupervisor {
                    supervisor: sup,
                    node: self.service_node_name(first),
                })
            })
            .collect();
        Ok(self.finish(
            Strategy::SupervisorRestart,
            steps,
            Sizing {
                steps: groups.len(),
                time_factor: 2.0,
                impact: 1.0,
                extra_load: self.load_of(services),
                radius,
                coverage: 1.0,
            },
        ))
    }

    fn single(&self, s: Strategy) -> Result<Plan, RejectReason> {
        match s {
            Strategy::QuorumReconfiguration => self.quorum(),
            Strategy::BackendFailover => self.failover(),
            _ => self.per_service(s),
        }
    }

    fn quorum(&self) -> Result<Plan, RejectReason> {
        let removed = &self.p.affected_nodes;
        if removed.is_empty() {
            return Err(RejectReason::NothingToActOn);
        }
        let topo = &self.p.topology;
        let remaining = (0..topo.nodes.len())
            .filter(|&n| self.is_healthy(n))
            .count() as u64;
        let quorum = self.p.policy.quorum_size;
        if remaining < quorum {
            return Err(RejectReason::Quorum { remaining, quorum });
        }
        let mut moved = Vec::new();
        for &n in removed {
            moved.extend(self.p.prepared.services_on.row(n));
        }
        let moved = self.p.in_topo_order(moved);
        let radius = self.p.blast_radius(&moved);
        self.check_radius(radius)?;
        let extra_load = self.load_of(&moved);
        let spare = self
            .p
            .prepared
            .node_order
            .iter()
            .filter(|&&n| self.is_healthy(n))
            .fold(0.0, |acc, &n| acc + self.p.prepared.headroom[n]);
        if extra_load > spare {
            return Err(RejectReason::NoCapacity);
        }
        let steps = removed
            .iter()
            .map(|&n| Step::RemoveNode {
                node: self.node_name(n),
            })
            .collect();
        Ok(self.finish(
            Strategy::QuorumReconfiguration,
            steps,
            Sizing {
                steps: removed.len(),
                time_factor: 1.0,
                impact: 1.0,
                extra_load,
                radius,
                coverage: self.confidence,
            },
        ))
    }

    /// Moves every target to the healthy node with the most headroom left (ties: the smallest
    /// name), one service at a time in topological order.
    fn failover(&self) -> Result<Plan, RejectReason> {
        let t = &self.targets;
        if t.is_empty() {
            return Err(RejectReason::NothingToActOn);
        }
        let radius = self.p.blast_radius(t);
        self.check_radius(radius)?;
        let nodes = &self.p.topology.nodes;
        let mut room: Vec<f64> = self.p.prepared.headroom.clone();
        // Most headroom first, then smallest name.
        let mut free: BTreeSet<(std::cmp::Reverse<Room>, usize)> = (0..nodes.len())
            .filter(|&n| self.is_healthy(n))
            .map(|n| {
                (
                    std::cmp::Reverse(Room(room[n])),
                    self.p.prepared.node_rank[n],
                )
            })
            .collect();
        let mut steps = Vec::with_capacity(t.len());
        for &s in t {
            let from = self.p.prepared.service_node[s];
            let load = self.p.topology.services[s].load;
            let pick = free
                .iter()
                .find(|(_, rank)| self.p.prepared.node_order[*rank] != from)
                .copied();
            let Some(key) = pick else {
                return Err(RejectReason::NoCapacity);
            };
            let to = self.p.prepared.node_order[key.1];
            if room[to] < load {
                return Err(RejectReason::NoCapacity);
            }
            free.remove(&key);
            room[to] -= load;
            free.insert((std::cmp::Reverse(Room(room[to])), key.1));
            steps.push(Step::Failover {
                service: self.label(s),
                from: self.node_name(from),
                to: self.node_name(to),
            });
        }
        Ok(self.finish(
            Strategy::BackendFailover,
            steps,
            Sizing {
                steps: t.len(),
                time_factor: 1.0,
                impact: 1.0,
                extra_load: self.load_of(t),
                radius,
                coverage: self.confidence,
            },
        ))
    }

    /// Shedding, throttling, degrading or pausing every target.
    fn per_service(&self, s: Strategy) -> Result<Plan, RejectReason> {
        let t = &self.targets;
        if t.is_empty() {
            return Err(RejectReason::NothingToActOn);
        }
        let radius = self.p.blast_radius(t);
        self.check_radius(radius)?;
        let pol = &self.p.policy;
        let impact = match s {
            Strategy::LoadShedding => f64::from(pol.shed_percent) / 100.0,
            Strategy::Throttle => f64::from(pol.throttle_percent) / 100.0,
            Strategy::GracefulDegradation => pol.degrade_impact,
            _ => 1.0,
        };
        let steps = t
            .iter()
            .map(|&i| {
                let service = self.label(i);
                match s {
                    Strategy::LoadShedding => Step::Shed {
                        service,
                        percent: pol.shed_percent,
                    },
                    Strategy::Throttle => Step::Throttle {
                        service,
                        percent: pol.throttle_percent,
                    },
                    Strategy::GracefulDegradation => Step::Degrade { service },
                    _ => Step::Pause { service },
                }
            })
            .collect();
        Ok(self.finish(
            s,
            steps,
            Sizing {
                steps: t.len(),
                time_factor: 1.0,
                impact,
                extra_load: 0.0,
                radius,
                coverage: self.confidence,
            },
        ))
    }
}
