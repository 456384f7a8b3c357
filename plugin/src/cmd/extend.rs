//! `kubectl ephemeral extend`: a JSON merge patch of `spec.lease`.
//!
//! The lease is an object, so a merge patch says exactly what changes: the
//! new `until`, and `schedule: null` (a weekly schedule gives way to the new
//! end). `expireAfter` is left alone. The webhook re-derives `downscaler/uptime`
//! and refuses an end beyond the cluster's maximum.

use std::io::Write;

use ephemeral_core::lease::rfc3339_utc;
use kube::ResourceExt;
use kube::api::Patch;
use serde_json::json;

use super::{Ctx, Notes, lease_end};
use crate::api::{self, display_name};
use crate::cli::ExtendArgs;
use crate::error::{Error, Target};
use crate::summary;

/// The merge patch that moves the lease end to `until` (RFC 3339).
pub fn patch(until: &str) -> serde_json::Value {
    json!({"spec": {"lease": {"until": until, "schedule": null}}})
}

/// Runs `extend`.
pub async fn run(ctx: &Ctx, args: &ExtendArgs, out: &mut dyn Write) -> Result<Notes, Error> {
    let until = lease_end(&args.lease, &ctx.clock)?.ok_or_else(|| {
        Error::Usage("give the new end: --until TIME, --for DURATION or [--days N] --hour H".into())
    })?;
    let ns = ctx.namespace.as_str();
    let body = patch(&rfc3339_utc(until));
    let env = api::environments(&ctx.client, ns)
        .patch(&args.name, &api::patch_params(), &Patch::Merge(&body))
        .await
        .map_err(|e| Error::from_kube(e, Target::environment(&args.name, ns)))?;
    writeln!(
        out,
        "{} extended: {}",
        display_name(&env.name_any()),
        summary::lease(&env, &ctx.clock)
    )?;
    Ok(Notes::new())
}
