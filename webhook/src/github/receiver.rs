//! The webhook receiver: `POST /github`, GitHub's deliveries for the
//! repositories EnvironmentSets follow (`--receiver-listen`, plain HTTP
//! behind an Ingress).
//!
//! A `pull_request` delivery is verified and the matching sets are
//! triggered through [`Sets::trigger`]; the answer goes out at once, without
//! waiting for any reconcile. The controller provides [`Sets`]: which sets
//! follow a repository, with their webhook secrets, answered from memory.
//!
//! # Verification
//!
//! `X-Hub-Signature-256: sha256=<hex>` must be the HMAC-SHA256 of the raw
//! body under the `webhookSecretRef` of one of the sets following the
//! repository, compared in constant time (`ring::hmac::verify`). The
//! repository is read from the still untrusted body only to find those
//! sets; only sets whose secret verifies the body are triggered. A set
//! without `webhookSecretRef` (or with an empty secret) never accepts a
//! delivery: it relies on polling.
//!
//! # Answers
//!
//! | Delivery | Status |
//! |---|---|
//! | `ping` | 200 (nothing else happens, signed or not) |
//! | `pull_request`, verified | 202, the sets triggered |
//! | any other event | 202, ignored (nothing is read or triggered) |
//! | no `X-GitHub-Event` header | 400 |
//! | `pull_request` without `X-Hub-Signature-256`, or not `sha256=` + 64 hex digits | 401 |
//! | body not JSON, or without `repository.owner.login`/`repository.name` | 400 |
//! | form-encoded body (the webhook's content type is not `application/json`) | 415 |
//! | no EnvironmentSet follows the repository | 404 |
//! | signed, but by no secret of a set following the repository (wrong secret, changed body), or no such set has a `webhookSecretRef` | 401 |
//! | body over [`MAX_BODY_BYTES`] | 413 |
//! | another path | 404; another method on `/github`: 405 |
//!
//! Every refusal is 401 whatever its cause, so a caller without the secret
//! learns nothing more than "not accepted"; the plain-text message (which
//! GitHub's delivery log shows to the repository's admins) says which cause.
//! A repository no set follows is 404 rather than a silent 202, so a
//! misconfigured webhook shows up in that log; this tells a caller which
//! repositories are followed, which is not a secret worth an opaque answer.
//!
//! Each delivery is logged once with its `X-GitHub-Delivery` ID, event,
//! repository and outcome; never its payload, signature or a secret.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ring::hmac;
use serde::Deserialize;

use super::auth::Secret;
use super::client::Repository;

/// The largest delivery accepted (GitHub caps payloads at 25 MB; a
/// `pull_request` event is far smaller).
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// The path GitHub posts to.
pub const PATH: &str = "/github";

/// An EnvironmentSet, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for SetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A set following a repository, and the key its deliveries are signed with.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The set.
    pub set: SetRef,
    /// The bytes of its `webhookSecretRef`; `None` (or empty) when it has
    /// none or the Secret cannot be read: then it accepts no delivery.
    pub webhook_secret: Option<Secret>,
}

/// What the receiver needs from the controller.
pub trait Sets: Send + Sync + 'static {
    /// The sets following `repository`. Match owner and name
    /// case-insensitively, as GitHub does ([`Repository::same_as`]). Answer from memory (a reflector
    /// store and the Secrets already read): the receiver answers GitHub
    /// while it waits.
    fn for_repository(&self, repository: &Repository) -> Vec<Candidate>;

    /// Asks for an immediate reconcile of `set`. Must not block (e.g. a
    /// `try_send` on the controller's trigger channel).
    fn trigger(&self, set: &SetRef);
}

/// The receiver's router: `POST /github`.
pub fn router(sets: Arc<dyn Sets>) -> Router {
    Router::new()
        .route(PATH, post(receive).fallback(method_not_allowed))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(sets)
}

/// The part of a `pull_request` payload read before verification.
#[derive(Deserialize)]
struct Payload {
    repository: PayloadRepository,
}

#[derive(Deserialize)]
struct PayloadRepository {
    name: String,
    owner: PayloadOwner,
}

#[derive(Deserialize)]
struct PayloadOwner {
    login: String,
}

/// The outcome of one delivery: its status, message, and how to log it.
struct Outcome {
    status: StatusCode,
    message: String,
}

impl Outcome {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Outcome {
            status,
            message: message.into(),
        }
    }
}

