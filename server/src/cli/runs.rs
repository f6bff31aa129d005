//! `aetr runs ls|show|events|cancel|retry|rm|complete|fail`.

use std::io::IsTerminal;

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::Client;
use super::run::step_id;
use super::{has_ended, print, read_stdin, text, Exit, ServerUrl};

#[derive(Debug, Clone, Subcommand)]
pub enum RunsCommand {
    /// Lists runs, newest first.
    Ls {
        #[command(flatten)]
        server: ServerUrl,
        /// Only runs in this state.
        #[arg(long)]
        state: Option<String>,
        /// Only runs of this step (an id or a unique name).
        #[arg(long)]
        step: Option<String>,
        /// List dry runs instead of real ones.
        #[arg(long)]
        dry: bool,
    },
    /// Shows a run as a tree, with each node's state.
    Show {
        #[command(flatten)]
        server: ServerUrl,
        run: String,
    },
    /// Prints a run's history; with --follow, keeps printing until the run ends.
    Events {
        #[command(flatten)]
        server: ServerUrl,
        run: String,
        #[arg(long)]
        follow: bool,
    },
    /// Cancels a run.
    Cancel {
        #[command(flatten)]
        server: ServerUrl,
        run: String,
    },
    /// Redrives a run in Error from the nodes that failed; with --latest, on the latest
    /// definitions of its steps.
    Retry {
        #[command(flatten)]
        server: ServerUrl,
        run: String,
        #[arg(long)]
        latest: bool,
    },
    /// Deletes a run that has finished, with its nodes, attempts and history.
    Rm {
        #[command(flatten)]
        server: ServerUrl,
        run: String,
    },
    /// Completes an action by hand (approves a `manual` one), with RESULT (or standard input,
    /// when it is not a terminal) as its result.
    Complete {
        #[command(flatten)]
        server: ServerUrl,
        run: String,
        /// The node's id, or the name of the run's one Pending or Executing node so named.
        node: String,
        result: Option<String>,
    },
    /// Fails an action by hand (rejects a `manual` one), with ERROR as its error.
    Fail {
        #[command(flatten)]
        server: ServerUrl,
        run: String,
        /// The node's id, or the name of the run's one Pending or Executing node so named.
        node: String,
        error: Option<String>,
    },
}

pub async fn run(command: RunsCommand) -> Exit {
    match runs(command).await {
        Ok(()) => Exit::Done,
        Err(exit) => exit,
    }
}

async fn runs(command: RunsCommand) -> Result<(), Exit> {
    match command {
        RunsCommand::Ls { server, state, step, dry } => {
            let client = Client::new(&server)?;
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("limit", "1000");
            if let Some(state) = &state {
                query.append_pair("state", state);
            }
            if let Some(step) = &step {
                query.append_pair("stepId", &step_id(&client, step).await?);
            }
            if dry {
                query.append_pair("dryRun", "true");
            }
            let runs = client.get(&format!("/runs?{}", query.finish())).await?;
            print(&runs, || {
                let line = |r: &Value| {
                    let when = r["createdAt"].as_i64().map(rfc3339).unwrap_or_default();
                    format!(
                        "{}  {:<9}  {when}  {}",
                        text(&r["id"]),
                        text(&r["state"]),
                        text(&r["stepTree"]["name"])
                    )
                };
                runs.as_array().into_iter().flatten().map(line).collect::<Vec<_>>().join("\n")
            });
        }
        RunsCommand::Show { server, run } => {
            let client = Client::new(&server)?;
            let tree = client.get(&format!("/runs/{run}")).await?;
            print(&tree, || {
                let mut lines = String::new();
                outline(&tree, 0, &mut lines);
                lines.trim_end().to_owned()
            });
        }
        RunsCommand::Events { server, run, follow } => {
            let client = Client::new(&server)?;
            events(&client, &run, follow).await?;
        }
        RunsCommand::Cancel { server, run } => {
            let client = Client::new(&server)?;
            let done = client.post(&format!("/runs/{run}/cancel"), &json!({})).await?;
            print(&done, || format!("run {run} is {}", text(&done["state"])));
        }
        RunsCommand::Retry { server, run, latest } => {
            let client = Client::new(&server)?;
            let query = if latest { "?definition=latest" } else { "" };
            let done = client.post(&format!("/runs/{run}/retry{query}"), &json!({})).await?;
            print(&done, || format!("run {run} is {}", text(&done["state"])));
        }
        RunsCommand::Rm { server, run } => {
            Client::new(&server)?.delete(&format!("/runs/{run}")).await?;
            print(&json!({ "id": run, "deleted": true }), || format!("run {run} is deleted"));
        }
        RunsCommand::Complete { server, run, node, result } => {
            let body = match result {
                Some(result) => result,
                None if std::io::stdin().is_terminal() => String::new(),
                None => read_stdin("a result")?,
            };
            settle(&Client::new(&server)?, &run, &node, "complete", body).await?;
        }
        RunsCommand::Fail { server, run, node, error } => {
            let body = error.unwrap_or_default();
            settle(&Client::new(&server)?, &run, &node, "fail", body).await?;
        }
    }
    Ok(())
}

