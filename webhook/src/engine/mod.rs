//! The owner/children engine: what every controller here does that owns
//! children it applies with server-side apply and prunes (observe, apply
//! only what differs, prune with a uid precondition, write the owner's
//! status), generic over "an owner and the children it wants".
//!
//! - [`Family`]: one controller's children: their kinds ([`Kind`]), the
//!   label naming the owner, the labels every child carries, and the facts
//!   its plan reads of a child ([`Family::Facts`]).
//! - [`Child`]: a child as the plan sees it: identity, controller, our
//!   managed fields' digest, the family's facts; never the whole object.
//! - [`index`]: the children of every owner, fed by the controller's
//!   watches, keyed by (namespace, owner label), so a reconcile reads its
//!   own children without scanning anyone else's.
//! - [`managed`]: "would applying this body change anything?" as a digest.
//! - [`api`]: the API calls: observe (index, or a LIST while a kind's watch
//!   has not synced), the lookup of a wanted child the index lacks, apply,
//!   prune, status write, and the watch that feeds the index and triggers
//!   the owner's reconciles.
//! - [`execute`]: carries out a plan's [`execute::Apply`]s (each with its
//!   body and the child as observed) and prunes: the lookup by name of the
//!   wanted children not observed, the applies, then the prunes.
//!
//! The plan (what is wanted with which fields, what may be pruned, the
//! status) stays the controller's own, pure, and reads only [`Child`]ren:
//! a controller with the engine is a [`Family`], a pure plan producing
//! `Apply`s and a prune list, and its status.
//!
//! # Users
//!
//! - The Environment controller ([`crate::controller`]): owner
//!   `Environment`, children the four Flux kinds (`DynamicObject`s), owner
//!   label `ephemeral.io/environment`, labels `app.kubernetes.io/managed-by:
//!   ephemeral`, facts: Flux's Ready condition, the tags, suspension.
//! - The `EnvironmentSet` controller fits the same shape: owner
//!   `EnvironmentSet`, one child kind (a `Kind` whose `api_resource` is
//!   `ApiResource::erase::<Environment>(&())`), owner label `ephemeral.io/set`,
//!   facts read from the Environment's status (Ready, the resolved image tag
//!   of the app following the PR's branch). Typed `Environment`s go through
//!   the engine as `DynamicObject`s: the watch is a dynamic watch of that
//!   resource, an apply body is `serde_json::to_value(&environment)`, and
//!   its facts are read with `DynamicObject::try_parse` or from `data`.
//!   Deletion happens only on its plan's say-so: the engine never prunes by
//!   itself; [`api::prune`] takes the child the plan chose and sends its uid
//!   as a precondition.

pub mod api;
pub mod execute;
pub mod index;
pub mod managed;

use std::fmt::Debug;
use std::hash::Hash;

use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject};
use serde_json::Value;

pub use index::ChildIndex;

/// The field manager of every server-side apply the controllers make.
pub const FIELD_MANAGER: &str = "ephemeral";

/// A kind of child.
pub trait Kind: Copy + Ord + Hash + Debug + Send + Sync + 'static {
    /// Its API resource (group, version, plural).
    fn api_resource(self) -> ApiResource;
    /// Its `kind`, for messages.
    fn as_str(self) -> &'static str;
}

/// One controller's children.
pub trait Family: Send + Sync + 'static {
    /// The child kinds.
    type Kind: Kind;
    /// What the plan reads of a child beyond what every child has.
    type Facts: Clone + Debug + Send + Sync + 'static;
    /// The label whose value is the owner's name.
    const OWNER_LABEL: &'static str;
    /// Labels every child carries; the watches select on them.
    const LABELS: &'static [(&'static str, &'static str)];
    /// Every child kind, one watch each.
    fn kinds() -> &'static [Self::Kind];
    /// The facts of `object`.
    fn facts(kind: Self::Kind, object: &DynamicObject) -> Self::Facts;

    /// The label selector of the watches: the owner label is set, and
    /// every label of [`Family::LABELS`].
    fn selector() -> String {
        let mut selector = Self::OWNER_LABEL.to_owned();
        for (k, v) in Self::LABELS {
            selector.push_str(&format!(",{k}={v}"));
        }
        selector
    }

    /// The label selector of one owner's children.
    fn owner_selector(owner: &str) -> String {
        let mut selector = format!("{}={owner}", Self::OWNER_LABEL);
        for (k, v) in Self::LABELS {
            selector.push_str(&format!(",{k}={v}"));
        }
        selector
    }

    /// The owner named by `object`'s labels, if it carries every label of
    /// [`Family::LABELS`] (else it is not ours, whatever it says).
    fn owner_of(object: &DynamicObject) -> Option<&str> {
        let labels = object.labels();
        Self::LABELS
            .iter()
            .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            .then(|| labels.get(Self::OWNER_LABEL).map(String::as_str))
            .flatten()
    }
}

/// A child as the plan sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Child<K, T> {
    /// Its kind.
    pub kind: K,
    /// Its name.
    pub name: Box<str>,
    /// Its uid (the precondition of its DELETE).
    pub uid: Option<Box<str>>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The uid its controlling owner reference (`controller: true`) points at.
    pub controller: Option<Box<str>>,
    /// What it holds of the fields our apply owns ([`managed`]).
    pub managed: Option<managed::Digest>,
    /// The family's facts.
    pub facts: T,
}

