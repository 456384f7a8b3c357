//! Weekly uptime windows in GoKubeDownscaler's relative form:
//! `<Day>-<Day> <HH:MM>-<HH:MM> <IANA zone>`, several separated by commas,
//! e.g. `Mon-Fri 07:00-19:00 Europe/London, Sat-Sat 10:00-14:00 UTC`.
//!
//! Days are `Mon` … `Sun` (any case); a day range may wrap (`Fri-Mon`). Times
//! run from `00:00` to `24:00`; `24:00` only ends a window. A window whose end
//! is before its start runs past midnight into the next day.
//!
//! What this project writes for the downscaler is a parsed schedule's
//! [`Display`](std::fmt::Display) form, never the text as typed: every window
//! with its day range, `Mon`-style days, two-digit `HH:MM`, one space between
//! parts, `, ` between windows (no empty window, no trailing comma) and the
//! zone spelled exactly as the IANA database spells it. GoKubeDownscaler loads
//! zones with Go's case-sensitive `time.LoadLocation`, so a zone typed in
//! another case (`europe/london`) is matched case-insensitively against the
//! database's names ([`canonical_zone`]) and written in the database's case
//! (`Europe/London`); a name that matches none is refused, with the nearest
//! names as the fix.

use std::fmt;
use std::sync::OnceLock;

use jiff::{
    Timestamp,
    civil::Weekday,
    tz::{TimeZone, TimeZoneDatabase},
};

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
    /// The zone's IANA name, spelled as the database spells it.
    pub zone_name: &'static str,
    /// The zone's name as it was typed (any ASCII case).
    pub zone_typed: String,
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
    /// What to write instead.
    pub fix: String,
}

/// The fix for a window that is not in the weekly form.
const FORM_FIX: &str =
    "use GoKubeDownscaler's weekly form, e.g. 'Mon-Fri 07:00-19:00 Europe/London'";

/// Why a window does not parse, and what to write instead.
struct Problem {
    reason: String,
    fix: String,
}

impl From<String> for Problem {
    fn from(reason: String) -> Self {
        Problem {
            reason,
            fix: FORM_FIX.to_owned(),
        }
    }
}

const DAYS: [(&str, Weekday); 7] = [
    ("Mon", Weekday::Monday),
    ("Tue", Weekday::Tuesday),
    ("Wed", Weekday::Wednesday),
    ("Thu", Weekday::Thursday),
    ("Fri", Weekday::Friday),
    ("Sat", Weekday::Saturday),
    ("Sun", Weekday::Sunday),
];

fn parse_day(s: &str) -> Result<Weekday, String> {
    DAYS.iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, d)| *d)
        .ok_or_else(|| format!("'{s}' is not a day (use Mon, Tue, Wed, Thu, Fri, Sat or Sun)"))
}

fn day_name(day: Weekday) -> &'static str {
    DAYS.iter()
        .find(|(_, d)| *d == day)
        .map(|(name, _)| *name)
        .expect("every weekday has a name")
}

/// Two ASCII digits, as the downscaler's `\d{2}` reads them.
fn two_digits(s: &str) -> Option<u16> {
    match s.as_bytes() {
        [a @ b'0'..=b'9', b @ b'0'..=b'9'] => Some(u16::from(a - b'0') * 10 + u16::from(b - b'0')),
        _ => None,
    }
}

fn parse_time(s: &str) -> Result<u16, String> {
    let bad = || format!("'{s}' is not a time (use HH:MM from 00:00 to 24:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let h = two_digits(h).ok_or_else(bad)?;
    let m = two_digits(m).ok_or_else(bad)?;
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Every zone name of the bundled IANA database (the same names Go's
/// `time/tzdata`, which GoKubeDownscaler embeds, holds).
pub fn zone_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<String> = TimeZoneDatabase::bundled()
            .available()
            .map(|n| n.as_str().to_owned())
            .collect();
        names.sort();
        names
    })
}

