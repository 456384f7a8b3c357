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

/// Flux's verdict on an object whose `metadata.generation` is `generation`
/// and whose `status` is `status`: its Ready condition when
/// `status.observedGeneration` is not behind `generation`, else (or without
/// a Ready condition) not ready, reason `Progressing`, with a message saying
/// what Flux has yet to do.
pub fn health(generation: Option<i64>, status: Option<&Value>) -> Health {
    verdict(generation, status, true)
}

/// The verdict Flux last gave, whatever generation it was for: Flux does not
/// reconcile a suspended object, so its Ready condition stays as it last was
/// while its generation moves on (suspending it is a spec change).
pub fn last_verdict(status: Option<&Value>) -> Health {
    verdict(None, status, false)
}

fn verdict(generation: Option<i64>, status: Option<&Value>, current_only: bool) -> Health {
    let observed = status
        .and_then(|s| s.get("observedGeneration"))
        .and_then(Value::as_i64);
    let ready = status
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    let Some(ready) = ready else {
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
    let text = |key: &str| {
        ready[key]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let reason = text("reason");
    Health {
        ready: ready["status"] == "True",
        rerunning: ready["status"] == "Unknown"
            && observed.is_some()
            && reason
                .as_deref()
                .is_some_and(|r| r.starts_with("Progressing")),
        reason,
        message: text("message"),
    }
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
