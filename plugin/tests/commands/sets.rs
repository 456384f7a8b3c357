use kubectl_ephemeral::cli::Command;
use kubectl_ephemeral::cmd::sets;
use serde_json::{Value, json};

use crate::parse;
use crate::support::*;

async fn sets(argv: &[&str], exchanges: Vec<Exchange>) -> String {
    let mut full = vec!["sets"];
    full.extend_from_slice(argv);
    let Command::Sets(a) = parse(&full) else {
        unreachable!()
    };
    let played = play(exchanges, |ctx, mut out| async move {
        let r = sets::run(&ctx, &a, &mut out).await;
        (r, out)
    })
    .await;
    played.transcript()
}

/// Path of the environmentsets collection in namespace `ephemeral`.
pub const SETS: &str = "/apis/ephemeral.io/v1alpha1/namespaces/ephemeral/environmentsets";
const EVENTS: &str = "/api/v1/namespaces/ephemeral/events";

const SHA_42: &str = "3f2c1ab9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3";
const SHA_43: &str = "9e1d4c2a1b2c3d4e5f60718293a4b5c6d7e8f901";
const SHA_43_OLD: &str = "5d41402abc4b2a76b9719d911017c592ab12cd34";
const SHA_44: &str = "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3";
const SHA_45: &str = "b1946ac92492d2347c6235b4d2611184aa8e3f7e";

/// A set as its controller reports it at 12:00: #42 Ready and healthy, #43
/// waiting for the image of its new head commit, #44 failing its health
/// check, #45 queued (maxEnvironments 3).
pub fn shop_prs() -> Value {
    json!({
        "apiVersion": "ephemeral.io/v1alpha1", "kind": "EnvironmentSet",
        "metadata": {"name": "shop-prs", "namespace": "ephemeral", "uid": "uid-shop-prs",
            "generation": 2, "resourceVersion": "1500", "creationTimestamp": "2026-11-18T12:00:00Z"},
        "spec": {
            "pullRequests": {
                "github": {"owner": "acme", "repo": "shop", "tokenSecretRef": {"name": "github", "key": "token"}},
                "labels": ["preview"], "excludeLabels": ["no-preview"], "baseBranches": ["main"],
                "excludeAuthors": ["dependabot[bot]"]},
            "interval": "5m",
            "maxEnvironments": 3,
            "template": {"spec": {"apps": [{"name": "checkout", "branch": "${PR_BRANCH}"}, {"name": "payments"}]}},
            "healthCheck": {"url": "https://shop-${PR_NUMBER}.preview.example.com/healthz"},
            "report": {"commitStatus": {}, "comment": true}},
        "status": {
            "observedGeneration": 2,
            "repository": "acme/shop",
            "lastSyncTime": "2026-11-21T11:58:00Z",
            "rateLimitRemaining": 4873,
            "readyEnvironments": "2/3",
            "queued": 1,
            "conditions": [{"type": "Ready", "status": "True", "reason": "Synced",
                "message": "4 open pull requests match: 3 with an Environment, 1 queued",
                "observedGeneration": 2, "lastTransitionTime": "2026-11-21T09:00:00Z"}],
            "pullRequests": [
                {"number": 42, "headSha": SHA_42, "branch": "feature/new-basket", "author": "alice",
                 "environment": "shop-prs-pr-42", "state": "Ready", "reason": "Ready",
                 "message": "ready at 3f2c1ab", "readySince": "2026-11-21T10:00:00Z",
                 "healthCheck": {"headSha": SHA_42, "time": "2026-11-21T11:59:45Z", "passed": true},
                 "commitStatus": {"headSha": SHA_42, "state": "success", "description": "ready at 3f2c1ab"}},
                {"number": 43, "headSha": SHA_43, "branch": "fix/refunds", "author": "bob",
                 "environment": "shop-prs-pr-43", "state": "Progressing", "reason": "WaitingForImage",
                 "message": "waiting for the image of 9e1d4c2",
                 "commitStatus": {"headSha": SHA_43_OLD, "state": "success", "description": "ready at 5d41402"}},
                {"number": 44, "headSha": SHA_44, "branch": "feature/search", "author": "carol",
                 "environment": "shop-prs-pr-44", "state": "Failed", "reason": "HealthCheckFailed",
                 "message": "https://shop-44.preview.example.com/healthz answered 503 Service Unavailable for 10m",
                 "readySince": "2026-11-21T11:00:00Z",
                 "healthCheck": {"headSha": SHA_44, "time": "2026-11-21T11:59:50Z", "passed": false,
                     "message": "503 Service Unavailable"},
                 "commitStatus": {"headSha": SHA_44, "state": "failure",
                     "description": "health check failed: 503 Service Unavailable for 10m"}},
                {"number": 45, "headSha": SHA_45, "branch": "docs/typo", "author": "dave",
                 "state": "Queued", "reason": "WaitingForSlot",
                 "message": "queued: 3 environments running, max 3",
                 "commitStatus": {"headSha": SHA_45, "state": "pending",
                     "description": "queued: 3 environments running, max 3"}}]}
    })
}

