//! Branch steps, the `collect` reducer, and the actions that POST nowhere: `wait` and `manual`
//! (design.md, "More step types").

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{api, noop, par, seq};
use crate::support::{TestApp, TestService};

/// A Branch step whose function is `js`.
fn branch(name: &str, js: &str, children: Vec<Value>) -> Value {
    json!({"name": name, "stepType": "Branch", "branch": {"type": "js", "js": js},
           "children": children})
}

fn wait(name: &str, seconds: u64) -> Value {
    json!({"name": name, "stepType": "Action", "action": {"type": "wait", "seconds": seconds}})
}

fn manual(name: &str, options: Value) -> Value {
    let mut step = json!({"name": name, "stepType": "Action", "action": {"type": "manual"}});
    for (k, v) in options.as_object().expect("an object") {
        step["action"][k] = v.clone();
    }
    step
}

/// A Branch that routes by the input's `kind`: `fast` and `slow` by name, anything numeric by
/// index, `none` to nothing, and anything else to a name that is not there.
fn router(svc: &TestService) -> Value {
    branch(
        "route",
        "function apply(data) { const d = JSON.parse(data);
            if (d.kind === 'none') return null;
            return typeof d.kind === 'number' ? d.kind : d.kind; }",
        vec![
            api("fast", &svc.at("/fast")),
            seq("slow", vec![api("slow1", &svc.at("/slow1")), api("slow2", &svc.at("/slow2"))]),
        ],
    )
}

