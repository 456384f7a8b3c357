//! The EnvironmentSet controller's reconciler against a mocked Kubernetes
//! API (every request checked against the manifests' RBAC) and the fake
//! GitHub (a real HTTP server): what a user relies on: a pull request gets
//! its Environment; GitHub failing never deletes one; a closed pull request
//! loses its own; commit statuses go out once per change; a missing Secret
//! stalls the set and deletes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use ephemeral_core::set::EnvironmentSet;
use ephemeral_testkit::fake_github::{FakeGitHub, Fault, PullRequestFixture};
use ephemeral_testkit::mock_api::{self, Call, MockApi};
use ephemeral_testkit::rbac::Grants;
use ephemeral_webhook::backoff::Backoff;
use ephemeral_webhook::clock::Clock;
use ephemeral_webhook::metrics::Metrics;
use ephemeral_webhook::sets::directory::Directory;
use ephemeral_webhook::sets::reconcile::{self, Context, Settings};
use http::Method;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};

const NS: &str = "previews";
const SET: &str = "shop-prs";
const SET_UID: &str = "set-uid";
const ENVS: &str = "/apis/ephemeral.io/v1alpha1/namespaces/previews/environments";
const SET_STATUS: &str =
    "/apis/ephemeral.io/v1alpha1/namespaces/previews/environmentsets/shop-prs/status";

fn set(github: &FakeGitHub, status: Option<Value>) -> EnvironmentSet {
    let mut set = json!({
        "apiVersion": "ephemeral.io/v1alpha1", "kind": "EnvironmentSet",
        "metadata": {"name": SET, "namespace": NS, "uid": SET_UID, "generation": 1, "resourceVersion": "10"},
        "spec": {
            "pullRequests": {"github": {"owner": "acme", "repo": "shop", "apiURL": github.url(),
                                        "tokenSecretRef": {"name": "gh", "key": "token"}}},
            "template": {
                "metadata": {"labels": {"preview": "pr-${PR_NUMBER}"}},
                "spec": {"apps": [{"name": "shop"}],
                         "substitute": {"host": "shop-${PR_NUMBER}.preview.example.com", "commit": "${PR_HEAD_SHORT_SHA}"}}
            },
            "report": {"commitStatus": {}}
        }
    });
    if let Some(status) = status {
        set["status"] = status;
    }
    serde_json::from_value(set).unwrap()
}

/// What the mocked API holds.
#[derive(Clone, Default)]
struct World {
    /// Secrets by name (their `data`).
    secrets: BTreeMap<String, Value>,
    /// The set's Environments, as stored.
    environments: Vec<Value>,
    /// Whether applying an Environment fails (the API server answers 500).
    apply_fails: bool,
}

fn with_token() -> World {
    let mut secrets = BTreeMap::new();
    // "ghp_test"
    secrets.insert("gh".to_owned(), json!({"token": "Z2hwX3Rlc3Q="}));
    World {
        secrets,
        ..World::default()
    }
}

/// One request the reconcile made.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    query: BTreeMap<String, String>,
    body: Option<Value>,
}

/// An Environment as the API server stores it after our apply: uid,
/// generation, and (optionally) a status.
fn stored(applied: &Value, status: Option<Value>) -> Value {
    let mut env = applied.clone();
    let name = env["metadata"]["name"].as_str().unwrap().to_owned();
    env["metadata"]["uid"] = json!(format!("uid-{name}"));
    env["metadata"]["generation"] = json!(1);
    env["metadata"]["resourceVersion"] = json!("20");
    if let Some(status) = status {
        env["status"] = status;
    }
    env
}

fn ready() -> Value {
    json!({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
           "message": "", "lastTransitionTime": "2026-12-01T09:00:00Z"}]})
}

