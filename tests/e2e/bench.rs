//! Timings of whole runs against a service that calls back at once. Ignored by default; run in
//! release mode:
//!
//! cargo test --release -p aetr-server --test e2e -- --ignored --nocapture bench
//!
//! `AETR_BENCH_LEAVES` sets the parallel tree's width (2,000 by default).

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::runs::{api, mapped, par_js, seq};
use crate::support::{Respond, TestApp, TestService};

/// A service that answers 202 and calls back at once with its input.
async fn echo_service() -> TestService {
    let svc = TestService::start().await;
    svc.respond("/echo", Respond::CallBack(Arc::new(|r| Some(r.body.clone()))));
    svc
}

async fn time_run(app: &TestApp, tree: &Value, input: Value) -> (f64, Value) {
    let step = app.put_tree(tree).await;
    let started = Instant::now();
    let run = app.start_run(step, input).await;
    let done = app.wait_root_for(run, "Complete", std::time::Duration::from_secs(600)).await;
    (started.elapsed().as_secs_f64(), done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it in release mode"]
async fn bench_a_1000_step_chain_and_a_2000_leaf_parallel_tree() {
    let app = TestApp::spawn().await;
    let svc = echo_service().await;

    let steps: Vec<Value> = (0..1000)
        .map(|i| {
            mapped(
                api(&format!("s{i}"), &svc.at("/echo")),
                "function apply(d) { return String(Number(d) + 1); }",
            )
        })
        .collect();
    let (secs, done) = time_run(&app, &seq("chain", steps), json!(0)).await;
    assert_eq!(done["result"], "1000");
    let per_step_ms = secs * 1000.0 / 1000.0;
    println!("1,000-step sequential chain (a JS mapper on each): {secs:.2} s ({per_step_ms:.2} ms a step)");

    let width: usize =
        std::env::var("AETR_BENCH_LEAVES").ok().and_then(|w| w.parse().ok()).unwrap_or(2000);
    // One leaf step, reused: the tree is small to save, and expands to `width` nodes.
    let leaf = app.put_tree(&api("leaf", &svc.at("/echo"))).await;
    let leaves: Vec<Value> = (0..width).map(|_| json!({"id": leaf})).collect();
    let wide = par_js("wide", "function apply(rs) { return rs.length; }", leaves);
    let (secs, done) = time_run(&app, &wide, json!("x")).await;
    assert_eq!(done["result"], width.to_string());
    let rate = width as f64 / secs;
    println!("{width}-leaf parallel tree (a JS reducer): {secs:.2} s ({rate:.0} actions/s)");
}
