// Over 400 lines of non-test code: the list tables and the detail view of EnvironmentSets share the per-pull-request wording; splitting them would duplicate it.
//! What a person wants to know about EnvironmentSets: the sets at a glance,
//! where each pull request stands, and one set in detail. Pure: the sets,
//! their Environments and Events and the clock are inputs. The states come
//! from the set's status as its controller last wrote it
//! (`ephemeral_core::set::api`); one set's detail adds how its Environments
//! are now.

use std::fmt::Write as _;

use ephemeral_core::Environment;
use ephemeral_core::set::api::{
    CommitState, EnvironmentSetStatus, PullRequestSource, PullRequestState, PullRequestStatus,
};
use ephemeral_core::set::vars::short_sha;
use ephemeral_core::set::{EnvironmentSet, SET_LABEL};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;

use crate::events;
use crate::summary::{self, NONE};
use crate::table::{self, Paint, paint};
use crate::time::{self, Clock};

/// How to print the tables of sets.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Add a NAMESPACE column (with `-A`).
    pub namespaces: bool,
    /// Colour READY and STATE.
    pub colour: bool,
}

/// `Queued`, `Progressing`, `Ready` or `Failed`, as the status spells it.
pub fn state_name(state: PullRequestState) -> &'static str {
    match state {
        PullRequestState::Queued => "Queued",
        PullRequestState::Progressing => "Progressing",
        PullRequestState::Ready => "Ready",
        PullRequestState::Failed => "Failed",
    }
}

/// `pending`, `success` or `failure`, as GitHub spells it.
pub fn commit_state_name(state: CommitState) -> &'static str {
    match state {
        CommitState::Pending => "pending",
        CommitState::Success => "success",
        CommitState::Failure => "failure",
    }
}

/// `owner/repo` of the set's repository (the spec's: known before the
/// controller writes a status).
pub fn repository(set: &EnvironmentSet) -> String {
    let github = &set.spec.pull_requests.github;
    format!("{}/{}", github.owner, github.repo)
}

fn condition<'a>(set: &'a EnvironmentSet, type_: &str) -> Option<&'a Condition> {
    set.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

fn ready_cell(status: &str, colour: bool) -> String {
    match status {
        "True" => paint(status, Paint::Green, colour),
        "False" => paint(status, Paint::Red, colour),
        other => paint(other, Paint::Yellow, colour && other != NONE),
    }
}

fn state_cell(state: PullRequestState, colour: bool) -> String {
    let tint = match state {
        PullRequestState::Ready => Paint::Green,
        PullRequestState::Failed => Paint::Red,
        PullRequestState::Queued | PullRequestState::Progressing => Paint::Yellow,
    };
    paint(state_name(state), tint, colour)
}

/// `3m ago`-style age of an RFC 3339 time of the status; the text as is when
/// it does not parse.
fn ago(text: &str, clock: &Clock) -> String {
    match text.parse::<Timestamp>() {
        Ok(t) => format!("{} ago", time::age(clock.now.duration_since(t))),
        Err(_) => text.to_owned(),
    }
}

fn status_of(set: &EnvironmentSet) -> Option<&EnvironmentSetStatus> {
    set.status.as_ref()
}

/// The sets: `[NAMESPACE] NAME REPOSITORY ENVIRONMENTS QUEUED READY LAST SYNC AGE`.
/// ENVIRONMENTS is ready out of all; `-` before the controller reports.
pub fn sets_table(sets: &[EnvironmentSet], layout: Layout, clock: &Clock) -> String {
    let mut header = Vec::with_capacity(8);
    if layout.namespaces {
        header.push("NAMESPACE");
    }
    header.extend([
        "NAME",
        "REPOSITORY",
        "ENVIRONMENTS",
        "QUEUED",
        "READY",
        "LAST SYNC",
        "AGE",
    ]);
    let rows = sets
        .iter()
        .map(|set| {
            let status = status_of(set);
            let mut row = Vec::with_capacity(header.len());
            if layout.namespaces {
                row.push(set.namespace().unwrap_or_default());
            }
            let ready = condition(set, "Ready").map_or(NONE, |c| c.status.as_str());
            row.extend([
                set.name_any(),
                repository(set),
                status
                    .and_then(|s| s.ready_environments.clone())
                    .unwrap_or_else(|| NONE.to_owned()),
                status
                    .map(|s| s.queued.unwrap_or(0).to_string())
                    .unwrap_or_else(|| NONE.to_owned()),
                ready_cell(ready, layout.colour),
                status
                    .and_then(|s| s.last_sync_time.as_deref())
                    .map_or_else(|| NONE.to_owned(), |t| ago(t, clock)),
                set.creation_timestamp().map_or_else(
                    || NONE.to_owned(),
                    |t| time::age(clock.now.duration_since(t.0)),
                ),
            ]);
            row
        })
        .collect();
    table::render(&header, rows, true)
}

