//! Starting a run once per idempotency key, cancelling a run, and retrying a failed one.

use std::time::Duration;

use serde_json::json;

use super::{a_beside_b_then_c, api, seq};
use crate::support::{TestApp, TestService};

#[tokio::test]
async fn an_idempotency_key_starts_one_run() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let step = app.put_tree(&api("a", &svc.at("/a"))).await;
    let other = app.put_tree(&api("b", &svc.at("/b"))).await;
    let body = json!({"input": "x", "idempotencyKey": "order-17"});
    let first = app.post(&format!("/api/v1/runs/step/{step}"), &body).await.expect(201);
    let location = format!("/api/v1/runs/{}", first.id());
    assert_eq!(first.header("location"), Some(location.as_str()));
    let again = app.post(&format!("/api/v1/runs/step/{step}"), &body).await.expect(200);
    assert_eq!(again.id(), first.id());
    assert_eq!(again.header("location"), Some(location.as_str()));
    let conflict = app.post(&format!("/api/v1/runs/step/{other}"), &body).await.expect(409);
    assert!(conflict.errors()[0].contains("order-17"), "{:?}", conflict.body);
    svc.next().await;
    svc.expect_none(Duration::from_millis(300)).await;

    // Bad bodies name their field.
    let bad = app
        .post(
            &format!("/api/v1/runs/step/{step}"),
            &json!({"input": 1, "idempotencyKey": 5, "extra": 1}),
        )
        .await
        .expect(400);
    assert_eq!(bad.errors().len(), 2, "{:?}", bad.body);
    app.post(&format!("/api/v1/runs/step/{}", uuid::Uuid::now_v7()), &json!({})).await.expect(404);
    app.post("/api/v1/runs/step/not-a-uuid", &json!({})).await.expect(404);
    let empty = app.send(reqwest::Method::POST, &format!("/api/v1/runs/step/{step}"), None).await;
    assert_eq!(empty.status, 201, "an empty body is a run with no input");
}

#[tokio::test]
async fn cancel_stops_a_run_and_its_callbacks_are_refused() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = a_beside_b_then_c(&svc);
    let run = app.start_run(app.put_tree(&tree).await, json!(null)).await;
    let got = svc.take(2).await;
    let cancelled = app.post(&format!("/api/v1/runs/{run}/cancel"), &json!({})).await.expect(200);
    assert_eq!(cancelled.body, json!({"id": run, "state": "Cancelled"}));
    let tree = app.run(run).await;
    assert_eq!(tree["state"], "Cancelled");
    assert_eq!(tree["counts"], json!({"Cancelled": 2}));
    assert_eq!(tree["children"][1]["children"][1]["state"], "Cancelled", "never started");
    for r in &got {
        app.post_raw(&r.callback, "late").await.expect(409);
    }
    app.post(&format!("/api/v1/runs/{run}/cancel"), &json!({})).await.expect(409);
    app.post(&format!("/api/v1/runs/{run}/retry"), &json!({})).await.expect(409);
    svc.expect_none(Duration::from_millis(300)).await;
    app.post(&format!("/api/v1/runs/{}/cancel", uuid::Uuid::now_v7()), &json!({}))
        .await
        .expect(404);
}

#[tokio::test]
async fn retry_resumes_a_failed_run_from_the_failed_node_with_a_new_attempt() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = seq("s", vec![api("a", &svc.at("/a")), api("b", &svc.at("/b"))]);
    let run = app.start_run(app.put_tree(&tree).await, json!("in")).await;
    let a = svc.next().await;
    app.post_raw(&a.callback, "A").await.expect(200);
    let b = svc.next().await;
    app.post_raw(&b.fail_url(), "broken").await.expect(200);
    app.wait_run(run, "Error").await;

    let resumed = app.post(&format!("/api/v1/runs/{run}/retry"), &json!({})).await.expect(200);
    assert_eq!(resumed.body["state"], "Executing");
    let b2 = svc.next().await;
    assert_eq!(b2.path, "/b", "only the failed node runs again");
    assert_eq!(b2.body, "A");
    assert!(b2.header("idempotency-key").unwrap().ends_with(":2"));
    app.post_raw(&b.callback, "old").await.expect(409);
    app.post_raw(&b2.callback, "B").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], "B");
    assert_eq!(done["children"][1]["attempts"], 2);
    assert_eq!(done.get("failedNode"), None);
    app.post(&format!("/api/v1/runs/{run}/retry"), &json!({})).await.expect(409);
}