fn answer(call: Call, world: &World) {
    let path = call.uri.path().to_owned();
    let ok = |call: Call, body: &Value| call.ok(body);
    match (call.method.clone(), path.as_str()) {
        (Method::GET, p) if p.starts_with("/api/v1/namespaces/previews/secrets/") => {
            let name = p.rsplit('/').next().unwrap();
            match world.secrets.get(name) {
                Some(data) => ok(
                    call,
                    &json!({"apiVersion": "v1", "kind": "Secret",
                            "metadata": {"name": name, "namespace": NS}, "data": data}),
                ),
                None => call.fail(404, "NotFound"),
            }
        }
        (Method::GET, ENVS) => ok(
            call,
            &json!({"apiVersion": "ephemeral.io/v1alpha1", "kind": "EnvironmentList",
                    "metadata": {"resourceVersion": "30"}, "items": world.environments}),
        ),
        (Method::GET, p) if p.starts_with(ENVS) => {
            let name = p.rsplit('/').next().unwrap();
            match world
                .environments
                .iter()
                .find(|e| e["metadata"]["name"] == name)
            {
                Some(env) => ok(call, env),
                None => call.fail(404, "NotFound"),
            }
        }
        (Method::PATCH, SET_STATUS) => {
            // The set as stored, with the status applied.
            let mut body = call.body.clone().unwrap();
            body["metadata"] = json!({"name": SET, "namespace": NS, "uid": SET_UID});
            body["spec"] = json!({"pullRequests": {"github": {"owner": "acme", "repo": "shop"}},
                                  "template": {"spec": {"apps": []}}});
            ok(call, &body)
        }
        (Method::PATCH, p) if p.starts_with(ENVS) && world.apply_fails => {
            call.fail(500, "InternalError");
        }
        (Method::PATCH, p) if p.starts_with(ENVS) => {
            let body = stored(call.body.as_ref().unwrap(), None);
            ok(call, &body)
        }
        (Method::DELETE, p) if p.starts_with(ENVS) => ok(
            call,
            &json!({"apiVersion": "v1", "kind": "Status", "status": "Success"}),
        ),
        (Method::POST, "/apis/events.k8s.io/v1/namespaces/previews/events") => {
            let body = call.body.clone().unwrap();
            ok(call, &body)
        }
        (method, path) => panic!("unexpected request {method} {path}"),
    }
}

/// Runs one reconcile of `set` against `world` and the fake GitHub;
/// returns its result and every API request it made.
async fn reconcile_once(
    set: EnvironmentSet,
    world: &World,
) -> (
    Result<kube::runtime::controller::Action, reconcile::Error>,
    Vec<Seen>,
) {
    reconcile_with(set, world, Arc::new(Directory::default())).await
}

/// [`reconcile_once`], recording the set in `directory` (the receiver's view).
async fn reconcile_with(
    set: EnvironmentSet,
    world: &World,
    directory: Arc<Directory>,
) -> (
    Result<kube::runtime::controller::Action, reconcile::Error>,
    Vec<Seen>,
) {
    let (client, api) = mock_api::client();
    let mut api: MockApi = api.checking_rbac(Grants::self_managed());
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "ephemeral-controller".into(),
            instance: Some("test-pod".into()),
        },
    );
    let settings = Settings {
        backoff: Backoff {
            jitter: 0.0,
            ..Backoff::default()
        },
        ..Settings::default()
    };
    let metrics = Arc::new(Metrics::new());
    let ctx = Context::new(
        client,
        Clock::System,
        recorder,
        settings,
        directory,
        metrics.clone(),
    )
    .unwrap();
    let mut running = tokio::spawn(reconcile::reconcile(Arc::new(set), Arc::new(ctx)));
    let mut seen = Vec::new();
    let result = loop {
        tokio::select! {
            result = &mut running => break result.unwrap(),
            call = api.next_any() => {
                let Some(call) = call else { continue };
                seen.push(Seen {
                    method: call.method.clone(),
                    path: call.uri.path().to_owned(),
                    query: call.query(),
                    body: call.body.clone(),
                });
                answer(call, world);
            }
        }
    };
    // Every reconcile is timed once, and counted as failed exactly when it
    // fails (GitHub failing is not a failed reconcile), by its error's kind.
    let text = metrics.encode();
    assert!(
        text.contains("ephemeral_webhook_set_reconcile_duration_seconds_count 1\n"),
        "{text}"
    );
    let failures: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ephemeral_webhook_set_reconcile_failures_total{"))
        .collect();
    match &result {
        Ok(_) => assert!(failures.is_empty(), "{failures:?}"),
        Err(e) => assert_eq!(
            failures,
            [format!(
                r#"ephemeral_webhook_set_reconcile_failures_total{{kind="{}"}} 1"#,
                e.kind()
            )],
        ),
    }
    (result, seen)
}