async fn receive(
    State(sets): State<Arc<dyn Sets>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let delivery = header_text(&headers, "x-github-delivery");
    let event = header_text(&headers, "x-github-event");
    let (outcome, repository) = match body {
        Ok(body) => decide(sets.as_ref(), &headers, event.as_deref(), &body),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => (
            Outcome::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("refused: the delivery is larger than {MAX_BODY_BYTES} bytes"),
            ),
            None,
        ),
        Err(rejection) => (
            Outcome::new(
                StatusCode::BAD_REQUEST,
                format!("refused: cannot read the body: {}", rejection.body_text()),
            ),
            None,
        ),
    };
    let delivery = delivery.as_deref().unwrap_or("-");
    let event = event.as_deref().unwrap_or("-");
    let repository = repository.map(|r| r.to_string());
    let repository = repository.as_deref().unwrap_or("-");
    if outcome.status.is_success() {
        tracing::info!(delivery, event, repository, status = outcome.status.as_u16(), outcome = %outcome.message, "GitHub delivery");
    } else {
        tracing::warn!(delivery, event, repository, status = outcome.status.as_u16(), outcome = %outcome.message, "GitHub delivery refused");
    }
    let mut message = outcome.message;
    message.push('\n');
    (
        outcome.status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// What to answer a delivery (whose body was read whole), and its repository.
fn decide(
    sets: &dyn Sets,
    headers: &HeaderMap,
    event: Option<&str>,
    body: &[u8],
) -> (Outcome, Option<Repository>) {
    let Some(event) = event else {
        return (
            Outcome::new(
                StatusCode::BAD_REQUEST,
                "refused: no X-GitHub-Event header; this endpoint takes GitHub webhook deliveries",
            ),
            None,
        );
    };
    match event {
        "ping" => return (Outcome::new(StatusCode::OK, "pong"), None),
        "pull_request" => {}
        other => {
            return (
                Outcome::new(
                    StatusCode::ACCEPTED,
                    format!("ignored: event {other:?}; only pull_request events trigger a set"),
                ),
                None,
            );
        }
    }
    let Some(signature) = signature(headers) else {
        return (
            Outcome::new(
                StatusCode::UNAUTHORIZED,
                "refused: no valid X-Hub-Signature-256 (sha256=<64 hex digits>); set the webhook's secret to the set's webhookSecretRef",
            ),
            None,
        );
    };
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        return (
            Outcome::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "refused: form-encoded delivery; set the webhook's content type to application/json",
            ),
            None,
        );
    }
    let payload: Payload = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) => {
            return (
                Outcome::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "refused: not a pull_request payload (repository.owner.login, repository.name): {e}"
                    ),
                ),
                None,
            );
        }
    };
    let repository =
        match Repository::new(&payload.repository.owner.login, &payload.repository.name) {
            Ok(r) => r,
            Err(e) => {
                return (
                    Outcome::new(StatusCode::BAD_REQUEST, format!("refused: {e}")),
                    None,
                );
            }
        };
    let candidates = sets.for_repository(&repository);
    if candidates.is_empty() {
        return (
            Outcome::new(
                StatusCode::NOT_FOUND,
                format!("refused: no EnvironmentSet follows {repository}"),
            ),
            Some(repository),
        );
    }
    let keyed: Vec<_> = candidates
        .iter()
        .filter_map(|c| {
            c.webhook_secret
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| (&c.set, s))
        })
        .collect();
    if keyed.is_empty() {
        return (
            Outcome::new(
                StatusCode::UNAUTHORIZED,
                format!(
                    "refused: no EnvironmentSet following {repository} has a webhookSecretRef (they rely on polling)"
                ),
            ),
            Some(repository),
        );
    }
    let mut triggered: Vec<&SetRef> = keyed
        .into_iter()
        .filter(|(_, secret)| {
            let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose());
            hmac::verify(&key, body, &signature).is_ok()
        })
        .map(|(set, _)| set)
        .collect();
    if triggered.is_empty() {
        return (
            Outcome::new(
                StatusCode::UNAUTHORIZED,
                format!(
                    "refused: the signature matches the webhookSecretRef of no EnvironmentSet following {repository}"
                ),
            ),
            Some(repository),
        );
    }
    triggered.sort();
    triggered.dedup();
    for set in &triggered {
        sets.trigger(set);
    }
    let names: Vec<String> = triggered.iter().map(|s| s.to_string()).collect();
    (
        Outcome::new(
            StatusCode::ACCEPTED,
            format!("triggered {}", names.join(", ")),
        ),
        Some(repository),
    )
}

/// The 32 bytes of a well-formed `X-Hub-Signature-256`.
fn signature(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get("x-hub-signature-256")?.to_str().ok()?;
    let hex_digits = value.trim().strip_prefix("sha256=")?;
    let bytes = hex::decode(hex_digits).ok()?;
    (bytes.len() == 32).then_some(bytes)
}

/// A header's value if it is short printable text (safe to log).
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    let ok = !value.is_empty()
        && value.len() <= 100
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| value.to_string())
}

fn plain(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

async fn not_found() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "not found: GitHub deliveries go to POST /github",
    )
}

async fn method_not_allowed() -> Response {
    let mut response = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: GitHub deliveries are POSTed",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}
