//! The GitHub REST client: the four operations an `EnvironmentSet` needs,
//! over one HTTP machinery that paginates, makes GETs conditional, honours
//! rate limits and times out (the choices are in the [module docs](super)).
//!
//! One [`Client`] per set of credentials, kept across reconciles (rebuilt
//! when its Secret or `apiURL` changes): its ETag cache, rate-limit gate and
//! installation token belong to those credentials, and a client made afresh
//! for every reconcile would neither save rate limit with `304`s nor know
//! when to hold back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use ephemeral_core::set::PullRequest;
use ephemeral_core::set::api::GitHubSource;
use jiff::{SignedDuration, Timestamp};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::auth::{AppSigner, Credentials, InstallationToken, Secret};
use super::error::{Error, RateLimitKind};
use super::link;
use crate::clock::Clock;

/// GitHub.com's REST API.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// The `User-Agent` GitHub requires, naming this program.
pub const DEFAULT_USER_AGENT: &str = concat!("ephemeral-webhook/", env!("CARGO_PKG_VERSION"));

/// The REST API version every request asks for.
pub const API_VERSION: &str = "2022-11-28";

/// How many URLs' ETag and body the client remembers (least recently used
/// go first).
pub const ETAG_CACHE_ENTRIES: usize = 512;

/// Pages per list at most (100 items each): a `Link` chain longer than this
/// is taken for a broken answer, not followed forever.
pub const MAX_PAGES: usize = 100;

/// How long the client waits after a secondary rate limit that says no
/// `Retry-After` (GitHub's docs: "wait at least one minute").
pub const SECONDARY_LIMIT_DEFAULT_WAIT: SignedDuration = SignedDuration::from_mins(1);

/// GitHub limits a commit status's description to this many characters.
pub const STATUS_DESCRIPTION_MAX_CHARS: usize = 140;

/// How to reach GitHub.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// The REST API's base URL: [`DEFAULT_API_URL`] or, for GitHub
    /// Enterprise Server, `https://HOST/api/v3` (`spec.pullRequests.github.apiURL`).
    pub api_url: String,
    /// A token or a GitHub App installation.
    pub credentials: Credentials,
    /// Longest wait for one request's complete answer.
    pub timeout: Duration,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Where "now" comes from (rate-limit instants, JWTs, token expiry).
    pub clock: Clock,
}

impl ClientSettings {
    /// Settings for github.com with `credentials`, a 30 s timeout, the
    /// default user agent and the system clock.
    pub fn new(credentials: Credentials) -> Self {
        ClientSettings {
            api_url: DEFAULT_API_URL.to_string(),
            credentials,
            timeout: Duration::from_secs(30),
            user_agent: DEFAULT_USER_AGENT.to_string(),
            clock: Clock::System,
        }
    }

    /// Settings for a set's `spec.pullRequests.github`: its `apiURL` (else
    /// github.com) and `credentials` (the bytes of its `tokenSecretRef` or
    /// its `app` key, read by the caller).
    pub fn for_source(source: &GitHubSource, credentials: Credentials) -> Self {
        let mut settings = ClientSettings::new(credentials);
        if let Some(url) = source.api_url.as_deref().filter(|u| !u.trim().is_empty()) {
            settings.api_url = url.trim().to_string();
        }
        settings
    }
}

/// A repository, `owner/name`, both checked against GitHub's naming rules
/// ([`Repository::new`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Repository {
    owner: String,
    name: String,
}

impl Repository {
    /// `owner/name`, checked against GitHub's naming rules (letters, digits,
    /// `-`, `_`, `.`; owner at most 39 characters, name at most 100), so
    /// that neither can change the path of a request.
    pub fn new(owner: &str, name: &str) -> Result<Self, Error> {
        check_name("owner", owner, 39)?;
        check_name("repo", name, 100)?;
        Ok(Repository {
            owner: owner.to_string(),
            name: name.to_string(),
        })
    }
}

impl Repository {
    /// The repository of a set's `spec.pullRequests.github`.
    pub fn of(source: &GitHubSource) -> Result<Self, Error> {
        Repository::new(&source.owner, &source.repo)
    }

    /// The owner (user or organisation).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The repository's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `self` and `other` name the same repository (GitHub's names
    /// are case-insensitive).
    pub fn same_as(&self, other: &Repository) -> bool {
        self.owner.eq_ignore_ascii_case(&other.owner) && self.name.eq_ignore_ascii_case(&other.name)
    }
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

fn check_name(field: &str, value: &str, max: usize) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "github.{field} {value:?} is not a GitHub name: use 1 to {max} letters, digits, '-', '_' or '.'"
        )))
    }
}

