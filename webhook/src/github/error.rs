//! What can go wrong talking to GitHub.
//!
//! [`Error::Transport`], [`Error::Timeout`], [`Error::RateLimited`] and
//! [`Error::Decode`] mean "GitHub failed" (or could not be asked): the caller
//! knows nothing new about the pull requests and must keep what it has.
//! [`Error::Status`] means "GitHub said": a definite answer with GitHub's
//! message (e.g. `404 Not Found`, `401 Bad credentials`).

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;

/// Which rate limit GitHub applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimitKind {
    /// The hourly request budget is spent (`X-RateLimit-Remaining: 0`);
    /// it comes back at `X-RateLimit-Reset`.
    Primary,
    /// Too many requests too fast (`Retry-After`, or GitHub's message naming
    /// a secondary rate limit).
    Secondary,
}

impl fmt::Display for RateLimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RateLimitKind::Primary => "primary rate limit",
            RateLimitKind::Secondary => "secondary rate limit",
        })
    }
}

/// An error of the GitHub client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be made or its answer not read (DNS, TCP, TLS,
    /// a connection cut).
    #[error("cannot reach GitHub ({method} {url}): {message}")]
    Transport {
        /// The request's method.
        method: String,
        /// The request's URL (it never carries a token).
        url: String,
        /// What failed, with its causes.
        message: String,
    },
    /// No complete answer within the timeout.
    #[error("GitHub did not answer {method} {url} within {after:?} (timeout)")]
    Timeout {
        /// The request's method.
        method: String,
        /// The request's URL.
        url: String,
        /// The timeout.
        after: Duration,
    },
    /// GitHub answered with an error status.
    #[error("GitHub answered {status} to {method} {url}: {message}")]
    Status {
        /// The request's method.
        method: String,
        /// The request's URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// GitHub's `message` (or the start of the body when it has none).
        message: String,
    },
    /// A rate limit is in force: nothing is sent before `until`.
    #[error("GitHub {kind} reached: no request before {until}")]
    RateLimited {
        /// Which limit.
        kind: RateLimitKind,
        /// When requests may be sent again.
        until: Timestamp,
    },
    /// GitHub's answer is not the JSON the REST docs specify.
    #[error("cannot read GitHub's answer to {method} {url}: at `{path}`: {message}")]
    Decode {
        /// The request's method.
        method: String,
        /// The request's URL.
        url: String,
        /// Where in the document reading failed (serde path, `.` for the top).
        path: String,
        /// What was wrong there.
        message: String,
    },
    /// The client's settings or credentials cannot be used (a bad `apiURL`,
    /// a private key that is not an RSA key in PEM, a token that is not a
    /// valid header value). Asking again will not help.
    #[error("GitHub client settings: {0}")]
    Config(String),
}

impl Error {
    /// The HTTP status GitHub answered, for [`Error::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether GitHub itself gave a definite answer ([`Error::Status`]), as
    /// opposed to failing, timing out, being rate limited or answering
    /// something unreadable.
    pub fn is_answer(&self) -> bool {
        matches!(self, Error::Status { .. })
    }

    /// When requests may be sent again, for [`Error::RateLimited`].
    pub fn retry_at(&self) -> Option<Timestamp> {
        match self {
            Error::RateLimited { until, .. } => Some(*until),
            _ => None,
        }
    }
}