/// Every pull request of the sets, in the order of their statuses:
/// `[NAMESPACE] SET PR HEAD ENVIRONMENT STATE REASON`. Empty when no set
/// has one.
pub fn pull_requests_table(sets: &[EnvironmentSet], layout: Layout) -> String {
    let mut header = Vec::with_capacity(7);
    if layout.namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["SET", "PR", "HEAD", "ENVIRONMENT", "STATE", "REASON"]);
    let mut rows = Vec::new();
    for set in sets {
        for pr in status_of(set).iter().flat_map(|s| &s.pull_requests) {
            let mut row = Vec::with_capacity(header.len());
            if layout.namespaces {
                row.push(set.namespace().unwrap_or_default());
            }
            row.extend([
                set.name_any(),
                format!("#{}", pr.number),
                short_sha(&pr.head_sha).to_owned(),
                pr.environment.clone().unwrap_or_else(|| NONE.to_owned()),
                state_cell(pr.state, layout.colour),
                pr.reason.clone().unwrap_or_else(|| NONE.to_owned()),
            ]);
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    table::render(&header, rows, true)
}

/// The filters in words, e.g. `labels preview; not no-preview; into main;
/// no drafts; no forks; not by dependabot[bot]`.
pub fn filters(source: &PullRequestSource) -> String {
    let mut parts = Vec::new();
    if !source.labels.is_empty() {
        parts.push(format!("labelled {}", source.labels.join(" and ")));
    }
    if !source.exclude_labels.is_empty() {
        parts.push(format!(
            "not labelled {}",
            source.exclude_labels.join(" or ")
        ));
    }
    parts.push(if source.base_branches.is_empty() {
        "into any branch".to_owned()
    } else {
        format!("into {}", source.base_branches.join(" or "))
    });
    parts.push(
        if source.include_drafts {
            "drafts too"
        } else {
            "no drafts"
        }
        .to_owned(),
    );
    parts.push(
        if source.include_forks {
            "forks too"
        } else {
            "no forks"
        }
        .to_owned(),
    );
    if !source.exclude_authors.is_empty() {
        parts.push(format!("not by {}", source.exclude_authors.join(" or ")));
    }
    parts.join("; ")
}

fn field(s: &mut String, indent: &str, key: &str, value: &str) {
    let _ = writeln!(s, "{indent}{:<15} {value}", format!("{key}:"));
}

fn condition_text(c: &Condition) -> String {
    let mut text = c.status.clone();
    if !c.reason.is_empty() {
        let _ = write!(text, "  {}", c.reason);
    }
    if !c.message.is_empty() {
        let _ = write!(text, ": {}", c.message);
    }
    text
}

/// Everything `sets NAME` shows, gathered from the API.
#[derive(Clone, Debug)]
pub struct DescribedSet {
    /// The set.
    pub set: EnvironmentSet,
    /// The Environments labelled `ephemeral.io/set=<name>` in its namespace,
    /// or why they could not be listed.
    pub environments: Result<Vec<Environment>, String>,
    /// Recent Events about the set, oldest first, or why they could not be listed.
    pub events: Result<Vec<Event>, String>,
}

/// An Environment of the set as it is now: `apps 2/3 ready, Ready False`,
/// `being deleted`.
fn live(env: &Environment) -> String {
    if env.metadata.deletion_timestamp.is_some() {
        return "being deleted".to_owned();
    }
    format!(
        "apps {} ready, Ready {}",
        summary::ready_apps(env),
        summary::ready(env)
    )
}

/// The labelled Environments no pull request of the status names: being
/// deleted, or carrying the set's labels without being the set's.
fn others(s: &mut String, d: &DescribedSet, entries: &[PullRequestStatus]) {
    let selector = format!("{SET_LABEL}={}", d.set.name_any());
    let envs = match &d.environments {
        Ok(envs) => envs,
        Err(e) => {
            let _ = writeln!(
                s,
                "  <cannot list the Environments labelled {selector}: {e}>"
            );
            return;
        }
    };
    let named = |name: &str| {
        entries
            .iter()
            .any(|p| p.environment.as_deref() == Some(name))
    };
    let rest: Vec<&Environment> = envs.iter().filter(|e| !named(&e.name_any())).collect();
    if rest.is_empty() {
        return;
    }
    let _ = writeln!(s, "\nOther Environments labelled {selector}:");
    for env in rest {
        let (_, pr) = summary::set_of(env);
        let why = if env.metadata.deletion_timestamp.is_some() {
            "being deleted".to_owned()
        } else {
            format!("{}; no pull request of the status names it", live(env))
        };
        let _ = writeln!(s, "  {} ({pr}): {why}", env.name_any());
    }
}

/// One set in detail, in the layout of `kubectl describe`: the set, its
/// conditions, the queue, each pull request, and the Events.
pub fn describe(d: &DescribedSet, clock: &Clock) -> String {
    let set = &d.set;
    let mut s = String::new();
    let status = status_of(set);
    let spec = &set.spec;
    field(&mut s, "", "Name", &set.name_any());
    field(
        &mut s,
        "",
        "Namespace",
        &set.namespace().unwrap_or_default(),
    );
    if let Some(created) = set.creation_timestamp() {
        field(&mut s, "", "Created", &time::moment(created.0, clock));
    }
    let mut repo = repository(set);
    if let Some(url) = &spec.pull_requests.github.api_url {
        let _ = write!(repo, " (API {url})");
    }
    field(&mut s, "", "Repository", &repo);
    field(&mut s, "", "Filters", &filters(&spec.pull_requests));
    field(
        &mut s,
        "",
        "Interval",
        spec.interval.as_deref().unwrap_or("5m (default)"),
    );
    let most = match spec.max_environments {
        Some(max) => format!("at most {max}"),
        None => "no maximum".to_owned(),
    };
    let environments = match status.and_then(|st| st.ready_environments.as_deref()) {
        Some(ready) => format!("{ready} ready, {most}"),
        None => most,
    };
    field(&mut s, "", "Environments", &environments);
    if let Some(status) = status {
        let queued: Vec<String> = status
            .pull_requests
            .iter()
            .filter(|p| p.state == PullRequestState::Queued)
            .map(|p| format!("#{}", p.number))
            .collect();
        let queue = if queued.is_empty() {
            "empty".to_owned()
        } else {
            format!("{} (waiting for a slot, oldest first)", queued.join(", "))
        };
        field(&mut s, "", "Queue", &queue);
    }
    let last_sync = match status.and_then(|st| st.last_sync_time.as_deref()) {
        Some(text) => match text.parse::<Timestamp>() {
            Ok(t) => time::moment(t, clock),
            Err(_) => text.to_owned(),
        },
        None => "never (GitHub has not answered a full list yet)".to_owned(),
    };
    field(&mut s, "", "Last sync", &last_sync);
    if let Some(left) = status.and_then(|st| st.rate_limit_remaining) {
        field(&mut s, "", "Rate limit", &format!("{left} requests left"));
    }
    let conditions = status
        .map(|st| st.conditions.as_slice())
        .unwrap_or_default();
    if conditions.is_empty() {
        field(
            &mut s,
            "",
            "Ready",
            "not reported yet (the controller has not processed this set)",
        );
    }
    for c in conditions {
        field(&mut s, "", &c.type_, &condition_text(c));
    }

    s.push_str("\nPull requests:\n");
    let entries = status
        .map(|st| st.pull_requests.as_slice())
        .unwrap_or_default();
    if entries.is_empty() {
        s.push_str("  <none> (no open pull request passes the filters)\n");
    }
    for pr in entries {
        pull_request(&mut s, pr, &d.environments, clock);
    }
    others(&mut s, d, entries);

    events::section(&mut s, &d.events, clock);
    s
}

fn pull_request(
    s: &mut String,
    pr: &PullRequestStatus,
    environments: &Result<Vec<Environment>, String>,
    clock: &Clock,
) {
    let mut title = format!("#{}", pr.number);
    match (pr.branch.is_empty(), pr.author.is_empty()) {
        (false, false) => {
            let _ = write!(title, " {} by {}", pr.branch, pr.author);
        }
        (false, true) => {
            let _ = write!(title, " {}", pr.branch);
        }
        (true, false) => {
            let _ = write!(title, " by {}", pr.author);
        }
        (true, true) => {}
    }
    let _ = writeln!(s, "  {title}:");
    let head = short_sha(&pr.head_sha);
    field(s, "    ", "Head", head);
    let environment = match (&pr.environment, environments) {
        (None, _) => "none yet".to_owned(),
        (Some(name), Ok(envs)) => match envs.iter().find(|e| e.name_any() == *name) {
            Some(env) => format!("{name} ({})", live(env)),
            None => format!("{name} (not in the cluster now)"),
        },
        (Some(name), Err(_)) => name.clone(),
    };
    field(s, "    ", "Environment", &environment);
    let mut state = state_name(pr.state).to_owned();
    if let Some(reason) = &pr.reason {
        let _ = write!(state, "  {reason}");
    }
    if let Some(message) = pr.message.as_deref().filter(|m| !m.is_empty()) {
        let _ = write!(state, ": {message}");
    }
    field(s, "    ", "State", &state);
    let reported = match &pr.commit_status {
        Some(c) => {
            let mut text = format!("{}: {}", commit_state_name(c.state), c.description);
            if c.head_sha != pr.head_sha {
                let _ = write!(text, " (on {}, an earlier commit)", short_sha(&c.head_sha));
            }
            text
        }
        None => "not reported yet".to_owned(),
    };
    field(s, "    ", "Commit status", &reported);
    if let Some(check) = &pr.health_check {
        let mut text = if check.passed { "passed" } else { "failing" }.to_owned();
        if let Some(message) = &check.message {
            let _ = write!(text, ": {message}");
        }
        let _ = write!(text, " ({}", ago(&check.time, clock));
        if check.head_sha != pr.head_sha {
            let _ = write!(text, ", on {}", short_sha(&check.head_sha));
        }
        text.push(')');
        field(s, "    ", "Health check", &text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(json: serde_json::Value) -> PullRequestSource {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn filters_in_words() {
        let all = source(serde_json::json!({
            "github": {"owner": "acme", "repo": "shop"},
            "labels": ["preview", "team-shop"], "excludeLabels": ["no-preview"],
            "baseBranches": ["main", "release"], "excludeAuthors": ["dependabot[bot]"]}));
        assert_eq!(
            filters(&all),
            "labelled preview and team-shop; not labelled no-preview; into main or release; \
             no drafts; no forks; not by dependabot[bot]"
        );
        let open = source(serde_json::json!({
            "github": {"owner": "acme", "repo": "shop"},
            "includeDrafts": true, "includeForks": true}));
        assert_eq!(filters(&open), "into any branch; drafts too; forks too");
    }

    fn shop_prs(entries: serde_json::Value) -> EnvironmentSet {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "ephemeral.io/v1alpha1", "kind": "EnvironmentSet",
            "metadata": {"name": "shop-prs", "namespace": "previews"},
            "spec": {"pullRequests": {"github": {"owner": "acme", "repo": "shop"}},
                     "template": {"spec": {}}},
            "status": {"pullRequests": entries}}))
        .unwrap()
    }

    fn clock() -> Clock {
        Clock::fixed(
            "2026-11-21T12:00:00Z".parse().unwrap(),
            jiff::tz::TimeZone::UTC,
        )
    }

    /// The status names an Environment the cluster no longer has (deleted
    /// by hand since the last sync): the detail says so instead of passing
    /// the recorded state off as the present one.
    #[test]
    fn an_environment_the_cluster_no_longer_has() {
        let set = shop_prs(
            serde_json::json!([{"number": 42, "headSha": "3f2c1ab9d8", "environment": "shop-prs-pr-42", "state": "Ready"}]),
        );
        let d = DescribedSet {
            set,
            environments: Ok(vec![]),
            events: Ok(vec![]),
        };
        let text = describe(&d, &clock());
        assert!(
            text.contains("    Environment:    shop-prs-pr-42 (not in the cluster now)\n"),
            "{text}"
        );
        assert!(
            text.contains("    Commit status:  not reported yet\n"),
            "{text}"
        );
    }

    #[test]
    fn no_pull_requests_no_second_table() {
        let set: EnvironmentSet = serde_json::from_value(serde_json::json!({
            "apiVersion": "ephemeral.io/v1alpha1", "kind": "EnvironmentSet",
            "metadata": {"name": "docs-prs"},
            "spec": {"pullRequests": {"github": {"owner": "acme", "repo": "docs"}},
                     "template": {"spec": {}}}}))
        .unwrap();
        let layout = Layout {
            namespaces: false,
            colour: false,
        };
        assert_eq!(pull_requests_table(&[set], layout), "");
    }
}