/// The rate limit as GitHub last reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests left in the current window (`X-RateLimit-Remaining`).
    pub remaining: u64,
    /// When the window resets (`X-RateLimit-Reset`).
    pub reset: Option<Timestamp>,
}

/// A commit status's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitState {
    /// Still coming up (or queued).
    Pending,
    /// Ready and healthy.
    Success,
    /// Stalled, or the health check timed out.
    Failure,
    /// Something went wrong on our side.
    Error,
}

/// A commit status to set on a commit (`POST /repos/{owner}/{repo}/statuses/{sha}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommitStatus {
    /// Its state.
    pub state: CommitState,
    /// Where its "Details" link points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
    /// A short description; cut to [`STATUS_DESCRIPTION_MAX_CHARS`] characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The status's context, e.g. `ephemeral/shop-prs`.
    pub context: String,
}

/// A comment on a pull request (an issue comment).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Comment {
    /// Its ID.
    pub id: u64,
    /// Its text (Markdown).
    #[serde(default)]
    pub body: Option<String>,
    /// Its page on GitHub.
    #[serde(default)]
    pub html_url: String,
}

/// What [`Client::upsert_comment`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommentUpsert {
    /// No comment carried the marker: one was created.
    Created(Comment),
    /// The marked comment had other text: it was updated.
    Updated(Comment),
    /// The marked comment already said exactly this: nothing was sent.
    Unchanged(Comment),
}

impl CommentUpsert {
    /// The comment, whatever happened.
    pub fn comment(&self) -> &Comment {
        match self {
            CommentUpsert::Created(c) | CommentUpsert::Updated(c) | CommentUpsert::Unchanged(c) => {
                c
            }
        }
    }
}

/// A GitHub REST client for one set of credentials. Cheap to clone (clones
/// share the cache, the rate-limit gate and the installation token).
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    base: Url,
    base_str: String,
    timeout: Duration,
    clock: Clock,
    auth: Auth,
    state: Mutex<State>,
}

#[derive(Debug)]
enum Auth {
    Token(HeaderValue),
    App {
        signer: AppSigner,
        token: tokio::sync::Mutex<Option<InstallationToken>>,
    },
}

#[derive(Debug, Default)]
struct State {
    rate_limit: Option<RateLimit>,
    blocked: Option<(RateLimitKind, Timestamp)>,
    cache: HashMap<String, Cached>,
    uses: u64,
}

#[derive(Debug, Clone)]
struct Cached {
    etag: HeaderValue,
    body: Bytes,
    link: Option<String>,
    last_used: u64,
}

/// A successful answer.
struct Answer {
    body: Bytes,
    link: Option<String>,
}

