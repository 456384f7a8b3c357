//! The children of an Environment as the controller sees them: the Flux
//! [`Family`] of the engine (what the plan reads of each child), whether
//! this Environment controls one, what Flux says about it, and which
//! existing ones are no longer wanted. Pure: objects in, decisions out.

use std::collections::BTreeSet;

use kube::api::{ApiResource, DynamicObject};
use serde_json::Value;

use ephemeral_core::expand::{APP_LABEL, ENVIRONMENT_LABEL, MANAGED_BY, MANAGED_BY_LABEL};
use ephemeral_core::flux::{FluxObject, ImagePolicy};
use ephemeral_core::prefix::BuildTag;
use ephemeral_core::ready::FluxStatus;

use crate::engine::{self, ChildOf, Family};

pub use crate::engine::FIELD_MANAGER;

/// The four Flux kinds an Environment expands into: the core's one kind
/// table (kind, apiVersion, plural), shared with the plugin.
pub use ephemeral_core::kinds::FluxKind as ChildKind;

impl engine::Kind for ChildKind {
    fn api_resource(self) -> ApiResource {
        ChildKind::api_resource(self)
    }

    fn as_str(self) -> &'static str {
        ChildKind::as_str(self)
    }
}

/// The Environment controller's children: the four Flux kinds, labelled
/// `ephemeral.io/environment=<name>` and `app.kubernetes.io/managed-by=ephemeral`.
#[derive(Clone, Copy, Debug)]
pub struct Flux;

impl Family for Flux {
    type Kind = ChildKind;
    type Facts = FluxFacts;
    const OWNER_LABEL: &'static str = ENVIRONMENT_LABEL;
    const LABELS: &'static [(&'static str, &'static str)] = &[(MANAGED_BY_LABEL, MANAGED_BY)];

    fn kinds() -> &'static [ChildKind] {
        &ChildKind::ALL
    }

    fn facts(kind: ChildKind, object: &DynamicObject) -> FluxFacts {
        FluxFacts::of(kind, object)
    }
}

/// An existing child, as indexed, listed or returned by an apply.
pub type Existing = ChildOf<Flux>;

/// What the plan and the status read of a Flux child.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FluxFacts {
    /// Its `ephemeral.io/app` label.
    pub app: Option<Box<str>>,
    /// Its `status.observedGeneration` and Ready condition.
    pub status: FluxStatus,
    /// Flux has started reconciling its current generation (its status, or
    /// one of its conditions, observed it): from then on, suspending it
    /// does not stop that run.
    pub started: bool,
    /// `spec.suspend` is true.
    pub suspended: bool,
    /// The image tag an app child deploys: its Kustomization's
    /// `postBuild.substitute.image_tag`, or its HelmRelease's
    /// `values.ephemeral.image_tag`.
    pub deployed_tag: Option<Box<str>>,
    /// What an ImagePolicy resolved, and for which policy.
    pub policy: Option<Box<PolicyFacts>>,
}

/// An ImagePolicy as stored: its pattern and repository, and the tag it resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyFacts {
    /// `spec.filterTags.pattern`.
    pub pattern: Option<Box<str>>,
    /// `spec.imageRepositoryRef.name`.
    pub repository: Option<Box<str>>,
    /// `spec.imageRepositoryRef.namespace`.
    pub repository_namespace: Option<Box<str>>,
    /// `status.latestRef.tag`, when not empty.
    pub tag: Option<Box<str>>,
    /// Flux resolved it for the current generation.
    pub current: bool,
}

fn text(object: &DynamicObject, pointer: &str) -> Option<Box<str>> {
    object
        .data
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(Box::from)
}

impl FluxFacts {
    /// The facts of `object` of `kind`.
    pub fn of(kind: ChildKind, object: &DynamicObject) -> FluxFacts {
        let status = object.data.get("status");
        let generation = object.metadata.generation;
        let observed = |v: &Value, g: i64| {
            v.get("observedGeneration")
                .and_then(Value::as_i64)
                .is_some_and(|o| o >= g)
        };
        let started = generation.is_none_or(|g| {
            status.is_some_and(|s| observed(s, g))
                || object
                    .data
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| cs.iter().any(|c| observed(c, g)))
        });
        let deployed_tag = match kind {
            ChildKind::Kustomization => text(object, "/spec/postBuild/substitute/image_tag"),
            ChildKind::HelmRelease => text(object, "/spec/values/ephemeral/image_tag"),
            ChildKind::ImagePolicy | ChildKind::GitRepository => None,
        };
        let policy = (kind == ChildKind::ImagePolicy).then(|| {
            let observed = status
                .and_then(|s| s.get("observedGeneration"))
                .and_then(Value::as_i64);
            Box::new(PolicyFacts {
                pattern: text(object, "/spec/filterTags/pattern"),
                repository: text(object, "/spec/imageRepositoryRef/name"),
                repository_namespace: text(object, "/spec/imageRepositoryRef/namespace"),
                tag: text(object, "/status/latestRef/tag"),
                current: match (generation, observed) {
                    (Some(g), Some(o)) => o >= g,
                    (None, _) => true,
                    (Some(_), None) => false,
                },
            })
        });
        FluxFacts {
            app: object
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(APP_LABEL))
                .map(|a| Box::from(a.as_str())),
            status: FluxStatus::read(status),
            started,
            suspended: object.data.pointer("/spec/suspend") == Some(&Value::Bool(true)),
            deployed_tag,
            policy,
        }
    }
}

