//! The controller's reconciler against a mocked API server (kube-rs'
//! tower-test pattern): each named scenario walks the exact sequence of
//! requests one reconcile makes, asserting method, path, query and body, and
//! answers them. Every applied Flux body is validated against the upstream
//! Flux CRDs (`../shared/flux-crds`; under `CI=true` a missing folder fails).

use std::sync::Arc;
use std::time::Duration;

use ephemeral_core::api::{Environment, EnvironmentStatus};
use ephemeral_core::expand::OWNER_ANNOTATION;
use ephemeral_core::flux::FluxObject;
use ephemeral_core::{Catalog, Config, expand};
use ephemeral_testkit::flux_schema::Schemas;
use ephemeral_testkit::mock_api::{self, Call, MockApi};
use ephemeral_testkit::rbac::Grants;
use ephemeral_webhook::backoff::Backoff;
use ephemeral_webhook::catalog::{SharedCatalog, add_documents};
use ephemeral_webhook::clock::Clock;
use ephemeral_webhook::controller::reconcile::{self, Context, Settings};
use ephemeral_webhook::metrics::Metrics;
use http::Method;
use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};

const NS: &str = "shop";
const UID: &str = "uid-alice";
const NOW: &str = "2026-11-21T10:00:00Z";
const SELECTOR: &str = "ephemeral.io/environment=alice,app.kubernetes.io/managed-by=ephemeral";

const CATALOG: &str = r#"
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {name: checkout, namespace: shop}
spec:
  kustomization:
    path: ./apps/checkout/preview
    sourceRef: {kind: GitRepository, name: platform, namespace: flux-system}
  imageRepository: {name: checkout, namespace: flux-system}
  imageTagPrefix: main
---
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {name: payments, namespace: shop}
spec:
  kustomization:
    path: ./apps/payments/preview
    sourceRef: {kind: GitRepository, name: platform, namespace: flux-system}
  imageRepository: {name: payments, namespace: flux-system}
  imageTagPrefix: main
---
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {name: web, namespace: shop}
spec:
  helm:
    chart: web
    version: "2.x"
    sourceRef: {kind: HelmRepository, name: charts, namespace: flux-system}
"#;

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    add_documents(&mut c, std::path::Path::new("catalog.yaml"), CATALOG).unwrap();
    c
}

/// A light Environment as a person writes it.
fn light(apps: Value) -> Environment {
    serde_json::from_value(json!({
        "apiVersion": "ephemeral.io/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": "alice", "namespace": NS, "uid": UID, "generation": 1,
                     "resourceVersion": "100", "creationTimestamp": "2026-11-21T09:00:00Z"},
        "spec": {"apps": apps, "lease": {"until": "2026-11-21T19:00:00Z", "expireAfter": "24h"}}
    }))
    .unwrap()
}

fn three_apps() -> Value {
    json!([{"name": "checkout", "branch": "feature/x"}, {"name": "payments"}, {"name": "web"}])
}

/// The Environment as the webhook admitted it (owner alice, an hour ago).
fn admitted(apps: Value) -> Environment {
    let at: Timestamp = "2026-11-21T09:00:00Z".parse().unwrap();
    let mut env = expand(&light(apps), &catalog(), &Config::default(), at, "alice")
        .unwrap()
        .environment;
    env.metadata.uid = Some(UID.into());
    env
}

/// What `expand` (and so `kubectl ephemeral render`) says the children are,
/// given the tags the ImagePolicies resolved.
fn expected_children(env: &Environment, tags: &[(&str, &str)]) -> Vec<Value> {
    let mut c = catalog();
    for (policy, tag) in tags {
        c.insert_image_tag(NS, policy, tag);
    }
    expand(env, &c, &Config::default(), now(), "alice")
        .unwrap()
        .objects
        .iter()
        .map(FluxObject::to_value)
        .collect()
}

fn context(client: kube::Client, catalog: Catalog) -> (Arc<Context>, Arc<Metrics>) {
    let shared = SharedCatalog::new();
    shared.replace(catalog);
    shared.mark_synced();
    let metrics = Arc::new(Metrics::new());
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "ephemeral-controller".into(),
            instance: Some("test-pod".into()),
        },
    );
    let ctx = Context::new(
        client,
        shared,
        Arc::new(Config::default()),
        Clock::Fixed(now()),
        recorder,
        metrics.clone(),
        Settings {
            backoff: Backoff {
                jitter: 0.0,
                ..Backoff::default()
            },
            ..Settings::default()
        },
    );
    (Arc::new(ctx), metrics)
}

type Reconcile = tokio::task::JoinHandle<Result<Action, reconcile::Error>>;
/// The test kit's mocked API server (every request checked against the
/// manifests' RBAC), handing out the reconcile's requests one by one, and
/// the CRD schemas the objects sent must validate against.
struct ApiServer {
    api: MockApi,
    schemas: Schemas,
}

/// One request as received.
struct Received {
    method: Method,
    path: String,
    query: String,
    content_type: String,
    body: Value,
    call: Call,
}

impl Received {
    fn reply(self, code: u16, body: &Value) {
        self.call.reply(code, body);
    }

    fn not_found(self) {
        self.call.fail(404, "NotFound");
    }

    fn has_query(&self, pair: &str) -> bool {
        self.query.split('&').any(|kv| kv == pair)
    }
}

fn flux_path(kind: &str, name: Option<&str>) -> String {
    let info = ephemeral_core::kinds::FluxKind::from_kind(kind)
        .unwrap_or_else(|| panic!("not a Flux kind: {kind}"))
        .info();
    let base = format!("/apis/{}/namespaces/{NS}/{}", info.api_version, info.plural);
    name.map_or(base.clone(), |n| format!("{base}/{n}"))
}

fn list_body(kind: &str, items: &[Value]) -> Value {
    let group = flux_path(kind, None)
        .split("/namespaces")
        .next()
        .unwrap()
        .trim_start_matches("/apis/")
        .to_owned();
    json!({"apiVersion": group, "kind": format!("{kind}List"), "metadata": {"resourceVersion": "500"}, "items": items})
}

const LIST_ORDER: [&str; 4] = [
    "Kustomization",
    "HelmRelease",
    "ImagePolicy",
    "GitRepository",
];

