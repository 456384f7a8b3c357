//! Property tests of the pure core: expansion is idempotent, generated names
//! are valid labels (or refused), branches sanitise to valid tag prefixes,
//! ImagePolicy patterns select exactly their prefix's builds, and leases stay
//! within their bounds and end on a cut-off.

#[path = "support/downscaler.rs"]
#[allow(dead_code)]
mod downscaler;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use ephemeral_core::api::{
    App, AppBundleSpec, AppTemplateSpec, EnvironmentSpec, HelmSource, ImageRepositoryRef,
    KustomizationSource, Lease, SourceRef,
};
use ephemeral_core::expand::{RESERVED_VARIABLES, UPTIME_ANNOTATION};
use ephemeral_core::flux::{FluxObject, GitRepository, GitRepositorySpec, LocalObjectRef};
use ephemeral_core::lease::{self, LeasePolicy};
use ephemeral_core::names;
use ephemeral_core::prefix::{self, BUILD_SUFFIX, MAX_PREFIX, MAX_TAG};
use ephemeral_core::schedule::Schedule;
use ephemeral_core::{
    AppBundle, AppTemplate, Catalog, Config, Environment, Expansion, Violation, admit, expand,
};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, civil::Time};
use kube::api::ObjectMeta;
use proptest::prelude::*;
use regex::Regex;

const NAMESPACE: &str = "ephemeral";
const FLUX: &str = "flux-system";
const OWNER: &str = "alice@example.com";

const ZONES: [&str; 8] = [
    "UTC",
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/Santiago",
    "Asia/Kathmandu",
];

const SCHEDULES: [&str; 4] = [
    "Mon-Fri 07:00-19:00 Europe/London",
    "  Mon-Sun 00:00-24:00 UTC ",
    "Fri-Mon 22:00-06:00 America/New_York, Sat-Sat 10:00-14:00 UTC",
    "mon-fri 08:30-17:45 Asia/Kolkata",
];

// ---------------------------------------------------------------------------
// The catalog
// ---------------------------------------------------------------------------

fn src(kind: &str, name: &str, namespace: Option<&str>) -> SourceRef {
    SourceRef {
        kind: kind.into(),
        name: name.into(),
        namespace: namespace.map(Into::into),
    }
}

fn image_repo(name: &str) -> Option<ImageRepositoryRef> {
    Some(ImageRepositoryRef {
        name: name.into(),
        namespace: Some(FLUX.into()),
    })
}

fn kustomization(path: &str, source_ref: SourceRef) -> Option<KustomizationSource> {
    Some(KustomizationSource {
        path: path.into(),
        source_ref,
    })
}

fn helm(chart: &str, version: Option<&str>, source_ref: SourceRef) -> Option<HelmSource> {
    Some(HelmSource {
        chart: chart.into(),
        version: version.map(Into::into),
        source_ref,
        values: Some(serde_json::Map::from_iter([(
            "replicas".to_owned(),
            serde_json::json!(1),
        )])),
    })
}

fn template(name: &str, spec: AppTemplateSpec) -> AppTemplate {
    let mut t = AppTemplate::new(name, spec);
    t.metadata.namespace = Some(NAMESPACE.into());
    t
}

fn git_repository(namespace: &str, name: &str, secret: bool) -> GitRepository {
    let mut g = GitRepository::new(
        name,
        GitRepositorySpec {
            url: format!("https://git.example.com/{name}.git"),
            interval: "1m".into(),
            timeout: "60s".into(),
            secret_ref: secret.then(|| LocalObjectRef {
                name: "git-credentials".into(),
            }),
            ..GitRepositorySpec::default()
        },
    );
    g.metadata.namespace = Some(namespace.into());
    g
}

/// Templates: name, and whether the template names an ImageRepository.
const TEMPLATES: [(&str, bool); 8] = [
    ("checkout", true),
    ("payments", true),
    ("web", true),
    ("search", true),
    ("ledger", true),
    ("docs", false),
    ("grafana", false),
    ("jaeger", false),
];
/// Templates whose source is a GitRepository: template, source, deployment block.
const TEMPLATE_GIT_SOURCES: [(&str, &str, &str); 4] = [
    ("checkout", "platform", "kustomization"),
    ("payments", "local-config", "kustomization"),
    ("ledger", "platform", "helm"),
    ("docs", "docs-site", "kustomization"),
];
const BUNDLES: [(&str, &[&str]); 3] = [
    ("observability", &["jaeger", "grafana"]),
    ("core", &["checkout", "payments", "ledger"]),
    ("shop", &["web", "checkout", "search"]),
];

