//! The admission HTTP routes: `POST /mutate` and `POST /validate`.
//!
//! Well-formed AdmissionReviews are always answered with HTTP 200 (denials
//! are `allowed: false` inside); bodies that are not AdmissionReviews get 400,
//! bodies over the limit 413, unknown paths 404 and other methods 405, each
//! with a plain message.
//!
//! A body over the limit is still read (and discarded) up to
//! [`DRAIN_FACTOR`] times the limit before the 413 is sent, so that a client
//! still writing reliably gets the answer instead of a reset connection; a
//! body declared or found larger than that is cut off.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ephemeral_core::Config;
use futures::StreamExt;
use kube::core::admission::{AdmissionResponse, Operation};

use crate::admission::{self, Access, Decision, Outcome};
use crate::catalog::SharedCatalog;
use crate::clock::Clock;
use crate::metrics::{Endpoint, Metrics};

/// Settings of the admission server.
#[derive(Clone, Debug)]
pub struct AdmissionSettings {
    /// HTTPS address (`--listen`).
    pub listen: std::net::SocketAddr,
    /// Who counts as admin.
    pub access: Access,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
}

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
    Router::new()
        .route("/mutate", post(mutate).fallback(method_not_allowed))
        .route("/validate", post(validate).fallback(method_not_allowed))
        .fallback(not_found)
        .with_state(state)
}

/// Bodies up to this many times the limit are drained before answering 413.
pub const DRAIN_FACTOR: usize = 4;

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Larger than the limit.
    #[error("request body is larger than {limit} bytes (--max-body-bytes)")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The connection failed while reading.
    #[error("cannot read the request body: {0}")]
    Read(#[from] axum::Error),
}

/// Reads a body of at most `limit` bytes.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let too_large = BodyError::TooLarge { limit };
    let drain_cap = limit.saturating_mul(DRAIN_FACTOR);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > drain_cap) {
        return Err(too_large);
    }
    let mut data = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut total = 0usize;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        total = total.saturating_add(chunk.len());
        if total <= limit {
            data.extend_from_slice(&chunk);
        } else if total > drain_cap {
            return Err(too_large);
        }
    }
    if total > limit {
        return Err(too_large);
    }
    Ok(Bytes::from(data))
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

// The whole request is taken (not a `HeaderMap` extractor, which copies the
// headers) and split.
async fn mutate(State(state): State<AdmissionState>, request: Request) -> Response {
    let start = Instant::now();
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body, state.max_body_bytes).await;
    state.answer(Endpoint::Mutate, body, start)
}

async fn validate(State(state): State<AdmissionState>, request: Request) -> Response {
    let start = Instant::now();
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body, state.max_body_bytes).await;
    state.answer(Endpoint::Validate, body, start)
}

impl AdmissionState {
    fn answer(
        &self,
        endpoint: Endpoint,
        body: Result<Bytes, BodyError>,
        start: Instant,
    ) -> Response {
        let (response, outcome) = self.decide(endpoint, body);
        let seconds = start.elapsed().as_secs_f64();
        self.metrics.observe(endpoint, outcome, seconds);
        response
    }

    fn decide(&self, endpoint: Endpoint, body: Result<Bytes, BodyError>) -> (Response, Outcome) {
        let body = match body {
            Ok(b) => b,
            Err(error @ BodyError::TooLarge { .. }) => {
                tracing::warn!(endpoint = endpoint.as_str(), %error, "request refused");
                let response = plain(StatusCode::PAYLOAD_TOO_LARGE, error.to_string());
                return (response, Outcome::Invalid);
            }
            Err(error) => {
                tracing::warn!(endpoint = endpoint.as_str(), %error, "request refused");
                return (
                    plain(StatusCode::BAD_REQUEST, error.to_string()),
                    Outcome::Invalid,
                );
            }
        };
        let review = match admission::parse_review(&body) {
            Ok(r) => r,
            Err(malformed) => {
                tracing::info!(endpoint = endpoint.as_str(), uid = ?malformed.uid, error = %malformed.error, "malformed AdmissionReview");
                let response = match admission::malformed_review(&malformed)
                    .and_then(|review| review.response)
                {
                    Some(answer) => json(StatusCode::BAD_REQUEST, &answer),
                    None => plain(StatusCode::BAD_REQUEST, malformed.error.to_string()),
                };
                return (response, Outcome::Invalid);
            }
        };
        let decision = match endpoint {
            Endpoint::Mutate => admission::mutate(
                &review,
                &self.catalog.current(),
                &self.config,
                self.clock.now(),
            ),
            Endpoint::Validate => admission::validate(&review, &self.access),
        };
        log_admission(endpoint, &review.request, &decision);
        (json(StatusCode::OK, &decision.response), decision.outcome)
    }
}

/// One structured line per admission request: at `info` when the webhook
/// changed (patched) or refused something, or let a CREATE or DELETE through;
/// at `debug` for the bulk of the traffic, UPDATEs it let through untouched
/// (status, finalizer and label writes of controllers). The fields are
/// formatted only when the level is enabled (`RUST_LOG`).
fn log_admission(endpoint: Endpoint, request: &admission::Request<'_>, decision: &Decision) {
    let response = &decision.response;
    macro_rules! line {
        ($level:expr) => {
            tracing::event!(
                $level,
                endpoint = endpoint.as_str(),
                uid = &*request.uid,
                operation = operation_str(&request.operation),
                namespace = request.namespace.as_deref().unwrap_or_default(),
                name = &*request.name,
                user = request.user_info.username.as_deref().unwrap_or_default(),
                dry_run = request.dry_run,
                outcome = decision.outcome.as_str(),
                code = response.result.code,
                patched = response.patch.is_some(),
                message = response.result.message.as_str(),
                "admission"
            )
        };
    }
    let routine = decision.outcome == Outcome::Allowed
        && response.patch.is_none()
        && request.operation == Operation::Update;
    if routine {
        line!(tracing::Level::DEBUG);
    } else {
        line!(tracing::Level::INFO);
    }
}

/// The operation as the API server spells it.
fn operation_str(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// An AdmissionReview answer.
fn json(status: StatusCode, response: &AdmissionResponse) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        admission::response_body(response),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(length: Option<usize>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(n) = length {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        h
    }

    #[tokio::test]
    async fn bodies_up_to_the_limit_are_read_whole() {
        let body = read_body(&headers(None), Body::from(vec![b'x'; 10]), 10).await;
        assert_eq!(body.unwrap().len(), 10);
    }

    #[tokio::test]
    async fn larger_bodies_are_refused_with_the_limit_named() {
        let err = read_body(&headers(None), Body::from(vec![b'x'; 11]), 10)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "request body is larger than 10 bytes (--max-body-bytes)"
        );
        // Far beyond the drain cap: refused from the declared length alone.
        let err = read_body(&headers(Some(1000)), Body::empty(), 10)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: 10 }));
    }
}
