//! The real-cluster tier: scenarios against a real kube-apiserver, garbage
//! collector and Flux, with the workspace's `ephemeral-webhook serve` as the
//! cluster's admission webhook and controller, and the real `kubectl`.
//!
//! Start the cluster with `tests/cluster/up --flux --with-ephemeral
//! --downscaler`, then
//! `cargo test -p ephemeral-testkit --test cluster -- --ignored`. Ignored by
//! default so the README's `cargo test --workspace` needs no cluster;
//! `.ci/run` runs this tier. Each scenario uses its own Environment names,
//! so they run in parallel.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use ephemeral_testkit::cluster::{Cluster, GitClone, NAMESPACE, User, condition, eventually};
use serde_json::Value;

const FLUX: Duration = Duration::from_secs(180);
const QUICK: Duration = Duration::from_secs(60);

/// Commit shas for the image tags `<prefix>-<sha>-<unix seconds>`.
const SHA_1: &str = "1111111aaaaaaabbbbbbbcccccccddddddd11111";
const SHA_2: &str = "2222222aaaaaaabbbbbbbcccccccddddddd22222";
const SHA_3: &str = "3333333aaaaaaabbbbbbbcccccccddddddd33333";

/// The app sources every scenario shares, installed once: a git repository
/// with a Kustomization app (`apps/shop`: a ConfigMap per Environment using
/// the substitutions), a plain app (`apps/plain`) and a Helm chart
/// (`charts/shop`: a ConfigMap from `values.ephemeral`); its GitRepository
/// and an ImageRepository in flux-system; the AppTemplates in `previews`.
fn catalog() -> &'static Cluster {
    static DONE: OnceLock<()> = OnceLock::new();
    let cluster = Cluster::running(&["flux", "ephemeral"]);
    DONE.get_or_init(|| {
        let repo = GitClone::new(cluster);
        repo.write(
            "apps/shop/configmap.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shop-${environment}\n  namespace: previews\ndata:\n  environment: \"${environment}\"\n  owner: \"${owner}\"\n  uptime: \"${downscaler_uptime}\"\n  image_tag: \"${image_tag:=none}\"\n",
        )
        .write(
            "apps/plain/configmap.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain-${environment}\n  namespace: previews\ndata:\n  owner: \"${owner}\"\n",
        )
        .write(
            // The GoKubeDownscaler wiring docs/concepts.md recommends: the uptime
            // substitution on the workload, quoted; no spec.replicas in the
            // manifest, so Flux does not put back what the downscaler set.
            "apps/scaled/deployment.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: scaled-${environment}\n  namespace: previews\n  annotations:\n    downscaler/uptime: \"${downscaler_uptime}\"\nspec:\n  selector:\n    matchLabels:\n      app: scaled-${environment}\n  template:\n    metadata:\n      labels:\n        app: scaled-${environment}\n    spec:\n      containers:\n      - name: app\n        image: registry.invalid/scaled:1\n",
        )
        .write(
            // What the README says to avoid unless suspension is on:
            // spec.replicas in the manifest, which Flux re-applies over the
            // downscaler. The ConfigMap shows which git revision Flux applied.
            "apps/pinned/deployment.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: pinned-${environment}\n  namespace: previews\n  annotations:\n    downscaler/uptime: \"${downscaler_uptime}\"\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: pinned-${environment}\n  template:\n    metadata:\n      labels:\n        app: pinned-${environment}\n    spec:\n      containers:\n      - name: app\n        image: registry.invalid/pinned:1\n",
        )
        .write(
            "apps/pinned/configmap.yaml",
            &pinned_config_map("initial"),
        )
        .write(
            "charts/shop/Chart.yaml",
            "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
        )
        .write(
            "charts/shop/templates/configmap.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: chart-{{ .Values.ephemeral.environment }}\ndata:\n  image_tag: {{ .Values.ephemeral.image_tag | default \"none\" | quote }}\n  owner: {{ .Values.ephemeral.owner | quote }}\n",
        )
        .push("the apps");
        cluster.push_tags(
            "shop",
            &[
                &format!("main-{SHA_1}-1700000000"),
                &format!("main-{SHA_2}-1700000100"),
            ],
        );
        let registry = cluster.var("REGISTRY");
        let git = cluster.var("GIT_URL");
        cluster
            .apply(
                User::Admin,
                &format!(
                    r#"apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: platform, namespace: flux-system}}
spec: {{url: "{git}", ref: {{branch: main}}, interval: 5s}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: shop, namespace: flux-system}}
spec:
  image: {registry}/shop
  insecure: true
  interval: 5s
  accessFrom:
    namespaceSelectors:
    - matchLabels: {{kubernetes.io/metadata.name: previews}}
---
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {{name: shop, namespace: previews}}
spec:
  description: Shop (Kustomization)
  kustomization:
    path: ./apps/shop
    sourceRef: {{kind: GitRepository, name: platform, namespace: flux-system}}
  imageRepository: {{name: shop, namespace: flux-system}}
  imageTagPrefix: main
---
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {{name: plain, namespace: previews}}
spec:
  description: A ConfigMap and no image
  kustomization:
    path: ./apps/plain
    sourceRef: {{kind: GitRepository, name: platform, namespace: flux-system}}
---
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {{name: scaled, namespace: previews}}
spec:
  description: A Deployment GoKubeDownscaler scales by the lease
  kustomization:
    path: ./apps/scaled
    sourceRef: {{kind: GitRepository, name: platform, namespace: flux-system}}
---
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {{name: pinned, namespace: previews}}
spec:
  description: A Deployment with spec.replicas in its manifest
  kustomization:
    path: ./apps/pinned
    sourceRef: {{kind: GitRepository, name: platform, namespace: flux-system}}
---
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {{name: chart, namespace: previews}}
spec:
  description: Shop (Helm chart from git)
  helm:
    chart: ./charts/shop
    sourceRef: {{kind: GitRepository, name: platform, namespace: flux-system}}
  imageRepository: {{name: shop, namespace: flux-system}}
  imageTagPrefix: main
"#
                ),
            )
            .expect_ok("installing the sources and the catalog");
        eventually("the GitRepository to have an artifact", FLUX, || {
            let repo = cluster.get_in("flux-system", "gitrepository", "platform")?;
            (condition(&repo, "Ready")?["status"] == "True").then_some(())
        });
    });
    cluster
}

