//! Flags of `ephemeral-webhook serve` (each with an `EPHEMERAL_*` environment
//! variable) and their checked form, [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use jiff::Timestamp;

use ephemeral_core::Config;
use ephemeral_core::config::{ConfigArgs, ConfigError};

use crate::admission::Access;
use crate::certs::CertSettings;
use crate::tls::{TlsFiles, TlsSource};

/// How logs are written (to stderr).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The flags of `ephemeral-webhook serve`.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address of the HTTPS admission server (POST /mutate, POST /validate).
    #[arg(
        long,
        env = "EPHEMERAL_LISTEN",
        default_value = "0.0.0.0:8443",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    /// Address of the plain-HTTP admin server (/livez, /readyz, /metrics).
    #[arg(
        long,
        env = "EPHEMERAL_ADMIN_LISTEN",
        default_value = "0.0.0.0:8080",
        value_name = "ADDR"
    )]
    pub admin_listen: SocketAddr,

    /// PEM certificate chain (leaf first) of the admission server; give
    /// --tls-key-file with it. Without both, certificates are self-managed
    /// (see --cert-secret).
    ///
    /// Re-read every --tls-reload-interval: when its contents (or the key's)
    /// change, new connections get the new certificate and open connections are
    /// kept. A pair that does not load is logged and the previous one kept.
    #[arg(
        long,
        env = "EPHEMERAL_TLS_CERT_FILE",
        value_name = "FILE",
        requires = "tls_key_file"
    )]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) matching --tls-cert-file.
    #[arg(
        long,
        env = "EPHEMERAL_TLS_KEY_FILE",
        value_name = "FILE",
        requires = "tls_cert_file"
    )]
    pub tls_key_file: Option<PathBuf>,

    /// Self-managed certificates (without --tls-cert-file/--tls-key-file): the
    /// Secret in --namespace that holds the CA and serving certificate
    /// (ca.crt, ca.key, tls.crt, tls.key).
    ///
    /// Created or reused at start, renewed before expiry; the CA goes into
    /// the caBundle of --webhook-configuration.
    #[arg(
        long,
        env = "EPHEMERAL_CERT_SECRET",
        default_value = "ephemeral-webhook-tls",
        value_name = "NAME"
    )]
    pub cert_secret: String,

    /// Self-managed certificates: the Service in --namespace the API server
    /// calls; the certificate is valid for `<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc`
    /// and `<svc>.<ns>.svc.cluster.local`.
    #[arg(
        long,
        env = "EPHEMERAL_SERVICE_NAME",
        default_value = "ephemeral-webhook",
        value_name = "NAME"
    )]
    pub service_name: String,

    /// Self-managed certificates: more names the serving certificate is
    /// valid for, DNS names or IP addresses (comma-separated), for an API
    /// server that calls the webhook by `url` instead of the Service, e.g.
    /// `--cert-extra-names=127.0.0.1` when serve runs outside the cluster.
    #[arg(
        long,
        env = "EPHEMERAL_CERT_EXTRA_NAMES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub cert_extra_names: Vec<String>,

    /// Self-managed certificates: the name of both the
    /// MutatingWebhookConfiguration and the ValidatingWebhookConfiguration
    /// whose webhooks' caBundle is set to the CA.
    #[arg(
        long,
        env = "EPHEMERAL_WEBHOOK_CONFIGURATION",
        default_value = "ephemeral-webhook",
        value_name = "NAME"
    )]
    pub webhook_configuration: String,

    /// Run the admission webhook (HTTPS on --listen). With --webhook=false no
    /// TLS material is needed and no admission server listens.
    #[arg(long, env = "EPHEMERAL_WEBHOOK", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub webhook: bool,

    /// Run the controller that materialises Environments into Flux objects
    /// (only the replica holding --leader-election-lease reconciles).
    #[arg(long, env = "EPHEMERAL_CONTROLLER", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub controller: bool,

    /// The coordination.k8s.io/v1 Lease (in --namespace) whose holder
    /// (--pod-name) runs the controller, so several replicas are safe.
    #[arg(
        long,
        env = "EPHEMERAL_LEADER_ELECTION_LEASE",
        default_value = "ephemeral-controller",
        value_name = "NAME"
    )]
    pub leader_election_lease: String,

    /// How often the certificate and key files are checked for changes (Go duration).
    #[arg(long, env = "EPHEMERAL_TLS_RELOAD_INTERVAL", default_value = "5s", value_name = "DURATION", value_parser = parse_duration)]
    pub tls_reload_interval: Duration,

    /// Members of these groups may update and delete anyone's Environments and
    /// change their owner (repeat or comma-separate).
    ///
    /// The default makes cluster admins (system:masters) and kube-system's
    /// controllers admins, so that deleting a namespace is never blocked by the
    /// ownership check.
    #[arg(
        long,
        env = "EPHEMERAL_ADMIN_GROUPS",
        value_delimiter = ',',
        default_value = "system:masters,system:serviceaccounts:kube-system",
        value_name = "GROUP"
    )]
    pub admin_groups: Vec<String>,

    /// The controller's own service account, which counts as an admin (it
    /// deletes expired Environments).
    #[arg(
        long,
        env = "EPHEMERAL_CONTROLLER_SERVICE_ACCOUNT",
        default_value = "system:serviceaccount:ephemeral-system:ephemeral-webhook",
        value_name = "USER"
    )]
    pub controller_service_account: String,

    /// Namespace of the process's own objects: the controller's leader-election
    /// Lease and the self-managed certificate Secret. In a pod, set from the
    /// downward API (`metadata.namespace`).
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "ephemeral-system",
        value_name = "NAMESPACE"
    )]
    pub namespace: String,

    /// This replica's identity (leader-election holder, event reporter
    /// instance). In a pod, set from the downward API (`metadata.name`);
    /// default: the host name.
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub pod_name: Option<String>,

    /// Load the catalog (AppTemplates, AppBundles, Flux GitRepositories) once
    /// from the .yaml/.yml files under DIR instead of watching the cluster.
    ///
    /// Files are read recursively, may hold several documents, and documents of
    /// other kinds are ignored; objects without a namespace go to "default".
    /// With this flag and --controller=false the process needs no cluster
    /// access at all. Without it,
    /// it watches those three kinds in all namespaces (list and watch RBAC) and
    /// is not ready until the first listing is complete.
    #[arg(long, env = "EPHEMERAL_CATALOG_DIR", value_name = "DIR")]
    pub catalog_dir: Option<PathBuf>,

    /// Largest request body accepted; larger ones get 413 Payload Too Large.
    #[arg(long, env = "EPHEMERAL_MAX_BODY_BYTES", default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub max_body_bytes: usize,

    /// On SIGTERM or SIGINT: stop accepting connections, report not ready, and
    /// give in-flight requests this long to finish (Go duration).
    #[arg(long, env = "EPHEMERAL_SHUTDOWN_GRACE", default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// On SIGTERM or SIGINT, before draining: report not ready but keep
    /// accepting admission requests this long (Go duration), so the API
    /// server stops sending requests (endpoints updated) before the listener
    /// closes. In a cluster set it to a few seconds; the pod's
    /// terminationGracePeriodSeconds must cover it plus --shutdown-grace.
    #[arg(long, env = "EPHEMERAL_SHUTDOWN_DELAY", default_value = "0s", value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    /// Log format. The level comes from RUST_LOG (default: info).
    ///
    /// At info the webhook writes one line per admission request that it
    /// patched or refused, and per CREATE or DELETE it let through; UPDATEs
    /// let through unchanged (most traffic: controllers writing status and
    /// finalizers) log at debug. For the most admission throughput, set
    /// RUST_LOG=warn,ephemeral_webhook::controller=info (no per-request lines;
    /// docs/benchmarks.md, Admission, shows the difference); to trace every request,
    /// RUST_LOG=info,ephemeral_webhook::server=debug.
    #[arg(long, env = "EPHEMERAL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// FOR TESTS AND DEMOS ONLY: use this RFC 3339 time as "now" instead of the
    /// clock, for every request. Refused unless --controller=false.
    ///
    /// Lets end-to-end tests compare the webhook's output with
    /// `kubectl-ephemeral render --now` byte for byte. Never set it in a real
    /// cluster: default leases and lease limits would be computed from a frozen
    /// time.
    #[arg(long, env = "EPHEMERAL_FIXED_NOW", value_name = "RFC3339")]
    pub fixed_now: Option<Timestamp>,

    /// The Environment policy shared with `kubectl-ephemeral render`.
    #[command(flatten)]
    pub policy: ConfigArgs,
}

