use kubectl_ephemeral::cli::Command;
use kubectl_ephemeral::cmd::templates;
use serde_json::{Value, json};

use crate::parse;
use crate::support::*;

async fn run(exchanges: Vec<Exchange>) -> String {
    let Command::Templates(a) = parse(&["templates"]) else {
        unreachable!()
    };
    let played = play(exchanges, |ctx, mut out| async move {
        let r = templates::run(&ctx, &a, &mut out).await;
        (r, out)
    })
    .await;
    played.transcript()
}

/// The example catalog as the API would list it.
fn catalog(kind: &str) -> Value {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog/templates.yaml");
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&std::fs::read_to_string(root).unwrap()).unwrap();
    list_of(
        kind,
        docs.into_iter()
            .filter(|d| d["kind"] == json!(kind))
            .collect(),
    )
}

#[tokio::test]
async fn templates_and_bundles_with_descriptions() {
    let text = run(vec![
        expect(
            "GET",
            "/apis/ephemeral.io/v1alpha1/namespaces/ephemeral/apptemplates",
        )
        .ok(catalog("AppTemplate")),
        expect(
            "GET",
            "/apis/ephemeral.io/v1alpha1/namespaces/ephemeral/appbundles",
        )
        .ok(catalog("AppBundle")),
    ])
    .await;
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn an_empty_catalog_says_so_on_stderr() {
    let text = run(vec![
        expect(
            "GET",
            "/apis/ephemeral.io/v1alpha1/namespaces/ephemeral/apptemplates",
        )
        .ok(list_of("AppTemplate", vec![])),
        expect(
            "GET",
            "/apis/ephemeral.io/v1alpha1/namespaces/ephemeral/appbundles",
        )
        .ok(list_of("AppBundle", vec![])),
    ])
    .await;
    assert_eq!(
        text,
        "--- stdout\n--- stderr\nNo AppTemplates found in namespace ephemeral.\nNo AppBundles found in namespace ephemeral.\n"
    );
}
