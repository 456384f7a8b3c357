//! Expansion: a lightweight Environment becomes a fully defaulted one plus
//! every Flux object it stands for. Pure and deterministic: time and the
//! requester come in as arguments, the cluster comes in as a [`Catalog`].

use std::collections::BTreeMap;
use std::fmt::{self, Display};

use jiff::Timestamp;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use crate::api::{
    App, AppTemplateSpec, Environment, EnvironmentSpec, HelmSource, Lease, SourceRef,
};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::{Denied, Violation};
use crate::flux::{
    FluxObject, FluxSourceRef, GitRepository, GitRepositoryRef, GitRepositorySpec, HelmChartSpec,
    HelmChartTemplate, HelmDriftDetection, HelmInstall, HelmRelease, HelmReleaseSpec,
    HelmRemediation, HelmTest, HelmUninstall, HelmUpgrade, ImagePolicy, ImagePolicyChoice,
    ImagePolicySpec, ImageRepositoryNamespacedRef, Kustomization, KustomizationSpec,
    NumericalPolicy, PostBuild, TagFilter,
};
use crate::lease::{self, whole_seconds};
use crate::names::{self, GENERATE_NAME_SUFFIX, MAX_LABEL};
use crate::prefix;
use crate::schedule::Schedule;
use crate::set::{self, generate::PullRequestOf};

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
    let name_len = cx.check_environment_name(environment);

    let spec = &environment.spec;
    let mut apps = cx.collect_apps(spec.apps.clone(), &spec.bundles);
    for (i, app) in apps.iter_mut().enumerate() {
        cx.expand_app(i, app, name_len);
    }
    cx.check_substitute(&"spec.substitute", &spec.substitute);
    if let Some(branch) = &spec.source_branch {
        cx.check_source_branch(branch);
    }
    let git_sources = cx.git_sources(&apps, spec.source_branch.as_deref(), name, name_len);
    let (lease, uptime) = cx.lease(environment, now);
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

    // Field by field, so that the incoming apps are not copied only to be replaced.
    let mut admitted = Environment {
        metadata: environment.metadata.clone(),
        spec: EnvironmentSpec {
            apps,
            bundles: spec.bundles.clone(),
            lease: Some(lease),
            source_branch: spec.source_branch.clone(),
            substitute: spec.substitute.clone(),
            service_account_name: service_account,
        },
        status: environment.status.clone(),
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

impl Cx<'_> {
    fn deny(&mut self, v: Violation) {
        self.violations.push(v);
    }

    /// Validates the name and returns the length child names are built from.
    fn check_environment_name(&mut self, env: &Environment) -> usize {
        match (&env.metadata.name, &env.metadata.generate_name) {
            (Some(name), _) if !name.is_empty() => {
                if let Some(problem) = names::dns1123_label_problem(name) {
                    self.deny(Violation::InvalidName {
                        field: "metadata.name".into(),
                        value: name.clone(),
                        problem: problem.into(),
                    });
                }
                name.len()
            }
            (_, Some(prefix)) if !prefix.is_empty() => prefix.len() + GENERATE_NAME_SUFFIX,
            _ => {
                self.deny(Violation::MissingName);
                0
            }
        }
    }

    /// Explicit apps first, then the apps of each bundle not already present.
    fn collect_apps(&mut self, mut apps: Vec<App>, bundles: &[String]) -> Vec<App> {
        let mut seen = std::collections::BTreeSet::new();
        for (i, app) in apps.iter().enumerate() {
            if !seen.insert(app.name.clone()) {
                self.deny(Violation::DuplicateApp {
                    field: format!("spec.apps[{i}].name"),
                    name: app.name.clone(),
                });
            }
        }
        for (i, bundle) in bundles.iter().enumerate() {
            let Some(found) = self.catalog.bundle(&self.namespace, bundle) else {
                self.deny(Violation::UnknownBundle {
                    field: format!("spec.bundles[{i}]"),
                    name: bundle.clone(),
                    namespace: self.namespace.clone(),
                    known: self.catalog.bundle_names(&self.namespace),
                });
                continue;
            };
            for member in &found.spec.apps {
                if seen.insert(member.clone()) {
                    apps.push(App {
                        name: member.clone(),
                        template: Some(member.clone()),
                        ..App::default()
                    });
                }
            }
        }
        apps
    }

    fn expand_app(&mut self, i: usize, app: &mut App, env_name_len: usize) {
        let field = AppField(i);
        if let Some(problem) = names::dns1123_label_problem(&app.name) {
            self.deny(Violation::InvalidName {
                field: format!("{field}.name"),
                value: app.name.clone(),
                problem: problem.into(),
            });
        } else if env_name_len + 1 + app.name.len() > MAX_LABEL {
            self.deny(Violation::GeneratedNameTooLong {
                field: format!("{field}.name"),
                generated: format!("<environment>-{}", app.name),
                len: env_name_len + 1 + app.name.len(),
            });
        }

        let explicit = app.kustomization.is_some() || app.helm.is_some();
        let template_name = match (&app.template, explicit) {
            (Some(t), _) => Some(t.clone()),
            (None, false) => Some(app.name.clone()),
            (None, true) => None,
        };
        let catalog = self.catalog;
        let template = match &template_name {
            Some(t) => match catalog.template(&self.namespace, t) {
                Some(found) => Some(&found.spec),
                None => {
                    self.deny(Violation::UnknownTemplate {
                        field: format!(
                            "{field}.{}",
                            if app.template.is_some() {
                                "template"
                            } else {
                                "name"
                            }
                        ),
                        name: t.clone(),
                        namespace: self.namespace.clone(),
                        known: self.catalog.template_names(&self.namespace),
                    });
                    return;
                }
            },
            None => None,
        };
        app.template = template_name;
        let no_template = AppTemplateSpec::default();
        let template = template.unwrap_or(&no_template);
        apply_template(app, template, explicit);

        match (&app.kustomization, &app.helm) {
            (Some(_), Some(_)) => self.deny(Violation::DeploymentKind {
                field: field.to_string(),
                problem: "the app sets both kustomization and helm".into(),
            }),
            (None, None) => self.deny(Violation::DeploymentKind {
                field: field.to_string(),
                problem: format!(
                    "the app has neither kustomization nor helm (template '{}' sets neither)",
                    app.template.as_deref().unwrap_or_default()
                ),
            }),
            _ => {}
        }
        if let Some(k) = &app.kustomization {
            self.check_source(
                &format_args!("{field}.kustomization.sourceRef"),
                &k.source_ref,
                &KUSTOMIZATION_SOURCE_KINDS,
            );
        }
        if let Some(h) = &mut app.helm {
            h.version.get_or_insert_with(|| "*".to_owned());
            self.check_source(
                &format_args!("{field}.helm.sourceRef"),
                &h.source_ref,
                &HELM_SOURCE_KINDS,
            );
        }
        if let Some(repo) = &app.image_repository
            && let Some(ns) = &repo.namespace
        {
            self.check_namespace(&format_args!("{field}.imageRepository.namespace"), ns);
        }
        self.resolve_prefix(&field, app, template.image_tag_prefix.as_deref());
        self.check_substitute(&format_args!("{field}.substitute"), &app.substitute);
    }

    fn resolve_prefix(
        &mut self,
        field: &dyn Display,
        app: &mut App,
        template_prefix: Option<&str>,
    ) {
        let prefix = if let Some(branch) = &app.branch {
            let sanitised = prefix::sanitise_branch(branch);
            if let Some(problem) = prefix::prefix_problem(&sanitised) {
                self.deny(Violation::BranchPrefix {
                    field: format!("{field}.branch"),
                    value: branch.clone(),
                    sanitised,
                    problem,
                });
                return;
            }
            match &app.image_tag_prefix {
                Some(p) if *p != sanitised => {
                    self.deny(Violation::BranchConflict {
                        field: field.to_string(),
                        branch: branch.clone(),
                        sanitised,
                        prefix: p.clone(),
                    });
                    return;
                }
                Some(_) => {}
                None if sanitised != *branch => self.warnings.push(format!(
                    "{field}.branch: imageTagPrefix sanitised from '{branch}' to '{sanitised}'"
                )),
                None => {}
            }
            Some(sanitised)
        } else if let Some(p) = &app.image_tag_prefix {
            if let Some(problem) = prefix::prefix_problem(p) {
                self.deny(Violation::InvalidPrefix {
                    field: format!("{field}.imageTagPrefix"),
                    value: p.clone(),
                    problem,
                });
                return;
            }
            Some(p.clone())
        } else if let Some(p) = template_prefix {
            if let Some(problem) = prefix::prefix_problem(p) {
                self.deny(Violation::InvalidPrefix {
                    field: format!("{field}.template (AppTemplate spec.imageTagPrefix)"),
                    value: p.to_owned(),
                    problem,
                });
                return;
            }
            Some(p.to_owned())
        } else {
            None
        };
        if let Some(p) = &prefix
            && app.image_repository.is_none()
        {
            self.deny(Violation::MissingImageRepository {
                field: field.to_string(),
                prefix: p.clone(),
            });
        }
        app.image_tag_prefix = prefix;
    }

    fn check_source(&mut self, field: &dyn Display, r: &SourceRef, kinds: &[&'static str]) {
        if !kinds.contains(&r.kind.as_str()) {
            self.deny(Violation::SourceKind {
                field: format!("{field}.kind"),
                kind: r.kind.clone(),
                allowed: kinds.to_vec(),
            });
        }
        if let Some(ns) = &r.namespace {
            self.check_namespace(&format_args!("{field}.namespace"), ns);
        }
    }

    fn check_namespace(&mut self, field: &dyn Display, ns: &str) {
        let allowed = &self.config.allowed_source_namespaces;
        if ns != self.namespace && !allowed.is_empty() && !allowed.iter().any(|a| a == ns) {
            self.deny(Violation::NamespaceNotAllowed {
                field: field.to_string(),
                namespace: ns.to_owned(),
                allowed: allowed.clone(),
            });
        }
    }

    fn check_substitute(&mut self, field: &dyn Display, map: &BTreeMap<String, String>) {
        for key in map.keys() {
            let (problem, fix) = if RESERVED_VARIABLES.contains(&key.as_str()) {
                (
                    "is set by kubectl-ephemeral itself",
                    format!(
                        "rename the variable; {} and {} are reserved",
                        RESERVED_VARIABLES[..RESERVED_VARIABLES.len() - 1].join(", "),
                        RESERVED_VARIABLES[RESERVED_VARIABLES.len() - 1]
                    ),
                )
            } else if !names::is_substitute_key(key) {
                (
                    "is not a valid variable name",
                    "use letters, digits and '_', not starting with a digit".to_owned(),
                )
            } else {
                continue;
            };
            self.deny(Violation::SubstituteKey {
                field: field.to_string(),
                key: key.clone(),
                problem: problem.into(),
                fix,
            });
        }
    }

    /// With an allow-list configured, the account Flux impersonates (named or
    /// defaulted) must be on it; no account at all leaves Flux's own default.
    fn check_service_account(&mut self, name: Option<&str>) {
        let allowed = &self.config.allowed_service_accounts;
        if let Some(name) = name
            && !allowed.is_empty()
            && !allowed.iter().any(|a| a == name)
        {
            self.deny(Violation::ServiceAccountNotAllowed {
                name: name.to_owned(),
                allowed: allowed.clone(),
            });
        }
    }

    fn check_source_branch(&mut self, branch: &str) {
        let problem = if branch.is_empty() {
            Some("is empty")
        } else if branch.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some("contains whitespace or control characters")
        } else if branch.contains("..") || branch.contains("//") {
            Some("contains '..' or '//'")
        } else if branch.starts_with(['-', '/']) || branch.ends_with(['/', '.']) {
            Some("starts with '-' or '/', or ends with '/' or '.'")
        } else if branch.contains(['~', '^', ':', '?', '*', '[', '\\']) {
            Some("contains one of ~ ^ : ? * [ \\")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.deny(Violation::InvalidSourceBranch {
                value: branch.to_owned(),
                problem: problem.into(),
            });
        }
    }

    /// The GitRepository copies `sourceBranch` needs.
    fn git_sources(
        &mut self,
        apps: &[App],
        branch: Option<&str>,
        env: &str,
        env_len: usize,
    ) -> GitSources {
        let mut sources = GitSources::new();
        let Some(branch) = branch else {
            return sources;
        };
        for (i, app) in apps.iter().enumerate() {
            let (field, r) = match (&app.kustomization, &app.helm) {
                (Some(k), _) => (
                    format!("spec.apps[{i}].kustomization.sourceRef"),
                    &k.source_ref,
                ),
                (None, Some(h)) => (format!("spec.apps[{i}].helm.sourceRef"), &h.source_ref),
                (None, None) => continue,
            };
            if r.kind != "GitRepository" {
                continue;
            }
            let key = (
                r.namespace
                    .clone()
                    .unwrap_or_else(|| self.namespace.clone()),
                r.name.clone(),
            );
            if sources.contains_key(&key) {
                continue;
            }
            let Some(original) = self.catalog.git_repository(&key.0, &key.1) else {
                self.deny(Violation::MissingGitRepository {
                    field,
                    namespace: key.0,
                    name: key.1,
                });
                continue;
            };
            if env_len + 1 + r.name.len() > MAX_LABEL {
                self.deny(Violation::GeneratedNameTooLong {
                    field: format!("{field}.name"),
                    generated: format!("<environment>-{}", r.name),
                    len: env_len + 1 + r.name.len(),
                });
                continue;
            }
            if original.spec.secret_ref.is_some() && key.0 != self.namespace {
                self.warnings.push(format!(
                    "{field}: GitRepository {}/{} uses secretRef '{}'; its copy in namespace '{}' needs a Secret of that name there",
                    key.0,
                    key.1,
                    original.spec.secret_ref.as_ref().map(|s| s.name.as_str()).unwrap_or_default(),
                    self.namespace
                ));
            }
            sources.insert(key, copy_git_repository(original, env, branch));
        }
        if sources.is_empty() && self.violations.is_empty() {
            self.warnings.push(
                "spec.sourceBranch: no app uses a GitRepository source, so sourceBranch changes nothing".into(),
            );
        }
        sources
    }

    /// The defaulted lease and the `downscaler/uptime` value.
    fn lease(&mut self, env: &Environment, now: Timestamp) -> (Lease, String) {
        let mut lease = env.spec.lease.clone().unwrap_or_default();
        if let Some(after) = &lease.expire_after
            && lease::parse_go_duration(after).is_none()
        {
            self.deny(Violation::InvalidLease {
                field: "spec.lease.expireAfter".into(),
                problem: format!("'{after}' is not a duration"),
                fix: "use a Go duration such as 168h or 36h30m".into(),
            });
        }
        let name = env.metadata.name.as_deref().unwrap_or_default();
        if self.config.always_on.iter().any(|n| n == name) {
            let schedule = self.config.always_on_schedule.to_string();
            if lease.until.is_some() {
                self.warnings.push(format!(
                    "spec.lease: '{name}' is always on; its lease is the schedule '{schedule}'"
                ));
            }
            lease.until = None;
            lease.schedule = Some(schedule.clone());
            return (lease, schedule);
        }
        match (&lease.until, &lease.schedule) {
            (Some(_), Some(_)) => {
                self.deny(Violation::InvalidLease {
                    field: "spec.lease".into(),
                    problem: "sets both until and schedule".into(),
                    fix: "set only one of until or schedule".into(),
                });
                (lease, String::new())
            }
            (None, Some(typed)) => match Schedule::parse(typed) {
                Err(error) => {
                    self.deny(Violation::InvalidSchedule { error });
                    (lease, String::new())
                }
                Ok(schedule) => {
                    let written = schedule.to_string();
                    if written != typed.trim() {
                        self.warnings.push(schedule_rewritten(&schedule, &written));
                    }
                    lease.schedule = Some(written.clone());
                    (lease, written)
                }
            },
            (until, None) => {
                let until = match until {
                    None => self.config.lease.default_until(now),
                    Some(text) => match lease::parse_until(text) {
                        Some(t) => t,
                        None => {
                            self.deny(Violation::InvalidLease {
                                field: "spec.lease.until".into(),
                                problem: format!("'{text}' is not an RFC 3339 time"),
                                fix: "write it like 2026-11-21T19:00:00Z, or leave it out for the default".into(),
                            });
                            return (lease, String::new());
                        }
                    },
                };
                let latest = self.config.lease.latest_until(now);
                if until > latest {
                    self.deny(Violation::LeaseTooLong {
                        until: until.to_string(),
                        max: format!("{:#}", self.config.lease.maximum),
                        latest: latest.to_string(),
                    });
                }
                if until <= now {
                    self.warnings.push(format!(
                        "spec.lease.until: the lease ended at {until}; the environment stays scaled down until it is extended"
                    ));
                }
                let start = env
                    .annotations()
                    .get(UPTIME_ANNOTATION)
                    .and_then(|v| lease::parse_absolute_uptime(v))
                    .map(|(start, _)| start)
                    .filter(|start| *start <= until)
                    .unwrap_or_else(|| now.min(until))
                    .max(lease::EARLIEST_RFC3339);
                lease.until = Some(until.to_string());
                (lease, lease::absolute_uptime(start, until))
            }
        }
    }
}

