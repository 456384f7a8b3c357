//! Schema helpers for fields that schemars cannot describe structurally.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose fields are free-form (Helm values).
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
