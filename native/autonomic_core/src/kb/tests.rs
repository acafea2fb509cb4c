//! Tests of the knowledge base: similarity edge cases, thresholds, ordering, bounds, statistics,
//! recommendation, the index against a brute-force search, persistence, locking and sync.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::{any, prop, prop_assert_eq, prop_oneof, proptest, Just, ProptestConfig};
use proptest::strategy::Strategy as Gen;

use super::record::tests::raw;
use super::shared::{Busy, SharedKb};
use super::*;

const NOW: i64 = 1_700_000_000_000;

fn kb(max: usize) -> KnowledgeBase {
    KnowledgeBase::new(Config {
        max_records: max,
        ..Config::default()
    })
    .unwrap()
}

fn failure(id: &str, symptoms: &[&str], ts: i64) -> Failure {
    Failure::new(raw(id, symptoms, ts)).unwrap()
}

fn with(id: &str, symptoms: &[&str], ts: i64, strategy: Strategy, success: bool) -> Failure {
    let mut r = raw(id, symptoms, ts);
    r.strategy = strategy;
    r.success = success;
    Failure::new(r).unwrap()
}

fn th(v: f64) -> Threshold {
    Threshold::new(v).unwrap()
}

/// `(score, id)` of a search.
fn search(kb: &KnowledgeBase, q: &[&str], t: f64, limit: usize) -> Vec<(f64, String)> {
    let q = kb.query(q).unwrap();
    kb.similar(&q, th(t), limit)
        .into_iter()
        .map(|m| (m.score, m.failure.id().to_string()))
        .collect()
}

fn ids(v: &[(f64, String)]) -> Vec<&str> {
    v.iter().map(|(_, id)| id.as_str()).collect()
}

#[test]
fn jaccard_edge_cases_through_the_index() {
    let mut k = kb(100);
    k.insert(&failure("empty", &[], NOW - 4), NOW).unwrap();
    k.insert(&failure("ab", &["a", "b"], NOW - 3), NOW).unwrap();
    k.insert(&failure("cd", &["c", "d"], NOW - 2), NOW).unwrap();
    // Both empty: 1.0. Only the empty record reaches any positive threshold.
    assert_eq!(search(&k, &[], 0.7, 10), vec![(1.0, "empty".into())]);
    assert_eq!(search(&k, &[], 1.0, 10), vec![(1.0, "empty".into())]);
    // One empty: 0.0, visible only at threshold 0.
    let all = search(&k, &[], 0.0, 10);
    assert_eq!(
        all,
        vec![
            (1.0, "empty".into()),
            (0.0, "cd".into()),
            (0.0, "ab".into())
        ]
    );
    assert_eq!(search(&k, &["a", "b"], 0.0, 10)[2], (0.0, "empty".into()));
    // Identical: 1.0 (order of the query and duplicates do not matter).
    assert_eq!(
        search(&k, &["b", "a", "b"], 1.0, 10),
        vec![(1.0, "ab".into())]
    );
    // Disjoint: 0.0, not found at any positive threshold.
    assert!(search(&k, &["x", "y"], 0.01, 10).is_empty());
    assert_eq!(
        search(&k, &["c", "d", "x"], 0.5, 10),
        vec![(2.0 / 3.0, "cd".into())]
    );
}

#[test]
fn records_with_more_symptoms_than_a_signature_holds_are_searched() {
    let mut k = kb(100);
    let many: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    k.insert(&failure("big", &many, NOW), NOW).unwrap();
    k.insert(&failure("small", &many[..14], NOW), NOW).unwrap();
    // 18 of 20 shared: 0.9 with the big record; 14 / 18 with the small one.
    let q = &many[..18];
    assert_eq!(
        search(&k, q, 0.7, 10),
        vec![(0.9, "big".into()), (14.0 / 18.0, "small".into())]
    );
    k.clear(NOW);
    assert!(search(&k, q, 0.0, 10).is_empty());
}

#[test]
fn threshold_boundaries_are_inclusive() {
    let mut k = kb(100);
    // {s0..s6} vs query {s0..s9}: 7/10 = 0.7 exactly (as f64 division).
    let seven: Vec<String> = (0..7).map(|i| format!("s{i}")).collect();
    let seven: Vec<&str> = seven.iter().map(String::as_str).collect();
    k.insert(&failure("r", &seven, NOW), NOW).unwrap();
    let ten: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    let ten: Vec<&str> = ten.iter().map(String::as_str).collect();
    assert_eq!(search(&k, &ten, 0.7, 10), vec![(0.7, "r".into())]);
    assert!(search(&k, &ten, 0.700_000_000_000_1, 10).is_empty());
    assert!(search(&k, &ten, 1.0, 10).is_empty());
    assert_eq!(search(&k, &seven, 1.0, 10).len(), 1);
    assert_eq!(search(&k, &ten, 0.0, 10).len(), 1);
}

