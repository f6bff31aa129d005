//! The contract with services: the exact request a service gets, sync actions, and POSTs that
//! fail.

use serde_json::json;

use super::{api, api_with, par, seq};
use crate::support::{Respond, TestApp, TestService};

#[tokio::test]
async fn a_service_gets_exactly_the_request_of_the_contract() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = seq(
        "s",
        vec![
            api_with(
                "hook",
                &svc.at("/hook?b=1&a=%2F+2"),
                json!({"headers": {"X-Custom": "yes", "Content-Type": "application/vnd.custom+json"}}),
            ),
            api("text", &svc.at("/text")),
            api("empty", &svc.at("/empty")),
        ],
    );
    let run = app.start_run(app.put_tree(&tree).await, json!({"k": [1, 2]})).await;

    let hook = svc.next().await;
    assert_eq!(hook.method, "POST");
    assert_eq!(hook.path, "/hook");
    let (own, aetr) =
        hook.query.split_once("&aetr=").expect("aetr comes after the URL's own query");
    assert_eq!(own, "b=1&a=%2F+2", "the URL's own query is kept as it is");
    assert!(!aetr.contains([':', '/', '?', '=', '&']), "one percent-encoded value: {aetr}");
    let callback_base = format!("{}/api/v1/runs/complete?token=", app.server().base_url);
    assert!(hook.callback.starts_with(&callback_base), "{}", hook.callback);
    assert_eq!(hook.body, r#"{"k":[1,2]}"#);
    assert_eq!(
        hook.header("content-type"),
        Some("application/vnd.custom+json"),
        "the action's headers win"
    );
    assert_eq!(hook.header("x-custom"), Some("yes"));
    let tree = app.run(run).await;
    let node = tree["children"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(hook.header("idempotency-key"), Some(format!("{node}:1").as_str()));
    assert_eq!(hook.header("x-aetr-run"), Some(run.to_string().as_str()));
    assert_eq!(tree["children"][0]["root"], run.to_string());
    assert_eq!(tree["id"], run.to_string(), "the root node's id is the run's");
    app.post_raw(&hook.callback, "not json").await.expect(200);

    let text = svc.next().await;
    assert_eq!(text.query.split_once('=').map(|q| q.0), Some("aetr"), "{}", text.query);
    assert_eq!(text.body, "not json");
    assert_eq!(text.header("content-type"), Some("text/plain; charset=utf-8"));
    app.post_raw(&text.callback, "").await.expect(200);

    let empty = svc.next().await;
    assert_eq!(empty.body, "", "no input is an empty body");
    assert_eq!(empty.header("content-type"), Some("text/plain; charset=utf-8"));
    app.post_raw(&empty.callback, "fin").await.expect(200);
    assert_eq!(app.wait_run(run, "Complete").await["result"], "fin");
}

#[tokio::test]
async fn a_sync_action_completes_with_its_answers_body() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/sync", Respond::Body(200, "right away".into()));
    svc.respond("/nothing", Respond::Status(204));
    let tree = par(
        "p",
        vec![
            api_with("s", &svc.at("/sync"), json!({"mode": "sync"})),
            api_with("n", &svc.at("/nothing"), json!({"mode": "sync"})),
        ],
    );
    let run = app.start_run(app.put_tree(&tree).await, json!(null)).await;
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["children"][0]["result"], "right away");
    assert_eq!(done["children"][1]["result"], serde_json::Value::Null);
    assert_eq!(svc.take(2).await.len(), 2);
}

