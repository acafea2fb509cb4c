//! Tests of the Turtle import: every predicate, literal forms, bad literals, syntax errors with
//! their positions, vocabulary problems, several problems at once, and the shipped example.

use proptest::prelude::{prop_assert, prop_assert_eq, proptest};

use super::turtle::snake_case;
use super::*;

const PREFIXES: &str = "@prefix res: <https://autonomic.dev/ns/resilience#> .\n\
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n\
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n\
@prefix ex: <https://example.org/> .\n";

/// Imports `body` after the standard prefixes (3 lines... 4 lines: the body starts on line 5).
fn import(body: &str) -> Result<Import, Vec<Problem>> {
    import_turtle(format!("{PREFIXES}{body}").as_bytes())
}

/// Imports a document that must map without problems.
fn clean(body: &str) -> Value {
    match import(body) {
        Ok(Import { policy, problems }) => {
            assert!(problems.is_empty(), "unexpected problems: {problems:#?}");
            policy
        }
        Err(problems) => panic!("document refused: {problems:#?}"),
    }
}

/// The problems of a document that maps with problems.
fn problems(body: &str) -> Vec<Problem> {
    match import(body) {
        Ok(Import { problems, .. }) => problems,
        Err(problems) => panic!("document refused as a whole: {problems:#?}"),
    }
}

/// The problems of a document refused as a whole.
fn refused(body: &str) -> Vec<Problem> {
    match import(body) {
        Ok(i) => panic!("document accepted: {i:#?}"),
        Err(problems) => problems,
    }
}

fn at<'v>(v: &'v Value, path: &[&str]) -> &'v Value {
    path.iter().fold(v, |v, k| {
        v.get(k)
            .unwrap_or_else(|| panic!("no {k} in {v:?} (path {path:?})"))
    })
}

fn name(n: &str) -> Value {
    Value::Name(n.to_owned())
}

fn pct(p: f64) -> Value {
    Value::Percent(Number::Float(p))
}

fn fields(problems: &[Problem]) -> Vec<String> {
    problems.iter().map(Problem::field_text).collect()
}

