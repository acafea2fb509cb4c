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
    pub dependents: Csr,
    /// Position of each service in the topological order: by level (0 for services without
    /// dependencies, else one more than the deepest dependency), then by name.
    pub topo_pos: Vec<usize>,
    /// Services per node, in topological order.
    pub services_on: Csr,
    /// Supervisor group of each service (children of one supervisor on one node), if it has a
    /// supervisor.
    pub group: Vec<Option<usize>>,
    /// Members of each group, in topological order.
    pub group_members: Csr,
    /// Whether each node is named by the analysis.
    pub affected_node: Vec<bool>,
    /// Affected nodes, deduplicated, sorted by name.
    pub affected_nodes: Vec<usize>,
    /// Affected services, deduplicated, in topological order.
    pub affected_services: Vec<usize>,
}

/// Rows of indexes in one allocation (compressed sparse rows): a topology of 5,000 services
/// would otherwise make some 15,000 small vectors per plan.
pub(crate) struct Csr {
    start: Vec<u32>,
    items: Vec<u32>,
}

impl Csr {
    /// Builds `rows` rows from `(row, item)` pairs; items keep their order within a row.
    fn build(rows: usize, pairs: impl Iterator<Item = (usize, usize)> + Clone) -> Csr {
        let mut start = vec![0u32; rows + 1];
        for (r, _) in pairs.clone() {
            start[r + 1] += 1;
        }
        for r in 0..rows {
            start[r + 1] += start[r];
        }
        let mut fill: Vec<u32> = start[..rows].to_vec();
        let mut items = vec![0u32; start[rows] as usize];
        for (r, i) in pairs {
            items[fill[r] as usize] = i as u32;
            fill[r] += 1;
        }
        Csr { start, items }
    }

    /// The items of row `r`.
    pub fn row(&self, r: usize) -> impl Iterator<Item = usize> + '_ {
        let (a, b) = (self.start[r] as usize, self.start[r + 1] as usize);
        self.items[a..b].iter().map(|&i| i as usize)
    }

    /// The length of row `r`.
    pub fn len(&self, r: usize) -> usize {
        (self.start[r + 1] - self.start[r]) as usize
    }
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
        // Dependencies, deduplicated (first occurrence kept), as (service, dependency) pairs.
        let mut dep_pairs: Vec<(usize, usize)> = Vec::new();
        for (i, s) in topo.services.iter().enumerate() {
            let first = dep_pairs.len();
            for d in &s.depends_on {
                match svc_ix.get(d) {
                    Some(&j) => {
                        if !seen[j] {
                            seen[j] = true;
                            dep_pairs.push((i, j));
                        }
                    }
                    None => {
                        return Err(PlanError::UnknownDependency {
                            service: s.name.clone(),
                            dependency: d.clone(),
                        })
                    }
                }
            }
            for &(_, j) in &dep_pairs[first..] {
                seen[j] = false;
            }
        }
        let deps = Csr::build(n_services, dep_pairs.iter().copied());
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

        // Levels (Kahn's algorithm) and cycles.
        let dependents = Csr::build(n_services, dep_pairs.iter().map(|&(s, d)| (d, s)));
        drop(dep_pairs);
        let mut pending: Vec<usize> = (0..n_services).map(|s| deps.len(s)).collect();
        let mut level = vec![0u32; n_services];
        let mut queue: Vec<usize> = (0..n_services).filter(|&s| pending[s] == 0).collect();
        let mut done = 0usize;
        while let Some(u) = queue.pop() {
            done += 1;
            for d in dependents.row(u) {
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
        // Sorted by level, then name. The first 8 bytes of a name, as a big-endian number,
        // order names as their bytes do unless they are equal, so most comparisons are of
        // integers. Names are unique: the order is total and an unstable sort is deterministic.
        let mut keyed: Vec<(u32, u8, u64, usize)> = (0..n_services)
            .map(|s| {
                let (kind, prefix) = topo.services[s].name.sort_prefix();
                (level[s], kind, prefix, s)
            })
            .collect();
        keyed.sort_unstable_by(|a, b| {
            (a.0, a.1, a.2)
                .cmp(&(b.0, b.1, b.2))
                .then_with(|| topo.services[a.3].name.cmp(&topo.services[b.3].name))
        });
        let order: Vec<usize> = keyed.into_iter().map(|k| k.3).collect();
        let mut topo_pos = vec![0usize; n_services];
        for (pos, &s) in order.iter().enumerate() {
            topo_pos[s] = pos;
        }

        // Per node, per supervisor group, in topological order.
        let services_on = Csr::build(
            topo.nodes.len(),
            order.iter().map(|&s| (service_node[s], s)),
        );
        let mut group_ix: FxHashMap<(&Label, usize), usize> = map_with_capacity(n_services);
        let mut group = vec![None; n_services];
        for &s in &order {
            if let Some(sup) = &topo.services[s].supervisor {
                let next = group_ix.len();
                let g = *group_ix.entry((sup, service_node[s])).or_insert(next);
                group[s] = Some(g);
            }
        }
        let group_members = Csr::build(
            group_ix.len(),
            order.iter().filter_map(|&s| group[s].map(|g| (g, s))),
        );

        let mut node_order: Vec<usize> = (0..topo.nodes.len()).collect();
        node_order.sort_by(|&a, &b| topo.nodes[a].name.cmp(&topo.nodes[b].name));
        let mut node_rank = vec![0usize; topo.nodes.len()];
        for (rank, &n) in node_order.iter().enumerate() {
            node_rank[n] = rank;
        }
        affected_nodes.sort_by_key(|&n| node_rank[n]);
        affected_services.sort_by_key(|&s| topo_pos[s]);
        affected_services.dedup();
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
            for d in self.dependents.row(s) {
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
fn find_cycle(topo: &Topology, deps: &Csr, pending: &[usize]) -> Label {
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
        match deps.row(cur).find(|&d| left(d)) {
            Some(next) => cur = next,
            None => return name(cur).clone(),
        }
    }
}
