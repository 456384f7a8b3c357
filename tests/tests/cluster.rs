//! End-to-end tests against a real cluster: the current kube context, with
//! Flux's CRDs and `kubectl apply -k manifests/default` installed. Ignored by
//! default; run with `cargo test --workspace -- --ignored`.

use std::io::Write;
use std::process::{Command, Stdio};

use ephemeral_e2e::workspace_root;
use serde_json::Value;

const NAMESPACE: &str = "ephemeral-e2e";

fn kubectl(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new("kubectl")
        .args(args)
        .current_dir(workspace_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl on PATH");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn setup() {
    let (ok, _, err) = kubectl(&["apply", "--server-side", "-f", "manifests/crds/"], None);
    assert!(ok, "installing CRDs: {err}");
    let (ok, _, err) = kubectl(
        &[
            "wait",
            "--for",
            "condition=established",
            "--timeout=60s",
            "crd/environments.ephemeral.io",
            "crd/apptemplates.ephemeral.io",
            "crd/appbundles.ephemeral.io",
        ],
        None,
    );
    assert!(ok, "waiting for CRDs: {err}");
    let ns = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n");
    let (ok, _, err) = kubectl(&["apply", "-f", "-"], Some(&ns));
    assert!(ok, "creating namespace: {err}");
    let templates =
        std::fs::read_to_string(workspace_root().join("examples/catalog/templates.yaml"))
            .unwrap()
            .replace(
                "namespace: ephemeral\n",
                &format!("namespace: {NAMESPACE}\n"),
            );
    let (ok, _, err) = kubectl(&["apply", "-f", "-"], Some(&templates));
    assert!(ok, "applying the example catalog: {err}");
}

#[test]
#[ignore = "needs a cluster: cargo test -- --ignored"]
fn the_api_server_enforces_the_crd_rules() {
    setup();
    let both = format!(
        "apiVersion: ephemeral.io/v1alpha1\nkind: AppTemplate\nmetadata: {{name: both, namespace: {NAMESPACE}}}\nspec:\n  kustomization: {{path: ./x, sourceRef: {{kind: GitRepository, name: x}}}}\n  helm: {{chart: x, sourceRef: {{kind: HelmRepository, name: x}}}}\n"
    );
    let (ok, _, err) = kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&both));
    assert!(
        !ok,
        "a template with both kustomization and helm must be refused"
    );
    assert!(
        err.contains("exactly one of kustomization or helm"),
        "{err}"
    );
}

#[test]
#[ignore = "needs a cluster with the webhook installed: cargo test -- --ignored"]
fn the_webhook_expands_and_stamps_the_owner() {
    setup();
    let env = format!(
        "apiVersion: ephemeral.io/v1alpha1\nkind: Environment\nmetadata: {{name: e2e, namespace: {NAMESPACE}, annotations: {{ephemeral.io/owner: somebody-else}}}}\nspec:\n  apps:\n  - name: checkout\n    branch: feature/e2e\n"
    );
    let (ok, out, err) = kubectl(
        &["create", "--dry-run=server", "-o", "json", "-f", "-"],
        Some(&env),
    );
    assert!(ok, "server dry-run create: {err}");
    let admitted: Value = serde_json::from_str(&out).unwrap();
    let (_, whoami, _) = kubectl(
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        None,
    );
    let annotations = &admitted["metadata"]["annotations"];
    assert_eq!(
        annotations["ephemeral.io/owner"],
        whoami.trim(),
        "owner is the requester"
    );
    assert!(
        annotations["downscaler/uptime"]
            .as_str()
            .is_some_and(|u| u.contains("+00:00-"))
    );
    let app = &admitted["spec"]["apps"][0];
    assert_eq!(app["template"], "checkout");
    assert_eq!(app["imageTagPrefix"], "feature-e2e");
    assert_eq!(app["kustomization"]["path"], "./apps/checkout/preview");

    let bad = env.replace("branch: feature/e2e", "template: nope");
    let (ok, _, err) = kubectl(&["create", "--dry-run=server", "-f", "-"], Some(&bad));
    assert!(!ok);
    assert!(
        err.contains("AppTemplate 'nope' does not exist") && err.contains("checkout"),
        "{err}"
    );
}