#[test]
fn every_predicate_maps_to_its_field() {
    let v = clean(
        r#"
ex:p a res:ResiliencePolicy ;
  res:name "prod" ;
  res:targetSystem ex:JobQueue ;
  res:slo [ res:availabilitySLO 99.9 ; res:mttd "PT5S"^^xsd:duration ; res:mttr "30s"^^xsd:duration ;
            res:maxDegradation "20"^^xsd:decimal ; res:recoverySuccess 95 ; res:window "P30D" ] ;
  res:failureMode [ res:type res:NodeDown ; res:recoveryStrategy ( res:QuorumReconfiguration res:Escalate ) ;
                    res:detectionTime "PT2S" ; res:recoveryTime 15000 ; res:severity res:Critical ] ;
  res:failureMode [ res:type res:ProcessCrash ; res:recoveryStrategy res:SupervisorRestart ] ;
  res:planner [ res:sloBudget "PT5M" ; res:blastRadiusLimit 50 ; res:quorumSize 3 ; res:stepTime "PT0.25S" ;
                res:shedPercent 30 ; res:throttlePercent 40 ; res:degradeImpact 25 ;
                res:strategyRecoveryTime [ res:strategy res:BackendFailover ; res:recoveryTime "PT4S" ] ,
                                         [ res:strategy res:Throttle ; res:recoveryTime 250 ] ] ;
  res:gates [ res:errorBudget 50 ; res:blastRadius 40 ; res:cooldown "PT10S" ; res:capacityHeadroom 20 ;
              res:maxIncidentRate 30.5 ; res:maxConsecutiveFailures 2 ] ;
  res:loop [ res:interval "PT10S" ; res:maxCycleTime "PT1M" ; res:minConfidence 70 ; res:lockTtl "PT2M" ] ;
  res:chaosSchedule [ res:enabled true ; res:interval "PT5S" ; res:duration "PT2M" ; res:maxConcurrent 1 ;
                      res:pauseOnAlert true ; res:safeMode false ; res:requireApproval "1"^^xsd:boolean ;
                      res:seed 42 ;
                      res:scenarioWeight [ res:scenario res:NodeKill ; res:weight 2 ] ,
                                         [ res:scenario res:ProcessKill ; res:weight 0.5 ] ] .
"#,
    );
    assert_eq!(at(&v, &["name"]), &Value::Text("prod".into()));
    assert_eq!(
        at(&v, &["target_system"]),
        &Value::Text("https://example.org/JobQueue".into())
    );
    assert_eq!(at(&v, &["slo", "availability"]), &pct(99.9));
    assert_eq!(at(&v, &["slo", "mttd_ms"]), &Value::Int(5_000));
    assert_eq!(at(&v, &["slo", "mttr_ms"]), &Value::Int(30_000));
    assert_eq!(
        at(&v, &["slo", "max_degradation"]),
        &Value::Percent(Number::Int(20))
    );
    assert_eq!(
        at(&v, &["slo", "recovery_success"]),
        &Value::Percent(Number::Int(95))
    );
    assert_eq!(at(&v, &["slo", "window_ms"]), &Value::Int(2_592_000_000));
    let nd = at(&v, &["failure_modes", "node_down"]);
    assert_eq!(
        at(nd, &["recovery_strategies"]),
        &Value::List(vec![name("quorum_reconfiguration"), name("escalate")])
    );
    assert_eq!(at(nd, &["detection_ms"]), &Value::Int(2_000));
    assert_eq!(at(nd, &["recovery_ms"]), &Value::Int(15_000));
    assert_eq!(at(nd, &["severity"]), &name("critical"));
    assert_eq!(nd.get("type"), None, "the key is not a field");
    assert_eq!(
        at(
            &v,
            &["failure_modes", "process_crash", "recovery_strategies"]
        ),
        &Value::List(vec![name("supervisor_restart")])
    );
    let planner = at(&v, &["planner"]);
    assert_eq!(at(planner, &["slo_budget_ms"]), &Value::Int(300_000));
    assert_eq!(at(planner, &["blast_radius_limit"]), &Value::Int(50));
    assert_eq!(at(planner, &["quorum_size"]), &Value::Int(3));
    assert_eq!(at(planner, &["step_ms"]), &Value::Int(250));
    assert_eq!(at(planner, &["shed_percent"]), &Value::Int(30));
    assert_eq!(at(planner, &["throttle_percent"]), &Value::Int(40));
    assert_eq!(
        at(planner, &["degrade_impact"]),
        &Value::Percent(Number::Int(25))
    );
    assert_eq!(
        at(planner, &["default_recovery_ms"]),
        &Value::Map(vec![
            (Key::Name("backend_failover".into()), Value::Int(4_000)),
            (Key::Name("throttle".into()), Value::Int(250)),
        ])
    );
    let gates = at(&v, &["gates"]);
    assert_eq!(
        at(gates, &["error_budget"]),
        &Value::Percent(Number::Int(50))
    );
    assert_eq!(
        at(gates, &["blast_radius"]),
        &Value::Percent(Number::Int(40))
    );
    assert_eq!(at(gates, &["cooldown_ms"]), &Value::Int(10_000));
    assert_eq!(
        at(gates, &["capacity_headroom"]),
        &Value::Percent(Number::Int(20))
    );
    assert_eq!(at(gates, &["max_incident_rate"]), &Value::Float(30.5));
    assert_eq!(at(gates, &["max_consecutive_failures"]), &Value::Int(2));
    let lp = at(&v, &["loop"]);
    assert_eq!(at(lp, &["interval_ms"]), &Value::Int(10_000));
    assert_eq!(at(lp, &["max_cycle_ms"]), &Value::Int(60_000));
    assert_eq!(
        at(lp, &["min_confidence"]),
        &Value::Percent(Number::Int(70))
    );
    assert_eq!(at(lp, &["lock_ttl_ms"]), &Value::Int(120_000));
    let chaos = at(&v, &["chaos"]);
    assert_eq!(at(chaos, &["enabled"]), &Value::Bool(true));
    assert_eq!(at(chaos, &["interval_ms"]), &Value::Int(5_000));
    assert_eq!(at(chaos, &["duration_ms"]), &Value::Int(120_000));
    assert_eq!(at(chaos, &["max_concurrent"]), &Value::Int(1));
    assert_eq!(at(chaos, &["pause_on_alert"]), &Value::Bool(true));
    assert_eq!(at(chaos, &["safe_mode"]), &Value::Bool(false));
    assert_eq!(at(chaos, &["require_approval"]), &Value::Bool(true));
    assert_eq!(at(chaos, &["seed"]), &Value::Int(42));
    assert_eq!(
        at(chaos, &["weights"]),
        &Value::Map(vec![
            (Key::Name("node_kill".into()), Value::Int(2)),
            (Key::Name("process_kill".into()), Value::Float(0.5)),
        ])
    );
}

