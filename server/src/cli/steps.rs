//! `aetr steps put|get|ls|rm`.

use clap::Subcommand;

use super::{Exit, ServerUrl};

#[derive(Debug, Clone, Subcommand)]
pub enum StepsCommand {
    /// Saves a whole nested tree (the body of `PUT /api/v1/steps`) from a file, or `-` for
    /// standard input; prints its root's id.
    Put {
        #[command(flatten)]
        server: ServerUrl,
        /// The tree's JSON file, or `-`.
        file: String,
    },
    /// Prints a step tree, by id or unique name.
    Get {
        #[command(flatten)]
        server: ServerUrl,
        step: String,
    },
    /// Lists steps, every one or those whose name contains QUERY.
    Ls {
        #[command(flatten)]
        server: ServerUrl,
        query: Option<String>,
    },
    /// Removes a step (refused while another step uses it).
    Rm {
        #[command(flatten)]
        server: ServerUrl,
        step: String,
    },
}

pub async fn run(_command: StepsCommand) -> Exit {
    Exit::Usage("aetr steps is not built yet".into())
}
