//! Validation of a [`PlanInput`] and the indexes the planner works on: the dependency graph with
//! its levels, node and service lookups, supervisor groups.

use super::error::{Place, PlanError};
use super::fxhash::{map_with_capacity, FxHashMap};
use super::input::*;
use super::model::Strategy;

/// A validated input with its indexes. Services and nodes are referred to by their position in
/// the input's lists.
pub(crate) struct Problem<'a> {
    pub input: &'a PlanInput,
    pub policy: Policy,
    /// Headroom per node, with -0.0 made +0.0 (so that ties compare as in Erlang).
    pub headroom: Vec<f64>,
    /// Node positions sorted by name.
    pub node_order: Vec<usize>,
    /// Position of each node in `node_order`.
    pub node_rank: Vec<usize>,
    /// Node of each service.
    pub service_node: Vec<usize>,
    /// Services that depend directly on each service.
    pub dependents: Vec<Vec<usize>>,
    /// Position of each service in the topological order: by level (0 for services without
    /// dependencies, else one more than the deepest dependency), then by name.
    pub topo_pos: Vec<usize>,
    /// Services per node, in topological order.
    pub services_on: Vec<Vec<usize>>,
    /// Supervisor group of each service (children of one supervisor on one node), if it has a
    /// supervisor.
    pub group: Vec<Option<usize>>,
    /// Members of each group, in topological order.
    pub group_members: Vec<Vec<usize>>,
    /// Whether each node is named by the analysis.
    pub affected_node: Vec<bool>,
    /// Affected nodes, deduplicated, sorted by name.
    pub affected_nodes: Vec<usize>,
    /// Affected services, deduplicated, in topological order.
    pub affected_services: Vec<usize>,
}

fn check_count(n: usize, max: usize, what: &'static str) -> Result<(), PlanError> {
    if n > max {
        Err(PlanError::TooMany { what, max })
    } else {
        Ok(())
    }
}

fn in_range(v: f64, lo: f64, hi: f64) -> bool {
    v.is_finite() && v >= lo && v <= hi
}

fn check_range(ok: bool, place: Place, key: &'static str) -> Result<(), PlanError> {
    if ok {
        Ok(())
    } else {
        Err(PlanError::OutOfRange { place, key })
    }
}

/// Sizes, in the order the input is read.
fn check_sizes(input: &PlanInput) -> Result<(), PlanError> {
    check_count(
        input.analysis.affected_nodes.len(),
        MAX_NODES,
        "affected_nodes",
    )?;
    check_count(
        input.analysis.affected_services.len(),
        MAX_SERVICES,
        "affected_services",
    )?;
    check_count(input.topology.nodes.len(), MAX_NODES, "nodes")?;
    check_count(input.topology.services.len(), MAX_SERVICES, "services")?;
    let mut edges = 0usize;
    for s in &input.topology.services {
        check_count(s.depends_on.len(), MAX_DEPENDS_ON, "depends_on")?;
        edges += s.depends_on.len();
        check_count(edges, MAX_DEPENDENCIES, "dependencies")?;
    }
    check_count(input.policy.allowed.len(), MAX_ALLOWED, "allowed")
}

/// Ranges, in the order the input is read; returns the policy with its defaults.
fn check_ranges(input: &PlanInput) -> Result<Policy, PlanError> {
    let a = &input.analysis;
    check_range(
        in_range(a.confidence, 0.0, 1.0),
        Place::Analysis,
        "confidence",
    )?;
    for n in &input.topology.nodes {
        check_range(in_range(n.headroom, 0.0, 1.0), Place::Node, "headroom")?;
    }
    for s in &input.topology.services {
        check_range(in_range(s.load, 0.0, 1.0), Place::Service, "load")?;
    }
    for (&strategy, st) in &input.effectiveness {
        let place = Place::Effectiveness(strategy);
        check_range(
            (0..=MAX_INTEGER).contains(&st.successes),
            place,
            "successes",
        )?;
        check_range((0..=MAX_INTEGER).contains(&st.failures), place, "failures")?;
        if let Some(m) = st.mean_recovery_ms {
            check_range(in_range(m, 0.0, MAX_RECOVERY_MS), place, "mean_recovery_ms")?;
        }
    }
    resolve_policy(&input.policy, input.topology.nodes.len())
}