fn of<'a>(seen: &'a [Seen], method: Method, path: &str) -> Vec<&'a Seen> {
    seen.iter()
        .filter(|s| s.method == method && s.path == path)
        .collect()
}

fn deletes(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter().filter(|s| s.method == Method::DELETE).collect()
}

fn status_written(seen: &[Seen]) -> Value {
    let writes = of(seen, Method::PATCH, SET_STATUS);
    assert_eq!(writes.len(), 1, "one status write");
    writes[0].body.as_ref().unwrap()["status"].clone()
}

fn condition(status: &Value, type_: &str) -> Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

fn pr(number: u64) -> PullRequestFixture {
    PullRequestFixture::new("acme", "shop", number)
}

/// The Environment the set applies for `pr`, as stored (with `status`).
async fn environment_of(
    github: &FakeGitHub,
    fixture: &PullRequestFixture,
    status: Option<Value>,
) -> Value {
    github.set_pull_requests("acme", "shop", vec![fixture.json()]);
    let (result, seen) = reconcile_once(set(github, None), &with_token()).await;
    result.unwrap();
    let name = format!("{ENVS}/{SET}-pr-{}", fixture.number);
    let applied = of(&seen, Method::PATCH, &name)[0].body.clone().unwrap();
    stored(&applied, status)
}

#[tokio::test]
async fn a_failed_apply_fails_the_reconcile_and_counts_it_by_kind() {
    let github = FakeGitHub::start().await;
    github.set_pull_requests("acme", "shop", vec![pr(7).json()]);
    let world = World {
        apply_fails: true,
        ..with_token()
    };
    // `reconcile_once` checks the metrics: timed once, one failure of this kind.
    let (result, seen) = reconcile_once(set(&github, None), &world).await;
    let error = result.unwrap_err();
    assert_eq!(error.kind(), "incomplete", "{error}");
    assert_eq!(
        of(&seen, Method::PATCH, &format!("{ENVS}/{SET}-pr-7")).len(),
        1
    );
}

