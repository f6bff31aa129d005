//! schemathesis against a live server: every operation of `/api/v1/openapi.json`, with a fixed
//! seed and a stated number of examples, must give no 5xx, and every answer must conform to the
//! document (status codes, content types, headers, bodies), refuse a request without its token,
//! and name the allowed methods on a 405. The operations under a step or a run are pointed at
//! ones that exist, so that the fuzzer gets past the 404s.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

use crate::runs::{api, seq};
use crate::support::{TestApp, TestService};

const SEED: &str = "1";
const EXAMPLES: &str = "50";
const TOKEN: &str = "fuzzing-token";
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,\
                      unsupported_method,ignored_auth,missing_required_header";

fn schemathesis() -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = repo.join("target/tools/schemathesis/bin/schemathesis");
    assert!(
        bin.exists(),
        "schemathesis is not installed: run scripts/ensure-schemathesis ({bin:?})"
    );
    bin
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let bin = schemathesis();
    let mut app = TestApp::spawn_with(&[("AETR_API_TOKENS", TOKEN)]).await;
    app.use_token(TOKEN);
    // A run whose action waits for a callback that never comes: every run operation has a
    // run and a node to work on.
    let svc = TestService::start().await;
    let step = app.put_tree(&seq("fuzzed", vec![api("a", &svc.at("/a"))])).await;
    let run = app.start_run(step, json!({"n": 1})).await;
    let tree = app
        .wait_until(run, "its action executing", |r| r["children"][0]["state"] == "Executing")
        .await;
    let node = tree["children"][0]["id"].as_str().unwrap().to_owned();

    let dir = std::env::temp_dir().join(format!("aetr-fuzz-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[operations]]
include-path-regex = "^/api/v1/runs/\\{{id\\}}"
parameters = {{ "path.id" = "{run}", "path.nodeId" = "{node}" }}

[[operations]]
include-path-regex = "^/api/v1/steps/\\{{id\\}}"
parameters = {{ "path.id" = "{step}" }}

[[operations]]
include-path = "/api/v1/runs/step/{{stepId}}"
parameters = {{ "path.stepId" = "{step}" }}
"#
        ),
    )
    .unwrap();
    let output = Command::new(&bin)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &app.url("/api/v1/openapi.json")])
        .args(["--checks", CHECKS, "--phases", "examples,fuzzing,stateful"])
        .args(["--seed", SEED, "--max-examples", EXAMPLES, "--workers", "2"])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--generation-database", "none", "--no-color"])
        .current_dir(&dir)
        .output()
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}{}", String::from_utf8_lossy(&output.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(output.status.success(), "schemathesis found failures (its report is above)");
    assert!(report.contains(&format!("Seed: {SEED}")), "{report}");
    let (_, log) = app.stop("TERM");
    assert!(!log.contains("panicked"), "{log}");
}
