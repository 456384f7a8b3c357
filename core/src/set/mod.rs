//! `EnvironmentSet`: one Environment per open pull request that passes the
//! set's filters (`../shared/DESIGN.md`, "EnvironmentSet").
//!
//! - [`api`]: the `EnvironmentSet` kind, as its CRD carries it.
//! - [`github`]: a pull request as GitHub's REST API returns it (`GET
//!   /repos/{owner}/{repo}/pulls`), the one shape the client, `render` and
//!   the pure rules read.

pub mod api;
pub mod github;

pub use api::{EnvironmentSet, EnvironmentSetSpec, EnvironmentSetStatus};
pub use github::PullRequest;

/// Label on a generated Environment: the EnvironmentSet it came from.
pub const SET_LABEL: &str = "ephemeral.io/set";
/// Label on a generated Environment: its pull request's number.
pub const PULL_REQUEST_LABEL: &str = "ephemeral.io/pull-request";