/// A set its controller has not processed yet: no status.
pub fn docs_prs() -> Value {
    json!({
        "apiVersion": "ephemeral.io/v1alpha1", "kind": "EnvironmentSet",
        "metadata": {"name": "docs-prs", "namespace": "ephemeral", "uid": "uid-docs-prs",
            "generation": 1, "resourceVersion": "1600", "creationTimestamp": "2026-11-21T11:55:00Z"},
        "spec": {
            "pullRequests": {"github": {"owner": "acme", "repo": "docs",
                "apiURL": "https://github.example.com/api/v3",
                "app": {"appID": 1, "installationID": 2, "privateKeySecretRef": {"name": "app", "key": "key.pem"}}},
                "includeDrafts": true},
            "template": {"spec": {"apps": [{"name": "web"}]}}}
    })
}

/// The Environment shop-prs keeps for pull request `number`, with its apps
/// ready or not; `deleting`: with a deletionTimestamp.
fn generated(number: u64, ready: bool, deleting: bool) -> Value {
    let name = format!("shop-prs-pr-{number}");
    let mut env = with_status(
        admitted(
            &name,
            "system:serviceaccount:ephemeral-system:ephemeral-webhook",
            json!({"apps": [{"name": "checkout", "branch": "feature/new-basket"}, {"name": "payments"}]}),
        ),
        json!([
            {"name": "checkout", "kind": "Kustomization", "ready": ready},
            {"name": "payments", "kind": "Kustomization", "ready": true}]),
        "2026-11-21T19:00:00Z",
    );
    env["metadata"]["labels"] =
        json!({"ephemeral.io/set": "shop-prs", "ephemeral.io/pull-request": number.to_string()});
    if deleting {
        env["metadata"]["deletionTimestamp"] = json!("2026-11-21T11:59:00Z");
    }
    env
}

fn environments_of(set: &str, items: Vec<Value>) -> Exchange {
    expect("GET", ENVS)
        .query(&[("labelSelector", &format!("ephemeral.io/set={set}"))])
        .ok(list_of("Environment", items))
}

fn list_ok() -> Exchange {
    expect("GET", SETS).ok(list_of("EnvironmentSet", vec![docs_prs(), shop_prs()]))
}

