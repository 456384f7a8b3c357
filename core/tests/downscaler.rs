//! Every value this project writes for GoKubeDownscaler — the
//! `downscaler/uptime` annotation, the `downscaler_uptime` postBuild
//! substitution and Helm `values.ephemeral.downscaler_uptime` — is one that
//! v1.3.4's parser accepts and can evaluate without defaults. One unreadable
//! annotation fails the downscaler's whole scan, cluster-wide.
//!
//! The parser is modelled in `support/downscaler.rs`; its examples below were
//! checked against v1.3.4's own `timeSpans.Set`.

#[path = "support/downscaler.rs"]
mod downscaler;

use std::collections::BTreeMap;

use ephemeral_core::api::{
    App, AppTemplateSpec, EnvironmentSpec, HelmSource, KustomizationSource, Lease, SourceRef,
};
use ephemeral_core::expand::UPTIME_ANNOTATION;
use ephemeral_core::flux::FluxObject;
use ephemeral_core::lease::{self, EARLIEST_RFC3339};
use ephemeral_core::schedule::{Schedule, zone_names};
use ephemeral_core::{AppTemplate, Catalog, Config, Environment, Expansion, expand};
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use downscaler::Span;

// ---------------------------------------------------------------------------
// The model, on examples v1.3.4 accepts and refuses
// ---------------------------------------------------------------------------

/// Accepted by v1.3.4's `timeSpans.Set` (checked with the real parser).
const GO_ACCEPTS: &[&str] = &[
    "Mon-Fri 07:00-19:00 Europe/London",
    "mon-fri 07:00-19:00 Europe/London",
    "MON-FRI\t07:00-19:00   UTC",
    "Fri-Mon 22:00-06:00 America/New_York, Sat-Sat 10:00-14:00 UTC",
    "Mon-Sun 00:00-24:00 UTC",
    "Mon-Fri 07:00-19:00 Etc/GMT+5",
    "Mon-Fri 07:00-19:00 America/Port-au-Prince",
    "Mon-Fri 07:00-19:00 NZ",
    "07:00-19:00",
    "07:00-19:00 UTC",
    "Mon-Fri 07:00-19:00",
    "2026-11-21T09:00:00+00:00-2026-11-21T19:00:00+00:00",
    "2026-11-21T09:00:00Z - 2026-11-21T19:00:00Z",
    "2026-11-21T09:00:00.5Z-2026-11-21T19:00:00-05:30",
    "0000-01-01T00:00:00+00:00-2026-11-21T19:00:00+00:00",
    "2024-02-29T00:00:00Z-2024-03-01T00:00:00Z",
    "always",
    "Never",
    "  Mon-Fri 07:00-19:00 UTC ,  always ",
];

/// Refused by v1.3.4's `timeSpans.Set` (checked with the real parser).
const GO_REFUSES: &[&str] = &[
    "",
    "Mon-Fri 07:00-19:00 europe/london",
    "Mon-Sun 00:00-24:00 utc",
    "Mon-Fri 07:00-19:00 Etc/Unknown",
    "Mon-Fri 07:00-19:00 UTC,",
    "Mon-Fri 07:00-19:00 UTC,,Sat-Sun 10:00-14:00 UTC",
    "Mon-Fri 7:00-19:00 UTC",
    "Mon-Fri 07:00-25:00 UTC",
    "Mon-Fri 07:00-19:60 UTC",
    "Mon 07:00-19:00 UTC",
    "Monday-Friday 07:00-19:00 UTC",
    "Mon-Fri 07:00-19:00 Europe/London from 2026-01-01",
    "Mon-Fri\u{a0}07:00-19:00 UTC",
    "Mon-Fri 07:00-19:00\u{b}UTC",
    "-0001-01-01T00:00:00+00:00-2026-11-21T19:00:00+00:00",
    "2026-11-21T09:00:00+00:00-2026-11-21T19:00:00+0000",
    "2026-02-30T09:00:00Z-2026-03-01T19:00:00Z",
    "2026-11-21T24:00:00Z-2026-11-22T19:00:00Z",
    "until 2026-11-21T19:00:00Z",
];

