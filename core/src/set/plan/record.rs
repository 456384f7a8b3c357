//! The plan's bookkeeping: each pull request's status entry (what GitHub
//! says now, carried over from the last status), the reports and Events its
//! changes deserve, the deletes, and the set's status around them.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;

use super::{Delete, DeleteReason, Event, HealthCheckDue, Listing, Observed, Ours, Plan, Report};
use crate::api::Environment;
use crate::lease::whole_seconds;
use crate::set::SET_GENERATION_ANNOTATION;
use crate::set::api::{
    EnvironmentSetStatus, HealthCheckStatus, PullRequestState, PullRequestStatus, ReportedStatus,
};
use crate::set::generate::{self, PullRequestOf};
use crate::set::github::PullRequest;
use crate::set::report::{self, CommentLinks, CommitStatus};
use crate::set::state::{self, Assessment, Check, Known, reasons};
use crate::set::vars::{Variables, short_sha};

/// A time as the status writes it: RFC 3339 in UTC, whole seconds, `Z`.
pub(super) fn rfc3339(t: Timestamp) -> String {
    whole_seconds(t).to_string()
}

/// The `ephemeral.io/set-generation` annotation as a number.
pub(super) fn generation_of(env: &Environment) -> Option<i64> {
    env.annotations()
        .get(SET_GENERATION_ANNOTATION)
        .and_then(|g| g.parse().ok())
}

pub(super) fn invalid(e: &generate::GenerateError) -> Assessment {
    Assessment::new(
        PullRequestState::Failed,
        reasons::INVALID_ENVIRONMENT,
        e.to_string(),
    )
}

/// What every entry is made with.
pub(super) struct Cx<'a> {
    pub(super) o: &'a Observed<'a>,
    pub(super) set_name: &'a str,
    pub(super) namespace: &'a str,
    pub(super) previous: &'a BTreeMap<u64, &'a PullRequestStatus>,
    pub(super) health: &'a BTreeMap<u64, HealthCheckStatus>,
}

