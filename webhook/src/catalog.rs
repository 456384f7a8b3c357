//! The catalog expansion reads (AppTemplates, AppBundles, Flux
//! GitRepositories): either loaded once from YAML files, or kept in memory by
//! kube watchers (files are read by the core's one loader,
//! [`ephemeral_core::files`], the one `render` uses). Requests read an immutable [`Catalog`] snapshot; a change
//! builds a new snapshot and swaps it in, so no request waits on the cluster.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use ephemeral_core::Catalog;
use ephemeral_core::api::{AppBundle, AppTemplate};
use ephemeral_core::files::{self, LoadError, Loaded};
use ephemeral_core::flux::GitRepository;

/// The current catalog snapshot and whether it is complete.
#[derive(Clone, Debug, Default)]
pub struct SharedCatalog {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Read by every admission request: loads touch no shared cache line.
    snapshot: ArcSwap<Catalog>,
    synced: AtomicBool,
}

impl SharedCatalog {
    /// An empty, not yet synced catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current snapshot, to keep.
    pub fn snapshot(&self) -> Arc<Catalog> {
        self.inner.snapshot.load_full()
    }

    /// The current snapshot, for the moment of a request: cheaper than
    /// [`SharedCatalog::snapshot`] (no reference count shared between
    /// threads is touched); drop it soon, it holds the snapshot alive.
    pub fn current(&self) -> arc_swap::Guard<Arc<Catalog>> {
        self.inner.snapshot.load()
    }

    /// Swaps in a new snapshot.
    pub fn replace(&self, catalog: Catalog) {
        self.inner.snapshot.store(Arc::new(catalog));
    }

    /// Whether the snapshot reflects a complete listing (the server is ready).
    pub fn is_synced(&self) -> bool {
        self.inner.synced.load(Ordering::Acquire)
    }

    /// Marks the snapshot complete.
    pub fn mark_synced(&self) {
        self.inner.synced.store(true, Ordering::Release);
    }
}

/// Why the catalog directory cannot be loaded: the core loader's error, which
/// names the file, document, field and fix.
pub type CatalogError = LoadError;

/// Namespace of catalog objects in files that name none, as with `kubectl apply`
/// in a context without a namespace.
pub const DEFAULT_NAMESPACE: &str = files::DEFAULT_NAMESPACE;

/// Loads the AppTemplates, AppBundles and Flux GitRepositories under `dir`
/// with the core's one loader, by the rule [`ephemeral_core::files`] documents
/// (the one `render` follows), walking subdirectories. Objects without a
/// namespace go to [`DEFAULT_NAMESPACE`]. Environments, ImagePolicies and
/// other kinds are not part of the catalog: they are logged and ignored.
pub fn load_dir(dir: &Path) -> Result<Catalog, CatalogError> {
    let mut loaded = Loaded::default();
    loaded.add_path(dir, true, DEFAULT_NAMESPACE)?;
    Ok(catalog_of(loaded))
}

/// Adds the catalog objects of one multi-document YAML text (`path` names it
/// in errors), as [`load_dir`] does for each file.
pub fn add_documents(catalog: &mut Catalog, path: &Path, text: &str) -> Result<(), CatalogError> {
    let mut loaded = Loaded {
        catalog: std::mem::take(catalog),
        ..Loaded::default()
    };
    let result = loaded.add_text(path, text, DEFAULT_NAMESPACE);
    *catalog = catalog_of(loaded);
    result
}

/// The catalog of what was loaded; what is not part of it is logged.
fn catalog_of(loaded: Loaded) -> Catalog {
    for skipped in &loaded.skipped {
        tracing::warn!("catalog files: {skipped}");
    }
    for (origin, _) in &loaded.environments {
        tracing::warn!("catalog files: {origin}: ignored an Environment (not part of the catalog)");
    }
    for tag in &loaded.image_tags {
        tracing::warn!(
            "catalog files: {}: ignored ImagePolicy {}/{} (the controller reads tags from the cluster)",
            tag.origin,
            tag.namespace,
            tag.name
        );
    }
    loaded.catalog
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Template,
    Bundle,
    GitRepository,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Template => "AppTemplate",
            Kind::Bundle => "AppBundle",
            Kind::GitRepository => "GitRepository",
        }
    }
}

enum Signal {
    Listed,
    Changed,
    /// The API server does not serve the kind (its CRD is not installed).
    NotServed,
    Other,
}

/// How long a watch of a kind the API server does not serve waits before it
/// asks again (the watcher's own backoff restarts with every relist).
const NOT_SERVED_RETRY: Duration = Duration::from_secs(30);

/// Whether a watch failed because the API server does not serve the kind
/// (its CRD is not installed): the LIST or WATCH answered 404.
/// A running watch whose CRD is deleted fails on its next (re)start the same
/// way, so every form of the error counts.
pub(crate) fn is_not_served(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 404,
        watcher::Error::WatchError(status) => status.code == 404,
        _ => false,
    }
}

