use std::collections::BTreeMap;

use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest, ProptestConfig};
use proptest::strategy::Strategy as Gen;

use super::*;

fn atom(s: &str) -> Label {
    Label::atom(s)
}

fn svc(name: &str, node: &str, deps: &[&str]) -> ServiceSpec {
    ServiceSpec {
        depends_on: deps.iter().map(|d| atom(d)).collect(),
        ..ServiceSpec::new(atom(name), node)
    }
}

fn nodes(n: usize, headroom: f64) -> Vec<NodeSpec> {
    (1..=n)
        .map(|i| NodeSpec::new(format!("n{i}"), headroom))
        .collect()
}

fn input(failure: &str, topology: Topology) -> PlanInput {
    PlanInput {
        analysis: Analysis {
            failure_type: atom(failure),
            root_cause: atom("undefined"),
            confidence: 0.9,
            affected_nodes: Vec::new(),
            affected_services: Vec::new(),
        },
        topology,
        effectiveness: BTreeMap::new(),
        policy: PolicySpec::default(),
    }
}

fn allow(input: &mut PlanInput, strategies: &[Strategy]) {
    let ft = input.analysis.failure_type.clone();
    input.policy.allowed.insert(ft, strategies.to_vec());
}

fn step_services(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .map(|s| match s {
            Step::RestartChild { service, .. }
            | Step::Failover { service, .. }
            | Step::Shed { service, .. }
            | Step::Throttle { service, .. }
            | Step::Degrade { service }
            | Step::Pause { service } => service.to_string(),
            Step::RestartSupervisor { supervisor, .. } => supervisor.to_string(),
            Step::RemoveNode { node } => node.clone(),
            other => other.action().to_string(),
        })
        .collect()
}

/// A chain db <- cache <- api <- web on one node, all children of one supervisor.
fn chain() -> Topology {
    let mut services = vec![
        svc("web", "n1", &["api"]),
        svc("api", "n1", &["cache", "db"]),
        svc("cache", "n1", &["db"]),
        svc("db", "n1", &[]),
    ];
    for s in &mut services {
        s.supervisor = Some(atom("app_sup"));
        s.load = 0.1;
    }
    Topology {
        nodes: nodes(3, 0.5),
        services,
    }
}

// --- dependency order ---

#[test]
fn restarts_dependencies_before_dependents() {
    let mut i = input("process_crash", chain());
    i.analysis.affected_services = vec![atom("web"), atom("db"), atom("api")];
    allow(&mut i, &[Strategy::SupervisorRestart]);
    let ranked = rank(&i).unwrap();
    let scoped = |scope| {
        let c = ranked.iter().find(|c| c.scope == Some(scope)).unwrap();
        step_services(c.outcome.as_ref().unwrap())
    };
    assert_eq!(scoped(RestartScope::Quick), ["db", "api", "web"]);
    // The full restart adds the sibling `cache` between db and api.
    assert_eq!(scoped(RestartScope::Full), ["db", "cache", "api", "web"]);
    assert_eq!(scoped(RestartScope::Cold), ["app_sup"]);
    // Without supervisors there is only the quick restart, and it is the plan.
    for s in &mut i.topology.services {
        s.supervisor = None;
    }
    let p = plan(&i).unwrap();
    assert_eq!(rank(&i).unwrap().len(), 1);
    assert_eq!(step_services(&p), ["db", "api", "web"]);
    assert!(p.rollback.is_empty(), "a restart cannot be undone");
}

#[test]
fn failover_moves_dependencies_first() {
    let mut i = input("node_down", chain());
    i.analysis.affected_nodes = vec!["n1".into()];
    allow(&mut i, &[Strategy::BackendFailover]);
    let p = plan(&i).unwrap();
    assert_eq!(p.strategy, Strategy::BackendFailover);
    assert_eq!(step_services(&p), ["db", "cache", "api", "web"]);
}

// --- quorum safety ---

