//! The children of an Environment as the controller sees them: what kind each
//! is, whether this Environment controls it, what Flux says about it, and
//! which existing ones are no longer wanted. Pure: objects in, decisions out.

use std::collections::BTreeSet;

use kube::api::DynamicObject;
use serde_json::Value;

use ephemeral_core::flux::{FluxObject, ImagePolicy};
use ephemeral_core::prefix::BuildTag;

/// The field manager of every server-side apply the controller makes.
pub const FIELD_MANAGER: &str = "ephemeral";

/// The four Flux kinds an Environment expands into: the core's one kind
/// table (kind, apiVersion, plural), shared with the plugin.
pub use ephemeral_core::kinds::FluxKind as ChildKind;

/// An existing child, as listed or returned by an apply.
#[derive(Clone, Debug)]
pub struct Existing {
    /// Its kind.
    pub kind: ChildKind,
    /// The object.
    pub object: DynamicObject,
}

impl Existing {
    /// `Kind/name`, for messages and events.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name())
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }
}

/// The name of an expanded object.
pub fn name_of(object: &FluxObject) -> &str {
    object.name()
}

/// Whether `object`'s controlling owner reference points at the object with `uid`.
pub fn is_controlled_by(object: &DynamicObject, uid: &str) -> bool {
    object
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == uid)
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
        .filter(|e| is_controlled_by(&e.object, uid))
        .filter(|e| !wanted.contains(&(e.kind, e.name())))
        .collect()
}

/// Whether the stored child already holds exactly the fields of `desired`
/// (an apply body of this field manager), so applying it would change
/// nothing: every field of `desired` has its value in `stored` (lists
/// compared item by item), and every field the stored managed fields of
/// [`FIELD_MANAGER`]'s apply name is still
/// in `desired` (a field dropped from the expansion must be applied away).
/// Without that managed-fields entry the answer is no. `apiVersion` and
/// `kind` are not compared (list items may lack them).
pub fn manages(stored: &DynamicObject, desired: &Value) -> bool {
    let Some(owned) = stored
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| {
            m.manager.as_deref() == Some(FIELD_MANAGER)
                && m.operation.as_deref() == Some("Apply")
                && m.subresource.as_deref().unwrap_or_default().is_empty()
        })
        .and_then(|m| m.fields_v1.as_ref())
    else {
        return false;
    };
    let Ok(mut current) = serde_json::to_value(stored) else {
        return false;
    };
    let mut desired = desired.clone();
    for value in [&mut current, &mut desired] {
        if let Some(map) = value.as_object_mut() {
            map.remove("apiVersion");
            map.remove("kind");
        }
    }
    covers(&current, &desired) && owned_within(&owned.0, &desired)
}

/// Every field of `desired` has its value in `stored`.
fn covers(stored: &Value, desired: &Value) -> bool {
    match (stored, desired) {
        (_, Value::Null) => true,
        (Value::Object(s), Value::Object(d)) => d.iter().all(|(k, dv)| match s.get(k) {
            Some(sv) => covers(sv, dv),
            None => dv.is_null(),
        }),
        (Value::Array(s), Value::Array(d)) => {
            s.len() == d.len() && s.iter().zip(d).all(|(sv, dv)| covers(sv, dv))
        }
        (s, d) => s == d,
    }
}

/// Every field named in the managed fields `owned` (fieldsV1: `f:<name>`
/// keys; list items, `k:`/`v:`/`i:`, are left to [`covers`]) is in `desired`.
fn owned_within(owned: &Value, desired: &Value) -> bool {
    let (Some(owned), Some(desired)) = (owned.as_object(), desired.as_object()) else {
        return true;
    };
    owned.iter().all(|(key, sub)| match key.strip_prefix("f:") {
        Some(field) => match desired.get(field) {
            None | Some(Value::Null) => false,
            Some(d) => owned_within(sub, d),
        },
        None => true,
    })
}

/// What Flux says about a child: its `Ready` condition, trusted only when
/// Flux has observed the child's current generation (the core's one reader,
/// which `describe` uses too).
pub use ephemeral_core::ready::Health;

fn status_str<'a>(object: &'a DynamicObject, pointer: &str) -> Option<&'a str> {
    object.data.pointer(pointer).and_then(Value::as_str)
}

