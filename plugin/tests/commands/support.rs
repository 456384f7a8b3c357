//! A mocked API server (kube-rs's tower-test pattern) that plays a named
//! scenario: each expected request is checked (method, path, query,
//! content type, body) and answered in order; a missing or extra request fails.
//! The client has the plugin's warning layer, so `Warning` headers of the
//! answers reach the transcript's stderr as they would the terminal's.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};

use ephemeral_core::{Config, Environment, expand};
use http::{Request, Response};
use kube::client::{Body, ClientBuilder};
use kubectl_ephemeral::cmd::{Ctx, Notes};
use kubectl_ephemeral::error::Error;
use kubectl_ephemeral::input::Input;
use kubectl_ephemeral::time::Clock;
use kubectl_ephemeral::warnings::{self, Warnings};
use serde_json::{Value, json};

/// The time every scenario runs at: Saturday 2026-11-21, 12:00 UTC.
pub const NOW: &str = "2026-11-21T12:00:00Z";

/// One request the command must make, and the answer it gets.
pub struct Exchange {
    method: &'static str,
    path: String,
    query: BTreeMap<String, String>,
    content_type: Option<&'static str>,
    body: Option<Value>,
    status: u16,
    warnings: Vec<&'static str>,
    response: Value,
}

/// Expects `METHOD path` with no query.
pub fn expect(method: &'static str, path: impl Into<String>) -> Exchange {
    Exchange {
        method,
        path: path.into(),
        query: BTreeMap::new(),
        content_type: None,
        body: None,
        status: 200,
        warnings: Vec::new(),
        response: json!({}),
    }
}

impl Exchange {
    /// Also expects these query parameters (and no others).
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        self.query = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }

    /// Also expects this JSON body with this content type.
    pub fn body(mut self, content_type: &'static str, body: Value) -> Self {
        self.content_type = Some(content_type);
        self.body = Some(body);
        self
    }

    /// Answers 200 with this object.
    pub fn ok(mut self, response: Value) -> Self {
        self.response = response;
        self
    }

    /// Adds a `Warning` header with this value (as it goes on the wire,
    /// e.g. `299 - "text"`) to the answer; call again for several headers.
    pub fn warning(mut self, value: &'static str) -> Self {
        self.warnings.push(value);
        self
    }

    /// Answers with a `Status` failure.
    pub fn fail(mut self, code: u16, reason: &str, message: &str, name: Option<&str>) -> Self {
        self.status = code;
        let mut status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code});
        status["details"] = match name {
            Some(n) => json!({"name": n, "group": "ephemeral.io", "kind": "environments"}),
            None => json!({}),
        };
        self.response = status;
        self
    }
}

/// A fixed clock in UTC.
pub fn clock() -> Clock {
    Clock::fixed(NOW.parse().unwrap(), jiff::tz::TimeZone::UTC)
}

/// What a command did against the mocked API server.
pub struct Played {
    /// What it returned.
    pub result: Result<Notes, Error>,
    /// What it printed on stdout.
    pub out: String,
    /// What the warning layer printed on stderr while it ran.
    pub warnings: String,
}

impl Played {
    /// What it printed and returned, as one text for snapshots: stderr holds
    /// the warnings (printed as the answers came) before the notes or the error.
    pub fn transcript(&self) -> String {
        let stderr = match &self.result {
            Ok(notes) => notes.join("\n"),
            Err(e) => format!("error: {e} (exit {})", e.exit_code()),
        };
        format!(
            "--- stdout\n{}--- stderr\n{}{stderr}\n",
            self.out, self.warnings
        )
    }
}

/// What a transcript shows on stderr.
pub fn stderr(transcript: &str) -> &str {
    transcript.split_once("--- stderr\n").unwrap().1
}

