//! `aetr run STEP [INPUT]` and `aetr wait RUN`.

use clap::Args;

use super::{Exit, ServerUrl};

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
    /// Stop waiting after this many seconds (exit code 4); 0 waits for ever.
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
}

#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub server: ServerUrl,
    /// The run's id (or the id of any node of it); standard input when absent.
    pub run: Option<String>,
    /// The longest that one request to the server waits for the run to end, in seconds.
    #[arg(long, default_value_t = 30)]
    pub interval: u64,
    /// Stop waiting after this many seconds (exit code 4); 0 waits for ever.
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
}

pub async fn run(_args: RunArgs) -> Exit {
    Exit::Usage("aetr run is not built yet".into())
}

pub async fn wait(_args: WaitArgs) -> Exit {
    Exit::Usage("aetr wait is not built yet".into())
}
