//! Pure tests of the self-managed certificates: generation, reading back,
//! renewal timing, the Secret objects and the caBundle patches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::json;
use x509_parser::extensions::GeneralName;

use super::CertSettings;
use super::inspect::{Decision, decide};
use super::manager::{MAX_BACKOFF, RESYNC, next_delay};
use super::patch::{WebhookCa, ca_bundle_patch};
use super::pki::{CA_LIFETIME, Issued, LEAF_LIFETIME, Material, issue, renew_at, renew_leaf};
use super::secret::{self, CA_CRT, CA_KEY, TLS_CRT, TLS_KEY};

const DAY: SignedDuration = SignedDuration::from_hours(24);

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

fn ders(pem: &str) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn unix(t: Timestamp) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(t.as_second() as u64))
}

/// Verifies `material`'s serving certificate the way a TLS client that
/// trusts only `ca_pem` does (rustls's webpki verifier), for `name` at `at`.
fn verify(
    ca_pem: &str,
    material: &Material,
    name: &str,
    at: Timestamp,
) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for der in ders(ca_pem) {
        roots.add(der).unwrap();
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .unwrap();
    let leaf = ders(&material.tls_crt).remove(0);
    verifier
        .verify_server_cert(
            &leaf,
            &[],
            &ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            unix(at),
        )
        .map(|_| ())
}

fn data(material: &Material) -> BTreeMap<String, ByteString> {
    secret::data(material)
}

fn fresh() -> Issued {
    issue(&settings(), now(), &[]).unwrap()
}

