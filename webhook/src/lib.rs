//! Library half of `ephemeral-webhook`: everything but argument dispatch.
//!
//! - [`admission`]: the pure mutating and validating decisions.
//! - [`catalog`]: the catalog snapshot, from files or kube watchers.
//! - [`tls`]: certificate loading and hot reload.
//! - [`server`] and [`admin`]: the HTTPS admission routes and the admin routes.
//! - [`metrics`]: Prometheus metrics.
//! - [`args`] and [`serve`]: the `serve` flags and the process around it all.

pub mod admin;
pub mod admission;
pub mod args;
pub mod catalog;
pub mod crds;
pub mod metrics;
pub mod serve;
pub mod server;
pub mod tls;
