//! `ephemeral-webhook serve`: wires the catalog, TLS, the admission and admin
//! servers and shutdown together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::admin::{self, AdminState, Readiness};
use crate::args::{Clock, Settings};
use crate::catalog::{self, CatalogError, SharedCatalog};
use crate::certs::manager::CertManager;
use crate::controller;
use crate::leader::ElectionConfig;
use crate::metrics::Metrics;
use crate::server::{self, AdmissionState};
use crate::tls::{Reloader, TlsSource};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An address cannot be listened on.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Which server.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// `--catalog-dir` cannot be loaded.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// No Kubernetes client could be made.
    #[error(
        "cannot create a Kubernetes client (the controller and the catalog watch need one; to run only the webhook without a cluster pass --controller=false --catalog-dir DIR): {0}"
    )]
    Client(#[from] kube::Error),
    /// Self-managed certificates need the API, and no client could be made.
    #[error(
        "self-managed certificates need the Kubernetes API (run in a pod or with a kubeconfig), or pass --tls-cert-file and --tls-key-file: {0}"
    )]
    CertClient(kube::Error),
    /// Signal handlers cannot be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
    /// A server stopped with an error.
    #[error("{what} server failed: {source}")]
    Server {
        /// Which server.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

async fn bind(addr: SocketAddr, what: &'static str) -> Result<std::net::TcpListener, ServeError> {
    let err = |source| ServeError::Listen { addr, what, source };
    tokio::net::TcpListener::bind(addr)
        .await
        .and_then(|l| l.into_std())
        .map_err(err)
}

/// SIGTERM and SIGINT.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> Result<Signals, ServeError> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(ServeError::Signal)?,
            int: signal(SignalKind::interrupt()).map_err(ServeError::Signal)?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

fn task_result(
    what: &'static str,
    r: Result<std::io::Result<()>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(ServeError::Server { what, source }),
        Err(join) => Err(ServeError::Server {
            what,
            source: std::io::Error::other(join.to_string()),
        }),
    }
}

