//! The `aetr` binary.
#![forbid(unsafe_code)]

use std::future::Future;
use std::process::ExitCode;

use aetr_server::config::{Cli, Command};
use aetr_server::{app, check, logging, scripts};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => check::run(&file),
        Command::ScriptWorker(args) => scripts::worker::run(&args),
        Command::Server(args) => {
            logging::init(cli.log_format);
            exit_with(app::serve(args))
        }
        Command::Migrate(args) => {
            logging::init(cli.log_format);
            exit_with(app::migrate(args))
        }
    }
}

/// Runs a command to its end on a multi-threaded runtime (the HTTP server's workers run their
/// own). A failure is one line on standard error, and exit code 1.
fn exit_with(command: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("aetr: cannot start its runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aetr: {e:#}");
            ExitCode::FAILURE
        }
    }
}