/// The warning for a schedule stored in another form than it was typed.
fn schedule_rewritten(schedule: &Schedule, written: &str) -> String {
    let mut renamed: Vec<String> = schedule
        .renamed_zones()
        .map(|(typed, name)| format!("'{typed}' is '{name}'"))
        .collect();
    renamed.dedup();
    if renamed.is_empty() {
        format!("spec.lease.schedule: written as '{written}', GoKubeDownscaler's form")
    } else {
        format!(
            "spec.lease.schedule: time zone {} in the IANA database (GoKubeDownscaler matches zone names exactly); written as '{written}'",
            renamed.join(", ")
        )
    }
}

/// Fills what the app leaves out from its template. An app that writes out its
/// own kustomization or helm block keeps it.
fn apply_template(app: &mut App, template: &AppTemplateSpec, explicit: bool) {
    if !explicit {
        app.kustomization = template.kustomization.clone();
        app.helm = template.helm.clone();
    }
    if app.image_repository.is_none() {
        app.image_repository = template.image_repository.clone();
    }
    for (k, v) in &template.substitute {
        app.substitute.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// The copy of `original` that tracks `branch`; its metadata is set with the
/// other children's.
fn copy_git_repository(original: &GitRepository, env: &str, branch: &str) -> GitRepository {
    let spec = GitRepositorySpec {
        reference: Some(GitRepositoryRef {
            branch: Some(branch.to_owned()),
        }),
        ..original.spec.clone()
    };
    GitRepository::new(&names::child_name(env, &original.name_any()), spec)
}

struct Children<'a> {
    env: &'a Environment,
    name: &'a str,
    namespace: &'a str,
    owner: &'a str,
    uptime: &'a str,
    config: &'a Config,
    catalog: &'a Catalog,
    git_sources: &'a GitSources,
    tags: Option<ResolvedTags<'a>>,
}

impl Children<'_> {
    fn build(&self) -> Vec<FluxObject> {
        let mut objects = Vec::with_capacity(self.env.spec.apps.len() * 2 + self.git_sources.len());
        for copy in self.git_sources.values() {
            let mut copy = copy.clone();
            copy.metadata = self.meta(copy.name_any(), None);
            objects.push(FluxObject::GitRepository(copy));
        }
        for app in &self.env.spec.apps {
            let child = names::child_name(self.name, &app.name);
            let policy = if let (Some(prefix), Some(repo)) =
                (&app.image_tag_prefix, &app.image_repository)
            {
                Some(ImagePolicy {
                    metadata: self.meta(child.clone(), Some(&app.name)),
                    spec: ImagePolicySpec {
                        image_repository_ref: ImageRepositoryNamespacedRef {
                            name: repo.name.clone(),
                            namespace: repo
                                .namespace
                                .clone()
                                .unwrap_or_else(|| self.namespace.to_owned()),
                        },
                        filter_tags: TagFilter {
                            pattern: prefix::policy_pattern(prefix),
                            extract: prefix::POLICY_EXTRACT.into(),
                        },
                        policy: ImagePolicyChoice {
                            numerical: NumericalPolicy {
                                order: "asc".into(),
                            },
                        },
                        digest_reflection_policy: "Never".into(),
                        suspend: false,
                    },
                })
            } else {
                None
            };
            let tag = match (self.tags, &policy) {
                (Some(resolve), Some(policy)) => resolve(policy),
                (Some(_), None) => None,
                (None, _) => app
                    .image_tag_prefix
                    .as_ref()
                    .and_then(|_| self.catalog.image_tag(self.namespace, &child))
                    .map(str::to_owned),
            };
            let tag = tag.as_deref();
            let variables = self.variables(app, tag);
            if let Some(k) = &app.kustomization {
                objects.push(FluxObject::Kustomization(Kustomization {
                    metadata: self.meta(child.clone(), Some(&app.name)),
                    spec: KustomizationSpec {
                        interval: self.config.interval.clone(),
                        retry_interval: self.config.retry_interval.clone(),
                        timeout: self.config.timeout.clone(),
                        path: k.path.clone(),
                        prune: true,
                        wait: true,
                        force: false,
                        suspend: false,
                        deletion_policy: "MirrorPrune".into(),
                        source_ref: self.source_ref(&k.source_ref),
                        post_build: PostBuild {
                            substitute: variables,
                        },
                        service_account_name: self.env.spec.service_account_name.clone(),
                    },
                }));
            } else if let Some(h) = &app.helm {
                objects.push(FluxObject::HelmRelease(Box::new(HelmRelease {
                    metadata: self.meta(child.clone(), Some(&app.name)),
                    spec: self.helm_release(&child, h, variables, tag),
                })));
            }
            objects.extend(policy.map(FluxObject::ImagePolicy));
        }
        objects
    }

    fn meta(&self, name: String, app: Option<&str>) -> ObjectMeta {
        let mut labels = BTreeMap::from([
            (ENVIRONMENT_LABEL.to_owned(), self.name.to_owned()),
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
        ]);
        if let Some(app) = app {
            labels.insert(APP_LABEL.to_owned(), app.to_owned());
        }
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.to_owned()),
            labels: Some(labels),
            // Controlling owner, and the garbage collector's foreground
            // deletion waits for the child.
            owner_references: self.env.controller_owner_ref(&()).map(|mut r| {
                r.block_owner_deletion = Some(true);
                vec![r]
            }),
            ..ObjectMeta::default()
        }
    }

    fn variables(&self, app: &App, tag: Option<&str>) -> BTreeMap<String, String> {
        let mut vars = self.env.spec.substitute.clone();
        vars.extend(app.substitute.iter().map(|(k, v)| (k.clone(), v.clone())));
        vars.insert("environment".into(), self.name.to_owned());
        vars.insert("downscaler_uptime".into(), self.uptime.to_owned());
        vars.insert("owner".into(), self.owner.to_owned());
        if let Some(tag) = tag {
            vars.insert("image_tag".into(), tag.to_owned());
        }
        if let Some(pr) = PullRequestOf::read(&self.env.metadata) {
            vars.extend(pr.variables().map(|(k, v)| (k.to_owned(), v.to_owned())));
        }
        vars
    }

    fn source_ref(&self, r: &SourceRef) -> FluxSourceRef {
        let namespace = r
            .namespace
            .clone()
            .unwrap_or_else(|| self.namespace.to_owned());
        match self.git_sources.get(&(namespace.clone(), r.name.clone())) {
            Some(copy) if r.kind == "GitRepository" => FluxSourceRef {
                kind: r.kind.clone(),
                name: copy.name_any(),
                namespace: self.namespace.to_owned(),
            },
            _ => FluxSourceRef {
                kind: r.kind.clone(),
                name: r.name.clone(),
                namespace,
            },
        }
    }

    fn helm_release(
        &self,
        child: &str,
        h: &HelmSource,
        variables: BTreeMap<String, String>,
        tag: Option<&str>,
    ) -> HelmReleaseSpec {
        let mut values = h.values.clone().unwrap_or_default();
        if let Some(tag) = tag {
            set_path(&mut values, &self.config.image_tag_values_path, tag);
        }
        values.insert(
            "ephemeral".into(),
            serde_json::Value::Object(
                variables
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect(),
            ),
        );
        let remediation = HelmRemediation {
            retries: 3,
            remediate_last_failure: None,
            strategy: None,
        };
        HelmReleaseSpec {
            interval: self.config.interval.clone(),
            release_name: child.to_owned(),
            storage_namespace: self.namespace.to_owned(),
            timeout: self.config.timeout.clone(),
            max_history: 5,
            suspend: false,
            chart: HelmChartTemplate {
                spec: HelmChartSpec {
                    chart: h.chart.clone(),
                    version: h.version.clone().unwrap_or_else(|| "*".into()),
                    source_ref: self.source_ref(&h.source_ref),
                    interval: self.config.interval.clone(),
                    reconcile_strategy: "ChartVersion".into(),
                },
            },
            install: HelmInstall {
                crds: "Create".into(),
                create_namespace: false,
                remediation: remediation.clone(),
            },
            upgrade: HelmUpgrade {
                crds: "Skip".into(),
                cleanup_on_fail: true,
                remediation: HelmRemediation {
                    remediate_last_failure: Some(true),
                    strategy: Some("rollback".into()),
                    ..remediation
                },
            },
            uninstall: HelmUninstall {
                keep_history: false,
                deletion_propagation: "background".into(),
            },
            test: HelmTest { enable: false },
            drift_detection: HelmDriftDetection {
                mode: "disabled".into(),
            },
            values,
            service_account_name: self.env.spec.service_account_name.clone(),
        }
    }
}

/// Sets `value` at a dotted `path` (e.g. `image.tag`), creating maps on the way
/// and replacing non-map values in the way.
fn set_path(values: &mut serde_json::Map<String, serde_json::Value>, path: &str, value: &str) {
    let mut parts = path.split('.').peekable();
    let mut map = values;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            map.insert(part.to_owned(), serde_json::Value::String(value.to_owned()));
            return;
        }
        let entry = map
            .entry(part.to_owned())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if !entry.is_object() {
            *entry = serde_json::Value::Object(Default::default());
        }
        map = entry.as_object_mut().expect("just made an object");
    }
}
