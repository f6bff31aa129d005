//! Failure semantics end to end: retries, timeouts, operators' hands on stuck nodes, and the
//! run's history.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use super::{api, api_with, mapped, seq};
use crate::support::{Respond, TestApp, TestService};

/// A run's whole history.
async fn history(app: &TestApp, run: Uuid) -> Vec<Value> {
    let page = app.get(&format!("/api/v1/runs/{run}/events?limit=1000")).await.expect(200).body;
    page.as_array().expect("a list of events").clone()
}

/// The kinds of a history's events, each with its attempt when it has one.
fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e["attempt"].as_u64() {
            Some(n) => format!("{}#{n}", e["kind"].as_str().unwrap()),
            None => e["kind"].as_str().unwrap().to_owned(),
        })
        .collect()
}

async fn attempts(app: &TestApp, run: Uuid, node: &Value) -> Vec<Value> {
    let node = app.get(&format!("/api/v1/runs/{run}/nodes/{}", node.as_str().unwrap())).await;
    node.expect(200).body["attempts"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_service_answering_503_twice_then_202_gets_three_attempts_all_in_the_history() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/flaky", Respond::Hold);
    let retry = json!({"retry": {"maxAttempts": 3, "backoffMs": 20, "maxBackoffMs": 50}});
    let tree = api_with("flaky", &svc.at("/flaky"), retry);
    let run = app.start_run(app.put_tree(&tree).await, json!("in")).await;
    let mut tries = Vec::new();
    for status in [503, 503, 202] {
        let mut request = svc.next().await;
        request.answer(Respond::Status(status));
        tries.push(request);
    }
    let keys: Vec<_> = tries.iter().map(|r| r.header("idempotency-key").unwrap()).collect();
    assert_eq!(keys, [format!("{run}:1"), format!("{run}:2"), format!("{run}:3")]);
    assert_ne!(tries[0].callback, tries[1].callback, "each attempt has its own token");
    app.post_raw(&tries[0].callback, "from the first").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], "from the first", "a POST that failed may still have arrived");
    app.post_raw(&tries[2].callback, "from the third").await.expect(409);

    let attempts = attempts(&app, run, &done["id"]).await;
    let statuses: Vec<_> = attempts.iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["Complete", "Error", "Executing"]);
    assert_eq!(attempts[1]["httpStatus"], 503);
    assert!(attempts[1]["error"].as_str().unwrap().contains("503"), "{}", attempts[1]);

    let events = history(&app, run).await;
    assert_eq!(
        kinds(&events),
        [
            "started",
            "dispatched#1",
            "postFailed#1",
            "dispatched#2",
            "postFailed#2",
            "dispatched#3",
            "callback#1",
            "callback#3"
        ]
    );
    let failed = &events[2];
    assert_eq!(failed["detail"]["httpStatus"], 503);
    assert!(failed["detail"]["dispatchAt"].as_i64().unwrap() >= failed["at"].as_i64().unwrap());
    assert_eq!(
        failed["changes"],
        json!([{"nodeId": run, "name": "flaky", "from": "Executing", "to": "Pending"}])
    );
    assert_eq!(events[6]["changes"][0]["to"], "Complete");
    assert_eq!(events[7]["detail"]["refused"], "this attempt's callback was already taken");
    let times: Vec<i64> = events.iter().map(|e| e["at"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in order: {times:?}");

    let page = app.get(&format!("/api/v1/runs/{run}/events?limit=3")).await.expect(200);
    assert_eq!(page.body, json!(events[..3]));
    let next = format!("/api/v1/runs/{run}/events?limit=3&after={}", events[2]["seq"]);
    assert_eq!(page.header("link"), Some(format!("<{next}>; rel=\"next\"").as_str()));
    assert_eq!(app.get(&next).await.expect(200).body, json!(events[3..6]));
    let bad = app.get(&format!("/api/v1/runs/{run}/events?after=x")).await.expect(400);
    assert_eq!(bad.errors(), ["after: expected the seq of the last event seen, found \"x\""]);
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_a_400_is_not_retried() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/busy", Respond::Hold);
    // The policy's own backoff is 1 ms: only Retry-After explains a wait of a second.
    let retry = json!({"retry": {"maxAttempts": 3, "backoffMs": 1, "maxBackoffMs": 1}});
    let run = app
        .start_run(
            app.put_tree(&api_with("busy", &svc.at("/busy"), retry.clone())).await,
            json!(null),
        )
        .await;
    let mut first = svc.next().await;
    let told = Instant::now();
    first.answer(Respond::TooMany(1));
    let mut second = svc.next().await;
    assert!(told.elapsed() >= Duration::from_millis(950), "sent again after {:?}", told.elapsed());
    second.answer(Respond::Status(400));
    let failed = app.wait_run(run, "Error").await;
    assert!(failed["error"].as_str().unwrap().contains("400"), "{}", failed["error"]);
    assert_eq!(failed["attempts"], 2, "the 400 is not retried");
    svc.expect_none(Duration::from_millis(300)).await;
    let attempts = attempts(&app, run, &failed["id"]).await;
    assert_eq!(attempts[0]["httpStatus"], 429);
}

#[tokio::test]
async fn a_post_that_outlives_its_timeout_is_sent_again() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/slow", Respond::Hold);
    let options = json!({"timeoutSeconds": 1, "retry": {"maxAttempts": 2, "backoffMs": 1, "maxBackoffMs": 1}});
    let run = app
        .start_run(app.put_tree(&api_with("slow", &svc.at("/slow"), options)).await, json!(null))
        .await;
    let _never_answered = svc.next().await;
    let mut second = svc.next().await;
    second.answer(Respond::Status(202));
    app.post_raw(&second.callback, "ok").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    let attempts = attempts(&app, run, &done["id"]).await;
    assert_eq!(attempts[0]["status"], "Error");
    assert!(
        attempts[0]["error"].as_str().unwrap().contains("no answer within 1 s (timeoutSeconds)"),
        "{}",
        attempts[0]
    );
}

