//! `ephemeral-webhook`: the in-cluster component of kubectl-ephemeral.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ephemeral_webhook::args::ServeArgs;

/// mimalloc instead of glibc's allocator: admission allocates buffers of a
/// few KiB per request (the body, the patch, the answer, rustls' records) on
/// one Tokio worker and often frees them on another, which glibc serves from
/// locked arenas. Measured with the admission benchmark (docs/benchmarks.md):
/// about 40 % less CPU per admitted request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Admission webhook and controller for kubectl-ephemeral Environments.
#[derive(Parser, Debug)]
#[command(name = "ephemeral-webhook", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the CustomResourceDefinitions (Environment, AppTemplate, AppBundle, EnvironmentSet) as YAML.
    ///
    /// The same documents are committed under manifests/crds/.
    Crds,
    /// Serve the admission webhooks for Environments and run the controller
    /// that materialises them into Flux objects.
    ///
    /// HTTPS on --listen: POST /mutate expands Environments (CREATE, UPDATE)
    /// into their fully defaulted form with a JSONPatch; POST /validate lets
    /// only an Environment's owner or an admin update or delete it. Plain HTTP
    /// on --admin-listen: /livez, /readyz (ready once the certificate is loaded
    /// and the catalog synced), /metrics (Prometheus). The controller
    /// (--controller, on by default) reconciles on the replica holding the
    /// --leader-election-lease Lease. SIGTERM or SIGINT shuts
    /// down gracefully. Every flag can also be set with the environment
    /// variable shown.
    Serve(Box<ServeArgs>),
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let settings = args.to_settings()?;
    ephemeral_webhook::logging::init(settings.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(ephemeral_webhook::serve::run(settings))?;
    Ok(())
}

/// The error and its causes, each cause only once: most messages already
/// quote their cause, so `{:#}` would repeat it.
fn report(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !out.contains(&cause) {
            out.push_str(": ");
            out.push_str(&cause);
        }
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Crds => match ephemeral_webhook::crds::print(&mut std::io::stdout().lock()) {
            // `crds | head`: the reader has what it wanted.
            Err(ephemeral_webhook::crds::CrdsError::Io(e))
                if e.kind() == std::io::ErrorKind::BrokenPipe =>
            {
                Ok(())
            }
            other => other.map_err(anyhow::Error::from),
        },
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}
