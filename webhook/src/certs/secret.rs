//! The Secret that holds the self-managed certificates: its keys, its
//! ownership label, and the objects written to the API (pure).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;

use super::CertSettings;
use super::pki::Material;

/// Key of the CA certificate(s) (PEM): the `caBundle`.
pub const CA_CRT: &str = "ca.crt";
/// Key of the CA's private key (PEM, PKCS#8).
pub const CA_KEY: &str = "ca.key";
/// Key of the serving certificate (PEM).
pub const TLS_CRT: &str = "tls.crt";
/// Key of the serving certificate's private key (PEM, PKCS#8).
pub const TLS_KEY: &str = "tls.key";
/// The Secret's type.
pub const SECRET_TYPE: &str = "kubernetes.io/tls";
/// The label that marks a Secret the webhook created and may overwrite.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "ephemeral-webhook");

/// `data` of the Secret for `material`.
pub fn data(material: &Material) -> BTreeMap<String, ByteString> {
    [
        (CA_CRT, &material.ca_crt),
        (CA_KEY, &material.ca_key),
        (TLS_CRT, &material.tls_crt),
        (TLS_KEY, &material.tls_key),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
    .collect()
}

/// A new Secret (type `kubernetes.io/tls`, labelled as the webhook's own).
pub fn new_secret(settings: &CertSettings, material: &Material) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(settings.secret_name.clone()),
            namespace: Some(settings.namespace.clone()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_owned(),
                MANAGED_BY.1.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some(SECRET_TYPE.to_owned()),
        data: Some(data(material)),
        ..Secret::default()
    }
}

/// `existing` with its data replaced by `material`; everything else,
/// including `metadata.resourceVersion` (so a concurrent change makes the
/// replace fail with Conflict), stays as read.
pub fn replaced(existing: &Secret, material: &Material) -> Secret {
    let mut secret = existing.clone();
    secret.data = Some(data(material));
    secret.string_data = None;
    secret
}

/// Whether the webhook created `secret` and may overwrite it.
pub fn is_ours(secret: &Secret) -> bool {
    secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY.0))
        .is_some_and(|v| v == MANAGED_BY.1)
}
