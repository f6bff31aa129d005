//! `POST /scripts/try`: a script run on given data, or on a run node's real data, in the same
//! workers and limits as runs, changing nothing.

use serde_json::{json, Value};

use crate::runs::{api, mapped, par_js, seq};
use crate::support::{TestApp, TestService};

async fn tried(app: &TestApp, body: Value) -> Value {
    let answer = app.post("/api/v1/scripts/try", &body).await.expect(200);
    assert!(answer.body["tookMs"].is_u64(), "{:?}", answer.body);
    answer.body
}

#[tokio::test]
async fn a_script_is_tried_on_given_data_and_says_what_it_returned_or_why_it_failed() {
    let app = TestApp::spawn().await;
    let double = "function apply(d) { return JSON.parse(d).n * 2; }";
    let out = tried(&app, json!({"kind": "mapper", "js": double, "input": "{\"n\": 2}"})).await;
    assert_eq!((&out["input"], &out["result"]), (&json!("{\"n\": 2}"), &json!("4")));
    assert!(out.get("error").is_none());
    // Any other JSON is its text, as a run's input is.
    let out = tried(&app, json!({"kind": "branch", "js": double, "input": {"n": 5}})).await;
    assert_eq!((&out["input"], &out["result"]), (&json!("{\"n\":5}"), &json!("10")));

    let joined = "function apply(rs) { return rs.map(String).join('|'); }";
    let out = tried(&app, json!({"kind": "reducer", "js": joined, "input": ["a", null, 3]})).await;
    assert_eq!((&out["input"], &out["result"]), (&json!(["a", null, "3"]), &json!("a|null|3")));
    let out = tried(&app, json!({"kind": "items", "js": "function apply(d) { return d; }"})).await;
    assert_eq!((&out["input"], &out["result"]), (&Value::Null, &Value::Null), "no data, no result");

    let thrown = tried(&app, json!({"kind": "mapper", "js": "function apply(d) { return JSON.parse(d).m.x; }", "input": "{}"})).await;
    assert!(thrown.get("result").is_none());
    assert!(thrown["error"].as_str().unwrap().contains("undefined"), "{thrown}");
    let syntax =
        tried(&app, json!({"kind": "mapper", "js": "function apply(d) { return (", "input": "x"}))
            .await;
    assert!(!syntax["error"].as_str().unwrap().is_empty(), "{syntax}");
    let nothing = tried(&app, json!({"kind": "mapper", "js": "var x = 1;", "input": "x"})).await;
    assert!(nothing["error"].as_str().unwrap().contains("apply"), "{nothing}");
    // The same limits as a run's scripts.
    let endless =
        tried(&app, json!({"kind": "items", "js": "function apply(d) { for (;;) {} }"})).await;
    assert!(endless["error"].as_str().unwrap().contains("limit"), "{endless}");
}

#[tokio::test]
async fn a_script_is_tried_on_a_run_nodes_real_data_without_changing_the_run() {
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    let tree = par_js(
        "both",
        "function apply(rs) { return rs.join('+'); }",
        vec![
            mapped(api("a", &svc.at("/a")), "function apply(d) { return d.toUpperCase(); }"),
            api("b", &svc.at("/b")),
        ],
    );
    let run = app.start_run(app.put_tree(&seq("root", vec![tree])).await, json!("in")).await;
    for call in svc.take(2).await {
        let result = if call.path == "/a" { "ra" } else { "rb" };
        app.post_raw(&call.callback, result).await.expect(200);
    }
    let done = app.wait_run(run, "Complete").await;
    let both = &done["children"][0];
    let a = both["children"][0]["id"].clone();

    let echo = "function apply(d) { return JSON.stringify(d); }";
    let out = tried(&app, json!({"kind": "reducer", "js": echo, "node": both["id"]})).await;
    assert_eq!(out["input"], json!(["RA", "rb"]), "the children's mapped results, in child order");
    assert_eq!(out["result"], r#"["RA","rb"]"#);
    let out = tried(&app, json!({"kind": "mapper", "js": echo, "node": a})).await;
    assert_eq!(out["input"], "ra", "a mapper gets the node's own result");
    let out = tried(&app, json!({"kind": "branch", "js": echo, "node": a})).await;
    assert_eq!(out["input"], "in", "a Branch function gets the node's input");
    assert_eq!(app.run(run).await, done, "the run is unchanged");
}

#[tokio::test]
async fn a_bad_try_is_refused_naming_each_field() {
    let app = TestApp::spawn().await;
    let answer = app
        .post(
            "/api/v1/scripts/try",
            &json!({"kind": "filter", "js": 5, "input": 1, "node": "x", "extra": 1}),
        )
        .await
        .expect(400);
    assert_eq!(
        answer.errors(),
        [
            "extra: unknown field: expected kind, js, input or node",
            r#"kind: expected one of "mapper", "reducer", "branch" or "items", found "filter""#,
            "js: expected the script's source as a string, found 5",
            r#"node: expected a node's id, found "x""#,
        ]
    );
    let js = "function apply(d) { return d; }";
    let cases = [
        (json!({"js": js}), "kind: required"),
        (
            json!({"kind": "mapper", "js": " "}),
            "js: the script is empty: it must define function apply",
        ),
        (
            json!({"kind": "reducer", "js": js, "input": "x"}),
            r#"input: a reducer gets an array of results, found "x""#,
        ),
        (
            json!({"kind": "mapper", "js": js, "input": "x", "node": uuid::Uuid::nil()}),
            "input: give input or node, not both",
        ),
        (json!(["kind"]), r#"expected an object: {"kind", "js", "input"}"#),
    ];
    for (body, error) in cases {
        assert_eq!(
            app.post("/api/v1/scripts/try", &body).await.expect(400).errors(),
            [error],
            "{body}"
        );
    }
    let gone = uuid::Uuid::now_v7();
    let answer =
        app.post("/api/v1/scripts/try", &json!({"kind": "mapper", "js": js, "node": gone})).await;
    assert_eq!(answer.expect(404).errors(), [format!("no run has a node with id {gone}")]);
}
