//! Reconciles 1,000 Environments of 5 apps each (4 Kustomization apps with
//! image policies and 1 Helm app: 9 children each) against an in-process mock
//! API server that stores what is applied (with the managed fields of our
//! field manager, as a real API server records them), in three passes:
//!
//! 1. **first**: nothing exists, no watch has synced: every child is created;
//! 2. **steady, LIST per reconcile**: everything exists and each Environment
//!    carries the status it was given, but no watch of the children has
//!    synced (no child index), so it LISTs them per kind (how every reconcile worked
//!    before the observe/plan/execute engine, which also re-applied all);
//! 3. **steady, child index**: the children are read from the child index
//!    filled from the mock, as the controller's watches fill it (one
//!    summary per child, keyed by namespace and Environment).
//!
//! Prints wall time, reconciles per second, latency percentiles, the API
//! requests per reconcile by verb, and peak memory, and compares with a
//! baseline measured in the same run: the pure `expand()` of the same
//! Environments.
//!
//! Run: `cargo bench -p ephemeral-webhook --bench reconcile`;
//! `BENCH_ENVIRONMENTS=N` reconciles N Environments instead of 1,000 (the
//! memory per child does not depend on N, nor on the profile: `--profile
//! dev` is fine for it, not for the timings).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ephemeral_core::api::Environment;
use ephemeral_core::{Catalog, Config, expand};
use ephemeral_webhook::catalog::{SharedCatalog, add_documents};
use ephemeral_webhook::clock::Clock;
use ephemeral_webhook::controller::children::ChildKind;
use ephemeral_webhook::controller::reconcile::{self, Context, Settings};
use ephemeral_webhook::metrics::Metrics;
use futures::StreamExt;
use http::{Method, Request, Response};
use jiff::Timestamp;
use kube::client::Body;
use kube::core::DynamicObject;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use serde_json::{Value, json};

/// The system allocator, counting the bytes allocated and not yet freed, so
/// the bench can tell the live heap of the child index from what RSS keeps.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// How many Environments: `BENCH_ENVIRONMENTS`, else 1,000.
fn environments_wanted() -> usize {
    std::env::var("BENCH_ENVIRONMENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000)
}

static ENVIRONMENTS: std::sync::LazyLock<usize> = std::sync::LazyLock::new(environments_wanted);
const CONCURRENCY: usize = 16;
const NS: &str = "shop";
const NOW: &str = "2026-11-21T10:00:00Z";

const CATALOG: &str = r#"
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {name: checkout, namespace: shop}
spec:
  kustomization: {path: ./apps/checkout, sourceRef: {kind: GitRepository, name: platform, namespace: flux-system}}
  imageRepository: {name: checkout, namespace: flux-system}
  imageTagPrefix: main
---
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {name: payments, namespace: shop}
spec:
  kustomization: {path: ./apps/payments, sourceRef: {kind: GitRepository, name: platform, namespace: flux-system}}
  imageRepository: {name: payments, namespace: flux-system}
  imageTagPrefix: main
---
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {name: search, namespace: shop}
spec:
  kustomization: {path: ./apps/search, sourceRef: {kind: GitRepository, name: platform, namespace: flux-system}}
  imageRepository: {name: search, namespace: flux-system}
  imageTagPrefix: main
---
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {name: basket, namespace: shop}
spec:
  kustomization: {path: ./apps/basket, sourceRef: {kind: GitRepository, name: platform, namespace: flux-system}}
  imageRepository: {name: basket, namespace: flux-system}
  imageTagPrefix: main
---
apiVersion: ephemeral.io/v1alpha1
kind: AppTemplate
metadata: {name: web, namespace: shop}
spec:
  helm: {chart: web, version: "2.x", sourceRef: {kind: HelmRepository, name: charts, namespace: flux-system}}
"#;

/// What the mock API server holds: objects by collection
/// (`/apis/<group>/<version>/namespaces/<ns>/<plural>`) and name, and an
/// index of names by collection and `ephemeral.io/environment` label, so a
/// label-selected list costs what it costs an API server's watch cache.
#[derive(Default)]
struct Objects {
    by_name: HashMap<String, BTreeMap<String, Value>>,
    by_environment: HashMap<(String, String), Vec<String>>,
    /// The last status written per Environment name.
    statuses: HashMap<String, Value>,
    /// Requests served, by verb.
    requests: BTreeMap<&'static str, usize>,
}

/// fieldsV1 naming every field of `v` (lists atomic), as the API server
/// records the fields an apply sets.
fn fields(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (format!("f:{k}"), fields(v)))
                .collect(),
        ),
        _ => json!({}),
    }
}

