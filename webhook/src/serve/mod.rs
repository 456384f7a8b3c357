//! `ephemeral-webhook serve`: the wiring. Builds each subsystem from its own
//! settings (the catalog, the certificates, the admission and admin servers,
//! the controller) and runs them as the tasks of one [`Tasks`] lifecycle.
//! The choice between certificate files ([`crate::tls`]) and self-managed
//! certificates ([`crate::certs`]) is made here, so neither module knows the
//! other's settings.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use futures::FutureExt;
use tokio::sync::oneshot;

use crate::admin::{self, AdminState, Readiness};
use crate::catalog::{self, SharedCatalog};
use crate::certs::manager::CertManager;
use crate::clock::Clock;
use crate::controller;
use crate::github::receiver;
use crate::lifecycle::{Shutdown, ShutdownSettings, Signals, Tasks};
use crate::metrics::Metrics;
use crate::server::{self, AdmissionState};
use crate::sets;
use crate::tls::{self, Reloader};

mod settings;

pub use settings::{
    CertificateSource, ControllerSettings, ServeError, ServeSettings, WebhookSettings,
};

async fn bind(addr: SocketAddr, what: &'static str) -> Result<std::net::TcpListener, ServeError> {
    let err = |source| ServeError::Listen { addr, what, source };
    tokio::net::TcpListener::bind(addr)
        .await
        .and_then(|l| l.into_std())
        .map_err(err)
}

/// Runs an axum-server until it fails or `stop` resolves, then lets its
/// connections finish for at most `grace`.
async fn serve_until(
    server: impl Future<Output = std::io::Result<()>>,
    handle: Handle<SocketAddr>,
    stop: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let mut server = pin!(server);
    tokio::select! {
        r = &mut server => return r,
        () = stop => {}
    }
    handle.graceful_shutdown(Some(grace));
    server.await
}

/// Runs the webhook until SIGTERM or SIGINT (see [`run_until`]).
pub async fn run(settings: ServeSettings) -> Result<(), ServeError> {
    let signals = Signals::new().map_err(ServeError::Signal)?;
    run_until(settings, signals.recv()).await
}

