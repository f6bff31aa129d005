//! Schedules against the real binary (design.md, "Schedules"): cron expressions and time zones
//! checked when saved; each tick starts exactly one run across two servers on one database;
//! after downtime only the latest missed tick runs; `overlap: "skip"`; pausing; and the runs
//! listed by schedule.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::runs::{api, noop};
use crate::support::{TestApp, TestService};

async fn create(app: &TestApp, body: Value) -> Uuid {
    app.post("/api/v1/schedules", &body).await.expect(201).id()
}

/// The ticks (epoch ms) whose runs a schedule started, from the runs' idempotency keys, in
/// order, each key checked to be the schedule's.
async fn ticks(app: &TestApp, schedule: Uuid) -> Vec<i64> {
    let db = app.db().await;
    let rows = db
        .query("SELECT idempotency_key FROM runs WHERE schedule_id = $1", &[&schedule])
        .await
        .expect("the runs");
    let prefix = format!("schedule:{schedule}:");
    let mut ticks: Vec<i64> = rows
        .iter()
        .map(|r| {
            let key: String = r.get(0);
            key.strip_prefix(&prefix)
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("{key}"))
        })
        .collect();
    ticks.sort_unstable();
    ticks
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as i64
}

#[tokio::test]
async fn a_schedule_is_checked_when_saved_and_can_be_read_paused_and_deleted() {
    let app = TestApp::spawn().await;
    let step = app.put_tree(&noop("nightly")).await;
    let app = &app;
    let bad = |body: Value| async move { app.post("/api/v1/schedules", &body).await };

    let answer = bad(json!({"stepId": step, "cron": "61 * * * *"})).await;
    assert_eq!(answer.status, 422, "{:?}", answer.body);
    assert!(answer.errors()[0].starts_with("cron: "), "{:?}", answer.errors());
    let answer = bad(json!({"stepId": step, "cron": "* * *"})).await;
    assert_eq!(answer.errors(), ["cron: expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found 3"]);
    let answer =
        bad(json!({"stepId": step, "cron": "0 9 * * *", "timezone": "Mars/Olympus"})).await;
    assert_eq!(
        (answer.status, answer.errors()),
        (422, vec![r#"timezone: "Mars/Olympus" is not an IANA time zone name"#.to_owned()])
    );
    let answer = bad(json!({"stepId": Uuid::now_v7(), "cron": "0 9 * * *"})).await;
    assert_eq!(answer.status, 422);
    assert!(answer.errors()[0].starts_with("stepId: no step with id"), "{:?}", answer.errors());
    let answer = bad(json!({"cron": 5, "overlap": "sometimes", "colour": 1})).await;
    assert_eq!(answer.status, 400);
    let mut errors = answer.errors();
    errors.sort();
    assert_eq!(
        errors,
        [
            "colour: unknown field; expected one of stepId, cron, timezone, input, overlap, enabled",
            "cron: expected a string",
            r#"overlap: expected "allow" or "skip", found "sometimes""#,
            "stepId: required",
        ]
    );
    // An input that the step's schema refuses is refused now, not at every tick.
    let typed = app
        .put_tree(&json!({"name": "typed", "stepType": "Action", "action": {"type": "no-op"},
            "inputSchema": {"type": "object", "required": ["day"]}}))
        .await;
    let answer = bad(json!({"stepId": typed, "cron": "0 9 * * *", "input": {}})).await;
    assert_eq!(
        (answer.status, answer.errors()),
        (422, vec![r#"input: "day" is a required property"#.to_owned()])
    );

    let before = now_ms();
    let id = create(app, json!({"stepId": step, "cron": "0 9 * * MON-FRI", "timezone": "Europe/Berlin", "input": {"n": 1}})).await;
    let shown = app.get(&format!("/api/v1/schedules/{id}")).await.expect(200).body;
    assert_eq!(shown["cron"], "0 9 * * MON-FRI");
    assert_eq!(
        (shown["timezone"].as_str(), shown["overlap"].as_str()),
        (Some("Europe/Berlin"), Some("allow"))
    );
    assert_eq!(shown["input"], json!({"n": 1}));
    assert_eq!(shown["enabled"], true);
    let next = shown["nextFireAt"].as_i64().expect("a next tick");
    assert!(next > before && next - before <= 4 * 24 * 3_600_000, "{shown:#}");
    assert_eq!(shown["lastRunId"], Value::Null);
    let list = app.get(&format!("/api/v1/schedules?stepId={step}")).await.expect(200).body;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list:#}");

    // Paused: no next tick. The step cannot be deleted while a schedule runs it.
    let paused = app
        .put(
            &format!("/api/v1/schedules/{id}"),
            &json!({"stepId": step, "cron": "0 9 * * MON-FRI", "enabled": false}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        (paused["enabled"].as_bool(), paused["nextFireAt"].clone()),
        (Some(false), Value::Null)
    );
    assert_eq!(paused["timezone"], "UTC", "a PUT replaces the whole definition");
    let refused = app.delete(&format!("/api/v1/steps/{step}")).await.expect(409);
    assert!(
        refused.errors()[0].contains(&format!("is run by schedule(s) {id}")),
        "{:?}",
        refused.errors()
    );
    app.delete(&format!("/api/v1/schedules/{id}")).await.expect(204);
    app.get(&format!("/api/v1/schedules/{id}")).await.expect(404);
    app.delete(&format!("/api/v1/steps/{step}")).await.expect(204);
}

#[tokio::test]
async fn each_tick_starts_exactly_one_run_across_two_servers() {
    let app = TestApp::spawn().await;
    let replica = app.replica();
    let step = app.put_tree(&noop("tick")).await;
    let id = create(&app, json!({"stepId": step, "cron": "*/2 * * * * *", "input": "tock"})).await;
    tokio::time::sleep(Duration::from_millis(9_000)).await;
    app.put(
        &format!("/api/v1/schedules/{id}"),
        &json!({"stepId": step, "cron": "*/2 * * * * *", "enabled": false}),
    )
    .await
    .expect(200);
    let ticks = ticks(&app, id).await;
    assert!(ticks.len() >= 3, "a run every 2 s for 9 s: {ticks:?}");
    // One run per tick (a tick's key is unique), on the schedule's ticks. A server slower
    // than a tick (a busy CI machine) starts only the latest one, as after an outage.
    for pair in ticks.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap > 0 && gap % 2_000 == 0, "runs on the 2-second ticks: {ticks:?}");
    }
    // Each run was fired by one of the servers, and the runs are listed by schedule.
    let logs = [app.server().log(), replica.log()];
    let fired: Vec<usize> = logs.iter().map(|l| l.matches("schedule fired").count()).collect();
    assert_eq!(fired.iter().sum::<usize>(), ticks.len(), "{fired:?}");
    let runs = app.get(&format!("/api/v1/runs?scheduleId={id}")).await.expect(200).body;
    let runs = runs.as_array().expect("a page").clone();
    assert_eq!(runs.len(), ticks.len());
    assert!(
        runs.iter().all(|r| r["scheduleId"] == id.to_string() && r["input"] == "tock"),
        "{runs:#?}"
    );
    let shown = app.get(&format!("/api/v1/schedules/{id}")).await.expect(200).body;
    assert_eq!(shown["lastRunId"], runs[0]["id"], "the newest run");
    assert_eq!(shown["lastFireAt"], ticks[ticks.len() - 1]);
    app.get("/api/v1/runs?scheduleId=nope").await.expect(400);
}

#[tokio::test]
async fn after_downtime_only_the_latest_missed_tick_runs() {
    let mut app = TestApp::spawn().await;
    let step = app.put_tree(&noop("every-second")).await;
    let id = create(&app, json!({"stepId": step, "cron": "* * * * * *"})).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    app.stop("TERM");
    let before = ticks(&app, id).await;
    assert!(!before.is_empty(), "it fired before the outage");
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let restarting = now_ms();
    app.start_again();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let after: Vec<i64> =
        ticks(&app, id).await.into_iter().filter(|t| t > before.last().unwrap()).collect();
    assert!(!after.is_empty(), "it fires again after the outage");
    // The first tick after the outage is the latest one that had come when a server looked:
    // the 3 or 4 ticks missed before it were not started.
    assert!(
        after[0] >= restarting - 1_000,
        "missed ticks were started: {after:?}, restarted at {restarting}"
    );
    for pair in after.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap > 0 && gap % 1_000 == 0, "{after:?}");
    }
}

#[tokio::test]
async fn overlap_skip_skips_ticks_while_the_last_run_is_going() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let step = app.put_tree(&api("slow", &svc.at("/slow"))).await;
    let id = create(&app, json!({"stepId": step, "cron": "* * * * * *", "overlap": "skip"})).await;
    let first = svc.next().await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(ticks(&app, id).await.len(), 1, "ticks were skipped while the run went on");
    svc.expect_none(Duration::from_millis(10)).await;
    app.post_raw(&first.callback, "done").await.expect(200);
    let second = svc.next_within(Duration::from_secs(5)).await.expect("the next tick starts a run");
    assert_ne!(second.callback, first.callback);
    assert_eq!(ticks(&app, id).await.len(), 2);
}
