//! Reading runs: a page of runs, a tree cut at a depth, one node with its attempts, a page of
//! children; and no read ever shows a token.

use serde_json::{json, Value};
use uuid::Uuid;

use super::{api, mapped, par, par_js, seq};
use crate::support::{TestApp, TestService};

/// The `Link` header's next URL (a path).
fn next_link(answer: &crate::support::app::Answer) -> Option<String> {
    let link = answer.header("link")?;
    Some(link.trim_start_matches('<').split('>').next()?.to_owned())
}

#[tokio::test]
async fn runs_are_listed_newest_first_filtered_and_paged() {
    let app = TestApp::spawn().await;
    let quick = app.put_tree(&seq("quick", vec![])).await;
    let svc = TestService::start().await;
    let slow = app.put_tree(&api("slow", &svc.at("/slow"))).await;
    let mut done = Vec::new();
    for i in 0..3 {
        done.push(app.start_run(quick, json!(i)).await);
    }
    let waiting = app.start_run(slow, json!(null)).await;
    for id in &done {
        app.wait_run(*id, "Complete").await;
    }

    let all = app.get("/api/v1/runs").await.expect(200);
    let ids: Vec<&str> =
        all.body.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    let newest_first: Vec<String> =
        [waiting, done[2], done[1], done[0]].iter().map(ToString::to_string).collect();
    assert_eq!(ids, newest_first);
    let first = &all.body[0];
    assert_eq!(first["state"], "Executing");
    assert_eq!(first["stepTree"], json!({"id": slow, "name": "slow", "stepType": "Action"}));
    assert_eq!(first["root"], waiting.to_string());
    assert_eq!(all.body[1]["result"], "2");

    let page = app.get("/api/v1/runs?state=Complete&limit=2").await.expect(200);
    assert_eq!(page.body.as_array().unwrap().len(), 2);
    assert_eq!(page.body[0]["id"], done[2].to_string());
    let next = next_link(&page).expect("a next page");
    assert!(next.contains("state=Complete") && next.contains("limit=2"), "{next}");
    let rest = app.get(&next).await.expect(200);
    assert_eq!(rest.body, json!([rest.body[0].clone()]));
    assert_eq!(rest.body[0]["id"], done[0].to_string());
    assert_eq!(rest.header("link"), None);

    let by_step = app.get(&format!("/api/v1/runs?stepId={slow}")).await.expect(200);
    assert_eq!(by_step.body.as_array().unwrap().len(), 1);
    let bad = app.get("/api/v1/runs?state=Done&stepId=x").await.expect(400);
    assert_eq!(bad.errors().len(), 2, "{:?}", bad.body);
    app.get("/api/v1/runs?limit=0").await.expect(400);
}

#[tokio::test]
async fn a_run_is_a_tree_that_can_be_cut_at_a_depth() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = par(
        "p",
        vec![
            seq("s", vec![api("a", &svc.at("/a")), api("b", &svc.at("/b"))]),
            api("c", &svc.at("/c")),
        ],
    );
    let run = app.start_run(app.put_tree(&tree).await, json!(null)).await;
    svc.take(2).await;

    let whole = app.run(run).await;
    assert_eq!(whole["children"][0]["children"][1]["state"], "Pending");
    assert_eq!(whole["children"][0]["children"][1]["children"], json!([]));

    let cut = app.get(&format!("/api/v1/runs/{run}?depth=1")).await.expect(200).body;
    let s = &cut["children"][0];
    assert_eq!(s["stepTree"]["name"], "s");
    assert_eq!(s.get("children"), None, "cut here");
    assert_eq!(s["childCount"], 2);
    assert_eq!(s["counts"], json!({"Executing": 1, "Pending": 1}));
    assert_eq!(cut["counts"], json!({"Executing": 2}));

    let root_only = app.get(&format!("/api/v1/runs/{run}?depth=0")).await.expect(200).body;
    assert_eq!(root_only.get("children"), None);
    assert_eq!(root_only["counts"], json!({"Executing": 2}));
    app.get(&format!("/api/v1/runs/{run}?depth=-1")).await.expect(400);
    app.get(&format!("/api/v1/runs/{}", Uuid::now_v7())).await.expect(404);
    app.get("/api/v1/runs/not-a-run").await.expect(404);
}