impl ApiServer {
    fn new(api: MockApi) -> Self {
        ApiServer {
            // What the controller calls, the manifests must grant.
            api: api.checking_rbac(Grants::self_managed()),
            schemas: Schemas::load(),
        }
    }

    async fn next(&mut self, what: &str) -> Received {
        let call = tokio::time::timeout(mock_api::WAIT, self.api.next_any())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
            .unwrap_or_else(|| panic!("the client went away before: {what}"));
        Received {
            method: call.method.clone(),
            path: call.uri.path().to_owned(),
            query: call.uri.query().unwrap_or_default().to_owned(),
            content_type: call.content_type.clone().unwrap_or_default(),
            body: call.body.clone().unwrap_or(Value::Null),
            call,
        }
    }

    async fn expect(&mut self, method: Method, path: &str) -> Received {
        let r = self.next(&format!("{method} {path}")).await;
        assert_eq!(
            (&r.method, r.path.as_str()),
            (&method, path),
            "unexpected request (query {})",
            r.query
        );
        r
    }

    /// The four label-selected child lists, answered with `existing` (each
    /// a full object with its `kind`).
    async fn lists(&mut self, existing: &[Value]) {
        for kind in LIST_ORDER {
            let r = self.expect(Method::GET, &flux_path(kind, None)).await;
            let selector = format!(
                "labelSelector={}",
                SELECTOR
                    .replace('/', "%2F")
                    .replace('=', "%3D")
                    .replace(',', "%2C")
            );
            assert!(r.has_query(&selector), "list {kind}: query {}", r.query);
            let items: Vec<Value> = existing
                .iter()
                .filter(|o| o["kind"] == kind)
                .cloned()
                .collect();
            r.reply(200, &list_body(kind, &items));
        }
    }

    /// A GET for a child the lists did not show, answered 404.
    async fn absent(&mut self, kind: &str, name: &str) {
        self.expect(Method::GET, &flux_path(kind, Some(name)))
            .await
            .not_found();
    }

