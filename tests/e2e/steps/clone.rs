//! `POST /steps/{id}/clone`: a deep copy of a tree under a new name, with new ids.

use serde_json::{json, Value};
use uuid::Uuid;

use super::{action, js};
use crate::support::TestApp;

/// Every id in a fat tree, in pre-order.
fn ids(tree: &Value) -> Vec<Uuid> {
    let mut out = vec![tree["id"].as_str().unwrap().parse().unwrap()];
    for child in tree["children"].as_array().unwrap() {
        out.extend(ids(child));
    }
    out
}

/// A fat tree without its ids, to compare contents.
fn without_ids(tree: &Value) -> Value {
    let mut tree = tree.clone();
    tree.as_object_mut().unwrap().remove("id");
    if let Some(children) = tree["children"].as_array_mut() {
        for child in children.iter_mut() {
            *child = without_ids(child);
        }
    }
    tree
}

#[tokio::test]
async fn a_clone_copies_every_step_under_new_ids_and_changes_apart_from_the_original() {
    let app = TestApp::spawn().await;
    let shared = app.put_tree(&action("shared", "http://127.0.0.1:9/shared")).await;
    let mut leaf = action("mapped", "http://127.0.0.1:9/m");
    leaf["mapper"] = js("function apply(d) { return d + '!'; }");
    let tree = json!({"name": "order", "stepType": "Sequential", "children": [
        leaf, {"id": shared}, {"name": "both", "stepType": "Parallel", "children": [{"id": shared}]},
    ]});
    let original = app.put_tree(&tree).await;
    let before = app.tree(original).await;

    let answer =
        app.post(&format!("/api/v1/steps/{original}/clone"), &json!({"name": "order v2"})).await;
    let answer = answer.expect(201);
    let copy = answer.id();
    assert_eq!(answer.header("location"), Some(format!("/api/v1/steps/{copy}").as_str()));
    let copied = app.tree(copy).await;
    assert_eq!(copied["name"], "order v2");
    let mut renamed = without_ids(&before);
    renamed["name"] = json!("order v2");
    assert_eq!(without_ids(&copied), renamed, "the same contents: scripts, actions, mappers");
    let (old, new) = (ids(&before), ids(&copied));
    assert!(new.iter().all(|id| !old.contains(id)), "every step has a new id: {old:?} {new:?}");
    assert_eq!(new[2], new[4], "a step used twice is copied once, and used twice");

    // Changing the copy leaves the original as it was.
    app.put(
        "/api/v1/steps/slim",
        &json!({"id": new[2], "name": "shared copy", "stepType": "Action",
        "action": {"type": "api", "url": "http://127.0.0.1:9/other"}, "children": []}),
    )
    .await
    .expect(200);
    assert_eq!(app.tree(original).await, before);

    // Without a name, the copy is named after the tree.
    let again =
        app.post(&format!("/api/v1/steps/{original}/clone"), &json!(null)).await.expect(201).id();
    assert_eq!(app.tree(again).await["name"], "order (copy)");
}

#[tokio::test]
async fn a_bad_clone_is_refused() {
    let app = TestApp::spawn().await;
    let step = app.put_tree(&action("a", "http://127.0.0.1:9/a")).await;
    let url = format!("/api/v1/steps/{step}/clone");
    assert_eq!(
        app.post(&url, &json!({"name": " "})).await.expect(400).errors(),
        ["name: must not be empty"]
    );
    assert_eq!(
        app.post(&url, &json!({"name": 5})).await.expect(400).errors(),
        ["name: expected a string, found 5"]
    );
    assert_eq!(
        app.post(&url, &json!({"title": "x"})).await.expect(400).errors(),
        ["title: unknown field: expected name"]
    );
    let long = "x".repeat(10_000);
    assert_eq!(app.post(&url, &json!({"name": long})).await.status, 422);
    let gone = Uuid::now_v7();
    let answer = app.post(&format!("/api/v1/steps/{gone}/clone"), &json!({})).await.expect(404);
    assert_eq!(answer.errors(), [format!("no step with id {gone}")]);
}