#[test]
fn the_model_accepts_what_the_downscaler_accepts() {
    for value in GO_ACCEPTS {
        assert!(
            downscaler::parse(value).is_ok(),
            "{value:?}: {:?}",
            downscaler::parse(value)
        );
    }
}

#[test]
fn the_model_refuses_what_the_downscaler_refuses() {
    for value in GO_REFUSES {
        assert!(downscaler::parse(value).is_err(), "{value:?}");
    }
}

#[test]
fn the_model_reads_spans_as_the_downscaler_does() {
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    assert_eq!(
        downscaler::parse("2026-11-21T09:00:00+00:00-2026-11-21T19:00:00+01:00").unwrap(),
        [Span::Absolute {
            from: at("2026-11-21T09:00:00Z"),
            to: at("2026-11-21T18:00:00Z"),
        }]
    );
    assert_eq!(
        downscaler::parse("fri-MON 22:00-06:00 America/New_York").unwrap(),
        [Span::Relative {
            days: Some(("fri".into(), "mon".into())),
            from: 22 * 60,
            to: 6 * 60,
            zone: Some("America/New_York".into()),
        }]
    );
}

#[test]
fn spans_without_days_or_zone_need_the_downscalers_defaults() {
    for value in ["07:00-19:00", "07:00-19:00 UTC", "Mon-Fri 07:00-19:00"] {
        let spans = downscaler::parse(value).unwrap();
        assert!(!downscaler::self_contained(&spans), "{value}");
        assert!(downscaler::accepts(value).is_err(), "{value}");
    }
    assert!(downscaler::accepts("Mon-Fri 07:00-19:00 UTC, always").is_ok());
}

// ---------------------------------------------------------------------------
// The project's own forms, rule by rule
// ---------------------------------------------------------------------------

#[test]
fn every_zone_in_any_case_is_written_as_the_database_spells_it() {
    for name in zone_names() {
        for typed in [
            name.to_ascii_lowercase(),
            name.to_ascii_uppercase(),
            name.clone(),
        ] {
            let written = Schedule::parse(&format!("Mon-Fri 07:00-19:00 {typed}"))
                .unwrap_or_else(|e| panic!("{typed}: {e}"))
                .to_string();
            assert_eq!(written, format!("Mon-Fri 07:00-19:00 {name}"));
            downscaler::accepts(&written).unwrap();
        }
    }
}

#[test]
fn absolute_uptimes_are_rfc3339_with_an_offset_and_whole_seconds() {
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    let value = lease::absolute_uptime(
        at("2026-11-21T09:00:00.75Z"),
        at("2026-11-21T19:00:00+01:00"),
    );
    assert_eq!(value, "2026-11-21T09:00:00+00:00-2026-11-21T18:00:00+00:00");
    downscaler::accepts(&value).unwrap();
    let value = lease::absolute_uptime(EARLIEST_RFC3339, Timestamp::MAX);
    assert_eq!(value, "0000-01-01T00:00:00+00:00-9999-12-30T22:00:00+00:00");
    downscaler::accepts(&value).unwrap();
}

// ---------------------------------------------------------------------------
// Expansion writes only values the model accepts
// ---------------------------------------------------------------------------

const NAMESPACE: &str = "ephemeral";
const OWNER: &str = "alice";

fn catalog() -> Catalog {
    let source = |kind: &str| SourceRef {
        kind: kind.into(),
        name: "platform".into(),
        namespace: Some("flux-system".into()),
    };
    let mut catalog = Catalog::default();
    let templates = [
        (
            "checkout",
            AppTemplateSpec {
                kustomization: Some(KustomizationSource {
                    path: "./apps/checkout".into(),
                    source_ref: source("GitRepository"),
                }),
                ..AppTemplateSpec::default()
            },
        ),
        (
            "ledger",
            AppTemplateSpec {
                helm: Some(HelmSource {
                    chart: "ledger".into(),
                    version: None,
                    source_ref: source("HelmRepository"),
                    values: None,
                }),
                ..AppTemplateSpec::default()
            },
        ),
    ];
    for (name, spec) in templates {
        let mut t = AppTemplate::new(name, spec);
        t.metadata.namespace = Some(NAMESPACE.into());
        catalog.insert_template(t);
    }
    catalog
}

