//! The real-cluster tier's disruptive scenarios: they take away parts of the
//! cluster (a Flux CRD, the webhook itself), so they run after
//! `tests/tests/cluster.rs`, alone, and leave the cluster for `down`.
//!
//! `cargo test -p ephemeral-testkit --test cluster_disruptive -- --ignored`
//! against `tests/cluster/up --flux --with-ephemeral [--downscaler]`.

use std::time::Duration;

use ephemeral_testkit::cluster::{Cluster, User, condition, eventually};

fn environment(name: &str, apps: &str) -> String {
    format!(
        "apiVersion: ephemeral.io/v1alpha1\nkind: Environment\nmetadata:\n  name: {name}\n  namespace: previews\nspec:\n  apps: {apps}\n"
    )
}

/// One test, so the order is fixed: first a Flux kind the API server stops
/// serving, then the webhook going down.
#[test]
#[ignore = "real-cluster tier, disruptive: run after the cluster tests, alone"]
fn error_paths_when_parts_of_the_cluster_are_gone() {
    let cluster = Cluster::running(&["flux", "ephemeral"]);
    cluster
        .apply(
            User::Admin,
            "apiVersion: ephemeral.io/v1alpha1\nkind: AppTemplate\nmetadata: {name: helm-only, namespace: previews}\nspec:\n  helm:\n    chart: ./charts/shop\n    sourceRef: {kind: GitRepository, name: platform, namespace: flux-system}\n",
        )
        .expect_ok("a Helm template");

    // Flux's HelmRelease CRD removed: an Environment needing it stalls with
    // FluxKindNotServed and nothing is applied.
    cluster
        .kubectl(
            User::Admin,
            &[
                "delete",
                "crd",
                "helmreleases.helm.toolkit.fluxcd.io",
                "--wait",
                "--timeout=120s",
            ],
            None,
        )
        .expect_ok("removing the HelmRelease CRD");
    cluster.delete_environment("no-helm");
    cluster
        .apply(User::Alice, &environment("no-helm", "[{name: helm-only}]"))
        .expect_ok("an Environment with a Helm app");
    let env = eventually("the Environment to stall", Duration::from_secs(90), || {
        let env = cluster.get("environment", "no-helm")?;
        (condition(&env, "Stalled")?["status"] == "True").then_some(env)
    });
    let stalled = condition(&env, "Stalled").unwrap();
    assert_eq!(stalled["reason"], "FluxKindNotServed", "{stalled}");
    assert!(
        stalled["message"].as_str().unwrap().contains("HelmRelease"),
        "{stalled}"
    );
    let describe = cluster
        .plugin(User::Alice, &["describe", "no-helm"])
        .expect_ok("describe");
    assert!(
        describe.stdout.contains("FluxKindNotServed"),
        "{}",
        describe.stdout
    );
    cluster.delete_environment("no-helm");

    // The webhook down with failurePolicy: Fail: Environment writes are
    // refused with the API server's error naming the webhook; nothing else is.
    let processes = std::fs::read_to_string(
        std::path::Path::new(cluster.var("KUBECONFIG_ADMIN")).with_file_name("processes"),
    )
    .expect("the harness's process list");
    let pid = processes
        .lines()
        .find_map(|l| l.strip_prefix("ephemeral-webhook "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the webhook's pid");
    let status = std::process::Command::new("kill")
        .args(["-KILL", pid])
        .status()
        .unwrap();
    assert!(status.success(), "stopping the webhook");
    let out = eventually(
        "Environment writes to be refused",
        Duration::from_secs(30),
        || {
            let out = cluster.apply(User::Alice, &environment("while-down", "[{name: plain}]"));
            (!out.ok).then_some(out)
        },
    );
    assert!(
        out.stderr.contains("mutate.environments.ephemeral.io")
            && out.stderr.contains("failed calling webhook"),
        "a clear API error naming the webhook: {}",
        out.stderr
    );
    assert!(
        cluster.get("environment", "while-down").is_none(),
        "nothing was stored"
    );
    cluster
        .kubectl(User::Alice, &["get", "environments"], None)
        .expect_ok("reads still work without the webhook");
    cluster
        .kubectl(
            User::Admin,
            &["create", "configmap", "-n", "previews", "unaffected"],
            None,
        )
        .expect_ok("other kinds are not gated by the webhook");
}
