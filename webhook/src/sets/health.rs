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
