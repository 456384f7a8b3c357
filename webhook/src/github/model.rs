//! What the client's operations take and give besides pull requests (which
//! are core's [`PullRequest`](ephemeral_core::set::PullRequest)): the rate
//! limit, commit statuses and comments.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// GitHub limits a commit status's description to this many characters.
pub const STATUS_DESCRIPTION_MAX_CHARS: usize = 140;

/// The rate limit as GitHub last reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests left in the current window (`X-RateLimit-Remaining`).
    pub remaining: u64,
    /// When the window resets (`X-RateLimit-Reset`).
    pub reset: Option<Timestamp>,
}

/// A commit status's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitState {
    /// Still coming up (or queued).
    Pending,
    /// Ready and healthy.
    Success,
    /// Stalled, or the health check timed out.
    Failure,
    /// Something went wrong on our side.
    Error,
}

/// A commit status to set on a commit (`POST /repos/{owner}/{repo}/statuses/{sha}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommitStatus {
    /// Its state.
    pub state: CommitState,
    /// Where its "Details" link points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
    /// A short description; cut to [`STATUS_DESCRIPTION_MAX_CHARS`] characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The status's context, e.g. `ephemeral/shop-prs`.
    pub context: String,
}

/// A comment on a pull request (an issue comment).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Comment {
    /// Its ID.
    pub id: u64,
    /// Its text (Markdown).
    #[serde(default)]
    pub body: Option<String>,
    /// Its page on GitHub.
    #[serde(default)]
    pub html_url: String,
}

/// What [`Client::upsert_comment`](super::Client::upsert_comment) did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommentUpsert {
    /// No comment carried the marker: one was created.
    Created(Comment),
    /// The marked comment had other text: it was updated.
    Updated(Comment),
    /// The marked comment already said exactly this: nothing was sent.
    Unchanged(Comment),
}

impl CommentUpsert {
    /// The comment, whatever happened.
    pub fn comment(&self) -> &Comment {
        match self {
            CommentUpsert::Created(c) | CommentUpsert::Updated(c) | CommentUpsert::Unchanged(c) => {
                c
            }
        }
    }
}
