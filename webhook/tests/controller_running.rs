//! The controller and its leader election together (`controller::start`)
//! against a mocked API server (tower-test): on shutdown the Lease is
//! released only after the running reconciles finished, so the next leader
//! never reconciles while this replica still does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ephemeral_core::Config;
use ephemeral_webhook::catalog::SharedCatalog;
use ephemeral_webhook::clock::Clock;
use ephemeral_webhook::controller::{self, Context, Settings};
use ephemeral_webhook::leader::ElectionConfig;
use ephemeral_webhook::metrics::Metrics;
use http::{Method, Request, Response};
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};
use tokio::sync::mpsc;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;
type Respond = tower_test::mock::SendResponse<Response<Body>>;

fn reply(respond: Respond, code: u16, body: &Value) {
    respond.send_response(
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap(),
    );
}

fn failure(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": reason})
}

fn list(items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "10"}, "items": items})
}

/// Answers everything but the reconcile's first request (the children come
/// from the watches' stores, so that is its status write), which it hands
/// to the test; records the order of what matters in `log`.
async fn api_server(
    mut handle: Handle,
    log: Arc<Mutex<Vec<&'static str>>>,
    held: mpsc::UnboundedSender<Respond>,
) {
    let mut lease: Option<Value> = None;
    let mut watches = Vec::new();
    let mut reconcile_requests = 0;
    while let Some((request, respond)) = handle.next_request().await {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().unwrap_or_default().to_owned();
        let bytes = body.collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if path.contains("/leases") {
            match (&parts.method, &lease) {
                (&Method::GET, None) => reply(respond, 404, &failure(404, "NotFound")),
                (&Method::GET, Some(l)) => reply(respond, 200, l),
                (&Method::POST | &Method::PUT, _) => {
                    let mut stored = body.clone();
                    stored["metadata"]["resourceVersion"] = json!("1");
                    if body["spec"].get("holderIdentity").is_none() {
                        log.lock().unwrap().push("lease released");
                    }
                    lease = Some(stored.clone());
                    reply(respond, 200, &stored);
                }
                _ => reply(respond, 405, &failure(405, "MethodNotAllowed")),
            }
        } else if query.contains("watch=true") {
            watches.push(respond); // never answered: a quiet watch
        } else if path == "/apis/ephemeral.io/v1alpha1/environments" {
            let env = json!({"apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
                "metadata": {"name": "alice", "namespace": "shop", "uid": "uid-alice", "resourceVersion": "5", "generation": 1},
                "spec": {"apps": [{"name": "web"}]}});
            reply(respond, 200, &list(vec![env]));
        } else if path.contains("/namespaces/shop/") {
            reconcile_requests += 1;
            if reconcile_requests == 1 {
                log.lock().unwrap().push("reconcile in flight");
                held.send(respond).unwrap();
            } else {
                reply(respond, 500, &failure(500, "InternalError"));
            }
        } else if parts.method == Method::GET {
            reply(respond, 200, &list(vec![])); // the owned kinds, cluster-wide
        } else {
            reply(respond, 500, &failure(500, "InternalError"));
        }
    }
}

#[tokio::test]
async fn on_shutdown_the_lease_is_released_only_after_running_reconciles_finish() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (held_tx, mut held) = mpsc::unbounded_channel();
    tokio::spawn(api_server(handle, log.clone(), held_tx));

    let catalog = SharedCatalog::new();
    catalog.mark_synced();
    let ctx = Context::new(
        client.clone(),
        catalog,
        Arc::new(Config::default()),
        Clock::System,
        Recorder::new(
            client.clone(),
            Reporter {
                controller: "ephemeral-controller".into(),
                instance: Some("pod-a".into()),
            },
        ),
        Arc::new(Metrics::new()),
        Settings::default(),
    );
    let election = ElectionConfig {
        renew_deadline: Duration::from_millis(300),
        retry_period: Duration::from_millis(50),
        ..ElectionConfig::new("ephemeral-system", "ephemeral-controller", "pod-a")
    };
    let running = controller::start(client, Arc::new(ctx), election);

    // Leading, the controller reconciles alice; its first request hangs.
    let in_flight = tokio::time::timeout(Duration::from_secs(10), held.recv())
        .await
        .expect("a reconcile starts once the Lease is won")
        .unwrap();
    let stopping = tokio::spawn(running.stop(Duration::from_secs(10)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        *log.lock().unwrap(),
        ["reconcile in flight"],
        "the Lease is still held while a reconcile runs"
    );

    // The reconcile ends (with an error); then the Lease goes.
    log.lock().unwrap().push("reconcile finished");
    reply(in_flight, 500, &failure(500, "InternalError"));
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("stops in time")
        .unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "reconcile in flight",
            "reconcile finished",
            "lease released"
        ]
    );
}
