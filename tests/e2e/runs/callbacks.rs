//! Callbacks: every answer of the contract.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{a_beside_b_then_c, api, seq};
use crate::support::{Respond, TestApp, TestService};

#[tokio::test]
async fn a_callback_that_comes_before_the_post_is_answered_is_taken() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/slow", Respond::Hold);
    let run = app.start_run(app.put_tree(&api("slow", &svc.at("/slow"))).await, json!(1)).await;
    let mut post = svc.next().await;
    app.post_raw(&post.callback, "early").await.expect(200);
    assert_eq!(app.wait_run(run, "Complete").await["result"], "early");
    post.answer(Respond::Status(202));
    svc.expect_none(Duration::from_millis(300)).await;
    let done = app.run(run).await;
    assert_eq!(done["result"], "early");
    // The answer that came after the callback is still recorded on the attempt.
    let attempt = wait_http_status(&app, run, &done["id"]).await;
    assert_eq!(
        (attempt["status"].as_str(), attempt["httpStatus"].as_u64()),
        (Some("Complete"), Some(202))
    );
}

#[tokio::test]
async fn a_service_that_calls_back_at_once_has_its_202_on_each_attempt() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/fast", Respond::CallBack(Arc::new(|r| Some(format!("{}+", r.body)))));
    let chain = seq("chain", vec![api("a", &svc.at("/fast")), api("b", &svc.at("/fast"))]);
    let run = app.start_run(app.put_tree(&chain).await, json!("x")).await;
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], "x++");
    for child in done["children"].as_array().expect("children") {
        let attempt = wait_http_status(&app, run, &child["id"]).await;
        assert_eq!(attempt["status"], "Complete", "{attempt}");
        assert_eq!(attempt["httpStatus"], 202, "{attempt}");
    }
}

/// A node's first attempt once its POST's HTTP status is recorded (within 10 s).
async fn wait_http_status(
    app: &TestApp,
    run: uuid::Uuid,
    node: &serde_json::Value,
) -> serde_json::Value {
    let url = format!("/api/v1/runs/{run}/nodes/{}", node.as_str().expect("a node id"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = app.get(&url).await.expect(200).body["attempts"][0].clone();
        if !attempt["httpStatus"].is_null() || std::time::Instant::now() > deadline {
            return attempt;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_repeat_is_409_and_unknown_or_forged_tokens_are_404() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let run = app.start_run(app.put_tree(&api("a", &svc.at("/a"))).await, json!(1)).await;
    let a = svc.next().await;

    let token = a.callback.split("token=").nth(1).unwrap().to_owned();
    let mut forged = token.clone().into_bytes();
    let at = forged.len() / 2;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let complete = app.url("/api/v1/runs/complete");
    for bad in
        [format!("{complete}?token={forged}"), format!("{complete}?token=nope"), complete.clone()]
    {
        let answer = app.post_raw(&bad, "x").await.expect(404);
        assert_eq!(answer.errors(), ["unknown callback token"]);
    }
    assert_eq!(app.run(run).await["state"], "Executing", "a forged callback changes nothing");

    let taken = app.post_raw(&a.callback, "x").await.expect(200);
    assert_eq!(taken.body, json!({}));
    let again = app.post_raw(&a.callback, "y").await.expect(409);
    assert!(again.errors()[0].contains("already taken"), "{:?}", again.body);
    app.post_raw(&a.fail_url(), "z").await.expect(409);
    assert_eq!(app.wait_run(run, "Complete").await["result"], "x");
}

#[tokio::test]
async fn a_fail_callback_fails_the_node_and_the_run_and_later_callbacks_do_not_revive_it() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = a_beside_b_then_c(&svc);
    let run = app.start_run(app.put_tree(&tree).await, json!(null)).await;
    let mut got = svc.take(2).await;
    got.sort_by(|x, y| x.path.cmp(&y.path));
    let (a, b) = (got.remove(0), got.remove(0));
    app.post_raw(&a.fail_url(), "the service gave up").await.expect(200);
    let failed = app.wait_run(run, "Error").await;
    assert_eq!(failed["error"], "the service gave up");
    assert_eq!(failed["children"][0]["state"], "Error");

    // A late callback from a sibling that is still executing is recorded, not acted on.
    app.post_raw(&b.callback, "late").await.expect(200);
    let after = app.run(run).await;
    assert_eq!(after["state"], "Error");
    assert_eq!(after["children"][1]["children"][0]["state"], "Complete");
    assert_eq!(after["children"][1]["children"][0]["result"], "late");
    assert_eq!(after["children"][1]["children"][1]["state"], "Pending", "c is never sent");
    svc.expect_none(Duration::from_millis(300)).await;
    app.post_raw(&a.callback, "too late").await.expect(409);
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_400_and_the_token_stays_usable() {
    let app = TestApp::spawn_with(&[("AETR_MAX_CALLBACK_BYTES", "1024")]).await;
    let svc = TestService::start().await;
    let run = app.start_run(app.put_tree(&api("a", &svc.at("/a"))).await, json!(1)).await;
    let a = svc.next().await;
    let bad = app.post_raw(&a.callback, vec![0xff, 0xfe, b'x']).await.expect(400);
    assert!(bad.errors()[0].contains("not UTF-8"), "{:?}", bad.body);
    let big = app.post_raw(&a.callback, "x".repeat(1025)).await.expect(413);
    assert!(big.errors()[0].contains("1024 bytes"), "{:?}", big.body);
    app.post_raw(&a.callback, "x".repeat(1024)).await.expect(200);
    assert_eq!(app.wait_run(run, "Complete").await["result"].as_str().unwrap().len(), 1024);
}

#[tokio::test]
async fn a_run_keeps_the_tree_it_started_with_when_the_tree_is_edited() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let mut tree = seq("s", vec![api("a", &svc.at("/a")), api("b", &svc.at("/b"))]);
    let step = app.put_tree(&tree).await;
    let run = app.start_run(step, json!(null)).await;
    let a = svc.next().await;

    // The whole tree, edited: its second child calls elsewhere, and a third is added.
    let saved = app.tree(step).await;
    tree["id"] = saved["id"].clone();
    tree["children"][1]["id"] = saved["children"][1]["id"].clone();
    tree["children"][1]["action"]["url"] = json!(svc.at("/edited"));
    tree["children"].as_array_mut().unwrap().push(api("c", &svc.at("/c")));
    app.put_tree(&tree).await;

    app.post_raw(&a.callback, "1").await.expect(200);
    let b = svc.next().await;
    assert_eq!(b.path, "/b", "the run follows its snapshot");
    app.post_raw(&b.callback, "2").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["childCount"], 2);
    svc.expect_none(Duration::from_millis(200)).await;

    let again = app.start_run(step, json!(null)).await;
    assert_eq!(svc.next().await.path, "/a");
    assert_eq!(app.run(again).await["childCount"], 3, "a new run takes the edited tree");
}
