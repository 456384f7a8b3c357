//! Leases: the default `until`, limits, the `downscaler/uptime` value, and
//! the one reading of a stored lease ([`LeaseWindow`]) that expansion, the
//! controller and the plugin share.

use jiff::{SignedDuration, Timestamp, Zoned, civil::Time, tz::TimeZone};

use crate::api::Lease;
use crate::schedule::Schedule;

/// How leases are defaulted and bounded.
#[derive(Clone, Debug)]
pub struct LeasePolicy {
    /// Daily cut-off: default leases end at this local time.
    pub cutoff: Time,
    /// Zone of the cut-off.
    pub zone: TimeZone,
    /// A defaulted lease lasts at least this long from now.
    pub minimum: SignedDuration,
    /// No lease may end later than this from now.
    pub maximum: SignedDuration,
}

impl Default for LeasePolicy {
    fn default() -> Self {
        LeasePolicy {
            cutoff: Time::constant(19, 0, 0, 0),
            zone: TimeZone::UTC,
            minimum: SignedDuration::from_hours(1),
            maximum: SignedDuration::from_hours(7 * 24),
        }
    }
}

/// Drops sub-second precision, so every timestamp this crate writes is whole seconds.
pub fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).expect("seconds of a valid timestamp are valid")
}

impl LeasePolicy {
    /// The first cut-off strictly after `now`.
    pub fn next_cutoff(&self, now: Timestamp) -> Timestamp {
        let local = now.to_zoned(self.zone.clone());
        let today = cutoff_on(&local, self.cutoff);
        if today > now {
            return today;
        }
        let tomorrow = local
            .date()
            .tomorrow()
            .expect("dates this far from the edge of time have a tomorrow")
            .to_datetime(self.cutoff)
            .to_zoned(self.zone.clone())
            .expect("a local time in a valid zone resolves");
        tomorrow.timestamp()
    }

    /// The default end of a lease that starts `now`: the next cut-off, but at
    /// least `minimum` from now and at most `maximum` from now.
    pub fn default_until(&self, now: Timestamp) -> Timestamp {
        let now = whole_seconds(now);
        let floor = now + self.minimum;
        let ceiling = now + self.maximum;
        self.next_cutoff(now).max(floor).min(ceiling)
    }

    /// The latest `until` allowed at `now`.
    pub fn latest_until(&self, now: Timestamp) -> Timestamp {
        whole_seconds(now) + self.maximum
    }
}

fn cutoff_on(day: &Zoned, cutoff: Time) -> Timestamp {
    day.date()
        .to_datetime(cutoff)
        .to_zoned(day.time_zone().clone())
        .expect("a local time in a valid zone resolves")
        .timestamp()
}

/// The earliest instant RFC 3339 can write, `0000-01-01T00:00:00Z`: its years
/// have four digits. (jiff reaches back to the year -9999; Go's
/// `time.Parse(time.RFC3339, …)`, which GoKubeDownscaler uses, does not.)
/// The latest, in 9999, is past [`Timestamp::MAX`] already.
pub const EARLIEST_RFC3339: Timestamp = Timestamp::constant(-62_167_219_200, 0);

/// RFC 3339 in UTC with a `+00:00` offset and whole seconds, as
/// GoKubeDownscaler's absolute form expects. `t` is at or after
/// [`EARLIEST_RFC3339`].
pub fn rfc3339_utc(t: Timestamp) -> String {
    let mut out = String::with_capacity(25);
    push_rfc3339_utc(&mut out, t);
    out
}

/// The text of a whole-second `spec.lease.until`: RFC 3339 in UTC with `Z`,
/// exactly what jiff's `Display` writes for it (`2026-11-21T19:00:00Z`),
/// digit by digit (the formatting machinery was 2 % of an admission).
/// Instants with a fraction of a second, or before [`EARLIEST_RFC3339`],
/// are written by jiff.
pub fn until_text(t: Timestamp) -> String {
    if t.subsec_nanosecond() != 0 || t < EARLIEST_RFC3339 {
        return t.to_string();
    }
    let mut out = String::with_capacity(20);
    push_rfc3339(&mut out, t, "Z");
    out
}

/// Appends [`rfc3339_utc`] of `t` to `out`.
fn push_rfc3339_utc(out: &mut String, t: Timestamp) {
    push_rfc3339(out, t, "+00:00");
}

