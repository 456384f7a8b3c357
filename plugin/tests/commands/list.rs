use kubectl_ephemeral::cli::Command;
use kubectl_ephemeral::cmd::list;
use serde_json::{Value, json};

use crate::parse;
use crate::support::*;

async fn list(argv: &[&str], exchanges: Vec<Exchange>) -> String {
    let mut full = vec!["list"];
    full.extend_from_slice(argv);
    let Command::List(a) = parse(&full) else {
        unreachable!()
    };
    let played = play(exchanges, |ctx, mut out| async move {
        let r = list::run(&ctx, &a, &mut out).await;
        (r, out)
    })
    .await;
    played.transcript()
}

/// Three environments in the states people see: ready, coming up, expired; and a schedule.
pub fn three() -> Vec<Value> {
    let alice = with_status(
        admitted(
            "alice",
            "alice",
            json!({"apps": [
            {"name": "checkout", "branch": "feature/new-basket"}, {"name": "payments"}, {"name": "web", "imageTagPrefix": "feature-web-2"}],
            "lease": {"until": "2026-11-21T19:00:00Z"}}),
        ),
        json!([
            {"name": "checkout", "kind": "Kustomization", "ready": true, "imageTag": "feature-new-basket-3f2c1ab-1763715600"},
            {"name": "payments", "kind": "Kustomization", "ready": true, "imageTag": "main-9e1d4c2-1763712000"},
            {"name": "web", "kind": "Kustomization", "ready": false, "reason": "HealthCheckFailed"}]),
        "2026-11-21T19:00:00Z",
    );
    let bob = admitted(
        "bob",
        "bob",
        json!({"apps": [{"name": "payments", "branch": "fix/refunds"}],
        "lease": {"until": "2026-11-20T19:00:00Z"}}),
    );
    let infra = with_status(
        admitted(
            "infra",
            "carol",
            json!({"apps": [{"name": "web"}],
            "lease": {"schedule": "Mon-Fri 07:00-19:00 Europe/London"}}),
        ),
        json!([{"name": "web", "kind": "Kustomization", "ready": true, "imageTag": "main-9e1d4c2-1763712000"}]),
        "2026-11-23T19:00:00Z",
    );
    vec![alice, bob, infra]
}

fn list_ok() -> Exchange {
    expect("GET", ENVS).ok(list_of("Environment", three()))
}

#[tokio::test]
async fn table() {
    insta::assert_snapshot!(list(&[], vec![list_ok()]).await);
}

/// The Environment an EnvironmentSet keeps for pull request #42 (its labels).
fn generated() -> Value {
    let mut env = admitted(
        "shop-prs-pr-42",
        "system:serviceaccount:ephemeral-system:ephemeral-webhook",
        json!({"apps": [{"name": "checkout", "branch": "feature/new-basket"}],
            "lease": {"until": "2026-11-21T19:00:00Z"}}),
    );
    env["metadata"]["labels"] =
        json!({"ephemeral.io/set": "shop-prs", "ephemeral.io/pull-request": "42"});
    env
}

#[tokio::test]
async fn wide_adds_the_set_the_pull_request_and_the_prefixes() {
    let mut items = three();
    items.push(generated());
    let text = list(
        &["-o", "wide"],
        vec![expect("GET", ENVS).ok(list_of("Environment", items))],
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn all_namespaces_with_a_selector_and_no_headers() {
    let text = list(
        &["-A", "-l", "team=payments", "--no-headers"],
        vec![
            expect("GET", "/apis/ephemeral.io/v1alpha1/environments")
                .query(&[("labelSelector", "team=payments")])
                .ok(list_of("Environment", three())),
        ],
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn mine_asks_who_i_am() {
    let text = list(
        &["--mine", "-o", "name"],
        vec![
            list_ok(),
            expect("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews")
                .body("application/json", json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {}}))
                .ok(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {},
                    "status": {"userInfo": {"username": "bob", "groups": ["dev"]}}})),
        ],
    )
    .await;
    assert_eq!(
        text,
        "--- stdout\nenvironment.ephemeral.io/bob\n--- stderr\n\n"
    );
}

#[tokio::test]
async fn owner_filters_and_nothing_found_goes_to_stderr() {
    let text = list(&["--owner", "dave"], vec![list_ok()]).await;
    assert_eq!(
        text,
        "--- stdout\n--- stderr\nNo environments owned by dave found in namespace ephemeral.\n"
    );
}

#[tokio::test]
async fn yaml_is_a_v1_list() {
    let text = list(&["-o", "yaml", "--owner", "bob"], vec![list_ok()]).await;
    assert!(
        text.starts_with("--- stdout\napiVersion: v1\nitems:\n"),
        "{text}"
    );
    assert!(text.contains("\nkind: List\n"), "{text}");
    assert!(text.contains("  name: bob\n"), "{text}");
    assert!(!text.contains("name: alice"), "{text}");
}

#[tokio::test]
async fn missing_crds() {
    let text = list(
        &[],
        vec![expect("GET", ENVS).fail(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        )],
    )
    .await;
    insta::assert_snapshot!(text);
}
