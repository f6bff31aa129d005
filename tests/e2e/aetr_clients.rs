//! A client written for AETR works unchanged (design.md, "Drop-in for AETR's clients"): the
//! requests here are the ones that AETR's own Angular UI sends (its `api.service.ts`), with its
//! paths, bodies and reading of the answers, and the one its API test sends (`GET /ping`).

use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::runs::{api, mapped, seq};
use crate::support::{Respond, TestApp, TestService};

/// A path as AETR's UI, served at `/`, resolves the relative URLs it calls.
fn ui(path: &str) -> String {
    format!("/{path}")
}

/// No answer of these endpoints shows a callback token.
fn no_token(answer: &Value) {
    assert!(!answer.to_string().contains("token"), "a token is shown: {answer}");
}

#[tokio::test]
async fn ping_answers_pong_as_text_without_a_token() {
    let app = TestApp::spawn_with(&[("AETR_API_TOKENS", "secret-token-1")]).await;
    let answer = app.get("/ping").await.expect(200);
    assert_eq!(answer.body, "pong");
    assert!(answer.header("content-type").unwrap_or_default().starts_with("text/plain"));
}

/// AETR's UI lists steps with `GET /api/v1/steps` and never follows `Link`: it gets them all.
#[tokio::test]
async fn the_step_list_without_limit_is_every_step() {
    let app = TestApp::spawn().await;
    for i in 0..60 {
        // AETR's insertStep: `{name, stepType, action, children}`.
        let body = json!({"name": format!("step-{i:02}"), "stepType": "Action",
            "action": {"type": "api", "url": "http://svc.test/x"}, "children": []});
        app.post(&ui("api/v1/steps"), &body).await.expect(201);
    }
    let all = app.get("/api/v1/steps").await.expect(200);
    assert_eq!(all.body.as_array().map(Vec::len), Some(60));
    assert_eq!(all.header("link"), None);
    let page = app.get("/api/v1/steps?limit=50").await.expect(200);
    assert_eq!(page.body.as_array().map(Vec::len), Some(50), "with limit, a page");
    assert!(page.header("link").is_some());
}

/// AETR's editor switches a Parallel step to Sequential and saves it with its no-op reducer
/// (`updateStep`: `PUT api/v1/steps/slim {id, name, stepType, action, reducer, children}`).
#[tokio::test]
async fn a_sequential_step_saved_with_a_no_op_reducer_is_accepted_and_the_reducer_dropped() {
    let app = TestApp::spawn().await;
    let child = app
        .post(
            &ui("api/v1/steps"),
            &json!({"name": "leaf", "stepType": "Action",
            "action": {"type": "no-op"}, "children": []}),
        )
        .await
        .expect(201)
        .id();
    let parent = Uuid::now_v7();
    let update = json!({"id": parent, "name": "was-parallel", "stepType": "Sequential",
        "reducer": {"type": "no-op"}, "children": [{"id": child}]});
    app.put(&ui("api/v1/steps/slim"), &update).await.expect(200);
    let step = app.get(&format!("/api/v1/steps/{parent}")).await.expect(200);
    assert_eq!(step.body["stepType"], "Sequential");
    assert!(step.body.get("reducer").is_none_or(Value::is_null), "dropped: {}", step.body);
    let js = json!({"id": parent, "name": "was-parallel", "stepType": "Sequential",
        "reducer": {"type": "js", "js": "function apply(r) { return r; }"}, "children": []});
    let refused = app.put(&ui("api/v1/steps/slim"), &js).await.expect(400);
    assert!(refused.errors()[0].starts_with("reducer:"), "{:?}", refused.errors());
}

