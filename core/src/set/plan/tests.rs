//! The plan's rules, one scenario each: what the controller would observe,
//! and what the plan says to do.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use serde_json::json;

use super::*;
use crate::api::{AppStatus, EnvironmentStatus};
use crate::set::api::{CommitState, EnvironmentSetSpec};
use crate::set::github::{Branch, Label, Repository, User};

const NOW: &str = "2026-12-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn sha(n: u64, v: u8) -> String {
    format!("{n:02}{v:02}").repeat(10)
}

fn set(max: Option<i32>) -> EnvironmentSet {
    let spec: EnvironmentSetSpec = serde_json::from_value(json!({
        "pullRequests": {
            "github": {"owner": "acme", "repo": "shop", "tokenSecretRef": {"name": "github", "key": "token"}},
            "labels": ["preview"],
            "excludeLabels": ["no-preview"]
        },
        "maxEnvironments": max,
        "template": {"spec": {"apps": [{"name": "shop", "branch": "${PR_BRANCH}"}]}},
        "report": {
            "commitStatus": {"targetURL": "https://shop-${PR_NUMBER}.preview.example.com"},
            "comment": true
        }
    }))
    .unwrap();
    let mut set = EnvironmentSet::new("shop-prs", spec);
    set.metadata.namespace = Some("previews".into());
    set.metadata.uid = Some("set-uid".into());
    set.metadata.generation = Some(1);
    set
}

fn repo() -> Option<Repository> {
    Some(Repository {
        full_name: "acme/shop".into(),
    })
}

/// Open pull request `n` at commit version `v`, opened `created`.
fn pr(n: u64, v: u8, created: &str) -> PullRequest {
    PullRequest {
        number: n,
        state: "open".into(),
        user: User {
            login: "alice".into(),
        },
        labels: vec![Label {
            name: "preview".into(),
        }],
        head: Branch {
            branch: format!("feature-{n}"),
            sha: sha(n, v),
            repo: repo(),
        },
        base: Branch {
            branch: "main".into(),
            sha: "0".repeat(40),
            repo: repo(),
        },
        created_at: created.into(),
        ..PullRequest::default()
    }
}

fn open(n: u64) -> PullRequest {
    pr(n, 1, &format!("2026-11-{:02}T09:00:00Z", n.min(28)))
}

/// The Environment the set made for `pr`, as stored: its uid, Ready, with
/// the image of the head commit.
fn stored(set: &EnvironmentSet, pr: &PullRequest) -> Environment {
    let mut env = generate::environment(set, pr).unwrap();
    env.metadata.uid = Some(format!("uid-{}", pr.number));
    env.metadata.generation = Some(1);
    env.status = Some(EnvironmentStatus {
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Ready".into(),
            message: String::new(),
            last_transition_time: Time(now()),
            observed_generation: None,
        }],
        observed_generation: Some(1),
        apps: vec![AppStatus {
            name: "shop".into(),
            ready: true,
            image_tag: Some(format!(
                "feature-{}-{}-1764583200",
                pr.number,
                &pr.head.sha[..7]
            )),
            ..AppStatus::default()
        }],
        ..EnvironmentStatus::default()
    });
    env
}

struct World {
    set: EnvironmentSet,
    listing: Listing,
    environments: Vec<Environment>,
    fetched: BTreeMap<u64, Fetched>,
    health: Vec<HealthCheckResult>,
}

impl World {
    fn new(set: EnvironmentSet, listing: Listing, environments: Vec<Environment>) -> World {
        World {
            set,
            listing,
            environments,
            fetched: BTreeMap::new(),
            health: Vec::new(),
        }
    }

    fn plan(&self) -> Plan {
        plan(&Observed {
            set: &self.set,
            listing: &self.listing,
            environments: &self.environments,
            fetched: &self.fetched,
            health: &self.health,
            now: now(),
        })
    }

    /// Plans, then writes the plan's status back to the set, as the controller does.
    fn step(&mut self) -> Plan {
        let p = self.plan();
        self.set.status = Some(p.status.clone());
        p
    }
}

fn created(p: &Plan) -> Vec<String> {
    p.apply
        .iter()
        .filter(|a| a.uid.is_none())
        .map(|a| a.environment.name_any())
        .collect()
}

