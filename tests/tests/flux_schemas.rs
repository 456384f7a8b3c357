//! Every object `kubectl-ephemeral render` emits validates against the real
//! CRD schemas: Flux's upstream CRDs (`$FLUX_CRDS_DIR`, default
//! `../shared/flux-crds`) for the children, our own CRD for the Environment.
//!
//! Structural schemas make the API server silently prune unknown fields, so a
//! misspelt field would vanish instead of failing. To catch that, every object
//! schema with `properties` (and no `x-kubernetes-preserve-unknown-fields`) is
//! made strict with `additionalProperties: false` before validating.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use ephemeral_e2e::{binary, flux_crds_dir, workspace_root};
use serde_json::Value;

type Schemas = BTreeMap<(String, String), Value>;

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

fn add_crd(schemas: &mut Schemas, crd: &Value) {
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
        schemas.insert((api_version, kind.to_owned()), schema);
    }
}

/// The upstream Flux CRDs plus ours, or None when the Flux folder is missing.
fn schemas() -> Option<Schemas> {
    let dir = flux_crds_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        let message = format!(
            "Flux CRDs not found at {} (set FLUX_CRDS_DIR): the Flux schema check did NOT run",
            dir.display()
        );
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{message}");
        }
        eprintln!("\n!!!!!!!! WARNING: {message} !!!!!!!!\n");
        return None;
    };
    let mut schemas = Schemas::new();
    for entry in entries {
        let path = entry.expect("read flux-crds entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read CRD");
        for doc in serde_saphyr::from_multiple::<Value>(&text).expect("parse CRD") {
            if doc["kind"] == "CustomResourceDefinition" {
                add_crd(&mut schemas, &doc);
            }
        }
    }
    for crd in ephemeral_core::crd::all() {
        add_crd(
            &mut schemas,
            &serde_json::to_value(crd).expect("our CRD serialises"),
        );
    }
    Some(schemas)
}

fn render(args: &[&str]) -> Vec<Value> {
    let out = Command::new(binary("kubectl-ephemeral"))
        .arg("render")
        .args(args)
        .args(["--owner", "alice", "-o", "json"])
        .current_dir(workspace_root())
        .output()
        .expect("run kubectl-ephemeral render");
    assert!(
        out.status.success(),
        "render {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).expect("render -o json prints JSON");
    list["items"].as_array().expect("a List has items").clone()
}

fn violations(schemas: &Schemas, object: &Value) -> Vec<String> {
    let key = (
        object["apiVersion"].as_str().unwrap_or_default().to_owned(),
        object["kind"].as_str().unwrap_or_default().to_owned(),
    );
    let schema = schemas
        .get(&key)
        .unwrap_or_else(|| panic!("no CRD schema for {key:?}"));
    let validator = jsonschema::draft4::new(schema).expect("CRD schema compiles");
    validator
        .iter_errors(object)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn every_rendered_object_validates_against_its_crd() {
    let Some(schemas) = schemas() else { return };
    let mut items = Vec::new();
    for now in ["2026-11-21T09:00:00Z", "2026-11-21T19:30:00Z"] {
        items.extend(render(&["-R", "-f", "examples", "--now", now]));
        items.extend(render(&[
            "-f",
            "examples/catalog",
            "-f",
            "plugin/tests/fixtures/ok",
            "--now",
            now,
            "--always-on",
            "staging",
        ]));
    }
    let mut kinds = BTreeSet::new();
    for item in &items {
        let problems = violations(&schemas, item);
        assert!(
            problems.is_empty(),
            "{} {} does not validate:\n{}\n{}",
            item["kind"],
            item["metadata"]["name"],
            problems.join("\n"),
            serde_json::to_string_pretty(item).unwrap()
        );
        kinds.insert(item["kind"].as_str().unwrap().to_owned());
    }
    let want: BTreeSet<String> = [
        "Environment",
        "GitRepository",
        "HelmRelease",
        "ImagePolicy",
        "Kustomization",
    ]
    .map(String::from)
    .into();
    assert_eq!(kinds, want, "the inputs must cover every kind render emits");
}

#[test]
fn the_strict_check_catches_a_misspelt_field() {
    let Some(schemas) = schemas() else { return };
    let items = render(&["-R", "-f", "examples", "--now", "2026-11-21T09:00:00Z"]);
    let mut kustomization = items
        .iter()
        .find(|i| i["kind"] == "Kustomization")
        .expect("examples render a Kustomization")
        .clone();
    kustomization["spec"]["prunee"] = Value::Bool(true);
    let problems = violations(&schemas, &kustomization);
    assert!(
        problems.iter().any(|p| p.contains("prunee")),
        "an unknown field must be reported, got {problems:?}"
    );
    let mut policy = items
        .iter()
        .find(|i| i["kind"] == "ImagePolicy")
        .expect("examples render an ImagePolicy")
        .clone();
    policy["spec"]["policy"]["numerical"]["order"] = Value::from("newest");
    assert!(
        !violations(&schemas, &policy).is_empty(),
        "enum values are checked"
    );
}
