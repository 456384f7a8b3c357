// Over 400 lines of non-test code: the executor with its Context and child stores; split once the suspension work on the controller has landed.
//! The reconciler: one Environment in; its Flux children applied and pruned,
//! its status written and Events published. The decisions are made by the
//! pure modules beside this one; this one talks to the API.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures::FutureExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};

use ephemeral_core::Config;
use ephemeral_core::api::{Environment, EnvironmentStatus};
use ephemeral_core::expand::{ENVIRONMENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL};

use super::children::{self, ChildKind, Existing};
use super::plan::{self, Plan, Stall, Step};
use super::status::{self, Notice, Severity};
use super::timing;
use crate::backoff::{Backoff, Failures, random_unit};
use crate::catalog::SharedCatalog;
use crate::clock::Clock;
use crate::metrics::Metrics;

pub use super::children::FIELD_MANAGER;
pub use super::plan::UNADMITTED_OWNER;

/// Why a reconcile failed. Nothing is pruned or deleted after a failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{action}: {source}")]
    Api {
        /// What was being done, e.g. `apply Kustomization/alice-checkout`.
        action: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The Environment lacks a field every stored object has.
    #[error("Environment has no {0}")]
    InvalidObject(&'static str),
}

impl Error {
    /// The metric label of the error.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Api {
                source: kube::Error::Api(s),
                ..
            } if s.code == 409 => "api_conflict",
            Error::Api {
                source: kube::Error::Api(s),
                ..
            } if s.code == 403 => "api_forbidden",
            Error::Api {
                source: kube::Error::Api(s),
                ..
            } if s.code == 404 => "api_not_found",
            Error::Api {
                source: kube::Error::Api(_),
                ..
            } => "api",
            Error::Api { .. } => "transport",
            Error::InvalidObject(_) => "invalid_object",
        }
    }
}

fn api_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Api { action, source }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

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
    /// The children as the controller's watches see them.
    pub children: ChildStores,
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
            children: ChildStores::default(),
            failures: Failures::default(),
        }
    }
}

/// A reflector store per child kind, installed by the controller's watches
/// (each run of the controller installs fresh ones), with whether its watch
/// is healthy: a kind whose CRD was removed after the store synced answers
/// its watch with 404, and its store must not be read as "no children".
#[derive(Clone, Default)]
pub struct ChildStores(Arc<RwLock<BTreeMap<ChildKind, WatchedStore>>>);

/// A kind's store and whether its watch is healthy.
type WatchedStore = (Store<DynamicObject>, Arc<AtomicBool>);

impl ChildStores {
    /// Makes `store` the view of `kind`'s children; `healthy` is cleared
    /// while its watch finds the kind not served.
    pub fn install(&self, kind: ChildKind, store: Store<DynamicObject>, healthy: Arc<AtomicBool>) {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(kind, (store, healthy));
    }

    /// The store of `kind`, if one is installed, has synced and its watch is
    /// healthy (else the reconcile LISTs, where a 404 means "not served").
    pub fn ready(&self, kind: ChildKind) -> Option<Store<DynamicObject>> {
        let (store, healthy) = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&kind)
            .cloned()?;
        (healthy.load(Ordering::Acquire)
            && matches!(store.wait_until_ready().now_or_never(), Some(Ok(()))))
        .then_some(store)
    }
}

impl std::fmt::Debug for ChildStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<ChildKind> = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect();
        f.debug_tuple("ChildStores").field(&kinds).finish()
    }
}

fn key(env: &Environment) -> (String, String) {
    (env.namespace().unwrap_or_default(), env.name_any())
}

