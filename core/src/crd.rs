//! The CustomResourceDefinitions of this API, as `manifests/crds/` carries them.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::api::{AppBundle, AppTemplate, Environment};
use crate::set::EnvironmentSet;

/// The four CRDs: Environment, AppTemplate, AppBundle, EnvironmentSet.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        Environment::crd(),
        AppTemplate::crd(),
        AppBundle::crd(),
        EnvironmentSet::crd(),
    ]
}

/// File name under `manifests/crds/` for a CRD.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or_default())
}