    /// A server-side apply of `expected`, answered as the API server would:
    /// the body plus uid, resourceVersion, generation and `status`.
    async fn apply(&mut self, expected: &Value, rv: &str, generation: i64, status: Value) -> Value {
        let kind = expected["kind"].as_str().unwrap();
        let name = expected["metadata"]["name"].as_str().unwrap();
        let r = self
            .expect(Method::PATCH, &flux_path(kind, Some(name)))
            .await;
        assert!(r.has_query("fieldManager=ephemeral"), "{}", r.query);
        assert!(r.has_query("force=true"), "{}", r.query);
        assert_eq!(r.content_type, "application/apply-patch+yaml");
        let body = r.body.clone();
        assert_eq!(
            &body, expected,
            "the applied {kind}/{name} is what render prints"
        );
        let owner = &body["metadata"]["ownerReferences"];
        assert_eq!(
            owner,
            &json!([{"apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment", "name": "alice",
                     "uid": UID, "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(
            body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "ephemeral"
        );
        assert_eq!(
            body["metadata"]["labels"]["ephemeral.io/environment"],
            "alice"
        );
        self.schemas.assert_valid(&body);
        let mut stored = body.clone();
        stored["metadata"]["uid"] = json!(format!("uid-{kind}-{name}"));
        stored["metadata"]["resourceVersion"] = json!(rv);
        stored["metadata"]["generation"] = json!(generation);
        stored["status"] = status;
        r.reply(200, &stored);
        body
    }

    /// The status apply; returns the status sent.
    async fn status(&mut self) -> Value {
        let r = self
            .expect(
                Method::PATCH,
                &format!("/apis/ephemeral.io/v1alpha1/namespaces/{NS}/environments/alice/status"),
            )
            .await;
        assert!(r.has_query("fieldManager=ephemeral"), "{}", r.query);
        assert!(r.has_query("force=true"), "{}", r.query);
        assert_eq!(r.content_type, "application/apply-patch+yaml");
        assert_eq!(r.body["apiVersion"], "ephemeral.io/v1alpha1");
        assert_eq!(r.body["kind"], "Environment");
        let status = r.body["status"].clone();
        let _: EnvironmentStatus = serde_json::from_value(status.clone()).unwrap();
        let mut env = r.body.clone();
        env["metadata"] = json!({"name": "alice", "namespace": NS});
        env["spec"] = json!({});
        self.schemas.assert_valid(&env);
        let mut stored = r.body.clone();
        stored["metadata"] = json!({"name": "alice", "namespace": NS, "uid": UID});
        stored["spec"] = json!({});
        r.reply(200, &stored);
        status
    }

    /// An Event about the Environment; returns (type, reason, note).
    async fn event(&mut self) -> (String, String, String) {
        let r = self
            .expect(
                Method::POST,
                &format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"),
            )
            .await;
        let e = &r.body;
        assert_eq!(e["regarding"]["kind"], "Environment");
        assert_eq!(e["regarding"]["name"], "alice");
        assert_eq!(e["regarding"]["uid"], UID);
        assert_eq!(e["reportingController"], "ephemeral-controller");
        let out = (
            e["type"].as_str().unwrap().to_owned(),
            e["reason"].as_str().unwrap().to_owned(),
            e["note"].as_str().unwrap_or_default().to_owned(),
        );
        let body = r.body.clone();
        r.reply(201, &body);
        out
    }

    /// A DELETE of `path` with a uid precondition.
    async fn delete(&mut self, path: &str, uid: &str) {
        let r = self.expect(Method::DELETE, path).await;
        assert_eq!(r.body["preconditions"], json!({"uid": uid}), "{}", r.body);
        assert_eq!(r.body["propagationPolicy"], "Background");
        r.reply(
            200,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        );
    }

    /// No request is pending or arrives shortly.
    async fn quiet(&mut self) {
        let next = tokio::time::timeout(Duration::from_millis(200), self.api.next_any()).await;
        if let Ok(Some(call)) = next {
            panic!("unexpected request: {} {}", call.method, call.uri);
        }
    }
}

/// A reconcile of `env` running against the mocked API server.
fn start(env: Environment, catalog: Catalog) -> (ApiServer, Reconcile, Arc<Context>, Arc<Metrics>) {
    let (client, api) = mock_api::client();
    let (ctx, metrics) = context(client, catalog);
    let task = tokio::spawn(reconcile::reconcile(Arc::new(env), ctx.clone()));
    (ApiServer::new(api), task, ctx, metrics)
}

async fn finish(api: &mut ApiServer, task: Reconcile) -> Result<Action, reconcile::Error> {
    let result = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("reconcile finishes")
        .expect("reconcile does not panic");
    api.quiet().await;
    result
}

fn ready_status(generation: i64) -> Value {
    json!({"observedGeneration": generation, "conditions": [{
        "type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
        "message": "Applied revision: main@sha1:abc", "lastTransitionTime": "2026-11-21T09:59:00Z"}]})
}

fn progressing() -> Value {
    json!({})
}

/// `o` as the API server stores it: uid, resourceVersion, generation, status.
fn stored(o: &Value, rv: &str, status: Value) -> Value {
    let mut o = o.clone();
    let (kind, name) = (o["kind"].clone(), o["metadata"]["name"].clone());
    o["metadata"]["uid"] = json!(format!(
        "uid-{}-{}",
        kind.as_str().unwrap(),
        name.as_str().unwrap()
    ));
    o["metadata"]["resourceVersion"] = json!(rv);
    o["metadata"]["generation"] = json!(1);
    o["status"] = status;
    o
}

fn policy_status(tag: &str) -> Value {
    json!({"observedGeneration": 1, "latestRef": {"name": "registry.example/checkout", "tag": tag},
           "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded", "message": "latest image tag resolved",
                           "lastTransitionTime": "2026-11-21T09:59:00Z"}]})
}

fn kinds_and_names(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

/// NOW is 10:00 and the lease ends at 19:00: the hourly resync comes first.
fn resync() -> Action {
    Action::requeue(Duration::from_secs(3600))
}

#[tokio::test]
async fn first_reconcile_creates_all_children() {
    let env = admitted(three_apps());
    let want = expected_children(&env, &[]);
    assert_eq!(
        kinds_and_names(&want),
        [
            "Kustomization/alice-checkout",
            "ImagePolicy/alice-checkout",
            "Kustomization/alice-payments",
            "ImagePolicy/alice-payments",
            "HelmRelease/alice-web"
        ]
    );
    let (mut api, task, _, _) = start(env, catalog());
    api.lists(&[]).await;
    for o in &want {
        api.absent(
            o["kind"].as_str().unwrap(),
            o["metadata"]["name"].as_str().unwrap(),
        )
        .await;
    }
    for o in &want {
        let body = api.apply(o, "1", 1, progressing()).await;
        if o["kind"] == "Kustomization" {
            let vars = &body["spec"]["postBuild"]["substitute"];
            assert_eq!(vars["owner"], "alice");
            assert_eq!(vars["environment"], "alice");
            assert!(vars.get("image_tag").is_none(), "no tag resolved yet");
        }
    }
    let status = api.status().await;
    assert_eq!(status["readyApps"], "0/3");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["leaseEnd"], "2026-11-21T19:00:00Z");
    let ready = condition(&status, "Ready");
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("AppsNotReady"))
    );
    assert_eq!(condition(&status, "Reconciling")["status"], "True");
    assert_eq!(condition(&status, "Admitted")["status"], "True");
    assert_eq!(
        status["apps"],
        json!([
            // Apps that follow a prefix wait for their image before Flux's verdict counts.
            {"name": "checkout", "kind": "Kustomization", "ready": false, "reason": "WaitingForImage", "message": "no image tag feature-x-<git sha>-<unix seconds> resolved yet; kubectl ephemeral describe shows the likely causes"},
            {"name": "payments", "kind": "Kustomization", "ready": false, "reason": "WaitingForImage", "message": "no image tag main-<git sha>-<unix seconds> resolved yet; kubectl ephemeral describe shows the likely causes"},
            {"name": "web", "kind": "HelmRelease", "ready": false, "reason": "Progressing", "message": "waiting for Flux to report a Ready condition"}
        ])
    );
    let (type_, reason, note) = api.event().await;
    assert_eq!((type_.as_str(), reason.as_str()), ("Normal", "Created"));
    assert_eq!(
        note,
        "created Kustomization/alice-checkout, ImagePolicy/alice-checkout, Kustomization/alice-payments, ImagePolicy/alice-payments, HelmRelease/alice-web"
    );
    assert_eq!(finish(&mut api, task).await.unwrap(), resync());
}

#[tokio::test]
async fn an_apps_prefix_changes() {
    // Before: checkout followed feature/x and its policy had resolved a tag.
    let before = admitted(three_apps());
    let old_tags = [
        ("alice-checkout", "feature-x-0a1b2c-1763700000"),
        ("alice-payments", "main-cafe01-1763600000"),
    ];
    let existing: Vec<Value> = expected_children(&before, &old_tags)
        .iter()
        .map(|o| {
            let name = o["metadata"]["name"].as_str().unwrap();
            let status = match (o["kind"].as_str().unwrap(), name) {
                ("ImagePolicy", "alice-checkout") => policy_status(old_tags[0].1),
                ("ImagePolicy", _) => policy_status(old_tags[1].1),
                _ => ready_status(1),
            };
            stored(o, "1", status)
        })
        .collect();
    // Now: checkout follows feature/y.
    let mut env = admitted(
        json!([{"name": "checkout", "branch": "feature/y"}, {"name": "payments"}, {"name": "web"}]),
    );
    env.metadata.generation = Some(2);
    // payments keeps its tag; checkout's old tag belongs to the old prefix and is dropped.
    let want = expected_children(&env, &[old_tags[1]]);
    let (mut api, task, _, _) = start(env, catalog());
    api.lists(&existing).await;
    for o in &want {
        let name = o["metadata"]["name"].as_str().unwrap();
        let changed = name == "alice-checkout";
        let body = api
            .apply(
                o,
                if changed { "2" } else { "1" },
                if changed { 2 } else { 1 },
                if o["kind"] == "ImagePolicy" {
                    json!({})
                } else {
                    ready_status(1)
                },
            )
            .await;
        match (o["kind"].as_str().unwrap(), name) {
            ("ImagePolicy", "alice-checkout") => assert_eq!(
                body["spec"]["filterTags"]["pattern"],
                "^feature-y-[a-fA-F0-9]+-(?P<ts>[0-9]+)$"
            ),
            ("Kustomization", "alice-checkout") => assert!(
                body["spec"]["postBuild"]["substitute"]
                    .get("image_tag")
                    .is_none(),
                "a tag of the old prefix is not carried over"
            ),
            ("Kustomization", "alice-payments") => assert_eq!(
                body["spec"]["postBuild"]["substitute"]["image_tag"],
                "main-cafe01-1763600000"
            ),
            _ => {}
        }
    }
    let status = api.status().await;
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(
        status["readyApps"], "2/3",
        "checkout's new generation is not reconciled yet"
    );
    assert_eq!(status["apps"][1]["imageTag"], "main-cafe01-1763600000");
    assert!(status["apps"][0].get("imageTag").is_none());
    let (_, reason, note) = api.event().await;
    assert_eq!(reason, "Updated");
    assert_eq!(
        note,
        "updated Kustomization/alice-checkout, ImagePolicy/alice-checkout"
    );
    finish(&mut api, task).await.unwrap();
}

