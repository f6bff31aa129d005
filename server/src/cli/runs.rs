//! `aetr runs ls|show|events|cancel|retry`.

use clap::Subcommand;

use super::{Exit, ServerUrl};

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
}

pub async fn run(_command: RunsCommand) -> Exit {
    Exit::Usage("aetr runs is not built yet".into())
}
