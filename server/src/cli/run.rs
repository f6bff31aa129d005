//! `aetr run STEP [INPUT]` and `aetr wait RUN`: start a run and wait for it, as a pipe stage
//! (`cat in | aetr run tree > out`). The result goes to standard output raw; progress (a bar
//! of the run's actions, on a terminal) and errors go to standard error.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use super::client::Client;
use super::{has_ended, read_stdin, Exit, ServerUrl};

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub server: ServerUrl,
    /// The step tree: a step's id, or its name when exactly one step has it.
    pub step: String,
    /// The run's input, as text; standard input when absent (and not a terminal).
    pub input: Option<String>,
    /// Print the run's id and return at once, without waiting.
    #[arg(long)]
    pub detach: bool,
    /// Starting again with the same key gives the first run instead of a new one.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// POST the run's outcome to this URL when it ends (a Standard Webhooks message).
    #[arg(long, value_name = "URL")]
    pub notify: Option<String>,
    /// Sign the webhook with this secret (`whsec_<base64>`, or any text). Best given in the
    /// environment, so that it is not in the process list.
    #[arg(long, env = "AETR_NOTIFY_SECRET", hide_env_values = true)]
    pub notify_secret: Option<String>,
    /// Stop waiting after this many seconds (exit code 4); 0 waits for ever.
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
    /// A dry run: no action calls anything. Each api action completes at once, with its
    /// `--result` or else with its input; a wait ends at once; a manual action still waits.
    #[arg(long)]
    pub dry_run: bool,
    /// In a dry run, what the api action NAME completes with (repeat for each action).
    #[arg(long, value_name = "NAME=TEXT", requires = "dry_run")]
    pub result: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub server: ServerUrl,
    /// The run's id (or the id of any node of it); standard input when absent.
    pub run: Option<String>,
    /// The longest that one request to the server waits for the run to end, in seconds
    /// (at most 60).
    #[arg(long, default_value_t = 30)]
    pub interval: u64,
    /// Stop waiting after this many seconds (exit code 4); 0 waits for ever.
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
}

pub async fn run(args: RunArgs) -> Exit {
    match start_and_wait(args).await {
        Ok(exit) | Err(exit) => exit,
    }
}

pub async fn wait(args: WaitArgs) -> Exit {
    let waited = async {
        let client = Client::new(&args.server)?;
        let run = match args.run {
            Some(run) => run,
            None => read_stdin("a run's id")?.trim().to_owned(),
        };
        if run.is_empty() {
            return Err(Exit::Usage("give a run's id, as an argument or on standard input".into()));
        }
        let interval = args.interval.clamp(1, 60);
        wait_for(&client, &run, interval, args.timeout).await
    };
    match waited.await {
        Ok(exit) | Err(exit) => exit,
    }
}

async fn start_and_wait(args: RunArgs) -> Result<Exit, Exit> {
    let client = Client::new(&args.server)?;
    let input = match args.input {
        Some(input) => Some(input),
        None if std::io::stdin().is_terminal() => None,
        None => Some(read_stdin("the run's input")?),
    };
    let step = step_id(&client, &args.step).await?;
    let mut body = json!({ "input": input });
    if let Some(key) = &args.idempotency_key {
        body["idempotencyKey"] = json!(key);
    }
    if let Some(url) = &args.notify {
        body["notify"] = json!({ "url": url });
        if let Some(secret) = &args.notify_secret {
            body["notify"]["secret"] = json!(secret);
        }
    }
    if args.dry_run {
        body["dryRun"] = json!({ "results": dry_results(&args.result)? });
    }
    let started = client.post(&format!("/runs/step/{step}"), &body).await?;
    let Some(run) = started["id"].as_str().map(str::to_owned) else {
        return Err(Exit::Failed(format!("the server's answer has no run id: {started}")));
    };
    if args.detach {
        println!("{run}");
        return Ok(Exit::Done);
    }
    wait_for(&client, &run, 30, args.timeout).await
}

