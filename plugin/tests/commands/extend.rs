use kubectl_ephemeral::cli::Command;
use kubectl_ephemeral::cmd::extend;
use serde_json::json;

use crate::list::three;
use crate::parse;
use crate::support::*;

async fn extend(argv: &[&str], exchanges: Vec<Exchange>) -> String {
    let mut full = vec!["extend", "alice"];
    full.extend_from_slice(argv);
    let Command::Extend(a) = parse(&full) else {
        unreachable!()
    };
    let played = play(exchanges, |ctx, mut out| async move {
        let r = extend::run(&ctx, &a, &mut out).await;
        (r, out)
    })
    .await;
    played.transcript()
}

/// The PATCH extend sends for a new end, answered with the environment so extended.
fn patch(until: &str) -> Exchange {
    let mut env = three().remove(0);
    env["spec"]["lease"] = json!({"until": until});
    expect("PATCH", format!("{ENVS}/alice"))
        .query(&[("fieldManager", "kubectl-ephemeral")])
        .body(
            "application/merge-patch+json",
            json!({"spec": {"lease": {"until": until, "schedule": null}}}),
        )
        .ok(env)
}

#[tokio::test]
async fn until_a_local_time() {
    let text = extend(
        &["--until", "21:00"],
        vec![patch("2026-11-21T21:00:00+00:00")],
    )
    .await;
    assert_eq!(
        text,
        "--- stdout\nenvironment.ephemeral.io/alice extended: until 21:00 (in 9h)\n--- stderr\n\n"
    );
}

#[tokio::test]
async fn for_a_duration() {
    let text = extend(&["--for", "2h"], vec![patch("2026-11-21T14:00:00+00:00")]).await;
    assert!(text.contains("extended: until 14:00 (in 2h)"), "{text}");
}

#[tokio::test]
async fn until_hour_h_n_days_from_now() {
    let text = extend(
        &["--days", "2", "--hour", "19"],
        vec![patch("2026-11-23T19:00:00+00:00")],
    )
    .await;
    assert!(
        text.contains("extended: until Mon 19:00 (in 2d7h)"),
        "{text}"
    );
}

#[tokio::test]
async fn an_rfc3339_time() {
    let text = extend(
        &["--until", "2026-11-22T08:30:00+01:00"],
        vec![patch("2026-11-22T07:30:00+00:00")],
    )
    .await;
    assert!(text.contains("until tomorrow 07:30"), "{text}");
}

#[tokio::test]
async fn the_webhooks_maximum_is_shown_as_is() {
    let message = "admission webhook \"mutate.ephemeral.io\" denied the request: Environment alice: spec.lease.until: 2026-12-21T19:00:00+00:00 is more than 168h from now; the latest allowed is 2026-11-28T12:00:00+00:00";
    let text = extend(
        &["--until", "2026-12-21T19:00:00Z"],
        vec![
            expect("PATCH", format!("{ENVS}/alice"))
                .query(&[("fieldManager", "kubectl-ephemeral")])
                .fail(422, "Invalid", message, None),
        ],
    )
    .await;
    assert_eq!(
        text,
        format!("--- stdout\n--- stderr\nerror: {message} (exit 1)\n")
    );
}

#[tokio::test]
async fn a_time_in_the_past_is_a_usage_error_without_a_request() {
    let text = extend(&["--days", "0", "--hour", "8"], vec![]).await;
    assert!(text.contains("which has passed"), "{text}");
    assert!(text.contains("(exit 2)"), "{text}");
}

#[tokio::test]
async fn the_webhooks_warnings_reach_stderr_once() {
    const ALWAYS_ON: &str = r#"299 - "spec.lease: 'alice' is always on; its lease is the schedule 'Mon-Fri 07:00-19:00 Europe/London'""#;
    let text = extend(
        &["--for", "2h"],
        vec![
            patch("2026-11-21T14:00:00+00:00")
                .warning(ALWAYS_ON)
                .warning(ALWAYS_ON),
        ],
    )
    .await;
    assert!(text.contains("extended: until 14:00 (in 2h)"), "{text}");
    assert_eq!(
        stderr(&text),
        "Warning: spec.lease: 'alice' is always on; its lease is the schedule 'Mon-Fri 07:00-19:00 Europe/London'\n\n"
    );
}

#[tokio::test]
async fn warnings_of_a_refused_request_come_before_the_error() {
    let message = "admission webhook \"mutate.ephemeral.io\" denied the request: Environment alice: spec.lease.until: too late";
    let text = extend(
        &["--for", "2h"],
        vec![
            expect("PATCH", format!("{ENVS}/alice"))
                .query(&[("fieldManager", "kubectl-ephemeral")])
                .fail(422, "Invalid", message, None)
                .warning(r#"299 - "spec.sourceBranch: no app uses a GitRepository source, so sourceBranch changes nothing""#),
        ],
    )
    .await;
    assert_eq!(
        stderr(&text),
        format!(
            "Warning: spec.sourceBranch: no app uses a GitRepository source, so sourceBranch changes nothing\nerror: {message} (exit 1)\n"
        )
    );
}
