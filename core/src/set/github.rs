//! A pull request as GitHub's REST API returns it, in the list
//! (`GET /repos/{owner}/{repo}/pulls`) and in a single GET: only the fields
//! this project reads; unknown fields are ignored, missing optional ones
//! default.

use serde::{Deserialize, Serialize};

/// One pull request, in GitHub's JSON shape.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PullRequest {
    /// The pull request's number in its repository.
    pub number: u64,
    /// `open` or `closed` (a merged pull request is `closed` with `merged_at` set).
    pub state: String,
    /// Whether it is a draft.
    #[serde(default)]
    pub draft: bool,
    /// Its title.
    #[serde(default)]
    pub title: String,
    /// Its page on GitHub.
    #[serde(default)]
    pub html_url: String,
    /// Who opened it.
    pub user: User,
    /// Its labels.
    #[serde(default)]
    pub labels: Vec<Label>,
    /// The branch with the changes.
    pub head: Branch,
    /// The branch it is to be merged into.
    pub base: Branch,
    /// When it was merged (RFC 3339), if it was.
    #[serde(default)]
    pub merged_at: Option<String>,
    /// When it was opened (RFC 3339).
    #[serde(default)]
    pub created_at: String,
    /// When it last changed (RFC 3339).
    #[serde(default)]
    pub updated_at: String,
}

/// A GitHub account.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    /// Its login, e.g. `alice` or `dependabot[bot]`.
    pub login: String,
}

/// A label on a pull request.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Label {
    /// The label's name.
    pub name: String,
}

/// One end of a pull request: a branch at a commit, in a repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Branch {
    /// The branch name (GitHub's `ref`), e.g. `feature/new-basket`.
    #[serde(rename = "ref")]
    pub branch: String,
    /// The commit SHA (40 hex digits).
    pub sha: String,
    /// The repository the branch lives in; `null` when a fork was deleted.
    #[serde(default)]
    pub repo: Option<Repository>,
}

/// A repository, as a pull request's branch names it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Repository {
    /// `owner/name`.
    pub full_name: String,
}

#[cfg(test)]
impl PullRequest {
    /// A test's open pull request `number` by `author` from `branch` at
    /// `sha` into `main`, head and base both in `acme/shop`.
    pub(crate) fn open(number: u64, author: &str, branch: &str, sha: &str) -> PullRequest {
        let repo = || {
            Some(Repository {
                full_name: "acme/shop".into(),
            })
        };
        PullRequest {
            number,
            state: "open".into(),
            user: User {
                login: author.into(),
            },
            head: Branch {
                branch: branch.into(),
                sha: sha.into(),
                repo: repo(),
            },
            base: Branch {
                branch: "main".into(),
                repo: repo(),
                ..Branch::default()
            },
            ..PullRequest::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_pull_request_of_githubs_list_response_and_ignores_the_rest() {
        let json = r#"[{
            "url": "https://api.github.com/repos/acme/shop/pulls/42", "id": 1, "number": 42,
            "state": "open", "locked": false, "title": "New basket", "draft": false,
            "html_url": "https://github.com/acme/shop/pull/42",
            "user": {"login": "alice", "id": 7, "type": "User"},
            "labels": [{"id": 1, "name": "preview", "color": "ededed"}],
            "head": {"label": "acme:feature/new-basket", "ref": "feature/new-basket",
                     "sha": "abc1234def5678abc1234def5678abc1234def56",
                     "repo": {"id": 9, "full_name": "acme/shop", "fork": false}},
            "base": {"label": "acme:main", "ref": "main",
                     "sha": "0000000000000000000000000000000000000000",
                     "repo": {"id": 9, "full_name": "acme/shop"}},
            "merged_at": null, "created_at": "2026-11-30T09:00:00Z", "updated_at": "2026-12-01T10:00:00Z"
        }]"#;
        let prs: Vec<PullRequest> = serde_json::from_str(json).unwrap();
        assert_eq!(prs.len(), 1);
        let pr = &prs[0];
        assert_eq!(pr.number, 42);
        assert_eq!(pr.user.login, "alice");
        assert_eq!(pr.labels[0].name, "preview");
        assert_eq!(pr.head.branch, "feature/new-basket");
        assert_eq!(pr.head.repo.as_ref().unwrap().full_name, "acme/shop");
        assert_eq!(pr.base.branch, "main");
        assert_eq!(pr.merged_at, None);
    }

    #[test]
    fn a_deleted_fork_has_no_head_repository() {
        let json = r#"{"number": 7, "state": "open", "user": {"login": "mallory"},
            "head": {"ref": "x", "sha": "1111111111111111111111111111111111111111", "repo": null},
            "base": {"ref": "main", "sha": "2222222222222222222222222222222222222222", "repo": {"full_name": "acme/shop"}}}"#;
        let pr: PullRequest = serde_json::from_str(json).unwrap();
        assert_eq!(pr.head.repo, None);
        assert!(!pr.draft);
        assert!(pr.labels.is_empty());
    }
}
