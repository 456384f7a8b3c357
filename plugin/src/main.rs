//! `kubectl-ephemeral`: the kubectl plugin for ephemeral test environments.

use std::io::Write;
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
    // Messages go to stderr; if nobody reads it any more there is nobody to tell.
    let mut stderr = std::io::stderr().lock();
    match result {
        Ok(warnings) => {
            for w in warnings {
                let _ = writeln!(stderr, "warning: {w}");
            }
            ExitCode::SUCCESS
        }
        // `render ... | head`: the reader has what it wanted.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
