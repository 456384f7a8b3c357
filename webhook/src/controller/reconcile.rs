//! The reconciler: one Environment in; its Flux children applied and pruned,
//! its status written and Events published. The decisions are made by the
//! pure modules beside this one; this one talks to the API.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};

use ephemeral_core::api::{AppStatus, Environment, EnvironmentStatus};
use ephemeral_core::expand::{ENVIRONMENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL, OWNER_ANNOTATION};
use ephemeral_core::flux::FluxObject;
use ephemeral_core::names::child_name;
use ephemeral_core::{Catalog, Config, Expansion, expand};

use super::children::{self, ChildKind, Existing};
use super::status::{self, Admission, Notice, Observation, Outcome, Severity};
use super::timing;
use crate::args::Clock;
use crate::backoff::{Backoff, Failures, random_unit};
use crate::catalog::SharedCatalog;
use crate::metrics::Metrics;

/// The field manager of every server-side apply the controller makes.
pub const FIELD_MANAGER: &str = "ephemeral";
/// The owner an Environment that the webhook never admitted is expanded for.
pub const UNADMITTED_OWNER: &str = "unknown";

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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync: Duration::from_secs(3600),
            stalled_retry: Duration::from_secs(60),
            unsynced_retry: Duration::from_secs(1),
            backoff: Backoff::default(),
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

/// Who the Environment is expanded for and as of when: an admitted one for
/// its owner, now; one the webhook never saw for [`UNADMITTED_OWNER`], as of
/// its creation, so its default lease and uptime stay put between reconciles.
fn admission(env: &Environment, now: Timestamp) -> (Admission, String, Timestamp) {
    match env
        .annotations()
        .get(OWNER_ANNOTATION)
        .filter(|o| !o.is_empty())
    {
        Some(owner) => (Admission::Admitted, owner.clone(), now),
        None => {
            let at = env
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(now, |t| t.0);
            (
                Admission::NotAdmitted {
                    owner: UNADMITTED_OWNER.to_owned(),
                    at,
                },
                UNADMITTED_OWNER.to_owned(),
                at,
            )
        }
    }
}

/// Expands the Environment, then again with the tags its own ImagePolicies
/// resolved for the policies the expansion wants.
fn expand_with_tags(
    env: &Environment,
    catalog: &Catalog,
    config: &Config,
    now: Timestamp,
    owner: &str,
    existing: &[Existing],
    uid: &str,
) -> Result<(Expansion, BTreeMap<String, String>), ephemeral_core::Denied> {
    let first = expand(env, catalog, config, now, owner)?;
    let namespace = env.namespace().unwrap_or_default();
    let mut tags = BTreeMap::new();
    for object in &first.objects {
        let FluxObject::ImagePolicy(wanted) = object else {
            continue;
        };
        let name = children::name_of(object);
        let found = existing.iter().find(|e| {
            e.kind == ChildKind::ImagePolicy
                && e.name() == name
                && children::is_controlled_by(&e.object, uid)
        });
        if let Some(tag) = found.and_then(|e| children::resolved_tag(&e.object, wanted)) {
            tags.insert(name.to_owned(), tag);
        }
    }
    if tags.is_empty() {
        return Ok((first, tags));
    }
    let mut with_tags = catalog.clone();
    for (name, tag) in &tags {
        with_tags.insert_image_tag(&namespace, name, tag);
    }
    Ok((expand(env, &with_tags, config, now, owner)?, tags))
}

fn selector(env_name: &str) -> String {
    format!("{ENVIRONMENT_LABEL}={env_name},{MANAGED_BY_LABEL}={MANAGED_BY}")
}

fn api(ctx: &Context, kind: ChildKind, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(ctx.client.clone(), namespace, &kind.api_resource())
}

