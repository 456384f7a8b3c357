//! "Would applying this change anything?" without keeping the object: a
//! digest of a stored child projected on the fields our field manager's
//! apply owns (its `managedFields` entry), compared with the digest of the
//! body we would apply. Pure.
//!
//! The projection keeps, of the stored object, exactly the fields the
//! entry's `fieldsV1` names with `f:<name>`: a map named with sub-fields is
//! projected on them, anything else (a leaf, a list: lists are compared
//! whole, as `k:`/`v:`/`i:` items say nothing about other managers' items)
//! is taken whole. Both sides drop `apiVersion`, `kind`, `metadata.name`
//! and `metadata.namespace` (the child's identity, equal by construction),
//! nulls and empty maps. So the digests are equal exactly when every field
//! we set holds our value and no field we set before is missing from the
//! body (a field dropped from the body must be applied away). Without our
//! entry there is no digest, and the child is applied.

use kube::api::DynamicObject;
use ring::digest::{Context, SHA256};
use serde_json::{Map, Value};

use super::FIELD_MANAGER;

/// SHA-256 of a canonical form of the fields we manage.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// The digest of what `object` holds of the fields our apply owns; None
/// without a managed-fields entry of [`FIELD_MANAGER`]'s apply.
pub fn stored(object: &DynamicObject) -> Option<Digest> {
    let owned = object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| {
            m.manager.as_deref() == Some(FIELD_MANAGER)
                && m.operation.as_deref() == Some("Apply")
                && m.subresource.as_deref().unwrap_or_default().is_empty()
        })
        .and_then(|m| m.fields_v1.as_ref())?;
    let value = serde_json::to_value(object).ok()?;
    Some(digest(&project(&value, &owned.0)))
}

/// The digest of the body of an apply.
pub fn desired(body: &Value) -> Digest {
    digest(body)
}

/// `value` restricted to the fields `owned` (fieldsV1) names.
fn project(value: &Value, owned: &Value) -> Value {
    let (Value::Object(map), Some(owned)) = (value, owned.as_object()) else {
        return value.clone();
    };
    let named = owned.keys().any(|k| k.starts_with("f:") || k == ".");
    if !named {
        return value.clone();
    }
    let out: Map<String, Value> = owned
        .iter()
        .filter_map(|(key, sub)| {
            let field = key.strip_prefix("f:")?;
            map.get(field).map(|v| (field.to_owned(), project(v, sub)))
        })
        .collect();
    Value::Object(out)
}

fn digest(value: &Value) -> Digest {
    let mut ctx = Context::new(&SHA256);
    if let Value::Object(top) = value {
        let mut top = top.clone();
        top.remove("apiVersion");
        top.remove("kind");
        if let Some(Value::Object(meta)) = top.get_mut("metadata") {
            meta.remove("name");
            meta.remove("namespace");
        }
        feed(&mut ctx, &Value::Object(top));
    } else {
        feed(&mut ctx, value);
    }
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Digest(out)
}

/// Whether `value` counts as absent: null, or a map of nothing but absent values.
fn absent(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(m) => m.values().all(absent),
        _ => false,
    }
}

/// Feeds a canonical, self-delimiting encoding of `value` (map keys sorted,
/// absent values dropped).
fn feed(ctx: &mut Context, value: &Value) {
    let text = |ctx: &mut Context, tag: u8, s: &str| {
        ctx.update(&[tag]);
        ctx.update(&(s.len() as u64).to_le_bytes());
        ctx.update(s.as_bytes());
    };
    match value {
        Value::Null => ctx.update(b"n"),
        Value::Bool(b) => ctx.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => text(ctx, b'#', &n.to_string()),
        Value::String(s) => text(ctx, b'"', s),
        Value::Array(items) => {
            ctx.update(b"[");
            ctx.update(&(items.len() as u64).to_le_bytes());
            for item in items {
                feed(ctx, item);
            }
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map
                .iter()
                .filter(|(_, v)| !absent(v))
                .map(|(k, _)| k)
                .collect();
            keys.sort();
            ctx.update(b"{");
            ctx.update(&(keys.len() as u64).to_le_bytes());
            for key in keys {
                text(ctx, b'k', key);
                feed(ctx, &map[key]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    fn body() -> Value {
        json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
               "metadata": {"name": "alice-web", "namespace": "shop", "labels": {"a": "1"}},
               "spec": {"path": "./web", "suspend": false, "postBuild": {"substitute": {"x": "1"}},
                        "dependsOn": [{"name": "db"}]}})
    }

    /// `body` as stored after our apply, plus fields of other managers.
    fn applied(body: &Value, owned: Value) -> DynamicObject {
        let mut stored = body.clone();
        stored["metadata"]["uid"] = json!("u");
        stored["metadata"]["labels"]["other"] = json!("2");
        stored["metadata"]["finalizers"] = json!(["finalizers.fluxcd.io"]);
        stored["spec"]["force"] = json!(false);
        stored["status"] = json!({"observedGeneration": 1});
        stored["metadata"]["managedFields"] = json!([
            {"manager": "kustomize-controller", "operation": "Update", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:metadata": {"f:finalizers": {}}, "f:spec": {"f:force": {}}}},
            {"manager": FIELD_MANAGER, "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": owned}]);
        object(stored)
    }

    fn ours() -> Value {
        json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}},
               "f:spec": {"f:path": {}, "f:suspend": {}, "f:postBuild": {"f:substitute": {"f:x": {}}},
                          "f:dependsOn": {}}})
    }

    #[test]
    fn a_child_as_we_applied_it_matches_whatever_others_added() {
        let stored = stored(&applied(&body(), ours())).unwrap();
        assert_eq!(stored, desired(&body()));
    }

    #[test]
    fn a_changed_value_or_a_field_we_no_longer_set_does_not_match() {
        let stored = stored(&applied(&body(), ours())).unwrap();
        let mut changed = body();
        changed["spec"]["path"] = json!("./other");
        assert_ne!(stored, desired(&changed));
        let mut dropped = body();
        dropped["spec"]["postBuild"]["substitute"]
            .as_object_mut()
            .unwrap()
            .remove("x");
        assert_ne!(stored, desired(&dropped));
        let mut added = body();
        added["spec"]["prune"] = json!(true);
        assert_ne!(stored, desired(&added));
        let mut list = body();
        list["spec"]["dependsOn"] = json!([{"name": "db"}, {"name": "cache"}]);
        assert_ne!(stored, desired(&list));
    }

    #[test]
    fn another_managers_value_in_a_field_of_ours_does_not_match() {
        let mut o = applied(&body(), ours());
        o.data["spec"]["path"] = json!("./taken-over");
        assert_ne!(stored(&o).unwrap(), desired(&body()));
    }

    #[test]
    fn without_our_apply_entry_there_is_no_digest() {
        let mut o = applied(&body(), ours());
        o.metadata.managed_fields.as_mut().unwrap().pop();
        assert_eq!(stored(&o), None);
    }

    #[test]
    fn nulls_and_key_order_do_not_count() {
        let mut with_null = body();
        with_null["spec"]["timeout"] = Value::Null;
        assert_eq!(desired(&with_null), desired(&body()));
        let reordered: Value = serde_json::from_str(
            r#"{"spec": {"dependsOn": [{"name": "db"}], "postBuild": {"substitute": {"x": "1"}}, "suspend": false, "path": "./web"},
                "metadata": {"labels": {"a": "1"}}}"#,
        )
        .unwrap();
        assert_eq!(desired(&reordered), desired(&body()));
    }
}