#[tokio::test]
async fn a_branch_runs_the_child_it_names_and_skips_the_others() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let step = app.put_tree(&router(&svc)).await;

    let run = app.start_run(step, json!({"kind": "slow"})).await;
    let first = svc.next().await;
    assert_eq!(first.path, "/slow1", "the child named \"slow\" runs");
    assert_eq!(first.body, r#"{"kind":"slow"}"#, "with the Branch's input");
    let tree = app.run(run).await;
    assert_eq!(tree["children"][0]["state"], "Skipped", "{tree:#}");
    assert_eq!(tree["counts"]["Skipped"], 1, "node counts include Skipped: {tree:#}");
    app.post_raw(&first.callback, "one").await.expect(200);
    let second = svc.next().await;
    assert_eq!(second.path, "/slow2");
    app.post_raw(&second.callback, "two").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], "two", "the chosen child's result is the Branch's");
    svc.expect_none(Duration::from_millis(200)).await;
    let progress = app.get(&format!("/api/v1/runs/{run}/progress")).await.expect(200).body;
    assert_eq!(progress["counts"]["Skipped"], 1, "{progress:#}");
    assert_eq!(progress["counts"]["Complete"], 2, "{progress:#}");

    // By index: 0 is "fast"; the whole subtree of "slow" is skipped.
    let run = app.start_run(step, json!({"kind": 0})).await;
    let fast = svc.next().await;
    assert_eq!(fast.path, "/fast");
    app.post_raw(&fast.callback, "quick").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], "quick");
    let slow = &done["children"][1];
    assert_eq!(slow["state"], "Skipped");
    for child in slow["children"].as_array().unwrap() {
        assert_eq!(child["state"], "Skipped", "below a child not chosen: {done:#}");
    }

    // null chooses none: the Branch completes with its input.
    let run = app.start_run(step, json!({"kind": "none"})).await;
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], r#"{"kind":"none"}"#);
    assert_eq!(done["counts"]["Skipped"], 2, "{done:#}");

    // A name that is not there fails the Branch, and the run.
    let run = app.start_run(step, json!({"kind": "medium"})).await;
    let failed = app.wait_run(run, "Error").await;
    assert_eq!(failed["error"], r#"branch: no child named "medium""#);
    let history = app.get(&format!("/api/v1/runs/{run}/events")).await.expect(200).body;
    let chosen: Vec<&Value> =
        history.as_array().unwrap().iter().filter(|e| e["kind"] == "chosen").collect();
    assert_eq!(chosen.len(), 1, "{history:#}");
    assert_eq!(chosen[0]["detail"]["choice"], "medium");
    svc.expect_none(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_branch_whose_function_failed_runs_it_again_on_a_redrive() {
    let app = TestApp::spawn().await;
    let tree = branch("b", "function apply(d) { throw new Error('not yet'); }", vec![noop("x")]);
    let step = app.put_tree(&tree).await;
    let run = app.start_run(step, json!("in")).await;
    assert_eq!(app.wait_run(run, "Error").await["error"], "branch: not yet");

    // The function is fixed; a redrive on the latest definitions runs it again.
    let mut fixed = branch("b", "function apply(d) { return 'x'; }", vec![noop("x")]);
    fixed["id"] = json!(step);
    app.put("/api/v1/steps", &fixed).await.expect(200);
    let retry = format!("/api/v1/runs/{run}/retry?definition=latest");
    app.post(&retry, &json!({})).await.expect(200);
    assert_eq!(app.wait_run(run, "Complete").await["result"], "in");
}

#[tokio::test]
async fn branch_and_wait_definitions_are_checked_when_saved() {
    let app = TestApp::spawn().await;
    let twins = branch("b", "function apply(d) { return 'x'; }", vec![noop("x"), noop("x")]);
    let answer = app.put("/api/v1/steps", &twins).await.expect(400);
    assert!(answer.errors()[0].contains("two children named \"x\""), "{:?}", answer.errors());

    let broken = branch("b", "function apply(d) { return ; ) }", vec![noop("x")]);
    let answer = app.put("/api/v1/steps", &broken).await.expect(422);
    assert!(answer.errors()[0].starts_with("branch.js: "), "{:?}", answer.errors());

    app.put("/api/v1/steps", &wait("w", 0)).await.expect(200);
    let mut bad = wait("w", 0);
    bad["action"]["seconds"] = json!(-5);
    let answer = app.put("/api/v1/steps", &bad).await.expect(400);
    assert!(answer.errors()[0].starts_with("action.seconds: "), "{:?}", answer.errors());
    bad["action"]["seconds"] = json!(31_536_001);
    let answer = app.put("/api/v1/steps", &bad).await.expect(422);
    assert_eq!(answer.errors(), ["action.seconds: must be at most 31536000"]);

    // A stored step renamed so that a Branch has two children of one name is refused too.
    let a = app.put_tree(&noop("a")).await;
    let b = app.put_tree(&noop("b")).await;
    let js = "function apply(d) { return 'a'; }";
    let parent = json!({"name": "p", "stepType": "Branch", "branch": {"type": "js", "js": js},
                        "children": [a, b]});
    app.post("/api/v1/steps", &parent).await.expect(201);
    let mut renamed = noop("a");
    renamed["id"] = json!(b);
    app.put("/api/v1/steps", &renamed).await.expect(422);
}

#[tokio::test]
async fn collect_gathers_the_results_as_json_in_child_order() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let mut tree = par("p", vec![api("a", &svc.at("/a")), api("b", &svc.at("/b")), noop("c")]);
    tree["reducer"] = json!({"type": "collect"});
    let run = app.start_run(app.put_tree(&tree).await, json!(null)).await;
    let mut calls = svc.take(2).await;
    calls.sort_by(|x, y| y.path.cmp(&x.path));
    app.post_raw(&calls[0].callback, "just text").await.expect(200); // b first
    app.post_raw(&calls[1].callback, r#"{"n": 1}"#).await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], r#"[{"n":1},"just text",null]"#);
}

#[tokio::test]
async fn a_wait_completes_with_its_input_when_its_time_is_up() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = seq("s", vec![wait("pause", 2), api("after", &svc.at("/after"))]);
    let started = Instant::now();
    let run = app.start_run(app.put_tree(&tree).await, json!("payload")).await;
    let tree = app.run(run).await;
    let pause = &tree["children"][0];
    assert_eq!(pause["state"], "Executing");
    let due = pause["dueAt"].as_i64().expect("a wait shows when it ends");
    let executed = pause["executedAt"].as_i64().unwrap();
    assert!((1_900..=2_100).contains(&(due - executed)), "{pause:#}");
    let after = svc.next_within(Duration::from_secs(10)).await.expect("the wait ends");
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(after.body, "payload", "a wait passes its input on");
    app.post_raw(&after.callback, "done").await.expect(200);
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["children"][0]["result"], "payload");
    assert!(done["children"][0].get("dueAt").is_none(), "no deadline once it has ended");
    let history = app.get(&format!("/api/v1/runs/{run}/events")).await.expect(200).body;
    assert!(history.as_array().unwrap().iter().any(|e| e["kind"] == "waited"), "{history:#}");
}