/// Every child carrying the Environment's labels, read fresh from the API
/// (not a cache), so prune decisions never rest on a lagging view; and the
/// kinds the API server does not serve (their CRD is not installed), which
/// have no children.
async fn list_children(
    ctx: &Context,
    namespace: &str,
    env_name: &str,
) -> Result<(Vec<Existing>, BTreeSet<ChildKind>), Error> {
    let params = ListParams::default().labels(&selector(env_name));
    let mut out = Vec::new();
    let mut unserved = BTreeSet::new();
    for kind in ChildKind::ALL {
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

/// Why the wanted objects of kinds the API server does not serve cannot be
/// applied, and what to install; None when every wanted kind is served.
fn unserved_message(objects: &[FluxObject], unserved: &BTreeSet<ChildKind>) -> Option<String> {
    let wanted: Vec<&FluxObject> = objects
        .iter()
        .filter(|o| unserved.contains(&ChildKind::of(o)))
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let kinds: BTreeSet<ChildKind> = wanted.iter().map(|o| ChildKind::of(o)).collect();
    let apis: Vec<String> = kinds
        .iter()
        .map(|k| format!("{} ({})", k.as_str(), k.api_resource().api_version))
        .collect();
    let names: Vec<String> = wanted
        .iter()
        .map(|o| format!("{}/{}", ChildKind::of(o).as_str(), children::name_of(o)))
        .collect();
    let images = kinds.contains(&ChildKind::ImagePolicy);
    Some(format!(
        "the API server does not serve {}, needed by {}; nothing was applied or pruned. Fix: install the Flux CRDs and controllers for it{}",
        apis.join(", "),
        names.join(", "),
        if images {
            " (ImagePolicy: flux install --components-extra=image-reflector-controller,image-automation-controller), or use apps without imageTagPrefix or branch"
        } else {
            ""
        },
    ))
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

/// App states from whatever app children exist (used when nothing was
/// applied), with the image tag each one deploys now.
fn observed_apps(existing: &[Existing], uid: &str) -> Vec<AppStatus> {
    let mut apps: Vec<AppStatus> = existing
        .iter()
        .filter(|e| e.kind.is_app() && children::is_controlled_by(&e.object, uid))
        .map(|e| {
            let health = children::health(&e.object);
            AppStatus {
                name: e
                    .object
                    .labels()
                    .get(ephemeral_core::expand::APP_LABEL)
                    .cloned()
                    .unwrap_or_else(|| e.name().to_owned()),
                kind: e.kind.as_str().to_owned(),
                ready: health.ready,
                reason: health.reason,
                message: health.message,
                image_tag: children::deployed_tag(e),
            }
        })
        .collect();
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    apps
}

struct Stall {
    reason: &'static str,
    message: String,
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
                    &reference,
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
        return Ok(Action::await_change());
    }

    let (existing, unserved) = list_children(ctx, namespace, name).await?;
    let (admission, owner, expand_now) = admission(env, now);
    let catalog = ctx.catalog.snapshot();
    let expanded = expand_with_tags(
        env,
        &catalog,
        &ctx.config,
        expand_now,
        &owner,
        &existing,
        uid,
    );

    let (expansion, tags) = match expanded {
        Ok(x) => x,
        Err(denied) => {
            let stall = Stall {
                reason: "ExpansionFailed",
                message: denied.to_string(),
            };
            return stalled(ctx, env, &reference, admission, &existing, uid, now, stall).await;
        }
    };

    // Applying the other kinds first would only half-apply the spec (an app
    // without its image tag, say) before failing.
    if let Some(message) = unserved_message(&expansion.objects, &unserved) {
        let stall = Stall {
            reason: "FluxKindNotServed",
            message,
        };
        return stalled(ctx, env, &reference, admission, &existing, uid, now, stall).await;
    }

    // Never take over an object of the same name that this Environment does
    // not control. `before`: the generation of each wanted child that exists
    // (None: it does not), so an Event says which applies changed a spec; a
    // resourceVersion would also move when Flux writes the child's status.
    let mut before: BTreeMap<(ChildKind, String), Option<Option<i64>>> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for object in &expansion.objects {
        let kind = ChildKind::of(object);
        let child = children::name_of(object).to_owned();
        let found = match existing
            .iter()
            .find(|e| e.kind == kind && e.name() == child)
        {
            Some(e) => Some(e.object.clone()),
            None => api(ctx, kind, namespace)
                .get_opt(&child)
                .await
                .map_err(api_error(format!("get {}/{child}", kind.as_str())))?,
        };
        match found {
            Some(o) if !children::is_controlled_by(&o, uid) => {
                conflicts.push(format!("{}/{child}", kind.as_str()));
            }
            found => {
                before.insert((kind, child), found.map(|o| o.metadata.generation));
            }
        }
    }
    if !conflicts.is_empty() {
        let stall = Stall {
            reason: "ChildConflict",
            message: format!(
                "{} already exist{} in namespace {namespace} and {} not controlled by this Environment; nothing was applied. Fix: delete or rename {}, or rename the Environment or its apps",
                conflicts.join(", "),
                if conflicts.len() == 1 { "s" } else { "" },
                if conflicts.len() == 1 { "is" } else { "are" },
                if conflicts.len() == 1 { "it" } else { "them" },
            ),
        };
        return stalled(ctx, env, &reference, admission, &existing, uid, now, stall).await;
    }

    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied: BTreeMap<(ChildKind, String), DynamicObject> = BTreeMap::new();
    let (mut created, mut updated) = (Vec::new(), Vec::new());
    for object in &expansion.objects {
        let kind = ChildKind::of(object);
        let child = children::name_of(object).to_owned();
        let display = format!("{}/{child}", kind.as_str());
        let result = api(ctx, kind, namespace)
            .patch(&child, &params, &Patch::Apply(object.to_value()))
            .await
            .map_err(api_error(format!("apply {display}")))?;
        match before.get(&(kind, child.clone())) {
            None | Some(None) => created.push(display),
            Some(Some(generation)) if result.metadata.generation != *generation => {
                updated.push(display)
            }
            Some(Some(_)) => {}
        }
        applied.insert((kind, child), result);
    }

    let mut pruned = Vec::new();
    for child in children::prune_set(&existing, &expansion.objects, uid) {
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

    let apps: Vec<AppStatus> = expansion
        .environment
        .spec
        .apps
        .iter()
        .map(|app| {
            let child = child_name(name, &app.name);
            let kind = if app.helm.is_some() {
                ChildKind::HelmRelease
            } else {
                ChildKind::Kustomization
            };
            let health = applied
                .get(&(kind, child.clone()))
                .map(children::health)
                .unwrap_or_default();
            AppStatus {
                name: app.name.clone(),
                kind: kind.as_str().to_owned(),
                ready: health.ready,
                reason: health.reason,
                message: health.message,
                image_tag: tags.get(&child).cloned(),
            }
        })
        .collect();
    let lease = expansion
        .environment
        .spec
        .lease
        .as_ref()
        .and_then(|l| timing::lease_state(l, now).ok());
    let next = status::compute(&Observation {
        generation: env.metadata.generation,
        previous: env.status.as_ref(),
        now,
        admission,
        outcome: Outcome::Applied,
        apps,
        lease: lease.clone(),
    });
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
        "reconciled"
    );
    Ok(Action::requeue(timing::requeue_after(
        now,
        &[lease.and_then(|l| l.next_change), expires],
        ctx.settings.resync,
    )))
}

#[allow(clippy::too_many_arguments)]
async fn stalled(
    ctx: &Context,
    env: &Environment,
    reference: &ObjectReference,
    admission: Admission,
    existing: &[Existing],
    uid: &str,
    now: Timestamp,
    stall: Stall,
) -> Result<Action, Error> {
    tracing::info!(
        namespace = env.namespace().unwrap_or_default(),
        environment = env.name_any(),
        reason = stall.reason,
        message = %stall.message,
        "stalled: nothing applied or pruned"
    );
    let lease = env
        .spec
        .lease
        .as_ref()
        .and_then(|l| timing::lease_state(l, now).ok());
    let next = status::compute(&Observation {
        generation: env.metadata.generation,
        previous: env.status.as_ref(),
        now,
        admission,
        outcome: Outcome::Stalled {
            reason: stall.reason,
            message: stall.message,
        },
        apps: observed_apps(existing, uid),
        lease,
    });
    write_status(ctx, env, reference, next).await?;
    Ok(Action::requeue(ctx.settings.stalled_retry))
}
