//! The reconciler: one Environment in; its Flux children applied and pruned,
//! its status written and Events published. The decisions are made by the
//! pure modules beside this one; this one talks to the API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};

use ephemeral_core::Config;
use ephemeral_core::api::{Environment, EnvironmentStatus};

use super::children::{Existing, Flux};
use super::plan::{self, Plan, Stall, Step};
use super::status::{self, Notice, Severity};
use super::timing;
use crate::backoff::{Backoff, Failures, random_unit};
use crate::catalog::SharedCatalog;
use crate::clock::Clock;
use crate::engine::{self, ChildIndex, api_error, is_status};
use crate::metrics::Metrics;

pub use super::children::FIELD_MANAGER;
pub use super::plan::UNADMITTED_OWNER;
pub use crate::engine::Error;

/// The Environments' Flux children as the controller's watches report them.
pub type FluxChildren = ChildIndex<Flux>;

/// Timing of the controller.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Longest time between two reconciles of an Environment.
    pub resync: Duration,
    /// Retry interval of a stalled Environment (e.g. a template is missing),
    /// so that it recovers when the catalog is fixed.
    pub stalled_retry: Duration,
    /// Retry interval while the catalog has not synced yet.
    pub unsynced_retry: Duration,
    /// Backoff after failures.
    pub backoff: Backoff,
    /// Suspend the Kustomizations and HelmReleases of an Environment outside
    /// its lease unless it says otherwise (`--suspend-outside-uptime`).
    pub suspend_outside_uptime: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync: Duration::from_secs(3600),
            stalled_retry: Duration::from_secs(60),
            unsynced_retry: Duration::from_secs(1),
            backoff: Backoff::default(),
            suspend_outside_uptime: false,
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Templates, bundles and GitRepositories.
    pub catalog: SharedCatalog,
    /// The expansion policy.
    pub config: Arc<Config>,
    /// Where "now" comes from.
    pub clock: Clock,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Reconcile metrics.
    pub metrics: Arc<Metrics>,
    /// Timing.
    pub settings: Settings,
    /// The children as the controller's watches report them.
    pub children: FluxChildren,
    failures: Failures<(String, String)>,
}

impl Context {
    /// A context for reconciles.
    pub fn new(
        client: Client,
        catalog: SharedCatalog,
        config: Arc<Config>,
        clock: Clock,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        Context {
            client,
            catalog,
            config,
            clock,
            recorder,
            metrics,
            settings,
            children: ChildIndex::default(),
            failures: Failures::default(),
        }
    }
}

fn key(env: &Environment) -> (String, String) {
    (env.namespace().unwrap_or_default(), env.name_any())
}

/// Reconciles one Environment (the kube-runtime reconciler), timing it.
pub async fn reconcile(env: Arc<Environment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&env, &ctx).await;
    ctx.metrics.environments.record(
        started.elapsed().as_secs_f64(),
        result.as_ref().err().map(Error::kind),
    );
    if result.is_ok() {
        ctx.failures.succeed(&key(&env));
    }
    result
}

