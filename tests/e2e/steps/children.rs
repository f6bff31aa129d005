//! `POST /steps/{id}/children` and `GET /steps/{id}/parents`; cycles and sizes with reuse
//! expanded, however the graph is changed.

use serde_json::json;
use uuid::Uuid;

use super::{action, js};
use crate::support::TestApp;

#[tokio::test]
async fn setting_children_replaces_the_ordered_list() {
    let app = TestApp::spawn().await;
    let a = app.create_step(&action("a", "http://a.test/")).await;
    let b = app.create_step(&action("b", "http://b.test/")).await;
    let s = app.create_step(&json!({"name": "s", "stepType": "Sequential", "children": [a]})).await;

    let mapper = js("function apply(d) { return d; }");
    let answer = app.set_children(s, &json!([b, {"id": a, "mapper": mapper}, b])).await.expect(200);
    assert_eq!(answer.id(), s);
    assert_eq!(
        app.slim(s).await["children"],
        json!([{"id": b, "mapper": null}, {"id": a, "mapper": mapper}, {"id": b, "mapper": null}])
    );
    let names: Vec<String> = app.tree(s).await["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["b", "a", "b"]);

    // The bare array is accepted too, and an empty list clears the children.
    app.post(&format!("/api/v1/steps/{s}/children"), &json!([a])).await.expect(200);
    assert_eq!(app.slim(s).await["children"], json!([{"id": a, "mapper": null}]));
    app.set_children(s, &json!([])).await.expect(200);
    assert_eq!(app.slim(s).await["children"], json!([]));
}

#[tokio::test]
async fn setting_children_is_refused_for_an_unknown_parent_an_action_or_a_bad_list() {
    let app = TestApp::spawn().await;
    let a = app.create_step(&action("a", "http://a.test/")).await;
    let s = app.create_step(&json!({"name": "s", "stepType": "Sequential"})).await;
    let missing = Uuid::new_v4();

    let answer = app.set_children(missing, &json!([a])).await.expect(404);
    assert_eq!(answer.errors(), [format!("no step with id {missing}")]);

    let answer = app.set_children(a, &json!([s])).await.expect(422);
    assert_eq!(
        answer.errors(),
        [format!("children: step {a} is an Action, and an Action step has no children")]
    );

    let answer = app.set_children(s, &json!([a, {"id": missing}])).await.expect(422);
    assert_eq!(answer.errors(), [format!("children[1].id: no step with id {missing}")]);

    let answer = app
        .set_children(
            s,
            &json!([a, "not-a-uuid", {"mapper": {"type": "js", "js": "function apply(d) {"}}]),
        )
        .await;
    let errors = answer.expect(400).errors();
    assert!(errors.contains(&"children[1]: \"not-a-uuid\" is not a UUID".to_owned()), "{errors:?}");
    assert!(errors.contains(&"children[2].id: required".to_owned()), "{errors:?}");

    let answer =
        app.post(&format!("/api/v1/steps/{s}/children"), &json!({"kids": []})).await.expect(400);
    assert!(answer.errors()[0].starts_with("kids: unknown field"), "{:?}", answer.errors());

    assert_eq!(app.slim(s).await["children"], json!([]), "nothing changed");
}

#[tokio::test]
async fn a_cycle_is_refused_however_it_would_be_made() {
    let app = TestApp::spawn().await;
    let leaf = app.create_step(&action("leaf", "http://leaf.test/")).await;
    let top = app
        .create_step(&json!({"name": "top", "stepType": "Sequential", "children": [leaf]}))
        .await;
    let mid =
        app.create_step(&json!({"name": "mid", "stepType": "Parallel", "children": [top]})).await;

    // top → mid → top, through the child list.
    let answer = app.set_children(top, &json!([leaf, mid])).await.expect(422);
    assert_eq!(answer.errors(), ["the steps would form a cycle: \"top\" → \"mid\" → \"top\""]);

    // A step that is its own child.
    let answer = app.set_children(mid, &json!([mid])).await.expect(422);
    assert_eq!(answer.errors(), ["the steps would form a cycle: \"mid\" → \"mid\""]);

    // Through a slim PUT, and through a fat tree that redefines a stored step.
    let slim = json!({"id": top, "name": "top", "stepType": "Sequential", "children": [mid]});
    app.put("/api/v1/steps/slim", &slim).await.expect(422);
    let fat = json!({"id": top, "name": "top", "stepType": "Sequential", "children": [
        {"name": "new", "stepType": "Sequential", "children": [{"id": mid}]}]});
    let answer = app.put("/api/v1/steps", &fat).await.expect(422);
    assert!(
        answer.errors()[0]
            .starts_with("the steps would form a cycle: \"top\" → \"new\" → \"mid\" → \"top\""),
        "{:?}",
        answer.errors()
    );

    assert_eq!(
        app.slim(top).await["children"],
        json!([{"id": leaf, "mapper": null}]),
        "nothing changed"
    );
}

#[tokio::test]
async fn two_edits_racing_to_close_a_cycle_cannot_both_win() {
    let app = TestApp::spawn().await;
    for _ in 0..5 {
        let a = app.create_step(&json!({"name": "a", "stepType": "Sequential"})).await;
        let b = app.create_step(&json!({"name": "b", "stepType": "Sequential"})).await;
        let (to_b, to_a) = (json!([b]), json!([a]));
        let (ab, ba) = tokio::join!(app.set_children(a, &to_b), app.set_children(b, &to_a));
        let mut statuses = [ab.status, ba.status];
        statuses.sort();
        assert_eq!(statuses, [200, 422], "exactly one edit wins: {ab:?} {ba:?}");
    }
}

#[tokio::test]
async fn sizes_count_reused_steps_every_time_they_appear() {
    // 10 nodes at most in a tree.
    let app = TestApp::spawn_with(&[("AETR_MAX_NODES", "10")]).await;
    let leaf = app.create_step(&action("leaf", "http://leaf.test/")).await;
    let pair = app
        .create_step(&json!({"name": "pair", "stepType": "Parallel", "children": [leaf, leaf]}))
        .await;
    // 1 + 3 * 3 = 10 nodes: within the limit, though only 3 steps are stored.
    let root = app
        .create_step(
            &json!({"name": "root", "stepType": "Sequential", "children": [pair, pair, pair]}),
        )
        .await;
    // A fourth pair makes 13.
    let answer = app.set_children(root, &json!([pair, pair, pair, pair])).await.expect(422);
    assert_eq!(
        answer.errors(),
        ["the tree has 13 nodes with reuse expanded, more than the limit of 10 (AETR_MAX_NODES)"]
    );

    // Growing `pair` grows `root`'s tree too: 1 + 3 * 4 = 13.
    let answer = app.set_children(pair, &json!([leaf, leaf, leaf])).await.expect(422);
    assert_eq!(
        answer.errors(),
        [format!("in the tree of step \"root\" ({root}), which uses this one: the tree has 13 nodes with reuse expanded, more than the limit of 10 (AETR_MAX_NODES)")]
    );
    assert_eq!(app.slim(pair).await["children"].as_array().unwrap().len(), 2, "nothing changed");
}

#[tokio::test]
async fn depth_counts_levels_with_reuse_expanded() {
    let app = TestApp::spawn_with(&[("AETR_MAX_DEPTH", "2")]).await;
    let leaf = app.create_step(&action("leaf", "http://leaf.test/")).await;
    let one = app
        .create_step(&json!({"name": "one", "stepType": "Sequential", "children": [leaf]}))
        .await;
    let two =
        app.create_step(&json!({"name": "two", "stepType": "Sequential", "children": [one]})).await;
    let answer = app
        .post(
            "/api/v1/steps",
            &json!({"name": "three", "stepType": "Sequential", "children": [two]}),
        )
        .await;
    assert_eq!(
        answer.expect(422).errors(),
        ["the tree is 3 levels deep with reuse expanded, more than the limit of 2 (AETR_MAX_DEPTH)"]
    );
}

#[tokio::test]
async fn parents_lists_each_step_that_uses_this_one_once() {
    let app = TestApp::spawn().await;
    let leaf = app.create_step(&action("leaf", "http://leaf.test/")).await;
    let twice = app
        .create_step(&json!({"name": "twice", "stepType": "Parallel", "children": [leaf, leaf]}))
        .await;
    let once = app
        .create_step(&json!({"name": "once", "stepType": "Sequential", "children": [leaf]}))
        .await;
    let _unrelated = app.create_step(&json!({"name": "other", "stepType": "Sequential"})).await;

    let mut parents = app.get(&format!("/api/v1/steps/{leaf}/parents")).await.expect(200).body;
    let list = parents.as_array_mut().unwrap();
    list.sort_by_key(|p| p["name"].as_str().unwrap().to_owned());
    assert_eq!(
        parents,
        json!([{"id": once, "name": "once", "stepType": "Sequential"},
               {"id": twice, "name": "twice", "stepType": "Parallel"}])
    );
    assert_eq!(app.get(&format!("/api/v1/steps/{once}/parents")).await.expect(200).body, json!([]));
    let missing = Uuid::new_v4();
    let answer = app.get(&format!("/api/v1/steps/{missing}/parents")).await.expect(404);
    assert_eq!(answer.errors(), [format!("no step with id {missing}")]);
}
