//! `POST /steps`, `PUT /steps/slim` and `GET /steps/{id}/slim`.

use serde_json::json;
use uuid::Uuid;

use super::{action, js};
use crate::support::TestApp;

#[tokio::test]
async fn creating_a_step_answers_201_with_its_location() {
    let app = TestApp::spawn().await;
    let answer = app.post("/api/v1/steps", &action("a", "http://a.test/")).await.expect(201);
    let id = answer.id();
    assert_eq!(answer.header("location"), Some(format!("/api/v1/steps/{id}").as_str()));
    let slim = app.slim(id).await;
    assert_eq!(
        slim,
        json!({"id": id, "name": "a", "stepType": "Action",
               "action": {"type": "api", "url": "http://a.test/"}, "reducer": null, "children": []})
    );
}

#[tokio::test]
async fn creating_a_step_with_an_id_that_exists_is_a_conflict() {
    let app = TestApp::spawn().await;
    let id = Uuid::new_v4();
    let mut step = action("a", "http://a.test/");
    step["id"] = json!(id);
    assert_eq!(app.create_step(&step).await, id);
    step["name"] = json!("b");
    let answer = app.post("/api/v1/steps", &step).await.expect(409);
    assert!(
        answer.errors()[0].contains(&format!("a step with id {id} already exists")),
        "{:?}",
        answer.errors()
    );
    assert_eq!(app.slim(id).await["name"], "a", "the first step is unchanged");
}

#[tokio::test]
async fn children_are_given_by_id_as_strings_or_links_with_mappers() {
    let app = TestApp::spawn().await;
    let a = app.create_step(&action("a", "http://a.test/")).await;
    let b = app.create_step(&action("b", "http://b.test/")).await;
    let mapper = js("function apply(d) { return d.toUpperCase(); }");
    let parent = app
        .create_step(&json!({"name": "p", "stepType": "Parallel",
            "reducer": js("function apply(rs) { return rs.join(); }"),
            "children": [a, {"id": b, "mapper": mapper}, {"id": a}]}))
        .await;
    let slim = app.slim(parent).await;
    assert_eq!(slim["action"], json!(null));
    assert_eq!(slim["reducer"]["type"], "js");
    assert_eq!(
        slim["children"],
        json!([{"id": a, "mapper": null}, {"id": b, "mapper": mapper}, {"id": a, "mapper": null}])
    );
}

#[tokio::test]
async fn put_slim_inserts_then_replaces_one_step_and_round_trips() {
    let app = TestApp::spawn().await;
    let a = app.create_step(&action("a", "http://a.test/")).await;

    let answer = app
        .put("/api/v1/steps/slim", &json!({"name": "s", "stepType": "Sequential", "children": [a]}))
        .await;
    let id = answer.expect(200).id();
    let mut slim = app.slim(id).await;
    assert_eq!(slim["children"], json!([{"id": a, "mapper": null}]));

    slim["name"] = json!("renamed");
    slim["children"] = json!([{"id": a, "mapper": js("function apply(d) { return d; }")}, {"id": a, "mapper": null}]);
    assert_eq!(app.put("/api/v1/steps/slim", &slim).await.expect(200).id(), id);
    assert_eq!(app.slim(id).await, slim, "GET returns what was PUT");

    slim["stepType"] = json!("Action");
    slim["action"] = json!({"type": "no-op"});
    slim["children"] = json!([]);
    app.put("/api/v1/steps/slim", &slim).await.expect(200);
    assert_eq!(app.slim(id).await, slim, "a step can change its kind");
}

#[tokio::test]
async fn a_slim_step_with_an_unknown_child_is_refused_and_nothing_is_saved() {
    let app = TestApp::spawn().await;
    let a = app.create_step(&action("a", "http://a.test/")).await;
    let missing = Uuid::new_v4();
    let body = json!({"name": "s", "stepType": "Sequential", "children": [a, {"id": missing}]});
    for (method, path) in [("POST", "/api/v1/steps"), ("PUT", "/api/v1/steps/slim")] {
        let answer =
            app.send(method.parse().unwrap(), path, Some(body.to_string())).await.expect(422);
        assert_eq!(
            answer.errors(),
            [format!("children[1].id: no step with id {missing}")],
            "{method} {path}"
        );
    }
    assert_eq!(app.get("/api/v1/steps").await.body.as_array().unwrap().len(), 1);
}