fn entry(p: &Plan, n: u64) -> &PullRequestStatus {
    p.status
        .pull_requests
        .iter()
        .find(|e| e.number == n)
        .unwrap_or_else(|| panic!("no status entry for #{n}: {:#?}", p.status.pull_requests))
}

#[test]
fn matching_pull_requests_get_an_environment_and_a_pending_status() {
    let mut excluded = open(3);
    excluded.labels.clear();
    let w = World::new(
        set(None),
        Listing::Listed(vec![open(1), open(2), excluded]),
        vec![],
    );
    let p = w.plan();
    assert_eq!(created(&p), ["shop-prs-pr-1", "shop-prs-pr-2"]);
    assert!(p.delete.is_empty() && p.fetch.is_empty() && p.queue.is_empty());
    assert_eq!(entry(&p, 1).state, PullRequestState::Progressing);
    assert_eq!(entry(&p, 1).environment.as_deref(), Some("shop-prs-pr-1"));
    assert_eq!(p.status.pull_requests.len(), 2, "#3 does not match");
    let status = p.reports[0].commit_status.as_ref().unwrap();
    assert_eq!(
        (
            status.sha.as_str(),
            status.state,
            status.description.as_str()
        ),
        (
            sha(1, 1).as_str(),
            CommitState::Pending,
            "Environment coming up"
        )
    );
    assert_eq!(status.context, "ephemeral/shop-prs");
    assert_eq!(
        status.target_url.as_deref(),
        Some("https://shop-1.preview.example.com")
    );
    assert!(
        p.reports[0]
            .comment
            .as_ref()
            .unwrap()
            .starts_with("<!-- ephemeral.io/environmentset: previews/shop-prs -->")
    );
    assert!(p.events.iter().any(|e| e.reason == "Created"
        && e.message
            == format!(
                "Environment shop-prs-pr-1 created for pull request #1 at {}",
                &sha(1, 1)[..7]
            )));
    let ready = p
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Synced")
    );
    assert_eq!(p.status.last_sync_time.as_deref(), Some(NOW));
}

#[test]
fn a_failed_listing_creates_updates_and_deletes_nothing() {
    let s = set(None);
    let envs = vec![stored(&s, &open(1)), stored(&s, &open(2))];
    for why in [
        "GitHub answered 500 Internal Server Error",
        "timed out after 30s",
        "rate limited until 2026-12-01T12:30:00Z",
        "page 2 did not parse: expected value at line 1 column 1",
    ] {
        let mut w = World::new(
            s.clone(),
            Listing::Listed(vec![open(1), open(2)]),
            envs.clone(),
        );
        w.step();
        w.listing = Listing::Failed(why.into());
        let p = w.plan();
        assert!(
            p.apply.is_empty() && p.delete.is_empty() && p.fetch.is_empty(),
            "{why}: {p:#?}"
        );
        assert_eq!(p.status.pull_requests.len(), 2, "{why}: the entries stay");
        assert!(p.reports.is_empty(), "{why}: nothing changed to report");
        let warning = p.events.iter().find(|e| e.reason == "ListFailed").unwrap();
        assert!(warning.warning && warning.message.contains(why));
        let ready = p
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "ListFailed")
        );
        assert_eq!(
            p.status.last_sync_time.as_deref(),
            Some(NOW),
            "the last sync stays"
        );
    }
    let w = World::new(s, Listing::NotFetched, envs);
    let p = w.plan();
    assert!(p.apply.is_empty() && p.delete.is_empty() && p.fetch.is_empty());
}

#[test]
fn a_failed_listing_keeps_the_queue() {
    let mut w = World::new(
        set(Some(1)),
        Listing::Listed(vec![open(1), open(2)]),
        vec![],
    );
    let first = w.step();
    assert_eq!(created(&first), ["shop-prs-pr-1"]);
    assert_eq!(first.queue, [2]);
    w.environments = vec![stored(&w.set, &open(1))];
    w.listing = Listing::Failed("timed out".into());
    let p = w.plan();
    assert_eq!(p.queue, [2]);
    assert_eq!(entry(&p, 2).state, PullRequestState::Queued);
    assert!(p.apply.is_empty());
}

