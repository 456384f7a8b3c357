//! When things happen: the lease window, expiry, and when to look again.
//! Pure: `now` is an argument.

use std::time::Duration;

use jiff::Timestamp;

use ephemeral_core::api::Lease;
use ephemeral_core::lease::{self, LeaseWindow};

/// Where an Environment stands in its lease at a moment (the core's one
/// reading of a lease, shared with expansion and the plugin).
pub use ephemeral_core::lease::LeaseState;

/// Why a lease cannot be read.
pub use ephemeral_core::lease::LeaseError;

/// The lease state of a (defaulted) lease at `now`.
pub fn lease_state(lease: &Lease, now: Timestamp) -> Result<LeaseState, LeaseError> {
    LeaseWindow::parse(lease).map(|window| window.state(now))
}

/// When an Environment is due for deletion: its stored `spec.lease.until` plus
/// `spec.lease.expireAfter`. None unless both are set and valid: an
/// Environment is never deleted on a defaulted or unreadable lease.
pub fn expires_at(stored: Option<&Lease>) -> Option<Timestamp> {
    lease::expires_at(stored)
}

/// How long to wait before looking at an Environment again: until the next
/// moment that matters (lease change, expiry), at most `resync`, at least a
/// second (so a moment reached during the reconcile is not missed by a hair).
pub fn requeue_after(now: Timestamp, moments: &[Option<Timestamp>], resync: Duration) -> Duration {
    moments
        .iter()
        .flatten()
        .filter(|t| **t > now)
        .map(|t| Duration::try_from(*t - now).unwrap_or(resync))
        .min()
        .map_or(resync, |d| d.min(resync))
        .max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn until(u: &str) -> Lease {
        Lease {
            until: Some(u.into()),
            ..Lease::default()
        }
    }

    fn schedule(s: &str) -> Lease {
        Lease {
            schedule: Some(s.into()),
            ..Lease::default()
        }
    }

    #[test]
    fn an_until_lease_is_active_before_and_ends_at_until() {
        let lease = until("2026-11-21T19:00:00Z");
        let s = lease_state(&lease, at("2026-11-21T10:00:00Z")).unwrap();
        assert!(s.active);
        assert_eq!(s.end, Some(at("2026-11-21T19:00:00Z")));
        assert_eq!(s.next_change, Some(at("2026-11-21T19:00:00Z")));
        let s = lease_state(&lease, at("2026-11-21T19:00:00Z")).unwrap();
        assert!(!s.active, "the lease ends at until, not a second later");
        assert_eq!(s.next_change, None);
    }

    #[test]
    fn a_schedule_ends_at_the_end_of_the_window_that_is_up() {
        let lease = schedule("Mon-Fri 07:00-19:00 Europe/London");
        // Friday 2026-11-20, 10:00 in London (UTC in winter).
        let s = lease_state(&lease, at("2026-11-20T10:00:30Z")).unwrap();
        assert!(s.active);
        assert_eq!(s.end, Some(at("2026-11-20T19:00:00Z")));
        // Friday evening: down until Monday 07:00.
        let s = lease_state(&lease, at("2026-11-20T20:00:00Z")).unwrap();
        assert!(!s.active);
        assert_eq!(s.end, None);
        assert_eq!(s.next_change, Some(at("2026-11-23T07:00:00Z")));
    }

    #[test]
    fn an_always_on_schedule_never_changes() {
        let s = lease_state(
            &schedule("Mon-Sun 00:00-24:00 UTC"),
            at("2026-11-21T10:00:00Z"),
        )
        .unwrap();
        assert!(s.active);
        assert_eq!((s.end, s.next_change), (None, None));
    }

    #[test]
    fn unreadable_leases_are_errors_naming_the_field() {
        let e = lease_state(&until("tonight"), Timestamp::UNIX_EPOCH).unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.lease.until: 'tonight' is not an RFC 3339 time"
        );
        assert_eq!(
            lease_state(&Lease::default(), Timestamp::UNIX_EPOCH).unwrap_err(),
            LeaseError::Missing
        );
    }

    #[test]
    fn expiry_needs_an_explicit_until_and_expire_after() {
        let mut lease = until("2026-11-21T19:00:00Z");
        assert_eq!(expires_at(Some(&lease)), None);
        lease.expire_after = Some("36h30m".into());
        assert_eq!(expires_at(Some(&lease)), Some(at("2026-11-23T07:30:00Z")));
        lease.expire_after = Some("soon".into());
        assert_eq!(expires_at(Some(&lease)), None, "unreadable: never expire");
        let sched = Lease {
            expire_after: Some("1h".into()),
            ..schedule("Mon-Fri 07:00-19:00 UTC")
        };
        assert_eq!(expires_at(Some(&sched)), None, "schedules recur");
        assert_eq!(expires_at(None), None);
    }

    #[test]
    fn requeue_is_for_the_next_moment_within_the_resync() {
        let now = at("2026-11-21T10:00:00Z");
        let hour = Duration::from_secs(3600);
        let moments = [
            Some(at("2026-11-21T10:20:00Z")),
            None,
            Some(at("2026-11-21T10:05:00Z")),
            Some(at("2026-11-21T09:00:00Z")),
        ];
        assert_eq!(requeue_after(now, &moments, hour), Duration::from_secs(300));
        assert_eq!(
            requeue_after(now, &[Some(at("2026-11-22T10:00:00Z"))], hour),
            hour
        );
        assert_eq!(requeue_after(now, &[], hour), hour);
        assert_eq!(
            requeue_after(now, &[Some(at("2026-11-21T10:00:00.2Z"))], hour),
            Duration::from_secs(1),
            "never a busy loop"
        );
    }
}
