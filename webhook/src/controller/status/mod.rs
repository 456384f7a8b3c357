//! The Environment's status, computed from what the reconcile saw, and the
//! Events its changes deserve. Pure.
//!
//! Conditions follow kstatus: `Ready` is always present; `Reconciling` and
//! `Stalled` are present only while true (kstatus' "abnormal-true" rule).
//! Two more explain the rest: `Admitted` (False when the admission webhook
//! never saw the Environment) and `LeaseActive` (False once the lease ended).
//! `Suspended` is present while suspension outside uptime is on for the
//! Environment: True (reason `OutsideUptime`) while its Kustomizations and
//! HelmReleases are suspended, False (reason `InsideUptime`) otherwise.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use ephemeral_core::api::{AppStatus, EnvironmentStatus};

use super::timing::LeaseState;

mod notices;

pub use notices::{Notice, Severity, notices};

/// Condition types.
pub mod types {
    /// All apps ready.
    pub const READY: &str = "Ready";
    /// Work in progress (kstatus).
    pub const RECONCILING: &str = "Reconciling";
    /// Cannot make progress without a change (kstatus).
    pub const STALLED: &str = "Stalled";
    /// Whether the admission webhook admitted the Environment.
    pub const ADMITTED: &str = "Admitted";
    /// Whether the lease is running.
    pub const LEASE_ACTIVE: &str = "LeaseActive";
    /// Whether the apps' Flux objects are suspended outside uptime.
    pub const SUSPENDED: &str = "Suspended";
}

/// The reason of the `Suspended` condition, and of each suspended app.
pub const OUTSIDE_UPTIME: &str = "OutsideUptime";
/// The reason of the `Suspended` condition when it is False.
pub const INSIDE_UPTIME: &str = "InsideUptime";
/// The reason of the `Suspended` condition while Flux takes up the current
/// spec of app children before they are suspended.
pub const SUSPENDING: &str = "Suspending";
/// The reason of the `Ready` condition when not every app is ready while
/// suspended (nothing progresses until the apps are resumed).
pub const SUSPENDED_REASON: &str = "Suspended";

/// Whether the Environment's Kustomizations and HelmReleases are suspended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Suspension {
    /// Suspension outside uptime is off for the Environment: `spec.suspend`
    /// stays false, as expanded.
    Off,
    /// On, and the Environment is inside its lease: not suspended.
    Resumed,
    /// On, and the Environment is outside its lease: suspended until this
    /// moment (the schedule's next window), or None: until the lease is
    /// extended.
    Suspended {
        /// When the apps are resumed, if the lease says.
        until: Option<Timestamp>,
    },
    /// On, outside the lease, but some app children are not suspended yet:
    /// Flux first takes up their current spec (with the ended lease's
    /// uptime). Only in a status, never in a plan.
    Suspending {
        /// When the apps are resumed, if the lease says.
        until: Option<Timestamp>,
        /// `Kind/name` of the children not suspended yet.
        waiting: Vec<String>,
    },
}

impl Suspension {
    /// The one definition: suspension is on when the Environment's
    /// `spec.lease.suspendOutsideUptime` says so, else when the controller's
    /// flag does; the apps are suspended when it is on and the (readable)
    /// lease is not active now. An unreadable lease never suspends.
    pub fn of(override_: Option<bool>, flag: bool, lease: Option<&LeaseState>) -> Suspension {
        match (override_.unwrap_or(flag), lease) {
            (false, _) => Suspension::Off,
            (true, Some(l)) if !l.active => Suspension::Suspended {
                until: l.next_change,
            },
            (true, _) => Suspension::Resumed,
        }
    }

    /// Whether the apps' Flux objects get `spec.suspend: true`.
    pub fn is_suspended(&self) -> bool {
        matches!(self, Suspension::Suspended { .. })
    }

    /// `until <time>` or `until the lease is extended`.
    pub fn until_text(&self) -> String {
        match self {
            Suspension::Suspended { until: Some(t) }
            | Suspension::Suspending { until: Some(t), .. } => format!("until {t}"),
            _ => "until the lease is extended (kubectl ephemeral extend)".into(),
        }
    }
}

/// Whether the admission webhook saw the Environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// It carries the `ephemeral.io/owner` annotation.
    Admitted,
    /// It does not: the controller expanded it for this owner at this time.
    NotAdmitted {
        /// The owner used in the expansion.
        owner: String,
        /// The "now" used in the expansion.
        at: Timestamp,
    },
}

