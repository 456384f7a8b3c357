//! End-to-end tests against a real cluster: the current kube context, with
//! Flux's CRDs and `kubectl apply -k manifests/default` installed. Ignored by
//! default; run with `cargo test --workspace -- --ignored`.

use std::io::Write;
use std::process::{Command, Stdio};

use ephemeral_e2e::workspace_root;
use serde_json::Value;

const NAMESPACE: &str = "ephemeral-e2e";

fn kubectl(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(ephemeral_e2e::kubectl())
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

/// A controller for the test: the installed one (`kubectl apply -k
/// manifests/default`) when its Deployment exists, else the binary run
/// locally against the current context with `--webhook=false` (no TLS, no
/// admission: the Environment is then reconciled as not admitted).
struct Controller(Option<std::process::Child>);

impl Controller {
    fn start() -> Controller {
        let (installed, _, _) = kubectl(
            &[
                "get",
                "deployment",
                "-n",
                "ephemeral-system",
                "ephemeral-webhook",
            ],
            None,
        );
        if installed {
            return Controller(None);
        }
        let admin = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = Command::new(ephemeral_e2e::binary("ephemeral-webhook"))
            .args([
                "serve",
                "--webhook=false",
                "--admin-listen",
                &admin.to_string(),
            ])
            .args(["--namespace", NAMESPACE, "--pod-name", "e2e-local"])
            .args(["--leader-election-lease", "ephemeral-e2e-controller"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ephemeral-webhook serve --webhook=false");
        Controller(Some(child))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

fn get_json(args: &[&str]) -> Option<Value> {
    let mut all = vec!["get", "-n", NAMESPACE, "-o", "json"];
    all.extend_from_slice(args);
    let (ok, out, _) = kubectl(&all, None);
    ok.then(|| serde_json::from_str(&out).ok()).flatten()
}

fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[test]
#[ignore = "needs a cluster (Flux CRDs are installed from ../shared/flux-crds if missing): cargo test -- --ignored"]
fn the_controller_materialises_an_environment_and_prunes_a_removed_app() {
    setup();
    let (flux, _, _) = kubectl(
        &["get", "crd", "kustomizations.kustomize.toolkit.fluxcd.io"],
        None,
    );
    if !flux {
        let dir = ephemeral_e2e::flux_crds_dir();
        let (ok, _, err) = kubectl(
            &["apply", "--server-side", "-f", &dir.display().to_string()],
            None,
        );
        assert!(ok, "installing the Flux CRDs: {err}");
    }
    let _controller = Controller::start();
    // No lease: the default (the next cut-off, at least an hour away).
    let env = |apps: &str| {
        format!(
            "apiVersion: ephemeral.io/v1alpha1\nkind: Environment\nmetadata: {{name: e2e-ctl, namespace: {NAMESPACE}}}\nspec:\n  apps: {apps}\n"
        )
    };
    let _ = kubectl(
        &[
            "delete",
            "-n",
            NAMESPACE,
            "environment",
            "e2e-ctl",
            "--ignore-not-found",
            "--wait",
        ],
        None,
    );
    let (ok, _, err) = kubectl(
        &["apply", "-f", "-"],
        Some(&env(
            "[{name: checkout, branch: feature/e2e}, {name: payments}]",
        )),
    );
    assert!(ok, "applying the Environment: {err}");
    let uid = get_json(&["environment", "e2e-ctl"]).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();

    for (kind, name) in [
        ("kustomization", "e2e-ctl-checkout"),
        ("imagepolicy", "e2e-ctl-checkout"),
        ("kustomization", "e2e-ctl-payments"),
    ] {
        let child = eventually(&format!("{kind}/{name}"), || get_json(&[kind, name]));
        let labels = &child["metadata"]["labels"];
        assert_eq!(labels["ephemeral.io/environment"], "e2e-ctl");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "ephemeral");
        let owner = &child["metadata"]["ownerReferences"][0];
        assert_eq!(owner["uid"], uid.as_str());
        assert_eq!(owner["controller"], true);
        assert_eq!(owner["blockOwnerDeletion"], true);
        let managers: Vec<&str> = child["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(managers.contains(&"ephemeral"), "{managers:?}");
    }
    let policy = get_json(&["imagepolicy", "e2e-ctl-checkout"]).unwrap();
    assert_eq!(
        policy["spec"]["filterTags"]["pattern"],
        "^feature-e2e-[a-fA-F0-9]+-(?P<ts>[0-9]+)$"
    );

    let status = eventually("the Environment's status", || {
        let env = get_json(&["environment", "e2e-ctl"])?;
        (env["status"]["apps"].as_array()?.len() == 2).then(|| env["status"].clone())
    });
    assert_eq!(status["observedGeneration"], 1);
    assert!(status["readyApps"].as_str().unwrap().ends_with("/2"));
    assert_eq!(status["apps"][0]["name"], "checkout");
    assert_eq!(status["apps"][0]["kind"], "Kustomization");
    let types: Vec<&str> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert!(
        types.contains(&"Ready") && types.contains(&"LeaseActive"),
        "{types:?}"
    );

    // Remove payments: its Kustomization is pruned, checkout's stays.
    let (ok, _, err) = kubectl(
        &["apply", "-f", "-"],
        Some(&env("[{name: checkout, branch: feature/e2e}]")),
    );
    assert!(ok, "updating the Environment: {err}");
    eventually("payments to be pruned", || {
        get_json(&["kustomization", "e2e-ctl-payments"])
            .is_none()
            .then_some(())
    });
    assert!(get_json(&["kustomization", "e2e-ctl-checkout"]).is_some());

    let (ok, _, err) = kubectl(
        &[
            "delete",
            "-n",
            NAMESPACE,
            "environment",
            "e2e-ctl",
            "--wait",
        ],
        None,
    );
    assert!(ok, "deleting the Environment: {err}");
}
