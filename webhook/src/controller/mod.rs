//! The controller: materialises each Environment into its Flux objects and
//! keeps them true. It is the first user of the owner/children
//! [`engine`]: [`children::Flux`] is its family of children.
//!
//! - [`children`], [`status`], [`timing`], [`backoff`](crate::backoff): pure decisions (what
//!   to prune, what the status says, when to look again, how long to back off).
//! - [`plan`]: what a reconcile does, from what it observed. Pure.
//! - [`reconcile`]: the reconciler: observes, plans, makes the API calls
//!   (through the engine).
//! - [`run`]: the kube-runtime `Controller` over Environments in all
//!   namespaces, owning the four Flux kinds.
//!
//! # Decisions beyond the design contract
//!
//! - A reconcile is observe → plan → execute. Observe: the children come
//!   from the engine's child index ([`crate::engine::index`]), fed by the
//!   same label-selected watches that trigger reconciles (one per Flux
//!   kind) and keyed by namespace and `ephemeral.io/environment` label, so
//!   a reconcile makes no LIST and reads only its own children. The index
//!   keeps no object: per child its kind, name, uid, generation, controller
//!   uid, app label, Flux's Ready condition and observedGeneration, the
//!   tags (an ImagePolicy's resolved one with its pattern and repository,
//!   an app's deployed one), whether it is suspended or Flux has started its
//!   generation, and a digest of what it holds of the fields our apply owns
//!   ([`crate::engine::managed`]); about 0.5 KiB per child (`docs/benchmarks.md`). Only a kind
//!   whose watch has not synced (its CRD is not installed, say) is LISTed,
//!   and a 404 there means the kind is not served. Plan ([`plan`]): one
//!   expansion, with each app's tag taken from its observed ImagePolicy;
//!   pure. Execute: a child is server-side applied (field manager
//!   `ephemeral`, forced) only when the digest of its stored fields differs
//!   from the digest of the desired body, the stored side projected on our
//!   own managed fields (a field we no longer set is applied away; a value
//!   another manager wrote into a field of ours is applied back); the
//!   status is written only when it changed. A Flux status change on a
//!   child therefore costs at most one status write. An Event says which
//!   children were created or updated (their generation changed).
//! - While Flux re-runs an unchanged spec of an app the status last called
//!   ready (Ready `Unknown`/`Progressing*` at an observed generation: its
//!   interval, or a requested reconcile), the app keeps that verdict; the
//!   run's result is reported when it ends.
//! - A wanted child the index does not show is looked up by name before it
//!   is applied, so an object of that name without our labels is never
//!   taken over; a child that loses our labels leaves the index (its watch
//!   reports it deleted), so it is neither read nor pruned. A lagging index
//!   is otherwise safe (applies are idempotent, and a prune's DELETE
//!   carries the child's uid as a precondition). A re-list of a kind
//!   (`Init` … `InitDone`) drops at its end what it did not show; each run
//!   of the controller (on winning the Lease) starts with an empty index.
//! - A child is pruned only when it carries the Environment's labels, is
//!   controlled (ownerReference with `controller: true`) by this
//!   Environment's uid, and the expansion no longer wants it; the DELETE
//!   carries a uid precondition. An object of a wanted name that this
//!   Environment does not control is never applied over: the Environment
//!   stalls with reason `ChildConflict`.
//! - An expansion failure (a template or GitRepository vanished) stalls the
//!   Environment (`ExpansionFailed`): nothing is applied or pruned, and it is
//!   retried every minute so it recovers once the catalog is fixed.
//! - An Environment without the `ephemeral.io/owner` annotation (the webhook
//!   never saw it) is expanded for owner `unknown` as of its creation time,
//!   so its default lease and uptime do not move between reconciles; the
//!   `Admitted` condition is False with reason `NotAdmitted`.
//! - Expiry deletes an Environment only when its stored `spec.lease.until`
//!   and `spec.lease.expireAfter` are both set and have passed; the Event
//!   (reason `Expired`) comes first, the DELETE carries a uid precondition,
//!   and the children go with it through their owner references.
//! - No finalizer: the children need no cleanup beyond the garbage
//!   collector's, and a finalizer would make every deletion (and namespace
//!   deletion) wait for the controller to be running.
//! - A wanted child of a kind the API server does not serve (Flux without
//!   its image automation CRDs, say) stalls the Environment
//!   (`FluxKindNotServed`) before anything is applied or pruned.
//! - Suspension outside uptime (`--suspend-outside-uptime`, overridden by
//!   `spec.lease.suspendOutsideUptime`) is the plan's decision, from the
//!   lease state at the real "now" ([`status::Suspension::of`], the one
//!   definition), not the expansion's: an Environment the webhook never
//!   admitted is expanded as of its creation, and `render` cannot know the
//!   flag. Outside the lease the Kustomizations and HelmReleases are applied
//!   with `spec.suspend: true` (ImagePolicies untouched), inside with the
//!   expansion's `false`. A child is suspended only once Flux has started
//!   reconciling its current generation (a lease cut short changes the
//!   uptime substitution, which Flux must apply first); meanwhile
//!   `Suspended` is False with reason `Suspending`. A suspended app keeps
//!   the Ready verdict Flux last gave, whatever generation it was for.
//! - Event reasons: `Created`, `Updated`, `Pruned` (children, one Event per
//!   reconcile listing them), `Ready`, `LeaseExpired`, `NotAdmitted`,
//!   `ExpansionFailed`, `ChildConflict`, `FluxKindNotServed`, `Expired`
//!   (deleted), `Suspended`, `Resumed`.