fn catalog() -> Catalog {
    let platform = || src("GitRepository", "platform", Some(FLUX));
    let charts = || src("HelmRepository", "charts", Some(FLUX));
    let mut c = Catalog::default();
    let specs = [
        AppTemplateSpec {
            kustomization: kustomization("./apps/checkout/preview", platform()),
            image_repository: image_repo("checkout"),
            image_tag_prefix: Some("main".into()),
            substitute: BTreeMap::from([("port".into(), "8080".into())]),
            ..Default::default()
        },
        AppTemplateSpec {
            kustomization: kustomization("./payments", src("GitRepository", "local-config", None)),
            image_repository: image_repo("payments"),
            image_tag_prefix: Some("main".into()),
            ..Default::default()
        },
        AppTemplateSpec {
            kustomization: kustomization("./web", src("OCIRepository", "web-oci", Some(FLUX))),
            image_repository: image_repo("web"),
            image_tag_prefix: Some("release-1.2".into()),
            ..Default::default()
        },
        AppTemplateSpec {
            helm: helm("search", Some("1.4.x"), charts()),
            image_repository: image_repo("search"),
            ..Default::default()
        },
        AppTemplateSpec {
            helm: helm("./charts/ledger", None, platform()),
            image_repository: image_repo("ledger"),
            image_tag_prefix: Some("main".into()),
            substitute: BTreeMap::from([("tier".into(), "small".into())]),
            ..Default::default()
        },
        AppTemplateSpec {
            kustomization: kustomization("./docs", src("GitRepository", "docs-site", Some(FLUX))),
            ..Default::default()
        },
        AppTemplateSpec {
            helm: helm("grafana", Some("8.x"), charts()),
            ..Default::default()
        },
        AppTemplateSpec {
            helm: helm("jaeger", None, charts()),
            ..Default::default()
        },
    ];
    for ((name, _), spec) in TEMPLATES.iter().zip(specs) {
        c.insert_template(template(name, spec));
    }
    for (name, apps) in BUNDLES {
        let mut b = AppBundle::new(
            name,
            AppBundleSpec {
                description: None,
                apps: apps.iter().map(|a| a.to_string()).collect(),
            },
        );
        b.metadata.namespace = Some(NAMESPACE.into());
        c.insert_bundle(b);
    }
    c.insert_git_repository(git_repository(FLUX, "platform", true));
    c.insert_git_repository(git_repository(FLUX, "docs-site", false));
    c.insert_git_repository(git_repository(NAMESPACE, "local-config", false));
    c
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

const LABEL_CHARS: &[char] = &[
    'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's',
    't', 'u', 'v', 'w', 'x', 'y', 'z', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '-', '-',
];

/// A DNS-1123 label with a length in `len`.
fn label(len: RangeInclusive<usize>) -> impl Strategy<Value = String> {
    len.prop_flat_map(|n| prop::collection::vec(prop::sample::select(LABEL_CHARS), n))
        .prop_map(|mut cs| {
            let last = cs.len() - 1;
            if cs[0] == '-' {
                cs[0] = 'a';
            }
            if cs[last] == '-' {
                cs[last] = '9';
            }
            cs.into_iter().collect()
        })
}

/// A valid tag prefix (short enough to leave room for a build suffix).
fn valid_prefix() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}",
        1 => "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}[.-]",
        1 => "[A-Za-z0-9_]([.][A-Za-z0-9]{1,3}){1,4}",
        1 => "[A-Za-z0-9_][A-Za-z0-9_.-]{60,75}",
    ]
}

/// Arbitrary text, with a bias towards branch-like pieces.
fn any_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => "[A-Za-z0-9._-]{1,12}",
            1 => "[/ ~:^*?\\[\\\\\t\n@#]{1,3}",
            1 => "\\PC{1,4}",
            1 => prop::collection::vec(any::<char>(), 1..4).prop_map(String::from_iter),
            1 => "[-.]{1,3}",
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

/// A git branch (arbitrary unicode) whose sanitised form is a valid prefix.
fn branch() -> impl Strategy<Value = String> {
    any_text().prop_filter("sanitises to a valid prefix", |b| {
        prefix::prefix_problem(&prefix::sanitise_branch(b)).is_none()
    })
}

fn substitute() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        "[A-Za-z_][A-Za-z0-9_]{0,8}".prop_filter("not reserved", |k| {
            !RESERVED_VARIABLES.contains(&k.as_str())
        }),
        "\\PC{0,10}",
        0..3,
    )
}

/// A timestamp this century, with sub-second noise.
fn now() -> impl Strategy<Value = Timestamp> {
    (946_684_800i64..4_102_444_800, 0i32..1_000_000_000)
        .prop_map(|(s, ns)| Timestamp::new(s, ns).unwrap())
}

#[derive(Clone, Debug)]
struct PolicyCase {
    hour: i8,
    minute: i8,
    zone: usize,
    min_minutes: i64,
    max_minutes: i64,
}

impl PolicyCase {
    fn policy(&self) -> LeasePolicy {
        LeasePolicy {
            cutoff: Time::new(self.hour, self.minute, 0, 0).unwrap(),
            zone: TimeZone::get(ZONES[self.zone]).unwrap(),
            minimum: SignedDuration::from_mins(self.min_minutes),
            maximum: SignedDuration::from_mins(self.max_minutes),
        }
    }
}