fn resolve_policy(spec: &PolicySpec, node_count: usize) -> Result<Policy, PlanError> {
    let p = Place::Policy;
    let slo_budget_ms = spec.slo_budget_ms.unwrap_or(DEFAULT_SLO_BUDGET_MS);
    check_range(
        slo_budget_ms.is_finite() && slo_budget_ms > 0.0 && slo_budget_ms <= MAX_SLO_BUDGET_MS,
        p,
        "slo_budget_ms",
    )?;
    let blast = spec
        .blast_radius_limit
        .unwrap_or(DEFAULT_BLAST_RADIUS_LIMIT as i64);
    check_range((0..=MAX_INTEGER).contains(&blast), p, "blast_radius_limit")?;
    let quorum = spec.quorum_size.unwrap_or((node_count / 2 + 1) as i64);
    check_range((1..=MAX_INTEGER).contains(&quorum), p, "quorum_size")?;
    let mut default_recovery_ms = default_recovery_ms();
    for (&s, &ms) in &spec.default_recovery_ms {
        check_range(
            in_range(ms, 0.0, MAX_RECOVERY_MS),
            Place::DefaultRecovery,
            s.name(),
        )?;
        default_recovery_ms[s.index()] = ms;
    }
    let step_ms = spec.step_ms.unwrap_or(DEFAULT_STEP_MS);
    check_range(in_range(step_ms, 0.0, MAX_STEP_MS), p, "step_ms")?;
    let shed = spec.shed_percent.unwrap_or(DEFAULT_SHED_PERCENT.into());
    check_range((1..=100).contains(&shed), p, "shed_percent")?;
    let throttle = spec
        .throttle_percent
        .unwrap_or(DEFAULT_THROTTLE_PERCENT.into());
    check_range((1..=100).contains(&throttle), p, "throttle_percent")?;
    let degrade_impact = spec.degrade_impact.unwrap_or(DEFAULT_DEGRADE_IMPACT);
    check_range(in_range(degrade_impact, 0.0, 1.0), p, "degrade_impact")?;

    let mut allowed = default_allowed();
    for (ft, list) in &spec.allowed {
        let mut dedup: Vec<Strategy> = Vec::with_capacity(list.len());
        for &s in list {
            if !dedup.contains(&s) {
                dedup.push(s);
            }
        }
        allowed.insert(ft.clone(), dedup);
    }
    Ok(Policy {
        allowed,
        slo_budget_ms,
        // Both were range-checked above, so the conversions cannot fail.
        blast_radius_limit: u64::try_from(blast).unwrap_or(0),
        quorum_size: u64::try_from(quorum).unwrap_or(1),
        default_recovery_ms,
        step_ms,
        shed_percent: u8::try_from(shed).unwrap_or(DEFAULT_SHED_PERCENT),
        throttle_percent: u8::try_from(throttle).unwrap_or(DEFAULT_THROTTLE_PERCENT),
        degrade_impact,
    })
}

/// First-occurrence deduplication.
fn dedup_in_order(v: impl IntoIterator<Item = usize>, seen: &mut [bool]) -> Vec<usize> {
    let mut out = Vec::new();
    for i in v {
        if !seen[i] {
            seen[i] = true;
            out.push(i);
        }
    }
    for &i in &out {
        seen[i] = false;
    }
    out
}