#[test]
fn ties_are_broken_newer_first_then_by_id() {
    let mut k = kb(100);
    k.insert(&failure("b", &["x"], NOW - 10), NOW).unwrap();
    k.insert(&failure("a", &["x"], NOW - 10), NOW).unwrap();
    k.insert(&failure("c", &["x"], NOW - 5), NOW).unwrap();
    k.insert(&failure("d", &["x", "y"], NOW), NOW).unwrap();
    let r = search(&k, &["x"], 0.5, 10);
    assert_eq!(ids(&r), ["c", "a", "b", "d"]);
    assert_eq!(ids(&search(&k, &["x"], 0.5, 2)), ["c", "a"]);
    assert_eq!(ids(&search(&k, &["x"], 0.5, 1)), ["c"]);
}

#[test]
fn eviction_removes_the_oldest_at_the_bound() {
    let mut k = kb(3);
    for (i, ts) in [(1, 100), (2, 300), (3, 200)] {
        let out = k
            .insert(&failure(&format!("r{i}"), &["s"], NOW + ts), NOW)
            .unwrap();
        assert_eq!(out, Inserted::Added { evicted: 0 });
    }
    // Full: a newer record evicts the oldest (r1, ts 100), then r3 (ts 200).
    assert_eq!(
        k.insert(&failure("r4", &["s"], NOW + 400), NOW).unwrap(),
        Inserted::Added { evicted: 1 }
    );
    assert!(k.get("r1").is_none());
    k.insert(&failure("r5", &["s"], NOW + 250), NOW).unwrap();
    assert!(k.get("r3").is_none());
    let order: Vec<&str> = k.iter().map(|f| f.id()).collect();
    assert_eq!(order, ["r5", "r2", "r4"]);
    // Older than every record of a full base: refused, nothing changes.
    assert!(matches!(
        k.insert(&failure("old", &["s"], NOW + 1), NOW),
        Err(KbError::TooOld(_))
    ));
    // Same timestamp as the oldest: the id decides (greater id is newer).
    assert!(matches!(
        k.insert(&failure("r0", &["s"], NOW + 250), NOW),
        Err(KbError::TooOld(_))
    ));
    k.insert(&failure("r6", &["s"], NOW + 250), NOW).unwrap();
    assert!(k.get("r5").is_none());
    assert_eq!(k.len(), 3);
    assert_eq!(k.evictions().limit, 3);
}

#[test]
fn retention_by_age() {
    let mut k = KnowledgeBase::new(Config {
        max_records: 100,
        retention_ms: 1000,
    })
    .unwrap();
    assert!(matches!(
        k.insert(&failure("ancient", &["s"], NOW - 1001), NOW),
        Err(KbError::TooOld(_))
    ));
    k.insert(&failure("edge", &["s"], NOW - 1000), NOW).unwrap();
    k.insert(&failure("young", &["s"], NOW - 10), NOW).unwrap();
    assert_eq!(k.prune(NOW + 500), 1);
    assert!(k.get("edge").is_none() && k.get("young").is_some());
    // Inserting applies retention too.
    k.insert(&failure("later", &["s"], NOW + 2000), NOW + 2000)
        .unwrap();
    assert!(k.get("young").is_none());
    assert_eq!(k.len(), 1);
    assert_eq!(k.evictions().retention, 2);
    assert_eq!(k.success_rate(&Label::Atom("node_down".into())).total(), 1);
}

#[test]
fn clear_sets_an_epoch_that_refuses_older_records() {
    let mut k = kb(100);
    k.insert(&failure("a", &["s"], NOW - 5), NOW).unwrap();
    k.insert(&failure("b", &["s"], NOW), NOW).unwrap();
    k.insert(&failure("future", &["s"], NOW + 60_000), NOW)
        .unwrap();
    let epoch = k.clear(NOW);
    assert_eq!(epoch, NOW + 1);
    let left: Vec<&str> = k.iter().map(|f| f.id()).collect();
    assert_eq!(left, ["future"]);
    assert!(matches!(
        k.insert(&failure("b", &["s"], NOW), NOW),
        Err(KbError::TooOld(_))
    ));
    // A second clear in the same millisecond still moves the epoch forward.
    assert_eq!(k.clear(NOW), NOW + 2);
    // A lower epoch changes nothing.
    assert_eq!(k.set_epoch(5), 0);
    assert_eq!(k.epoch(), NOW + 2);
    assert_eq!(k.evictions().cleared, 2);
    // The snapshot keeps the epoch, an export does not.
    let (snap, _) = json::encode_file(&k, json::FileKind::Snapshot);
    let (export, _) = json::encode_file(&k, json::FileKind::Export);
    assert_eq!(json::decode_file(&snap).unwrap().epoch, NOW + 2);
    assert_eq!(json::decode_file(&export).unwrap().epoch, 0);
    assert!(!String::from_utf8(export).unwrap().contains("epoch"));
}

