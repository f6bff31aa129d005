//! `aetr` as a client, for people and for shell pipes: every command reads `AETR_URL` and
//! `AETR_TOKEN`, prints JSON when its standard output is not a terminal and text when it is,
//! and writes progress and errors to standard error only, an error as one line.
//!
//! Exit codes (design.md, "The command line"): 0 done (a run Complete), 1 a failure (a run in
//! Error, a refused request, a server that cannot be reached), 2 a usage error, 3 a run
//! Cancelled, 4 a run still going at `--timeout`.

pub mod callback;
pub mod client;
pub mod run;
pub mod runs;
pub mod schedules;
pub mod serve_command;
pub mod steps;

use std::future::Future;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;

/// Where the server is, and how to be let in.
#[derive(Debug, Clone, Args)]
pub struct ServerUrl {
    /// The aetr server to talk to.
    #[arg(long = "url", env = "AETR_URL", default_value = "http://127.0.0.1:9999")]
    pub url: String,
    /// An API token, when the server requires one (AETR_API_TOKENS on the server).
    #[arg(long = "token", env = "AETR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// How a client command ends.
#[derive(Debug)]
pub enum Exit {
    /// 0.
    Done,
    /// 1: a run in Error, or a failed request; the message goes to standard error.
    Failed(String),
    /// 2: the command was given something it cannot use.
    Usage(String),
    /// 3.
    Cancelled,
    /// 4.
    StillRunning,
}

impl Exit {
    pub fn code(&self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Failed(_) => 1,
            Exit::Usage(_) => 2,
            Exit::Cancelled => 3,
            Exit::StillRunning => 4,
        }
    }
}

impl From<anyhow::Error> for Exit {
    fn from(e: anyhow::Error) -> Exit {
        Exit::Failed(format!("{e:#}"))
    }
}

/// Runs a client command on a runtime of its own, and turns how it ended into an exit code,
/// with its message on standard error.
pub fn exit_with(command: impl Future<Output = Exit>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("aetr: cannot start its runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let exit = runtime.block_on(command);
    match &exit {
        Exit::Failed(message) | Exit::Usage(message) => eprintln!("aetr: {message}"),
        Exit::Done | Exit::Cancelled | Exit::StillRunning => {}
    }
    ExitCode::from(exit.code())
}

/// All of standard input, which must be UTF-8 text (`what` names it in errors).
pub fn read_stdin(what: &str) -> Result<String, Exit> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| Exit::Failed(format!("cannot read {what} from standard input: {e}")))?;
    String::from_utf8(bytes)
        .map_err(|e| Exit::Usage(format!("{what} on standard input is not UTF-8 text: {e}")))
}

/// Whether a run or node state, as the API writes it, is one that does not change any more.
pub fn has_ended(state: &serde_json::Value) -> bool {
    state.as_str().and_then(aetr_engine::machine::State::parse).is_some_and(|s| s.is_terminal())
}

/// Whether output is for a person (a terminal) rather than a pipe.
pub fn for_people() -> bool {
    std::io::stdout().is_terminal()
}

/// Prints an answer: as text for a person (`text` makes it), as JSON for a pipe.
pub fn print(json: &serde_json::Value, text: impl FnOnce() -> String) {
    if for_people() {
        println!("{}", text());
    } else {
        println!("{json}");
    }
}

/// A JSON value as text: a string without its quotes, null as `-`.
pub fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}