/// Appends `t` in UTC as RFC 3339 with whole seconds and the offset written
/// as `offset`, digit by digit (`strftime` took a few per cent of an
/// admission).
fn push_rfc3339(out: &mut String, t: Timestamp, offset: &str) {
    debug_assert!(t >= EARLIEST_RFC3339, "{t} has no four-digit year");
    let d = jiff::tz::Offset::UTC.to_datetime(t);
    let year = u16::try_from(d.year()).expect("years from 0000 on are not negative");
    push_four_digits(out, year);
    for (n, separator) in [
        (d.month(), '-'),
        (d.day(), '-'),
        (d.hour(), 'T'),
        (d.minute(), ':'),
        (d.second(), ':'),
    ] {
        out.push(separator);
        push_two_digits(out, n);
    }
    out.push_str(offset);
}

/// Appends the last four decimal digits of `n`.
fn push_four_digits(out: &mut String, n: u16) {
    push_two_digits(out, ((n / 100) % 100) as i8);
    push_two_digits(out, (n % 100) as i8);
}

/// Appends the last two decimal digits of `n` (not negative).
fn push_two_digits(out: &mut String, n: i8) {
    let n = n.unsigned_abs();
    out.push(char::from(b'0' + (n / 10) % 10));
    out.push(char::from(b'0' + n % 10));
}

/// The absolute uptime `<start>-<end>`, both [`rfc3339_utc`], e.g.
/// `2026-11-21T09:00:00+00:00-2026-11-21T19:00:00+00:00`.
pub fn absolute_uptime(start: Timestamp, end: Timestamp) -> String {
    let mut out = String::with_capacity(51);
    push_rfc3339_utc(&mut out, start);
    out.push('-');
    push_rfc3339_utc(&mut out, end);
    out
}

/// Parses an absolute uptime `<start RFC 3339>-<end RFC 3339>`.
pub fn parse_absolute_uptime(value: &str) -> Option<(Timestamp, Timestamp)> {
    value.match_indices('-').find_map(|(i, _)| {
        let start = value[..i].parse::<Timestamp>().ok()?;
        let end = value[i + 1..].parse::<Timestamp>().ok()?;
        Some((start, end))
    })
}

/// Parses `spec.lease.until`: an RFC 3339 time with a four-digit year (at or
/// after [`EARLIEST_RFC3339`]), to whole seconds. The one grammar of `until`:
/// admission refuses what this refuses, and the controller and the plugin
/// read stored leases with it.
pub fn parse_until(text: &str) -> Option<Timestamp> {
    match text.parse::<Timestamp>() {
        Ok(t) if t >= EARLIEST_RFC3339 => Some(whole_seconds(t)),
        _ => None,
    }
}

/// A weekly schedule's next change is searched this far ahead: a schedule
/// that does not change within 8 days never does.
const SCHEDULE_HORIZON_MINUTES: i64 = 8 * 24 * 60;

/// A stored lease, read: up until an instant, or up in a weekly schedule's
/// windows.
#[derive(Clone, Debug)]
pub enum LeaseWindow {
    /// `spec.lease.until`.
    Until(Timestamp),
    /// `spec.lease.schedule`.
    Schedule(Schedule),
}

/// Where an Environment stands in its lease at a moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseState {
    /// Whether the environment is inside its lease (up).
    pub active: bool,
    /// End of the current lease window: `until`, or the end of the schedule
    /// window that is up now. None when a schedule is down now or never ends.
    pub end: Option<Timestamp>,
    /// The next moment `active` flips, if any.
    pub next_change: Option<Timestamp>,
}

/// Why a stored lease cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// `spec.lease.until` is not an RFC 3339 time.
    #[error("spec.lease.until: '{0}' is not an RFC 3339 time")]
    Until(String),
    /// `spec.lease.schedule` does not parse.
    #[error("spec.lease.schedule: {0}")]
    Schedule(String),
    /// Neither `until` nor `schedule` is set.
    #[error("spec.lease: neither until nor schedule is set")]
    Missing,
}

impl LeaseWindow {
    /// Reads a (defaulted) lease: `until` when set (admission refuses a lease
    /// that sets both), else `schedule`.
    pub fn parse(lease: &Lease) -> Result<LeaseWindow, LeaseError> {
        if let Some(until) = &lease.until {
            return parse_until(until)
                .map(LeaseWindow::Until)
                .ok_or_else(|| LeaseError::Until(until.clone()));
        }
        let Some(text) = &lease.schedule else {
            return Err(LeaseError::Missing);
        };
        Schedule::parse(text)
            .map(LeaseWindow::Schedule)
            .map_err(|e| LeaseError::Schedule(e.to_string()))
    }

