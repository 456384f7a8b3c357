//! Leader election against a mocked API server (tower-test): the exact Lease
//! requests of creating, following, taking over, losing a race, renewing,
//! stepping down and releasing.

use std::time::Duration;

use ephemeral_testkit::mock_api::{self, Call, MockApi, failure};
use ephemeral_testkit::rbac::Grants;
use ephemeral_webhook::leader::{ElectionConfig, Elector};
use http::Method;
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::sync::watch;

const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/ephemeral-system/leases";
const NOW: &str = "2026-11-21T10:00:00Z";

fn setup(config: ElectionConfig) -> (Elector, MockApi) {
    let (client, api) = mock_api::client();
    // What the elector calls, the manifests must grant.
    (
        Elector::new(client, config),
        api.checking_rbac(Grants::self_managed()),
    )
}

fn config() -> ElectionConfig {
    ElectionConfig::new("ephemeral-system", "ephemeral-controller", "pod-a")
}

/// The next request, which must be `method path`: its body and the call to answer.
async fn next(api: &mut MockApi, method: Method, path: &str) -> (Value, Call) {
    let call = api.next(method, path).await;
    (call.body.clone().unwrap_or(Value::Null), call)
}

fn status(code: u16, reason: &str) -> Value {
    failure(code, reason, reason)
}

fn lease(holder: &str, renewed: &str, rv: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "ephemeral-controller", "namespace": "ephemeral-system", "resourceVersion": rv},
           "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed,
                    "acquireTime": "2026-11-21T09:00:00.000000Z", "leaseTransitions": 2}})
}

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

#[tokio::test]
async fn a_missing_lease_is_created_for_us() {
    let (elector, mut api) = setup(config());
    let task = tokio::spawn(async move { elector.try_acquire_or_renew(now()).await });
    let (_, r) = next(
        &mut api,
        Method::GET,
        &format!("{PATH}/ephemeral-controller"),
    )
    .await;
    r.reply(404, &status(404, "NotFound"));
    let (body, r) = next(&mut api, Method::POST, PATH).await;
    assert_eq!(body["metadata"]["name"], "ephemeral-controller");
    assert_eq!(body["spec"]["holderIdentity"], "pod-a");
    assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
    assert_eq!(body["spec"]["leaseTransitions"], 0);
    assert_eq!(body["spec"]["renewTime"], body["spec"]["acquireTime"]);
    r.reply(201, &body);
    assert!(task.await.unwrap().unwrap());
}