/// After a failure: retry with per-Environment exponential backoff and jitter.
pub fn error_policy(env: Arc<Environment>, error: &Error, ctx: Arc<Context>) -> Action {
    let attempt = ctx.failures.fail(key(&env));
    let delay = ctx.settings.backoff.delay(attempt, random_unit());
    tracing::warn!(
        namespace = env.namespace().unwrap_or_default(),
        environment = env.name_any(),
        %error,
        attempt,
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

async fn publish(ctx: &Context, reference: &ObjectReference, action: &str, notice: Notice) {
    let mut note = notice.note;
    if note.len() > 1000 {
        let mut cut = 997;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str("...");
    }
    let event = Event {
        type_: match notice.severity {
            Severity::Normal => EventType::Normal,
            Severity::Warning => EventType::Warning,
        },
        reason: notice.reason,
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, reference).await {
        tracing::warn!(%error, reason = event.reason, "cannot publish an Event");
    }
}

fn listing(verb: &str, names: &[String]) -> Option<Notice> {
    (!names.is_empty()).then(|| Notice {
        severity: Severity::Normal,
        reason: String::new(),
        note: format!("{verb} {}", names.join(", ")),
    })
}

async fn write_status(
    ctx: &Context,
    env: &Environment,
    reference: &ObjectReference,
    next: EnvironmentStatus,
) -> Result<(), Error> {
    let previous = env.status.as_ref();
    let notices = status::notices(previous, &next);
    if previous != Some(&next) {
        engine::api::write_status(&ctx.client, env, &next).await?;
    }
    for notice in notices {
        publish(ctx, reference, "Reconcile", notice).await;
    }
    Ok(())
}

async fn reconcile_inner(env: &Environment, ctx: &Context) -> Result<Action, Error> {
    if env.metadata.deletion_timestamp.is_some() {
        // Being deleted: the garbage collector removes the children; applying
        // now would only recreate them.
        return Ok(Action::await_change());
    }
    if !ctx.catalog.is_synced() {
        return Ok(Action::requeue(ctx.settings.unsynced_retry));
    }
    let name = env
        .metadata
        .name
        .as_deref()
        .ok_or(Error::InvalidObject("metadata.name"))?;
    let namespace = env
        .metadata
        .namespace
        .as_deref()
        .ok_or(Error::InvalidObject("metadata.namespace"))?;
    let uid = env
        .metadata
        .uid
        .as_deref()
        .ok_or(Error::InvalidObject("metadata.uid"))?;
    let now = ctx.clock.now();
    let reference = env.object_ref(&());
    let expires = timing::expires_at(env.spec.lease.as_ref());

    if let Some(at) = expires.filter(|at| *at <= now) {
        return expire(ctx, env, &reference, name, namespace, uid, at).await;
    }

    // Observe.
    let engine::api::Observed {
        children: observed,
        unserved,
    } = engine::api::observe(&ctx.client, &ctx.children, namespace, name).await?;
    // Plan.
    let catalog = ctx.catalog.snapshot();
    let plan = plan::plan(plan::Input {
        env,
        catalog: &catalog,
        config: &ctx.config,
        children: &observed,
        unserved: &unserved,
        suspend_outside_uptime: ctx.settings.suspend_outside_uptime,
        now,
    });
    // Execute.
    let converge = match &plan.step {
        Step::Stall(stall) => {
            return stalled(ctx, env, &reference, &plan, stall, false, &observed, now).await;
        }
        Step::Converge(c) => c,
    };

    // A wanted child the watches have not shown may still exist without our
    // labels: never apply over an object this Environment does not control.
    let conflicts =
        engine::execute::foreign::<Flux>(&ctx.client, namespace, uid, &converge.apply).await?;
    if !conflicts.is_empty() {
        let stall = plan::conflict(&conflicts, namespace);
        return stalled(ctx, env, &reference, &plan, &stall, true, &observed, now).await;
    }
    let engine::execute::Executed {
        applied,
        created,
        updated,
        pruned,
    } = engine::execute::execute::<Flux>(&ctx.client, namespace, &converge.apply, &converge.prune)
        .await?;

    let next = plan::status(&plan, None, env, &observed, &applied, now);
    write_status(ctx, env, &reference, next).await?;
    for (verb, reason, names) in [
        ("created", "Created", &created),
        ("updated", "Updated", &updated),
        ("pruned", "Pruned", &pruned),
    ] {
        if let Some(mut notice) = listing(verb, names) {
            notice.reason = reason.into();
            publish(
                ctx,
                &reference,
                if reason == "Pruned" { "Prune" } else { "Apply" },
                notice,
            )
            .await;
        }
    }
    tracing::debug!(
        namespace,
        environment = name,
        created = created.len(),
        updated = updated.len(),
        pruned = pruned.len(),
        unchanged = converge.apps.len().saturating_sub(converge.apply.len()),
        "reconciled"
    );
    Ok(Action::requeue(timing::requeue_after(
        now,
        &[plan.lease.and_then(|l| l.next_change), expires],
        ctx.settings.resync,
    )))
}

/// Deletes the expired Environment; its children follow through their
/// owner references.
async fn expire(
    ctx: &Context,
    env: &Environment,
    reference: &ObjectReference,
    name: &str,
    namespace: &str,
    uid: &str,
    at: Timestamp,
) -> Result<Action, Error> {
    let lease = env.spec.lease.as_ref();
    let note = format!(
        "the lease ended at {} and expireAfter {} passed at {at}: deleted the Environment; its Flux objects follow through their owner references",
        lease.and_then(|l| l.until.as_deref()).unwrap_or_default(),
        lease
            .and_then(|l| l.expire_after.as_deref())
            .unwrap_or_default(),
    );
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match Api::<Environment>::namespaced(ctx.client.clone(), namespace)
        .delete(name, &params)
        .await
    {
        Ok(_) => {
            tracing::info!(
                namespace,
                environment = name,
                "deleted the expired Environment"
            );
            // After the DELETE, so a refused delete retried with backoff
            // does not repeat the Event.
            publish(
                ctx,
                reference,
                "Delete",
                Notice {
                    severity: Severity::Normal,
                    reason: "Expired".into(),
                    note,
                },
            )
            .await;
        }
        Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
        Err(e) => return Err(api_error("delete the expired Environment")(e)),
    }
    Ok(Action::await_change())
}

#[allow(clippy::too_many_arguments)]
async fn stalled(
    ctx: &Context,
    env: &Environment,
    reference: &ObjectReference,
    plan: &Plan,
    stall: &Stall,
    found_by_executor: bool,
    observed: &[Existing],
    now: Timestamp,
) -> Result<Action, Error> {
    tracing::info!(
        namespace = env.namespace().unwrap_or_default(),
        environment = env.name_any(),
        reason = stall.reason,
        message = %stall.message,
        "stalled: nothing applied or pruned"
    );
    let found = found_by_executor.then_some(stall);
    let next = plan::status(plan, found, env, observed, &BTreeMap::new(), now);
    write_status(ctx, env, reference, next).await?;
    Ok(Action::requeue(ctx.settings.stalled_retry))
}