#[tokio::test]
async fn a_node_shows_its_attempts_and_its_snapshot_and_children_come_in_pages() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let leaves: Vec<Value> = (0..5)
        .map(|i| {
            mapped(
                api(&format!("leaf{i}"), &svc.at("/leaf")),
                "function apply(d) { return d + '!'; }",
            )
        })
        .collect();
    let tree = par_js("wide", "function apply(rs) { return rs.join(''); }", leaves);
    let run = app.start_run(app.put_tree(&tree).await, json!("go")).await;
    let got = svc.take(5).await;
    app.post_raw(&got[0].callback, "r").await.expect(200);

    let complete = |n: &Value| n["state"] == "Complete";
    let whole = app
        .wait_until(run, "a leaf completes", |t| {
            t["children"].as_array().unwrap().iter().any(complete)
        })
        .await;
    let leaf = whole["children"].as_array().unwrap().iter().find(|n| complete(n)).unwrap();
    let id = leaf["id"].as_str().unwrap();
    let node = app.get(&format!("/api/v1/runs/{run}/nodes/{id}")).await.expect(200).body;
    assert_eq!(node["result"], "r");
    assert_eq!(node["output"], "r!");
    assert_eq!(node["parent"], run.to_string());
    assert_eq!(node["mapper"]["type"], "js");
    assert_eq!(node["action"]["url"], svc.at("/leaf"));
    let attempts = node["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["n"], 1);
    assert_eq!(attempts[0]["status"], "Complete");
    assert!(attempts[0]["dispatchedAt"].as_i64().unwrap() >= whole["createdAt"].as_i64().unwrap());

    let root = app.get(&format!("/api/v1/runs/{run}/nodes/{run}")).await.expect(200).body;
    assert_eq!(root["reducer"]["type"], "js");
    assert_eq!(root["counts"], json!({"Complete": 1, "Executing": 4}));
    assert_eq!(root["attempts"], json!([]));

    let page =
        app.get(&format!("/api/v1/runs/{run}/nodes/{run}/children?limit=2")).await.expect(200);
    let names: Vec<&str> = page
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["stepTree"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["leaf0", "leaf1"]);
    let mut seen = names.len();
    let mut next = next_link(&page);
    while let Some(url) = next {
        let page = app.get(&url).await.expect(200);
        seen += page.body.as_array().unwrap().len();
        next = next_link(&page);
    }
    assert_eq!(seen, 5);

    let other = app.start_run(app.put_tree(&seq("x", vec![])).await, json!(null)).await;
    app.get(&format!("/api/v1/runs/{other}/nodes/{id}")).await.expect(404);
    app.get(&format!("/api/v1/runs/{run}/nodes/nope")).await.expect(404);
    app.get(&format!("/api/v1/runs/{run}/nodes/{run}/children?after={other}")).await.expect(400);
}

#[tokio::test]
async fn no_read_shows_a_callback_token() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = seq("s", vec![api("a", &svc.at("/a")), api("b", &svc.at("/b"))]);
    let run = app.start_run(app.put_tree(&tree).await, json!(null)).await;
    let a = svc.next().await;
    app.post_raw(&a.fail_url(), "no").await.expect(200);
    app.wait_run(run, "Error").await;
    let token = a.callback.split("token=").nth(1).unwrap().to_owned();
    let node = app.run(run).await["children"][0]["id"].as_str().unwrap().to_owned();
    for path in [
        "/api/v1/runs".to_owned(),
        format!("/api/v1/runs/{run}"),
        format!("/api/v1/runs/{run}/nodes/{node}"),
        format!("/api/v1/runs/{run}/nodes/{run}/children"),
    ] {
        let body = app.get(&path).await.expect(200).body.to_string();
        assert!(!body.contains(&token), "{path} shows a token");
        assert!(!body.contains("token="), "{path} shows a callback URL");
    }
}
