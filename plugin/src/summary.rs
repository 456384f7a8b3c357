//! What a person wants to know about an Environment at a glance: owner,
//! ready apps, readiness, lease, age. Pure: the clock is an input.

use ephemeral_core::Environment;
use ephemeral_core::expand::{OWNER_ANNOTATION, UPTIME_ANNOTATION};
use ephemeral_core::lease::{LeaseWindow, parse_absolute_uptime, parse_until};
use ephemeral_core::set::SET_LABEL;
use ephemeral_core::set::generate::PullRequestOf;
use jiff::Timestamp;
use kube::ResourceExt;

use crate::time::{self, Clock};

/// `-` for a value that is not known (yet).
pub const NONE: &str = "-";

/// The owner stamped by the webhook.
pub fn owner(env: &Environment) -> &str {
    env.annotations()
        .get(OWNER_ANNOTATION)
        .map(String::as_str)
        .unwrap_or(NONE)
}

/// Ready apps out of all apps, e.g. `2/3`; `0/N` before the controller reports.
pub fn ready_apps(env: &Environment) -> String {
    match env.status.as_ref().and_then(|s| s.ready_apps.clone()) {
        Some(text) => text,
        None => format!("0/{}", env.spec.apps.len()),
    }
}

/// The status of the `Ready` condition: `True`, `False`, `Unknown`, or `-`.
pub fn ready(env: &Environment) -> &str {
    ready_condition(env)
        .map(|c| c.status.as_str())
        .unwrap_or(NONE)
}

/// The `Ready` condition, if the controller has written one.
pub fn ready_condition(
    env: &Environment,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    env.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The end of the current lease: `spec.lease.until` (read as the controller
/// reads it, [`LeaseWindow`]), else the controller's `status.leaseEnd`, else
/// the end of the `downscaler/uptime` window.
pub fn lease_until(env: &Environment) -> Option<Timestamp> {
    let spec = env
        .spec
        .lease
        .as_ref()
        .and_then(|l| LeaseWindow::parse(l).ok())
        .and_then(|w| w.until());
    spec.or_else(|| {
        env.status
            .as_ref()?
            .lease_end
            .as_deref()
            .and_then(parse_until)
    })
    .or_else(|| {
        env.annotations()
            .get(UPTIME_ANNOTATION)
            .and_then(|u| parse_absolute_uptime(u))
            .map(|(_, end)| end)
    })
}

/// The lease for people: the weekly schedule as written, or
/// `until 19:00 (in 3h)` / `expired 2d ago` in the user's zone.
pub fn lease(env: &Environment, clock: &Clock) -> String {
    if let Some(schedule) = env.spec.lease.as_ref().and_then(|l| l.schedule.clone()) {
        return schedule;
    }
    match lease_until(env) {
        Some(until) => time::lease_end(until, clock),
        None => NONE.to_owned(),
    }
}

/// Age since creation, as `kubectl get` prints it.
pub fn age(env: &Environment, clock: &Clock) -> String {
    match env.creation_timestamp() {
        Some(t) => time::age(clock.now.duration_since(t.0)),
        None => NONE.to_owned(),
    }
}

/// The EnvironmentSet an Environment came from and its pull request
/// (`shop-prs`, `#42`), from the labels the set's controller puts on it;
/// `-` for an Environment made by hand.
pub fn set_of(env: &Environment) -> (String, String) {
    let set = env.labels().get(SET_LABEL).map(String::as_str);
    let pr = PullRequestOf::read(&env.metadata).map(|p| format!("#{}", p.number));
    (
        set.unwrap_or(NONE).to_owned(),
        pr.unwrap_or_else(|| NONE.to_owned()),
    )
}

/// Each app with what it follows: `checkout=feature-new-basket`, or the bare name.
pub fn app_prefixes(env: &Environment) -> String {
    if env.spec.apps.is_empty() {
        return NONE.to_owned();
    }
    let mut out = String::new();
    for (i, app) in env.spec.apps.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&app.name);
        if let Some(prefix) = &app.image_tag_prefix {
            out.push('=');
            out.push_str(prefix);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    fn env(json: serde_json::Value) -> Environment {
        serde_json::from_value(json).unwrap()
    }

    fn clock() -> Clock {
        Clock::fixed("2026-11-21T16:00:00Z".parse().unwrap(), TimeZone::UTC)
    }

    #[test]
    fn an_admitted_environment_before_the_controller() {
        let e = env(serde_json::json!({
            "apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
            "metadata": {"name": "a", "creationTimestamp": "2026-11-21T09:00:00Z",
                "annotations": {"ephemeral.io/owner": "alice",
                    "downscaler/uptime": "2026-11-21T09:00:00+00:00-2026-11-21T19:00:00+00:00"}},
            "spec": {"apps": [{"name": "checkout", "imageTagPrefix": "feature-x"}, {"name": "payments"}]}
        }));
        assert_eq!(owner(&e), "alice");
        assert_eq!(ready_apps(&e), "0/2");
        assert_eq!(ready(&e), "-");
        assert_eq!(lease(&e, &clock()), "until 19:00 (in 3h)");
        assert_eq!(age(&e, &clock()), "7h");
        assert_eq!(app_prefixes(&e), "checkout=feature-x,payments");
        assert_eq!(set_of(&e), ("-".to_owned(), "-".to_owned()));
    }

    #[test]
    fn the_set_and_pull_request_of_a_generated_environment() {
        let e = env(serde_json::json!({
            "apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
            "metadata": {"name": "shop-prs-pr-42",
                "labels": {"ephemeral.io/set": "shop-prs", "ephemeral.io/pull-request": "42"}},
            "spec": {}
        }));
        assert_eq!(set_of(&e), ("shop-prs".to_owned(), "#42".to_owned()));
    }

    #[test]
    fn spec_until_wins_and_schedules_are_shown_as_written() {
        let mut e = env(serde_json::json!({
            "apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
            "metadata": {"name": "a"},
            "spec": {"lease": {"until": "2026-11-19T16:00:00Z"}},
            "status": {"leaseEnd": "2026-11-30T00:00:00Z", "readyApps": "1/1",
                "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "",
                    "lastTransitionTime": "2026-11-21T09:00:00Z"}]}
        }));
        assert_eq!(lease(&e, &clock()), "expired 2d ago");
        assert_eq!(ready(&e), "True");
        assert_eq!(ready_apps(&e), "1/1");
        assert_eq!(age(&e, &clock()), "-");
        e.spec.lease = Some(ephemeral_core::api::Lease {
            schedule: Some("Mon-Fri 07:00-19:00 Europe/London".into()),
            ..Default::default()
        });
        assert_eq!(lease(&e, &clock()), "Mon-Fri 07:00-19:00 Europe/London");
    }
}
