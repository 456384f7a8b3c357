// About 400 lines of non-test code: the four operations, their settings and the client's state; the HTTP machinery is in transport.rs.
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
pub use super::model::{
    Comment, CommentUpsert, CommitState, CommitStatus, RateLimit, STATUS_DESCRIPTION_MAX_CHARS,
};
pub use super::repository::Repository;
use crate::clock::Clock;

mod transport;

use transport::{bearer, chain, decode, to_json};

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
            self.inner.base_str,
            repo.owner(),
            repo.name()
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
            self.inner.base_str,
            repo.owner(),
            repo.name()
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
            self.inner.base_str,
            repo.owner(),
            repo.name()
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
            self.inner.base_str,
            repo.owner(),
            repo.name()
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
                    self.inner.base_str,
                    repo.owner(),
                    repo.name(),
                    c.id
                );
                let answer = self.send(Method::PATCH, &url, Some(payload)).await?;
                decode(&Method::PATCH, &url, &answer.body).map(CommentUpsert::Updated)
            }
            None => {
                let url = format!(
                    "{}/repos/{}/{}/issues/{number}/comments",
                    self.inner.base_str,
                    repo.owner(),
                    repo.name()
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
}
