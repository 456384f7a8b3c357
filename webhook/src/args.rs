// Over 400 lines of non-test code: one declarative clap table of every flag of serve (with its long help and env var) and its translation into each subsystem's settings; split per subsystem if it grows further.
//! Flags of `ephemeral-webhook serve` (each with an `EPHEMERAL_*` environment
//! variable) and their checked form, [`ServeSettings`]: each subsystem's own
//! settings. Only this module knows about flags; the runtime modules only
//! see their settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use jiff::Timestamp;

use ephemeral_core::config::{ConfigArgs, ConfigError};

use crate::admin::AdminSettings;
use crate::admission::Access;
use crate::certs::CertSettings;
use crate::clock::Clock;
use crate::controller;
use crate::leader::ElectionConfig;
use crate::lifecycle::ShutdownSettings;
use crate::logging::{LogFormat, LogSettings};
use crate::serve::{CertificateSource, ControllerSettings, ServeSettings, WebhookSettings};
use crate::server::AdmissionSettings;
use crate::sets;
use crate::tls::{FileSettings, TlsFiles};

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
    /// calls; the certificate is valid for `<svc>`, `<svc>.<ns>`,
    /// `<svc>.<ns>.svc` and `<svc>.<ns>.svc.cluster.local`.
    #[arg(
        long,
        help = "Self-managed certificates: the Service in --namespace the API server calls; the certificate is valid for <svc>, <svc>.<ns>, <svc>.<ns>.svc and <svc>.<ns>.svc.cluster.local",
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

    /// Address of the plain-HTTP receiver of GitHub's webhook deliveries
    /// (POST /github): a pull_request event makes the EnvironmentSets
    /// following its repository poll at once. Off by default (sets poll every
    /// spec.interval); serve it behind an Ingress that terminates TLS. Needs
    /// the controller.
    #[arg(long, env = "EPHEMERAL_RECEIVER_LISTEN", value_name = "ADDR")]
    pub receiver_listen: Option<SocketAddr>,

    /// Suspend the Flux Kustomizations and HelmReleases of an Environment
    /// while it is outside its lease (`spec.suspend: true`), and resume them
    /// when the lease is extended or its schedule's window opens, so Flux does
    /// not re-apply `spec.replicas` over GoKubeDownscaler and does not upgrade
    /// a release that is scaled to zero. ImagePolicies keep resolving.
    ///
    /// An Environment's `spec.lease.suspendOutsideUptime` overrides this
    /// either way.
    #[arg(long, env = "EPHEMERAL_SUSPEND_OUTSIDE_UPTIME", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub suspend_outside_uptime: bool,

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
    fn certificates(&self) -> Result<CertificateSource, ConfigError> {
        if let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) {
            return Ok(CertificateSource::Files(FileSettings {
                files: TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                },
                reload_interval: self.tls_reload_interval.max(Duration::from_millis(100)),
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
            match ephemeral_core::names::dns1123_subdomain_problem(&value) {
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
        Ok(CertificateSource::SelfManaged(CertSettings {
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

impl ServeArgs {
    fn halves(&self) -> Result<(), ConfigError> {
        if !self.webhook && !self.controller {
            return Err(ConfigError {
                flag: "controller",
                value: "false".into(),
                problem: "with --webhook=false as well nothing would run; enable the webhook, the controller or both".into(),
            });
        }
        if let (Some(addr), false) = (self.receiver_listen, self.controller) {
            return Err(ConfigError {
                flag: "receiver-listen",
                value: addr.to_string(),
                problem: "the receiver triggers the EnvironmentSet controller, which --controller=false turns off; drop --receiver-listen or enable the controller".into(),
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

    /// Checks the flags and builds each subsystem's settings.
    pub fn to_settings(&self) -> Result<ServeSettings, ConfigError> {
        self.halves()?;
        let namespace = self.namespace.trim().to_owned();
        let pod_name = self
            .pod_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(host_name);
        // Checked even with --webhook=false, as before the settings were split.
        let certificates = self.certificates()?;
        let webhook = match self.webhook {
            true => Some(WebhookSettings {
                admission: AdmissionSettings {
                    listen: self.listen,
                    access: Access {
                        admin_groups: self
                            .admin_groups
                            .iter()
                            .map(|g| g.trim())
                            .filter(|g| !g.is_empty())
                            .map(str::to_owned)
                            .collect(),
                        controller_service_account: self
                            .controller_service_account
                            .trim()
                            .to_owned(),
                    },
                    max_body_bytes: self.max_body_bytes,
                },
                certificates,
            }),
            false => None,
        };
        let controller = self.controller.then(|| ControllerSettings {
            election: ElectionConfig::new(&namespace, self.leader_election_lease.trim(), &pod_name),
            tuning: controller::Settings {
                suspend_outside_uptime: self.suspend_outside_uptime,
                ..controller::Settings::default()
            },
            sets: sets::Settings::default(),
            receiver: self.receiver_listen,
        });
        Ok(ServeSettings {
            admin: AdminSettings {
                listen: self.admin_listen,
            },
            webhook,
            controller,
            catalog_dir: self.catalog_dir.clone(),
            shutdown: ShutdownSettings {
                delay: self.shutdown_delay,
                grace: self.shutdown_grace,
            },
            log: LogSettings {
                format: self.log_format,
            },
            policy: self.policy.to_config()?,
            clock: self.fixed_now.map_or(Clock::System, Clock::Fixed),
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
        let admission = &s.webhook.as_ref().unwrap().admission;
        let election = &s.controller.as_ref().unwrap().election;
        assert_eq!(admission.listen.to_string(), "0.0.0.0:8443");
        assert_eq!(s.admin.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(admission.max_body_bytes, 1_048_576);
        assert_eq!(s.shutdown.grace, Duration::from_secs(10));
        assert_eq!(s.shutdown.delay, Duration::ZERO);
        assert_eq!(s.clock, Clock::System);
        assert_eq!(s.log.format, LogFormat::Text);
        assert_eq!(election.namespace, "ephemeral-system");
        assert!(!election.identity.is_empty());
        assert_eq!(
            admission.access.admin_groups,
            vec!["system:masters", "system:serviceaccounts:kube-system"]
        );
        assert_eq!(
            admission.access.controller_service_account,
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
        let admission = &s.webhook.as_ref().unwrap().admission;
        assert_eq!(admission.access.admin_groups, vec!["a", "b", "c"]);
        assert_eq!(s.shutdown.grace, Duration::from_secs(90));
        assert!(s.controller.is_none());
        assert_eq!(
            s.clock.now(),
            "2026-11-21T10:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(s.policy.lease.maximum, jiff::SignedDuration::from_hours(24));
    }

    fn parse_only(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| c.serve)
    }

    #[test]
    fn certificate_files_or_self_managed() {
        let certificates =
            |args: ServeArgs| args.to_settings().unwrap().webhook.unwrap().certificates;
        let CertificateSource::Files(files) = certificates(parse(&[]).unwrap()) else {
            panic!("both files given");
        };
        assert_eq!(
            (files.files.cert, files.files.key),
            ("c.pem".into(), "k.pem".into())
        );
        assert_eq!(files.reload_interval, Duration::from_secs(5));

        let CertificateSource::SelfManaged(certs) = certificates(parse_only(&[]).unwrap()) else {
            panic!("no files: self-managed");
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
        let CertificateSource::SelfManaged(certs) = certificates(
            parse_only(&[
                "--namespace",
                "hooks",
                "--cert-secret",
                "hooks.tls",
                "--service-name",
                "admission",
                "--webhook-configuration",
                "hooks.example.com",
            ])
            .unwrap(),
        ) else {
            panic!("no files: self-managed");
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
        assert!(s.webhook.is_some() && s.controller.is_some());
        let election = s.controller.unwrap().election;
        assert_eq!(election.name, "ephemeral-controller");
        assert!(matches!(
            s.webhook.unwrap().certificates,
            CertificateSource::Files(_)
        ));
        for (flag, on) in [
            ("--suspend-outside-uptime", true),
            ("--suspend-outside-uptime=true", true),
            ("--suspend-outside-uptime=false", false),
        ] {
            let s = parse(&[flag]).unwrap().to_settings().unwrap();
            assert_eq!(
                s.controller.unwrap().tuning.suspend_outside_uptime,
                on,
                "{flag}"
            );
        }
        let s = parse(&[
            "--controller=false",
            "--webhook",
            "--leader-election-lease",
            "mine",
        ])
        .unwrap()
        .to_settings()
        .unwrap();
        assert!(s.webhook.is_some() && s.controller.is_none());
        let s = parse(&["--leader-election-lease", " mine "])
            .unwrap()
            .to_settings()
            .unwrap();
        assert_eq!(s.controller.unwrap().election.name, "mine");
        // The controller alone needs no TLS files (and makes no certificates:
        // serve skips the TLS source when the webhook is off).
        let s = parse_only(&["--webhook=false"])
            .unwrap()
            .to_settings()
            .unwrap();
        assert!(s.webhook.is_none() && s.controller.is_some());
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

    #[test]
    fn the_receiver_is_off_by_default_and_needs_the_controller() {
        let s = parse(&[]).unwrap().to_settings().unwrap();
        assert_eq!(s.controller.unwrap().receiver, None, "off by default");
        let s = parse(&["--receiver-listen", "0.0.0.0:8090"])
            .unwrap()
            .to_settings()
            .unwrap();
        assert_eq!(
            s.controller.unwrap().receiver.map(|a| a.to_string()),
            Some("0.0.0.0:8090".into())
        );
        let err = parse(&["--receiver-listen", "0.0.0.0:8090", "--controller=false"])
            .unwrap()
            .to_settings()
            .unwrap_err();
        assert_eq!(err.flag, "receiver-listen");
        assert!(err.problem.contains("--controller=false"), "{err}");
        assert!(
            parse(&["--receiver-listen", "8090"]).is_err(),
            "an address, with a port"
        );
    }
}