#[test]
fn quorum_reconfiguration_never_breaks_the_quorum() {
    let topo = Topology {
        nodes: nodes(5, 0.5),
        services: Vec::new(),
    };
    let mut i = input("node_down", topo);
    allow(&mut i, &[Strategy::QuorumReconfiguration]);
    i.analysis.affected_nodes = vec!["n4".into(), "n2".into()];
    let p = plan(&i).unwrap();
    assert_eq!(p.strategy, Strategy::QuorumReconfiguration);
    assert_eq!(step_services(&p), ["n2", "n4"]);
    assert_eq!(
        p.rollback,
        vec![
            Step::AddNode { node: "n4".into() },
            Step::AddNode { node: "n2".into() }
        ]
    );

    // Three of five: only two would remain, the default quorum is three.
    i.analysis.affected_nodes = vec!["n1".into(), "n2".into(), "n3".into()];
    let p = plan(&i).unwrap();
    assert_eq!(p.strategy, Strategy::Escalate);
    match &p.steps[0] {
        Step::Escalate {
            reason, rejected, ..
        } => {
            assert_eq!(*reason, EscalateReason::NoFeasiblePlan);
            assert_eq!(
                rejected[0].reason,
                RejectReason::Quorum {
                    remaining: 2,
                    quorum: 3
                }
            );
        }
        other => panic!("{other:?}"),
    }

    // A node already down counts against the quorum too.
    i.topology.nodes[4].up = false;
    i.analysis.affected_nodes = vec!["n1".into(), "n2".into()];
    assert_eq!(plan(&i).unwrap().strategy, Strategy::Escalate);
    // An explicit quorum size is obeyed.
    i.policy.quorum_size = Some(2);
    assert_eq!(plan(&i).unwrap().strategy, Strategy::QuorumReconfiguration);
}

// --- blast radius ---

#[test]
fn blast_radius_limit_escalates() {
    let mut i = input("process_crash", chain());
    i.analysis.affected_services = vec![atom("db")];
    allow(&mut i, &[Strategy::SupervisorRestart]);
    // db is needed by cache, api and web: restarting it disrupts 4 services.
    i.policy.blast_radius_limit = Some(4);
    assert_eq!(plan(&i).unwrap().strategy, Strategy::SupervisorRestart);
    i.policy.blast_radius_limit = Some(3);
    let p = plan(&i).unwrap();
    assert_eq!(p.strategy, Strategy::Escalate);
    let Step::Escalate { rejected, .. } = &p.steps[0] else {
        panic!("{p:?}")
    };
    // quick, full and cold were all too wide.
    assert_eq!(rejected.len(), 3);
    for r in rejected {
        assert_eq!(
            r.reason,
            RejectReason::BlastRadius {
                radius: 4,
                limit: 3
            }
        );
    }
    assert!(p.rollback.is_empty());
}

#[test]
fn narrower_plan_wins_when_the_wide_one_is_over_the_limit() {
    let mut topo = chain();
    // Sixteen unrelated services elsewhere, so that the app is a small part of the cluster.
    for k in 0..16 {
        topo.services.push(svc(&format!("other{k}"), "n2", &[]));
    }
    let mut i = input("process_crash", topo);
    i.analysis.affected_services = vec![atom("web")];
    i.analysis.confidence = 0.1;
    allow(&mut i, &[Strategy::SupervisorRestart]);
    // With a weak diagnosis the full restart is preferred ...
    let p = plan(&i).unwrap();
    assert!(matches!(
        p.steps[0],
        Step::RestartChild {
            scope: RestartScope::Full,
            ..
        } | Step::RestartSupervisor { .. }
    ));
    // ... but only web may be disrupted: the quick restart it is.
    i.policy.blast_radius_limit = Some(1);
    let p = plan(&i).unwrap();
    assert_eq!(step_services(&p), ["web"]);
}

// --- costs ---

