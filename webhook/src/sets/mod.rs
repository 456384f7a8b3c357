//! The EnvironmentSet controller: one Environment per open pull request
//! that passes a set's filters (`../shared/DESIGN.md`, "EnvironmentSet").
//! Every decision is the pure plan's ([`ephemeral_core::set::plan`]); this
//! module observes, calls it and executes it. It is the second user of the
//! owner/children [`engine`]: [`children::SetEnvironments`]
//! is its family.
//!
//! - [`children`]: the family: Environments labelled `ephemeral.io/set`,
//!   kept whole in the child index (the plan reads their status).
//! - [`credentials`]: the set's Secrets, read by name.
//! - [`clients`]: one GitHub client per set, kept between reconciles.
//! - [`health`]: the health checks (a GET with a timeout).
//! - [`directory`]: what the receiver (`POST /github`) asks: the sets
//!   following a repository, and an immediate reconcile of one.
//! - [`reconcile`]: the reconciler.
//! - [`run`]: the kube-runtime `Controller` over EnvironmentSets in all
//!   namespaces, owning their Environments; it runs beside the Environment
//!   controller while this replica holds the leader Lease
//!   ([`crate::controller::start_with`]).
//!
//! # Decisions beyond the design contract
//!
//! - A reconcile: read the credentials (`tokenSecretRef`, or the App's
//!   `privateKeySecretRef`) with `get`; a missing Secret or key stalls the
//!   set (`Ready` False, `Stalled` True, reason `SecretNotFound` or
//!   `SecretKeyNotFound`, the message naming the Secret, the key and the
//!   fix), drops its client and deletes nothing; it is retried every minute
//!   (Secrets are not watched). Then list the open pull requests (not while
//!   the client's rate-limit gate is closed: the listing is then "not
//!   fetched"), observe the set's Environments from the child index, plan;
//!   GET the pull requests the plan asks to confirm, plan again; execute.
//! - Execute: applies (server-side apply, field manager `ephemeral`,
//!   forced; through the admission webhook like any Environment). A create
//!   first looks the name up and skips an Environment the set does not
//!   control (`NameTaken` Event); an update carries the uid the plan saw as
//!   `metadata.uid` in the body, which the API server checks like a
//!   precondition. Deletes carry the uid as a precondition, and only the
//!   plan's. Then the due health checks (results go into the next plan,
//!   which is made a second later), the reports (a failed one is reported
//!   again by the next plan, [`Plan::report_failed`](ephemeral_core::set::plan::Plan::report_failed)),
//!   the status when it changed (server-side apply on the status
//!   subresource, `rateLimitRemaining` from the client), the Events.
//! - A failed apply or delete does not stop the others: the status is
//!   written and the set retried with backoff.
//! - Requeue: the plan's `requeue_after` (the set's `interval`, default
//!   5m, sooner for health checks), sooner when a rate limit lifts.
//! - One GitHub client per set, replaced when the set's `github` source or
//!   credentials change, dropped when the set is deleted or stalls.
//! - The receiver's view of the sets is filled on every replica by a watch
//!   of the sets ([`directory::watch`], each webhook secret read when its
//!   set changes) and refreshed by each reconcile on the leader (a rotated
//!   webhook secret counts within the set's interval). A trigger is a
//!   non-blocking send on the running controller's channel
//!   (`Controller::reconcile_on`); on the standby, where no controller runs,
//!   a verified delivery is answered `202` and the set polls at its next
//!   interval.

pub mod children;
pub mod clients;
pub mod credentials;
pub mod directory;
pub mod health;
pub mod reconcile;

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::{self, Controller};
use kube::runtime::watcher;

use ephemeral_core::set::EnvironmentSet;

use crate::engine::{self, Family, Kind};
use children::SetEnvironments;
pub use reconcile::{Context, Error, Settings, error_policy};

/// How many sets are reconciled at once.
pub const CONCURRENCY: u16 = 4;

/// Runs the set controller until `shutdown` resolves, then lets running
/// reconciles finish.
pub async fn run(
    client: Client,
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let mut controller = Controller::new(
        Api::<EnvironmentSet>::all(client.clone()),
        watcher::Config::default(),
    );
    ctx.children.restart();
    for &kind in SetEnvironments::kinds() {
        let watch = engine::api::watch(&client, &ctx.children, kind);
        controller = controller.owns_stream_with(watch, kind.api_resource());
    }
    let triggers = ctx.directory.open_trigger();
    tracing::info!("EnvironmentSet controller started");
    let forget = ctx.clone();
    controller
        .reconcile_on(triggers)
        .with_config(controller::Config::default().concurrency(CONCURRENCY))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, error_policy, ctx.clone())
        .for_each(|result| {
            let forget = forget.clone();
            async move {
                match result {
                    Ok((object, _)) => tracing::debug!(%object, "reconciled"),
                    Err(controller::Error::ObjectNotFound(object)) => {
                        forget.forget(
                            object.namespace.as_deref().unwrap_or_default(),
                            &object.name,
                        );
                        tracing::debug!(%object, "EnvironmentSet gone: its GitHub client dropped")
                    }
                    Err(controller::Error::ReconcilerFailed(..)) => {}
                    Err(error) => tracing::warn!(%error, "EnvironmentSet controller watch error"),
                }
            }
        })
        .await;
    ctx.directory.close_trigger();
    tracing::info!("EnvironmentSet controller stopped");
}