#[test]
fn scenarios_list_gives_each_weight_one() {
    let v = clean(
        "ex:p a res:ResiliencePolicy ; res:chaosSchedule [ res:scenarios ( res:NodeKill res:CpuSaturation ) ] .",
    );
    assert_eq!(
        at(&v, &["chaos", "weights"]),
        &Value::Map(vec![
            (Key::Name("node_kill".into()), Value::Int(1)),
            (Key::Name("cpu_saturation".into()), Value::Int(1)),
        ])
    );
}

#[test]
fn an_empty_policy_is_an_empty_map_named_after_its_iri() {
    let v = clean("ex:ErlangClusterResilience a res:ResiliencePolicy .");
    assert_eq!(
        v,
        Value::Map(vec![(
            Key::Field("name"),
            Value::Text("ErlangClusterResilience".into())
        )])
    );
    // A blank policy node has no name to give.
    assert_eq!(clean("[] a res:ResiliencePolicy ."), Value::Map(vec![]));
}

#[test]
fn res_terms_where_literals_are_expected_are_names_for_the_validator() {
    let v = clean(
        "ex:p a res:ResiliencePolicy ; res:planner [ res:quorumSize res:Majority ] ;
           res:chaosSchedule [ res:duration res:Infinity ; res:seed res:Random ] .",
    );
    assert_eq!(at(&v, &["planner", "quorum_size"]), &name("majority"));
    assert_eq!(at(&v, &["chaos", "duration_ms"]), &name("infinity"));
    assert_eq!(at(&v, &["chaos", "seed"]), &name("random"));
}

#[test]
fn unknown_names_are_passed_on_for_the_validator() {
    // The import does not know which strategies exist: the validator does, and says so.
    let v = clean(
        "ex:p a res:ResiliencePolicy ; res:failureMode [ res:type res:Gremlins ; res:recoveryStrategy res:Prayer ] .",
    );
    assert_eq!(
        at(&v, &["failure_modes", "gremlins", "recovery_strategies"]),
        &Value::List(vec![name("prayer")])
    );
}

#[test]
fn other_namespaces_are_ignored() {
    let v = clean(
        r#"ex:p a res:ResiliencePolicy , ex:Thing ; rdfs:comment "ours" ; ex:owner ex:ops ;
             res:slo [ a res:SLO ; rdfs:label "slo" ; res:mttr "PT1S" ] .
           ex:other ex:says "anything" ."#,
    );
    assert_eq!(
        at(&v, &["slo"]),
        &Value::Map(vec![(Key::Field("mttr_ms"), Value::Int(1_000))])
    );
}

#[test]
fn durations() {
    let ok: [(&str, Number); 17] = [
        ("PT30S", Number::Int(30_000)),
        ("PT1.5S", Number::Int(1_500)),
        ("PT1.1S", Number::Int(1_100)),
        ("PT0.001S", Number::Int(1)),
        ("PT0.0005S", Number::Float(0.5)),
        ("P1D", Number::Int(86_400_000)),
        ("P1DT2H3M4.5S", Number::Int(93_784_500)),
        ("PT2H", Number::Int(7_200_000)),
        ("PT90M", Number::Int(5_400_000)),
        ("  PT1S ", Number::Int(1_000)),
        ("-PT5S", Number::Int(-5_000)),
        ("30s", Number::Int(30_000)),
        ("500ms", Number::Int(500)),
        ("5m", Number::Int(300_000)),
        ("1.5h", Number::Int(5_400_000)),
        ("2d", Number::Int(172_800_000)),
        ("0.5ms", Number::Float(0.5)),
    ];
    for (text, want) in ok {
        assert_eq!(duration_ms(text), Ok(want), "{text}");
    }
    let bad: [(&str, LiteralError); 18] = [
        ("", LiteralError::Duration),
        ("P", LiteralError::Duration),
        ("PT", LiteralError::Duration),
        ("P1DT", LiteralError::Duration),
        ("PT3X", LiteralError::Duration),
        ("PT1.5M", LiteralError::Duration),
        ("P1.5D", LiteralError::Duration),
        ("PT5S3M", LiteralError::Duration),
        ("PTS", LiteralError::Duration),
        ("P1Y", LiteralError::YearsOrMonths),
        ("P2M", LiteralError::YearsOrMonths),
        ("P1Y2DT1S", LiteralError::YearsOrMonths),
        ("30", LiteralError::Duration),
        ("30 s", LiteralError::Duration),
        ("-30s", LiteralError::Duration),
        ("1.s", LiteralError::Duration),
        ("PT0.0000000000000000001S", LiteralError::TooPrecise),
        ("P999999999999999999D", LiteralError::DurationTooLarge),
    ];
    for (text, want) in bad {
        assert_eq!(duration_ms(text), Err(want), "{text}");
    }
}

