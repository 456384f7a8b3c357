//! `render` and `serve --catalog-dir` read files the same way: the same
//! fixtures, loaded through render's input path
//! (`kubectl_ephemeral::input::read`) and the webhook's catalog path
//! (`ephemeral_webhook::catalog::load_dir`), give the same catalog, and an
//! Environment from the files expands the same against either. The
//! namespace-less case was a bug: render refused what the webhook admitted.

use std::path::{Path, PathBuf};

use ephemeral_core::files::DEFAULT_NAMESPACE;
use ephemeral_core::{Catalog, Config, expand};
use ephemeral_webhook::catalog::load_dir;
use kubectl_ephemeral::input;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What render reads (`render -R -f DIR`) and what `--catalog-dir DIR` loads.
fn both(dir: &Path) -> (input::Input, Catalog) {
    let rendered = input::read(&[dir.to_path_buf()], true, DEFAULT_NAMESPACE)
        .unwrap_or_else(|e| panic!("render's input path refuses {}: {e}", dir.display()));
    let served =
        load_dir(dir).unwrap_or_else(|e| panic!("--catalog-dir refuses {}: {e}", dir.display()));
    (rendered, served)
}

/// Expands every Environment read by render against render's catalog and
/// against the webhook's (plus the files' resolved tags, which the controller
/// observes in the cluster): both must give the same result, and admit it.
fn assert_same_expansions(rendered: &input::Input, served: &Catalog) {
    let now = "2026-11-21T09:00:00Z".parse().unwrap();
    let config = Config::default();
    let offline = rendered.catalog_with_image_tags();
    let mut cluster = served.clone();
    for t in &rendered.image_tags {
        cluster.insert_image_tag(&t.namespace, &t.name, &t.tag);
    }
    assert!(!rendered.environments.is_empty());
    for (origin, env) in &rendered.environments {
        let a = expand(env, &offline, &config, now, "alice")
            .unwrap_or_else(|d| panic!("{origin}: render refuses: {d}"));
        let b = expand(env, &cluster, &config, now, "alice")
            .unwrap_or_else(|d| panic!("{origin}: the webhook refuses: {d}"));
        assert_eq!(a.environment, b.environment, "{origin}");
        let values = |x: &ephemeral_core::Expansion| {
            x.objects.iter().map(|o| o.to_value()).collect::<Vec<_>>()
        };
        assert_eq!(values(&a), values(&b), "{origin}");
    }
}

#[test]
fn namespace_less_templates_and_environments_agree() {
    let dir = root().join("plugin/tests/fixtures/namespace-less");
    let (rendered, served) = both(&dir);
    assert_eq!(rendered.catalog, served);
    assert_eq!(served.template_names("default"), vec!["checkout"]);
    assert!(served.git_repository("default", "platform").is_some());
    let (_, env) = &rendered.environments[0];
    assert_eq!(env.metadata.namespace.as_deref(), Some("default"));
    assert_same_expansions(&rendered, &served);
}

#[test]
fn the_examples_agree() {
    let (rendered, served) = both(&root().join("examples"));
    assert_eq!(rendered.catalog, served);
    assert_eq!(rendered.environments.len(), 2);
    assert_same_expansions(&rendered, &served);
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn template(name: &str, namespace: Option<&str>) -> String {
    let namespace = namespace
        .map(|n| format!(", namespace: {n}"))
        .unwrap_or_default();
    format!(
        "apiVersion: ephemeral.io/v1alpha1\nkind: AppTemplate\nmetadata: {{name: {name}{namespace}}}\nspec:\n  kustomization: {{path: ./apps/{name}, sourceRef: {{kind: GitRepository, name: platform, namespace: flux-system}}}}\n"
    )
}

/// Every case of the rule at once: a mounted ConfigMap (hidden `..data`
/// directories reached through symlinks), hidden files and directories,
/// JSON, `List`s, multi-document files, unknown kinds, other extensions,
/// nested directories, a symlink loop.
#[cfg(unix)]
#[test]
fn every_case_of_the_rule_agrees() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A ConfigMap volume: the real files in a hidden, timestamped directory.
    write(
        &d.join("..2026_11_21_09_00_00.1/mounted.yaml"),
        &template("mounted", None),
    );
    symlink("..2026_11_21_09_00_00.1", d.join("..data")).unwrap();
    symlink("..data/mounted.yaml", d.join("mounted.yaml")).unwrap();
    // Hidden files and directories are not read.
    write(&d.join(".hidden.yaml"), &template("hidden", None));
    write(&d.join(".git/objects.yaml"), &template("in-git", None));
    // Other extensions are not read.
    write(&d.join("notes.txt"), "not: [yaml");
    write(&d.join("template.yaml.orig"), &template("orig", None));
    // JSON.
    write(
        &d.join("json.json"),
        r#"{"apiVersion": "ephemeral.io/v1alpha1", "kind": "AppBundle", "metadata": {"name": "shop"}, "spec": {"apps": ["mounted", "listed"]}}"#,
    );
    // A List, a multi-document file with unknown kinds, nested.
    write(
        &d.join("nested/deeper/list.yml"),
        &format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {{name: platform, namespace: flux-system}}\nspec: {{url: 'https://example.com/p.git', interval: 5m}}\n",
            template("listed", Some("team"))
                .trim_end()
                .replace('\n', "\n  ")
                + "\n"
        ),
    );
    // A link back up the tree is not walked twice.
    symlink("..", d.join("nested/up")).unwrap();
    write(
        &d.join("env.yaml"),
        "apiVersion: ephemeral.io/v1alpha1\nkind: Environment\nmetadata: {name: bob}\nspec: {bundles: [shop]}\n",
    );

    let (rendered, served) = both(d);
    assert_eq!(rendered.catalog, served);
    assert_eq!(served.template_names("default"), vec!["mounted"]);
    assert_eq!(served.template_names("team"), vec!["listed"]);
    assert_eq!(served.bundle_names("default"), vec!["shop"]);
    assert!(served.git_repository("flux-system", "platform").is_some());
    assert_eq!(rendered.skipped.len(), 1, "{:?}", rendered.skipped);
    assert_eq!(
        rendered.skipped[0].to_string(),
        format!(
            "{}, document 2: skipped v1 ConfigMap (not an Environment, EnvironmentSet, AppTemplate, AppBundle, GitRepository or ImagePolicy)",
            d.join("nested/deeper/list.yml").display()
        )
    );
    // The bundle names a template only in namespace "team": both refuse the
    // same way, so render's answer is the cluster's.
    let now = "2026-11-21T09:00:00Z".parse().unwrap();
    let (_, env) = &rendered.environments[0];
    let a = expand(env, &rendered.catalog, &Config::default(), now, "alice").unwrap_err();
    let b = expand(env, &served, &Config::default(), now, "alice").unwrap_err();
    assert_eq!(a.to_string(), b.to_string());
}

#[test]
fn both_refuse_the_same_files_with_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("bad.yaml"),
        "apiVersion: ephemeral.io/v1alpha1\nkind: AppBundle\nmetadata: {name: shop}\nspec: {apps: checkout}\n",
    );
    let a = input::read(&[dir.path().to_path_buf()], true, DEFAULT_NAMESPACE)
        .unwrap_err()
        .to_string();
    let b = load_dir(dir.path()).unwrap_err().to_string();
    assert_eq!(a, b);
    assert!(
        a.contains("document 1: AppBundle 'shop': field spec.apps"),
        "{a}"
    );
    assert!(a.contains("Fix: "), "{a}");
}