#[tokio::test]
async fn a_callback_timeout_with_on_timeout_retry_sends_a_new_attempt_and_refuses_the_old_token() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let options = json!({"callbackTimeoutSeconds": 1, "onTimeout": "retry",
        "retry": {"maxAttempts": 2, "backoffMs": 1, "maxBackoffMs": 1}});
    let run = app
        .start_run(app.put_tree(&api_with("quiet", &svc.at("/quiet"), options)).await, json!(null))
        .await;
    let first = svc.next().await;
    let second = svc.next().await;
    assert_eq!(second.header("idempotency-key"), Some(format!("{run}:2").as_str()));
    let refused = app.post_raw(&first.callback, "late").await.expect(409);
    assert!(refused.errors()[0].contains("superseded"), "{:?}", refused.errors());
    app.post_raw(&second.callback, "in time").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], "in time");
    let attempts = attempts(&app, run, &done["id"]).await;
    assert_eq!(attempts[0]["status"], "TimedOut");
    assert!(kinds(&history(&app, run).await).contains(&"timedOut#1".to_owned()));
}

/// `Sequential[a, b]` with a started and waiting for its callback: the run, a's node id, and
/// the request a got.
async fn stuck_on_a(app: &TestApp, svc: &TestService) -> (Uuid, String, crate::support::Received) {
    let tree = seq("s", vec![api("a", &svc.at("/a")), api("b", &svc.at("/b"))]);
    let run = app.start_run(app.put_tree(&tree).await, json!("in")).await;
    let request = svc.next().await;
    let tree = app.run(run).await;
    (run, tree["children"][0]["id"].as_str().unwrap().to_owned(), request)
}

#[tokio::test]
async fn an_operator_completes_a_stuck_node_by_hand_and_the_run_goes_on() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let (run, a, request) = stuck_on_a(&app, &svc).await;
    let path = |action: &str, node: &str| format!("/api/v1/runs/{run}/nodes/{node}/{action}");
    let b = app.run(run).await["children"][1]["id"].as_str().unwrap().to_owned();
    let refused = app.send(reqwest::Method::POST, &path("complete", &b), None).await.expect(409);
    assert!(refused.errors()[0].contains("Pending or Executing"), "{:?}", refused.errors());
    app.send(reqwest::Method::POST, &path("complete", &Uuid::nil().to_string()), None)
        .await
        .expect(404);
    app.send(reqwest::Method::POST, &path("complete", &run.to_string()), None).await.expect(409);

    let node = app.send(reqwest::Method::POST, &path("complete", &a), Some("by hand".into())).await;
    let node = node.expect(200).body;
    assert_eq!(node["state"], "Complete");
    assert_eq!(node["result"], "by hand");
    assert_eq!(node["attempts"][0]["status"], "Cancelled", "the attempt was superseded");
    let next = svc.next().await;
    assert_eq!(next.path, "/b");
    assert_eq!(next.body, "by hand");
    let late = app.post_raw(&request.callback, "late").await.expect(409);
    assert!(late.errors()[0].contains("superseded"), "{:?}", late.errors());
    app.post_raw(&next.callback, "done").await.expect(200);
    app.wait_run(run, "Complete").await;
    let kinds = kinds(&history(&app, run).await);
    assert_eq!(kinds[..4], ["started", "dispatched#1", "completedByHand", "dispatched#1"]);
    assert!(kinds.contains(&"callback#1".to_owned()), "{kinds:?}");
}

