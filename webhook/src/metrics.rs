//! Prometheus metrics of the admission server and the controller, in the text
//! exposition format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::admission::Outcome;

/// Upper bounds (seconds) of the latency histogram: admission takes tens to
/// hundreds of microseconds, so the buckets start well below a millisecond.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// The admission endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /mutate`
    Mutate,
    /// `POST /validate`
    Validate,
}

impl Endpoint {
    /// Label value: `mutate` or `validate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
        }
    }
}

/// The endpoints, in the order of [`Metrics`]' series.
const ENDPOINTS: [Endpoint; 2] = [Endpoint::Mutate, Endpoint::Validate];

/// The outcomes, in the order of [`Metrics`]' series.
const OUTCOMES: [Outcome; 4] = [
    Outcome::Allowed,
    Outcome::Denied,
    Outcome::Invalid,
    Outcome::Error,
];

fn endpoint_index(endpoint: Endpoint) -> usize {
    match endpoint {
        Endpoint::Mutate => 0,
        Endpoint::Validate => 1,
    }
}

fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Allowed => 0,
        Outcome::Denied => 1,
        Outcome::Invalid => 2,
        Outcome::Error => 3,
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Upper bounds (seconds) of the reconcile duration histogram: a reconcile is
/// a handful of API calls, milliseconds to seconds.
pub const RECONCILE_BUCKETS: [f64; 12] = [
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: &'static str,
}

/// The series of one controller's reconciles: how long each took, and the
/// failed ones by error kind.
#[derive(Debug)]
pub struct Reconciles {
    duration: Histogram,
    failures: Family<ErrorLabels, Counter>,
}

impl Reconciles {
    /// Registers `<prefix>reconcile_duration_seconds` and
    /// `<prefix>reconcile_failures` for reconciles of `what`.
    fn register(registry: &mut Registry, prefix: &str, what: &str) -> Reconciles {
        let reconciles = Reconciles {
            duration: Histogram::new(RECONCILE_BUCKETS),
            failures: Family::default(),
        };
        registry.register(
            format!("{prefix}reconcile_duration_seconds"),
            format!("Time to reconcile one {what}, successful or not"),
            reconciles.duration.clone(),
        );
        registry.register(
            format!("{prefix}reconcile_failures"),
            format!("Failed {what} reconciles by error kind"),
            reconciles.failures.clone(),
        );
        reconciles
    }

    /// Records one reconcile: how long it took, and the kind of its error
    /// if it failed (e.g. `api`, `invalid_object`).
    pub fn record(&self, seconds: f64, failed: Option<&'static str>) {
        self.duration.observe(seconds);
        if let Some(kind) = failed {
            self.failures.get_or_create(&ErrorLabels { kind }).inc();
        }
    }
}