impl ServeArgs {
    /// Files when both are given (clap makes sure one never comes alone),
    /// else self-managed certificates with checked names.
    fn tls_source(&self) -> Result<TlsSource, ConfigError> {
        if let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) {
            return Ok(TlsSource::Files(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }));
        }
        let label = |flag: &'static str, value: &str| {
            let value = value.trim().to_owned();
            match ephemeral_core::names::dns1123_label_problem(&value) {
                Some(problem) => Err(ConfigError {
                    flag,
                    problem: format!(
                        "a DNS-1123 label {problem}; use the name of the object in Kubernetes"
                    ),
                    value,
                }),
                None => Ok(value),
            }
        };
        let subdomain = |flag: &'static str, value: &str| {
            let value = value.trim().to_owned();
            let problem = if value.len() > 253 {
                Some("must be at most 253 characters")
            } else {
                value
                    .split('.')
                    .find_map(ephemeral_core::names::dns1123_label_problem)
            };
            match problem {
                Some(problem) => Err(ConfigError {
                    flag,
                    problem: format!(
                        "an object name (DNS-1123 subdomain) whose every dot-separated part {problem}"
                    ),
                    value,
                }),
                None => Ok(value),
            }
        };
        Ok(TlsSource::SelfManaged(CertSettings {
            namespace: label("namespace", &self.namespace)?,
            secret_name: subdomain("cert-secret", &self.cert_secret)?,
            service_name: label("service-name", &self.service_name)?,
            webhook_configuration: subdomain("webhook-configuration", &self.webhook_configuration)?,
            extra_names: self
                .cert_extra_names
                .iter()
                .filter(|name| !name.is_empty())
                .map(|name| match name.parse::<std::net::IpAddr>() {
                    Ok(ip) => Ok(ip.to_string()),
                    Err(_) => subdomain("cert-extra-names", name),
                })
                .collect::<Result<_, _>>()?,
        }))
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    ephemeral_core::lease::parse_go_duration(text)
        .and_then(|d| Duration::try_from(d).ok())
        .ok_or_else(|| {
            format!("'{text}' is not a duration; use a Go duration such as 10s or 1m30s")
        })
}

