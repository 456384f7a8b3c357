//! The real-cluster tier: scenarios against a real kube-apiserver, garbage
//! collector and Flux, with the workspace's `ephemeral-webhook serve` as the
//! cluster's admission webhook and controller, and the real `kubectl`.
//!
//! Start the cluster with `tests/cluster/up --flux --with-ephemeral`, then
//! `cargo test -p ephemeral-e2e --test cluster -- --ignored`. Ignored by
//! default so the README's `cargo test --workspace` needs no cluster;
//! `.ci/run` runs this tier. Each scenario uses its own Environment names,
//! so they run in parallel.

use std::sync::OnceLock;
use std::time::Duration;

use ephemeral_e2e::cluster::{Cluster, GitClone, NAMESPACE, User, condition, eventually};
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
                &format!("feature-x-{SHA_1}-1700000050"),
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
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral"]
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
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral"]
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

    // Alice re-applying her own file keeps her the owner; an admin may change it.
    cluster
        .apply(User::Alice, &yaml)
        .expect_ok("alice re-applies");
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
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral"]
fn flux_deploys_the_newest_image_of_the_branch_and_everything_goes_with_the_environment() {
    let cluster = catalog();
    cluster.delete_environment("loop");
    cluster
        .apply(
            User::Alice,
            &environment(
                "loop",
                "[{name: shop, branch: feature/x}, {name: chart}]",
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
    let want = format!("feature-x-{SHA_1}-1700000050");
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
    let newer = format!("feature-x-{SHA_2}-1700000300");
    cluster.push_tags("shop", &[&newer]);
    eventually(
        "the shop ConfigMap to move to the newer build",
        FLUX,
        || config_map(cluster, "shop-loop").filter(|c| data(c, "image_tag") == newer),
    );
    let longer = format!("feature-x-long-{SHA_3}-1700000900");
    cluster.push_tags("shop", &[&longer]);
    eventually(
        "the ImageRepository to list the longer prefix's tag",
        FLUX,
        || {
            let repo = cluster.get_in("flux-system", "imagerepository", "shop")?;
            (repo["status"]["lastScanResult"]["tagCount"].as_u64()? >= 5).then_some(())
        },
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
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral"]
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
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral"]
fn kubectl_ephemeral_runs_the_whole_lifecycle_as_alice() {
    let cluster = catalog();
    cluster.delete_environment("plug");
    cluster
        .plugin(
            User::Alice,
            &[
                "create",
                "plug",
                "--app",
                "plain",
                "--app",
                "shop@feature/x",
            ],
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
        .plugin(User::Alice, &["wait", "plug", "--timeout", "180s"])
        .expect_ok("kubectl ephemeral wait");
    let describe = cluster
        .plugin(User::Alice, &["describe", "plug"])
        .expect_ok("kubectl ephemeral describe");
    for text in [
        "alice",
        "plain",
        "shop",
        "feature-x",
        &format!("feature-x-{SHA_1}"),
    ] {
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
        .plugin(User::Alice, &["add-app", "plug", "shop@feature/x"])
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
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral"]
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
#[ignore = "real-cluster tier: tests/cluster/up --flux --with-ephemeral"]
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
