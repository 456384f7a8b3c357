//! The two baselines the real webhook is measured against, on the same stack
//! (axum, axum-server, rustls with ring, the webhook's own TLS settings) and
//! the same Tokio runtime: a server answering a fixed AdmissionReview, the
//! ceiling of the stack, and the smallest useful webhook, which decodes the
//! review into kube's `AdmissionRequest<DynamicObject>` and answers with a
//! one-label JSONPatch.
//!
//! They run in their own processes (this bench binary re-executed with
//! `--serve fixed|minimal`), so each has its own peak RSS.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum_server::tls_rustls::RustlsConfig;
use base64::Engine as _;
use ephemeral_webhook::tls::{Origin, server_config};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview};
use serde::Serialize;
use serde_json::{Value, json};

/// Which baseline to serve.
#[derive(Clone, Copy, Debug)]
pub enum Baseline {
    /// The same AdmissionReview for every request (the body is still read).
    Fixed,
    /// Decode into `AdmissionRequest<DynamicObject>`, answer a one-label patch.
    Minimal,
}

impl Baseline {
    /// The `--serve` argument.
    pub fn arg(self) -> &'static str {
        match self {
            Baseline::Fixed => "fixed",
            Baseline::Minimal => "minimal",
        }
    }

    fn parse(s: &str) -> Option<Baseline> {
        match s {
            "fixed" => Some(Baseline::Fixed),
            "minimal" => Some(Baseline::Minimal),
            _ => None,
        }
    }
}

/// The fixed answer: what the minimal webhook answers for the benchmark's
/// review (same uid, same one-label patch), serialised once.
fn fixed_answer() -> Bytes {
    let patch = json!([{"op": "add", "path": "/metadata/labels", "value": {"bench": "minimal"}}]);
    let answer = Answer {
        api_version: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        response: AnswerResponse {
            uid: crate::REVIEW_UID.to_owned(),
            allowed: true,
            patch_type: Some("JSONPatch"),
            patch: Some(base64::engine::general_purpose::STANDARD.encode(patch.to_string())),
        },
    };
    Bytes::from(serde_json::to_vec(&answer).expect("serialises"))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    api_version: &'static str,
    kind: &'static str,
    response: AnswerResponse,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AnswerResponse {
    uid: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
}

fn json_response(body: impl Into<axum::body::Body>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body.into()).into_response()
}

async fn minimal(body: Bytes) -> Response {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}")).into_response(),
    };
    let has_labels = request
        .object
        .as_ref()
        .is_some_and(|o| o.metadata.labels.is_some());
    let patch: Value = if has_labels {
        json!([{"op": "add", "path": "/metadata/labels/bench", "value": "minimal"}])
    } else {
        json!([{"op": "add", "path": "/metadata/labels", "value": {"bench": "minimal"}}])
    };
    let patch = serde_json::to_vec(&patch).expect("serialises");
    let answer = Answer {
        api_version: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        response: AnswerResponse {
            uid: request.uid,
            allowed: true,
            patch_type: Some("JSONPatch"),
            patch: Some(base64::engine::general_purpose::STANDARD.encode(patch)),
        },
    };
    json_response(serde_json::to_vec(&answer).expect("serialises"))
}

/// `--serve KIND --listen ADDR --cert FILE --key FILE`: serves until killed.
pub fn serve(args: &[String]) {
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .unwrap_or_else(|| panic!("{flag} is required"))
            .clone()
    };
    let baseline = Baseline::parse(&value("--serve")).expect("--serve fixed|minimal");
    let listen: SocketAddr = value("--listen").parse().expect("--listen ADDR");
    let (cert, key) = (value("--cert"), value("--key"));
    let read = |p: &str| std::fs::read(Path::new(p)).expect("readable PEM");
    let tls = server_config(
        &read(&cert),
        &read(&key),
        &Origin {
            cert: cert.clone(),
            key: key.clone(),
        },
    )
    .expect("a usable certificate");
    let router = match baseline {
        Baseline::Fixed => {
            let answer = fixed_answer();
            Router::new().route(
                "/mutate",
                post(move |body: Bytes| {
                    let answer = answer.clone();
                    async move {
                        drop(body);
                        json_response(answer)
                    }
                }),
            )
        }
        Baseline::Minimal => Router::new().route("/mutate", post(minimal)),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    runtime.block_on(async move {
        axum_server::bind_rustls(listen, RustlsConfig::from_config(Arc::new(tls)))
            .serve(router.into_make_service())
            .await
            .expect("the baseline server runs");
    });
}
