//! The one mocked Kubernetes API server of the tests (kube-rs's tower-test
//! pattern), for tests that pin the exact requests a piece of code makes.
//!
//! Two ways to drive it:
//!
//! - Declarative: a list of [`Exchange`]s, each an expected request (method,
//!   path, query, content type, body) and its answer, played in order by
//!   [`MockApi::play`]; a different, missing or extra request fails the test.
//! - Step by step: [`MockApi::next`] waits for the next request, checks its
//!   method and path and hands it to the test as a [`Call`] to answer when
//!   the test chooses (leader election, requests held in flight).
//!
//! With [`MockApi::checking_rbac`], every request must also be allowed by the
//! given RBAC [`Grants`] (what the code calls, the manifests must grant).
//! Answers are JSON; [`failure`] builds a Kubernetes `Status` failure.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{Method, Request, Response, Uri};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::rbac::Grants;

/// The client side: a tower service to build a `kube::Client` on.
pub type Service = tower_test::mock::Mock<Request<Body>, Response<Body>>;
type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
type Respond = tower_test::mock::SendResponse<Response<Body>>;

/// How long [`MockApi::next`] waits for a request before failing the test.
pub const WAIT: Duration = Duration::from_secs(5);

/// A mocked API server and the service its client talks through.
pub fn pair() -> (Service, MockApi) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (
        service,
        MockApi {
            handle,
            grants: None,
        },
    )
}

/// A mocked API server and a plain `kube::Client` (namespace `default`) on it.
pub fn client() -> (kube::Client, MockApi) {
    let (service, api) = pair();
    (kube::Client::new(service, "default"), api)
}

/// The server side of the mocked API.
pub struct MockApi {
    handle: Handle,
    grants: Option<Grants>,
}

/// One request received, to be answered with [`Call::reply`].
pub struct Call {
    /// Its method.
    pub method: Method,
    /// Its URI (path and query).
    pub uri: Uri,
    /// Its `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Its JSON body (`None` when empty).
    pub body: Option<Value>,
    respond: Respond,
}

impl Call {
    /// Answers with `code` and this JSON body.
    pub fn reply(self, code: u16, body: &Value) {
        self.respond.send_response(answer(code, body, &[]));
    }

    /// Answers 200 with this JSON body.
    pub fn ok(self, body: &Value) {
        self.reply(200, body);
    }

    /// Answers with a `Status` failure (see [`failure`]).
    pub fn fail(self, code: u16, reason: &str) {
        self.reply(code, &failure(code, reason, reason));
    }

    /// The query parameters, decoded.
    pub fn query(&self) -> BTreeMap<String, String> {
        query_of(&self.uri)
    }
}

impl MockApi {
    /// Also checks every request against these RBAC grants.
    pub fn checking_rbac(mut self, grants: Grants) -> Self {
        self.grants = Some(grants);
        self
    }

    /// The next request, whatever it is (`None` once every client is gone).
    pub async fn next_any(&mut self) -> Option<Call> {
        let (request, respond) = self.handle.next_request().await?;
        let (parts, body) = request.into_parts();
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(grants) = &self.grants
            && let Err(e) = grants.allow(
                parts.method.as_str(),
                &parts.uri.to_string(),
                content_type.as_deref(),
            )
        {
            panic!("{} {}: {e}", parts.method, parts.uri);
        }
        let bytes = body.collect_bytes().await.expect("a readable request body");
        let body = (!bytes.is_empty()).then(|| {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!("{} {}: the body is not JSON: {e}", parts.method, parts.uri)
            })
        });
        Some(Call {
            method: parts.method,
            uri: parts.uri,
            content_type,
            body,
            respond,
        })
    }

    /// Waits (at most [`WAIT`]) for the next request and checks that it is
    /// `method path` (the query is not compared; see [`Call::query`]).
    pub async fn next(&mut self, method: Method, path: &str) -> Call {
        let call = tokio::time::timeout(WAIT, self.next_any())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {method} {path}"))
            .unwrap_or_else(|| panic!("{method} {path} was expected, but the client is gone"));
        assert_eq!(
            (&call.method, call.uri.path()),
            (&method, path),
            "expected {method} {path}"
        );
        call
    }

    /// Plays `exchanges` in order on a task: each request must be the next
    /// exchange's, and none may follow the last one. The task ends when the
    /// client is gone and returns what was sent; await it to see its panics.
    pub fn play(mut self, exchanges: Vec<Exchange>) -> JoinHandle<Vec<Sent>> {
        tokio::spawn(async move {
            let mut sent = Vec::new();
            for (i, ex) in exchanges.into_iter().enumerate() {
                let what = format!("request {} ({} {})", i + 1, ex.method, ex.path);
                let Some(call) = self.next_any().await else {
                    panic!("{what} was expected, but no more requests came");
                };
                assert_eq!(call.method.as_str(), ex.method, "{what}: method");
                assert_eq!(call.uri.path(), ex.path, "{what}: path");
                if let Some(query) = &ex.query {
                    assert_eq!(&call.query(), query, "{what}: query");
                }
                if let Some(ct) = ex.content_type {
                    assert_eq!(
                        call.content_type.as_deref(),
                        Some(ct),
                        "{what}: content type"
                    );
                }
                if let Some(expected) = &ex.body {
                    assert_eq!(call.body.as_ref(), Some(expected), "{what}: body");
                }
                let response = match ex.response {
                    Answer::Json(v) => v,
                    Answer::Echo(version) => {
                        let mut v = call
                            .body
                            .clone()
                            .unwrap_or_else(|| panic!("{what}: no body to echo"));
                        v["metadata"]["resourceVersion"] = json!(version);
                        v
                    }
                };
                sent.push(Sent {
                    content_type: call.content_type.clone(),
                    body: call.body.clone(),
                });
                call.respond
                    .send_response(answer(ex.status, &response, &ex.warnings));
            }
            if let Some(call) = self.next_any().await {
                panic!("unexpected extra request: {} {}", call.method, call.uri);
            }
            sent
        })
    }
}

