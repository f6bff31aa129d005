//! `DELETE /steps/{id}`.

use serde_json::json;

use super::action;
use crate::support::TestApp;

#[tokio::test]
async fn deleting_a_step_answers_204_and_it_is_gone() {
    let app = TestApp::spawn().await;
    let a = app.create_step(&action("a", "http://a.test/")).await;
    let answer = app.delete(&format!("/api/v1/steps/{a}")).await.expect(204);
    assert_eq!(answer.body, json!(""));
    app.get(&format!("/api/v1/steps/{a}")).await.expect(404);
    let answer = app.delete(&format!("/api/v1/steps/{a}")).await.expect(404);
    assert_eq!(answer.errors(), [format!("no step with id {a}")]);
}

#[tokio::test]
async fn a_step_in_use_cannot_be_deleted_until_no_step_uses_it() {
    let app = TestApp::spawn().await;
    let leaf = app.create_step(&action("leaf", "http://leaf.test/")).await;
    let parent = app
        .create_step(&json!({"name": "parent", "stepType": "Sequential", "children": [leaf, leaf]}))
        .await;

    let answer = app.delete(&format!("/api/v1/steps/{leaf}")).await.expect(409);
    assert_eq!(
        answer.errors(),
        [format!("step {leaf} is a child of 1 step(s): \"parent\" ({parent}); remove it from their children first")]
    );
    assert_eq!(app.slim(leaf).await["name"], "leaf");

    // Deleting the parent removes its links, and frees the child.
    app.delete(&format!("/api/v1/steps/{parent}")).await.expect(204);
    app.delete(&format!("/api/v1/steps/{leaf}")).await.expect(204);
}

#[tokio::test]
async fn the_conflict_names_the_first_users_and_counts_the_rest() {
    let app = TestApp::spawn().await;
    let leaf = app.create_step(&action("leaf", "http://leaf.test/")).await;
    for i in 0..7 {
        app.create_step(
            &json!({"name": format!("user {i}"), "stepType": "Sequential", "children": [leaf]}),
        )
        .await;
    }
    let error = &app.delete(&format!("/api/v1/steps/{leaf}")).await.expect(409).errors()[0];
    assert!(error.starts_with(&format!("step {leaf} is a child of 7 step(s): ")), "{error}");
    assert!(error.contains("and 2 more; remove it from their children first"), "{error}");
}
