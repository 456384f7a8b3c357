// Over 400 lines of non-test code: one pure planning function and the helpers it reads in order (its bookkeeping is already in plan/record.rs); splitting further would scatter one decision.
//! The set's decisions, pure: from what the controller observed (the set,
//! the listing of open pull requests, the namespace's Environments, the
//! confirming GETs, the health checks it ran, the time) to a [`Plan`] it
//! executes: Environments to apply and delete, pull requests to GET, health
//! checks to run, reports, Events and the set's status. The rules are in
//! the [module docs](super).
//!
//! The safety rules are decided here, top to bottom, in [`plan`]; the
//! bookkeeping around them (status entries, reports, Events, the set's
//! status) is in `record`. About 500 lines of non-test code: a third are
//! the plan's input and output types, kept beside the one function that
//! fills them so the rules read in one place.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use kube::{Resource, ResourceExt};

use super::api::{EnvironmentSetStatus, HealthCheckStatus, PullRequestState, PullRequestStatus};
use super::filter::{self, Exclusion};
use super::generate::{self, PullRequestOf};
use super::github::PullRequest;
use super::report::CommitStatus;
use super::state::{Assessment, reasons};
use super::vars::short_sha;
use super::{EnvironmentSet, SET_LABEL};
use crate::api::Environment;
use crate::lease::parse_go_duration;

/// How often GitHub is polled when the set says nothing (`interval`).
pub const DEFAULT_INTERVAL: SignedDuration = SignedDuration::from_mins(5);

/// What listing the open pull requests gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Listing {
    /// GitHub answered the whole list (every page).
    Listed(Vec<PullRequest>),
    /// No whole list: an error, a timeout, a rate limit, a page that did
    /// not parse; why, in words.
    Failed(String),
    /// Not asked this time (e.g. waiting out a rate limit).
    NotFetched,
}

/// What the confirming GET of one pull request gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Fetched {
    /// GitHub answered with the pull request.
    Found(Box<PullRequest>),
    /// Anything else, `404` included (a token that lost access looks the
    /// same as a pull request that is gone); why, in words.
    Failed(String),
}

/// A health check the controller ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckResult {
    /// The pull request.
    pub number: u64,
    /// The head commit its Environment ran.
    pub head_sha: String,
    /// When it ran.
    pub at: Timestamp,
    /// `Ok` when the URL answered the expected status, else what happened.
    pub outcome: Result<(), String>,
}

/// Everything the plan is made from.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// The set, with its last status.
    pub set: &'a EnvironmentSet,
    /// The listing of open pull requests.
    pub listing: &'a Listing,
    /// The Environments of the set's namespace (at least those labelled
    /// `ephemeral.io/set=<set>` and those named `<set>-pr-*`).
    pub environments: &'a [Environment],
    /// The confirming GETs made for [`Plan::fetch`] of an earlier plan.
    pub fetched: &'a BTreeMap<u64, Fetched>,
    /// Health checks run since the status was last written.
    pub health: &'a [HealthCheckResult],
    /// Now.
    pub now: Timestamp,
}

/// What to do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Environments to create or update.
    pub apply: Vec<Apply>,
    /// Pull requests to GET before anything is decided about their
    /// Environments; then plan again with the answers in [`Observed::fetched`].
    pub fetch: Vec<u64>,
    /// Environments to delete.
    pub delete: Vec<Delete>,
    /// Matching pull requests waiting for a slot, first served first.
    pub queue: Vec<u64>,
    /// Health checks to run now.
    pub health_checks: Vec<HealthCheckDue>,
    /// Commit statuses and comments to write.
    pub reports: Vec<Report>,
    /// Events on the set.
    pub events: Vec<Event>,
    /// The set's new status (`rateLimitRemaining` as it was: the client knows it).
    pub status: EnvironmentSetStatus,
    /// Plan again after this long, at the latest.
    pub requeue_after: SignedDuration,
}

/// An Environment to create or update.
#[derive(Clone, Debug, PartialEq)]
pub struct Apply {
    /// The Environment, as the set generates it.
    pub environment: Environment,
    /// None: create it (refused when the name exists). Some: update the
    /// Environment of this uid (a precondition).
    pub uid: Option<String>,
}

/// An Environment to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete {
    /// Its name.
    pub name: String,
    /// Its uid: delete with this precondition.
    pub uid: String,
    /// Its pull request.
    pub number: u64,
    /// Why.
    pub reason: DeleteReason,
}

/// Why an Environment is deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// Its pull request's own GET says it was merged.
    Merged,
    /// Its pull request's own GET says it was closed without merging.
    Closed,
    /// Its pull request no longer passes the filters.
    Excluded(Exclusion),
}

/// A health check to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckDue {
    /// The pull request.
    pub number: u64,
    /// The head commit its Environment runs.
    pub head_sha: String,
    /// The URL, variables replaced.
    pub url: String,
    /// The status code that passes.
    pub expected_status: u16,
}

/// What to tell one pull request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The pull request.
    pub number: u64,
    /// The commit status to set, when `report.commitStatus` is configured.
    pub commit_status: Option<CommitStatus>,
    /// The comment's whole body, when `report.comment` is true: create or
    /// edit the comment starting with [`comment_marker`](super::report::comment_marker).
    pub comment: Option<String>,
}

