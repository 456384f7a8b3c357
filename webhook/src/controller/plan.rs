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
use kube::api::DynamicObject;
use serde_json::Value;

use ephemeral_core::api::{AppStatus, Environment, EnvironmentStatus};
use ephemeral_core::expand::{APP_LABEL, OWNER_ANNOTATION};
use ephemeral_core::flux::{FluxObject, ImagePolicy};
use ephemeral_core::names::child_name;
use ephemeral_core::{Catalog, Config, expand_observing};

use super::children::{self, ChildKind, Existing};
use super::status::{self, Admission, Observation, Outcome};
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
}

/// One server-side apply.
#[derive(Clone, Debug)]
pub struct Apply {
    /// The child's kind.
    pub kind: ChildKind,
    /// The child's name.
    pub name: String,
    /// The body to apply.
    pub body: Value,
    /// The child as observed (None: not observed, so the executor first
    /// checks that no object of that name exists that this Environment
    /// does not control).
    pub current: Option<DynamicObject>,
}

impl Apply {
    /// `Kind/name`.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }
}

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
                e.kind == ChildKind::ImagePolicy
                    && e.name() == name
                    && children::is_controlled_by(&e.object, uid)
            })
            .and_then(|e| children::resolved_tag(&e.object, wanted));
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
                .filter(|e| !children::is_controlled_by(&e.object, uid))
                .map(|_| format!("{}/{name}", kind.as_str()))
        })
        .collect();
    if !conflicts.is_empty() {
        let namespace = env.namespace().unwrap_or_default();
        return stall(admission, conflict(&conflicts, &namespace));
    }
    let apply = expansion
        .objects
        .iter()
        .filter_map(|o| {
            let (kind, name) = (ChildKind::of(o), children::name_of(o));
            let body = o.to_value();
            let current = find(kind, name).map(|e| e.object.clone());
            match &current {
                Some(stored) if children::manages(stored, &body) => None,
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
    let lease = expansion
        .environment
        .spec
        .lease
        .as_ref()
        .and_then(|l| timing::lease_state(l, now).ok());
    Plan {
        admission,
        lease,
        step: Step::Converge(Converge { apply, prune, apps }),
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
        .filter(|e| e.kind.is_app() && children::is_controlled_by(&e.object, uid))
        .map(|e| {
            let health = children::health(&e.object);
            AppStatus {
                name: e
                    .object
                    .labels()
                    .get(APP_LABEL)
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

/// The status after the plan was carried out: `stall` overrides the plan
/// (a conflict the executor found); each app's health comes from what the
/// apply returned, else from the observed child.
pub fn status(
    plan: &Plan,
    stall: Option<&Stall>,
    env: &Environment,
    observed: &[Existing],
    applied: &BTreeMap<(ChildKind, String), DynamicObject>,
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
                                .map(|e| &e.object)
                        })
                        .map(children::health)
                        .unwrap_or_default();
                    let next = match (&app.follows, &app.image_tag) {
                        (Some(prefix), None) => AppStatus {
                            name: app.name.clone(),
                            kind: app.kind.as_str().to_owned(),
                            ready: false,
                            reason: Some(WAITING_FOR_IMAGE.into()),
                            message: Some(format!(
                                "no image tag {prefix}-<git sha>-<unix seconds> resolved yet; kubectl ephemeral describe shows the likely causes"
                            )),
                            image_tag: None,
                        },
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
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    use serde_json::json;

    use super::*;
    use crate::catalog::add_documents;

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
    fn stored(kind: ChildKind, body: &Value, status: Value) -> Existing {
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
        Existing { kind, object }
    }

    fn ready(message: &str) -> Value {
        json!({"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": message}]})
    }

    fn run(env: &Environment, children: &[Existing]) -> Plan {
        plan(Input {
            env,
            catalog: &catalog(),
            config: &Config::default(),
            children,
            unserved: &BTreeSet::new(),
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
    fn in_sync(env: &Environment) -> Vec<Existing> {
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
            children: &children,
            unserved: &BTreeSet::new(),
            now: now(),
        });
        let Step::Stall(stall) = &p.step else {
            panic!("not stalled")
        };
        assert_eq!(stall.reason, "ExpansionFailed");
        let status = status(&p, None, &env, &children, &BTreeMap::new(), now());
        assert_eq!(status.apps.len(), 2);
    }
}