#[tokio::test]
async fn an_app_is_removed_and_pruned() {
    let before = admitted(three_apps());
    let tags = [
        ("alice-checkout", "feature-x-0a1b2c-1763700000"),
        ("alice-payments", "main-cafe01-1763600000"),
    ];
    let mut existing: Vec<Value> = expected_children(&before, &tags)
        .iter()
        .map(|o| {
            match tags
                .iter()
                .find(|(p, _)| o["kind"] == "ImagePolicy" && o["metadata"]["name"] == *p)
            {
                Some((_, tag)) => stored(o, "1", policy_status(tag)),
                None => stored(o, "1", ready_status(1)),
            }
        })
        .collect();
    // Carries our labels but is controlled by another Environment: never touched.
    let mut foreign = existing[4].clone();
    foreign["metadata"]["name"] = json!("alice-legacy");
    foreign["metadata"]["ownerReferences"][0]["uid"] = json!("uid-someone-else");
    existing.push(foreign);
    let mut env =
        admitted(json!([{"name": "checkout", "branch": "feature/x"}, {"name": "payments"}]));
    env.metadata.generation = Some(2);
    let want = expected_children(&env, &tags);
    assert_eq!(want.len(), 4);
    let (mut api, task, _, _) = start(env, catalog());
    api.lists(&existing).await;
    for o in &want {
        let status = match tags
            .iter()
            .find(|(p, _)| o["kind"] == "ImagePolicy" && o["metadata"]["name"] == *p)
        {
            Some((_, tag)) => policy_status(tag),
            None => ready_status(1),
        };
        api.apply(o, "1", 1, status).await;
    }
    api.delete(
        &flux_path("HelmRelease", Some("alice-web")),
        "uid-HelmRelease-alice-web",
    )
    .await;
    let status = api.status().await;
    assert_eq!(status["readyApps"], "2/2");
    assert_eq!(condition(&status, "Ready")["status"], "True");
    let mut events = [api.event().await, api.event().await];
    events.sort();
    assert_eq!(events[0].1, "Pruned");
    assert_eq!(events[0].2, "pruned HelmRelease/alice-web");
    assert_eq!(events[1].1, "Ready");
    finish(&mut api, task).await.unwrap();
}

#[tokio::test]
async fn a_child_turns_ready_and_the_status_follows() {
    let mut env = admitted(json!([{"name": "checkout", "branch": "feature/x"}]));
    let tag = "feature-x-0a1b2c-1763700000";
    let want = expected_children(&env, &[("alice-checkout", tag)]);
    let existing: Vec<Value> = vec![
        stored(&want[0], "1", json!({})),
        stored(&want[1], "1", policy_status(tag)),
    ];
    // The previous reconcile saw checkout progressing.
    env.status = Some(
        serde_json::from_value(json!({
            "observedGeneration": 1, "readyApps": "0/1", "leaseEnd": "2026-11-21T19:00:00Z",
            "apps": [{"name": "checkout", "kind": "Kustomization", "ready": false, "reason": "Progressing", "message": "waiting for Flux to report a Ready condition"}],
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "AppsNotReady", "message": "0/1 apps ready", "observedGeneration": 1, "lastTransitionTime": "2026-11-21T09:00:00Z"},
                {"type": "Reconciling", "status": "True", "reason": "Progressing", "message": "0/1 apps ready", "observedGeneration": 1, "lastTransitionTime": "2026-11-21T09:00:00Z"},
                {"type": "Admitted", "status": "True", "reason": "Admitted", "message": "admitted by the ephemeral admission webhook", "observedGeneration": 1, "lastTransitionTime": "2026-11-21T09:00:00Z"},
                {"type": "LeaseActive", "status": "True", "reason": "InLease", "message": "up until 2026-11-21T19:00:00Z", "observedGeneration": 1, "lastTransitionTime": "2026-11-21T09:00:00Z"}
            ]
        }))
        .unwrap(),
    );
    let (mut api, task, _, _) = start(env, catalog());
    api.lists(&existing).await;
    // Flux has since reported Ready; the unchanged apply returns it as stored.
    api.apply(&want[0], "1", 1, ready_status(1)).await;
    api.apply(&want[1], "1", 1, policy_status(tag)).await;
    let status = api.status().await;
    let ready = condition(&status, "Ready");
    assert_eq!(
        (
            ready["status"].as_str(),
            ready["reason"].as_str(),
            ready["message"].as_str()
        ),
        (Some("True"), Some("AppsReady"), Some("1/1 apps ready"))
    );
    assert_eq!(ready["lastTransitionTime"], "2026-11-21T10:00:00Z");
    assert_eq!(
        condition(&status, "Admitted")["lastTransitionTime"],
        "2026-11-21T09:00:00Z",
        "unchanged conditions keep their transition time"
    );
    assert!(
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["type"] != "Reconciling")
    );
    assert_eq!(
        status["apps"],
        json!([{"name": "checkout", "kind": "Kustomization", "ready": true, "imageTag": tag,
                "reason": "ReconciliationSucceeded", "message": "Applied revision: main@sha1:abc"}])
    );
    let (type_, reason, note) = api.event().await;
    assert_eq!(
        (type_.as_str(), reason.as_str(), note.as_str()),
        ("Normal", "Ready", "1/1 apps ready")
    );
    finish(&mut api, task).await.unwrap();
}

