//! Self-managed serving certificates (`serve` without `--tls-cert-file`).
//!
//! At start the webhook creates, or reuses, a CA and a serving certificate
//! kept in one Secret, points the `caBundle` of its own mutating and
//! validating webhook configurations at that CA, and serves the certificate
//! from memory. A background loop renews it before it expires and picks up a
//! renewal made by another replica.
//!
//! - [`pki`]: generating the CA and the serving certificate (pure: `now` is
//!   passed in).
//! - [`inspect`]: reading a Secret back and deciding whether to reuse it,
//!   renew the serving certificate, or start over with a new CA (pure).
//! - [`secret`]: the Secret's keys, labels and objects (pure).
//! - [`patch`]: the JSON patches that set each webhook's `caBundle` (pure).
//! - [`manager`]: the API calls and the renewal loop (I/O).
//!
//! # Decisions
//!
//! - Lifetimes: the CA for 10 years, the serving certificate for 1 year
//!   (never beyond its CA); both are back-dated by 5 minutes so a replica
//!   whose clock lags a little still accepts them.
//! - Renewal: a certificate is renewed once two thirds of its lifetime have
//!   passed, or when less than 30 days are left, whichever comes first (for
//!   our 1-year certificate: about 243 days after issue, with 4 months to
//!   spare). The CA follows the same rule (about 6 years 8 months), so a
//!   serving certificate signed by it never outlives it.
//! - CA rotation keeps trust: when the CA is replaced because it is due for
//!   renewal, the old CA stays in `ca.crt` (and so in the `caBundle`) until
//!   it expires, so the API server trusts replicas still serving a
//!   certificate from the old CA. A CA replaced because it is unusable
//!   (missing, unparsable, key mismatch) is dropped.
//! - Ownership: the webhook only overwrites a Secret it created (label
//!   `app.kubernetes.io/managed-by=ephemeral-webhook`); another Secret of
//!   that name is reused when it is complete and valid, and otherwise
//!   reported with the fix (delete it, or pass `--tls-cert-file`).
//! - Times come from the system clock, never from `--fixed-now`: the API
//!   server checks certificates against real time.

pub mod inspect;
pub mod manager;
pub mod patch;
pub mod pki;
pub mod secret;

#[cfg(test)]
mod tests;

/// Where the self-managed certificates live and who they are for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSettings {
    /// Namespace of the Secret and of the Service (`--namespace`).
    pub namespace: String,
    /// Name of the Secret (`--cert-secret`).
    pub secret_name: String,
    /// Name of the Service the API server calls (`--service-name`).
    pub service_name: String,
    /// Name of both webhook configurations (`--webhook-configuration`).
    pub webhook_configuration: String,
    /// More names the serving certificate is valid for, DNS names or IP
    /// addresses (`--cert-extra-names`): for an API server that calls the
    /// webhook by URL, e.g. `127.0.0.1` when it runs outside the cluster.
    pub extra_names: Vec<String>,
}

impl CertSettings {
    /// The names the serving certificate is valid for: `<svc>`, `<svc>.<ns>`,
    /// `<svc>.<ns>.svc` and `<svc>.<ns>.svc.cluster.local`, then the extra
    /// names (an IP address becomes an IP SAN).
    pub fn subject_alt_names(&self) -> Vec<String> {
        let (svc, ns) = (&self.service_name, &self.namespace);
        let mut names = vec![
            svc.clone(),
            format!("{svc}.{ns}"),
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.cluster.local"),
        ];
        names.extend(self.extra_names.iter().cloned());
        names
    }

    /// The name the API server connects to: `<svc>.<ns>.svc`.
    pub fn server_name(&self) -> String {
        format!("{}.{}.svc", self.service_name, self.namespace)
    }

    /// `namespace/name` of the Secret, for messages.
    pub fn secret_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.secret_name)
    }
}

/// The API server's own message for API errors (without kube's debug dump
/// of the Status), the error itself otherwise.
fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.to_string(),
        other => other.to_string(),
    }
}

/// Why self-managed certificates cannot be made or stored.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen refused to build a certificate (a name it cannot encode).
    #[error("cannot generate the {what}: {source}")]
    Generate {
        /// Which certificate.
        what: &'static str,
        /// The cause.
        source: rcgen::Error,
    },
    /// A validity date falls outside what a certificate can carry.
    #[error("cannot compute the {what} of a certificate: {detail}")]
    Time {
        /// Which date.
        what: &'static str,
        /// The cause.
        detail: String,
    },
    /// An API call failed.
    #[error("cannot {action} {object}: {}", api_message(source))]
    Api {
        /// What was attempted (`read`, `create`, `replace`, `patch`).
        action: &'static str,
        /// The object, e.g. `Secret ephemeral-system/ephemeral-webhook-tls`.
        object: String,
        /// The cause.
        source: kube::Error,
    },
    /// The Secret exists, is not usable, and was not created by the webhook.
    #[error(
        "Secret {secret} exists but was not created by ephemeral-webhook (no label {label}) and cannot be reused: {reason}; delete it (kubectl -n {namespace} delete secret {name}) so the webhook can create its own, or serve it with --tls-cert-file/--tls-key-file"
    )]
    NotOurs {
        /// `namespace/name`.
        secret: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The label that marks the webhook's own Secret.
        label: String,
        /// Why it cannot be reused.
        reason: String,
    },
    /// Other writers kept changing the Secret between our read and write.
    #[error("Secret {secret} changed during each of {attempts} attempts to update it")]
    Contended {
        /// `namespace/name`.
        secret: String,
        /// How many read-decide-write rounds were tried.
        attempts: u32,
    },
    /// The material does not make a TLS configuration (a bug if ever seen).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}