/// A lease policy with minimum ≤ maximum.
fn policy() -> impl Strategy<Value = PolicyCase> {
    (
        0i8..24,
        0i8..60,
        0..ZONES.len(),
        0i64..=24 * 60,
        60i64..=300 * 60,
    )
        .prop_map(|(hour, minute, zone, min_minutes, extra)| PolicyCase {
            hour,
            minute,
            zone,
            min_minutes,
            max_minutes: min_minutes + extra,
        })
}

#[derive(Clone, Debug)]
enum PrefixChoice {
    /// Whatever the template says (nothing for an explicit app).
    Default,
    Branch(String),
    Explicit(String),
    /// Both, agreeing: the shape of an already admitted app.
    Both(String),
}

fn prefix_choice() -> impl Strategy<Value = PrefixChoice> {
    prop_oneof![
        2 => Just(PrefixChoice::Default),
        2 => branch().prop_map(PrefixChoice::Branch),
        1 => valid_prefix().prop_map(PrefixChoice::Explicit),
        1 => branch().prop_map(PrefixChoice::Both),
    ]
}

#[derive(Clone, Debug)]
enum AppKind {
    /// From a template; `named_after` leaves `template` out and names the app after it.
    Template {
        index: usize,
        named_after: bool,
    },
    Kustomization {
        source: usize,
    },
    Helm {
        source: usize,
        version: Option<String>,
        values: bool,
    },
}

fn app_kind() -> impl Strategy<Value = AppKind> {
    prop_oneof![
        3 => (0..TEMPLATES.len(), any::<bool>())
            .prop_map(|(index, named_after)| AppKind::Template { index, named_after }),
        1 => (0..4usize).prop_map(|source| AppKind::Kustomization { source }),
        1 => (0..3usize, prop::option::of("[0-9]\\.[0-9x]{1,3}"), any::<bool>())
            .prop_map(|(source, version, values)| AppKind::Helm { source, version, values }),
    ]
}

#[derive(Clone, Debug)]
struct AppCase {
    name: String,
    kind: AppKind,
    /// For an explicit app: a template it still names (for its image
    /// repository, prefix and substitutions).
    also_template: Option<usize>,
    prefix: PrefixChoice,
    substitute: BTreeMap<String, String>,
}

fn app_case() -> impl Strategy<Value = AppCase> {
    (
        label(1..=20),
        app_kind(),
        prop::option::weighted(0.3, 0..TEMPLATES.len()),
        prefix_choice(),
        substitute(),
    )
        .prop_map(|(name, kind, also_template, prefix, substitute)| AppCase {
            name,
            kind,
            also_template,
            prefix,
            substitute,
        })
}

impl AppCase {
    fn app(&self) -> App {
        let mut app = App {
            name: self.name.clone(),
            substitute: self.substitute.clone(),
            ..App::default()
        };
        let mut has_image_repo = false;
        match &self.kind {
            AppKind::Template { index, named_after } => {
                let (t, repo) = TEMPLATES[*index];
                if *named_after {
                    app.name = t.into();
                } else {
                    app.template = Some(t.into());
                }
                has_image_repo = repo;
            }
            AppKind::Kustomization { source } => {
                let source_ref = [
                    src("GitRepository", "platform", Some(FLUX)),
                    src("OCIRepository", "web-oci", Some(FLUX)),
                    src("GitRepository", "local-config", None),
                    src("Bucket", "assets", Some(FLUX)),
                ][*source]
                    .clone();
                app.kustomization = kustomization(&format!("./apps/{}", self.name), source_ref);
            }
            AppKind::Helm {
                source,
                version,
                values,
            } => {
                let source_ref = [
                    src("HelmRepository", "charts", Some(FLUX)),
                    src("GitRepository", "platform", Some(FLUX)),
                    src("GitRepository", "docs-site", Some(FLUX)),
                ][*source]
                    .clone();
                let mut h = helm(&self.name, version.as_deref(), source_ref).unwrap();
                if !values {
                    h.values = None;
                }
                app.helm = Some(h);
            }
        }
        if let (Some(i), AppKind::Kustomization { .. } | AppKind::Helm { .. }) =
            (self.also_template, &self.kind)
        {
            app.template = Some(TEMPLATES[i].0.into());
            has_image_repo = TEMPLATES[i].1;
        }
        let needs_repo = match &self.prefix {
            PrefixChoice::Default => false,
            PrefixChoice::Branch(b) => {
                app.branch = Some(b.clone());
                true
            }
            PrefixChoice::Explicit(p) => {
                app.image_tag_prefix = Some(p.clone());
                true
            }
            PrefixChoice::Both(b) => {
                app.branch = Some(b.clone());
                app.image_tag_prefix = Some(prefix::sanitise_branch(b));
                true
            }
        };
        if needs_repo && !has_image_repo {
            app.image_repository = Some(ImageRepositoryRef {
                name: app.name.clone(),
                namespace: None,
            });
        }
        app
    }
}

#[derive(Clone, Debug)]
enum LeaseCase {
    None,
    /// A lease with only `expireAfter`: `until` is defaulted.
    Default,
    /// `until` at `frac` × maximum from now (negative: in the past), in one of
    /// several RFC 3339 spellings.
    Until {
        frac: f64,
        spelling: u8,
    },
    Schedule(usize),
}

