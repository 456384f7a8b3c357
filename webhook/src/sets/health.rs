//! A set's health checks: a plain HTTP(S) GET of the URL with a timeout;
//! it passes when the answer has the expected status.

use std::time::Duration;

use ephemeral_core::set::plan::{HealthCheckDue, HealthCheckResult};
use jiff::Timestamp;

use crate::github::client::tls_config;

/// The longest a health check waits for its answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP client for health checks (rustls with ring, the system's
/// roots; no redirects followed: a redirect is an answer of its own).
#[derive(Clone, Debug)]
pub struct Checker {
    http: reqwest::Client,
    timeout: Duration,
}

impl Checker {
    /// A checker whose requests time out after `timeout`.
    pub fn new(timeout: Duration) -> Result<Checker, crate::github::Error> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .user_agent(crate::github::DEFAULT_USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .map_err(|e| crate::github::Error::Config(format!("HTTP client: {e}")))?;
        Ok(Checker { http, timeout })
    }

    /// Runs `due` at `at`.
    pub async fn run(&self, due: &HealthCheckDue, at: Timestamp) -> HealthCheckResult {
        let outcome = match self.http.get(&due.url).send().await {
            Ok(answer) if answer.status().as_u16() == due.expected_status => Ok(()),
            Ok(answer) => Err(format!(
                "{} answered {}, expected {}",
                due.url,
                answer.status(),
                due.expected_status
            )),
            Err(e) if e.is_timeout() => Err(format!(
                "{} did not answer within {:?}",
                due.url, self.timeout
            )),
            Err(e) => Err(format!("{} cannot be reached: {}", due.url, chain(&e))),
        };
        HealthCheckResult {
            number: due.number,
            head_sha: due.head_sha.clone(),
            at,
            outcome,
        }
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;

    use super::*;

    async fn serve() -> String {
        let app = Router::new()
            .route("/healthz", get(|| async { StatusCode::OK }))
            .route("/down", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    StatusCode::OK
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn due(url: String, expected_status: u16) -> HealthCheckDue {
        HealthCheckDue {
            number: 7,
            head_sha: "abc1234".into(),
            url,
            expected_status,
        }
    }

    #[tokio::test]
    async fn a_check_passes_only_on_the_expected_status_within_the_timeout() {
        let base = serve().await;
        let checker = Checker::new(Duration::from_millis(300)).unwrap();
        let at: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let ok = checker.run(&due(format!("{base}/healthz"), 200), at).await;
        assert_eq!(ok.outcome, Ok(()));
        assert_eq!((ok.number, ok.head_sha.as_str(), ok.at), (7, "abc1234", at));

        let down = checker.run(&due(format!("{base}/down"), 200), at).await;
        let why = down.outcome.unwrap_err();
        assert!(why.contains("503") && why.contains("expected 200"), "{why}");
        // A 503 is what this check expects: it passes.
        let expected = checker.run(&due(format!("{base}/down"), 503), at).await;
        assert_eq!(expected.outcome, Ok(()));

        let slow = checker.run(&due(format!("{base}/slow"), 200), at).await;
        let why = slow.outcome.unwrap_err();
        assert!(why.contains("did not answer within"), "{why}");

        let nowhere = checker
            .run(&due("http://127.0.0.1:1/healthz".into(), 200), at)
            .await;
        assert!(nowhere.outcome.unwrap_err().contains("cannot be reached"));
    }
}
