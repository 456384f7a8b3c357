//! `kubectl ephemeral delete`.

use std::io::Write;
use std::time::Duration;

use kube::api::DeleteParams;

use super::wait::{POLL, still_exists, timeout, until_gone};
use super::{Ctx, Notes};
use crate::api::{self, display_name};
use crate::cli::DeleteArgs;
use crate::error::{Error, Target};

/// Runs `delete`, looking every `poll` with `--wait`.
pub async fn run_with(
    ctx: &Ctx,
    args: &DeleteArgs,
    out: &mut dyn Write,
    poll: Duration,
) -> Result<Notes, Error> {
    let limit = timeout(&args.timeout)?;
    let ns = ctx.namespace.as_str();
    let name = args.name.as_str();
    api::environments(&ctx.client, ns)
        .delete(name, &DeleteParams::default())
        .await
        .map_err(|e| Error::from_kube(e, Target::environment(name, ns)))?;
    writeln!(out, "{} deleted", display_name(name))?;
    if !args.wait {
        return Ok(Notes::new());
    }
    out.flush()?;
    if until_gone(ctx, name, limit, poll).await? {
        return Ok(Notes::new());
    }
    Err(Error::Timeout {
        name: name.to_owned(),
        what: "be gone",
        timeout: args.timeout.clone(),
        last: still_exists(name, ns),
    })
}

/// Runs `delete`.
pub async fn run(ctx: &Ctx, args: &DeleteArgs, out: &mut dyn Write) -> Result<Notes, Error> {
    run_with(ctx, args, out, POLL).await
}
