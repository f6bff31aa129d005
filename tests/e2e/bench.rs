//! Timings of whole runs against a service that calls back at once. Ignored by default; run in
//! release mode:
//!
//! cargo test --release -p aetr-server --test e2e -- --ignored --nocapture bench
//!
//! `AETR_BENCH_LEAVES` sets the parallel tree's width (2,000 by default).

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::runs::{api, mapped, noop, par_js, seq};
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

/// The server's CPU time so far (user and system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command's name: state is field 3, utime 14 and stime 15 (1-based, /proc(5)).
    (ticks(11) + ticks(12)) / 100.0
}

/// The server's resident memory, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse::<f64>().ok()));
    kib.unwrap_or(0.0) / 1024.0
}

/// A thousand clients each long-polling its own run (`GET /runs/{id}?wait=30`, as `aetr wait`
/// does): what they cost the server while they wait, and how soon they hear of the ends.
///
/// cargo test --release -p aetr-server --test e2e -- --ignored --nocapture long_polling
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it in release mode"]
async fn bench_a_thousand_clients_long_polling() {
    const CLIENTS: usize = 1000;
    let app = TestApp::spawn().await;
    let svc = TestService::start().await;
    svc.respond("/held", Respond::Status(202));
    let step = app.put_tree(&seq("held", vec![api("a", &svc.at("/held"))])).await;
    let mut runs = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        runs.push(app.start_run(step, json!("x")).await);
    }
    let mut callbacks = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        callbacks.push(svc.next().await.callback);
    }
    let pid = app.server().pid();
    let http = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().unwrap();
    let (cpu_before, rss_before) = (cpu_seconds(pid), rss_mib(pid));
    let started = Instant::now();
    let polls: Vec<_> = runs
        .iter()
        .map(|run| {
            let url = app.url(&format!("/api/v1/runs/{run}?depth=0&wait=30"));
            let http = http.clone();
            tokio::spawn(async move {
                let body: Value = http.get(url).send().await.unwrap().json().await.unwrap();
                (Instant::now(), body)
            })
        })
        .collect();
    // Let every client connect and park, then measure ten quiet seconds.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (cpu_parked, rss_parked) = (cpu_seconds(pid), rss_mib(pid));
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let cpu_waiting = cpu_seconds(pid) - cpu_parked;
    let db = app.db().await;
    let connections: i64 = db
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active'", &[])
        .await
        .unwrap()
        .get(0);
    // End every run; each client hears of its run's end.
    let ending = Instant::now();
    for callback in &callbacks {
        app.post_raw(callback, "done").await.expect(200);
    }
    let sent = ending.elapsed();
    let mut latest = ending;
    for poll in polls {
        let (at, body) = poll.await.unwrap();
        assert_eq!(body["state"], "Complete");
        latest = latest.max(at);
    }
    println!(
        "{CLIENTS} clients long-polling: parking them took {:.2} s of server CPU and {:.1} MiB \
         (RSS {rss_before:.1} -> {rss_parked:.1} MiB); then 10 s of waiting took {cpu_waiting:.3} s \
         of CPU, with {connections} database connections active (this query's included); the \
         last of them heard its run's end {:.2} s after the first callback was sent (all sent \
         one after another in {:.2} s); {:.1} s in all",
        cpu_parked - cpu_before,
        rss_parked - rss_before,
        (latest - ending).as_secs_f64(),
        sent.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
}

/// The latency of callbacks while `AETR_RETENTION_DAYS` deletes 100,000 old runs
/// (`AETR_BENCH_OLD_RUNS` sets how many), beside the same callbacks with nothing to delete.
///
/// cargo test --release -p aetr-server --test e2e -- --ignored --nocapture retention
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it in release mode"]
async fn bench_callback_latency_while_retention_deletes_old_runs() {
    let old: usize =
        std::env::var("AETR_BENCH_OLD_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let app = TestApp::spawn().await;
    let finished = app.put_tree(&seq("old", vec![noop("a"), noop("b")])).await;
    let making = Instant::now();
    let mut starts = tokio::task::JoinSet::new();
    for chunk in 0..16 {
        let (url, step) = (app.url(&format!("/api/v1/runs/step/{finished}")), finished);
        let http = reqwest::Client::new();
        let n = old / 16 + usize::from(chunk < old % 16);
        starts.spawn(async move {
            for _ in 0..n {
                let answer = http.post(&url).json(&json!({"input": "x"})).send().await.unwrap();
                assert_eq!(answer.status(), 201, "run of {step}");
            }
        });
    }
    starts.join_all().await;
    let db = app.db().await;
    db.execute("UPDATE runs SET completed_at = now() - interval '10 days'", &[]).await.unwrap();
    println!("{old} finished runs of 3 nodes made in {:.1} s", making.elapsed().as_secs_f64());

    let svc = TestService::start().await;
    svc.respond("/held", Respond::Status(202));
    let live = app.put_tree(&api("live", &svc.at("/held"))).await;
    let quiet = callback_latencies(&app, &svc, live, 300).await;

    // A replica that deletes old runs: its first sweep starts a second after it does.
    let sweeper = TestApp::on_database(&app.database_url(), &[("AETR_RETENTION_DAYS", "1")]);
    let sweeping = Instant::now();
    let old_left = || async {
        let sql = "SELECT count(*) FROM runs WHERE completed_at < now() - interval '1 day'";
        db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0)
    };
    while old_left().await > (old as i64) * 9 / 10 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let during = callback_latencies(&sweeper, &svc, live, 300).await;
    let left = old_left().await;
    while old_left().await > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let took = sweeping.elapsed().as_secs_f64();
    println!(
        "callbacks, p50/p99/max: {} with nothing to delete; {} while the sweep deleted \
         ({left} old runs were left when they ended); the sweep deleted {old} runs in {took:.1} s \
         ({:.0} runs/s)",
        summary(&quiet),
        summary(&during),
        old as f64 / took,
    );
}

/// The latency of `n` callbacks, one after another, each for a new run of `step`.
async fn callback_latencies(
    app: &TestApp,
    svc: &TestService,
    step: uuid::Uuid,
    n: usize,
) -> Vec<f64> {
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        app.start_run(step, json!("x")).await;
        let call = svc.next().await;
        let started = Instant::now();
        app.post_raw(&call.callback, "done").await.expect(200);
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies
}

/// p50/p99/max of latencies in milliseconds.
fn summary(latencies: &[f64]) -> String {
    let mut sorted = latencies.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    format!("{:.2}/{:.2}/{:.2} ms", at(0.5), at(0.99), at(1.0))
}
