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

/// Writes one object as YAML (no `---`, as `kubectl get -o yaml` prints one object).
pub fn yaml(out: &mut dyn Write, object: &serde_json::Value) -> Result<(), OutputError> {
    let text =
        serde_saphyr::to_string(object).map_err(|e| OutputError::Serialise(e.to_string()))?;
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Writes one object as pretty-printed JSON.
pub fn json(out: &mut dyn Write, object: &serde_json::Value) -> Result<(), OutputError> {
    serde_json::to_writer_pretty(&mut *out, object)
        .map_err(|e| OutputError::Serialise(e.to_string()))?;
    writeln!(out)?;
    Ok(())
}

/// A `v1` `List` of the items, as `kubectl get -o yaml|json` prints several objects.
pub fn list(items: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items})
}