#[tokio::test]
async fn an_image_policy_resolves_a_tag_and_the_kustomization_follows() {
    let env = admitted(json!([{"name": "checkout", "branch": "feature/x"}]));
    let untagged = expected_children(&env, &[]);
    let tag = "feature-x-0a1b2c3d-1763712000";
    let existing = vec![
        stored(&untagged[0], "1", ready_status(1)),
        stored(&untagged[1], "1", policy_status(tag)),
    ];
    let want = expected_children(&env, &[("alice-checkout", tag)]);
    let (mut api, task, _, _) = start(env, catalog());
    api.lists(&existing).await;
    let body = api.apply(&want[0], "2", 2, ready_status(1)).await;
    assert_eq!(body["spec"]["postBuild"]["substitute"]["image_tag"], tag);
    api.apply(&want[1], "1", 1, policy_status(tag)).await;
    let status = api.status().await;
    assert_eq!(status["apps"][0]["imageTag"], tag);
    assert_eq!(
        status["apps"][0]["ready"], false,
        "Flux has not applied the new tag yet"
    );
    let (_, reason, note) = api.event().await;
    assert_eq!(
        (reason.as_str(), note.as_str()),
        ("Updated", "updated Kustomization/alice-checkout")
    );
    finish(&mut api, task).await.unwrap();
}

#[tokio::test]
async fn a_helm_app_gets_the_tag_at_the_values_path() {
    let mut c = catalog();
    add_documents(
        &mut c,
        std::path::Path::new("web.yaml"),
        "apiVersion: ephemeral.io/v1alpha1\nkind: AppTemplate\nmetadata: {name: web, namespace: shop}\nspec:\n  helm: {chart: web, sourceRef: {kind: HelmRepository, name: charts, namespace: flux-system}}\n  imageRepository: {name: web, namespace: flux-system}\n  imageTagPrefix: main\n",
    )
    .unwrap();
    let at: Timestamp = "2026-11-21T09:00:00Z".parse().unwrap();
    let mut env = expand(
        &light(json!([{"name": "web"}])),
        &c,
        &Config::default(),
        at,
        "alice",
    )
    .unwrap()
    .environment;
    env.metadata.uid = Some(UID.into());
    let tag = "main-beef-1763712000";
    let mut tagged = c.clone();
    tagged.insert_image_tag(NS, "alice-web", tag);
    let untagged: Vec<Value> = expand(&env, &c, &Config::default(), now(), "alice")
        .unwrap()
        .objects
        .iter()
        .map(FluxObject::to_value)
        .collect();
    let want: Vec<Value> = expand(&env, &tagged, &Config::default(), now(), "alice")
        .unwrap()
        .objects
        .iter()
        .map(FluxObject::to_value)
        .collect();
    let existing = vec![
        stored(&untagged[0], "1", ready_status(1)),
        stored(&untagged[1], "1", policy_status(tag)),
    ];
    let (mut api, task, _, _) = start(env, c);
    api.lists(&existing).await;
    let body = api.apply(&want[0], "2", 2, ready_status(1)).await;
    assert_eq!(body["spec"]["values"]["image"]["tag"], tag);
    assert_eq!(body["spec"]["values"]["ephemeral"]["image_tag"], tag);
    api.apply(&want[1], "1", 1, policy_status(tag)).await;
    let status = api.status().await;
    assert_eq!(status["apps"][0]["kind"], "HelmRelease");
    assert_eq!(status["apps"][0]["imageTag"], tag);
    api.event().await;
    finish(&mut api, task).await.unwrap();
}

#[tokio::test]
async fn expiry_deletes_the_environment_and_nothing_else() {
    let mut env = admitted(three_apps());
    // The lease ended at 08:00 yesterday; expireAfter 24h passed at 08:00 today.
    let lease = env.spec.lease.as_mut().unwrap();
    lease.until = Some("2026-11-20T08:00:00Z".into());
    lease.expire_after = Some("24h".into());
    let (mut api, task, _, _) = start(env, catalog());
    api.delete(
        &format!("/apis/ephemeral.io/v1alpha1/namespaces/{NS}/environments/alice"),
        UID,
    )
    .await;
    let (type_, reason, note) = api.event().await;
    assert_eq!((type_.as_str(), reason.as_str()), ("Normal", "Expired"));
    assert!(
        note.contains("expireAfter 24h passed at 2026-11-21T08:00:00Z"),
        "{note}"
    );
    assert_eq!(
        finish(&mut api, task).await.unwrap(),
        Action::await_change()
    );
}

#[tokio::test]
async fn a_refused_expiry_delete_is_an_error_without_an_event() {
    let mut env = admitted(three_apps());
    let lease = env.spec.lease.as_mut().unwrap();
    lease.until = Some("2026-11-20T08:00:00Z".into());
    lease.expire_after = Some("24h".into());
    let (mut api, task, _, _) = start(env, catalog());
    let r = api
        .expect(
            Method::DELETE,
            &format!("/apis/ephemeral.io/v1alpha1/namespaces/{NS}/environments/alice"),
        )
        .await;
    r.reply(403, &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403, "message": "forbidden"}));
    // No Expired Event, no children touched: the error backs off and the
    // next attempt tells the story once it succeeds.
    let error = finish(&mut api, task).await.unwrap_err();
    assert_eq!(error.kind(), "api_forbidden");
}

#[tokio::test]
async fn before_expiry_the_requeue_is_for_the_moment_of_expiry() {
    let mut env = admitted(json!([{"name": "web"}]));
    let lease = env.spec.lease.as_mut().unwrap();
    lease.until = Some("2026-11-21T09:30:00Z".into());
    lease.expire_after = Some("40m".into());
    let want = expected_children(&env, &[]);
    let (mut api, task, _, _) = start(env, catalog());
    api.lists(&[stored(&want[0], "1", ready_status(1))]).await;
    api.apply(&want[0], "1", 1, ready_status(1)).await;
    let status = api.status().await;
    let lease = condition(&status, "LeaseActive");
    assert_eq!(
        (lease["status"].as_str(), lease["reason"].as_str()),
        (Some("False"), Some("LeaseEnded"))
    );
    let mut reasons = [api.event().await.1, api.event().await.1];
    reasons.sort();
    assert_eq!(reasons, ["LeaseExpired", "Ready"]);
    // 09:30 + 40m = 10:10, ten minutes from NOW.
    assert_eq!(
        finish(&mut api, task).await.unwrap(),
        Action::requeue(Duration::from_secs(600))
    );
}