#[test]
fn duration_objects_of_every_accepted_form() {
    let v = clean(
        r#"ex:p a res:ResiliencePolicy ; res:slo [ res:mttr "PT1M"^^xsd:dayTimeDuration ; res:mttd 2500 ;
             res:window "1.5"^^xsd:decimal ] ; res:loop [ res:interval "PT2S" ; res:maxCycleTime "2e4"^^xsd:double ] ."#,
    );
    assert_eq!(at(&v, &["slo", "mttr_ms"]), &Value::Int(60_000));
    assert_eq!(at(&v, &["slo", "mttd_ms"]), &Value::Int(2_500));
    // A fraction of a millisecond, or a double, is passed on: the validator wants whole ms.
    assert_eq!(at(&v, &["slo", "window_ms"]), &Value::Float(1.5));
    assert_eq!(at(&v, &["loop", "interval_ms"]), &Value::Int(2_000));
    assert_eq!(at(&v, &["loop", "max_cycle_ms"]), &Value::Float(20_000.0));
}

#[test]
fn numbers() {
    assert_eq!(integer("42"), Ok(42));
    assert_eq!(integer("+7"), Ok(7));
    assert_eq!(integer("-0012"), Ok(-12));
    assert_eq!(integer("1.0"), Err(LiteralError::Integer));
    assert_eq!(integer("1e3"), Err(LiteralError::Integer));
    assert_eq!(integer(""), Err(LiteralError::Integer));
    assert_eq!(
        integer("99999999999999999999"),
        Err(LiteralError::IntegerRange)
    );
    assert_eq!(decimal("99.9"), Ok(Number::Float(99.9)));
    assert_eq!(decimal("20"), Ok(Number::Int(20)));
    assert_eq!(decimal("20.000"), Ok(Number::Int(20)));
    assert_eq!(decimal("-.5"), Ok(Number::Float(-0.5)));
    assert_eq!(decimal("5."), Ok(Number::Int(5)));
    assert_eq!(decimal("1e3"), Err(LiteralError::Decimal));
    assert_eq!(decimal("."), Err(LiteralError::Decimal));
    assert_eq!(decimal("NaN"), Err(LiteralError::Decimal));
    assert_eq!(double("1e3"), Ok(1000.0));
    assert_eq!(double("-2.5E-1"), Ok(-0.25));
    assert_eq!(double(".5"), Ok(0.5));
    assert_eq!(double("INF"), Err(LiteralError::NotFinite));
    assert_eq!(double("NaN"), Err(LiteralError::NotFinite));
    assert_eq!(double("1e999"), Err(LiteralError::NotFinite));
    assert_eq!(double("e5"), Err(LiteralError::Double));
    assert_eq!(double("1e"), Err(LiteralError::Double));
    assert_eq!(boolean("true"), Ok(true));
    assert_eq!(boolean("0"), Ok(false));
    assert_eq!(boolean("yes"), Err(LiteralError::Boolean));
}