/// The name of an expanded object.
pub fn name_of(object: &FluxObject) -> &str {
    object.name()
}

/// The existing children this Environment (`uid`) controls that the
/// expansion no longer wants. Anything not controlled by `uid` is never
/// returned, whatever its labels say.
pub fn prune_set<'a>(
    existing: &'a [Existing],
    desired: &[FluxObject],
    uid: &str,
) -> Vec<&'a Existing> {
    let wanted: BTreeSet<(ChildKind, &str)> = desired
        .iter()
        .map(|o| (ChildKind::of(o), name_of(o)))
        .collect();
    existing
        .iter()
        .filter(|e| e.is_controlled_by(uid))
        .filter(|e| !wanted.contains(&(e.kind, e.name())))
        .collect()
}

/// What Flux says about a child: its `Ready` condition, trusted only when
/// Flux has observed the child's current generation (the core's one reader,
/// which `describe` uses too).
pub use ephemeral_core::ready::Health;

/// Flux's verdict on `child`.
pub fn health(child: &Existing) -> Health {
    child.facts.status.health(child.generation)
}

/// The verdict Flux last gave on `child`, whatever generation it was for:
/// Flux does not reconcile a suspended object, so its Ready condition stays
/// as it last was while its generation moved on (suspending it was a spec
/// change).
pub fn last_verdict(child: &Existing) -> Health {
    child.facts.status.last_verdict()
}

/// The image tag an existing app child deploys.
pub fn deployed_tag(child: &Existing) -> Option<String> {
    child.facts.deployed_tag.as_deref().map(str::to_owned)
}

/// Whether `tag` is a build `<prefix>-<hex sha>-<digits>` of the prefix whose
/// ImagePolicy pattern is `pattern` (the core's build-tag grammar).
fn tag_fits(tag: &str, pattern: &str) -> bool {
    BuildTag::parse(tag).is_some_and(|build| build.fits(pattern))
}

