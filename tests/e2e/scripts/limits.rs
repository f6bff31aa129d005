//! Each bad script fails its node alone, with an error that names the limit, while the server
//! goes on answering (and running other scripts).

use serde_json::json;

use super::{assert_failed_on_first_child, bad_mapper_tree, probe, run_and_probe, wait_for};
use crate::runs::{mapped, noop, par_js, seq};
use crate::support::TestApp;

/// Loops for ever: each call of `spin` stays within boa's loop limit, which counts per frame.
const LOOPS_FOR_EVER: &str = "function spin() { for (let i = 0; i < 1000000; i++) {} }
    function apply(d) { for (;;) spin(); }";

#[tokio::test]
async fn a_script_that_loops_for_ever_times_out_and_other_scripts_still_run() {
    // Two workers (the default on two cores, but not on every machine), and time for another
    // run to go through while the bad script runs.
    let app =
        TestApp::spawn_with(&[("AETR_SCRIPT_WORKERS", "2"), ("AETR_SCRIPT_TIMEOUT_MS", "3000")])
            .await;
    let bad = app.put_tree(&bad_mapper_tree(LOOPS_FOR_EVER)).await;
    let good = app
        .put_tree(&seq("good", vec![mapped(noop("a"), "function apply(d) { return d + '!'; }")]))
        .await;
    let bad_run = app.start_run(bad, json!("x")).await;

    // While the bad script runs, the server answers, and another run's mapper runs.
    assert_eq!(probe(&app, bad_run).await, "Executing");
    let good_run = app.start_run(good, json!("y")).await;
    let done = app.wait_run(good_run, "Complete").await;
    assert_eq!(done["result"], "y!");
    assert_eq!(probe(&app, bad_run).await, "Executing", "the bad script still runs");

    let failed = app.wait_run(bad_run, "Error").await;
    assert_failed_on_first_child(&failed, "mapper: timed out after 3000 ms");
    // Its worker was killed and replaced: scripts still run.
    let again = app.start_run(good, json!("z")).await;
    assert_eq!(app.wait_run(again, "Complete").await["result"], "z!");
}

#[tokio::test]
async fn a_catastrophic_regex_times_out_at_the_default_limit() {
    let app = TestApp::spawn().await;
    let js = "function apply(d) { return /(a+)+$/.test('a'.repeat(40) + '!'); }";
    let (failed, state) = run_and_probe(&app, &bad_mapper_tree(js)).await;
    assert_eq!(state, "Executing", "the server answered while the regex ran");
    assert_failed_on_first_child(&failed, "mapper: timed out after 1000 ms");
}

#[tokio::test]
async fn a_script_that_allocates_without_end_runs_out_of_memory() {
    // A long wall-clock limit, so that memory runs out first even in a debug build.
    let app = TestApp::spawn_with(&[("AETR_SCRIPT_TIMEOUT_MS", "20000")]).await;
    let js =
        "function apply(d) { const all = []; for (let i = 0; ; i++) all.push({i, s: String(i)}); }";
    let (failed, state) = run_and_probe(&app, &bad_mapper_tree(js)).await;
    assert_eq!(state, "Executing", "the server answered while the script allocated");
    // The worker died at its limit; the call was retried once, and its second worker died too.
    assert_failed_on_first_child(&failed, "mapper: out of memory (limit 256 MB)");
    wait_for("two workers' deaths in the log", || {
        (app.server().log().matches("memory allocation of").count() == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_script_that_throws_fails_its_node() {
    let app = TestApp::spawn().await;
    let js = "function apply(d) { throw new Error('boom: ' + d); }";
    let (failed, _) = run_and_probe(&app, &bad_mapper_tree(js)).await;
    assert_failed_on_first_child(&failed, "mapper: boom: x");
}

#[tokio::test]
async fn a_100_mb_result_is_refused_by_the_result_limit() {
    let app = TestApp::spawn().await;
    let js = "function apply(d) { return 'x'.repeat(1000000).repeat(100); }";
    let (failed, _) = run_and_probe(&app, &bad_mapper_tree(js)).await;
    assert_failed_on_first_child(
        &failed,
        "mapper: result is 100000000 bytes, more than the limit of 16777216 (AETR_MAX_SCRIPT_RESULT_BYTES)",
    );
}

#[tokio::test]
async fn deep_recursion_and_long_loops_hit_boas_limits() {
    let app = TestApp::spawn().await;
    let js = "function f(n) { return f(n + 1) + 1; } function apply(d) { return f(0); }";
    let (failed, _) = run_and_probe(&app, &bad_mapper_tree(js)).await;
    assert_failed_on_first_child(&failed, "mapper: recursion limit exceeded");

    let js = "function apply(d) { while (true) {} }";
    let (failed, _) = run_and_probe(&app, &bad_mapper_tree(js)).await;
    assert_failed_on_first_child(&failed, "mapper: loop iteration limit exceeded");

    // A reducer is isolated in the same way.
    let js = "function f(n) { return f(n + 1) + 1; } function apply(rs) { return f(0); }";
    let tree = seq("isolated", vec![par_js("bad", js, vec![noop("a")]), noop("after")]);
    let (failed, _) = run_and_probe(&app, &tree).await;
    assert_failed_on_first_child(&failed, "reducer: recursion limit exceeded");
}

#[tokio::test]
async fn import_of_a_file_is_refused() {
    let app = TestApp::spawn().await;
    let js = "function apply(d) { return import('/etc/passwd'); }";
    let (failed, _) = run_and_probe(&app, &bad_mapper_tree(js)).await;
    assert_failed_on_first_child(&failed, "mapper: module resolution is disabled for this context");
}
