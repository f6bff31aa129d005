//! Checked input: a step's `inputSchema` (JSON Schema, draft 2020-12), checked when a run
//! starts (a 422 and no run) and when an inner step starts (its node fails, nothing is sent)
//! (design.md, "Checked input").

use std::time::Duration;

use serde_json::{json, Value};

use super::{api, mapped, seq};
use crate::support::{TestApp, TestService};

/// An order: a customer and a list of items, each with a positive integer count.
fn order_schema() -> Value {
    json!({
        "type": "object",
        "required": ["customer", "items"],
        "properties": {
            "customer": {"type": "string"},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["sku", "count"],
                    "properties": {"sku": {"type": "string"}, "count": {"type": "integer", "minimum": 1}}
                }
            }
        }
    })
}

fn with_schema(mut step: Value, schema: Value) -> Value {
    step["inputSchema"] = schema;
    step
}

#[tokio::test]
async fn a_schema_that_is_not_a_json_schema_is_refused_naming_its_place() {
    let app = TestApp::spawn().await;
    let bad_type = with_schema(api("call", "http://127.0.0.1:9/x"), json!({"type": "strnig"}));
    let answer = app.put("/api/v1/steps", &bad_type).await.expect(422);
    let errors = answer.errors();
    assert!(errors[0].starts_with("inputSchema.type: not a valid JSON Schema"), "{errors:?}");

    let nested = seq(
        "outer",
        vec![with_schema(api("inner", "http://127.0.0.1:9/x"), json!({"minimum": "one"}))],
    );
    let errors = app.put("/api/v1/steps", &nested).await.expect(422).errors();
    assert!(errors[0].starts_with("children[0].inputSchema.minimum: "), "{errors:?}");

    let errors =
        app.put("/api/v1/steps", &with_schema(api("n", "http://127.0.0.1:9/x"), json!(5))).await;
    assert_eq!(errors.status, 400, "{:?}", errors.body);
    assert_eq!(errors.errors(), ["inputSchema: expected an object or a boolean, found a number"]);

    // A remote $ref is never fetched: it cannot be resolved, so the schema is refused.
    let remote = json!({"$ref": "http://127.0.0.1:9/schema.json"});
    let errors =
        app.put("/api/v1/steps", &with_schema(api("r", "http://127.0.0.1:9/x"), remote)).await;
    assert_eq!(errors.status, 422, "{:?}", errors.body);
}

#[tokio::test]
async fn a_run_whose_input_does_not_match_is_refused_naming_every_bad_place_and_not_made() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let step = app.put_tree(&with_schema(api("order", &svc.at("/order")), order_schema())).await;

    // The schema is part of the step, fat and slim.
    assert_eq!(app.tree(step).await["inputSchema"], order_schema());
    assert_eq!(app.slim(step).await["inputSchema"], order_schema());

    let start = format!("/api/v1/runs/step/{step}");
    let bad = json!({"items": [{"sku": 7, "count": 0}, {"sku": "b", "count": 2}]});
    let answer = app.post(&start, &json!({"input": bad})).await.expect(422);
    let mut errors = answer.errors();
    errors.sort();
    assert_eq!(
        errors,
        [
            "input.items[0].count: 0 is less than the minimum of 1",
            r#"input.items[0].sku: 7 is not of type "string""#,
            r#"input: "customer" is a required property"#,
        ]
    );
    // Text that is not JSON is checked as a string; no input is null.
    let errors = app.post(&start, &json!({"input": "not json"})).await.expect(422).errors();
    assert_eq!(errors, [r#"input: "not json" is not of type "object""#]);
    let errors = app.post(&start, &json!({})).await.expect(422).errors();
    assert_eq!(errors, [r#"input: null is not of type "object""#]);

    let runs = app.get(&format!("/api/v1/runs?stepId={step}")).await.expect(200).body;
    assert_eq!(runs, json!([]), "no run was made");
    svc.expect_none(Duration::from_millis(200)).await;

    let good = json!({"customer": "c1", "items": [{"sku": "a", "count": 1}]});
    let run = app.start_run(step, good).await;
    let got = svc.take(1).await;
    assert_eq!(serde_json::from_str::<Value>(&got[0].body).unwrap()["customer"], "c1");
    app.post_raw(&got[0].callback, "ok").await.expect(200);
    app.wait_run(run, "Complete").await;
}

#[tokio::test]
async fn an_inner_step_whose_input_does_not_match_fails_before_anything_is_sent() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let count = json!({"type": "object", "required": ["count"], "properties": {"count": {"type": "integer"}}});
    let call = with_schema(api("bill", &svc.at("/bill")), count.clone());
    // The mapper turns the root's input into the call's: a string count does not match.
    let tree = seq(
        "billing",
        vec![
            mapped(
                seq("prepare", vec![super::noop("pass")]),
                "function apply(data) { return JSON.stringify({count: JSON.parse(data).n}); }",
            ),
            call,
        ],
    );
    let step = app.put_tree(&tree).await;
    let run = app.start_run(step, json!({"n": "three"})).await;
    let done = app.wait_run(run, "Error").await;
    let bill = &done["children"][1];
    assert_eq!(bill["state"], "Error", "{done:#}");
    assert_eq!(bill["error"], r#"input: count: "three" is not of type "integer""#, "{done:#}");
    assert_eq!(bill["input"], r#"{"count":"three"}"#);
    assert_eq!(done["error"], bill["error"], "the run fails with the node's error");
    svc.expect_none(Duration::from_millis(300)).await;

    // A redrive on the latest definitions, whose schema takes a string too, sends it.
    let mut fixed = app.tree(step).await;
    fixed["children"][1]["inputSchema"]["properties"]["count"] =
        json!({"type": ["integer", "string"]});
    app.put("/api/v1/steps", &fixed).await.expect(200);
    app.post(&format!("/api/v1/runs/{run}/retry?definition=latest"), &json!({})).await.expect(200);
    let got = svc.take(1).await;
    assert_eq!(got[0].body, r#"{"count":"three"}"#);
    app.post_raw(&got[0].callback, "billed").await.expect(200);
    assert_eq!(app.wait_run(run, "Complete").await["result"], "billed");
}

#[tokio::test]
async fn each_map_instance_checks_its_own_item() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let child = with_schema(api("square", &svc.at("/sq")), json!({"type": "integer"}));
    let tree = json!({"name": "all", "stepType": "Map", "map": {}, "children": [child]});
    let step = app.put_tree(&tree).await;
    let run = app.start_run(step, json!([1, "two", 3])).await;
    let done = app.wait_run(run, "Error").await;
    assert_eq!(done["error"], r#"input: "two" is not of type "integer""#, "{done:#}");
    // A string item is passed raw, and checked as a string. The instance that failed failed the
    // run as it started, so the others, started by the same event, were never sent.
    let instances = app.get(&format!("/api/v1/runs/{run}/nodes/{run}/children")).await.expect(200);
    let states: Vec<&str> =
        instances.body.as_array().unwrap().iter().map(|n| n["state"].as_str().unwrap()).collect();
    assert_eq!(states[1], "Error", "{:#}", instances.body);
    assert_eq!(instances.body[1]["input"], "two");
    svc.expect_none(Duration::from_millis(300)).await;
}
