//! The commands against the test kit's mocked API server
//! ([`ephemeral_testkit::mock_api`]), which plays a named scenario: each expected
//! request is checked (method, path, query, content type, body) and answered
//! in order; a missing or extra request fails. The client has the plugin's warning layer, so `Warning` headers of the
//! answers reach the transcript's stderr as they would the terminal's.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};

use ephemeral_testkit::fixtures;
pub use ephemeral_testkit::mock_api::{Exchange, expect};
use kube::client::ClientBuilder;
use kubectl_ephemeral::cmd::{Ctx, Notes};
use kubectl_ephemeral::error::Error;
use kubectl_ephemeral::time::Clock;
use kubectl_ephemeral::warnings::{self, Warnings};
use serde_json::{Value, json};

/// The time every scenario runs at: Saturday 2026-11-21, 12:00 UTC.
pub const NOW: &str = "2026-11-21T12:00:00Z";

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
    let (svc, api) = ephemeral_testkit::mock_api::pair();
    let server = api.play(exchanges);
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

/// An Environment as the real expansion admits it at 09:00 (what the webhook
/// stores), created then, with the given spec; no status yet.
pub fn admitted(name: &str, owner: &str, spec: Value) -> Value {
    let env = fixtures::environment(name, "ephemeral", spec);
    let at = "2026-11-21T09:00:00Z".parse().unwrap();
    let admitted = fixtures::admitted(&env, &fixtures::example_catalog(), owner, at);
    let mut value = serde_json::to_value(&admitted).unwrap();
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
