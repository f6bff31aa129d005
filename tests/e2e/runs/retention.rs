//! Deleting runs: one finished run by hand (`DELETE /runs/{id}`), and old ones by
//! `AETR_RETENTION_DAYS`.

use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use super::{api, noop, par, seq};
use crate::support::{TestApp, TestService};

/// How many rows of each kind a run still has: nodes, attempts, history.
async fn rows_of(app: &TestApp, run: Uuid) -> (i64, i64, i64) {
    let db = app.db().await;
    let count = |table: &'static str| {
        let db = &db;
        async move {
            let sql = format!("SELECT count(*) FROM {table} WHERE run_id = $1");
            db.query_one(&sql, &[&run]).await.unwrap().get::<_, i64>(0)
        }
    };
    (count("run_nodes").await, count("attempts").await, count("run_events").await)
}

#[tokio::test]
async fn a_finished_run_is_deleted_with_its_rows_and_one_in_flight_is_kept() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let step =
        app.put_tree(&par("p", vec![api("a", &svc.at("/a")), api("b", &svc.at("/b"))])).await;
    let run = app.start_run(step, json!("x")).await;
    let calls = svc.take(2).await;

    // In flight: kept, with a 409 that says why.
    let refused = app.delete(&format!("/api/v1/runs/{run}")).await.expect(409);
    assert!(refused.errors()[0].contains("still in flight"), "{:?}", refused.errors());
    app.get(&format!("/api/v1/runs/{run}")).await.expect(200);

    // a fails: the run is in Error, with b still out.
    let a = calls.iter().find(|c| c.path == "/a").unwrap();
    let b = calls.iter().find(|c| c.path == "/b").unwrap();
    app.post_raw(&a.fail_url(), "broken").await.expect(200);
    app.wait_root(run, "Error").await;
    let (nodes, attempts, events) = rows_of(&app, run).await;
    assert!(nodes == 3 && attempts == 2 && events > 0, "{nodes} {attempts} {events}");

    app.delete(&format!("/api/v1/runs/{run}")).await.expect(204);
    assert_eq!(rows_of(&app, run).await, (0, 0, 0), "nodes, attempts and history are gone");
    app.get(&format!("/api/v1/runs/{run}")).await.expect(404);
    app.get(&format!("/api/v1/runs/{run}/events")).await.expect(404);
    app.delete(&format!("/api/v1/runs/{run}")).await.expect(404);
    app.delete("/api/v1/runs/not-a-run").await.expect(404);
    // b's late callback finds no run: 404, not a server error.
    app.post_raw(&b.callback, "late").await.expect(404);
}

#[tokio::test]
async fn retention_deletes_runs_that_finished_before_it_and_keeps_the_rest() {
    let mut app = TestApp::spawn_with(&[("AETR_RETENTION_DAYS", "2")]).await;
    let svc = TestService::start().await;
    let done = app.put_tree(&seq("s", vec![noop("a"), noop("b")])).await;
    let waits = app.put_tree(&api("w", &svc.at("/w"))).await;
    let mut old = Vec::new();
    for i in 0..5 {
        old.push(app.start_run(done, json!(i)).await);
    }
    let recent = app.start_run(done, json!("recent")).await;
    let in_flight = app.start_run(waits, json!("still going")).await;
    svc.next().await;
    for run in old.iter().chain([&recent]) {
        app.wait_root(*run, "Complete").await;
    }
    let db = app.db().await;
    db.execute(
        "UPDATE runs SET completed_at = now() - interval '3 days',
                         created_at = now() - interval '3 days' WHERE id = ANY($1)",
        &[&old],
    )
    .await
    .unwrap();
    // A run in flight is never deleted, however old.
    db.execute(
        "UPDATE runs SET created_at = now() - interval '9 days' WHERE id = $1",
        &[&in_flight],
    )
    .await
    .unwrap();

    // The server sweeps a second after it starts, then every minute: start one now.
    app.stop_and_restart("TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    for run in &old {
        while app.get(&format!("/api/v1/runs/{run}")).await.status != 404 {
            assert!(Instant::now() < deadline, "run {run} was not deleted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(rows_of(&app, *run).await, (0, 0, 0));
    }
    app.get(&format!("/api/v1/runs/{recent}")).await.expect(200);
    app.get(&format!("/api/v1/runs/{in_flight}")).await.expect(200);
    assert!(app.server().log().contains("deleted runs that finished before the retention period"));
}