#[test]
fn duplicates_are_idempotent_and_conflicts_refused() {
    let mut k = kb(10);
    let f = failure("x", &["a", "b"], NOW);
    k.insert(&f, NOW).unwrap();
    assert_eq!(k.insert(&f, NOW).unwrap(), Inserted::Duplicate);
    // Same set of symptoms written differently is the same record.
    assert_eq!(
        k.insert(&failure("x", &["b", "a", "a"], NOW), NOW).unwrap(),
        Inserted::Duplicate
    );
    assert!(matches!(
        k.insert(&failure("x", &["a"], NOW), NOW),
        Err(KbError::Conflict(_))
    ));
    assert_eq!(k.len(), 1);
}

#[test]
fn interned_symptoms_do_not_outlive_their_records() {
    let mut k = kb(10);
    for i in 0..10_000 {
        let a = format!("unique-{i}");
        let b = format!("also-{i}");
        k.insert(
            &failure(&format!("r{i:05}"), &[&a, &b, "shared"], NOW + i),
            NOW,
        )
        .unwrap();
    }
    assert_eq!(k.len(), 10);
    // 10 records × 2 unique symptoms + 1 shared.
    assert_eq!(k.symptom_count(), 21);
    // Dead postings of the shared symptom are compacted away.
    assert!(
        k.posting_entries() <= 20 + 2 * 10 + 8,
        "{}",
        k.posting_entries()
    );
    k.clear(NOW + 20_000);
    assert_eq!((k.len(), k.symptom_count(), k.posting_entries()), (0, 0, 0));
}

#[test]
fn success_rate_per_failure_type() {
    let mut k = kb(100);
    let mut r = |id: &str, ty: Label, success| {
        let mut raw = raw(id, &["s"], NOW);
        raw.failure_type = ty;
        raw.success = success;
        k.insert(&Failure::new(raw).unwrap(), NOW).unwrap();
    };
    r("1", Label::Atom("node_down".into()), true);
    r("2", Label::Atom("node_down".into()), true);
    r("3", Label::Atom("node_down".into()), false);
    r("4", Label::Binary("node_down".into()), false);
    let c = k.success_rate(&Label::Atom("node_down".into()));
    assert_eq!((c.successes, c.failures), (2, 1));
    assert_eq!(c.rate(), Some(2.0 / 3.0));
    // An atom and a binary with the same text are different types.
    assert_eq!(
        k.success_rate(&Label::Binary("node_down".into())).failures,
        1
    );
    assert_eq!(k.success_rate(&Label::Atom("other".into())).rate(), None);
}

#[test]
fn effectiveness_per_strategy() {
    let mut k = kb(100);
    let mut id = 0;
    let mut add = |ms: RecoveryMs, success: bool| {
        id += 1;
        let mut r = raw(&format!("{id}"), &["s"], NOW);
        r.strategy = Strategy::Throttle;
        r.recovery_ms = ms;
        r.success = success;
        k.insert(&Failure::new(r).unwrap(), NOW).unwrap();
    };
    for v in 1..=20 {
        add(RecoveryMs::Int(v * 10), true);
    }
    add(RecoveryMs::Float(5000.5), false);
    let e = k.effectiveness(Strategy::Throttle);
    assert_eq!((e.counts.successes, e.counts.failures), (20, 1));
    assert_eq!(e.rate, Some(20.0 / 21.0));
    // Mean and p95 over successful recoveries only: 10..200, mean 105, p95 = 19th of 20.
    assert_eq!(e.mean_recovery_ms, Some(105.0));
    assert_eq!(e.p95_recovery_ms, Some(190.0));
    let none = k.effectiveness(Strategy::Escalate);
    assert_eq!(none.counts.total(), 0);
    assert_eq!(
        (none.rate, none.mean_recovery_ms, none.p95_recovery_ms),
        (None, None, None)
    );
    // One sample: it is the p95. Floats and -0.0 count as numbers.
    let mut k = kb(10);
    let mut r = raw("z", &["s"], NOW);
    r.recovery_ms = RecoveryMs::Float(-0.0);
    k.insert(&Failure::new(r).unwrap(), NOW).unwrap();
    let e = k.effectiveness(Strategy::SupervisorRestart);
    assert_eq!(
        (e.mean_recovery_ms, e.p95_recovery_ms),
        (Some(0.0), Some(0.0))
    );
    // Eviction updates the figures.
    k.clear(NOW);
    assert_eq!(
        k.effectiveness(Strategy::SupervisorRestart).counts.total(),
        0
    );
}

