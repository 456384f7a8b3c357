use std::time::Duration;

use kubectl_ephemeral::cli::Command;
use kubectl_ephemeral::cmd::{delete, wait};
use serde_json::json;

use crate::list::three;
use crate::parse;
use crate::support::*;

const POLL: Duration = Duration::from_millis(1);

async fn run(argv: &[&str], exchanges: Vec<Exchange>) -> String {
    let command = parse(argv);
    let played = play(exchanges, |ctx, mut out| async move {
        let r = match &command {
            Command::Delete(a) => delete::run_with(&ctx, a, &mut out, POLL).await,
            Command::Wait(a) => wait::run_with(&ctx, a, &mut out, POLL).await,
            other => panic!("{other:?}"),
        };
        (r, out)
    })
    .await;
    played.transcript()
}

fn terminating() -> serde_json::Value {
    let mut env = three().remove(0);
    env["metadata"]["deletionTimestamp"] = json!("2026-11-21T12:00:00Z");
    env["metadata"]["finalizers"] = json!(["ephemeral.io/cleanup"]);
    env
}

fn gone() -> Exchange {
    expect("GET", format!("{ENVS}/alice")).fail(
        404,
        "NotFound",
        "environments.ephemeral.io \"alice\" not found",
        Some("alice"),
    )
}

#[tokio::test]
async fn delete_then_wait_until_gone() {
    let text = run(
        &["delete", "alice", "--wait"],
        vec![
            expect("DELETE", format!("{ENVS}/alice")).ok(terminating()),
            expect("GET", format!("{ENVS}/alice")).ok(terminating()),
            gone(),
        ],
    )
    .await;
    assert_eq!(
        text,
        "--- stdout\nenvironment.ephemeral.io/alice deleted\n--- stderr\n\n"
    );
}

#[tokio::test]
async fn delete_without_wait_makes_one_request() {
    let text = run(
        &["delete", "alice"],
        vec![expect("DELETE", format!("{ENVS}/alice")).ok(terminating())],
    )
    .await;
    assert_eq!(
        text,
        "--- stdout\nenvironment.ephemeral.io/alice deleted\n--- stderr\n\n"
    );
}

#[tokio::test]
async fn delete_by_someone_else_shows_the_denial() {
    let message = "admission webhook \"validate.ephemeral.io\" denied the request: only the owner (alice) or an admin may delete environment alice; you are bob";
    let text = run(
        &["delete", "alice"],
        vec![expect("DELETE", format!("{ENVS}/alice")).fail(403, "Forbidden", message, None)],
    )
    .await;
    assert_eq!(
        text,
        format!("--- stdout\n--- stderr\nerror: {message} (exit 1)\n")
    );
}

#[tokio::test]
async fn delete_of_a_missing_environment_suggests_list() {
    let text = run(
        &["delete", "alise"],
        vec![expect("DELETE", format!("{ENVS}/alise")).fail(
            404,
            "NotFound",
            "environments.ephemeral.io \"alise\" not found",
            Some("alise"),
        )],
    )
    .await;
    assert!(text.contains("environment \"alise\" not found in namespace \"ephemeral\". See which exist: kubectl ephemeral list"), "{text}");
}

#[tokio::test]
async fn wait_for_ready_polls_until_the_current_generation_is_ready() {
    let mut coming = three().remove(0);
    coming["metadata"]["generation"] = json!(2);
    let mut ready = coming.clone();
    for app in ready["status"]["apps"].as_array_mut().unwrap() {
        app["ready"] = json!(true);
    }
    ready["status"]["readyApps"] = json!("3/3");
    ready["status"]["conditions"][0]["status"] = json!("True");
    // Ready, but for generation 1: not yet.
    let stale = ready.clone();
    ready["status"]["conditions"][0]["observedGeneration"] = json!(2);
    let text = run(
        &["wait", "alice", "--for", "ready"],
        vec![
            expect("GET", format!("{ENVS}/alice")).ok(coming),
            expect("GET", format!("{ENVS}/alice")).ok(stale),
            expect("GET", format!("{ENVS}/alice")).ok(ready),
        ],
    )
    .await;
    assert_eq!(
        text,
        "--- stdout\nenvironment.ephemeral.io/alice condition met\n--- stderr\n\n"
    );
}

#[tokio::test]
async fn wait_times_out_with_the_last_state() {
    // A timeout shorter than one poll: one look, then the error with what it saw.
    let exchanges = vec![expect("GET", format!("{ENVS}/alice")).ok(three().remove(0))];
    let text = run(
        &["wait", "alice", "--for", "ready", "--timeout", "0.0005s"],
        exchanges,
    )
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn wait_for_delete() {
    let text = run(&["wait", "alice", "--for", "delete"], vec![gone()]).await;
    assert_eq!(
        text,
        "--- stdout\nenvironment.ephemeral.io/alice deleted\n--- stderr\n\n"
    );
}

#[tokio::test]
async fn delete_wait_times_out_naming_the_command_to_look_closer() {
    let text = run(
        &["delete", "alice", "--wait", "--timeout", "0.0005s"],
        vec![
            expect("DELETE", format!("{ENVS}/alice")).ok(terminating()),
            expect("GET", format!("{ENVS}/alice")).ok(terminating()),
        ],
    )
    .await;
    assert_eq!(
        text,
        "--- stdout\nenvironment.ephemeral.io/alice deleted\n--- stderr\nerror: timed out after 0.0005s waiting for environment \"alice\" to be gone; last seen: it still exists (a finalizer on it may be waiting: see kubectl get environment alice -n ephemeral -o yaml) (exit 1)\n"
    );
}