fn lease_case() -> impl Strategy<Value = LeaseCase> {
    prop_oneof![
        2 => Just(LeaseCase::None),
        1 => Just(LeaseCase::Default),
        3 => (-0.2f64..=1.0, 0u8..3).prop_map(|(frac, spelling)| LeaseCase::Until { frac, spelling }),
        1 => (0..SCHEDULES.len()).prop_map(LeaseCase::Schedule),
    ]
}

#[derive(Clone, Debug)]
struct EnvCase {
    name: String,
    apps: Vec<AppCase>,
    bundles: Vec<usize>,
    lease: LeaseCase,
    expire_after: Option<&'static str>,
    source_branch: Option<String>,
    substitute: BTreeMap<String, String>,
    service_account: Option<String>,
    /// A stale uptime annotation: start and end, in minutes from now.
    annotation: Option<(i64, i64)>,
    always_on: bool,
    config_service_account: bool,
    policy: PolicyCase,
    now: Timestamp,
}

fn env_case() -> impl Strategy<Value = EnvCase> {
    (
        (
            label(1..=20),
            prop::collection::vec(app_case(), 0..8),
            prop::sample::subsequence(vec![0usize, 1, 2], 0..=3),
            lease_case(),
            prop::option::of(prop::sample::select(vec!["168h", "36h30m", "90m"])),
            prop::option::of("[a-z][a-z0-9]{0,7}(/[a-z0-9][a-z0-9_-]{0,7}){0,2}"),
        ),
        (
            substitute(),
            prop::option::of(label(3..=12)),
            prop::option::of((-14_400i64..14_400, -14_400i64..14_400)),
            prop::bool::weighted(0.1),
            any::<bool>(),
            policy(),
            now(),
        ),
    )
        .prop_map(
            |(
                (name, apps, bundles, lease, expire_after, source_branch),
                (
                    substitute,
                    service_account,
                    annotation,
                    always_on,
                    config_service_account,
                    policy,
                    now,
                ),
            )| EnvCase {
                name,
                apps,
                bundles,
                lease,
                expire_after,
                source_branch,
                substitute,
                service_account,
                annotation,
                always_on,
                config_service_account,
                policy,
                now,
            },
        )
}

impl EnvCase {
    fn config(&self) -> Config {
        Config {
            lease: self.policy.policy(),
            always_on: if self.always_on {
                vec!["someone-else".into(), self.name.clone()]
            } else {
                Vec::new()
            },
            service_account_name: self.config_service_account.then(|| "flux-applier".into()),
            ..Config::default()
        }
    }

    fn environment(&self) -> Environment {
        let mut apps: Vec<App> = Vec::new();
        for case in &self.apps {
            let app = case.app();
            if !apps.iter().any(|a| a.name == app.name) {
                apps.push(app);
            }
        }
        let maximum = SignedDuration::from_mins(self.policy.max_minutes);
        let lease = match &self.lease {
            LeaseCase::None => None,
            LeaseCase::Default => Some(Lease::default()),
            LeaseCase::Until { frac, spelling } => {
                let offset = (maximum.as_secs() as f64 * frac) as i64;
                let until = self.now + SignedDuration::from_secs(offset);
                let text = match spelling {
                    0 => until.to_string(),
                    1 => lease::whole_seconds(until).to_string(),
                    _ => until
                        .to_zoned(TimeZone::fixed(jiff::tz::offset(2)))
                        .strftime("%Y-%m-%dT%H:%M:%S%:z")
                        .to_string(),
                };
                Some(Lease {
                    until: Some(text),
                    ..Lease::default()
                })
            }
            LeaseCase::Schedule(i) => Some(Lease {
                schedule: Some(SCHEDULES[*i].into()),
                ..Lease::default()
            }),
        }
        .map(|mut l| {
            l.expire_after = self.expire_after.map(Into::into);
            l
        });
        let mut env = Environment::new(
            &self.name,
            EnvironmentSpec {
                apps,
                bundles: self
                    .bundles
                    .iter()
                    .map(|&i| BUNDLES[i].0.to_owned())
                    .collect(),
                lease,
                source_branch: self.source_branch.clone(),
                substitute: self.substitute.clone(),
                service_account_name: self.service_account.clone(),
            },
        );
        env.metadata.namespace = Some(NAMESPACE.into());
        if let Some((start, end)) = self.annotation {
            env.metadata.annotations = Some(BTreeMap::from([(
                UPTIME_ANNOTATION.to_owned(),
                lease::absolute_uptime(
                    lease::whole_seconds(self.now + SignedDuration::from_mins(start)),
                    lease::whole_seconds(self.now + SignedDuration::from_mins(end)),
                ),
            )]));
        }
        env
    }
}

fn object_name(o: &FluxObject) -> &str {
    let meta = match o {
        FluxObject::GitRepository(o) => &o.metadata,
        FluxObject::Kustomization(o) => &o.metadata,
        FluxObject::HelmRelease(o) => &o.metadata,
        FluxObject::ImagePolicy(o) => &o.metadata,
    };
    meta.name.as_deref().unwrap_or_default()
}