/// A dry run's results from `NAME=TEXT` arguments.
fn dry_results(given: &[String]) -> Result<serde_json::Map<String, Value>, Exit> {
    given
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((name, text)) if !name.is_empty() => Ok((name.to_owned(), json!(text))),
            _ => Err(Exit::Usage(format!("--result {pair:?}: expected NAME=TEXT"))),
        })
        .collect()
}

/// Waits for a run to end (long polls of at most `interval` seconds; one second at a time while
/// a progress bar is drawn), then prints its result and says how it ended.
async fn wait_for(client: &Client, run: &str, interval: u64, timeout: u64) -> Result<Exit, Exit> {
    let deadline = (timeout > 0).then(|| Instant::now() + Duration::from_secs(timeout));
    let bar = std::io::stderr().is_terminal().then(progress_bar);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()).as_secs());
        let wait = match (&bar, left) {
            (Some(_), _) => 1,
            (None, Some(left)) => interval.min(left.max(1)),
            (None, None) => interval,
        };
        let root = client.get(&format!("/runs/{run}?depth=0&wait={wait}")).await?;
        if let (Some(bar), Some(id)) = (&bar, root["id"].as_str()) {
            draw(bar, client, id).await;
        }
        let state = root["state"].as_str().unwrap_or_default();
        if has_ended(&root["state"]) {
            // The bar goes first: the result may be written on the same terminal.
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
        }
        if let Some(exit) = ended(state, &root, run) {
            return Ok(exit);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            if let Some(bar) = &bar {
                bar.abandon();
            }
            eprintln!("aetr: run {run} is still {state} after {timeout} s");
            return Ok(Exit::StillRunning);
        }
    }
}

/// How a run that ended ends the command: its result on standard output (raw), or its error.
fn ended(state: &str, root: &Value, run: &str) -> Option<Exit> {
    match state {
        "Complete" => {
            if let Some(result) = root["result"].as_str() {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(result.as_bytes()).and_then(|()| out.flush());
            }
            Some(Exit::Done)
        }
        "Error" => {
            let error = root["error"].as_str().unwrap_or("no error message");
            Some(Exit::Failed(format!("run {run} failed: {error}")))
        }
        "Cancelled" => {
            eprintln!("aetr: run {run} was cancelled");
            Some(Exit::Cancelled)
        }
        _ => None,
    }
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} actions done {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// Draws the run's actions, done out of all (a failed read leaves the bar as it was).
async fn draw(bar: &ProgressBar, client: &Client, run: &str) {
    let Ok(progress) = client.get(&format!("/runs/{run}/progress")).await else { return };
    let count = |state: &str| progress["counts"][state].as_u64().unwrap_or(0);
    let total = progress["actions"].as_u64().unwrap_or(0);
    bar.set_length(total);
    bar.set_position(count("Complete") + count("Error") + count("Cancelled") + count("Skipped"));
    let executing = count("Executing");
    bar.set_message(if executing > 0 { format!("({executing} executing)") } else { String::new() });
    bar.tick();
}

/// A step's id: STEP itself when it is one, else the id of the one step named STEP.
pub async fn step_id(client: &Client, step: &str) -> Result<String, Exit> {
    if uuid::Uuid::try_parse(step).is_ok() {
        return Ok(step.to_owned());
    }
    let query: String = url::form_urlencoded::byte_serialize(step.as_bytes()).collect();
    let found = client.get(&format!("/steps?q={query}")).await?;
    let named: Vec<&str> = found
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"] == step)
        .filter_map(|s| s["id"].as_str())
        .collect();
    match named.as_slice() {
        [id] => Ok((*id).to_owned()),
        [] => Err(Exit::Usage(format!("no step is named {step:?}"))),
        ids => Err(Exit::Usage(format!(
            "{} steps are named {step:?} ({}): give one's id",
            ids.len(),
            ids.join(", ")
        ))),
    }
}