/// The metrics, registered once and shared by the servers.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The latency series of each endpoint ([`ENDPOINTS`] order), resolved
    /// once: answering a request touches no label map.
    latency: [Histogram; 2],
    /// The request series of each endpoint and outcome ([`OUTCOMES`] order).
    requests: [[Counter; 4]; 2],
    tls_reloads: Family<ResultLabels, Counter>,
    /// Environment reconciles (`reconcile_*`).
    pub environments: Reconciles,
    /// EnvironmentSet reconciles, GitHub calls included (`set_reconcile_*`).
    pub sets: Reconciles,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric; each endpoint/outcome series starts at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ephemeral_webhook");
        let latency = Family::<EndpointLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let requests = Family::<RequestLabels, Counter>::default();
        let tls_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "request_duration_seconds",
            "Time to answer an admission request, by endpoint",
            latency.clone(),
        );
        registry.register(
            "requests",
            "Admission requests by endpoint and outcome (allowed, denied, invalid, error)",
            requests.clone(),
        );
        registry.register(
            "tls_reloads",
            "Attempts to load a changed TLS certificate, by result (success, failure)",
            tls_reloads.clone(),
        );
        let environments = Reconciles::register(&mut registry, "", "Environment");
        let sets = Reconciles::register(&mut registry, "set_", "EnvironmentSet");
        // Every admission series exists from the start (at zero), and the
        // handles are kept: they share the family's series.
        let latency = ENDPOINTS.map(|endpoint| {
            latency.get_or_create_owned(&EndpointLabels {
                endpoint: endpoint.as_str(),
            })
        });
        let requests = ENDPOINTS.map(|endpoint| {
            OUTCOMES.map(|outcome| {
                requests.get_or_create_owned(&RequestLabels {
                    endpoint: endpoint.as_str(),
                    outcome: outcome.as_str(),
                })
            })
        });
        Metrics {
            registry,
            latency,
            requests,
            tls_reloads,
            environments,
            sets,
        }
    }

    /// Records one answered admission request.
    pub fn observe(&self, endpoint: Endpoint, outcome: Outcome, seconds: f64) {
        let at = endpoint_index(endpoint);
        self.latency[at].observe(seconds);
        self.requests[at][outcome_index(outcome)].inc();
    }

    /// Records an attempt to load a changed certificate.
    pub fn tls_reload(&self, ok: bool) {
        self.tls_reloads
            .get_or_create(&ResultLabels {
                result: if ok { "success" } else { "failure" },
            })
            .inc();
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_endpoint_and_outcome() {
        let m = Metrics::new();
        m.observe(Endpoint::Mutate, Outcome::Allowed, 0.000_2);
        m.observe(Endpoint::Mutate, Outcome::Denied, 0.000_3);
        m.observe(Endpoint::Validate, Outcome::Allowed, 0.002);
        let text = m.encode();
        assert!(
            text.contains(
                r#"ephemeral_webhook_requests_total{endpoint="mutate",outcome="allowed"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"ephemeral_webhook_requests_total{endpoint="mutate",outcome="denied"} 1"#
            )
        );
        assert!(text.contains(
            r#"ephemeral_webhook_requests_total{endpoint="validate",outcome="error"} 0"#
        ));
        assert!(text.contains(
            r#"ephemeral_webhook_request_duration_seconds_bucket{le="0.00025",endpoint="mutate"} 1"#
        ));
        assert!(text.contains(
            r#"ephemeral_webhook_request_duration_seconds_count{endpoint="validate"} 1"#
        ));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn every_endpoint_and_outcome_has_its_own_series() {
        let m = Metrics::new();
        let mut expected = Vec::new();
        for (e, endpoint) in ENDPOINTS.into_iter().enumerate() {
            for (o, outcome) in OUTCOMES.into_iter().enumerate() {
                let times = 1 + e * OUTCOMES.len() + o;
                for _ in 0..times {
                    m.observe(endpoint, outcome, 0.001);
                }
                expected.push(format!(
                    r#"ephemeral_webhook_requests_total{{endpoint="{}",outcome="{}"}} {times}"#,
                    endpoint.as_str(),
                    outcome.as_str()
                ));
            }
        }
        let text = m.encode();
        for line in expected {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        assert!(
            text.contains(
                r#"ephemeral_webhook_request_duration_seconds_count{endpoint="mutate"} 10"#
            )
        );
        assert!(text.contains(
            r#"ephemeral_webhook_request_duration_seconds_count{endpoint="validate"} 26"#
        ));
    }

    #[test]
    fn reconciles_are_timed_and_failures_counted_by_kind() {
        let m = Metrics::new();
        m.environments.record(0.003, Some("api"));
        m.environments.record(0.2, Some("api"));
        let text = m.encode();
        assert!(
            text.contains("ephemeral_webhook_reconcile_duration_seconds_count 2"),
            "{text}"
        );
        assert!(
            text.contains(r#"ephemeral_webhook_reconcile_duration_seconds_bucket{le="0.005"} 1"#)
        );
        assert!(text.contains(r#"ephemeral_webhook_reconcile_failures_total{kind="api"} 2"#));
    }

    #[test]
    fn set_reconciles_have_series_of_their_own() {
        let m = Metrics::new();
        m.sets.record(0.03, Some("incomplete"));
        m.environments.record(0.2, None);
        let text = m.encode();
        assert!(
            text.contains("ephemeral_webhook_set_reconcile_duration_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"ephemeral_webhook_set_reconcile_duration_seconds_bucket{le="0.05"} 1"#
            )
        );
        assert!(
            text.contains(r#"ephemeral_webhook_set_reconcile_failures_total{kind="incomplete"} 1"#)
        );
        assert!(text.contains("ephemeral_webhook_reconcile_duration_seconds_count 1"));
        assert!(!text.contains(r#"ephemeral_webhook_reconcile_failures_total{kind="incomplete"}"#));
    }
}