#[tokio::test]
async fn an_operator_fails_or_redispatches_a_stuck_node() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let (run, a, first) = stuck_on_a(&app, &svc).await;
    let path = |action: &str| format!("/api/v1/runs/{run}/nodes/{a}/{action}");
    let node = app.send(reqwest::Method::POST, &path("redispatch"), None).await.expect(200).body;
    let statuses: Vec<_> =
        node["attempts"].as_array().unwrap().iter().map(|a| a["status"].clone()).collect();
    assert_eq!(statuses, ["Cancelled", "Executing"], "{node}");
    let second = svc.next().await;
    assert_eq!(second.header("idempotency-key"), Some(format!("{a}:2").as_str()));
    assert_eq!(second.body, "in");
    app.post_raw(&first.callback, "old").await.expect(409);

    app.send(reqwest::Method::POST, &path("fail"), Some("the service lost it".into()))
        .await
        .expect(200);
    let failed = app.wait_run(run, "Error").await;
    assert_eq!(failed["error"], "the service lost it");
    app.post_raw(&second.callback, "late").await.expect(409);
    let refused = app.send(reqwest::Method::POST, &path("redispatch"), None).await.expect(409);
    assert!(refused.errors()[0].contains("retry the run"), "{:?}", refused.errors());
    let kinds = kinds(&history(&app, run).await);
    assert!(
        kinds.ends_with(&[
            "redispatchedByHand".into(),
            "dispatched#2".into(),
            "callback#1".into(),
            "failedByHand".into(),
            "callback#2".into()
        ]),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_redrive_on_the_latest_definition_reruns_only_what_changed_or_failed() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/c-old", Respond::Status(400));
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
    let tree = |c_path: &str| {
        let mut s = seq(
            "s",
            vec![api("a", &svc.at("/a")), api("b", &svc.at("/b")), api("c", &svc.at(c_path))],
        );
        s["id"] = json!(ids[0]);
        for (k, id) in ids[1..].iter().enumerate() {
            s["children"][k]["id"] = json!(id);
        }
        s
    };
    let step = app.put_tree(&tree("/c-old")).await;
    let run = app.start_run(step, json!("in")).await;
    for result in ["ra", "rb"] {
        let request = svc.next().await;
        app.post_raw(&request.callback, result).await.expect(200);
    }
    let old_c = svc.next().await;
    assert_eq!(old_c.path, "/c-old");
    app.wait_run(run, "Error").await;

    let retry = format!("/api/v1/runs/{run}/retry");
    app.post(&format!("{retry}?definition=newest"), &json!({})).await.expect(400);
    app.put_tree(&tree("/c-new")).await;
    let redriven = app.post(&format!("{retry}?definition=latest"), &json!({})).await.expect(200);
    let nodes = app.run(run).await;
    let id_of = |k: usize| nodes["children"][k]["id"].clone();
    assert_eq!(redriven.body["state"], "Executing");
    assert_eq!(redriven.body["rerun"], json!([nodes["id"], id_of(2)]));

    let new_c = svc.next().await;
    assert_eq!(new_c.path, "/c-new", "a and b are not sent again");
    assert_eq!(new_c.body, "rb", "c gets b's kept result");
    app.post_raw(&old_c.callback, "old").await.expect(409);
    app.post_raw(&new_c.callback, "rc").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], "rc");
    assert_eq!(done["children"][0]["result"], "ra");
    let c_attempts = attempts(&app, run, &id_of(2)).await;
    let statuses: Vec<_> = c_attempts.iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["Error", "Complete"], "c keeps its first attempt's record");
    svc.expect_none(Duration::from_millis(300)).await;
    let events = history(&app, run).await;
    let retried = events.iter().find(|e| e["kind"] == "retried").expect("a retried event");
    assert_eq!(retried["detail"]["definition"], "latest");
    app.post(&format!("{retry}?definition=latest"), &json!({})).await.expect(409);
}