/// Completes or fails (`what`) a node by hand, and prints it.
async fn settle(
    client: &Client,
    run: &str,
    node: &str,
    what: &str,
    body: String,
) -> Result<(), Exit> {
    let node = node_id(client, run, node).await?;
    let done = client.post_text(&format!("/runs/{run}/nodes/{node}/{what}"), body).await?;
    print(&done, || format!("{} is {}", text(&done["stepTree"]["name"]), text(&done["state"])));
    Ok(())
}

/// A node's id: NODE itself when it is one, else the id of the run's one Pending or Executing
/// node named NODE.
async fn node_id(client: &Client, run: &str, node: &str) -> Result<String, Exit> {
    if uuid::Uuid::try_parse(node).is_ok() {
        return Ok(node.to_owned());
    }
    let tree = client.get(&format!("/runs/{run}")).await?;
    let mut found = Vec::new();
    let mut stack = vec![&tree];
    while let Some(n) = stack.pop() {
        let waiting = matches!(n["state"].as_str(), Some("Pending" | "Executing"));
        if waiting && n["stepTree"]["name"] == node && n["childCount"] == 0 {
            found.push(text(&n["id"]));
        }
        stack.extend(n["children"].as_array().into_iter().flatten());
    }
    match found.as_slice() {
        [id] => Ok(id.clone()),
        [] => Err(Exit::Usage(format!("run {run} has no action named {node:?} that waits"))),
        _ => Err(Exit::Usage(format!(
            "run {run} has {} actions named {node:?} that wait: give the node's id",
            found.len()
        ))),
    }
}

/// Prints a run's history, a line (or a JSON object) an event; with `follow`, until the run
/// has ended and every event is printed.
async fn events(client: &Client, run: &str, mut follow: bool) -> Result<(), Exit> {
    let mut after: Option<i64> = None;
    loop {
        let query = after.map(|seq| format!("&after={seq}")).unwrap_or_default();
        let page = client.get(&format!("/runs/{run}/events?limit=1000{query}")).await?;
        let events = page.as_array().cloned().unwrap_or_default();
        for event in &events {
            print(event, || {
                let when = event["at"].as_i64().map(rfc3339).unwrap_or_default();
                let name = event["name"].as_str().map(|n| format!(" {n}")).unwrap_or_default();
                let changes: Vec<String> = event["changes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        format!("{} {}→{}", text(&c["name"]), text(&c["from"]), text(&c["to"]))
                    })
                    .collect();
                format!("{when}  {}{name}  {}", text(&event["kind"]), changes.join(", "))
            });
            after = event["seq"].as_i64().or(after);
        }
        if events.len() >= 1000 {
            continue;
        }
        if !follow {
            return Ok(());
        }
        // Wait (a long poll of a second) for more; once the run has ended, print the rest.
        let root = client.get(&format!("/runs/{run}?depth=0&wait=1")).await?;
        follow = !has_ended(&root["state"]);
    }
}

/// A run's tree as indented lines: each node's name and state, and its error.
fn outline(node: &Value, depth: usize, out: &mut String) {
    let error = node["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
    out.push_str(&format!(
        "{:indent$}{} {}{error}\n",
        "",
        text(&node["stepTree"]["name"]),
        text(&node["state"]),
        indent = depth * 2
    ));
    for child in node["children"].as_array().into_iter().flatten() {
        outline(child, depth + 1, out);
    }
}

/// Epoch milliseconds as a UTC time, to the second.
pub(crate) fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// The calendar date of a day counted from 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01 00:00:00");
        assert_eq!(super::rfc3339(1_796_083_200_000), "2026-12-01 00:00:00");
        assert_eq!(super::rfc3339(951_825_600_000), "2000-02-29 12:00:00");
    }
}
