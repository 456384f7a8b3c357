//! Shared fixtures built from the repository's own `examples/`: the example
//! catalog as `render` and `serve --catalog-dir` load it, and Environments as
//! a person writes them or as the webhook admits them.

use std::path::PathBuf;

use ephemeral_core::files::{self, DEFAULT_NAMESPACE};
use ephemeral_core::{Catalog, Config, Environment, expand};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::workspace_root;

/// The folder of the example catalog: sources, templates, bundles, tags.
pub fn example_catalog_dir() -> PathBuf {
    workspace_root().join("examples/catalog")
}

/// The example catalog (`examples/catalog/`), with the image tags its files
/// declare, loaded by the one loader `render` and `serve --catalog-dir` share.
pub fn example_catalog() -> Catalog {
    files::load(&[example_catalog_dir()], true, DEFAULT_NAMESPACE)
        .unwrap_or_else(|e| panic!("the example catalog does not load: {e}"))
        .catalog_with_image_tags()
}

/// An Environment as a person writes it: `name` in `namespace` with this
/// `spec` (JSON, as in YAML).
pub fn environment(name: &str, namespace: &str, spec: Value) -> Environment {
    serde_json::from_value(json!({
        "apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))
    .unwrap_or_else(|e| panic!("fixture {name} is not an Environment: {e}"))
}

/// `env` as the real expansion admits it for `owner` at `at`, against
/// `catalog` and the default configuration (what the webhook stores).
pub fn admitted(env: &Environment, catalog: &Catalog, owner: &str, at: Timestamp) -> Environment {
    expand(env, catalog, &Config::default(), at, owner)
        .unwrap_or_else(|d| {
            panic!(
                "fixture {} is refused: {d}",
                env.metadata.name.as_deref().unwrap_or("?")
            )
        })
        .environment
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_catalog_admits_an_environment_of_its_templates() {
        let catalog = example_catalog();
        let env = environment(
            "alice",
            "ephemeral",
            json!({"apps": [{"name": "checkout"}, {"name": "payments"}]}),
        );
        let at: Timestamp = "2026-11-21T09:00:00Z".parse().unwrap();
        let admitted = admitted(&env, &catalog, "alice", at);
        assert_eq!(admitted.spec.apps.len(), 2);
        assert_eq!(
            admitted.spec.apps[0].image_tag_prefix.as_deref(),
            Some("main"),
            "checkout's prefix comes from its template"
        );
    }
}
