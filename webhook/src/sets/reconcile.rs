// Over 400 lines of non-test code: the executor of the set's plan in the order it must run (observe, GET, re-plan, apply, delete, health checks, reports, status, Events); every decision is in core's plan.
//! The reconciler: one EnvironmentSet in; its credentials read, GitHub
//! asked, the [`plan`] made and executed (applies,
//! deletes, health checks, reports, Events), its status written. Every
//! decision is the plan's; this module only observes and executes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;

use ephemeral_core::api::Environment;
use ephemeral_core::set::EnvironmentSet;
use ephemeral_core::set::api::CommitState as SetCommitState;
use ephemeral_core::set::plan::{
    self, Fetched, HealthCheckResult, Listing, Observed, Plan, stalled,
};
use ephemeral_core::set::report::comment_marker;

use super::children::{Environments, SetChildren, SetEnvironments};
use super::clients::{Clients, SetKey};
use super::credentials;
use super::directory::Directory;
use super::health::{self, Checker};
use crate::backoff::{Backoff, Failures, random_unit};
use crate::clock::Clock;
use crate::engine;
use crate::github::receiver::SetRef;
use crate::github::{self, CommitState, CommitStatus, Repository};
use crate::metrics::Metrics;

/// Why a reconcile failed (it is retried with backoff). Nothing is deleted
/// after a failure that is not the plan's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// The set lacks a field every stored object has.
    #[error("EnvironmentSet has no {0}")]
    InvalidObject(&'static str),
    /// Some of the plan's applies, deletes or reports failed (the others
    /// were made and the status written).
    #[error("{failed} of the plan's calls failed, the first: {first}")]
    Incomplete {
        /// How many failed.
        failed: usize,
        /// The first failure.
        first: String,
    },
}

impl Error {
    /// A short, stable name for metrics: the Environment controller's kinds
    /// (`api`, `api_conflict`, `api_forbidden`, `api_not_found`, `transport`,
    /// `invalid_object`), and `incomplete`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Engine(e) => e.kind(),
            Error::InvalidObject(_) => "invalid_object",
            Error::Incomplete { .. } => "incomplete",
        }
    }
}

/// Timing of the set controller.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Longest wait for one GitHub request.
    pub github_timeout: Duration,
    /// Longest wait for a health check's answer.
    pub health_timeout: Duration,
    /// Retry interval of a stalled set (a Secret missing), so that it
    /// recovers once the Secret exists.
    pub stalled_retry: Duration,
    /// Backoff after failures.
    pub backoff: Backoff,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            github_timeout: Duration::from_secs(30),
            health_timeout: health::TIMEOUT,
            stalled_retry: Duration::from_secs(60),
            backoff: Backoff::default(),
        }
    }
}

/// What every reconcile of a set shares.
pub struct Context {
    /// The API client.
    pub client: kube::Client,
    /// Where "now" comes from.
    pub clock: Clock,
    /// Publishes Events.
    pub recorder: Recorder,
    /// Timing.
    pub settings: Settings,
    /// The sets' Environments as the controller's watch reports them.
    pub children: SetChildren,
    /// One GitHub client per set.
    pub clients: Clients,
    /// The receiver's view of the sets.
    pub directory: Arc<Directory>,
    /// Reconcile metrics.
    pub metrics: Arc<Metrics>,
    checker: Checker,
    health: Mutex<HashMap<SetKey, Vec<HealthCheckResult>>>,
    failures: Failures<SetKey>,
}