/// What the client sent with one played exchange.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The request's `Content-Type`.
    pub content_type: Option<String>,
    /// The request's JSON body.
    pub body: Option<Value>,
}

/// One request the code must make, and the answer it gets.
pub struct Exchange {
    method: String,
    path: String,
    query: Option<BTreeMap<String, String>>,
    content_type: Option<&'static str>,
    body: Option<Value>,
    status: u16,
    warnings: Vec<&'static str>,
    response: Answer,
}

enum Answer {
    Json(Value),
    /// The request body with `metadata.resourceVersion` set, as the API
    /// server answers a create or replace.
    Echo(&'static str),
}

/// Expects `METHOD path` (a `?query` in `path` is compared as decoded
/// parameters, their order aside; none means no query); answers 200 `{}` unless told otherwise.
pub fn expect(method: impl AsRef<str>, path: impl Into<String>) -> Exchange {
    let path = path.into();
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(parse_query(q))),
        None => (path, Some(BTreeMap::new())),
    };
    Exchange {
        method: method.as_ref().to_owned(),
        path,
        query,
        content_type: None,
        body: None,
        status: 200,
        warnings: Vec::new(),
        response: Answer::Json(json!({})),
    }
}

impl Exchange {
    /// Expects exactly these query parameters.
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        self.query = Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        self
    }

    /// Does not compare the query.
    pub fn any_query(mut self) -> Self {
        self.query = None;
        self
    }

    /// Expects this content type.
    pub fn content_type(mut self, content_type: &'static str) -> Self {
        self.content_type = Some(content_type);
        self
    }

    /// Expects this JSON body with this content type.
    pub fn body(mut self, content_type: &'static str, body: Value) -> Self {
        self.content_type = Some(content_type);
        self.body = Some(body);
        self
    }

    /// Answers 200 with this object.
    pub fn ok(self, response: Value) -> Self {
        self.answer(200, response)
    }

    /// Answers with this status code and object.
    pub fn answer(mut self, status: u16, response: Value) -> Self {
        self.status = status;
        self.response = Answer::Json(response);
        self
    }

    /// Answers `status` with the request's body, `metadata.resourceVersion`
    /// set, as the API server answers a create (201) or replace (200).
    pub fn echo(mut self, status: u16, resource_version: &'static str) -> Self {
        self.status = status;
        self.response = Answer::Echo(resource_version);
        self
    }

    /// Adds a `Warning` header with this value (as it goes on the wire,
    /// e.g. `299 - "text"`) to the answer; call again for several headers.
    pub fn warning(mut self, value: &'static str) -> Self {
        self.warnings.push(value);
        self
    }

    /// Answers with a `Status` failure; `name` fills its `details` (an
    /// Environment's name, as the API server says for `environments`).
    pub fn fail(self, code: u16, reason: &str, message: &str, name: Option<&str>) -> Self {
        let mut status = failure(code, reason, message);
        status["details"] = match name {
            Some(n) => json!({"name": n, "group": "ephemeral.io", "kind": "environments"}),
            None => json!({}),
        };
        self.answer(code, status)
    }
}

/// A Kubernetes `Status` failure as the API server answers it.
pub fn failure(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// A `List` answer of these items.
pub fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "10"}, "items": items})
}

fn answer(code: u16, body: &Value, warnings: &[&str]) -> Response<Body> {
    let mut response = Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json");
    for warning in warnings {
        response = response.header(http::header::WARNING, *warning);
    }
    response
        .body(Body::from(serde_json::to_vec(body).expect("JSON")))
        .expect("a valid response")
}

fn query_of(uri: &Uri) -> BTreeMap<String, String> {
    parse_query(uri.query().unwrap_or_default())
}

fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), decode(v))
        })
        .collect()
}

/// Percent-decoding of a query value (`+` is a space).
fn decode(v: &str) -> String {
    let mut out = Vec::new();
    let bytes = v.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => out.push(b),
                    None => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded() {
        let q = parse_query("labelSelector=ephemeral.io%2Fowner%3Dalice&fieldManager=x+y&&watch");
        assert_eq!(q["labelSelector"], "ephemeral.io/owner=alice");
        assert_eq!(q["fieldManager"], "x y");
        assert_eq!(q["watch"], "");
    }

    #[tokio::test]
    async fn a_played_scenario_fails_on_an_unexpected_request() {
        let (client, api) = client();
        let server = api.play(vec![expect("GET", "/api/v1/namespaces/a/pods")]);
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, "b");
        let _ = pods.list(&Default::default()).await;
        let err = server.await.expect_err("the wrong path fails the server");
        assert!(err.is_panic());
    }
}
