//! `ephemeral-webhook`: the in-cluster component of kubectl-ephemeral.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Admission webhook and controller for kubectl-ephemeral Environments.
#[derive(Parser, Debug)]
#[command(name = "ephemeral-webhook", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the CustomResourceDefinitions (Environment, AppTemplate, AppBundle) as YAML.
    ///
    /// The same documents are committed under manifests/crds/.
    Crds,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crds => ephemeral_webhook::crds::print(&mut std::io::stdout().lock()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
