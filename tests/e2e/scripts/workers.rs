//! The script workers: replaced when they die, a call retried once when its worker dies, retired
//! after their calls, and gone when their server stops or dies.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{
    assert_failed_on_first_child, bad_mapper_tree, cpu_ticks, is_alive, wait_for, worker_pids,
};
use crate::runs::{mapped, noop, seq};
use crate::support::TestApp;

/// Spins for 1.5 s, then answers. (boa's loop limit counts the iterations of each frame: the
/// inner loop has a frame of its own.)
const SLOW: &str = "function spin() { for (let i = 0; i < 1000; i++) {} }
    function apply(d) {
        const end = Date.now() + 1500;
        while (Date.now() < end) spin();
        return 'done ' + d;
    }";

fn kill(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// The one worker, when there is exactly one.
fn single(pids: Vec<u32>) -> Option<u32> {
    (pids.len() == 1).then(|| pids[0])
}

/// Waits for a worker, other than those in `not`, to run a script: to use 100 ms of CPU time
/// from when it is first seen.
async fn busy_worker(app: &TestApp, not: &[u32]) -> u32 {
    let mut first_seen: HashMap<u32, u64> = HashMap::new();
    wait_for("a busy script worker", || {
        worker_pids(app).into_iter().filter(|pid| !not.contains(pid)).find(|&pid| {
            let ticks = cpu_ticks(pid);
            ticks >= *first_seen.entry(pid).or_insert(ticks) + 10
        })
    })
    .await
}

/// A one-step tree whose mapper adds `!`.
fn quick_tree() -> Value {
    seq("quick", vec![mapped(noop("a"), "function apply(d) { return d + '!'; }")])
}

#[tokio::test]
async fn a_killed_worker_is_replaced_and_the_next_run_works() {
    let app = TestApp::spawn_with(&[("AETR_SCRIPT_WORKERS", "1")]).await;
    let first = wait_for("a script worker", || single(worker_pids(&app))).await;
    kill(first, "KILL");
    let second =
        wait_for("a new script worker", || single(worker_pids(&app)).filter(|&p| p != first)).await;
    assert!(!is_alive(first));
    let run = app.start_run(app.put_tree(&quick_tree()).await, json!("x")).await;
    assert_eq!(app.wait_run(run, "Complete").await["result"], "x!");
    assert_eq!(worker_pids(&app), vec![second], "the new worker ran it");
    assert!(app.server().log().contains("a script worker died; it is replaced"));
}

#[tokio::test]
async fn a_call_whose_worker_dies_is_retried_once_then_fails() {
    let app =
        TestApp::spawn_with(&[("AETR_SCRIPT_WORKERS", "1"), ("AETR_SCRIPT_TIMEOUT_MS", "20000")])
            .await;
    let step = app.put_tree(&bad_mapper_tree(SLOW)).await;

    // Its worker killed once: the call runs again on a fresh worker, and completes.
    let run = app.start_run(step, json!("x")).await;
    let first = busy_worker(&app, &[]).await;
    kill(first, "KILL");
    let done = app.wait_run(run, "Complete").await;
    assert_eq!(done["result"], "done x");
    assert_eq!(done["children"][1]["input"], "done x", "the mapped result, once");

    // Its worker killed, and the retry's worker killed too: the call fails.
    let run = app.start_run(step, json!("y")).await;
    let second = busy_worker(&app, &[first]).await;
    kill(second, "KILL");
    let third = busy_worker(&app, &[first, second]).await;
    kill(third, "KILL");
    let failed = app.wait_run(run, "Error").await;
    assert_failed_on_first_child(&failed, "mapper: the script worker died (signal 9)");

    // And the next run works, on yet another worker.
    let run = app.start_run(app.put_tree(&quick_tree()).await, json!("z")).await;
    assert_eq!(app.wait_run(run, "Complete").await["result"], "z!");
}

#[tokio::test]
async fn workers_are_retired_after_their_calls() {
    let app =
        TestApp::spawn_with(&[("AETR_SCRIPT_WORKERS", "1"), ("AETR_SCRIPT_WORKER_CALLS", "3")])
            .await;
    let first = wait_for("a script worker", || single(worker_pids(&app))).await;
    let steps = (0..10)
        .map(|i| {
            mapped(noop(&format!("s{i}")), "function apply(d) { return String(Number(d) + 1); }")
        })
        .collect();
    let run = app.start_run(app.put_tree(&seq("chain", steps)).await, json!(0)).await;
    assert_eq!(app.wait_run(run, "Complete").await["result"], "10");
    // Three calls each (the first worker's first was the pool's own test): the first worker has
    // exited, and one worker is left.
    wait_for("the first worker's exit", || {
        single(worker_pids(&app)).filter(|&p| p != first && !is_alive(first))
    })
    .await;
}

#[tokio::test]
async fn workers_exit_when_their_server_stops() {
    let app = TestApp::spawn_with(&[("AETR_SCRIPT_WORKERS", "2")]).await;
    let workers = wait_for("two script workers", || {
        let pids = worker_pids(&app);
        (pids.len() == 2).then_some(pids)
    })
    .await;
    let server = app.server().pid();
    kill(server, "TERM");
    wait_for("the server's exit", || (!is_alive(server)).then_some(())).await;
    // A worker exits when its input closes with the server, which can be a moment after the
    // server itself under a busy machine: no worker outlives its server for long.
    wait_for("the workers' exit", || workers.iter().all(|&pid| !is_alive(pid)).then_some(())).await;
    // The log is read by a thread of the test's, which may not have its last lines yet.
    wait_for("the server's last log line", || {
        app.server().log().contains("aetr stopped serving").then_some(())
    })
    .await;
}

#[tokio::test]
async fn workers_exit_when_their_server_is_killed_even_in_the_middle_of_a_script() {
    let app =
        TestApp::spawn_with(&[("AETR_SCRIPT_WORKERS", "2"), ("AETR_SCRIPT_TIMEOUT_MS", "30000")])
            .await;
    let loops = "function spin() { for (let i = 0; i < 1000000; i++) {} }
        function apply(d) { for (;;) spin(); }";
    app.start_run(app.put_tree(&bad_mapper_tree(loops)).await, json!("x")).await;
    let busy = busy_worker(&app, &[]).await;
    let workers = worker_pids(&app);
    assert!(workers.contains(&busy));
    kill(app.server().pid(), "KILL");
    // Their input closes with the server: each exits, the busy one too.
    wait_for("the workers' exit", || workers.iter().all(|&pid| !is_alive(pid)).then_some(())).await;
}
