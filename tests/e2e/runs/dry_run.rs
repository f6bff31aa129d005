//! Dry runs (`dryRun` on a start): no action calls anything, scripts run for real, a manual
//! action still waits for a person, and the run is marked and kept apart from real ones.

use std::time::Duration;

use serde_json::{json, Value};

use super::{api, mapped, noop, seq};
use crate::metrics::{scrape, value};
use crate::support::{TestApp, TestService};

/// charge → wait an hour → Map "each" over the charged items, shipping each → a person's
/// approval.
fn order(svc: &TestService, charge_mapper: &str) -> Value {
    seq(
        "order",
        vec![
            mapped(api("charge", &svc.at("/charge")), charge_mapper),
            json!({"name": "cool-off", "stepType": "Action", "action": {"type": "wait", "seconds": 3600}}),
            json!({"name": "each", "stepType": "Map", "children": [api("ship", &svc.at("/ship"))]}),
            json!({"name": "approve", "stepType": "Action", "action": {"type": "manual"}}),
        ],
    )
}

/// The node of the run's tree named `name`.
fn node<'a>(tree: &'a Value, name: &str) -> &'a Value {
    fn find<'a>(n: &'a Value, name: &str) -> Option<&'a Value> {
        if n["stepTree"]["name"] == name {
            return Some(n);
        }
        n["children"].as_array()?.iter().find_map(|c| find(c, name))
    }
    find(tree, name).unwrap_or_else(|| panic!("no node {name} in {tree}"))
}

