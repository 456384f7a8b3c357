//! The API side of self-managed certificates: read the Secret, create or
//! replace it when [`decide`] says so, patch the `caBundle` of both webhook
//! configurations, and keep doing that on a timer, feeding each new serving
//! certificate into the live TLS configuration.
//!
//! Two replicas may run this at once. Creation is settled by the API server
//! (AlreadyExists: the other replica won, so its Secret is read and reused),
//! and so is renewal (a replace carries the `resourceVersion` it read, so the
//! loser gets Conflict and re-reads). Each replica re-reads the Secret every
//! [`RESYNC`], so it starts serving a certificate another replica renewed
//! within that time; the one it served before stays valid and trusted.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};

use super::inspect::{Decision, decide};
use super::pki::{Issued, issue, renew_leaf};
use super::secret::{MANAGED_BY, TLS_CRT, TLS_KEY, is_ours, new_secret, replaced};
use super::{CertError, CertSettings, patch};
use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::tls::{LiveTls, Origin};

/// How often the Secret and the webhook configurations are checked even when
/// nothing is due: the delay before a replica serves a certificate another
/// replica renewed, or repairs a `caBundle` someone reset.
pub const RESYNC: Duration = Duration::from_secs(60);

/// Longest wait between retries after errors.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Retries after errors: 1 s doubling up to [`MAX_BACKOFF`], without jitter
/// (one manager per replica; the API server settles their races).
const RETRY: Backoff = Backoff {
    base: Duration::from_secs(1),
    max: MAX_BACKOFF,
    jitter: 0.0,
};

/// Read-decide-write rounds before giving up on a Secret that keeps changing.
const ATTEMPTS: u32 = 4;

/// The field manager of the webhook's writes.
pub const FIELD_MANAGER: &str = "ephemeral-webhook";

/// How long to wait before the next round: after `failures` consecutive
/// errors, 1 s doubling up to [`MAX_BACKOFF`]; otherwise until `renew_at`,
/// but at most [`RESYNC`].
pub fn next_delay(now: Timestamp, renew_at: Timestamp, failures: u32) -> Duration {
    if failures > 0 {
        return RETRY.delay(failures, 0.0);
    }
    let until = renew_at.duration_since(now);
    Duration::try_from(until)
        .unwrap_or(Duration::ZERO)
        .min(RESYNC)
}

/// The Secret and webhook configurations of one [`CertSettings`].
#[derive(Clone)]
pub struct CertManager {
    settings: CertSettings,
    secrets: Api<Secret>,
    mutating: Api<MutatingWebhookConfiguration>,
    validating: Api<ValidatingWebhookConfiguration>,
}

impl std::fmt::Debug for CertManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertManager")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn api_error(action: &'static str, object: String) -> impl FnOnce(kube::Error) -> CertError {
    move |source| CertError::Api {
        action,
        object,
        source,
    }
}

impl CertManager {
    /// A manager using `client`.
    pub fn new(client: Client, settings: CertSettings) -> CertManager {
        CertManager {
            secrets: Api::namespaced(client.clone(), &settings.namespace),
            mutating: Api::all(client.clone()),
            validating: Api::all(client),
            settings,
        }
    }

    /// Where the serving certificate comes from, for error messages.
    pub fn origin(&self) -> Origin {
        let secret = self.settings.secret_ref();
        Origin {
            cert: format!("Secret {secret} key {TLS_CRT}"),
            key: format!("Secret {secret} key {TLS_KEY}"),
        }
    }

    fn secret_object(&self) -> String {
        format!("Secret {}", self.settings.secret_ref())
    }

    /// One round: makes sure the Secret holds certificates valid at `now`
    /// and not yet due for renewal (writing it only when needed), then that
    /// both webhook configurations trust its CA.
    pub async fn ensure(&self, now: Timestamp) -> Result<Issued, CertError> {
        let issued = self.ensure_secret(now).await?;
        self.patch_configurations(issued.material.ca_crt.as_bytes())
            .await?;
        Ok(issued)
    }

    /// The Secret part of [`CertManager::ensure`].
    pub async fn ensure_secret(&self, now: Timestamp) -> Result<Issued, CertError> {
        let name = &self.settings.secret_name;
        let post = PostParams {
            dry_run: false,
            field_manager: Some(FIELD_MANAGER.to_owned()),
        };
        for _ in 0..ATTEMPTS {
            let existing = self
                .secrets
                .get_opt(name)
                .await
                .map_err(api_error("read", self.secret_object()))?;
            let data = existing
                .as_ref()
                .map(|s| s.data.clone().unwrap_or_default());
            let (issued, reason) = match decide(data.as_ref(), &self.settings, now) {
                Decision::Reuse(issued) => return Ok(issued),
                Decision::RenewLeaf { ca, reason } => {
                    (renew_leaf(&self.settings, &ca, now)?, reason)
                }
                Decision::Recreate {
                    reason,
                    keep_trusting,
                } => (issue(&self.settings, now, &keep_trusting)?, reason),
            };
            match &existing {
                None => {
                    let secret = new_secret(&self.settings, &issued.material);
                    match self.secrets.create(&post, &secret).await {
                        Ok(_) => {
                            tracing::info!(secret = %self.settings.secret_ref(), %reason, renew_at = %issued.renew_at, "created the certificate Secret");
                            return Ok(issued);
                        }
                        Err(kube::Error::Api(status)) if status.is_already_exists() => {
                            tracing::info!(secret = %self.settings.secret_ref(), "another replica created the certificate Secret first; using theirs");
                        }
                        Err(e) => return Err(api_error("create", self.secret_object())(e)),
                    }
                }
                Some(secret) if !is_ours(secret) => {
                    return Err(CertError::NotOurs {
                        secret: self.settings.secret_ref(),
                        namespace: self.settings.namespace.clone(),
                        name: name.clone(),
                        label: format!("{}={}", MANAGED_BY.0, MANAGED_BY.1),
                        reason,
                    });
                }
                Some(secret) => {
                    let secret = replaced(secret, &issued.material);
                    match self.secrets.replace(name, &post, &secret).await {
                        Ok(_) => {
                            tracing::info!(secret = %self.settings.secret_ref(), %reason, renew_at = %issued.renew_at, "renewed the certificates in the Secret");
                            return Ok(issued);
                        }
                        Err(kube::Error::Api(status)) if status.is_conflict() => {
                            tracing::info!(secret = %self.settings.secret_ref(), "the certificate Secret changed meanwhile (another replica?); reading it again");
                        }
                        Err(e) => return Err(api_error("replace", self.secret_object())(e)),
                    }
                }
            }
        }
        Err(CertError::Contended {
            secret: self.settings.secret_ref(),
            attempts: ATTEMPTS,
        })
    }

