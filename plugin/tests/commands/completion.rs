use kubectl_ephemeral::cmd::completion::{Want, answer, lookup, plan};

use crate::list::three;
use crate::support::*;

async fn complete(words: &[&str], exchanges: Vec<Exchange>) -> String {
    let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    let played = play(exchanges, |ctx, mut out| async move {
        let plan = plan(&words);
        let candidates = lookup(&plan.want, &ctx.client, &ctx.namespace, &ctx.clock).await;
        answer(&mut out, &plan, &candidates).unwrap();
        (Ok(vec![]), out)
    })
    .await;
    assert!(played.result.is_ok());
    played.out
}

#[tokio::test]
async fn environment_names_with_owner_and_lease() {
    let out = complete(
        &["describe", ""],
        vec![expect("GET", ENVS).ok(list_of("Environment", three()))],
    )
    .await;
    assert_eq!(
        out,
        "alice\talice, until 19:00 (in 7h)\nbob\tbob, expired 17h ago\ninfra\tcarol, Mon-Fri 07:00-19:00 Europe/London\n:4\n"
    );
}

#[tokio::test]
async fn set_names_with_repository_and_ready_environments() {
    let out = complete(
        &["sets", "-n", "ephemeral", ""],
        vec![expect("GET", crate::sets::SETS).ok(list_of(
            "EnvironmentSet",
            vec![crate::sets::docs_prs(), crate::sets::shop_prs()],
        ))],
    )
    .await;
    assert_eq!(
        out,
        "docs-prs\tacme/docs\nshop-prs\tacme/shop, 2/3 ready\n:4\n"
    );
}

#[tokio::test]
async fn app_names_of_the_environment() {
    let out = complete(
        &["set-app", "alice", "w"],
        vec![expect("GET", format!("{ENVS}/alice")).ok(three().remove(0))],
    )
    .await;
    assert_eq!(out, "web\tfeature-web-2\n:4\n");
}

#[tokio::test]
async fn a_cluster_error_gives_no_candidates_but_still_a_directive() {
    let out = complete(
        &["delete", ""],
        vec![expect("GET", ENVS).fail(403, "Forbidden", "forbidden", None)],
    )
    .await;
    assert_eq!(out, ":4\n");
    assert_eq!(
        plan(&["delete".into(), String::new()]).want,
        Want::Environments
    );
}