/// A child of family `F`.
pub type ChildOf<F> = Child<<F as Family>::Kind, <F as Family>::Facts>;

impl<K: Kind, T> Child<K, T> {
    /// Summarises `object` of `kind` for family `F`.
    pub fn of<F: Family<Kind = K, Facts = T>>(kind: K, object: &DynamicObject) -> Self {
        let text = |s: Option<&String>| s.map(|s| Box::from(s.as_str()));
        Child {
            kind,
            name: text(object.metadata.name.as_ref()).unwrap_or_default(),
            uid: text(object.metadata.uid.as_ref()),
            generation: object.metadata.generation,
            controller: object
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|r| r.controller == Some(true))
                .map(|r| Box::from(r.uid.as_str())),
            managed: managed::stored(object),
            facts: F::facts(kind, object),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `Kind/name`, for messages and Events.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }

    /// Whether its controlling owner reference points at the object with `uid`.
    pub fn is_controlled_by(&self, uid: &str) -> bool {
        self.controller.as_deref() == Some(uid)
    }

    /// Whether it already holds exactly the fields of `desired` (an apply
    /// body of [`FIELD_MANAGER`]), so applying it would change nothing.
    pub fn manages(&self, desired: &Value) -> bool {
        self.managed == Some(managed::desired(desired))
    }
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

/// Why an engine call or a reconcile failed. Nothing is pruned or deleted
/// after a failure.
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
    /// The owner lacks a field every stored object has.
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
            } => match s.code {
                409 => "api_conflict",
                403 => "api_forbidden",
                404 => "api_not_found",
                _ => "api",
            },
            Error::Api { .. } => "transport",
            Error::InvalidObject(_) => "invalid_object",
        }
    }
}

/// Wraps a `kube::Error` with what was being done.
pub fn api_error(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Api { action, source }
}

/// Whether `e` is an API answer with HTTP status `code`.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

#[cfg(test)]
mod tests {
    //! The `EnvironmentSet` shape: typed `Environment` children, labelled
    //! `ephemeral.io/set=<set>`, through the same engine.

    use ephemeral_core::api::Environment;
    use ephemeral_core::set::SET_LABEL;
    use kube::Resource;
    use serde_json::json;

    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
    struct Environments;

    impl Kind for Environments {
        fn api_resource(self) -> ApiResource {
            ApiResource::erase::<Environment>(&())
        }
        fn as_str(self) -> &'static str {
            "Environment"
        }
    }

    /// A set's children: Environments; facts: their Ready condition's status.
    struct SetChildren;

    impl Family for SetChildren {
        type Kind = Environments;
        type Facts = Option<String>;
        const OWNER_LABEL: &'static str = SET_LABEL;
        const LABELS: &'static [(&'static str, &'static str)] = &[];
        fn kinds() -> &'static [Environments] {
            &[Environments]
        }
        fn facts(_: Environments, object: &DynamicObject) -> Option<String> {
            let env: Environment = object.clone().try_parse().ok()?;
            env.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| c.status)
        }
    }

    #[test]
    fn typed_environment_children_of_a_set_fit_the_engine() {
        assert_eq!(SetChildren::selector(), "ephemeral.io/set");
        assert_eq!(
            SetChildren::owner_selector("shop-prs"),
            "ephemeral.io/set=shop-prs"
        );
        // What the set's plan wants, typed; applied as its JSON.
        let wanted: Environment = serde_json::from_value(json!({
            "apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
            "metadata": {"name": "shop-prs-pr-7", "namespace": "previews",
                         "labels": {SET_LABEL: "shop-prs", "ephemeral.io/pull-request": "7"}},
            "spec": {"apps": [{"name": "shop", "branch": "feature/x"}]}
        }))
        .unwrap();
        let body = serde_json::to_value(&wanted).unwrap();
        // As the API server stores it after our apply, with a status.
        let mut stored = body.clone();
        stored["metadata"]["uid"] = json!("env-uid");
        stored["metadata"]["ownerReferences"] = json!([{"apiVersion": "ephemeral.io/v1alpha1",
            "kind": "EnvironmentSet", "name": "shop-prs", "uid": "set-uid", "controller": true}]);
        stored["metadata"]["managedFields"] = json!([{"manager": FIELD_MANAGER, "operation": "Apply",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:ephemeral.io/set": {},
            "f:ephemeral.io/pull-request": {}}}, "f:spec": {"f:apps": {}}}}]);
        stored["status"] = json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
            "message": "", "lastTransitionTime": "2026-11-21T09:00:00Z"}]});
        let object: DynamicObject = serde_json::from_value(stored).unwrap();
        assert_eq!(
            object.types.as_ref().unwrap().kind,
            Environment::kind(&()).as_ref()
        );
        let index = ChildIndex::<SetChildren>::default();
        index.apply(Environments, &kube::runtime::watcher::Event::Apply(object));
        let children = index.children(Environments, "previews", "shop-prs");
        assert_eq!(children.len(), 1);
        let child = &children[0];
        assert_eq!(child.display_name(), "Environment/shop-prs-pr-7");
        assert!(child.is_controlled_by("set-uid"));
        assert_eq!(child.facts.as_deref(), Some("True"));
        assert!(child.manages(&body), "nothing to apply");
        let mut moved = wanted.clone();
        moved.spec.apps[0].branch = Some("feature/y".into());
        assert!(!child.manages(&serde_json::to_value(&moved).unwrap()));
    }
}
