use kubectl_ephemeral::cli::Command;
use kubectl_ephemeral::cmd::create;
use serde_json::json;

use crate::parse;
use crate::support::*;

fn args(argv: &[&str]) -> kubectl_ephemeral::cli::CreateArgs {
    let mut full = vec!["create"];
    full.extend_from_slice(argv);
    match parse(&full) {
        Command::Create(a) => a,
        other => panic!("{other:?}"),
    }
}

async fn create(argv: &[&str], exchanges: Vec<Exchange>) -> String {
    let a = args(argv);
    let played = play(exchanges, |ctx, mut out| async move {
        let r = create::run(&ctx, &a, &mut out).await;
        (r, out)
    })
    .await;
    played.transcript()
}

/// What `create alice --app checkout@feature/new-basket --app payments --app web=feature-web-2 --until 21:00` sends.
fn sent() -> serde_json::Value {
    json!({
        "apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
        "metadata": {"name": "alice", "namespace": "ephemeral"},
        "spec": {
            "apps": [
                {"name": "checkout", "branch": "feature/new-basket"},
                {"name": "payments"},
                {"name": "web", "imageTagPrefix": "feature-web-2"}
            ],
            "lease": {"until": "2026-11-21T21:00:00+00:00"}
        }
    })
}

const ALICE: &[&str] = &[
    "alice",
    "--app",
    "checkout@feature/new-basket",
    "--app",
    "payments",
    "--app",
    "web=feature-web-2",
    "--until",
    "21:00",
];

fn admitted_alice() -> serde_json::Value {
    admitted("alice", "alice", sent()["spec"].clone())
}

#[tokio::test]
async fn create_posts_with_the_field_manager_and_summarises_the_admitted_object() {
    let text = create(
        ALICE,
        vec![
            expect("POST", ENVS)
                .query(&[("fieldManager", "kubectl-ephemeral")])
                .body("application/json", sent())
                .ok(admitted_alice())
                // What the webhook says about the branch (docs/user-guide.md's example).
                .warning(r#"299 - "spec.apps[0].branch: imageTagPrefix sanitised from 'feature/new-basket' to 'feature-new-basket'""#),
        ],
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn the_webhooks_warnings_reach_stderr_once_each_before_the_hint() {
    let text = create(
        ALICE,
        vec![
            expect("POST", ENVS)
                .query(&[("fieldManager", "kubectl-ephemeral")])
                .body("application/json", sent())
                .ok(admitted_alice())
                .warning(r#"299 - "spec.apps[0].branch: imageTagPrefix sanitised from 'feature/new-basket' to 'feature-new-basket'""#)
                // The same text again in a second header, with one more.
                .warning(r#"299 - "spec.apps[0].branch: imageTagPrefix sanitised from 'feature/new-basket' to 'feature-new-basket'", 299 - "spec.sourceBranch: no app uses a GitRepository source, so sourceBranch changes nothing""#),
        ],
    )
    .await;
    assert!(
        text.starts_with("--- stdout\nenvironment.ephemeral.io/alice created\n"),
        "{text}"
    );
    assert_eq!(
        stderr(&text),
        "Warning: spec.apps[0].branch: imageTagPrefix sanitised from 'feature/new-basket' to 'feature-new-basket'\n\
         Warning: spec.sourceBranch: no app uses a GitRepository source, so sourceBranch changes nothing\n\
         Watch it come up: kubectl ephemeral wait alice --for ready -n ephemeral\n"
    );
}

#[tokio::test]
async fn dry_run_client_sends_nothing_and_prints_the_object() {
    let mut argv = ALICE.to_vec();
    argv.push("--dry-run=client");
    let text = create(&argv, vec![]).await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn dry_run_server_asks_the_api_and_prints_what_it_would_admit() {
    let mut argv = ALICE.to_vec();
    argv.extend(["--dry-run=server", "-o", "json"]);
    let text = create(
        &argv,
        vec![
            expect("POST", ENVS)
                .query(&[("fieldManager", "kubectl-ephemeral"), ("dryRun", "All")])
                .body("application/json", sent())
                .ok(admitted_alice()),
        ],
    )
    .await;
    assert!(text.contains("\"ephemeral.io/owner\": \"alice\""), "{text}");
    assert!(
        text.contains("\"imageTagPrefix\": \"feature-new-basket\""),
        "{text}"
    );
    assert!(
        text.ends_with("server dry run: admitted, not stored)\n"),
        "{text}"
    );
}

#[tokio::test]
async fn a_webhook_denial_is_shown_as_is() {
    let message = "admission webhook \"mutate.ephemeral.io\" denied the request: Environment alice: spec.apps[0].template: AppTemplate \"chekout\" does not exist in namespace ephemeral (there are: checkout, grafana, jaeger, payments, web)";
    let text = create(
        &["alice", "--app", "chekout"],
        vec![
            expect("POST", ENVS)
                .query(&[("fieldManager", "kubectl-ephemeral")])
                .fail(422, "Invalid", message, None),
        ],
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn missing_crds_say_how_to_install_them() {
    let text = create(
        &["alice", "--app", "checkout"],
        vec![
            expect("POST", ENVS)
                .query(&[("fieldManager", "kubectl-ephemeral")])
                .fail(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                    None,
                ),
        ],
    )
    .await;
    assert!(
        text.contains("kubectl apply -k manifests/default"),
        "{text}"
    );
    assert!(text.contains("(exit 1)"), "{text}");
}

#[tokio::test]
async fn from_a_file_with_flags_added() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("env.yaml");
    std::fs::write(
        &file,
        "apiVersion: ephemeral.io/v1alpha1\nkind: Environment\nmetadata: {name: infra}\nspec:\n  apps: [{name: web}]\n  lease: {expireAfter: 24h}\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let body = json!({
        "apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
        "metadata": {"name": "infra", "namespace": "ephemeral"},
        "spec": {
            "apps": [{"name": "web"}, {"name": "payments"}],
            "bundles": ["observability"],
            "sourceBranch": "feature/infra",
            "lease": {"until": "2026-11-21T15:00:00+00:00", "expireAfter": "24h"}
        }
    });
    let text = create(
        &[
            "-f",
            path,
            "--app",
            "payments",
            "--bundle",
            "observability",
            "--source-branch",
            "feature/infra",
            "--for",
            "3h",
            "-o",
            "yaml",
        ],
        vec![
            expect("POST", ENVS)
                .query(&[("fieldManager", "kubectl-ephemeral")])
                .body("application/json", body.clone())
                .ok(admitted("infra", "bob", body["spec"].clone())),
        ],
    )
    .await;
    assert!(text.contains("sourceBranch: feature/infra"), "{text}");
    assert!(
        text.contains("name: jaeger"),
        "the bundle's apps came back: {text}"
    );
}

#[tokio::test]
async fn usage_errors_exit_2_without_a_request() {
    let text = create(&["alice", "--app", "web", "--until", "teatime"], vec![]).await;
    assert!(text.contains("--until: 'teatime' is not a time"), "{text}");
    assert!(text.contains("(exit 2)"), "{text}");
    let text = create(&["alice"], vec![]).await;
    assert!(text.contains("at least one app"), "{text}");
    // 09:00 has passed at noon: the next 09:00 is tomorrow's.
    let text = create(
        &[
            "alice",
            "--app",
            "web",
            "--until",
            "09:00",
            "--dry-run=client",
        ],
        vec![],
    )
    .await;
    assert!(
        text.contains("until: \"2026-11-22T09:00:00+00:00\""),
        "{text}"
    );
}