#[tokio::test]
async fn a_wait_survives_kill_9_and_is_cancelled_with_its_run() {
    let mut app = TestApp::spawn().await;
    let tree = app.put_tree(&seq("s", vec![wait("pause", 3), noop("after")])).await;
    let run = app.start_run(tree, json!("kept")).await;
    let cancelled = app.start_run(tree, json!("gone")).await;
    app.post(&format!("/api/v1/runs/{cancelled}/cancel"), &json!({})).await.expect(200);
    app.crash_and_restart();
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], "kept", "the deadline was in the database");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let still = app.run(cancelled).await;
    assert_eq!(still["state"], "Cancelled");
    assert_eq!(still["children"][0]["state"], "Cancelled", "{still:#}");
}

#[tokio::test]
async fn a_manual_action_waits_for_approval_by_hand() {
    let app = TestApp::spawn().await;
    let tree =
        seq("s", vec![manual("approve", json!({"callbackTimeoutSeconds": 3600})), noop("after")]);
    let step = app.put_tree(&tree).await;

    let (run, node, tree) = waiting_for_a_person(&app, step).await;
    let due = tree["children"][0]["dueAt"].as_i64().expect("a deadline for the decision");
    assert!(due > tree["children"][0]["executedAt"].as_i64().unwrap() + 3_590_000);
    let url = format!("/api/v1/runs/{run}/nodes/{node}/complete");
    app.send(reqwest::Method::POST, &url, Some("approved".into())).await.expect(200);
    assert_eq!(app.wait_run(run, "Complete").await["result"], "approved");

    let (run, node, _) = waiting_for_a_person(&app, step).await;
    let url = format!("/api/v1/runs/{run}/nodes/{node}/fail");
    app.send(reqwest::Method::POST, &url, Some("too expensive".into())).await.expect(200);
    assert_eq!(app.wait_run(run, "Error").await["error"], "too expensive");

    // A redispatch is for actions that POST: a manual one has nothing to send.
    let (run, node, _) = waiting_for_a_person(&app, step).await;
    let url = format!("/api/v1/runs/{run}/nodes/{node}/redispatch");
    app.post(&url, &json!({})).await.expect(409);
}

/// A new run of `step` once its first child, a manual action, waits: the run, that node's id,
/// and the run's tree.
async fn waiting_for_a_person(app: &TestApp, step: uuid::Uuid) -> (uuid::Uuid, String, Value) {
    let run = app.start_run(step, json!("an order")).await;
    let tree = app
        .wait_until(run, "the approval waits", |t| t["children"][0]["state"] == "Executing")
        .await;
    let node = tree["children"][0]["id"].as_str().unwrap().to_owned();
    (run, node, tree)
}

#[tokio::test]
async fn a_manual_action_fails_when_nobody_decides_in_time() {
    let app = TestApp::spawn().await;
    let step = app.put_tree(&manual("approve", json!({"callbackTimeoutSeconds": 1}))).await;
    let run = app.start_run(step, json!(null)).await;
    let failed = app.wait_run(run, "Error").await;
    assert_eq!(failed["error"], "no decision by hand within 1 s");
}
