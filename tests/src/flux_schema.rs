//! Validation of objects against the real CRD schemas: Flux's upstream CRDs
//! (`$FLUX_CRDS_DIR`, default `../shared/flux-crds`) and our own.
//!
//! Structural schemas make the API server silently prune unknown fields, so a
//! misspelt field would vanish instead of failing. To catch that, every object
//! schema with `properties` (and no `x-kubernetes-preserve-unknown-fields`) is
//! made strict with `additionalProperties: false` before validating.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::flux_crds_dir;

/// Compiled schemas by `(apiVersion, kind)`.
pub struct Schemas {
    validators: BTreeMap<(String, String), jsonschema::Validator>,
}

fn strict(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    let preserve = map
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if map.contains_key("properties") && !preserve && !map.contains_key("additionalProperties") {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for key in ["properties", "patternProperties"] {
        if let Some(Value::Object(props)) = map.get_mut(key) {
            props.values_mut().for_each(strict);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(inner) = map.get_mut(key) {
            strict(inner);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(list)) = map.get_mut(key) {
            list.iter_mut().for_each(strict);
        }
    }
}

fn add_crd(validators: &mut BTreeMap<(String, String), jsonschema::Validator>, crd: &Value) {
    let group = crd["spec"]["group"].as_str().expect("crd group");
    let kind = crd["spec"]["names"]["kind"].as_str().expect("crd kind");
    for version in crd["spec"]["versions"].as_array().expect("crd versions") {
        let mut schema = version["schema"]["openAPIV3Schema"].clone();
        // The API server accepts these on every object, whether the schema
        // lists them or not (kube-derive's schemas do not).
        let props = schema["properties"]
            .as_object_mut()
            .expect("root properties");
        for (field, kind) in [
            ("apiVersion", "string"),
            ("kind", "string"),
            ("metadata", "object"),
        ] {
            props
                .entry(field)
                .or_insert_with(|| serde_json::json!({ "type": kind }));
        }
        strict(&mut schema);
        let api_version = format!(
            "{group}/{}",
            version["name"].as_str().expect("version name")
        );
        let validator = jsonschema::draft4::new(&schema).expect("CRD schema compiles");
        validators.insert((api_version, kind.to_owned()), validator);
    }
}

impl Schemas {
    /// The upstream Flux CRDs plus ours. The Flux folder is a documented
    /// need of the test tier (CONTRIBUTING.md): when it is missing this
    /// panics saying where it looked and how to point it elsewhere, so the
    /// check can never be skipped without a failing test.
    pub fn load() -> Schemas {
        let dir = flux_crds_dir();
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "the Flux CRDs are not readable at {} ({e}): the schema check needs the upstream \
                 Flux CRDs; put them there (../shared/flux-crds beside the workspace) or set \
                 FLUX_CRDS_DIR to a folder holding them",
                dir.display()
            )
        });
        let mut validators = BTreeMap::new();
        for entry in entries {
            let path = entry.expect("read flux-crds entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read CRD");
            for doc in serde_saphyr::from_multiple::<Value>(&text).expect("parse CRD") {
                if doc["kind"] == "CustomResourceDefinition" {
                    add_crd(&mut validators, &doc);
                }
            }
        }
        for crd in ephemeral_core::crd::all() {
            add_crd(
                &mut validators,
                &serde_json::to_value(crd).expect("our CRD serialises"),
            );
        }
        Schemas { validators }
    }

    /// Every way `object` breaks its CRD's schema (empty: valid). Panics when
    /// no CRD is known for its apiVersion and kind.
    pub fn violations(&self, object: &Value) -> Vec<String> {
        let key = (
            object["apiVersion"].as_str().unwrap_or_default().to_owned(),
            object["kind"].as_str().unwrap_or_default().to_owned(),
        );
        let validator = self
            .validators
            .get(&key)
            .unwrap_or_else(|| panic!("no CRD schema for {key:?}"));
        validator
            .iter_errors(object)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    /// Panics with every violation when `object` does not validate.
    pub fn assert_valid(&self, object: &Value) {
        let problems = self.violations(object);
        assert!(
            problems.is_empty(),
            "{} {} does not validate against its CRD:\n{}\n{}",
            object["kind"],
            object["metadata"]["name"],
            problems.join("\n"),
            serde_json::to_string_pretty(object).unwrap_or_default()
        );
    }
}