#[test]
fn cost_follows_the_documented_formulas() {
    let mut i = input("overload", chain());
    i.analysis.affected_services = vec![atom("api")];
    i.analysis.confidence = 0.8;
    allow(&mut i, &[Strategy::Throttle]);
    i.effectiveness.insert(
        Strategy::Throttle,
        StrategyStats {
            successes: 7,
            failures: 1,
            mean_recovery_ms: Some(1234.4),
        },
    );
    let p = plan(&i).unwrap();
    assert_eq!(p.estimated_ms, 1234);
    let success = (7.0 + 1.0) / (7.0 + 1.0 + 2.0) * 0.8;
    assert_eq!(p.confidence, success);
    assert_eq!(p.cost.downtime, 1234.0 * 0.5 / 300_000.0);
    assert_eq!(p.cost.resource, 0.0);
    // api and web are disrupted, of 4 services.
    assert_eq!(p.cost.risk, (1.0 - success) + 2.0 / 4.0);
    assert_eq!(
        p.cost.total,
        p.cost.downtime + p.cost.resource + p.cost.risk
    );
    assert_eq!(
        p.steps,
        vec![Step::Throttle {
            service: atom("api"),
            percent: 50
        }]
    );
    assert_eq!(
        p.rollback,
        vec![Step::Unthrottle {
            service: atom("api")
        }]
    );
}

#[test]
fn knowledge_base_history_changes_the_choice() {
    let mut i = input("node_down", chain());
    i.analysis.affected_nodes = vec!["n1".into()];
    // Without history the failover (5 s by default) beats the membership change (10 s).
    assert_eq!(plan(&i).unwrap().strategy, Strategy::BackendFailover);
    // A failover that usually failed, a membership change that usually worked.
    i.effectiveness.insert(
        Strategy::BackendFailover,
        StrategyStats {
            successes: 1,
            failures: 40,
            mean_recovery_ms: None,
        },
    );
    i.effectiveness.insert(
        Strategy::QuorumReconfiguration,
        StrategyStats {
            successes: 50,
            failures: 0,
            mean_recovery_ms: Some(800.0),
        },
    );
    let p = plan(&i).unwrap();
    assert_eq!(p.strategy, Strategy::QuorumReconfiguration);
    assert_eq!(p.estimated_ms, 800);
    assert_eq!(p.confidence, 51.0 / 52.0 * 0.9);
}

