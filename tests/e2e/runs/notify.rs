//! Completion webhooks: a run started with `notify` has its outcome POSTed when it ends, signed
//! as Standard Webhooks sign (checked by that project's own Python verifier), retried until a
//! 2xx, across a kill -9, and never showing its secret (design.md, "Pushing the outcome to the
//! client").

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use super::{api, noop};
use crate::support::{Received, Respond, TestApp, TestService};

/// A Standard Webhooks secret: `whsec_` and the base64 of the key.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Starts a run of `step` whose outcome goes to `hook`.
async fn start_notified(
    app: &TestApp,
    step: uuid::Uuid,
    input: Value,
    notify: Value,
) -> uuid::Uuid {
    let body = json!({"input": input, "notify": notify});
    app.post(&format!("/api/v1/runs/step/{step}"), &body).await.expect(201).id()
}

/// Checks a message with Standard Webhooks' own verifier (the `standardwebhooks` package from
/// PyPI, installed by scripts/ensure-schemathesis): it raises unless the signature is one it
/// accepts, for this body, id and timestamp (within its 5 minutes' tolerance).
fn verify_with_the_reference_library(secret: &str, got: &Received) {
    let python =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/schemathesis/bin/python");
    assert!(
        python.exists(),
        "the standardwebhooks verifier is not installed: run scripts/ensure-schemathesis"
    );
    let headers = json!({
        "webhook-id": got.header("webhook-id"),
        "webhook-timestamp": got.header("webhook-timestamp"),
        "webhook-signature": got.header("webhook-signature"),
    });
    let script = "import json, sys\n\
        from standardwebhooks.webhooks import Webhook\n\
        secret, headers, body = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]\n\
        print(json.dumps(Webhook(secret).verify(body, headers)))";
    let out = Command::new(python)
        .args(["-c", script, secret, &headers.to_string(), &got.body])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "the reference verifier refused the message: {}\nheaders: {headers}\nbody: {}",
        String::from_utf8_lossy(&out.stderr),
        got.body
    );
    let verified: Value = serde_json::from_slice(&out.stdout).expect("the payload, as JSON");
    assert_eq!(verified, serde_json::from_str::<Value>(&got.body).unwrap());
}

/// Waits until the run's webhook is in `state`, and returns the run.
async fn wait_notify(app: &TestApp, run: uuid::Uuid, state: &str) -> Value {
    app.wait_until(run, &format!("its webhook is {state}"), |r| r["notify"]["state"] == state).await
}

async fn history(app: &TestApp, run: uuid::Uuid, kind: &str) -> Vec<Value> {
    let events = app.get(&format!("/api/v1/runs/{run}/events")).await.expect(200).body;
    events.as_array().unwrap().iter().filter(|e| e["kind"] == kind).cloned().collect()
}