#[test]
fn bad_literals_are_problems_naming_field_and_value() {
    let ps = problems(
        r#"ex:p a res:ResiliencePolicy ;
  res:name 42 ;
  res:slo [ res:mttr "PT3X"^^xsd:duration ; res:availabilitySLO "high" ; res:mttd "P1M" ;
            res:window true ; res:maxDegradation "abc"^^xsd:decimal ] ;
  res:chaosSchedule [ res:enabled "yes"^^xsd:boolean ; res:safeMode "true" ; res:seed "1.5"^^xsd:integer ;
                      res:maxConcurrent "INF"^^xsd:double ; res:interval ex:five ; res:duration [] ] ;
  res:failureMode [ res:type res:NodeDown ; res:severity "high" ] ."#,
    );
    let got: Vec<(String, String, String)> = ps
        .iter()
        .map(|p| (p.field_text(), p.value.clone(), p.why.to_string()))
        .collect();
    let want: [(&str, &str, &str); 13] = [
        ("name", "\"42\"^^xsd:integer", "expected a string literal"),
        (
            "slo.availability",
            "\"high\"",
            "datatype xsd:string where a percentage",
        ),
        (
            "slo.mttd_ms",
            "\"P1M\"",
            "years and months have no fixed length",
        ),
        (
            "slo.mttr_ms",
            "\"PT3X\"^^xsd:duration",
            "not an xsd:duration",
        ),
        (
            "slo.max_degradation",
            "\"abc\"^^xsd:decimal",
            "not an xsd:decimal",
        ),
        (
            "slo.window_ms",
            "\"true\"^^xsd:boolean",
            "datatype xsd:boolean where a duration",
        ),
        (
            "failure_modes.node_down.severity",
            "\"high\"",
            "expected a term of the res: vocabulary",
        ),
        (
            "chaos.enabled",
            "\"yes\"^^xsd:boolean",
            "not an xsd:boolean",
        ),
        (
            "chaos.interval_ms",
            "<https://example.org/five>",
            "expected a literal (a duration",
        ),
        ("chaos.duration_ms", "[]", "expected a literal (a duration"),
        (
            "chaos.max_concurrent",
            "\"INF\"^^xsd:double",
            "not a finite number",
        ),
        (
            "chaos.safe_mode",
            "\"true\"",
            "datatype xsd:string where a boolean",
        ),
        ("chaos.seed", "\"1.5\"^^xsd:integer", "not an integer"),
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (w_field, w_value, w_why) in want {
        assert!(
            got.iter()
                .any(|(f, v, why)| f == w_field && v == w_value && why.starts_with(w_why)),
            "missing ({w_field}, {w_value}, {w_why}) in {got:#?}"
        );
    }
}

#[test]
fn a_field_with_a_problem_is_left_out_and_the_rest_is_kept() {
    let i =
        import(r#"ex:p a res:ResiliencePolicy ; res:slo [ res:mttr "PT3X" ; res:mttd "PT1S" ] ."#)
            .unwrap();
    assert_eq!(i.problems.len(), 1);
    assert_eq!(
        at(&i.policy, &["slo"]),
        &Value::Map(vec![(Key::Field("mttd_ms"), Value::Int(1_000))])
    );
}

#[test]
fn syntax_errors_name_line_and_column() {
    // The body starts on line 5 (after four prefix lines).
    let ps = refused("ex:p a res:ResiliencePolicy ;\n  res:slo [ res:mttr \"PT1S ] .\n");
    assert!(!ps.is_empty());
    let p = &ps[0];
    assert!(matches!(p.why, Why::Syntax(_)), "{p:?}");
    assert_eq!(
        p.position,
        Some(Position {
            line: 6,
            column: 22
        })
    );
    assert!(p.why.to_string().starts_with("Turtle syntax error: "));
    assert!(p.value.starts_with("\"PT1S ] ."), "{p:?}");

    let ps = import_turtle(
        b"@prefix res: <https://autonomic.dev/ns/resilience#> .\nex:p a res:ResiliencePolicy .\n",
    )
    .unwrap_err();
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].position, Some(Position { line: 2, column: 1 }));
    assert_eq!(ps[0].value, "ex:p");
    assert!(ps[0].why.to_string().contains("ex"), "{}", ps[0].why);
}

#[test]
fn every_syntax_error_is_listed() {
    let ps = refused(
        "ex:p a res:ResiliencePolicy .\nex:a res:x nope:y .\nex:b res:y 1 .\nex:c res:z ?q .\n",
    );
    let lines: Vec<u64> = ps
        .iter()
        .filter_map(|p| p.position.map(|q| q.line))
        .collect();
    assert_eq!(lines, vec![6, 8], "{ps:#?}");
    assert!(ps.iter().all(|p| p.field.is_empty()));
}