/// The managed-fields entry of a server-side apply of `body` by `ephemeral`.
fn managed_fields(body: &Value) -> Value {
    let mut set = body.clone();
    let m = set.as_object_mut().unwrap();
    m.remove("apiVersion");
    m.remove("kind");
    if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("name");
        meta.remove("namespace");
    }
    json!([{"manager": "ephemeral", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": fields(&set)}])
}

type Store = Arc<Mutex<Objects>>;

fn respond(code: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

fn not_found() -> Response<Body> {
    respond(
        404,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
    )
}

/// The selector's `ephemeral.io/environment` value.
fn environment_label(query: &str) -> Option<String> {
    let selector = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("labelSelector="))?
        .replace("%2F", "/")
        .replace("%3D", "=")
        .replace("%2C", ",");
    selector
        .split(',')
        .find_map(|kv| kv.strip_prefix("ephemeral.io/environment="))
        .map(str::to_owned)
}

/// A tiny API server: stores applies, lists by environment label, 404s the
/// rest, accepts status patches and Events.
async fn serve(store: Store, request: Request<Body>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.unwrap_or_default();
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // apis, group, version, namespaces, ns, plural, [name, [status]]
    let collection = segments.get(..6).map(|s| format!("/{}", s.join("/")));
    let name = segments.get(6).copied();
    let subresource = segments.get(7).copied();
    let Some(collection) = collection else {
        return Ok(not_found());
    };
    let mut store = store.lock().unwrap();
    let verb = match (&parts.method, name, subresource) {
        (&Method::GET, None, _) => "LIST",
        (&Method::GET, Some(_), _) => "GET",
        (&Method::PATCH, Some(_), None) => "APPLY",
        (&Method::PATCH, Some(_), Some(_)) => "STATUS",
        (&Method::POST, _, _) => "EVENT",
        (&Method::DELETE, _, _) => "DELETE",
        _ => "OTHER",
    };
    *store.requests.entry(verb).or_default() += 1;
    let response = match (&parts.method, name, subresource) {
        (&Method::GET, None, _) => {
            let wanted = environment_label(query).unwrap_or_default();
            let objects = store.by_name.get(&collection);
            let items: Vec<&Value> = store
                .by_environment
                .get(&(collection.clone(), wanted))
                .into_iter()
                .flatten()
                .filter_map(|n| objects?.get(n))
                .collect();
            respond(
                200,
                &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
            )
        }
        (&Method::GET, Some(name), None) => store
            .by_name
            .get(&collection)
            .and_then(|m| m.get(name))
            .map_or_else(not_found, |o| respond(200, o)),
        (&Method::PATCH, Some(name), None) => {
            let mut object: Value = serde_json::from_slice(&bytes).unwrap();
            let label = object["metadata"]["labels"]["ephemeral.io/environment"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let objects = store.by_name.entry(collection.clone()).or_default();
            let (rv, generation) = match objects.get(name) {
                Some(old) if old["spec"] == object["spec"] => (
                    old["metadata"]["resourceVersion"].clone(),
                    old["metadata"]["generation"].clone(),
                ),
                Some(old) => (
                    json!("2"),
                    json!(old["metadata"]["generation"].as_i64().unwrap_or(1) + 1),
                ),
                None => (json!("1"), json!(1)),
            };
            let managed = managed_fields(&object);
            object["metadata"]["uid"] = json!(format!("uid-{name}"));
            object["metadata"]["managedFields"] = managed;
            object["metadata"]["resourceVersion"] = rv;
            object["metadata"]["generation"] = generation;
            let response = respond(200, &object);
            if objects.insert(name.to_owned(), object).is_none() {
                store
                    .by_environment
                    .entry((collection, label))
                    .or_default()
                    .push(name.to_owned());
            }
            response
        }
        (&Method::PATCH, Some(name), Some("status")) => {
            let mut object: Value = serde_json::from_slice(&bytes).unwrap();
            store
                .statuses
                .insert(name.to_owned(), object["status"].clone());
            object["metadata"] = json!({"name": name, "namespace": NS});
            object["spec"] = json!({});
            respond(200, &object)
        }
        (&Method::POST, None, _) => {
            let event: Value = serde_json::from_slice(&bytes).unwrap();
            respond(201, &event)
        }
        (&Method::DELETE, Some(name), None) => {
            store
                .by_name
                .get_mut(&collection)
                .and_then(|m| m.remove(name));
            for names in store.by_environment.values_mut() {
                names.retain(|n| n != name);
            }
            respond(
                200,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            )
        }
        _ => not_found(),
    };
    Ok(response)
}

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    add_documents(&mut c, std::path::Path::new("catalog.yaml"), CATALOG).unwrap();
    c
}

fn environments(catalog: &Catalog) -> Vec<Arc<Environment>> {
    let created: Timestamp = "2026-11-21T09:00:00Z".parse().unwrap();
    (0..*ENVIRONMENTS)
        .map(|i| {
            let light: Environment = serde_json::from_value(json!({
                "apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
                "metadata": {"name": format!("env-{i:04}"), "namespace": NS, "uid": format!("uid-env-{i}"), "generation": 1},
                "spec": {"apps": [
                    {"name": "checkout", "branch": format!("feature/{i}")},
                    {"name": "payments"}, {"name": "search"}, {"name": "basket"}, {"name": "web"}
                ], "lease": {"until": "2026-11-21T19:00:00Z", "expireAfter": "168h"}}
            }))
            .unwrap();
            let mut env = expand(&light, catalog, &Config::default(), created, "alice")
                .unwrap()
                .environment;
            env.metadata.uid = light.metadata.uid.clone();
            Arc::new(env)
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Run {
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn print(&self, what: &str) {
        let mut l = self.latencies.clone();
        l.sort();
        println!(
            "{what:<34} wall {:>9.1} ms  {:>9.0}/s  p50 {:>8.1} µs  p90 {:>8.1} µs  p99 {:>8.1} µs  max {:>8.1} µs",
            self.wall.as_secs_f64() * 1e3,
            l.len() as f64 / self.wall.as_secs_f64(),
            percentile(&l, 0.50).as_secs_f64() * 1e6,
            percentile(&l, 0.90).as_secs_f64() * 1e6,
            percentile(&l, 0.99).as_secs_f64() * 1e6,
            l.last().unwrap().as_secs_f64() * 1e6,
        );
    }

    fn mean(&self) -> f64 {
        self.latencies
            .iter()
            .map(Duration::as_secs_f64)
            .sum::<f64>()
            / self.latencies.len() as f64
    }
}

async fn reconcile_all(envs: &[Arc<Environment>], ctx: &Arc<Context>) -> Run {
    let started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(envs.iter().cloned())
        .map(|env| {
            let ctx = ctx.clone();
            async move {
                let t = Instant::now();
                reconcile::reconcile(env, ctx)
                    .await
                    .expect("reconcile succeeds");
                t.elapsed()
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    Run {
        wall: started.elapsed(),
        latencies,
    }
}

fn expand_all(envs: &[Arc<Environment>], catalog: &Catalog) -> Run {
    let now: Timestamp = NOW.parse().unwrap();
    let config = Config::default();
    let started = Instant::now();
    let latencies = envs
        .iter()
        .map(|env| {
            let t = Instant::now();
            let x = expand(env, catalog, &config, now, "alice").unwrap();
            let bodies: Vec<Value> = x.objects.iter().map(|o| o.to_value()).collect();
            std::hint::black_box(bodies);
            t.elapsed()
        })
        .collect();
    Run {
        wall: started.elapsed(),
        latencies,
    }
}

/// Prints the requests served since the last call, per reconcile and by
/// verb, resets the counters and returns them.
fn print_requests(store: &Store) -> BTreeMap<&'static str, usize> {
    let requests = std::mem::take(&mut store.lock().unwrap().requests);
    let total: usize = requests.values().sum();
    let by_verb: Vec<String> = requests
        .iter()
        .map(|(verb, n)| format!("{verb} {:.2}", *n as f64 / *ENVIRONMENTS as f64))
        .collect();
    println!(
        "{:<34} requests per reconcile {:.2}: {}",
        "",
        total as f64 / *ENVIRONMENTS as f64,
        if by_verb.is_empty() {
            "none".to_owned()
        } else {
            by_verb.join(", ")
        }
    );
    requests
}

/// The Environments with the status the controller last wrote for each.
fn with_statuses(envs: &[Arc<Environment>], store: &Store) -> Vec<Arc<Environment>> {
    let statuses = store.lock().unwrap().statuses.clone();
    envs.iter()
        .map(|env| {
            let mut env = (**env).clone();
            let status = &statuses[env.metadata.name.as_deref().unwrap()];
            env.status = Some(serde_json::from_value(status.clone()).expect("a status"));
            Arc::new(env)
        })
        .collect()
}

/// The child index, filled with what the mock holds through the watcher
/// events the controller's watches deliver.
fn fill_watch_caches(ctx: &Context, store: &Store) {
    let objects = store.lock().unwrap();
    for kind in ChildKind::ALL {
        let ar = kind.api_resource();
        let collection = format!("/apis/{}/namespaces/{NS}/{}", ar.api_version, ar.plural);
        ctx.children.apply(kind, &watcher::Event::Init);
        for object in objects
            .by_name
            .get(&collection)
            .into_iter()
            .flat_map(BTreeMap::values)
        {
            let object: DynamicObject = serde_json::from_value(object.clone()).unwrap();
            ctx.children.apply(kind, &watcher::Event::InitApply(object));
        }
        ctx.children.apply(kind, &watcher::Event::InitDone);
    }
}

/// A `/proc/self/status` figure in KiB (0 when unreadable).
fn kib(field: &str) -> i64 {
    memory(field)
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap_or_default()
}

fn memory(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l[field.len() + 1..].trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let catalog = catalog();
        let envs = environments(&catalog);
        println!(
            "{} Environments x 5 apps (9 Flux children each), {CONCURRENCY} reconciles in flight, in-process mock API",
            *ENVIRONMENTS
        );
        println!("memory before: VmRSS {}", memory("VmRSS:"));

        // Baseline first (warm), then the controller.
        let _ = expand_all(&envs, &catalog);
        let baseline = expand_all(&envs, &catalog);
        baseline.print("baseline: expand() + to_value()");

        let store: Store = Arc::default();
        let service = tower::service_fn({
            let store = store.clone();
            move |r| serve(store.clone(), r)
        });
        let client = kube::Client::new(service, "default");
        let shared = SharedCatalog::new();
        shared.replace(catalog.clone());
        shared.mark_synced();
        let ctx = Arc::new(Context::new(
            client.clone(),
            shared,
            Arc::new(Config::default()),
            Clock::Fixed(NOW.parse().unwrap()),
            Recorder::new(
                client,
                Reporter {
                    controller: "ephemeral-controller".into(),
                    instance: Some("bench".into()),
                },
            ),
            Arc::new(Metrics::new()),
            Settings::default(),
        ));

        let first = reconcile_all(&envs, &ctx).await;
        first.print("reconcile: first (creates all)");
        print_requests(&store);
        let children: usize = store
            .lock()
            .unwrap()
            .by_name
            .values()
            .map(BTreeMap::len)
            .sum();
        assert_eq!(children, *ENVIRONMENTS * 9, "every child was applied");

        // The Environments as the watch now delivers them: with their status.
        let heap_before = ALLOCATOR.allocated();
        let envs = with_statuses(&envs, &store);
        let heap = ALLOCATOR.allocated().saturating_sub(heap_before) as f64 / 1024.0;
        println!(
            "{:<34} the Environments with their status (the Controller's own store holds these): live heap +{:.1} MiB ({:.1} KiB each)",
            "",
            heap / 1024.0,
            heap / *ENVIRONMENTS as f64,
        );
        let listing = reconcile_all(&envs, &ctx).await;
        listing.print("reconcile: steady, LIST per reconcile");
        print_requests(&store);

        let (rss_before, heap_before) = (kib("VmRSS:"), ALLOCATOR.allocated());
        fill_watch_caches(&ctx, &store);
        let rss = kib("VmRSS:") - rss_before;
        let heap = ALLOCATOR.allocated().saturating_sub(heap_before) as f64 / 1024.0;
        let children = (*ENVIRONMENTS * 9) as f64;
        println!(
            "{:<34} child index of {children} children: live heap +{:.1} MiB ({:.1} KiB per child), RSS +{:.1} MiB",
            "",
            heap / 1024.0,
            heap / children,
            rss as f64 / 1024.0,
        );
        let cached = reconcile_all(&envs, &ctx).await;
        cached.print("reconcile: steady, child index");
        let requests = print_requests(&store);
        assert_eq!(
            requests.get("APPLY").copied().unwrap_or_default()
                + requests.get("LIST").copied().unwrap_or_default(),
            0,
            "a steady state with the child index lists and applies nothing"
        );

        println!(
            "ratio (mean latency / baseline mean): first {:.1}x, steady+LIST {:.1}x, steady+caches {:.1}x",
            first.mean() / baseline.mean(),
            listing.mean() / baseline.mean(),
            cached.mean() / baseline.mean()
        );
        println!(
            "live heap at the end: {:.1} MiB (the mock API's copy of every object included)",
            ALLOCATOR.allocated() as f64 / 1024.0 / 1024.0
        );
        println!(
            "peak memory: VmHWM {} (VmRSS now {})",
            memory("VmHWM:"),
            memory("VmRSS:")
        );
    });
}