#[tokio::test]
async fn a_new_pull_request_gets_its_environment_and_a_pending_status() {
    let github = FakeGitHub::start().await;
    let seven = pr(7);
    github.set_pull_requests("acme", "shop", vec![seven.json()]);
    let (result, seen) = reconcile_once(set(&github, None), &with_token()).await;
    let action = result.unwrap();
    assert!(
        format!("{action:?}").contains("300s"),
        "requeued after the default 5m: {action:?}"
    );

    // The name is looked up first (nothing the set does not control is taken over).
    assert_eq!(
        of(&seen, Method::GET, &format!("{ENVS}/shop-prs-pr-7")).len(),
        1
    );
    let applies = of(&seen, Method::PATCH, &format!("{ENVS}/shop-prs-pr-7"));
    assert_eq!(applies.len(), 1);
    let apply = applies[0];
    assert_eq!(
        apply.query.get("fieldManager").map(String::as_str),
        Some("ephemeral")
    );
    assert_eq!(apply.query.get("force").map(String::as_str), Some("true"));
    let body = apply.body.as_ref().unwrap();
    assert_eq!(body["kind"], "Environment");
    assert_eq!(body["metadata"]["name"], "shop-prs-pr-7");
    assert_eq!(body["metadata"]["namespace"], NS);
    assert_eq!(
        body["metadata"]["labels"],
        json!({"preview": "pr-7", "ephemeral.io/set": SET, "ephemeral.io/pull-request": "7"})
    );
    assert_eq!(
        body["metadata"]["annotations"]["ephemeral.io/pull-request-head-sha"],
        seven.head_sha
    );
    assert_eq!(
        body["metadata"]["ownerReferences"],
        json!([{"apiVersion": "ephemeral.io/v1alpha1", "kind": "EnvironmentSet", "name": SET,
                "uid": SET_UID, "controller": true, "blockOwnerDeletion": true}])
    );
    assert_eq!(
        body["spec"]["substitute"],
        json!({"host": "shop-7.preview.example.com", "commit": &seven.head_sha[..7]})
    );
    assert!(
        body["metadata"].get("uid").is_none(),
        "a create carries no uid"
    );
    assert!(deletes(&seen).is_empty());

    let statuses = github.statuses("acme", "shop");
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!(statuses[0]["sha"], seven.head_sha);
    assert_eq!(statuses[0]["state"], "pending");
    assert_eq!(statuses[0]["context"], "ephemeral/shop-prs");

    let status = status_written(&seen);
    assert_eq!(condition(&status, "Ready")["status"], "True");
    assert_eq!(status["repository"], "acme/shop");
    assert_eq!(status["pullRequests"][0]["number"], 7);
    assert_eq!(status["pullRequests"][0]["environment"], "shop-prs-pr-7");
    assert_eq!(
        status["pullRequests"][0]["commitStatus"]["state"],
        "pending"
    );
    let events = of(
        &seen,
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/previews/events",
    );
    assert!(
        events
            .iter()
            .any(|e| e.body.as_ref().unwrap()["reason"] == "Created"),
        "a Created Event"
    );
}

