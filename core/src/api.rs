//! The `ephemeral.io/v1alpha1` API: `Environment`, `AppTemplate` and `AppBundle`.
//!
//! Doc comments on these types become the field descriptions of the CRDs that
//! `ephemeral-webhook crds` prints, so they are written for `kubectl explain`.
//!
//! The types of an Environment's `spec` declare their fields sorted by JSON
//! name, the order in which a `serde_json::Value` keeps them: the webhook then
//! writes its JSONPatch while it serialises the spec, in one pass (it checks
//! the order and takes a slower route when it is off; a test here keeps it).

// kube-derive repeats `type_` per printcolumn, which clippy mistakes for a duplicate.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every kind in this crate.
pub const GROUP: &str = "ephemeral.io";
/// API version of every kind in this crate.
pub const VERSION: &str = "v1alpha1";

/// An ephemeral test environment: a set of apps, each materialised as a Flux
/// Kustomization or HelmRelease that follows the newest image of a branch,
/// up while its lease lasts.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ephemeral.io",
    version = "v1alpha1",
    kind = "Environment",
    namespaced,
    status = "EnvironmentStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "env",
    category = "ephemeral",
    doc = "An ephemeral test environment: a set of apps materialised as Flux objects while its lease lasts.",
    printcolumn(
        name = "Owner",
        type_ = "string",
        json_path = ".metadata.annotations.ephemeral\\.io/owner",
        description = "Who asked for the environment"
    ),
    printcolumn(
        name = "Apps",
        type_ = "string",
        json_path = ".status.readyApps",
        description = "Ready apps out of all apps"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether every app is ready"
    ),
    printcolumn(
        name = "Lease",
        type_ = "string",
        json_path = ".metadata.annotations.downscaler/uptime",
        description = "When the environment is up (downscaler/uptime)"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentSpec {
    /// The apps of the environment. Each app becomes a Flux Kustomization or
    /// HelmRelease named `<environment>-<app>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]), length(max = 100))]
    pub apps: Vec<App>,
    /// AppBundles (in the environment's namespace) whose apps are added to the
    /// environment. An app listed in `apps` takes precedence over a bundle's app of
    /// the same name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub bundles: Vec<String>,
    /// When the environment is up. Defaults to the next daily cut-off (19:00 UTC
    /// unless the cluster is configured otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// The service account Flux impersonates to apply the apps. Defaults to the
    /// cluster's configured service account, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Track this branch of the GitRepositories that the apps' sources point to:
    /// each such GitRepository is copied as `<environment>-<name>` with
    /// `ref.branch` set to this branch, and the apps use the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_branch: Option<String>,
    /// Extra `postBuild.substitute` variables for every app (Helm apps get them
    /// under `values.ephemeral`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub substitute: BTreeMap<String, String>,
}

/// One app of an environment: from a template, or written out in full.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.kustomization) && has(self.helm))", "message": "an app sets at most one of kustomization or helm"}
]))]
pub struct App {
    /// A git branch whose images the app follows. The webhook turns it into
    /// `imageTagPrefix` the way CI tags images: each run of characters outside
    /// `[A-Za-z0-9._-]` becomes one `-`, leading `.` and `-` are dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Deploy the app with a Flux HelmRelease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmSource>,
    /// The Flux ImageRepository that scans the app's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_repository: Option<ImageRepositoryRef>,
    /// The app follows the newest image tagged `<imageTagPrefix>-<git sha>-<unix seconds>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag_prefix: Option<String>,
    /// Deploy the app with a Flux Kustomization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomization: Option<KustomizationSource>,
    /// Name of the app, a DNS-1123 label unique in the environment.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Extra `postBuild.substitute` variables for this app.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub substitute: BTreeMap<String, String>,
    /// The AppTemplate (in the environment's namespace) the app comes from.
    /// Defaults to the app's name when neither `kustomization` nor `helm` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// Where a Kustomization app's manifests come from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizationSource {
    /// Path in the source to the kustomization of the app, e.g. `./apps/checkout/preview`.
    pub path: String,
    /// The Flux source holding the manifests.
    pub source_ref: SourceRef,
}