/// Runs the webhook until `stop` resolves (with its reason) or a task stops,
/// then shuts down gracefully: readiness turns 503, admission keeps being
/// served for the shutdown delay, then no new connections are accepted and
/// in-flight requests get the grace period to finish, while the controller
/// stops; the admin server stops last.
pub async fn run_until(
    settings: ServeSettings,
    stop: impl Future<Output = &'static str>,
) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::default());
    let catalog = SharedCatalog::new();
    if let Clock::Fixed(now) = settings.clock {
        tracing::warn!(%now, "--fixed-now is set: the clock is frozen (for tests and demos only)");
    }

    let admin_listener = bind(settings.admin.listen, "admin").await?;
    let receiver_listener = match settings.controller.as_ref().and_then(|c| c.receiver) {
        Some(addr) => Some((addr, bind(addr, "receiver").await?)),
        None => None,
    };
    let admission_listener = match &settings.webhook {
        Some(webhook) => Some(bind(webhook.admission.listen, "admission").await?),
        None => None,
    };
    if let Some(dir) = &settings.catalog_dir {
        let loaded = catalog::load_dir(dir)?;
        tracing::info!(dir = %dir.display(), templates_and_bundles = loaded.len(), "catalog loaded from files");
        catalog.replace(loaded);
        catalog.mark_synced();
    }
    // The controller always needs the cluster; the webhook only without --catalog-dir.
    let client = match (&settings.catalog_dir, &settings.controller) {
        (Some(_), None) => None,
        _ => Some(kube::Client::try_default().await?),
    };

    // Self-managed certificates need a client even when nothing else does.
    let certificates = match settings.webhook.as_ref().map(|w| &w.certificates) {
        Some(CertificateSource::Files(files)) => Some(Certificates::Files(files.clone())),
        Some(CertificateSource::SelfManaged(certs)) => {
            let client = match &client {
                Some(client) => client.clone(),
                None => kube::Client::try_default()
                    .await
                    .map_err(ServeError::CertClient)?,
            };
            Some(Certificates::SelfManaged(Box::new(CertManager::new(
                client,
                certs.clone(),
            ))))
        }
        None => None,
    };
    let admin_server =
        axum_server::from_tcp(admin_listener).map_err(|source| ServeError::Listen {
            addr: settings.admin.listen,
            what: "admin",
            source,
        })?;

    // Nothing fallible after this point: every exit goes through the tasks.
    let mut tasks = Tasks::new();
    if let (None, Some(client)) = (&settings.catalog_dir, &client) {
        tracing::info!("watching AppTemplates, AppBundles and GitRepositories");
        tasks.spawn_until_shutdown(
            "catalog watch",
            catalog::watch(client.clone(), catalog.clone()),
        );
    }

    let admin_state = AdminState {
        readiness: readiness.clone(),
        catalog: catalog.clone(),
        metrics: metrics.clone(),
    };
    tasks.spawn_final("admin server", move |others_stopped| {
        let handle = Handle::new();
        let server = admin_server
            .handle(handle.clone())
            .serve(admin::router(admin_state).into_make_service());
        serve_until(
            server,
            handle,
            others_stopped.cancelled_owned(),
            Duration::from_secs(1),
        )
    });
    tracing::info!(addr = %settings.admin.listen, "admin server listening");

    if let (Some(controller), Some(client)) = (&settings.controller, &client) {
        let directory = Arc::new(sets::directory::Directory::default());
        spawn_controller(
            &mut tasks,
            &settings,
            controller.clone(),
            client,
            &catalog,
            &metrics,
            directory.clone(),
        );
        if let Some((addr, listener)) = receiver_listener {
            // Every replica knows the sets, so the standby verifies deliveries too.
            tasks.spawn_until_shutdown(
                "EnvironmentSet directory",
                sets::directory::watch(client.clone(), directory.clone()),
            );
            spawn_receiver(
                &mut tasks,
                addr,
                listener,
                directory,
                settings.shutdown.grace,
            );
        }
    }

    match (settings.webhook.clone(), admission_listener, certificates) {
        (Some(webhook), Some(listener), Some(certificates)) => {
            let (tx, certificate) = oneshot::channel();
            match certificates {
                Certificates::Files(files) => {
                    spawn_file_certificates(&mut tasks, files, tx, metrics.clone());
                }
                Certificates::SelfManaged(manager) => {
                    spawn_self_managed(&mut tasks, *manager, tx, metrics.clone());
                }
            }
            let state = AdmissionState {
                catalog,
                config: Arc::new(settings.policy.clone()),
                access: Arc::new(webhook.admission.access.clone()),
                clock: settings.clock,
                metrics,
                max_body_bytes: webhook.admission.max_body_bytes,
            };
            let admission = Admission {
                listener,
                addr: webhook.admission.listen,
                state,
                certificate,
                readiness: readiness.clone(),
                shutdown: settings.shutdown,
                token: tasks.shutdown(),
            };
            tasks.spawn("admission server", admission.run());
        }
        // The controller alone (--webhook=false): ready once the catalog synced.
        _ => readiness.set_tls_not_needed(),
    }

    tasks
        .run(stop, || readiness.set_shutting_down())
        .await
        .map_err(ServeError::from)
}

/// The certificate source, ready to run.
enum Certificates {
    Files(tls::FileSettings),
    SelfManaged(Box<CertManager>),
}

fn spawn_controller(
    tasks: &mut Tasks,
    settings: &ServeSettings,
    controller: ControllerSettings,
    client: &kube::Client,
    catalog: &SharedCatalog,
    metrics: &Arc<Metrics>,
    directory: Arc<sets::directory::Directory>,
) {
    let recorder = recorder_for(client, &controller.election.identity);
    let ctx = controller::Context::new(
        client.clone(),
        catalog.clone(),
        Arc::new(settings.policy.clone()),
        settings.clock,
        recorder,
        metrics.clone(),
        controller.tuning,
    );
    let companions = match sets::Context::new(
        client.clone(),
        settings.clock,
        recorder_for(client, &controller.election.identity),
        controller.sets.clone(),
        directory,
        metrics.clone(),
    ) {
        Ok(sets_ctx) => {
            let (client, sets_ctx) = (client.clone(), Arc::new(sets_ctx));
            let companion: controller::Companion = Arc::new(move |stop| {
                Box::pin(sets::run(
                    client.clone(),
                    sets_ctx.clone(),
                    stop.map(|_| ()),
                ))
            });
            vec![companion]
        }
        Err(error) => {
            tracing::error!(%error, "the EnvironmentSet controller cannot run: no HTTP client");
            Vec::new()
        }
    };
    let election = controller.election;
    tracing::info!(lease = %election.name, namespace = %election.namespace, identity = %election.identity, "controller enabled: campaigning for the leader Lease");
    let (client, shutdown, grace) = (client.clone(), tasks.shutdown(), settings.shutdown.grace);
    tasks.spawn("controller", async move {
        let running = controller::start_with(client, Arc::new(ctx), election, companions);
        shutdown.cancelled().await;
        // Concurrently with the admission server's delay and drain.
        running.stop(grace).await;
        tracing::info!("controller stopped and Lease released");
        Ok::<_, std::convert::Infallible>(())
    });
}