    /// The end of an `until` lease.
    pub fn until(&self) -> Option<Timestamp> {
        match self {
            LeaseWindow::Until(t) => Some(*t),
            LeaseWindow::Schedule(_) => None,
        }
    }

    /// Where the lease stands at `now`.
    pub fn state(&self, now: Timestamp) -> LeaseState {
        match self {
            LeaseWindow::Until(until) => {
                let active = now < *until;
                LeaseState {
                    active,
                    end: Some(*until),
                    next_change: active.then_some(*until),
                }
            }
            LeaseWindow::Schedule(schedule) => {
                let active = schedule.is_up(now);
                let next_change = next_schedule_change(schedule, now, active);
                LeaseState {
                    active,
                    end: if active { next_change } else { None },
                    next_change,
                }
            }
        }
    }
}

/// The first whole minute after `now` at which the schedule's state differs
/// from `up` (windows start and end on whole local minutes).
fn next_schedule_change(schedule: &Schedule, now: Timestamp, up: bool) -> Option<Timestamp> {
    let first =
        Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(60) + 60).ok()?;
    (0..SCHEDULE_HORIZON_MINUTES)
        .map(|i| first + SignedDuration::from_mins(i))
        .find(|t| schedule.is_up(*t) != up)
}

/// When an Environment is due for deletion: its stored `spec.lease.until` plus
/// `spec.lease.expireAfter`. None unless both are set and valid: an
/// Environment is never deleted on a defaulted or unreadable lease.
pub fn expires_at(stored: Option<&Lease>) -> Option<Timestamp> {
    let lease = stored?;
    let until = parse_until(lease.until.as_deref()?)?;
    let after = parse_go_duration(lease.expire_after.as_deref()?)?;
    until.checked_add(after).ok()
}

