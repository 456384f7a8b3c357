//! A set's Secrets: the GitHub credentials (`tokenSecretRef`, or the App's
//! `privateKeySecretRef`) and the receiver's `webhookSecretRef`, each one
//! key of a Secret in the set's namespace, read with `get` by name (never
//! listed or watched).

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::Api;

use ephemeral_core::set::EnvironmentSet;
use ephemeral_core::set::api::{GitHubSource, SecretKeyRef};

use crate::engine::{Error, api_error};
use crate::github::{AppCredentials, Credentials, Secret};

/// Why a set has no usable credentials: its `Stalled` reason and message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Missing {
    /// `SecretNotFound` or `SecretKeyNotFound`.
    pub reason: &'static str,
    /// What is missing, where, and the fix.
    pub message: String,
}

/// Reads the key `r` names from a Secret in `namespace`: `Ok(Err(_))` when
/// the Secret or the key is missing (the set stalls), `Err` when the API
/// call failed (retried).
pub async fn read(
    client: &kube::Client,
    namespace: &str,
    field: &str,
    r: &SecretKeyRef,
) -> Result<Result<Secret, Missing>, Error> {
    let found = Api::<KubeSecret>::namespaced(client.clone(), namespace)
        .get_opt(&r.name)
        .await
        .map_err(api_error(format!("get Secret {namespace}/{}", r.name)))?;
    let Some(secret) = found else {
        return Ok(Err(Missing {
            reason: "SecretNotFound",
            message: format!(
                "{field}: Secret {namespace}/{} not found; create it with the key {:?}",
                r.name, r.key
            ),
        }));
    };
    let value = secret.data.as_ref().and_then(|d| d.get(&r.key));
    Ok(match value {
        Some(bytes) if !bytes.0.is_empty() => Ok(Secret::new(bytes.0.clone())),
        _ => Err(Missing {
            reason: "SecretKeyNotFound",
            message: format!(
                "{field}: Secret {namespace}/{} has no key {:?} (or it is empty); add it",
                r.name, r.key
            ),
        }),
    })
}

/// The GitHub credentials of `set`.
pub async fn github(
    client: &kube::Client,
    set: &EnvironmentSet,
) -> Result<Result<Credentials, Missing>, Error> {
    let namespace = set.metadata.namespace.clone().unwrap_or_default();
    let source: &GitHubSource = &set.spec.pull_requests.github;
    match (&source.token_secret_ref, &source.app) {
        (Some(r), _) => Ok(read(
            client,
            &namespace,
            "spec.pullRequests.github.tokenSecretRef",
            r,
        )
        .await?
        .map(Credentials::Token)),
        (None, Some(app)) => Ok(read(
            client,
            &namespace,
            "spec.pullRequests.github.app.privateKeySecretRef",
            &app.private_key_secret_ref,
        )
        .await?
        .map(|key| {
            Credentials::App(AppCredentials {
                app_id: app.app_id,
                installation_id: app.installation_id,
                private_key_pem: key,
            })
        })),
        (None, None) => Ok(Err(Missing {
            reason: "NoCredentials",
            message: "spec.pullRequests.github sets neither tokenSecretRef nor app; set one".into(),
        })),
    }
}

/// The receiver's key for `set`'s deliveries: `None` when it has no
/// `webhookSecretRef`, or the Secret or key is missing (then it accepts no
/// delivery and relies on polling).
pub async fn webhook(client: &kube::Client, set: &EnvironmentSet) -> Result<Option<Secret>, Error> {
    let namespace = set.metadata.namespace.clone().unwrap_or_default();
    let Some(r) = &set.spec.pull_requests.github.webhook_secret_ref else {
        return Ok(None);
    };
    let field = "spec.pullRequests.github.webhookSecretRef";
    Ok(match read(client, &namespace, field, r).await? {
        Ok(secret) => Some(secret),
        Err(missing) => {
            tracing::warn!(set = %format!("{namespace}/{}", set.metadata.name.as_deref().unwrap_or_default()), %missing, "deliveries for this set are refused");
            None
        }
    })
}
