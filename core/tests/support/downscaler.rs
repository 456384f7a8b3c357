//! A test-only model of the grammar GoKubeDownscaler v1.3.4 reads from a
//! `downscaler/uptime` annotation (and from `DEFAULT_UPTIME` and the other
//! timespan settings).
//!
//! It models `timeSpans.Set` and the parsers it calls in
//! `internal/pkg/values/timespan.go` and `internal/pkg/values/dayTime.go` of
//! `github.com/caas-team/gokubedownscaler@v1.3.4`, written from reading that
//! source, not translated from it:
//!
//! ```text
//! value     = span *( "," span )          ; split on every ",", each span trimmed
//!                                         ; (strings.TrimSpace); an empty span is an error
//! span      = boolean / absolute / relative   ; tried in this order
//! boolean   = "always" / "true" / "never" / "false"         ; any case
//! absolute  = stamp *" " "-" *" " stamp   ; split where the regexp
//!                                         ; ^(.+Z|.+[+-]\d{2}:\d{2}) *- *(.+Z|.+[+-]\d{2}:\d{2})$
//!                                         ; puts it (leftmost-first, greedy), then each
//!                                         ; side trimmed and read by time.Parse(time.RFC3339, …)
//! relative  = [ day "-" day 1*ws ] hhmm "-" hhmm [ 1*ws zone ]   ; (?i), anchored
//! day       = "mon" / "tue" / "wed" / "thu" / "fri" / "sat" / "sun"    ; any case
//! hhmm      = 2DIGIT ":" 2DIGIT           ; hours 0..=24, minutes 0..=59
//! zone      = 1*( ALPHA / DIGIT / "/" / "_" / "+" / "-" )  ; then time.LoadLocation(zone)
//! ws        = %x09 / %x0A / %x0C / %x0D / %x20              ; RE2's \s
//! ```
//!
//! A relative span without days or zone parses, but the downscaler fills them
//! from its default week frame and zone when it evaluates the span, and fails
//! when those are unset; [`self_contained`] checks a value needs neither.
//!
//! The model is deliberately a subset where Go is more lenient, so that
//! "the model accepts" implies "v1.3.4 accepts" (and so it did on 80,000
//! generated values fed to both): RFC 3339 stamps need a
//! four-digit year, `T`, two-digit fields in range, a valid day of the month
//! and an offset of `Z` or `±HH:MM` with hours below 24 (Go's fallback layout
//! parser also takes one-digit hours, and `+24:00`), and must fall in jiff's
//! range, which ends on 9999-12-30; case-insensitive matching is ASCII-only (RE2's
//! `(?i)` also folds `ſ` and the Kelvin sign); `time.LoadLocation` is modelled
//! as exact, case-sensitive membership in the IANA names of jiff's bundled
//! database (the same 598 names as Go's `lib/time/zoneinfo.zip`, tzdata
//! 2026e), without Go's special `Local`, which would mean the downscaler's own
//! zone.

use jiff::Timestamp;
use jiff::tz::TimeZoneDatabase;

/// One span of a value.
#[derive(Clone, Debug, PartialEq)]
pub enum Span {
    /// `always`/`true` (up) or `never`/`false` (down).
    Boolean(bool),
    /// From `from` (inclusive) to `to` (exclusive).
    Absolute {
        /// Start.
        from: Timestamp,
        /// End.
        to: Timestamp,
    },
    /// A weekly window.
    Relative {
        /// First and last day, lower-case, when given.
        days: Option<(String, String)>,
        /// Start, minutes after midnight.
        from: u16,
        /// End, minutes after midnight.
        to: u16,
        /// The zone, when given.
        zone: Option<String>,
    },
}

/// Parses a value as v1.3.4's `timeSpans.Set` does; the error says why not.
pub fn parse(value: &str) -> Result<Vec<Span>, String> {
    value
        .split(',')
        .map(|span| parse_span(span.trim()))
        .collect()
}

/// Whether every span of a value that parses names its days and zone, so the
/// downscaler needs no default week frame or zone to evaluate it.
pub fn self_contained(spans: &[Span]) -> bool {
    spans.iter().all(|s| match s {
        Span::Relative { days, zone, .. } => days.is_some() && zone.is_some(),
        _ => true,
    })
}

/// Parses and is self-contained: what the project may write.
pub fn accepts(value: &str) -> Result<Vec<Span>, String> {
    let spans = parse(value)?;
    if !self_contained(&spans) {
        return Err(format!(
            "'{value}' leaves days or zone to the downscaler's defaults"
        ));
    }
    Ok(spans)
}

fn parse_span(span: &str) -> Result<Span, String> {
    match span.to_lowercase().as_str() {
        "always" | "true" => return Ok(Span::Boolean(true)),
        "never" | "false" => return Ok(Span::Boolean(false)),
        _ => {}
    }
    if let Some((from, to)) = absolute_split(span) {
        return Ok(Span::Absolute {
            from: rfc3339(from.trim())?,
            to: rfc3339(to.trim())?,
        });
    }
    relative(span)
}

// ---------------------------------------------------------------------------
// Absolute spans
// ---------------------------------------------------------------------------

