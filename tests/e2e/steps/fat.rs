//! `PUT /steps` (a whole nested tree) and `GET /steps/{id}`.

use serde_json::json;
use uuid::Uuid;

use super::{action, js};
use crate::support::TestApp;

#[tokio::test]
async fn a_tree_without_ids_is_saved_with_new_ids_and_read_back_whole() {
    let app = TestApp::spawn().await;
    let tree = json!({
        "name": "enrich", "stepType": "Sequential",
        "children": [
            {"name": "fetch", "stepType": "Action",
             "action": {"type": "api", "url": "http://fetcher.test/fetch?x=1",
                        "headers": {"X-Zeta": "1", "Authorization": "Bearer t", "X-Alpha": "2"},
                        "retry": {"maxAttempts": 5, "backoffMs": 500, "maxBackoffMs": 30000},
                        "timeoutSeconds": 10, "callbackTimeoutSeconds": null,
                        "onTimeout": "retry", "mode": "callback"},
             "mapper": js("function apply(d) { return JSON.parse(d).items; }")},
            {"name": "score-all", "stepType": "Parallel",
             "reducer": js("function apply(rs) { return rs.length; }"),
             "children": [
                 {"name": "a", "stepType": "Action", "action": {"type": "no-op"}},
                 {"name": "b", "stepType": "Action", "action": {"type": "api", "url": "http://b.test/", "mode": "sync"},
                  "mapper": {"type": "no-op"}}
             ]}
        ]
    });
    let id = app.put_tree(&tree).await;
    let got = app.tree(id).await;

    assert_eq!(got["id"], id.to_string());
    assert_eq!(got["name"], "enrich");
    assert_eq!(got["stepType"], "Sequential");
    assert!(
        got.get("action").is_none() && got.get("reducer").is_none() && got.get("mapper").is_none()
    );
    let fetch = &got["children"][0];
    assert_eq!(fetch["action"], tree["children"][0]["action"], "the action comes back as given");
    let header_names: Vec<&String> =
        fetch["action"]["headers"].as_object().unwrap().keys().collect();
    assert_eq!(header_names, ["X-Zeta", "Authorization", "X-Alpha"], "headers keep their order");
    assert_eq!(fetch["mapper"], tree["children"][0]["mapper"]);
    assert_eq!(fetch["children"], json!([]));
    let scores = &got["children"][1];
    assert_eq!(scores["reducer"], tree["children"][1]["reducer"]);
    assert_eq!(scores["children"][0]["action"], json!({"type": "no-op"}));
    assert_eq!(scores["children"][1]["mapper"], json!({"type": "no-op"}));
    let ids: Vec<Uuid> = [&got, fetch, scores, &scores["children"][0], &scores["children"][1]]
        .iter()
        .map(|n| n["id"].as_str().unwrap().parse().unwrap())
        .collect();
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 5, "every step got its own id: {ids:?}");

    // What GET returns can be PUT back unchanged.
    assert_eq!(app.put_tree(&got).await, id);
    assert_eq!(app.tree(id).await, got);
}

#[tokio::test]
async fn a_parallel_step_without_a_reducer_reads_back_with_the_default_last() {
    let app = TestApp::spawn().await;
    let id = app
        .put_tree(&json!({"name": "p", "stepType": "Parallel", "children": [action("a", "http://a.test/")]}))
        .await;
    assert_eq!(app.tree(id).await["reducer"], json!({"type": "last"}));
}

#[tokio::test]
async fn putting_a_tree_with_known_ids_replaces_those_steps() {
    let app = TestApp::spawn().await;
    let root = Uuid::new_v4();
    let leaf = Uuid::new_v4();
    let first = json!({"id": root, "name": "v1", "stepType": "Sequential",
        "children": [{"id": leaf, "name": "leaf", "stepType": "Action", "action": {"type": "no-op"}}]});
    assert_eq!(app.put_tree(&first).await, root);
    let second = json!({"id": root, "name": "v2", "stepType": "Parallel",
        "children": [{"id": leaf, "name": "leaf2", "stepType": "Action", "action": {"type": "api", "url": "http://x.test/"}},
                     {"id": leaf}]});
    assert_eq!(app.put_tree(&second).await, root);
    let got = app.tree(root).await;
    assert_eq!(got["name"], "v2");
    assert_eq!(got["stepType"], "Parallel");
    assert_eq!(
        got["children"].as_array().unwrap().len(),
        2,
        "the same step twice, keyed by position"
    );
    for child in got["children"].as_array().unwrap() {
        assert_eq!(child["name"], "leaf2");
        assert_eq!(child["action"]["url"], "http://x.test/");
    }
}

#[tokio::test]
async fn a_child_given_by_id_reuses_the_stored_step_and_leaves_it_unchanged() {
    let app = TestApp::spawn().await;
    let shared = app.create_step(&action("shared", "http://shared.test/")).await;
    let tree = json!({"name": "root", "stepType": "Sequential", "children": [
        {"id": shared, "mapper": js("function apply(d) { return d + '!'; }")},
        {"name": "inner", "stepType": "Parallel", "children": [{"id": shared}]}
    ]});
    let root = app.put_tree(&tree).await;
    let got = app.tree(root).await;
    assert_eq!(got["children"][0]["id"], shared.to_string());
    assert_eq!(got["children"][0]["name"], "shared", "the stored step, whole");
    assert_eq!(got["children"][0]["action"]["url"], "http://shared.test/");
    assert_eq!(got["children"][0]["mapper"], tree["children"][0]["mapper"]);
    assert_eq!(got["children"][1]["children"][0]["name"], "shared");
    assert!(got["children"][1]["children"][0].get("mapper").is_none());
    assert_eq!(app.slim(shared).await["name"], "shared");
}

#[tokio::test]
async fn a_child_given_by_an_unknown_id_is_refused_at_its_path() {
    let app = TestApp::spawn().await;
    let missing = Uuid::new_v4();
    let tree = json!({"name": "root", "stepType": "Sequential", "children": [
        action("a", "http://a.test/"),
        {"name": "p", "stepType": "Parallel", "children": [{"id": missing}]}
    ]});
    let answer = app.put("/api/v1/steps", &tree).await.expect(422);
    assert_eq!(answer.errors(), [format!("children[1].children[0].id: no step with id {missing}")]);
    assert_eq!(app.get("/api/v1/steps").await.body, json!([]), "nothing was saved");
}

#[tokio::test]
async fn reading_a_tree_repeats_a_reused_step_wherever_it_appears() {
    let app = TestApp::spawn().await;
    let leaf = app.create_step(&action("leaf", "http://leaf.test/")).await;
    let pair = app
        .create_step(&json!({"name": "pair", "stepType": "Parallel", "children": [leaf, leaf]}))
        .await;
    let root = app
        .create_step(&json!({"name": "root", "stepType": "Sequential",
            "children": [pair, {"id": pair, "mapper": js("function apply(d) { return d; }")}]}))
        .await;
    let got = app.tree(root).await;
    let leaves: Vec<&str> = got["children"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["children"].as_array().unwrap())
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(leaves, ["leaf"; 4]);
    assert!(got["children"][0].get("mapper").is_none());
    assert_eq!(got["children"][1]["mapper"]["type"], "js");
}
