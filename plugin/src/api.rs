//! Handles on the API: which resources, with which field manager.

use ephemeral_core::kinds::FluxKind;
use ephemeral_core::set::EnvironmentSet;
use ephemeral_core::{AppBundle, AppTemplate, Environment};
use kube::api::{Api, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::{Client, Resource};

/// The field manager of every write, so `managedFields` show who changed what.
pub const FIELD_MANAGER: &str = "kubectl-ephemeral";

/// Environments in a namespace.
pub fn environments(client: &Client, namespace: &str) -> Api<Environment> {
    Api::namespaced(client.clone(), namespace)
}

/// EnvironmentSets in a namespace.
pub fn sets(client: &Client, namespace: &str) -> Api<EnvironmentSet> {
    Api::namespaced(client.clone(), namespace)
}

/// AppTemplates in a namespace.
pub fn templates(client: &Client, namespace: &str) -> Api<AppTemplate> {
    Api::namespaced(client.clone(), namespace)
}

/// AppBundles in a namespace.
pub fn bundles(client: &Client, namespace: &str) -> Api<AppBundle> {
    Api::namespaced(client.clone(), namespace)
}

/// Flux `image.toolkit.fluxcd.io/v1` ImagePolicies (we only read them), from
/// the core's kind table the controller uses.
pub fn image_policy_resource() -> ApiResource {
    FluxKind::ImagePolicy.api_resource()
}

/// Parameters of a create, with our field manager.
pub fn post_params(dry_run: bool) -> PostParams {
    PostParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    }
}

/// Parameters of a patch, with our field manager.
pub fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// `environment.ephemeral.io/NAME`, as kubectl names objects.
pub fn display_name(name: &str) -> String {
    kind_name::<Environment>(name)
}

/// `environmentset.ephemeral.io/NAME`, as kubectl names objects.
pub fn set_display_name(name: &str) -> String {
    kind_name::<EnvironmentSet>(name)
}

fn kind_name<K: Resource<DynamicType = ()>>(name: &str) -> String {
    format!("{}.{}/{name}", K::kind(&()).to_lowercase(), K::group(&()))
}