/// `Authorization: Bearer …`, marked sensitive (never printed by `Debug`).
fn bearer(token: &[u8]) -> Result<HeaderValue, Error> {
    let token = std::str::from_utf8(token)
        .map(str::trim)
        .map_err(|_| Error::Config("the GitHub token is not UTF-8 text".into()))?;
    if token.is_empty() {
        return Err(Error::Config(
            "tokenSecretRef: the GitHub token is empty; put the token in the Secret's key".into(),
        ));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        Error::Config(
            "tokenSecretRef: the GitHub token has characters a header cannot carry".into(),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The rustls configuration: ring, the system's roots.
pub(crate) fn tls_config() -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        // A certificate the store cannot use is skipped, as rustls' own loaders do.
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

impl Client {
    /// A client with `settings`. Fails on a bad `apiURL`, an unusable token
    /// or an App key that is not an RSA key in PEM; it sends nothing yet.
    pub fn new(settings: ClientSettings) -> Result<Self, Error> {
        let base_str = settings.api_url.trim_end_matches('/').to_string();
        let base = Url::parse(&base_str).map_err(|e| {
            Error::Config(format!(
                "apiURL {:?} is not a URL ({e}); use https://api.github.com or https://HOST/api/v3",
                settings.api_url
            ))
        })?;
        if !matches!(base.scheme(), "https" | "http")
            || base.host_str().is_none()
            || base.query().is_some()
            || base.fragment().is_some()
        {
            return Err(Error::Config(format!(
                "apiURL {:?} must be an http(s) URL without query or fragment, e.g. https://HOST/api/v3",
                settings.api_url
            )));
        }
        let auth = match &settings.credentials {
            Credentials::Token(token) => Auth::Token(bearer(token.expose())?),
            Credentials::App(app) => Auth::App {
                signer: AppSigner::new(app)?,
                token: tokio::sync::Mutex::new(None),
            },
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static(API_VERSION),
        );
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .user_agent(settings.user_agent.clone())
            .default_headers(headers)
            .timeout(settings.timeout)
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {}", chain(&e))))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                base_str,
                timeout: settings.timeout,
                clock: settings.clock,
                auth,
                state: Mutex::new(State::default()),
            }),
        })
    }

    /// Whether `self` and `other` are clones of one client (sharing its
    /// cache, rate-limit gate and installation token).
    pub fn shares_state_with(&self, other: &Client) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The rate limit GitHub reported in its last answer (`None` before the first).
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.state().rate_limit
    }

    /// Until when the client refuses to send (a rate limit in force at `now`).
    pub fn blocked_until(&self) -> Option<Timestamp> {
        let now = self.inner.clock.now();
        self.state()
            .blocked
            .filter(|(_, until)| *until > now)
            .map(|(_, until)| until)
    }

    /// Every open pull request of `repo` (`GET /repos/{owner}/{repo}/pulls?state=open`),
    /// all pages. Either the complete list or an error, never part of it.
    ///
    /// Pages are read one after the other, so a pull request opened or
    /// closed meanwhile shifts the pages: one may then be listed twice (only
    /// its first appearance is kept) or missed; a missed one must not be
    /// taken for closed (confirm with [`Client::get_pull_request`]).
    pub async fn list_open_pull_requests(
        &self,
        repo: &Repository,
    ) -> Result<Vec<PullRequest>, Error> {
        let url = format!(
            "{}/repos/{}/{}/pulls?state=open&per_page=100",
            self.inner.base_str, repo.owner, repo.name
        );
        let mut pulls: Vec<PullRequest> = self.get_all(url).await?;
        let mut seen = std::collections::HashSet::new();
        pulls.retain(|p| seen.insert(p.number));
        Ok(pulls)
    }

    /// One pull request (`GET /repos/{owner}/{repo}/pulls/{number}`): whether
    /// it is open, closed or merged, and its head.
    pub async fn get_pull_request(
        &self,
        repo: &Repository,
        number: u64,
    ) -> Result<PullRequest, Error> {
        let url = format!(
            "{}/repos/{}/{}/pulls/{number}",
            self.inner.base_str, repo.owner, repo.name
        );
        let answer = self.send(Method::GET, &url, None).await?;
        decode(&Method::GET, &url, &answer.body)
    }

    /// Sets a commit status on `sha` (`POST /repos/{owner}/{repo}/statuses/{sha}`).
    pub async fn create_commit_status(
        &self,
        repo: &Repository,
        sha: &str,
        status: &CommitStatus,
    ) -> Result<(), Error> {
        if sha.len() < 4 || sha.len() > 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Config(format!(
                "commit {sha:?} is not a commit SHA (4 to 64 hex digits)"
            )));
        }
        let mut status = status.clone();
        if let Some(d) = &mut status.description
            && let Some((cut, _)) = d.char_indices().nth(STATUS_DESCRIPTION_MAX_CHARS)
        {
            d.truncate(cut);
        }
        let url = format!(
            "{}/repos/{}/{}/statuses/{sha}",
            self.inner.base_str, repo.owner, repo.name
        );
        self.send(Method::POST, &url, Some(to_json(&status)?))
            .await
            .map(drop)
    }

    /// Makes the one comment carrying `marker` on pull request `number` say
    /// `marker` + newline + `text`: finds it among all the pull request's
    /// comments and updates it (`PATCH /repos/{owner}/{repo}/issues/comments/{id}`)
    /// when its text differs, or creates it
    /// (`POST /repos/{owner}/{repo}/issues/{number}/comments`) when no comment
    /// carries the marker.
    ///
    /// `marker` must be an HTML comment (`<!-- … -->`), so GitHub does not
    /// show it, unique to the writer (e.g. `<!-- ephemeral:previews/shop-prs -->`).
    pub async fn upsert_comment(
        &self,
        repo: &Repository,
        number: u64,
        marker: &str,
        text: &str,
    ) -> Result<CommentUpsert, Error> {
        if !(marker.starts_with("<!--") && marker.ends_with("-->") && marker.len() > 7) {
            return Err(Error::Config(format!(
                "comment marker {marker:?} must be a non-empty HTML comment, e.g. <!-- ephemeral:NAMESPACE/SET -->"
            )));
        }
        let body = format!("{marker}\n{text}");
        let list = format!(
            "{}/repos/{}/{}/issues/{number}/comments?per_page=100",
            self.inner.base_str, repo.owner, repo.name
        );
        let comments: Vec<Comment> = self.get_all(list).await?;
        let existing = comments
            .into_iter()
            .find(|c| c.body.as_deref().is_some_and(|b| b.contains(marker)));
        let payload = to_json(&serde_json::json!({ "body": body }))?;
        match existing {
            Some(c) if c.body.as_deref() == Some(body.as_str()) => Ok(CommentUpsert::Unchanged(c)),
            Some(c) => {
                let url = format!(
                    "{}/repos/{}/{}/issues/comments/{}",
                    self.inner.base_str, repo.owner, repo.name, c.id
                );
                let answer = self.send(Method::PATCH, &url, Some(payload)).await?;
                decode(&Method::PATCH, &url, &answer.body).map(CommentUpsert::Updated)
            }
            None => {
                let url = format!(
                    "{}/repos/{}/{}/issues/{number}/comments",
                    self.inner.base_str, repo.owner, repo.name
                );
                let answer = self.send(Method::POST, &url, Some(payload)).await?;
                decode(&Method::POST, &url, &answer.body).map(CommentUpsert::Created)
            }
        }
    }

    /// Every item of a paginated list, following `rel="next"`.
    async fn get_all<T: DeserializeOwned>(&self, first: String) -> Result<Vec<T>, Error> {
        let mut items = Vec::new();
        let mut url = first;
        for _ in 0..MAX_PAGES {
            let answer = self.send(Method::GET, &url, None).await?;
            let page: Vec<T> = decode(&Method::GET, &url, &answer.body)?;
            items.extend(page);
            match answer.link.as_deref().and_then(link::next) {
                None => return Ok(items),
                Some(next) => url = self.same_origin(&url, next)?,
            }
        }
        Err(Error::Decode {
            method: "GET".into(),
            url,
            path: "Link".into(),
            message: format!("more than {MAX_PAGES} pages of 100; not following further"),
        })
    }

    /// A `next` link, if it points to the API's own origin (the token is
    /// sent there).
    fn same_origin(&self, current: &str, next: &str) -> Result<String, Error> {
        let parsed = Url::parse(next).ok().filter(|u| {
            u.scheme() == self.inner.base.scheme()
                && u.host_str() == self.inner.base.host_str()
                && u.port_or_known_default() == self.inner.base.port_or_known_default()
        });
        match parsed {
            Some(u) => Ok(u.to_string()),
            None => Err(Error::Decode {
                method: "GET".into(),
                url: current.to_string(),
                path: "Link".into(),
                message: format!("the next page {next:?} is not on {}", self.inner.base_str),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The lock is never held across an await or a panic point that
        // leaves the state half-written; a poisoned lock still holds valid data.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `Authorization` header for API requests.
    async fn authorization(&self) -> Result<HeaderValue, Error> {
        match &self.inner.auth {
            Auth::Token(value) => Ok(value.clone()),
            Auth::App { signer, token } => {
                let mut cached = token.lock().await;
                let now = self.inner.clock.now();
                if let Some(t) = cached.as_ref().filter(|t| t.fresh_at(now)) {
                    return bearer(t.token.expose());
                }
                let fresh = self.exchange(signer, now).await?;
                let value = bearer(fresh.token.expose())?;
                *cached = Some(fresh);
                Ok(value)
            }
        }
    }

    /// `POST /app/installations/{id}/access_tokens` with a fresh JWT.
    async fn exchange(
        &self,
        signer: &AppSigner,
        now: Timestamp,
    ) -> Result<InstallationToken, Error> {
        #[derive(Deserialize)]
        struct Answer {
            token: String,
            expires_at: String,
        }
        let url = format!(
            "{}/app/installations/{}/access_tokens",
            self.inner.base_str, signer.installation_id
        );
        let jwt = bearer(signer.jwt(now)?.as_bytes())?;
        let answer = self.send_raw(Method::POST, &url, None, jwt).await?;
        let parsed: Answer = decode(&Method::POST, &url, &answer.body)?;
        let expires_at = parsed
            .expires_at
            .parse::<Timestamp>()
            .map_err(|e| Error::Decode {
                method: "POST".into(),
                url: url.clone(),
                path: "expires_at".into(),
                message: format!("not an RFC 3339 time: {e}"),
            })?;
        Ok(InstallationToken {
            token: Secret::new(parsed.token),
            expires_at,
        })
    }

    /// An API request with the client's credentials.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, Error> {
        self.check_gate()?;
        let authorization = self.authorization().await?;
        self.send_raw(method, url, body, authorization).await
    }

    /// One request: the rate-limit gate, the conditional GET, the timeout,
    /// and the reading of the answer's status and headers.
    async fn send_raw(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        authorization: HeaderValue,
    ) -> Result<Answer, Error> {
        self.check_gate()?;
        let cached = if method == Method::GET {
            let mut state = self.state();
            state.uses += 1;
            let uses = state.uses;
            state.cache.get_mut(url).map(|c| {
                c.last_used = uses;
                c.clone()
            })
        } else {
            None
        };
        let mut request = self
            .inner
            .http
            .request(method.clone(), url)
            .header(header::AUTHORIZATION, authorization);
        if let Some(c) = &cached {
            request = request.header(header::IF_NONE_MATCH, c.etag.clone());
        }
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                Error::Timeout {
                    method: method.to_string(),
                    url: url.to_string(),
                    after: self.inner.timeout,
                }
            } else {
                Error::Transport {
                    method: method.to_string(),
                    url: url.to_string(),
                    message: chain(&e),
                }
            }
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(transport)?;
        let now = self.inner.clock.now();
        let remaining = header_u64(&headers, "x-ratelimit-remaining");
        let reset = header_u64(&headers, "x-ratelimit-reset")
            .and_then(|s| Timestamp::from_second(i64::try_from(s).ok()?).ok());
        let link = headers
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        tracing::debug!(%method, url, status = status.as_u16(), remaining, "GitHub request");
        let mut state = self.state();
        if let Some(remaining) = remaining {
            state.rate_limit = Some(RateLimit { remaining, reset });
        }
        if status == StatusCode::NOT_MODIFIED
            && let Some(c) = cached
        {
            return Ok(Answer {
                body: c.body,
                link: c.link,
            });
        }
        if status.is_success() {
            if remaining == Some(0)
                && let Some(reset) = reset.filter(|r| *r > now)
            {
                state.blocked = Some((RateLimitKind::Primary, reset));
            }
            if method == Method::GET
                && let Some(etag) = headers.get(header::ETAG)
            {
                state.uses += 1;
                let last_used = state.uses;
                state.cache.insert(
                    url.to_string(),
                    Cached {
                        etag: etag.clone(),
                        body: bytes.clone(),
                        link: link.clone(),
                        last_used,
                    },
                );
                evict(&mut state.cache);
            }
            return Ok(Answer { body: bytes, link });
        }
        let message = github_message(&bytes);
        if matches!(
            status,
            StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
        ) {
            let retry_after = header_u64(&headers, header::RETRY_AFTER.as_str());
            let limited = if let Some(secs) = retry_after {
                Some((
                    RateLimitKind::Secondary,
                    now + SignedDuration::from_secs(
                        i64::try_from(secs).unwrap_or(i64::MAX / 2).min(86_400),
                    ),
                ))
            } else if remaining == Some(0) {
                Some((
                    RateLimitKind::Primary,
                    reset
                        .filter(|r| *r > now)
                        .unwrap_or(now + SECONDARY_LIMIT_DEFAULT_WAIT),
                ))
            } else if status == StatusCode::TOO_MANY_REQUESTS
                || message.to_ascii_lowercase().contains("rate limit")
            {
                Some((RateLimitKind::Secondary, now + SECONDARY_LIMIT_DEFAULT_WAIT))
            } else {
                None
            };
            if let Some((kind, until)) = limited {
                state.blocked = Some((kind, until));
                return Err(Error::RateLimited { kind, until });
            }
        }
        Err(Error::Status {
            method: method.to_string(),
            url: url.to_string(),
            status: status.as_u16(),
            message,
        })
    }

    fn check_gate(&self) -> Result<(), Error> {
        let now = self.inner.clock.now();
        match self.state().blocked {
            Some((kind, until)) if until > now => Err(Error::RateLimited { kind, until }),
            _ => Ok(()),
        }
    }
}

/// Drops the least recently used entries over [`ETAG_CACHE_ENTRIES`].
fn evict(cache: &mut HashMap<String, Cached>) {
    while cache.len() > ETAG_CACHE_ENTRIES {
        let Some(oldest) = cache
            .iter()
            .min_by_key(|(_, c)| c.last_used)
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        cache.remove(&oldest);
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// GitHub's `message` from an error body, else the start of the body.
fn github_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        return e.message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(no message)".to_string();
    }
    text.chars().take(200).collect()
}

fn decode<T: DeserializeOwned>(method: &Method, url: &str, body: &[u8]) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| Error::Decode {
        method: method.to_string(),
        url: url.to_string(),
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Config(format!("cannot encode the request: {e}")))
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_change_the_path_are_refused() {
        assert!(Repository::new("acme", "shop").is_ok());
        assert!(Repository::new("acme-inc", "shop.web_2").is_ok());
        for (owner, repo) in [
            ("acme", ".."),
            ("ac/me", "shop"),
            ("acme", "shop?x"),
            ("", "shop"),
        ] {
            let err = Repository::new(owner, repo).unwrap_err();
            assert!(err.to_string().contains("is not a GitHub name"), "{err}");
        }
    }

    #[test]
    fn a_sets_source_gives_the_repository_and_api_url() {
        let source = GitHubSource {
            owner: "acme".into(),
            repo: "shop".into(),
            api_url: Some("https://ghe.example.com/api/v3".into()),
            ..GitHubSource::default()
        };
        assert_eq!(Repository::of(&source).unwrap().to_string(), "acme/shop");
        let creds = || Credentials::Token(Secret::from("t"));
        assert_eq!(
            ClientSettings::for_source(&source, creds()).api_url,
            "https://ghe.example.com/api/v3"
        );
        let github_com = GitHubSource {
            api_url: None,
            ..source
        };
        assert_eq!(
            ClientSettings::for_source(&github_com, creds()).api_url,
            DEFAULT_API_URL
        );
    }

    #[test]
    fn a_bad_api_url_is_refused_with_the_fix() {
        let mut settings = ClientSettings::new(Credentials::Token(Secret::from("t")));
        settings.api_url = "ftp://github.example.com".into();
        let err = Client::new(settings).unwrap_err();
        assert!(err.to_string().contains("https://HOST/api/v3"), "{err}");
    }

    #[test]
    fn a_next_page_on_another_origin_is_not_followed() {
        let mut settings = ClientSettings::new(Credentials::Token(Secret::from("t")));
        settings.api_url = "https://ghe.example.com/api/v3".into();
        let client = Client::new(settings).unwrap();
        let here = "https://ghe.example.com/api/v3/repos/a/b/pulls?page=1";
        assert!(
            client
                .same_origin(
                    here,
                    "https://ghe.example.com/api/v3/repos/a/b/pulls?page=2"
                )
                .is_ok()
        );
        for elsewhere in [
            "https://evil.example.com/api/v3/repos/a/b/pulls?page=2",
            "http://ghe.example.com/api/v3/repos/a/b/pulls?page=2",
            "https://ghe.example.com:8443/api/v3/repos/a/b/pulls?page=2",
            "/relative",
        ] {
            let err = client.same_origin(here, elsewhere).unwrap_err();
            assert!(matches!(err, Error::Decode { .. }), "{elsewhere}: {err:?}");
        }
    }

    #[test]
    fn the_token_never_shows_in_the_clients_debug_output() {
        let client = Client::new(ClientSettings::new(Credentials::Token(Secret::from(
            "ghp_secret123",
        ))))
        .unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("ghp_secret123"), "{shown}");
    }

    #[test]
    fn an_empty_token_is_refused() {
        let err =
            Client::new(ClientSettings::new(Credentials::Token(Secret::from(" \n")))).unwrap_err();
        assert!(err.to_string().contains("tokenSecretRef"), "{err}");
    }

    #[test]
    fn githubs_error_message_is_kept() {
        assert_eq!(
            github_message(br#"{"message":"Bad credentials","documentation_url":"x"}"#),
            "Bad credentials"
        );
        assert_eq!(github_message(b"<html>oops</html>"), "<html>oops</html>");
        assert_eq!(github_message(b""), "(no message)");
    }
}
