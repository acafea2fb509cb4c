//! Validation of the input and the indexes the planner works on: the dependency graph with its
//! levels, node and service lookups, supervisor groups.
//!
//! The topology's part ([`Prepared`]) does not depend on the analysis, the effectiveness figures
//! or the policy, so it can be kept and reused for every plan on the same topology
//! ([`super::PreparedTopology`]). Checks run in one fixed order, the topology's interleaved with
//! the request's, so the same input always gives the same error with or without a prepared
//! topology:
//!
//! 1. sizes: the analysis's lists, the topology's lists, the policy's `allowed` map;
//! 2. ranges: the analysis's confidence, the topology's headrooms and loads, the effectiveness
//!    figures, the policy;
//! 3. references: duplicate nodes, duplicate services, services' nodes, dependencies, then the
//!    analysis's nodes and services;
//! 4. dependency cycles.

use std::hash::{Hash, Hasher};

use super::error::{Place, PlanError};
use super::fxhash::{map_with_capacity, FxHashMap, FxHasher};
use super::input::*;
use super::model::Strategy;

/// Rows of indexes in one allocation (compressed sparse rows): a topology of 5,000 services
/// would otherwise make some 15,000 small vectors.
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

const NONE: u32 = u32::MAX;

/// Positions of names in a list, by hash (names with the same hash are chained), without
/// copying the names: lookups compare against the list itself.
pub(crate) struct NameIndex {
    heads: FxHashMap<u64, u32>,
    next: Vec<u32>,
}

fn hash_of<K: Hash + ?Sized>(k: &K) -> u64 {
    let mut h = FxHasher::default();
    k.hash(&mut h);
    h.finish()
}

impl NameIndex {
    /// Indexes `n` names; `Err(i)` for the first name equal to an earlier one.
    fn build<'k, K: Hash + Eq + ?Sized + 'k>(
        n: usize,
        name: impl Fn(usize) -> &'k K,
    ) -> Result<NameIndex, usize> {
        let mut heads: FxHashMap<u64, u32> = map_with_capacity(n);
        let mut next = vec![NONE; n];
        for i in 0..n {
            let key = name(i);
            let h = hash_of(key);
            let head = heads.get(&h).copied().unwrap_or(NONE);
            let mut j = head;
            while j != NONE {
                if name(j as usize) == key {
                    return Err(i);
                }
                j = next[j as usize];
            }
            next[i] = head;
            heads.insert(h, i as u32);
        }
        Ok(NameIndex { heads, next })
    }

    fn get<'k, K: Hash + Eq + ?Sized + 'k>(
        &self,
        key: &K,
        name: impl Fn(usize) -> &'k K,
    ) -> Option<usize> {
        let mut j = self.heads.get(&hash_of(key)).copied().unwrap_or(NONE);
        while j != NONE {
            if name(j as usize) == key {
                return Some(j as usize);
            }
            j = self.next[j as usize];
        }
        None
    }
}

/// The indexes of a validated topology. Nodes and services are referred to by their position
/// in the topology's lists.
pub struct Prepared {
    node_ix: NameIndex,
    service_ix: NameIndex,
    /// Headroom per node, with -0.0 made +0.0 (so that ties compare as in Erlang).
    pub(crate) headroom: Vec<f64>,
    /// Node positions sorted by name.
    pub(crate) node_order: Vec<usize>,
    /// Position of each node in `node_order`.
    pub(crate) node_rank: Vec<usize>,
    /// Node of each service.
    pub(crate) service_node: Vec<usize>,
    /// Services that depend directly on each service.
    pub(crate) dependents: Csr,
    /// Position of each service in the topological order: by level (0 for services without
    /// dependencies, else one more than the deepest dependency), then by name.
    pub(crate) topo_pos: Vec<usize>,
    /// Services per node, in topological order.
    pub(crate) services_on: Csr,
    /// Supervisor group of each service (children of one supervisor on one node), if it has a
    /// supervisor.
    pub(crate) group: Vec<Option<usize>>,
    /// Members of each group, in topological order.
    pub(crate) group_members: Csr,
    /// Nodes that are up.
    pub(crate) n_up: usize,
}

/// Stage 3 of a topology: names resolved, dependencies as pairs; levels still to come.
pub(crate) struct Indexed {
    node_ix: NameIndex,
    service_ix: NameIndex,
    service_node: Vec<usize>,
    /// Deduplicated (first occurrence kept) `(service, dependency)` pairs, in list order.
    dep_pairs: Vec<(usize, usize)>,
}

