//! Every object `kubectl-ephemeral render` emits validates against the real
//! CRD schemas: Flux's upstream CRDs (`$FLUX_CRDS_DIR`, default
//! `../shared/flux-crds`) for the children, our own CRD for the Environment.
//!
//! The check is strict (an unknown field fails, where the API server would
//! silently prune it): see `ephemeral_testkit::flux_schema`, which the
//! controller's tests share.

use std::collections::BTreeSet;
use std::process::Command;

use ephemeral_testkit::flux_schema::Schemas;
use ephemeral_testkit::{binary, workspace_root};
use serde_json::Value;

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

#[test]
fn every_rendered_object_validates_against_its_crd() {
    let schemas = Schemas::load();
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
        let problems = schemas.violations(item);
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
    let schemas = Schemas::load();
    let items = render(&["-R", "-f", "examples", "--now", "2026-11-21T09:00:00Z"]);
    let mut kustomization = items
        .iter()
        .find(|i| i["kind"] == "Kustomization")
        .expect("examples render a Kustomization")
        .clone();
    kustomization["spec"]["prunee"] = Value::Bool(true);
    let problems = schemas.violations(&kustomization);
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
        !schemas.violations(&policy).is_empty(),
        "enum values are checked"
    );
}