/// The IANA name `typed` stands for, spelled as the database spells it:
/// `europe/london` gives `Europe/London`. None when no name matches, ignoring
/// ASCII case.
pub fn canonical_zone(typed: &str) -> Option<&'static str> {
    zone_names()
        .iter()
        .find(|n| n.eq_ignore_ascii_case(typed))
        .map(String::as_str)
}

/// Names close to `typed`, for a fix: those with the same last part
/// (`london` → `Europe/London`), else those within two edits.
fn zone_suggestions(typed: &str) -> Vec<&'static str> {
    let typed = typed.to_ascii_lowercase();
    let last = |n: &str| n.rsplit('/').next().unwrap_or_default().to_owned();
    let typed_last = last(&typed);
    let same_last: Vec<&'static str> = zone_names()
        .iter()
        .filter(|n| last(&n.to_ascii_lowercase()) == typed_last)
        .map(String::as_str)
        .collect();
    if !same_last.is_empty() {
        return same_last.into_iter().take(3).collect();
    }
    let mut near: Vec<(usize, &'static str)> = zone_names()
        .iter()
        .map(|n| (edit_distance(&typed, &n.to_ascii_lowercase()), n.as_str()))
        .filter(|(d, _)| *d <= 2)
        .collect();
    near.sort();
    near.into_iter().take(3).map(|(_, n)| n).collect()
}

/// Levenshtein distance over bytes (zone names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

fn parse_zone(typed: &str) -> Result<(TimeZone, &'static str), Problem> {
    let Some(name) = canonical_zone(typed) else {
        let suggestions = zone_suggestions(typed);
        let fix = match suggestions.as_slice() {
            [] => "use an IANA time zone such as UTC, Europe/London or America/New_York, e.g. 'Mon-Fri 07:00-19:00 Europe/London'".to_owned(),
            [one] => format!("write the zone as '{one}'"),
            several => format!(
                "write the zone as one of {}",
                several.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
            ),
        };
        return Err(Problem {
            reason: format!("'{typed}' is not an IANA time zone"),
            fix,
        });
    };
    let zone = TimeZoneDatabase::bundled()
        .get(name)
        .expect("a name the database lists loads");
    Ok((zone, name))
}

fn parse_window(text: &str) -> Result<Window, Problem> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [days, times, zone] = parts.as_slice() else {
        return Err(String::from("expected '<Day>-<Day> <HH:MM>-<HH:MM> <zone>', e.g. 'Mon-Fri 07:00-19:00 Europe/London'").into());
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
        return Err(String::from("a window cannot start at 24:00").into());
    }
    if start == end {
        return Err(format!("'{times}' is empty (start equals end)").into());
    }
    let (zone_tz, zone_name) = parse_zone(zone)?;
    Ok(Window {
        from_day: parse_day(from_day)?,
        to_day: parse_day(to_day)?,
        start,
        end,
        zone: zone_tz,
        zone_name,
        zone_typed: (*zone).to_owned(),
    })
}

impl Schedule {
    /// Parses a schedule; every window must parse.
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let windows = text
            .split(',')
            .enumerate()
            .map(|(i, w)| {
                parse_window(w.trim()).map_err(|p| ScheduleError {
                    index: i + 1,
                    window: w.trim().to_owned(),
                    reason: p.reason,
                    fix: p.fix,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Schedule { windows })
    }

    /// Whether the schedule is up at `at`.
    pub fn is_up(&self, at: Timestamp) -> bool {
        self.windows.iter().any(|w| w.is_up(at))
    }

    /// Zones typed in another case than the database's: (as typed, as written).
    pub fn renamed_zones(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.windows
            .iter()
            .filter(|w| w.zone_typed != w.zone_name)
            .map(|w| (w.zone_typed.as_str(), w.zone_name))
    }
}

/// The form written for GoKubeDownscaler, e.g.
/// `Mon-Fri 07:00-19:00 Europe/London, Sat-Sat 10:00-24:00 UTC`.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, w) in self.windows.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{w}")?;
        }
        Ok(())
    }
}