#[test]
fn fewer_pull_requests_listed_than_before_asks_for_their_own_get_and_deletes_nothing() {
    let s = set(None);
    let envs = vec![stored(&s, &open(1)), stored(&s, &open(2))];
    let mut w = World::new(s, Listing::Listed(vec![]), envs);
    let p = w.plan();
    assert_eq!(p.fetch, [1, 2]);
    assert!(p.delete.is_empty() && p.apply.is_empty());
    assert_eq!(entry(&p, 1).environment.as_deref(), Some("shop-prs-pr-1"));

    // The GETs failed (a 404 included): the Environments stay, and the plan
    // does not ask again in this round.
    w.fetched = BTreeMap::from([
        (1, Fetched::Failed("GitHub answered 502".into())),
        (2, Fetched::Failed("GitHub answered 404 Not Found".into())),
    ]);
    let p = w.plan();
    assert!(p.delete.is_empty() && p.fetch.is_empty());
    assert_eq!(
        p.events.iter().filter(|e| e.reason == "GetFailed").count(),
        2
    );
}

#[test]
fn only_a_get_saying_closed_or_merged_deletes_with_the_uid_as_precondition() {
    let s = set(None);
    let envs = vec![
        stored(&s, &open(1)),
        stored(&s, &open(2)),
        stored(&s, &open(3)),
    ];
    let mut w = World::new(s, Listing::Listed(vec![]), envs);
    let closed = |n: u64, merged: bool| {
        let mut p = open(n);
        p.state = "closed".into();
        p.merged_at = merged.then(|| "2026-12-01T11:00:00Z".into());
        Fetched::Found(Box::new(p))
    };
    w.fetched = BTreeMap::from([
        (1, closed(1, true)),
        (2, closed(2, false)),
        (3, Fetched::Found(Box::new(open(3)))),
    ]);
    let p = w.plan();
    assert_eq!(
        p.delete,
        [
            Delete {
                name: "shop-prs-pr-1".into(),
                uid: "uid-1".into(),
                number: 1,
                reason: DeleteReason::Merged
            },
            Delete {
                name: "shop-prs-pr-2".into(),
                uid: "uid-2".into(),
                number: 2,
                reason: DeleteReason::Closed
            },
        ]
    );
    assert!(
        p.apply.is_empty(),
        "#3 is open and unchanged: kept as it is"
    );
    assert_eq!(entry(&p, 3).state, PullRequestState::Ready);
    assert_eq!(p.status.pull_requests.len(), 1);
    assert!(
        p.events
            .iter()
            .any(|e| e.message == "Environment shop-prs-pr-1 deleted: pull request #1 was merged")
    );
}

#[test]
fn a_pull_request_that_no_longer_matches_loses_its_environment() {
    let s = set(None);
    let envs = vec![stored(&s, &open(1)), stored(&s, &open(2))];
    let mut labelled = open(1);
    labelled.labels.push(Label {
        name: "no-preview".into(),
    });
    let mut fetched_draft = open(2);
    fetched_draft.labels.clear();
    let mut w = World::new(s, Listing::Listed(vec![labelled]), envs);
    w.fetched = BTreeMap::from([(2, Fetched::Found(Box::new(fetched_draft)))]);
    let p = w.plan();
    assert_eq!(
        p.delete
            .iter()
            .map(|d| (d.number, d.reason.clone()))
            .collect::<Vec<_>>(),
        [
            (
                1,
                DeleteReason::Excluded(Exclusion::ExcludedLabel("no-preview".into()))
            ),
            (
                2,
                DeleteReason::Excluded(Exclusion::MissingLabel("preview".into()))
            ),
        ]
    );
    // The comment says so; the commit status is left as it was.
    let report = &p.reports[0];
    assert_eq!(report.commit_status, None);
    assert!(report.comment.as_ref().unwrap().contains(
        "Environment `shop-prs-pr-1` (namespace `previews`) was deleted: the pull request no longer matches the set's filters: it carries the label 'no-preview' (excludeLabels)."
    ));

    // While it is being deleted, nothing is asked again.
    let mut w2 = World::new(set(None), w.listing.clone(), w.environments.clone());
    w2.environments[0].metadata.deletion_timestamp = Some(Time(now()));
    w2.fetched = w.fetched.clone();
    let p = w2.plan();
    assert_eq!(p.delete.iter().map(|d| d.number).collect::<Vec<_>>(), [2]);
    assert_eq!(p.reports.len(), 1);
}

