//! `GET /runs/counts` and `GET /runs/{id}/progress`: what the runs list and a run's progress
//! bar show.

use serde_json::json;
use uuid::Uuid;

use crate::support::{TestApp, TestService};

#[tokio::test]
async fn runs_are_counted_by_state_for_all_trees_or_one() {
    let app = TestApp::spawn().await;
    let service = TestService::start().await;
    let waits = app
        .put_tree(&json!({"name": "waits", "stepType": "Action",
            "action": {"type": "api", "url": service.at("/w")}}))
        .await;
    let quick = app
        .put_tree(&json!({"name": "quick", "stepType": "Action", "action": {"type": "no-op"}}))
        .await;
    let empty = app.get("/api/v1/runs/counts").await.expect(200);
    assert_eq!(
        empty.body,
        json!({"counts": {"Pending": 0, "Executing": 0, "Complete": 0, "Error": 0, "Cancelled": 0}, "total": 0})
    );
    for _ in 0..2 {
        let run = app.start_run(quick, json!(1)).await;
        app.wait_root(run, "Complete").await;
    }
    let cancelled = app.start_run(waits, json!(1)).await;
    service.next().await;
    app.post(&format!("/api/v1/runs/{cancelled}/cancel"), &json!({})).await.expect(200);
    let executing = app.start_run(waits, json!(2)).await;
    service.next().await;
    app.wait_root(executing, "Executing").await;

    let all = app.get("/api/v1/runs/counts").await.expect(200).body;
    assert_eq!(
        all["counts"],
        json!({"Pending": 0, "Executing": 1, "Complete": 2, "Error": 0, "Cancelled": 1})
    );
    assert_eq!(all["total"], 4);
    let one = app.get(&format!("/api/v1/runs/counts?stepId={waits}")).await.expect(200).body;
    assert_eq!(
        one["counts"],
        json!({"Pending": 0, "Executing": 1, "Complete": 0, "Error": 0, "Cancelled": 1})
    );
    assert_eq!(one["total"], 2);

    let bad = app.get("/api/v1/runs/counts?stepId=nope").await.expect(400);
    assert_eq!(bad.errors(), [r#"stepId: expected a step's id, found "nope""#]);
}

#[tokio::test]
async fn a_runs_progress_counts_its_actions_by_state() {
    let app = TestApp::spawn().await;
    let service = TestService::start().await;
    let action = |name: &str| json!({"name": name, "stepType": "Action", "action": {"type": "api", "url": service.at("/a")}});
    let tree = app
        .put_tree(&json!({"name": "fan", "stepType": "Parallel", "children": [
            action("a"), action("b"),
            {"name": "then", "stepType": "Sequential", "children": [action("c"), action("d")]},
        ]}))
        .await;
    let run = app.start_run(tree, json!("go")).await;
    let calls = service.take(3).await;
    app.post_raw(&calls[0].callback, "done").await.expect(200);
    // c and d are under a Sequential: if c completed, d executes; else d still waits.
    let want = json!({"nodes": 6, "actions": 4,
        "counts": {"Pending": 0, "Executing": 3, "Complete": 1, "Error": 0, "Cancelled": 0, "Skipped": 0}});
    let want_d = json!({"nodes": 6, "actions": 4,
        "counts": {"Pending": 1, "Executing": 2, "Complete": 1, "Error": 0, "Cancelled": 0, "Skipped": 0}});
    let mut now = progress(&app, run).await;
    for _ in 0..200 {
        if now == want || now == want_d {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        now = progress(&app, run).await;
    }
    assert!(now == want || now == want_d, "progress: {now}");

    app.get(&format!("/api/v1/runs/{}/progress", Uuid::now_v7())).await.expect(404);
    app.get("/api/v1/runs/nope/progress").await.expect(404);
}

async fn progress(app: &TestApp, run: Uuid) -> serde_json::Value {
    app.get(&format!("/api/v1/runs/{run}/progress")).await.expect(200).body
}
