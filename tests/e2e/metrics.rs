//! `GET /metrics` (design.md, "Operations"): the values after known runs, in the Prometheus
//! text format, with no run id or URL in any label.

use serde_json::json;

use crate::runs::{api, api_with, seq};
use crate::support::{Respond, TestApp, TestService};

/// The value of the series `name` (its whole text before the value, labels included).
pub(crate) fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

pub(crate) async fn scrape(app: &TestApp) -> String {
    let answer = app.get("/metrics").await.expect(200);
    let kind = answer.header("content-type").unwrap_or_default().to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    answer.body.as_str().expect("text, not JSON").to_owned()
}

#[tokio::test]
async fn metrics_count_runs_posts_and_callbacks_after_known_runs() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/down", Respond::Status(500));
    let ok = app.put_tree(&seq("s", vec![api("ok", &svc.at("/ok"))])).await;
    let down = app
        .put_tree(&api_with("down", &svc.at("/down"), json!({"retry": {"maxAttempts": 1}})))
        .await;
    let manual = json!({"name": "m", "stepType": "Action", "action": {"type": "manual"}});
    let held = app.put_tree(&manual).await;

    let complete = app.start_run(ok, json!("x")).await;
    let call = svc.next().await;
    app.post_raw(&call.callback, "fine").await.expect(200);
    app.post_raw(&call.callback, "again").await.expect(409);
    app.wait_root(complete, "Complete").await;
    let failed = app.start_run(down, json!("x")).await;
    app.wait_root(failed, "Error").await;
    assert_eq!(svc.next().await.path, "/down");
    let cancelled = app.start_run(held, json!("x")).await;
    app.post(&format!("/api/v1/runs/{cancelled}/cancel"), &json!({})).await.expect(200);
    let waiting = app.start_run(held, json!("x")).await;
    app.wait_until(waiting, "the manual action waits", |t| t["state"] == "Executing").await;

    // A run of no-op actions ends as it starts: it counts as started and finished too.
    let instant = json!({"name": "n", "stepType": "Action", "action": {"type": "no-op"}});
    let instant = app.start_run(app.put_tree(&instant).await, json!("x")).await;
    app.wait_root(instant, "Complete").await;

    let text = scrape(&app).await;
    assert_eq!(value(&text, "aetr_runs_started_total"), 5.0);
    assert_eq!(value(&text, r#"aetr_runs_finished_total{state="Complete"}"#), 2.0);
    assert_eq!(value(&text, r#"aetr_runs_finished_total{state="Error"}"#), 1.0);
    assert_eq!(value(&text, r#"aetr_runs_finished_total{state="Cancelled"}"#), 1.0);
    assert_eq!(value(&text, "aetr_actions_dispatched_total"), 2.0);
    assert_eq!(value(&text, r#"aetr_post_outcomes_total{class="2xx"}"#), 1.0);
    assert_eq!(value(&text, r#"aetr_post_outcomes_total{class="5xx"}"#), 1.0);
    assert_eq!(value(&text, r#"aetr_callbacks_total{answer="taken"}"#), 1.0);
    assert_eq!(value(&text, r#"aetr_callbacks_total{answer="repeat"}"#), 1.0);
    assert_eq!(value(&text, "aetr_post_seconds_count"), 2.0);
    assert_eq!(value(&text, "aetr_callback_to_dispatch_seconds_count"), 0.0, "no callback led on");
    assert!(value(&text, "aetr_group_commit_runs_count") >= 5.0);
    // The manual action waits with the server's default deadline: Executing, with a deadline.
    assert_eq!(value(&text, r#"aetr_nodes{state="Executing"}"#), 1.0);
    assert_eq!(value(&text, r#"aetr_runs_in_flight{state="Executing"}"#), 1.0);
    assert!(value(&text, "aetr_db_pool_connections") >= 1.0);
    assert!(text.ends_with("# EOF\n"), "the OpenMetrics end marker");
    for id in [complete, failed, cancelled, waiting, instant] {
        assert!(!text.contains(&id.to_string()), "no run id in a label");
    }
    assert!(!text.contains("127.0.0.1"), "no URL in a label");

    // A callback that makes the next action due is timed to that dispatch.
    let two =
        app.put_tree(&seq("two", vec![api("a", &svc.at("/a")), api("b", &svc.at("/b"))])).await;
    let run = app.start_run(two, json!("x")).await;
    app.post_raw(&svc.next().await.callback, "a done").await.expect(200);
    app.post_raw(&svc.next().await.callback, "b done").await.expect(200);
    app.wait_root(run, "Complete").await;
    let text = scrape(&app).await;
    assert_eq!(value(&text, "aetr_callback_to_dispatch_seconds_count"), 1.0);
    let seconds = value(&text, "aetr_callback_to_dispatch_seconds_sum");
    assert!(seconds > 0.0 && seconds < 5.0, "{seconds}");
}

#[tokio::test]
async fn metrics_are_open_unless_a_token_is_required_for_them() {
    let app = TestApp::spawn_with(&[("AETR_API_TOKENS", "s3cret")]).await;
    app.get("/metrics").await.expect(200);
    app.get("/api/v1/steps").await.expect(401);

    let guarded = TestApp::spawn_with(&[
        ("AETR_API_TOKENS", "s3cret"),
        ("AETR_METRICS_REQUIRE_TOKEN", "true"),
    ])
    .await;
    guarded.get("/metrics").await.expect(401);
    let mut with_token = guarded;
    with_token.use_token("s3cret");
    with_token.get("/metrics").await.expect(200);
}

#[tokio::test]
async fn metrics_show_each_pools_slots_used_and_waiting() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    app.put("/api/v1/pools/narrow", &json!({"slots": 1})).await.expect(201);
    let pooled =
        |name: &str| api_with(name, &svc.at(&format!("/{name}")), json!({"pool": "narrow"}));
    let step = app.put_tree(&crate::runs::par("two", vec![pooled("a"), pooled("b")])).await;
    app.start_run(step, json!("x")).await;
    let first = svc.take(1).await;
    let text = scrape(&app).await;
    assert_eq!(value(&text, r#"aetr_pool_slots{pool="narrow"}"#), 1.0);
    assert_eq!(value(&text, r#"aetr_pool_used{pool="narrow"}"#), 1.0);
    assert_eq!(value(&text, r#"aetr_pool_waiting{pool="narrow"}"#), 1.0);
    app.post_raw(&first[0].callback, "ok").await.expect(200);
    let second = svc.take(1).await;
    app.post_raw(&second[0].callback, "ok").await.expect(200);
}
