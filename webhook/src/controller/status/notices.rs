//! The Events a change of the status deserves: the Environment became
//! ready, stalled, was found not admitted, its lease ended, it was suspended
//! or resumed.

use ephemeral_core::api::EnvironmentStatus;

use super::{find, types};

/// Severity of a notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Normal.
    Normal,
    /// Something needs attention.
    Warning,
}

/// A change worth a Kubernetes Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Severity.
    pub severity: Severity,
    /// The Event reason (PascalCase).
    pub reason: String,
    /// The Event note.
    pub note: String,
}

/// The Events the change from `previous` to `next` deserves: the Environment
/// became ready, stalled, was found not admitted, or its lease ended.
pub fn notices(previous: Option<&EnvironmentStatus>, next: &EnvironmentStatus) -> Vec<Notice> {
    let mut out = Vec::new();
    let became = |type_: &str, status: &str| {
        let now = find(Some(next), type_).filter(|c| c.status == status)?;
        let before = find(previous, type_);
        let same = before.is_some_and(|b| b.status == now.status && b.reason == now.reason);
        (!same).then_some(now)
    };
    if let Some(c) = became(types::READY, "True") {
        out.push(Notice {
            severity: Severity::Normal,
            reason: "Ready".into(),
            note: c.message.clone(),
        });
    }
    if let Some(c) = became(types::STALLED, "True") {
        out.push(Notice {
            severity: Severity::Warning,
            reason: c.reason.clone(),
            note: c.message.clone(),
        });
    }
    if let Some(c) = became(types::ADMITTED, "False") {
        out.push(Notice {
            severity: Severity::Warning,
            reason: "NotAdmitted".into(),
            note: c.message.clone(),
        });
    }
    if let Some(c) = became(types::LEASE_ACTIVE, "False") {
        out.push(Notice {
            severity: Severity::Normal,
            reason: "LeaseExpired".into(),
            note: c.message.clone(),
        });
    }
    if let Some(c) = became(types::SUSPENDED, "True") {
        out.push(Notice {
            severity: Severity::Normal,
            reason: "Suspended".into(),
            note: c.message.clone(),
        });
    }
    let suspended = |s: Option<&EnvironmentStatus>| {
        find(s, types::SUSPENDED).is_some_and(|c| c.status == "True")
    };
    if suspended(previous) && !suspended(Some(next)) {
        out.push(Notice {
            severity: Severity::Normal,
            reason: "Resumed".into(),
            note: match find(Some(next), types::SUSPENDED) {
                Some(c) => c.message.clone(),
                None => "suspension outside uptime is now off for this Environment: Flux reconciles the apps' Kustomizations and HelmReleases again".into(),
            },
        });
    }
    out
}
