//! The Flux objects an Environment expands into.
//!
//! Only the fields this project sets are modelled. Each type is a kube
//! `CustomResource` (schema disabled: the CRDs belong to Flux), so the
//! controller can server-side-apply them, and tests prove every emitted object
//! against the upstream Flux CRD schemas.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use crate::kinds::FluxKind;

/// `kustomize.toolkit.fluxcd.io/v1` Kustomization, fully defaulted.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "kustomize.toolkit.fluxcd.io",
    version = "v1",
    kind = "Kustomization",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct KustomizationSpec {
    /// How often the source is re-applied.
    pub interval: String,
    /// How soon a failed apply is retried.
    pub retry_interval: String,
    /// Timeout of build, apply and health checks.
    pub timeout: String,
    /// Path of the kustomization in the source.
    pub path: String,
    /// Garbage-collect what the source no longer holds.
    pub prune: bool,
    /// Wait for every applied object to become ready.
    pub wait: bool,
    /// Recreate objects whose immutable fields changed.
    pub force: bool,
    /// Whether reconciliation is suspended.
    pub suspend: bool,
    /// What happens to applied objects when the Kustomization is deleted.
    pub deletion_policy: String,
    /// The source holding the manifests.
    pub source_ref: FluxSourceRef,
    /// Variable substitution after the kustomize build.
    pub post_build: PostBuild,
    /// Service account Flux impersonates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// A (possibly cross-namespace) reference to a Flux source.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FluxSourceRef {
    /// Kind of the source.
    pub kind: String,
    /// Name of the source.
    pub name: String,
    /// Namespace of the source.
    pub namespace: String,
}

/// Kustomization `postBuild`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PostBuild {
    /// Variables substituted into the built manifests.
    pub substitute: BTreeMap<String, String>,
}

/// `helm.toolkit.fluxcd.io/v2` HelmRelease, fully defaulted.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "helm.toolkit.fluxcd.io",
    version = "v2",
    kind = "HelmRelease",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct HelmReleaseSpec {
    /// How often the release is reconciled.
    pub interval: String,
    /// Name of the Helm release.
    pub release_name: String,
    /// Namespace where Helm stores the release.
    pub storage_namespace: String,
    /// Timeout of Helm actions.
    pub timeout: String,
    /// Number of release revisions kept.
    pub max_history: u32,
    /// Whether reconciliation is suspended.
    pub suspend: bool,
    /// The chart template.
    pub chart: HelmChartTemplate,
    /// Install behaviour.
    pub install: HelmInstall,
    /// Upgrade behaviour.
    pub upgrade: HelmUpgrade,
    /// Uninstall behaviour.
    pub uninstall: HelmUninstall,
    /// Helm test behaviour.
    pub test: HelmTest,
    /// Drift detection.
    pub drift_detection: HelmDriftDetection,
    /// Helm values.
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Service account Flux impersonates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// HelmRelease `chart`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartTemplate {
    /// HelmRelease `chart.spec`.
    pub spec: HelmChartSpec,
}

/// HelmRelease `chart.spec`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartSpec {
    /// Chart name or path.
    pub chart: String,
    /// Chart version or semver range.
    pub version: String,
    /// The source holding the chart.
    pub source_ref: FluxSourceRef,
    /// How often the chart source is checked.
    pub interval: String,
    /// When a new chart artifact is made: on version change.
    pub reconcile_strategy: String,
}

/// HelmRelease `install`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HelmInstall {
    /// CRD policy on install.
    pub crds: String,
    /// Whether the target namespace is created.
    pub create_namespace: bool,
    /// Remediation of failed installs.
    pub remediation: HelmRemediation,
}

/// HelmRelease `upgrade`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HelmUpgrade {
    /// CRD policy on upgrade.
    pub crds: String,
    /// Delete new resources of a failed upgrade.
    pub cleanup_on_fail: bool,
    /// Remediation of failed upgrades.
    pub remediation: HelmRemediation,
}

/// Remediation of failed Helm actions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HelmRemediation {
    /// Retries before giving up.
    pub retries: i32,
    /// Remediate the last failure when retries are exhausted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediate_last_failure: Option<bool>,
    /// `rollback` or `uninstall` (upgrades only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
}

/// HelmRelease `uninstall`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HelmUninstall {
    /// Keep the release history after uninstall.
    pub keep_history: bool,
    /// How dependents are deleted.
    pub deletion_propagation: String,
}

/// HelmRelease `test`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HelmTest {
    /// Run Helm tests after install and upgrade.
    pub enable: bool,
}