/// A run as AETR's UI follows it: started with `{input}`, listed by state, opened from a leaf's
/// id, its step's runs, the active actions, a run's partial state; and a service that ends its
/// result with a newline, as AETR's services did.
#[tokio::test]
async fn a_run_as_aetrs_ui_follows_it() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/b", Respond::Body(200, "  synced\n".into()));
    let mut b = api("b", &svc.at("/b"));
    b["action"]["mode"] = json!("sync");
    let tree = seq(
        "pipeline",
        vec![api("a", &svc.at("/a")), mapped(b, "function apply(d) { return '[' + d + ']'; }")],
    );
    let step = app.put_tree(&tree).await;

    // createRun: `POST api/v1/runs/step/{id} {input}`, reading `.id`.
    let start = ui(&format!("api/v1/runs/step/{step}"));
    let run: Uuid = app.post(&start, &json!({"input": "hello"})).await.expect(201).id();
    let a = svc.next().await;
    assert_eq!(a.path, "/a");

    // listRuns(state) and the active actions, while `a` is out.
    let executing = app.get(&ui("api/v1/runs/state?state=Executing")).await.expect(200);
    no_token(&executing.body);
    let line = &executing.body[0];
    assert_eq!(line["id"], json!(run));
    assert_eq!(line["root"], json!(run));
    assert_eq!(line["state"], "Executing");
    assert_eq!(line["stepTreeId"], json!(step));
    assert_eq!(line["nodeName"], "pipeline");
    assert!(line["lastUpdatedAt"].as_i64().is_some(), "{line}");
    let tree = app.run(run).await;
    let a_id = tree["children"][0]["id"].clone();
    let active = app.get("/api/v1/runs/active").await.expect(200);
    no_token(&active.body);
    assert_eq!(active.body.as_array().map(Vec::len), Some(2), "a and b: {}", active.body);
    assert_eq!(active.body[0]["id"], a_id);
    assert_eq!(active.body[0]["root"], json!(run));
    assert_eq!(active.body[0]["state"], "Executing");
    assert_eq!(active.body[0]["nodeName"], "a");
    assert_eq!(active.body[1]["state"], "Pending");
    let paged = app.get("/api/v1/runs/active?limit=1").await.expect(200);
    let next = paged.header("link").expect("a next page").to_owned();
    let url = next.trim_start_matches('<').split('>').next().unwrap_or_default();
    let second = app.get(url).await.expect(200);
    assert_eq!(second.body.as_array().map(|l| l[0]["nodeName"].clone()), Some(json!("b")));

    // The service calls back with a newline at the end: it is trimmed, as AETR did.
    app.post_raw(&a.callback, "from a\n").await.expect(200);
    let b_request = svc.next().await;
    assert_eq!(b_request.body, "from a", "no newline passed on");
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["children"][0]["result"], "from a");
    assert_eq!(done["result"], "[synced]", "a sync answer is trimmed too");

    // getRun from a leaf's id (AETR's run list links to them): the whole run's tree.
    let b_id = done["children"][1]["id"].as_str().unwrap_or_default().to_owned();
    let from_leaf = app.get(&format!("/api/v1/runs/{b_id}")).await.expect(200);
    assert_eq!(from_leaf.body["id"], json!(run));
    assert_eq!(from_leaf.body["children"].as_array().map(Vec::len), Some(2));
    no_token(&from_leaf.body);

    // The partial view of a run, and of one node.
    let partial = app.get(&format!("/api/v1/runs/partial/{run}")).await.expect(200);
    no_token(&partial.body);
    assert_eq!(partial.body["id"], json!(run));
    assert_eq!(partial.body["state"], "Complete");
    assert_eq!(partial.body["stepTreeId"], json!(step));
    assert_eq!(partial.body["result"], "[synced]");
    assert!(partial.body["createdAt"].as_i64().is_some());
    let leaf = app.get(&format!("/api/v1/runs/partial/{b_id}")).await.expect(200);
    assert_eq!(leaf.body["id"], json!(b_id));
    assert_eq!(leaf.body["result"], "synced");
    assert_ne!(leaf.body["stepTreeId"], json!(step), "the node's own step");

    // listRelatedRuns: `GET /api/v1/runs/related/step/{id}`, reading `.runs`.
    let second_run: Uuid = app.post(&start, &json!({"input": "again"})).await.expect(201).id();
    let related = app.get(&format!("/api/v1/runs/related/step/{step}")).await.expect(200);
    no_token(&related.body);
    let ids: Vec<Value> =
        related.body["runs"].as_array().into_iter().flatten().map(|r| r["id"].clone()).collect();
    assert_eq!(ids, [json!(second_run), json!(run)], "newest first");
    let completed = app.get(&ui("api/v1/runs/state?state=Complete")).await.expect(200);
    assert_eq!(completed.body.as_array().map(Vec::len), Some(1));
    assert_eq!(completed.body[0]["result"], "[synced]");

    // Bad input names what is wrong, and an id that is no node of any run is a 404.
    let missing = app.get(&ui("api/v1/runs/state")).await.expect(400);
    assert!(missing.errors()[0].starts_with("state:"), "{:?}", missing.errors());
    app.get(&ui("api/v1/runs/state?state=Done")).await.expect(400);
    app.get(&format!("/api/v1/runs/{}", Uuid::now_v7())).await.expect(404);
    app.get(&format!("/api/v1/runs/partial/{}", Uuid::now_v7())).await.expect(404);
    assert_eq!(svc.next().await.path, "/a", "the second run's first action");
    svc.expect_none(Duration::from_millis(200)).await;
}

/// A callback whose body is only whitespace is a result of nothing.
#[tokio::test]
async fn a_callback_of_only_whitespace_is_no_result() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let step = app.put_tree(&seq("s", vec![api("a", &svc.at("/a"))])).await;
    let run = app.start_run(step, json!("in")).await;
    let a = svc.next().await;
    app.post_raw(&a.callback, " \n\t ").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], Value::Null);
}
