//! `kubectl ephemeral wait`: poll the environment until it is ready or gone.
//!
//! Polling (every [`POLL`]) rather than a watch: one small GET per interval
//! is cheap, survives API server restarts and needs only `get` permission.

use std::io::Write;
use std::time::Duration;

use ephemeral_core::Environment;
use kube::ResourceExt;

use super::{Ctx, Notes};
use crate::api::{self, display_name};
use crate::cli::{WaitArgs, WaitFor};
use crate::error::{Error, Target};
use crate::summary;
use crate::time::parse_duration;

/// How often `wait` and `delete --wait` look.
pub const POLL: Duration = Duration::from_secs(2);

/// Whether the environment is ready for its current generation; else what it is.
pub fn ready(env: &Environment) -> Result<(), String> {
    let generation = env.metadata.generation.unwrap_or(0);
    let Some(condition) = summary::ready_condition(env) else {
        return Err("no Ready condition yet (the controller has not reported)".to_owned());
    };
    let observed = condition
        .observed_generation
        .or_else(|| env.status.as_ref().and_then(|s| s.observed_generation))
        .unwrap_or(0);
    let state = format!(
        "Ready={} {}: {} ({} apps ready)",
        condition.status,
        condition.reason,
        condition.message,
        summary::ready_apps(env)
    );
    if observed < generation {
        return Err(format!(
            "the controller has not seen generation {generation} yet; {state}"
        ));
    }
    if condition.status == "True" {
        Ok(())
    } else {
        Err(state)
    }
}

/// The last state seen when an environment outlives a wait for its deletion.
pub fn still_exists(name: &str, namespace: &str) -> String {
    format!(
        "it still exists (a finalizer on it may be waiting: see kubectl get environment {name} -n {namespace} -o yaml)"
    )
}

/// Parses a `--timeout`.
pub fn timeout(text: &str) -> Result<Duration, Error> {
    parse_duration(text)
        .map_err(|e| Error::Usage(format!("--timeout: {e}")))
        .and_then(|d| Duration::try_from(d).map_err(|e| Error::Usage(format!("--timeout: {e}"))))
}

/// Polls until `name` is gone; `Ok(true)` when it is, `Ok(false)` at the timeout.
pub async fn until_gone(
    ctx: &Ctx,
    name: &str,
    limit: Duration,
    poll: Duration,
) -> Result<bool, Error> {
    let ns = ctx.namespace.as_str();
    let api = api::environments(&ctx.client, ns);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let found = api
            .get_opt(name)
            .await
            .map_err(|e| Error::from_kube(e, Target::environment(name, ns)))?;
        if found.is_none() {
            return Ok(true);
        }
        if tokio::time::Instant::now() + poll > deadline {
            return Ok(false);
        }
        tokio::time::sleep(poll).await;
    }
}

/// Runs `wait`, looking every `poll`.
pub async fn run_with(
    ctx: &Ctx,
    args: &WaitArgs,
    out: &mut dyn Write,
    poll: Duration,
) -> Result<Notes, Error> {
    let limit = timeout(&args.timeout)?;
    let ns = ctx.namespace.as_str();
    let name = args.name.as_str();
    match args.for_ {
        WaitFor::Delete => {
            if until_gone(ctx, name, limit, poll).await? {
                writeln!(out, "{} deleted", display_name(name))?;
                return Ok(Notes::new());
            }
            Err(Error::Timeout {
                name: name.to_owned(),
                what: "be deleted",
                timeout: args.timeout.clone(),
                last: still_exists(name, ns),
            })
        }
        WaitFor::Ready => {
            let api = api::environments(&ctx.client, ns);
            let deadline = tokio::time::Instant::now() + limit;
            loop {
                let env = api
                    .get(name)
                    .await
                    .map_err(|e| Error::from_kube(e, Target::environment(name, ns)))?;
                match ready(&env) {
                    Ok(()) => {
                        writeln!(out, "{} condition met", display_name(&env.name_any()))?;
                        return Ok(Notes::new());
                    }
                    Err(last) if tokio::time::Instant::now() + poll > deadline => {
                        return Err(Error::Timeout {
                            name: name.to_owned(),
                            what: "be ready",
                            timeout: args.timeout.clone(),
                            last: format!("{last}. See kubectl ephemeral describe {name} -n {ns}"),
                        });
                    }
                    Err(_) => tokio::time::sleep(poll).await,
                }
            }
        }
    }
}

/// Runs `wait`.
pub async fn run(ctx: &Ctx, args: &WaitArgs, out: &mut dyn Write) -> Result<Notes, Error> {
    run_with(ctx, args, out, POLL).await
}
