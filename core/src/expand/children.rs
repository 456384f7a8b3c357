//! The Flux objects an admitted Environment stands for.

use std::collections::BTreeMap;

use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use super::{APP_LABEL, ENVIRONMENT_LABEL, GitSources, MANAGED_BY, MANAGED_BY_LABEL, ResolvedTags};
use crate::api::{App, Environment, HelmSource, SourceRef};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::flux::{
    FluxObject, FluxSourceRef, HelmChartSpec, HelmChartTemplate, HelmDriftDetection, HelmInstall,
    HelmRelease, HelmReleaseSpec, HelmRemediation, HelmTest, HelmUninstall, HelmUpgrade,
    ImagePolicy, ImagePolicyChoice, ImagePolicySpec, ImageRepositoryNamespacedRef, Kustomization,
    KustomizationSpec, NumericalPolicy, PostBuild, TagFilter,
};
use crate::names::{self};
use crate::prefix;
use crate::set::generate::PullRequestOf;

pub(super) struct Children<'a> {
    pub(super) env: &'a Environment,
    pub(super) name: &'a str,
    pub(super) namespace: &'a str,
    pub(super) owner: &'a str,
    pub(super) uptime: &'a str,
    pub(super) config: &'a Config,
    pub(super) catalog: &'a Catalog,
    pub(super) git_sources: &'a GitSources,
    pub(super) tags: Option<ResolvedTags<'a>>,
}

impl Children<'_> {
    pub(super) fn build(&self) -> Vec<FluxObject> {
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