/// The host name (a pod's name in Kubernetes), or `ephemeral-webhook`.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ephemeral-webhook".to_owned())
}

/// Where "now" comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    System,
    /// A fixed time (`--fixed-now`).
    Fixed(Timestamp),
}

impl Clock {
    /// The current time according to this clock.
    pub fn now(self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Fixed(t) => t,
        }
    }
}

/// Checked settings of the server.
#[derive(Clone, Debug)]
pub struct Settings {
    /// HTTPS admission address.
    pub listen: SocketAddr,
    /// Plain-HTTP admin address.
    pub admin_listen: SocketAddr,
    /// Certificate and key: files, or self-managed.
    pub tls: TlsSource,
    /// Whether the admission webhook runs.
    pub webhook: bool,
    /// Whether the controller runs.
    pub controller: bool,
    /// Name of the leader-election Lease.
    pub leader_election_lease: String,
    /// Certificate poll interval.
    pub tls_reload_interval: Duration,
    /// Who counts as admin.
    pub access: Access,
    /// Static catalog directory, if any.
    pub catalog_dir: Option<PathBuf>,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// Grace period on shutdown.
    pub shutdown_grace: Duration,
    /// Not-ready-but-serving delay on shutdown.
    pub shutdown_delay: Duration,
    /// The clock.
    pub clock: Clock,
    /// Expansion policy.
    pub config: Config,
    /// Namespace of the process's own objects (Lease, certificate Secret).
    pub namespace: String,
    /// This replica's identity.
    pub pod_name: String,
}

