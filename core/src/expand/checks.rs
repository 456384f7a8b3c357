//! The checks of admission: names, sources, namespaces, substitutions, the
//! service account, `sourceBranch`, and the lease with its uptime.

use std::collections::BTreeMap;
use std::fmt::Display;

use jiff::Timestamp;
use kube::ResourceExt;

use super::{Cx, RESERVED_VARIABLES, UPTIME_ANNOTATION};
use crate::api::{Environment, Lease, SourceRef};
use crate::error::Violation;
use crate::lease::{self};
use crate::names::{self, GENERATE_NAME_SUFFIX};
use crate::schedule::Schedule;

impl Cx<'_> {
    pub(super) fn deny(&mut self, v: Violation) {
        self.violations.push(v);
    }

    /// Validates the name and returns the length child names are built from.
    pub(super) fn check_environment_name(&mut self, env: &Environment) -> usize {
        match (&env.metadata.name, &env.metadata.generate_name) {
            (Some(name), _) if !name.is_empty() => {
                if let Some(problem) = names::dns1123_label_problem(name) {
                    self.deny(Violation::InvalidName {
                        field: "metadata.name".into(),
                        value: name.clone(),
                        problem: problem.into(),
                    });
                }
                name.len()
            }
            (_, Some(prefix)) if !prefix.is_empty() => prefix.len() + GENERATE_NAME_SUFFIX,
            _ => {
                self.deny(Violation::MissingName);
                0
            }
        }
    }

    pub(super) fn check_source(
        &mut self,
        field: &dyn Display,
        r: &SourceRef,
        kinds: &[&'static str],
    ) {
        if !kinds.contains(&r.kind.as_str()) {
            self.deny(Violation::SourceKind {
                field: format!("{field}.kind"),
                kind: r.kind.clone(),
                allowed: kinds.to_vec(),
            });
        }
        if let Some(ns) = &r.namespace {
            self.check_namespace(&format_args!("{field}.namespace"), ns);
        }
    }

    pub(super) fn check_namespace(&mut self, field: &dyn Display, ns: &str) {
        let allowed = &self.config.allowed_source_namespaces;
        if ns != self.namespace && !allowed.is_empty() && !allowed.iter().any(|a| a == ns) {
            self.deny(Violation::NamespaceNotAllowed {
                field: field.to_string(),
                namespace: ns.to_owned(),
                allowed: allowed.clone(),
            });
        }
    }

    pub(super) fn check_substitute(&mut self, field: &dyn Display, map: &BTreeMap<String, String>) {
        for key in map.keys() {
            let (problem, fix) = if RESERVED_VARIABLES.contains(&key.as_str()) {
                (
                    "is set by kubectl-ephemeral itself",
                    format!(
                        "rename the variable; {} and {} are reserved",
                        RESERVED_VARIABLES[..RESERVED_VARIABLES.len() - 1].join(", "),
                        RESERVED_VARIABLES[RESERVED_VARIABLES.len() - 1]
                    ),
                )
            } else if !names::is_substitute_key(key) {
                (
                    "is not a valid variable name",
                    "use letters, digits and '_', not starting with a digit".to_owned(),
                )
            } else {
                continue;
            };
            self.deny(Violation::SubstituteKey {
                field: field.to_string(),
                key: key.clone(),
                problem: problem.into(),
                fix,
            });
        }
    }

    /// With an allow-list configured, the account Flux impersonates (named or
    /// defaulted) must be on it; no account at all leaves Flux's own default.
    pub(super) fn check_service_account(&mut self, name: Option<&str>) {
        let allowed = &self.config.allowed_service_accounts;
        if let Some(name) = name
            && !allowed.is_empty()
            && !allowed.iter().any(|a| a == name)
        {
            self.deny(Violation::ServiceAccountNotAllowed {
                name: name.to_owned(),
                allowed: allowed.clone(),
            });
        }
    }

    pub(super) fn check_source_branch(&mut self, branch: &str) {
        let problem = if branch.is_empty() {
            Some("is empty")
        } else if branch.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some("contains whitespace or control characters")
        } else if branch.contains("..") || branch.contains("//") {
            Some("contains '..' or '//'")
        } else if branch.starts_with(['-', '/']) || branch.ends_with(['/', '.']) {
            Some("starts with '-' or '/', or ends with '/' or '.'")
        } else if branch.contains(['~', '^', ':', '?', '*', '[', '\\']) {
            Some("contains one of ~ ^ : ? * [ \\")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.deny(Violation::InvalidSourceBranch {
                value: branch.to_owned(),
                problem: problem.into(),
            });
        }
    }

    /// The defaulted lease and the `downscaler/uptime` value.
    pub(super) fn lease(&mut self, env: &Environment, now: Timestamp) -> (Lease, String) {
        let mut lease = env.spec.lease.clone().unwrap_or_default();
        if let Some(after) = &lease.expire_after
            && lease::parse_go_duration(after).is_none()
        {
            self.deny(Violation::InvalidLease {
                field: "spec.lease.expireAfter".into(),
                problem: format!("'{after}' is not a duration"),
                fix: "use a Go duration such as 168h or 36h30m".into(),
            });
        }
        let name = env.metadata.name.as_deref().unwrap_or_default();
        if self.config.always_on.iter().any(|n| n == name) {
            let schedule = self.config.always_on_schedule.to_string();
            if lease.until.is_some() {
                self.warnings.push(format!(
                    "spec.lease: '{name}' is always on; its lease is the schedule '{schedule}'"
                ));
            }
            lease.until = None;
            lease.schedule = Some(schedule.clone());
            return (lease, schedule);
        }
        match (&lease.until, &lease.schedule) {
            (Some(_), Some(_)) => {
                self.deny(Violation::InvalidLease {
                    field: "spec.lease".into(),
                    problem: "sets both until and schedule".into(),
                    fix: "set only one of until or schedule".into(),
                });
                (lease, String::new())
            }
            (None, Some(typed)) => match Schedule::parse(typed) {
                Err(error) => {
                    self.deny(Violation::InvalidSchedule { error });
                    (lease, String::new())
                }
                Ok(schedule) => {
                    let written = schedule.to_string();
                    if written != typed.trim() {
                        self.warnings.push(schedule_rewritten(&schedule, &written));
                    }
                    lease.schedule = Some(written.clone());
                    (lease, written)
                }
            },
            (until, None) => {
                let until = match until {
                    None => self.config.lease.default_until(now),
                    Some(text) => match lease::parse_until(text) {
                        Some(t) => t,
                        None => {
                            self.deny(Violation::InvalidLease {
                                field: "spec.lease.until".into(),
                                problem: format!("'{text}' is not an RFC 3339 time"),
                                fix: "write it like 2026-11-21T19:00:00Z, or leave it out for the default".into(),
                            });
                            return (lease, String::new());
                        }
                    },
                };
                let latest = self.config.lease.latest_until(now);
                if until > latest {
                    self.deny(Violation::LeaseTooLong {
                        until: until.to_string(),
                        max: format!("{:#}", self.config.lease.maximum),
                        latest: latest.to_string(),
                    });
                }
                if until <= now {
                    self.warnings.push(format!(
                        "spec.lease.until: the lease ended at {until}; the environment stays scaled down until it is extended"
                    ));
                }
                let start = env
                    .annotations()
                    .get(UPTIME_ANNOTATION)
                    .and_then(|v| lease::parse_absolute_uptime(v))
                    .map(|(start, _)| start)
                    .filter(|start| *start <= until)
                    .unwrap_or_else(|| now.min(until))
                    .max(lease::EARLIEST_RFC3339);
                lease.until = Some(lease::until_text(until));
                (lease, lease::absolute_uptime(start, until))
            }
        }
    }
}

fn schedule_rewritten(schedule: &Schedule, written: &str) -> String {
    let mut renamed: Vec<String> = schedule
        .renamed_zones()
        .map(|(typed, name)| format!("'{typed}' is '{name}'"))
        .collect();
    renamed.dedup();
    if renamed.is_empty() {
        format!("spec.lease.schedule: written as '{written}', GoKubeDownscaler's form")
    } else {
        format!(
            "spec.lease.schedule: time zone {} in the IANA database (GoKubeDownscaler matches zone names exactly); written as '{written}'",
            renamed.join(", ")
        )
    }
}
