//! Where one pull request's Environment stands, read from the Environment's
//! status, the head commit and the health check's last result; and the
//! commit status that state is reported as.

use jiff::{SignedDuration, Timestamp};

use super::HEAD_SHA_ANNOTATION;
use super::api::{CommitState, HealthCheck, HealthCheckStatus, PullRequestState};
use super::vars::short_sha;
use crate::api::Environment;
use crate::lease::parse_go_duration;
use crate::prefix::BuildTag;

/// How long after a failed health check the next one runs.
pub const HEALTH_CHECK_INTERVAL: SignedDuration = SignedDuration::from_secs(15);
/// The health check's `timeout` when the set gives none (or one that does not parse).
pub const DEFAULT_HEALTH_CHECK_TIMEOUT: SignedDuration = SignedDuration::from_mins(10);
/// The health check's `expectedStatus` when the set gives none.
pub const DEFAULT_EXPECTED_STATUS: u16 = 200;

/// Reasons of the per-pull-request states.
pub mod reasons {
    /// Queued: every slot of `maxEnvironments` is taken.
    pub const WAITING_FOR_SLOT: &str = "WaitingForSlot";
    /// Progressing: the Environment is being created.
    pub const CREATING: &str = "Creating";
    /// Progressing: the Environment is being updated to the head commit or the set's template.
    pub const UPDATING: &str = "Updating";
    /// Progressing: an earlier Environment of the pull request is still being deleted.
    pub const TERMINATING: &str = "Terminating";
    /// Progressing: the Environment is coming up.
    pub const PROGRESSING: &str = "Progressing";
    /// Progressing: the app following the pull request's branch has no image of the head commit yet.
    pub const WAITING_FOR_IMAGE: &str = "WaitingForImage";
    /// Progressing: Ready, the health check has not answered yet.
    pub const HEALTH_CHECK_PENDING: &str = "HealthCheckPending";
    /// Ready.
    pub const READY: &str = "Ready";
    /// Failed: the Environment is Stalled.
    pub const STALLED: &str = "Stalled";
    /// Failed: the health check kept failing for its `timeout`.
    pub const HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";
    /// Failed: no Environment can be made (its name is invalid).
    pub const INVALID_ENVIRONMENT: &str = "InvalidEnvironment";
    /// Failed: an Environment the set does not control has the name.
    pub const NAME_TAKEN: &str = "NameTaken";
}

/// One pull request's state, with what it needs next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// The state.
    pub state: PullRequestState,
    /// Why, one word (see [`reasons`]).
    pub reason: &'static str,
    /// The state in words, as the commit status and comment say it.
    pub message: String,
    /// When the Environment was first seen Ready for the head commit.
    pub ready_since: Option<Timestamp>,
    /// Whether a health check is wanted.
    pub check: Check,
}

/// Whether a health check is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// No: no check configured, not Ready yet, passed, or failed for good.
    None,
    /// Now.
    Due,
    /// At this time (the last failure plus [`HEALTH_CHECK_INTERVAL`]).
    At(Timestamp),
}

impl Assessment {
    /// A state with no Ready time and no health check.
    pub fn new(state: PullRequestState, reason: &'static str, message: String) -> Assessment {
        Assessment {
            state,
            reason,
            message,
            ready_since: None,
            check: Check::None,
        }
    }

    /// The commit status this state is reported as.
    pub fn commit_state(&self) -> CommitState {
        match self.state {
            PullRequestState::Queued | PullRequestState::Progressing => CommitState::Pending,
            PullRequestState::Ready => CommitState::Success,
            PullRequestState::Failed => CommitState::Failure,
        }
    }
}

/// What [`assess`] knows besides the Environment.
#[derive(Clone, Copy, Debug)]
pub struct Known<'a> {
    /// The pull request's head commit.
    pub head_sha: &'a str,
    /// Its head branch.
    pub branch: &'a str,
    /// The set's health check, if any.
    pub health_check: Option<&'a HealthCheck>,
    /// The last health check of this head commit, if any.
    pub last_check: Option<&'a HealthCheckStatus>,
    /// When the Environment was first seen Ready for this head commit, as the status recorded.
    pub ready_since: Option<Timestamp>,
    /// Now.
    pub now: Timestamp,
}

