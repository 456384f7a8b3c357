//! The controller and its leader election together (`controller::start`)
//! against a mocked API server (tower-test): on shutdown the Lease is
//! released only after the running reconciles finished, so the next leader
//! never reconciles while this replica still does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ephemeral_core::Config;
use ephemeral_testkit::mock_api::{self, Call, MockApi, list};
use ephemeral_webhook::catalog::SharedCatalog;
use ephemeral_webhook::clock::Clock;
use ephemeral_webhook::controller::{self, Context, Settings};
use ephemeral_webhook::leader::ElectionConfig;
use ephemeral_webhook::metrics::Metrics;
use http::Method;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Answers everything but the reconcile's first request (the children come
/// from the watches' stores, so that is its status write), which it hands
/// to the test; records the order of what matters in `log`.
async fn api_server(
    mut api: MockApi,
    log: Arc<Mutex<Vec<&'static str>>>,
    held: mpsc::UnboundedSender<Call>,
) {
    let mut lease: Option<Value> = None;
    let mut watches = Vec::new();
    let mut reconcile_requests = 0;
    while let Some(call) = api.next_any().await {
        let path = call.uri.path().to_owned();
        let watch = call.query().get("watch").is_some_and(|w| w == "true");
        if path.contains("/leases") {
            match (&call.method, &lease) {
                (&Method::GET, None) => call.fail(404, "NotFound"),
                (&Method::GET, Some(l)) => call.ok(&l.clone()),
                (&Method::POST | &Method::PUT, _) => {
                    let mut stored = call.body.clone().unwrap_or(Value::Null);
                    stored["metadata"]["resourceVersion"] = json!("1");
                    if stored["spec"].get("holderIdentity").is_none() {
                        log.lock().unwrap().push("lease released");
                    }
                    lease = Some(stored.clone());
                    call.ok(&stored);
                }
                _ => call.fail(405, "MethodNotAllowed"),
            }
        } else if watch {
            watches.push(call); // never answered: a quiet watch
        } else if path == "/apis/ephemeral.io/v1alpha1/environments" {
            let env = json!({"apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
                "metadata": {"name": "alice", "namespace": "shop", "uid": "uid-alice", "resourceVersion": "5", "generation": 1},
                "spec": {"apps": [{"name": "web"}]}});
            call.ok(&list(vec![env]));
        } else if path.contains("/namespaces/shop/") {
            reconcile_requests += 1;
            if reconcile_requests == 1 {
                log.lock().unwrap().push("reconcile in flight");
                held.send(call).unwrap();
            } else {
                call.fail(500, "InternalError");
            }
        } else if call.method == Method::GET {
            call.ok(&list(vec![])); // the owned kinds, cluster-wide
        } else {
            call.fail(500, "InternalError");
        }
    }
}

#[tokio::test]
async fn on_shutdown_the_lease_is_released_only_after_running_reconciles_finish() {
    let (client, api) = mock_api::client();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (held_tx, mut held) = mpsc::unbounded_channel();
    tokio::spawn(api_server(api, log.clone(), held_tx));

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
    in_flight.fail(500, "InternalError");
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
