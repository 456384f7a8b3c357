// Over 400 lines of non-test code: one pure planning function and the helpers it reads in order; splitting it would scatter one decision.
//! What one reconcile should do, decided from what was observed: the
//! Environment, the catalog, the children in the cluster (with the tags
//! their ImagePolicies resolved) and the time. Pure: no API, expanded once.
//!
//! The executor ([`super::reconcile`]) then applies only the children whose
//! fields differ from what is stored, prunes, and writes the status only
//! when it changed.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use kube::ResourceExt;
use serde_json::Value;

use ephemeral_core::api::{AppStatus, Environment, EnvironmentStatus};
use ephemeral_core::expand::OWNER_ANNOTATION;
use ephemeral_core::flux::{FluxObject, ImagePolicy};
use ephemeral_core::names::child_name;
use ephemeral_core::{Catalog, Config, expand_observing};

use super::children::{self, ChildKind, Existing};
use super::status::{self, Admission, Observation, Outcome, Suspension};
use super::timing::{self, LeaseState};

/// The owner an Environment that the webhook never admitted is expanded for.
pub const UNADMITTED_OWNER: &str = "unknown";

/// The reason of an app that follows an image tag prefix whose ImagePolicy
/// has not resolved a tag yet.
pub const WAITING_FOR_IMAGE: &str = "WaitingForImage";

/// What the reconcile sees.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The Environment (with name, namespace and uid).
    pub env: &'a Environment,
    /// Templates, bundles and GitRepositories.
    pub catalog: &'a Catalog,
    /// The expansion policy.
    pub config: &'a Config,
    /// The children carrying the Environment's labels, whoever controls them.
    pub children: &'a [Existing],
    /// The kinds the API server does not serve (no children of them exist).
    pub unserved: &'a BTreeSet<ChildKind>,
    /// Whether apps are suspended outside uptime unless the Environment's
    /// `spec.lease.suspendOutsideUptime` says otherwise.
    pub suspend_outside_uptime: bool,
    /// Now.
    pub now: Timestamp,
}

/// What to do.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Whether the webhook admitted the Environment.
    pub admission: Admission,
    /// The lease, when it could be read.
    pub lease: Option<LeaseState>,
    /// Whether the Kustomizations and HelmReleases are applied suspended
    /// (None when stalled: nothing is applied).
    pub suspension: Option<Suspension>,
    /// Converge or stall.
    pub step: Step,
}

/// Converge the children, or stall without touching them.
#[derive(Clone, Debug)]
pub enum Step {
    /// Nothing is applied or pruned; a person has to change something.
    Stall(Stall),
    /// Apply, prune, report.
    Converge(Converge),
}

/// Why nothing is applied or pruned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    /// Condition reason, e.g. `ExpansionFailed`.
    pub reason: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The children to apply and prune, and what the apps report.
#[derive(Clone, Debug, Default)]
pub struct Converge {
    /// Wanted children whose stored fields differ from ours (or that were
    /// not observed), in expansion order.
    pub apply: Vec<Apply>,
    /// Controlled children no longer wanted.
    pub prune: Vec<Existing>,
    /// Per app: its child and the tag it deploys, in spec order.
    pub apps: Vec<AppPlan>,
    /// `Kind/name` of the app children to be suspended that are not yet:
    /// Flux first takes up their current spec.
    pub suspending: Vec<String>,
}

/// One server-side apply: the engine's, of a Flux child.
pub type Apply = crate::engine::execute::ApplyOf<super::children::Flux>;

/// An app and the child that deploys it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppPlan {
    /// The app's name.
    pub name: String,
    /// Kustomization or HelmRelease.
    pub kind: ChildKind,
    /// The child's name.
    pub child: String,
    /// The tag its ImagePolicy resolved, if any.
    pub image_tag: Option<String>,
    /// The image tag prefix it follows (it has an ImagePolicy), if any: such
    /// an app is not ready before its policy resolved a tag, whatever its
    /// Flux object says, since until then it deploys no build of its branch.
    pub follows: Option<String>,
}