/// Reconciles one Environment (the kube-runtime reconciler), timing it.
pub async fn reconcile(env: Arc<Environment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&env, &ctx).await;
    ctx.metrics.reconciled(started.elapsed().as_secs_f64());
    match &result {
        Ok(_) => ctx.failures.succeed(&key(&env)),
        Err(e) => ctx.metrics.reconcile_failed(e.kind()),
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

fn api(ctx: &Context, kind: ChildKind, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(ctx.client.clone(), namespace, &kind.api_resource())
}

fn selector(env_name: &str) -> String {
    format!("{ENVIRONMENT_LABEL}={env_name},{MANAGED_BY_LABEL}={MANAGED_BY}")
}

/// Observe: every child carrying the Environment's labels, from the
/// reflector store the controller's watch of its kind feeds; and the kinds
/// the API server does not serve (their CRD is not installed), which have no
/// children. Only a kind whose store is not ready (no watch running yet, or
/// its CRD is missing) is read with a label-selected LIST. A lagging store
/// is safe: an apply is idempotent, and a prune's DELETE carries the child's
/// uid as a precondition.
async fn observe(
    ctx: &Context,
    namespace: &str,
    env_name: &str,
) -> Result<(Vec<Existing>, BTreeSet<ChildKind>), Error> {
    let mut out = Vec::new();
    let mut unserved = BTreeSet::new();
    for kind in ChildKind::ALL {
        if let Some(store) = ctx.children.ready(kind) {
            let mut found: Vec<Existing> = store
                .state()
                .into_iter()
                .filter(|o| {
                    o.metadata.namespace.as_deref() == Some(namespace)
                        && o.labels().get(ENVIRONMENT_LABEL).map(String::as_str) == Some(env_name)
                        && o.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
                })
                .map(|o| Existing {
                    kind,
                    object: (*o).clone(),
                })
                .collect();
            found.sort_by(|a, b| a.name().cmp(b.name()));
            out.extend(found);
            continue;
        }
        let params = ListParams::default().labels(&selector(env_name));
        match api(ctx, kind, namespace).list(&params).await {
            Ok(list) => out.extend(
                list.items
                    .into_iter()
                    .map(|object| Existing { kind, object }),
            ),
            Err(e) if is_status(&e, 404) => {
                unserved.insert(kind);
            }
            Err(e) => {
                let plural = kind.api_resource().plural;
                return Err(api_error(format!("list {plural} in namespace {namespace}"))(e));
            }
        }
    }
    Ok((out, unserved))
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
        let body = serde_json::json!({
            "apiVersion": Environment::api_version(&()),
            "kind": Environment::kind(&()),
            "status": next,
        });
        let namespace = env.namespace().unwrap_or_default();
        Api::<Environment>::namespaced(ctx.client.clone(), &namespace)
            .patch_status(
                &env.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(body),
            )
            .await
            .map_err(api_error("write status"))?;
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
    let (observed, unserved) = observe(ctx, namespace, name).await?;
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
    let mut conflicts = Vec::new();
    for apply in converge.apply.iter().filter(|a| a.current.is_none()) {
        let found = api(ctx, apply.kind, namespace)
            .get_opt(&apply.name)
            .await
            .map_err(api_error(format!("get {}", apply.display_name())))?;
        if found.is_some_and(|o| !children::is_controlled_by(&o, uid)) {
            conflicts.push(apply.display_name());
        }
    }
    if !conflicts.is_empty() {
        let stall = plan::conflict(&conflicts, namespace);
        return stalled(ctx, env, &reference, &plan, &stall, true, &observed, now).await;
    }

    let mut applied = BTreeMap::new();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let (mut created, mut updated) = (Vec::new(), Vec::new());
    for apply in &converge.apply {
        let display = apply.display_name();
        let result = api(ctx, apply.kind, namespace)
            .patch(&apply.name, &params, &Patch::Apply(&apply.body))
            .await
            .map_err(api_error(format!("apply {display}")))?;
        // An Event says which applies changed a spec; a resourceVersion
        // would also move when Flux writes the child's status.
        match &apply.current {
            None => created.push(display),
            Some(c) if c.metadata.generation != result.metadata.generation => updated.push(display),
            Some(_) => {}
        }
        applied.insert((apply.kind, apply.name.clone()), result);
    }

    let mut pruned = Vec::new();
    for child in &converge.prune {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: child.object.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match api(ctx, child.kind, namespace)
            .delete(child.name(), &params)
            .await
        {
            Ok(_) => pruned.push(child.display_name()),
            // Already gone, or replaced by an object that is not ours.
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
            Err(e) => return Err(api_error(format!("prune {}", child.display_name()))(e)),
        }
    }

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