/// Flux's verdict on `object`.
pub fn health(object: &DynamicObject) -> Health {
    ephemeral_core::ready::health(object.metadata.generation, object.data.get("status"))
}

/// Whether Flux has started reconciling the current generation of `object`
/// (its status, or one of its conditions, observed it): from then on,
/// suspending it does not stop that run.
pub fn flux_started(object: &DynamicObject) -> bool {
    let Some(generation) = object.metadata.generation else {
        return true;
    };
    let observed = |v: &Value| {
        v.get("observedGeneration")
            .and_then(Value::as_i64)
            .is_some_and(|g| g >= generation)
    };
    object.data.get("status").is_some_and(observed)
        || object
            .data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(observed))
}

/// The verdict Flux last gave on `object`, whatever generation it was for:
/// Flux does not reconcile a suspended object, so its Ready condition stays
/// as it last was while its generation moved on (suspending it was a spec
/// change).
pub fn last_verdict(object: &DynamicObject) -> Health {
    ephemeral_core::ready::last_verdict(object.data.get("status"))
}

/// The `status` fields the controller reads of a child (Ready and
/// observedGeneration for health, `latestRef` for a policy's tag).
const STATUS_READ: [&str; 3] = ["observedGeneration", "conditions", "latestRef"];

/// Trims a watched child to what the controller reads before it goes into
/// the watch cache: our own apply's managed-fields entry (for [`manages`])
/// and the status fields in `STATUS_READ`. Flux's inventory and history and
/// its controllers' managed fields are most of a stored child's size.
pub fn trim_for_cache(object: &mut DynamicObject) {
    if let Some(entries) = &mut object.metadata.managed_fields {
        entries.retain(|m| {
            m.manager.as_deref() == Some(FIELD_MANAGER)
                && m.operation.as_deref() == Some("Apply")
                && m.subresource.as_deref().unwrap_or_default().is_empty()
        });
    }
    if let Some(Value::Object(status)) = object.data.get_mut("status") {
        status.retain(|k, _| STATUS_READ.contains(&k.as_str()));
    }
}

