//! The API sequence of self-managed certificates against a mocked API server
//! (kube's tower-test pattern): each scenario lists the exact requests the
//! webhook must make (method, path, query, content type and body) and the
//! API server's answers; any other or extra request fails the test, and so
//! does a request the RBAC of `manifests/default` does not allow.

use std::collections::BTreeMap;

use base64::Engine;
use ephemeral_testkit::mock_api::{self, Exchange, Sent, expect, failure};
use ephemeral_testkit::rbac::Grants;
use ephemeral_webhook::certs::manager::CertManager;
use ephemeral_webhook::certs::pki::{Issued, issue};
use ephemeral_webhook::certs::{CertError, CertSettings, secret};
use http::Method;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

const SECRET: &str = "/api/v1/namespaces/ephemeral-system/secrets/ephemeral-webhook-tls";
const SECRETS: &str = "/api/v1/namespaces/ephemeral-system/secrets?&fieldManager=ephemeral-webhook";
const MUTATING: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/ephemeral-webhook";
const VALIDATING: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/ephemeral-webhook";
const WRITE_QUERY: &str = "?&fieldManager=ephemeral-webhook";

fn settings() -> CertSettings {
    CertSettings {
        namespace: "ephemeral-system".to_owned(),
        secret_name: "ephemeral-webhook-tls".to_owned(),
        service_name: "ephemeral-webhook".to_owned(),
        webhook_configuration: "ephemeral-webhook".to_owned(),
        extra_names: Vec::new(),
    }
}

fn now() -> Timestamp {
    "2026-11-21T10:00:00Z".parse().unwrap()
}

/// One expected request (its URI with the query) and the answer to it.
fn step(method: Method, uri: impl Into<String>, status: u16, reply: Value) -> Exchange {
    expect(method, uri).answer(status, reply)
}

/// Reads of both webhook configurations, each already trusting `ca`: no
/// patch follows.
fn configurations_trusting(ca: &str) -> [Exchange; 2] {
    [
        step(
            Method::GET,
            MUTATING,
            200,
            configuration(
                "MutatingWebhookConfiguration",
                &[("mutate.ephemeral.io", Some(ca))],
            ),
        ),
        step(
            Method::GET,
            VALIDATING,
            200,
            configuration(
                "ValidatingWebhookConfiguration",
                &[("validate.ephemeral.io", Some(ca))],
            ),
        ),
    ]
}

/// Runs `scenario` against a mocked API server that expects exactly `steps`
/// and checks each against the RBAC of `manifests/default`; returns the
/// scenario's result and what was sent at each step.
async fn run<T>(
    steps: Vec<Exchange>,
    scenario: impl AsyncFnOnce(CertManager) -> T,
) -> (T, Vec<Sent>) {
    let (client, api) = mock_api::client();
    let server = api.checking_rbac(Grants::self_managed()).play(steps);
    let result = scenario(CertManager::new(client, settings())).await;
    let sent = server
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    (result, sent)
}

fn secret_json(issued: &Issued, resource_version: &str, ours: bool) -> Value {
    let mut v = serde_json::to_value(secret::new_secret(&settings(), &issued.material)).unwrap();
    v["apiVersion"] = json!("v1");
    v["kind"] = json!("Secret");
    v["metadata"]["resourceVersion"] = json!(resource_version);
    v["metadata"]["uid"] = json!("6b1f3c1e-0000-4000-8000-00000000000a");
    if !ours {
        v["metadata"]["labels"] = json!({"app": "someone-else"});
    }
    v
}

fn b64(pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem)
}

fn configuration(kind: &str, webhooks: &[(&str, Option<&str>)]) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": "ephemeral-webhook", "resourceVersion": "7"},
        "webhooks": webhooks.iter().map(|(name, ca)| {
            let mut client_config = json!({"service": {"name": "ephemeral-webhook", "namespace": "ephemeral-system", "path": "/mutate", "port": 443}});
            if let Some(ca) = ca {
                client_config["caBundle"] = json!(ca);
            }
            json!({"name": name, "clientConfig": client_config, "sideEffects": "None",
                   "admissionReviewVersions": ["v1"]})
        }).collect::<Vec<_>>()
    })
}

fn ca_patch(indexed: &[(usize, &str)], ca_pem: &str) -> Value {
    Value::Array(
        indexed
            .iter()
            .flat_map(|(i, name)| {
                [
                    json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": name}),
                    json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": b64(ca_pem)}),
                ]
            })
            .collect(),
    )
}