#[tokio::test]
async fn github_failing_deletes_nothing() {
    let github = FakeGitHub::start().await;
    let seven = pr(7);
    let env = environment_of(&github, &seven, Some(ready())).await;
    let world = World {
        environments: vec![env],
        ..with_token()
    };
    let faults = [
        Fault::Status(500),
        Fault::MalformedJson,
        Fault::WrongShape,
        Fault::SecondaryRateLimit {
            retry_after_secs: 120,
            forbidden: false,
        },
        Fault::PrimaryRateLimit { reset_in_secs: 600 },
    ];
    for fault in faults {
        // The pull request is gone from GitHub's list, which fails.
        github.set_pull_requests("acme", "shop", Vec::new());
        github.fail_next(fault.clone());
        let (result, seen) = reconcile_once(set(&github, None), &world).await;
        result.unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert!(deletes(&seen).is_empty(), "{fault:?}: no DELETE: {seen:?}");
        assert!(
            seen.iter()
                .all(|s| s.method != Method::PATCH || s.path == SET_STATUS),
            "{fault:?}: nothing applied"
        );
        let status = status_written(&seen);
        assert_eq!(condition(&status, "Ready")["status"], "False", "{fault:?}");
        assert_eq!(
            condition(&status, "Ready")["reason"],
            "ListFailed",
            "{fault:?}"
        );
    }
    // The list answers without it, and its own GET fails (a 404 too: a
    // token that lost access looks the same): kept. (A fresh GitHub: the
    // primary rate limit above holds until its reset.)
    let github = FakeGitHub::start().await;
    for status in [500, 404] {
        github.set_pull_requests("acme", "shop", Vec::new());
        github.fail_next(Fault::None);
        github.fail_next(Fault::Status(status));
        let (result, seen) = reconcile_once(set(&github, None), &world).await;
        result.unwrap();
        assert!(
            deletes(&seen).is_empty(),
            "GET {status}: no DELETE: {seen:?}"
        );
        let events = of(
            &seen,
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/previews/events",
        );
        assert!(
            events
                .iter()
                .any(|e| e.body.as_ref().unwrap()["reason"] == "GetFailed"),
            "GET {status}: a GetFailed Event: {:?} {:?}",
            events,
            github
                .requests()
                .iter()
                .map(|r| (&r.method, &r.path))
                .collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn a_rate_limit_brings_the_next_poll_forward_to_its_end() {
    let github = FakeGitHub::start().await;
    github.set_pull_requests("acme", "shop", Vec::new());
    github.fail_next(Fault::SecondaryRateLimit {
        retry_after_secs: 30,
        forbidden: false,
    });
    let (result, _) = reconcile_once(set(&github, None), &with_token()).await;
    let action = format!("{:?}", result.unwrap());
    let secs: f64 = action
        .split("Some(")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a requeue: {action}"));
    assert!(
        (25.0..=32.0).contains(&secs),
        "requeued when the limit lifts, not after 5m: {action}"
    );
}

#[tokio::test]
async fn a_pull_request_closed_on_github_loses_its_environment_with_a_uid_precondition() {
    let github = FakeGitHub::start().await;
    let mut seven = pr(7);
    let env = environment_of(&github, &seven, Some(ready())).await;
    let world = World {
        environments: vec![env],
        ..with_token()
    };
    // Not in the list any more; its own GET says closed.
    seven.state = "closed".into();
    github.set_pull_requests("acme", "shop", vec![seven.json()]);
    github.clear_requests();
    let (result, seen) = reconcile_once(set(&github, None), &world).await;
    result.unwrap();
    let confirmed = github
        .requests()
        .iter()
        .any(|r| r.method == "GET" && r.path == "/repos/acme/shop/pulls/7");
    assert!(
        confirmed,
        "the pull request's own GET confirms it is closed"
    );
    let deletes = deletes(&seen);
    assert_eq!(deletes.len(), 1, "{seen:?}");
    assert_eq!(deletes[0].path, format!("{ENVS}/shop-prs-pr-7"));
    assert_eq!(
        deletes[0].body.as_ref().unwrap()["preconditions"]["uid"],
        "uid-shop-prs-pr-7"
    );
}

#[tokio::test]
async fn commit_statuses_go_out_once_per_change() {
    let github = FakeGitHub::start().await;
    let seven = pr(7);
    github.set_pull_requests("acme", "shop", vec![seven.json()]);
    // First: created, pending.
    let (result, seen) = reconcile_once(set(&github, None), &with_token()).await;
    result.unwrap();
    let applied = of(&seen, Method::PATCH, &format!("{ENVS}/shop-prs-pr-7"))[0]
        .body
        .clone()
        .unwrap();
    let mut status = status_written(&seen);

    // Coming up: nothing new to say.
    let world = World {
        environments: vec![stored(&applied, None)],
        ..with_token()
    };
    let (result, seen) = reconcile_once(set(&github, Some(status.clone())), &world).await;
    result.unwrap();
    if let Some(write) = of(&seen, Method::PATCH, SET_STATUS).first() {
        status = write.body.as_ref().unwrap()["status"].clone();
    }
    assert_eq!(github.statuses("acme", "shop").len(), 1, "still one status");

    // Ready: success, once.
    let world = World {
        environments: vec![stored(&applied, Some(ready()))],
        ..with_token()
    };
    let (result, seen) = reconcile_once(set(&github, Some(status.clone())), &world).await;
    result.unwrap();
    let status = status_written(&seen);
    let statuses = github.statuses("acme", "shop");
    let states: Vec<&Value> = statuses.iter().map(|s| &s["state"]).collect();
    assert_eq!(states, [&json!("pending"), &json!("success")]);

    // Ready still: nothing sent; the status says nothing new but the time
    // of the sync and the rate limit left.
    let (result, seen) = reconcile_once(set(&github, Some(status.clone())), &world).await;
    result.unwrap();
    assert_eq!(
        github.statuses("acme", "shop").len(),
        2,
        "success is sent once"
    );
    let without_sync = |mut s: Value| {
        let fields = s.as_object_mut().unwrap();
        fields.remove("lastSyncTime");
        fields.remove("rateLimitRemaining");
        s
    };
    for write in of(&seen, Method::PATCH, SET_STATUS) {
        assert_eq!(
            without_sync(write.body.as_ref().unwrap()["status"].clone()),
            without_sync(status.clone())
        );
    }
}

#[tokio::test]
async fn a_missing_token_secret_stalls_the_set_and_deletes_nothing() {
    let github = FakeGitHub::start().await;
    let seven = pr(7);
    let env = environment_of(&github, &seven, Some(ready())).await;
    github.clear_requests();
    for (secrets, reason) in [
        (BTreeMap::new(), "SecretNotFound"),
        (
            BTreeMap::from([("gh".to_owned(), json!({"other": "eA=="}))]),
            "SecretKeyNotFound",
        ),
    ] {
        let world = World {
            secrets,
            environments: vec![env.clone()],
            ..World::default()
        };
        let (result, seen) = reconcile_once(set(&github, None), &world).await;
        let action = format!("{:?}", result.unwrap());
        assert!(action.contains("60s"), "retried every minute: {action}");
        assert!(deletes(&seen).is_empty());
        let status = status_written(&seen);
        let stalled = condition(&status, "Stalled");
        assert_eq!(stalled["status"], "True");
        assert_eq!(stalled["reason"], reason);
        let message = stalled["message"].as_str().unwrap();
        assert!(
            message.contains("previews/gh") && message.contains("\"token\""),
            "names the Secret and the key: {message}"
        );
        assert_eq!(condition(&status, "Ready")["status"], "False");
        assert!(
            github.requests().is_empty(),
            "GitHub is not asked without credentials"
        );
    }
}

#[tokio::test]
async fn a_signed_delivery_triggers_a_reconcile_of_the_sets_following_its_repository() {
    use axum::body::Body;
    use ephemeral_testkit::fake_github::{pull_request_event, webhook_signature};
    use ephemeral_webhook::github::receiver;
    use futures::StreamExt;
    use tower::ServiceExt;

    let github = FakeGitHub::start().await;
    github.set_pull_requests("acme", "shop", Vec::new());
    let mut with_hook = set(&github, None);
    with_hook.spec.pull_requests.github.webhook_secret_ref =
        Some(ephemeral_core::set::api::SecretKeyRef {
            name: "hook".into(),
            key: "secret".into(),
        });
    let mut world = with_token();
    // "s3cret"
    world
        .secrets
        .insert("hook".into(), json!({"secret": "czNjcmV0"}));
    let directory = Arc::new(Directory::default());
    let (result, _) = reconcile_with(with_hook, &world, directory.clone()).await;
    result.unwrap();

    // The controller is running: its trigger channel is open.
    let mut triggers = directory.open_trigger();
    let deliver = |secret: &'static [u8]| {
        let body = serde_json::to_vec(&pull_request_event("opened", &pr(8).json())).unwrap();
        http::Request::post("/github")
            .header("content-type", "application/json")
            .header("x-github-event", "pull_request")
            .header("x-github-delivery", "d-1")
            .header("x-hub-signature-256", webhook_signature(secret, &body))
            .body(Body::from(body))
            .unwrap()
    };
    let router = receiver::router(directory.clone());
    let wrong = router.clone().oneshot(deliver(b"guess")).await.unwrap();
    assert_eq!(wrong.status(), 401, "signed with another secret: refused");
    let answer = router.oneshot(deliver(b"s3cret")).await.unwrap();
    assert_eq!(answer.status(), 202);
    let triggered = tokio::time::timeout(std::time::Duration::from_secs(1), triggers.next())
        .await
        .expect("a trigger")
        .unwrap();
    assert_eq!(
        (triggered.namespace.as_deref(), triggered.name.as_str()),
        (Some(NS), SET)
    );
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(50), triggers.next())
            .await
            .is_err(),
        "one trigger, for the one verified delivery"
    );
}