#[test]
fn failover_picks_the_node_with_most_headroom_and_respects_capacity() {
    let mut topo = chain();
    // Binary fractions, so that the arithmetic below is exact.
    for s in &mut topo.services {
        s.load = 0.125;
    }
    topo.nodes[1].headroom = 0.25; // n2
    topo.nodes[2].headroom = 0.375; // n3
    let mut i = input("node_down", topo);
    i.analysis.affected_nodes = vec!["n1".into()];
    allow(&mut i, &[Strategy::BackendFailover]);
    let p = plan(&i).unwrap();
    let targets: Vec<String> = p
        .steps
        .iter()
        .map(|s| match s {
            Step::Failover { to, .. } => to.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    // n3 (0.375) takes db, then n2 (0.25 vs 0.25 left on n3: the smaller name) takes cache,
    // n3 (0.25 vs 0.125) api, n2 (0.125 vs 0.125) web.
    assert_eq!(targets, ["n3", "n2", "n3", "n2"]);
    assert_eq!(
        p.rollback[0],
        Step::Failback {
            service: atom("web"),
            from: "n2".into(),
            to: "n1".into()
        }
    );
    assert_eq!(p.rollback.len(), 4);
    // Without n2, n3 takes three services and has no room for the fourth.
    i.topology.nodes[1].headroom = 0.0;
    let p = plan(&i).unwrap();
    assert_eq!(p.strategy, Strategy::Escalate);
    let Step::Escalate { rejected, .. } = &p.steps[0] else {
        panic!()
    };
    assert_eq!(rejected[0].reason, RejectReason::NoCapacity);
}

#[test]
fn restart_on_a_down_node_is_not_eligible() {
    let mut topo = chain();
    topo.nodes[0].up = false;
    let mut i = input("process_crash", topo);
    i.analysis.affected_services = vec![atom("web")];
    let ranked = rank(&i).unwrap();
    assert_eq!(ranked[0].outcome, Err(RejectReason::NodeDown("n1".into())));
}

#[test]
fn nothing_to_act_on_escalates() {
    let mut i = input("overload", chain());
    let p = plan(&i).unwrap();
    assert_eq!(p.strategy, Strategy::Escalate);
    let Step::Escalate {
        reason, rejected, ..
    } = &p.steps[0]
    else {
        panic!()
    };
    assert_eq!(*reason, EscalateReason::NoFeasiblePlan);
    assert!(rejected
        .iter()
        .all(|r| r.reason == RejectReason::NothingToActOn));
    // A policy that allows nothing still gets an escalation.
    allow(&mut i, &[]);
    assert_eq!(plan(&i).unwrap().strategy, Strategy::Escalate);
}

#[test]
fn unknown_failure_types_use_the_default_entry() {
    let mut i = input("cosmic_ray", chain());
    i.analysis.affected_services = vec![atom("web")];
    let strategies = |i: &PlanInput| -> Vec<(Strategy, Option<RestartScope>)> {
        rank(i)
            .unwrap()
            .iter()
            .map(|c| (c.strategy, c.scope))
            .collect()
    };
    assert_eq!(
        strategies(&i),
        [
            (Strategy::SupervisorRestart, Some(RestartScope::Quick)),
            (Strategy::SupervisorRestart, Some(RestartScope::Full)),
            (Strategy::SupervisorRestart, Some(RestartScope::Cold)),
            (Strategy::Throttle, None),
            (Strategy::Escalate, None)
        ]
    );
    i.policy
        .allowed
        .insert(atom("default"), vec![Strategy::Pause]);
    assert_eq!(strategies(&i), [(Strategy::Pause, None)]);
    assert_eq!(plan(&i).unwrap().strategy, Strategy::Pause);
}

// --- validation ---

#[test]
fn invalid_inputs_are_named() {
    let base = {
        let mut i = input("process_crash", chain());
        i.analysis.affected_services = vec![atom("web")];
        i
    };
    let check = |f: &dyn Fn(&mut PlanInput), want: PlanError| {
        let mut i = base.clone();
        f(&mut i);
        assert_eq!(plan(&i), Err(want));
    };
    check(
        &|i| i.analysis.confidence = 1.5,
        PlanError::OutOfRange {
            place: Place::Analysis,
            key: "confidence",
        },
    );
    check(
        &|i| i.analysis.confidence = f64::NAN,
        PlanError::OutOfRange {
            place: Place::Analysis,
            key: "confidence",
        },
    );
    check(
        &|i| i.topology.nodes[0].headroom = -0.1,
        PlanError::OutOfRange {
            place: Place::Node,
            key: "headroom",
        },
    );
    check(
        &|i| i.topology.services[0].load = 2.0,
        PlanError::OutOfRange {
            place: Place::Service,
            key: "load",
        },
    );
    check(
        &|i| {
            i.effectiveness.insert(
                Strategy::Pause,
                StrategyStats {
                    successes: -1,
                    failures: 0,
                    mean_recovery_ms: None,
                },
            );
        },
        PlanError::OutOfRange {
            place: Place::Effectiveness(Strategy::Pause),
            key: "successes",
        },
    );
    check(
        &|i| i.policy.slo_budget_ms = Some(0.0),
        PlanError::OutOfRange {
            place: Place::Policy,
            key: "slo_budget_ms",
        },
    );
    check(
        &|i| i.policy.quorum_size = Some(0),
        PlanError::OutOfRange {
            place: Place::Policy,
            key: "quorum_size",
        },
    );
    check(
        &|i| {
            i.policy
                .default_recovery_ms
                .insert(Strategy::Throttle, -5.0);
        },
        PlanError::OutOfRange {
            place: Place::DefaultRecovery,
            key: "throttle",
        },
    );
    check(
        &|i| i.policy.shed_percent = Some(0),
        PlanError::OutOfRange {
            place: Place::Policy,
            key: "shed_percent",
        },
    );
    check(
        &|i| i.topology.nodes.push(NodeSpec::new("n2", 0.0)),
        PlanError::DuplicateNode("n2".into()),
    );
    check(
        &|i| i.topology.services.push(svc("db", "n2", &[])),
        PlanError::DuplicateService(atom("db")),
    );
    check(
        &|i| i.topology.services.push(svc("x", "n9", &[])),
        PlanError::UnknownNode("n9".into()),
    );
    check(
        &|i| i.topology.services.push(svc("x", "n1", &["nope"])),
        PlanError::UnknownDependency {
            service: atom("x"),
            dependency: atom("nope"),
        },
    );
    check(
        &|i| i.analysis.affected_nodes.push("n7".into()),
        PlanError::UnknownNode("n7".into()),
    );
    check(
        &|i| i.analysis.affected_services.push(atom("ghost")),
        PlanError::UnknownService(atom("ghost")),
    );
    // db -> x -> y -> db, with z hanging off the cycle: the smallest name on the cycle.
    check(
        &|i| {
            i.topology.services[3].depends_on = vec![atom("y")];
            i.topology.services.push(svc("y", "n1", &["x"]));
            i.topology.services.push(svc("x", "n1", &["db"]));
            i.topology.services.push(svc("a_z", "n1", &["x"]));
        },
        PlanError::DependencyCycle(atom("db")),
    );
    check(
        &|i| i.topology.services[0].depends_on.push(atom("web")),
        PlanError::DependencyCycle(atom("web")),
    );
    check(
        &|i| i.topology.services[0].depends_on = vec![atom("db"); MAX_DEPENDS_ON + 1],
        PlanError::TooMany {
            what: "depends_on",
            max: MAX_DEPENDS_ON,
        },
    );
}

#[test]
fn labels_order_like_erlang_terms() {
    let b = |s: &str| Label::binary(s.as_bytes().to_vec()).unwrap();
    let mut v = vec![b("a"), atom("zz"), b("B"), atom("a"), atom("Z")];
    v.sort();
    assert_eq!(v, vec![atom("Z"), atom("a"), atom("zz"), b("B"), b("a")]);
    assert!(Label::binary(Vec::new()).is_none());
    assert!(Label::binary(vec![b'x'; MAX_LABEL_BYTES + 1]).is_none());
    assert!(Label::binary(vec![b'x'; MAX_LABEL_BYTES]).is_some());
}

// --- random topologies ---

/// A small deterministic generator (splitmix64), so the tests need no randomness crate.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A random DAG topology: each service depends on up to `max_deps` services listed before it.
pub(crate) fn random_topology(
    rng: &mut Rng,
    n_nodes: usize,
    n_services: usize,
    max_deps: u64,
) -> Topology {
    let nodes = (0..n_nodes)
        .map(|i| NodeSpec {
            name: format!("node{i:04}@host"),
            headroom: rng.unit(),
            up: rng.below(10) != 0,
        })
        .collect();
    let services = (0..n_services)
        .map(|i| {
            let n_deps = if i == 0 { 0 } else { rng.below(max_deps + 1) };
            let depends_on = (0..n_deps)
                .map(|_| atom(&format!("svc{:05}", rng.below(i as u64))))
                .collect();
            let supervisor = match rng.below(3) {
                0 => None,
                k => Some(atom(&format!("sup{k}"))),
            };
            ServiceSpec {
                // Mix atoms and binaries: they order differently.
                name: if i % 7 == 3 {
                    Label::binary(format!("svc{i:05}").into_bytes()).unwrap_or_else(|| atom("x"))
                } else {
                    atom(&format!("svc{i:05}"))
                },
                node: format!("node{:04}@host", rng.below(n_nodes as u64)),
                depends_on,
                supervisor,
                load: rng.unit() * 0.2,
            }
        })
        .collect::<Vec<_>>();
    // A binary-named service is referred to by its binary name.
    let names: Vec<Label> = services.iter().map(|s| s.name.clone()).collect();
    let services = services
        .into_iter()
        .map(|mut s| {
            s.depends_on = s
                .depends_on
                .iter()
                .map(|d| {
                    let i: usize = d.as_atom().and_then(|a| a[3..].parse().ok()).unwrap_or(0);
                    names[i].clone()
                })
                .collect();
            s
        })
        .collect();
    Topology { nodes, services }
}

fn arb_input() -> impl Gen<Value = PlanInput> {
    (
        any::<u64>(),
        1usize..12,
        0usize..40,
        0u64..4,
        proptest::sample::select(vec![
            "process_crash",
            "node_down",
            "overload",
            "backend_down",
            "network_partition",
            "resource_exhausted",
            "mystery",
        ]),
        0usize..4,
        0usize..3,
        0u64..200,
        proptest::option::of(1i64..8),
    )
        .prop_map(
            |(seed, n_nodes, n_services, max_deps, ft, n_aff_s, n_aff_n, limit, quorum)| {
                let mut rng = Rng(seed);
                let topology = random_topology(&mut rng, n_nodes, n_services, max_deps);
                let mut i = input(ft, topology);
                i.analysis.confidence = rng.unit();
                if n_services > 0 {
                    for _ in 0..n_aff_s {
                        let k = rng.below(n_services as u64) as usize;
                        let name = i.topology.services[k].name.clone();
                        i.analysis.affected_services.push(name);
                    }
                }
                for _ in 0..n_aff_n {
                    let k = rng.below(n_nodes as u64) as usize;
                    let name = i.topology.nodes[k].name.clone();
                    i.analysis.affected_nodes.push(name);
                }
                for s in Strategy::ALL {
                    if rng.below(2) == 0 {
                        i.effectiveness.insert(
                            s,
                            StrategyStats {
                                successes: rng.below(100) as i64,
                                failures: rng.below(100) as i64,
                                mean_recovery_ms: if rng.below(3) == 0 {
                                    None
                                } else {
                                    Some((rng.below(100_000) as f64) / 3.0)
                                },
                            },
                        );
                    }
                }
                i.policy.blast_radius_limit = Some(limit as i64);
                i.policy.quorum_size = quorum;
                if rng.below(2) == 0 {
                    let ft = i.analysis.failure_type.clone();
                    let mut all = Strategy::ALL.to_vec();
                    // A random order and subset of the strategies.
                    for k in (1..all.len()).rev() {
                        all.swap(k, rng.below(k as u64 + 1) as usize);
                    }
                    all.truncate(rng.below(9) as usize);
                    i.policy.allowed.insert(ft, all);
                }
                i
            },
        )
}

fn shuffled<T: Clone>(v: &[T], rng: &mut Rng) -> Vec<T> {
    let mut v = v.to_vec();
    for k in (1..v.len()).rev() {
        v.swap(k, rng.below(k as u64 + 1) as usize);
    }
    v
}

/// Everything a service depends on, directly or not.
fn depends_transitively(topo: &Topology, from: &Label, on: &Label) -> bool {
    let by_name: BTreeMap<&Label, &ServiceSpec> =
        topo.services.iter().map(|s| (&s.name, s)).collect();
    let mut stack = vec![from];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(s) = stack.pop() {
        for d in &by_name[s].depends_on {
            if d == on {
                return true;
            }
            if seen.insert(d) {
                stack.push(d);
            }
        }
    }
    false
}

fn dependents_closure(topo: &Topology, scope: &[Label]) -> usize {
    topo.services
        .iter()
        .filter(|s| {
            scope.contains(&s.name) || scope.iter().any(|t| depends_transitively(topo, &s.name, t))
        })
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn plans_are_deterministic_whatever_the_input_order(i in arb_input(), seed in any::<u64>()) {
        let p = plan(&i).unwrap();
        prop_assert_eq!(&plan(&i).unwrap(), &p);
        let mut rng = Rng(seed);
        let mut j = i.clone();
        j.topology.nodes = shuffled(&i.topology.nodes, &mut rng);
        j.topology.services = shuffled(&i.topology.services, &mut rng);
        for s in &mut j.topology.services {
            s.depends_on = shuffled(&s.depends_on, &mut rng);
        }
        j.analysis.affected_nodes = shuffled(&i.analysis.affected_nodes, &mut rng);
        j.analysis.affected_services = shuffled(&i.analysis.affected_services, &mut rng);
        prop_assert_eq!(plan(&j).unwrap(), p);
    }

    #[test]
    fn restarts_and_moves_respect_dependency_order(i in arb_input()) {
        for c in rank(&i).unwrap() {
            let Ok(p) = c.outcome else { continue };
            let touched: Vec<&Label> = p.steps.iter().filter_map(|s| match s {
                Step::RestartChild { service, .. } | Step::Failover { service, .. } => Some(service),
                _ => None,
            }).collect();
            for (a, x) in touched.iter().enumerate() {
                for y in &touched[a + 1..] {
                    // A later step never acts on a dependency of an earlier one.
                    prop_assert!(!depends_transitively(&i.topology, x, y), "{:?} before its dependency {:?}", x, y);
                }
            }
        }
    }

    #[test]
    fn no_plan_breaks_the_quorum(i in arb_input()) {
        let p = plan(&i).unwrap();
        let removed: Vec<&String> = p.steps.iter().filter_map(|s| match s {
            Step::RemoveNode { node } => Some(node),
            _ => None,
        }).collect();
        if !removed.is_empty() {
            let healthy_left = i.topology.nodes.iter()
                .filter(|n| n.up && !removed.contains(&&n.name))
                .count() as i64;
            let quorum = i.policy.quorum_size.unwrap_or(i.topology.nodes.len() as i64 / 2 + 1);
            prop_assert!(healthy_left >= quorum);
        }
    }

    #[test]
    fn plans_stay_inside_the_blast_radius_limit(i in arb_input()) {
        let p = plan(&i).unwrap();
        let limit = i.policy.blast_radius_limit.unwrap_or(100) as usize;
        let scope: Vec<Label> = match p.strategy {
            Strategy::Escalate => Vec::new(),
            Strategy::QuorumReconfiguration => {
                let removed: Vec<&String> = p.steps.iter().filter_map(|s| match s {
                    Step::RemoveNode { node } => Some(node),
                    _ => None,
                }).collect();
                i.topology.services.iter().filter(|s| removed.contains(&&s.node)).map(|s| s.name.clone()).collect()
            }
            Strategy::SupervisorRestart if matches!(p.steps[0], Step::RestartSupervisor { .. }) => {
                let sups: Vec<(Label, String)> = p.steps.iter().filter_map(|s| match s {
                    Step::RestartSupervisor { supervisor, node } => Some((supervisor.clone(), node.clone())),
                    _ => None,
                }).collect();
                i.topology.services.iter()
                    .filter(|s| s.supervisor.as_ref().is_some_and(|sup| sups.contains(&(sup.clone(), s.node.clone()))))
                    .map(|s| s.name.clone()).collect()
            }
            _ => p.steps.iter().filter_map(|s| match s {
                Step::RestartChild { service, .. } | Step::Failover { service, .. } | Step::Shed { service, .. }
                | Step::Throttle { service, .. } | Step::Degrade { service } | Step::Pause { service } => Some(service.clone()),
                _ => None,
            }).collect(),
        };
        prop_assert!(dependents_closure(&i.topology, &scope) <= limit);
    }

    #[test]
    fn every_reversible_step_has_its_rollback(i in arb_input()) {
        for c in rank(&i).unwrap() {
            let Ok(p) = c.outcome else { continue };
            let want: Vec<Step> = p.steps.iter().rev().filter_map(Step::inverse).collect();
            prop_assert_eq!(&p.rollback, &want);
            prop_assert_eq!(p.rollback.len(), p.steps.iter().filter(|s| s.is_reversible()).count());
            for r in &p.rollback {
                prop_assert!(!r.is_reversible(), "a rollback step is not rolled back: {:?}", r);
            }
        }
    }

    #[test]
    fn the_plan_is_the_cheapest_eligible_candidate(i in arb_input()) {
        let p = plan(&i).unwrap();
        let ranked = rank(&i).unwrap();
        let eligible: Vec<&Plan> = ranked.iter().filter_map(|c| c.outcome.as_ref().ok()).collect();
        for q in &eligible {
            prop_assert!(p.cost.total <= q.cost.total);
        }
        if eligible.is_empty() {
            prop_assert_eq!(p.strategy, Strategy::Escalate);
        }
        for q in eligible.iter().copied().chain(std::iter::once(&p)) {
            let c = q.cost;
            prop_assert!(c.downtime >= 0.0 && c.resource >= 0.0 && c.risk >= 0.0);
            prop_assert!(c.total.is_finite());
            prop_assert_eq!(c.total, c.downtime + c.resource + c.risk);
            prop_assert!((0.0..=1.0).contains(&q.confidence));
        }
    }
}

#[test]
fn big_topology_plans() {
    let mut rng = Rng(42);
    let topo = random_topology(&mut rng, 500, 5_000, 3);
    let mut i = input("node_down", topo);
    i.analysis.affected_nodes = vec![i.topology.nodes[7].name.clone()];
    i.policy.blast_radius_limit = Some(5_000);
    let p = plan(&i).unwrap();
    assert_ne!(p.strategy, Strategy::Escalate);
}

// --- prepared topologies ---

/// Breaks the request part of an input in one of a few ways (or not at all, for 0).
fn break_request(i: &mut PlanInput, how: u8) {
    match how {
        1 => i.analysis.confidence = 1.5,
        2 => i.analysis.affected_services.push(atom("ghost")),
        3 => i.analysis.affected_nodes.push("nowhere@host".into()),
        4 => i.policy.quorum_size = Some(0),
        5 => {
            i.effectiveness.insert(
                Strategy::Pause,
                StrategyStats {
                    successes: -1,
                    failures: 0,
                    mean_recovery_ms: None,
                },
            );
        }
        6 => {
            // Two problems: the earlier in the documented order is reported.
            i.analysis.affected_services.push(atom("ghost"));
            i.policy.shed_percent = Some(101);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn a_prepared_topology_plans_as_the_whole_input(i in arb_input(), how in 0u8..8) {
        let mut i = i;
        break_request(&mut i, how);
        let whole = plan(&i);
        let prepared = PreparedTopology::new(i.topology.clone()).unwrap();
        let request = PlanRequest {
            analysis: i.analysis.clone(),
            effectiveness: i.effectiveness.clone(),
            policy: i.policy.clone(),
        };
        prop_assert_eq!(&plan_prepared(&prepared, &request), &whole);
        // Twice on the same prepared topology: nothing in it changed.
        prop_assert_eq!(&plan_prepared(&prepared, &request), &whole);
        let (again, kept) = plan_and_prepare(i.clone());
        prop_assert_eq!(&again, &whole);
        let kept = kept.unwrap();
        prop_assert_eq!(kept.topology(), &i.topology);
        prop_assert_eq!(&plan_prepared(&kept, &request), &whole);
    }
}

#[test]
fn an_invalid_topology_is_not_prepared() {
    let mut topo = chain();
    topo.services[0].depends_on.push(atom("web"));
    assert_eq!(
        PreparedTopology::new(topo.clone()).err(),
        Some(PlanError::DependencyCycle(atom("web")))
    );
    let mut i = input("process_crash", topo);
    // The request's own error comes first in the documented order.
    i.analysis.confidence = 2.0;
    let (result, kept) = plan_and_prepare(i);
    assert_eq!(
        result,
        Err(PlanError::OutOfRange {
            place: Place::Analysis,
            key: "confidence"
        })
    );
    assert!(kept.is_none());
}
