//! The apps of an Environment: bundles and templates merged in, each app
//! defaulted and checked, its image tag prefix resolved, its GitRepository
//! copied for `sourceBranch`.

use std::fmt::Display;

use kube::ResourceExt;

use super::{AppField, Cx, GitSources, HELM_SOURCE_KINDS, KUSTOMIZATION_SOURCE_KINDS};
use crate::api::{App, AppTemplateSpec};
use crate::error::Violation;
use crate::flux::{GitRepository, GitRepositoryRef, GitRepositorySpec};
use crate::names::{self, MAX_LABEL};
use crate::prefix;

impl Cx<'_> {
    /// Explicit apps first, then the apps of each bundle not already present.
    pub(super) fn collect_apps(&mut self, mut apps: Vec<App>, bundles: &[String]) -> Vec<App> {
        // Names are borrowed from the apps and the catalog, never copied,
        // and kept sorted in a vector (a handful of names: cheaper than a set).
        let catalog = self.catalog;
        let mut seen: Vec<&str> = Vec::with_capacity(apps.len());
        let mut insert = |name| match seen.binary_search(&name) {
            Ok(_) => false,
            Err(at) => {
                seen.insert(at, name);
                true
            }
        };
        for (i, app) in apps.iter().enumerate() {
            if !insert(app.name.as_str()) {
                self.deny(Violation::DuplicateApp {
                    field: format!("spec.apps[{i}].name"),
                    name: app.name.clone(),
                });
            }
        }
        let mut members = Vec::new();
        for (i, bundle) in bundles.iter().enumerate() {
            let Some(found) = catalog.bundle(&self.namespace, bundle) else {
                self.deny(Violation::UnknownBundle {
                    field: format!("spec.bundles[{i}]"),
                    name: bundle.clone(),
                    namespace: self.namespace.clone(),
                    known: catalog.bundle_names(&self.namespace),
                });
                continue;
            };
            for member in &found.spec.apps {
                if insert(member.as_str()) {
                    members.push(member);
                }
            }
        }
        apps.extend(members.into_iter().map(|member| App {
            name: member.clone(),
            template: Some(member.clone()),
            ..App::default()
        }));
        apps
    }

    pub(super) fn expand_app(&mut self, i: usize, app: &mut App, env_name_len: usize) {
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
        let named = app.template.is_some();
        if !named && !explicit {
            app.template = Some(app.name.clone());
        }
        let catalog = self.catalog;
        let template = match &app.template {
            Some(t) => match catalog.template(&self.namespace, t) {
                Some(found) => Some(&found.spec),
                None => {
                    self.deny(Violation::UnknownTemplate {
                        field: format!("{field}.{}", if named { "template" } else { "name" }),
                        name: t.clone(),
                        namespace: self.namespace.clone(),
                        known: self.catalog.template_names(&self.namespace),
                    });
                    if !named {
                        app.template = None;
                    }
                    return;
                }
            },
            None => None,
        };
        // Without a template (an explicit app), there is nothing to apply.
        if let Some(template) = template {
            apply_template(app, template, explicit);
        }

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
        self.resolve_prefix(
            &field,
            app,
            template.and_then(|t| t.image_tag_prefix.as_deref()),
        );
        self.check_substitute(&format_args!("{field}.substitute"), &app.substitute);
    }

    pub(super) fn resolve_prefix(
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

    /// The GitRepository copies `sourceBranch` needs.
    pub(super) fn git_sources(
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
}

pub(super) fn apply_template(app: &mut App, template: &AppTemplateSpec, explicit: bool) {
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

pub(super) fn copy_git_repository(
    original: &GitRepository,
    env: &str,
    branch: &str,
) -> GitRepository {
    let spec = GitRepositorySpec {
        reference: Some(GitRepositoryRef {
            branch: Some(branch.to_owned()),
        }),
        ..original.spec.clone()
    };
    GitRepository::new(&names::child_name(env, &original.name_any()), spec)
}