fn events(name: &str, items: Vec<Value>) -> Exchange {
    expect("GET", EVENTS)
        .query(&[(
            "fieldSelector",
            &format!("involvedObject.kind=EnvironmentSet,involvedObject.name={name}"),
        )])
        .ok(json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": items}))
}

#[tokio::test]
async fn the_sets_then_every_pull_request() {
    let text = sets(&[], vec![list_ok()]).await;
    for line in text.lines() {
        assert!(line.len() <= 100, "wider than 100 columns: {line:?}");
    }
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn all_namespaces_with_a_selector() {
    let text = sets(
        &["-A", "-l", "team=shop"],
        vec![
            expect("GET", "/apis/ephemeral.io/v1alpha1/environmentsets")
                .query(&[("labelSelector", "team=shop")])
                .ok(list_of("EnvironmentSet", vec![shop_prs()])),
        ],
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn no_sets_goes_to_stderr() {
    let text = sets(
        &[],
        vec![expect("GET", SETS).ok(list_of("EnvironmentSet", vec![]))],
    )
    .await;
    assert_eq!(
        text,
        "--- stdout\n--- stderr\nNo EnvironmentSets found in namespace ephemeral.\n"
    );
}

#[tokio::test]
async fn names_and_a_json_list() {
    let text = sets(&["-o", "name"], vec![list_ok()]).await;
    assert_eq!(
        text,
        "--- stdout\nenvironmentset.ephemeral.io/docs-prs\nenvironmentset.ephemeral.io/shop-prs\n--- stderr\n\n"
    );
    let text = sets(&["-o", "json"], vec![list_ok()]).await;
    let json: Value = serde_json::from_str(
        text.strip_prefix("--- stdout\n")
            .unwrap()
            .split_once("--- stderr")
            .unwrap()
            .0,
    )
    .unwrap();
    assert_eq!(json["kind"], "List");
    assert_eq!(
        json["items"][1]["status"]["pullRequests"][3]["state"],
        "Queued"
    );
}

#[tokio::test]
async fn one_set_in_detail_with_its_environments_now() {
    let text = sets(
        &["shop-prs"],
        vec![
            expect("GET", format!("{SETS}/shop-prs")).ok(shop_prs()),
            // #42 and #44 are up (#44's health check fails), #43's checkout
            // is not; #40's (closed) is being deleted.
            environments_of(
                "shop-prs",
                vec![
                    generated(40, true, true),
                    generated(42, true, false),
                    generated(43, false, false),
                    generated(44, true, false),
                ],
            ),
            events(
                "shop-prs",
                vec![
                    json!({"metadata": {"name": "e1", "namespace": "ephemeral"},
                    "involvedObject": {"kind": "EnvironmentSet", "name": "shop-prs"},
                    "type": "Warning", "reason": "ListFailed",
                    "message": "GitHub answered 502 Bad Gateway; nothing was changed",
                    "lastTimestamp": "2026-11-21T11:53:00Z", "source": {"component": "ephemeral"}}),
                    json!({"metadata": {"name": "e2", "namespace": "ephemeral"},
                    "involvedObject": {"kind": "EnvironmentSet", "name": "shop-prs"},
                    "type": "Normal", "reason": "Updated",
                    "message": "updated shop-prs-pr-43 for 9e1d4c2",
                    "lastTimestamp": "2026-11-21T11:58:00Z", "source": {"component": "ephemeral"}}),
                ],
            ),
        ],
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn a_set_before_its_controller() {
    let text = sets(
        &["docs-prs"],
        vec![
            expect("GET", format!("{SETS}/docs-prs")).ok(docs_prs()),
            expect("GET", ENVS)
                .query(&[("labelSelector", "ephemeral.io/set=docs-prs")])
                .fail(403, "Forbidden", "environments.ephemeral.io is forbidden: User \"bob\" cannot list resource \"environments\"", None),
            expect("GET", EVENTS).any_query().fail(
                403,
                "Forbidden",
                "events is forbidden: User \"bob\" cannot list resource \"events\"",
                None,
            ),
        ],
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn one_set_as_yaml_reads_no_events() {
    let text = sets(
        &["shop-prs", "-o", "yaml"],
        vec![expect("GET", format!("{SETS}/shop-prs")).ok(shop_prs())],
    )
    .await;
    assert!(
        text.starts_with("--- stdout\napiVersion: ephemeral.io/v1alpha1\nkind: EnvironmentSet\n"),
        "{text}"
    );
    assert!(text.contains("  rateLimitRemaining: 4873\n"), "{text}");
}

#[tokio::test]
async fn a_missing_set_is_not_found() {
    let text = sets(
        &["nope"],
        vec![expect("GET", format!("{SETS}/nope")).fail(
            404,
            "NotFound",
            "environmentsets.ephemeral.io \"nope\" not found",
            Some("nope"),
        )],
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn a_cluster_without_the_set_crd() {
    let text = sets(
        &[],
        vec![expect("GET", SETS).fail(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        )],
    )
    .await;
    assert!(
        stderr(&text).starts_with(
            "error: the cluster does not know environmentsets.ephemeral.io: the kubectl-ephemeral CRDs are not installed."
        ),
        "{text}"
    );
    assert!(text.ends_with("(exit 1)\n"), "{text}");
}