/// The state of a pull request whose Environment is `env`, in this order:
/// being deleted: Progressing (`Terminating`); made for another head commit:
/// Progressing (`Updating`); Stalled: Failed; its status not yet for its
/// current spec: Progressing; an app following the pull request's branch
/// without an image of the head commit (its resolved tag's sha part,
/// [`BuildTag`], must be a prefix of the head sha): Progressing
/// (`WaitingForImage`); not Ready: Progressing; Ready and no health check:
/// Ready; Ready and the health check passed for this head commit: Ready;
/// still failing [`HealthCheck::timeout`] after it became Ready: Failed;
/// else Progressing (`HealthCheckPending`) with a check due.
pub fn assess(env: &Environment, known: &Known<'_>) -> Assessment {
    use PullRequestState::{Failed, Progressing, Ready};
    let sha = short_sha(known.head_sha);
    if env.metadata.deletion_timestamp.is_some() {
        return Assessment::new(
            Progressing,
            reasons::TERMINATING,
            "the earlier Environment is being deleted".into(),
        );
    }
    let made_for = env
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(HEAD_SHA_ANNOTATION));
    if made_for.map(String::as_str) != Some(known.head_sha) {
        return Assessment::new(
            Progressing,
            reasons::UPDATING,
            format!("Environment updating to {sha}"),
        );
    }
    let status = env.status.as_ref();
    let condition = |type_: &str| {
        status
            .into_iter()
            .flat_map(|s| &s.conditions)
            .find(|c| c.type_ == type_)
    };
    if let Some(stalled) = condition("Stalled").filter(|c| c.status == "True") {
        return Assessment::new(
            Failed,
            reasons::STALLED,
            format!("Environment failed: {}", stalled.message),
        );
    }
    let current = status
        .and_then(|s| s.observed_generation)
        .is_some_and(|observed| Some(observed) == env.metadata.generation);
    if !current {
        return coming_up();
    }
    if let Some(app) = waiting_for_image(env, known) {
        return Assessment::new(
            Progressing,
            reasons::WAITING_FOR_IMAGE,
            format!("waiting for the image of {sha} (app {app})"),
        );
    }
    if condition("Ready").is_none_or(|c| c.status != "True") {
        return coming_up();
    }
    let ready_since = known.ready_since.unwrap_or(known.now);
    let Some(check) = known.health_check else {
        return Assessment {
            ready_since: Some(ready_since),
            ..Assessment::new(Ready, reasons::READY, "Environment ready".into())
        };
    };
    let last = known.last_check.filter(|c| c.head_sha == known.head_sha);
    if last.is_some_and(|c| c.passed) {
        return Assessment {
            ready_since: Some(ready_since),
            ..Assessment::new(
                Ready,
                reasons::READY,
                "Environment ready, health check passed".into(),
            )
        };
    }
    let failure = last
        .and_then(|c| c.message.clone())
        .unwrap_or_else(|| "not checked yet".into());
    let timeout = check
        .timeout
        .as_deref()
        .and_then(parse_go_duration)
        .unwrap_or(DEFAULT_HEALTH_CHECK_TIMEOUT);
    let last_time = last.and_then(|c| c.time.parse::<Timestamp>().ok());
    if last_time.is_some_and(|t| t.duration_since(ready_since) >= timeout) {
        return Assessment {
            ready_since: Some(ready_since),
            ..Assessment::new(
                Failed,
                reasons::HEALTH_CHECK_FAILED,
                format!("health check failing for {timeout:#}: {failure}"),
            )
        };
    }
    let next = last_time.map(|t| t + HEALTH_CHECK_INTERVAL);
    Assessment {
        ready_since: Some(ready_since),
        check: match next {
            Some(at) if at > known.now => Check::At(at),
            _ => Check::Due,
        },
        ..Assessment::new(
            Progressing,
            reasons::HEALTH_CHECK_PENDING,
            format!("Environment ready, waiting for the health check: {failure}"),
        )
    }
}