#[test]
fn recommend_ranks_with_the_beta_prior() {
    let mut k = kb(1000);
    let q = ["a", "b", "c"];
    // Once, successful, identical failure: (1 + 1) / (2 + 1) = 2/3.
    k.insert(&with("once", &q, NOW, Strategy::Pause, true), NOW)
        .unwrap();
    // Ten times, 8 successes, identical failures: (1 + 8) / (2 + 10) = 0.75.
    for i in 0..10 {
        let f = with(&format!("t{i}"), &q, NOW - 1 - i, Strategy::Throttle, i < 8);
        k.insert(&f, NOW).unwrap();
    }
    // Once, failed: 1/3.
    k.insert(&with("bad", &q, NOW, Strategy::Escalate, false), NOW)
        .unwrap();
    // Only weakly similar (2/4 = 0.5 < 0.7): ignored at the default threshold.
    k.insert(
        &with(
            "far",
            &["a", "b", "z", "y"],
            NOW,
            Strategy::LoadShedding,
            true,
        ),
        NOW,
    )
    .unwrap();
    let query = k.query(&q).unwrap();
    let r = k.recommend(&query, Threshold::DEFAULT);
    let order: Vec<Strategy> = r.iter().map(|x| x.strategy).collect();
    assert_eq!(
        order,
        [Strategy::Throttle, Strategy::Pause, Strategy::Escalate]
    );
    assert_eq!(r[0].score, 9.0 / 12.0);
    assert_eq!((r[0].successes, r[0].failures, r[0].weight), (8, 2, 10.0));
    assert_eq!(r[1].score, 2.0 / 3.0);
    assert_eq!(r[2].score, 1.0 / 3.0);
    // With a lower threshold the weak match counts, weighted by its similarity 0.4 (2 of 5).
    let r = k.recommend(&query, th(0.3));
    let ls = r
        .iter()
        .find(|x| x.strategy == Strategy::LoadShedding)
        .unwrap();
    assert_eq!(ls.weight, 0.4);
    assert_eq!(ls.score, 1.4 / 2.4);
    // Nothing similar: nothing to recommend.
    assert!(k
        .recommend(&k.query(&["zz"]).unwrap(), Threshold::DEFAULT)
        .is_empty());
}

#[test]
fn recommend_breaks_score_ties_by_evidence_then_name() {
    let mut k = kb(100);
    // Strategies with equal score 0.5: one success one failure each, equal weights; then a
    // third with the same score and less evidence (no records can give 0.5 with less evidence
    // than 0 except none), so compare names.
    for (i, s) in [Strategy::Throttle, Strategy::Pause].iter().enumerate() {
        k.insert(&with(&format!("{i}a"), &["q"], NOW, *s, true), NOW)
            .unwrap();
        k.insert(&with(&format!("{i}b"), &["q"], NOW, *s, false), NOW)
            .unwrap();
    }
    let r = k.recommend(&k.query(&["q"]).unwrap(), Threshold::DEFAULT);
    let order: Vec<Strategy> = r.iter().map(|x| x.strategy).collect();
    assert_eq!(order, [Strategy::Pause, Strategy::Throttle]);
    assert!(r.iter().all(|x| x.score == 0.5));
}

#[test]
fn queries_are_validated() {
    let k = kb(10);
    assert!(matches!(k.query(&[""]), Err(KbError::InvalidSymptoms)));
    let long = "x".repeat(record::MAX_SYMPTOM_BYTES + 1);
    assert!(k.query(&[long.as_str()]).is_err());
    let many: Vec<String> = (0..=record::MAX_SYMPTOMS).map(|i| i.to_string()).collect();
    assert!(k.query(&many).is_err());
    assert_eq!(k.query(&["a", "a", "b"]).unwrap().size(), 2);
    assert!(KnowledgeBase::new(Config {
        max_records: 0,
        ..Config::default()
    })
    .is_err());
    assert!(KnowledgeBase::new(Config {
        retention_ms: 0,
        ..Config::default()
    })
    .is_err());
    assert!(KnowledgeBase::new(Config {
        retention_ms: u64::MAX,
        ..Config::default()
    })
    .is_err());
}

