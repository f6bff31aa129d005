//! The SSRF guard: action URLs that reach metadata services, link-local addresses, aetr itself,
//! or whatever the operator denies are refused when saved, and again at dispatch, on the
//! resolved address and on every redirect.

use serde_json::{json, Value};

use crate::runs::{api, seq};
use crate::support::{Respond, TestApp, TestService};

async fn save_refused(app: &TestApp, url: &str) -> String {
    let tree = seq(
        "root",
        vec![
            json!({"name": "ok", "stepType": "Action", "action": {"type": "no-op"}}),
            api("bad", url),
        ],
    );
    let answer = app.put("/api/v1/steps", &tree).await.expect(422);
    let errors = answer.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("children[1].action.url: refused by the action URL rules: "),
        "{errors:?}"
    );
    errors[0].clone()
}

/// Runs a one-action tree and returns its failed root.
async fn run_to_error(app: &TestApp, url: &str) -> Value {
    let step = app.put_tree(&api("a", url)).await;
    let run = app.start_run(step, json!(1)).await;
    app.wait_root(run, "Error").await
}

#[tokio::test]
async fn metadata_link_local_and_aetrs_own_address_are_refused_at_save_in_every_spelling() {
    let app = TestApp::spawn().await;
    let error = save_refused(&app, "http://169.254.169.254/latest/meta-data/").await;
    assert!(
        error.ends_with("169.254.169.254 matches the default deny entry 169.254.0.0/16"),
        "{error}"
    );
    for url in [
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://2852039166/",
        "http://0251.0376.0251.0376/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://[fe80::1%25eth0]/",
        "http://0.0.0.0/",
    ] {
        if url.contains("%25") {
            // Zone ids are not valid in URLs at all: a 400 for the URL's syntax, still no save.
            let tree = api("bad", url);
            let status = app.put("/api/v1/steps", &tree).await.status;
            assert!(status == 400 || status == 422, "{url}: {status}");
            continue;
        }
        save_refused(&app, url).await;
    }
    let own = app.url("/api/v1/steps");
    let error = save_refused(&app, &own).await;
    assert!(error.contains("aetr's own address"), "{error}");
    assert!(
        app.get("/api/v1/steps").await.expect(200).body.as_array().unwrap().is_empty(),
        "nothing was saved"
    );
}

#[tokio::test]
async fn a_host_name_that_resolves_to_a_denied_address_fails_its_node_at_dispatch() {
    let app = TestApp::spawn_with(&[("AETR_ACTION_DENY", "127.0.0.0/8, ::1")]).await;
    let svc = TestService::start().await;
    let port = svc.url.rsplit(':').next().unwrap();
    // The name passes the save (only its addresses can tell), and fails when resolved.
    let root = run_to_error(&app, &format!("http://localhost:{port}/x")).await;
    let error = root["error"].as_str().unwrap();
    assert!(error.contains("refused by the action URL rules: localhost resolves to"), "{error}");
    assert!(error.contains("which matches AETR_ACTION_DENY entry"), "{error}");
    svc.expect_none(std::time::Duration::from_millis(300)).await;
    // And a literal address in a denied range is refused at save.
    save_refused(&app, &svc.at("/x")).await;
}

#[tokio::test]
async fn a_url_refused_under_new_rules_fails_at_dispatch_without_retries() {
    let first = TestApp::spawn().await;
    let svc = TestService::start().await;
    let step = first
        .put_tree(&crate::runs::api_with(
            "a",
            &svc.at("/x"),
            json!({"retry": {"maxAttempts": 5, "backoffMs": 10}}),
        ))
        .await;
    let database = first.database_url();
    let second = TestApp::on_database(&database, &[("AETR_ACTION_DENY", "127.0.0.1")]);
    let run = second.start_run(step, json!(1)).await;
    let root = second.wait_root(run, "Error").await;
    let error = root["error"].as_str().unwrap();
    assert!(
        error.contains(
            "refused by the action URL rules: 127.0.0.1 matches AETR_ACTION_DENY entry 127.0.0.1"
        ),
        "{error}"
    );
    let events = second.get(&format!("/api/v1/runs/{run}/events")).await.expect(200).body;
    let kinds: Vec<&str> =
        events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "postFailed").count(), 1, "not retried: {kinds:?}");
    svc.expect_none(std::time::Duration::from_millis(300)).await;
}

#[tokio::test]
async fn redirects_are_off_by_default_and_each_one_is_checked_when_on() {
    let svc = TestService::start().await;
    svc.respond(
        "/moved",
        Respond::Redirect(307, "http://169.254.169.254/latest/meta-data/".into()),
    );
    svc.respond("/hop", Respond::Redirect(307, svc.at("/final")));
    svc.respond("/final", Respond::CallBack(std::sync::Arc::new(|_| Some("landed".into()))));

    let off = TestApp::spawn().await;
    let root = run_to_error(&off, &svc.at("/hop")).await;
    assert!(root["error"].as_str().unwrap().contains("answered 307"), "{root}");

    let on = TestApp::spawn_with(&[("AETR_ACTION_MAX_REDIRECTS", "3")]).await;
    let root = run_to_error(&on, &svc.at("/moved")).await;
    let error = root["error"].as_str().unwrap();
    assert!(
        error.contains(
            "refused by the action URL rules: 169.254.169.254 matches the default deny entry"
        ),
        "{error}"
    );

    let step = on.put_tree(&api("a", &svc.at("/hop"))).await;
    let run = on.start_run(step, json!(1)).await;
    assert_eq!(on.wait_root(run, "Complete").await["result"], "landed");
}

#[tokio::test]
async fn a_non_empty_allow_list_admits_only_its_entries() {
    let svc = TestService::start().await;
    let app =
        TestApp::spawn_with(&[("AETR_ACTION_ALLOW", &format!("{}/ok/, example.com", svc.url))])
            .await;
    let error = save_refused(&app, &svc.at("/other")).await;
    assert!(error.ends_with("is not admitted by AETR_ACTION_ALLOW"), "{error}");
    save_refused(&app, "http://example.org/").await;
    save_refused(&app, "http://10.0.0.1/").await;
    app.put_tree(&api("b", "https://example.com/x")).await;
    svc.respond("/ok/a", Respond::CallBack(std::sync::Arc::new(|_| Some("fine".into()))));
    let step = app.put_tree(&api("a", &svc.at("/ok/a"))).await;
    let run = app.start_run(step, json!(1)).await;
    assert_eq!(app.wait_root(run, "Complete").await["result"], "fine");
}
