//! The `aetr` binary. The server (HTTP API, storage, dispatcher, callbacks and UI) is built on
//! the engine in the next layers; today the binary checks step trees offline.
#![forbid(unsafe_code)]

mod check;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// aetr: a workflow-tree orchestrator for HTTP services.
///
/// A step tree's leaves are actions that POST to services; each service calls back with its
/// result, and the run moves on. JavaScript mappers and reducers shape the data between steps.
#[derive(Debug, Parser)]
#[command(name = "aetr", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validates a whole nested step tree (the body of `PUT /api/v1/steps`) without a server:
    /// its shape, its scripts (compiled, not run), cycles and size limits. Every child must be
    /// defined in the file. Prints `{"id","nodes","depth"}`, or `{"errors":[...]}` and exits 1.
    Check {
        /// The tree's JSON file; `-` (the default) reads standard input.
        #[arg(default_value = "-")]
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => check::run(&file),
    }
}