/// The image tag an existing app child deploys: its Kustomization's
/// `postBuild.substitute.image_tag`, or its HelmRelease's
/// `values.ephemeral.image_tag`.
pub fn deployed_tag(child: &Existing) -> Option<String> {
    let pointer = match child.kind {
        ChildKind::Kustomization => "/spec/postBuild/substitute/image_tag",
        ChildKind::HelmRelease => "/spec/values/ephemeral/image_tag",
        ChildKind::ImagePolicy | ChildKind::GitRepository => return None,
    };
    status_str(&child.object, pointer)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
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
pub fn resolved_tag(existing: &DynamicObject, desired: &ImagePolicy) -> Option<String> {
    let spec = existing.data.get("spec")?;
    let same_pattern = spec.pointer("/filterTags/pattern").and_then(Value::as_str)
        == Some(desired.spec.filter_tags.pattern.as_str());
    let repo = &desired.spec.image_repository_ref;
    let same_repo = spec
        .pointer("/imageRepositoryRef/name")
        .and_then(Value::as_str)
        == Some(repo.name.as_str())
        && spec
            .pointer("/imageRepositoryRef/namespace")
            .and_then(Value::as_str)
            == Some(repo.namespace.as_str());
    let observed = existing
        .data
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    let current = match (existing.metadata.generation, observed) {
        (Some(g), Some(o)) => o >= g,
        (None, _) => true,
        (Some(_), None) => false,
    };
    if !(same_pattern && same_repo) {
        return None;
    }
    status_str(existing, "/status/latestRef/tag")
        .filter(|t| !t.is_empty())
        .filter(|t| current || tag_fits(t, &desired.spec.filter_tags.pattern))
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
        Existing { kind, object }
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
        let mut e = dynamic(ChildKind::Kustomization, "x", Some("u1"), json!({}));
        e.object.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        assert!(!is_controlled_by(&e.object, "u1"));
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
        let h = health(&dynamic(ChildKind::Kustomization, "k", None, ready("True", 2)).object);
        assert_eq!(
            h,
            Health {
                ready: true,
                reason: Some("ReconciliationSucceeded".into()),
                message: Some("Applied revision: main@sha1:abc".into()),
                rerunning: false,
            }
        );
        let rerun = health(
            &dynamic(
                ChildKind::Kustomization,
                "k",
                None,
                json!({"status": {"observedGeneration": 2, "conditions": [
                    {"type": "Ready", "status": "Unknown", "reason": "Progressing", "message": "Reconciliation in progress"}]}}),
            )
            .object,
        );
        assert!(rerun.rerunning && !rerun.ready);
        let h = health(&dynamic(ChildKind::Kustomization, "k", None, ready("False", 2)).object);
        assert!(!h.ready);
        let stale = health(&dynamic(ChildKind::Kustomization, "k", None, ready("True", 1)).object);
        assert!(!stale.ready, "Ready for an older generation is not ready");
        assert_eq!(stale.reason.as_deref(), Some("Progressing"));
        let last =
            last_verdict(&dynamic(ChildKind::Kustomization, "k", None, ready("True", 1)).object);
        assert!(last.ready, "a suspended object keeps its last verdict");
        assert_eq!(last.reason.as_deref(), Some("ReconciliationSucceeded"));
        let none = health(&dynamic(ChildKind::HelmRelease, "h", None, json!({})).object);
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
            resolved_tag(&good.object, &policy(p)).as_deref(),
            Some("main-abc-1")
        );
        let other = "^feature-[a-fA-F0-9]+-(?P<ts>[0-9]+)$";
        assert_eq!(
            resolved_tag(&good.object, &policy(other)),
            None,
            "prefix changed"
        );
        // Flux has not observed the current generation (a spec change that
        // kept the pattern): a build of the prefix is kept meanwhile...
        let behind = dynamic(
            ChildKind::ImagePolicy,
            "alice-checkout",
            Some("u"),
            policy_data(p, 1, "main-abc-1"),
        );
        assert_eq!(
            resolved_tag(&behind.object, &policy(p)).as_deref(),
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
            assert_eq!(resolved_tag(&stale.object, &policy(p)), None, "{tag}");
        }
        let dashed = "^feature-x-[a-fA-F0-9]+-(?P<ts>[0-9]+)$";
        let behind = dynamic(
            ChildKind::ImagePolicy,
            "alice-checkout",
            Some("u"),
            policy_data(dashed, 1, "feature-x-0a1b-1763712000"),
        );
        assert_eq!(
            resolved_tag(&behind.object, &policy(dashed)).as_deref(),
            Some("feature-x-0a1b-1763712000")
        );
        let mut moved = policy(p);
        moved.spec.image_repository_ref.namespace = "images".into();
        assert_eq!(
            resolved_tag(&good.object, &moved),
            None,
            "repository changed"
        );
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
    fn the_watch_cache_keeps_what_the_controller_reads() {
        let mut object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": "alice-web", "namespace": "shop", "generation": 2, "managedFields": [
                {"manager": FIELD_MANAGER, "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}},
                {"manager": "kustomize-controller", "operation": "Update", "subresource": "status", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}},
                {"manager": FIELD_MANAGER, "operation": "Apply", "subresource": "status", "fieldsType": "FieldsV1", "fieldsV1": {}}
            ]},
            "spec": {"path": "./apps/web", "postBuild": {"substitute": {"image_tag": "main-abc1-17"}}},
            "status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}],
                       "inventory": {"entries": [{"id": "x", "v": "v1"}]}, "history": [{"digest": "sha256:1"}],
                       "lastAppliedRevision": "main@sha1:abc"}
        }))
        .unwrap();
        let health_before = health(&object);
        trim_for_cache(&mut object);
        let managed = object.metadata.managed_fields.as_ref().unwrap();
        assert_eq!(managed.len(), 1);
        assert_eq!(managed[0].manager.as_deref(), Some(FIELD_MANAGER));
        assert_eq!(
            object.data["status"],
            json!({"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]})
        );
        assert_eq!(health(&object), health_before);
        assert_eq!(
            object.data["spec"]["postBuild"]["substitute"]["image_tag"],
            "main-abc1-17"
        );
    }
}
