//! Times for people: relative ages and lease ends, and the time flags
//! (`--until 21:00`, `--for 2h`, `--days N --hour H`).
//!
//! Local times (`21:00`, `--hour 21`) are in the user's zone: `$TZ`, else
//! the system's. Everything sent to the cluster is RFC 3339 in UTC.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};

/// The moment and the zone a command works in; fixed in tests.
#[derive(Clone, Debug)]
pub struct Clock {
    /// Now.
    pub now: Timestamp,
    /// The user's time zone.
    pub zone: TimeZone,
}

impl Clock {
    /// The real clock in the user's zone (`$TZ`, else the system's, else UTC).
    pub fn system() -> Self {
        Clock {
            now: Timestamp::now(),
            zone: TimeZone::try_system().unwrap_or(TimeZone::UTC),
        }
    }

    /// A fixed clock.
    pub fn fixed(now: Timestamp, zone: TimeZone) -> Self {
        Clock { now, zone }
    }

    fn local(&self, t: Timestamp) -> Zoned {
        t.to_zoned(self.zone.clone())
    }
}

/// An age as `kubectl get` prints it: `45s`, `5m30s`, `3h`, `2d4h`, `400d`, `3y12d`.
pub fn age(d: SignedDuration) -> String {
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_rest(minutes, "m", seconds % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return with_rest(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return with_rest(hours / 24, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return with_rest(hours / 24 / 365, "y", (hours / 24) % 365, "d");
    }
    format!("{}y", hours / 24 / 365)
}

fn with_rest(big: i64, big_unit: &str, rest: i64, rest_unit: &str) -> String {
    if rest == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit}{rest}{rest_unit}")
    }
}

