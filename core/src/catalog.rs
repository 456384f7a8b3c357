//! What expansion reads from the cluster: templates, bundles, the
//! GitRepositories `sourceBranch` copies, and tags resolved by ImagePolicies.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::api::{AppBundle, AppTemplate};
use crate::flux::GitRepository;

/// Objects by namespace, then name: looked up by `&str` without allocating.
type ByNamespace<V> = BTreeMap<String, BTreeMap<String, V>>;

fn insert<K: ResourceExt>(map: &mut ByNamespace<K>, o: K) {
    map.entry(o.namespace().unwrap_or_default())
        .or_default()
        .insert(o.name_any(), o);
}

fn get<'a, V>(map: &'a ByNamespace<V>, namespace: &str, name: &str) -> Option<&'a V> {
    map.get(namespace)?.get(name)
}

/// A snapshot of the objects expansion may read. Building one is cheap; the
/// webhook rebuilds it when its watches see a change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    templates: ByNamespace<AppTemplate>,
    bundles: ByNamespace<AppBundle>,
    git_repositories: ByNamespace<GitRepository>,
    image_tags: ByNamespace<String>,
}

impl Catalog {
    /// Adds (or replaces) an AppTemplate.
    pub fn insert_template(&mut self, t: AppTemplate) {
        insert(&mut self.templates, t);
    }

    /// Adds (or replaces) an AppBundle.
    pub fn insert_bundle(&mut self, b: AppBundle) {
        insert(&mut self.bundles, b);
    }

    /// Adds (or replaces) a GitRepository that `sourceBranch` may copy.
    pub fn insert_git_repository(&mut self, g: GitRepository) {
        insert(&mut self.git_repositories, g);
    }

    /// Records the tag an ImagePolicy `namespace/name` resolved.
    pub fn insert_image_tag(&mut self, namespace: &str, name: &str, tag: &str) {
        self.image_tags
            .entry(namespace.to_owned())
            .or_default()
            .insert(name.to_owned(), tag.to_owned());
    }

    /// The AppTemplate `namespace/name`.
    pub fn template(&self, namespace: &str, name: &str) -> Option<&AppTemplate> {
        get(&self.templates, namespace, name)
    }

    /// The AppBundle `namespace/name`.
    pub fn bundle(&self, namespace: &str, name: &str) -> Option<&AppBundle> {
        get(&self.bundles, namespace, name)
    }

    /// The GitRepository `namespace/name`.
    pub fn git_repository(&self, namespace: &str, name: &str) -> Option<&GitRepository> {
        get(&self.git_repositories, namespace, name)
    }

    /// The tag ImagePolicy `namespace/name` resolved, if any.
    pub fn image_tag(&self, namespace: &str, name: &str) -> Option<&str> {
        get(&self.image_tags, namespace, name).map(String::as_str)
    }

    /// Names of the AppTemplates in `namespace`, sorted.
    pub fn template_names(&self, namespace: &str) -> Vec<String> {
        names_in(&self.templates, namespace)
    }

    /// Names of the AppBundles in `namespace`, sorted.
    pub fn bundle_names(&self, namespace: &str) -> Vec<String> {
        names_in(&self.bundles, namespace)
    }

    /// Number of templates and bundles, for logs and readiness.
    pub fn len(&self) -> usize {
        total(&self.templates) + total(&self.bundles)
    }

    /// Whether the catalog holds no template and no bundle.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn total<V>(map: &ByNamespace<V>) -> usize {
    map.values().map(BTreeMap::len).sum()
}

fn names_in<V>(map: &ByNamespace<V>, namespace: &str) -> Vec<String> {
    map.get(namespace)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}