#[test]
fn search_cost_reflects_the_prefix_filter() {
    let mut k = kb(10_000);
    for i in 0..1000 {
        let rare = format!("rare-{}", i % 100);
        k.insert(
            &failure(&format!("{i}"), &["common", "usual", &rare], NOW),
            NOW,
        )
        .unwrap();
    }
    // 3 symptoms at 0.7: 3 must be shared, so one posting list (the rarest) is read.
    let q = k.query(&["common", "usual", "rare-7"]).unwrap();
    assert_eq!(k.search_cost(&q, Threshold::DEFAULT), 10);
    assert_eq!(k.similar(&q, Threshold::DEFAULT, 100).len(), 10);
    // Threshold 0 scans everything.
    assert_eq!(k.search_cost(&q, th(0.0)), 1000);
    // A query whose known symptoms cannot reach the threshold costs nothing.
    let q = k.query(&["common", "x", "y", "z"]).unwrap();
    assert_eq!(k.search_cost(&q, Threshold::DEFAULT), 0);
}

// ---- The index against brute force, on random histories -------------------------------------

/// Brute force over `HashSet`s, the definition: every record, Jaccard, filter, sort, cut.
fn brute(records: &[Failure], q: &[String], t: f64, limit: usize) -> Vec<(f64, String)> {
    let qs: HashSet<&str> = q.iter().map(String::as_str).collect();
    let mut out: Vec<(f64, i64, String)> = records
        .iter()
        .map(|f| {
            let rs: HashSet<&str> = f.symptoms().iter().map(|s| &**s).collect();
            let inter = qs.intersection(&rs).count();
            (
                jaccard(inter, qs.len(), rs.len()),
                f.timestamp(),
                f.id().to_string(),
            )
        })
        .filter(|(s, _, _)| *s >= t)
        .collect();
    out.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    out.truncate(limit);
    out.into_iter().map(|(s, _, id)| (s, id)).collect()
}

/// The records a bounded base must hold: the newest `max` by (timestamp, id).
fn newest(records: &[Failure], max: usize) -> Vec<Failure> {
    let mut by_id: HashMap<&str, &Failure> = HashMap::new();
    for f in records {
        by_id.entry(f.id()).or_insert(f);
    }
    let mut v: Vec<&Failure> = by_id.into_values().collect();
    v.sort_by(|a, b| (b.timestamp(), b.id()).cmp(&(a.timestamp(), a.id())));
    v.truncate(max);
    v.into_iter().cloned().collect()
}

fn arb_symptoms() -> impl Gen<Value = Vec<String>> {
    // A small vocabulary so that overlaps are frequent; skewed towards the first symptoms.
    // Some sets are longer than a search signature holds inline (14), to test the fallback.
    let symptom =
        || prop_oneof![3 => 0u8..4, 2 => 0u8..12, 1 => 0u8..30].prop_map(|i| format!("s{i}"));
    prop_oneof![
        9 => prop::collection::vec(symptom(), 0..8),
        1 => prop::collection::vec(symptom(), 14..30),
    ]
}