fn data_of(body: &Value) -> BTreeMap<String, String> {
    body["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap();
            (k.clone(), String::from_utf8(bytes).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn an_absent_secret_is_created_and_both_configurations_trust_its_ca() {
    let (issued, sent) = run(
        vec![
            step(
                Method::GET,
                SECRET,
                404,
                failure(
                    404,
                    "NotFound",
                    "secrets \"ephemeral-webhook-tls\" not found",
                ),
            ),
            expect(Method::POST, SECRETS).echo(201, "1"),
            step(
                Method::GET,
                MUTATING,
                200,
                configuration(
                    "MutatingWebhookConfiguration",
                    &[("mutate.ephemeral.io", None)],
                ),
            ),
            step(
                Method::PATCH,
                format!("{MUTATING}{WRITE_QUERY}"),
                200,
                configuration("MutatingWebhookConfiguration", &[]),
            ),
            step(
                Method::GET,
                VALIDATING,
                200,
                configuration(
                    "ValidatingWebhookConfiguration",
                    &[
                        ("validate.ephemeral.io", None),
                        ("owner.ephemeral.io", Some("b2xk")),
                    ],
                ),
            ),
            step(
                Method::PATCH,
                format!("{VALIDATING}{WRITE_QUERY}"),
                200,
                configuration("ValidatingWebhookConfiguration", &[]),
            ),
        ],
        async |m| m.ensure(now()).await,
    )
    .await;
    let issued = issued.unwrap();

    // The Secret: a labelled kubernetes.io/tls Secret holding what is served.
    let created = sent[1].body.as_ref().unwrap();
    assert_eq!(sent[1].content_type.as_deref(), Some("application/json"));
    assert_eq!(created["kind"], "Secret");
    assert_eq!(created["type"], "kubernetes.io/tls");
    assert_eq!(
        created["metadata"],
        json!({"name": "ephemeral-webhook-tls", "namespace": "ephemeral-system",
               "labels": {"app.kubernetes.io/managed-by": "ephemeral-webhook"}})
    );
    let data = data_of(created);
    assert_eq!(data["ca.crt"], issued.material.ca_crt);
    assert_eq!(data["ca.key"], issued.material.ca_key);
    assert_eq!(data["tls.crt"], issued.material.tls_crt);
    assert_eq!(data["tls.key"], issued.material.tls_key);
    assert!(data["ca.key"].contains("PRIVATE KEY") && data["tls.key"].contains("PRIVATE KEY"));

    // Both configurations: every webhook gets the CA, guarded by its name.
    for i in [3, 5] {
        assert_eq!(
            sent[i].content_type.as_deref(),
            Some("application/json-patch+json"),
            "step {i}"
        );
    }
    assert_eq!(
        sent[3].body.as_ref().unwrap(),
        &ca_patch(&[(0, "mutate.ephemeral.io")], &issued.material.ca_crt)
    );
    assert_eq!(
        sent[5].body.as_ref().unwrap(),
        &ca_patch(
            &[(0, "validate.ephemeral.io"), (1, "owner.ephemeral.io")],
            &issued.material.ca_crt
        )
    );
    assert!(sent[0].body.is_none() && sent[2].body.is_none() && sent[4].body.is_none());
}

#[tokio::test]
async fn a_valid_secret_is_reused_without_writes_and_only_a_stale_ca_bundle_is_patched() {
    let stored = issue(
        &settings(),
        now() - SignedDuration::from_hours(24 * 30),
        &[],
    )
    .unwrap();
    let ca = b64(&stored.material.ca_crt);
    let (issued, sent) = run(
        vec![
            step(Method::GET, SECRET, 200, secret_json(&stored, "41", true)),
            step(
                Method::GET,
                MUTATING,
                200,
                configuration(
                    "MutatingWebhookConfiguration",
                    &[("mutate.ephemeral.io", Some(&ca))],
                ),
            ),
            step(
                Method::GET,
                VALIDATING,
                200,
                configuration(
                    "ValidatingWebhookConfiguration",
                    &[
                        ("validate.ephemeral.io", Some(&ca)),
                        ("owner.ephemeral.io", Some("b2xk")),
                    ],
                ),
            ),
            step(
                Method::PATCH,
                format!("{VALIDATING}{WRITE_QUERY}"),
                200,
                configuration("ValidatingWebhookConfiguration", &[]),
            ),
        ],
        async |m| m.ensure(now()).await,
    )
    .await;
    assert_eq!(issued.unwrap(), stored);
    assert_eq!(
        sent[3].body.as_ref().unwrap(),
        &ca_patch(&[(1, "owner.ephemeral.io")], &stored.material.ca_crt)
    );
}

#[tokio::test]
async fn losing_the_create_race_reuses_the_winners_secret() {
    let theirs = issue(&settings(), now(), &[]).unwrap();
    let ca = b64(&theirs.material.ca_crt);
    let (issued, sent) = run(
        vec![
            step(
                Method::GET,
                SECRET,
                404,
                failure(404, "NotFound", "not found"),
            ),
            step(
                Method::POST,
                SECRETS,
                409,
                failure(
                    409,
                    "AlreadyExists",
                    "secrets \"ephemeral-webhook-tls\" already exists",
                ),
            ),
            step(Method::GET, SECRET, 200, secret_json(&theirs, "2", true)),
        ]
        .into_iter()
        .chain(configurations_trusting(&ca))
        .collect(),
        async |m| m.ensure(now()).await,
    )
    .await;
    let issued = issued.unwrap();
    assert_eq!(issued, theirs, "the winner's certificates are served");
    let ours = data_of(sent[1].body.as_ref().unwrap());
    assert_ne!(ours["tls.crt"], issued.material.tls_crt);
}

#[tokio::test]
async fn a_due_certificate_is_replaced_with_the_read_version_and_a_conflict_re_reads() {
    // Issued 300 days ago: the serving certificate is due (after ~243 days).
    let old = issue(
        &settings(),
        now() - SignedDuration::from_hours(24 * 300),
        &[],
    )
    .unwrap();
    let theirs = issue(&settings(), now(), &[]).unwrap();
    let ca = b64(&theirs.material.ca_crt);
    let (issued, sent) = run(
        vec![
            step(Method::GET, SECRET, 200, secret_json(&old, "41", true)),
            step(
                Method::PUT,
                format!("{SECRET}{WRITE_QUERY}"),
                409,
                failure(409, "Conflict", "the object has been modified"),
            ),
            step(Method::GET, SECRET, 200, secret_json(&theirs, "42", true)),
        ]
        .into_iter()
        .chain(configurations_trusting(&ca))
        .collect(),
        async |m| m.ensure(now()).await,
    )
    .await;
    assert_eq!(issued.unwrap(), theirs);
    let put = sent[1].body.as_ref().unwrap();
    assert_eq!(
        put["metadata"]["resourceVersion"], "41",
        "optimistic concurrency"
    );
    assert_eq!(
        put["metadata"]["uid"],
        "6b1f3c1e-0000-4000-8000-00000000000a"
    );
    let data = data_of(put);
    assert_eq!(
        data["ca.crt"], old.material.ca_crt,
        "same CA: the caBundle stays"
    );
    assert_eq!(data["ca.key"], old.material.ca_key);
    assert_ne!(
        data["tls.crt"], old.material.tls_crt,
        "a new serving certificate"
    );
}

#[tokio::test]
async fn a_renewal_that_wins_is_served_and_needs_no_configuration_patch() {
    let old = issue(
        &settings(),
        now() - SignedDuration::from_hours(24 * 300),
        &[],
    )
    .unwrap();
    let ca = b64(&old.material.ca_crt);
    let (issued, sent) = run(
        vec![
            step(Method::GET, SECRET, 200, secret_json(&old, "41", true)),
            expect(Method::PUT, format!("{SECRET}{WRITE_QUERY}")).echo(200, "43"),
        ]
        .into_iter()
        .chain(configurations_trusting(&ca))
        .collect(),
        async |m| m.ensure(now()).await,
    )
    .await;
    let issued = issued.unwrap();
    let data = data_of(sent[1].body.as_ref().unwrap());
    assert_eq!(data["tls.crt"], issued.material.tls_crt);
    assert_eq!(issued.material.ca_crt, old.material.ca_crt);
    assert!(issued.renew_at > now() + SignedDuration::from_hours(24 * 240));
}

#[tokio::test]
async fn api_errors_are_returned_and_nothing_further_is_done() {
    let (result, _) = run(
        vec![step(Method::GET, SECRET, 403, failure(403, "Forbidden", "secrets \"ephemeral-webhook-tls\" is forbidden: User \"system:serviceaccount:ephemeral-system:ephemeral-webhook\" cannot get resource \"secrets\""))],
        async |m| m.ensure(now()).await,
    )
    .await;
    let err = result.unwrap_err();
    assert!(
        matches!(err, CertError::Api { action: "read", .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("cannot read Secret ephemeral-system/ephemeral-webhook-tls: secrets \"ephemeral-webhook-tls\" is forbidden"),
        "{err}"
    );

    // A failed replace: the error comes back, the Secret is left as it was.
    let old = issue(
        &settings(),
        now() - SignedDuration::from_hours(24 * 300),
        &[],
    )
    .unwrap();
    let (result, _) = run(
        vec![
            step(Method::GET, SECRET, 200, secret_json(&old, "41", true)),
            step(
                Method::PUT,
                format!("{SECRET}{WRITE_QUERY}"),
                500,
                failure(500, "InternalError", "etcdserver: request timed out"),
            ),
        ],
        async |m| m.ensure(now()).await,
    )
    .await;
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            CertError::Api {
                action: "replace",
                ..
            }
        ),
        "{err:?}"
    );

    // A failed patch: the error comes back (the next round retries).
    let stored = issue(&settings(), now(), &[]).unwrap();
    let (result, _) = run(
        vec![
            step(Method::GET, SECRET, 200, secret_json(&stored, "41", true)),
            step(
                Method::GET,
                MUTATING,
                200,
                configuration(
                    "MutatingWebhookConfiguration",
                    &[("mutate.ephemeral.io", None)],
                ),
            ),
            step(
                Method::PATCH,
                format!("{MUTATING}{WRITE_QUERY}"),
                422,
                failure(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                ),
            ),
        ],
        async |m| m.ensure(now()).await,
    )
    .await;
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot patch MutatingWebhookConfiguration ephemeral-webhook: the server rejected our request due to an error in our request: Invalid"
    );
}

#[tokio::test]
async fn a_secret_of_someone_else_is_reused_when_valid_and_never_overwritten() {
    let valid = issue(&settings(), now(), &[]).unwrap();
    let ca = b64(&valid.material.ca_crt);
    let (issued, _) = run(
        vec![step(
            Method::GET,
            SECRET,
            200,
            secret_json(&valid, "5", false),
        )]
        .into_iter()
        .chain(configurations_trusting(&ca))
        .collect(),
        async |m| m.ensure(now()).await,
    )
    .await;
    assert_eq!(issued.unwrap(), valid);

    // e.g. what cert-manager leaves behind: no ca.key, so it cannot be renewed.
    let mut foreign = secret_json(&valid, "5", false);
    foreign["data"].as_object_mut().unwrap().remove("ca.key");
    let (result, _) = run(vec![step(Method::GET, SECRET, 200, foreign)], async |m| {
        m.ensure(now()).await
    })
    .await;
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Secret ephemeral-system/ephemeral-webhook-tls exists but was not created by ephemeral-webhook \
         (no label app.kubernetes.io/managed-by=ephemeral-webhook) and cannot be reused: ca.key is missing; \
         delete it (kubectl -n ephemeral-system delete secret ephemeral-webhook-tls) so the webhook can create its own, \
         or serve it with --tls-cert-file/--tls-key-file"
    );
}

#[tokio::test]
async fn missing_webhook_configurations_are_skipped_until_they_exist() {
    let stored = issue(&settings(), now(), &[]).unwrap();
    let (issued, _) = run(
        vec![
            step(Method::GET, SECRET, 200, secret_json(&stored, "41", true)),
            step(
                Method::GET,
                MUTATING,
                404,
                failure(404, "NotFound", "not found"),
            ),
            step(
                Method::GET,
                VALIDATING,
                404,
                failure(404, "NotFound", "not found"),
            ),
        ],
        async |m| m.ensure(now()).await,
    )
    .await;
    assert_eq!(issued.unwrap(), stored);
}

#[tokio::test]
async fn a_secret_that_keeps_changing_is_given_up_after_four_rounds() {
    let old = issue(
        &settings(),
        now() - SignedDuration::from_hours(24 * 300),
        &[],
    )
    .unwrap();
    let mut steps = Vec::new();
    for _ in 0..4 {
        steps.push(step(
            Method::GET,
            SECRET,
            200,
            secret_json(&old, "41", true),
        ));
        steps.push(step(
            Method::PUT,
            format!("{SECRET}{WRITE_QUERY}"),
            409,
            failure(409, "Conflict", "the object has been modified"),
        ));
    }
    let (result, _) = run(steps, async |m| m.ensure_secret(now()).await).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "Secret ephemeral-system/ephemeral-webhook-tls changed during each of 4 attempts to update it"
    );
}