/// The Events' recorder of the controllers.
fn recorder_for(client: &kube::Client, identity: &str) -> kube::runtime::events::Recorder {
    kube::runtime::events::Recorder::new(
        client.clone(),
        kube::runtime::events::Reporter {
            controller: "ephemeral-controller".into(),
            instance: Some(identity.to_owned()),
        },
    )
}

/// The receiver of GitHub's deliveries (plain HTTP), answering from the
/// set controller's directory, until shutdown.
fn spawn_receiver(
    tasks: &mut Tasks,
    addr: SocketAddr,
    listener: std::net::TcpListener,
    directory: Arc<sets::directory::Directory>,
    grace: Duration,
) {
    let token = tasks.shutdown();
    tasks.spawn("receiver", async move {
        let handle: Handle<SocketAddr> = Handle::new();
        let server = axum_server::from_tcp(listener)?
            .handle(handle.clone())
            .serve(receiver::router(directory).into_make_service());
        tracing::info!(%addr, "receiver of GitHub deliveries listening (HTTP, POST /github)");
        serve_until(server, handle, token.cancelled_owned(), grace).await
    });
}

/// Waits until the files make a valid pair, hands the configuration to the
/// admission server, then re-reads them until shutdown.
fn spawn_file_certificates(
    tasks: &mut Tasks,
    files: tls::FileSettings,
    ready: oneshot::Sender<RustlsConfig>,
    metrics: Arc<Metrics>,
) {
    tasks.spawn_until_shutdown("certificate file reloader", async move {
        let reloader = Reloader::wait(files.files, files.reload_interval).await;
        let _ = ready.send(reloader.live());
        reloader.run(files.reload_interval, metrics).await;
    });
}

/// Makes sure the Secret and the webhooks' caBundle are in place (retrying),
/// hands the configuration to the admission server, then renews until shutdown.
fn spawn_self_managed(
    tasks: &mut Tasks,
    manager: CertManager,
    ready: oneshot::Sender<RustlsConfig>,
    metrics: Arc<Metrics>,
) {
    tasks.spawn_until_shutdown("self-managed certificates", async move {
        let (tls, issued) = manager.ready().await;
        let _ = ready.send(tls.live());
        manager.run(tls, issued, metrics).await;
    });
}

/// The admission server task: waits for its certificate, serves, and on
/// shutdown keeps admitting (not ready) for the delay, then drains.
struct Admission {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    state: AdmissionState,
    certificate: oneshot::Receiver<RustlsConfig>,
    readiness: Arc<Readiness>,
    shutdown: ShutdownSettings,
    token: Shutdown,
}

impl Admission {
    async fn run(self) -> std::io::Result<()> {
        let Admission {
            listener,
            addr,
            state,
            certificate,
            readiness,
            shutdown,
            token,
        } = self;
        let config = tokio::select! {
            config = certificate => match config {
                Ok(config) => config,
                // The certificate task stopped; it reports why, and serve stops.
                Err(_) => {
                    token.cancelled().await;
                    return Ok(());
                }
            },
            () = token.cancelled() => {
                tracing::info!("stopping before the TLS certificate was loaded");
                return Ok(());
            }
        };
        let handle: Handle<SocketAddr> = Handle::new();
        let server = axum_server::from_tcp_rustls(listener, config)?
            .handle(handle.clone())
            .serve(server::router(state).into_make_service());
        readiness.set_tls_loaded();
        tracing::info!(%addr, "admission server listening (HTTPS)");
        let connections = handle.clone();
        let stop = async move {
            token.cancelled().await;
            tracing::info!(delay = ?shutdown.delay, grace = ?shutdown.grace, connections = connections.connection_count(), "admission server: shutting down after the delay");
            if !shutdown.delay.is_zero() {
                tracing::info!(delay = ?shutdown.delay, "not ready; still serving until endpoints are updated");
                tokio::time::sleep(shutdown.delay).await;
            }
        };
        let result = serve_until(server, handle, stop, shutdown.grace).await;
        tracing::info!("admission server stopped");
        result
    }
}