#[test]
fn a_new_head_commit_or_a_changed_set_updates_the_environment() {
    let s = set(None);
    let envs = vec![stored(&s, &open(1)), stored(&s, &open(2))];
    let pushed = pr(1, 2, "2026-11-01T09:00:00Z");
    let w = World::new(
        s.clone(),
        Listing::Listed(vec![pushed.clone(), open(2)]),
        envs.clone(),
    );
    let p = w.plan();
    assert_eq!(p.apply.len(), 1);
    assert_eq!(
        p.apply[0].uid.as_deref(),
        Some("uid-1"),
        "an update of that Environment"
    );
    assert_eq!(
        p.apply[0].environment.annotations()[crate::set::HEAD_SHA_ANNOTATION],
        pushed.head.sha
    );
    let e = entry(&p, 1);
    assert_eq!(
        (e.state, e.reason.as_deref()),
        (PullRequestState::Progressing, Some("Updating"))
    );
    assert_eq!(e.head_sha, pushed.head.sha);
    assert_eq!(
        p.reports[0].commit_status.as_ref().unwrap().sha,
        pushed.head.sha
    );

    // A changed set re-applies every Environment; their states (and the
    // commit statuses) stay until their status says otherwise.
    let mut w = World::new(s, Listing::Listed(vec![open(1), open(2)]), envs);
    w.step();
    w.set.metadata.generation = Some(2);
    let p = w.plan();
    assert_eq!(
        p.apply
            .iter()
            .map(|a| a.uid.clone().unwrap())
            .collect::<Vec<_>>(),
        ["uid-1", "uid-2"]
    );
    assert_eq!(
        p.apply[0].environment.annotations()[crate::set::SET_GENERATION_ANNOTATION],
        "2"
    );
    assert_eq!(entry(&p, 1).state, PullRequestState::Ready);
    assert!(p.reports.is_empty(), "{:#?}", p.reports);
    assert!(
        p.events.iter().any(|e| e.message
            == "Environment shop-prs-pr-1 updated for pull request #1: the set changed")
    );
}

#[test]
fn max_environments_queues_oldest_first_and_evicts_nothing() {
    let s = set(Some(2));
    let running = stored(&s, &open(9));
    let listing = vec![
        open(9),
        pr(5, 1, "2026-11-20T09:00:00Z"),
        pr(4, 1, "2026-11-21T09:00:00Z"),
        pr(7, 1, "2026-11-20T09:00:00Z"),
        pr(3, 1, "not a time"),
    ];
    let mut w = World::new(s, Listing::Listed(listing), vec![running]);
    let p = w.step();
    assert_eq!(
        created(&p),
        ["shop-prs-pr-5"],
        "the oldest; #7 is as old but a higher number"
    );
    assert_eq!(p.queue, [7, 4, 3]);
    let e = entry(&p, 7);
    assert_eq!(
        (e.state, e.reason.as_deref()),
        (PullRequestState::Queued, Some("WaitingForSlot"))
    );
    assert_eq!(
        e.message.as_deref(),
        Some("queued: 2 environments running, max 2")
    );
    assert_eq!(e.environment, None);
    assert_eq!(p.status.queued, Some(3));
    let queued = p.reports.iter().find(|r| r.number == 7).unwrap();
    assert_eq!(
        queued.commit_status.as_ref().unwrap().state,
        CommitState::Pending
    );

    // #9 closes: its slot frees once its Environment is gone, for #7.
    let created_5 = stored(&w.set, &pr(5, 1, "2026-11-20T09:00:00Z"));
    w.environments = vec![created_5];
    w.listing = Listing::Listed(vec![
        pr(5, 1, "2026-11-20T09:00:00Z"),
        pr(4, 1, "2026-11-21T09:00:00Z"),
        pr(7, 1, "2026-11-20T09:00:00Z"),
        pr(3, 1, "not a time"),
    ]);
    let p = w.plan();
    assert_eq!(created(&p), ["shop-prs-pr-7"]);
    assert_eq!(p.queue, [4, 3]);
}

