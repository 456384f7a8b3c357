// Over 400 lines of non-test code: the one loader's rules (kinds, List, namespaces, hidden files, symlinks) and its error messages, which name the file, document and field; apart they would share every private helper.
//! Reading Environments and their catalog from YAML and JSON files: the one
//! loader behind `kubectl ephemeral render` (and `create -f`) and
//! `ephemeral-webhook serve --catalog-dir`, so both see the same objects.
//! Behind the `files` feature: without it the core does no I/O.
//!
//! # The rule
//!
//! - **Paths.** A path given explicitly (`render -f PATH`, `--catalog-dir
//!   DIR`) is read whatever its name; a directory stands for its files.
//! - **Directories.** Entries are taken in byte order of their names, depth
//!   first. Entries whose name starts with `.` are skipped, files and
//!   directories alike (`.git`, editor files, and the `..data` and
//!   `..<timestamp>` directories of a mounted ConfigMap, whose files are read
//!   once through the ConfigMap's top-level links). Files named `*.yaml`,
//!   `*.yml` or `*.json` are read, others ignored. Subdirectories are walked
//!   when the caller asks for it (`render -R`; `--catalog-dir` always does).
//! - **Symlinks** are followed, to files and to directories (a mounted
//!   ConfigMap is a tree of them); a directory that is already being walked
//!   (a link back up the tree) is not walked again. A dangling link is an
//!   error naming it.
//! - **Documents.** A file holds one or more YAML documents separated by
//!   `---`; JSON is read by the same parser (JSON is YAML), so a `.json` file
//!   holds one object (or several, separated by `---`). Empty documents are
//!   ignored and not counted: document N is the file's N-th non-empty one.
//! - **Lists.** A document whose `kind` ends in `List` and that has an
//!   `items` array (`kind: List` as `kubectl get -o yaml` prints it, or
//!   `AppTemplateList`) stands for its items, in order; errors name the item.
//! - **Kinds.** `ephemeral.io/v1alpha1` Environment, EnvironmentSet,
//!   AppTemplate and AppBundle; `source.toolkit.fluxcd.io/v1` GitRepository (what
//!   `sourceBranch` copies); `image.toolkit.fluxcd.io/v1` ImagePolicy, whose
//!   `status.latestRef.tag` is a resolved tag (one without it is ignored).
//!   Anything else, another version of those kinds included, is skipped and
//!   reported in [`Loaded::skipped`]: `render` warns, `serve` logs.
//! - **Namespaces.** An object without `metadata.namespace` is put in the
//!   namespace the caller names: [`DEFAULT_NAMESPACE`] for `render` and
//!   `--catalog-dir`, as `kubectl apply` does in a context without a
//!   namespace, so a namespace-less Environment finds namespace-less
//!   templates; `create -f` uses the context's namespace.
//! - **Duplicates.** A later object of the same kind, namespace and name
//!   replaces an earlier one, as a second `kubectl apply` would.
//! - **Errors** name the file (and the document and item), the field, and
//!   what to do: a file that cannot be read, YAML that does not parse, an
//!   object of a known kind that does not match its schema (or a catalog
//!   object without `metadata.name`).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::Environment;
use crate::catalog::Catalog;
use crate::flux::GitRepository;
use crate::set::{EnvironmentSet, PullRequest};

mod walk;

pub use walk::{EXTENSIONS, files};

/// Namespace of objects without one, for `render` and `--catalog-dir`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Where an object came from: file, 1-based document number and, for an
/// item of a `List`, its 1-based position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file (`-` for standard input).
    pub path: PathBuf,
    /// 1-based index of the document among the file's non-empty ones.
    pub document: usize,
    /// 1-based index of the item when the document is a `List`.
    pub item: Option<usize>,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, document {}", self.path.display(), self.document)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        Ok(())
    }
}

/// Why files could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("{}: {source}. Fix: check that the path exists and is readable", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not valid YAML or JSON.
    #[error("{}: not valid YAML; fix the syntax at the position shown:\n{message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with its position.
        message: String,
    },
    /// A document of a known kind does not match its schema.
    #[error(transparent)]
    Decode(Box<DecodeError>),
    /// A pull-request file is not a list of pull requests in GitHub's shape.
    #[error(
        "{}: not a list of pull requests: field {field}: {message}. Fix: give a JSON array shaped like GitHub's answer to GET /repos/OWNER/REPO/pulls",
        path.display()
    )]
    PullRequests {
        /// The file.
        path: PathBuf,
        /// Path of the bad field, e.g. `[1].head.sha`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// Reads a list of pull requests shaped like GitHub's answer to `GET
/// /repos/{owner}/{repo}/pulls` (JSON, or the same in YAML) from `text`;
/// `path` only names it in errors.
pub fn pull_requests(path: &Path, text: &str) -> Result<Vec<PullRequest>, LoadError> {
    let value: Value = serde_saphyr::from_str(text).map_err(|e| LoadError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    serde_path_to_error::deserialize(&value).map_err(|e| LoadError::PullRequests {
        path: path.to_path_buf(),
        field: e.path().to_string(),
        message: e.into_inner().to_string(),
    })
}

/// A document of a known kind that does not match its schema.
#[derive(Debug, thiserror::Error)]
#[error(
    "{origin}: {kind} '{name}': field {field}: {message}. Fix: correct that field (see `kubectl explain {explain}`)"
)]
pub struct DecodeError {
    /// Where the document is.
    pub origin: Origin,
    /// Its kind.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Path of the bad field.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to pass to `kubectl explain`.
    pub explain: String,
}