#[test]
fn unknown_and_misplaced_predicates_are_problems() {
    let ps = problems(
        r#"ex:p a res:ResiliencePolicy ; res:sloo [ ] ;
  res:slo [ res:mtr "PT1S" ; res:recoveryTime "PT1S" ] ;
  res:failureMode [ res:type res:NodeDown ; res:mttr "PT1S" ] ."#,
    );
    assert_eq!(
        fields(&ps),
        vec![
            "sloo",
            "slo.mtr",
            "slo.recoveryTime",
            "failure_modes.node_down.mttr"
        ]
    );
    assert!(
        matches!(&ps[0].why, Why::UnknownPredicate { predicate, node: "policy", .. } if predicate == "sloo")
    );
    assert!(ps[0].why.to_string().contains("res:slo, res:failureMode"));
    assert!(matches!(
        &ps[1].why,
        Why::UnknownPredicate { node: "slo", .. }
    ));
    assert_eq!(ps[1].value, "\"PT1S\"");
    assert_eq!(
        ps[2].why.to_string(),
        "res:recoveryTime does not apply to a slo node (it belongs on a failure mode or strategy recovery time node)"
    );
    assert!(
        matches!(&ps[3].why, Why::Misplaced { node: "failure mode", belongs, .. } if belongs == "slo")
    );
}

#[test]
fn res_statements_outside_the_policy_are_problems() {
    let ps = problems(
        r#"ex:p a res:ResiliencePolicy .
ex:stray res:mttr "PT1S" .
ex:q res:slo [ res:mttd "PT1S" ] ."#,
    );
    assert_eq!(ps.len(), 3, "{ps:#?}");
    assert!(ps.iter().all(|p| p.why == Why::Unattached));
    assert_eq!(ps[0].value, "<https://example.org/stray> res:mttr \"PT1S\"");
}

#[test]
fn one_policy_per_document() {
    let ps = refused("ex:a a res:ResiliencePolicy . ex:b a res:ResiliencePolicy .");
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].why, Why::SeveralPolicies(2));
    assert_eq!(
        ps[0].value,
        "<https://example.org/a> <https://example.org/b>"
    );

    let ps = refused("ex:a res:slo [ res:mttr \"PT1S\" ] .");
    assert_eq!(
        ps[0].why,
        Why::NoPolicy {
            seed_namespace: false
        }
    );
    // An empty document has no policy either.
    assert_eq!(
        import_turtle(b"").unwrap_err()[0].why,
        Why::NoPolicy {
            seed_namespace: false
        }
    );
}

#[test]
fn a_document_in_the_seeds_namespace_gets_a_hint() {
    let ps = import_turtle(
        b"@prefix res: <http://ggen.io/resilience#> .\n<urn:p> a res:ResiliencePolicy .\n",
    )
    .unwrap_err();
    assert_eq!(
        ps[0].why,
        Why::NoPolicy {
            seed_namespace: true
        }
    );
    assert!(ps[0]
        .why
        .to_string()
        .contains("change its @prefix res: line"));
}

#[test]
fn single_values_given_twice_are_problems() {
    let ps = problems(
        r#"ex:p a res:ResiliencePolicy ; res:name "a", "b" ; res:slo [ res:mttr "PT1S", "PT2S" ] ;
             res:loop [ ] , [ ] ."#,
    );
    assert_eq!(fields(&ps), vec!["name", "slo.mttr_ms", "loop"]);
    assert_eq!(
        ps[0].why,
        Why::Repeated {
            predicate: "name",
            count: 2
        }
    );
    assert_eq!(ps[0].value, "\"a\", \"b\"");
}