/// A zone name as a person might type it: the database's spelling with the
/// case of some letters flipped.
fn zone_spelling() -> impl Strategy<Value = String> {
    (
        prop::sample::select(zone_names().to_vec()),
        prop::collection::vec(any::<bool>(), 40),
    )
        .prop_map(|(name, flips)| {
            name.chars()
                .zip(flips.into_iter().chain(std::iter::repeat(false)))
                .map(|(c, flip)| match (flip, c.is_ascii_uppercase()) {
                    (false, _) => c,
                    (true, true) => c.to_ascii_lowercase(),
                    (true, false) => c.to_ascii_uppercase(),
                })
                .collect()
        })
}

fn day_spelling() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
        prop::sample::select(vec![0u8, 1, 2]),
    )
        .prop_map(|(d, case)| match case {
            0 => d.to_owned(),
            1 => d.to_ascii_lowercase(),
            _ => d.to_ascii_uppercase(),
        })
}

fn space() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![" ", " ", "  ", "\t", " \t "])
}

/// One window, in a person's spelling (days in any case, runs of spaces and
/// tabs, the zone in any case).
fn window() -> impl Strategy<Value = String> {
    (
        day_spelling(),
        day_spelling(),
        0u16..1440,
        1u16..=1440,
        zone_spelling(),
        space(),
        space(),
    )
        .prop_filter("start differs from end", |(_, _, start, end, ..)| {
            start != end
        })
        .prop_map(|(from, to, start, end, zone, s1, s2)| {
            format!(
                "{from}-{to}{s1}{:02}:{:02}-{:02}:{:02}{s2}{zone}",
                start / 60,
                start % 60,
                end / 60,
                end % 60
            )
        })
}

/// A schedule of one to four windows, separated by commas with or without spaces.
fn schedule_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(window(), 1..=4),
        prop::sample::select(vec![",", ", ", " , ", ",\t"]),
        space(),
    )
        .prop_map(|(windows, comma, pad)| format!("{pad}{}{pad}", windows.join(comma)))
}

/// Any instant jiff can hold, biased towards the present.
fn instant() -> impl Strategy<Value = Timestamp> {
    let min = Timestamp::MIN.as_second();
    let max = Timestamp::MAX.as_second();
    prop_oneof![
        3 => (946_684_800i64..4_102_444_800, 0i32..1_000_000_000),
        1 => (min..=max, 0i32..1_000_000_000),
    ]
    .prop_map(|(s, ns)| Timestamp::new(s, ns).unwrap_or(Timestamp::new(s, 0).unwrap()))
}