#[tokio::test]
async fn a_new_head_commit_updates_the_environment_with_its_uid_as_precondition() {
    let github = FakeGitHub::start().await;
    let mut seven = pr(7);
    let env = environment_of(&github, &seven, Some(ready())).await;
    let world = World {
        environments: vec![env],
        ..with_token()
    };
    seven.head_sha = format!("{:040x}", 0xdef1_2345_u64);
    github.set_pull_requests("acme", "shop", vec![seven.json()]);
    let (result, seen) = reconcile_once(set(&github, None), &world).await;
    result.unwrap();
    let applies = of(&seen, Method::PATCH, &format!("{ENVS}/shop-prs-pr-7"));
    assert_eq!(applies.len(), 1);
    let body = applies[0].body.as_ref().unwrap();
    assert_eq!(
        body["metadata"]["uid"], "uid-shop-prs-pr-7",
        "the uid the plan saw"
    );
    assert_eq!(
        body["metadata"]["annotations"]["ephemeral.io/pull-request-head-sha"],
        seven.head_sha
    );
    assert_eq!(body["spec"]["substitute"]["commit"], &seven.head_sha[..7]);
    assert!(
        of(&seen, Method::GET, &format!("{ENVS}/shop-prs-pr-7")).is_empty(),
        "an update of an observed Environment needs no lookup"
    );
    assert!(deletes(&seen).is_empty());
    let statuses = github.statuses("acme", "shop");
    let last = statuses.last().unwrap();
    assert_eq!(
        (&last["sha"], &last["state"]),
        (&json!(seven.head_sha), &json!("pending"))
    );
}