/// An Event on the set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Warning, or not.
    pub warning: bool,
    /// One word.
    pub reason: &'static str,
    /// What happened.
    pub message: String,
}

impl Plan {
    /// A report failed: the pull request's status entry goes back to what
    /// was reported before, so the next plan reports again.
    pub fn report_failed(&mut self, number: u64, previous: Option<&EnvironmentSetStatus>) {
        let before = previous
            .and_then(|s| s.pull_requests.iter().find(|p| p.number == number))
            .and_then(|p| p.commit_status.clone());
        if let Some(entry) = self
            .status
            .pull_requests
            .iter_mut()
            .find(|p| p.number == number)
        {
            entry.commit_status = before;
        }
    }
}

/// One of the set's Environments, as the plan sees it.
struct Ours<'a> {
    env: &'a Environment,
    uid: String,
}

mod record;
mod stall;
use record::{Cx, generation_of, invalid, rfc3339};
pub use stall::stalled;

/// The set's decisions; see the [module docs](super) for the rules.
pub fn plan(o: &Observed<'_>) -> Plan {
    let set = o.set;
    let set_name = set.name_any();
    let namespace = set.namespace().unwrap_or_default();
    let filters = &set.spec.pull_requests;
    let previous: BTreeMap<u64, &PullRequestStatus> = set
        .status
        .iter()
        .flat_map(|s| &s.pull_requests)
        .map(|p| (p.number, p))
        .collect();
    let mut p = Plan::default();

    // The set's Environments: controlled ones by pull request; the names of
    // the others, which are never touched.
    let set_uid = set.meta().uid.as_deref();
    let prefix = format!("{set_name}-pr-");
    let mut ours: BTreeMap<u64, Ours<'_>> = BTreeMap::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut controlled = 0usize;
    for env in o.environments {
        let name = env.name_any();
        let labelled = env.labels().get(SET_LABEL) == Some(&set_name);
        if env.namespace().unwrap_or_default() != namespace
            || !(labelled || name.starts_with(&prefix))
        {
            continue;
        }
        let controller = env
            .owner_references()
            .iter()
            .find(|r| r.controller == Some(true));
        let ours_by_uid = matches!((controller, set_uid), (Some(r), Some(uid)) if r.uid == uid);
        let uid = env.meta().uid.clone();
        match (ours_by_uid, uid) {
            (true, Some(uid)) => {
                controlled += 1;
                let number = PullRequestOf::read(&env.metadata).and_then(|pr| pr.number());
                match number {
                    Some(n) if name == generate::environment_name(&set_name, n) => {
                        ours.insert(n, Ours { env, uid });
                    }
                    _ => p.events.push(Event {
                        warning: true,
                        reason: "UnknownEnvironment",
                        message: format!(
                            "Environment {name} is controlled by the set but carries no pull request of its name; it is left alone"
                        ),
                    }),
                }
            }
            _ => {
                taken.insert(name);
            }
        }
    }

    // What is known of each pull request: the listing, else its GET.
    let listed: Option<BTreeMap<u64, &PullRequest>> = match o.listing {
        Listing::Listed(prs) => Some(prs.iter().map(|pr| (pr.number, pr)).collect()),
        Listing::Failed(why) => {
            p.events.push(Event {
                warning: true,
                reason: "ListFailed",
                message: format!(
                    "listing the open pull requests failed: {why}; no Environment is created, updated or deleted until a listing succeeds"
                ),
            });
            None
        }
        Listing::NotFetched => None,
    };

    let health: BTreeMap<u64, HealthCheckStatus> = o
        .health
        .iter()
        .map(|r| {
            (
                r.number,
                HealthCheckStatus {
                    head_sha: r.head_sha.clone(),
                    time: rfc3339(r.at),
                    passed: r.outcome.is_ok(),
                    message: r.outcome.clone().err(),
                },
            )
        })
        .collect();
    let cx = Cx {
        o,
        set_name: &set_name,
        namespace: &namespace,
        previous: &previous,
        health: &health,
    };
    let mut entries: Vec<PullRequestStatus> = Vec::new();
    let mut checks_at: Vec<Timestamp> = Vec::new();

    // Pull requests with an Environment.
    for (&number, env) in &ours {
        let current: Option<&PullRequest> = match &listed {
            None => None,
            Some(listed) => match listed.get(&number) {
                Some(pr) => Some(pr),
                None => match o.fetched.get(&number) {
                    None => {
                        p.fetch.push(number);
                        None
                    }
                    Some(Fetched::Failed(why)) => {
                        p.events.push(Event {
                            warning: true,
                            reason: "GetFailed",
                            message: format!(
                                "pull request #{number} is not in the list and its GET failed: {why}; Environment {} is kept",
                                env.env.name_any()
                            ),
                        });
                        None
                    }
                    Some(Fetched::Found(pr)) if pr.state == "closed" => {
                        let reason = if pr.merged_at.is_some() {
                            DeleteReason::Merged
                        } else {
                            DeleteReason::Closed
                        };
                        cx.delete(&mut p, env, number, reason);
                        continue;
                    }
                    Some(Fetched::Found(pr)) => Some(pr),
                },
            },
        };
        if let Some(pr) = current
            && let Err(exclusion) = filter::check(filters, pr)
        {
            cx.delete(&mut p, env, number, DeleteReason::Excluded(exclusion));
            continue;
        }
        // Kept. Updated when its commit or the set's template moved on.
        let mut assessment = None;
        let entry = match current {
            Some(pr) => {
                let made_for = PullRequestOf::read(&env.env.metadata).map(|m| m.head_sha);
                let pushed = made_for != Some(pr.head.sha.as_str());
                let changed = generation_of(env.env) != set.metadata.generation;
                if env.env.metadata.deletion_timestamp.is_none() && (pushed || changed) {
                    // The state comes from the Environment as observed: made
                    // for another commit it is `Updating`; after a change of
                    // the set only, it stays what it is until its status
                    // says otherwise.
                    match generate::environment(set, pr) {
                        Ok(environment) => {
                            p.events.push(Event {
                                warning: false,
                                reason: "Updated",
                                message: format!(
                                    "Environment {} updated for pull request #{number}: {}",
                                    env.env.name_any(),
                                    if pushed {
                                        format!("new head commit {}", short_sha(&pr.head.sha))
                                    } else {
                                        "the set changed".to_owned()
                                    }
                                ),
                            });
                            p.apply.push(Apply {
                                environment,
                                uid: Some(env.uid.clone()),
                            });
                        }
                        Err(e) => assessment = Some(invalid(&e)),
                    }
                }
                cx.entry_of(pr)
            }
            None => cx.entry_remembered(number, env.env),
        };
        let assessment = assessment.unwrap_or_else(|| cx.assess(env.env, &entry));
        let entry = PullRequestStatus {
            environment: Some(env.env.name_any()),
            ..entry
        };
        cx.record(&mut p, &mut checks_at, entry, assessment, &mut entries);
    }

    // Matching pull requests without one: free slots, oldest first.
    if let Some(listed) = &listed {
        let mut waiting: Vec<&PullRequest> = listed
            .values()
            .filter(|pr| !ours.contains_key(&pr.number))
            .filter(|pr| filter::check(filters, pr).is_ok())
            .copied()
            .collect();
        waiting.sort_by_key(|pr| {
            (
                pr.created_at
                    .parse::<Timestamp>()
                    .ok()
                    .unwrap_or(Timestamp::MAX),
                pr.number,
            )
        });
        let max = set
            .spec
            .max_environments
            .map(|m| usize::try_from(m).unwrap_or(0));
        let mut running = controlled;
        for pr in waiting {
            let name = generate::environment_name(&set_name, pr.number);
            let entry = cx.entry_of(pr);
            let assessment = if taken.contains(&name) {
                Assessment::new(
                    PullRequestState::Failed,
                    reasons::NAME_TAKEN,
                    format!(
                        "an Environment named {name} exists that the set does not control; rename or delete it"
                    ),
                )
            } else if max.is_some_and(|m| running >= m) {
                p.queue.push(pr.number);
                Assessment::new(
                    PullRequestState::Queued,
                    reasons::WAITING_FOR_SLOT,
                    format!(
                        "queued: {running} environments running, max {}",
                        max.unwrap_or_default()
                    ),
                )
            } else {
                match generate::environment(set, pr) {
                    Ok(environment) => {
                        running += 1;
                        p.events.push(Event {
                            warning: false,
                            reason: "Created",
                            message: format!(
                                "Environment {name} created for pull request #{} at {}",
                                pr.number,
                                short_sha(&pr.head.sha)
                            ),
                        });
                        p.apply.push(Apply {
                            environment,
                            uid: None,
                        });
                        Assessment::new(
                            PullRequestState::Progressing,
                            reasons::CREATING,
                            "Environment coming up".into(),
                        )
                    }
                    Err(e) => invalid(&e),
                }
            };
            let entry = PullRequestStatus {
                environment: (assessment.reason == reasons::CREATING).then_some(name),
                ..entry
            };
            cx.record(&mut p, &mut checks_at, entry, assessment, &mut entries);
        }
    } else {
        // Without a listing, the pull requests without an Environment stay
        // as they were (the queued stay queued; slots go out again, oldest
        // first, with the next listing).
        for prev in previous.values() {
            if ours.contains_key(&prev.number) {
                continue;
            }
            if prev.state == PullRequestState::Queued {
                p.queue.push(prev.number);
            }
            entries.push((*prev).clone());
        }
    }

    entries.sort_by_key(|e| e.number);
    p.status = cx.status(o, &entries, &p, controlled);
    p.status.pull_requests = entries;
    let interval = set
        .spec
        .interval
        .as_deref()
        .and_then(parse_go_duration)
        .unwrap_or(DEFAULT_INTERVAL);
    p.requeue_after = checks_at
        .iter()
        .map(|t| t.duration_since(o.now))
        .fold(interval, SignedDuration::min)
        .max(SignedDuration::ZERO);
    p
}

#[cfg(test)]
mod tests;