fn arb_history() -> impl Gen<Value = Vec<Failure>> {
    // A pool of 60 records (one content per id), then a sequence of picks from it, so that ids
    // repeat with identical content (duplicates) and records arrive out of timestamp order.
    let pool = prop::collection::vec((0i64..40, arb_symptoms()), 60).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (ts, s))| {
                let s: Vec<&str> = s.iter().map(String::as_str).collect();
                // Timestamps collide often (ts in 0..40 plus a coarse id part) to test tie-breaks.
                failure(&format!("id{i}"), &s, NOW + ts + (i as i64 % 7) * 10)
            })
            .collect::<Vec<_>>()
    });
    (pool, prop::collection::vec(0usize..60, 0..120))
        .prop_map(|(pool, picks)| picks.into_iter().map(|i| pool[i].clone()).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn index_search_equals_brute_force(
        history in arb_history(),
        max in 1usize..80,
        queries in prop::collection::vec(arb_symptoms(), 1..6),
        t in prop_oneof![Just(0.0), Just(0.7), Just(1.0), 0.0f64..=1.0],
        limit in 1usize..20,
    ) {
        // The generator gives each id one content, so duplicates are identical.
        let mut k = kb(max);
        for f in &history {
            let _ = k.insert(f, NOW);
        }
        let kept = newest(&history, max);
        let mut ours: Vec<&str> = k.iter().map(|f| f.id()).collect();
        let mut want: Vec<&str> = kept.iter().map(|f| f.id()).collect();
        ours.sort_unstable();
        want.sort_unstable();
        prop_assert_eq!(ours, want);
        for q in &queries {
            let qs: Vec<&str> = q.iter().map(String::as_str).collect();
            prop_assert_eq!(search(&k, &qs, t, limit), brute(&kept, q, t, limit));
        }
    }

    #[test]
    fn content_does_not_depend_on_arrival_order(
        history in arb_history(),
        max in 1usize..50,
        seed in any::<u64>(),
    ) {
        let mut a = kb(max);
        for f in &history {
            let _ = a.insert(f, NOW);
        }
        // A deterministic shuffle.
        let mut shuffled = history.clone();
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let mut b = kb(max);
        for f in &shuffled {
            let _ = b.insert(f, NOW);
        }
        prop_assert_eq!(json::encode_file(&a, json::FileKind::Snapshot).0, json::encode_file(&b, json::FileKind::Snapshot).0);
        prop_assert_eq!(a.digest(), b.digest());
        for s in Strategy::ALL {
            prop_assert_eq!(a.effectiveness(s), b.effectiveness(s));
        }
    }

    #[test]
    fn export_import_round_trip_is_exact(
        recs in prop::collection::vec(
            (
                "[a-zA-Z0-9_\\-:.]{1,40}",
                prop::collection::vec("\\PC{1,12}", 0..6),
                prop_oneof![
                    any::<u64>().prop_map(RecoveryMs::Int),
                    (0.0f64..1e300).prop_map(RecoveryMs::Float),
                    Just(RecoveryMs::Float(5e-324)),
                    Just(RecoveryMs::Float(0.1)),
                    Just(RecoveryMs::Float(-0.0)),
                ],
                0i64..4_000_000_000_000,
                "[\\x{20}-\\x{ff}]{0,20}",
                "\\PC{0,30}",
            ),
            0..30,
        )
    ) {
        // Timestamps span 0..4e12 ms: "now" is after all of them, retention as long as allowed.
        let now = 5_000_000_000_000;
        let config = Config { max_records: 1000, retention_ms: i64::MAX as u64 };
        let mut k = KnowledgeBase::new(config).unwrap();
        let mut offered = Vec::new();
        for (i, (id, symptoms, ms, ts, atom, bin)) in recs.into_iter().enumerate() {
            let f = Failure::new(RawFailure {
                id: format!("{i}-{id}"),
                failure_type: Label::Atom(atom.into()),
                root_cause: Label::Binary(bin.into()),
                symptoms,
                strategy: Strategy::ALL[i % 8],
                recovery_ms: ms,
                success: i % 3 != 0,
                timestamp: ts,
            }).unwrap();
            k.insert(&f, now).unwrap();
            offered.push(f);
        }
        let (bytes, n) = json::encode_file(&k, json::FileKind::Export);
        prop_assert_eq!(n, offered.len());
        let back = json::decode_file(&bytes).unwrap();
        let mut k2 = KnowledgeBase::new(config).unwrap();
        for f in &back.records {
            k2.insert(f, now).unwrap();
        }
        prop_assert_eq!(&json::encode_file(&k2, json::FileKind::Export).0, &bytes);
        // Every field, floats bit for bit.
        for f in &offered {
            let g = k2.get(f.id()).unwrap().to_failure().unwrap();
            prop_assert_eq!(f, &g);
            if let (RecoveryMs::Float(a), RecoveryMs::Float(b)) = (f.recovery_ms(), g.recovery_ms()) {
                prop_assert_eq!(a.to_bits(), b.to_bits());
            }
        }
    }
}