impl Cx<'_> {
    /// A status entry from what GitHub says now, carrying over what the
    /// last status knew of the same head commit.
    pub(super) fn entry_of(&self, pr: &PullRequest) -> PullRequestStatus {
        let entry = PullRequestStatus {
            number: pr.number,
            head_sha: pr.head.sha.clone(),
            branch: pr.head.branch.clone(),
            author: pr.user.login.clone(),
            ..PullRequestStatus::default()
        };
        self.carry(entry)
    }

    /// A status entry from the last status (or the Environment's metadata)
    /// when GitHub said nothing new.
    pub(super) fn entry_remembered(&self, number: u64, env: &Environment) -> PullRequestStatus {
        let entry = match self.previous.get(&number) {
            Some(prev) => PullRequestStatus {
                number,
                head_sha: prev.head_sha.clone(),
                branch: prev.branch.clone(),
                author: prev.author.clone(),
                ..PullRequestStatus::default()
            },
            None => {
                let of = PullRequestOf::read(&env.metadata);
                PullRequestStatus {
                    number,
                    head_sha: of.as_ref().map(|m| m.head_sha).unwrap_or_default().into(),
                    branch: of.as_ref().map(|m| m.branch).unwrap_or_default().into(),
                    ..PullRequestStatus::default()
                }
            }
        };
        self.carry(entry)
    }

    /// What the last status knew of this head commit: when it became Ready,
    /// the last health check (a newer one from the controller wins), what
    /// was reported.
    pub(super) fn carry(&self, mut entry: PullRequestStatus) -> PullRequestStatus {
        let prev = self.previous.get(&entry.number);
        let same = |sha: &str| sha == entry.head_sha;
        entry.ready_since = prev
            .filter(|p| same(&p.head_sha))
            .and_then(|p| p.ready_since.clone());
        entry.health_check = self
            .health
            .get(&entry.number)
            .filter(|h| same(&h.head_sha))
            .or_else(|| {
                prev.and_then(|p| p.health_check.as_ref())
                    .filter(|h| same(&h.head_sha))
            })
            .cloned();
        entry.commit_status = prev.and_then(|p| p.commit_status.clone());
        entry
    }

    /// Deletes a pull request's Environment (once: not again while it is
    /// being deleted), with an Event, and a last comment when the pull
    /// request is still open.
    pub(super) fn delete(&self, p: &mut Plan, env: &Ours<'_>, number: u64, reason: DeleteReason) {
        if env.env.metadata.deletion_timestamp.is_some() {
            return;
        }
        let name = env.env.name_any();
        let why = match &reason {
            DeleteReason::Merged => format!("pull request #{number} was merged"),
            DeleteReason::Closed => format!("pull request #{number} was closed"),
            DeleteReason::Excluded(e) => {
                format!("pull request #{number} no longer matches the filters: {e}")
            }
        };
        p.events.push(Event {
            warning: false,
            reason: "Deleted",
            message: format!("Environment {name} deleted: {why}"),
        });
        if let DeleteReason::Excluded(exclusion) = &reason
            && self.o.set.spec.report.as_ref().is_some_and(|r| r.comment)
        {
            let why = format!("the pull request no longer matches the set's filters: {exclusion}");
            p.reports.push(Report {
                number,
                commit_status: None,
                comment: Some(report::comment_removed(
                    &name,
                    &why,
                    &self.links(None, None),
                )),
            });
        }
        p.delete.push(Delete {
            name,
            uid: env.uid.clone(),
            number,
            reason,
        });
    }

    pub(super) fn assess(&self, env: &Environment, entry: &PullRequestStatus) -> Assessment {
        state::assess(
            env,
            &Known {
                head_sha: &entry.head_sha,
                branch: &entry.branch,
                health_check: self.o.set.spec.health_check.as_ref(),
                last_check: entry.health_check.as_ref(),
                ready_since: entry.ready_since.as_deref().and_then(|t| t.parse().ok()),
                now: self.o.now,
            },
        )
    }

    pub(super) fn variables(&self, entry: &PullRequestStatus) -> Variables {
        Variables::of(&PullRequest {
            number: entry.number,
            user: crate::set::github::User {
                login: entry.author.clone(),
            },
            head: crate::set::github::Branch {
                branch: entry.branch.clone(),
                sha: entry.head_sha.clone(),
                repo: None,
            },
            ..PullRequest::default()
        })
    }

    pub(super) fn links<'s>(
        &'s self,
        url: Option<&'s str>,
        health: Option<&'s str>,
    ) -> CommentLinks<'s> {
        CommentLinks {
            namespace: self.namespace,
            set: self.set_name,
            url,
            health_check: health,
        }
    }

    /// Records the entry; asks for a report when what would be reported
    /// changed, a health check when one is due; an Event when the state changed.
    pub(super) fn record(
        &self,
        p: &mut Plan,
        checks_at: &mut Vec<Timestamp>,
        mut entry: PullRequestStatus,
        a: Assessment,
        entries: &mut Vec<PullRequestStatus>,
    ) {
        let set = self.o.set;
        let number = entry.number;
        let vars = self.variables(&entry);
        let health_url = set.spec.health_check.as_ref().map(|h| vars.replace(&h.url));
        match (a.check, &health_url) {
            (Check::Due, Some(url)) => p.health_checks.push(HealthCheckDue {
                number,
                head_sha: entry.head_sha.clone(),
                url: url.clone(),
                expected_status: set
                    .spec
                    .health_check
                    .as_ref()
                    .and_then(|h| h.expected_status)
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(state::DEFAULT_EXPECTED_STATUS),
            }),
            (Check::At(t), _) => checks_at.push(t),
            _ => {}
        }
        let changed = self
            .previous
            .get(&number)
            .is_none_or(|prev| prev.state != a.state || prev.reason.as_deref() != Some(a.reason));
        if changed {
            p.events.push(Event {
                warning: a.state == PullRequestState::Failed,
                reason: match a.state {
                    PullRequestState::Queued => "Queued",
                    PullRequestState::Progressing => "Progressing",
                    PullRequestState::Ready => "Ready",
                    PullRequestState::Failed => "Failed",
                },
                message: format!(
                    "pull request #{number} ({}): {}",
                    short_sha(&entry.head_sha),
                    a.message
                ),
            });
        }
        entry.state = a.state;
        entry.reason = Some(a.reason.into());
        entry.message = Some(a.message.clone());
        entry.ready_since = a.ready_since.map(rfc3339);

        let report = set.spec.report.as_ref();
        let wants_status = report.and_then(|r| r.commit_status.as_ref());
        let wants_comment = report.is_some_and(|r| r.comment);
        if wants_status.is_some() || wants_comment {
            let reported = ReportedStatus {
                head_sha: entry.head_sha.clone(),
                state: a.commit_state(),
                description: report::description(&a.message),
            };
            if entry.commit_status.as_ref() != Some(&reported) {
                let url = wants_status
                    .and_then(|c| c.target_url.as_deref())
                    .map(|u| vars.replace(u));
                let commit_status = wants_status.map(|c| CommitStatus {
                    sha: entry.head_sha.clone(),
                    state: reported.state,
                    target_url: url.clone(),
                    description: reported.description.clone(),
                    context: c
                        .context
                        .clone()
                        .unwrap_or_else(|| format!("ephemeral/{}", self.set_name)),
                });
                entry.commit_status = Some(reported);
                let comment = wants_comment.then(|| {
                    report::comment(&entry, &self.links(url.as_deref(), health_url.as_deref()))
                });
                p.reports.push(Report {
                    number,
                    commit_status,
                    comment,
                });
            }
        }
        entries.push(entry);
    }

    /// The set's status around the entries.
    pub(super) fn status(
        &self,
        o: &Observed<'_>,
        entries: &[PullRequestStatus],
        p: &Plan,
        controlled: usize,
    ) -> EnvironmentSetStatus {
        let set = o.set;
        let previous = set.status.clone().unwrap_or_default();
        let github = &set.spec.pull_requests.github;
        let ready = entries
            .iter()
            .filter(|e| e.environment.is_some() && e.state == PullRequestState::Ready)
            .count();
        let (status, reason, message, synced) = match o.listing {
            Listing::Listed(_) => (
                "True",
                "Synced",
                format!(
                    "{} pull requests match: {controlled} Environments, {} queued",
                    entries.len(),
                    p.queue.len()
                ),
                true,
            ),
            Listing::Failed(why) => (
                "False",
                "ListFailed",
                format!("listing the open pull requests failed: {why}; nothing is deleted"),
                false,
            ),
            Listing::NotFetched => (
                "Unknown",
                "NotListed",
                "the open pull requests were not listed yet".into(),
                false,
            ),
        };
        let mut conditions = Vec::new();
        let keep_ready = matches!(o.listing, Listing::NotFetched)
            .then(|| previous.conditions.iter().find(|c| c.type_ == "Ready"))
            .flatten();
        conditions.push(match keep_ready {
            Some(c) => c.clone(),
            None => condition(
                &previous.conditions,
                "Ready",
                status,
                reason,
                message,
                o.now,
            ),
        });
        let busy = !p.fetch.is_empty()
            || !p.apply.is_empty()
            || !p.delete.is_empty()
            || entries
                .iter()
                .any(|e| e.state == PullRequestState::Progressing);
        if busy {
            conditions.push(condition(
                &previous.conditions,
                "Reconciling",
                "True",
                "Progressing",
                "pull requests' Environments are being created, updated, deleted or checked".into(),
                o.now,
            ));
        }
        EnvironmentSetStatus {
            conditions,
            observed_generation: set.metadata.generation,
            repository: Some(format!("{}/{}", github.owner, github.repo)),
            last_sync_time: if synced {
                Some(rfc3339(o.now))
            } else {
                previous.last_sync_time
            },
            rate_limit_remaining: previous.rate_limit_remaining,
            ready_environments: Some(format!("{ready}/{controlled}")),
            queued: Some(p.queue.len() as u32),
            pull_requests: Vec::new(),
        }
    }
}

/// A condition, keeping its last transition time when its status is unchanged.
fn condition(
    previous: &[Condition],
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> Condition {
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: since,
        observed_generation: None,
    }
}
