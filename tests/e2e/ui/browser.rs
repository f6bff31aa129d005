//! The web UI in a real headless Chromium (Debian's `chromium`), driven by the Node scripts in
//! `tests/browser/` through playwright-core, against a real server. `scripts/ensure-browser`
//! installs what they need; without it these tests fail, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::TestApp;

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser")
}

/// The Node.js that `scripts/ensure-browser` unpacked into `target/tools/node` when the one on
/// PATH is too old for playwright-core, else the one on PATH.
fn node() -> PathBuf {
    let unpacked = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/node/bin/node");
    if unpacked.exists() {
        unpacked
    } else {
        PathBuf::from("node")
    }
}

/// Where the scripts write their screenshots (git-ignored).
fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots")
}

/// Runs `node tests/browser/<script>` against the app, printing what it says; panics if it
/// fails, or if Node, Chromium or playwright-core is missing.
async fn run_script(app: &TestApp, script: &str) -> String {
    run_script_with(app, script, &[]).await
}

/// [`run_script`], with more environment variables for the script.
async fn run_script_with(app: &TestApp, script: &str, env: &[(&str, &str)]) -> String {
    let dir = browser_dir();
    let missing = |what: &str| -> ! {
        panic!("{what} is missing: run scripts/ensure-browser (Debian's chromium, Node.js, and `npm ci` in tests/browser)")
    };
    if !Path::new(CHROMIUM).exists() {
        missing(CHROMIUM);
    }
    if !dir.join("node_modules/playwright-core").exists() {
        missing("tests/browser/node_modules/playwright-core");
    }
    let mut cmd = Command::new(node());
    cmd.arg(script)
        .current_dir(&dir)
        .env("AETR_URL", app.url(""))
        .env("AETR_SCREENSHOTS", screenshots())
        .env("CHROMIUM", CHROMIUM)
        .envs(env.iter().copied());
    let output = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| missing(&format!("node ({e})")));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "tests/browser/{script} failed ({}):\n{stdout}\n{stderr}\nthe server's log:\n{}",
        output.status,
        app.server().log()
    );
    stdout
}

#[tokio::test]
async fn a_user_builds_a_tree_runs_it_and_follows_it_in_the_browser() {
    let app = TestApp::spawn().await;
    run_script(&app, "ui.mjs").await;
}

#[tokio::test]
async fn a_user_builds_a_branch_and_approves_a_manual_action_in_the_browser() {
    let app = TestApp::spawn().await;
    run_script(&app, "step-types.mjs").await;
}

#[tokio::test]
async fn a_user_builds_a_map_and_pages_its_instances_in_the_browser() {
    let app = TestApp::spawn().await;
    run_script(&app, "map.mjs").await;
}

#[tokio::test]
async fn a_user_gives_a_step_an_input_schema_and_starts_runs_with_a_webhook_in_the_browser() {
    let app = TestApp::spawn().await;
    run_script(&app, "start-form.mjs").await;
}

#[tokio::test]
async fn a_user_creates_pauses_and_deletes_a_schedule_in_the_browser() {
    let app = TestApp::spawn().await;
    run_script(&app, "schedules.mjs").await;
}

#[tokio::test]
async fn a_10000_leaf_run_opens_within_two_seconds_and_scrolls_without_drawing_every_node() {
    let app = TestApp::spawn().await;
    let out = run_script(&app, "large.mjs").await;
    assert!(out.contains("opened the 10,000-leaf run in"), "{out}");
}

#[tokio::test]
async fn with_api_tokens_the_ui_asks_for_one_once_per_tab() {
    let token = "ui-test-token";
    let app = TestApp::spawn_with(&[("AETR_API_TOKENS", token)]).await;
    run_script_with(&app, "token.mjs", &[("AETR_TOKEN", token)]).await;
}

#[tokio::test]
async fn a_user_makes_a_pool_and_sees_it_hold_a_run_back_in_the_browser() {
    let app = TestApp::spawn().await;
    run_script(&app, "pools.mjs").await;
}

#[tokio::test]
async fn a_user_follows_a_run_as_a_graph_and_opens_a_node_from_it_in_the_browser() {
    let app = TestApp::spawn().await;
    run_script(&app, "graph.mjs").await;
}

#[tokio::test]
async fn a_user_tries_a_failed_mapper_on_its_real_input_fixes_it_and_retries_in_the_browser() {
    let app = TestApp::spawn().await;
    run_script(&app, "script-try.mjs").await;
}

#[tokio::test]
async fn a_user_dry_runs_a_tree_and_clones_it_in_the_browser() {
    let app = TestApp::spawn().await;
    run_script(&app, "dry-run.mjs").await;
}