/// A writer whose text can be read back.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Plays `exchanges` against the command `f` runs in namespace `ephemeral`;
/// returns its result and what it printed.
pub async fn play<F, Fut>(exchanges: Vec<Exchange>, f: F) -> Played
where
    F: FnOnce(Ctx, Vec<u8>) -> Fut,
    Fut: Future<Output = (Result<Notes, Error>, Vec<u8>)>,
{
    let (svc, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        for (i, ex) in exchanges.into_iter().enumerate() {
            let what = format!("request {} ({} {})", i + 1, ex.method, ex.path);
            let Some((request, send)) = handle.next_request().await else {
                panic!("{what} was expected, but the command made no more requests");
            };
            assert_eq!(request.method().as_str(), ex.method, "{what}: method");
            assert_eq!(request.uri().path(), ex.path, "{what}: path");
            let query: BTreeMap<String, String> = request
                .uri()
                .query()
                .unwrap_or_default()
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_owned(), decode(v))
                })
                .collect();
            assert_eq!(query, ex.query, "{what}: query");
            if let Some(ct) = ex.content_type {
                assert_eq!(
                    request
                        .headers()
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok()),
                    Some(ct),
                    "{what}: content type"
                );
            }
            let bytes = request.into_body().collect_bytes().await.unwrap();
            if let Some(expected) = ex.body {
                let body: Value = serde_json::from_slice(&bytes).expect("a JSON body");
                assert_eq!(body, expected, "{what}: body");
            }
            let mut response = Response::builder()
                .status(ex.status)
                .header("content-type", "application/json");
            for warning in ex.warnings {
                response = response.header(http::header::WARNING, warning);
            }
            let response = response
                .body(Body::from(serde_json::to_vec(&ex.response).unwrap()))
                .unwrap();
            send.send_response(response);
        }
        if let Some((request, _)) = handle.next_request().await {
            panic!(
                "unexpected extra request: {} {}",
                request.method(),
                request.uri()
            );
        }
    });
    let shown = Buffer::default();
    let client = ClientBuilder::new(svc, "default")
        .with_layer(&warnings::layer(Warnings::new(shown.clone(), false)))
        .build();
    let ctx = Ctx {
        client,
        namespace: "ephemeral".to_owned(),
        clock: clock(),
        colour: false,
    };
    let (result, out) = f(ctx, Vec::new()).await;
    // The client is gone with the command: the server sees the end of requests.
    if let Err(e) = server.await {
        std::panic::resume_unwind(e.into_panic());
    }
    let warnings = String::from_utf8(shown.0.lock().unwrap().clone()).unwrap();
    Played {
        result,
        out: String::from_utf8(out).unwrap(),
        warnings,
    }
}

fn decode(v: &str) -> String {
    let mut out = Vec::new();
    let bytes = v.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
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
    String::from_utf8(out).unwrap()
}

/// The example catalog.
fn catalog() -> ephemeral_core::Catalog {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog");
    let mut input = Input::default();
    for file in ["sources.yaml", "templates.yaml"] {
        let path = root.join(file);
        input
            .add_text(
                &path,
                &std::fs::read_to_string(&path).unwrap(),
                kubectl_ephemeral::input::DEFAULT_NAMESPACE,
            )
            .unwrap();
    }
    input.catalog_with_image_tags()
}

/// An Environment as the real expansion admits it at 09:00 (what the webhook
/// stores), created then, with the given spec; no status yet.
pub fn admitted(name: &str, owner: &str, spec: Value) -> Value {
    let env: Environment = serde_json::from_value(json!({
        "apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
        "metadata": {"name": name, "namespace": "ephemeral"},
        "spec": spec,
    }))
    .unwrap();
    let at = "2026-11-21T09:00:00Z".parse().unwrap();
    let expansion = expand(&env, &catalog(), &Config::default(), at, owner)
        .unwrap_or_else(|d| panic!("fixture {name} is refused: {d}"));
    let mut value = serde_json::to_value(&expansion.environment).unwrap();
    let meta = value["metadata"].as_object_mut().unwrap();
    meta.insert("uid".into(), json!(format!("uid-{name}")));
    meta.insert("resourceVersion".into(), json!("1000"));
    meta.insert("generation".into(), json!(1));
    meta.insert("creationTimestamp".into(), json!("2026-11-21T09:00:00Z"));
    value
}

/// Adds a controller status: `ready` apps ready out of all, per-app state.
pub fn with_status(mut env: Value, apps: Value, lease_end: &str) -> Value {
    let list = apps.as_array().unwrap();
    let ready = list.iter().filter(|a| a["ready"] == json!(true)).count();
    let all_ready = ready == list.len();
    env["status"] = json!({
        "observedGeneration": 1,
        "readyApps": format!("{ready}/{}", list.len()),
        "leaseEnd": lease_end,
        "apps": apps,
        "conditions": [{
            "type": "Ready",
            "status": if all_ready { "True" } else { "False" },
            "reason": if all_ready { "Ready" } else { "AppsNotReady" },
            "message": if all_ready { "all apps are ready".to_owned() } else { format!("{ready}/{} apps ready", list.len()) },
            "observedGeneration": 1,
            "lastTransitionTime": "2026-11-21T09:05:00Z",
        }],
    });
    env
}

/// A `List` response.
pub fn list_of(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "ephemeral.io/v1alpha1", "kind": format!("{kind}List"),
        "metadata": {"resourceVersion": "2000"}, "items": items})
}

/// Path of the environments collection in namespace `ephemeral`.
pub const ENVS: &str = "/apis/ephemeral.io/v1alpha1/namespaces/ephemeral/environments";