#[tokio::test]
async fn a_4xx_fails_the_node_at_once_and_the_run_says_which_and_why() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/missing", Respond::Body(404, "no such thing".into()));
    let tree =
        seq("s", vec![api("gone", &svc.at("/missing?secret=1")), api("after", &svc.at("/after"))]);
    let run = app.start_run(app.put_tree(&tree).await, json!(null)).await;
    svc.next().await;
    let failed = app.wait_run(run, "Error").await;
    let error = format!("POST {}/missing answered 404 Not Found: no such thing", svc.url);
    assert_eq!(failed["error"], error.as_str());
    assert_eq!(failed["children"][0]["error"], error.as_str());
    assert_eq!(failed["failedNode"], failed["children"][0]["id"]);
    assert_eq!(failed["children"][1]["state"], "Pending");
    svc.expect_none(std::time::Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_5xx_is_sent_again_as_a_new_attempt_and_a_connection_error_fails_after_its_attempts() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/flaky", Respond::Status(503));
    let retry = json!({"retry": {"maxAttempts": 3, "backoffMs": 200, "maxBackoffMs": 200}});
    let tree = api_with("flaky", &svc.at("/flaky"), retry.clone());
    let run = app.start_run(app.put_tree(&tree).await, json!("in")).await;
    let first = svc.next().await;
    svc.respond("/flaky", Respond::Status(202));
    let second = svc.next().await;
    assert_eq!(second.body, "in");
    let node = run.to_string();
    assert_eq!(first.header("idempotency-key"), Some(format!("{node}:1").as_str()));
    assert_eq!(second.header("idempotency-key"), Some(format!("{node}:2").as_str()));
    assert_ne!(first.callback, second.callback, "each attempt has its own token");
    app.post_raw(&second.callback, "ok").await.expect(200);
    assert_eq!(app.wait_run(run, "Complete").await["attempts"], 2);

    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let tree = api_with("down", &format!("http://{closed}/x"), retry);
    let run = app.start_run(app.put_tree(&tree).await, json!(null)).await;
    let failed = app.wait_run(run, "Error").await;
    let error = failed["error"].as_str().unwrap();
    assert!(error.starts_with(&format!("POST http://{closed}/x failed: ")), "{error}");
    assert!(error.ends_with("(after 3 attempts)"), "{error}");
    assert_eq!(failed["attempts"], 3);
}

#[tokio::test]
async fn a_callback_that_never_comes_fails_the_node_at_its_deadline() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = api_with("quiet", &svc.at("/quiet"), json!({"callbackTimeoutSeconds": 1}));
    let run = app.start_run(app.put_tree(&tree).await, json!(null)).await;
    let post = svc.next().await;
    let failed = app.wait_run(run, "Error").await;
    assert_eq!(failed["error"], "no callback within 1 s (attempt 1)");
    let node = app.get(&format!("/api/v1/runs/{run}/nodes/{run}")).await.expect(200).body;
    assert_eq!(node["attempts"][0]["status"], "TimedOut");
    app.post_raw(&post.callback, "late").await.expect(409);
}

#[tokio::test]
async fn every_post_carries_the_runs_trace_and_a_span_of_its_attempt() {
    let template = "http://jaeger.test:16686/trace/{traceId}";
    let app = TestApp::spawn_with(&[("AETR_TRACE_URL", template)]).await;
    let svc = TestService::start().await;
    svc.respond("/flaky", Respond::Status(503));
    let tree = seq(
        "s",
        vec![
            api("a", &svc.at("/a")),
            api_with(
                "flaky",
                &svc.at("/flaky"),
                json!({"retry": {"maxAttempts": 2, "backoffMs": 0}}),
            ),
        ],
    );
    let run = app.start_run(app.put_tree(&tree).await, json!("x")).await;
    let trace = run.simple().to_string();
    let a = svc.next().await;
    app.post_raw(&a.callback, "ok").await.expect(200);
    let tries = svc.take(2).await;
    let mut spans = std::collections::HashSet::new();
    for r in [&a, &tries[0], &tries[1]] {
        let parent = r.header("traceparent").expect("a traceparent on every POST");
        let parts: Vec<&str> = parent.split('-').collect();
        assert_eq!(parts.len(), 4, "{parent}");
        assert_eq!((parts[0], parts[1], parts[3]), ("00", trace.as_str(), "01"), "{parent}");
        assert!(parts[2].len() == 16 && parts[2] != "0000000000000000", "{parent}");
        spans.insert(parts[2].to_owned());
    }
    assert_eq!(spans.len(), 3, "a span for each attempt: {spans:?}");
    let failed = app.wait_run(run, "Error").await;
    assert_eq!(failed["traceId"], trace.as_str());
    assert_eq!(failed["traceUrl"], template.replace("{traceId}", &trace).as_str());

    let refused = api_with("a", &svc.at("/a"), json!({"headers": {"traceparent": "00-x"}}));
    let answer = app.put("/api/v1/steps", &refused).await.expect(422);
    assert_eq!(
        answer.errors(),
        ["action.headers.traceparent: is set by aetr and cannot be configured"]
    );
}
