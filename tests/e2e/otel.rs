//! aetr's own spans over OTLP/HTTP (design.md, "Operations"): with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, a receiver that the test plays decodes the spans of a run
//! (its root span, each attempt, each script call) and of group commits, in the run's trace, with
//! the attempts' span ids that the services got in their `traceparent`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::runs::{api, mapped, seq};
use crate::support::{Respond, TestApp, TestService};

/// One span as OTLP/JSON writes it.
#[derive(Debug, Clone)]
struct Span {
    trace: String,
    id: String,
    parent: String,
    name: String,
    attributes: HashMap<String, Value>,
}

/// The spans of an OTLP/JSON export request's body.
fn spans_of(body: &str) -> Vec<Span> {
    let request: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    let mut spans = Vec::new();
    for resource in request["resourceSpans"].as_array().expect("resourceSpans") {
        for scope in resource["scopeSpans"].as_array().expect("scopeSpans") {
            for span in scope["spans"].as_array().expect("spans") {
                let text = |key: &str| span[key].as_str().unwrap_or_default().to_lowercase();
                let attributes = span["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|kv| {
                        (kv["key"].as_str().unwrap_or_default().to_owned(), kv["value"].clone())
                    })
                    .collect();
                spans.push(Span {
                    trace: text("traceId"),
                    id: text("spanId"),
                    parent: text("parentSpanId"),
                    name: span["name"].as_str().unwrap_or_default().to_owned(),
                    attributes,
                });
            }
        }
    }
    spans
}

#[tokio::test]
async fn a_runs_spans_are_exported_in_its_trace_with_the_span_ids_services_got() {
    let collector = TestService::start().await;
    collector.respond("/v1/traces", Respond::Status(200));
    let endpoint = collector.at("");
    let endpoint = endpoint.trim_end_matches('/');
    let app = TestApp::spawn_with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ])
    .await;
    let svc = TestService::start().await;
    let tree = seq(
        "s",
        vec![
            mapped(api("a", &svc.at("/a")), "function apply(d) { return d + '!'; }"),
            api("b", &svc.at("/b")),
        ],
    );
    let run = app.start_run(app.put_tree(&tree).await, json!("x")).await;
    let mut sent = Vec::new();
    for _ in 0..2 {
        let call = svc.next().await;
        let parent = call.header("traceparent").expect("a traceparent").to_owned();
        sent.push(parent.split('-').nth(2).unwrap().to_owned());
        app.post_raw(&call.callback, "done").await.expect(200);
    }
    app.wait_root(run, "Complete").await;

    let trace = run.simple().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut spans: Vec<Span> = Vec::new();
    while !spans.iter().any(|s| s.trace == trace && s.name == "run") {
        let left = deadline.saturating_duration_since(Instant::now());
        let export = collector.next_within(left).await.expect("the run's spans within 20 s");
        assert_eq!(export.path, "/v1/traces");
        assert_eq!(export.header("content-type"), Some("application/json"));
        spans.extend(spans_of(&export.body));
    }
    let of_run: Vec<&Span> = spans.iter().filter(|s| s.trace == trace).collect();
    let root = of_run.iter().find(|s| s.name == "run").expect("the run's root span");
    assert_eq!(root.attributes["aetr.state"]["stringValue"], "Complete");
    assert_eq!(root.parent, "", "the run's span is the trace's root");
    let attempts: Vec<&&Span> = of_run.iter().filter(|s| s.name == "attempt").collect();
    assert_eq!(attempts.len(), 2, "{of_run:#?}");
    for attempt in &attempts {
        assert!(
            sent.contains(&attempt.id),
            "an attempt's span id is its traceparent's: {attempt:?} {sent:?}"
        );
        assert_eq!(attempt.parent, root.id, "an attempt is a child of its run");
    }
    let scripts: Vec<&&Span> = of_run.iter().filter(|s| s.name == "script").collect();
    assert_eq!(scripts.len(), 1, "a's mapper: {of_run:#?}");
    assert_eq!(scripts[0].attributes["aetr.script"]["stringValue"], "mapper");
    assert_eq!(scripts[0].parent, root.id);
    assert!(
        spans.iter().any(|s| s.name == "group commit" && s.trace != trace),
        "group commits are spans too"
    );
}