/// The ConfigMap of `apps/pinned`, saying which revision of it Flux applied.
fn pinned_config_map(revision: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pinned-${{environment}}\n  namespace: previews\ndata:\n  revision: \"{revision}\"\n"
    )
}

/// A branch no earlier run used (so tags pushed by earlier runs against the
/// same cluster do not count) and the image tag prefix the webhook derives.
fn fresh_branch(label: &str) -> (String, String) {
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    (
        format!("feature/{label}-{run}"),
        format!("feature-{label}-{run}"),
    )
}

fn environment(name: &str, apps: &str, extra: &str) -> String {
    format!(
        "apiVersion: ephemeral.io/v1alpha1\nkind: Environment\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\n{extra}spec:\n  apps: {apps}\n"
    )
}

fn config_map(cluster: &Cluster, name: &str) -> Option<Value> {
    cluster.get("configmap", name)
}

fn data<'a>(object: &'a Value, key: &str) -> &'a str {
    object["data"][key].as_str().unwrap_or_default()
}

// ---------------------------------------------------------------- 1. CRDs

#[test]
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral --downscaler"]
fn the_crds_install_with_their_schemas_rules_and_columns() {
    let cluster = Cluster::running(&[]);
    let explain = cluster
        .kubectl(User::Alice, &["explain", "environments.spec"], None)
        .expect_ok("kubectl explain environments.spec");
    for field in ["apps", "bundles", "lease", "sourceBranch", "substitute"] {
        assert!(
            explain.stdout.contains(field),
            "explain lacks {field}:\n{}",
            explain.stdout
        );
    }
    let crd = cluster
        .kubectl(
            User::Admin,
            &["get", "crd", "environments.ephemeral.io", "-o", "json"],
            None,
        )
        .expect_ok("get the CRD")
        .json();
    let columns: Vec<&str> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(columns.len() >= 3, "printer columns: {columns:?}");
    // A CEL rule of the AppTemplate schema, enforced by the real API server.
    let both = "apiVersion: ephemeral.io/v1alpha1\nkind: AppTemplate\nmetadata: {name: both, namespace: previews}\nspec:\n  kustomization: {path: ./x, sourceRef: {kind: GitRepository, name: x}}\n  helm: {chart: x, sourceRef: {kind: HelmRepository, name: x}}\n";
    let out = cluster.kubectl(
        User::Admin,
        &["apply", "--dry-run=server", "-f", "-"],
        Some(both),
    );
    assert!(
        !out.ok,
        "a template with both kustomization and helm was accepted"
    );
    assert!(
        out.stderr.contains("exactly one of kustomization or helm"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------- 2. admission

#[test]
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral --downscaler"]
fn plain_kubectl_apply_is_admitted_owned_and_guarded() {
    let cluster = catalog();
    cluster.delete_environment("adm");
    let yaml = environment(
        "adm",
        "[{name: plain}]",
        "  annotations: {ephemeral.io/owner: mallory}\n",
    );
    cluster
        .apply(User::Alice, &yaml)
        .expect_ok("alice applies an Environment");
    let stored = cluster.get("environment", "adm").unwrap();
    let annotations = &stored["metadata"]["annotations"];
    assert_eq!(
        annotations["ephemeral.io/owner"], "alice",
        "the owner is the requester"
    );
    assert!(
        annotations["downscaler/uptime"]
            .as_str()
            .is_some_and(|u| !u.is_empty()),
        "the lease is stamped: {annotations}"
    );
    let app = &stored["spec"]["apps"][0];
    assert_eq!(app["template"], "plain");
    assert_eq!(
        app["kustomization"]["path"], "./apps/plain",
        "expanded: {app}"
    );
    assert!(
        stored["spec"]["lease"]["until"].is_string(),
        "lease defaulted"
    );

    // Bob may not change or delete it; the message is ours.
    let out = cluster.kubectl(
        User::Bob,
        &["label", "environment", "adm", "stolen=yes"],
        None,
    );
    assert!(!out.ok, "bob changed alice's Environment");
    assert!(
        out.stderr.contains("alice"),
        "the denial names the owner: {}",
        out.stderr
    );
    let out = cluster.kubectl(User::Bob, &["delete", "environment", "adm"], None);
    assert!(!out.ok, "bob deleted alice's Environment");
    assert!(out.stderr.contains("alice"), "{}", out.stderr);

    // Only an admin may hand an Environment over: re-applying a file that
    // names another owner is refused with the fix; without it, alice's
    // changes go through and she stays the owner.
    let out = cluster.apply(User::Alice, &yaml);
    assert!(!out.ok, "a non-admin changed the owner annotation");
    assert!(
        out.stderr.contains("Fix: keep ephemeral.io/owner: alice"),
        "{}",
        out.stderr
    );
    cluster
        .apply(User::Alice, &environment("adm", "[{name: plain}]", ""))
        .expect_ok("alice re-applies without the owner annotation");
    cluster
        .kubectl(
            User::Admin,
            &[
                "label",
                "-n",
                NAMESPACE,
                "environment",
                "adm",
                "checked=yes",
            ],
            None,
        )
        .expect_ok("admin labels it");
    let stored = cluster.get("environment", "adm").unwrap();
    assert_eq!(
        stored["metadata"]["annotations"]["ephemeral.io/owner"],
        "alice"
    );
    cluster
        .kubectl(
            User::Alice,
            &["delete", "environment", "adm", "--wait"],
            None,
        )
        .expect_ok("alice deletes her Environment");
}

// ---------------------------------------------------------------- 3, 4, 6. the Flux loop

#[test]
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral --downscaler"]
fn flux_deploys_the_newest_image_of_the_branch_and_everything_goes_with_the_environment() {
    let cluster = catalog();
    cluster.delete_environment("loop");
    let (branch, prefix) = fresh_branch("loop");
    cluster.push_tags("shop", &[&format!("{prefix}-{SHA_1}-1700000050")]);
    cluster
        .apply(
            User::Alice,
            &environment(
                "loop",
                &format!("[{{name: shop, branch: {branch}}}, {{name: chart}}]"),
                "",
            ),
        )
        .expect_ok("alice applies the Environment");
    let env = cluster.get("environment", "loop").unwrap();
    let uid = env["metadata"]["uid"].as_str().unwrap().to_owned();
    let uptime = env["metadata"]["annotations"]["downscaler/uptime"]
        .as_str()
        .unwrap()
        .to_owned();

    // The children: server-side applied by `ephemeral`, owned by the Environment.
    for (kind, name) in [
        ("kustomization", "loop-shop"),
        ("imagepolicy", "loop-shop"),
        ("helmrelease", "loop-chart"),
        ("imagepolicy", "loop-chart"),
    ] {
        let child = eventually(&format!("{kind}/{name}"), QUICK, || cluster.get(kind, name));
        assert_eq!(
            child["metadata"]["labels"]["ephemeral.io/environment"],
            "loop"
        );
        assert_eq!(
            child["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "ephemeral"
        );
        let owner = &child["metadata"]["ownerReferences"][0];
        assert_eq!(owner["uid"], uid.as_str());
        assert_eq!(owner["controller"], true);
        let managers: Vec<&str> = child["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["operation"] == "Apply")
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(
            managers.contains(&"ephemeral"),
            "{kind}/{name} appliers: {managers:?}"
        );
    }

    // Flux deploys the branch's newest build, and the main build for the chart.
    let want = format!("{prefix}-{SHA_1}-1700000050");
    let shop = eventually("the shop ConfigMap with the branch's tag", FLUX, || {
        config_map(cluster, "shop-loop").filter(|c| data(c, "image_tag") == want)
    });
    assert_eq!(data(&shop, "owner"), "alice");
    assert_eq!(data(&shop, "environment"), "loop");
    assert_eq!(data(&shop, "uptime"), uptime);
    let main = format!("main-{SHA_2}-1700000100");
    eventually("the chart's ConfigMap with main's newest tag", FLUX, || {
        config_map(cluster, "chart-loop").filter(|c| data(c, "image_tag") == main)
    });

    // Ready once Flux says so; `kubectl wait` sees it.
    cluster
        .kubectl(
            User::Alice,
            &[
                "wait",
                "--for=condition=Ready",
                "environment/loop",
                "--timeout=180s",
            ],
            None,
        )
        .expect_ok("kubectl wait --for=condition=Ready");
    let env = cluster.get("environment", "loop").unwrap();
    assert_eq!(env["status"]["readyApps"], "2/2", "{}", env["status"]);
    let shop_status = env["status"]["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "shop")
        .unwrap();
    assert_eq!(shop_status["imageTag"], want.as_str());

    // A newer build of the branch moves it; a build of a longer prefix never does.
    let newer = format!("{prefix}-{SHA_2}-1700000300");
    cluster.push_tags("shop", &[&newer]);
    eventually(
        "the shop ConfigMap to move to the newer build",
        FLUX,
        || config_map(cluster, "shop-loop").filter(|c| data(c, "image_tag") == newer),
    );
    let tags = || {
        let repo = cluster.get_in("flux-system", "imagerepository", "shop")?;
        repo["status"]["lastScanResult"]["tagCount"].as_u64()
    };
    let before = eventually("the ImageRepository to have scanned", FLUX, tags);
    let longer = format!("{prefix}-long-{SHA_3}-1700000900");
    cluster.push_tags("shop", &[&longer]);
    eventually(
        "the ImageRepository to list the longer prefix's tag",
        FLUX,
        || (tags()? > before).then_some(()),
    );
    // The policy re-evaluates right after the scan; give it a few intervals.
    std::thread::sleep(Duration::from_secs(15));
    let policy = cluster.get("imagepolicy", "loop-shop").unwrap();
    assert!(
        policy["status"]["latestRef"]["tag"] == newer.as_str(),
        "the policy picked {}",
        policy["status"]["latestRef"]
    );
    assert_eq!(
        data(&config_map(cluster, "shop-loop").unwrap(), "image_tag"),
        newer
    );

    // Deleting the Environment: the garbage collector removes its Flux
    // objects and Flux prunes what they deployed.
    cluster
        .kubectl(
            User::Alice,
            &["delete", "environment", "loop", "--wait", "--timeout=120s"],
            None,
        )
        .expect_ok("alice deletes the Environment");
    for (kind, name) in [
        ("kustomization", "loop-shop"),
        ("helmrelease", "loop-chart"),
        ("imagepolicy", "loop-shop"),
        ("imagepolicy", "loop-chart"),
        ("configmap", "shop-loop"),
        ("configmap", "chart-loop"),
    ] {
        eventually(&format!("{kind}/{name} to be gone"), FLUX, || {
            cluster.get(kind, name).is_none().then_some(())
        });
    }
}

#[test]
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral --downscaler"]
fn an_environment_past_its_lease_and_expire_after_deletes_itself() {
    let cluster = catalog();
    cluster.delete_environment("short");
    let out = cluster
        .apply(
            User::Alice,
            &environment("short", "[{name: plain}]", "").replace(
                "spec:\n",
                "spec:\n  lease: {until: \"2026-01-01T00:00:00Z\", expireAfter: 5s}\n",
            ),
        )
        .expect_ok("an Environment whose lease ended long ago");
    assert!(
        out.stderr.contains("Warning:"),
        "the webhook warns about an until in the past: {}",
        out.stderr
    );
    eventually("the expired Environment to delete itself", FLUX, || {
        cluster.get("environment", "short").is_none().then_some(())
    });
    eventually("its Kustomization to go with it", FLUX, || {
        cluster
            .get("kustomization", "short-plain")
            .is_none()
            .then_some(())
    });
}

// ---------------------------------------------------------------- 5. the plugin

#[test]
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral --downscaler"]
fn kubectl_ephemeral_runs_the_whole_lifecycle_as_alice() {
    let cluster = catalog();
    cluster.delete_environment("plug");
    let (branch, prefix) = fresh_branch("plug");
    let tag = format!("{prefix}-{SHA_1}-1700000070");
    cluster.push_tags("shop", &[&tag]);
    let shop = format!("shop@{branch}");
    cluster
        .plugin(
            User::Alice,
            &["create", "plug", "--app", "plain", "--app", &shop],
        )
        .expect_ok("kubectl ephemeral create");
    let list = cluster
        .plugin(User::Alice, &["list"])
        .expect_ok("kubectl ephemeral list");
    assert!(
        list.stdout.lines().any(|l| l.starts_with("plug ")),
        "{}",
        list.stdout
    );
    cluster
        .plugin(
            User::Alice,
            &["wait", "plug", "--for", "ready", "--timeout", "180s"],
        )
        .expect_ok("kubectl ephemeral wait");
    let describe = cluster
        .plugin(User::Alice, &["describe", "plug"])
        .expect_ok("kubectl ephemeral describe");
    for text in ["alice", "plain", "shop", &prefix, &tag] {
        assert!(
            describe.stdout.contains(text),
            "describe lacks {text}:\n{}",
            describe.stdout
        );
    }
    let before = cluster.get("environment", "plug").unwrap()["spec"]["lease"]["until"].clone();
    cluster
        .plugin(User::Alice, &["extend", "plug", "--for", "3h"])
        .expect_ok("kubectl ephemeral extend");
    let after = cluster.get("environment", "plug").unwrap()["spec"]["lease"]["until"].clone();
    assert_ne!(before, after, "extend moved the lease");

    // A labelled object the Environment does not own survives remove-app.
    cluster
        .apply(
            User::Admin,
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: plug-bystander\n  namespace: previews\n  labels: {ephemeral.io/environment: plug, ephemeral.io/app: shop, app.kubernetes.io/managed-by: ephemeral}\nspec: {interval: 1h, path: ./apps/plain, prune: false, suspend: true, sourceRef: {kind: GitRepository, name: platform, namespace: flux-system}}\n",
        )
        .expect_ok("a bystander with the Environment's labels");
    cluster
        .plugin(User::Alice, &["remove-app", "plug", "shop"])
        .expect_ok("kubectl ephemeral remove-app");
    eventually("shop's children and ConfigMap to be pruned", FLUX, || {
        (cluster.get("kustomization", "plug-shop").is_none()
            && cluster.get("imagepolicy", "plug-shop").is_none()
            && cluster.get("configmap", "shop-plug").is_none())
        .then_some(())
    });
    assert!(
        cluster.get("kustomization", "plug-plain").is_some(),
        "plain stays"
    );
    assert!(
        cluster.get("configmap", "plain-plug").is_some(),
        "plain's ConfigMap stays"
    );
    assert!(
        cluster.get("kustomization", "plug-bystander").is_some(),
        "an object the Environment does not own was pruned"
    );
    cluster
        .plugin(User::Alice, &["add-app", "plug", &shop])
        .expect_ok("kubectl ephemeral add-app");
    eventually("shop to come back", FLUX, || {
        cluster.get("kustomization", "plug-shop")
    });

    // Bob cannot delete it; Alice can, and --wait returns once it is gone.
    let out = cluster.plugin(User::Bob, &["delete", "plug"]);
    assert!(!out.ok, "bob deleted alice's Environment");
    assert!(out.stderr.contains("alice"), "{}", out.stderr);
    cluster
        .plugin(User::Alice, &["delete", "plug", "--wait"])
        .expect_ok("kubectl ephemeral delete --wait");
    assert!(cluster.get("environment", "plug").is_none());
    cluster
        .kubectl(
            User::Admin,
            &["delete", "-n", NAMESPACE, "kustomization", "plug-bystander"],
            None,
        )
        .expect_ok("cleaning up the bystander");
}

// ---------------------------------------------------------------- 8. error paths

#[test]
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral --downscaler"]
fn a_template_deleted_after_admission_stalls_and_prunes_nothing() {
    let cluster = catalog();
    cluster.delete_environment("orphan");
    cluster
        .apply(
            User::Admin,
            "apiVersion: ephemeral.io/v1alpha1\nkind: AppTemplate\nmetadata: {name: doomed, namespace: previews}\nspec:\n  kustomization:\n    path: ./apps/plain\n    sourceRef: {kind: GitRepository, name: platform, namespace: flux-system}\n",
        )
        .expect_ok("a template to delete");
    cluster
        .apply(User::Alice, &environment("orphan", "[{name: doomed}]", ""))
        .expect_ok("an Environment of it");
    eventually("its Kustomization", QUICK, || {
        cluster.get("kustomization", "orphan-doomed")
    });
    cluster
        .kubectl(
            User::Admin,
            &["delete", "-n", NAMESPACE, "apptemplate", "doomed"],
            None,
        )
        .expect_ok("deleting the template");
    // Any change makes the controller expand again.
    cluster
        .kubectl(
            User::Alice,
            &["label", "environment", "orphan", "touched=yes"],
            None,
        )
        .expect_ok("touching the Environment");
    let env = eventually("the Environment to stall", QUICK, || {
        let env = cluster.get("environment", "orphan")?;
        (condition(&env, "Stalled")?["status"] == "True").then_some(env)
    });
    let stalled = condition(&env, "Stalled").unwrap();
    assert!(
        stalled["message"]
            .as_str()
            .unwrap_or_default()
            .contains("doomed"),
        "{stalled}"
    );
    assert!(
        cluster.get("kustomization", "orphan-doomed").is_some(),
        "nothing is pruned"
    );
    cluster.delete_environment("orphan");
}

#[test]
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral --downscaler"]
fn a_flux_status_change_on_a_child_costs_no_list_no_apply_and_at_most_one_status_write() {
    let cluster = catalog();
    cluster.delete_environment("calm");
    cluster
        .apply(
            User::Alice,
            &environment("calm", "[{name: shop}, {name: plain}]", ""),
        )
        .expect_ok("alice applies the Environment");
    cluster
        .kubectl(
            User::Alice,
            &[
                "wait",
                "--for=condition=Ready",
                "environment/calm",
                "--timeout=180s",
            ],
            None,
        )
        .expect_ok("kubectl wait --for=condition=Ready");
    // Other scenarios push to the same git repository while this one runs; a
    // new revision legitimately changes the apps' messages (and so the
    // status). A window in which the revision moved is measured again.
    for attempt in 1..=3 {
        // Let the last status writes of becoming Ready land.
        std::thread::sleep(Duration::from_secs(5));
        let start = cluster.webhook_requests().len();
        if measure_a_status_change(cluster, start) {
            cluster.delete_environment("calm");
            return;
        }
        eprintln!(
            "attempt {attempt}: another scenario pushed a git revision meanwhile; measuring again"
        );
    }
    panic!("three windows in a row saw a new git revision; nothing could be measured");
}

/// Requests a Flux reconcile of `calm-shop` and checks what the controller
/// did about it since audit entry `start`: no LIST, no apply, at most one
/// status write. `true` when all held; on a violation, `false` if the git
/// revision moved meanwhile (the caller measures again), else it panics.
fn measure_a_status_change(cluster: &Cluster, start: usize) -> bool {
    let revision = || {
        cluster.get("kustomization", "calm-plain").unwrap()["status"]["lastAttemptedRevision"]
            .clone()
    };
    let revision_before = revision();
    // Flux reconciles on request and writes the child's status.
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    cluster.request_reconcile("calm-shop", &at);
    eventually("Flux to handle the request", FLUX, || {
        let k = cluster.get("kustomization", "calm-shop")?;
        (k["status"]["lastHandledReconcileAt"] == at.as_str()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(15));

    let flux = [
        "kustomizations",
        "helmreleases",
        "imagepolicies",
        "gitrepositories",
    ];
    let ours: Vec<_> = cluster.webhook_requests()[start..]
        .iter()
        .filter(|r| {
            r.uri.contains(&format!("/namespaces/{NAMESPACE}/"))
                && (r.name.is_empty() && r.uri.contains("calm")
                    || r.name == "calm"
                    || r.name.starts_with("calm-"))
        })
        .cloned()
        .collect();
    let summary: Vec<String> = ours
        .iter()
        .map(|r| format!("{} {}/{} {}", r.verb, r.resource, r.subresource, r.name))
        .collect();
    eprintln!(
        "controller requests after the child's status change: {}\n{}",
        ours.len(),
        summary.join("\n")
    );
    let flux_lists: Vec<&String> = ours
        .iter()
        .zip(&summary)
        .filter(|(r, _)| r.verb == "list" && flux.contains(&r.resource.as_str()))
        .map(|(_, s)| s)
        .collect();
    let disturbed = revision() != revision_before;
    if disturbed && !(flux_lists.is_empty()) {
        return false;
    }
    assert!(
        flux_lists.is_empty(),
        "no LIST of Flux kinds: {flux_lists:?}"
    );
    let applies: Vec<&String> = ours
        .iter()
        .zip(&summary)
        .filter(|(r, _)| {
            flux.contains(&r.resource.as_str()) && matches!(r.verb.as_str(), "patch" | "update")
        })
        .map(|(_, s)| s)
        .collect();
    if disturbed && !applies.is_empty() {
        return false;
    }
    assert!(applies.is_empty(), "no child apply: {applies:?}");
    let status_writes = ours
        .iter()
        .filter(|r| r.resource == "environments" && r.subresource == "status")
        .count();
    if disturbed && status_writes > 1 {
        return false;
    }
    assert!(status_writes <= 1, "at most one status write: {summary:?}");
    true
}

#[test]
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral --downscaler"]
fn a_user_without_rights_sees_the_api_servers_refusal() {
    let cluster = Cluster::running(&["ephemeral"]);
    let out = cluster.plugin(User::Bob, &["list", "-n", "default"]);
    assert!(!out.ok, "bob listed Environments in default");
    assert!(
        out.stderr.contains("forbidden") && out.stderr.contains("bob"),
        "the API server's refusal reaches bob: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

// ---------------------------------------------------------------- 7. certificates and the Lease

#[test]
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral --downscaler"]
fn a_second_replica_reuses_the_self_managed_certificate_and_does_not_reconcile() {
    let cluster = Cluster::running(&["ephemeral"]);
    let secret = |field: &str| {
        cluster
            .kubectl(
                User::Admin,
                &[
                    "get",
                    "secret",
                    "-n",
                    "ephemeral-system",
                    "ephemeral-webhook-tls",
                    "-o",
                    &format!("jsonpath={field}"),
                ],
                None,
            )
            .expect_ok("reading the certificate Secret")
            .stdout
    };
    let version = secret("{.metadata.resourceVersion}");
    let ca_bundle = || {
        cluster
            .kubectl(
                User::Admin,
                &[
                    "get",
                    "mutatingwebhookconfiguration",
                    "ephemeral-webhook",
                    "-o",
                    "jsonpath={.webhooks[0].clientConfig.caBundle}",
                ],
                None,
            )
            .expect_ok("reading the caBundle")
            .stdout
    };
    let bundle = ca_bundle();
    assert!(!bundle.is_empty(), "serve set the caBundle");
    let holder = || {
        cluster
            .kubectl(
                User::Admin,
                &[
                    "get",
                    "lease",
                    "-n",
                    "ephemeral-system",
                    "ephemeral-controller",
                    "-o",
                    "jsonpath={.spec.holderIdentity}",
                ],
                None,
            )
            .expect_ok("reading the Lease")
            .stdout
    };
    assert_eq!(holder(), "ephemeral-webhook-e2e-0");

    // A second replica, as the Deployment's second pod would run.
    let port = ephemeral_testkit::webhook::free_port();
    let admin = ephemeral_testkit::webhook::free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("replica.log")).unwrap();
    let mut replica = Command::new(ephemeral_testkit::binary("ephemeral-webhook"))
        .args([
            "serve",
            &format!("--listen=127.0.0.1:{port}"),
            &format!("--admin-listen=127.0.0.1:{admin}"),
            "--cert-extra-names=127.0.0.1",
            "--leader-election-lease=ephemeral-controller",
            "--controller-service-account=system:serviceaccount:ephemeral-system:ephemeral-webhook",
        ])
        .env("KUBECONFIG", cluster.var("KUBECONFIG_WEBHOOK"))
        .env("POD_NAMESPACE", "ephemeral-system")
        .env("POD_NAME", "ephemeral-webhook-e2e-1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start a second replica");
    let ready = (0..120).any(|_| {
        std::thread::sleep(Duration::from_millis(500));
        Command::new("curl")
            .args([
                "-fsS",
                "--noproxy",
                "*",
                &format!("http://127.0.0.1:{admin}/readyz"),
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    // It serves the certificate of the Secret, which the CA in the caBundle verifies.
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, base64_decode(&bundle)).unwrap();
    let verify = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-verify_ip",
            "127.0.0.1",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(&ca)
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let replica_log = std::fs::read_to_string(dir.path().join("replica.log")).unwrap_or_default();
    let _ = Command::new("kill")
        .args(["-TERM", &replica.id().to_string()])
        .status();
    let _ = replica.wait();
    assert!(
        ready,
        "the second replica never became ready:\n{replica_log}"
    );
    assert!(
        verify.status.success(),
        "the second replica's certificate is not trusted by the caBundle:\n{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert_eq!(
        secret("{.metadata.resourceVersion}"),
        version,
        "the Secret was reused, not rewritten"
    );
    assert_eq!(ca_bundle(), bundle, "the caBundle is unchanged");
    assert_eq!(
        holder(),
        "ephemeral-webhook-e2e-0",
        "the first replica still leads"
    );
    assert!(
        !replica_log.contains("leading: starting to reconcile"),
        "the second replica reconciled alongside the leader:\n{replica_log}"
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .expect("a base64 caBundle")
}

// ---------------------------------------------------------------- GoKubeDownscaler obeys the lease

fn replicas(cluster: &Cluster, deployment: &str) -> Option<i64> {
    cluster.get("deployment", deployment)?["spec"]["replicas"].as_i64()
}

/// Waits `scans` of the downscaler's 5 s interval, then the Deployment's replicas.
fn replicas_after_scans(cluster: &Cluster, deployment: &str, scans: u64) -> Option<i64> {
    std::thread::sleep(Duration::from_secs(5 * scans));
    replicas(cluster, deployment)
}

#[test]
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral --downscaler"]
fn the_real_downscaler_keeps_a_leased_environment_up_and_scales_an_ended_one_until_extended() {
    let cluster = catalog();
    Cluster::running(&["downscaler"]);
    for env in ["ds-up", "ds-ended"] {
        cluster.delete_environment(env);
    }
    let ended = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(30)).to_string();
    cluster
        .apply(User::Alice, &environment("ds-up", "[{name: scaled}]", ""))
        .expect_ok("an Environment with the default lease");
    cluster
        .apply(
            User::Alice,
            &environment("ds-ended", "[{name: scaled}]", "").replace(
                "spec:\n",
                &format!("spec:\n  lease: {{until: \"{ended}\"}}\n"),
            ),
        )
        .expect_ok("an Environment whose lease ended 30 minutes ago");
    for env in ["ds-up", "ds-ended"] {
        let deployment = format!("scaled-{env}");
        eventually(&format!("Flux to apply {deployment}"), FLUX, || {
            replicas(cluster, &deployment)
        });
        let uptime = cluster.get("environment", env).unwrap()["metadata"]["annotations"]
            ["downscaler/uptime"]
            .clone();
        assert_eq!(
            cluster.get("deployment", &deployment).unwrap()["metadata"]["annotations"]["downscaler/uptime"],
            uptime,
            "the workload carries the Environment's uptime"
        );
    }
    eventually(
        "the downscaler to scale the ended Environment to 0",
        FLUX,
        || (replicas(cluster, "scaled-ds-ended")? == 0).then_some(()),
    );
    assert_eq!(
        replicas_after_scans(cluster, "scaled-ds-up", 2),
        Some(1),
        "the Environment inside its lease keeps its replicas"
    );
    assert!(
        !std::fs::read_to_string(
            std::path::Path::new(cluster.var("KUBECONFIG_ADMIN"))
                .with_file_name("logs/downscaler.log")
        )
        .unwrap_or_default()
        .to_lowercase()
        .contains("failed to parse"),
        "the downscaler could not parse a value we wrote"
    );

    // Extending the lease brings it back.
    cluster
        .plugin(User::Alice, &["extend", "ds-ended", "--for", "2h"])
        .expect_ok("kubectl ephemeral extend");
    eventually(
        "the downscaler to scale the extended Environment back up",
        FLUX,
        || (replicas(cluster, "scaled-ds-ended")? == 1).then_some(()),
    );
    for env in ["ds-up", "ds-ended"] {
        cluster.delete_environment(env);
    }
}

#[test]
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral --downscaler"]
fn the_real_downscaler_follows_a_weekly_schedule() {
    let cluster = catalog();
    Cluster::running(&["downscaler"]);
    for env in ["ds-week-in", "ds-week-out"] {
        cluster.delete_environment(env);
    }
    // A window holding now and one that does not (never across midnight).
    let hour = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .hour();
    let outside = if hour <= 20 {
        format!("{:02}:00-{:02}:00", hour + 2, hour + 3)
    } else {
        "01:00-02:00".to_owned()
    };
    for (env, window) in [
        ("ds-week-in", "00:00-23:59".to_owned()),
        ("ds-week-out", outside),
    ] {
        cluster
            .apply(
                User::Alice,
                &environment(env, "[{name: scaled}]", "").replace(
                    "spec:\n",
                    &format!("spec:\n  lease: {{schedule: \"Mon-Sun {window} UTC\"}}\n"),
                ),
            )
            .expect_ok("an Environment with a weekly schedule");
        let stored = cluster.get("environment", env).unwrap();
        assert_eq!(
            stored["metadata"]["annotations"]["downscaler/uptime"],
            format!("Mon-Sun {window} UTC"),
            "the schedule is written as the downscaler reads it"
        );
        eventually(&format!("Flux to apply scaled-{env}"), FLUX, || {
            replicas(cluster, &format!("scaled-{env}"))
        });
    }
    eventually(
        "the downscaler to scale the Environment outside its window",
        FLUX,
        || (replicas(cluster, "scaled-ds-week-out")? == 0).then_some(()),
    );
    assert_eq!(
        replicas_after_scans(cluster, "scaled-ds-week-in", 2),
        Some(1),
        "the Environment inside its window keeps its replicas"
    );
    for env in ["ds-week-in", "ds-week-out"] {
        cluster.delete_environment(env);
    }
}

// ---------------------------------------------------------------- Flux does not fight the downscaler

fn event_reasons(cluster: &Cluster, env: &str) -> Vec<String> {
    let out = cluster
        .kubectl(
            User::Admin,
            &[
                "get",
                "events",
                "-n",
                NAMESPACE,
                "--field-selector",
                &format!("involvedObject.kind=Environment,involvedObject.name={env}"),
                "-o",
                "json",
            ],
            None,
        )
        .expect_ok("kubectl get events");
    out.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}

fn pinned_revision(cluster: &Cluster, env: &str) -> Option<String> {
    config_map(cluster, &format!("pinned-{env}")).map(|c| data(&c, "revision").to_owned())
}

#[test]
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral --downscaler"]
fn outside_uptime_a_suspended_kustomization_leaves_the_downscaled_deployment_alone_until_extended()
{
    let cluster = catalog();
    Cluster::running(&["downscaler"]);
    // Names no earlier run used: a deleted Kustomization whose Deployment
    // is up waits out Flux's health check (no kubelet here: up to its 5m
    // timeout) before its finalizer prunes, so a rerun would find the old
    // objects.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 100_000;
    let (on, off) = (format!("sus-on-{run}"), format!("sus-off-{run}"));
    let (on, off) = (on.as_str(), off.as_str());
    // Both ended 30 minutes ago, so GoKubeDownscaler scales them to 0, and
    // neither is suspended yet (the harness runs serve without
    // --suspend-outside-uptime): Flux applies spec.replicas: 1 at first.
    let ended = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(30)).to_string();
    for env in [on, off] {
        cluster
            .apply(
                User::Alice,
                &environment(env, "[{name: pinned}]", "").replace(
                    "spec:\n",
                    &format!("spec:\n  lease: {{until: \"{ended}\"}}\n"),
                ),
            )
            .expect_ok("an Environment whose lease ended");
    }
    for env in [on, off] {
        eventually(
            &format!(
                "Flux to apply pinned-{env} and the downscaler to scale it to 0, and Flux to report Ready"
            ),
            FLUX,
            || {
                (replicas(cluster, &format!("pinned-{env}"))? == 0).then_some(())?;
                let k = cluster.get("kustomization", &format!("{env}-pinned"))?;
                (condition(&k, "Ready")?["status"] == "True").then_some(())
            },
        );
        assert_eq!(pinned_revision(cluster, env).as_deref(), Some("initial"));
        let stored = cluster.get("environment", env).unwrap();
        assert!(
            condition(&stored, "Suspended").is_none(),
            "suspension is off by default: {stored}"
        );
    }

    // The Environment turns suspension on: its Kustomization is suspended.
    let started = std::time::Instant::now();
    cluster
        .kubectl(
            User::Alice,
            &[
                "patch",
                "-n",
                NAMESPACE,
                "environment",
                on,
                "--type=merge",
                "-p",
                r#"{"spec":{"lease":{"suspendOutsideUptime":true}}}"#,
            ],
            None,
        )
        .expect_ok("spec.lease.suspendOutsideUptime: true");
    let suspended = eventually("the controller to suspend the Kustomization", QUICK, || {
        let k = cluster.get("kustomization", &format!("{on}-pinned"))?;
        (k["spec"]["suspend"] == true).then_some(())?;
        let env = cluster.get("environment", on)?;
        let c = condition(&env, "Suspended")?.clone();
        (c["status"] == "True").then_some((env, c))
    });
    eprintln!("suspended {:?} after the patch", started.elapsed());
    let (env, c) = suspended;
    assert_eq!(c["reason"], "OutsideUptime", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("until the lease is extended"),
        "{c}"
    );
    let app = &env["status"]["apps"][0];
    assert_eq!(
        (app["ready"].as_bool(), app["reason"].as_str()),
        (Some(true), Some("OutsideUptime")),
        "a suspended app keeps the verdict Flux last gave: {app}"
    );
    eventually("the Suspended Event", QUICK, || {
        event_reasons(cluster, on)
            .contains(&"Suspended".to_owned())
            .then_some(())
    });
    let described = cluster
        .plugin(User::Alice, &["describe", on])
        .expect_ok("kubectl ephemeral describe");
    assert!(
        described
            .stdout
            .contains("Suspended:      Yes: outside its lease"),
        "{}",
        described.stdout
    );
    assert_eq!(
        cluster
            .get("kustomization", &format!("{off}-pinned"))
            .unwrap()["spec"]["suspend"],
        false,
        "the other Environment is not suspended"
    );
    // An ImagePolicy-free app: nothing else of the Environment changed.
    let applied_before = cluster
        .get("kustomization", &format!("{on}-pinned"))
        .unwrap()["status"]["lastAppliedRevision"]
        .clone();

    // A new revision of the app in git, and a requested reconcile (what
    // `flux reconcile` does) on both Kustomizations.
    let revision = format!(
        "rev-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let repo = GitClone::new(cluster);
    repo.write("apps/pinned/configmap.yaml", &pinned_config_map(&revision))
        .push("pinned: a new revision");
    for env in [on, off] {
        cluster.request_reconcile(&format!("{env}-pinned"), &revision);
    }
    // The unsuspended one takes it up (and re-applies replicas: 1, which
    // the downscaler takes back); meanwhile the suspended one is left alone.
    let mut on_replicas = Vec::new();
    let mut off_replicas = Vec::new();
    eventually(
        "Flux to apply the new revision to the Environment that is not suspended",
        FLUX,
        || {
            on_replicas.push(replicas(cluster, &format!("pinned-{on}")));
            off_replicas.push(replicas(cluster, &format!("pinned-{off}")));
            (pinned_revision(cluster, off)? == revision).then_some(())
        },
    );
    // Three more downscaler scans and git polls.
    for _ in 0..15 {
        std::thread::sleep(Duration::from_secs(1));
        on_replicas.push(replicas(cluster, &format!("pinned-{on}")));
    }
    eprintln!(
        "replicas while suspended: {on_replicas:?}; of the unsuspended Environment: {off_replicas:?}"
    );
    assert!(
        on_replicas.iter().all(|r| *r == Some(0)),
        "Flux put back spec.replicas of the suspended Environment: {on_replicas:?}"
    );
    assert_eq!(
        pinned_revision(cluster, on).as_deref(),
        Some("initial"),
        "Flux applied a new revision to the suspended Environment"
    );
    assert_eq!(
        cluster
            .get("kustomization", &format!("{on}-pinned"))
            .unwrap()["status"]["lastAppliedRevision"],
        applied_before,
        "the suspended Kustomization was not reconciled"
    );

    // Extending the lease resumes it: Flux applies the new revision and
    // spec.replicas: 1, and the downscaler keeps it up.
    let extended = std::time::Instant::now();
    cluster
        .plugin(User::Alice, &["extend", on, "--for", "2h"])
        .expect_ok("kubectl ephemeral extend");
    eventually(
        "the controller to resume the Kustomization and Flux to apply the new revision",
        FLUX,
        || {
            let k = cluster.get("kustomization", &format!("{on}-pinned"))?;
            (k["spec"]["suspend"] == false).then_some(())?;
            (pinned_revision(cluster, on)? == revision).then_some(())
        },
    );
    eprintln!("resumed and applied {:?} after extend", extended.elapsed());
    eventually("the Deployment to be scaled back up", FLUX, || {
        (replicas(cluster, &format!("pinned-{on}"))? == 1).then_some(())
    });
    assert_eq!(
        replicas_after_scans(cluster, &format!("pinned-{on}"), 2),
        Some(1),
        "inside its lease the Deployment stays up"
    );
    let env = cluster.get("environment", on).unwrap();
    let c = condition(&env, "Suspended").unwrap();
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("False"), Some("InsideUptime")),
        "{c}"
    );
    eventually("the Resumed Event", QUICK, || {
        event_reasons(cluster, on)
            .contains(&"Resumed".to_owned())
            .then_some(())
    });
    for env in [on, off] {
        cluster.delete_environment(env);
    }
}

// ---------------------------------------------------------------- EnvironmentSet

/// The sets' GitHub: the fake GitHub, served from this test process on
/// 127.0.0.1, which the loopback cluster's `serve` reaches.
fn fake_github() -> (
    tokio::runtime::Runtime,
    ephemeral_testkit::fake_github::FakeGitHub,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let github = runtime.block_on(ephemeral_testkit::fake_github::FakeGitHub::start());
    (runtime, github)
}

#[test]
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral --downscaler"]
fn a_pull_request_gets_an_environment_through_flux_and_loses_it_when_closed() {
    use ephemeral_testkit::fake_github::PullRequestFixture;

    let cluster = catalog();
    let (_runtime, github) = fake_github();
    github.require_token("ghp_cluster");
    let set = "setloop";
    cluster.kubectl(
        User::Admin,
        &[
            "delete",
            "-n",
            NAMESPACE,
            "environmentset",
            set,
            "--ignore-not-found",
            "--wait",
        ],
        None,
    );
    let mut pr = PullRequestFixture::new("acme", "shop", 41);
    github.set_pull_requests("acme", "shop", vec![pr.json()]);
    cluster
        .apply(
            User::Admin,
            &format!(
                r#"apiVersion: v1
kind: Secret
metadata: {{name: setloop-github, namespace: {NAMESPACE}}}
stringData: {{token: ghp_cluster}}
---
apiVersion: ephemeral.io/v1alpha1
kind: EnvironmentSet
metadata: {{name: {set}, namespace: {NAMESPACE}}}
spec:
  pullRequests:
    github:
      owner: acme
      repo: shop
      apiURL: "{url}"
      tokenSecretRef: {{name: setloop-github, key: token}}
  interval: 5s
  template:
    spec:
      apps: [{{name: plain}}]
  report:
    commitStatus:
      targetURL: "https://shop-${{PR_NUMBER}}.preview.example.com"
    comment: true
"#,
                url = github.url()
            ),
        )
        .expect_ok("the Secret and the EnvironmentSet");

    // The pull request's Environment: the set's, through admission and Flux.
    let name = format!("{set}-pr-41");
    let env = eventually("the pull request's Environment", QUICK, || {
        cluster.get("environment", &name)
    });
    assert_eq!(env["metadata"]["labels"]["ephemeral.io/set"], set);
    assert_eq!(env["metadata"]["labels"]["ephemeral.io/pull-request"], "41");
    assert_eq!(
        env["metadata"]["ownerReferences"][0]["kind"],
        "EnvironmentSet"
    );
    assert!(
        env["metadata"]["annotations"]["ephemeral.io/owner"].is_string(),
        "admitted by the webhook"
    );
    eventually("the Environment Ready through Flux", FLUX, || {
        let env = cluster.get("environment", &name)?;
        (condition(&env, "Ready")?["status"] == "True").then_some(())
    });

    // The commit status: pending (once per description: coming up, then
    // progressing), then success once.
    let states = eventually("the commit status success", QUICK, || {
        let statuses = github.statuses("acme", "shop");
        let states: Vec<String> = statuses
            .iter()
            .filter(|s| s["sha"] == pr.head_sha.as_str())
            .filter_map(|s| s["state"].as_str().map(str::to_owned))
            .collect();
        states.iter().any(|s| s == "success").then_some(states)
    });
    let mut phases = states.clone();
    phases.dedup();
    assert_eq!(phases, ["pending", "success"], "{states:?}");
    std::thread::sleep(Duration::from_secs(12));
    let successes = github
        .statuses("acme", "shop")
        .iter()
        .filter(|s| s["state"] == "success")
        .count();
    assert_eq!(successes, 1, "success is set once, not on every poll");
    // The one comment, edited in place, with the URL.
    let comments = github.comments("acme", "shop", 41);
    assert_eq!(comments.len(), 1, "{comments:?}");
    let body = comments[0]["body"].as_str().unwrap_or_default();
    assert!(
        body.contains("https://shop-41.preview.example.com") && body.contains("Ready"),
        "{body}"
    );

    // Closed on GitHub: gone from the list, its own GET says closed.
    pr.state = "closed".into();
    github.set_pull_requests("acme", "shop", vec![pr.json()]);
    eventually("the closed pull request's Environment to go", FLUX, || {
        cluster.get("environment", &name).is_none().then_some(())
    });
    eventually("its Kustomization to go with it", FLUX, || {
        cluster
            .get("kustomization", &format!("{name}-plain"))
            .is_none()
            .then_some(())
    });
    cluster
        .kubectl(
            User::Admin,
            &[
                "delete",
                "-n",
                NAMESPACE,
                &format!("environmentset/{set}"),
                "secret/setloop-github",
            ],
            None,
        )
        .expect_ok("cleaning up");
    // The set's reconciles show in the webhook's metrics, beside the
    // Environments' own.
    let metrics = Command::new("curl")
        .args([
            "-fsS",
            "--noproxy",
            "*",
            &format!("{}/metrics", cluster.var("EPHEMERAL_ADMIN")),
        ])
        .output()
        .expect("curl runs");
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    let count = |series: &str| {
        metrics.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<u64>()
                .ok()
        })
    };
    assert!(
        count("ephemeral_webhook_set_reconcile_duration_seconds_count").is_some_and(|n| n > 0),
        "{metrics}"
    );
    assert!(
        count("ephemeral_webhook_reconcile_duration_seconds_count").is_some_and(|n| n > 0),
        "{metrics}"
    );
}