/// Where a Helm app's chart comes from, and its values.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmSource {
    /// Name of the chart in the source (or its path in a GitRepository).
    pub chart: String,
    /// The Flux source holding the chart: HelmRepository, GitRepository or Bucket.
    pub source_ref: SourceRef,
    /// Helm values. The webhook and controller add `ephemeral.*` and the image tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub values: Option<serde_json::Map<String, serde_json::Value>>,
    /// Chart version or semver range, e.g. `1.4.x`. Defaults to `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A reference to a Flux source.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    /// Kind of the source: `GitRepository`, `OCIRepository`, `Bucket` or `HelmRepository`.
    pub kind: String,
    /// Name of the source.
    pub name: String,
    /// Namespace of the source; defaults to the environment's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A reference to a Flux ImageRepository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageRepositoryRef {
    /// Name of the ImageRepository.
    pub name: String,
    /// Namespace of the ImageRepository; defaults to the environment's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// When an environment is up: until a point in time, or on a weekly schedule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.until) != has(self.schedule)", "message": "a lease sets exactly one of until or schedule"}
]))]
pub struct Lease {
    /// Delete the environment this long after its lease ended, e.g. `168h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub expire_after: Option<String>,
    /// Up on a weekly schedule in GoKubeDownscaler's form, e.g.
    /// `Mon-Fri 07:00-19:00 Europe/London` (several windows separated by commas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Suspend the apps' Flux Kustomizations and HelmReleases (`spec.suspend:
    /// true`) while the environment is outside its lease, so Flux does not
    /// undo the downscaler by re-applying `spec.replicas` and does not upgrade
    /// a release that is scaled to zero; they are resumed when the lease is
    /// extended or the schedule's window opens. ImagePolicies keep resolving.
    /// Defaults to the controller's `--suspend-outside-uptime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_outside_uptime: Option<bool>,
    /// Up until this time (RFC 3339). Defaulted by the webhook to the next daily cut-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// Observed state of an Environment, written by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    /// kstatus conditions `Ready`, `Reconciling`, `Stalled`, and `Admitted`,
    /// `LeaseActive` and (when suspension outside uptime is on) `Suspended`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready apps out of all apps, e.g. `2/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_apps: Option<String>,
    /// Per-app state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<AppStatus>,
    /// End of the current lease window (RFC 3339), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_end: Option<String>,
}

/// Observed state of one app.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus {
    /// Name of the app.
    pub name: String,
    /// Kind of the app's Flux object: `Kustomization` or `HelmRelease`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Whether the app's Flux object reports Ready.
    pub ready: bool,
    /// The reason of the Flux object's Ready condition, e.g. `ReconciliationSucceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The image tag its ImagePolicy resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
    /// The Flux object's Ready message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A catalog entry: how to deploy one app, so that an Environment can name it in one line.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ephemeral.io",
    version = "v1alpha1",
    kind = "AppTemplate",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    category = "ephemeral",
    doc = "A catalog entry: how to deploy one app, so that an Environment can name it in one line.",
    printcolumn(
        name = "Description",
        type_ = "string",
        json_path = ".spec.description"
    ),
    printcolumn(name = "Prefix", type_ = "string", json_path = ".spec.imageTagPrefix"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.kustomization) != has(self.helm)", "message": "a template sets exactly one of kustomization or helm"}
]))]
pub struct AppTemplateSpec {
    /// What the app is, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Deploy the app with a Flux Kustomization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomization: Option<KustomizationSource>,
    /// Deploy the app with a Flux HelmRelease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmSource>,
    /// The Flux ImageRepository that scans the app's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_repository: Option<ImageRepositoryRef>,
    /// Default image tag prefix, typically the stable build, e.g. `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag_prefix: Option<String>,
    /// Default `postBuild.substitute` variables of the app.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub substitute: BTreeMap<String, String>,
}

/// A named group of AppTemplates that an Environment can add in one line.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ephemeral.io",
    version = "v1alpha1",
    kind = "AppBundle",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    category = "ephemeral",
    doc = "A named group of AppTemplates that an Environment can add in one line.",
    printcolumn(
        name = "Description",
        type_ = "string",
        json_path = ".spec.description"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AppBundleSpec {
    /// What the bundle is, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Names of AppTemplates; each becomes an app of the same name.
    #[schemars(length(min = 1, max = 100))]
    pub apps: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field of a spec set (written out, no `..Default::default()`, so
    /// that a new field must be added here), maps with several keys.
    fn full_spec() -> EnvironmentSpec {
        let source_ref = SourceRef {
            kind: "GitRepository".into(),
            name: "platform".into(),
            namespace: Some("flux-system".into()),
        };
        let substitute: BTreeMap<String, String> = [
            ("tier".into(), "small".into()),
            ("port".into(), "80".into()),
        ]
        .into();
        let values =
            serde_json::json!({"replicas": 1, "image": {"tag": "main", "pullPolicy": "Always"}});
        let app = App {
            branch: Some("feature/x".into()),
            helm: Some(HelmSource {
                chart: "web".into(),
                source_ref: source_ref.clone(),
                values: values.as_object().cloned(),
                version: Some("1.x".into()),
            }),
            image_repository: Some(ImageRepositoryRef {
                name: "web".into(),
                namespace: Some("flux-system".into()),
            }),
            image_tag_prefix: Some("feature-x".into()),
            kustomization: Some(KustomizationSource {
                path: "./apps/web".into(),
                source_ref,
            }),
            name: "web".into(),
            substitute: substitute.clone(),
            template: Some("web".into()),
        };
        EnvironmentSpec {
            apps: vec![app.clone(), app],
            bundles: vec!["observability".into()],
            lease: Some(Lease {
                expire_after: Some("168h".into()),
                schedule: Some("Mon-Fri 07:00-19:00 UTC".into()),
                suspend_outside_uptime: Some(true),
                until: Some("2026-12-01T19:00:00Z".into()),
            }),
            service_account_name: Some("flux".into()),
            source_branch: Some("feature/x".into()),
            substitute,
        }
    }

    #[test]
    fn spec_fields_are_declared_in_json_key_order() {
        // Serialised directly, the fields come in declaration order; through
        // a `Value`, sorted. The same text means they were declared sorted.
        let spec = full_spec();
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            serde_json::to_value(&spec).unwrap().to_string()
        );
    }
}