/// Who the Environment is expanded for and as of when: an admitted one for
/// its owner, now; one the webhook never saw for [`UNADMITTED_OWNER`], as of
/// its creation, so its default lease and uptime stay put between reconciles.
pub fn admission(env: &Environment, now: Timestamp) -> (Admission, String, Timestamp) {
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

fn uid(env: &Environment) -> &str {
    env.metadata.uid.as_deref().unwrap_or_default()
}

/// Decides what the reconcile does. Expands the Environment once, taking
/// each app's tag from the ImagePolicy child this Environment controls (if
/// it is the policy the expansion wants).
pub fn plan(input: Input<'_>) -> Plan {
    let Input {
        env,
        catalog,
        config,
        children: observed,
        unserved,
        suspend_outside_uptime,
        now,
    } = input;
    let uid = uid(env);
    let (admission, owner, expand_now) = admission(env, now);
    let tags: RefCell<BTreeMap<String, String>> = RefCell::default();
    let resolve = |wanted: &ImagePolicy| {
        let name = wanted.metadata.name.as_deref().unwrap_or_default();
        let tag = observed
            .iter()
            .find(|e| {
                e.kind == ChildKind::ImagePolicy && e.name() == name && e.is_controlled_by(uid)
            })
            .and_then(|e| children::resolved_tag(e, wanted));
        if let Some(tag) = &tag {
            tags.borrow_mut().insert(name.to_owned(), tag.clone());
        }
        tag
    };
    let expanded = expand_observing(env, catalog, config, expand_now, &owner, Some(&resolve));
    let stored_lease = || {
        env.spec
            .lease
            .as_ref()
            .and_then(|l| timing::lease_state(l, now).ok())
    };
    let stall = |admission, stall| Plan {
        admission,
        lease: stored_lease(),
        suspension: None,
        step: Step::Stall(stall),
    };
    let expansion = match expanded {
        Ok(x) => x,
        Err(denied) => {
            return stall(
                admission,
                Stall {
                    reason: "ExpansionFailed",
                    message: denied.to_string(),
                },
            );
        }
    };
    // Applying the other kinds first would only half-apply the spec (an app
    // without its image tag, say) before failing.
    if let Some(message) = unserved_message(&expansion.objects, unserved) {
        return stall(
            admission,
            Stall {
                reason: "FluxKindNotServed",
                message,
            },
        );
    }
    let find =
        |kind: ChildKind, name: &str| observed.iter().find(|e| e.kind == kind && e.name() == name);
    // Never take over an object of the same name that this Environment
    // does not control.
    let conflicts: Vec<String> = expansion
        .objects
        .iter()
        .filter_map(|o| {
            let (kind, name) = (ChildKind::of(o), children::name_of(o));
            find(kind, name)
                .filter(|e| !e.is_controlled_by(uid))
                .map(|_| format!("{}/{name}", kind.as_str()))
        })
        .collect();
    if !conflicts.is_empty() {
        let namespace = env.namespace().unwrap_or_default();
        return stall(admission, conflict(&conflicts, &namespace));
    }
    let lease_spec = expansion.environment.spec.lease.as_ref();
    let lease = lease_spec.and_then(|l| timing::lease_state(l, now).ok());
    let suspension = Suspension::of(
        lease_spec.and_then(|l| l.suspend_outside_uptime),
        suspend_outside_uptime,
        lease.as_ref(),
    );
    let mut suspending = Vec::new();
    let apply = expansion
        .objects
        .iter()
        .filter_map(|o| {
            let (kind, name) = (ChildKind::of(o), children::name_of(o));
            let mut body = o.to_value();
            let current = find(kind, name).cloned();
            // The expansion writes `suspend: false`; outside uptime the
            // app kinds are suspended (ImagePolicies keep resolving), once
            // Flux has taken up their current spec.
            if kind.is_app() && suspension.is_suspended() {
                match suspend_now(current.as_ref(), &body) {
                    SuspendStep::Suspend => body["spec"]["suspend"] = Value::Bool(true),
                    SuspendStep::Wait => {
                        suspending.push(format!("{}/{name}", kind.as_str()));
                        return None;
                    }
                    SuspendStep::ApplyFirst => {
                        suspending.push(format!("{}/{name}", kind.as_str()));
                    }
                }
            }
            match &current {
                Some(stored) if stored.manages(&body) => None,
                _ => Some(Apply {
                    kind,
                    name: name.to_owned(),
                    body,
                    current,
                }),
            }
        })
        .collect();
    let prune = children::prune_set(observed, &expansion.objects, uid)
        .into_iter()
        .cloned()
        .collect();
    let tags = tags.into_inner();
    let name = env.metadata.name.as_deref().unwrap_or_default();
    let apps = expansion
        .environment
        .spec
        .apps
        .iter()
        .map(|app| {
            let child = child_name(name, &app.name);
            AppPlan {
                name: app.name.clone(),
                kind: if app.helm.is_some() {
                    ChildKind::HelmRelease
                } else {
                    ChildKind::Kustomization
                },
                image_tag: tags.get(&child).cloned(),
                follows: app
                    .image_repository
                    .as_ref()
                    .and(app.image_tag_prefix.clone()),
                child,
            }
        })
        .collect();
    Plan {
        admission,
        lease,
        suspension: Some(suspension),
        step: Step::Converge(Converge {
            apply,
            prune,
            apps,
            suspending,
        }),
    }
}

/// What to do with an app child that is to be suspended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SuspendStep {
    /// Apply it with `spec.suspend: true`.
    Suspend,
    /// Apply its new spec unsuspended first: Flux must apply the spec that
    /// carries the ended lease's uptime (a lease cut short changes the
    /// `downscaler_uptime` substitution), or the workloads keep an uptime
    /// that holds them up.
    ApplyFirst,
    /// Leave it: Flux has not started reconciling its current generation.
    Wait,
}

/// Whether an app child with the wanted (unsuspended) `body` can be
/// suspended now. A child not created yet, or already suspended, is
/// (applied) suspended; one whose spec differs is first applied as it is;
/// one whose current generation Flux has not taken up yet waits (once Flux
/// has started a run, suspending it does not stop that run).
fn suspend_now(current: Option<&Existing>, body: &Value) -> SuspendStep {
    let Some(stored) = current else {
        return SuspendStep::Suspend;
    };
    if stored.facts.suspended {
        return SuspendStep::Suspend;
    }
    if !stored.manages(body) {
        return SuspendStep::ApplyFirst;
    }
    if stored.facts.started {
        SuspendStep::Suspend
    } else {
        SuspendStep::Wait
    }
}

