//! A set's children for the [engine](crate::engine): Environments labelled
//! `ephemeral.io/set=<set>`, each kept whole (typed) as its facts, since the
//! set's plan reads their metadata and status.

use std::sync::Arc;

use kube::Resource;
use kube::api::{ApiResource, DynamicObject, TypeMeta};

use ephemeral_core::api::Environment;
use ephemeral_core::set::SET_LABEL;

use crate::engine::{ChildIndex, Family, Kind};

/// The one kind of child a set has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Environments;

impl Kind for Environments {
    fn api_resource(self) -> ApiResource {
        ApiResource::erase::<Environment>(&())
    }
    fn as_str(self) -> &'static str {
        "Environment"
    }
}

/// The Environments of the sets: owner label `ephemeral.io/set`, no fixed
/// labels (an Environment carries whatever its template adds).
#[derive(Debug)]
pub struct SetEnvironments;

impl Family for SetEnvironments {
    type Kind = Environments;
    /// The Environment as stored; `None` when it does not parse as one (it
    /// is then seen by name only, and never touched by the plan).
    type Facts = Option<Arc<Environment>>;
    const OWNER_LABEL: &'static str = SET_LABEL;
    const LABELS: &'static [(&'static str, &'static str)] = &[];
    fn kinds() -> &'static [Environments] {
        &[Environments]
    }
    fn facts(_: Environments, object: &DynamicObject) -> Self::Facts {
        let mut object = object.clone();
        // A list's items may come without their type; they are Environments.
        object.types.get_or_insert_with(|| TypeMeta {
            api_version: Environment::api_version(&()).into_owned(),
            kind: Environment::kind(&()).into_owned(),
        });
        object.try_parse::<Environment>().ok().map(Arc::new)
    }
}

/// The sets' Environments as the controller's watch reports them.
pub type SetChildren = ChildIndex<SetEnvironments>;
