//! The `aetr` binary, run as a user runs it.

use std::io::Write;
use std::process::{Command, Stdio};

fn aetr(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aetr"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn help_describes_the_binary() {
    let (code, out, _) = aetr(&["--help"], "");
    assert_eq!(code, 0);
    assert!(out.contains("workflow-tree orchestrator"), "{out}");
    for command in
        ["server", "migrate", "check", "run", "wait", "steps", "runs", "callback", "serve-command"]
    {
        assert!(out.contains(command), "{command} is not in {out}");
    }
}

#[test]
fn every_server_option_is_a_flag_with_its_environment_variable_in_the_help() {
    let (code, out, _) = aetr(&["server", "--help"], "");
    assert_eq!(code, 0);
    for (flag, var) in [
        ("--bind", "AETR_BIND"),
        ("--public-url", "AETR_PUBLIC_URL"),
        ("--database-url", "DATABASE_URL"),
        ("--data-dir", "AETR_DATA_DIR"),
        ("--db-pool-size", "AETR_DB_POOL_SIZE"),
        ("--db-timeout-ms", "AETR_DB_TIMEOUT_MS"),
        ("--db-statement-timeout-ms", "AETR_DB_STATEMENT_TIMEOUT_MS"),
        ("--log-format", "AETR_LOG_FORMAT"),
        ("--max-nodes", "AETR_MAX_NODES"),
        ("--max-depth", "AETR_MAX_DEPTH"),
        ("--max-children", "AETR_MAX_CHILDREN"),
        ("--max-script-bytes", "AETR_MAX_SCRIPT_BYTES"),
        ("--max-name-chars", "AETR_MAX_NAME_CHARS"),
        ("--max-url-bytes", "AETR_MAX_URL_BYTES"),
        ("--max-headers", "AETR_MAX_HEADERS"),
        ("--max-definition-bytes", "AETR_MAX_DEFINITION_BYTES"),
    ] {
        assert!(out.contains(flag), "no {flag} in {out}");
        assert!(out.contains(&format!("[env: {var}")), "no {var} in {out}");
    }
}

#[test]
fn the_server_refuses_an_unspecified_address_without_a_public_url() {
    let (code, _, err) = aetr(&["server", "--bind", "0.0.0.0:0"], "");
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "aetr: AETR_BIND is 0.0.0.0:0, which is no address that services can call back: set \
         AETR_PUBLIC_URL to the URL at which they reach this server"
    );
    let (code, _, err) = aetr(&["server", "--public-url", "localhost:9999"], "");
    assert_eq!(code, 1);
    assert!(err.contains("AETR_PUBLIC_URL must be an absolute http(s) URL"), "{err}");
}

#[test]
fn check_accepts_a_valid_tree_and_reports_its_size() {
    let tree = r#"{"id": "00000000-0000-0000-0000-000000000001", "name": "root", "stepType": "Sequential", "children": [
        {"name": "a", "stepType": "Action", "action": {"type": "api", "url": "http://svc.test/a"},
         "mapper": {"type": "js", "js": "function apply(d) { return JSON.parse(d).x; }"}},
        {"id": "00000000-0000-0000-0000-000000000002", "name": "p", "stepType": "Parallel", "children": []},
        {"id": "00000000-0000-0000-0000-000000000002"}
    ]}"#;
    let (code, out, err) = aetr(&["check"], tree);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"id": "00000000-0000-0000-0000-000000000001", "nodes": 4, "depth": 1})
    );
}

#[test]
fn check_names_every_error_and_exits_1() {
    let tree = r#"{"name": "root", "stepType": "Parallel", "reducer": {"type": "js", "js": "function apply(rs) {"},
        "children": [{"id": "00000000-0000-0000-0000-000000000009"}, {"name": "b", "stepType": "Action", "action": {"type": "api"}}]}"#;
    let (code, out, _) = aetr(&["check", "-"], tree);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].as_str().unwrap().starts_with("reducer.js: "), "{errors:?}");
    assert_eq!(errors[1], "children[1].action.url: required");

    let (code, out, _) = aetr(
        &["check"],
        r#"{"name": "s", "stepType": "Sequential", "children": [{"id": "00000000-0000-0000-0000-000000000009"}]}"#,
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("children[0].id: no step with id 00000000-0000-0000-0000-000000000009"),
        "{out}"
    );

    let (code, out, _) = aetr(&["check"], "{not json");
    assert_eq!(code, 1);
    assert!(out.contains("not valid JSON"), "{out}");
}

#[test]
fn check_refuses_a_cycle_within_the_file() {
    let tree = r#"{"id": "00000000-0000-0000-0000-000000000001", "name": "loop", "stepType": "Sequential",
        "children": [{"id": "00000000-0000-0000-0000-000000000001"}]}"#;
    let (code, out, _) = aetr(&["check"], tree);
    assert_eq!(code, 1);
    assert!(out.contains("the steps would form a cycle: \\\"loop\\\" → \\\"loop\\\""), "{out}");
}

#[test]
fn check_reports_an_unreadable_file_on_stderr() {
    let (code, _, err) = aetr(&["check", "/nonexistent/tree.json"], "");
    assert_eq!(code, 2);
    assert!(err.starts_with("aetr check: cannot read /nonexistent/tree.json"), "{err}");
}
