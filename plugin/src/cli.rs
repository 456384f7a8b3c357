//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use ephemeral_core::config::ConfigArgs;

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the input was read but refused (an Environment breaks a rule) or could not be read
  2  wrong usage (unknown flag, missing argument)

Examples:
  # Show what the cluster will get for the shipped examples, offline
  kubectl ephemeral render -R -f examples/

  # The same at a fixed time, as JSON
  kubectl ephemeral render -R -f examples/ --now 2026-11-21T09:00:00Z -o json";

/// Ephemeral test environments on Kubernetes, through Flux.
///
/// An Environment names a few apps ("checkout from my branch, payments,
/// web"); the cluster's admission webhook expands it from a catalog of
/// AppTemplates and AppBundles, and its controller materialises it as Flux
/// Kustomizations, HelmReleases, ImagePolicies and GitRepositories.
#[derive(Parser, Debug)]
#[command(name = "kubectl-ephemeral", bin_name = "kubectl ephemeral", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show, offline, exactly what the cluster will make of Environments.
    Render(RenderArgs),
}

/// Output formats of `render`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RenderFormat {
    /// A multi-document YAML stream.
    Yaml,
    /// A `v1` `List` object.
    Json,
}

/// `kubectl ephemeral render`.
#[derive(clap::Args, Debug)]
#[command(
    long_about = "Show, offline, exactly what the cluster will make of Environments.\n\n\
Reads files or directories of (multi-document) YAML or JSON holding Environments and the \
catalog they use (AppTemplates, AppBundles, and the GitRepositories that sourceBranch copies; \
ImagePolicies with a status.latestRef.tag supply resolved image tags). For each Environment, \
in input order, prints the Environment as the admission webhook admits it, followed by every \
Flux object the controller creates for it. Needs no kubeconfig and no cluster. Documents of \
other kinds are skipped with a warning.\n\n\
The policy flags must match the cluster's webhook for the output to match the cluster.",
    after_help = AFTER_HELP
)]
pub struct RenderArgs {
    /// Files or directories to read; `-` reads standard input. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true, num_args = 1..)]
    pub filenames: Vec<PathBuf>,
    /// Read directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// The time to render at (RFC 3339); defaults to now.
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
    /// The owner to stamp (the requester on create); defaults to the local user.
    #[arg(long, value_name = "NAME")]
    pub owner: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub output: RenderFormat,
    /// Environment policy (the same flags and EPHEMERAL_* variables as the webhook).
    #[command(flatten)]
    pub policy: ConfigArgs,
}
