//! Many runs at once, called back from many tasks in random order: every join happens exactly
//! once and every result is exact.

use std::sync::Arc;

use rand::seq::SliceRandom;
use serde_json::{json, Value};

use super::{api, mapped, par_js};
use crate::support::{TestApp, TestService};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_runs_of_eight_branches_called_back_in_random_order_from_many_tasks() {
    const RUNS: usize = 50;
    const BRANCHES: usize = 8;
    let app = Arc::new(TestApp::spawn().await);
    let svc = TestService::start().await;
    let branches: Vec<Value> = (0..BRANCHES)
        .map(|i| {
            mapped(
                api(&format!("b{i}"), &svc.at(&format!("/b{i}"))),
                &format!("function apply(d) {{ return d + '.{i}'; }}"),
            )
        })
        .collect();
    let tree = par_js("fan", "function apply(rs) { return rs.join(' '); }", branches);
    let step = app.put_tree(&tree).await;

    let mut runs = Vec::new();
    for r in 0..RUNS {
        runs.push((app.start_run(step, json!(format!("r{r}"))).await, r));
    }
    let mut got = svc.take(RUNS * BRANCHES).await;
    got.shuffle(&mut rand::rng());

    // Each service answers with its input and its own name.
    let callbacks: Vec<(String, String)> =
        got.iter().map(|r| (r.callback.clone(), format!("{}@{}", r.body, &r.path[1..]))).collect();
    let chunks: Vec<Vec<(String, String)>> = callbacks.chunks(25).map(<[_]>::to_vec).collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let app = Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            for (url, body) in chunk {
                app.post_raw(&url, body).await.expect(200);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    for (run, r) in runs {
        let done = app.wait_run(run, "Complete").await;
        let expected: Vec<String> = (0..BRANCHES).map(|i| format!("r{r}@b{i}.{i}")).collect();
        assert_eq!(done["result"], expected.join(" "), "run {r}");
        assert_eq!(done["counts"], json!({"Complete": BRANCHES}));
    }
}