#[tokio::test]
async fn an_unadmitted_environment_is_expanded_and_says_so() {
    let env = light(json!([{"name": "web"}]));
    assert!(
        !env.metadata
            .annotations
            .iter()
            .flatten()
            .any(|(k, _)| k == OWNER_ANNOTATION)
    );
    // As the webhook would have admitted it at its creation, for owner "unknown".
    let created: Timestamp = "2026-11-21T09:00:00Z".parse().unwrap();
    let x = expand(&env, &catalog(), &Config::default(), created, "unknown").unwrap();
    let want: Vec<Value> = x.objects.iter().map(FluxObject::to_value).collect();
    assert_eq!(want[0]["spec"]["values"]["ephemeral"]["owner"], "unknown");
    let (mut api, task, _, _) = start(env, catalog());
    api.lists(&[]).await;
    api.absent("HelmRelease", "alice-web").await;
    api.apply(&want[0], "1", 1, json!({})).await;
    let status = api.status().await;
    let admitted = condition(&status, "Admitted");
    assert_eq!(
        (admitted["status"].as_str(), admitted["reason"].as_str()),
        (Some("False"), Some("NotAdmitted"))
    );
    assert!(
        admitted["message"]
            .as_str()
            .unwrap()
            .contains("did not admit this Environment (no ephemeral.io/owner annotation)"),
        "{admitted}"
    );
    let (type_, reason, _) = api.event().await;
    assert_eq!(
        (type_.as_str(), reason.as_str()),
        ("Warning", "NotAdmitted")
    );
    assert_eq!(api.event().await.1, "Created");
    finish(&mut api, task).await.unwrap();
}

#[tokio::test]
async fn a_vanished_template_stalls_and_prunes_nothing() {
    let env = admitted(three_apps());
    let tag = "feature-x-0a1b2c3d-1763712000";
    let existing: Vec<Value> = expected_children(&env, &[("alice-checkout", tag)])
        .iter()
        .map(|o| stored(o, "1", ready_status(1)))
        .collect();
    let mut without_web = Catalog::default();
    add_documents(
        &mut without_web,
        std::path::Path::new("catalog.yaml"),
        &CATALOG[..CATALOG
            .find("---\napiVersion: ephemeral.io/v1alpha1\nkind: AppTemplate\nmetadata: {name: web")
            .unwrap()],
    )
    .unwrap();
    let (mut api, task, _, _) = start(env, without_web);
    api.lists(&existing).await;
    // No apply, no delete: straight to the status.
    let status = api.status().await;
    let stalled = condition(&status, "Stalled");
    assert_eq!(
        (stalled["status"].as_str(), stalled["reason"].as_str()),
        (Some("True"), Some("ExpansionFailed"))
    );
    assert!(
        stalled["message"]
            .as_str()
            .unwrap()
            .contains("AppTemplate 'web' does not exist"),
        "{stalled}"
    );
    assert_eq!(condition(&status, "Ready")["status"], "False");
    assert_eq!(
        status["readyApps"], "3/3",
        "the apps that exist are still reported"
    );
    assert_eq!(
        status["apps"][0],
        json!({"name": "checkout", "kind": "Kustomization", "ready": true, "reason": "ReconciliationSucceeded",
               "message": "Applied revision: main@sha1:abc", "imageTag": tag}),
        "with the tag it deploys"
    );
    assert!(status["apps"][1].get("imageTag").is_none());
    let (type_, reason, _) = api.event().await;
    assert_eq!(
        (type_.as_str(), reason.as_str()),
        ("Warning", "ExpansionFailed")
    );
    assert_eq!(
        finish(&mut api, task).await.unwrap(),
        Action::requeue(Duration::from_secs(60))
    );
}

#[tokio::test]
async fn a_foreign_object_of_a_wanted_name_is_not_taken_over() {
    let env = admitted(json!([{"name": "web"}]));
    let want = expected_children(&env, &[]);
    let (mut api, task, _, _) = start(env, catalog());
    api.lists(&[]).await;
    let r = api
        .expect(Method::GET, &flux_path("HelmRelease", Some("alice-web")))
        .await;
    r.reply(
        200,
        &json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": {"name": "alice-web", "namespace": NS, "uid": "theirs", "resourceVersion": "7"},
        "spec": want[0]["spec"].clone()}),
    );
    let status = api.status().await;
    let stalled = condition(&status, "Stalled");
    assert_eq!(stalled["reason"], "ChildConflict");
    assert!(stalled["message"].as_str().unwrap().starts_with("HelmRelease/alice-web already exists in namespace shop and is not controlled by this Environment"), "{stalled}");
    assert_eq!(api.event().await.1, "ChildConflict");
    finish(&mut api, task).await.unwrap();
}

#[tokio::test]
async fn an_api_error_backs_off_and_deletes_nothing() {
    // web was removed, so a successful reconcile would prune it; a failed
    // apply stops the reconcile before any prune.
    let before = admitted(three_apps());
    let existing: Vec<Value> = expected_children(&before, &[])
        .iter()
        .map(|o| stored(o, "1", ready_status(1)))
        .collect();
    let env = admitted(json!([{"name": "checkout", "branch": "feature/x"}, {"name": "payments"}]));
    let want = expected_children(&env, &[]);
    let (mut api, task, ctx, metrics) = start(env.clone(), catalog());
    api.lists(&existing).await;
    let r = api
        .expect(
            Method::PATCH,
            &flux_path("Kustomization", Some("alice-checkout")),
        )
        .await;
    assert_eq!(r.body, want[0]);
    r.reply(500, &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "InternalError", "code": 500, "message": "etcd is sad"}));
    let error = finish(&mut api, task).await.unwrap_err();
    assert_eq!(error.kind(), "api");
    assert!(
        error
            .to_string()
            .starts_with("apply Kustomization/alice-checkout: "),
        "{error}"
    );
    assert!(
        metrics
            .encode()
            .contains(r#"ephemeral_webhook_reconcile_failures_total{kind="api"} 1"#)
    );

    // Consecutive failures of the same Environment back off exponentially.
    let env = Arc::new(env);
    let delays: Vec<Action> = (0..4)
        .map(|_| reconcile::error_policy(env.clone(), &error, ctx.clone()))
        .collect();
    assert_eq!(
        delays,
        [1, 2, 4, 8].map(|s| Action::requeue(Duration::from_secs(s)))
    );
}

