//! What isolation costs: calls of a mapper in process (boa alone, on one thread) and through a
//! pool of script worker processes. Ignored by default; run in release mode:
//!
//! cargo test --release -p aetr-server --test e2e -- --ignored --nocapture script_calls
//!
//! (Its name does not contain "bench", so that the whole-run benchmark's command, which filters
//! on that word, does not run both at once on the same cores.)
//!
//! Figures are printed, not asserted. For the pool: a call's latency, from a task (as the server
//! calls), one call at a time; calls per second with many callers at once; and the CPU time
//! that each call costs in all (the server's side and the worker's), from this process's CPU
//! time and its reaped children's, over a pool's whole life.

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

/// The CPU time of this process, and of its children that have exited and been waited for.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().filter_map(|f| f.parse().ok()).collect())
        .unwrap_or_default();
    // utime, stime, cutime and cstime are fields 14 to 17 of the line: 11 to 14 after the
    // state (which does not parse as a number), counted from 0.
    let ticks: u64 = fields.iter().skip(10).take(4).sum();
    Duration::from_millis(ticks * 10)
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

/// Makes `calls` calls from each of `callers` tasks at once; returns the time they took.
async fn call_many(pool: &ScriptPool, js: &str, calls: usize, callers: usize) -> Duration {
    let pool = Arc::new(pool.clone());
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (pool, js) = (Arc::clone(&pool), js.to_owned());
            tokio::spawn(async move {
                for _ in 0..calls {
                    let call = OwnedCall::Map(Some(INPUT.to_owned()));
                    std::hint::black_box(pool.call(js.clone(), call).await.unwrap());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

/// A fresh pool's calls per second, and microseconds of CPU time per call (all processes).
async fn through_a_pool(js: &str, workers: usize, calls: usize, callers: usize) -> (f64, f64) {
    let pool = ScriptPool::start(settings(workers)).await.unwrap();
    call_many(&pool, js, 1_000, 1).await;
    let cpu = cpu_time();
    let took = call_many(&pool, js, calls / callers, callers).await;
    pool.stop().await;
    let total = (calls / callers * callers) as f64;
    (total / took.as_secs_f64(), (cpu_time() - cpu).as_secs_f64() * 1e6 / total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it in release mode"]
async fn script_calls_in_process_and_through_the_worker_pool() {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    for (name, js) in [("identity mapper", IDENTITY), ("JSON mapper", JSON)] {
        let in_process = in_process_us(js, 100_000);
        println!("{name}, in process (boa alone, one thread): {in_process:.2} us a call");

        let (rate, cpu) = through_a_pool(js, 1, 20_000, 1).await;
        let latency = 1e6 / rate;
        println!(
            "{name}, one worker, one call at a time: {latency:.1} us a call, {:.1} us more than \
             in process; {cpu:.1} us of CPU a call in all",
            latency - in_process
        );
        for callers in [16, 256] {
            let (rate, cpu) = through_a_pool(js, cores, 200_000, callers).await;
            println!(
                "{name}, {cores} workers, {callers} callers at once: {rate:.0} calls/s; {cpu:.1} \
                 us of CPU a call in all, {:.1} us more than in process",
                cpu - in_process
            );
        }
    }
}