/// An instant spelt in RFC 3339 (or jiff's wider form), with some offset.
fn spelling(t: Timestamp, offset_minutes: i32, fraction: bool) -> String {
    let offset = Offset::from_seconds(offset_minutes * 60).unwrap();
    let zoned = t.to_zoned(TimeZone::fixed(offset));
    if fraction {
        zoned.timestamp().display_with_offset(offset).to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

#[derive(Clone, Debug)]
enum LeaseCase {
    Default,
    Until {
        at: Timestamp,
        offset_minutes: i32,
        fraction: bool,
    },
    /// `until` this many minutes from now (negative: ended).
    UntilNear(i64),
    Schedule(String),
}

fn lease_case() -> impl Strategy<Value = LeaseCase> {
    prop_oneof![
        1 => Just(LeaseCase::Default),
        2 => (instant(), -23 * 60 - 59..=23 * 60 + 59, any::<bool>()).prop_map(
            |(at, offset_minutes, fraction)| LeaseCase::Until { at, offset_minutes, fraction }
        ),
        2 => (-100_000i64..=7 * 24 * 60).prop_map(LeaseCase::UntilNear),
        3 => schedule_text().prop_map(LeaseCase::Schedule),
    ]
}

#[derive(Clone, Debug)]
enum Annotation {
    None,
    /// A stamped uptime from instants anywhere in jiff's range.
    Stale(Timestamp, Timestamp),
    Text(String),
}

fn annotation() -> impl Strategy<Value = Annotation> {
    prop_oneof![
        2 => Just(Annotation::None),
        2 => (instant(), instant()).prop_map(|(a, b)| Annotation::Stale(a, b)),
        1 => "\\PC{0,30}".prop_map(Annotation::Text),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    lease: LeaseCase,
    annotation: Annotation,
    /// The environment is always on, with this configured schedule.
    always_on: Option<String>,
    now: Timestamp,
}

fn case() -> impl Strategy<Value = Case> {
    (
        lease_case(),
        annotation(),
        prop::option::weighted(0.2, schedule_text()),
        (946_684_800i64..4_102_444_800).prop_map(|s| Timestamp::from_second(s).unwrap()),
    )
        .prop_map(|(lease, annotation, always_on, now)| Case {
            lease,
            annotation,
            always_on,
            now,
        })
}

impl Case {
    fn config(&self) -> Config {
        let mut config = Config::default();
        if let Some(text) = &self.always_on {
            config.always_on = vec!["env".into()];
            config.always_on_schedule = Schedule::parse(text).unwrap();
        }
        config
    }

    fn typed_schedule(&self) -> Option<&str> {
        match &self.lease {
            LeaseCase::Schedule(s) if self.always_on.is_none() => Some(s),
            _ => None,
        }
    }

    fn environment(&self) -> Environment {
        let until = |text: String| Lease {
            until: Some(text),
            ..Lease::default()
        };
        let lease = match &self.lease {
            LeaseCase::Default => None,
            LeaseCase::Until {
                at,
                offset_minutes,
                fraction,
            } => Some(until(spelling(*at, *offset_minutes, *fraction))),
            LeaseCase::UntilNear(minutes) => Some(until(
                (self.now + SignedDuration::from_mins(*minutes)).to_string(),
            )),
            LeaseCase::Schedule(text) => Some(Lease {
                schedule: Some(text.clone()),
                ..Lease::default()
            }),
        };
        let mut env = Environment::new(
            "env",
            EnvironmentSpec {
                apps: ["checkout", "ledger"]
                    .map(|name| App {
                        name: name.into(),
                        ..App::default()
                    })
                    .to_vec(),
                lease,
                ..EnvironmentSpec::default()
            },
        );
        env.metadata.namespace = Some(NAMESPACE.into());
        let annotation = match &self.annotation {
            Annotation::None => None,
            Annotation::Stale(a, b) => Some(format!("{a}-{b}")),
            Annotation::Text(t) => Some(t.clone()),
        };
        if let Some(value) = annotation {
            env.metadata.annotations = Some(BTreeMap::from([(UPTIME_ANNOTATION.into(), value)]));
        }
        env
    }
}

/// The uptime the expansion stamps, after checking that every copy of it
/// (annotation, postBuild substitution, Helm values) is the same value.
fn written_uptime(x: &Expansion) -> Result<String, TestCaseError> {
    let uptime = x.environment.metadata.annotations.as_ref().unwrap()[UPTIME_ANNOTATION].clone();
    let mut copies = 0;
    for o in &x.objects {
        let copy = match o {
            FluxObject::Kustomization(k) => k
                .spec
                .post_build
                .substitute
                .get("downscaler_uptime")
                .cloned(),
            FluxObject::HelmRelease(h) => h.spec.values["ephemeral"]["downscaler_uptime"]
                .as_str()
                .map(str::to_owned),
            _ => continue,
        };
        prop_assert_eq!(
            copy.as_deref(),
            Some(uptime.as_str()),
            "{}",
            o.display_name()
        );
        copies += 1;
    }
    prop_assert_eq!(copies, 2, "one Kustomization and one HelmRelease");
    Ok(uptime)
}

fn check_written(case: &Case) -> Result<(), TestCaseError> {
    let Ok(x) = expand(
        &case.environment(),
        &catalog(),
        &case.config(),
        case.now,
        OWNER,
    ) else {
        // Refused: nothing is written. Only untils can be refused here.
        prop_assert!(
            matches!(
                case.lease,
                LeaseCase::Until { .. } | LeaseCase::UntilNear(_)
            ) && case.always_on.is_none(),
            "{case:?} refused"
        );
        return Ok(());
    };
    let uptime = written_uptime(&x)?;
    let spans = downscaler::accepts(&uptime)
        .map_err(|e| TestCaseError::fail(format!("downscaler refuses {uptime:?}: {e}")))?;
    prop_assert!(!uptime.contains('.'), "whole seconds, HH:MM: {uptime}");
    prop_assert!(
        !uptime.contains("from") && !uptime.contains("until"),
        "{uptime}"
    );
    let lease = x.environment.spec.lease.as_ref().unwrap();
    match (&lease.until, &lease.schedule) {
        (Some(until), None) => {
            let until: Timestamp = until.parse().unwrap();
            let [Span::Absolute { from, to }] = spans.as_slice() else {
                return Err(TestCaseError::fail(format!(
                    "not one absolute span: {uptime}"
                )));
            };
            prop_assert_eq!(*to, until);
            prop_assert!(*from <= *to && *from >= EARLIEST_RFC3339, "{uptime}");
            prop_assert_eq!(&uptime, &lease::absolute_uptime(*from, *to));
        }
        (None, Some(schedule)) => {
            prop_assert_eq!(schedule, &uptime, "spec and annotation agree");
            prop_assert!(
                spans.iter().all(|s| matches!(s, Span::Relative { .. })),
                "{uptime}"
            );
            prop_assert_eq!(
                Schedule::parse(&uptime).unwrap().to_string(),
                uptime.clone()
            );
            if let Some(typed) = case.typed_schedule() {
                let warned = x
                    .warnings
                    .iter()
                    .find(|w| w.starts_with("spec.lease.schedule"));
                if typed.trim() == uptime {
                    prop_assert!(warned.is_none(), "{warned:?}");
                } else {
                    let warned =
                        warned.ok_or_else(|| TestCaseError::fail("rewritten without a warning"))?;
                    prop_assert!(
                        warned.contains(&format!("written as '{uptime}'")),
                        "{warned}"
                    );
                    for (typed, name) in Schedule::parse(typed).unwrap().renamed_zones() {
                        prop_assert!(
                            warned.contains(&format!("'{typed}' is '{name}'")),
                            "{warned}"
                        );
                    }
                }
            }
        }
        other => return Err(TestCaseError::fail(format!("lease {other:?}"))),
    }
    // What is written is stable: admitting the result writes it again.
    let again = expand(&x.environment, &catalog(), &case.config(), case.now, OWNER)
        .map_err(|d| TestCaseError::fail(format!("admitted Environment refused: {d}")))?;
    prop_assert_eq!(written_uptime(&again)?, uptime);
    prop_assert!(
        !again
            .warnings
            .iter()
            .any(|w| w.starts_with("spec.lease.schedule")),
        "{:?}",
        again.warnings
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// From `until` leases (any instant, spelling and stale annotation),
    /// weekly schedules in any spelling and always-on schedules from config,
    /// expansion writes only values the downscaler accepts.
    #[test]
    fn every_written_uptime_is_accepted_by_the_downscaler(case in case()) {
        check_written(&case)?;
    }

    /// A schedule parses iff its canonical form does, and the canonical form
    /// is one the downscaler accepts.
    #[test]
    fn canonical_schedules_are_accepted(text in schedule_text()) {
        let written = Schedule::parse(&text).unwrap().to_string();
        prop_assert!(downscaler::accepts(&written).is_ok(), "{written}");
    }
}
