//! `ephemeral-webhook crds`: the CRDs as one multi-document YAML stream.

use std::io::Write;

/// Why the CRDs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CrdsError {
    /// Serialising to YAML failed.
    #[error("cannot serialise CRD {name} to YAML: {source}")]
    Yaml {
        /// The CRD.
        name: String,
        /// The cause.
        source: serde_saphyr::ser::Error,
    },
    /// Writing failed.
    #[error("cannot write CRDs: {0}")]
    Io(#[from] std::io::Error),
}

/// One CRD as a YAML document (no leading `---`).
pub fn to_yaml(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Result<String, CrdsError> {
    serde_saphyr::to_string(crd).map_err(|source| CrdsError::Yaml {
        name: crd.metadata.name.clone().unwrap_or_default(),
        source,
    })
}

/// Writes every CRD, each document introduced by `---`.
pub fn print(out: &mut impl Write) -> Result<(), CrdsError> {
    for crd in ephemeral_core::crd::all() {
        write!(out, "---\n{}", to_yaml(&crd)?)?;
    }
    Ok(())
}
