//! `cargo bench -p autonomic_core --bench planner`: time per plan of the pure planner on a small
//! (5 nodes, 20 services) and a big (500 nodes, 5,000 services, up to 3 dependencies each)
//! topology, from the whole input and on a prepared topology. It prints figures; it asserts
//! nothing.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use autonomic_core::planner::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn input(n_nodes: usize, n_services: usize) -> PlanInput {
    let mut rng = Rng(7);
    let nodes: Vec<NodeSpec> = (0..n_nodes)
        .map(|i| NodeSpec::new(format!("node{i:04}@host"), 0.2 + rng.unit() * 0.6))
        .collect();
    let services: Vec<ServiceSpec> = (0..n_services)
        .map(|i| ServiceSpec {
            name: Label::atom(format!("svc{i:05}")),
            node: nodes[i % n_nodes].name.clone(),
            depends_on: (0..if i == 0 { 0 } else { rng.below(4) })
                .map(|_| Label::atom(format!("svc{:05}", rng.below(i as u64))))
                .collect(),
            supervisor: Some(Label::atom(format!("sup{}", i / (n_nodes * 2)))),
            load: rng.unit() * 0.02,
        })
        .collect();
    PlanInput {
        analysis: Analysis {
            failure_type: Label::atom("node_down"),
            root_cause: Label::atom("host_lost"),
            confidence: 0.8,
            affected_nodes: vec![nodes[3].name.clone()],
            affected_services: Vec::new(),
        },
        topology: Topology { nodes, services },
        effectiveness: BTreeMap::new(),
        policy: PolicySpec {
            blast_radius_limit: Some(n_services as i64),
            ..PolicySpec::default()
        },
    }
}

fn measure(label: &str, runs: usize, mut f: impl FnMut() -> Result<Plan, PlanError>) {
    let mut times: Vec<f64> = Vec::with_capacity(runs);
    let mut strategy = None;
    for _ in 0..runs {
        let t = Instant::now();
        let p = black_box(f());
        times.push(t.elapsed().as_secs_f64() * 1e6);
        strategy = p.ok().map(|p| p.strategy);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let pct = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{label:<34} p50 {:>9.1} us   p99 {:>9.1} us   ({runs} plans, {:?})",
        pct(0.5),
        pct(0.99),
        strategy
    );
}

fn main() {
    println!("planner core, time per plan (one thread):");
    for (label, i, runs) in [
        ("5 nodes, 20 services", input(5, 20), 20_000),
        ("500 nodes, 5,000 services", input(500, 5_000), 300),
    ] {
        measure(label, runs, || plan(black_box(&i)));
        let Ok(prepared) = PreparedTopology::new(i.topology.clone()) else {
            println!("invalid topology");
            return;
        };
        let request = PlanRequest {
            analysis: i.analysis.clone(),
            effectiveness: i.effectiveness.clone(),
            policy: i.policy.clone(),
        };
        measure("  on the prepared topology", runs, || {
            plan_prepared(&prepared, black_box(&request))
        });
    }
}