#[test]
fn strategy_lists() {
    // Several statements have no order in RDF.
    let ps = problems(
        "ex:p a res:ResiliencePolicy ; res:failureMode [ res:type res:NodeDown ;
           res:recoveryStrategy res:Escalate , res:Pause ] .",
    );
    assert_eq!(
        fields(&ps),
        vec!["failure_modes.node_down.recovery_strategies"]
    );
    assert_eq!(ps[0].why, Why::Unordered("recoveryStrategy"));
    // Literals in a list, and a list that is not one.
    let ps = problems(
        r#"ex:p a res:ResiliencePolicy ;
  res:failureMode [ res:type res:NodeDown ; res:recoveryStrategy ( res:Pause "escalate" 3 ) ] ;
  res:failureMode [ res:type res:NodeSuspected ; res:recoveryStrategy [ res:x 1 ] ] ;
  res:failureMode [ res:type res:Overload ; res:recoveryStrategy "throttle" ] ."#,
    );
    assert_eq!(ps.len(), 5, "{ps:#?}");
    assert_eq!(ps[0].value, "\"escalate\"");
    assert_eq!(ps[1].value, "\"3\"^^xsd:integer");
    assert!(ps[..2].iter().all(|p| p.why == Why::ExpectedName));
    assert_eq!(ps[2].why, Why::ExpectedName);
    assert_eq!(
        ps[2].field_text(),
        "failure_modes.node_suspected.recovery_strategies"
    );
    assert_eq!(
        ps[3].field_text(),
        "failure_modes.overload.recovery_strategies"
    );
    // The blank node [ res:x 1 ] is not part of the policy either.
    assert_eq!(ps[4].why, Why::Unattached);
    // An empty list is passed on: the validator says a strategy list must not be empty.
    let v = clean(
        "ex:p a res:ResiliencePolicy ; res:failureMode [ res:type res:NodeDown ; res:recoveryStrategy () ] .",
    );
    assert_eq!(
        at(&v, &["failure_modes", "node_down", "recovery_strategies"]),
        &Value::List(vec![])
    );
}

#[test]
fn malformed_rdf_lists_are_problems() {
    let rdf = "<http://www.w3.org/1999/02/22-rdf-syntax-ns#";
    let ps = problems(&format!(
        "ex:p a res:ResiliencePolicy ; res:chaosSchedule [ res:scenarios _:l1 ] .
         _:l1 {rdf}first> res:NodeKill ; {rdf}rest> _:l1 ."
    ));
    assert_eq!(ps.len(), 1, "{ps:#?}");
    assert_eq!(ps[0].why, Why::BadList("it loops"));
    let ps = problems(&format!(
        "ex:p a res:ResiliencePolicy ; res:chaosSchedule [ res:scenarios _:l1 ] .
         _:l1 {rdf}first> res:NodeKill ."
    ));
    assert_eq!(
        ps[0].why,
        Why::BadList("each cell needs one rdf:first and one rdf:rest")
    );
    let ps = problems(
        "ex:p a res:ResiliencePolicy ; res:chaosSchedule [ res:scenarios ( res:NodeKill res:NodeKill ) ] .",
    );
    assert_eq!(ps[0].why, Why::DuplicateInList("node_kill".into()));
    assert_eq!(ps[0].field_text(), "chaos.weights");
}

#[test]
fn keyed_nodes_need_one_key_and_distinct_keys() {
    let ps = problems(
        r#"ex:p a res:ResiliencePolicy ;
  res:failureMode [ res:recoveryTime "PT1S" ; res:mttr "PT1S" ] ;
  res:failureMode [ res:type "node_down" ] ;
  res:failureMode [ res:type res:NodeDown ; res:detectionTime "PT1S" ] ;
  res:failureMode [ res:type res:NodeDown ; res:detectionTime "PT2S" ] ;
  res:failureMode "node_down" ;
  res:planner [ res:strategyRecoveryTime [ res:strategy res:Throttle ] ] ;
  res:chaosSchedule [ res:scenarioWeight [ res:weight 1 ] ] ."#,
    );
    let got: Vec<(String, Why)> = ps.iter().map(|p| (p.field_text(), p.why.clone())).collect();
    assert_eq!(got.len(), 7, "{got:#?}");
    assert_eq!(
        got[0],
        (
            "failure_modes".into(),
            Why::MissingKey {
                node: "failure mode",
                key: "type"
            }
        )
    );
    // Its other statements are still checked.
    assert!(matches!(&got[1].1, Why::Misplaced { predicate, .. } if predicate == "mttr"));
    assert_eq!(got[2], ("failure_modes".into(), Why::ExpectedName));
    assert_eq!(
        got[3],
        (
            "failure_modes.node_down".into(),
            Why::DuplicateKey {
                name: "node_down".into(),
                node: "failure mode"
            }
        )
    );
    assert_eq!(got[4], ("failure_modes".into(), Why::ExpectedNode));
    assert_eq!(
        got[5],
        (
            "planner.default_recovery_ms.throttle".into(),
            Why::MissingKey {
                node: "strategy recovery time",
                key: "recoveryTime"
            }
        )
    );
    assert_eq!(
        got[6],
        (
            "chaos.weights".into(),
            Why::MissingKey {
                node: "scenario weight",
                key: "scenario"
            }
        )
    );
}

