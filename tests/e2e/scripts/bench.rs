//! What isolation costs: calls of a mapper in process (boa alone, on this thread) and through
//! a pool of script worker processes. Ignored by default; run in release mode:
//!
//! cargo test --release -p aetr-server --test e2e -- --ignored --nocapture bench_script
//!
//! Figures are printed, not asserted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aetr_engine::script::{BoaRunner, ScriptCall, ScriptRunner};
use aetr_server::scripts::{OwnedCall, ScriptPool, ScriptSettings};

const IDENTITY: &str = "function apply(d) { return d; }";
const JSON: &str = "function apply(d) { const o = JSON.parse(d); o.n += 1; return o; }";
const INPUT: &str = r#"{"n": 1, "name": "widget", "tags": ["a", "b", "c"], "price": 12.5}"#;

/// The server's defaults, with `workers` workers of this build's `aetr`.
fn settings(workers: usize) -> ScriptSettings {
    ScriptSettings {
        program: env!("CARGO_BIN_EXE_aetr").into(),
        workers,
        timeout: Duration::from_millis(1000),
        memory_mb: 256,
        max_calls_per_worker: 10_000,
        max_cpu_per_worker: Duration::from_secs(60),
        max_result_bytes: 16 * 1024 * 1024,
    }
}

/// Microseconds per call of `js` in a boa runner on this thread.
fn in_process_us(js: &str, calls: u32) -> f64 {
    let mut runner = BoaRunner::default();
    runner.call(js, ScriptCall::Map { data: Some(INPUT) }).unwrap();
    let started = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(runner.call(js, ScriptCall::Map { data: Some(INPUT) }).unwrap());
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(calls)
}

/// Microseconds per call through the pool, one call at a time: a call's latency.
async fn one_at_a_time_us(pool: &ScriptPool, js: &str, calls: u32) -> f64 {
    let started = Instant::now();
    for _ in 0..calls {
        let call = OwnedCall::Map(Some(INPUT.to_owned()));
        std::hint::black_box(pool.call(js.to_owned(), call).await.unwrap());
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(calls)
}

/// Calls per second through the pool, from `callers` tasks at once.
async fn calls_per_second(pool: &ScriptPool, js: &str, calls: usize, callers: usize) -> f64 {
    let pool = Arc::new(pool.clone());
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (pool, js) = (Arc::clone(&pool), js.to_owned());
            tokio::spawn(async move {
                for _ in 0..calls / callers {
                    let call = OwnedCall::Map(Some(INPUT.to_owned()));
                    std::hint::black_box(pool.call(js.clone(), call).await.unwrap());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (calls / callers * callers) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it in release mode"]
async fn bench_script_calls_in_process_and_through_the_worker_pool() {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    for (name, js) in [("identity mapper", IDENTITY), ("JSON mapper", JSON)] {
        let in_process = in_process_us(js, 100_000);
        println!("{name}, in process (boa alone, one thread): {in_process:.2} us a call");

        let pool = ScriptPool::start(settings(1)).await.unwrap();
        one_at_a_time_us(&pool, js, 1_000).await;
        let latency = one_at_a_time_us(&pool, js, 20_000).await;
        println!(
            "{name}, one worker, one call at a time: {latency:.1} us a call \
             ({:.1} us more than in process)",
            latency - in_process
        );
        pool.stop().await;

        let pool = ScriptPool::start(settings(cores)).await.unwrap();
        for callers in [1, 16, 256] {
            let rate = calls_per_second(&pool, js, 50_000, callers).await;
            println!(
                "{name}, {cores} workers, {callers} callers at once: {rate:.0} calls/s \
                 (in process, one thread per worker: {:.0} calls/s)",
                cores as f64 * 1e6 / in_process
            );
        }
        pool.stop().await;
    }
}
