//! `EnvironmentSet`: one Environment per open pull request that passes the
//! set's filters (`../shared/DESIGN.md`, "EnvironmentSet").
//!
//! - [`api`]: the `EnvironmentSet` kind, as its CRD carries it.
//! - [`github`]: a pull request as GitHub's REST API returns it (`GET
//!   /repos/{owner}/{repo}/pulls`), the one shape the client, `render` and
//!   the pure rules read.
//! - [`filter`]: which pull requests get an Environment.
//! - [`vars`]: the `${PR_...}` variables of the template.
//! - [`generate`]: the Environment of one pull request, and the pull request
//!   an Environment was made for.

pub mod api;
pub mod filter;
pub mod generate;
pub mod github;
pub mod plan;
pub mod report;
pub mod state;
pub mod vars;

pub use api::{EnvironmentSet, EnvironmentSetSpec, EnvironmentSetStatus};
pub use github::PullRequest;

/// Label on a generated Environment: the EnvironmentSet it came from.
pub const SET_LABEL: &str = "ephemeral.io/set";
/// Label on a generated Environment: its pull request's number.
pub const PULL_REQUEST_LABEL: &str = "ephemeral.io/pull-request";
/// Annotation on a generated Environment: the head commit it was made for.
pub const HEAD_SHA_ANNOTATION: &str = "ephemeral.io/pull-request-head-sha";
/// Annotation on a generated Environment: its pull request's head branch.
pub const BRANCH_ANNOTATION: &str = "ephemeral.io/pull-request-branch";
/// Annotation on a generated Environment: the set's `metadata.generation`
/// it was generated from (a changed set updates its Environments).
pub const SET_GENERATION_ANNOTATION: &str = "ephemeral.io/set-generation";
