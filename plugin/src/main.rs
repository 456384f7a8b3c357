//! `kubectl-ephemeral`: the kubectl plugin for ephemeral test environments.

use std::process::ExitCode;

use clap::Parser;
use kubectl_ephemeral::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Render(args) => {
            kubectl_ephemeral::render::run(args, &mut std::io::stdout().lock())
        }
    };
    match result {
        Ok(warnings) => {
            for w in warnings {
                eprintln!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