#[tokio::test]
async fn deadlines_and_backoffs_outlive_a_killed_server() {
    let mut app = TestApp::spawn().await;
    let svc = TestService::start().await;
    // A 429's Retry-After makes the backoff's length certain.
    svc.respond("/flaky", Respond::TooMany(2));
    let quiet = api_with("quiet", &svc.at("/quiet"), json!({"callbackTimeoutSeconds": 2}));
    let flaky = api_with("flaky", &svc.at("/flaky"), json!({"retry": {"maxAttempts": 2}}));
    let waits = app.start_run(app.put_tree(&quiet).await, json!(null)).await;
    svc.next().await;
    let backs_off = app.start_run(app.put_tree(&flaky).await, json!(null)).await;
    svc.next().await;
    svc.respond("/flaky", Respond::Status(202));
    app.wait_until(backs_off, "the backoff", |run| run["state"] == "Pending").await;

    app.crash_and_restart();
    let failed = app.wait_run(waits, "Error").await;
    assert_eq!(failed["error"], "no callback within 2 s (attempt 1)");
    let second = svc.next().await;
    assert_eq!(second.path, "/flaky");
    assert_eq!(second.header("idempotency-key"), Some(format!("{backs_off}:2").as_str()));
    app.post_raw(&second.callback, "ok").await.expect(200);
    app.wait_run(backs_off, "Complete").await;
}

#[tokio::test]
async fn a_fixed_mapper_runs_again_alone_on_the_latest_definition() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let tree = |js: &str| {
        let mut a = mapped(api("a", &svc.at("/a")), js);
        a["id"] = json!(ids[1]);
        let mut b = api("b", &svc.at("/b"));
        b["id"] = json!(ids[2]);
        let mut s = seq("s", vec![a, b]);
        s["id"] = json!(ids[0]);
        s
    };
    let step = app.put_tree(&tree("function apply(d) { return JSON.parse(d).total; }")).await;
    let run = app.start_run(step, json!(null)).await;
    let a = svc.next().await;
    app.post_raw(&a.callback, "not json").await.expect(200);
    let failed = app.wait_run(run, "Error").await;
    assert!(failed["error"].as_str().unwrap().starts_with("mapper: "), "{}", failed["error"]);

    // The same snapshot runs the same mapper on the same result: it fails again.
    app.post(&format!("/api/v1/runs/{run}/retry"), &json!({})).await.expect(200);
    app.wait_run(run, "Error").await;

    app.put_tree(&tree("function apply(d) { return d.toUpperCase(); }")).await;
    let retry = format!("/api/v1/runs/{run}/retry?definition=latest");
    let redriven = app.post(&retry, &json!({})).await.expect(200).body;
    let children = &failed["children"];
    assert_eq!(
        redriven["rerun"],
        json!([run, children[0]["id"], children[1]["id"]]),
        "s and b, which never ran, and a, whose mapper runs again"
    );
    let b = svc.next().await;
    assert_eq!(b.path, "/b", "a is not sent again");
    assert_eq!(b.body, "NOT JSON");
    app.post_raw(&b.callback, "done").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["children"][0]["attempts"], 1);
}

/// A log line written while a request is handled carries the request's id and the run it is
/// about, in its spans, so that it can be followed back to the request (and the request to its
/// lines).
#[tokio::test]
async fn a_log_line_names_its_request_and_its_run() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/a", Respond::Status(400));
    let step = app.put_tree(&seq("s", vec![api("a", &svc.at("/a"))])).await;
    let run = app.start_run(step, json!("in")).await;
    app.wait_run(run, "Error").await;
    let retry = format!("/api/v1/runs/{run}/retry?definition=latest");
    let redriven = app.post(&retry, &json!({})).await.expect(200);
    let request_id = redriven.header("x-request-id").expect("a request id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let log = app.server().log();
        let found = log.lines().find(|l| l.contains("run redriven on the latest definitions"));
        if let Some(line) = found {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no line about the redrive in the log:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(line.contains(&format!("request{{request_id={request_id}}}")), "{line}");
    assert!(line.contains(&format!("retry{{run={run}}}")), "the handler's span: {line}");
}
