//! Expansion: a lightweight Environment becomes a fully defaulted one plus
//! every Flux object it stands for. Pure and deterministic: time and the
//! requester come in as arguments, the cluster comes in as a [`Catalog`].
//!
//! This module holds the entry points ([`admit`], [`expand`]) and what they
//! return; `checks` (names, sources, substitutions, the lease), `apps` (bundles,
//! templates, prefixes, `sourceBranch` copies) and `children` (the Flux
//! objects) are the steps, each an `impl` of the one private context or a
//! builder, importing only from here.

use std::collections::BTreeMap;
use std::fmt::{self, Display};

use jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{Environment, EnvironmentSpec};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::{Denied, Violation};
use crate::flux::{FluxObject, GitRepository, ImagePolicy};
use crate::lease::whole_seconds;
use crate::set;

mod apps;
mod checks;
mod children;

use children::Children;

/// Annotation holding the Environment's owner.
pub const OWNER_ANNOTATION: &str = "ephemeral.io/owner";
/// GoKubeDownscaler's uptime annotation.
pub const UPTIME_ANNOTATION: &str = "downscaler/uptime";
/// Label on every child: the Environment's name.
pub const ENVIRONMENT_LABEL: &str = "ephemeral.io/environment";
/// Label on every app child: the app's name.
pub const APP_LABEL: &str = "ephemeral.io/app";
/// The standard managed-by label.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on every child.
pub const MANAGED_BY: &str = "ephemeral";
/// Substitution variables this project sets; users may not. The last three
/// are those of an EnvironmentSet's Environments ([`set::generate::VARIABLES`]).
pub const RESERVED_VARIABLES: [&str; 7] = [
    "environment",
    "downscaler_uptime",
    "owner",
    "image_tag",
    set::generate::VARIABLES[0],
    set::generate::VARIABLES[1],
    set::generate::VARIABLES[2],
];

const KUSTOMIZATION_SOURCE_KINDS: [&str; 4] = [
    "GitRepository",
    "OCIRepository",
    "Bucket",
    "ExternalArtifact",
];
const HELM_SOURCE_KINDS: [&str; 3] = ["HelmRepository", "GitRepository", "Bucket"];

/// The result of expanding an Environment.
#[derive(Clone, Debug, PartialEq)]
pub struct Expansion {
    /// The fully defaulted Environment, as the cluster stores it.
    pub environment: Environment,
    /// Every Flux object it stands for, in a stable order: GitRepository copies,
    /// then per app its Kustomization or HelmRelease and its ImagePolicy.
    /// Empty while the Environment has only a `generateName`.
    pub objects: Vec<FluxObject>,
    /// Things worth telling the requester that do not stop admission.
    pub warnings: Vec<String>,
}

/// The first half of [`expand`]: the Environment defaulted and validated,
/// without the Flux objects it stands for. What admission needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Admitted {
    /// The fully defaulted Environment, as the cluster stores it: exactly
    /// [`Expansion::environment`].
    pub environment: Environment,
    /// Exactly [`Expansion::warnings`].
    pub warnings: Vec<String>,
    /// What the second half needs: the namespace children go to and the
    /// GitRepository copies `sourceBranch` asks for.
    namespace: String,
    git_sources: GitSources,
}

/// Expands `environment` for `owner` at `now`: [`admit`], then the Flux
/// objects of the admitted Environment.
///
/// `owner` is written to the `ephemeral.io/owner` annotation: the caller
/// decides who that is (the requester on create, the stored owner on update).
pub fn expand(
    environment: &Environment,
    catalog: &Catalog,
    config: &Config,
    now: Timestamp,
    owner: &str,
) -> Result<Expansion, Denied> {
    expand_observing(environment, catalog, config, now, owner, None)
}

/// Where the tag an app deploys comes from: given the ImagePolicy the
/// expansion wants for the app, the tag it resolved (if any).
pub type ResolvedTags<'a> = &'a dyn Fn(&ImagePolicy) -> Option<String>;

/// Expands like [`expand`], but takes each app's image tag from `tags` (the
/// tag its wanted ImagePolicy resolved, e.g. as observed in the cluster)
/// instead of the catalog's recorded tags: one expansion, whatever the
/// policies resolved. With `None`, exactly [`expand`].
pub fn expand_observing(
    environment: &Environment,
    catalog: &Catalog,
    config: &Config,
    now: Timestamp,
    owner: &str,
    tags: Option<ResolvedTags<'_>>,
) -> Result<Expansion, Denied> {
    Ok(admit(environment, catalog, config, now, owner)?.expand_observing(catalog, config, tags))
}

