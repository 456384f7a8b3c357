//! Reading Environments and their catalog from files.

use std::io::Read;
use std::path::{Path, PathBuf};

use ephemeral_core::flux::GitRepository;
use ephemeral_core::{AppBundle, AppTemplate, Catalog, Environment};
use serde::de::DeserializeOwned;

/// Where a document came from: file and 1-based document number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file (`-` for standard input).
    pub path: PathBuf,
    /// 1-based index of the document in the file.
    pub document: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, document {}", self.path.display(), self.document)
    }
}

/// Why input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file or directory could not be read.
    #[error("{}: {source}. Fix: check the path passed to -f", path.display())]
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

/// Everything read from the input.
#[derive(Debug, Default)]
pub struct Input {
    /// Environments in input order.
    pub environments: Vec<(Origin, Environment)>,
    /// Templates, bundles, GitRepositories and resolved tags.
    pub catalog: Catalog,
    /// Documents that were skipped, for warnings.
    pub skipped: Vec<String>,
}

/// Reads every path (files, directories, `-`).
pub fn read(paths: &[PathBuf], recursive: bool) -> Result<Input, InputError> {
    let mut input = Input::default();
    for path in paths {
        for file in expand_path(path, recursive)? {
            let text = read_text(&file)?;
            input.add_file(&file, &text)?;
        }
    }
    Ok(input)
}

fn read_text(path: &Path) -> Result<String, InputError> {
    let err = |source| InputError::Read {
        path: path.to_path_buf(),
        source,
    };
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(err)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).map_err(err)
    }
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// The files a path stands for, sorted within each directory.
fn expand_path(path: &Path, recursive: bool) -> Result<Vec<PathBuf>, InputError> {
    if path == Path::new("-") {
        return Ok(vec![path.to_path_buf()]);
    }
    let err = |source| InputError::Read {
        path: path.to_path_buf(),
        source,
    };
    if !std::fs::metadata(path).map_err(err)?.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    entries.sort();
    let mut files = Vec::new();
    for entry in entries {
        if entry.is_dir() {
            if recursive {
                files.extend(expand_path(&entry, recursive)?);
            }
        } else if is_manifest(&entry) {
            files.push(entry);
        }
    }
    Ok(files)
}

impl Input {
    /// Adds the documents of one file.
    pub fn add_file(&mut self, path: &Path, text: &str) -> Result<(), InputError> {
        let documents: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(text).map_err(|e| InputError::Syntax {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        for (i, doc) in documents.into_iter().enumerate() {
            let origin = Origin {
                path: path.to_path_buf(),
                document: i + 1,
            };
            self.add_document(origin, doc)?;
        }
        Ok(())
    }

    fn add_document(&mut self, origin: Origin, doc: serde_json::Value) -> Result<(), InputError> {
        if doc.is_null() {
            return Ok(());
        }
        let api_version = doc
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let kind = doc.get("kind").and_then(|v| v.as_str()).unwrap_or_default();
        match (api_version, kind) {
            ("v1", "List") => {
                let items = doc
                    .get("items")
                    .and_then(|v| v.as_array())
                    .cloned()
                    .unwrap_or_default();
                for item in items {
                    self.add_document(origin.clone(), item)?;
                }
            }
            ("ephemeral.io/v1alpha1", "Environment") => {
                let env: Environment = decode(&origin, &doc, "environments")?;
                self.environments.push((origin, env));
            }
            ("ephemeral.io/v1alpha1", "AppTemplate") => {
                let t: AppTemplate = decode(&origin, &doc, "apptemplates")?;
                self.catalog.insert_template(t);
            }
            ("ephemeral.io/v1alpha1", "AppBundle") => {
                let b: AppBundle = decode(&origin, &doc, "appbundles")?;
                self.catalog.insert_bundle(b);
            }
            ("source.toolkit.fluxcd.io/v1", "GitRepository") => {
                let g: GitRepository = decode(&origin, &doc, "gitrepositories")?;
                self.catalog.insert_git_repository(g);
            }
            ("image.toolkit.fluxcd.io/v1", "ImagePolicy") => {
                let tag = doc.pointer("/status/latestRef/tag").and_then(|v| v.as_str());
                let name = doc.pointer("/metadata/name").and_then(|v| v.as_str());
                let namespace = doc
                    .pointer("/metadata/namespace")
                    .and_then(|v| v.as_str())
                    .unwrap_or("default");
                if let (Some(tag), Some(name)) = (tag, name) {
                    self.catalog.insert_image_tag(namespace, name, tag);
                }
            }
            _ => self.skipped.push(format!(
                "{origin}: skipped {} (not an Environment, AppTemplate, AppBundle, GitRepository or ImagePolicy)",
                if kind.is_empty() { "a document without kind".to_owned() } else { format!("{api_version} {kind}") }
            )),
        }
        Ok(())
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

fn decode<T: DeserializeOwned>(
    origin: &Origin,
    doc: &serde_json::Value,
    explain: &str,
) -> Result<T, InputError> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let field = e.path().to_string();
        InputError::Decode(Box::new(DecodeError {
            origin: origin.clone(),
            kind: doc
                .get("kind")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned(),
            name: doc
                .pointer("/metadata/name")
                .and_then(|v| v.as_str())
                .unwrap_or("<unnamed>")
                .to_owned(),
            explain: explain_path(explain, &field),
            field,
            message: e.into_inner().to_string(),
        }))
    })
}