/// A document that was not loaded because its kind is not one the loader reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Where it is.
    pub origin: Origin,
    /// Its `apiVersion` (may be empty).
    pub api_version: String,
    /// Its `kind` (may be empty).
    pub kind: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: skipped ", self.origin)?;
        if self.kind.is_empty() {
            f.write_str("a document without kind")?;
        } else {
            write!(f, "{} {}", self.api_version, self.kind)?;
        }
        f.write_str(
            " (not an Environment, EnvironmentSet, AppTemplate, AppBundle, GitRepository or ImagePolicy)",
        )
    }
}

/// A tag an ImagePolicy in the files resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageTag {
    /// Where the ImagePolicy is.
    pub origin: Origin,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// `status.latestRef.tag`.
    pub tag: String,
}

/// Everything read from files.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// Environments in input order.
    pub environments: Vec<(Origin, Environment)>,
    /// EnvironmentSets in input order.
    pub sets: Vec<(Origin, EnvironmentSet)>,
    /// AppTemplates, AppBundles and GitRepositories. Resolved tags are kept
    /// apart in [`Loaded::image_tags`]: in the cluster they are observed, not
    /// part of the catalog; [`Loaded::catalog_with_image_tags`] joins them.
    pub catalog: Catalog,
    /// Tags resolved by ImagePolicies, in input order.
    pub image_tags: Vec<ImageTag>,
    /// Documents that were skipped.
    pub skipped: Vec<Skipped>,
}

/// Reads every path in order (see the [module](self) for the rule), putting
/// objects without a namespace in `default_namespace`.
pub fn load(
    paths: &[PathBuf],
    recursive: bool,
    default_namespace: &str,
) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    for path in paths {
        loaded.add_path(path, recursive, default_namespace)?;
    }
    Ok(loaded)
}