#[test]
fn lowering_max_environments_evicts_nothing() {
    let s = set(None);
    let envs: Vec<_> = (1..=3).map(|n| stored(&s, &open(n))).collect();
    let mut lowered = set(Some(1));
    lowered.metadata.generation = s.metadata.generation;
    let w = World::new(lowered, Listing::Listed((1..=4).map(open).collect()), envs);
    let p = w.plan();
    assert!(p.delete.is_empty() && p.apply.is_empty());
    assert_eq!(p.queue, [4]);
    assert_eq!(
        entry(&p, 4).message.as_deref(),
        Some("queued: 3 environments running, max 1")
    );
    assert_eq!(p.status.ready_environments.as_deref(), Some("3/3"));
}

#[test]
fn an_environment_the_set_does_not_control_is_never_touched() {
    let s = set(None);
    let mut foreign = stored(&s, &open(7));
    foreign.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "ephemeral.io/v1alpha1".into(),
        kind: "EnvironmentSet".into(),
        name: "shop-prs".into(),
        uid: "an-earlier-set".into(),
        controller: Some(true),
        ..OwnerReference::default()
    }]);
    let mut hand_made = stored(&s, &open(8));
    hand_made.metadata.owner_references = None;
    let mut closed = open(8);
    closed.state = "closed".into();

    // Listed and matching: not taken over, the pull request says why.
    let mut w = World::new(s, Listing::Listed(vec![open(7)]), vec![foreign, hand_made]);
    w.fetched = BTreeMap::from([(8, Fetched::Found(Box::new(closed)))]);
    let p = w.plan();
    assert!(
        p.apply.is_empty() && p.delete.is_empty() && p.fetch.is_empty(),
        "{p:#?}"
    );
    let e = entry(&p, 7);
    assert_eq!(
        (e.state, e.reason.as_deref()),
        (PullRequestState::Failed, Some("NameTaken"))
    );
    assert_eq!(p.status.ready_environments.as_deref(), Some("0/0"));

    // Excluded: still untouched.
    let mut excluded = open(7);
    excluded.labels.clear();
    w.listing = Listing::Listed(vec![excluded]);
    let p = w.plan();
    assert!(p.apply.is_empty() && p.delete.is_empty());
}

#[test]
fn an_invalid_environment_name_fails_the_pull_request_with_the_fix() {
    let long = "s".repeat(57);
    let mut s = set(None);
    s.metadata.name = Some(long.clone());
    let w = World::new(s, Listing::Listed(vec![open(100)]), vec![]);
    let p = w.plan();
    assert!(p.apply.is_empty());
    let e = entry(&p, 100);
    assert_eq!(
        (e.state, e.reason.as_deref()),
        (PullRequestState::Failed, Some("InvalidEnvironment"))
    );
    assert!(
        e.message
            .as_deref()
            .unwrap()
            .contains("Fix: give the set a name")
    );
    assert_eq!(
        p.reports[0].commit_status.as_ref().unwrap().state,
        CommitState::Failure
    );
    assert_eq!(
        p.reports[0]
            .commit_status
            .as_ref()
            .unwrap()
            .description
            .chars()
            .count(),
        140
    );
}