/// A span for a lease: `45s`, `20m`, `3h`, `2h30m`, `30h`, `2d`, `3d4h`.
pub fn span(d: SignedDuration) -> String {
    let seconds = d.as_secs().abs();
    let minutes = seconds / 60;
    let hours = minutes / 60;
    if seconds < 60 {
        format!("{seconds}s")
    } else if minutes < 60 {
        format!("{minutes}m")
    } else if hours < 10 {
        with_rest(hours, "h", minutes % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 7 {
        with_rest(hours / 24, "d", hours % 24, "h")
    } else {
        format!("{}d", hours / 24)
    }
}

/// A past moment for people, in the user's zone: `2026-11-21 09:00 UTC (3h ago)`.
pub fn moment(t: Timestamp, clock: &Clock) -> String {
    format!(
        "{} ({} ago)",
        clock.local(t).strftime("%Y-%m-%d %H:%M %Z"),
        age(clock.now.duration_since(t))
    )
}

/// A lease end for people, in the user's zone: `until 19:00 (in 3h)`,
/// `until tomorrow 19:00 (in 20h)`, `until Wed 19:00 (in 2d)`,
/// `until 2026-12-24 19:00 (in 33d)`, or `expired 2d ago`.
pub fn lease_end(until: Timestamp, clock: &Clock) -> String {
    if until <= clock.now {
        return format!("expired {} ago", span(clock.now.duration_since(until)));
    }
    let end = clock.local(until);
    let today = clock.local(clock.now).date();
    let days = (end.date() - today).get_days();
    let hhmm = end.strftime("%H:%M");
    let when = match days {
        0 => hhmm.to_string(),
        1 => format!("tomorrow {hhmm}"),
        2..=6 => format!("{} {hhmm}", end.strftime("%a")),
        _ => format!("{} {hhmm}", end.strftime("%Y-%m-%d")),
    };
    format!(
        "until {when} (in {})",
        span(until.duration_since(clock.now))
    )
}

/// Parses `--until`: `HH:MM` (the next such local time after now),
/// `YYYY-MM-DD HH:MM` (local) or RFC 3339. The result must be in the future.
pub fn parse_until(text: &str, clock: &Clock) -> Result<Timestamp, String> {
    let text = text.trim();
    let at = if let Ok(t) = text.parse::<Timestamp>() {
        t
    } else if let Ok(time) = text.parse::<Time>()
        && text.len() <= 8
    {
        let today = clock.local(clock.now).date();
        let at = local_at(today, time, clock)?;
        if at > clock.now {
            at
        } else {
            local_at(next_day(today)?, time, clock)?
        }
    } else if let Ok(dt) = text.replacen(' ', "T", 1).parse::<DateTime>() {
        local_at(dt.date(), dt.time(), clock)?
    } else {
        return Err(format!(
            "'{text}' is not a time: write HH:MM (e.g. 21:00, the next 21:00 in your zone), \
             YYYY-MM-DD HH:MM (local) or RFC 3339 (e.g. 2026-11-21T21:00:00Z)"
        ));
    };
    future(at, text, clock)
}

/// Parses a duration: Go form (`2h`, `90m`, `1h30m`, `45s`) or whole days (`2d`).
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let text = text.trim();
    let parsed = match text.strip_suffix('d') {
        Some(days) => days
            .parse::<i64>()
            .ok()
            .map(|d| SignedDuration::from_hours(d.saturating_mul(24))),
        None => ephemeral_core::lease::parse_go_duration(text),
    };
    match parsed {
        Some(d) if d.is_positive() => Ok(d),
        _ => Err(format!(
            "'{text}' is not a duration: write e.g. 2h, 90m, 1h30m, 45s or 2d"
        )),
    }
}

/// `--for D`: now plus the duration, in whole seconds.
pub fn parse_for(text: &str, clock: &Clock) -> Result<Timestamp, String> {
    let d = parse_duration(text)?;
    clock
        .now
        .checked_add(d)
        .map(ephemeral_core::lease::whole_seconds)
        .map_err(|_| format!("'{text}' is too long"))
}

/// `--days N --hour H`: hour H (local) on the day N days from today.
pub fn days_hour(days: u32, hour: u8, clock: &Clock) -> Result<Timestamp, String> {
    let text = format!("--days {days} --hour {hour}");
    let today = clock.local(clock.now).date();
    let day = today
        .checked_add(jiff::Span::new().days(i64::from(days)))
        .map_err(|_| format!("{text}: too far from today"))?;
    let time = Time::new(hour as i8, 0, 0, 0).map_err(|_| format!("{text}: no such hour"))?;
    let at = local_at(day, time, clock)?;
    future(at, &text, clock)
}

fn local_at(date: Date, time: Time, clock: &Clock) -> Result<Timestamp, String> {
    date.to_datetime(time)
        .to_zoned(clock.zone.clone())
        .map(|z| z.timestamp())
        .map_err(|e| format!("{date} {time} in your zone: {e}"))
}

fn next_day(date: Date) -> Result<Date, String> {
    date.tomorrow().map_err(|e| e.to_string())
}

fn future(at: Timestamp, text: &str, clock: &Clock) -> Result<Timestamp, String> {
    if at <= clock.now {
        let local = clock.local(at).strftime("%Y-%m-%d %H:%M %Z");
        return Err(format!(
            "{text} is {local}, which has passed; give a time in the future"
        ));
    }
    Ok(ephemeral_core::lease::whole_seconds(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(now: &str, zone: &str) -> Clock {
        Clock::fixed(now.parse().unwrap(), TimeZone::get(zone).unwrap())
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn ages_like_kubectl() {
        let s = SignedDuration::from_secs;
        assert_eq!(age(s(-5)), "<invalid>");
        assert_eq!(age(s(0)), "0s");
        assert_eq!(age(s(119)), "119s");
        assert_eq!(age(s(5 * 60 + 30)), "5m30s");
        assert_eq!(age(s(5 * 60)), "5m");
        assert_eq!(age(s(150 * 60)), "150m");
        assert_eq!(age(s(3 * 3600 + 20 * 60)), "3h20m");
        assert_eq!(age(s(30 * 3600)), "30h");
        assert_eq!(age(s(52 * 3600)), "2d4h");
        assert_eq!(age(s(400 * 86400)), "400d");
        assert_eq!(age(s(3 * 365 * 86400 + 12 * 86400)), "3y12d");
        assert_eq!(age(s(9 * 365 * 86400)), "9y");
    }

    #[test]
    fn lease_ends_read_naturally() {
        let c = clock("2026-11-21T09:00:00Z", "Europe/London");
        assert_eq!(
            lease_end(at("2026-11-21T19:00:00Z"), &c),
            "until 19:00 (in 10h)"
        );
        assert_eq!(
            lease_end(at("2026-11-21T11:30:00Z"), &c),
            "until 11:30 (in 2h30m)"
        );
        assert_eq!(
            lease_end(at("2026-11-22T19:00:00Z"), &c),
            "until tomorrow 19:00 (in 34h)"
        );
        // 2026-11-21 is a Saturday.
        assert_eq!(
            lease_end(at("2026-11-24T19:00:00Z"), &c),
            "until Tue 19:00 (in 3d10h)"
        );
        assert_eq!(
            lease_end(at("2026-12-24T19:00:00Z"), &c),
            "until 2026-12-24 19:00 (in 33d)"
        );
        assert_eq!(lease_end(at("2026-11-19T09:00:00Z"), &c), "expired 2d ago");
    }

    #[test]
    fn lease_ends_are_shown_in_the_users_zone() {
        let c = clock("2026-07-01T09:00:00Z", "Europe/London");
        assert_eq!(
            lease_end(at("2026-07-01T18:00:00Z"), &c),
            "until 19:00 (in 9h)"
        );
    }

    #[test]
    fn until_hh_mm_is_the_next_such_local_time() {
        let c = clock("2026-07-01T09:00:00Z", "Europe/London"); // 10:00 local
        assert_eq!(parse_until("21:00", &c), Ok(at("2026-07-01T20:00:00Z")));
        assert_eq!(parse_until("09:30", &c), Ok(at("2026-07-02T08:30:00Z")));
        assert_eq!(
            parse_until("2026-07-03 18:00", &c),
            Ok(at("2026-07-03T17:00:00Z"))
        );
        assert_eq!(
            parse_until("2026-07-03T18:00:00Z", &c),
            Ok(at("2026-07-03T18:00:00Z"))
        );
        assert!(
            parse_until("2026-06-30T18:00:00Z", &c)
                .unwrap_err()
                .contains("has passed")
        );
        assert!(parse_until("teatime", &c).unwrap_err().contains("HH:MM"));
        assert!(parse_until("25:00", &c).is_err());
    }

    #[test]
    fn for_and_days_hour() {
        let c = clock("2026-11-21T09:15:30.5Z", "UTC");
        assert_eq!(parse_for("2h", &c), Ok(at("2026-11-21T11:15:30Z")));
        assert_eq!(parse_for("1h30m", &c), Ok(at("2026-11-21T10:45:30Z")));
        assert_eq!(parse_for("2d", &c), Ok(at("2026-11-23T09:15:30Z")));
        assert!(parse_for("soon", &c).unwrap_err().contains("2h"));
        assert!(parse_for("0s", &c).is_err());
        assert_eq!(days_hour(2, 21, &c), Ok(at("2026-11-23T21:00:00Z")));
        assert_eq!(days_hour(0, 19, &c), Ok(at("2026-11-21T19:00:00Z")));
        assert!(days_hour(0, 8, &c).unwrap_err().contains("has passed"));
    }

    #[test]
    fn spans() {
        let s = SignedDuration::from_secs;
        assert_eq!(span(s(30)), "30s");
        assert_eq!(span(s(20 * 60)), "20m");
        assert_eq!(span(s(3 * 3600)), "3h");
        assert_eq!(span(s(24 * 86400)), "24d");
    }
}
