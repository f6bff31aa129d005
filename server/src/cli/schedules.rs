//! `aetr schedules ls|add|rm`.

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::Client;
use super::run::step_id;
use super::{print, text, Exit, ServerUrl};

#[derive(Debug, Clone, Subcommand)]
pub enum SchedulesCommand {
    /// Lists schedules (of one step, with --step), with their next tick and last run.
    Ls {
        #[command(flatten)]
        server: ServerUrl,
        /// Only the schedules of this step (an id or a unique name).
        #[arg(long)]
        step: Option<String>,
    },
    /// Starts runs of STEP on the ticks of CRON (5 fields, or 6 with seconds first); prints
    /// the schedule's id.
    Add {
        #[command(flatten)]
        server: ServerUrl,
        /// The step: an id or a unique name.
        step: String,
        /// The cron expression, such as "0 9 * * MON-FRI" (quote it).
        cron: String,
        /// The IANA time zone of the expression (default UTC).
        #[arg(long)]
        timezone: Option<String>,
        /// Each run's input, as text (JSON is passed as its value).
        #[arg(long)]
        input: Option<String>,
        /// Skip a tick while the schedule's previous run is still going.
        #[arg(long)]
        skip_overlap: bool,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
    },
    /// Deletes a schedule (its runs stay).
    Rm {
        #[command(flatten)]
        server: ServerUrl,
        schedule: String,
    },
}

pub async fn run(command: SchedulesCommand) -> Exit {
    match schedules(command).await {
        Ok(()) => Exit::Done,
        Err(exit) => exit,
    }
}

async fn schedules(command: SchedulesCommand) -> Result<(), Exit> {
    match command {
        SchedulesCommand::Ls { server, step } => {
            let client = Client::new(&server)?;
            let path = match &step {
                Some(step) => format!("/schedules?stepId={}", step_id(&client, step).await?),
                None => "/schedules".to_owned(),
            };
            let list = client.get(&path).await?;
            print(&list, || {
                list.as_array().into_iter().flatten().map(line).collect::<Vec<_>>().join("\n")
            });
        }
        SchedulesCommand::Add { server, step, cron, timezone, input, skip_overlap, paused } => {
            let client = Client::new(&server)?;
            let mut body = json!({ "stepId": step_id(&client, &step).await?, "cron": cron });
            if let Some(zone) = timezone {
                body["timezone"] = json!(zone);
            }
            if let Some(input) = input {
                // JSON is kept as its value; anything else is the text itself.
                body["input"] = serde_json::from_str(&input).unwrap_or(Value::String(input));
            }
            if skip_overlap {
                body["overlap"] = json!("skip");
            }
            if paused {
                body["enabled"] = json!(false);
            }
            let made = client.post("/schedules", &body).await?;
            print(&made, || text(&made["id"]));
        }
        SchedulesCommand::Rm { server, schedule } => {
            let client = Client::new(&server)?;
            let id = uuid::Uuid::try_parse(&schedule)
                .map_err(|_| Exit::Usage(format!("{schedule:?} is not a schedule's id")))?;
            client.delete(&format!("/schedules/{id}")).await?;
            print(&json!({ "deleted": id }), || format!("deleted schedule {id}"));
        }
    }
    Ok(())
}

/// A schedule as one line: id, expression and zone, state, next tick, last run.
fn line(s: &Value) -> String {
    let next = match s["nextFireAt"].as_i64() {
        Some(ms) => format!("{} UTC", crate::cli::runs::rfc3339(ms)),
        None => "paused".to_owned(),
    };
    let last = s["lastRunId"].as_str().unwrap_or("-");
    format!(
        "{}  {:<16} {:<14} next {:<20} last run {}{}",
        text(&s["id"]),
        text(&s["cron"]),
        text(&s["timezone"]),
        next,
        last,
        s["lastError"].as_str().map(|e| format!("  ({e})")).unwrap_or_default()
    )
}
