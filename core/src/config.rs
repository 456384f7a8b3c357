//! Cluster-wide settings that shape expansion.

use crate::lease::LeasePolicy;

/// How Environments are defaulted, bounded and materialised.
#[derive(Clone, Debug)]
pub struct Config {
    /// Lease defaults and limits.
    pub lease: LeasePolicy,
    /// Environments that are always on, by name.
    pub always_on: Vec<String>,
    /// The schedule always-on environments get.
    pub always_on_schedule: String,
    /// Namespaces sources and image repositories may live in, besides the
    /// environment's own. Empty: any namespace.
    pub allowed_source_namespaces: Vec<String>,
    /// Service account Flux impersonates when the Environment names none.
    pub service_account_name: Option<String>,
    /// Dotted path in Helm values where the resolved image tag goes.
    pub image_tag_values_path: String,
    /// Flux `interval` of every child.
    pub interval: String,
    /// Flux `timeout` of Kustomizations and HelmReleases.
    pub timeout: String,
    /// Flux `retryInterval` of Kustomizations.
    pub retry_interval: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lease: LeasePolicy::default(),
            always_on: Vec::new(),
            always_on_schedule: "Mon-Sun 00:00-24:00 UTC".to_owned(),
            allowed_source_namespaces: vec!["flux-system".to_owned()],
            service_account_name: None,
            image_tag_values_path: "image.tag".to_owned(),
            interval: "5m".to_owned(),
            timeout: "5m".to_owned(),
            retry_interval: "2m".to_owned(),
        }
    }
}
