//! What tests put into the fake GitHub and send to the receiver: pull
//! requests in GitHub's full JSON shape, `pull_request` deliveries and their
//! signatures.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

/// A pull request in GitHub's full JSON shape, built for a test.
#[derive(Clone, Debug)]
pub struct PullRequestFixture {
    /// Its number.
    pub number: u64,
    /// `open` or `closed`.
    pub state: String,
    /// Whether it was merged (then `state` is `closed`).
    pub merged: bool,
    /// Whether it is a draft.
    pub draft: bool,
    /// Who opened it.
    pub author: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// Its head branch.
    pub head_branch: String,
    /// Its head commit (40 hex digits).
    pub head_sha: String,
    /// `owner/repo` of the head; differs from the base's for a fork.
    pub head_repo: String,
    /// Its base branch.
    pub base_branch: String,
    /// `owner/repo` of the base.
    pub base_repo: String,
    /// When it was opened.
    pub created_at: Timestamp,
}

impl PullRequestFixture {
    /// An open, non-draft pull request `number` of `owner/repo` by `alice`
    /// from branch `pr-<number>` into `main`, with a head SHA derived from
    /// the number, opened `number` minutes after 2026-12-01T00:00:00Z.
    pub fn new(owner: &str, repo: &str, number: u64) -> Self {
        let full = format!("{owner}/{repo}");
        PullRequestFixture {
            number,
            state: "open".into(),
            merged: false,
            draft: false,
            author: "alice".into(),
            labels: Vec::new(),
            head_branch: format!("pr-{number}"),
            head_sha: format!("{:040x}", 0xabc0_0000_u64 + number),
            head_repo: full.clone(),
            base_branch: "main".into(),
            base_repo: full,
            created_at: "2026-12-01T00:00:00Z"
                .parse::<Timestamp>()
                .map(|t| t + SignedDuration::from_mins(number as i64))
                .unwrap_or_else(|_| Timestamp::now()),
        }
    }

    /// The JSON GitHub returns for it.
    pub fn json(&self) -> Value {
        let (owner, name) = self
            .base_repo
            .split_once('/')
            .unwrap_or((&self.base_repo, ""));
        let fork = self.head_repo != self.base_repo;
        let created = self.created_at.to_string();
        let repo = |full: &str, fork: bool| {
            let (o, n) = full.split_once('/').unwrap_or((full, ""));
            json!({"id": 1, "name": n, "full_name": full, "fork": fork, "private": false,
                   "owner": {"login": o, "id": 2, "type": "Organization"}})
        };
        json!({
            "url": format!("https://api.github.example/repos/{owner}/{name}/pulls/{}", self.number),
            "id": 100_000 + self.number,
            "number": self.number,
            "state": self.state,
            "locked": false,
            "title": format!("Change {}", self.number),
            "draft": self.draft,
            "html_url": format!("https://github.example/{owner}/{name}/pull/{}", self.number),
            "user": {"login": self.author, "id": 7, "type": if self.author.ends_with("[bot]") {"Bot"} else {"User"}},
            "labels": self.labels.iter().map(|l| json!({"id": 1, "name": l, "color": "ededed", "default": false})).collect::<Vec<_>>(),
            "head": {"label": format!("{}:{}", self.head_repo.split('/').next().unwrap_or_default(), self.head_branch),
                     "ref": self.head_branch, "sha": self.head_sha, "repo": repo(&self.head_repo, fork)},
            "base": {"label": format!("{owner}:{}", self.base_branch), "ref": self.base_branch,
                     "sha": "0".repeat(40), "repo": repo(&self.base_repo, false)},
            "merged_at": if self.merged { Value::String(created.clone()) } else { Value::Null },
            "closed_at": if self.state == "closed" { Value::String(created.clone()) } else { Value::Null },
            "created_at": created,
            "updated_at": created,
            "author_association": "MEMBER"
        })
    }
}

/// The payload GitHub delivers for a `pull_request` event (`X-GitHub-Event:
/// pull_request`): `action` (`opened`, `synchronize`, `closed`, …), the
/// pull request (e.g. [`PullRequestFixture::json`]) and its base repository.
pub fn pull_request_event(action: &str, pull_request: &Value) -> Value {
    let number = pull_request["number"].clone();
    let repository = pull_request["base"]["repo"].clone();
    json!({
        "action": action,
        "number": number,
        "pull_request": pull_request,
        "repository": repository,
        "sender": pull_request["user"].clone()
    })
}

/// `X-Hub-Signature-256` of `body` under `secret`: `sha256=` and the hex
/// HMAC-SHA256, as GitHub signs deliveries.
pub fn webhook_signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}