#[test]
fn a_commit_status_is_reported_once_per_change() {
    let s = set(None);
    let mut coming_up = stored(&s, &open(1));
    coming_up.status.as_mut().unwrap().conditions[0].status = "False".into();
    let mut w = World::new(s.clone(), Listing::Listed(vec![open(1)]), vec![coming_up]);
    let first = w.step();
    assert_eq!(first.reports.len(), 1);
    assert_eq!(
        first.reports[0].commit_status.as_ref().unwrap().state,
        CommitState::Pending
    );

    let again = w.step();
    assert!(
        again.reports.is_empty(),
        "same state, nothing to report: {again:#?}"
    );
    assert!(again.events.is_empty(), "and no Event");

    w.environments = vec![stored(&s, &open(1))];
    let ready = w.step();
    assert_eq!(ready.reports.len(), 1);
    let status = ready.reports[0].commit_status.as_ref().unwrap();
    assert_eq!(
        (status.state, status.description.as_str()),
        (CommitState::Success, "Environment ready")
    );
    assert!(
        ready.reports[0]
            .comment
            .as_ref()
            .unwrap()
            .contains("✅ Preview environment: Ready")
    );
    assert!(ready.events.iter().any(|e| e.reason == "Ready"));

    // A report that failed is made again by the next plan.
    w.environments[0].status.as_mut().unwrap().conditions[0].status = "False".into();
    let previous = w.set.status.clone();
    let mut failed = w.plan();
    assert_eq!(failed.reports.len(), 1);
    failed.report_failed(1, previous.as_ref());
    w.set.status = Some(failed.status);
    assert_eq!(w.plan().reports.len(), 1);
}

#[test]
fn the_health_check_runs_once_ready_and_decides_success() {
    let mut s = set(None);
    s.spec.health_check = Some(crate::set::api::HealthCheck {
        url: "https://shop-${PR_NUMBER}.preview.example.com/healthz".into(),
        expected_status: Some(204),
        timeout: Some("10m".into()),
    });
    let env = stored(&s, &open(1));
    let mut w = World::new(s, Listing::Listed(vec![open(1)]), vec![env]);
    let p = w.step();
    assert_eq!(
        p.health_checks,
        [HealthCheckDue {
            number: 1,
            head_sha: sha(1, 1),
            url: "https://shop-1.preview.example.com/healthz".into(),
            expected_status: 204,
        }]
    );
    let e = entry(&p, 1);
    assert_eq!(
        (e.state, e.reason.as_deref()),
        (PullRequestState::Progressing, Some("HealthCheckPending"))
    );
    assert_eq!(e.ready_since.as_deref(), Some(NOW));

    // It failed just now: the next one in 15s, and the plan comes back then.
    w.health = vec![HealthCheckResult {
        number: 1,
        head_sha: sha(1, 1),
        at: now(),
        outcome: Err("503 Service Unavailable".into()),
    }];
    let p = w.step();
    assert!(p.health_checks.is_empty());
    assert_eq!(p.requeue_after, SignedDuration::from_secs(15));
    assert_eq!(
        entry(&p, 1)
            .health_check
            .as_ref()
            .unwrap()
            .message
            .as_deref(),
        Some("503 Service Unavailable")
    );

    // Passed: success.
    w.health = vec![HealthCheckResult {
        number: 1,
        head_sha: sha(1, 1),
        at: now(),
        outcome: Ok(()),
    }];
    let p = w.step();
    assert_eq!(entry(&p, 1).state, PullRequestState::Ready);
    assert_eq!(
        p.reports[0].commit_status.as_ref().unwrap().state,
        CommitState::Success
    );
    assert_eq!(p.requeue_after, DEFAULT_INTERVAL);
}

/// What GitHub says about one pull request in a generated world.
#[derive(Clone, Copy, Debug)]
enum Truth {
    /// Listed, matching.
    Listed,
    /// Listed, no longer matching (label removed).
    ListedExcluded,
    /// Missing from the list; its GET not made yet.
    Unasked,
    /// Missing from the list; its GET failed.
    GetFailed,
    /// Missing from the list; its GET says open.
    GetOpen,
    /// Missing from the list; its GET says closed.
    GetClosed,
    /// Missing from the list; its GET says merged.
    GetMerged,
}

/// Whose Environment a pull request has.
#[derive(Clone, Copy, Debug)]
enum Has {
    None,
    Ours,
    Foreign,
}

fn truth() -> impl proptest::strategy::Strategy<Value = Truth> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Truth::Listed),
        Just(Truth::ListedExcluded),
        Just(Truth::Unasked),
        Just(Truth::GetFailed),
        Just(Truth::GetOpen),
        Just(Truth::GetClosed),
        Just(Truth::GetMerged),
    ]
}

