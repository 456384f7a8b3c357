//! The plain-HTTP admin routes: `/livez`, `/readyz` and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::catalog::SharedCatalog;
use crate::metrics::Metrics;

/// Settings of the admin server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminSettings {
    /// Plain-HTTP address (`--admin-listen`).
    pub listen: SocketAddr,
}

/// What `/readyz` reports on.
#[derive(Debug, Default)]
pub struct Readiness {
    tls_loaded: AtomicBool,
    shutting_down: AtomicBool,
}

impl Readiness {
    /// Marks the TLS material as loaded (the admission server is listening).
    pub fn set_tls_loaded(&self) {
        self.tls_loaded.store(true, Ordering::Release);
    }

    /// The admission server is off (`--webhook=false`): readiness does not
    /// wait for a certificate, only for the catalog.
    pub fn set_tls_not_needed(&self) {
        self.tls_loaded.store(true, Ordering::Release);
    }

    /// Marks the server as shutting down: not ready any more.
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// What still keeps the server from being ready (empty: ready).
    pub fn problems(&self, catalog: &SharedCatalog) -> Vec<&'static str> {
        let mut problems = Vec::new();
        if self.shutting_down.load(Ordering::Acquire) {
            problems.push("shutting down");
        }
        if !self.tls_loaded.load(Ordering::Acquire) {
            problems.push("TLS certificate not loaded");
        }
        if !catalog.is_synced() {
            problems.push("catalog not synced");
        }
        problems
    }
}

/// What the admin handlers share.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// Readiness flags.
    pub readiness: Arc<Readiness>,
    /// The catalog, for its sync state.
    pub catalog: SharedCatalog,
    /// Metrics to expose.
    pub metrics: Arc<Metrics>,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let problems = state.readiness.problems(&state.catalog);
    if problems.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join(", ")),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_tls_and_catalog_and_not_while_stopping() {
        let r = Readiness::default();
        let c = SharedCatalog::new();
        assert_eq!(
            r.problems(&c),
            vec!["TLS certificate not loaded", "catalog not synced"]
        );
        r.set_tls_loaded();
        assert_eq!(r.problems(&c), vec!["catalog not synced"]);
        c.mark_synced();
        assert!(r.problems(&c).is_empty());
        r.set_shutting_down();
        assert_eq!(r.problems(&c), vec!["shutting down"]);
    }

    #[test]
    fn the_controller_alone_is_ready_once_the_catalog_synced() {
        let r = Readiness::default();
        let c = SharedCatalog::new();
        r.set_tls_not_needed();
        assert_eq!(r.problems(&c), vec!["catalog not synced"]);
        c.mark_synced();
        assert!(r.problems(&c).is_empty());
    }
}
