//! Sequential steps: each child gets the previous child's mapped result.

use serde_json::json;

use super::{api, mapped, noop, seq};
use crate::support::{TestApp, TestService};

#[tokio::test]
async fn a_sequence_passes_each_mapped_result_to_the_next_child() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = seq(
        "pipeline",
        vec![
            mapped(
                api("first", &svc.at("/first")),
                "function apply(d) { return JSON.parse(d).n + 1; }",
            ),
            mapped(api("second", &svc.at("/second")), "function apply(d) { return 'got ' + d; }"),
        ],
    );
    let step = app.put_tree(&tree).await;
    let run = app.start_run(step, json!({"n": 1})).await;

    let first = svc.next().await;
    assert_eq!(first.path, "/first");
    assert_eq!(first.body, r#"{"n":1}"#);
    app.post_raw(&first.callback, r#"{"n": 41}"#).await.expect(200);

    let second = svc.next().await;
    assert_eq!(second.path, "/second");
    assert_eq!(second.body, "42", "the first child's mapped result");
    app.post_raw(&second.callback, "done").await.expect(200);

    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], "got done");
    assert_eq!(done["children"][0]["result"], r#"{"n": 41}"#, "a node's own result, unmapped");
    assert_eq!(done["children"][1]["input"], "42");
    assert_eq!(done["children"][1]["state"], "Complete");
    assert!(done["completedAt"].as_i64().unwrap() >= done["createdAt"].as_i64().unwrap());
}

#[tokio::test]
async fn an_empty_callback_is_no_result_and_a_string_input_is_passed_on_raw() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = seq("s", vec![api("a", &svc.at("/a")), api("b", &svc.at("/b"))]);
    let run = app.start_run(app.put_tree(&tree).await, json!("plain text")).await;
    let a = svc.next().await;
    assert_eq!(a.body, "plain text", "a string input is sent raw, not as JSON");
    app.post_raw(&a.callback, "").await.expect(200);
    let b = svc.next().await;
    assert_eq!(b.body, "", "no result is an empty body");
    app.post_raw(&b.callback, "").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_mapper_that_throws_fails_its_node_and_the_run() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = seq(
        "s",
        vec![
            mapped(api("a", &svc.at("/a")), "function apply(d) { throw new Error('bad ' + d); }"),
            noop("never"),
        ],
    );
    let run = app.start_run(app.put_tree(&tree).await, json!(null)).await;
    let a = svc.next().await;
    app.post_raw(&a.callback, "x").await.expect(200);
    let failed = app.wait_run(run, "Error").await;
    assert_eq!(failed["error"], "mapper: bad x");
    assert_eq!(failed["children"][0]["state"], "Error");
    assert_eq!(failed["children"][0]["result"], "x", "the service's result is kept");
    assert_eq!(failed["children"][1]["state"], "Pending", "nothing runs after a failure");
    assert_eq!(failed["failedNode"], failed["children"][0]["id"]);
}
