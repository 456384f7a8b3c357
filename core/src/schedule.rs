//! Weekly uptime windows in GoKubeDownscaler's relative form:
//! `<Day>-<Day> <HH:MM>-<HH:MM> <IANA zone>`, several separated by commas,
//! e.g. `Mon-Fri 07:00-19:00 Europe/London, Sat-Sat 10:00-14:00 UTC`.
//!
//! Days are `Mon` … `Sun` (any case); a day range may wrap (`Fri-Mon`). Times
//! run from `00:00` to `24:00`; `24:00` only ends a window. A window whose end
//! is before its start runs past midnight into the next day.

use jiff::{Timestamp, civil::Weekday, tz::TimeZone};

/// One weekly window.
#[derive(Clone, Debug)]
pub struct Window {
    /// First day of the range.
    pub from_day: Weekday,
    /// Last day of the range (may wrap past Sunday).
    pub to_day: Weekday,
    /// Start, minutes after midnight.
    pub start: u16,
    /// End, minutes after midnight (1440 = 24:00).
    pub end: u16,
    /// The zone the times are in.
    pub zone: TimeZone,
}

/// A parsed schedule: one or more weekly windows.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The windows; the schedule is up when any window is.
    pub windows: Vec<Window>,
}

/// Why a schedule does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("window {index} ('{window}'): {reason}")]
pub struct ScheduleError {
    /// 1-based index of the bad window.
    pub index: usize,
    /// The window's text.
    pub window: String,
    /// What is wrong with it.
    pub reason: String,
}

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

fn parse_day(s: &str) -> Result<Weekday, String> {
    DAYS.iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, d)| *d)
        .ok_or_else(|| format!("'{s}' is not a day (use Mon, Tue, Wed, Thu, Fri, Sat or Sun)"))
}

fn parse_time(s: &str) -> Result<u16, String> {
    let bad = || format!("'{s}' is not a time (use HH:MM from 00:00 to 24:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn parse_window(text: &str) -> Result<Window, String> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [days, times, zone] = parts.as_slice() else {
        return Err("expected '<Day>-<Day> <HH:MM>-<HH:MM> <zone>', e.g. 'Mon-Fri 07:00-19:00 Europe/London'".to_owned());
    };
    let (from_day, to_day) = days
        .split_once('-')
        .ok_or_else(|| format!("'{days}' is not a day range (e.g. Mon-Fri)"))?;
    let (start, end) = times
        .split_once('-')
        .ok_or_else(|| format!("'{times}' is not a time range (e.g. 07:00-19:00)"))?;
    let start = parse_time(start)?;
    let end = parse_time(end)?;
    if start == 1440 {
        return Err("a window cannot start at 24:00".to_owned());
    }
    if start == end {
        return Err(format!("'{times}' is empty (start equals end)"));
    }
    let zone = TimeZone::get(zone).map_err(|_| {
        format!("'{zone}' is not an IANA time zone (e.g. UTC, Europe/London, America/New_York)")
    })?;
    Ok(Window {
        from_day: parse_day(from_day)?,
        to_day: parse_day(to_day)?,
        start,
        end,
        zone,
    })
}

impl Schedule {
    /// Parses a schedule; every window must parse.
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let windows = text
            .split(',')
            .enumerate()
            .map(|(i, w)| {
                parse_window(w.trim()).map_err(|reason| ScheduleError {
                    index: i + 1,
                    window: w.trim().to_owned(),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Schedule { windows })
    }

    /// Whether the schedule is up at `at`.
    pub fn is_up(&self, at: Timestamp) -> bool {
        self.windows.iter().any(|w| w.is_up(at))
    }
}

impl Window {
    fn covers_day(&self, day: Weekday) -> bool {
        let from = self.from_day.to_monday_zero_offset();
        let to = self.to_day.to_monday_zero_offset();
        let d = day.to_monday_zero_offset();
        if from <= to {
            (from..=to).contains(&d)
        } else {
            d >= from || d <= to
        }
    }

    /// Whether this window is up at `at`.
    pub fn is_up(&self, at: Timestamp) -> bool {
        let local = at.to_zoned(self.zone.clone());
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        let day = local.weekday();
        if self.start < self.end {
            self.covers_day(day) && (self.start..self.end).contains(&minute)
        } else {
            // Past midnight: the evening part belongs to a covered day, the
            // morning part to the day after one.
            (self.covers_day(day) && minute >= self.start)
                || (self.covers_day(day.previous()) && minute < self.end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_evaluates_office_hours() {
        let s = Schedule::parse("Mon-Fri 07:00-19:00 Europe/London").unwrap();
        // 2026-11-20 is a Friday; London is on UTC in November.
        assert!(s.is_up(at("2026-11-20T07:00:00Z")));
        assert!(s.is_up(at("2026-11-20T18:59:00Z")));
        assert!(!s.is_up(at("2026-11-20T19:00:00Z")));
        assert!(!s.is_up(at("2026-11-21T12:00:00Z")), "Saturday");
        // Summer time: 07:00 London is 06:00 UTC.
        assert!(s.is_up(at("2026-07-01T06:30:00Z")));
    }

    #[test]
    fn wraps_days_and_midnight() {
        let s = Schedule::parse("fri-mon 22:00-06:00 UTC").unwrap();
        assert!(s.is_up(at("2026-11-20T23:00:00Z")), "Friday night");
        assert!(
            s.is_up(at("2026-11-24T05:00:00Z")),
            "Tuesday early, after Monday"
        );
        assert!(!s.is_up(at("2026-11-25T05:00:00Z")), "Wednesday early");
        assert!(!s.is_up(at("2026-11-20T12:00:00Z")));
    }

    #[test]
    fn several_windows() {
        let s = Schedule::parse("Mon-Fri 07:00-19:00 UTC, Sat-Sat 10:00-24:00 UTC").unwrap();
        assert_eq!(s.windows.len(), 2);
        assert!(s.is_up(at("2026-11-21T23:59:00Z")));
    }

    #[test]
    fn rejects_with_reasons() {
        let cases = [
            ("Mon-Fri 07:00-19:00", "expected"),
            ("Mon-Fry 07:00-19:00 UTC", "'Fry' is not a day"),
            ("Mon-Fri 7:00-19:00 UTC", "'7:00' is not a time"),
            ("Mon-Fri 07:00-24:30 UTC", "'24:30' is not a time"),
            ("Mon-Fri 24:00-07:00 UTC", "cannot start at 24:00"),
            ("Mon-Fri 07:00-07:00 UTC", "empty"),
            ("Mon-Fri 07:00-19:00 Mars/Olympus", "not an IANA time zone"),
            ("Mon 07:00-19:00 UTC", "not a day range"),
        ];
        for (text, want) in cases {
            let err = Schedule::parse(text).unwrap_err();
            assert!(err.reason.contains(want), "{text}: {err}");
        }
        let err = Schedule::parse("Mon-Fri 07:00-19:00 UTC,Sat-Sun x UTC").unwrap_err();
        assert_eq!(err.index, 2);
    }
}
