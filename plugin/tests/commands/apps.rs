use kubectl_ephemeral::cli::Command;
use kubectl_ephemeral::cmd::apps;
use serde_json::{Value, json};

use crate::list::three;
use crate::parse;
use crate::support::*;

async fn run(argv: &[&str], exchanges: Vec<Exchange>) -> String {
    let command = parse(argv);
    let played = play(exchanges, |ctx, mut out| async move {
        let r = match &command {
            Command::AddApp(a) => apps::add(&ctx, a, &mut out).await,
            Command::SetApp(a) => apps::set(&ctx, a, &mut out).await,
            Command::RemoveApp(a) => apps::remove(&ctx, a, &mut out).await,
            other => panic!("{other:?}"),
        };
        (r, out)
    })
    .await;
    played.transcript()
}

fn alice() -> Value {
    three().remove(0)
}

fn get_alice() -> Exchange {
    expect("GET", format!("{ENVS}/alice")).ok(alice())
}

fn json_patch(ops: Value, answer: Value) -> Exchange {
    expect("PATCH", format!("{ENVS}/alice"))
        .query(&[("fieldManager", "kubectl-ephemeral")])
        .body("application/json-patch+json", ops)
        .ok(answer)
}

#[tokio::test]
async fn add_app_appends_with_a_json_patch() {
    let mut after = alice();
    after["spec"]["apps"].as_array_mut().unwrap().push(
        json!({"name": "search", "branch": "feature/fast", "imageTagPrefix": "feature-fast"}),
    );
    let text = run(
        &["add-app", "alice", "search", "--branch", "feature/fast"],
        vec![
            get_alice(),
            json_patch(json!([{"op": "add", "path": "/spec/apps/-", "value": {"name": "search", "branch": "feature/fast"}}]), after)
                .warning(r#"299 - "spec.apps[3].branch: imageTagPrefix sanitised from 'feature/fast' to 'feature-fast'""#),
        ],
    )
    .await;
    assert_eq!(
        text,
        "--- stdout\nenvironment.ephemeral.io/alice: app search added (prefix feature-fast, branch feature/fast)\n\
         --- stderr\nWarning: spec.apps[3].branch: imageTagPrefix sanitised from 'feature/fast' to 'feature-fast'\n\n"
    );
}

#[tokio::test]
async fn add_app_shows_the_warnings_of_both_answers_once_each() {
    // Say the API server warns about the version on every answer, and the
    // webhook about the branch on the patch; quotes come escaped.
    const DEPRECATED: &str =
        r#"299 - "ephemeral.io/v1alpha1 Environment is deprecated; use \"ephemeral.io/v1\"""#;
    let mut after = alice();
    after["spec"]["apps"].as_array_mut().unwrap().push(
        json!({"name": "search", "branch": "feature/fast", "imageTagPrefix": "feature-fast"}),
    );
    let text = run(
        &["add-app", "alice", "search", "--branch", "feature/fast"],
        vec![
            get_alice().warning(DEPRECATED),
            json_patch(json!([{"op": "add", "path": "/spec/apps/-", "value": {"name": "search", "branch": "feature/fast"}}]), after)
                .warning(r#"299 - "spec.apps[3].branch: imageTagPrefix sanitised from 'feature/fast' to 'feature-fast'""#)
                .warning(DEPRECATED),
        ],
    )
    .await;
    assert!(
        text.contains("app search added (prefix feature-fast"),
        "{text}"
    );
    assert_eq!(
        stderr(&text),
        "Warning: ephemeral.io/v1alpha1 Environment is deprecated; use \"ephemeral.io/v1\"\n\
         Warning: spec.apps[3].branch: imageTagPrefix sanitised from 'feature/fast' to 'feature-fast'\n\n"
    );
}

#[tokio::test]
async fn add_app_takes_app_at_branch_like_create() {
    let mut after = alice();
    after["spec"]["apps"].as_array_mut().unwrap().push(
        json!({"name": "search", "branch": "feature/fast", "imageTagPrefix": "feature-fast"}),
    );
    let text = run(
        &["add-app", "alice", "search@feature/fast"],
        vec![
            get_alice(),
            json_patch(json!([{"op": "add", "path": "/spec/apps/-", "value": {"name": "search", "branch": "feature/fast"}}]), after),
        ],
    )
    .await;
    assert_eq!(
        text,
        "--- stdout\nenvironment.ephemeral.io/alice: app search added (prefix feature-fast, branch feature/fast)\n--- stderr\n\n"
    );
}

#[tokio::test]
async fn add_app_that_exists_points_to_set_app() {
    let text = run(&["add-app", "alice", "web"], vec![get_alice()]).await;
    assert!(text.contains("already has an app \"web\""), "{text}");
    assert!(text.contains("set-app alice web"), "{text}");
}

#[tokio::test]
async fn set_app_to_a_prefix_tests_the_name_and_drops_the_branch() {
    // checkout is app 0 and follows branch feature/new-basket.
    let mut after = alice();
    after["spec"]["apps"][0] = json!({"name": "checkout", "imageTagPrefix": "release-2"});
    let text = run(
        &["set-app", "alice", "checkout", "--prefix", "release-2"],
        vec![
            get_alice(),
            json_patch(
                json!([
                    {"op": "test", "path": "/spec/apps/0/name", "value": "checkout"},
                    {"op": "add", "path": "/spec/apps/0/imageTagPrefix", "value": "release-2"},
                    {"op": "remove", "path": "/spec/apps/0/branch"}
                ]),
                after,
            ),
        ],
    )
    .await;
    assert_eq!(
        text,
        "--- stdout\nenvironment.ephemeral.io/alice: app checkout now follows prefix release-2\n--- stderr\n\n"
    );
}

#[tokio::test]
async fn set_app_to_a_branch_sets_the_prefix_ci_would_tag() {
    let mut after = alice();
    after["spec"]["apps"][2]["branch"] = json!("feature/web#3");
    after["spec"]["apps"][2]["imageTagPrefix"] = json!("feature-web-3");
    let text = run(
        &["set-app", "alice", "web", "--branch", "feature/web#3"],
        vec![
            get_alice(),
            json_patch(
                json!([
                    {"op": "test", "path": "/spec/apps/2/name", "value": "web"},
                    {"op": "add", "path": "/spec/apps/2/branch", "value": "feature/web#3"},
                    {"op": "add", "path": "/spec/apps/2/imageTagPrefix", "value": "feature-web-3"}
                ]),
                after,
            ),
        ],
    )
    .await;
    assert!(
        text.contains("app web now follows prefix feature-web-3, branch feature/web#3"),
        "{text}"
    );
}

#[tokio::test]
async fn set_app_of_an_unknown_app_lists_the_apps() {
    let text = run(
        &["set-app", "alice", "serch", "--prefix", "main"],
        vec![get_alice()],
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn set_app_with_a_bad_prefix_sends_nothing() {
    let text = run(&["set-app", "alice", "web", "--prefix=-bad"], vec![]).await;
    assert!(text.contains("--prefix '-bad' starts with '-'"), "{text}");
    assert!(text.contains("(exit 2)"), "{text}");
}

#[tokio::test]
async fn a_concurrent_change_fails_the_test_op() {
    let message = "the server rejected our request due to an error in our request";
    let mut patch = json_patch(
        json!([
            {"op": "test", "path": "/spec/apps/1/name", "value": "payments"},
            {"op": "remove", "path": "/spec/apps/1"}
        ]),
        json!({}),
    );
    patch = patch.fail(422, "Invalid", message, None);
    let text = run(
        &["remove-app", "alice", "payments"],
        vec![get_alice(), patch],
    )
    .await;
    assert_eq!(
        text,
        format!("--- stdout\n--- stderr\nerror: {message} (exit 1)\n")
    );
}

#[tokio::test]
async fn remove_app_removes_by_index_after_a_test() {
    let mut after = alice();
    after["spec"]["apps"].as_array_mut().unwrap().remove(1);
    let text = run(
        &["remove-app", "alice", "payments"],
        vec![
            get_alice(),
            json_patch(
                json!([
                    {"op": "test", "path": "/spec/apps/1/name", "value": "payments"},
                    {"op": "remove", "path": "/spec/apps/1"}
                ]),
                after,
            ),
        ],
    )
    .await;
    assert_eq!(
        text,
        "--- stdout\nenvironment.ephemeral.io/alice: app payments removed\n--- stderr\n\n"
    );
}

#[tokio::test]
async fn remove_app_refuses_an_app_a_bundle_would_add_back() {
    let infra = admitted(
        "infra",
        "carol",
        json!({"apps": [{"name": "web"}], "bundles": ["observability"]}),
    );
    let text = run(
        &["remove-app", "infra", "jaeger"],
        vec![
            expect("GET", format!("{ENVS}/infra")).ok(infra),
            expect(
                "GET",
                "/apis/ephemeral.io/v1alpha1/namespaces/ephemeral/appbundles/observability",
            )
            .ok(json!({
                "apiVersion": "ephemeral.io/v1alpha1", "kind": "AppBundle",
                "metadata": {"name": "observability", "namespace": "ephemeral"},
                "spec": {"description": "Tracing and dashboards", "apps": ["jaeger", "grafana"]}})),
        ],
    )
    .await;
    insta::assert_snapshot!(text);
}
