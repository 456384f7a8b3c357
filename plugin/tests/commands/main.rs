//! Each cluster command against a mocked API server: the requests it sends
//! (verbs, paths, query, patch bodies, dryRun, fieldManager) and what it prints.

mod support;

mod apps;
mod completion;
mod create;
mod delete;
mod describe;
mod extend;
mod list;
mod sets;
mod templates;

use kubectl_ephemeral::cli::{Cli, Command};

/// Parses a command line as the binary would.
pub fn parse(argv: &[&str]) -> Command {
    use clap::Parser;
    let mut full = vec!["kubectl-ephemeral"];
    full.extend_from_slice(argv);
    Cli::try_parse_from(full)
        .unwrap_or_else(|e| panic!("{argv:?} does not parse: {e}"))
        .command
}