/// How the reconcile ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The children were applied.
    Applied,
    /// Nothing was applied or pruned; a person has to change something.
    Stalled {
        /// Condition reason, e.g. `ExpansionFailed`.
        reason: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// Everything the status is computed from.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    /// `metadata.generation` of the Environment.
    pub generation: Option<i64>,
    /// The status before this reconcile.
    pub previous: Option<&'a EnvironmentStatus>,
    /// Now.
    pub now: Timestamp,
    /// Admission state.
    pub admission: Admission,
    /// How the reconcile ended.
    pub outcome: Outcome,
    /// Per-app state.
    pub apps: Vec<AppStatus>,
    /// The lease, when it could be read.
    pub lease: Option<LeaseState>,
    /// Whether the apps are suspended; None when nothing was applied (a
    /// stall), so the children and the `Suspended` condition are as they were.
    pub suspension: Option<Suspension>,
}

fn condition(
    o: &Observation<'_>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let since = o
        .previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(o.now));
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: o.generation,
        last_transition_time: since,
    }
}

fn waiting_for(apps: &[AppStatus]) -> String {
    let waiting: Vec<String> = apps
        .iter()
        .filter(|a| !a.ready)
        .map(|a| match (&a.reason, &a.message) {
            (Some(r), Some(m)) => format!("{} ({r}: {m})", a.name),
            (Some(r), None) => format!("{} ({r})", a.name),
            (None, Some(m)) => format!("{} ({m})", a.name),
            (None, None) => a.name.clone(),
        })
        .collect();
    waiting.join(", ")
}

/// The status the Environment should have.
pub fn compute(o: &Observation<'_>) -> EnvironmentStatus {
    let total = o.apps.len();
    let ready = o.apps.iter().filter(|a| a.ready).count();
    let summary = format!("{ready}/{total} apps ready");
    let mut conditions = Vec::with_capacity(5);
    match &o.outcome {
        Outcome::Stalled { reason, message } => {
            conditions.push(condition(o, types::READY, false, reason, message.clone()));
            conditions.push(condition(o, types::STALLED, true, reason, message.clone()));
        }
        Outcome::Applied if ready == total => {
            conditions.push(condition(
                o,
                types::READY,
                true,
                "AppsReady",
                summary.clone(),
            ));
        }
        Outcome::Applied if o.suspension.as_ref().is_some_and(Suspension::is_suspended) => {
            // Flux does not reconcile a suspended object: nothing progresses
            // until the apps are resumed.
            let message = format!(
                "{summary}; suspended outside uptime, so Flux does not reconcile {}",
                waiting_for(&o.apps)
            );
            conditions.push(condition(o, types::READY, false, SUSPENDED_REASON, message));
        }
        Outcome::Applied => {
            let message = format!("{summary}; waiting for {}", waiting_for(&o.apps));
            conditions.push(condition(
                o,
                types::READY,
                false,
                "AppsNotReady",
                message.clone(),
            ));
            conditions.push(condition(
                o,
                types::RECONCILING,
                true,
                "Progressing",
                message,
            ));
        }
    }
    conditions.push(match &o.admission {
        Admission::Admitted => condition(
            o,
            types::ADMITTED,
            true,
            "Admitted",
            "admitted by the ephemeral admission webhook".into(),
        ),
        Admission::NotAdmitted { owner, at } => condition(
            o,
            types::ADMITTED,
            false,
            "NotAdmitted",
            format!(
                "the admission webhook did not admit this Environment (no ephemeral.io/owner annotation): the controller expanded it as of its creation ({at}) with owner '{owner}'. Fix: make sure the webhook is running, then update the Environment (as an admin) so the webhook admits it"
            ),
        ),
    });
    if let Some(lease) = &o.lease {
        conditions.push(match (lease.active, lease.end) {
            (true, Some(end)) => condition(
                o,
                types::LEASE_ACTIVE,
                true,
                "InLease",
                format!("up until {end}"),
            ),
            (true, None) => condition(
                o,
                types::LEASE_ACTIVE,
                true,
                "InLease",
                "up, with no end".into(),
            ),
            (false, _) => condition(
                o,
                types::LEASE_ACTIVE,
                false,
                "LeaseEnded",
                match lease.next_change {
                    Some(next) => {
                        format!("outside its schedule until {next}: the apps are scaled down")
                    }
                    None => {
                        "the lease ended: the apps are scaled down. Fix: extend spec.lease.until"
                            .into()
                    }
                },
            ),
        });
    }
    match &o.suspension {
        Some(Suspension::Off) => {}
        Some(Suspension::Resumed) => conditions.push(condition(
            o,
            types::SUSPENDED,
            false,
            INSIDE_UPTIME,
            "inside its lease: Flux reconciles the apps' Kustomizations and HelmReleases".into(),
        )),
        Some(s @ Suspension::Suspended { .. }) => conditions.push(condition(
            o,
            types::SUSPENDED,
            true,
            OUTSIDE_UPTIME,
            format!(
                "outside its lease: the apps' Kustomizations and HelmReleases are suspended (spec.suspend: true) {}, so Flux does not scale them back up; ImagePolicies keep resolving",
                s.until_text()
            ),
        )),
        Some(s @ Suspension::Suspending { waiting, .. }) => conditions.push(condition(
            o,
            types::SUSPENDED,
            false,
            SUSPENDING,
            format!(
                "outside its lease: suspending the apps' Kustomizations and HelmReleases {} once Flux has taken up their current spec; waiting for {}",
                s.until_text(),
                waiting.join(", ")
            ),
        )),
        // Nothing was applied: the children are suspended as they were.
        None => conditions.extend(find(o.previous, types::SUSPENDED).cloned()),
    }
    EnvironmentStatus {
        conditions,
        observed_generation: o.generation,
        ready_apps: Some(format!("{ready}/{total}")),
        apps: o.apps.clone(),
        lease_end: o.lease.as_ref().and_then(|l| l.end).map(|t| t.to_string()),
    }
}