impl Context {
    /// A context for reconciles; fails only when no HTTP client can be made.
    pub fn new(
        client: kube::Client,
        clock: Clock,
        recorder: Recorder,
        settings: Settings,
        directory: Arc<Directory>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, github::Error> {
        Ok(Context {
            checker: Checker::new(settings.health_timeout)?,
            client,
            clock,
            recorder,
            settings,
            children: SetChildren::default(),
            clients: Clients::default(),
            directory,
            metrics,
            health: Mutex::default(),
            failures: Failures::default(),
        })
    }

    /// Forgets everything kept for a set that is gone: its GitHub client,
    /// its pending health results, its place in the receiver's directory.
    pub fn forget(&self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        self.clients.forget(&key);
        self.health_results().remove(&key);
        self.failures.succeed(&key);
        self.directory.forget(&SetRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
    }

    fn health_results(&self) -> std::sync::MutexGuard<'_, HashMap<SetKey, Vec<HealthCheckResult>>> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn key(set: &EnvironmentSet) -> SetKey {
    (set.namespace().unwrap_or_default(), set.name_any())
}

/// Reconciles one EnvironmentSet (the kube-runtime reconciler).
pub async fn reconcile(set: Arc<EnvironmentSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile_inner(&set, &ctx).await;
    ctx.metrics.sets.record(
        started.elapsed().as_secs_f64(),
        result.as_ref().err().map(Error::kind),
    );
    if result.is_ok() {
        ctx.failures.succeed(&key(&set));
    }
    result
}

/// After a failure: retry with per-set exponential backoff and jitter.
pub fn error_policy(set: Arc<EnvironmentSet>, error: &Error, ctx: Arc<Context>) -> Action {
    let attempt = ctx.failures.fail(key(&set));
    let delay = ctx.settings.backoff.delay(attempt, random_unit());
    tracing::warn!(
        namespace = set.namespace().unwrap_or_default(),
        environmentset = set.name_any(),
        %error,
        attempt,
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// The events of one reconcile, published at its end.
struct Notes(Vec<(bool, String, String)>);

impl Notes {
    fn warn(&mut self, reason: &str, message: String) {
        self.0.push((true, reason.to_owned(), message));
    }
}

async fn publish(ctx: &Context, reference: &ObjectReference, notes: Notes) {
    for (warning, reason, mut note) in notes.0 {
        if note.len() > 1000 {
            let mut cut = 997;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
            note.push_str("...");
        }
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason,
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(error) = ctx.recorder.publish(&event, reference).await {
            tracing::warn!(%error, reason = event.reason, "cannot publish an Event");
        }
    }
}

fn to_std(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// The set cannot be planned: status Stalled (written when it changed,
/// with an Event then), its client dropped, nothing applied or deleted.
async fn stall(
    set: &EnvironmentSet,
    ctx: &Context,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Result<Action, Error> {
    ctx.clients.forget(&key(set));
    let status = stalled(set, reason, message, now);
    if set.status.as_ref() != Some(&status) {
        engine::api::write_status(&ctx.client, set, &status).await?;
        let mut notes = Notes(Vec::new());
        notes.warn(reason, message.to_owned());
        publish(ctx, &set.object_ref(&()), notes).await;
    }
    Ok(Action::requeue(ctx.settings.stalled_retry))
}

async fn reconcile_inner(set: &EnvironmentSet, ctx: &Context) -> Result<Action, Error> {
    let now = ctx.clock.now();
    let key = key(set);
    let (namespace, name) = key.clone();
    let set_uid = set.uid().ok_or(Error::InvalidObject("uid"))?;
    let source = &set.spec.pull_requests.github;

    // The credentials, the repository and the client.
    let credentials = match credentials::github(&ctx.client, set).await? {
        Ok(credentials) => credentials,
        Err(missing) => return stall(set, ctx, missing.reason, &missing.message, now).await,
    };
    let repo = match Repository::of(source) {
        Ok(repo) => repo,
        Err(e) => return stall(set, ctx, "InvalidRepository", &e.to_string(), now).await,
    };
    let webhook_secret = credentials::webhook(&ctx.client, set).await?;
    ctx.directory.record(
        SetRef {
            namespace: namespace.clone(),
            name: name.clone(),
        },
        repo.clone(),
        webhook_secret,
    );
    let github = match ctx.clients.get(
        &key,
        source,
        credentials,
        ctx.settings.github_timeout,
        ctx.clock,
    ) {
        Ok(client) => client,
        Err(e) => return stall(set, ctx, "InvalidCredentials", &e.to_string(), now).await,
    };

    // Observe: GitHub's list, the set's Environments, the health results.
    let listing = match github.blocked_until() {
        Some(_) => Listing::NotFetched,
        None => match github.list_open_pull_requests(&repo).await {
            Ok(pulls) => Listing::Listed(pulls),
            Err(e) => Listing::Failed(e.to_string()),
        },
    };
    let observed =
        engine::api::observe::<SetEnvironments>(&ctx.client, &ctx.children, &namespace, &name)
            .await?;
    let environments: Vec<Environment> = observed
        .children
        .iter()
        .filter_map(|c| c.facts.as_deref().cloned())
        .collect();
    let health = ctx.health_results().get(&key).cloned().unwrap_or_default();
    let mut fetched = BTreeMap::new();
    let observe = |fetched: &BTreeMap<u64, Fetched>| {
        plan::plan(&Observed {
            set,
            listing: &listing,
            environments: &environments,
            fetched,
            health: &health,
            now,
        })
    };
    let mut plan = observe(&fetched);
    if !plan.fetch.is_empty() {
        for &number in &plan.fetch {
            let answer = match github.get_pull_request(&repo, number).await {
                Ok(pr) => Fetched::Found(Box::new(pr)),
                Err(e) => Fetched::Failed(e.to_string()),
            };
            fetched.insert(number, answer);
        }
        plan = observe(&fetched);
    }

    // Execute.
    let mut notes = Notes(Vec::new());
    let mut failures: Vec<String> = Vec::new();
    apply(
        ctx,
        &plan,
        &observed,
        &namespace,
        &set_uid,
        &mut notes,
        &mut failures,
    )
    .await?;
    for delete in &plan.delete {
        let child = observed
            .children
            .iter()
            .find(|c| c.name() == delete.name && c.uid.as_deref() == Some(delete.uid.as_str()));
        let Some(child) = child else { continue };
        if let Err(e) = engine::api::prune::<SetEnvironments>(&ctx.client, &namespace, child).await
        {
            notes.warn("DeleteFailed", e.to_string());
            failures.push(e.to_string());
        }
    }
    let checked = !plan.health_checks.is_empty();
    if checked {
        let results = futures::future::join_all(
            plan.health_checks
                .iter()
                .map(|due| ctx.checker.run(due, now)),
        )
        .await;
        ctx.health_results()
            .entry(key.clone())
            .or_default()
            .extend(results);
    }
    report(set, &github, &repo, &mut plan, &mut notes).await;

    // The status (only when it changed), then the Events.
    let mut status = plan.status.clone();
    if let Some(limit) = github.rate_limit() {
        status.rate_limit_remaining = i64::try_from(limit.remaining).ok();
    }
    if set.status.as_ref() != Some(&status) {
        engine::api::write_status(&ctx.client, set, &status).await?;
    }
    // The results went into this status; those run now go into the next.
    if !health.is_empty()
        && let Some(results) = ctx.health_results().get_mut(&key)
    {
        results.drain(..health.len().min(results.len()));
    }
    for event in &plan.events {
        notes.0.push((
            event.warning,
            event.reason.to_owned(),
            event.message.clone(),
        ));
    }
    publish(ctx, &set.object_ref(&()), notes).await;

    if let Some(first) = failures.first() {
        return Err(Error::Incomplete {
            failed: failures.len(),
            first: first.clone(),
        });
    }
    let mut after = to_std(plan.requeue_after);
    if let Some(until) = github.blocked_until() {
        after = after.min(to_std(until.duration_since(now)) + Duration::from_secs(1));
    }
    if checked {
        // Their results belong in the status soon.
        after = after.min(Duration::from_secs(1));
    }
    Ok(Action::requeue(after))
}

/// The plan's applies: a create first makes sure no Environment of that
/// name exists that the set does not control; an update carries the uid
/// the plan saw as a precondition (`metadata.uid` in the apply body).
async fn apply(
    ctx: &Context,
    plan: &Plan,
    observed: &engine::api::Observed<SetEnvironments>,
    namespace: &str,
    set_uid: &str,
    notes: &mut Notes,
    failures: &mut Vec<String>,
) -> Result<(), Error> {
    for a in &plan.apply {
        let name = a.environment.name_any();
        let seen = observed.children.iter().any(|c| c.name() == name);
        if a.uid.is_none()
            && !seen
            && engine::api::foreign(&ctx.client, Environments, namespace, &name, set_uid).await?
        {
            notes.warn(
                "NameTaken",
                format!("an Environment named {name} exists that the set does not control; rename or delete it"),
            );
            continue;
        }
        let mut body = match serde_json::to_value(&a.environment) {
            Ok(body) => body,
            Err(e) => {
                failures.push(format!("Environment {name}: {e}"));
                continue;
            }
        };
        if let Some(uid) = &a.uid {
            body["metadata"]["uid"] = json!(uid);
        }
        if let Err(e) = engine::api::apply::<SetEnvironments>(
            &ctx.client,
            Environments,
            namespace,
            &name,
            &body,
        )
        .await
        {
            notes.warn("ApplyFailed", e.to_string());
            failures.push(e.to_string());
        }
    }
    Ok(())
}

/// The plan's commit statuses and comments; a failed one goes back into
/// the status as not reported ([`Plan::report_failed`]), so the next plan
/// reports it again.
async fn report(
    set: &EnvironmentSet,
    github: &github::Client,
    repo: &Repository,
    plan: &mut Plan,
    notes: &mut Notes,
) {
    let marker = comment_marker(&set.namespace().unwrap_or_default(), &set.name_any());
    for r in plan.reports.clone() {
        let mut failed = None;
        if let Some(cs) = &r.commit_status {
            let status = CommitStatus {
                state: match cs.state {
                    SetCommitState::Pending => CommitState::Pending,
                    SetCommitState::Success => CommitState::Success,
                    SetCommitState::Failure => CommitState::Failure,
                },
                target_url: cs.target_url.clone(),
                description: Some(cs.description.clone()),
                context: cs.context.clone(),
            };
            if let Err(e) = github.create_commit_status(repo, &cs.sha, &status).await {
                failed = Some(format!("commit status of pull request #{}: {e}", r.number));
            }
        }
        if let Some(body) = &r.comment {
            let text = body
                .strip_prefix(marker.as_str())
                .map(|t| t.strip_prefix('\n').unwrap_or(t))
                .unwrap_or(body);
            if let Err(e) = github.upsert_comment(repo, r.number, &marker, text).await {
                failed.get_or_insert(format!("comment on pull request #{}: {e}", r.number));
            }
        }
        if let Some(why) = failed {
            plan.report_failed(r.number, set.status.as_ref());
            // Reported again by the next plan (at the latest after the
            // interval); GitHub failing is no reason to back off the set.
            notes.warn("ReportFailed", why);
        }
    }
}
