//! The commands that talk to the cluster. Each takes a [`Ctx`] (client,
//! namespace, clock, colour) and a writer for standard output, and returns
//! notes for standard error, so tests can drive it against a mocked API.

use kube::Client;

use crate::cli::Command;
use crate::error::Error;
use crate::time::Clock;

pub mod apps;
pub mod completion;
pub mod create;
pub mod delete;
pub mod describe;
pub mod extend;
pub mod list;
pub mod sets;
pub mod templates;
pub mod version;
pub mod wait;

/// What every cluster command works with.
#[derive(Clone)]
pub struct Ctx {
    /// The API client.
    pub client: Client,
    /// The namespace: `-n`, else the context's.
    pub namespace: String,
    /// Now, and the user's zone.
    pub clock: Clock,
    /// Whether to colour output.
    pub colour: bool,
}

/// Lines for standard error (diagnostics, hints), printed after the command's output.
pub type Notes = Vec<String>;

/// Checks what can be checked without a cluster (times, durations, prefixes),
/// before connecting: wrong usage exits 2 with its own message even where no
/// kubeconfig or cluster is at hand. The commands check again (they are also
/// called on their own, e.g. in tests).
pub fn preflight(command: &Command, clock: &Clock) -> Result<(), Error> {
    match command {
        Command::Create(a) => lease_end(&a.lease, clock).map(drop),
        Command::Extend(a) => lease_end(&a.lease, clock).map(drop),
        Command::Delete(a) => wait::timeout(&a.timeout).map(drop),
        Command::Wait(a) => wait::timeout(&a.timeout).map(drop),
        Command::AddApp(a) => apps::check_add(a),
        Command::SetApp(a) => apps::check_set(a),
        _ => Ok(()),
    }
}

/// The lease end the lease flags ask for, if any (`--until`, `--for`, `--days N --hour H`).
pub fn lease_end(
    args: &crate::cli::LeaseArgs,
    clock: &Clock,
) -> Result<Option<jiff::Timestamp>, Error> {
    use crate::time;
    let end = if let Some(text) = &args.until {
        time::parse_until(text, clock).map_err(|e| Error::Usage(format!("--until: {e}")))?
    } else if let Some(text) = &args.for_ {
        time::parse_for(text, clock).map_err(|e| Error::Usage(format!("--for: {e}")))?
    } else if let Some(hour) = args.hour {
        time::days_hour(args.days.unwrap_or(0), hour, clock).map_err(Error::Usage)?
    } else {
        return Ok(None);
    };
    Ok(Some(end))
}