#[tokio::test]
async fn a_live_lease_of_another_replica_is_followed_without_writing() {
    let (elector, mut api) = setup(config());
    let task = tokio::spawn(async move { elector.try_acquire_or_renew(now()).await });
    let (_, r) = next(
        &mut api,
        Method::GET,
        &format!("{PATH}/ephemeral-controller"),
    )
    .await;
    r.reply(200, &lease("pod-b", "2026-11-21T09:59:55.000000Z", "7"));
    assert!(!task.await.unwrap().unwrap());
    let more = tokio::time::timeout(Duration::from_millis(100), api.next_any()).await;
    assert!(!matches!(more, Ok(Some(_))), "a follower does not write");
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_with_optimistic_concurrency_and_a_lost_race_is_no_error() {
    let (elector, mut api) = setup(config());
    let task = tokio::spawn(async move { elector.try_acquire_or_renew(now()).await });
    let (_, r) = next(
        &mut api,
        Method::GET,
        &format!("{PATH}/ephemeral-controller"),
    )
    .await;
    r.reply(200, &lease("pod-b", "2026-11-21T09:59:40.000000Z", "7"));
    let (body, r) = next(
        &mut api,
        Method::PUT,
        &format!("{PATH}/ephemeral-controller"),
    )
    .await;
    assert_eq!(
        body["metadata"]["resourceVersion"], "7",
        "the write is conditional on what was read"
    );
    assert_eq!(body["spec"]["holderIdentity"], "pod-a");
    assert_eq!(body["spec"]["leaseTransitions"], 3);
    // Another replica wrote first.
    r.reply(409, &status(409, "Conflict"));
    assert!(!task.await.unwrap().unwrap());
}

#[tokio::test]
async fn the_holder_renews_keeping_its_acquire_time() {
    let (elector, mut api) = setup(config());
    let task = tokio::spawn(async move { elector.try_acquire_or_renew(now()).await });
    let (_, r) = next(
        &mut api,
        Method::GET,
        &format!("{PATH}/ephemeral-controller"),
    )
    .await;
    r.reply(200, &lease("pod-a", "2026-11-21T09:59:58.000000Z", "8"));
    let (body, r) = next(
        &mut api,
        Method::PUT,
        &format!("{PATH}/ephemeral-controller"),
    )
    .await;
    assert_eq!(body["metadata"]["resourceVersion"], "8");
    assert_eq!(body["spec"]["holderIdentity"], "pod-a");
    assert_eq!(body["spec"]["acquireTime"], "2026-11-21T09:00:00.000000Z");
    assert_eq!(body["spec"]["renewTime"], "2026-11-21T10:00:00.000000Z");
    assert_eq!(body["spec"]["leaseTransitions"], 2);
    r.reply(200, &body);
    assert!(task.await.unwrap().unwrap());
}

#[tokio::test]
async fn the_leader_steps_down_when_it_cannot_renew_and_releases_on_shutdown() {
    let cfg = ElectionConfig {
        renew_deadline: Duration::from_millis(300),
        retry_period: Duration::from_millis(50),
        ..config()
    };
    let (elector, mut api) = setup(cfg);
    let (leading_tx, mut leading) = watch::channel(false);
    let (shutdown_tx, shutdown) = watch::channel(false);
    let task = tokio::spawn(elector.run(leading_tx, shutdown));
    let get = format!("{PATH}/ephemeral-controller");

    let (_, r) = next(&mut api, Method::GET, &get).await;
    r.reply(404, &status(404, "NotFound"));
    let (body, r) = next(&mut api, Method::POST, PATH).await;
    let mut held = body.clone();
    held["metadata"]["resourceVersion"] = json!("1");
    r.reply(201, &held);
    leading.wait_for(|l| *l).await.unwrap();

    // The API server is unreachable: still leading within the renew deadline,
    // then no longer.
    let started = std::time::Instant::now();
    while *leading.borrow() {
        let (_, r) = next(&mut api, Method::GET, &get).await;
        r.reply(500, &status(500, "InternalError"));
    }
    let stepped_down = started.elapsed();
    assert!(
        stepped_down >= Duration::from_millis(300) && stepped_down < Duration::from_secs(2),
        "stepped down after {stepped_down:?}"
    );

    // It wins the Lease back, then shuts down and gives it up.
    let (_, r) = next(&mut api, Method::GET, &get).await;
    r.reply(200, &held);
    let (body, r) = next(&mut api, Method::PUT, &get).await;
    r.reply(200, &body);
    leading.wait_for(|l| *l).await.unwrap();
    shutdown_tx.send(true).unwrap();
    let (_, r) = next(&mut api, Method::GET, &get).await;
    r.reply(200, &body);
    let (released, r) = next(&mut api, Method::PUT, &get).await;
    assert!(
        released["spec"].get("holderIdentity").is_none(),
        "{released}"
    );
    assert_eq!(released["spec"]["leaseDurationSeconds"], 1);
    r.reply(200, &released);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(!*leading.borrow());
}

#[tokio::test]
async fn a_renewal_that_hangs_steps_the_leader_down_by_the_renew_deadline() {
    // The API server accepts the connection but never answers: a leader
    // waiting on that request must not keep leading past its renew deadline,
    // or another replica takes the Lease over while it still reconciles.
    let cfg = ElectionConfig {
        renew_deadline: Duration::from_millis(300),
        retry_period: Duration::from_millis(50),
        ..config()
    };
    let (elector, mut api) = setup(cfg);
    let (leading_tx, mut leading) = watch::channel(false);
    let (shutdown_tx, shutdown) = watch::channel(false);
    let task = tokio::spawn(elector.run(leading_tx, shutdown));
    let get = format!("{PATH}/ephemeral-controller");

    let (_, r) = next(&mut api, Method::GET, &get).await;
    r.reply(404, &status(404, "NotFound"));
    let (body, r) = next(&mut api, Method::POST, PATH).await;
    let mut held = body.clone();
    held["metadata"]["resourceVersion"] = json!("1");
    let acquired = std::time::Instant::now();
    r.reply(201, &held);
    leading.wait_for(|l| *l).await.unwrap();

    // The next renewal's GET is never answered.
    let (_, hanging) = next(&mut api, Method::GET, &get).await;
    tokio::time::timeout(Duration::from_secs(2), leading.wait_for(|l| !*l))
        .await
        .expect("a leader whose renewal hangs steps down")
        .unwrap();
    let stepped_down = acquired.elapsed();
    assert!(
        stepped_down < Duration::from_millis(300 + 150),
        "stepped down {stepped_down:?} after the last renewal (deadline 300ms)"
    );
    drop(hanging);

    // Once the API answers again it wins the Lease back.
    let (_, r) = next(&mut api, Method::GET, &get).await;
    r.reply(200, &held);
    let (body, r) = next(&mut api, Method::PUT, &get).await;
    assert_eq!(body["spec"]["holderIdentity"], "pod-a");
    r.reply(200, &body);
    leading.wait_for(|l| *l).await.unwrap();
    shutdown_tx.send(true).unwrap();
    let (_, r) = next(&mut api, Method::GET, &get).await;
    r.reply(200, &body);
    let (released, r) = next(&mut api, Method::PUT, &get).await;
    r.reply(200, &released);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
