//! GitHub, as an `EnvironmentSet` needs it (`../shared/DESIGN.md`,
//! "EnvironmentSet"): a REST client and the webhook receiver. Neither holds
//! any controller logic: the client answers questions and makes changes, the
//! receiver verifies deliveries and says which set to reconcile.
//!
//! - [`client`]: [`Client`], list the open pull requests of a repository,
//!   get one, create a commit status, create or update one marked comment.
//! - [`auth`]: [`Credentials`], a token or a GitHub App (JWT, installation
//!   token cached until shortly before it expires).
//! - [`error`]: [`Error`], what went wrong, typed so the caller can tell
//!   "GitHub failed" (transport, timeout, rate limit, unreadable answer) from
//!   "GitHub said" (a status with GitHub's message).
//! - [`receiver`]: the `POST /github` router.
//!
//! # The client's choices
//!
//! - HTTP is reqwest over rustls with the ring provider (no aws-lc) and the
//!   system's roots (`rustls-native-certs`, so `SSL_CERT_FILE` adds a GitHub
//!   Enterprise Server's private CA); HTTP/1.1 only.
//! - Every request carries `Accept: application/vnd.github+json`,
//!   `X-GitHub-Api-Version: 2022-11-28` and a `User-Agent`
//!   ([`DEFAULT_USER_AGENT`]); tokens go in a sensitive `Authorization`
//!   header and never into a log line, an error or a `Debug` output.
//! - Lists are read 100 per page, following the `Link` header's
//!   `rel="next"` to the end; a page that fails fails the whole list (the
//!   caller never sees a partial list as if it were complete).
//! - GETs are conditional: the client remembers the ETag and body of the
//!   last [`ETAG_CACHE_ENTRIES`] URLs and sends `If-None-Match`; a `304`
//!   (which costs no rate limit) returns the remembered body.
//! - Rate limits: `X-RateLimit-Remaining`/`Reset` of every answer are kept
//!   ([`Client::rate_limit`]). A `403`/`429` with `Retry-After` (secondary
//!   limit), with `X-RateLimit-Remaining: 0` (primary limit), or whose message
//!   names a secondary rate limit without saying how long, or a `429`
//!   without either (then one minute, as GitHub's docs ask) becomes [`Error::RateLimited`] carrying the
//!   instant; an answer saying `X-RateLimit-Remaining: 0` also closes the gate
//!   until the reset. Until that instant the client sends nothing and answers
//!   [`Error::RateLimited`] at once.
//! - Each request has a timeout ([`ClientSettings::timeout`], 30 s by default).
//! - Redirects (a renamed repository) are followed, at most 10; reqwest drops
//!   the `Authorization` header when one leads to another host.
//!
//! The receiver's choices (status codes, limits) are in [`receiver`]'s docs.

pub mod auth;
pub mod client;
pub mod error;
mod link;
mod model;
pub mod receiver;
mod repository;

pub use auth::{AppCredentials, Credentials, Secret};
pub use client::{
    Client, ClientSettings, Comment, CommentUpsert, CommitState, CommitStatus, DEFAULT_API_URL,
    DEFAULT_USER_AGENT, ETAG_CACHE_ENTRIES, RateLimit, Repository,
};
pub use error::{Error, RateLimitKind};
