//! Bad input: every error names what is wrong, with the status design.md gives, and nothing is
//! saved.

use reqwest::Method;
use serde_json::json;

use super::{action, js};
use crate::support::TestApp;

#[tokio::test]
async fn shape_errors_are_400s_that_name_every_bad_field() {
    let app = TestApp::spawn().await;
    let tree = json!({"name": "root", "stepType": "Sequence", "colour": "red", "children": [
        {"name": "a", "stepType": "Action", "action": {"type": "api"}},
        {"name": "", "stepType": "Action", "action": {"type": "api", "url": "ftp://x.test/", "retry": {"maxAttempts": 0}}},
        {"stepType": "Parallel", "reducer": {"type": "first"}}
    ]});
    let errors = app.put("/api/v1/steps", &tree).await.expect(400).errors();
    for expected in [
        "colour: unknown field",
        "stepType: unknown value \"Sequence\"",
        "children[0].action.url: required",
        "children[1].name: must not be empty",
        "children[1].action.url: ",
        "children[1].action.retry.maxAttempts: must be at least 1",
        "children[2].name: required",
        "children[2].reducer.type: unknown value \"first\"",
    ] {
        assert!(errors.iter().any(|e| e.starts_with(expected)), "no {expected:?} in {errors:#?}");
    }
    assert_eq!(app.get("/api/v1/steps").await.body, json!([]));
}

#[tokio::test]
async fn a_script_that_does_not_compile_is_a_422_at_its_field() {
    let app = TestApp::spawn().await;
    let tree = json!({"name": "p", "stepType": "Parallel",
        "reducer": js("function apply(rs) { return rs.length; }"),
        "children": [{"name": "a", "stepType": "Action", "action": {"type": "no-op"},
                      "mapper": js("function apply(d) { return d +; }")}]});
    let errors = app.put("/api/v1/steps", &tree).await.expect(422).errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("children[0].mapper.js: "), "{errors:?}");

    let no_apply = json!({"name": "p", "stepType": "Parallel", "reducer": js("function reduce(rs) { return 1; }")});
    let errors = app.post("/api/v1/steps", &no_apply).await.expect(422).errors();
    assert!(errors[0].starts_with("reducer.js: "), "{errors:?}");
    assert!(errors[0].contains("apply"), "{errors:?}");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::PUT, "/api/v1/steps"),
        (Method::POST, "/api/v1/steps"),
        (Method::PUT, "/api/v1/steps/slim"),
    ] {
        let answer =
            app.send(method.clone(), path, Some("{\"name\": ".to_owned())).await.expect(400);
        assert!(
            answer.errors()[0].starts_with("not valid JSON: "),
            "{method} {path}: {:?}",
            answer.errors()
        );
        let answer = app.send(method.clone(), path, Some(String::new())).await.expect(400);
        assert_eq!(answer.errors(), ["the body is empty; expected JSON"]);
        let answer = app.send(method, path, Some("[1, 2]".to_owned())).await.expect(400);
        assert_eq!(answer.errors(), ["expected an object, found an array"]);
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_naming_the_limit() {
    let app = TestApp::spawn_with(&[("AETR_MAX_DEFINITION_BYTES", "1000")]).await;
    let mut big = action("big", "http://big.test/");
    big["action"]["headers"] = json!({"X-Pad": "x".repeat(2000)});
    for (method, path) in [
        (Method::PUT, "/api/v1/steps"),
        (Method::POST, "/api/v1/steps"),
        (Method::PUT, "/api/v1/steps/slim"),
    ] {
        let answer = app.send(method, path, Some(big.to_string())).await.expect(413);
        assert_eq!(
            answer.errors(),
            ["the body is larger than the limit of 1000 bytes for a step definition (AETR_MAX_DEFINITION_BYTES)"]
        );
    }
    app.put("/api/v1/steps", &action("small", "http://small.test/")).await.expect(200);
}

#[tokio::test]
async fn a_malformed_id_is_a_404_on_every_step_endpoint() {
    let app = TestApp::spawn().await;
    for (method, path) in [
        (Method::GET, "/api/v1/steps/not-a-uuid"),
        (Method::GET, "/api/v1/steps/not-a-uuid/slim"),
        (Method::GET, "/api/v1/steps/not-a-uuid/parents"),
        (Method::POST, "/api/v1/steps/not-a-uuid/children"),
        (Method::DELETE, "/api/v1/steps/not-a-uuid"),
    ] {
        let body = (method == Method::POST).then(|| "{\"children\": []}".to_owned());
        let answer = app.send(method.clone(), path, body).await.expect(404);
        assert_eq!(answer.errors(), ["no step with id \"not-a-uuid\""], "{method} {path}");
    }
    let missing = uuid::Uuid::new_v4();
    let answer = app.get(&format!("/api/v1/steps/{missing}")).await.expect(404);
    assert_eq!(answer.errors(), [format!("no step with id {missing}")]);
    app.get(&format!("/api/v1/steps/{missing}/slim")).await.expect(404);
}

#[tokio::test]
async fn unknown_endpoints_and_methods_get_json_errors() {
    let app = TestApp::spawn().await;
    let answer = app.get("/api/v1/nothing").await.expect(404);
    assert_eq!(answer.errors(), ["no such endpoint: GET /api/v1/nothing"]);
    let answer = app.send(Method::PATCH, "/api/v1/steps", None).await.expect(405);
    assert_eq!(answer.errors(), ["PATCH is not allowed on /api/v1/steps; use GET, PUT, POST"]);
    assert_eq!(answer.header("allow"), Some("GET, PUT, POST"));
    let answer = app.send(Method::GET, "/api/v1/steps/slim", None).await.expect(405);
    assert_eq!(answer.errors(), ["GET is not allowed on /api/v1/steps/slim; use PUT"]);
    assert_eq!(answer.header("allow"), Some("PUT"));
}
