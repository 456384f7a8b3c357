//! The admission HTTP routes: `POST /mutate` and `POST /validate`.
//!
//! Well-formed AdmissionReviews are always answered with HTTP 200 (denials
//! are `allowed: false` inside); bodies that are not AdmissionReviews get 400,
//! bodies over the limit 413, unknown paths 404 and other methods 405, each
//! with a plain message.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use ephemeral_core::Config;

use crate::admission::{self, Access, Outcome};
use crate::args::Clock;
use crate::catalog::SharedCatalog;
use crate::metrics::{Endpoint, Metrics};

/// What the admission handlers share.
#[derive(Clone, Debug)]
pub struct AdmissionState {
    /// The catalog snapshot source.
    pub catalog: SharedCatalog,
    /// Expansion policy.
    pub config: Arc<Config>,
    /// Who counts as admin.
    pub access: Arc<Access>,
    /// Where "now" comes from.
    pub clock: Clock,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The body limit, for messages.
    pub max_body_bytes: usize,
}

/// The admission router.
pub fn router(state: AdmissionState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/mutate", post(mutate).fallback(method_not_allowed))
        .route("/validate", post(validate).fallback(method_not_allowed))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    message.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

async fn not_found() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "not found: the admission endpoints are POST /mutate and POST /validate",
    )
}

async fn method_not_allowed() -> Response {
    let mut response = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: send AdmissionReviews with POST",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

async fn mutate(
    State(state): State<AdmissionState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    state.answer(Endpoint::Mutate, body)
}

async fn validate(
    State(state): State<AdmissionState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    state.answer(Endpoint::Validate, body)
}

impl AdmissionState {
    fn answer(&self, endpoint: Endpoint, body: Result<Bytes, BytesRejection>) -> Response {
        let start = Instant::now();
        let (response, outcome) = self.decide(endpoint, body);
        let seconds = start.elapsed().as_secs_f64();
        self.metrics.observe(endpoint, outcome, seconds);
        response
    }

    fn decide(
        &self,
        endpoint: Endpoint,
        body: Result<Bytes, BytesRejection>,
    ) -> (Response, Outcome) {
        let body = match body {
            Ok(b) => b,
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                tracing::warn!(
                    endpoint = endpoint.as_str(),
                    limit = self.max_body_bytes,
                    "request body too large"
                );
                let message = format!(
                    "request body is larger than {} bytes (--max-body-bytes)",
                    self.max_body_bytes
                );
                return (
                    plain(StatusCode::PAYLOAD_TOO_LARGE, message),
                    Outcome::Invalid,
                );
            }
            Err(rejection) => {
                let status = rejection.status();
                let outcome = if status.is_server_error() {
                    Outcome::Error
                } else {
                    Outcome::Invalid
                };
                return (plain(status, rejection.body_text()), outcome);
            }
        };
        let review = match admission::parse_review(&body) {
            Ok(r) => r,
            Err(malformed) => {
                tracing::info!(endpoint = endpoint.as_str(), uid = ?malformed.uid, error = %malformed.error, "malformed AdmissionReview");
                let response = match admission::malformed_review(&malformed) {
                    Some(review) => (StatusCode::BAD_REQUEST, Json(review)).into_response(),
                    None => plain(StatusCode::BAD_REQUEST, malformed.error.to_string()),
                };
                return (response, Outcome::Invalid);
            }
        };
        let response = match endpoint {
            Endpoint::Mutate => admission::mutate(
                &review,
                &self.catalog.snapshot(),
                &self.config,
                self.clock.now(),
            ),
            Endpoint::Validate => admission::validate(&review, &self.access),
        };
        let outcome = Outcome::of(&response);
        let r = &review.request;
        tracing::info!(
            endpoint = endpoint.as_str(),
            uid = %r.uid,
            operation = ?r.operation,
            namespace = r.namespace.as_deref().unwrap_or_default(),
            name = %r.name,
            user = r.user_info.username.as_deref().unwrap_or_default(),
            dry_run = r.dry_run,
            outcome = outcome.as_str(),
            code = response.result.code,
            patched = response.patch.is_some(),
            message = %response.result.message,
            "admission"
        );
        (
            Json(admission::to_review(response)).into_response(),
            outcome,
        )
    }
}
