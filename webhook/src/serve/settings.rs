//! What `serve` is told ([`ServeSettings`], one part per subsystem) and how
//! it fails ([`ServeError`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use ephemeral_core::Config;

use crate::admin::AdminSettings;
use crate::catalog::CatalogError;
use crate::certs::CertSettings;
use crate::clock::Clock;
use crate::controller;
use crate::leader::ElectionConfig;
use crate::lifecycle::{ShutdownSettings, TaskError};
use crate::logging::LogSettings;
use crate::server::AdmissionSettings;
use crate::sets;
use crate::tls;

/// Everything `serve` runs, each subsystem with its own settings.
#[derive(Clone, Debug)]
pub struct ServeSettings {
    /// The admin server.
    pub admin: AdminSettings,
    /// The admission webhook (`None`: `--webhook=false`).
    pub webhook: Option<WebhookSettings>,
    /// The controller and its leader election (`None`: `--controller=false`).
    pub controller: Option<ControllerSettings>,
    /// Load the catalog once from this directory instead of watching it.
    pub catalog_dir: Option<PathBuf>,
    /// Shutdown timing.
    pub shutdown: ShutdownSettings,
    /// Logging.
    pub log: LogSettings,
    /// The Environment policy, shared by admission and the controller.
    pub policy: Config,
    /// Where "now" comes from, shared by admission and the controller.
    pub clock: Clock,
}

/// The admission webhook: its server and where its certificate comes from.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// The HTTPS server.
    pub admission: AdmissionSettings,
    /// Its certificate.
    pub certificates: CertificateSource,
}

/// Where the admission server's certificate comes from.
#[derive(Clone, Debug)]
pub enum CertificateSource {
    /// PEM files (`--tls-cert-file`, `--tls-key-file`), re-read when they change.
    Files(tls::FileSettings),
    /// Self-managed: generated, kept in a Secret and renewed by
    /// [`crate::certs`], served from memory.
    SelfManaged(CertSettings),
}

/// The controller and the Lease that lets one replica run it.
#[derive(Clone, Debug)]
pub struct ControllerSettings {
    /// The leader Lease; its identity is also the Events' reporter instance.
    pub election: ElectionConfig,
    /// The controller's timing.
    pub tuning: controller::Settings,
    /// The EnvironmentSet controller's timing.
    pub sets: sets::Settings,
    /// Where the receiver of GitHub's deliveries listens (`POST /github`,
    /// plain HTTP; `None`: not served).
    pub receiver: Option<SocketAddr>,
}

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
    /// A task stopped serve.
    #[error(transparent)]
    Task(#[from] TaskError),
}