impl ServeArgs {
    fn halves(&self) -> Result<(), ConfigError> {
        if !self.webhook && !self.controller {
            return Err(ConfigError {
                flag: "controller",
                value: "false".into(),
                problem: "with --webhook=false as well nothing would run; enable the webhook, the controller or both".into(),
            });
        }
        if let (Some(now), true) = (self.fixed_now, self.controller) {
            // The controller deletes Environments whose lease ended: a frozen
            // clock must never decide that.
            return Err(ConfigError {
                flag: "fixed-now",
                value: now.to_string(),
                problem: "a frozen clock would decide lease expiry and delete Environments; use it only with --controller=false".into(),
            });
        }
        Ok(())
    }

    /// Checks the flags.
    pub fn to_settings(&self) -> Result<Settings, ConfigError> {
        self.halves()?;
        Ok(Settings {
            listen: self.listen,
            admin_listen: self.admin_listen,
            tls: self.tls_source()?,
            webhook: self.webhook,
            controller: self.controller,
            leader_election_lease: self.leader_election_lease.trim().to_owned(),
            tls_reload_interval: self.tls_reload_interval.max(Duration::from_millis(100)),
            access: Access {
                admin_groups: self
                    .admin_groups
                    .iter()
                    .map(|g| g.trim())
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect(),
                controller_service_account: self.controller_service_account.trim().to_owned(),
            },
            catalog_dir: self.catalog_dir.clone(),
            max_body_bytes: self.max_body_bytes,
            shutdown_grace: self.shutdown_grace,
            shutdown_delay: self.shutdown_delay,
            clock: self.fixed_now.map_or(Clock::System, Clock::Fixed),
            config: self.policy.to_config()?,
            namespace: self.namespace.trim().to_owned(),
            pod_name: self
                .pod_name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(host_name),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let mut all = vec![
            "serve",
            "--tls-cert-file",
            "c.pem",
            "--tls-key-file",
            "k.pem",
        ];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| c.serve)
    }

    #[test]
    fn defaults() {
        let s = parse(&[]).unwrap().to_settings().unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:8443");
        assert_eq!(s.admin_listen.to_string(), "0.0.0.0:8080");
        assert_eq!(s.max_body_bytes, 1_048_576);
        assert_eq!(s.shutdown_grace, Duration::from_secs(10));
        assert_eq!(s.shutdown_delay, Duration::ZERO);
        assert_eq!(s.clock, Clock::System);
        assert_eq!(s.namespace, "ephemeral-system");
        assert!(!s.pod_name.is_empty());
        assert_eq!(
            s.access.admin_groups,
            vec!["system:masters", "system:serviceaccounts:kube-system"]
        );
        assert_eq!(
            s.access.controller_service_account,
            "system:serviceaccount:ephemeral-system:ephemeral-webhook"
        );
    }

    #[test]
    fn explicit_values() {
        let s = parse(&[
            "--controller=false",
            "--admin-groups",
            "a, b,,c",
            "--shutdown-grace",
            "1m30s",
            "--fixed-now",
            "2026-11-21T10:00:00Z",
            "--max-lease",
            "24h",
        ])
        .unwrap()
        .to_settings()
        .unwrap();
        assert_eq!(s.access.admin_groups, vec!["a", "b", "c"]);
        assert_eq!(s.shutdown_grace, Duration::from_secs(90));
        assert_eq!(
            s.clock.now(),
            "2026-11-21T10:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(s.config.lease.maximum, jiff::SignedDuration::from_hours(24));
    }

    fn parse_only(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| c.serve)
    }

    #[test]
    fn certificate_files_or_self_managed() {
        let s = parse(&[]).unwrap().to_settings().unwrap();
        let TlsSource::Files(files) = s.tls else {
            panic!("both files given: {:?}", s.tls);
        };
        assert_eq!((files.cert, files.key), ("c.pem".into(), "k.pem".into()));

        let s = parse_only(&[]).unwrap().to_settings().unwrap();
        let TlsSource::SelfManaged(certs) = s.tls else {
            panic!("no files: self-managed, got {:?}", s.tls);
        };
        assert_eq!(
            certs,
            CertSettings {
                namespace: "ephemeral-system".to_owned(),
                secret_name: "ephemeral-webhook-tls".to_owned(),
                service_name: "ephemeral-webhook".to_owned(),
                webhook_configuration: "ephemeral-webhook".to_owned(),
                extra_names: Vec::new(),
            }
        );
        let s = parse_only(&[
            "--namespace",
            "hooks",
            "--cert-secret",
            "hooks.tls",
            "--service-name",
            "admission",
            "--webhook-configuration",
            "hooks.example.com",
        ])
        .unwrap()
        .to_settings()
        .unwrap();
        let TlsSource::SelfManaged(certs) = s.tls else {
            panic!("{:?}", s.tls);
        };
        assert_eq!(certs.server_name(), "admission.hooks.svc");
        assert_eq!(certs.secret_name, "hooks.tls");
        assert_eq!(certs.webhook_configuration, "hooks.example.com");

        for (given, missing) in [
            ("--tls-cert-file", "--tls-key-file <FILE>"),
            ("--tls-key-file", "--tls-cert-file <FILE>"),
        ] {
            let err = parse_only(&[given, "x.pem"]).err().unwrap();
            assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
            let text = err.to_string();
            assert!(
                text.contains("the following required arguments were not provided")
                    && text.contains(missing),
                "{text}"
            );
        }

        let err = parse_only(&["--service-name", "Web_Hook"])
            .unwrap()
            .to_settings()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--service-name 'Web_Hook': a DNS-1123 label must consist of lower-case letters, digits and '-'; use the name of the object in Kubernetes"
        );
        let err = parse_only(&["--cert-secret", "a..b"])
            .unwrap()
            .to_settings()
            .unwrap_err();
        assert_eq!(err.flag, "cert-secret");
        assert!(err.to_string().contains("must not be empty"), "{err}");
    }