/// Defaults and validates `environment` for `owner` at `now`, as [`expand`]
/// does, without building Flux objects: every rule, denial and warning of
/// expansion lives here, so `admit(..).environment` is always
/// `expand(..).environment` and both refuse the same Environments.
pub fn admit(
    environment: &Environment,
    catalog: &Catalog,
    config: &Config,
    now: Timestamp,
    owner: &str,
) -> Result<Admitted, Denied> {
    admit_owned(environment.clone(), catalog, config, now, owner)
}

/// [`admit`], consuming `environment`: the admitted Environment reuses its
/// parts instead of copying them (the webhook decodes one per request and
/// needs it only to admit it).
pub fn admit_owned(
    mut environment: Environment,
    catalog: &Catalog,
    config: &Config,
    now: Timestamp,
    owner: &str,
) -> Result<Admitted, Denied> {
    let mut cx = Cx {
        catalog,
        config,
        namespace: environment
            .namespace()
            .unwrap_or_else(|| "default".to_owned()),
        violations: Vec::new(),
        warnings: Vec::new(),
    };
    let now = whole_seconds(now);
    let name = environment.metadata.name.as_deref().unwrap_or_default();
    let name_len = cx.check_environment_name(&environment);

    let apps = std::mem::take(&mut environment.spec.apps);
    let spec = &environment.spec;
    let mut apps = cx.collect_apps(apps, &spec.bundles);
    for (i, app) in apps.iter_mut().enumerate() {
        cx.expand_app(i, app, name_len);
    }
    cx.check_substitute(&"spec.substitute", &spec.substitute);
    if let Some(branch) = &spec.source_branch {
        cx.check_source_branch(branch);
    }
    let git_sources = cx.git_sources(&apps, spec.source_branch.as_deref(), name, name_len);
    let (lease, uptime) = cx.lease(&environment, now);
    let service_account = spec
        .service_account_name
        .clone()
        .or_else(|| config.service_account_name.clone());
    cx.check_service_account(service_account.as_deref());

    if !cx.violations.is_empty() {
        return Err(Denied {
            violations: cx.violations,
        });
    }

    let Environment {
        metadata,
        spec,
        status,
    } = environment;
    let mut admitted = Environment {
        metadata,
        spec: EnvironmentSpec {
            apps,
            bundles: spec.bundles,
            lease: Some(lease),
            source_branch: spec.source_branch,
            substitute: spec.substitute,
            service_account_name: service_account,
        },
        status,
    };
    let annotations = admitted.annotations_mut();
    annotations.insert(OWNER_ANNOTATION.to_owned(), owner.to_owned());
    annotations.insert(UPTIME_ANNOTATION.to_owned(), uptime);
    Ok(Admitted {
        environment: admitted,
        warnings: cx.warnings,
        namespace: cx.namespace,
        git_sources,
    })
}

impl Admitted {
    /// The second half of [`expand`]: the Flux objects of the admitted
    /// Environment (none while it has only a `generateName`). `catalog` and
    /// `config` must be the ones it was admitted with.
    pub fn expand(self, catalog: &Catalog, config: &Config) -> Expansion {
        self.expand_observing(catalog, config, None)
    }

    /// [`Admitted::expand`], with each app's image tag from `tags` (see
    /// [`expand_observing`]).
    pub fn expand_observing(
        self,
        catalog: &Catalog,
        config: &Config,
        tags: Option<ResolvedTags<'_>>,
    ) -> Expansion {
        let annotations = self.environment.annotations();
        let objects = match self.environment.metadata.name.as_deref() {
            None | Some("") => Vec::new(),
            Some(name) => Children {
                env: &self.environment,
                name,
                namespace: &self.namespace,
                owner: annotations
                    .get(OWNER_ANNOTATION)
                    .map(String::as_str)
                    .unwrap_or_default(),
                uptime: annotations
                    .get(UPTIME_ANNOTATION)
                    .map(String::as_str)
                    .unwrap_or_default(),
                config,
                catalog,
                git_sources: &self.git_sources,
                tags,
            }
            .build(),
        };
        Expansion {
            environment: self.environment,
            objects,
            warnings: self.warnings,
        }
    }
}

/// GitRepositories copied for `sourceBranch`: original `(namespace, name)` → copy.
type GitSources = BTreeMap<(String, String), GitRepository>;

/// `spec.apps[i]`, written out only when a message needs it.
#[derive(Clone, Copy)]
struct AppField(usize);

impl Display for AppField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spec.apps[{}]", self.0)
    }
}

struct Cx<'a> {
    catalog: &'a Catalog,
    config: &'a Config,
    namespace: String,
    violations: Vec<Violation>,
    warnings: Vec<String>,
}