/// HelmRelease `driftDetection`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HelmDriftDetection {
    /// `enabled`, `warn` or `disabled`.
    pub mode: String,
}

/// `image.toolkit.fluxcd.io/v1` ImagePolicy, fully defaulted.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "image.toolkit.fluxcd.io",
    version = "v1",
    kind = "ImagePolicy",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct ImagePolicySpec {
    /// The ImageRepository whose tags are filtered.
    pub image_repository_ref: ImageRepositoryNamespacedRef,
    /// Which tags count, and what is compared.
    pub filter_tags: TagFilter,
    /// How the newest tag is chosen.
    pub policy: ImagePolicyChoice,
    /// Whether the digest of the chosen tag is reflected.
    pub digest_reflection_policy: String,
    /// Whether reconciliation is suspended.
    pub suspend: bool,
}

/// ImagePolicy `imageRepositoryRef`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageRepositoryNamespacedRef {
    /// Name of the ImageRepository.
    pub name: String,
    /// Namespace of the ImageRepository.
    pub namespace: String,
}

/// ImagePolicy `filterTags`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TagFilter {
    /// Regular expression every considered tag matches.
    pub pattern: String,
    /// The part of the tag that is compared.
    pub extract: String,
}

/// ImagePolicy `policy`: numerical order of the extracted timestamp.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImagePolicyChoice {
    /// Numerical comparison.
    pub numerical: NumericalPolicy,
}

/// ImagePolicy `policy.numerical`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NumericalPolicy {
    /// `asc`: the highest number wins.
    pub order: String,
}

/// `source.toolkit.fluxcd.io/v1` GitRepository: read from the cluster (or files)
/// as the original an Environment's `sourceBranch` copies, and emitted as the copy.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "source.toolkit.fluxcd.io",
    version = "v1",
    kind = "GitRepository",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositorySpec {
    /// Repository URL.
    pub url: String,
    /// Which revision is checked out.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<GitRepositoryRef>,
    /// How often the repository is fetched.
    pub interval: String,
    /// Timeout of git operations.
    #[serde(default = "default_git_timeout")]
    pub timeout: String,
    /// Secret with git credentials, in the GitRepository's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectRef>,
    /// Secret with proxy settings, in the GitRepository's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_secret_ref: Option<LocalObjectRef>,
    /// OIDC provider for authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// `.sourceignore`-style exclusions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,
    /// Whether submodules are cloned.
    #[serde(default)]
    pub recurse_submodules: bool,
    /// Whether reconciliation is suspended.
    #[serde(default)]
    pub suspend: bool,
}

fn default_git_timeout() -> String {
    "60s".to_owned()
}

/// GitRepository `ref`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryRef {
    /// Branch to check out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// A reference to an object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct LocalObjectRef {
    /// Name of the object.
    pub name: String,
}

/// One emitted Flux object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum FluxObject {
    /// A copy of a GitRepository tracking `sourceBranch`.
    GitRepository(GitRepository),
    /// A Kustomization app.
    Kustomization(Kustomization),
    /// A Helm app.
    HelmRelease(Box<HelmRelease>),
    /// The image policy of an app with a tag prefix.
    ImagePolicy(ImagePolicy),
}

// Here rather than in `kinds`, so that the kind table does not depend on the
// Flux object types (no import cycle between the two modules).
impl FluxKind {
    /// The kind of an expanded object.
    pub fn of(object: &FluxObject) -> FluxKind {
        match object {
            FluxObject::GitRepository(_) => FluxKind::GitRepository,
            FluxObject::Kustomization(_) => FluxKind::Kustomization,
            FluxObject::HelmRelease(_) => FluxKind::HelmRelease,
            FluxObject::ImagePolicy(_) => FluxKind::ImagePolicy,
        }
    }
}

impl FluxObject {
    /// Its kind, a row of the [kind table](crate::kinds).
    pub fn kind(&self) -> FluxKind {
        FluxKind::of(self)
    }

    /// Its `metadata.name` (empty if unset).
    pub fn name(&self) -> &str {
        let name = match self {
            FluxObject::GitRepository(o) => &o.metadata.name,
            FluxObject::Kustomization(o) => &o.metadata.name,
            FluxObject::HelmRelease(o) => &o.metadata.name,
            FluxObject::ImagePolicy(o) => &o.metadata.name,
        };
        name.as_deref().unwrap_or_default()
    }

    /// `Kind/name`, for messages.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.kind().as_str(), self.name())
    }

    /// The object as JSON (with `apiVersion` and `kind`).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("Flux objects always serialise")
    }
}