fn signal<K>(kind: Kind, event: Result<watcher::Event<K>, watcher::Error>) -> (Kind, Signal) {
    match event {
        Ok(watcher::Event::InitDone) => (kind, Signal::Listed),
        Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => (kind, Signal::Changed),
        Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => (kind, Signal::Other),
        Err(error) if is_not_served(&error) => (kind, Signal::NotServed),
        Err(error) => {
            tracing::warn!(kind = kind.as_str(), %error, "catalog watch failed; retrying with backoff");
            (kind, Signal::Other)
        }
    }
}

/// Slows a watch down while its kind is not served: after a "not served"
/// answer has been passed on, the next request waits [`NOT_SERVED_RETRY`].
/// Without this the watcher retries about every second for as long as the
/// CRD is missing (its backoff restarts with every relist).
pub(crate) fn pace_not_served<K: Send + 'static>(
    inner: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send {
    futures::stream::unfold((inner.boxed(), false), |(mut inner, wait)| async move {
        if wait {
            tokio::time::sleep(NOT_SERVED_RETRY).await;
        }
        let event = inner.next().await?;
        let wait = matches!(&event, Err(error) if is_not_served(error));
        Some((event, (inner, wait)))
    })
}

fn build(
    templates: &Store<AppTemplate>,
    bundles: &Store<AppBundle>,
    repos: &Store<GitRepository>,
) -> Catalog {
    let mut catalog = Catalog::default();
    for t in templates.state() {
        catalog.insert_template(t.as_ref().clone());
    }
    for b in bundles.state() {
        catalog.insert_bundle(b.as_ref().clone());
    }
    for g in repos.state() {
        catalog.insert_git_repository(g.as_ref().clone());
    }
    catalog
}