/// Whether `s` (no line breaks: the regexp's `.` stops at them) ends in a
/// stamp ending: `.+Z` or `.+[+-]\d{2}:\d{2}`.
fn alternative_ends(s: &str, zulu: bool) -> bool {
    let b = s.as_bytes();
    if s.contains('\n') {
        return false;
    }
    if zulu {
        return b.len() >= 2 && b[b.len() - 1] == b'Z';
    }
    b.len() >= 7 && offset_at(&b[b.len() - 6..])
}

/// `[+-]\d{2}:\d{2}`.
fn offset_at(b: &[u8]) -> bool {
    matches!(b, [b'+' | b'-', h1, h2, b':', m1, m2]
        if [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()))
}

/// Where the absolute regexp splits `span` into its two stamps, if it matches
/// at all: the first alternative for the first stamp before the second, the
/// longest first stamp before shorter ones, as a backtracking matcher (and
/// Go's leftmost-first submatches) would.
fn absolute_split(span: &str) -> Option<(&str, &str)> {
    for zulu in [true, false] {
        for end in (1..=span.len()).rev() {
            let Some(first) = span.get(..end) else {
                continue;
            };
            if !alternative_ends(first, zulu) {
                continue;
            }
            let rest = span[end..].trim_start_matches(' ');
            let Some(second) = rest.strip_prefix('-') else {
                continue;
            };
            // Fewer spaces after "-" only lengthen the second stamp, so it
            // matches with some of them iff it matches with all of them.
            if alternative_ends(second, true) || alternative_ends(second, false) {
                return Some((first, second));
            }
        }
    }
    None
}

/// ASCII digits only (`\d` in RE2; Go's `strconv.Atoi` would also take a sign).
fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn days_in_month(year: u32, month: u32) -> u32 {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `time.Parse(time.RFC3339, s)`, strictly: `YYYY-MM-DDTHH:MM:SS[.fraction]`
/// then `Z` or `±HH:MM`.
fn rfc3339(s: &str) -> Result<Timestamp, String> {
    let bad = |why: &str| Err(format!("'{s}' is not RFC 3339: {why}"));
    let b = s.as_bytes();
    if b.len() < 20 || !s.is_ascii() {
        return bad("too short");
    }
    let layout_ok = b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':';
    if !layout_ok {
        return bad("not YYYY-MM-DDTHH:MM:SS");
    }
    let field = |range: std::ops::Range<usize>| digits(&s[range]);
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
        field(0..4),
        field(5..7),
        field(8..10),
        field(11..13),
        field(14..16),
        field(17..19),
    ) else {
        return bad("a field is not digits");
    };
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return bad("a field is out of range");
    }
    let mut rest = &s[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return bad("empty fraction");
        }
        rest = &fraction[n..];
    }
    match rest.as_bytes() {
        b"Z" => {}
        o if offset_at(o)
            && field(s.len() - 5..s.len() - 3).is_some_and(|h| h <= 23)
            && field(s.len() - 2..s.len()).is_some_and(|m| m <= 59) => {}
        _ => return bad("the offset is not Z or ±HH:MM"),
    }
    s.parse().map_err(|e| format!("'{s}': {e}"))
}

// ---------------------------------------------------------------------------
// Relative spans
// ---------------------------------------------------------------------------

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// RE2's `\s`.
fn is_re2_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0C' | '\r' | ' ')
}

fn hhmm(s: Option<&str>) -> Option<u16> {
    let (h, m) = s?.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m) = (digits(h)?, digits(m)?);
    (h <= 24 && m <= 59).then_some((h * 60 + m) as u16)
}

fn day(d: Option<&str>) -> Option<&'static str> {
    let d = d?;
    DAYS.iter().find(|n| n.eq_ignore_ascii_case(d)).copied()
}

fn relative(span: &str) -> Result<Span, String> {
    let bad = || Err(format!("'{span}' is not a relative timespan"));
    let mut rest = span;
    let mut days = None;
    // Optional "<day>-<day>" and at least one space. If it is there but the
    // rest does not match, the regexp tries without it, which needs a digit
    // first and fails just the same.
    if let (Some(from), Some(b'-'), Some(to), Some(tail)) = (
        day(rest.get(..3)),
        rest.as_bytes().get(3),
        day(rest.get(4..7)),
        rest.get(7..),
    ) && tail.starts_with(is_re2_space)
    {
        days = Some((from.to_owned(), to.to_owned()));
        rest = tail.trim_start_matches(is_re2_space);
    }
    let (Some(from), Some(b'-'), Some(to)) = (
        hhmm(rest.get(..5)),
        rest.as_bytes().get(5),
        hhmm(rest.get(6..11)),
    ) else {
        return bad();
    };
    rest = &rest[11..];
    let zone = if rest.is_empty() {
        None
    } else {
        let zone = rest.trim_start_matches(is_re2_space);
        let charset = |b: u8| b.is_ascii_alphanumeric() || b"/_+-".contains(&b);
        if zone.len() == rest.len() || zone.is_empty() || !zone.bytes().all(charset) {
            return bad();
        }
        if !load_location(zone) {
            return Err(format!("unknown time zone {zone}"));
        }
        Some(zone.to_owned())
    };
    Ok(Span::Relative {
        days,
        from,
        to,
        zone,
    })
}

/// `time.LoadLocation` with Go's embedded tzdata: exact names only.
fn load_location(name: &str) -> bool {
    TimeZoneDatabase::bundled()
        .available()
        .any(|n| n.as_str() == name)
}
