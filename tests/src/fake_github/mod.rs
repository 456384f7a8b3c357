//! A fake GitHub REST API: a real HTTP server on `127.0.0.1:0` serving the
//! endpoints an EnvironmentSet uses, as GitHub's REST docs specify them,
//! with their headers, scriptable per test and recording every request.
//!
//! Served (under an optional prefix, e.g. `/api/v3` as GitHub Enterprise
//! Server has it):
//!
//! - `GET /repos/{owner}/{repo}/pulls` (`state`, `per_page` ≤ 100 default
//!   30, `page`; newest first) and `GET /repos/{owner}/{repo}/pulls/{number}`;
//! - `POST /repos/{owner}/{repo}/statuses/{sha}`;
//! - `GET`/`POST /repos/{owner}/{repo}/issues/{number}/comments` and
//!   `PATCH /repos/{owner}/{repo}/issues/comments/{id}`;
//! - `POST /app/installations/{id}/access_tokens` (a `Bearer` JWT; answers a
//!   fresh `ghs_fake_N` token, which the server then accepts).
//!
//! Headers as GitHub sends them: `Link` (`next`, `last`, `first`, `prev`,
//! absolute URLs), a weak `ETag` on every `GET` answer and `304 Not Modified`
//! for a matching `If-None-Match` (which, as on GitHub, costs no rate limit),
//! `X-RateLimit-Limit/Remaining/Used/Reset/Resource` on every answer, and
//! `Retry-After` on an injected secondary rate limit. A request without
//! `User-Agent` is refused with 403, as GitHub does; with [`FakeGitHub::require_token`]
//! a missing or unknown token gets `401 Bad credentials`.
//!
//! For the receiver side, [`pull_request_event`] builds a delivery's payload
//! and [`webhook_signature`] its `X-Hub-Signature-256`, as GitHub does.
//!
//! Failures are injected with [`FakeGitHub::fail_next`] ([`Fault`]): each
//! applies to the next request, in order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

mod fixtures;

pub use fixtures::{PullRequestFixture, pull_request_event, webhook_signature};

/// A failure to inject into the next request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally: lets the next fault hit a later request (e.g. the
    /// second page).
    None,
    /// Answer this status with a GitHub error body (e.g. 500, 502, 404).
    Status(u16),
    /// Wait this long before answering (normally), to trip a timeout.
    Slow(Duration),
    /// Answer 200 with a body cut in the middle of its JSON.
    MalformedJson,
    /// Answer 200 with valid JSON of the wrong shape (`{"items": "nope"}`).
    WrongShape,
    /// The primary rate limit: `403`, `X-RateLimit-Remaining: 0`,
    /// `X-RateLimit-Reset` this many seconds ahead.
    PrimaryRateLimit {
        /// Seconds until the reset.
        reset_in_secs: u64,
    },
    /// A secondary rate limit: `429` (or `403`) with `Retry-After`.
    SecondaryRateLimit {
        /// The `Retry-After` seconds.
        retry_after_secs: u64,
        /// Answer `403` instead of `429`.
        forbidden: bool,
    },
}

/// A request the fake received.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the server's prefix.
    pub path: String,
    /// The query string (without `?`), empty when none.
    pub query: String,
    /// Headers, names lower-case (a repeated header keeps its last value).
    pub headers: BTreeMap<String, String>,
    /// The body, as text.
    pub body: String,
    /// When it arrived.
    pub at: SystemTime,
}