/// Runs the webhook until SIGTERM or SIGINT, then shuts down gracefully:
/// readiness turns 503, admission keeps being served for `shutdown_delay`,
/// then no new connections are accepted and in-flight requests get
/// `shutdown_grace` to finish, while the controller stops.
pub async fn run(settings: Settings) -> Result<(), ServeError> {
    let mut signals = Signals::new()?;
    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::default());
    let catalog = SharedCatalog::new();
    if let Clock::Fixed(now) = settings.clock {
        tracing::warn!(%now, "--fixed-now is set: the clock is frozen (for tests and demos only)");
    }

    let admin_listener = bind(settings.admin_listen, "admin").await?;
    let listener = match settings.webhook {
        true => Some(bind(settings.listen, "admission").await?),
        false => None,
    };

    if let Some(dir) = &settings.catalog_dir {
        let loaded = catalog::load_dir(dir)?;
        tracing::info!(dir = %dir.display(), templates_and_bundles = loaded.len(), "catalog loaded from files");
        catalog.replace(loaded);
        catalog.mark_synced();
    }
    // The controller always needs the cluster; the webhook only without --catalog-dir.
    let client = match (&settings.catalog_dir, settings.controller) {
        (Some(_), false) => None,
        _ => Some(kube::Client::try_default().await?),
    };
    if let (None, Some(client)) = (&settings.catalog_dir, &client) {
        tracing::info!("watching AppTemplates, AppBundles and GitRepositories");
        tokio::spawn(catalog::watch(client.clone(), catalog.clone()));
    }

    let admin_handle: Handle<SocketAddr> = Handle::new();
    let admin_server = axum_server::from_tcp(admin_listener)
        .map_err(|source| ServeError::Listen {
            addr: settings.admin_listen,
            what: "admin",
            source,
        })?
        .handle(admin_handle.clone())
        .serve(
            admin::router(AdminState {
                readiness: readiness.clone(),
                catalog: catalog.clone(),
                metrics: metrics.clone(),
            })
            .into_make_service(),
        );
    let mut admin_task = tokio::spawn(admin_server);
    tracing::info!(addr = %settings.admin_listen, "admin server listening");

    let controller = match &client {
        Some(client) if settings.controller => {
            let recorder = kube::runtime::events::Recorder::new(
                client.clone(),
                kube::runtime::events::Reporter {
                    controller: "ephemeral-controller".into(),
                    instance: Some(settings.pod_name.clone()),
                },
            );
            let ctx = controller::Context::new(
                client.clone(),
                catalog.clone(),
                Arc::new(settings.config.clone()),
                settings.clock,
                recorder,
                metrics.clone(),
                controller::Settings {
                    suspend_outside_uptime: settings.suspend_outside_uptime,
                    ..controller::Settings::default()
                },
            );
            let election = ElectionConfig::new(
                &settings.namespace,
                &settings.leader_election_lease,
                &settings.pod_name,
            );
            tracing::info!(lease = %settings.leader_election_lease, namespace = %settings.namespace, identity = %settings.pod_name, "controller enabled: campaigning for the leader Lease");
            Some(controller::start(client.clone(), Arc::new(ctx), election))
        }
        _ => None,
    };
    let stop_controller = |grace: Duration| async move {
        if let Some(c) = controller {
            c.stop(grace).await;
        }
    };

    let Some(listener) = listener else {
        // The controller alone (--webhook=false): ready once the catalog synced.
        readiness.set_tls_not_needed();
        let result = tokio::select! {
            name = signals.recv() => {
                tracing::info!(signal = name, "shutting down");
                readiness.set_shutting_down();
                Ok(())
            }
            r = &mut admin_task => {
                stop_controller(settings.shutdown_grace).await;
                return task_result("admin", r);
            }
        };
        stop_controller(settings.shutdown_grace).await;
        admin_handle.graceful_shutdown(Some(Duration::from_secs(1)));
        let admin = task_result("admin", admin_task.await);
        return result.and(admin);
    };

    // Readiness waits for this: files that load, or self-managed certificates
    // stored and trusted by the webhook configurations (errors retried).
    let tls_ready = async {
        Ok::<_, ServeError>(match &settings.tls {
            TlsSource::Files(files) => {
                Reloader::wait_and_run(files.clone(), settings.tls_reload_interval, metrics.clone())
                    .await
            }
            TlsSource::SelfManaged(certs) => {
                let client = match &client {
                    Some(client) => client.clone(),
                    None => kube::Client::try_default()
                        .await
                        .map_err(ServeError::CertClient)?,
                };
                CertManager::new(client, certs.clone())
                    .start(metrics.clone())
                    .await
            }
        })
    };
    let tls_config = tokio::select! {
        config = tls_ready => match config {
            Ok(config) => config,
            Err(error) => {
                stop_controller(settings.shutdown_grace).await;
                admin_handle.shutdown();
                return Err(error);
            }
        },
        name = signals.recv() => {
            tracing::info!(signal = name, "stopping before the TLS certificate was loaded");
            stop_controller(settings.shutdown_grace).await;
            admin_handle.shutdown();
            return Ok(());
        }
    };

    let handle: Handle<SocketAddr> = Handle::new();
    let server = axum_server::from_tcp_rustls(listener, tls_config)
        .map_err(|source| ServeError::Listen {
            addr: settings.listen,
            what: "admission",
            source,
        })?
        .handle(handle.clone())
        .serve(
            server::router(AdmissionState {
                catalog,
                config: Arc::new(settings.config.clone()),
                access: Arc::new(settings.access.clone()),
                clock: settings.clock,
                metrics,
                max_body_bytes: settings.max_body_bytes,
            })
            .into_make_service(),
        );
    let mut server_task = tokio::spawn(server);
    readiness.set_tls_loaded();
    tracing::info!(addr = %settings.listen, "admission server listening (HTTPS)");

    let result = tokio::select! {
        name = signals.recv() => {
            tracing::info!(signal = name, delay = ?settings.shutdown_delay, grace = ?settings.shutdown_grace, connections = handle.connection_count(), "shutting down");
            readiness.set_shutting_down();
            // Admission drains while the controller stops, not one after the other.
            let drain = async {
                if !settings.shutdown_delay.is_zero() {
                    tracing::info!(delay = ?settings.shutdown_delay, "not ready; still serving until endpoints are updated");
                    tokio::time::sleep(settings.shutdown_delay).await;
                }
                handle.graceful_shutdown(Some(settings.shutdown_grace));
                let r = task_result("admission", server_task.await);
                tracing::info!("admission server stopped");
                r
            };
            let (r, ()) = tokio::join!(drain, stop_controller(settings.shutdown_grace));
            admin_handle.graceful_shutdown(Some(Duration::from_secs(1)));
            let admin = task_result("admin", admin_task.await);
            return r.and(admin);
        }
        r = &mut server_task => task_result("admission", r),
        r = &mut admin_task => {
            handle.shutdown();
            stop_controller(settings.shutdown_grace).await;
            return task_result("admin", r);
        }
    };
    stop_controller(settings.shutdown_grace).await;
    admin_handle.graceful_shutdown(Some(Duration::from_secs(1)));
    let admin = task_result("admin", admin_task.await);
    result.and(admin)
}