#[tokio::test]
async fn every_replica_knows_the_sets_and_their_webhook_secrets_from_a_watch() {
    use ephemeral_webhook::github::Repository;
    use ephemeral_webhook::github::receiver::Sets;

    let (client, api) = mock_api::client();
    let mut api: MockApi = api.checking_rbac(Grants::self_managed());
    let directory = Arc::new(Directory::default());
    let watch = tokio::spawn(ephemeral_webhook::sets::directory::watch(
        client,
        directory.clone(),
    ));
    let github = FakeGitHub::start().await;
    let mut listed = serde_json::to_value(set(&github, None)).unwrap();
    listed["spec"]["pullRequests"]["github"]["webhookSecretRef"] =
        json!({"name": "hook", "key": "secret"});
    api.next(Method::GET, "/apis/ephemeral.io/v1alpha1/environmentsets")
        .await
        .ok(
            &json!({"apiVersion": "ephemeral.io/v1alpha1", "kind": "EnvironmentSetList",
                    "metadata": {"resourceVersion": "40"}, "items": [listed]}),
        );
    api.next(Method::GET, "/api/v1/namespaces/previews/secrets/hook")
        .await
        .ok(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hook", "namespace": NS},
                    "data": {"secret": "czNjcmV0"}}));
    // The watch that follows is held open.
    let held = api
        .next(Method::GET, "/apis/ephemeral.io/v1alpha1/environmentsets")
        .await;
    assert_eq!(held.query().get("watch").map(String::as_str), Some("true"));
    let found = directory.for_repository(&Repository::new("ACME", "shop").unwrap());
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].set.namespace.as_str(), found[0].set.name.as_str()),
        (NS, SET)
    );
    assert_eq!(
        found[0].webhook_secret.as_ref().unwrap().expose(),
        b"s3cret"
    );
    watch.abort();
}
