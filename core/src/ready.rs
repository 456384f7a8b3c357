//! Flux's verdict on one of its objects: the `Ready` condition, trusted only
//! when Flux has observed the object's current generation. The controller
//! decides app readiness with it, and `kubectl ephemeral describe` shows it,
//! so both say the same.

use serde_json::Value;

/// What Flux says about an object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// Ready is True for the current generation.
    pub ready: bool,
    /// The Ready condition's reason, or why there is none to trust.
    pub reason: Option<String>,
    /// The Ready condition's message, or why there is none to trust.
    pub message: Option<String>,
    /// Flux is reconciling again a generation it already observed (Ready
    /// Unknown, reason `Progressing*`): a periodic or requested run of an
    /// unchanged spec, whose verdict is still the last one.
    pub rerunning: bool,
}

/// What the verdicts are read from: `status.observedGeneration` and the
/// `Ready` condition, parsed once (the controller keeps this instead of the
/// object).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FluxStatus {
    /// `status.observedGeneration`.
    pub observed_generation: Option<i64>,
    /// The `Ready` condition, if there is one.
    pub ready: Option<ReadyCondition>,
}

/// A `Ready` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyCondition {
    /// Its `status`.
    pub status: ConditionStatus,
    /// Its `reason`, when not empty.
    pub reason: Option<Box<str>>,
    /// Its `message`, when not empty.
    pub message: Option<Box<str>>,
}

/// A condition's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// `True`.
    True,
    /// `Unknown`.
    Unknown,
    /// `False`, or anything else.
    False,
}

impl FluxStatus {
    /// Reads an object's `status`.
    pub fn read(status: Option<&Value>) -> FluxStatus {
        let ready = status
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .map(|ready| {
                let text = |key: &str| ready[key].as_str().filter(|s| !s.is_empty()).map(Box::from);
                ReadyCondition {
                    status: match ready["status"].as_str() {
                        Some("True") => ConditionStatus::True,
                        Some("Unknown") => ConditionStatus::Unknown,
                        _ => ConditionStatus::False,
                    },
                    reason: text("reason"),
                    message: text("message"),
                }
            });
        FluxStatus {
            observed_generation: status
                .and_then(|s| s.get("observedGeneration"))
                .and_then(Value::as_i64),
            ready,
        }
    }

    /// Flux's verdict for `generation`: [`health`].
    pub fn health(&self, generation: Option<i64>) -> Health {
        self.verdict(generation, true)
    }

    /// The verdict Flux last gave: [`last_verdict`].
    pub fn last_verdict(&self) -> Health {
        self.verdict(None, false)
    }

    fn verdict(&self, generation: Option<i64>, current_only: bool) -> Health {
        let observed = self.observed_generation;
        let Some(ready) = &self.ready else {
            return Health {
                ready: false,
                reason: Some("Progressing".into()),
                message: Some("waiting for Flux to report a Ready condition".into()),
                rerunning: false,
            };
        };
        if let (Some(generation), Some(observed), true) = (generation, observed, current_only)
            && observed < generation
        {
            return Health {
                ready: false,
                reason: Some("Progressing".into()),
                message: Some(format!(
                    "waiting for Flux to reconcile generation {generation} (last observed {observed})"
                )),
                rerunning: false,
            };
        }
        let reason = ready.reason.as_deref().map(str::to_owned);
        Health {
            ready: ready.status == ConditionStatus::True,
            rerunning: ready.status == ConditionStatus::Unknown
                && observed.is_some()
                && reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with("Progressing")),
            reason,
            message: ready.message.as_deref().map(str::to_owned),
        }
    }
}

/// Flux's verdict on an object whose `metadata.generation` is `generation`
/// and whose `status` is `status`: its Ready condition when
/// `status.observedGeneration` is not behind `generation`, else (or without
/// a Ready condition) not ready, reason `Progressing`, with a message saying
/// what Flux has yet to do.
pub fn health(generation: Option<i64>, status: Option<&Value>) -> Health {
    FluxStatus::read(status).health(generation)
}

/// The verdict Flux last gave, whatever generation it was for: Flux does not
/// reconcile a suspended object, so its Ready condition stays as it last was
/// while its generation moves on (suspending it is a spec change).
pub fn last_verdict(status: Option<&Value>) -> Health {
    FluxStatus::read(status).last_verdict()
}

/// [`health`] of an object as JSON (`metadata.generation`, `status`).
pub fn health_of(object: &Value) -> Health {
    health(
        object
            .pointer("/metadata/generation")
            .and_then(Value::as_i64),
        object.get("status"),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_the_ready_condition_of_the_current_generation_only() {
        let object = |status: &str, observed: i64| {
            json!({"metadata": {"generation": 2}, "status": {"observedGeneration": observed, "conditions": [
                {"type": "Reconciling", "status": "False", "reason": "x"},
                {"type": "Ready", "status": status, "reason": "ReconciliationSucceeded", "message": "Applied revision: main@sha1:abc"}
            ]}})
        };
        assert_eq!(
            health_of(&object("True", 2)),
            Health {
                ready: true,
                reason: Some("ReconciliationSucceeded".into()),
                message: Some("Applied revision: main@sha1:abc".into()),
                rerunning: false,
            }
        );
        let stale = health_of(&object("True", 1));
        assert!(!stale.ready);
        assert_eq!(
            stale.message.as_deref(),
            Some("waiting for Flux to reconcile generation 2 (last observed 1)")
        );
        let last = last_verdict(object("True", 1).get("status"));
        assert!(last.ready, "the last verdict holds whatever its generation");
        let none = health_of(&json!({"metadata": {"generation": 1}}));
        assert!(!none.ready);
        assert_eq!(none.reason.as_deref(), Some("Progressing"));
    }
}
