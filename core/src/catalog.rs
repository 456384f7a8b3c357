//! What expansion reads from the cluster: templates, bundles, the
//! GitRepositories `sourceBranch` copies, and tags resolved by ImagePolicies.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::api::{AppBundle, AppTemplate};
use crate::flux::GitRepository;

/// `(namespace, name)`.
pub type Key = (String, String);

fn key<K: ResourceExt>(o: &K) -> Key {
    (o.namespace().unwrap_or_default(), o.name_any())
}

/// A snapshot of the objects expansion may read. Building one is cheap; the
/// webhook rebuilds it when its watches see a change.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    templates: BTreeMap<Key, AppTemplate>,
    bundles: BTreeMap<Key, AppBundle>,
    git_repositories: BTreeMap<Key, GitRepository>,
    image_tags: BTreeMap<Key, String>,
}

impl Catalog {
    /// Adds (or replaces) an AppTemplate.
    pub fn insert_template(&mut self, t: AppTemplate) {
        self.templates.insert(key(&t), t);
    }

    /// Adds (or replaces) an AppBundle.
    pub fn insert_bundle(&mut self, b: AppBundle) {
        self.bundles.insert(key(&b), b);
    }

    /// Adds (or replaces) a GitRepository that `sourceBranch` may copy.
    pub fn insert_git_repository(&mut self, g: GitRepository) {
        self.git_repositories.insert(key(&g), g);
    }

    /// Records the tag an ImagePolicy `namespace/name` resolved.
    pub fn insert_image_tag(&mut self, namespace: &str, name: &str, tag: &str) {
        self.image_tags
            .insert((namespace.to_owned(), name.to_owned()), tag.to_owned());
    }

    /// The AppTemplate `namespace/name`.
    pub fn template(&self, namespace: &str, name: &str) -> Option<&AppTemplate> {
        self.templates.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// The AppBundle `namespace/name`.
    pub fn bundle(&self, namespace: &str, name: &str) -> Option<&AppBundle> {
        self.bundles.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// The GitRepository `namespace/name`.
    pub fn git_repository(&self, namespace: &str, name: &str) -> Option<&GitRepository> {
        self.git_repositories
            .get(&(namespace.to_owned(), name.to_owned()))
    }

    /// The tag ImagePolicy `namespace/name` resolved, if any.
    pub fn image_tag(&self, namespace: &str, name: &str) -> Option<&str> {
        self.image_tags
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(String::as_str)
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
        self.templates.len() + self.bundles.len()
    }

    /// Whether the catalog holds no template and no bundle.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn names_in<V>(map: &BTreeMap<Key, V>, namespace: &str) -> Vec<String> {
    map.keys()
        .filter(|(ns, _)| ns == namespace)
        .map(|(_, n)| n.clone())
        .collect()
}
