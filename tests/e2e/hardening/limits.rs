//! Every limit answers its status with a message that names its setting.

use serde_json::{json, Value};

use crate::runs::{api, mapped, noop, seq};
use crate::support::{Answer, Respond, TestApp, TestService};

const LIMITS: [(&str, &str); 12] = [
    ("AETR_MAX_DEFINITION_BYTES", "2000"),
    ("AETR_MAX_INPUT_BYTES", "100"),
    ("AETR_MAX_CALLBACK_BYTES", "100"),
    ("AETR_MAX_HEADER_BYTES", "2048"),
    ("AETR_MAX_NODES", "6"),
    ("AETR_MAX_DEPTH", "2"),
    ("AETR_MAX_CHILDREN", "4"),
    ("AETR_MAX_SCRIPT_BYTES", "120"),
    ("AETR_MAX_NAME_CHARS", "12"),
    ("AETR_MAX_URL_BYTES", "80"),
    ("AETR_MAX_HEADERS", "1"),
    ("AETR_MAX_SCRIPT_RESULT_BYTES", "50"),
];

fn assert_names(answer: &Answer, setting: &str) {
    let errors = answer.errors();
    assert!(errors.iter().any(|e| e.contains(setting)), "{setting}: {errors:?}");
}

#[tokio::test]
async fn every_limit_answers_its_code_and_names_its_setting() {
    let app = TestApp::spawn_with(&LIMITS).await;
    let svc = TestService::start().await;

    let mut padded = seq("root", vec![noop("x")]);
    padded["padding"] = json!("p".repeat(2000));
    let too_big = app.put("/api/v1/steps", &padded).await.expect(413);
    assert_names(&too_big, "AETR_MAX_DEFINITION_BYTES");

    let refused: [(&str, Value); 7] = [
        ("AETR_MAX_NAME_CHARS", noop(&"n".repeat(13))),
        ("AETR_MAX_CHILDREN", seq("r", vec![noop("a"); 5])),
        ("AETR_MAX_DEPTH", seq("r", vec![seq("s", vec![seq("t", vec![noop("a")])])])),
        (
            "AETR_MAX_NODES",
            seq(
                "r",
                vec![
                    seq("s", vec![noop("a"), noop("b"), noop("c")]),
                    seq("t", vec![noop("d"), noop("e")]),
                ],
            ),
        ),
        (
            "AETR_MAX_SCRIPT_BYTES",
            seq(
                "r",
                vec![mapped(
                    noop("a"),
                    &format!("function apply(d) {{ return d; }} // {}", "c".repeat(100)),
                )],
            ),
        ),
        ("AETR_MAX_URL_BYTES", api("a", &format!("http://svc.test/{}", "u".repeat(80)))),
        (
            "AETR_MAX_HEADERS",
            json!({"name": "a", "stepType": "Action", "action": {"type": "api", "url": "http://svc.test/", "headers": {"A": "1", "B": "2"}}}),
        ),
    ];
    for (setting, tree) in refused {
        let answer = app.put("/api/v1/steps", &tree).await;
        assert_eq!(answer.status, 422, "{setting}: {:?}", answer.body);
        assert_names(&answer, setting);
    }

    let header = app
        .http
        .get(app.url("/api/v1/steps"))
        .header("X-Big", "h".repeat(2100))
        .send()
        .await
        .unwrap();
    assert_eq!(header.status().as_u16(), 431);
    let body: Value = header.json().await.unwrap();
    assert!(body["errors"][0].as_str().unwrap().contains("AETR_MAX_HEADER_BYTES"), "{body}");

    svc.respond("/a", Respond::Hold);
    let step = app.put_tree(&api("a", &svc.at("/a"))).await;
    let repeat = json!({"type": "js", "js": "function apply(d) { return 'r'.repeat(d); }"});
    let wrapped = app.put_tree(&seq("w", vec![json!({"id": step, "mapper": repeat})])).await;
    let input = json!({"input": "i".repeat(100)});
    let input = app.post(&format!("/api/v1/runs/step/{wrapped}"), &input).await.expect(413);
    assert_names(&input, "AETR_MAX_INPUT_BYTES");

    let run = app.start_run(wrapped, json!(1)).await;
    let mut received = svc.next().await;
    received.answer(Respond::Status(202));
    let callback = app.post_raw(&received.callback, "6".repeat(101)).await.expect(413);
    assert_names(&callback, "AETR_MAX_CALLBACK_BYTES");
    // The mapper makes 60 characters of the result "60": more than the result limit.
    app.post_raw(&received.callback, "60").await.expect(200);
    let failed = app.wait_root(run, "Error").await;
    assert!(failed["error"].as_str().unwrap().contains("AETR_MAX_SCRIPT_RESULT_BYTES"), "{failed}");

    let run = app.start_run(wrapped, json!(1)).await;
    let mut received = svc.next().await;
    received.answer(Respond::Status(202));
    app.post_raw(&received.callback, "5").await.expect(200);
    app.wait_root(run, "Complete").await;
}

#[tokio::test]
async fn the_defaults_admit_a_100000_node_tree() {
    let app = TestApp::spawn().await;
    let leaves: Vec<Value> = (0..1000).map(|i| noop(&format!("leaf {i}"))).collect();
    let wide =
        app.put_tree(&json!({"name": "wide", "stepType": "Parallel", "children": leaves})).await;
    let reuse: Vec<Value> = (0..100).map(|_| json!({"id": wide})).collect();
    let root =
        app.put_tree(&json!({"name": "root", "stepType": "Sequential", "children": reuse})).await;
    let tree = app.get(&format!("/api/v1/steps/{root}/slim")).await.expect(200).body;
    assert_eq!(tree["children"].as_array().unwrap().len(), 100);
}