/// Checks the stamped `downscaler/uptime`: a value GoKubeDownscaler accepts,
/// and a schedule or an absolute window that does not end before it starts.
fn check_uptime(x: &Expansion) -> Result<(), TestCaseError> {
    let uptime = &x.environment.metadata.annotations.as_ref().unwrap()[UPTIME_ANNOTATION];
    if let Err(e) = downscaler::accepts(uptime) {
        return Err(TestCaseError::fail(format!(
            "GoKubeDownscaler refuses {uptime:?}: {e}"
        )));
    }
    match lease::parse_absolute_uptime(uptime) {
        Some((start, end)) => {
            prop_assert!(start <= end, "uptime ends before it starts: {uptime}");
            let until: Timestamp = x
                .environment
                .spec
                .lease
                .as_ref()
                .unwrap()
                .until
                .as_ref()
                .unwrap()
                .parse()
                .unwrap();
            prop_assert_eq!(end, until, "uptime end is the lease end");
        }
        None => prop_assert!(
            Schedule::parse(uptime).is_ok(),
            "uptime is neither absolute nor a schedule: {uptime}"
        ),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Expanding an expanded Environment changes nothing, at the same time and
    /// later the same day.
    #[test]
    fn expansion_is_idempotent(case in env_case(), later_minutes in 0i64..=24 * 60) {
        check_idempotent(case, later_minutes)?;
    }

    /// The stamped uptime never ends before it starts, whatever lease and
    /// stale annotation the Environment comes with.
    #[test]
    fn uptime_never_ends_before_it_starts(case in env_case()) {
        let env = case.environment();
        if let Ok(x) = expand(&env, &catalog(), &case.config(), case.now, OWNER) {
            check_uptime(&x)?;
        }
    }

    /// Admission's half of expansion gives exactly the Environment, warnings
    /// and denials of the whole.
    #[test]
    fn admit_is_the_first_half_of_expand(case in env_case()) {
        let env = case.environment();
        let (catalog, config) = (catalog(), case.config());
        let admitted = admit(&env, &catalog, &config, case.now, OWNER);
        let expanded = expand(&env, &catalog, &config, case.now, OWNER);
        match (admitted, expanded) {
            (Ok(a), Ok(x)) => {
                prop_assert_eq!(&a.environment, &x.environment);
                prop_assert_eq!(&a.warnings, &x.warnings);
                prop_assert_eq!(a.expand(&catalog, &config), x);
            }
            (Err(a), Err(x)) => prop_assert_eq!(a, x),
            (a, x) => prop_assert!(false, "admit {:?} but expand {:?}", a.is_ok(), x.is_ok()),
        }
    }
}

#[derive(Clone, Debug)]
struct NamesCase {
    env: String,
    generate_name: bool,
    apps: Vec<(String, usize)>,
    git: Option<String>,
}

fn names_case() -> impl Strategy<Value = NamesCase> {
    (
        prop_oneof![label(1..=20), label(20..=63)],
        any::<bool>(),
        prop::collection::vec(
            (
                prop_oneof![label(1..=12), label(12..=63)],
                0..TEMPLATES.len(),
            ),
            1..5,
        ),
        prop::option::of(prop_oneof![label(1..=20), label(20..=63)]),
    )
        .prop_map(|(env, generate_name, apps, git)| NamesCase {
            env,
            generate_name,
            apps,
            git,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Every emitted object name is a DNS-1123 label; a name that would not
    /// fit is refused with `GeneratedNameTooLong` instead.
    #[test]
    fn generated_names_are_labels_or_refused(case in names_case()) {
        check_generated_names(case)?;
    }
}

fn tag_regex() -> Regex {
    Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// A sanitised branch is either reported by `prefix_problem` (empty or too
    /// long) or a valid prefix with room for a build suffix; sanitising is
    /// idempotent.
    #[test]
    fn sanitised_prefixes_are_valid_or_reported(text in prop_oneof![any_text(), any::<String>()]) {
        let p = prefix::sanitise_branch(&text);
        prop_assert_eq!(prefix::sanitise_branch(&p), p.clone());
        prop_assert!(p.is_empty() || tag_regex().is_match(&p), "{:?} -> {:?}", text, p);
        prop_assert!(!p.starts_with(['.', '-']));
        match prefix::prefix_problem(&p) {
            None => {
                prop_assert!(!p.is_empty() && p.len() <= MAX_PREFIX);
                let tag = format!("{p}-{}-{}", "f".repeat(40), "9".repeat(10));
                prop_assert!(tag.len() <= MAX_TAG);
                prop_assert_eq!(tag.len(), p.len() + BUILD_SUFFIX);
            }
            Some(problem) => prop_assert!(p.is_empty() || p.len() > MAX_PREFIX, "{:?}: {}", p, problem),
        }
    }

    /// One run of characters outside `[A-Za-z0-9._-]` becomes exactly one `-`.
    #[test]
    fn one_run_becomes_one_dash(
        a in "[A-Za-z0-9_][A-Za-z0-9._-]{0,10}",
        run in "[^A-Za-z0-9._-]{1,6}",
        b in "[A-Za-z0-9._-]{0,10}",
    ) {
        prop_assert_eq!(prefix::sanitise_branch(&format!("{a}{run}{b}")), format!("{a}-{b}"));
    }

    /// `prefix_problem` accepts exactly the tag-shaped strings that leave room
    /// for a build suffix.
    #[test]
    fn prefix_problem_agrees_with_the_tag_grammar(text in prop_oneof![any_text(), valid_prefix(), any::<String>()]) {
        let valid = tag_regex().is_match(&text) && text.len() <= MAX_PREFIX;
        prop_assert_eq!(prefix::prefix_problem(&text).is_none(), valid, "{:?}", text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// The ImagePolicy pattern selects the builds of its prefix and extracts
    /// the timestamp, and never selects the builds of a longer prefix or of a
    /// prefix that differs only where the pattern has a metacharacter.
    #[test]
    fn policy_pattern_selects_exactly_its_prefix(
        p in valid_prefix().prop_filter("fits", |p| p.len() < MAX_PREFIX),
        sha in "[0-9a-fA-F]{7,40}",
        ts in "[0-9]{1,12}",
        rest in "[A-Za-z0-9_.-]{1,12}",
        other in "[A-Za-z0-9_]",
    ) {
        let re = Regex::new(&prefix::policy_pattern(&p)).unwrap();
        let tag = format!("{p}-{sha}-{ts}");
        let caps = re.captures(&tag);
        prop_assert!(caps.is_some(), "{} does not match {}", tag, re);
        prop_assert_eq!(&caps.unwrap()["ts"], ts.as_str());

        let q = format!("{p}{rest}");
        let longer = format!("{q}-{sha}-{ts}");
        prop_assert!(!re.is_match(&longer), "{} matches the builds of {} ({})", re, q, longer);

        let lookalike = p.replace('.', &other);
        if lookalike != p {
            prop_assert!(!re.is_match(&format!("{lookalike}-{sha}-{ts}")), "{} matches {}", re, lookalike);
        }
        // A build of p is never mistaken for a build of a prefix of p.
        for (i, _) in p.char_indices().skip(1) {
            let shorter = &p[..i];
            if prefix::prefix_problem(shorter).is_none() {
                let re_short = Regex::new(&prefix::policy_pattern(shorter)).unwrap();
                prop_assert!(!re_short.is_match(&tag), "{} matches {}", re_short, tag);
            }
        }
    }
}

#[test]
fn policy_pattern_examples() {
    let re = Regex::new(&prefix::policy_pattern("feature")).unwrap();
    assert!(re.is_match("feature-1a2b3c4-1700000000"));
    assert!(!re.is_match("feature-cafe-1a2b3c4-1700000000"));
    let re = Regex::new(&prefix::policy_pattern("fix-")).unwrap();
    assert!(re.is_match("fix--1a2b3c4-1700000000"));
    assert!(!re.is_match("fix-a-1a2b3c4-1700000000"));
    let re = Regex::new(&prefix::policy_pattern("v1.")).unwrap();
    assert!(re.is_match("v1.-cafe-1"));
    assert!(!re.is_match("v1x-cafe-1"));
    assert!(!re.is_match("v1.2-cafe-1"));
}

// ---------------------------------------------------------------------------
// Leases
// ---------------------------------------------------------------------------

/// The cut-off of the local day `date`, resolved like the core resolves it
/// (a cut-off in a gap moves forward by the gap).
fn cutoff_on(policy: &LeasePolicy, date: jiff::civil::Date) -> Timestamp {
    date.to_datetime(policy.cutoff)
        .to_zoned(policy.zone.clone())
        .unwrap()
        .timestamp()
}

/// Every cut-off in `(from, to]`.
fn cutoffs_in(policy: &LeasePolicy, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
    let mut day = from
        .to_zoned(policy.zone.clone())
        .date()
        .yesterday()
        .unwrap();
    let last = to.to_zoned(policy.zone.clone()).date().tomorrow().unwrap();
    let mut out = Vec::new();
    while day <= last {
        let c = cutoff_on(policy, day);
        if c > from && c <= to {
            out.push(c);
        }
        day = day.tomorrow().unwrap();
    }
    out
}

#[derive(Clone, Debug)]
struct LeasePolicyCase {
    policy: PolicyCase,
    /// Take the cut-off from the zone's next transition (to hit gaps and folds).
    at_transition: Option<i64>,
    /// Move `now` this many minutes from the zone's next transition.
    near_transition: Option<i64>,
}

fn lease_policy_case() -> impl Strategy<Value = LeasePolicyCase> {
    (
        (
            0i8..24,
            0i8..60,
            0..ZONES.len(),
            0i64..=48 * 60,
            0i64..=400 * 60,
        ),
        prop::option::of(-90i64..=90),
        prop::option::of(-48 * 60i64..=48 * 60),
    )
        .prop_map(
            |((hour, minute, zone, min_minutes, max_minutes), at_transition, near_transition)| {
                LeasePolicyCase {
                    policy: PolicyCase {
                        hour,
                        minute,
                        zone,
                        min_minutes,
                        max_minutes,
                    },
                    at_transition,
                    near_transition,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// `default_until` is within `[now + min, now + max]` (the maximum wins
    /// when min > max), and unless pushed by either bound it is the next
    /// cut-off in the zone.
    #[test]
    fn default_until_is_bounded_and_on_a_cutoff(case in lease_policy_case(), now in now()) {
        check_default_until(case, now)?;
    }
}

#[test]
fn cutoff_in_a_gap_moves_past_it() {
    // 01:30 does not exist in London on 2026-03-29 (01:00 GMT → 02:00 BST).
    let policy = LeasePolicy {
        cutoff: Time::constant(1, 30, 0, 0),
        zone: TimeZone::get("Europe/London").unwrap(),
        minimum: SignedDuration::ZERO,
        maximum: SignedDuration::from_hours(48),
    };
    let until = policy.default_until("2026-03-28T23:00:00Z".parse().unwrap());
    assert_eq!(until, "2026-03-29T01:30:00Z".parse::<Timestamp>().unwrap());
}

// ---------------------------------------------------------------------------
// The bodies of the larger properties
// ---------------------------------------------------------------------------

/// The generated Environment is admitted; admitting the result again, now or
/// `later_minutes` later (capped at the lease end), changes nothing.
fn check_idempotent(case: EnvCase, later_minutes: i64) -> Result<(), TestCaseError> {
    let catalog = catalog();
    let config = case.config();
    let env = case.environment();
    let first = expand(&env, &catalog, &config, case.now, OWNER)
        .map_err(|d| TestCaseError::fail(format!("generated Environment denied: {d}")))?;
    check_uptime(&first)?;
    for o in &first.objects {
        prop_assert!(
            names::is_dns1123_label(object_name(o)),
            "object name {}",
            o.display_name()
        );
    }

    let second = expand(&first.environment, &catalog, &config, case.now, OWNER)
        .map_err(|d| TestCaseError::fail(format!("admitted Environment denied: {d}")))?;
    prop_assert_eq!(&second.environment, &first.environment);
    prop_assert_eq!(&second.objects, &first.objects);

    // Later the same day, still within the lease (when it has an end).
    let lease_end = first
        .environment
        .spec
        .lease
        .as_ref()
        .and_then(|l| l.until.as_ref())
        .map(|u| u.parse::<Timestamp>().unwrap());
    let mut later = case.now + SignedDuration::from_mins(later_minutes);
    if let Some(end) = lease_end
        && end > case.now
    {
        later = later.min(end);
    }
    let third = expand(&first.environment, &catalog, &config, later, OWNER).map_err(|d| {
        TestCaseError::fail(format!("admitted Environment denied later at {later}: {d}"))
    })?;
    prop_assert_eq!(&third.environment, &first.environment);
    prop_assert_eq!(&third.objects, &first.objects);
    Ok(())
}

/// Object names are labels of at most 63 characters, and exactly the apps
/// (and GitRepository copies) whose names would not fit are refused.
fn check_generated_names(case: NamesCase) -> Result<(), TestCaseError> {
    let mut catalog = catalog();
    let mut apps: Vec<App> = Vec::new();
    for (name, t) in &case.apps {
        if !apps.iter().any(|a| a.name == *name) {
            apps.push(App {
                name: name.clone(),
                template: Some(TEMPLATES[*t].0.into()),
                ..App::default()
            });
        }
    }
    if let Some(git) = &case.git {
        catalog.insert_git_repository(git_repository(FLUX, git, false));
        catalog.insert_template(template(
            "tracked",
            AppTemplateSpec {
                kustomization: kustomization("./tracked", src("GitRepository", git, Some(FLUX))),
                ..Default::default()
            },
        ));
        if !apps.iter().any(|a| a.name == "tracked") {
            apps.push(App {
                name: "tracked".into(),
                ..App::default()
            });
        }
    }
    let spec = EnvironmentSpec {
        apps: apps.clone(),
        source_branch: case.git.as_ref().map(|_| "feature/x".to_owned()),
        ..EnvironmentSpec::default()
    };
    let (env, base) = if case.generate_name {
        let prefix = format!("{}-", &case.env[..case.env.len().min(57)]);
        let base = prefix.len() + names::GENERATE_NAME_SUFFIX;
        (
            Environment {
                metadata: ObjectMeta {
                    generate_name: Some(prefix),
                    namespace: Some(NAMESPACE.into()),
                    ..ObjectMeta::default()
                },
                spec,
                status: None,
            },
            base,
        )
    } else {
        let mut env = Environment::new(&case.env, spec);
        env.metadata.namespace = Some(NAMESPACE.into());
        (env, case.env.len())
    };

    let mut expected_too_long: Vec<String> = apps
        .iter()
        .enumerate()
        .filter(|(_, a)| base + 1 + a.name.len() > names::MAX_LABEL)
        .map(|(i, _)| format!("spec.apps[{i}].name"))
        .collect();
    if let Some(git) = &case.git {
        // Every app whose GitRepository copy would get a name too long.
        for (i, app) in apps.iter().enumerate() {
            let t = app.template.as_deref().unwrap_or(&app.name);
            let source = match TEMPLATE_GIT_SOURCES.iter().find(|(name, _, _)| *name == t) {
                Some((_, source, block)) => Some((*source, *block)),
                None if t == "tracked" => Some((git.as_str(), "kustomization")),
                None => None,
            };
            if let Some((source, block)) = source
                && base + 1 + source.len() > names::MAX_LABEL
            {
                expected_too_long.push(format!("spec.apps[{i}].{block}.sourceRef.name"));
            }
        }
    }
    expected_too_long.sort();

    match expand(
        &env,
        &catalog,
        &Config::default(),
        "2026-11-21T09:00:00Z".parse().unwrap(),
        OWNER,
    ) {
        Ok(x) => {
            prop_assert!(
                expected_too_long.is_empty(),
                "admitted although {expected_too_long:?} are too long"
            );
            if case.generate_name {
                prop_assert!(x.objects.is_empty());
            }
            for o in &x.objects {
                let name = object_name(o);
                prop_assert!(
                    name.len() <= names::MAX_LABEL && names::is_dns1123_label(name),
                    "{}",
                    o.display_name()
                );
                let expected = format!("{}-", case.env);
                prop_assert!(
                    name.starts_with(&expected),
                    "{} does not start with {}",
                    name,
                    expected
                );
            }
        }
        Err(denied) => {
            let mut too_long: Vec<String> = denied
                .violations
                .iter()
                .filter_map(|v| match v {
                    Violation::GeneratedNameTooLong { field, len, .. } => {
                        assert!(*len > names::MAX_LABEL);
                        Some(field.clone())
                    }
                    _ => None,
                })
                .collect();
            too_long.sort();
            prop_assert_eq!(&too_long, &expected_too_long, "{}", denied);
            prop_assert_eq!(
                too_long.len(),
                denied.violations.len(),
                "unexpected violations: {}",
                denied
            );
        }
    }
    Ok(())
}

/// `default_until` is bounded by min and max and otherwise the next cut-off.
fn check_default_until(case: LeasePolicyCase, now: Timestamp) -> Result<(), TestCaseError> {
    let mut policy = case.policy.policy();
    let mut now = now;
    let transition = policy.zone.following(now).next().map(|t| t.timestamp());
    if let (Some(t), Some(minutes)) = (transition, case.near_transition) {
        now = t
            + SignedDuration::from_mins(minutes)
            + SignedDuration::from_nanos(now.subsec_nanosecond().into());
    }
    if let (Some(t), Some(minutes)) = (transition, case.at_transition) {
        // The local time just before the transition, moved a little.
        let before = (t - SignedDuration::from_secs(1)).to_zoned(policy.zone.clone());
        let time = before
            .time()
            .wrapping_add(SignedDuration::from_mins(minutes));
        policy.cutoff = Time::new(time.hour(), time.minute(), 0, 0).unwrap();
    }

    let until = policy.default_until(now);
    let now_s = lease::whole_seconds(now);
    let floor = now_s + policy.minimum;
    let ceiling = now_s + policy.maximum;
    prop_assert_eq!(until, lease::whole_seconds(until));
    prop_assert!(until <= ceiling, "{} after now + max {}", until, ceiling);
    if policy.minimum <= policy.maximum {
        prop_assert!(until >= floor, "{} before now + min {}", until, floor);
    } else {
        prop_assert_eq!(until, ceiling);
    }

    let ordered = policy.minimum <= policy.maximum;
    let pushed = ordered && until == floor;
    let capped = until == ceiling;
    if !pushed && !capped {
        // Not pushed by a bound: the next cut-off.
        prop_assert_eq!(
            cutoffs_in(&policy, now_s, until),
            vec![until],
            "not the next cut-off after {}",
            now_s
        );
        let local = until.to_zoned(policy.zone.clone());
        if local.time() != policy.cutoff {
            // Only when the cut-off does not exist that day (a DST gap).
            let day = if local.time() > policy.cutoff {
                local.date()
            } else {
                local.date().yesterday().unwrap()
            };
            let ambiguous = policy
                .zone
                .to_ambiguous_timestamp(day.to_datetime(policy.cutoff));
            prop_assert!(
                matches!(ambiguous.offset(), AmbiguousOffset::Gap { .. }),
                "{} is not at the cut-off {}",
                local,
                policy.cutoff
            );
        }
    } else if pushed && !capped {
        // Pushed by the minimum: the next cut-off came no later.
        prop_assert!(
            !cutoffs_in(&policy, now_s, floor).is_empty(),
            "pushed to now + min although no cut-off came first"
        );
    } else if capped && ordered && !pushed {
        // Capped by the maximum: no cut-off came first.
        prop_assert!(
            cutoffs_in(&policy, now_s, ceiling - SignedDuration::from_secs(1)).is_empty(),
            "capped although a cut-off came first"
        );
    }
    Ok(())
}