/// Keeps `shared` in step with the cluster's AppTemplates, AppBundles and
/// GitRepositories (all namespaces) until the process ends. `shared` is marked
/// synced once all three have been listed. Needs `list` and `watch` on those
/// resources cluster-wide.
pub async fn watch(client: Client, shared: SharedCatalog) {
    let config = watcher::Config::default();
    let (templates, templates_writer) = reflector::store::<AppTemplate>();
    let (bundles, bundles_writer) = reflector::store::<AppBundle>();
    let (repos, repos_writer) = reflector::store::<GitRepository>();
    let template_events = reflector::reflector(
        templates_writer,
        watcher(Api::<AppTemplate>::all(client.clone()), config.clone()).default_backoff(),
    )
    .map(|e| signal(Kind::Template, e));
    let bundle_events = reflector::reflector(
        bundles_writer,
        watcher(Api::<AppBundle>::all(client.clone()), config.clone()).default_backoff(),
    )
    .map(|e| signal(Kind::Bundle, e));
    let repo_events = pace_not_served(reflector::reflector(
        repos_writer,
        watcher(Api::<GitRepository>::all(client), config).default_backoff(),
    ))
    .map(|e| signal(Kind::GitRepository, e));
    let mut events = futures::stream::select_all([
        template_events.boxed(),
        bundle_events.boxed(),
        repo_events.boxed(),
    ])
    .ready_chunks(256);

    let mut listed = [false; 3];
    let mut not_served = [false; 3];
    while let Some(batch) = events.next().await {
        let mut changed = false;
        for (kind, signal) in batch {
            match signal {
                Signal::Listed => {
                    tracing::debug!(kind = kind.as_str(), "catalog listed");
                    not_served[kind as usize] = false;
                    listed[kind as usize] = true;
                    changed = true;
                }
                Signal::Changed => changed = true,
                // Without Flux's source CRDs there are no GitRepositories to
                // copy for sourceBranch: admission works without them (such
                // Environments are refused by name), so readiness does not
                // wait for a kind that may never come.
                Signal::NotServed => {
                    if !not_served[kind as usize] {
                        tracing::warn!(
                            kind = kind.as_str(),
                            "the API server does not serve this kind (is its CRD installed?); \
                             the catalog goes on without it and asks again every 30s"
                        );
                        not_served[kind as usize] = true;
                    }
                    if !listed[kind as usize] {
                        listed[kind as usize] = true;
                        changed = true;
                    }
                }
                Signal::Other => {}
            }
        }
        if changed && listed.iter().all(|l| *l) {
            let catalog = build(&templates, &bundles, &repos);
            let size = catalog.len();
            shared.replace(catalog);
            if !shared.is_synced() {
                shared.mark_synced();
                tracing::info!(templates_and_bundles = size, "catalog synced");
            } else {
                tracing::debug!(templates_and_bundles = size, "catalog updated");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn loads_nested_multi_document_files_and_ignores_other_kinds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("nested")).unwrap();
        std::fs::write(
            dir.path().join("templates.yaml"),
            "apiVersion: ephemeral.io/v1alpha1\nkind: AppTemplate\nmetadata: {name: checkout, namespace: ephemeral}\nspec:\n  kustomization:\n    path: ./apps/checkout\n    sourceRef: {kind: GitRepository, name: platform, namespace: flux-system}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ignored}\ndata: {a: b}\n---\napiVersion: ephemeral.io/v1alpha1\nkind: AppTemplate\nmetadata: {name: web}\nspec:\n  helm: {chart: web, sourceRef: {kind: HelmRepository, name: charts}}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("nested/bundle.yml"),
            "apiVersion: ephemeral.io/v1alpha1\nkind: AppBundle\nmetadata: {name: shop, namespace: ephemeral}\nspec: {apps: [checkout]}\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata: {name: platform, namespace: flux-system}\nspec: {url: 'https://example.com/platform.git', interval: 5m}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not: [yaml").unwrap();
        let catalog = load_dir(dir.path()).unwrap();
        assert_eq!(catalog.template_names("ephemeral"), vec!["checkout"]);
        assert_eq!(catalog.template_names("default"), vec!["web"]);
        assert_eq!(catalog.bundle_names("ephemeral"), vec!["shop"]);
        assert!(catalog.git_repository("flux-system", "platform").is_some());
    }

    #[test]
    fn errors_name_the_file_and_document() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n---\napiVersion: ephemeral.io/v1alpha1\nkind: AppBundle\nmetadata: {name: shop}\nspec: {apps: checkout}\n",
        )
        .unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}, document 2: AppBundle 'shop': field spec.apps: invalid type",
                file.display()
            )),
            "{err}"
        );

        std::fs::write(&file, "kind: [unclosed\n").unwrap();
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: not valid YAML; ", file.display())),
            "{err}"
        );
    }

    #[test]
    fn a_missing_directory_is_named() {
        let err = load_dir(Path::new("/nonexistent/catalog"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/nonexistent/catalog: "), "{err}");
        assert!(err.contains("Fix: "), "{err}");
    }

    /// A fake API server for the three catalog kinds: lists are served from
    /// fixed items (GitRepositories only once `open` is set), watches stream
    /// whatever is sent on the kind's channel.
    mod fake_api {
        use std::sync::Arc;

        use axum::body::Body;
        use axum::extract::{Request, State};
        use axum::http::StatusCode;
        use axum::response::{IntoResponse, Response};
        use serde_json::{Value, json};
        use tokio::sync::{broadcast, watch};

        pub const PATHS: [(&str, &str, &str); 3] = [
            (
                "/apis/ephemeral.io/v1alpha1/apptemplates",
                "ephemeral.io/v1alpha1",
                "AppTemplateList",
            ),
            (
                "/apis/ephemeral.io/v1alpha1/appbundles",
                "ephemeral.io/v1alpha1",
                "AppBundleList",
            ),
            (
                "/apis/source.toolkit.fluxcd.io/v1/gitrepositories",
                "source.toolkit.fluxcd.io/v1",
                "GitRepositoryList",
            ),
        ];

        #[derive(Clone)]
        pub struct Fake {
            pub items: Arc<[Vec<Value>; 3]>,
            pub events: Arc<[broadcast::Sender<Value>; 3]>,
            pub open: watch::Receiver<bool>,
            /// Whether GitRepositories are served (Flux's source CRDs installed).
            pub git_served: bool,
            /// GitRepository list requests answered.
            pub git_lists: Arc<std::sync::atomic::AtomicUsize>,
        }

        pub async fn handle(State(fake): State<Fake>, request: Request) -> Response {
            let Some(kind) = PATHS
                .iter()
                .position(|(p, _, _)| *p == request.uri().path())
            else {
                return (StatusCode::NOT_FOUND, "no such path").into_response();
            };
            let query = request.uri().query().unwrap_or_default();
            if query
                .split('&')
                .any(|kv| kv == "watch=true" || kv == "watch=1")
            {
                let rx = fake.events[kind].subscribe();
                let stream = futures::stream::unfold(rx, |mut rx| async move {
                    let event = rx.recv().await.ok()?;
                    Some((Ok::<_, std::convert::Infallible>(format!("{event}\n")), rx))
                });
                return Body::from_stream(stream).into_response();
            }
            if kind == 2 {
                fake.git_lists
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if !fake.git_served {
                    // What kube-apiserver answers for a resource it does not serve.
                    return (StatusCode::NOT_FOUND, "404 page not found").into_response();
                }
                let mut open = fake.open.clone();
                let _ = open.wait_for(|o| *o).await;
            }
            let (_, api_version, list_kind) = PATHS[kind];
            axum::Json(json!({
                "apiVersion": api_version,
                "kind": list_kind,
                "metadata": {"resourceVersion": "1"},
                "items": fake.items[kind],
            }))
            .into_response()
        }
    }

    fn template(name: &str, rv: &str) -> Value {
        serde_json::json!({
            "apiVersion": "ephemeral.io/v1alpha1",
            "kind": "AppTemplate",
            "metadata": {"name": name, "namespace": "shop", "resourceVersion": rv},
            "spec": {"kustomization": {"path": "./x", "sourceRef": {"kind": "GitRepository", "name": "platform"}}}
        })
    }

    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !check() {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn watchers_sync_after_every_kind_is_listed_then_follow_changes() {
        let (open_tx, open) = tokio::sync::watch::channel(false);
        let fake = fake_api::Fake {
            items: Arc::new([
                vec![template("checkout", "1")],
                vec![serde_json::json!({
                    "apiVersion": "ephemeral.io/v1alpha1", "kind": "AppBundle",
                    "metadata": {"name": "shop", "namespace": "shop", "resourceVersion": "1"},
                    "spec": {"apps": ["checkout"]}
                })],
                vec![serde_json::json!({
                    "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                    "metadata": {"name": "platform", "namespace": "flux-system", "resourceVersion": "1"},
                    "spec": {"url": "https://example.com/platform.git", "interval": "5m"}
                })],
            ]),
            events: Arc::new(std::array::from_fn(|_| {
                tokio::sync::broadcast::channel(16).0
            })),
            open,
            git_served: true,
            git_lists: Arc::default(),
        };
        let events = fake.events.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(fake_api::handle)
            .with_state(fake);
        tokio::spawn(async move { axum::serve(listener, app).await });

        let client = Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
        let shared = SharedCatalog::new();
        let task = tokio::spawn(watch(client, shared.clone()));

        // Templates and bundles are listed, GitRepositories are not: not synced.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!shared.is_synced());
        assert!(shared.snapshot().is_empty());

        open_tx.send(true).unwrap();
        eventually("the catalog to sync", || shared.is_synced()).await;
        let snapshot = shared.snapshot();
        assert_eq!(snapshot.template_names("shop"), vec!["checkout"]);
        assert_eq!(snapshot.bundle_names("shop"), vec!["shop"]);
        assert!(snapshot.git_repository("flux-system", "platform").is_some());

        // A template added later shows up in a new snapshot; the old one is untouched.
        eventually("the template watch", || events[0].receiver_count() > 0).await;
        events[0]
            .send(serde_json::json!({"type": "ADDED", "object": template("payments", "2")}))
            .unwrap();
        eventually("the new template", || {
            shared.snapshot().template_names("shop").len() == 2
        })
        .await;
        assert_eq!(snapshot.template_names("shop"), vec!["checkout"]);
        events[0]
            .send(serde_json::json!({"type": "DELETED", "object": template("checkout", "3")}))
            .unwrap();
        eventually("the deletion", || {
            shared.snapshot().template_names("shop") == vec!["payments"]
        })
        .await;
        task.abort();
    }

    #[tokio::test]
    async fn without_flux_crds_the_catalog_syncs_and_asks_for_git_repositories_slowly() {
        let (_open_tx, open) = tokio::sync::watch::channel(true);
        let fake = fake_api::Fake {
            items: Arc::new([vec![template("checkout", "1")], vec![], vec![]]),
            events: Arc::new(std::array::from_fn(|_| {
                tokio::sync::broadcast::channel(16).0
            })),
            open,
            git_served: false,
            git_lists: Arc::default(),
        };
        let git_lists = fake.git_lists.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(fake_api::handle)
            .with_state(fake);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
        let shared = SharedCatalog::new();
        let task = tokio::spawn(watch(client, shared.clone()));

        eventually("the catalog to sync without GitRepositories", || {
            shared.is_synced()
        })
        .await;
        assert_eq!(shared.snapshot().template_names("shop"), vec!["checkout"]);
        // The watcher's own backoff restarts on every relist (about 1 s);
        // a kind that is not served is asked for again only after 30 s.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let lists = git_lists.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(lists, 1, "GitRepositories were listed {lists} times in 3 s");
        task.abort();
    }

    #[test]
    fn snapshots_are_swapped_not_mutated() {
        let shared = SharedCatalog::new();
        let before = shared.snapshot();
        assert!(!shared.is_synced());
        let mut c = Catalog::default();
        add_documents(
            &mut c,
            Path::new("inline.yaml"),
            "apiVersion: ephemeral.io/v1alpha1\nkind: AppBundle\nmetadata: {name: shop}\nspec: {apps: [a]}\n",
        )
        .unwrap();
        shared.replace(c);
        shared.mark_synced();
        assert!(before.is_empty());
        assert_eq!(shared.snapshot().bundle_names("default"), vec!["shop"]);
        assert!(shared.is_synced());
    }
}