impl<'a> Problem<'a> {
    pub fn new(input: &'a PlanInput) -> Result<Problem<'a>, PlanError> {
        check_sizes(input)?;
        let policy = check_ranges(input)?;
        let topo = &input.topology;

        // Names.
        let mut node_ix: FxHashMap<&str, usize> = map_with_capacity(topo.nodes.len());
        for (i, n) in topo.nodes.iter().enumerate() {
            if node_ix.insert(n.name.as_str(), i).is_some() {
                return Err(PlanError::DuplicateNode(n.name.clone()));
            }
        }
        let mut svc_ix: FxHashMap<&Label, usize> = map_with_capacity(topo.services.len());
        for (i, s) in topo.services.iter().enumerate() {
            if svc_ix.insert(&s.name, i).is_some() {
                return Err(PlanError::DuplicateService(s.name.clone()));
            }
        }
        let mut service_node = Vec::with_capacity(topo.services.len());
        for s in &topo.services {
            match node_ix.get(s.node.as_str()) {
                Some(&n) => service_node.push(n),
                None => return Err(PlanError::UnknownNode(s.node.clone())),
            }
        }
        let n_services = topo.services.len();
        let mut seen = vec![false; n_services];
        let mut deps: Vec<Vec<usize>> = Vec::with_capacity(n_services);
        for s in &topo.services {
            let mut ix = Vec::with_capacity(s.depends_on.len());
            for d in &s.depends_on {
                match svc_ix.get(d) {
                    Some(&j) => ix.push(j),
                    None => {
                        return Err(PlanError::UnknownDependency {
                            service: s.name.clone(),
                            dependency: d.clone(),
                        })
                    }
                }
            }
            deps.push(dedup_in_order(ix, &mut seen));
        }
        let mut affected_node = vec![false; topo.nodes.len()];
        let mut affected_nodes = Vec::new();
        for n in &input.analysis.affected_nodes {
            match node_ix.get(n.as_str()) {
                Some(&i) => {
                    if !affected_node[i] {
                        affected_node[i] = true;
                        affected_nodes.push(i);
                    }
                }
                None => return Err(PlanError::UnknownNode(n.clone())),
            }
        }
        let mut affected_services = Vec::new();
        for s in &input.analysis.affected_services {
            match svc_ix.get(s) {
                Some(&i) => affected_services.push(i),
                None => return Err(PlanError::UnknownService(s.clone())),
            }
        }
        let affected_services = dedup_in_order(affected_services, &mut seen);

        // Levels (Kahn's algorithm) and cycles.
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n_services];
        for (s, ds) in deps.iter().enumerate() {
            for &d in ds {
                dependents[d].push(s);
            }
        }
        let mut pending: Vec<usize> = deps.iter().map(Vec::len).collect();
        let mut level = vec![0usize; n_services];
        let mut queue: Vec<usize> = (0..n_services).filter(|&s| pending[s] == 0).collect();
        let mut done = 0usize;
        while let Some(u) = queue.pop() {
            done += 1;
            for &d in &dependents[u] {
                level[d] = level[d].max(level[u] + 1);
                pending[d] -= 1;
                if pending[d] == 0 {
                    queue.push(d);
                }
            }
        }
        if done < n_services {
            return Err(PlanError::DependencyCycle(find_cycle(
                topo, &deps, &pending,
            )));
        }
        let mut order: Vec<usize> = (0..n_services).collect();
        order.sort_by(|&a, &b| {
            level[a]
                .cmp(&level[b])
                .then_with(|| topo.services[a].name.cmp(&topo.services[b].name))
        });
        let mut topo_pos = vec![0usize; n_services];
        for (pos, &s) in order.iter().enumerate() {
            topo_pos[s] = pos;
        }

        // Per node, per supervisor group, in topological order.
        let mut services_on: Vec<Vec<usize>> = vec![Vec::new(); topo.nodes.len()];
        let mut group_ix: FxHashMap<(&Label, usize), usize> = map_with_capacity(n_services);
        let mut group = vec![None; n_services];
        let mut group_members: Vec<Vec<usize>> = Vec::new();
        for &s in &order {
            let n = service_node[s];
            services_on[n].push(s);
            if let Some(sup) = &topo.services[s].supervisor {
                let next = group_members.len();
                let g = *group_ix.entry((sup, n)).or_insert(next);
                if g == next {
                    group_members.push(Vec::new());
                }
                group_members[g].push(s);
                group[s] = Some(g);
            }
        }

        let mut node_order: Vec<usize> = (0..topo.nodes.len()).collect();
        node_order.sort_by(|&a, &b| topo.nodes[a].name.cmp(&topo.nodes[b].name));
        let mut node_rank = vec![0usize; topo.nodes.len()];
        for (rank, &n) in node_order.iter().enumerate() {
            node_rank[n] = rank;
        }
        affected_nodes.sort_by_key(|&n| node_rank[n]);
        let mut affected_services = affected_services;
        affected_services.sort_by_key(|&s| topo_pos[s]);
        let headroom = topo.nodes.iter().map(|n| n.headroom + 0.0).collect();

        Ok(Problem {
            input,
            policy,
            headroom,
            node_order,
            node_rank,
            service_node,
            dependents,
            topo_pos,
            services_on,
            group,
            group_members,
            affected_node,
            affected_nodes,
            affected_services,
        })
    }

    /// Number of services that `scope` disrupts: the services themselves and every service that
    /// depends on one of them, directly or not.
    pub fn blast_radius(&self, scope: &[usize]) -> u64 {
        let mut seen = vec![false; self.topo_pos.len()];
        let mut stack: Vec<usize> = Vec::with_capacity(scope.len());
        let mut count = 0u64;
        for &s in scope {
            if !seen[s] {
                seen[s] = true;
                stack.push(s);
            }
        }
        while let Some(s) = stack.pop() {
            count += 1;
            for &d in &self.dependents[s] {
                if !seen[d] {
                    seen[d] = true;
                    stack.push(d);
                }
            }
        }
        count
    }

    /// Sorts services into topological order (dependencies first), removing duplicates.
    pub fn in_topo_order(&self, mut v: Vec<usize>) -> Vec<usize> {
        v.sort_by_key(|&s| self.topo_pos[s]);
        v.dedup();
        v
    }
}

/// A service on a dependency cycle, chosen deterministically: from the smallest-named service
/// left over by Kahn's algorithm, follow the first left-over dependency until a service repeats;
/// the smallest name on that cycle.
fn find_cycle(topo: &Topology, deps: &[Vec<usize>], pending: &[usize]) -> Label {
    let left = |s: usize| pending[s] > 0;
    let name = |s: usize| &topo.services[s].name;
    let start = (0..topo.services.len())
        .filter(|&s| left(s))
        .min_by(|&a, &b| name(a).cmp(name(b)));
    let Some(start) = start else {
        // Unreachable: called only when some service is left over.
        return Label::atom("undefined");
    };
    let mut at: FxHashMap<usize, usize> = map_with_capacity(0);
    let mut path: Vec<usize> = Vec::new();
    let mut cur = start;
    loop {
        if let Some(&i) = at.get(&cur) {
            let cycle = &path[i..];
            return cycle
                .iter()
                .map(|&s| name(s))
                .min()
                .cloned()
                .unwrap_or_else(|| name(cur).clone());
        }
        at.insert(cur, path.len());
        path.push(cur);
        // A left-over service always has a left-over dependency: that is why it is left over.
        match deps[cur].iter().copied().find(|&d| left(d)) {
            Some(next) => cur = next,
            None => return name(cur).clone(),
        }
    }
}
