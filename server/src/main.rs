//! The `aetr` binary.
#![forbid(unsafe_code)]

use std::future::Future;
use std::process::ExitCode;

use aetr_server::config::{Cli, Command};
use aetr_server::{app, check, cli, logging, scripts};
use clap::Parser;

fn main() -> ExitCode {
    let parsed = Cli::parse();
    match parsed.command {
        Command::Check { file } => check::run(&file),
        Command::ScriptWorker(args) => scripts::worker::run(&args),
        Command::Server(args) => {
            logging::init(parsed.log_format);
            exit_with(app::serve(args))
        }
        Command::Migrate(args) => {
            logging::init(parsed.log_format);
            exit_with(app::migrate(args))
        }
        Command::Run(args) => cli::exit_with(cli::run::run(args)),
        Command::Wait(args) => cli::exit_with(cli::run::wait(args)),
        Command::Steps(command) => cli::exit_with(cli::steps::run(command)),
        Command::Schedules(command) => cli::exit_with(cli::schedules::run(command)),
        Command::Runs(command) => cli::exit_with(cli::runs::run(command)),
        Command::Callback(args) => cli::exit_with(cli::callback::run(args)),
        Command::ServeCommand(args) => cli::exit_with(cli::serve_command::run(args)),
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
