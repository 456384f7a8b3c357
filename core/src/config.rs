//! Cluster-wide settings that shape expansion.

use crate::lease::LeasePolicy;
use crate::schedule::Schedule;

/// How Environments are defaulted, bounded and materialised.
#[derive(Clone, Debug)]
pub struct Config {
    /// Lease defaults and limits.
    pub lease: LeasePolicy,
    /// Environments that are always on, by name.
    pub always_on: Vec<String>,
    /// The schedule always-on environments get; written in its canonical
    /// form (see [`crate::schedule`]).
    pub always_on_schedule: Schedule,
    /// Namespaces sources and image repositories may live in, besides the
    /// environment's own. Empty: any namespace.
    pub allowed_source_namespaces: Vec<String>,
    /// Service account Flux impersonates when the Environment names none.
    pub service_account_name: Option<String>,
    /// Service accounts an Environment may name for Flux to impersonate.
    /// Empty: any account of the Environment's namespace.
    pub allowed_service_accounts: Vec<String>,
    /// Dotted path in Helm values where the resolved image tag goes.
    pub image_tag_values_path: String,
    /// Flux `interval` of every child.
    pub interval: String,
    /// Flux `timeout` of Kustomizations and HelmReleases.
    pub timeout: String,
    /// Flux `retryInterval` of Kustomizations.
    pub retry_interval: String,
}

/// The schedule always-on environments get unless configured otherwise.
pub const DEFAULT_ALWAYS_ON_SCHEDULE: &str = "Mon-Sun 00:00-24:00 UTC";

impl Default for Config {
    fn default() -> Self {
        Config {
            lease: LeasePolicy::default(),
            always_on: Vec::new(),
            always_on_schedule: Schedule::parse(DEFAULT_ALWAYS_ON_SCHEDULE)
                .expect("the default always-on schedule parses"),
            allowed_source_namespaces: vec!["flux-system".to_owned()],
            service_account_name: None,
            allowed_service_accounts: Vec::new(),
            image_tag_values_path: "image.tag".to_owned(),
            interval: "5m".to_owned(),
            timeout: "5m".to_owned(),
            retry_interval: "2m".to_owned(),
        }
    }
}

/// A setting that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--{flag} '{value}': {problem}")]
pub struct ConfigError {
    /// The flag (without dashes).
    pub flag: &'static str,
    /// The value given.
    pub value: String,
    /// What is wrong and what to write instead.
    pub problem: String,
}

/// The settings as command-line flags (with `EPHEMERAL_*` environment
/// variables), shared by `ephemeral-webhook serve` and `kubectl-ephemeral render`
/// so that what `render` prints is what the cluster admits.
#[cfg(feature = "cli")]
#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = "Environment policy")]
pub struct ConfigArgs {
    /// Daily cut-off: default leases end at this local time (HH:MM).
    #[arg(
        long,
        env = "EPHEMERAL_CUTOFF",
        default_value = "19:00",
        value_name = "HH:MM"
    )]
    pub cutoff: String,
    /// IANA time zone of the cut-off, e.g. Europe/London.
    #[arg(
        long,
        env = "EPHEMERAL_ZONE",
        default_value = "UTC",
        value_name = "ZONE"
    )]
    pub zone: String,
    /// A defaulted lease lasts at least this long (Go duration).
    #[arg(
        long,
        env = "EPHEMERAL_MIN_LEASE",
        default_value = "1h",
        value_name = "DURATION"
    )]
    pub min_lease: String,
    /// No lease may end later than this from now (Go duration).
    #[arg(
        long,
        env = "EPHEMERAL_MAX_LEASE",
        default_value = "168h",
        value_name = "DURATION"
    )]
    pub max_lease: String,
    /// Environments that are always on (repeat or comma-separate).
    #[arg(
        long,
        env = "EPHEMERAL_ALWAYS_ON",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub always_on: Vec<String>,
    /// The downscaler schedule always-on environments get.
    #[arg(
        long,
        env = "EPHEMERAL_ALWAYS_ON_SCHEDULE",
        default_value = DEFAULT_ALWAYS_ON_SCHEDULE,
        value_name = "SCHEDULE"
    )]
    pub always_on_schedule: String,
    /// Namespaces sources and ImageRepositories may be in, besides the
    /// environment's own (repeat or comma-separate; empty string: any).
    #[arg(
        long = "allowed-source-namespaces",
        env = "EPHEMERAL_ALLOWED_SOURCE_NAMESPACES",
        value_delimiter = ',',
        default_value = "flux-system",
        value_name = "NS"
    )]
    pub allowed_source_namespaces: Vec<String>,
    /// Service account Flux impersonates when an Environment names none.
    #[arg(long, env = "EPHEMERAL_SERVICE_ACCOUNT_NAME", value_name = "NAME")]
    pub service_account_name: Option<String>,
    /// Service accounts an Environment may set in spec.serviceAccountName
    /// (repeat or comma-separate; default: any). The controller's own RBAC
    /// creates the Flux objects, so this is what stops an Environment from
    /// making Flux act as a more privileged account of its namespace.
    #[arg(
        long,
        env = "EPHEMERAL_ALLOWED_SERVICE_ACCOUNTS",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub allowed_service_accounts: Vec<String>,
    /// Dotted path in Helm values where the resolved image tag goes.
    #[arg(
        long,
        env = "EPHEMERAL_IMAGE_TAG_VALUES_PATH",
        default_value = "image.tag",
        value_name = "PATH"
    )]
    pub image_tag_values_path: String,
}

#[cfg(feature = "cli")]
impl ConfigArgs {
    /// Parses and checks the settings.
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let err = |flag, value: &str, problem: &str| ConfigError {
            flag,
            value: value.to_owned(),
            problem: problem.to_owned(),
        };
        let cutoff = parse_clock_time(&self.cutoff)
            .ok_or_else(|| err("cutoff", &self.cutoff, "use HH:MM, e.g. 19:00"))?;
        let zone = jiff::tz::TimeZone::get(&self.zone).map_err(|_| {
            err(
                "zone",
                &self.zone,
                "use an IANA zone such as UTC or Europe/London",
            )
        })?;
        let minimum = crate::lease::parse_go_duration(&self.min_lease)
            .ok_or_else(|| err("min-lease", &self.min_lease, "use a Go duration such as 1h"))?;
        let maximum = crate::lease::parse_go_duration(&self.max_lease).ok_or_else(|| {
            err(
                "max-lease",
                &self.max_lease,
                "use a Go duration such as 168h",
            )
        })?;
        if minimum > maximum {
            return Err(err(
                "min-lease",
                &self.min_lease,
                "must not exceed --max-lease",
            ));
        }
        let always_on_schedule = Schedule::parse(&self.always_on_schedule).map_err(|e| {
            err(
                "always-on-schedule",
                &self.always_on_schedule,
                &format!("{e}. Fix: {}", e.fix),
            )
        })?;
        Ok(Config {
            lease: LeasePolicy {
                cutoff,
                zone,
                minimum,
                maximum,
            },
            always_on: self
                .always_on
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            always_on_schedule,
            allowed_source_namespaces: self
                .allowed_source_namespaces
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            service_account_name: self.service_account_name.clone().filter(|s| !s.is_empty()),
            allowed_service_accounts: self
                .allowed_service_accounts
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            image_tag_values_path: self.image_tag_values_path.clone(),
            ..Config::default()
        })
    }
}

/// Parses `HH:MM` (00:00 to 23:59).
pub fn parse_clock_time(text: &str) -> Option<jiff::civil::Time> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    jiff::civil::Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}
