//! Many runs at once, called back from many tasks in random order: every join happens exactly
//! once and every result is exact.

use std::sync::Arc;

use rand::seq::SliceRandom;
use serde_json::{json, Value};

use super::{api, mapped, par_js, seq};
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

/// Starts that come at once are committed in groups: each still gets its own answer. Three
/// concurrent starts with one idempotency key make one run (one 201, two 200s with its id),
/// a start of a step that does not exist is a 404 beside them, and every run made is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_in_groups_keep_their_own_answers_and_idempotency_keys() {
    const KEYS: usize = 40;
    const PLAIN: usize = 60;
    const MISSING: usize = 20;
    let app = Arc::new(TestApp::spawn().await);
    let svc = TestService::start().await;
    let mapper = "function apply(d) { return d + '!'; }";
    let step = app.put_tree(&seq("s", vec![mapped(api("a", &svc.at("/a")), mapper)])).await;
    let path = format!("/api/v1/runs/step/{step}");
    let missing = format!("/api/v1/runs/step/{}", uuid::Uuid::now_v7());

    let mut starts = Vec::new();
    for k in 0..KEYS {
        for _ in 0..3 {
            let body = json!({"input": format!("k{k}"), "idempotencyKey": format!("key-{k}")});
            starts.push((path.clone(), body, Some(k)));
        }
    }
    starts.extend((0..PLAIN).map(|p| (path.clone(), json!({"input": format!("p{p}")}), None)));
    starts.extend((0..MISSING).map(|_| (missing.clone(), json!({"input": 1}), None)));
    starts.shuffle(&mut rand::rng());
    let tasks: Vec<_> = starts
        .into_iter()
        .map(|(path, body, key)| {
            let app = Arc::clone(&app);
            tokio::spawn(async move { (app.post(&path, &body).await, path, key) })
        })
        .collect();

    let mut by_key: Vec<Vec<(u16, uuid::Uuid)>> = vec![Vec::new(); KEYS];
    let mut runs = Vec::new();
    for task in tasks {
        let (answer, path, key) = task.await.unwrap();
        if path == missing {
            assert_eq!(answer.status, 404, "{:?}", answer.body);
            continue;
        }
        assert!(
            answer.status == 201 || answer.status == 200,
            "{} {:?}",
            answer.status,
            answer.body
        );
        match key {
            Some(k) => by_key[k].push((answer.status, answer.id())),
            None => runs.push(answer.id()),
        }
    }
    for (k, answers) in by_key.iter().enumerate() {
        let created: Vec<_> = answers.iter().filter(|(status, _)| *status == 201).collect();
        assert_eq!(created.len(), 1, "key-{k}: {answers:?}");
        assert!(answers.iter().all(|(_, id)| *id == created[0].1), "key-{k}: {answers:?}");
        runs.push(created[0].1);
    }

    // One POST per run made, and each run completes with its own input.
    let got = svc.take(KEYS + PLAIN).await;
    svc.expect_none(std::time::Duration::from_millis(300)).await;
    for r in &got {
        app.post_raw(&r.callback, format!("{}.done", r.body)).await.expect(200);
    }
    let mut results = Vec::new();
    for run in runs {
        results.push(app.wait_run(run, "Complete").await["result"].as_str().unwrap().to_owned());
    }
    results.sort();
    let mut expected: Vec<String> = (0..KEYS)
        .map(|k| format!("k{k}.done!"))
        .chain((0..PLAIN).map(|p| format!("p{p}.done!")))
        .collect();
    expected.sort();
    assert_eq!(results, expected);
}