fn coming_up() -> Assessment {
    Assessment::new(
        PullRequestState::Progressing,
        reasons::PROGRESSING,
        "Environment coming up".into(),
    )
}

/// The first app following the pull request's branch whose resolved tag is
/// not a build of the head commit.
fn waiting_for_image<'e>(env: &'e Environment, known: &Known<'_>) -> Option<&'e str> {
    let apps = env
        .status
        .as_ref()
        .map(|s| s.apps.as_slice())
        .unwrap_or_default();
    env.spec
        .apps
        .iter()
        .filter(|app| app.branch.as_deref() == Some(known.branch))
        .find(|app| {
            let tag = apps
                .iter()
                .find(|s| s.name == app.name)
                .and_then(|s| s.image_tag.as_deref());
            !tag.and_then(BuildTag::parse)
                .is_some_and(|b| is_prefix_of(b.sha, known.head_sha))
        })
        .map(|app| app.name.as_str())
}

fn is_prefix_of(short: &str, sha: &str) -> bool {
    sha.get(..short.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(short))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;
    use crate::api::{App, AppStatus, EnvironmentSpec, EnvironmentStatus};

    const SHA: &str = "abc1234def5678abc1234def5678abc1234def56";

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn condition(type_: &str, status: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "R".into(),
            message: message.into(),
            last_transition_time: Time(at("2026-12-01T10:00:00Z")),
            observed_generation: None,
        }
    }

    /// An Environment for SHA whose app `shop` follows `feature`, Ready, with `tag` resolved.
    fn env(ready: &str, tag: Option<&str>) -> Environment {
        let mut e = Environment::new(
            "shop-prs-pr-1",
            EnvironmentSpec {
                apps: vec![
                    App {
                        name: "shop".into(),
                        branch: Some("feature".into()),
                        ..App::default()
                    },
                    App {
                        name: "payments".into(),
                        ..App::default()
                    },
                ],
                ..EnvironmentSpec::default()
            },
        );
        e.metadata.generation = Some(2);
        e.metadata.annotations = Some([(HEAD_SHA_ANNOTATION.to_owned(), SHA.to_owned())].into());
        e.status = Some(EnvironmentStatus {
            conditions: vec![condition("Ready", ready, "")],
            observed_generation: Some(2),
            apps: vec![AppStatus {
                name: "shop".into(),
                image_tag: tag.map(Into::into),
                ..AppStatus::default()
            }],
            ..EnvironmentStatus::default()
        });
        e
    }

    fn known<'a>(check: Option<&'a HealthCheck>, last: Option<&'a HealthCheckStatus>) -> Known<'a> {
        Known {
            head_sha: SHA,
            branch: "feature",
            health_check: check,
            last_check: last,
            ready_since: Some(at("2026-12-01T10:00:00Z")),
            now: at("2026-12-01T10:05:00Z"),
        }
    }

    const BUILT: Option<&str> = Some("feature-abc1234-1764583200");

    #[test]
    fn ready_for_the_head_commit_is_success() {
        let a = assess(&env("True", BUILT), &known(None, None));
        assert_eq!((a.state, a.reason), (PullRequestState::Ready, "Ready"));
        assert_eq!(a.commit_state(), CommitState::Success);
        assert_eq!(a.ready_since, Some(at("2026-12-01T10:00:00Z")));
    }

    #[test]
    fn waits_for_the_image_of_the_head_commit_even_when_ready() {
        for tag in [
            None,
            Some("feature-0ld5ha1-1764583200"),
            Some("not-a-build"),
        ] {
            let a = assess(&env("True", tag), &known(None, None));
            assert_eq!(a.state, PullRequestState::Progressing, "{tag:?}");
            assert_eq!(a.message, "waiting for the image of abc1234 (app shop)");
            assert_eq!(a.commit_state(), CommitState::Pending);
        }
        // A full sha, in capitals, is a build of the head commit too.
        let full = format!("feature-{}-1", SHA.to_uppercase());
        let a = assess(&env("True", Some(&full)), &known(None, None));
        assert_eq!(a.state, PullRequestState::Ready);
    }

    #[test]
    fn an_app_not_following_the_branch_is_not_waited_for() {
        let mut e = env("True", None);
        e.spec.apps[0].branch = Some("main".into());
        assert_eq!(
            assess(&e, &known(None, None)).state,
            PullRequestState::Ready
        );
    }

    #[test]
    fn coming_up_until_ready_for_the_current_generation_and_commit() {
        let a = assess(&env("False", BUILT), &known(None, None));
        assert_eq!(
            (a.state, a.reason),
            (PullRequestState::Progressing, "Progressing")
        );
        assert_eq!(a.message, "Environment coming up");

        let mut stale = env("True", BUILT);
        stale.metadata.generation = Some(3);
        assert_eq!(assess(&stale, &known(None, None)).reason, "Progressing");

        let mut older = env("True", BUILT);
        older.metadata.annotations =
            Some([(HEAD_SHA_ANNOTATION.to_owned(), "0ld".to_owned())].into());
        let a = assess(&older, &known(None, None));
        assert_eq!(
            (a.reason, a.message.as_str()),
            ("Updating", "Environment updating to abc1234")
        );
    }

    #[test]
    fn stalled_is_failure() {
        let mut e = env("False", BUILT);
        e.status.as_mut().unwrap().conditions.push(condition(
            "Stalled",
            "True",
            "AppTemplate 'shop' no longer exists",
        ));
        let a = assess(&e, &known(None, None));
        assert_eq!(a.state, PullRequestState::Failed);
        assert_eq!(
            a.message,
            "Environment failed: AppTemplate 'shop' no longer exists"
        );
        assert_eq!(a.commit_state(), CommitState::Failure);
    }

    fn check() -> HealthCheck {
        HealthCheck {
            url: "https://shop-1.example.com/healthz".into(),
            expected_status: None,
            timeout: Some("10m".into()),
        }
    }

    fn result(time: &str, passed: bool) -> HealthCheckStatus {
        HealthCheckStatus {
            head_sha: SHA.into(),
            time: time.into(),
            passed,
            message: (!passed).then(|| "503 Service Unavailable".into()),
        }
    }

    #[test]
    fn success_waits_for_the_health_check() {
        let hc = check();
        let a = assess(&env("True", BUILT), &known(Some(&hc), None));
        assert_eq!(
            (a.state, a.check),
            (PullRequestState::Progressing, Check::Due)
        );
        assert_eq!(
            a.message,
            "Environment ready, waiting for the health check: not checked yet"
        );

        let failed = result("2026-12-01T10:04:55Z", false);
        let a = assess(&env("True", BUILT), &known(Some(&hc), Some(&failed)));
        assert_eq!(a.reason, "HealthCheckPending");
        assert_eq!(a.check, Check::At(at("2026-12-01T10:05:10Z")));

        let passed = result("2026-12-01T10:04:55Z", true);
        let a = assess(&env("True", BUILT), &known(Some(&hc), Some(&passed)));
        assert_eq!((a.state, a.check), (PullRequestState::Ready, Check::None));

        // A pass for another commit does not count.
        let other = HealthCheckStatus {
            head_sha: "0ld".into(),
            ..passed
        };
        let a = assess(&env("True", BUILT), &known(Some(&hc), Some(&other)));
        assert_eq!(a.check, Check::Due);
    }

    #[test]
    fn a_health_check_failing_for_its_timeout_after_ready_is_failure() {
        let hc = check();
        let late = result("2026-12-01T10:10:00Z", false);
        let mut k = known(Some(&hc), Some(&late));
        k.now = at("2026-12-01T10:10:01Z");
        let a = assess(&env("True", BUILT), &k);
        assert_eq!(
            (a.state, a.reason),
            (PullRequestState::Failed, "HealthCheckFailed")
        );
        assert_eq!(
            a.message,
            "health check failing for 10m: 503 Service Unavailable"
        );
        assert_eq!(a.check, Check::None, "no more checks until a new commit");
    }
}