/// What the analysis points at, resolved against a topology.
pub(crate) struct Affected {
    nodes: Vec<usize>,
    services: Vec<usize>,
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

// --- the request's stages ---

pub(crate) fn analysis_sizes(a: &Analysis) -> Result<(), PlanError> {
    check_count(a.affected_nodes.len(), MAX_NODES, "affected_nodes")?;
    check_count(a.affected_services.len(), MAX_SERVICES, "affected_services")
}

pub(crate) fn policy_sizes(p: &PolicySpec) -> Result<(), PlanError> {
    check_count(p.allowed.len(), MAX_ALLOWED, "allowed")
}

pub(crate) fn analysis_ranges(a: &Analysis) -> Result<(), PlanError> {
    check_range(
        in_range(a.confidence, 0.0, 1.0),
        Place::Analysis,
        "confidence",
    )
}

/// Effectiveness and policy ranges; the policy with its defaults.
pub(crate) fn request_ranges(
    effectiveness: &std::collections::BTreeMap<Strategy, StrategyStats>,
    policy: &PolicySpec,
    node_count: usize,
) -> Result<Policy, PlanError> {
    for (&strategy, st) in effectiveness {
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
    resolve_policy(policy, node_count)
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

/// The analysis's nodes and services, resolved (unknown ones are errors), deduplicated.
pub(crate) fn analysis_refs(
    a: &Analysis,
    topo: &Topology,
    node_ix: &NameIndex,
    service_ix: &NameIndex,
) -> Result<Affected, PlanError> {
    let mut seen_node = vec![false; topo.nodes.len()];
    let mut nodes = Vec::new();
    for n in &a.affected_nodes {
        match node_ix.get(n.as_str(), |i| topo.nodes[i].name.as_str()) {
            Some(i) => {
                if !seen_node[i] {
                    seen_node[i] = true;
                    nodes.push(i);
                }
            }
            None => return Err(PlanError::UnknownNode(n.clone())),
        }
    }
    let mut services = Vec::with_capacity(a.affected_services.len());
    for s in &a.affected_services {
        match service_ix.get(s, |i| &topo.services[i].name) {
            Some(i) => services.push(i),
            None => return Err(PlanError::UnknownService(s.clone())),
        }
    }
    Ok(Affected { nodes, services })
}

// --- the topology's stages ---

pub(crate) fn topology_sizes(topo: &Topology) -> Result<(), PlanError> {
    check_count(topo.nodes.len(), MAX_NODES, "nodes")?;
    check_count(topo.services.len(), MAX_SERVICES, "services")?;
    let mut edges = 0usize;
    for s in &topo.services {
        check_count(s.depends_on.len(), MAX_DEPENDS_ON, "depends_on")?;
        edges += s.depends_on.len();
        check_count(edges, MAX_DEPENDENCIES, "dependencies")?;
    }
    Ok(())
}

pub(crate) fn topology_ranges(topo: &Topology) -> Result<(), PlanError> {
    for n in &topo.nodes {
        check_range(in_range(n.headroom, 0.0, 1.0), Place::Node, "headroom")?;
    }
    for s in &topo.services {
        check_range(in_range(s.load, 0.0, 1.0), Place::Service, "load")?;
    }
    Ok(())
}

pub(crate) fn topology_index(topo: &Topology) -> Result<Indexed, PlanError> {
    let node_ix = NameIndex::build(topo.nodes.len(), |i| topo.nodes[i].name.as_str())
        .map_err(|i| PlanError::DuplicateNode(topo.nodes[i].name.clone()))?;
    let service_ix = NameIndex::build(topo.services.len(), |i| &topo.services[i].name)
        .map_err(|i| PlanError::DuplicateService(topo.services[i].name.clone()))?;
    let mut service_node = Vec::with_capacity(topo.services.len());
    for s in &topo.services {
        match node_ix.get(s.node.as_str(), |i| topo.nodes[i].name.as_str()) {
            Some(n) => service_node.push(n),
            None => return Err(PlanError::UnknownNode(s.node.clone())),
        }
    }
    let mut seen = vec![false; topo.services.len()];
    let mut dep_pairs: Vec<(usize, usize)> = Vec::new();
    for (i, s) in topo.services.iter().enumerate() {
        let first = dep_pairs.len();
        for d in &s.depends_on {
            match service_ix.get(d, |k| &topo.services[k].name) {
                Some(j) => {
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
    Ok(Indexed {
        node_ix,
        service_ix,
        service_node,
        dep_pairs,
    })
}

/// Levels (Kahn's algorithm), cycles, the topological order and the per-node and
/// per-supervisor rows.
pub(crate) fn topology_levels(topo: &Topology, ix: Indexed) -> Result<Prepared, PlanError> {
    let n_services = topo.services.len();
    let Indexed {
        node_ix,
        service_ix,
        service_node,
        dep_pairs,
    } = ix;
    let deps = Csr::build(n_services, dep_pairs.iter().copied());
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
    // Sorted by level, then name. The first 8 bytes of a name, as a big-endian number, order
    // names as their bytes do unless they are equal, so most comparisons are of integers.
    // Names are unique: the order is total and an unstable sort is deterministic.
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
    Ok(Prepared {
        node_ix,
        service_ix,
        headroom: topo.nodes.iter().map(|n| n.headroom + 0.0).collect(),
        node_order,
        node_rank,
        service_node,
        dependents,
        topo_pos,
        services_on,
        group,
        group_members,
        n_up: topo.nodes.iter().filter(|n| n.up).count(),
    })
}

/// Every topology stage in order (for a topology on its own).
pub(crate) fn prepare(topo: &Topology) -> Result<Prepared, PlanError> {
    topology_sizes(topo)?;
    topology_ranges(topo)?;
    let ix = topology_index(topo)?;
    topology_levels(topo, ix)
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

/// Everything one plan works on: a prepared topology and a validated request.
pub(crate) struct Problem<'a> {
    pub topology: &'a Topology,
    pub prepared: &'a Prepared,
    pub analysis: &'a Analysis,
    pub effectiveness: &'a std::collections::BTreeMap<Strategy, StrategyStats>,
    pub policy: Policy,
    /// Whether each node is named by the analysis.
    pub affected_node: Vec<bool>,
    /// Affected nodes, deduplicated, sorted by name.
    pub affected_nodes: Vec<usize>,
    /// Affected services, deduplicated, in topological order.
    pub affected_services: Vec<usize>,
}

impl<'a> Problem<'a> {
    pub(crate) fn new(
        topology: &'a Topology,
        prepared: &'a Prepared,
        analysis: &'a Analysis,
        effectiveness: &'a std::collections::BTreeMap<Strategy, StrategyStats>,
        policy: Policy,
        affected: Affected,
    ) -> Problem<'a> {
        let Affected {
            nodes: mut affected_nodes,
            services: mut affected_services,
        } = affected;
        let mut affected_node = vec![false; topology.nodes.len()];
        for &n in &affected_nodes {
            affected_node[n] = true;
        }
        affected_nodes.sort_by_key(|&n| prepared.node_rank[n]);
        affected_services.sort_by_key(|&s| prepared.topo_pos[s]);
        affected_services.dedup();
        Problem {
            topology,
            prepared,
            analysis,
            effectiveness,
            policy,
            affected_node,
            affected_nodes,
            affected_services,
        }
    }

    /// Number of services that `scope` disrupts: the services themselves and every service that
    /// depends on one of them, directly or not.
    pub fn blast_radius(&self, scope: &[usize]) -> u64 {
        let mut seen = vec![false; self.prepared.topo_pos.len()];
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
            for d in self.prepared.dependents.row(s) {
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
        v.sort_by_key(|&s| self.prepared.topo_pos[s]);
        v.dedup();
        v
    }
}

/// The request's stages against a topology already prepared (every topology check passed).
pub(crate) fn request_on_prepared<'a>(
    topology: &'a Topology,
    prepared: &'a Prepared,
    analysis: &'a Analysis,
    effectiveness: &'a std::collections::BTreeMap<Strategy, StrategyStats>,
    policy: &PolicySpec,
) -> Result<Problem<'a>, PlanError> {
    analysis_sizes(analysis)?;
    policy_sizes(policy)?;
    analysis_ranges(analysis)?;
    let policy = request_ranges(effectiveness, policy, topology.nodes.len())?;
    let affected = analysis_refs(analysis, topology, &prepared.node_ix, &prepared.service_ix)?;
    Ok(Problem::new(
        topology,
        prepared,
        analysis,
        effectiveness,
        policy,
        affected,
    ))
}

/// Every stage, interleaved in the documented order; the prepared topology and what the
/// request resolved to.
pub(crate) fn check_all(input: &PlanInput) -> Result<(Prepared, Policy, Affected), PlanError> {
    let topo = &input.topology;
    analysis_sizes(&input.analysis)?;
    topology_sizes(topo)?;
    policy_sizes(&input.policy)?;
    analysis_ranges(&input.analysis)?;
    topology_ranges(topo)?;
    let policy = request_ranges(&input.effectiveness, &input.policy, topo.nodes.len())?;
    let ix = topology_index(topo)?;
    let affected = analysis_refs(&input.analysis, topo, &ix.node_ix, &ix.service_ix)?;
    let prepared = topology_levels(topo, ix)?;
    Ok((prepared, policy, affected))
}