/// The stall for wanted names taken by objects this Environment does not control.
pub fn conflict(names: &[String], namespace: &str) -> Stall {
    let one = names.len() == 1;
    Stall {
        reason: "ChildConflict",
        message: format!(
            "{} already exist{} in namespace {namespace} and {} not controlled by this Environment; nothing was applied. Fix: delete or rename {}, or rename the Environment or its apps",
            names.join(", "),
            if one { "s" } else { "" },
            if one { "is" } else { "are" },
            if one { "it" } else { "them" },
        ),
    }
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

/// App states from whatever app children exist (when nothing is applied),
/// with the image tag each one deploys now.
pub fn observed_apps(observed: &[Existing], uid: &str) -> Vec<AppStatus> {
    let mut apps: Vec<AppStatus> = observed
        .iter()
        .filter(|e| e.kind.is_app() && e.is_controlled_by(uid))
        .map(|e| {
            let health = children::health(e);
            AppStatus {
                name: e.facts.app.as_deref().unwrap_or(e.name()).to_owned(),
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

/// The status after the plan was carried out: `stall` overrides the plan
/// (a conflict the executor found); each app's health comes from what the
/// apply returned, else from the observed child.
pub fn status(
    plan: &Plan,
    stall: Option<&Stall>,
    env: &Environment,
    observed: &[Existing],
    applied: &BTreeMap<(ChildKind, String), Existing>,
    now: Timestamp,
) -> EnvironmentStatus {
    let (outcome, apps, lease) = match (&plan.step, stall) {
        (Step::Stall(s), _) | (Step::Converge(_), Some(s)) => (
            Outcome::Stalled {
                reason: s.reason,
                message: s.message.clone(),
            },
            observed_apps(observed, uid(env)),
            // A stall reports the stored lease, as the expansion may not exist.
            env.spec
                .lease
                .as_ref()
                .and_then(|l| timing::lease_state(l, now).ok()),
        ),
        (Step::Converge(c), None) => {
            let apps = c
                .apps
                .iter()
                .map(|app| {
                    let key = (app.kind, app.child.clone());
                    let applied_now = applied.get(&key);
                    let health = applied_now
                        .or_else(|| {
                            observed
                                .iter()
                                .find(|e| e.kind == app.kind && e.name() == app.child)
                        })
                        .map(children::health)
                        .unwrap_or_default();
                    let suspended = plan.suspension.as_ref().filter(|s| {
                        s.is_suspended()
                            && !c
                                .suspending
                                .contains(&format!("{}/{}", app.kind.as_str(), app.child))
                    });
                    let next = match (&app.follows, &app.image_tag, suspended) {
                        (Some(prefix), None, _) => AppStatus {
                            name: app.name.clone(),
                            kind: app.kind.as_str().to_owned(),
                            ready: false,
                            reason: Some(WAITING_FOR_IMAGE.into()),
                            message: Some(format!(
                                "no image tag {prefix}-<git sha>-<unix seconds> resolved yet; kubectl ephemeral describe shows the likely causes"
                            )),
                            image_tag: None,
                        },
                        // Flux does not reconcile a suspended object: the
                        // app keeps the verdict Flux last gave.
                        (_, _, Some(s)) => {
                            let last = applied_now
                                .or_else(|| {
                                    observed
                                        .iter()
                                        .find(|e| e.kind == app.kind && e.name() == app.child)
                                })
                                .map(children::last_verdict)
                                .unwrap_or_default();
                            let said = match (&last.reason, &last.message) {
                                (Some(r), Some(m)) => format!("{r}: {m}"),
                                (Some(t), None) | (None, Some(t)) => t.clone(),
                                (None, None) => "nothing".into(),
                            };
                            AppStatus {
                                name: app.name.clone(),
                                kind: app.kind.as_str().to_owned(),
                                ready: last.ready,
                                reason: Some(status::OUTSIDE_UPTIME.into()),
                                message: Some(format!(
                                    "suspended {}; Flux last reported {said}",
                                    s.until_text()
                                )),
                                image_tag: app.image_tag.clone(),
                            }
                        }
                        _ => AppStatus {
                            name: app.name.clone(),
                            kind: app.kind.as_str().to_owned(),
                            ready: health.ready,
                            reason: health.reason,
                            message: health.message,
                            image_tag: app.image_tag.clone(),
                        },
                    };
                    // Flux re-running an unchanged spec of a ready app (its
                    // interval, or a requested reconcile) is no news: the
                    // app keeps its last verdict until the run ends.
                    let previous = env
                        .status
                        .iter()
                        .flat_map(|s| &s.apps)
                        .find(|p| p.name == next.name && p.kind == next.kind);
                    match previous {
                        Some(p)
                            if health.rerunning
                                && suspended.is_none()
                                && applied_now.is_none()
                                && p.ready
                                && p.image_tag == next.image_tag =>
                        {
                            p.clone()
                        }
                        _ => next,
                    }
                })
                .collect();
            (Outcome::Applied, apps, plan.lease.clone())
        }
    };
    status::compute(&Observation {
        generation: env.metadata.generation,
        previous: env.status.as_ref(),
        now,
        admission: plan.admission.clone(),
        outcome,
        apps,
        lease,
        suspension: match (stall, &plan.step) {
            (None, Step::Converge(c)) => match &plan.suspension {
                Some(Suspension::Suspended { until }) if !c.suspending.is_empty() => {
                    Some(Suspension::Suspending {
                        until: *until,
                        waiting: c.suspending.clone(),
                    })
                }
                other => other.clone(),
            },
            _ => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    use serde_json::json;

    use super::*;
    use crate::catalog::add_documents;
    use crate::controller::children::Flux;
    use kube::api::DynamicObject;

    /// A stored child as the API server holds it; the plan reads its summary.
    #[derive(Clone, Debug)]
    struct Obj {
        kind: ChildKind,
        object: DynamicObject,
    }

    impl Obj {
        fn name(&self) -> &str {
            self.object.metadata.name.as_deref().unwrap_or_default()
        }
    }

    /// The children as the index summarises them.
    fn view(children: &[Obj]) -> Vec<Existing> {
        children
            .iter()
            .map(|c| Existing::of::<Flux>(c.kind, &c.object))
            .collect()
    }

    /// [`super::status`] of stored children.
    fn status(
        plan: &Plan,
        stall: Option<&Stall>,
        env: &Environment,
        children: &[Obj],
        applied: &BTreeMap<(ChildKind, String), Existing>,
        now: Timestamp,
    ) -> EnvironmentStatus {
        super::status(plan, stall, env, &view(children), applied, now)
    }

    const UID: &str = "uid-alice";
    const CATALOG: &str = r#"
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {name: checkout, namespace: shop}
spec:
  kustomization:
    path: ./apps/checkout/preview
    sourceRef: {kind: GitRepository, name: platform, namespace: flux-system}
  imageRepository: {name: checkout, namespace: flux-system}
  imageTagPrefix: main
---
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {name: web, namespace: shop}
spec:
  kustomization:
    path: ./apps/web/preview
    sourceRef: {kind: GitRepository, name: platform, namespace: flux-system}
"#;

    fn now() -> Timestamp {
        "2026-11-21T10:00:00Z".parse().unwrap()
    }

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        add_documents(&mut c, std::path::Path::new("c.yaml"), CATALOG).unwrap();
        c
    }

    fn env(substitute: Value) -> Environment {
        let light: Environment = serde_json::from_value(json!({
            "apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
            "metadata": {"name": "alice", "namespace": "shop", "uid": UID, "generation": 1,
                         "creationTimestamp": "2026-11-21T09:00:00Z"},
            "spec": {"apps": [{"name": "checkout"}, {"name": "web"}], "substitute": substitute,
                     "lease": {"until": "2026-11-21T19:00:00Z"}}
        }))
        .unwrap();
        let at = "2026-11-21T09:00:00Z".parse().unwrap();
        let mut env = ephemeral_core::expand(&light, &catalog(), &Config::default(), at, "alice")
            .unwrap()
            .environment;
        env.metadata.uid = Some(UID.into());
        env
    }

    /// fieldsV1 naming every field of `v` (lists atomic).
    fn fields(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (format!("f:{k}"), fields(v)))
                    .collect(),
            ),
            _ => json!({}),
        }
    }

    /// `body` as the API server stores it after our apply, with Flux's `status`.
    fn stored(kind: ChildKind, body: &Value, status: Value) -> Obj {
        let mut managed = body.clone();
        let m = managed.as_object_mut().unwrap();
        m.remove("apiVersion");
        m.remove("kind");
        m["metadata"].as_object_mut().unwrap().remove("name");
        m["metadata"].as_object_mut().unwrap().remove("namespace");
        let mut object: DynamicObject = serde_json::from_value(body.clone()).unwrap();
        object.metadata.uid = Some(format!("uid-{}", kind.as_str()));
        object.metadata.generation = Some(1);
        object.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("ephemeral".into()),
            operation: Some("Apply".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields(&managed))),
            ..Default::default()
        }]);
        object.data["status"] = status;
        Obj { kind, object }
    }

    fn ready(message: &str) -> Value {
        json!({"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": message}]})
    }

    fn run(env: &Environment, children: &[Obj]) -> Plan {
        plan(Input {
            env,
            catalog: &catalog(),
            config: &Config::default(),
            children: &view(children),
            unserved: &BTreeSet::new(),
            suspend_outside_uptime: false,
            now: now(),
        })
    }

    fn converge(p: &Plan) -> &Converge {
        match &p.step {
            Step::Converge(c) => c,
            Step::Stall(s) => panic!("stalled: {s:?}"),
        }
    }

    fn applied(p: &Plan) -> Vec<String> {
        converge(p).apply.iter().map(Apply::display_name).collect()
    }

    /// The children exactly as applied, Ready.
    fn in_sync(env: &Environment) -> Vec<Obj> {
        converge(&run(env, &[]))
            .apply
            .iter()
            .map(|a| stored(a.kind, &a.body, ready("Applied revision: main@sha1:abc")))
            .collect()
    }

    #[test]
    fn nothing_observed_applies_every_child_in_expansion_order() {
        let p = run(&env(json!({})), &[]);
        assert_eq!(
            applied(&p),
            [
                "Kustomization/alice-checkout",
                "ImagePolicy/alice-checkout",
                "Kustomization/alice-web"
            ]
        );
        assert!(converge(&p).apply.iter().all(|a| a.current.is_none()));
        assert!(converge(&p).prune.is_empty());
    }

    #[test]
    fn children_in_sync_are_not_applied_whatever_flux_writes_in_their_status() {
        let env = env(json!({}));
        let mut children = in_sync(&env);
        let p = run(&env, &children);
        assert_eq!(applied(&p), Vec::<String>::new());
        assert!(converge(&p).prune.is_empty());
        // Flux reports a new revision, and adds fields of its own.
        children[2].object.data["status"] = ready("Applied revision: main@sha1:def");
        children[2].object.metadata.finalizers = Some(vec!["finalizers.fluxcd.io".into()]);
        children[2].object.data["spec"]["force"] = json!(false);
        let p = run(&env, &children);
        assert_eq!(applied(&p), Vec::<String>::new());
        let status = status(&p, None, &env, &children, &BTreeMap::new(), now());
        assert_eq!(status.apps.len(), 2);
        assert_eq!(status.apps[1].name, "web");
        assert!(status.apps[1].ready, "{status:?}");
        assert_eq!(
            status.apps[1].message.as_deref(),
            Some("Applied revision: main@sha1:def")
        );
    }

    #[test]
    fn an_app_following_a_prefix_is_not_ready_before_its_image_resolves() {
        let env = env(json!({}));
        let mut children = in_sync(&env);
        // Flux applied the Kustomization, but no tag matches the prefix yet.
        let p = run(&env, &children);
        let waiting = status(&p, None, &env, &children, &BTreeMap::new(), now());
        let checkout = &waiting.apps[0];
        assert_eq!(checkout.name, "checkout");
        assert!(!checkout.ready, "{checkout:?}");
        assert_eq!(checkout.reason.as_deref(), Some(WAITING_FOR_IMAGE));
        assert!(
            checkout
                .message
                .as_deref()
                .unwrap()
                .contains("main-<git sha>-<unix seconds>"),
            "{checkout:?}"
        );
        let condition = waiting
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(condition.status, "False");
        assert!(
            condition.message.contains("checkout (WaitingForImage"),
            "{condition:?}"
        );
        // The tag resolves and the Kustomization with it is applied and Ready.
        let policy = children
            .iter_mut()
            .find(|c| c.kind == ChildKind::ImagePolicy)
            .unwrap();
        policy.object.data["status"] = json!({"observedGeneration": 1, "latestRef": {"name": "r/checkout", "tag": "main-abc1-17"}});
        let p = run(&env, &children);
        let apply = &converge(&p).apply[0];
        children[0] = stored(
            apply.kind,
            &apply.body,
            ready("Applied revision: main@sha1:abc"),
        );
        let p = run(&env, &children);
        assert_eq!(applied(&p), Vec::<String>::new());
        let done = status(&p, None, &env, &children, &BTreeMap::new(), now());
        assert!(done.apps.iter().all(|a| a.ready), "{done:?}");
        assert_eq!(done.apps[0].image_tag.as_deref(), Some("main-abc1-17"));
    }

    #[test]
    fn flux_rerunning_an_unchanged_spec_keeps_the_apps_last_verdict() {
        let env = env(json!({}));
        let mut children = in_sync(&env);
        let p = run(&env, &children);
        let mut env = env.clone();
        env.status = Some(status(&p, None, &env, &children, &BTreeMap::new(), now()));
        children[0].object.data["status"] = json!({"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "Unknown", "reason": "Progressing", "message": "Reconciliation in progress"}]});
        let p = run(&env, &children);
        let rerun = status(&p, None, &env, &children, &BTreeMap::new(), now());
        assert_eq!(Some(&rerun), env.status.as_ref(), "nothing to write");
        // A failed run is news.
        children[0].object.data["status"] = json!({"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "False", "reason": "BuildFailed", "message": "kustomize build failed"}]});
        let failed = status(&p, None, &env, &children, &BTreeMap::new(), now());
        assert!(!failed.apps[0].ready);
    }

    #[test]
    fn a_changed_or_dropped_field_of_ours_is_applied() {
        let before = env(json!({"color": "blue"}));
        let children = in_sync(&before);
        let changed = env(json!({"color": "green"}));
        assert_eq!(
            applied(&run(&changed, &children)),
            ["Kustomization/alice-checkout", "Kustomization/alice-web"]
        );
        // Only the managed fields say the variable was ours to drop.
        let dropped = env(json!({}));
        let p = run(&dropped, &children);
        assert_eq!(
            applied(&p),
            ["Kustomization/alice-checkout", "Kustomization/alice-web"]
        );
        assert!(converge(&p).apply.iter().all(|a| a.current.is_some()));
    }

    #[test]
    fn a_child_without_our_managed_fields_is_applied() {
        let env = env(json!({}));
        let mut children = in_sync(&env);
        children[2].object.metadata.managed_fields = None;
        assert_eq!(applied(&run(&env, &children)), ["Kustomization/alice-web"]);
    }

    #[test]
    fn a_resolved_tag_goes_into_the_app_in_one_expansion() {
        let env = env(json!({}));
        let mut children = in_sync(&env);
        let policy = children
            .iter_mut()
            .find(|c| c.kind == ChildKind::ImagePolicy)
            .unwrap();
        policy.object.data["status"] = json!({"observedGeneration": 1, "latestRef": {"name": "r/checkout", "tag": "main-abc1-17"}});
        let p = run(&env, &children);
        assert_eq!(applied(&p), ["Kustomization/alice-checkout"]);
        assert_eq!(
            converge(&p).apply[0].body["spec"]["postBuild"]["substitute"]["image_tag"],
            "main-abc1-17"
        );
        assert_eq!(
            converge(&p).apps[0].image_tag.as_deref(),
            Some("main-abc1-17")
        );
        assert_eq!(converge(&p).apps[1].image_tag, None);
    }

    #[test]
    fn an_unwanted_child_is_pruned_and_a_foreign_one_stalls() {
        let env = env(json!({}));
        let mut children = in_sync(&env);
        let mut extra = children[2].clone();
        extra.object.metadata.name = Some("alice-old".into());
        children.push(extra);
        let p = run(&env, &children);
        assert_eq!(applied(&p), Vec::<String>::new());
        let pruned: Vec<String> = converge(&p)
            .prune
            .iter()
            .map(|e| e.display_name())
            .collect();
        assert_eq!(pruned, ["Kustomization/alice-old"]);

        children[2].object.metadata.owner_references = None;
        let p = run(&env, &children);
        let Step::Stall(stall) = &p.step else {
            panic!("not stalled")
        };
        assert_eq!(stall.reason, "ChildConflict");
        assert!(
            stall
                .message
                .starts_with("Kustomization/alice-web already exists in namespace shop")
        );
    }

    #[test]
    fn a_missing_template_stalls_and_reports_the_observed_apps() {
        let env = env(json!({}));
        let children = in_sync(&env);
        let p = plan(Input {
            env: &env,
            catalog: &Catalog::default(),
            config: &Config::default(),
            children: &view(&children),
            unserved: &BTreeSet::new(),
            suspend_outside_uptime: false,
            now: now(),
        });
        let Step::Stall(stall) = &p.step else {
            panic!("not stalled")
        };
        assert_eq!(stall.reason, "ExpansionFailed");
        let status = status(&p, None, &env, &children, &BTreeMap::new(), now());
        assert_eq!(status.apps.len(), 2);
    }

    // ------------------------------------------------ suspension outside uptime

    /// An Environment with a Kustomization app (with an ImagePolicy), a
    /// HelmRelease app and a lease until 19:00, admitted at 09:00.
    fn suspendable(suspend: Option<bool>) -> Environment {
        let mut lease = json!({"until": "2026-11-21T19:00:00Z"});
        if let Some(on) = suspend {
            lease["suspendOutsideUptime"] = json!(on);
        }
        let light: Environment = serde_json::from_value(json!({
            "apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
            "metadata": {"name": "alice", "namespace": "shop", "uid": UID, "generation": 1,
                         "creationTimestamp": "2026-11-21T09:00:00Z"},
            "spec": {"apps": [
                {"name": "checkout"},
                {"name": "chart", "helm": {"chart": "podinfo",
                    "sourceRef": {"kind": "HelmRepository", "name": "charts", "namespace": "flux-system"}}}
            ], "lease": lease}
        }))
        .unwrap();
        let at = "2026-11-21T09:00:00Z".parse().unwrap();
        let mut env = ephemeral_core::expand(&light, &catalog(), &Config::default(), at, "alice")
            .unwrap()
            .environment;
        env.metadata.uid = Some(UID.into());
        env
    }

    /// 20:00: an hour after the lease ended.
    fn evening() -> Timestamp {
        "2026-11-21T20:00:00Z".parse().unwrap()
    }

    fn run_at(env: &Environment, children: &[Obj], flag: bool, now: Timestamp) -> Plan {
        plan(Input {
            env,
            catalog: &catalog(),
            config: &Config::default(),
            children: &view(children),
            unserved: &BTreeSet::new(),
            suspend_outside_uptime: flag,
            now,
        })
    }

    /// `Kind/name: suspend` of each applied body.
    fn suspends(p: &Plan) -> Vec<String> {
        converge(p)
            .apply
            .iter()
            .map(|a| format!("{}: {}", a.display_name(), a.body["spec"]["suspend"]))
            .collect()
    }

    /// The plan's applies stored as the API server would, each Ready as of
    /// the generation Flux last reconciled (1).
    fn store(p: &Plan, previous: &[Obj]) -> Vec<Obj> {
        let mut out: Vec<Obj> = previous.to_vec();
        for a in &converge(p).apply {
            let mut next = stored(a.kind, &a.body, ready("Applied revision: main@sha1:abc"));
            if let Some(old) = out
                .iter()
                .position(|e| e.kind == a.kind && e.name() == a.name)
            {
                // A spec change: the generation moves on, Flux's status stays.
                next.object.metadata.generation =
                    out[old].object.metadata.generation.map(|g| g + 1);
                next.object.data["status"] = out[old].object.data["status"].clone();
                out[old] = next;
            } else {
                out.push(next);
            }
        }
        out
    }

    fn suspended_condition(s: &EnvironmentStatus) -> Option<(String, String, String)> {
        s.conditions
            .iter()
            .find(|c| c.type_ == "Suspended")
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    }

    #[test]
    fn suspension_is_off_by_default() {
        let env = suspendable(None);
        let p = run_at(&env, &[], false, evening());
        assert_eq!(p.suspension, Some(Suspension::Off));
        assert!(
            suspends(&p).iter().all(|s| s.ends_with(": false")),
            "{:?}",
            suspends(&p)
        );
        let children = store(&p, &[]);
        let status = status(&p, None, &env, &children, &BTreeMap::new(), evening());
        assert_eq!(suspended_condition(&status), None);
        assert!(applied(&run_at(&env, &children, false, evening())).is_empty());
    }

    #[test]
    fn the_flag_suspends_kustomizations_and_helm_releases_only_outside_uptime() {
        let env = suspendable(None);
        // Inside uptime: applied as expanded, not suspended.
        let inside = run_at(&env, &[], true, now());
        assert_eq!(inside.suspension, Some(Suspension::Resumed));
        let children = store(&inside, &[]);
        let up = status(&inside, None, &env, &children, &BTreeMap::new(), now());
        let (on, reason, _) = suspended_condition(&up).unwrap();
        assert_eq!((on.as_str(), reason.as_str()), ("False", "InsideUptime"));
        let mut env = env.clone();
        env.status = Some(up);
        // The lease ended: only the app kinds are applied, suspended.
        let outside = run_at(&env, &children, true, evening());
        assert_eq!(
            outside.suspension,
            Some(Suspension::Suspended { until: None })
        );
        assert_eq!(
            suspends(&outside),
            [
                "Kustomization/alice-checkout: true",
                "HelmRelease/alice-chart: true"
            ]
        );
        let children = store(&outside, &children);
        let down = status(&outside, None, &env, &children, &BTreeMap::new(), evening());
        let (on, reason, message) = suspended_condition(&down).unwrap();
        assert_eq!((on.as_str(), reason.as_str()), ("True", "OutsideUptime"));
        assert!(message.contains("until the lease is extended"), "{message}");
        // Flux keeps the Ready it last reported; so does each app.
        let chart = down.apps.iter().find(|a| a.name == "chart").unwrap();
        assert!(chart.ready, "{chart:?}");
        assert_eq!(chart.reason.as_deref(), Some("OutsideUptime"));
        assert!(
            chart.message.as_deref().unwrap().ends_with(
                "Flux last reported ReconciliationSucceeded: Applied revision: main@sha1:abc"
            ),
            "{chart:?}"
        );
        let reasons: Vec<String> = status::notices(env.status.as_ref(), &down)
            .into_iter()
            .map(|n| n.reason)
            .collect();
        assert!(reasons.contains(&"Suspended".to_owned()), "{reasons:?}");
        // Steady state: nothing more to apply, the same status.
        env.status = Some(down.clone());
        let again = run_at(&env, &children, true, evening());
        assert_eq!(applied(&again), Vec::<String>::new());
        let same = status(&again, None, &env, &children, &BTreeMap::new(), evening());
        assert_eq!(same, down, "nothing to write");
        assert!(status::notices(Some(&down), &same).is_empty());
    }

    #[test]
    fn extending_the_lease_resumes() {
        let env = suspendable(None);
        let outside = run_at(&env, &[], true, evening());
        let children = store(&outside, &[]);
        let mut env = env.clone();
        env.status = Some(status(
            &outside,
            None,
            &env,
            &children,
            &BTreeMap::new(),
            evening(),
        ));
        env.spec.lease.as_mut().unwrap().until = Some("2026-11-21T23:00:00Z".into());
        let resumed = run_at(&env, &children, true, evening());
        assert_eq!(resumed.suspension, Some(Suspension::Resumed));
        assert_eq!(
            suspends(&resumed),
            [
                "Kustomization/alice-checkout: false",
                "HelmRelease/alice-chart: false"
            ]
        );
        let children = store(&resumed, &children);
        let next = status(&resumed, None, &env, &children, &BTreeMap::new(), evening());
        let (on, _, _) = suspended_condition(&next).unwrap();
        assert_eq!(on, "False");
        let reasons: Vec<String> = status::notices(env.status.as_ref(), &next)
            .into_iter()
            .map(|n| n.reason)
            .collect();
        assert_eq!(reasons, ["Resumed"]);
    }

    #[test]
    fn a_schedule_is_suspended_until_its_next_window() {
        let mut env = suspendable(Some(true));
        let lease = env.spec.lease.as_mut().unwrap();
        lease.until = None;
        lease.schedule = Some("Mon-Fri 07:00-19:00 UTC".into());
        // Saturday 2026-11-21: down until Monday 07:00.
        let p = run_at(&env, &[], false, evening());
        let until: Timestamp = "2026-11-23T07:00:00Z".parse().unwrap();
        assert_eq!(
            p.suspension,
            Some(Suspension::Suspended { until: Some(until) })
        );
        let children = store(&p, &[]);
        let s = status(&p, None, &env, &children, &BTreeMap::new(), evening());
        assert!(
            suspended_condition(&s)
                .unwrap()
                .2
                .contains("until 2026-11-23T07:00:00Z"),
            "{s:?}"
        );
        // Monday 07:00: the window opens, and the apps are resumed.
        let monday = run_at(&env, &children, false, until);
        assert_eq!(monday.suspension, Some(Suspension::Resumed));
        assert_eq!(applied(&monday).len(), 2);
    }

    #[test]
    fn the_environment_overrides_the_flag_both_ways() {
        let on = suspendable(Some(true));
        let p = run_at(&on, &[], false, evening());
        assert!(suspends(&p)[0].ends_with("true"), "{:?}", suspends(&p));
        let off = suspendable(Some(false));
        let p = run_at(&off, &[], true, evening());
        assert_eq!(p.suspension, Some(Suspension::Off));
        assert!(suspends(&p).iter().all(|s| s.ends_with(": false")));
        // Turning it off while suspended resumes, and says so.
        let children = store(&run_at(&on, &[], false, evening()), &[]);
        let mut env = on.clone();
        env.status = Some(status(
            &run_at(&on, &children, false, evening()),
            None,
            &on,
            &children,
            &BTreeMap::new(),
            evening(),
        ));
        env.spec.lease.as_mut().unwrap().suspend_outside_uptime = Some(false);
        let p = run_at(&env, &children, true, evening());
        assert_eq!(applied(&p).len(), 2);
        let next = status(&p, None, &env, &children, &BTreeMap::new(), evening());
        assert_eq!(suspended_condition(&next), None);
        let reasons: Vec<String> = status::notices(env.status.as_ref(), &next)
            .into_iter()
            .map(|n| n.reason)
            .collect();
        assert_eq!(reasons, ["Resumed"]);
    }

    #[test]
    fn a_suspended_app_never_reconciled_is_not_ready_and_nothing_progresses() {
        let env = suspendable(None);
        let p = run_at(&env, &[], true, evening());
        let mut children = store(&p, &[]);
        for c in &mut children {
            c.object.data["status"] = json!({});
        }
        let s = status(&p, None, &env, &children, &BTreeMap::new(), evening());
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Suspended")
        );
        assert!(
            ready.message.contains("suspended outside uptime"),
            "{ready:?}"
        );
        assert!(
            !s.conditions.iter().any(|c| c.type_ == "Reconciling"),
            "{s:?}"
        );
    }

    #[test]
    fn a_lease_cut_short_is_applied_and_taken_up_by_flux_before_it_is_suspended() {
        let env = suspendable(None);
        let inside = run_at(&env, &[], true, now());
        let children = store(&inside, &[]);
        // Cut short at 09:30: the uptime substitution changes with it.
        let mut env = env.clone();
        env.spec.lease.as_mut().unwrap().until = Some("2026-11-21T09:30:00Z".into());
        let first = run_at(&env, &children, true, now());
        assert_eq!(
            suspends(&first),
            [
                "Kustomization/alice-checkout: false",
                "HelmRelease/alice-chart: false"
            ],
            "the new uptime first, unsuspended"
        );
        assert_eq!(
            converge(&first).suspending,
            ["Kustomization/alice-checkout", "HelmRelease/alice-chart"]
        );
        let mut children = store(&first, &children);
        let s = status(&first, None, &env, &children, &BTreeMap::new(), now());
        let (on, reason, message) = suspended_condition(&s).unwrap();
        assert_eq!((on.as_str(), reason.as_str()), ("False", "Suspending"));
        assert!(
            message.contains("waiting for Kustomization/alice-checkout"),
            "{message}"
        );
        // Flux has not taken up generation 2 yet: nothing to do.
        let waiting = run_at(&env, &children, true, now());
        assert_eq!(applied(&waiting), Vec::<String>::new());
        assert_eq!(converge(&waiting).suspending.len(), 2);
        // Flux starts its run (Reconciling at generation 2): now suspend.
        for c in children.iter_mut().filter(|c| c.kind.is_app()) {
            c.object.data["status"]["conditions"] = json!([
                {"type": "Reconciling", "status": "True", "reason": "Progressing", "observedGeneration": 2},
                {"type": "Ready", "status": "Unknown", "reason": "Progressing", "observedGeneration": 2}]);
        }
        let suspend = run_at(&env, &children, true, now());
        assert_eq!(
            suspends(&suspend),
            [
                "Kustomization/alice-checkout: true",
                "HelmRelease/alice-chart: true"
            ]
        );
        assert!(converge(&suspend).suspending.is_empty());
    }

    #[test]
    fn a_child_created_outside_uptime_is_created_suspended() {
        let env = suspendable(Some(true));
        let p = run_at(&env, &[], false, evening());
        assert!(converge(&p).suspending.is_empty());
        assert_eq!(
            suspends(&p),
            [
                "Kustomization/alice-checkout: true",
                "ImagePolicy/alice-checkout: false",
                "HelmRelease/alice-chart: true"
            ]
        );
    }
}