fn has() -> impl proptest::strategy::Strategy<Value = Has> {
    use proptest::prelude::*;
    prop_oneof![Just(Has::None), Just(Has::Ours), Just(Has::Foreign)]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Whatever GitHub says: nothing is created, updated or deleted without
    /// a whole listing; a delete is of an Environment the set controls,
    /// with its uid, and only for a pull request whose own GET says closed
    /// or merged, or that fails the filters; no foreign Environment is
    /// applied to; creates never exceed the free slots.
    #[test]
    fn the_plan_keeps_the_safety_rules(
        world in proptest::collection::vec((truth(), has()), 1..8),
        listing_fails in proptest::prelude::any::<bool>(),
        max in proptest::option::of(0u8..5),
    ) {
        let s = set(max.map(i32::from));
        let mut listed = Vec::new();
        let mut environments = Vec::new();
        let mut fetched = BTreeMap::new();
        for (i, (truth, has)) in world.iter().enumerate() {
            let n = i as u64 + 1;
            let mut excluded = open(n);
            excluded.labels.clear();
            let mut closed = open(n);
            closed.state = "closed".into();
            match truth {
                Truth::Listed => listed.push(open(n)),
                Truth::ListedExcluded => listed.push(excluded),
                Truth::Unasked => {}
                Truth::GetFailed => {
                    fetched.insert(n, Fetched::Failed("502".into()));
                }
                Truth::GetOpen => {
                    fetched.insert(n, Fetched::Found(Box::new(open(n))));
                }
                Truth::GetClosed => {
                    fetched.insert(n, Fetched::Found(Box::new(closed)));
                }
                Truth::GetMerged => {
                    closed.merged_at = Some("2026-12-01T11:00:00Z".into());
                    fetched.insert(n, Fetched::Found(Box::new(closed)));
                }
            }
            match has {
                Has::None => {}
                Has::Ours => environments.push(stored(&s, &open(n))),
                Has::Foreign => {
                    let mut env = stored(&s, &open(n));
                    env.metadata.uid = Some(format!("foreign-{n}"));
                    env.metadata.owner_references = None;
                    environments.push(env);
                }
            }
        }
        let listing = if listing_fails {
            Listing::Failed("timed out".into())
        } else {
            Listing::Listed(listed)
        };
        let mut w = World::new(s, listing, environments);
        w.fetched = fetched;
        let p = w.plan();

        if listing_fails {
            proptest::prop_assert!(p.apply.is_empty() && p.delete.is_empty() && p.fetch.is_empty());
        }
        for d in &p.delete {
            let (truth, has) = world[d.number as usize - 1];
            proptest::prop_assert!(matches!(has, Has::Ours), "{d:?} of {has:?}");
            proptest::prop_assert_eq!(&d.uid, &format!("uid-{}", d.number));
            let allowed = match (&d.reason, truth) {
                (DeleteReason::Merged, Truth::GetMerged) | (DeleteReason::Closed, Truth::GetClosed) => true,
                (DeleteReason::Excluded(_), Truth::ListedExcluded) => true,
                _ => false,
            };
            proptest::prop_assert!(allowed, "{d:?} when GitHub says {truth:?}");
        }
        let ours: Vec<u64> = world
            .iter()
            .enumerate()
            .filter(|(_, (_, has))| matches!(has, Has::Ours))
            .map(|(i, _)| i as u64 + 1)
            .collect();
        for a in &p.apply {
            let n: u64 = a.environment.labels()[crate::set::PULL_REQUEST_LABEL].parse().unwrap();
            match &a.uid {
                Some(uid) => proptest::prop_assert_eq!(uid, &format!("uid-{n}")),
                None => proptest::prop_assert!(matches!(world[n as usize - 1].1, Has::None), "create over {:?}", world[n as usize - 1]),
            }
        }
        let creates = p.apply.iter().filter(|a| a.uid.is_none()).count();
        if let Some(max) = max {
            proptest::prop_assert!(creates <= (max as usize).saturating_sub(ours.len()));
        }
        // Every pull request with our Environment that GitHub did not list
        // is asked about, unless already answered.
        if !listing_fails {
            for n in &ours {
                let unasked = matches!(world[*n as usize - 1].0, Truth::Unasked);
                proptest::prop_assert_eq!(p.fetch.contains(n), unasked);
            }
        }
    }
}
