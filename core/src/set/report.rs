//! What is reported back to a pull request: the commit status on its head
//! commit, in the shape of GitHub's `POST /repos/{owner}/{repo}/statuses/{sha}`
//! body, and the one comment the set keeps on it, found again by its hidden
//! marker.

use std::fmt::Write;

use serde::Serialize;

use super::api::{CommitState, PullRequestState, PullRequestStatus};

/// The longest description GitHub accepts on a commit status.
pub const MAX_DESCRIPTION: usize = 140;

/// A commit status to set.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct CommitStatus {
    /// The commit (the request's path, not its body).
    #[serde(skip)]
    pub sha: String,
    /// `pending`, `success` or `failure`.
    pub state: CommitState,
    /// The link, with the variables replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
    /// At most [`MAX_DESCRIPTION`] characters.
    pub description: String,
    /// `report.commitStatus.context`, default `ephemeral/<set>`.
    pub context: String,
}

/// `text` cut to GitHub's [`MAX_DESCRIPTION`] characters, ending in `…` when cut.
pub fn description(text: &str) -> String {
    if text.chars().count() <= MAX_DESCRIPTION {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX_DESCRIPTION - 1).collect();
    cut.push('…');
    cut
}

/// The hidden first line that identifies the set's comment on a pull request.
pub fn comment_marker(namespace: &str, set: &str) -> String {
    format!("<!-- ephemeral.io/environmentset: {namespace}/{set} -->")
}

/// What a comment shows besides the pull request's status entry.
#[derive(Clone, Copy, Debug)]
pub struct CommentLinks<'a> {
    /// The set's namespace.
    pub namespace: &'a str,
    /// The set's name.
    pub set: &'a str,
    /// `report.commitStatus.targetURL`, variables replaced.
    pub url: Option<&'a str>,
    /// `healthCheck.url`, variables replaced.
    pub health_check: Option<&'a str>,
}

/// The comment's markdown: the marker, then the Environment, its state and
/// reason, the commit and the URLs. No timestamps, so the same state renders
/// the same text and the comment is only edited when something changed.
pub fn comment(entry: &PullRequestStatus, links: &CommentLinks<'_>) -> String {
    let (icon, state) = match entry.state {
        PullRequestState::Queued => ("🕓", "Queued"),
        PullRequestState::Progressing => ("⏳", "Progressing"),
        PullRequestState::Ready => ("✅", "Ready"),
        PullRequestState::Failed => ("❌", "Failed"),
    };
    let mut out = comment_marker(links.namespace, links.set);
    let _ = write!(out, "\n### {icon} Preview environment: {state}\n\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let environment = match &entry.environment {
        Some(name) => format!("`{name}` (namespace `{}`)", links.namespace),
        None => "none yet".to_owned(),
    };
    let _ = writeln!(out, "| Environment | {environment} |");
    let _ = writeln!(
        out,
        "| Commit | `{}` |",
        super::vars::short_sha(&entry.head_sha)
    );
    let _ = writeln!(out, "| State | {state} |");
    if let Some(message) = &entry.message {
        let reason = entry.reason.as_deref().unwrap_or_default();
        let _ = writeln!(out, "| Reason | {} ({reason}) |", cell(message));
    }
    if let Some(url) = links.url {
        let _ = writeln!(out, "| URL | {} |", cell(url));
    }
    if let Some(url) = links.health_check {
        let _ = writeln!(out, "| Health check | {} |", cell(url));
    }
    if let Some(name) = &entry.environment {
        let _ = write!(
            out,
            "\n<sub>Kept by EnvironmentSet `{}/{}`. `kubectl get environment {name} -n {}`</sub>\n",
            links.namespace, links.set, links.namespace
        );
    }
    out
}

/// The comment once the pull request's Environment was deleted while the
/// pull request stays open (it no longer matches the set's filters).
pub fn comment_removed(environment: &str, why: &str, links: &CommentLinks<'_>) -> String {
    format!(
        "{}\n### 🗑️ Preview environment: removed\n\nEnvironment `{environment}` (namespace `{}`) was deleted: {why}.\n",
        comment_marker(links.namespace, links.set),
        links.namespace
    )
}

/// Text safe in a markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: PullRequestState, reason: &str, message: &str) -> PullRequestStatus {
        PullRequestStatus {
            number: 42,
            head_sha: "abc1234def5678abc1234def5678abc1234def56".into(),
            branch: "feature/basket".into(),
            author: "alice".into(),
            environment: Some("shop-prs-pr-42".into()),
            state,
            reason: Some(reason.into()),
            message: Some(message.into()),
            ..PullRequestStatus::default()
        }
    }

    fn links() -> CommentLinks<'static> {
        CommentLinks {
            namespace: "previews",
            set: "shop-prs",
            url: Some("https://shop-42.preview.example.com"),
            health_check: Some("https://shop-42.preview.example.com/healthz"),
        }
    }

    #[test]
    fn a_ready_comment() {
        insta::assert_snapshot!(comment(
            &entry(
                PullRequestState::Ready,
                "Ready",
                "Environment ready, health check passed"
            ),
            &links()
        ));
    }

    #[test]
    fn a_queued_comment_without_links() {
        let mut e = entry(
            PullRequestState::Queued,
            "WaitingForSlot",
            "queued: 3 environments running, max 3",
        );
        e.environment = None;
        let links = CommentLinks {
            url: None,
            health_check: None,
            ..links()
        };
        insta::assert_snapshot!(comment(&e, &links));
    }

    #[test]
    fn a_failed_comment_keeps_the_table_intact() {
        insta::assert_snapshot!(comment(
            &entry(
                PullRequestState::Failed,
                "Stalled",
                "Environment failed: values | were\nwrong"
            ),
            &links()
        ));
    }

    #[test]
    fn a_removed_comment() {
        insta::assert_snapshot!(comment_removed(
            "shop-prs-pr-42",
            "the pull request no longer matches the set's filters: it carries the label 'no-preview' (excludeLabels)",
            &links()
        ));
    }

    #[test]
    fn the_marker_names_the_set() {
        let body = comment(&entry(PullRequestState::Ready, "Ready", "ok"), &links());
        assert!(body.starts_with("<!-- ephemeral.io/environmentset: previews/shop-prs -->\n"));
    }

    #[test]
    fn descriptions_fit_githubs_limit() {
        assert_eq!(description("short"), "short");
        let long = "é".repeat(200);
        let cut = description(&long);
        assert_eq!(cut.chars().count(), MAX_DESCRIPTION);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn the_commit_status_body_is_githubs() {
        let status = CommitStatus {
            sha: "abc".into(),
            state: CommitState::Pending,
            target_url: None,
            description: "Environment coming up".into(),
            context: "ephemeral/shop-prs".into(),
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({"state": "pending", "description": "Environment coming up", "context": "ephemeral/shop-prs"})
        );
    }
}