impl Request {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body, as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// The rate-limit window each answer reports.
pub const RATE_LIMIT: u64 = 5000;

#[derive(Default)]
struct Repo {
    pulls: Vec<Value>,
    statuses: Vec<Value>,
    /// Comments by issue number.
    comments: BTreeMap<u64, Vec<Value>>,
}

struct FakeState {
    base_url: String,
    prefix: String,
    repos: BTreeMap<(String, String), Repo>,
    faults: VecDeque<Fault>,
    requests: Vec<Request>,
    tokens: Option<BTreeSet<String>>,
    installation_token_lifetime: SignedDuration,
    minted: u64,
    next_id: u64,
    remaining: u64,
    reset: Timestamp,
}

/// The fake GitHub server; stops when dropped.
pub struct FakeGitHub {
    url: String,
    state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGitHub {
    /// Starts a fake github.com: the API at the server's root.
    pub async fn start() -> Self {
        Self::start_with_prefix("").await
    }

    /// Starts a fake whose API lives under `prefix`, e.g. `/api/v3` as on
    /// GitHub Enterprise Server.
    pub async fn start_with_prefix(prefix: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind the fake GitHub on 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake GitHub address");
        let prefix = prefix.trim_end_matches('/').to_string();
        let base_url = format!("http://{addr}{prefix}");
        let state = Arc::new(Mutex::new(FakeState {
            base_url: base_url.clone(),
            prefix,
            repos: BTreeMap::new(),
            faults: VecDeque::new(),
            requests: Vec::new(),
            tokens: None,
            installation_token_lifetime: SignedDuration::from_hours(1),
            minted: 0,
            next_id: 1000,
            remaining: RATE_LIMIT,
            reset: Timestamp::now() + SignedDuration::from_hours(1),
        }));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitHub {
            url: base_url,
            state,
            task,
        }
    }

    /// The API's base URL, for `apiURL` (e.g. `http://127.0.0.1:PORT/api/v3`).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the pull requests of `owner/repo` (JSON as GitHub returns
    /// them, e.g. from [`PullRequestFixture::json`]); their `state` decides
    /// which lists they appear in.
    pub fn set_pull_requests(&self, owner: &str, repo: &str, pulls: Vec<Value>) {
        self.lock().repo(owner, repo).pulls = pulls;
    }

    /// Adds a pull request, or replaces the one with the same number.
    pub fn upsert_pull_request(&self, owner: &str, repo: &str, pull: Value) {
        let mut state = self.lock();
        let pulls = &mut state.repo(owner, repo).pulls;
        pulls.retain(|p| p["number"] != pull["number"]);
        pulls.push(pull);
    }

    /// Accepts only this token (and installation tokens it minted) from now on.
    pub fn require_token(&self, token: &str) {
        self.lock()
            .tokens
            .get_or_insert_with(BTreeSet::new)
            .insert(token.to_string());
    }

    /// How long minted installation tokens live (`expires_at`; default 1 h).
    pub fn set_installation_token_lifetime(&self, lifetime: SignedDuration) {
        self.lock().installation_token_lifetime = lifetime;
    }

    /// Injects `fault` into the next request not yet faulted.
    pub fn fail_next(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// The commit statuses created on `owner/repo`, oldest first (each with
    /// `sha`, `state`, `context`, `description`, `target_url`).
    pub fn statuses(&self, owner: &str, repo: &str) -> Vec<Value> {
        self.lock().repo(owner, repo).statuses.clone()
    }

    /// The comments of issue/pull request `number`, oldest first.
    pub fn comments(&self, owner: &str, repo: &str, number: u64) -> Vec<Value> {
        self.lock()
            .repo(owner, repo)
            .comments
            .get(&number)
            .cloned()
            .unwrap_or_default()
    }

    /// Adds a comment (by someone else) to `number`; returns its ID.
    pub fn add_comment(&self, owner: &str, repo: &str, number: u64, body: &str) -> u64 {
        let mut state = self.lock();
        let comment = state.new_comment(owner, repo, number, body);
        let id = comment["id"].as_u64().unwrap_or_default();
        state
            .repo(owner, repo)
            .comments
            .entry(number)
            .or_default()
            .push(comment);
        id
    }

    /// Sets the requests left in the window (each answer but a `304` or a
    /// rate-limit refusal takes one; at 0 answers keep coming, saying 0).
    pub fn set_rate_limit_remaining(&self, remaining: u64) {
        self.lock().remaining = remaining;
    }

    /// `X-RateLimit-Remaining` as the next answer would report it.
    pub fn rate_limit_remaining(&self) -> u64 {
        self.lock().remaining
    }
}

impl FakeState {
    fn repo(&mut self, owner: &str, repo: &str) -> &mut Repo {
        self.repos
            .entry((owner.to_ascii_lowercase(), repo.to_ascii_lowercase()))
            .or_default()
    }

    fn new_comment(&mut self, owner: &str, repo: &str, number: u64, body: &str) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let now = Timestamp::now().to_string();
        json!({
            "id": id,
            "node_id": format!("IC_{id}"),
            "url": format!("{}/repos/{owner}/{repo}/issues/comments/{id}", self.base_url),
            "html_url": format!("https://github.example/{owner}/{repo}/pull/{number}#issuecomment-{id}"),
            "issue_url": format!("{}/repos/{owner}/{repo}/issues/{number}", self.base_url),
            "body": body,
            "user": {"login": "ephemeral-bot[bot]", "id": 1, "type": "Bot"},
            "created_at": now,
            "updated_at": now,
            "author_association": "NONE"
        })
    }
}

/// An answer before the rate-limit headers are added.
struct Answer {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

fn answer(status: StatusCode, body: Value) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: Some(body),
    }
}

fn error(status: StatusCode, message: &str) -> Answer {
    answer(
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.as_u16().to_string()}),
    )
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let path = uri.path();
        let path = path
            .strip_prefix(s.prefix.as_str())
            .unwrap_or(path)
            .to_string();
        s.requests.push(Request {
            method: method.to_string(),
            path,
            query: uri.query().unwrap_or_default().to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
            at: SystemTime::now(),
        });
        s.faults.pop_front()
    };
    if let Some(Fault::Slow(d)) = &fault {
        tokio::time::sleep(*d).await;
    }
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let now = Timestamp::now();
    let mut answer = match &fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(status, status.canonical_reason().unwrap_or("Server Error"))
        }
        Some(Fault::PrimaryRateLimit { reset_in_secs }) => {
            s.remaining = 0;
            s.reset = now + SignedDuration::from_secs(*reset_in_secs as i64);
            error(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for installation ID 1. If you reach out to GitHub Support for help, please include the request ID.",
            )
        }
        Some(Fault::SecondaryRateLimit {
            retry_after_secs,
            forbidden,
        }) => {
            let mut a = error(
                if *forbidden {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::TOO_MANY_REQUESTS
                },
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            );
            a.headers
                .push(("retry-after", retry_after_secs.to_string()));
            a
        }
        _ => serve(&mut s, &method, &uri, &headers, &body),
    };
    let mut raw_body = answer
        .body
        .as_ref()
        .map(|b| serde_json::to_vec(b).unwrap_or_default());
    if answer.status.is_success() {
        match fault {
            Some(Fault::MalformedJson) => {
                let full = raw_body.unwrap_or_default();
                raw_body = Some(full[..full.len() / 2].to_vec());
            }
            Some(Fault::WrongShape) => {
                raw_body = Some(br#"{"items": "nope"}"#.to_vec());
            }
            _ => {}
        }
    }
    // Conditional GETs: a weak ETag of the body; a match is a free 304.
    let mut not_modified = false;
    if method == Method::GET && answer.status == StatusCode::OK {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            raw_body.as_deref().unwrap_or_default(),
        );
        let etag = format!(
            "W/\"{}\"",
            digest.as_ref()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        not_modified = headers
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
        answer.headers.push(("etag", etag));
    }
    let limited = matches!(
        answer.status,
        StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    );
    if !not_modified && !limited {
        s.remaining = s.remaining.saturating_sub(1);
    }
    let reset = s.reset.as_second().to_string();
    let remaining = s.remaining;
    drop(s);
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (answer.status, raw_body.unwrap_or_default()).into_response();
        if answer.body.is_some() {
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        r
    };
    let h = response.headers_mut();
    for (name, value) in answer.headers {
        if not_modified && name == "link" {
            continue;
        }
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    h.insert("x-ratelimit-limit", HeaderValue::from(RATE_LIMIT));
    h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    h.insert(
        "x-ratelimit-used",
        HeaderValue::from(RATE_LIMIT - remaining.min(RATE_LIMIT)),
    );
    if let Ok(v) = HeaderValue::from_str(&reset) {
        h.insert("x-ratelimit-reset", v);
    }
    h.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
    h.insert(
        "x-github-api-version-selected",
        HeaderValue::from_static("2022-11-28"),
    );
    response
}

/// The endpoints, without faults.
fn serve(
    s: &mut FakeState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let Some(path) = uri.path().strip_prefix(s.prefix.as_str()) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let path = path.to_string();
    if headers.get("user-agent").is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).",
        );
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
        })
        .map(str::to_string);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let query = parse_query(uri.query().unwrap_or_default());

    if let ["app", "installations", id, "access_tokens"] = segments.as_slice() {
        if *method != Method::POST {
            return error(StatusCode::NOT_FOUND, "Not Found");
        }
        let is_jwt = bearer.as_deref().is_some_and(|t| t.split('.').count() == 3);
        if !is_jwt {
            return error(
                StatusCode::UNAUTHORIZED,
                "A JSON web token could not be decoded",
            );
        }
        s.minted += 1;
        let token = format!("ghs_fake_{}", s.minted);
        if let Some(tokens) = &mut s.tokens {
            tokens.insert(token.clone());
        }
        let expires_at = Timestamp::now() + s.installation_token_lifetime;
        let _ = id;
        return answer(
            StatusCode::CREATED,
            json!({"token": token, "expires_at": expires_at.to_string(),
                   "permissions": {"pull_requests": "read", "statuses": "write", "issues": "write"},
                   "repository_selection": "selected"}),
        );
    }
    if let Some(tokens) = &s.tokens
        && !bearer.as_ref().is_some_and(|t| tokens.contains(t))
    {
        return error(StatusCode::UNAUTHORIZED, "Bad credentials");
    }
    let base_url = s.base_url.clone();
    match (method.clone(), segments.as_slice()) {
        (Method::GET, ["repos", owner, repo, "pulls"]) => {
            let state = query.get("state").map(String::as_str).unwrap_or("open");
            let mut pulls: Vec<Value> = s
                .repo(owner, repo)
                .pulls
                .iter()
                .filter(|p| state == "all" || p["state"] == state)
                .cloned()
                .collect();
            pulls.sort_by_key(|p| std::cmp::Reverse(p["number"].as_u64().unwrap_or_default()));
            let link_base = format!("{base_url}/repos/{owner}/{repo}/pulls?state={state}");
            paginate(pulls, &query, &link_base)
        }
        (Method::GET, ["repos", owner, repo, "pulls", number]) => {
            let found = s
                .repo(owner, repo)
                .pulls
                .iter()
                .find(|p| number.parse::<u64>().ok() == p["number"].as_u64())
                .cloned();
            match found {
                Some(p) => answer(StatusCode::OK, p),
                None => error(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        (Method::POST, ["repos", owner, repo, "statuses", sha]) => {
            let Ok(mut status) = serde_json::from_slice::<Value>(body) else {
                return error(StatusCode::BAD_REQUEST, "Problems parsing JSON");
            };
            let ok_state = status["state"]
                .as_str()
                .is_some_and(|st| ["error", "failure", "pending", "success"].contains(&st));
            if !ok_state {
                return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
            }
            s.next_id += 1;
            status["id"] = json!(s.next_id);
            status["sha"] = json!(sha);
            status["created_at"] = json!(Timestamp::now().to_string());
            if status.get("context").is_none() {
                status["context"] = json!("default");
            }
            s.repo(owner, repo).statuses.push(status.clone());
            answer(StatusCode::CREATED, status)
        }
        (Method::GET, ["repos", owner, repo, "issues", number, "comments"]) => {
            let Ok(number) = number.parse::<u64>() else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let comments = s
                .repo(owner, repo)
                .comments
                .get(&number)
                .cloned()
                .unwrap_or_default();
            let link_base = format!("{base_url}/repos/{owner}/{repo}/issues/{number}/comments?");
            paginate(comments, &query, link_base.trim_end_matches('?'))
        }
        (Method::POST, ["repos", owner, repo, "issues", number, "comments"]) => {
            let Ok(number) = number.parse::<u64>() else {
                return error(StatusCode::NOT_FOUND, "Not Found");
            };
            let Some(text) = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|b| b["body"].as_str().map(str::to_string))
            else {
                return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
            };
            let comment = s.new_comment(owner, repo, number, &text);
            s.repo(owner, repo)
                .comments
                .entry(number)
                .or_default()
                .push(comment.clone());
            answer(StatusCode::CREATED, comment)
        }
        (Method::PATCH, ["repos", owner, repo, "issues", "comments", id]) => {
            let Some(text) = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|b| b["body"].as_str().map(str::to_string))
            else {
                return error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
            };
            let now = Timestamp::now().to_string();
            let found = s
                .repo(owner, repo)
                .comments
                .values_mut()
                .flatten()
                .find(|c| id.parse::<u64>().ok() == c["id"].as_u64());
            match found {
                Some(c) => {
                    c["body"] = json!(text);
                    c["updated_at"] = json!(now);
                    answer(StatusCode::OK, c.clone())
                }
                None => error(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// One page of `items` and GitHub's `Link` header. `link_base` is the URL
/// without `per_page`/`page` (with or without a query of its own).
fn paginate(items: Vec<Value>, query: &BTreeMap<String, String>, link_base: &str) -> Answer {
    let per_page = query
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = query
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let sep = if link_base.contains('?') { '&' } else { '?' };
    let at = |p: usize| format!("<{link_base}{sep}per_page={per_page}&page={p}>");
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", at(page - 1)));
    }
    if page < last {
        links.push(format!("{}; rel=\"next\"", at(page + 1)));
        links.push(format!("{}; rel=\"last\"", at(last)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", at(1)));
    }
    let mut a = answer(StatusCode::OK, Value::Array(slice));
    if !links.is_empty() {
        a.headers.push(("link", links.join(", ")));
    }
    a
}