/// The condition of `type_` in `s`, if any.
fn find<'a>(s: Option<&'a EnvironmentStatus>, type_: &str) -> Option<&'a Condition> {
    s?.conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn app(name: &str, ready: bool) -> AppStatus {
        AppStatus {
            name: name.into(),
            kind: "Kustomization".into(),
            ready,
            reason: Some(
                if ready {
                    "ReconciliationSucceeded"
                } else {
                    "Progressing"
                }
                .into(),
            ),
            message: (!ready).then(|| "health check pending".into()),
            image_tag: None,
        }
    }

    fn obs<'a>(
        previous: Option<&'a EnvironmentStatus>,
        now: &str,
        apps: Vec<AppStatus>,
    ) -> Observation<'a> {
        Observation {
            generation: Some(3),
            previous,
            now: at(now),
            admission: Admission::Admitted,
            outcome: Outcome::Applied,
            apps,
            lease: Some(LeaseState {
                active: true,
                end: Some(at("2026-11-21T19:00:00Z")),
                next_change: Some(at("2026-11-21T19:00:00Z")),
            }),
            suspension: Some(Suspension::Off),
        }
    }

    fn cond<'a>(s: &'a EnvironmentStatus, t: &str) -> Option<&'a Condition> {
        s.conditions.iter().find(|c| c.type_ == t)
    }

    #[test]
    fn not_all_ready_is_reconciling_and_names_what_it_waits_for() {
        let s = compute(&obs(
            None,
            "2026-11-21T10:00:00Z",
            vec![app("checkout", false), app("web", true)],
        ));
        assert_eq!(s.ready_apps.as_deref(), Some("1/2"));
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.lease_end.as_deref(), Some("2026-11-21T19:00:00Z"));
        let ready = cond(&s, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "AppsNotReady")
        );
        assert_eq!(
            ready.message,
            "1/2 apps ready; waiting for checkout (Progressing: health check pending)"
        );
        assert_eq!(cond(&s, "Reconciling").unwrap().status, "True");
        assert!(
            cond(&s, "Stalled").is_none(),
            "abnormal-true: absent while false"
        );
        assert_eq!(cond(&s, "Admitted").unwrap().status, "True");
        assert_eq!(
            cond(&s, "LeaseActive").unwrap().message,
            "up until 2026-11-21T19:00:00Z"
        );
        assert_eq!(notices(None, &s), vec![]);
    }

    #[test]
    fn becoming_ready_keeps_unchanged_transition_times_and_is_announced_once() {
        let before = compute(&obs(
            None,
            "2026-11-21T10:00:00Z",
            vec![app("checkout", false)],
        ));
        let after = compute(&obs(
            Some(&before),
            "2026-11-21T10:05:00Z",
            vec![app("checkout", true)],
        ));
        let ready = cond(&after, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "AppsReady")
        );
        assert_eq!(ready.last_transition_time, Time(at("2026-11-21T10:05:00Z")));
        assert!(cond(&after, "Reconciling").is_none());
        assert_eq!(
            cond(&after, "Admitted").unwrap().last_transition_time,
            Time(at("2026-11-21T10:00:00Z")),
            "a condition that did not change keeps its transition time"
        );
        assert_eq!(
            notices(Some(&before), &after),
            vec![Notice {
                severity: Severity::Normal,
                reason: "Ready".into(),
                note: "1/1 apps ready".into()
            }]
        );
        let again = compute(&obs(
            Some(&after),
            "2026-11-21T10:10:00Z",
            vec![app("checkout", true)],
        ));
        assert_eq!(
            again, after,
            "nothing changed: the same status, so no write"
        );
        assert!(notices(Some(&after), &again).is_empty());
    }

    #[test]
    fn a_stall_is_not_ready_and_warns() {
        let mut o = obs(None, "2026-11-21T10:00:00Z", vec![]);
        o.outcome = Outcome::Stalled {
            reason: "ExpansionFailed",
            message: "spec.apps[0].name: AppTemplate 'checkout' does not exist".into(),
        };
        let s = compute(&o);
        let ready = cond(&s, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "ExpansionFailed")
        );
        assert_eq!(cond(&s, "Stalled").unwrap().message, ready.message);
        assert!(cond(&s, "Reconciling").is_none());
        let n = notices(None, &s);
        assert_eq!(n.len(), 1);
        assert_eq!(
            (n[0].severity, n[0].reason.as_str()),
            (Severity::Warning, "ExpansionFailed")
        );
    }

    #[test]
    fn not_admitted_and_lease_end_are_explained_and_announced() {
        let mut o = obs(None, "2026-11-21T20:00:00Z", vec![app("checkout", true)]);
        o.admission = Admission::NotAdmitted {
            owner: "unknown".into(),
            at: at("2026-11-21T09:00:00Z"),
        };
        o.lease = Some(LeaseState {
            active: false,
            end: Some(at("2026-11-21T19:00:00Z")),
            next_change: None,
        });
        let s = compute(&o);
        let admitted = cond(&s, "Admitted").unwrap();
        assert_eq!(
            (admitted.status.as_str(), admitted.reason.as_str()),
            ("False", "NotAdmitted")
        );
        assert!(
            admitted.message.contains("owner 'unknown'"),
            "{}",
            admitted.message
        );
        let lease = cond(&s, "LeaseActive").unwrap();
        assert_eq!(
            (lease.status.as_str(), lease.reason.as_str()),
            ("False", "LeaseEnded")
        );
        let reasons: Vec<String> = notices(None, &s).into_iter().map(|n| n.reason).collect();
        assert_eq!(reasons, ["Ready", "NotAdmitted", "LeaseExpired"]);
    }

    #[test]
    fn suspension_is_the_environments_choice_else_the_flags_and_needs_a_readable_ended_lease() {
        let up = LeaseState {
            active: true,
            end: Some(at("2026-11-21T19:00:00Z")),
            next_change: Some(at("2026-11-21T19:00:00Z")),
        };
        let down = LeaseState {
            active: false,
            end: None,
            next_change: Some(at("2026-11-23T07:00:00Z")),
        };
        let suspended = Suspension::Suspended {
            until: Some(at("2026-11-23T07:00:00Z")),
        };
        for (override_, flag, lease, want) in [
            (None, false, Some(&down), Suspension::Off),
            (None, true, Some(&down), suspended.clone()),
            (None, true, Some(&up), Suspension::Resumed),
            (Some(false), true, Some(&down), Suspension::Off),
            (Some(true), false, Some(&down), suspended.clone()),
            (Some(true), false, None, Suspension::Resumed),
        ] {
            assert_eq!(
                Suspension::of(override_, flag, lease),
                want,
                "{override_:?} {flag} {lease:?}"
            );
        }
    }

    #[test]
    fn suspended_and_resumed_are_conditions_and_events() {
        let mut o = obs(None, "2026-11-21T20:00:00Z", vec![app("checkout", true)]);
        o.suspension = Some(Suspension::Resumed);
        let inside = compute(&o);
        let c = cond(&inside, "Suspended").unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", INSIDE_UPTIME)
        );
        assert!(notices(None, &inside).iter().all(|n| n.reason != "Resumed"));

        let mut o = obs(
            Some(&inside),
            "2026-11-21T20:00:00Z",
            vec![app("checkout", true)],
        );
        o.suspension = Some(Suspension::Suspended { until: None });
        let outside = compute(&o);
        let c = cond(&outside, "Suspended").unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", OUTSIDE_UPTIME)
        );
        assert!(c.message.contains("until the lease is extended"), "{c:?}");
        let reasons: Vec<String> = notices(Some(&inside), &outside)
            .into_iter()
            .map(|n| n.reason)
            .collect();
        assert_eq!(reasons, ["Suspended"]);
        assert_eq!(cond(&outside, "Ready").unwrap().status, "True");

        // A stall applies nothing: the condition stays as it was.
        let mut o = obs(Some(&outside), "2026-11-21T20:05:00Z", vec![]);
        o.suspension = None;
        o.outcome = Outcome::Stalled {
            reason: "ExpansionFailed",
            message: "gone".into(),
        };
        let stalled = compute(&o);
        assert_eq!(cond(&stalled, "Suspended"), cond(&outside, "Suspended"));

        let mut o = obs(
            Some(&outside),
            "2026-11-21T21:00:00Z",
            vec![app("checkout", true)],
        );
        o.suspension = Some(Suspension::Off);
        let off = compute(&o);
        assert!(cond(&off, "Suspended").is_none(), "absent when off");
        let resumed = notices(Some(&outside), &off);
        assert_eq!(resumed.len(), 1);
        assert_eq!(resumed[0].reason, "Resumed");
    }
}
