//! The Rust side of the knowledge base benchmark (`make bench` runs it from `bench/kb_bench.erl`,
//! which prints its figures beside the NIF's and pure Erlang's).
//!
//! ```text
//! cargo run --release --example kb_bench -- DATA.json QUERIES.tsv THRESHOLD LIMIT REPS
//! ```
//!
//! `DATA.json` is a knowledge base export, `QUERIES.tsv` one query per line (symptoms separated
//! by tabs). Each query is run `REPS` times and its best time kept (the others measure the
//! machine's other load, not the search), with:
//!
//! - `naive`: the obvious implementation: every record a `HashSet<String>`, every query a scan
//!   computing Jaccard against each record, then a sort of the matches;
//! - `core`: `autonomic_core::kb` (interned ids, inverted index, prefix filter) without the NIF.
//!
//! and prints `name records mean_ns p50_ns p99_ns agree` over the queries' best times, where
//! `agree` says whether both gave the same results (ids and scores, in order) for every query.

use std::collections::HashSet;
use std::error::Error;
use std::time::Instant;

use autonomic_core::kb::{jaccard, json, Config, KnowledgeBase, Threshold};

struct Naive {
    records: Vec<(HashSet<String>, i64, String)>,
}

impl Naive {
    fn search(&self, q: &HashSet<String>, threshold: f64, limit: usize) -> Vec<(f64, String)> {
        let mut out: Vec<(f64, i64, &str)> = self
            .records
            .iter()
            .filter_map(|(r, ts, id)| {
                let inter = q.iter().filter(|s| r.contains(*s)).count();
                let score = jaccard(inter, q.len(), r.len());
                (score >= threshold).then_some((score, *ts, id.as_str()))
            })
            .collect();
        out.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(b.2)));
        out.truncate(limit);
        out.into_iter()
            .map(|(s, _, id)| (s, id.to_string()))
            .collect()
    }
}

/// Mean, median and 99th percentile of nanosecond samples.
fn summary(mut ns: Vec<u128>) -> (u128, u128, u128) {
    if ns.is_empty() {
        return (0, 0, 0);
    }
    ns.sort_unstable();
    let mean = ns.iter().sum::<u128>() / ns.len() as u128;
    let at = |p: f64| ns[((p * ns.len() as f64) as usize).min(ns.len() - 1)];
    (mean, at(0.5), at(0.99))
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, data, queries, threshold, limit, reps] = args.as_slice() else {
        return Err("usage: kb_bench DATA.json QUERIES.tsv THRESHOLD LIMIT REPS".into());
    };
    let threshold: f64 = threshold.parse()?;
    let limit: usize = limit.parse()?;
    let reps: usize = reps.parse()?;
    let t = Threshold::new(threshold).ok_or("threshold must be in 0..1")?;

    let contents = json::decode_file(&std::fs::read(data)?)?;
    let queries: Vec<Vec<String>> = std::fs::read_to_string(queries)?
        .lines()
        .map(|l| {
            l.split('\t')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect();
    let n = contents.records.len();

    let naive = Naive {
        records: contents
            .records
            .iter()
            .map(|f| {
                let set = f.symptoms().iter().map(|s| s.to_string()).collect();
                (set, f.timestamp(), f.id().to_string())
            })
            .collect(),
    };
    let now = contents
        .records
        .iter()
        .map(|f| f.timestamp())
        .max()
        .unwrap_or(0);
    let mut kb = KnowledgeBase::new(Config {
        max_records: n.max(1),
        retention_ms: i64::MAX as u64,
    })?;
    for f in &contents.records {
        kb.insert(f, now)?;
    }

    let mut agree = true;
    let (mut naive_ns, mut core_ns) = (Vec::new(), Vec::new());
    for q in &queries {
        let qset: HashSet<String> = q.iter().cloned().collect();
        let (mut want, mut best) = (Vec::new(), u128::MAX);
        for _ in 0..reps {
            let t0 = Instant::now();
            want = naive.search(&qset, threshold, limit);
            best = best.min(t0.elapsed().as_nanos());
        }
        naive_ns.push(best);
        let (mut got, mut best) = (Vec::new(), u128::MAX);
        for _ in 0..reps {
            let t0 = Instant::now();
            let prepared = kb.query(q)?;
            got = kb
                .similar(&prepared, t, limit)
                .iter()
                .map(|m| (m.score, m.failure.id().to_string()))
                .collect();
            best = best.min(t0.elapsed().as_nanos());
        }
        core_ns.push(best);
        agree &= got == want;
    }
    for (name, samples) in [("naive", naive_ns), ("core", core_ns)] {
        let (mean, p50, p99) = summary(samples);
        println!("{name} {n} {mean} {p50} {p99} {agree}");
    }
    Ok(())
}