#[tokio::test]
async fn a_list_error_fails_before_anything_is_applied() {
    let env = admitted(three_apps());
    let (mut api, task, _, _) = start(env, catalog());
    let r = api
        .expect(Method::GET, &flux_path("Kustomization", None))
        .await;
    r.reply(403, &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403, "message": "forbidden"}));
    let error = finish(&mut api, task).await.unwrap_err();
    assert_eq!(error.kind(), "api_forbidden");
}

#[tokio::test]
async fn nothing_happens_before_the_catalog_syncs() {
    let (client, mut api) = mock_api::client();
    let (ctx, _) = context(client, catalog());
    let unsynced = Context::new(
        ctx.client.clone(),
        SharedCatalog::new(),
        ctx.config.clone(),
        ctx.clock,
        ctx.recorder.clone(),
        ctx.metrics.clone(),
        Settings::default(),
    );
    let action = reconcile::reconcile(Arc::new(admitted(three_apps())), Arc::new(unsynced))
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    let next = tokio::time::timeout(Duration::from_millis(100), api.next_any()).await;
    assert!(!matches!(next, Ok(Some(_))), "no API call while unsynced");
}

#[tokio::test]
async fn an_image_policy_list_error_applies_and_deletes_nothing() {
    // web was removed (a successful reconcile would prune it) and checkout's
    // Kustomization carries a resolved tag: a failed ImagePolicy list must
    // neither prune web nor re-apply checkout without its tag.
    let before = admitted(three_apps());
    let tag = "feature-x-0a1b2c3d-1763712000";
    let existing: Vec<Value> = expected_children(&before, &[("alice-checkout", tag)])
        .iter()
        .map(|o| stored(o, "1", ready_status(1)))
        .collect();
    let env = admitted(json!([{"name": "checkout", "branch": "feature/x"}, {"name": "payments"}]));
    let (mut api, task, _, metrics) = start(env, catalog());
    for kind in ["Kustomization", "HelmRelease"] {
        let r = api.expect(Method::GET, &flux_path(kind, None)).await;
        let items: Vec<Value> = existing
            .iter()
            .filter(|o| o["kind"] == kind)
            .cloned()
            .collect();
        r.reply(200, &list_body(kind, &items));
    }
    let r = api
        .expect(Method::GET, &flux_path("ImagePolicy", None))
        .await;
    r.reply(503, &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "ServiceUnavailable", "code": 503, "message": "the server is currently unable to handle the request"}));
    let error = finish(&mut api, task).await.unwrap_err();
    assert_eq!(error.kind(), "api");
    assert!(
        error
            .to_string()
            .starts_with("list imagepolicies in namespace shop: "),
        "{error}"
    );
    assert!(
        metrics
            .encode()
            .contains(r#"ephemeral_webhook_reconcile_failures_total{kind="api"} 1"#)
    );
}

#[tokio::test]
async fn a_flux_kind_the_api_server_does_not_serve_stalls_before_anything_is_applied() {
    // Flux without its image automation CRDs: ImagePolicies cannot exist.
    // Applying the rest would hand checkout a Kustomization without its
    // image tag and then fail anyway; nothing is applied or pruned instead.
    let env = admitted(three_apps());
    let mut existing: Vec<Value> = expected_children(&env, &[])
        .iter()
        .filter(|o| o["kind"] != "ImagePolicy")
        .map(|o| stored(o, "1", ready_status(1)))
        .collect();
    // An app that was removed: a successful reconcile would prune it.
    let mut removed = existing[0].clone();
    removed["metadata"]["name"] = json!("alice-search");
    removed["metadata"]["labels"]["ephemeral.io/app"] = json!("search");
    existing.push(removed);
    let (mut api, task, _, metrics) = start(env, catalog());
    for kind in LIST_ORDER {
        let r = api.expect(Method::GET, &flux_path(kind, None)).await;
        if kind == "ImagePolicy" {
            r.not_found();
        } else {
            let items: Vec<Value> = existing
                .iter()
                .filter(|o| o["kind"] == kind)
                .cloned()
                .collect();
            r.reply(200, &list_body(kind, &items));
        }
    }
    let status = api.status().await;
    let stalled = condition(&status, "Stalled");
    assert_eq!(stalled["reason"], "FluxKindNotServed");
    assert_eq!(
        stalled["message"],
        "the API server does not serve ImagePolicy (image.toolkit.fluxcd.io/v1), needed by ImagePolicy/alice-checkout, ImagePolicy/alice-payments; nothing was applied or pruned. Fix: install the Flux CRDs and controllers for it (ImagePolicy: flux install --components-extra=image-reflector-controller,image-automation-controller), or use apps without imageTagPrefix or branch"
    );
    assert_eq!(condition(&status, "Ready")["status"], "False");
    let (type_, reason, _) = api.event().await;
    assert_eq!(
        (type_.as_str(), reason.as_str()),
        ("Warning", "FluxKindNotServed")
    );
    assert_eq!(
        finish(&mut api, task).await.unwrap(),
        Action::requeue(Duration::from_secs(60))
    );
    assert!(!metrics.encode().contains("reconcile_failures_total{"));
}

#[tokio::test]
async fn a_status_flux_wrote_meanwhile_is_not_reported_as_an_update() {
    // Flux turned the HelmRelease Ready between the list and the apply: the
    // apply returns a new resourceVersion but the same generation.
    let env = admitted(json!([{"name": "web"}]));
    let want = expected_children(&env, &[]);
    let (mut api, task, _, _) = start(env, catalog());
    api.lists(&[stored(&want[0], "1", json!({}))]).await;
    api.apply(&want[0], "2", 1, ready_status(1)).await;
    let status = api.status().await;
    assert_eq!(condition(&status, "Ready")["status"], "True");
    let (_, reason, _) = api.event().await;
    assert_eq!(reason, "Ready", "and no Updated event");
    finish(&mut api, task).await.unwrap();
}