#[tokio::test]
async fn a_dry_run_calls_nothing_runs_its_scripts_and_waits_only_for_a_person() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let step =
        app.put_tree(&order(&svc, "function apply(d) { return JSON.parse(d).items; }")).await;
    let start = format!("/api/v1/runs/step/{step}");
    let given = json!({"dryRun": {"results": {"charge": {"id": "ch_1", "items": ["a", "b"]}}}});
    let run = app.post(&start, &json!({"input": "order 7", "dryRun": given["dryRun"]})).await;
    let run = run.expect(201).id();

    let tree = app
        .wait_until(run, "the approval waits", |t| node(t, "approve")["state"] == "Executing")
        .await;
    assert_eq!(tree["dryRun"], true);
    assert_eq!(
        node(&tree, "charge")["result"],
        r#"{"id":"ch_1","items":["a","b"]}"#,
        "the given result"
    );
    assert_eq!(node(&tree, "cool-off")["state"], "Complete", "a wait ends at once");
    let each = node(&tree, "each");
    assert_eq!(
        each["childCount"], 2,
        "the mapper ran for real, and the Map made an instance per item"
    );
    assert_eq!(
        each["result"], r#"["a","b"]"#,
        "no result given: each action completes with its input"
    );
    assert_eq!(node(&tree, "ship")["attempts"], 0);

    let approve = node(&tree, "approve")["id"].as_str().unwrap().to_owned();
    app.send(
        reqwest::Method::POST,
        &format!("/api/v1/runs/{run}/nodes/{approve}/complete"),
        Some("yes".into()),
    )
    .await
    .expect(200);
    assert_eq!(app.wait_run(run, "Complete").await["result"], "yes");
    svc.expect_none(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_dry_run_is_kept_apart_from_real_runs_in_lists_counts_and_metrics() {
    let app = TestApp::spawn().await;
    let step = app.put_tree(&seq("quick", vec![noop("n")])).await;
    let start = format!("/api/v1/runs/step/{step}");
    let real = app.start_run(step, json!("x")).await;
    let dry = app.post(&start, &json!({"input": "x", "dryRun": true})).await.expect(201).id();
    app.wait_run(real, "Complete").await;
    assert_eq!(app.wait_run(dry, "Complete").await["dryRun"], true);
    assert!(app.run(real).await.get("dryRun").is_none(), "a real run has no dryRun field");

    let ids = |answer: Value| -> Vec<String> {
        answer.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
    };
    let listed = app.get("/api/v1/runs").await.expect(200).body;
    assert_eq!(ids(listed), [real.to_string()], "the runs list leaves dry runs out");
    let only_dry = app.get("/api/v1/runs?dryRun=true").await.expect(200).body;
    assert_eq!(only_dry[0]["dryRun"], true);
    assert_eq!(ids(only_dry), [dry.to_string()]);
    let both = app.get(&format!("/api/v1/runs?dryRun=any&stepId={step}")).await.expect(200).body;
    assert_eq!(ids(both), [dry.to_string(), real.to_string()]);
    let bad = app.get("/api/v1/runs?dryRun=yes").await.expect(400);
    assert_eq!(bad.errors(), [r#"dryRun: expected true, false or any, found "yes""#]);

    let counts = app.get("/api/v1/runs/counts").await.expect(200).body;
    assert_eq!(counts["counts"]["Complete"], 1, "{counts}");
    let text = scrape(&app).await;
    assert_eq!(value(&text, "aetr_runs_started_total"), 1.0);
    assert_eq!(value(&text, r#"aetr_runs_finished_total{state="Complete"}"#), 1.0);
}

#[tokio::test]
async fn a_failed_dry_run_retried_on_fixed_definitions_stays_dry() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let broken = order(&svc, "function apply(d) { return JSON.parse(d).missing.items; }");
    let step = app.put_tree(&broken).await;
    let dry = json!({"results": {"charge": {"items": ["a"]}}});
    let start = format!("/api/v1/runs/step/{step}");
    let run = app.post(&start, &json!({"input": 1, "dryRun": dry})).await.expect(201).id();
    let failed = app.wait_run(run, "Error").await;
    assert!(node(&failed, "charge")["error"].as_str().unwrap().starts_with("mapper: "), "{failed}");

    let mut fixed = order(&svc, "function apply(d) { return JSON.parse(d).items; }");
    fixed["id"] = json!(step);
    app.put("/api/v1/steps", &fixed).await.expect(200);
    app.post(&format!("/api/v1/runs/{run}/retry?definition=latest"), &json!({})).await.expect(200);
    let tree = app
        .wait_until(run, "the approval waits", |t| node(t, "approve")["state"] == "Executing")
        .await;
    assert_eq!(tree["dryRun"], true, "a retry on new definitions keeps the run dry");
    assert_eq!(node(&tree, "each")["result"], r#"["a"]"#);
    svc.expect_none(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_bad_dry_run_is_refused_naming_its_field_and_makes_no_run() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let step = app.put_tree(&order(&svc, "function apply(d) { return d; }")).await;
    let start = format!("/api/v1/runs/step/{step}");
    let cases = [
        (json!({"dryRun": 5}), 400, "dryRun: expected true or {\"results\": {...}}, found 5"),
        (json!({"dryRun": {"results": []}}), 400, "dryRun.results: expected an object of results by step name, found []"),
        (json!({"dryRun": {"result": {}}}), 400, "dryRun.result: unknown field: expected results"),
        (json!({"dryRun": {"results": {"charge": null}}}), 400, "dryRun.results.charge: expected the result: a string is its text, anything else its JSON text"),
        (json!({"dryRun": {"results": {"chrage": "x"}}}), 422, "dryRun.results.chrage: the tree has no api action named \"chrage\""),
        (json!({"dryRun": {"results": {"approve": "x"}}}), 422, "dryRun.results.approve: the tree has no api action named \"approve\""),
        (json!({"dryRun": true, "notify": {"url": "http://127.0.0.1:9/hook"}}), 422, "notify: a dry run sends no webhook"),
    ];
    for (body, status, error) in cases {
        let answer = app.post(&start, &body).await;
        assert_eq!(answer.status, status, "{body}: {:?}", answer.body);
        assert_eq!(answer.errors(), [error], "{body}");
    }
    let all = app.get("/api/v1/runs?dryRun=any").await.expect(200).body;
    assert_eq!(all, json!([]), "no run was made");
    // `false` and null are real runs.
    let real = app.post(&start, &json!({"input": 1, "dryRun": false})).await.expect(201).id();
    assert!(app.run(real).await.get("dryRun").is_none());
}
