//! How the client authenticates: a token, or a GitHub App installation.
//!
//! The caller reads the Secrets (the token, the App's private key) and hands
//! their bytes in; nothing here talks to Kubernetes. For an App the client
//! signs a JWT (RS256 through ring: `iat` = now − 60 s for clock drift,
//! `exp` = now + 9 min, under GitHub's 10-minute maximum, `iss` = the App
//! ID), exchanges it at `POST /app/installations/{id}/access_tokens`, and
//! reuses the installation token until [`REFRESH_BEFORE_EXPIRY`] before its
//! `expires_at`.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::error::Error;

/// Bytes that must never be shown: a token, a private key, a webhook secret.
/// `Debug` prints `Secret(<redacted>)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes (e.g. a Secret's `data` value).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The bytes, for the one place that uses them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Whether there are no bytes (an empty key authenticates nothing).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s.as_bytes())
    }
}

/// Who the client is to GitHub.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// A personal access token (fine-grained or classic) or any other token
    /// GitHub accepts as `Authorization: Bearer`. Surrounding whitespace (a
    /// trailing newline in a Secret) is ignored.
    Token(Secret),
    /// A GitHub App installation.
    App(AppCredentials),
}

/// A GitHub App installation (`spec.pullRequests.github.app`).
#[derive(Clone, Debug)]
pub struct AppCredentials {
    /// The App's ID (`appID`).
    pub app_id: i64,
    /// The installation's ID (`installationID`).
    pub installation_id: i64,
    /// The App's private key, PEM (PKCS#1 `RSA PRIVATE KEY`, as GitHub hands
    /// it out, or PKCS#8 `PRIVATE KEY`).
    pub private_key_pem: Secret,
}

/// An installation token is renewed this long before it expires.
pub const REFRESH_BEFORE_EXPIRY: SignedDuration = SignedDuration::from_mins(5);

/// The App JWT's `iat` is this far in the past (GitHub's advice against clock drift).
pub const JWT_BACKDATE: SignedDuration = SignedDuration::from_secs(60);

/// The App JWT's lifetime after "now" (GitHub accepts at most 10 minutes).
pub const JWT_LIFETIME: SignedDuration = SignedDuration::from_mins(9);

/// The claims of a GitHub App JWT.
#[derive(Serialize)]
struct AppClaims {
    iat: i64,
    exp: i64,
    iss: String,
}

/// A GitHub App, ready to sign JWTs.
pub(crate) struct AppSigner {
    pub(crate) app_id: i64,
    pub(crate) installation_id: i64,
    key: EncodingKey,
}

impl fmt::Debug for AppSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppSigner")
            .field("app_id", &self.app_id)
            .field("installation_id", &self.installation_id)
            .finish_non_exhaustive()
    }
}

impl AppSigner {
    /// Reads the App's private key.
    pub(crate) fn new(app: &AppCredentials) -> Result<Self, Error> {
        let key = EncodingKey::from_rsa_pem(app.private_key_pem.expose()).map_err(|e| {
            Error::Config(format!(
                "app.privateKeySecretRef: the GitHub App's private key is not an RSA key in PEM ({e}); \
                 use the .pem file GitHub generated for App {}",
                app.app_id
            ))
        })?;
        Ok(AppSigner {
            app_id: app.app_id,
            installation_id: app.installation_id,
            key,
        })
    }

    /// A JWT for `POST /app/installations/{id}/access_tokens`, issued at `now`.
    pub(crate) fn jwt(&self, now: Timestamp) -> Result<String, Error> {
        let claims = AppClaims {
            iat: (now - JWT_BACKDATE).as_second(),
            exp: (now + JWT_LIFETIME).as_second(),
            iss: self.app_id.to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|e| Error::Config(format!("cannot sign the GitHub App JWT: {e}")))
    }
}

/// An installation token and when GitHub said it expires.
#[derive(Clone, Debug)]
pub(crate) struct InstallationToken {
    pub(crate) token: Secret,
    pub(crate) expires_at: Timestamp,
}

impl InstallationToken {
    /// Whether it may still be used at `now`.
    pub(crate) fn fresh_at(&self, now: Timestamp) -> bool {
        self.expires_at
            .checked_sub(REFRESH_BEFORE_EXPIRY)
            .is_ok_and(|renew_at| now < renew_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let creds = Credentials::Token(Secret::from("ghp_verysecret"));
        let shown = format!("{creds:?}");
        assert!(!shown.contains("verysecret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn a_key_that_is_not_pem_is_refused_naming_the_field() {
        let err = AppSigner::new(&AppCredentials {
            app_id: 1,
            installation_id: 2,
            private_key_pem: Secret::from("not a key"),
        })
        .unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        assert!(err.to_string().contains("app.privateKeySecretRef"), "{err}");
    }

    #[test]
    fn an_installation_token_is_renewed_five_minutes_before_it_expires() {
        let expires_at: Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let t = InstallationToken {
            token: Secret::from("x"),
            expires_at,
        };
        assert!(t.fresh_at("2026-12-01T11:54:59Z".parse().unwrap()));
        assert!(!t.fresh_at("2026-12-01T11:55:00Z".parse().unwrap()));
    }
}
