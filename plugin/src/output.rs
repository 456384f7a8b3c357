//! Printing objects as a YAML stream or a JSON `List`.

use std::io::Write;

/// Why output failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Serialising failed.
    #[error("cannot serialise output: {0}")]
    Serialise(String),
    /// Writing failed.
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes each object as a YAML document introduced by `---`.
pub fn yaml_stream(out: &mut impl Write, objects: &[serde_json::Value]) -> Result<(), OutputError> {
    for object in objects {
        let text =
            serde_saphyr::to_string(object).map_err(|e| OutputError::Serialise(e.to_string()))?;
        write!(out, "---\n{text}")?;
    }
    Ok(())
}

/// Writes the objects as one pretty-printed `v1` `List`.
pub fn json_list(out: &mut impl Write, objects: Vec<serde_json::Value>) -> Result<(), OutputError> {
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
    serde_json::to_writer_pretty(&mut *out, &list)
        .map_err(|e| OutputError::Serialise(e.to_string()))?;
    writeln!(out)?;
    Ok(())
}
