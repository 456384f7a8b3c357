//! Library half of `ephemeral-webhook`: everything but argument dispatch.
//!
//! - [`admission`]: the pure mutating and validating decisions.
//! - [`catalog`]: the catalog snapshot, from files or kube watchers.
//! - [`tls`]: certificate loading and hot reload.
//! - [`certs`]: self-managed certificates (a CA and serving certificate in a
//!   Secret, the webhooks' `caBundle`, renewal); builds on [`tls`].
//! - [`server`] and [`admin`]: the HTTPS admission routes and the admin routes.
//! - [`controller`] and [`leader`]: the controller that materialises
//!   Environments, and the Lease that lets one replica run it.
//! - [`github`]: the GitHub REST client and the `POST /github` webhook
//!   receiver an EnvironmentSet's controller builds on.
//! - [`engine`]: what a controller owning children does, generic over the
//!   owner and its children (the child index fed by the watches, apply only
//!   what differs, prune with a uid precondition, status write); the
//!   Environment controller is its first user.
//! - [`backoff`]: exponential backoff with jitter, shared by the controller
//!   and the certificates.
//! - [`metrics`], [`clock`], [`logging`]: Prometheus metrics, where "now"
//!   comes from, the log subscriber.
//! - [`lifecycle`]: the task set and shutdown token `serve` runs everything in.
//! - [`serve`]: the wiring: each subsystem from its settings, as tasks of
//!   one lifecycle (and the choice between certificate files and
//!   self-managed certificates).
//! - [`args`]: the `serve` flags, parsed into each subsystem's settings;
//!   nothing but `main` imports it.
//!
//! # Layers
//!
//! A module imports only from layers below its own, so there are no import
//! cycles (checked by reading the `use crate::` lines of each module):
//!
//! 1. `args` (used only by `main`)
//! 2. `serve`
//! 3. `lifecycle`, `controller`, `certs`, `server`, `admin`, `github`
//! 4. `engine`
//! 5. `tls`, `leader`, `catalog`, `backoff`, `clock`, `logging`
//! 6. `metrics`
//! 7. `admission`, `crds`
//!
//! # Decisions beyond the design contract
//!
//! - The JSONPatch only touches `spec` and `metadata.annotations`: it is the
//!   diff between the object exactly as received and the same object with
//!   those two replaced by the expansion's, so an admitted object gets no patch.
//! - UPDATEs that leave the spec and the owner and uptime annotations as they
//!   were (finalizers, labels, other annotations), and UPDATEs of an object
//!   being deleted, are admitted without re-expanding, so a template deleted
//!   later never blocks the controller's metadata updates or a deletion.
//! - An Environment without an owner annotation (created while the webhook
//!   was off) may be changed only by admins. The default admin groups are
//!   `system:masters` and `system:serviceaccounts:kube-system`, so the
//!   namespace controller and garbage collector are never blocked.
//! - The patch goes out base64-encoded, the JSON form of the API's `[]byte`.
//! - Malformed review bodies get HTTP 400 (an AdmissionReview carrying the uid
//!   when one can be read, else plain text); well-formed reviews always get
//!   HTTP 200, with denials coded 400 (wrong kind), 403 (ownership) or 422
//!   (invalid Environment).

pub mod admin;
pub mod admission;
pub mod args;
pub mod backoff;
pub mod catalog;
pub mod certs;
pub mod clock;
pub mod controller;
pub mod crds;
pub mod engine;
pub mod github;
pub mod leader;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod serve;
pub mod server;
pub mod tls;