    /// Sets the `caBundle` of every webhook in both configurations to
    /// `ca_pem` where it differs. A configuration that does not exist (yet)
    /// is skipped with a warning: the API server calls no webhook for it, and
    /// the next round patches it once it appears.
    pub async fn patch_configurations(&self, ca_pem: &[u8]) -> Result<(), CertError> {
        let name = &self.settings.webhook_configuration;
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let object = format!("MutatingWebhookConfiguration {name}");
        match self
            .mutating
            .get_opt(name)
            .await
            .map_err(api_error("read", object.clone()))?
        {
            Some(config) => {
                if let Some(p) = patch::ca_bundle_patch(&patch::mutating(&config), ca_pem) {
                    self.mutating
                        .patch(name, &params, &Patch::Json::<()>(p))
                        .await
                        .map_err(api_error("patch", object.clone()))?;
                    tracing::info!(configuration = %object, "caBundle updated");
                }
            }
            None => {
                tracing::warn!(configuration = %object, "not found; its caBundle will be set once it exists")
            }
        }
        let object = format!("ValidatingWebhookConfiguration {name}");
        match self
            .validating
            .get_opt(name)
            .await
            .map_err(api_error("read", object.clone()))?
        {
            Some(config) => {
                if let Some(p) = patch::ca_bundle_patch(&patch::validating(&config), ca_pem) {
                    self.validating
                        .patch(name, &params, &Patch::Json::<()>(p))
                        .await
                        .map_err(api_error("patch", object.clone()))?;
                    tracing::info!(configuration = %object, "caBundle updated");
                }
            }
            None => {
                tracing::warn!(configuration = %object, "not found; its caBundle will be set once it exists")
            }
        }
        Ok(())
    }

    /// Retries [`CertManager::ensure`] with backoff until it succeeds.
    /// Returns the TLS configuration to serve (hand it to
    /// [`CertManager::run`] to follow renewals) and what was issued.
    pub async fn ready(&self) -> (LiveTls, Issued) {
        let mut failures = 0u32;
        let (issued, tls) = loop {
            let attempt = self.ensure(Timestamp::now()).await.and_then(|issued| {
                let tls = LiveTls::new(
                    issued.material.tls_crt.as_bytes(),
                    issued.material.tls_key.as_bytes(),
                    &self.origin(),
                )?;
                Ok((issued, tls))
            });
            match attempt {
                Ok(ready) => break ready,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let retry_in = next_delay(Timestamp::now(), Timestamp::now(), failures);
                    tracing::warn!(%error, ?retry_in, "self-managed certificate not ready; retrying");
                    tokio::time::sleep(retry_in).await;
                }
            }
        };
        tracing::info!(secret = %self.settings.secret_ref(), renew_at = %issued.renew_at, "serving the self-managed certificate");
        (tls, issued)
    }

    /// The renewal loop: a round at `renew_at` and every [`RESYNC`]; a new
    /// serving certificate is swapped into `tls`. Never returns: its caller
    /// stops it by dropping it.
    pub async fn run(&self, mut tls: LiveTls, mut current: Issued, metrics: Arc<Metrics>) {
        let mut failures = 0u32;
        loop {
            tokio::time::sleep(next_delay(Timestamp::now(), current.renew_at, failures)).await;
            match self.ensure(Timestamp::now()).await {
                Ok(issued) => {
                    failures = 0;
                    let (cert, key) = (&issued.material.tls_crt, &issued.material.tls_key);
                    match tls.update(cert.as_bytes(), key.as_bytes(), &self.origin()) {
                        Ok(true) => {
                            metrics.tls_reload(true);
                            tracing::info!(renew_at = %issued.renew_at, "serving a new self-managed certificate");
                        }
                        Ok(false) => {}
                        Err(error) => {
                            metrics.tls_reload(false);
                            tracing::error!(%error, "new self-managed certificate rejected; keeping the current one");
                        }
                    }
                    current = issued;
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, "cannot check the self-managed certificate; keeping the current one and retrying");
                }
            }
        }
    }
}
