//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, generated from the code.

use serde_json::Value;

use crate::support::TestApp;

#[tokio::test]
async fn the_openapi_document_describes_every_endpoint() {
    let app = TestApp::spawn().await;
    let answer = app.get("/api/v1/openapi.json").await.expect(200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let doc = answer.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/steps", &["get", "post", "put"][..]),
        ("/api/v1/steps/slim", &["put"]),
        ("/api/v1/steps/{id}", &["get", "delete"]),
        ("/api/v1/steps/{id}/slim", &["get"]),
        ("/api/v1/steps/{id}/children", &["post"]),
        ("/api/v1/steps/{id}/parents", &["get"]),
        ("/api/v1/runs", &["get"]),
        ("/api/v1/runs/step/{stepId}", &["post"]),
        ("/api/v1/runs/{id}", &["get"]),
        ("/api/v1/runs/{id}/nodes/{nodeId}", &["get"]),
        ("/api/v1/runs/{id}/nodes/{nodeId}/children", &["get"]),
        ("/api/v1/runs/{id}/cancel", &["post"]),
        ("/api/v1/runs/{id}/retry", &["post"]),
        ("/api/v1/runs/complete", &["post"]),
        ("/api/v1/runs/fail", &["post"]),
        ("/api/v1/runs/partial/{id}", &["get"]),
        ("/api/v1/runs/state", &["get"]),
        ("/api/v1/runs/active", &["get"]),
        ("/api/v1/runs/related/step/{stepId}", &["get"]),
        ("/ping", &["get"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
    ] {
        let documented = paths.get(path).unwrap_or_else(|| panic!("{path} is not documented"));
        for method in methods {
            assert!(documented.get(*method).is_some(), "{method} {path} is not documented");
        }
    }
    // The schemas that the API refers to are all defined.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(schemas.contains_key(name), "{r} is not defined");
    }
    for name in [
        "FatStep",
        "SlimStep",
        "StepSummary",
        "Action",
        "Reducer",
        "Mapper",
        "ErrorBody",
        "RunNode",
        "NodeDetail",
        "RunSummary",
        "Attempt",
        "State",
        "StartBody",
    ] {
        assert!(schemas.contains_key(name), "no schema {name}");
    }
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => refs.push(r.clone()),
                    _ => collect_refs(v, refs),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}
