//! `EnvironmentSet`: one Environment per open pull request that passes the
//! set's filters (`../shared/DESIGN.md`, "EnvironmentSet"). This module is
//! the set's rules, pure; the controller observes, calls [`plan::plan`] and
//! executes what it says.
//!
//! # Which pull requests get an Environment
//!
//! Every open pull request of `spec.pullRequests.github` that passes the
//! filters, checked in this order, the first failing one naming the reason
//! ([`filter::check`]): it carries every label of `labels`; none of
//! `excludeLabels`; its base branch is one of `baseBranches` (empty: any); it
//! is not a draft unless `includeDrafts`; it is not from a fork unless
//! `includeForks`; its author is not in `excludeAuthors`. A pull request is
//! from a fork when its head repository is missing (the fork was deleted) or
//! is not the base repository (`full_name`, compared case-insensitively):
//! code from forks never runs unless the set asks for it.
//!
//! # The Environment of a pull request
//!
//! [`generate::environment`]: named `<set>-pr-<number>` in the set's
//! namespace (a DNS-1123 label of at most 63 characters: a set name of at
//! most 53 leaves room for 6-digit numbers; a name that does not fit fails
//! that pull request with the fix); labels the template's plus
//! `ephemeral.io/set=<set>` and `ephemeral.io/pull-request=<number>`;
//! annotations the template's plus `ephemeral.io/pull-request-head-sha`,
//! `ephemeral.io/pull-request-branch` and `ephemeral.io/set-generation` (the
//! set's own entries win); the set as controlling owner (deleting the set
//! deletes its Environments); the template's spec. In every string value of
//! the template's labels, annotations and spec (Helm `values` at any depth
//! included) the variables `${PR_NUMBER}`, `${PR_HEAD_SHA}`,
//! `${PR_HEAD_SHORT_SHA}` (7 characters), `${PR_BRANCH}`,
//! `${PR_BASE_BRANCH}`, `${PR_AUTHOR}` and the earlier controller's
//! `<<PR_NUMBER>>` and `<<PR_HEAD_SHA>>` are replaced ([`vars`]); every
//! other `${...}` is left for Flux. The health check's `url` and the commit
//! status's `targetURL` get the same variables.
//!
//! The Environment then goes through admission and the Environment
//! controller like any other. Every app also gets the `postBuild` variables
//! `pr_number`, `pr_head_sha` and `pr_branch` (Helm apps under
//! `values.ephemeral`): [`expand`](crate::expand::expand) reads them from
//! the `ephemeral.io/pull-request` label and the two annotations above
//! ([`generate::PullRequestOf`]). They are reserved like `environment`: an
//! Environment's own `substitute` cannot set them.
//!
//! # When an Environment is created, updated and deleted
//!
//! [`plan::plan`] decides, from the listing of open pull requests, the
//! namespace's Environments, the confirming GETs and the time:
//!
//! - Nothing is created, updated or deleted unless GitHub answered the
//!   whole list of open pull requests. An error, a timeout, a rate limit, a
//!   page that failed to parse: a warning Event and the set's `Ready`
//!   condition False (`ListFailed`); the Environments stay as they are.
//! - A pull request with an Environment that is missing from the list
//!   (GitHub listed fewer than before) gets its own GET first. Its
//!   Environment is deleted only when that GET says closed or merged; a GET
//!   that fails (a `404` too: a token that lost access looks the same) keeps
//!   it. A pull request that no longer passes the filters (listed or
//!   fetched) loses its Environment, and its comment says why.
//! - Deletes carry the Environment's uid as a precondition. An Environment
//!   the set does not control (another controlling owner, or none) is never
//!   touched, even when it carries the set's labels or the name a pull
//!   request would get (that pull request then fails with `NameTaken`).
//! - A new head commit, or a change to the set (its `generation`), updates
//!   the Environment.
//! - `maxEnvironments`: matching pull requests without an Environment get the
//!   free slots oldest first (`created_at`, then number); the others wait,
//!   `Queued`. Nothing is evicted, and lowering the maximum deletes nothing:
//!   a slot frees when an Environment is gone.
//!
//! # States, commit statuses, the comment
//!
//! Each pull request is `Queued`, `Progressing`, `Ready` or `Failed`
//! ([`state::assess`]), reported as a commit status on its head commit
//! (`report.commitStatus`, context `ephemeral/<set>` by default): `pending`
//! while queued ("queued: N environments running, max M") or coming up,
//! including "waiting for the image of abc1234" while an app following the
//! pull request's branch has no resolved tag whose sha part (`<prefix>-<sha>-<time>`)
//! is a prefix of the head commit; `success` once the Environment is Ready
//! for the head commit and, when `healthCheck` is set, its URL answered the
//! expected status (checked every 15 s once Ready); `failure` when the
//! Environment is Stalled or the health check still fails `timeout` (default
//! 10m) after the Environment became Ready. A status is set once per change
//! of state or description, not on every poll. With `report.comment`, one
//! comment on the pull request, found again by its first line
//! `<!-- ephemeral.io/environmentset: <namespace>/<set> -->`, shows the
//! Environment, state, reason and URLs ([`report::comment`]), edited when
//! they change.
//!
//! # For the controller
//!
//! Observe the set, list the open pull requests, read the namespace's
//! Environments; [`plan::plan`]; GET the pull requests in
//! [`plan::Plan::fetch`] and plan again with the answers (that plan asks for
//! no GET it already has an answer to); then execute: apply (create, or
//! update with the uid as precondition), delete with the uid precondition,
//! run the due health checks (their results go into the next plan), report
//! (on a failed report call [`plan::Plan::report_failed`] before writing the
//! status), record the Events, write the status, and come back after
//! [`plan::Plan::requeue_after`].
//!
//! # Modules
//!
//! - [`api`]: the `EnvironmentSet` kind, as its CRD carries it.
//! - [`github`]: a pull request as GitHub's REST API returns it (`GET
//!   /repos/{owner}/{repo}/pulls`), the one shape the client, `render` and
//!   the pure rules read.
//! - [`filter`]: which pull requests get an Environment.
//! - [`vars`]: the `${PR_...}` variables of the template.
//! - [`generate`]: the Environment of one pull request, and the pull request
//!   an Environment was made for.
//! - [`plan`]: the decisions.
//! - [`state`]: where one pull request's Environment stands.
//! - [`report`]: the commit status and the comment.

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
