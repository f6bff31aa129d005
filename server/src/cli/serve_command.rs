//! `aetr serve-command --bind ADDR [--concurrency N] -- CMD [ARGS...]`.

use clap::Args;

use super::Exit;

#[derive(Debug, Clone, Args)]
pub struct ServeCommandArgs {
    /// The address to serve on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub bind: String,
    /// How many copies of the command may run at once; the rest wait.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub async fn run(_args: ServeCommandArgs) -> Exit {
    Exit::Usage("aetr serve-command is not built yet".into())
}
