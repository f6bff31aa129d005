//! The scenarios, each against the running server and the callback service. Each checks its
//! runs' results, so that a broken run fails the bench loudly instead of timing nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use futures_util::{stream, StreamExt, TryStreamExt};
use serde_json::json;

use crate::client::{tree, Api};
use crate::service::Service;

/// Runs started or checked at once.
const CONCURRENCY: usize = 64;

const COUNT_REDUCER: &str = "function apply(results) { return results.length; }";
const PLUS_ONE: &str = "function apply(d) { return String(Number(d) + 1); }";
const PLUS_TEN: &str = "function apply(d) { return String(Number(d) + 10); }";
const SUM_REDUCER: &str = "function apply(rs) { return String(Number(rs[0]) + Number(rs[1])); }";

pub struct Bench<'a> {
    pub api: &'a Api,
    pub service: &'a Service,
    /// The one leaf step that every tree reuses: an action on the service's `/cb`.
    leaf: String,
}

/// Callback → next POST latencies.
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub samples: usize,
    pub actions_per_s: f64,
}

impl<'a> Bench<'a> {
    pub async fn new(api: &'a Api, service: &'a Service) -> Result<Bench<'a>> {
        let leaf = api.put_tree(&tree::action("leaf", &service.at("/cb"))).await?;
        Ok(Bench { api, service, leaf })
    }

    /// One Parallel root over `n` actions, with a JS reducer that counts them: the tree made,
    /// then run (see [`Bench::run_wide`]).
    pub async fn wide(&self, n: usize) -> Result<f64> {
        let step = self.wide_tree(n).await?;
        self.run_wide(&step, n).await
    }

    /// The tree of [`Bench::wide`], made; its id.
    pub async fn wide_tree(&self, n: usize) -> Result<String> {
        let leaves = (0..n).map(|_| tree::stored(&self.leaf)).collect();
        self.api.put_tree(&tree::parallel_js(&format!("wide-{n}"), COUNT_REDUCER, leaves)).await
    }

    /// Runs a tree of [`Bench::wide_tree`] over `n` actions. Returns the seconds from the run's
    /// start to its completion, as seen by a client polling every 5 ms.
    pub async fn run_wide(&self, step: &str, n: usize) -> Result<f64> {
        self.time_count(step, json!("x"), n).await
    }

    /// A Map over its input's items of the same action (at most `cap` at once, if given), with
    /// a JS reducer that counts them: a wide tree whose width is known only when it runs. Its
    /// id.
    pub async fn map_tree(&self, cap: Option<u32>) -> Result<String> {
        let name = format!("map-{}", cap.map_or("all".to_owned(), |c| c.to_string()));
        let map = tree::map_js(&name, COUNT_REDUCER, cap, tree::stored(&self.leaf));
        self.api.put_tree(&map).await
    }

    /// Runs a tree of [`Bench::map_tree`] over `n` items. Returns the seconds from the run's
    /// start to its completion.
    pub async fn run_map(&self, step: &str, n: usize) -> Result<f64> {
        self.time_count(step, json!((0..n).collect::<Vec<_>>()), n).await
    }

    /// Runs `step` on `input`, checks that its result is `n` (what its reducer counted, or its
    /// chain added up), and returns the seconds from the start to the completion, as seen by a
    /// client polling every 5 ms.
    async fn time_count(&self, step: &str, input: serde_json::Value, n: usize) -> Result<f64> {
        let started = Instant::now();
        self.api.start_run(step, input).await?;
        let result = self.api.wait_complete(step, Duration::from_millis(5)).await?;
        let secs = started.elapsed().as_secs_f64();
        ensure!(
            result.as_deref() == Some(n.to_string().as_str()),
            "step {step}: {result:?}, not {n}"
        );
        Ok(secs)
    }

    /// A Sequential chain of `n` actions, each with a JS mapper that adds one; its id.
    pub async fn deep_tree(&self, n: usize) -> Result<String> {
        let steps = (0..n).map(|_| tree::mapped(tree::stored(&self.leaf), PLUS_ONE)).collect();
        self.api.put_tree(&tree::sequential(&format!("deep-{n}"), steps)).await
    }

    /// Runs a chain of [`Bench::deep_tree`] of `n` actions. Returns its seconds, and the
    /// median time from a callback to the next step's POST, in ms.
    pub async fn run_deep(&self, step: &str, n: usize) -> Result<(f64, Option<f64>)> {
        self.service.record_latency(true);
        let secs = self.time_count(step, json!(0), n).await;
        self.service.record_latency(false);
        let samples = self.service.latencies_us();
        Ok((secs?, (!samples.is_empty()).then(|| quantile_ms(&samples, 0.5))))
    }

    /// `Parallel[Sequential[a, b], c]`, mappers on a, b and c, and a JS reducer that adds the
    /// two branches; its id.
    pub async fn mixed_tree(&self) -> Result<String> {
        let ab = tree::sequential(
            "mixed-ab",
            vec![
                tree::mapped(tree::stored(&self.leaf), PLUS_ONE),
                tree::mapped(tree::stored(&self.leaf), PLUS_ONE),
            ],
        );
        let c = tree::mapped(tree::stored(&self.leaf), PLUS_TEN);
        let name = format!("mixed-{}", uuid::Uuid::new_v4().simple());
        self.api.put_tree(&tree::parallel_js(&name, SUM_REDUCER, vec![ab, c])).await
    }

    /// `runs` concurrent runs (at most 1,000) of a tree of [`Bench::mixed_tree`], made for
    /// them (its runs are counted). Returns actions per second.
    pub async fn run_mixed(&self, step: &str, runs: usize) -> Result<f64> {
        ensure!(runs <= 1000, "mixed counts its runs through one page of GET /runs");
        let started = Instant::now();
        let ids: Vec<(usize, String)> = stream::iter(0..runs)
            .map(|i| {
                let (api, step) = (self.api.clone(), step.to_owned());
                async move { Ok::<_, anyhow::Error>((i, api.start_run(&step, json!(i)).await?)) }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        eprintln!("bench: mixed: {runs} runs started in {:.2} s", started.elapsed().as_secs_f64());
        let done = self.api.wait_all_complete(step, runs, Duration::from_millis(20)).await?;
        let secs = started.elapsed().as_secs_f64();
        let input: HashMap<String, usize> = ids.into_iter().map(|(i, id)| (id, i)).collect();
        for (id, result) in done {
            let want = input.get(&id).map(|i| (2 * i + 12).to_string());
            ensure!(
                result.is_some() && result == want,
                "mixed run {id} gave {result:?}, not {want:?}"
            );
        }
        Ok((3 * runs) as f64 / secs)
    }

    /// A steady `rate` actions per second for `seconds`: runs of a 10-action chain, started at a
    /// tenth of that rate. Records callback → next-dispatch latency at the service.
    pub async fn latency(&self, rate: u32, seconds: u32) -> Result<Latency> {
        const CHAIN: u32 = 10;
        let steps = (0..CHAIN).map(|_| tree::stored(&self.leaf)).collect();
        let name = format!("steady-{}", uuid::Uuid::new_v4().simple());
        let step = self.api.put_tree(&tree::sequential(&name, steps)).await?;
        let runs = rate / CHAIN * seconds;
        let mut tick =
            tokio::time::interval(Duration::from_secs_f64(f64::from(CHAIN) / f64::from(rate)));
        self.service.record_latency(true);
        let posts_before = self.service.posts();
        let started = Instant::now();
        let mut starts = Vec::with_capacity(runs as usize);
        for _ in 0..runs {
            tick.tick().await;
            let (api, step) = (self.api.clone(), step.clone());
            starts.push(tokio::spawn(async move { api.start_run(&step, json!("x")).await }));
        }
        for start in starts {
            start.await??;
        }
        let posts = self.service.posts() - posts_before;
        let actions_per_s = posts as f64 / started.elapsed().as_secs_f64();
        self.service.record_latency(false);
        // Every run completes, none fails.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let busy = self.api.count_runs(&step, "Executing").await?
                + self.api.count_runs(&step, "Pending").await?;
            if busy == 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("the steady load's runs did not complete within 2 minutes of its end");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ensure!(self.api.count_runs(&step, "Error").await? == 0, "a run of the steady load failed");
        let samples = self.service.latencies_us();
        ensure!(!samples.is_empty(), "no callback → dispatch latency was recorded");
        let at = |q| quantile_ms(&samples, q);
        Ok(Latency { p50_ms: at(0.50), p99_ms: at(0.99), samples: samples.len(), actions_per_s })
    }
}

/// The quantile `q` of sorted, non-empty samples in µs, in ms.
fn quantile_ms(samples: &[u64], q: f64) -> f64 {
    samples[((samples.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
}