// ---- Persistence -------------------------------------------------------------------------------

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "autonomic-kb-{tag}-{}-{}",
            std::process::id(),
            NOW_NANOS.fetch_add(1, AtomicOrdering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

static NOW_NANOS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn small() -> Config {
    Config {
        max_records: 100,
        ..Config::default()
    }
}

#[test]
fn flushed_records_survive_a_reopen_and_unflushed_do_not() {
    let dir = TempDir::new("reopen");
    let (s, report) = SharedKb::open(&dir.0, small(), NOW).unwrap();
    assert_eq!(report.loaded, 0);
    for i in 0..10 {
        s.insert(&failure(&format!("r{i}"), &["a", "b"], NOW + i), NOW)
            .unwrap();
    }
    assert_eq!(s.flush().unwrap().lines, 10);
    s.insert(&failure("unflushed", &["a"], NOW), NOW).unwrap();
    // Dropping without a flush is what a kill -9 does to the pending buffer.
    drop(s);
    let (s, report) = SharedKb::open(&dir.0, small(), NOW).unwrap();
    assert_eq!((report.log_records, report.loaded), (10, 10));
    assert!(s.read().get("unflushed").is_none());
    assert_eq!(s.read().get("r3").unwrap().symptoms(), ["a", "b"]);
}

#[test]
fn a_torn_log_tail_is_truncated_and_appends_continue() {
    let dir = TempDir::new("torn");
    let (s, _) = SharedKb::open(&dir.0, small(), NOW).unwrap();
    for i in 0..3 {
        s.insert(&failure(&format!("r{i}"), &["a"], NOW + i), NOW)
            .unwrap();
    }
    s.flush().unwrap();
    drop(s);
    let log = dir.0.join(store::LOG_FILE);
    let full = std::fs::read(&log).unwrap();
    std::fs::write(&log, &full[..full.len() - 7]).unwrap();
    let (s, report) = SharedKb::open(&dir.0, small(), NOW).unwrap();
    assert_eq!(report.loaded, 2);
    assert!(report.truncated_bytes > 0);
    s.insert(&failure("r9", &["a"], NOW + 9), NOW).unwrap();
    s.flush().unwrap();
    drop(s);
    let (s, report) = SharedKb::open(&dir.0, small(), NOW).unwrap();
    assert_eq!(
        (report.loaded, report.truncated_bytes, report.corrupt_lines),
        (3, 0, 0)
    );
    assert!(s.read().get("r9").is_some());
}

#[test]
fn compaction_writes_a_snapshot_and_empties_the_log() {
    let dir = TempDir::new("compact");
    let (s, _) = SharedKb::open(&dir.0, small(), NOW).unwrap();
    let n = s.compact_after() + 5;
    for i in 0..n as i64 {
        s.insert(&failure(&format!("r{i:05}"), &["a"], NOW + i), NOW)
            .unwrap();
        if i % 100 == 0 {
            s.flush().unwrap();
        }
    }
    let report = s.flush().unwrap();
    assert!(report.snapshot || s.info().log_lines < s.compact_after());
    s.compact().unwrap();
    assert_eq!(s.info().log_lines, 0);
    assert_eq!(
        std::fs::metadata(dir.0.join(store::LOG_FILE))
            .unwrap()
            .len(),
        0
    );
    let before = json::encode_file(&s.read(), json::FileKind::Snapshot).0;
    drop(s);
    let (s, report) = SharedKb::open(&dir.0, small(), NOW).unwrap();
    assert_eq!((report.snapshot_records, report.log_records), (100, 0));
    assert_eq!(
        json::encode_file(&s.read(), json::FileKind::Snapshot).0,
        before
    );
}

#[test]
fn clear_is_persisted_with_its_epoch() {
    let dir = TempDir::new("clear");
    let (s, _) = SharedKb::open(&dir.0, small(), NOW).unwrap();
    s.insert(&failure("a", &["x"], NOW - 1), NOW).unwrap();
    s.flush().unwrap();
    let epoch = s.clear(NOW).unwrap();
    // A record offered again after the clear (a peer that missed it) is refused.
    let merged = s.merge(&[failure("a", &["x"], NOW - 1)], NOW, false);
    assert_eq!(merged.rejected, 1);
    s.insert(&failure("b", &["x"], NOW + 5), NOW + 5).unwrap();
    s.flush().unwrap();
    drop(s);
    let (s, report) = SharedKb::open(&dir.0, small(), NOW + 5).unwrap();
    assert_eq!(report.loaded, 1);
    assert_eq!(s.read().epoch(), epoch);
    assert!(s.read().get("b").is_some());
}

#[test]
fn a_corrupt_snapshot_is_moved_aside_not_lost() {
    let dir = TempDir::new("corrupt");
    let (s, _) = SharedKb::open(&dir.0, small(), NOW).unwrap();
    s.insert(&failure("a", &["x"], NOW), NOW).unwrap();
    s.compact().unwrap();
    s.insert(&failure("b", &["x"], NOW), NOW).unwrap();
    s.flush().unwrap();
    drop(s);
    std::fs::write(dir.0.join(store::SNAPSHOT_FILE), b"{\"format\": garbage").unwrap();
    let (s, report) = SharedKb::open(&dir.0, small(), NOW).unwrap();
    let (aside, why) = report.quarantined.unwrap();
    assert!(aside.exists());
    assert!(why.contains("line 1"));
    assert!(s.read().get("b").is_some() && s.read().get("a").is_none());
}

#[test]
fn import_refuses_a_corrupt_file_without_changing_anything() {
    let dir = TempDir::new("import");
    std::fs::create_dir_all(&dir.0).unwrap();
    let s = SharedKb::new(small()).unwrap();
    s.insert(&failure("keep", &["x"], NOW), NOW).unwrap();
    let good = dir.0.join("good.json");
    let src = SharedKb::new(small()).unwrap();
    for i in 0..5 {
        src.insert(&failure(&format!("i{i}"), &["y"], NOW + i), NOW)
            .unwrap();
    }
    assert_eq!(src.export(&good).unwrap(), 5);
    let text = std::fs::read_to_string(&good).unwrap();
    let bad = dir.0.join("bad.json");
    // The last record is damaged: no record of the file may be imported.
    std::fs::write(&bad, text.replace("\"i4\"", "\"\"")).unwrap();
    assert!(s.import(&bad, NOW, false).is_err());
    assert_eq!(s.read().len(), 1);
    assert!(s.import(&dir.0.join("missing.json"), NOW, false).is_err());
    let report = s.import(&good, NOW, true).unwrap();
    assert_eq!((report.offered, report.added, report.duplicates), (5, 5, 0));
    assert_eq!(json::decode_lines(&report.lines).records.len(), 5);
    assert_eq!(s.import(&good, NOW, false).unwrap().duplicates, 5);
    assert_eq!(s.read().len(), 6);
}

// ---- Locking ---------------------------------------------------------------------------------

#[test]
fn a_long_read_delays_a_write_but_no_read() {
    let s = Arc::new(SharedKb::new(small()).unwrap());
    s.insert(&failure("a", &["x"], NOW), NOW).unwrap();
    let long_read = s.read();
    // The first write goes to the other copy and is published at once.
    s.try_insert(&failure("b", &["x"], NOW), NOW)
        .unwrap()
        .unwrap();
    // The next needs the copy under the long read: a normal-scheduler insert gives up quickly.
    let t0 = Instant::now();
    assert_eq!(
        s.try_insert(&failure("c", &["x"], NOW), NOW).err(),
        Some(Busy)
    );
    assert!(t0.elapsed() < Duration::from_millis(50));
    // A dirty-scheduler insert waits for the long read...
    let writer = {
        let s = Arc::clone(&s);
        std::thread::spawn(move || s.insert(&failure("c", &["x"], NOW), NOW).is_ok())
    };
    std::thread::sleep(Duration::from_millis(20));
    // ...while readers see the newest published state at once.
    let reader = {
        let s = Arc::clone(&s);
        std::thread::spawn(move || {
            let t0 = Instant::now();
            (s.read().len(), t0.elapsed())
        })
    };
    let (len, waited) = reader.join().unwrap();
    assert_eq!(len, 2);
    assert!(
        waited < Duration::from_millis(10),
        "a reader waited {waited:?}"
    );
    assert!(!writer.is_finished());
    assert_eq!(long_read.len(), 1);
    drop(long_read);
    assert!(writer.join().unwrap());
    assert_eq!(s.read().len(), 3);
}

#[test]
fn concurrent_readers_and_writers_agree() {
    let s = Arc::new(
        SharedKb::new(Config {
            max_records: 200,
            ..Config::default()
        })
        .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (s, stop) = (Arc::clone(&s), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(AtomicOrdering::Relaxed) {
                    let kb = s.read();
                    let q = kb.query(&["a", "b", "c"]).unwrap();
                    for m in kb.similar(&q, Threshold::DEFAULT, 10) {
                        assert!(m.score >= 0.7);
                        assert_eq!(m.failure.symptoms(), ["a", "b", "c"]);
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    for i in 0..1000 {
        let f = failure(&format!("w{i:06}"), &["a", "b", "c"], NOW + i);
        loop {
            match s.try_insert(&f, NOW) {
                Ok(r) => {
                    r.unwrap();
                    break;
                }
                Err(Busy) => std::thread::yield_now(),
            }
        }
    }
    stop.store(true, AtomicOrdering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(s.read().len(), 200);
    assert_eq!(s.read().symptom_count(), 3);
}

// ---- Anti-entropy ------------------------------------------------------------------------------

#[test]
fn digests_find_the_difference_and_a_sync_converges() {
    let a = SharedKb::new(small()).unwrap();
    let b = SharedKb::new(small()).unwrap();
    for i in 0..50 {
        let f = failure(&format!("common{i}"), &["x"], NOW + i);
        a.insert(&f, NOW).unwrap();
        b.insert(&f, NOW).unwrap();
    }
    for i in 0..5 {
        a.insert(&failure(&format!("only-a{i}"), &["y"], NOW + i), NOW)
            .unwrap();
    }
    b.insert(&failure("only-b", &["z"], NOW), NOW).unwrap();
    // a → b: digest. b: the differing buckets and its ids there.
    let da = Digest::decode(&a.read().digest().encode()).unwrap();
    let (buckets, b_ids) = b.sync_diff(&da);
    assert!(!buckets.is_empty() && buckets.len() <= 6);
    // a: the lines of what b lacks, and the ids a lacks.
    let (to_b, want) = a.sync_missing(&buckets, &b_ids);
    assert_eq!(want, ["only-b"]);
    assert_eq!(b.merge_lines(&to_b, NOW).added, 5);
    // b: the lines a asked for.
    assert_eq!(a.merge_lines(&b.lines_for(&want), NOW).added, 1);
    // In sync: nothing differs any more.
    let db = Digest::decode(&b.read().digest().encode()).unwrap();
    assert!(a.sync_diff(&db).0.is_empty());
    assert_eq!(a.read().digest(), b.read().digest());
    assert_eq!(
        json::encode_file(&a.read(), json::FileKind::Snapshot).0,
        json::encode_file(&b.read(), json::FileKind::Snapshot).0
    );
}
