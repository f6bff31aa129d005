//! aetr's REST API, as the bench uses it: save a tree, start runs, wait for them.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// How long one scenario may take before the bench gives up on it.
const RUN_DEADLINE: Duration = Duration::from_secs(900);

impl Api {
    pub fn new(base: String) -> Result<Api> {
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
        Ok(Api { http, base })
    }

    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let answer = request.send().await.with_context(|| format!("{what}: no answer"))?;
        let status = answer.status();
        let body = answer.text().await.with_context(|| format!("{what}: no body"))?;
        if !status.is_success() {
            bail!("{what}: {status} {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("{what}: not JSON: {body}"))
    }

    /// Saves a whole nested tree; returns its root's id.
    pub async fn put_tree(&self, tree: &Value) -> Result<String> {
        let saved = self
            .send(self.http.put(format!("{}/steps", self.base)).json(tree), "PUT /steps")
            .await?;
        id_of(&saved)
    }

    /// Starts a run of `step` with `input`; returns the run's id.
    pub async fn start_run(&self, step: &str, input: Value) -> Result<String> {
        let url = format!("{}/runs/step/{step}", self.base);
        let started =
            self.send(self.http.post(url).json(&json!({ "input": input })), "POST /runs").await?;
        id_of(&started)
    }

    /// The runs of `step`, newest first (at most 1,000): their summaries, without children.
    /// The bench polls this rather than `GET /runs/{id}`, whose root counts its children by
    /// state: on a 100,000-leaf run, polling that would load the server more than the run.
    pub async fn runs_of(&self, step: &str) -> Result<Vec<Value>> {
        let url = format!("{}/runs?stepId={step}&limit=1000", self.base);
        let runs = self.send(self.http.get(url), "GET /runs").await?;
        Ok(runs.as_array().cloned().unwrap_or_default())
    }

    /// How many runs of `step` are in `state` (counting up to 1,000).
    pub async fn count_runs(&self, step: &str, state: &str) -> Result<usize> {
        let url = format!("{}/runs?state={state}&stepId={step}&limit=1000", self.base);
        let runs = self.send(self.http.get(url), "GET /runs").await?;
        Ok(runs.as_array().map_or(0, Vec::len))
    }

    /// Waits until all `n` runs of `step` (at most 1,000) have completed, polling every
    /// `every`; returns each run's id and result. A run in `Error` or `Cancelled` fails the
    /// bench, naming its error.
    pub async fn wait_all_complete(
        &self,
        step: &str,
        n: usize,
        every: Duration,
    ) -> Result<Vec<(String, Option<String>)>> {
        let deadline = Instant::now() + RUN_DEADLINE;
        loop {
            let runs = self.runs_of(step).await?;
            if let Some(bad) =
                runs.iter().find(|r| matches!(r["state"].as_str(), Some("Error" | "Cancelled")))
            {
                bail!("run {} of step {step} ended {}: {}", bad["id"], bad["state"], bad["error"]);
            }
            let done = runs.iter().filter(|r| r["state"] == "Complete").count();
            if done >= n {
                return Ok(runs
                    .iter()
                    .map(|r| {
                        let id = r["id"].as_str().unwrap_or_default().to_owned();
                        (id, r["result"].as_str().map(str::to_owned))
                    })
                    .collect());
            }
            if Instant::now() > deadline {
                bail!("{} of the {n} runs of step {step} completed in time", done);
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Waits until the one run of `step` completes; returns its result.
    pub async fn wait_complete(&self, step: &str, every: Duration) -> Result<Option<String>> {
        let mut done = self.wait_all_complete(step, 1, every).await?;
        Ok(done.pop().and_then(|(_, result)| result))
    }
}

fn id_of(answer: &Value) -> Result<String> {
    answer["id"].as_str().map(str::to_owned).with_context(|| format!("no id in {answer}"))
}

/// Trees, in the API's JSON shape.
pub mod tree {
    use serde_json::{json, Value};

    pub fn action(name: &str, url: &str) -> Value {
        json!({"name": name, "stepType": "Action", "action": {"type": "api", "url": url}})
    }

    pub fn sequential(name: &str, children: Vec<Value>) -> Value {
        json!({"name": name, "stepType": "Sequential", "children": children})
    }

    pub fn parallel_js(name: &str, js: &str, children: Vec<Value>) -> Value {
        json!({"name": name, "stepType": "Parallel", "reducer": {"type": "js", "js": js},
               "children": children})
    }

    /// A Map over its input list with a JS reducer, capped at `cap` instances at once if given.
    pub fn map_js(name: &str, js: &str, cap: Option<u32>, child: Value) -> Value {
        let map = match cap {
            Some(cap) => json!({"maxConcurrency": cap}),
            None => json!({}),
        };
        json!({"name": name, "stepType": "Map", "map": map, "reducer": {"type": "js", "js": js},
               "children": [child]})
    }

    /// A child link to a stored step, by id.
    pub fn stored(id: &str) -> Value {
        json!({ "id": id })
    }

    /// The same child, with a JS mapper on its link.
    pub fn mapped(mut child: Value, js: &str) -> Value {
        child["mapper"] = json!({"type": "js", "js": js});
        child
    }
}