#[test]
fn generated_certificates_name_the_service_and_chain_to_their_ca() {
    let issued = fresh();
    let m = &issued.material;

    let leaf_der = ders(&m.tls_crt).remove(0);
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
    let sans: Vec<&str> = leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(*d),
            _ => None,
        })
        .collect();
    assert_eq!(
        sans,
        [
            "ephemeral-webhook",
            "ephemeral-webhook.ephemeral-system",
            "ephemeral-webhook.ephemeral-system.svc",
            "ephemeral-webhook.ephemeral-system.svc.cluster.local"
        ]
    );
    assert!(!leaf.is_ca());
    let ca_ders = ders(&m.ca_crt);
    assert_eq!(ca_ders.len(), 1);
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_ders[0]).unwrap();
    assert!(ca.is_ca());
    assert_eq!(
        ca.basic_constraints()
            .unwrap()
            .unwrap()
            .value
            .path_len_constraint,
        Some(0),
        "the CA signs serving certificates only"
    );

    // Validity: back-dated 5 minutes, 1 year and 10 years.
    let start = now() - SignedDuration::from_mins(5);
    assert_eq!(leaf.validity().not_before.timestamp(), start.as_second());
    assert_eq!(
        leaf.validity().not_after.timestamp(),
        (now() + LEAF_LIFETIME).as_second()
    );
    assert_eq!(
        ca.validity().not_after.timestamp(),
        (now() + CA_LIFETIME).as_second()
    );

    // A client trusting only the CA accepts it for every Service name, now
    // and until it expires, and for nothing else.
    for name in settings().subject_alt_names() {
        verify(&m.ca_crt, m, &name, now()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    verify(
        &m.ca_crt,
        m,
        "ephemeral-webhook.ephemeral-system.svc",
        now() + 364 * DAY,
    )
    .unwrap();
    let err = verify(&m.ca_crt, m, "other.ephemeral-system.svc", now()).unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    let err = verify(
        &m.ca_crt,
        m,
        "ephemeral-webhook.ephemeral-system.svc",
        now() + 366 * DAY,
    )
    .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    // ...and a different CA does not vouch for it.
    let other = fresh();
    assert!(
        verify(
            &other.material.ca_crt,
            m,
            "ephemeral-webhook.ephemeral-system.svc",
            now()
        )
        .is_err()
    );
}

#[test]
fn renewal_is_due_after_two_thirds_of_the_lifetime_or_30_days_before_expiry() {
    let t0 = now();
    // One year: two thirds (243 days 8 hours) comes first.
    assert_eq!(
        renew_at(t0, t0 + 365 * DAY),
        t0 + SignedDuration::from_hours(365 * 24 * 2 / 3)
    );
    // Sixty days: two thirds would be 20 days before the end; 30 days wins.
    assert_eq!(renew_at(t0, t0 + 60 * DAY), t0 + 30 * DAY);
    // Shorter than 30 days: due at once, never before notBefore.
    assert_eq!(renew_at(t0, t0 + 10 * DAY), t0);
    // Ten years (the CA): 6 years 8 months.
    assert_eq!(
        renew_at(t0, t0 + 3650 * DAY),
        t0 + SignedDuration::from_hours(3650 * 24 * 2 / 3)
    );

    // A fresh pair is due when its serving certificate is (about 243 days in).
    let issued = fresh();
    let start = now() - SignedDuration::from_mins(5);
    assert_eq!(issued.renew_at, renew_at(start, now() + LEAF_LIFETIME));
}

#[test]
fn a_valid_secret_is_reused_exactly_until_renewal_is_due() {
    let issued = fresh();
    let stored = data(&issued.material);
    for at in [
        now(),
        now() + DAY,
        issued.renew_at - SignedDuration::from_secs(1),
    ] {
        assert_eq!(
            decide(Some(&stored), &settings(), at),
            Decision::Reuse(issued.clone()),
            "at {at}"
        );
    }

    let Decision::RenewLeaf { ca, reason } = decide(Some(&stored), &settings(), issued.renew_at)
    else {
        panic!("the serving certificate is due at {}", issued.renew_at);
    };
    assert!(
        reason.starts_with("tls.crt expires at 2027-11-21T10:00:00Z and was due for renewal at "),
        "{reason}"
    );

    // The renewed certificate comes from the same CA: the caBundle stays.
    let later = issued.renew_at;
    let renewed = renew_leaf(&settings(), &ca, later).unwrap();
    assert_eq!(renewed.material.ca_crt, issued.material.ca_crt);
    assert_eq!(renewed.material.ca_key, issued.material.ca_key);
    assert_ne!(renewed.material.tls_crt, issued.material.tls_crt);
    assert_ne!(renewed.material.tls_key, issued.material.tls_key);
    verify(
        &issued.material.ca_crt,
        &renewed.material,
        "ephemeral-webhook.ephemeral-system.svc",
        later + 300 * DAY,
    )
    .unwrap();
    assert_eq!(
        decide(Some(&data(&renewed.material)), &settings(), later),
        Decision::Reuse(renewed.clone())
    );
    assert!(renewed.renew_at > later + 240 * DAY);
}

#[test]
fn a_ca_due_for_renewal_is_replaced_and_stays_trusted_until_it_expires() {
    let old = fresh();
    let ca_due = renew_at(now() - SignedDuration::from_mins(5), now() + CA_LIFETIME);
    let Decision::Recreate {
        reason,
        keep_trusting,
    } = decide(Some(&data(&old.material)), &settings(), ca_due)
    else {
        panic!("the CA is due at {ca_due}");
    };
    assert!(
        reason.starts_with(
            "the CA expires at 2036-11-18T10:00:00Z and was due for renewal at 2033-07-20T17:58:20Z"
        ),
        "{reason}"
    );
    assert_eq!(keep_trusting, vec![old.material.ca_crt.clone()]);

    let new = issue(&settings(), ca_due, &keep_trusting).unwrap();
    assert_ne!(new.material.ca_key, old.material.ca_key);
    assert!(
        new.material.ca_crt.ends_with(&old.material.ca_crt),
        "old CA kept after the new one"
    );
    assert_eq!(ders(&new.material.ca_crt).len(), 2);
    // The new caBundle trusts both the new certificate and the old one (still
    // served by a replica that has not re-read the Secret yet).
    let svc = "ephemeral-webhook.ephemeral-system.svc";
    verify(&new.material.ca_crt, &new.material, svc, ca_due).unwrap();
    let old_leaf = renew_leaf(
        &settings(),
        &match decide(Some(&data(&old.material)), &settings(), ca_due - DAY) {
            Decision::RenewLeaf { ca, .. } => ca,
            other => panic!("{other:?}"),
        },
        ca_due - DAY,
    )
    .unwrap();
    verify(&new.material.ca_crt, &old_leaf.material, svc, ca_due).unwrap();
    // The new pair is reused as stored, both CAs included.
    assert_eq!(
        decide(Some(&data(&new.material)), &settings(), ca_due + DAY),
        Decision::Reuse(new.clone())
    );

    // Once the old CA has expired, the next renewal drops it.
    let old_expired = now() + CA_LIFETIME + DAY;
    let Decision::RenewLeaf { ca, .. } =
        decide(Some(&data(&new.material)), &settings(), old_expired)
    else {
        panic!("the serving certificate of {ca_due} is due by {old_expired}");
    };
    assert!(ca.earlier.is_empty());
    let renewed = renew_leaf(&settings(), &ca, old_expired).unwrap();
    assert_eq!(ders(&renewed.material.ca_crt).len(), 1);
    assert!(new.material.ca_crt.starts_with(&renewed.material.ca_crt));
}

fn with(material: &Material, key: &str, value: Option<&str>) -> BTreeMap<String, ByteString> {
    let mut d = data(material);
    match value {
        Some(v) => d.insert(key.to_owned(), ByteString(v.as_bytes().to_vec())),
        None => d.remove(key),
    };
    d
}

fn recreate_reason(d: &BTreeMap<String, ByteString>, s: &CertSettings) -> String {
    match decide(Some(d), s, now()) {
        Decision::Recreate {
            reason,
            keep_trusting,
        } => {
            assert!(
                keep_trusting.is_empty(),
                "an unusable CA is not kept: {reason}"
            );
            reason
        }
        other => panic!("expected Recreate, got {other:?}"),
    }
}

fn renew_reason(d: &BTreeMap<String, ByteString>, s: &CertSettings) -> String {
    match decide(Some(d), s, now()) {
        Decision::RenewLeaf { reason, .. } => reason,
        other => panic!("expected RenewLeaf, got {other:?}"),
    }
}

#[test]
fn an_unusable_ca_means_starting_over() {
    let m = fresh().material;
    let other = fresh().material;
    let s = settings();
    match decide(None, &s, now()) {
        Decision::Recreate { reason, .. } => assert_eq!(reason, "the Secret does not exist"),
        other => panic!("{other:?}"),
    }
    assert_eq!(recreate_reason(&BTreeMap::new(), &s), "ca.crt is missing");
    assert_eq!(
        recreate_reason(&with(&m, CA_CRT, Some("   ")), &s),
        "ca.crt is empty"
    );
    assert_eq!(
        recreate_reason(&with(&m, CA_CRT, Some("garbage")), &s),
        "ca.crt holds no CERTIFICATE block"
    );
    let bad_der = "-----BEGIN CERTIFICATE-----\nAAECAwQ=\n-----END CERTIFICATE-----\n";
    assert!(
        recreate_reason(&with(&m, CA_CRT, Some(bad_der)), &s)
            .starts_with("ca.crt is not an X.509 certificate"),
    );
    let mut binary = data(&m);
    binary.insert(CA_CRT.to_owned(), ByteString(vec![0xff, 0xfe]));
    assert_eq!(recreate_reason(&binary, &s), "ca.crt is not PEM text");
    assert_eq!(
        recreate_reason(&with(&m, CA_CRT, Some(&m.tls_crt)), &s),
        "ca.crt is not a CA certificate"
    );
    assert_eq!(
        recreate_reason(&with(&m, CA_KEY, None), &s),
        "ca.key is missing"
    );
    assert_eq!(
        recreate_reason(&with(&m, CA_KEY, Some(&other.ca_key)), &s),
        "ca.key does not match ca.crt"
    );
    assert!(
        recreate_reason(&with(&m, CA_KEY, Some("junk")), &s)
            .starts_with("ca.key is not a PKCS#8 key")
    );
}

#[test]
fn a_bad_serving_certificate_is_renewed_with_the_same_ca() {
    let m = fresh().material;
    let other = fresh().material;
    let s = settings();
    assert_eq!(
        renew_reason(&with(&m, TLS_CRT, None), &s),
        "tls.crt is missing"
    );
    assert_eq!(
        renew_reason(&with(&m, TLS_KEY, None), &s),
        "tls.key is missing"
    );
    assert_eq!(
        renew_reason(&with(&m, TLS_KEY, Some(&other.tls_key)), &s),
        "tls.key does not match tls.crt"
    );
    // Another CA's certificate and key: a matching pair, but not ours.
    let mut foreign = with(&m, TLS_CRT, Some(&other.tls_crt));
    foreign.insert(
        TLS_KEY.to_owned(),
        ByteString(other.tls_key.clone().into_bytes()),
    );
    assert_eq!(
        renew_reason(&foreign, &s),
        "tls.crt is not signed by the CA in ca.crt"
    );
    // Another Service name: the certificate does not cover it.
    let renamed = CertSettings {
        service_name: "admission".to_owned(),
        ..settings()
    };
    assert_eq!(
        renew_reason(&data(&m), &renamed),
        "tls.crt is not valid for admission, admission.ephemeral-system, admission.ephemeral-system.svc, admission.ephemeral-system.svc.cluster.local \
         (it names ephemeral-webhook, ephemeral-webhook.ephemeral-system, ephemeral-webhook.ephemeral-system.svc, ephemeral-webhook.ephemeral-system.svc.cluster.local)"
    );
    // Issued by another replica whose clock runs two hours fast.
    let ahead = issue(&s, now() + 2 * SignedDuration::from_hours(1), &[]).unwrap();
    assert!(renew_reason(&data(&ahead.material), &s).starts_with("tls.crt is not valid before "));
    // Within the tolerance it is reused.
    let slightly = issue(&s, now() + SignedDuration::from_mins(30), &[]).unwrap();
    assert!(matches!(
        decide(Some(&data(&slightly.material)), &s, now()),
        Decision::Reuse(_)
    ));
}

#[test]
fn the_secret_is_a_labelled_tls_secret_and_a_replace_keeps_what_was_read() {
    let m = fresh().material;
    let secret = secret::new_secret(&settings(), &m);
    let value = serde_json::to_value(&secret).unwrap();
    assert_eq!(
        value["metadata"],
        json!({
            "name": "ephemeral-webhook-tls",
            "namespace": "ephemeral-system",
            "labels": {"app.kubernetes.io/managed-by": "ephemeral-webhook"}
        })
    );
    assert_eq!(value["type"], "kubernetes.io/tls");
    let keys: Vec<&String> = value["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["ca.crt", "ca.key", "tls.crt", "tls.key"]);
    assert!(secret::is_ours(&secret));

    let mut read = secret.clone();
    read.metadata.resource_version = Some("42".to_owned());
    read.metadata.annotations = Some(BTreeMap::from([("note".to_owned(), "kept".to_owned())]));
    let next = fresh().material;
    let replaced = secret::replaced(&read, &next);
    assert_eq!(replaced.metadata, read.metadata);
    assert_eq!(replaced.data, Some(secret::data(&next)));

    let mut foreign = secret.clone();
    foreign.metadata.labels = None;
    assert!(!secret::is_ours(&foreign));
}

fn webhook(name: &str, ca: Option<&[u8]>) -> WebhookCa {
    WebhookCa {
        name: name.to_owned(),
        ca_bundle: ca.map(<[u8]>::to_vec),
    }
}

#[test]
fn the_ca_bundle_patch_touches_only_webhooks_that_differ_and_checks_their_names() {
    let ca = b"-----BEGIN CERTIFICATE-----\nnew\n-----END CERTIFICATE-----\n";
    let ca_b64 = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCm5ldwotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==";
    let webhooks = [
        webhook("mutate.ephemeral.io", None),
        webhook("already.ephemeral.io", Some(ca)),
        webhook("stale.ephemeral.io", Some(b"old")),
    ];
    let patch = ca_bundle_patch(&webhooks, ca).unwrap();
    assert_eq!(
        serde_json::to_value(&patch).unwrap(),
        json!([
            {"op": "test", "path": "/webhooks/0/name", "value": "mutate.ephemeral.io"},
            {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": ca_b64},
            {"op": "test", "path": "/webhooks/2/name", "value": "stale.ephemeral.io"},
            {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": ca_b64},
        ])
    );

    // Applied to the configuration it was computed from, every caBundle is set.
    let config = json!({"webhooks": [
        {"name": "mutate.ephemeral.io", "clientConfig": {"service": {"name": "ephemeral-webhook"}}},
        {"name": "already.ephemeral.io", "clientConfig": {"caBundle": ca_b64}},
        {"name": "stale.ephemeral.io", "clientConfig": {"caBundle": "b2xk"}},
    ]});
    let mut patched = config.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    for w in patched["webhooks"].as_array().unwrap() {
        assert_eq!(w["clientConfig"]["caBundle"], ca_b64, "{w}");
    }
    assert_eq!(
        patched["webhooks"][0]["clientConfig"]["service"]["name"],
        "ephemeral-webhook"
    );
    // Applied to a configuration whose webhooks moved meanwhile, it fails
    // as a whole instead of setting the wrong entry.
    let mut moved = config.clone();
    moved["webhooks"].as_array_mut().unwrap().swap(0, 1);
    let before = moved.clone();
    assert!(json_patch::patch(&mut moved, &patch).is_err());
    assert_eq!(moved, before);

    // Nothing to do: no patch.
    assert_eq!(
        ca_bundle_patch(&[webhook("a", Some(ca)), webhook("b", Some(ca))], ca),
        None
    );
    assert_eq!(ca_bundle_patch(&[], ca), None);
}

#[test]
fn rounds_wait_for_renewal_at_most_a_resync_and_back_off_after_errors() {
    let t = now();
    assert_eq!(
        next_delay(t, t + SignedDuration::from_secs(20), 0),
        Duration::from_secs(20)
    );
    assert_eq!(next_delay(t, t + 200 * DAY, 0), RESYNC);
    assert_eq!(
        next_delay(t, t - DAY, 0),
        Duration::ZERO,
        "overdue: at once"
    );
    let backoff: Vec<u64> = (1..=8)
        .map(|f| next_delay(t, t + 200 * DAY, f).as_secs())
        .collect();
    assert_eq!(backoff, [1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(next_delay(t, t, u32::MAX), MAX_BACKOFF);
}

#[test]
fn material_debug_output_hides_private_keys() {
    let issued = fresh();
    let debug = format!("{issued:?}");
    assert!(debug.contains("BEGIN CERTIFICATE"));
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    let Decision::RenewLeaf { ca, .. } = decide(
        Some(&with(&issued.material, TLS_CRT, None)),
        &settings(),
        now(),
    ) else {
        panic!()
    };
    assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
}