/// Parses a Go duration of the form Flux and Kubernetes use, e.g. `168h`, `1h30m`, `90s`.
pub fn parse_go_duration(text: &str) -> Option<SignedDuration> {
    if text.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let (unit, seconds) = [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)]
            .into_iter()
            .find(|(u, _)| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
        total += number * seconds;
    }
    SignedDuration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn default_is_todays_cutoff_in_the_morning() {
        let p = LeasePolicy::default();
        assert_eq!(
            p.default_until(at("2026-11-21T09:15:30.25Z")),
            at("2026-11-21T19:00:00Z")
        );
    }

    #[test]
    fn minimum_applies_near_the_cutoff() {
        let p = LeasePolicy::default();
        assert_eq!(
            p.default_until(at("2026-11-21T18:30:00Z")),
            at("2026-11-21T19:30:00Z")
        );
    }

    #[test]
    fn after_the_cutoff_the_next_day_counts() {
        let p = LeasePolicy::default();
        assert_eq!(
            p.default_until(at("2026-11-21T19:30:00Z")),
            at("2026-11-22T19:00:00Z")
        );
        assert_eq!(
            p.default_until(at("2026-11-21T19:00:00Z")),
            at("2026-11-22T19:00:00Z")
        );
    }

    #[test]
    fn maximum_caps_the_default() {
        let p = LeasePolicy {
            maximum: SignedDuration::from_hours(2),
            ..LeasePolicy::default()
        };
        assert_eq!(
            p.default_until(at("2026-11-21T09:00:00Z")),
            at("2026-11-21T11:00:00Z")
        );
    }

    #[test]
    fn cutoff_in_a_zone_with_summer_time() {
        let p = LeasePolicy {
            zone: TimeZone::get("Europe/London").unwrap(),
            ..LeasePolicy::default()
        };
        assert_eq!(
            p.default_until(at("2026-07-01T09:00:00Z")),
            at("2026-07-01T18:00:00Z")
        );
    }

    #[test]
    fn uptime_round_trips() {
        let s = absolute_uptime(at("2026-11-21T09:00:00Z"), at("2026-11-21T19:00:00Z"));
        assert_eq!(s, "2026-11-21T09:00:00+00:00-2026-11-21T19:00:00+00:00");
        assert_eq!(
            parse_absolute_uptime(&s),
            Some((at("2026-11-21T09:00:00Z"), at("2026-11-21T19:00:00Z")))
        );
        assert_eq!(parse_absolute_uptime("Mon-Fri 07:00-19:00 UTC"), None);
    }

    #[test]
    fn rfc3339_is_what_strftime_writes() {
        let reference = |t: Timestamp| {
            t.to_zoned(jiff::tz::TimeZone::UTC)
                .strftime("%Y-%m-%dT%H:%M:%S+00:00")
                .to_string()
        };
        let (first, last) = (EARLIEST_RFC3339.as_second(), Timestamp::MAX.as_second());
        // ~20,000 instants over every year, with odd fractions of a second
        // (before 1970 too, where seconds round down).
        let step = (last - first) / 20_011;
        for i in 0..=20_011i64 {
            let nanos = i32::try_from((i * 7_919_191) % 1_000_000_000).unwrap();
            let t = Timestamp::new((first + i * step).min(last), nanos).unwrap();
            assert_eq!(rfc3339_utc(t), reference(t), "{t}");
        }
        for t in [EARLIEST_RFC3339, Timestamp::MAX, Timestamp::UNIX_EPOCH] {
            assert_eq!(rfc3339_utc(t), reference(t), "{t}");
        }
    }

    #[test]
    fn until_text_is_what_jiff_writes() {
        let (first, last) = (EARLIEST_RFC3339.as_second(), Timestamp::MAX.as_second());
        // ~20,000 whole-second instants over every year, a few with
        // fractions (written by jiff), and instants before year 0000.
        let step = (last - first) / 20_011;
        for i in 0..=20_011i64 {
            let nanos = if i % 97 == 0 { 500_000_000 } else { 0 };
            let t = Timestamp::new((first + i * step).min(last), nanos).unwrap();
            assert_eq!(until_text(t), t.to_string(), "{t}");
        }
        for t in [
            EARLIEST_RFC3339,
            Timestamp::MAX,
            Timestamp::UNIX_EPOCH,
            Timestamp::MIN,
            at("2026-11-21T19:00:00Z"),
        ] {
            assert_eq!(until_text(t), t.to_string(), "{t}");
        }
        assert_eq!(
            until_text(at("2026-11-21T19:00:00Z")),
            "2026-11-21T19:00:00Z"
        );
    }

    #[test]
    fn rfc3339_has_four_digit_years_and_whole_seconds() {
        assert_eq!(rfc3339_utc(EARLIEST_RFC3339), "0000-01-01T00:00:00+00:00");
        assert_eq!(
            EARLIEST_RFC3339,
            at("0000-01-01T00:00:00Z"),
            "the constant is the start of year 0000"
        );
        assert_eq!(
            rfc3339_utc(at("0999-03-04T05:06:07.89Z")),
            "0999-03-04T05:06:07+00:00"
        );
        assert_eq!(
            rfc3339_utc(at("2026-07-01T09:00:00+01:00")),
            "2026-07-01T08:00:00+00:00"
        );
        assert_eq!(
            rfc3339_utc(Timestamp::MAX),
            "9999-12-30T22:00:00+00:00",
            "jiff's last instant still has four digits"
        );
    }

    #[test]
    fn until_has_one_grammar() {
        assert_eq!(
            parse_until("2026-11-21T19:00:00.75+01:00"),
            Some(at("2026-11-21T18:00:00Z"))
        );
        assert_eq!(parse_until("-000001-01-01T00:00:00Z"), None);
        assert_eq!(parse_until("tomorrow"), None);
        let lease = |until: Option<&str>, schedule: Option<&str>| Lease {
            until: until.map(Into::into),
            schedule: schedule.map(Into::into),
            ..Lease::default()
        };
        let w = LeaseWindow::parse(&lease(Some("2026-11-21T19:00:00Z"), Some("x"))).unwrap();
        assert_eq!(w.until(), Some(at("2026-11-21T19:00:00Z")), "until wins");
        assert_eq!(
            LeaseWindow::parse(&lease(Some("soon"), None)).unwrap_err(),
            LeaseError::Until("soon".into())
        );
        assert_eq!(
            LeaseWindow::parse(&lease(None, None)).unwrap_err(),
            LeaseError::Missing
        );
        let w = LeaseWindow::parse(&lease(None, Some("Mon-Fri 07:00-19:00 UTC"))).unwrap();
        assert_eq!(w.until(), None);
        // Saturday: down, up again on Monday at 07:00.
        let s = w.state(at("2026-11-21T10:00:00Z"));
        assert!(!s.active);
        assert_eq!(s.next_change, Some(at("2026-11-23T07:00:00Z")));
    }

    #[test]
    fn go_durations() {
        assert_eq!(
            parse_go_duration("168h"),
            Some(SignedDuration::from_hours(168))
        );
        assert_eq!(
            parse_go_duration("1h30m"),
            Some(SignedDuration::from_mins(90))
        );
        assert_eq!(
            parse_go_duration("1.5h"),
            Some(SignedDuration::from_mins(90))
        );
        assert_eq!(parse_go_duration("7d"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("h"), None);
    }
}