/// `Mon-Fri 07:00-19:00 Europe/London`.
impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{} {:02}:{:02}-{:02}:{:02} {}",
            day_name(self.from_day),
            day_name(self.to_day),
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60,
            self.zone_name
        )
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

    #[test]
    fn times_are_two_ascii_digits() {
        for bad in ["+7:00", "7:00", "007:00", "07:0", "٠٧:00", "07:+0", " 7:00"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_time("00:00"), Ok(0));
        assert_eq!(parse_time("24:00"), Ok(1440));
    }

    #[test]
    fn no_empty_window_or_trailing_comma() {
        for text in [
            "",
            " ",
            "Mon-Fri 07:00-19:00 UTC,",
            ",Mon-Fri 07:00-19:00 UTC",
            "Mon-Fri 07:00-19:00 UTC,,Sat-Sun 10:00-14:00 UTC",
        ] {
            let err = Schedule::parse(text).unwrap_err();
            assert!(err.reason.contains("expected"), "{text:?}: {err}");
        }
    }

    #[test]
    fn zones_are_written_as_the_database_spells_them() {
        let cases = [
            ("europe/london", "Europe/London"),
            ("EUROPE/LONDON", "Europe/London"),
            ("utc", "UTC"),
            ("etc/gmt+5", "Etc/GMT+5"),
            ("america/port-au-prince", "America/Port-au-Prince"),
            ("America/New_York", "America/New_York"),
        ];
        for (typed, written) in cases {
            let s = Schedule::parse(&format!("mon-FRI 07:00-19:00 {typed}")).unwrap();
            assert_eq!(s.to_string(), format!("Mon-Fri 07:00-19:00 {written}"));
            let renamed: Vec<_> = s.renamed_zones().collect();
            if typed == written {
                assert!(renamed.is_empty(), "{typed}");
            } else {
                assert_eq!(renamed, [(typed, written)]);
            }
        }
    }

    #[test]
    fn the_written_form_is_canonical() {
        let s =
            Schedule::parse("  fri-MON   22:00-06:00\tamerica/new_york ,sat-sat 10:00-24:00 UTC  ")
                .unwrap();
        let written = s.to_string();
        assert_eq!(
            written,
            "Fri-Mon 22:00-06:00 America/New_York, Sat-Sat 10:00-24:00 UTC"
        );
        assert_eq!(Schedule::parse(&written).unwrap().to_string(), written);
    }

    #[test]
    fn unknown_zones_are_refused_with_the_nearest_names() {
        let cases = [
            ("Europe/Lodnon", "write the zone as 'Europe/London'"),
            ("london", "write the zone as 'Europe/London'"),
            ("Asia/Calcuta", "write the zone as 'Asia/Calcutta'"),
            ("Mars/Olympus", "such as UTC, Europe/London"),
            // jiff's own name for "no zone": Go cannot load it.
            ("Etc/Unknown", "such as UTC"),
            // Go's "Local" is the downscaler's zone, whatever that is.
            ("Local", "such as UTC"),
        ];
        for (typed, fix) in cases {
            let err = Schedule::parse(&format!("Mon-Fri 07:00-19:00 {typed}")).unwrap_err();
            assert_eq!(err.reason, format!("'{typed}' is not an IANA time zone"));
            assert!(err.fix.contains(fix), "{typed}: {}", err.fix);
        }
    }

    #[test]
    fn zone_names_differ_by_more_than_case() {
        let names = zone_names();
        assert!(names.len() > 500, "{}", names.len());
        let mut lower: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        lower.sort();
        lower.dedup();
        assert_eq!(lower.len(), names.len());
        assert!(names.iter().all(|n| {
            n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
        }));
    }
}