/// The tag an existing ImagePolicy resolved, if it is the policy the
/// expansion wants (same repository and pattern) and the tag is one of its
/// builds: Flux resolved it for the current generation, or the tag fits the
/// pattern (a spec change that kept the pattern does not drop the tag while
/// Flux catches up). A tag resolved for an older prefix is never carried over.
pub fn resolved_tag(existing: &Existing, desired: &ImagePolicy) -> Option<String> {
    let policy = existing.facts.policy.as_deref()?;
    let repo = &desired.spec.image_repository_ref;
    let same = policy.pattern.as_deref() == Some(desired.spec.filter_tags.pattern.as_str())
        && policy.repository.as_deref() == Some(repo.name.as_str())
        && policy.repository_namespace.as_deref() == Some(repo.namespace.as_str());
    if !same {
        return None;
    }
    policy
        .tag
        .as_deref()
        .filter(|t| policy.current || tag_fits(t, &desired.spec.filter_tags.pattern))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use ephemeral_core::flux::Kustomization;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use serde_json::json;

    use super::*;

    fn dynamic(kind: ChildKind, name: &str, controller_uid: Option<&str>, data: Value) -> Existing {
        let mut object = DynamicObject::new(name, &kind.api_resource()).within("shop");
        object.metadata.owner_references = controller_uid.map(|uid| {
            vec![OwnerReference {
                api_version: "ephemeral.io/v1alpha1".into(),
                kind: "Environment".into(),
                name: "alice".into(),
                uid: uid.into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]
        });
        object.metadata.generation = Some(2);
        object.data = data;
        Existing::of::<Flux>(kind, &object)
    }

    fn policy(pattern: &str) -> ImagePolicy {
        let mut p = ImagePolicy::new("alice-checkout", Default::default());
        p.spec.filter_tags.pattern = pattern.into();
        p.spec.image_repository_ref.name = "checkout".into();
        p.spec.image_repository_ref.namespace = "flux-system".into();
        p
    }

    fn policy_data(pattern: &str, observed: i64, tag: &str) -> Value {
        json!({
            "spec": {"filterTags": {"pattern": pattern}, "imageRepositoryRef": {"name": "checkout", "namespace": "flux-system"}},
            "status": {"observedGeneration": observed, "latestRef": {"name": "reg/checkout", "tag": tag}}
        })
    }

    #[test]
    fn only_controlled_unwanted_children_are_pruned() {
        let desired = vec![FluxObject::Kustomization(Kustomization::new(
            "alice-checkout",
            Default::default(),
        ))];
        let existing = vec![
            dynamic(
                ChildKind::Kustomization,
                "alice-checkout",
                Some("u1"),
                json!({}),
            ),
            dynamic(ChildKind::Kustomization, "alice-web", Some("u1"), json!({})),
            dynamic(
                ChildKind::ImagePolicy,
                "alice-checkout",
                Some("u1"),
                json!({}),
            ),
            dynamic(
                ChildKind::Kustomization,
                "alice-other",
                Some("u2"),
                json!({}),
            ),
            dynamic(ChildKind::HelmRelease, "alice-nobody", None, json!({})),
        ];
        let pruned: Vec<String> = prune_set(&existing, &desired, "u1")
            .iter()
            .map(|e| e.display_name())
            .collect();
        assert_eq!(
            pruned,
            ["Kustomization/alice-web", "ImagePolicy/alice-checkout"]
        );
    }

    #[test]
    fn a_non_controller_owner_reference_does_not_count() {
        let mut object = DynamicObject::new("x", &ChildKind::Kustomization.api_resource());
        object.metadata.owner_references = Some(vec![OwnerReference {
            uid: "u1".into(),
            controller: None,
            ..Default::default()
        }]);
        let e = Existing::of::<Flux>(ChildKind::Kustomization, &object);
        assert!(!e.is_controlled_by("u1"));
        assert!(prune_set(std::slice::from_ref(&e), &[], "u1").is_empty());
    }

    #[test]
    fn health_follows_the_ready_condition_of_the_current_generation() {
        let ready = |status: &str, observed: i64| {
            json!({"status": {"observedGeneration": observed, "conditions": [
                {"type": "Reconciling", "status": "False", "reason": "x"},
                {"type": "Ready", "status": status, "reason": "ReconciliationSucceeded", "message": "Applied revision: main@sha1:abc"}
            ]}})
        };
        let h = health(&dynamic(
            ChildKind::Kustomization,
            "k",
            None,
            ready("True", 2),
        ));
        assert_eq!(
            h,
            Health {
                ready: true,
                reason: Some("ReconciliationSucceeded".into()),
                message: Some("Applied revision: main@sha1:abc".into()),
                rerunning: false,
            }
        );
        let rerun = health(&dynamic(
            ChildKind::Kustomization,
            "k",
            None,
            json!({"status": {"observedGeneration": 2, "conditions": [
                    {"type": "Ready", "status": "Unknown", "reason": "Progressing", "message": "Reconciliation in progress"}]}}),
        ));
        assert!(rerun.rerunning && !rerun.ready);
        let h = health(&dynamic(
            ChildKind::Kustomization,
            "k",
            None,
            ready("False", 2),
        ));
        assert!(!h.ready);
        let stale = health(&dynamic(
            ChildKind::Kustomization,
            "k",
            None,
            ready("True", 1),
        ));
        assert!(!stale.ready, "Ready for an older generation is not ready");
        assert_eq!(stale.reason.as_deref(), Some("Progressing"));
        let last = last_verdict(&dynamic(
            ChildKind::Kustomization,
            "k",
            None,
            ready("True", 1),
        ));
        assert!(last.ready, "a suspended object keeps its last verdict");
        assert_eq!(last.reason.as_deref(), Some("ReconciliationSucceeded"));
        let none = health(&dynamic(ChildKind::HelmRelease, "h", None, json!({})));
        assert!(!none.ready);
        assert_eq!(
            none.message.as_deref(),
            Some("waiting for Flux to report a Ready condition")
        );
    }

    #[test]
    fn a_tag_counts_only_for_the_wanted_policy_at_its_current_generation() {
        let p = "^main-[a-fA-F0-9]+-(?P<ts>[0-9]+)$";
        let good = dynamic(
            ChildKind::ImagePolicy,
            "alice-checkout",
            Some("u"),
            policy_data(p, 2, "main-abc-1"),
        );
        assert_eq!(
            resolved_tag(&good, &policy(p)).as_deref(),
            Some("main-abc-1")
        );
        let other = "^feature-[a-fA-F0-9]+-(?P<ts>[0-9]+)$";
        assert_eq!(resolved_tag(&good, &policy(other)), None, "prefix changed");
        // Flux has not observed the current generation (a spec change that
        // kept the pattern): a build of the prefix is kept meanwhile...
        let behind = dynamic(
            ChildKind::ImagePolicy,
            "alice-checkout",
            Some("u"),
            policy_data(p, 1, "main-abc-1"),
        );
        assert_eq!(
            resolved_tag(&behind, &policy(p)).as_deref(),
            Some("main-abc-1")
        );
        // ...but not a tag of another prefix left over from before the
        // pattern changed, nor anything that is not a build.
        for tag in [
            "feature-abc-1",
            "main-xyz-1",
            "main-abc-",
            "main-abc",
            "main",
        ] {
            let stale = dynamic(
                ChildKind::ImagePolicy,
                "alice-checkout",
                Some("u"),
                policy_data(p, 1, tag),
            );
            assert_eq!(resolved_tag(&stale, &policy(p)), None, "{tag}");
        }
        let dashed = "^feature-x-[a-fA-F0-9]+-(?P<ts>[0-9]+)$";
        let behind = dynamic(
            ChildKind::ImagePolicy,
            "alice-checkout",
            Some("u"),
            policy_data(dashed, 1, "feature-x-0a1b-1763712000"),
        );
        assert_eq!(
            resolved_tag(&behind, &policy(dashed)).as_deref(),
            Some("feature-x-0a1b-1763712000")
        );
        let mut moved = policy(p);
        moved.spec.image_repository_ref.namespace = "images".into();
        assert_eq!(resolved_tag(&good, &moved), None, "repository changed");
    }

    #[test]
    fn the_deployed_tag_is_read_where_expansion_writes_it() {
        let k = dynamic(
            ChildKind::Kustomization,
            "k",
            None,
            json!({"spec": {"postBuild": {"substitute": {"owner": "alice", "image_tag": "main-abc-1"}}}}),
        );
        assert_eq!(deployed_tag(&k).as_deref(), Some("main-abc-1"));
        let h = dynamic(
            ChildKind::HelmRelease,
            "h",
            None,
            json!({"spec": {"values": {"image": {"tag": "x"}, "ephemeral": {"image_tag": "main-def-2"}}}}),
        );
        assert_eq!(deployed_tag(&h).as_deref(), Some("main-def-2"));
        let untagged = dynamic(
            ChildKind::Kustomization,
            "k",
            None,
            json!({"spec": {"postBuild": {"substitute": {"owner": "alice"}}}}),
        );
        assert_eq!(deployed_tag(&untagged), None);
    }

    #[test]
    fn kinds_map_to_their_apis() {
        let ar = ChildKind::HelmRelease.api_resource();
        assert_eq!(
            (ar.group.as_str(), ar.version.as_str(), ar.plural.as_str()),
            ("helm.toolkit.fluxcd.io", "v2", "helmreleases")
        );
        let ar = ChildKind::ImagePolicy.api_resource();
        assert_eq!(ar.plural, "imagepolicies");
        assert!(ChildKind::Kustomization.is_app() && !ChildKind::ImagePolicy.is_app());
    }

    #[test]
    fn the_index_keeps_what_the_controller_reads_of_a_stored_child() {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "alice-web", "namespace": "shop", "uid": "k1", "generation": 2,
                         "labels": {"ephemeral.io/app": "web"},
                         "ownerReferences": [{"apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
                                              "name": "alice", "uid": "u1", "controller": true}],
                         "managedFields": [
                {"manager": FIELD_MANAGER, "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:path": {}}}},
                {"manager": "kustomize-controller", "operation": "Update", "subresource": "status", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}
            ]},
            "spec": {"path": "./apps/web", "suspend": true, "postBuild": {"substitute": {"image_tag": "main-abc1-17"}}},
            "status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded"}],
                       "inventory": {"entries": [{"id": "x", "v": "v1"}]}, "lastAppliedRevision": "main@sha1:abc"}
        }))
        .unwrap();
        let child = Existing::of::<Flux>(ChildKind::Kustomization, &object);
        assert_eq!(child.display_name(), "Kustomization/alice-web");
        assert_eq!(
            (child.uid.as_deref(), child.generation),
            (Some("k1"), Some(2))
        );
        assert!(child.is_controlled_by("u1") && !child.is_controlled_by("u2"));
        assert_eq!(
            health(&child),
            ephemeral_core::ready::health(Some(2), object.data.get("status"))
        );
        assert!(health(&child).ready);
        assert!(child.facts.started && child.facts.suspended);
        assert_eq!(child.facts.app.as_deref(), Some("web"));
        assert_eq!(deployed_tag(&child).as_deref(), Some("main-abc1-17"));
        assert!(child.manages(&json!({"spec": {"path": "./apps/web"}})));
        assert!(!child.manages(&json!({"spec": {"path": "./apps/other"}})));
    }
}