#[tokio::test]
async fn a_run_that_ends_pushes_its_outcome_signed_as_standard_webhooks_verify() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let hook = TestService::start().await;
    hook.respond("/hook", Respond::Status(204));
    let step = app.put_tree(&api("quote", &svc.at("/quote"))).await;
    let notify =
        json!({"url": hook.at("/hook?tenant=7"), "secret": SECRET, "headers": {"X-Tenant": "7"}});
    let run = start_notified(&app, step, json!({"sku": "a"}), notify).await;
    assert_eq!(
        app.run(run).await["notify"],
        json!({"url": hook.at("/hook"), "state": "Pending", "tries": 0})
    );

    let call = svc.take(1).await;
    app.post_raw(&call[0].callback, r#"{"price": 42}"#).await.expect(200);
    let got = hook.take(1).await.remove(0);
    assert_eq!(got.query, "tenant=7", "the URL's own query is kept");
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("x-tenant"), Some("7"), "the target's headers are sent");
    let id = got.header("webhook-id").unwrap();
    assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
    let timestamp: i64 = got.header("webhook-timestamp").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    assert!((now - timestamp).abs() < 60, "epoch seconds: {timestamp}");
    assert!(got.header("webhook-signature").unwrap().starts_with("v1,"));
    verify_with_the_reference_library(SECRET, &got);

    let body: Value = serde_json::from_str(&got.body).unwrap();
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "type",
            "runId",
            "stepId",
            "state",
            "result",
            "error",
            "failedNode",
            "createdAt",
            "completedAt"
        ]
    );
    let done = wait_notify(&app, run, "Delivered").await;
    assert_eq!(body["type"], "run.finished");
    assert_eq!(body["runId"], run.to_string());
    assert_eq!(body["stepId"], step.to_string());
    assert_eq!(body["state"], "Complete");
    assert_eq!(body["result"], r#"{"price": 42}"#);
    assert_eq!((body["error"].clone(), body["failedNode"].clone()), (Value::Null, Value::Null));
    assert_eq!(body["createdAt"], done["createdAt"]);
    assert_eq!(body["completedAt"], done["completedAt"]);
    assert_eq!(done["notify"], json!({"url": hook.at("/hook"), "state": "Delivered", "tries": 1}));

    let tries = history(&app, run, "notified").await;
    assert_eq!(tries.len(), 1, "{tries:#?}");
    assert_eq!(tries[0]["detail"]["status"], 204);
    assert_eq!(tries[0]["detail"]["state"], "Delivered");
    assert_eq!(tries[0]["detail"]["messageId"], id);
    // The secret is nowhere: not in the run, its history, its node, the runs list or the log.
    let everywhere = [
        app.run(run).await.to_string(),
        app.get(&format!("/api/v1/runs/{run}/events")).await.body.to_string(),
        app.get(&format!("/api/v1/runs/{run}/nodes/{run}")).await.body.to_string(),
        app.get("/api/v1/runs").await.body.to_string(),
        app.server().log(),
    ];
    for (i, text) in everywhere.iter().enumerate() {
        assert!(
            !text.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "the secret shows in #{i}: {text}"
        );
    }
    hook.expect_none(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_webhook_is_tried_again_with_the_same_id_and_body_across_a_kill_9() {
    let mut app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let hook = TestService::start().await;
    hook.respond("/hook", Respond::Body(503, "busy".into()));
    let step = app.put_tree(&api("charge", &svc.at("/charge"))).await;
    let run = start_notified(
        &app,
        step,
        json!("card"),
        json!({"url": hook.at("/hook"), "secret": "plain text secret"}),
    )
    .await;
    let call = svc.take(1).await;
    app.post_raw(&call[0].fail_url(), "card declined").await.expect(200);

    let first = hook.take(1).await.remove(0);
    let body: Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(body["state"], "Error");
    assert_eq!(body["error"], "card declined");
    assert_eq!(body["failedNode"], app.run(run).await["failedNode"], "{body:#}");
    verify_with_the_reference_library(
        &format!("whsec_{}", base64_of(b"plain text secret")),
        &first,
    );

    // The server dies between two tries (or during one, whose lease then runs out); the
    // message waits in the database. It may have been tried again before the kill.
    app.crash_and_restart();
    hook.respond("/hook", Respond::Status(200));
    let mut received = vec![first];
    loop {
        let next =
            hook.next_within(Duration::from_secs(25)).await.expect("tried again after the restart");
        let done = next.header("webhook-id") == received[0].header("webhook-id")
            && app.run(run).await["notify"]["state"] == "Delivered";
        received.push(next);
        if done || received.len() > 4 {
            break;
        }
    }
    for again in &received[1..] {
        assert_eq!(
            again.header("webhook-id"),
            received[0].header("webhook-id"),
            "one message, one id"
        );
        assert_eq!(again.body, received[0].body, "the same body, byte for byte");
    }
    let done = wait_notify(&app, run, "Delivered").await;
    assert_eq!(done["notify"]["tries"], received.len(), "{done:#}");
    let tries = history(&app, run, "notified").await;
    let statuses: Vec<Value> = tries.iter().map(|t| t["detail"]["status"].clone()).collect();
    let mut expected = vec![json!(503); received.len() - 1];
    expected.push(json!(200));
    assert_eq!(statuses, expected, "{tries:#?}");
    assert!(tries[0]["detail"]["error"]
        .as_str()
        .unwrap()
        .ends_with("answered 503 Service Unavailable: busy"));
    assert!(tries[0]["detail"]["nextAt"].is_i64());
}

/// Standard base64, for turning a plain secret into the `whsec_` form the verifier takes.
fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn cancelled_runs_and_runs_that_end_as_they_start_are_pushed_too() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let hook = TestService::start().await;
    hook.respond("/hook", Respond::Status(200));

    let instant = app.put_tree(&noop("instant")).await;
    let run = start_notified(&app, instant, json!("x"), json!({"url": hook.at("/hook")})).await;
    let got = hook.take(1).await.remove(0);
    let body: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(
        (body["runId"].as_str(), body["state"].as_str()),
        (Some(run.to_string().as_str()), Some("Complete"))
    );
    assert_eq!(got.header("webhook-signature"), None, "no secret, no signature");

    let slow = app.put_tree(&api("slow", &svc.at("/slow"))).await;
    let run = start_notified(&app, slow, json!("y"), json!({"url": hook.at("/hook")})).await;
    svc.take(1).await;
    app.post(&format!("/api/v1/runs/{run}/cancel"), &json!({})).await.expect(200);
    let got = hook.take(1).await.remove(0);
    let body: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(body["state"], "Cancelled");
    wait_notify(&app, run, "Delivered").await;

    // A run without notify sends nothing, and shows no webhook.
    let quiet = app.start_run(instant, json!("z")).await;
    app.wait_run(quiet, "Complete").await;
    assert_eq!(app.run(quiet).await.get("notify"), None);
    hook.expect_none(Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn a_bad_notify_is_refused_naming_the_field_and_no_run_is_made() {
    let app = TestApp::spawn().await;
    let step = app.put_tree(&noop("n")).await;
    let start = format!("/api/v1/runs/step/{step}");
    let cases = [
        (json!({"url": "ftp://example.com/x"}), 400, r#"notify.url: scheme "ftp" is not supported; use http or https"#),
        (json!({"secret": "s"}), 400, "notify.url: required"),
        (json!("http://example.com/"), 400, "notify: expected an object {url, secret?, headers?}"),
        (json!({"url": "http://example.com/", "secret": "whsec_%%%"}), 400, "notify.secret: a secret that starts with whsec_ is base64 after it"),
        (json!({"url": "http://example.com/", "headers": {"webhook-id": "x"}}), 400, "notify.headers.webhook-id: set by aetr on every message"),
        (json!({"url": "http://example.com/", "colour": "red"}), 400, "notify.colour: unknown field; expected one of url, secret, headers"),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data/"}),
            422,
            "notify.url: refused by the action URL rules: 169.254.169.254 matches the default deny entry 169.254.0.0/16",
        ),
    ];
    for (notify, status, error) in cases {
        let answer = app.post(&start, &json!({"input": "x", "notify": notify})).await;
        assert_eq!(answer.status, status, "{notify}: {:?}", answer.body);
        assert_eq!(answer.errors(), [error], "{notify}");
    }
    let runs = app.get(&format!("/api/v1/runs?stepId={step}")).await.expect(200).body;
    assert_eq!(runs, json!([]));
}

#[tokio::test]
async fn a_webhook_that_is_never_accepted_stops_being_tried_after_24_hours() {
    let app = TestApp::spawn().await;
    let hook = TestService::start().await;
    hook.respond("/hook", Respond::Status(500));
    let step = app.put_tree(&noop("n")).await;
    let run = start_notified(&app, step, json!("x"), json!({"url": hook.at("/hook")})).await;
    let first = hook.take(1).await.remove(0);
    let pending = wait_notify(&app, run, "Pending").await;
    assert!(pending["notify"]["tries"].as_i64() >= Some(1), "{pending:#}");
    // The message is 24 hours old: the next try is its last.
    let db = app.db().await;
    db.execute("UPDATE notify_messages SET give_up_at = now() WHERE run_id = $1", &[&run])
        .await
        .expect("aged");
    let done = wait_notify(&app, run, "Failed").await;
    let tries = history(&app, run, "notified").await;
    assert_eq!(tries.last().unwrap()["detail"]["state"], "Failed", "{tries:#?}");
    assert_eq!(done["notify"]["tries"], tries.len());
    // Every try was recorded, and none follows the last.
    let mut received = 1;
    while let Some(again) = hook.next_within(Duration::from_millis(300)).await {
        assert_eq!(again.header("webhook-id"), first.header("webhook-id"));
        received += 1;
    }
    assert_eq!(received, tries.len());
    hook.expect_none(Duration::from_millis(2_500)).await;
}
