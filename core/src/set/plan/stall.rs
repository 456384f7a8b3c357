//! The set's status when it cannot be planned at all: its credentials are
//! missing (a Secret or a key), or the GitHub client cannot be built from
//! them. Nothing is created, updated or deleted; everything GitHub said
//! before is kept as it was.

use jiff::Timestamp;

use super::record::condition;
use crate::set::EnvironmentSet;
use crate::set::api::EnvironmentSetStatus;

/// The status of a set that cannot be planned: `Ready` False and `Stalled`
/// True with `reason` and `message` (which names the fix); the pull
/// requests' entries, the last sync and the counts as they were.
pub fn stalled(
    set: &EnvironmentSet,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> EnvironmentSetStatus {
    let previous = set.status.clone().unwrap_or_default();
    let github = &set.spec.pull_requests.github;
    let conditions = ["Ready", "Stalled"]
        .into_iter()
        .map(|type_| {
            let status = if type_ == "Ready" { "False" } else { "True" };
            condition(
                &previous.conditions,
                type_,
                status,
                reason,
                message.to_owned(),
                now,
            )
        })
        .collect();
    EnvironmentSetStatus {
        conditions,
        observed_generation: set.metadata.generation,
        repository: Some(format!("{}/{}", github.owner, github.repo)),
        ..previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::set::api::{PullRequestState, PullRequestStatus};

    #[test]
    fn a_stalled_set_keeps_what_github_said_and_says_why() {
        let mut set: EnvironmentSet = serde_json::from_value(serde_json::json!({
            "apiVersion": "ephemeral.io/v1alpha1", "kind": "EnvironmentSet",
            "metadata": {"name": "shop-prs", "namespace": "previews", "generation": 3},
            "spec": {"pullRequests": {"github": {"owner": "acme", "repo": "shop",
                        "tokenSecretRef": {"name": "gh", "key": "token"}}},
                     "template": {"spec": {"apps": [{"name": "shop"}]}}}
        }))
        .unwrap();
        let entry = PullRequestStatus {
            number: 7,
            head_sha: "abc".into(),
            state: PullRequestState::Ready,
            ..PullRequestStatus::default()
        };
        set.status = Some(EnvironmentSetStatus {
            last_sync_time: Some("2026-12-01T09:00:00Z".into()),
            pull_requests: vec![entry.clone()],
            ..EnvironmentSetStatus::default()
        });
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let status = stalled(&set, "SecretNotFound", "Secret previews/gh not found", now);
        assert_eq!(status.pull_requests, vec![entry]);
        assert_eq!(
            status.last_sync_time.as_deref(),
            Some("2026-12-01T09:00:00Z")
        );
        assert_eq!(status.observed_generation, Some(3));
        let by_type = |t: &str| status.conditions.iter().find(|c| c.type_ == t).unwrap();
        assert_eq!(by_type("Ready").status, "False");
        assert_eq!(by_type("Stalled").status, "True");
        assert_eq!(by_type("Stalled").reason, "SecretNotFound");
        assert_eq!(by_type("Stalled").message, "Secret previews/gh not found");
    }
}