impl Loaded {
    /// Adds the objects of every file `path` stands for.
    pub fn add_path(
        &mut self,
        path: &Path,
        recursive: bool,
        default_namespace: &str,
    ) -> Result<(), LoadError> {
        for file in files(path, recursive)? {
            let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Read {
                path: file.clone(),
                source,
            })?;
            self.add_text(&file, &text, default_namespace)?;
        }
        Ok(())
    }

    /// Adds the objects of one file's text; `path` only names it in errors.
    pub fn add_text(
        &mut self,
        path: &Path,
        text: &str,
        default_namespace: &str,
    ) -> Result<(), LoadError> {
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(text).map_err(|e| LoadError::Syntax {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        for (i, doc) in documents.into_iter().enumerate() {
            let origin = Origin {
                path: path.to_path_buf(),
                document: i + 1,
                item: None,
            };
            self.add_document(origin, doc, default_namespace)?;
        }
        Ok(())
    }

    /// The catalog with the resolved tags added, as expansion reads it offline.
    pub fn catalog_with_image_tags(&self) -> Catalog {
        let mut catalog = self.catalog.clone();
        for t in &self.image_tags {
            catalog.insert_image_tag(&t.namespace, &t.name, &t.tag);
        }
        catalog
    }

    fn add_document(
        &mut self,
        origin: Origin,
        mut doc: Value,
        default_namespace: &str,
    ) -> Result<(), LoadError> {
        if doc.is_null() {
            return Ok(());
        }
        let text = |doc: &Value, key: &str| {
            doc.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let api_version = text(&doc, "apiVersion");
        let kind = text(&doc, "kind");
        if origin.item.is_none()
            && kind.ends_with("List")
            && let Some(Value::Array(items)) = doc.get_mut("items").map(Value::take)
        {
            for (i, item) in items.into_iter().enumerate() {
                let origin = Origin {
                    item: Some(i + 1),
                    ..origin.clone()
                };
                self.add_document(origin, item, default_namespace)?;
            }
            return Ok(());
        }
        let resource = match (api_version.as_str(), kind.as_str()) {
            ("ephemeral.io/v1alpha1", "Environment") => "environments",
            ("ephemeral.io/v1alpha1", "EnvironmentSet") => "environmentsets",
            ("ephemeral.io/v1alpha1", "AppTemplate") => "apptemplates",
            ("ephemeral.io/v1alpha1", "AppBundle") => "appbundles",
            ("source.toolkit.fluxcd.io/v1", "GitRepository") => "gitrepositories",
            ("image.toolkit.fluxcd.io/v1", "ImagePolicy") => "imagepolicies",
            _ => {
                self.skipped.push(Skipped {
                    origin,
                    api_version,
                    kind,
                });
                return Ok(());
            }
        };
        default_namespace_of(&mut doc, default_namespace);
        let catalog_kind = !matches!(
            resource,
            "environments" | "environmentsets" | "imagepolicies"
        );
        if catalog_kind
            && doc
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_none()
        {
            return Err(decode_error(
                &origin,
                &doc,
                resource,
                "metadata.name".to_owned(),
                "is missing".to_owned(),
            ));
        }
        match resource {
            "environments" => {
                let env: Environment = decode(&origin, &doc, resource)?;
                self.environments.push((origin, env));
            }
            "environmentsets" => {
                let set: EnvironmentSet = decode(&origin, &doc, resource)?;
                self.sets.push((origin, set));
            }
            "apptemplates" => self
                .catalog
                .insert_template(decode(&origin, &doc, resource)?),
            "appbundles" => self.catalog.insert_bundle(decode(&origin, &doc, resource)?),
            "gitrepositories" => {
                let g: GitRepository = decode(&origin, &doc, resource)?;
                self.catalog.insert_git_repository(g);
            }
            _ => {
                let tag = doc.pointer("/status/latestRef/tag").and_then(Value::as_str);
                let name = doc.pointer("/metadata/name").and_then(Value::as_str);
                let namespace = doc.pointer("/metadata/namespace").and_then(Value::as_str);
                if let (Some(tag), Some(name), Some(namespace)) = (tag, name, namespace) {
                    self.image_tags.push(ImageTag {
                        origin,
                        namespace: namespace.to_owned(),
                        name: name.to_owned(),
                        tag: tag.to_owned(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Sets `metadata.namespace` when the document names none (a document whose
/// `metadata` is not a map is left for decoding to refuse).
fn default_namespace_of(doc: &mut Value, namespace: &str) {
    let Some(map) = doc.as_object_mut() else {
        return;
    };
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(metadata) = metadata.as_object_mut()
        && !metadata.get("namespace").is_some_and(Value::is_string)
    {
        metadata.insert("namespace".to_owned(), Value::String(namespace.to_owned()));
    }
}

/// `kubectl explain` path for a field path: indices dropped, e.g.
/// `environments.spec.apps.substitute` for `spec.apps[0].substitute.port`
/// (map keys are not explainable, so a trailing key of a map is dropped too).
fn explain_path(resource: &str, field: &str) -> String {
    let mut out = resource.to_owned();
    for part in field.split('.') {
        let part = part.split('[').next().unwrap_or_default();
        if part.is_empty() || matches!(out.rsplit('.').next(), Some("substitute" | "values")) {
            continue;
        }
        out.push('.');
        out.push_str(part);
    }
    out
}

fn decode_error(
    origin: &Origin,
    doc: &Value,
    resource: &str,
    field: String,
    message: String,
) -> LoadError {
    LoadError::Decode(Box::new(DecodeError {
        origin: origin.clone(),
        kind: doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        name: doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>")
            .to_owned(),
        explain: explain_path(resource, &field),
        field,
        message,
    }))
}

fn decode<T: DeserializeOwned>(
    origin: &Origin,
    doc: &Value,
    resource: &str,
) -> Result<T, LoadError> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let field = e.path().to_string();
        decode_error(origin, doc, resource, field, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Loaded, LoadError> {
        let mut loaded = Loaded::default();
        loaded.add_text(Path::new("t.yaml"), text, DEFAULT_NAMESPACE)?;
        Ok(loaded)
    }

    const TEMPLATE: &str = "apiVersion: ephemeral.io/v1alpha1\nkind: AppTemplate\nmetadata: {name: checkout}\nspec: {kustomization: {path: ./x, sourceRef: {kind: GitRepository, name: platform}}}\n";

    #[test]
    fn objects_without_a_namespace_go_to_the_default_one() {
        let text = format!(
            "{TEMPLATE}---\napiVersion: ephemeral.io/v1alpha1\nkind: Environment\nmetadata: {{name: alice}}\nspec: {{apps: [{{name: checkout}}]}}\n"
        );
        let loaded = load_text(&text).unwrap();
        assert_eq!(loaded.catalog.template_names("default"), vec!["checkout"]);
        let env = &loaded.environments[0].1;
        assert_eq!(env.metadata.namespace.as_deref(), Some("default"));

        let mut other = Loaded::default();
        other
            .add_text(Path::new("t.yaml"), &text, "team-a")
            .unwrap();
        assert_eq!(other.catalog.template_names("team-a"), vec!["checkout"]);
    }

    #[test]
    fn lists_stand_for_their_items_and_errors_name_the_item() {
        let loaded = load_text(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: ephemeral.io/v1alpha1\n  kind: AppBundle\n  metadata: {name: shop, namespace: ephemeral}\n  spec: {apps: [a]}\n---\napiVersion: ephemeral.io/v1alpha1\nkind: AppTemplateList\nitems: []\n",
        )
        .unwrap();
        assert_eq!(loaded.catalog.bundle_names("ephemeral"), vec!["shop"]);
        assert!(loaded.skipped.is_empty());

        let err = load_text(
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap}\n- apiVersion: ephemeral.io/v1alpha1\n  kind: AppBundle\n  metadata: {name: shop}\n  spec: {apps: a}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("t.yaml, document 1, item 2: AppBundle 'shop': field spec.apps: "),
            "{err}"
        );
    }

    #[test]
    fn unknown_kinds_and_versions_are_skipped_and_reported() {
        let loaded = load_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n---\napiVersion: source.toolkit.fluxcd.io/v1beta2\nkind: GitRepository\nmetadata: {name: old}\n---\nfoo: bar\n",
        )
        .unwrap();
        let skipped: Vec<String> = loaded.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            skipped,
            [
                "t.yaml, document 1: skipped v1 ConfigMap (not an Environment, EnvironmentSet, AppTemplate, AppBundle, GitRepository or ImagePolicy)",
                "t.yaml, document 2: skipped source.toolkit.fluxcd.io/v1beta2 GitRepository (not an Environment, EnvironmentSet, AppTemplate, AppBundle, GitRepository or ImagePolicy)",
                "t.yaml, document 3: skipped a document without kind (not an Environment, EnvironmentSet, AppTemplate, AppBundle, GitRepository or ImagePolicy)",
            ]
        );
    }

    #[test]
    fn json_is_read_by_the_same_parser() {
        let loaded = load_text(
            r#"{"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy", "metadata": {"name": "p"}, "status": {"latestRef": {"tag": "main-abc-1"}}}"#,
        )
        .unwrap();
        assert_eq!(
            loaded.catalog_with_image_tags().image_tag("default", "p"),
            Some("main-abc-1")
        );
        assert_eq!(loaded.catalog.image_tag("default", "p"), None);
    }

    #[test]
    fn environment_sets_are_read_and_pull_request_files_name_the_bad_field() {
        let loaded = load_text(
            "apiVersion: ephemeral.io/v1alpha1\nkind: EnvironmentSet\nmetadata: {name: prs}\nspec:\n  pullRequests: {github: {owner: acme, repo: shop, tokenSecretRef: {name: g, key: t}}}\n  template: {spec: {apps: [{name: shop}]}}\n",
        )
        .unwrap();
        assert_eq!(
            loaded.sets[0].1.metadata.namespace.as_deref(),
            Some("default")
        );

        let prs = pull_requests(
            Path::new("prs.json"),
            r#"[{"number": 1, "state": "open", "user": {"login": "a"}, "head": {"ref": "x", "sha": "1"}, "base": {"ref": "main", "sha": "2"}}]"#,
        )
        .unwrap();
        assert_eq!(prs[0].head.branch, "x");
        let err = pull_requests(
            Path::new("prs.json"),
            r#"[{"number": 1, "state": "open", "user": {"login": "a"}, "head": {"ref": "x"}, "base": {"ref": "main", "sha": "2"}}]"#,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "prs.json: not a list of pull requests: field [0].head: missing field `sha`. Fix: give a JSON array shaped like GitHub's answer to GET /repos/OWNER/REPO/pulls"
        );
    }

    #[test]
    fn a_catalog_object_needs_a_name() {
        let err =
            load_text("apiVersion: ephemeral.io/v1alpha1\nkind: AppBundle\nspec: {apps: [a]}\n")
                .unwrap_err()
                .to_string();
        assert_eq!(
            err,
            "t.yaml, document 1: AppBundle '<unnamed>': field metadata.name: is missing. Fix: correct that field (see `kubectl explain appbundles.metadata.name`)"
        );
    }

    #[test]
    fn syntax_errors_name_the_file() {
        let err = load_text("kind: [unclosed\n").unwrap_err().to_string();
        assert!(
            err.starts_with("t.yaml: not valid YAML; fix the syntax at the position shown:\n"),
            "{err}"
        );
    }

    #[test]
    fn explain_paths_drop_indices_and_map_keys() {
        assert_eq!(
            explain_path("environments", "spec.apps[0].substitute.port"),
            "environments.spec.apps.substitute"
        );
        assert_eq!(
            explain_path("environments", "spec.lease.until"),
            "environments.spec.lease.until"
        );
    }
}