    #[test]
    fn halves_and_leader_election() {
        let s = parse(&[]).unwrap().to_settings().unwrap();
        assert!(s.webhook && s.controller);
        assert_eq!(s.leader_election_lease, "ephemeral-controller");
        assert!(matches!(s.tls, TlsSource::Files(_)));
        let s = parse(&[
            "--controller=false",
            "--webhook",
            "--leader-election-lease",
            "mine",
        ])
        .unwrap()
        .to_settings()
        .unwrap();
        assert!(s.webhook && !s.controller);
        assert_eq!(s.leader_election_lease, "mine");
        // The controller alone needs no TLS files (and makes no certificates:
        // serve skips the TLS source when the webhook is off).
        let s = parse_only(&["--webhook=false"])
            .unwrap()
            .to_settings()
            .unwrap();
        assert!(!s.webhook && s.controller);
        let err = parse_only(&["--webhook=false", "--controller=false"])
            .unwrap()
            .to_settings()
            .unwrap_err();
        assert_eq!(err.flag, "controller");
        assert!(err.problem.contains("nothing would run"), "{err}");
        // A frozen clock never drives expiry.
        let err = parse(&["--fixed-now", "2026-11-21T10:00:00Z"])
            .unwrap()
            .to_settings()
            .unwrap_err();
        assert_eq!(err.flag, "fixed-now");
        assert!(err.problem.contains("--controller=false"), "{err}");
        assert!(parse(&["--webhook=maybe"]).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        let err = parse(&["--shutdown-grace", "10"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("'10' is not a duration"), "{err}");
        assert!(parse(&["--fixed-now", "tomorrow"]).is_err());
        assert!(parse(&["--log-format", "xml"]).is_err());
        let err = parse(&["--webhook=false", "--controller=false"])
            .unwrap()
            .to_settings()
            .unwrap_err();
        assert!(err.to_string().contains("nothing would run"), "{err}");
        let err = parse(&["--zone", "Mars/Olympus"])
            .unwrap()
            .to_settings()
            .unwrap_err();
        assert_eq!(err.flag, "zone");
    }
}