pub mod children;
pub mod plan;
pub mod reconcile;
pub mod status;
pub mod timing;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::{self, Controller};
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use ephemeral_core::api::Environment;

use crate::engine::{self, Family};
use crate::leader::{ElectionConfig, Elector};
use children::Flux;
pub use reconcile::{
    Context, Error, FIELD_MANAGER, FluxChildren, Settings, UNADMITTED_OWNER, error_policy,
};

/// How many Environments are reconciled at once.
pub const CONCURRENCY: u16 = 16;

/// Runs the controller until `shutdown` resolves, then lets running
/// reconciles finish. Waits for the catalog to sync before the first reconcile.
pub async fn run(
    client: Client,
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let mut shutdown = Box::pin(shutdown);
    while !ctx.catalog.is_synced() {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = &mut shutdown => return,
        }
    }
    let mut controller = Controller::new(
        Api::<Environment>::all(client.clone()),
        watcher::Config::default(),
    );
    // One watch per kind both triggers the owner's reconcile and feeds the
    // index the reconciles read the children from; each run starts afresh.
    ctx.children.restart();
    for &kind in Flux::kinds() {
        let watch = engine::api::watch(&client, &ctx.children, kind);
        controller = controller.owns_stream_with(watch, kind.api_resource());
    }
    tracing::info!("controller started");
    controller
        .with_config(controller::Config::default().concurrency(CONCURRENCY))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(%object, "reconciled"),
                Err(controller::Error::ObjectNotFound(object)) => {
                    tracing::debug!(%object, "gone before it was reconciled")
                }
                Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(error) => tracing::warn!(%error, "controller watch error"),
            }
        })
        .await;
    tracing::info!("controller stopped");
}

/// The controller and its leader election, running in the background.
#[derive(Debug)]
pub struct Running {
    shutdown: watch::Sender<bool>,
    campaign: watch::Sender<bool>,
    supervisor: JoinHandle<()>,
    elector: JoinHandle<()>,
}

/// Starts campaigning for the leader Lease; while this replica holds it,
/// the controller runs. Losing the Lease stops reconciling (running
/// reconciles finish) until it is won again.
pub fn start(client: Client, ctx: Arc<Context>, election: ElectionConfig) -> Running {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (campaign, campaign_rx) = watch::channel(false);
    let (leading_tx, leading) = watch::channel(false);
    let elector = Elector::new(client.clone(), election);
    Running {
        shutdown,
        campaign,
        elector: tokio::spawn(elector.run(leading_tx, campaign_rx)),
        supervisor: tokio::spawn(supervise(client, ctx, leading, shutdown_rx)),
    }
}

impl Running {
    /// Stops reconciling and lets running reconciles finish, then releases
    /// the Lease (in that order, so the next leader never reconciles while
    /// this replica still does), waiting at most `grace` for each.
    pub async fn stop(self, grace: Duration) {
        self.shutdown.send_replace(true);
        if tokio::time::timeout(grace, self.supervisor).await.is_err() {
            tracing::warn!(
                ?grace,
                "running reconciles did not finish in time; releasing the Lease anyway"
            );
        }
        self.campaign.send_replace(true);
        if tokio::time::timeout(grace, self.elector).await.is_err() {
            tracing::warn!(?grace, "the leader Lease was not released in time");
        }
    }
}

/// Resolves when `rx` holds a value for which `want` is true, or its sender is gone.
async fn until(mut rx: watch::Receiver<bool>, want: bool) {
    let _ = rx.wait_for(|v| *v == want).await.map(|_| ());
}

async fn supervise(
    client: Client,
    ctx: Arc<Context>,
    leading: watch::Receiver<bool>,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = until(leading.clone(), true) => {}
            _ = until(shutdown.clone(), true) => return,
        }
        if *shutdown.borrow() {
            return;
        }
        tracing::info!("leading: starting to reconcile");
        let (stop_tx, stop_rx) = futures::channel::oneshot::channel::<()>();
        let (lost, stopping) = (leading.clone(), shutdown.clone());
        let trigger = tokio::spawn(async move {
            tokio::select! {
                _ = until(lost, false) => {}
                _ = until(stopping, true) => {}
            }
            let _ = stop_tx.send(());
        });
        run(client.clone(), ctx.clone(), stop_rx.map(|_| ())).await;
        trigger.abort();
        if *shutdown.borrow() {
            return;
        }
        tracing::warn!("lost the leader Lease: stopped reconciling");
    }
}
