//! Mappers and reducers in script worker processes: each bad script fails only its node, and
//! the server keeps answering while it runs; workers are replaced, retired and stopped.

mod limits;
mod overhead;
mod tried;
mod workers;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::runs::{mapped, noop, seq};
use crate::support::TestApp;

/// `Sequential[bad (a no-op with the mapper js), after]`: the mapper runs as the run starts.
pub fn bad_mapper_tree(js: &str) -> Value {
    seq("isolated", vec![mapped(noop("bad"), js), noop("after")])
}

/// Starts a run of `tree`, checks that the server answers other requests at once, and waits
/// for the run to fail. Returns the failed run, and the root's state as the server answered.
pub async fn run_and_probe(app: &TestApp, tree: &Value) -> (Value, String) {
    let step = app.put_tree(tree).await;
    let run = app.start_run(step, json!("x")).await;
    let state = probe(app, run).await;
    let failed = app.wait_run(run, "Error").await;
    (failed, state)
}

/// Asserts that the server answers: health, a list of steps, the run. Returns the run's state.
pub async fn probe(app: &TestApp, run: Uuid) -> String {
    let started = Instant::now();
    app.get("/healthz").await.expect(200);
    app.get("/api/v1/steps").await.expect(200);
    let root = app.get(&format!("/api/v1/runs/{run}?depth=0")).await.expect(200).body;
    assert!(started.elapsed() < Duration::from_millis(500), "the server answered slowly");
    root["state"].as_str().unwrap_or_default().to_owned()
}

/// Asserts that the run failed on its first child alone, with `error`.
#[track_caller]
pub fn assert_failed_on_first_child(failed: &Value, error: &str) {
    let node = &failed["children"][0];
    assert_eq!(node["state"], "Error", "{failed:#}");
    assert_eq!(node["error"], error, "{failed:#}");
    assert_eq!(failed["error"], error);
    assert_eq!(failed["failedNode"], node["id"], "the run failed on that node");
    let after = &failed["children"][1];
    assert_eq!(after["state"], "Pending", "nothing runs after the failure");
}

/// The pids of the server's script workers.
pub fn worker_pids(app: &TestApp) -> Vec<u32> {
    let server = app.server().pid();
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{server}/task")) else { return pids };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children.split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline.split(|b| *b == 0).any(|arg| arg == b"script-worker") && is_alive(pid) {
                pids.push(pid);
            }
        }
    }
    pids.sort_unstable();
    pids
}

/// Whether a process runs (it exists, and is no zombie).
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        Ok(stat) => {
            stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        }
        Err(_) => false,
    }
}

/// A process's CPU time so far, in clock ticks (1/100 s).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the command: state is field 3, utime 14 and stime 15 (1-based, of the whole line).
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(14) + field(15)
}

/// Waits until `ready()` gives something, or fails with `what`.
pub async fn wait_for<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} did not happen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