/// fieldsV1 naming every field of `v` (lists atomic), as the API server
/// records what a server-side apply of `v` owns.
fn fields_v1(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (format!("f:{k}"), fields_v1(v)))
                .collect(),
        ),
        _ => json!({}),
    }
}

/// fieldsV1 of our apply of `body`: every field but the identity
/// (`apiVersion`, `kind`, `metadata.name`, `metadata.namespace`).
fn applied_fields(body: &Value) -> Value {
    let mut owned = body.clone();
    let top = owned.as_object_mut().unwrap();
    top.remove("apiVersion");
    top.remove("kind");
    let meta = top["metadata"].as_object_mut().unwrap();
    meta.remove("name");
    meta.remove("namespace");
    fields_v1(&owned)
}

/// The child index, synced, holding `children` (each as `stored` made it,
/// with the managed fields of our apply), as the controller's watches fill it.
fn synced_stores(ctx: &Context, children: &[Value]) {
    use ephemeral_webhook::controller::children::ChildKind;
    use kube::api::DynamicObject;
    use kube::runtime::watcher;
    for kind in ChildKind::ALL {
        ctx.children.apply(kind, &watcher::Event::Init);
        for child in children.iter().filter(|c| c["kind"] == kind.as_str()) {
            let mut child = child.clone();
            let mut owned = child.clone();
            owned.as_object_mut().unwrap().remove("status");
            for key in ["uid", "resourceVersion", "generation"] {
                owned["metadata"].as_object_mut().unwrap().remove(key);
            }
            child["metadata"]["managedFields"] = json!([{
                "manager": "ephemeral", "operation": "Apply", "apiVersion": child["apiVersion"],
                "fieldsType": "FieldsV1", "fieldsV1": applied_fields(&owned)}]);
            let object: DynamicObject = serde_json::from_value(child).unwrap();
            ctx.children.apply(kind, &watcher::Event::InitApply(object));
        }
        ctx.children.apply(kind, &watcher::Event::InitDone);
    }
}

#[tokio::test]
async fn with_the_watches_synced_a_flux_status_change_costs_one_status_write_and_then_nothing() {
    let env = admitted(three_apps());
    let tags = [
        ("alice-checkout", "feature-x-0a1b2c-1763712000"),
        ("alice-payments", "main-cafe01-1763600000"),
    ];
    let children: Vec<Value> = expected_children(&env, &tags)
        .iter()
        .map(|o| match o["kind"].as_str().unwrap() {
            "ImagePolicy" => {
                let name = o["metadata"]["name"].as_str().unwrap();
                let tag = tags.iter().find(|(p, _)| *p == name).unwrap().1;
                stored(o, "7", policy_status(tag))
            }
            _ => stored(o, "7", ready_status(1)),
        })
        .collect();

    // Flux wrote a child's status: no LIST, no apply, the status written once.
    let (client, api) = mock_api::client();
    let (ctx, _) = context(client, catalog());
    synced_stores(&ctx, &children);
    let mut api = ApiServer::new(api);
    let task = tokio::spawn(reconcile::reconcile(Arc::new(env.clone()), ctx.clone()));
    let status = api.status().await;
    assert_eq!(status["readyApps"], "3/3");
    assert_eq!(status["apps"][0]["imageTag"], "feature-x-0a1b2c-1763712000");
    let (_, reason, _) = api.event().await;
    assert_eq!(reason, "Ready");
    assert_eq!(finish(&mut api, task).await.unwrap(), resync());

    // The status write triggers another reconcile: nothing changed, nothing written.
    let mut written = env;
    written.status = Some(serde_json::from_value(status).unwrap());
    let task = tokio::spawn(reconcile::reconcile(Arc::new(written), ctx.clone()));
    assert_eq!(finish(&mut api, task).await.unwrap(), resync());
}

#[tokio::test]
async fn a_kind_whose_watch_is_not_served_is_listed_and_stalls_while_the_others_come_from_the_index()
 {
    use ephemeral_webhook::controller::children::ChildKind;
    let env = admitted(three_apps());
    let children: Vec<Value> = expected_children(&env, &[])
        .iter()
        .filter(|o| o["kind"] != "ImagePolicy")
        .map(|o| stored(o, "1", ready_status(1)))
        .collect();
    let (client, api) = mock_api::client();
    let (ctx, _) = context(client, catalog());
    synced_stores(&ctx, &children);
    // The ImagePolicy CRD was removed: its watch is answered 404.
    ctx.children.not_served(ChildKind::ImagePolicy);
    let mut api = ApiServer::new(api);
    let task = tokio::spawn(reconcile::reconcile(Arc::new(env), ctx.clone()));
    api.expect(Method::GET, &flux_path("ImagePolicy", None))
        .await
        .not_found();
    let status = api.status().await;
    assert_eq!(condition(&status, "Stalled")["reason"], "FluxKindNotServed");
    let (_, reason, _) = api.event().await;
    assert_eq!(reason, "FluxKindNotServed");
    assert_eq!(
        finish(&mut api, task).await.unwrap(),
        Action::requeue(Duration::from_secs(60))
    );
}

#[tokio::test]
async fn a_wanted_child_the_index_lacks_is_looked_up_by_name_and_never_taken_over() {
    // The index has synced but has not seen the web HelmRelease, which
    // exists without our labels (so its watch never showed it).
    let env = admitted(json!([{"name": "web"}]));
    let want = expected_children(&env, &[]);
    let (client, api) = mock_api::client();
    let (ctx, _) = context(client, catalog());
    synced_stores(&ctx, &[]);
    let mut api = ApiServer::new(api);
    let task = tokio::spawn(reconcile::reconcile(Arc::new(env), ctx.clone()));
    let mut foreign = stored(&want[0], "3", json!({}));
    foreign["metadata"]["labels"] = json!({});
    foreign["metadata"]["ownerReferences"] = json!([]);
    api.expect(Method::GET, &flux_path("HelmRelease", Some("alice-web")))
        .await
        .reply(200, &foreign);
    let status = api.status().await;
    assert_eq!(condition(&status, "Stalled")["reason"], "ChildConflict");
    let (_, reason, _) = api.event().await;
    assert_eq!(reason, "ChildConflict");
    finish(&mut api, task).await.unwrap();
}