#[test]
fn two_predicates_setting_one_field_conflict() {
    let ps = problems(
        "ex:p a res:ResiliencePolicy ; res:chaosSchedule [ res:scenarios res:NodeKill ;
           res:scenarioWeight [ res:scenario res:ProcessKill ; res:weight 2 ] ] .",
    );
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].why, Why::Conflict("scenarios", "scenarioWeight"));
    assert_eq!(ps[0].field_text(), "chaos.weights");
}

#[test]
fn several_problems_at_once_are_all_listed() {
    let ps = problems(
        r#"ex:p a res:ResiliencePolicy ;
  res:slo [ res:mttr "soon" ; res:availabilitySLO "x"^^xsd:decimal ; res:bogus 1 ] ;
  res:loop [ res:interval "PT0S", "PT1S" ] ;
  res:chaosSchedule [ res:enabled 1 ] ;
  res:colour "blue" .
ex:stray res:seed 1 ."#,
    );
    assert_eq!(
        fields(&ps),
        vec![
            "colour",
            "slo.bogus",
            "slo.availability",
            "slo.mttr_ms",
            "loop.interval_ms",
            "chaos.enabled",
            "seed"
        ]
    );
}

#[test]
fn size_is_bounded() {
    let big = vec![b' '; MAX_INPUT_BYTES + 1];
    let ps = import_turtle(&big).unwrap_err();
    assert_eq!(
        ps[0].why,
        Why::TooLarge {
            size: MAX_INPUT_BYTES + 1,
            max: MAX_INPUT_BYTES
        }
    );
    let mut many = String::from("@prefix ex: <https://example.org/> .\n");
    for _ in 0..=MAX_STATEMENTS / 10 {
        many.push_str("ex:a ex:b 1,2,3,4,5,6,7,8,9,10 .\n");
    }
    assert!(many.len() < MAX_INPUT_BYTES);
    let ps = import_turtle(many.as_bytes()).unwrap_err();
    assert_eq!(ps[0].why, Why::TooManyStatements(MAX_STATEMENTS));
}

#[test]
fn names_are_snake_case() {
    let cases = [
        ("NodeDown", "node_down"),
        ("SupervisorRestart", "supervisor_restart"),
        ("CPUSaturation", "cpu_saturation"),
        ("CpuSaturation", "cpu_saturation"),
        ("node_down", "node_down"),
        ("Default", "default"),
        ("Http2Backend", "http2_backend"),
        ("HTTP", "http"),
        ("A", "a"),
    ];
    for (camel, snake) in cases {
        assert_eq!(snake_case(camel), snake, "{camel}");
    }
}

#[test]
fn the_shipped_example_maps_without_problems() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../erlang/policy.ttl");
    let text = std::fs::read(path).expect("erlang/policy.ttl");
    let i = import_turtle(&text).expect("the example imports");
    assert!(i.problems.is_empty(), "{:#?}", i.problems);
    // Every section is there.
    for section in [
        "name",
        "slo",
        "failure_modes",
        "planner",
        "gates",
        "loop",
        "chaos",
    ] {
        assert!(i.policy.get(section).is_some(), "{section}");
    }
}

proptest! {
    /// Whole seconds with up to 3 decimals are exact milliseconds, whatever the form.
    #[test]
    fn durations_are_exact(secs in 0u64..1_000_000, millis in 0u64..1000) {
        let iso = format!("PT{secs}.{millis:03}S");
        let want = Number::Int((secs * 1000 + millis) as i64);
        prop_assert_eq!(duration_ms(&iso), Ok(want));
        prop_assert_eq!(duration_ms(&format!("{secs}.{millis:03}s")), Ok(want));
        prop_assert_eq!(duration_ms(&format!("{}ms", secs * 1000 + millis)), Ok(want));
    }

    /// No input makes the import panic, and problems always say why.
    #[test]
    fn arbitrary_input_never_panics(doc in "[ -~\n]{0,200}") {
        let text = format!("{PREFIXES}ex:p a res:ResiliencePolicy ; {doc}");
        match import_turtle(text.as_bytes()) {
            Ok(i) => prop_assert!(i.problems.iter().all(|p| !p.why.to_string().is_empty())),
            Err(ps) => prop_assert!(!ps.is_empty()),
        }
    }
}
