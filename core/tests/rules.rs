//! Each expansion rule, one at a time: the violation a user gets, naming the
//! field, the rule and the fix.

use ephemeral_core::api::{
    App, AppTemplateSpec, EnvironmentSpec, HelmSource, ImageRepositoryRef, KustomizationSource,
    Lease, SourceRef,
};
use ephemeral_core::{AppTemplate, Catalog, Config, Environment, Violation, expand};
use jiff::Timestamp;

const NOW: &str = "2026-11-21T09:00:00Z";

fn source(kind: &str, namespace: Option<&str>) -> SourceRef {
    SourceRef {
        kind: kind.into(),
        name: "platform".into(),
        namespace: namespace.map(Into::into),
    }
}

fn catalog() -> Catalog {
    let mut catalog = Catalog::default();
    let mut t = AppTemplate::new(
        "checkout",
        AppTemplateSpec {
            kustomization: Some(KustomizationSource {
                path: "./apps/checkout".into(),
                source_ref: source("GitRepository", Some("flux-system")),
            }),
            image_repository: Some(ImageRepositoryRef {
                name: "checkout".into(),
                namespace: Some("flux-system".into()),
            }),
            image_tag_prefix: Some("main".into()),
            ..AppTemplateSpec::default()
        },
    );
    t.metadata.namespace = Some("ephemeral".into());
    catalog.insert_template(t);
    catalog
}

fn env(name: &str, spec: EnvironmentSpec) -> Environment {
    let mut e = Environment::new(name, spec);
    e.metadata.namespace = Some("ephemeral".into());
    e
}

fn app(name: &str) -> App {
    App {
        name: name.into(),
        ..App::default()
    }
}

fn violations(e: &Environment) -> Vec<Violation> {
    expand(
        e,
        &catalog(),
        &Config::default(),
        NOW.parse::<Timestamp>().unwrap(),
        "alice",
    )
    .expect_err("must be refused")
    .violations
}

fn admitted(e: &Environment) -> ephemeral_core::Expansion {
    expand(
        e,
        &catalog(),
        &Config::default(),
        NOW.parse::<Timestamp>().unwrap(),
        "alice",
    )
    .expect("must be admitted")
}

fn only(e: &Environment) -> Violation {
    let v = violations(e);
    assert_eq!(v.len(), 1, "{v:#?}");
    v.into_iter().next().unwrap()
}

#[test]
fn an_unknown_template_is_named_by_the_field_that_chose_it() {
    // By the app's name when no template is given, by `template` otherwise;
    // an explicit app needs none.
    let mut named = app("orders");
    named.template = Some("chekout".into());
    let mut explicit = app("written-out");
    explicit.kustomization = Some(KustomizationSource {
        path: "./x".into(),
        source_ref: source("GitRepository", Some("flux-system")),
    });
    let v = violations(&env(
        "e",
        EnvironmentSpec {
            apps: vec![app("search"), named, app("checkout"), explicit],
            ..Default::default()
        },
    ));
    let fields: Vec<&str> = v.iter().map(Violation::field).collect();
    assert_eq!(
        fields,
        ["spec.apps[0].name", "spec.apps[1].template"],
        "{v:#?}"
    );
    assert!(
        v[0].to_string().contains("AppTemplate 'search'"),
        "{}",
        v[0]
    );
    assert!(
        v[1].to_string().contains("AppTemplate 'chekout'"),
        "{}",
        v[1]
    );
    assert!(v[1].to_string().contains("checkout"), "{}", v[1]);
}

#[test]
fn sources_outside_the_allowed_namespaces_are_refused() {
    let mut a = app("checkout");
    a.kustomization = Some(KustomizationSource {
        path: "./x".into(),
        source_ref: source("GitRepository", Some("team-b")),
    });
    let v = only(&env(
        "e",
        EnvironmentSpec {
            apps: vec![a],
            ..Default::default()
        },
    ));
    assert_eq!(v.field(), "spec.apps[0].kustomization.sourceRef.namespace");
    assert!(v.to_string().contains("'team-b' is not allowed"), "{v}");
    assert!(v.to_string().contains("flux-system"), "{v}");
}

#[test]
fn source_kinds_flux_does_not_accept_are_refused() {
    let mut a = app("search");
    a.helm = Some(HelmSource {
        chart: "search".into(),
        source_ref: source("OCIRepository", None),
        ..HelmSource::default()
    });
    let v = only(&env(
        "e",
        EnvironmentSpec {
            apps: vec![a],
            ..Default::default()
        },
    ));
    assert_eq!(v.field(), "spec.apps[0].helm.sourceRef.kind");
    assert!(
        v.to_string()
            .contains("HelmRepository, GitRepository, Bucket"),
        "{v}"
    );
}

#[test]
fn both_kustomization_and_helm_are_refused() {
    let mut a = app("checkout");
    a.helm = Some(HelmSource {
        chart: "c".into(),
        source_ref: source("HelmRepository", None),
        ..HelmSource::default()
    });
    a.kustomization = Some(KustomizationSource {
        path: "./x".into(),
        source_ref: source("GitRepository", None),
    });
    let v = only(&env(
        "e",
        EnvironmentSpec {
            apps: vec![a],
            ..Default::default()
        },
    ));
    assert!(
        v.to_string().contains("sets both kustomization and helm"),
        "{v}"
    );
}

#[test]
fn a_prefix_needs_an_image_repository() {
    let mut a = app("search");
    a.helm = Some(HelmSource {
        chart: "search".into(),
        source_ref: source("HelmRepository", None),
        ..HelmSource::default()
    });
    a.branch = Some("feature/x".into());
    let v = only(&env(
        "e",
        EnvironmentSpec {
            apps: vec![a],
            ..Default::default()
        },
    ));
    assert!(matches!(v, Violation::MissingImageRepository { .. }), "{v}");
    assert!(v.to_string().contains("set imageRepository"), "{v}");
}

#[test]
fn source_branch_needs_its_git_repository() {
    let spec = EnvironmentSpec {
        apps: vec![app("checkout")],
        source_branch: Some("feature/infra".into()),
        ..Default::default()
    };
    let v = only(&env("e", spec));
    assert_eq!(v.field(), "spec.apps[0].kustomization.sourceRef");
    assert!(
        v.to_string()
            .contains("GitRepository flux-system/platform, which does not exist"),
        "{v}"
    );
}

#[test]
fn bad_source_branches_and_lease_fields_are_refused() {
    let spec = EnvironmentSpec {
        apps: vec![app("checkout")],
        source_branch: Some("feature branch".into()),
        lease: Some(Lease {
            until: Some("tomorrow".into()),
            expire_after: Some("7d".into()),
            ..Lease::default()
        }),
        ..Default::default()
    };
    let v = violations(&env("e", spec));
    let fields: Vec<&str> = v.iter().map(Violation::field).collect();
    assert!(fields.contains(&"spec.sourceBranch"), "{fields:?}");
    assert!(fields.contains(&"spec.lease.until"), "{fields:?}");
    assert!(fields.contains(&"spec.lease.expireAfter"), "{fields:?}");
}

#[test]
fn until_and_schedule_together_are_refused() {
    let spec = EnvironmentSpec {
        apps: vec![app("checkout")],
        lease: Some(Lease {
            until: Some("2026-11-21T19:00:00Z".into()),
            schedule: Some("Mon-Fri 07:00-19:00 UTC".into()),
            ..Lease::default()
        }),
        ..Default::default()
    };
    let v = only(&env("e", spec));
    assert!(
        v.to_string().contains("set only one of until or schedule"),
        "{v}"
    );
}

#[test]
fn a_bad_schedule_names_the_window_and_the_form() {
    let spec = EnvironmentSpec {
        apps: vec![app("checkout")],
        lease: Some(Lease {
            schedule: Some("Mon-Fri 07:00-19:00 Mars/Olympus".into()),
            ..Lease::default()
        }),
        ..Default::default()
    };
    let v = only(&env("e", spec)).to_string();
    assert!(v.contains("'Mars/Olympus' is not an IANA time zone"), "{v}");
    assert!(v.contains("Mon-Fri 07:00-19:00 Europe/London"), "{v}");
}

#[test]
fn a_zone_is_written_as_the_iana_database_spells_it_with_a_warning() {
    let spec = EnvironmentSpec {
        apps: vec![app("checkout")],
        lease: Some(Lease {
            schedule: Some(" mon-fri 07:00-19:00 utc".into()),
            ..Lease::default()
        }),
        ..Default::default()
    };
    let x = admitted(&env("e", spec));
    let written = "Mon-Fri 07:00-19:00 UTC";
    assert_eq!(
        x.environment.spec.lease.unwrap().schedule.as_deref(),
        Some(written)
    );
    assert_eq!(
        x.environment.metadata.annotations.unwrap()["downscaler/uptime"],
        written
    );
    assert_eq!(
        x.warnings,
        [format!(
            "spec.lease.schedule: time zone 'utc' is 'UTC' in the IANA database (GoKubeDownscaler matches zone names exactly); written as '{written}'"
        )]
    );
}

#[test]
fn a_schedule_in_another_form_is_written_in_the_downscalers_with_a_warning() {
    let spec = EnvironmentSpec {
        apps: vec![app("checkout")],
        lease: Some(Lease {
            schedule: Some("fri-mon  22:00-06:00 UTC,sat-sat 10:00-14:00 UTC".into()),
            ..Lease::default()
        }),
        ..Default::default()
    };
    let x = admitted(&env("e", spec));
    assert_eq!(
        x.warnings,
        [
            "spec.lease.schedule: written as 'Fri-Mon 22:00-06:00 UTC, Sat-Sat 10:00-14:00 UTC', GoKubeDownscaler's form"
        ]
    );
}

#[test]
fn a_schedule_already_in_the_downscalers_form_is_kept_without_a_warning() {
    let written = "Mon-Fri 07:00-19:00 Europe/London";
    let spec = EnvironmentSpec {
        apps: vec![app("checkout")],
        lease: Some(Lease {
            schedule: Some(format!("  {written} ")),
            ..Lease::default()
        }),
        ..Default::default()
    };
    let x = admitted(&env("e", spec));
    assert_eq!(
        x.environment.spec.lease.unwrap().schedule.as_deref(),
        Some(written)
    );
    assert!(x.warnings.is_empty(), "{:?}", x.warnings);
}

#[test]
fn an_unknown_zone_is_refused_with_the_iana_name_in_the_fix() {
    let spec = EnvironmentSpec {
        apps: vec![app("checkout")],
        lease: Some(Lease {
            schedule: Some("Mon-Fri 07:00-19:00 UTC, Sat-Sat 10:00-14:00 london".into()),
            ..Lease::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        only(&env("e", spec)).to_string(),
        "spec.lease.schedule: window 2 ('Sat-Sat 10:00-14:00 london'): 'london' is not an IANA time zone. Fix: write the zone as 'Europe/London'"
    );
}

#[test]
fn an_until_before_year_0000_is_refused() {
    // jiff reads six-digit years; RFC 3339 (and the downscaler) has four.
    let spec = EnvironmentSpec {
        apps: vec![app("checkout")],
        lease: Some(Lease {
            until: Some("-000001-01-01T00:00:00Z".into()),
            ..Lease::default()
        }),
        ..Default::default()
    };
    let v = only(&env("e", spec));
    assert_eq!(v.field(), "spec.lease.until");
    assert!(v.to_string().contains("is not an RFC 3339 time"), "{v}");
}

#[test]
fn an_always_on_schedule_is_written_as_configured_after_parsing() {
    let config = Config {
        always_on: vec!["e".into()],
        always_on_schedule: ephemeral_core::schedule::Schedule::parse(
            "mon-sun 00:00-24:00 etc/utc",
        )
        .unwrap(),
        ..Config::default()
    };
    let e = env(
        "e",
        EnvironmentSpec {
            apps: vec![app("checkout")],
            ..Default::default()
        },
    );
    let x = expand(&e, &catalog(), &config, NOW.parse().unwrap(), "alice").unwrap();
    assert_eq!(
        x.environment.metadata.annotations.unwrap()["downscaler/uptime"],
        "Mon-Sun 00:00-24:00 Etc/UTC"
    );
}

#[test]
fn generate_name_counts_the_random_suffix() {
    let mut e = env(
        "",
        EnvironmentSpec {
            apps: vec![app("checkout")],
            ..Default::default()
        },
    );
    e.metadata.name = None;
    e.metadata.generate_name = Some(format!("{}-", "a".repeat(48)));
    // 49 + 5 random characters + "-checkout" = 63: allowed, no children yet.
    let ok = expand(
        &e,
        &catalog(),
        &Config::default(),
        NOW.parse().unwrap(),
        "alice",
    )
    .unwrap();
    assert!(ok.objects.is_empty());
    e.metadata.generate_name = Some(format!("{}-", "a".repeat(49)));
    let v = only(&e);
    assert!(
        matches!(v, Violation::GeneratedNameTooLong { len: 64, .. }),
        "{v}"
    );
}

#[test]
fn a_nameless_environment_is_refused() {
    let mut e = env(
        "",
        EnvironmentSpec {
            apps: vec![app("checkout")],
            ..Default::default()
        },
    );
    e.metadata.name = None;
    assert_eq!(only(&e), Violation::MissingName);
}

#[test]
fn invalid_and_reserved_substitute_keys_are_refused() {
    let mut a = app("checkout");
    a.substitute.insert("image_tag".into(), "x".into());
    a.substitute.insert("1st".into(), "x".into());
    let v = violations(&env(
        "e",
        EnvironmentSpec {
            apps: vec![a],
            ..Default::default()
        },
    ));
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(v.iter().all(|v| v.field() == "spec.apps[0].substitute"));
}

#[test]
fn service_accounts_outside_the_allow_list_are_refused() {
    let config = Config {
        allowed_service_accounts: vec!["flux-deployer".into(), "flux-reader".into()],
        ..Config::default()
    };
    let now = NOW.parse::<Timestamp>().unwrap();
    let with_account = |name: Option<&str>| {
        env(
            "alice",
            EnvironmentSpec {
                apps: vec![app("checkout")],
                service_account_name: name.map(Into::into),
                ..EnvironmentSpec::default()
            },
        )
    };

    let denied = expand(
        &with_account(Some("admin")),
        &catalog(),
        &config,
        now,
        "alice",
    )
    .expect_err("an account off the list is refused");
    assert_eq!(
        denied.violations,
        vec![Violation::ServiceAccountNotAllowed {
            name: "admin".into(),
            allowed: vec!["flux-deployer".into(), "flux-reader".into()],
        }]
    );
    assert_eq!(denied.violations[0].field(), "spec.serviceAccountName");
    assert_eq!(
        denied.to_string(),
        "spec.serviceAccountName: 'admin' is not a service account Flux may impersonate for Environments. Fix: use one of: flux-deployer, flux-reader, or leave it out to get the default"
    );

    // On the list: admitted and passed to every Flux child.
    let admitted = expand(
        &with_account(Some("flux-reader")),
        &catalog(),
        &config,
        now,
        "alice",
    )
    .unwrap();
    assert_eq!(
        admitted.environment.spec.service_account_name.as_deref(),
        Some("flux-reader")
    );
    let kustomization = admitted
        .objects
        .iter()
        .find_map(|o| match o {
            ephemeral_core::flux::FluxObject::Kustomization(k) => Some(k),
            _ => None,
        })
        .expect("the checkout app is a Kustomization");
    assert_eq!(
        kustomization.spec.service_account_name.as_deref(),
        Some("flux-reader")
    );
    // None named and no default: Flux's own default applies, nothing to check.
    assert!(expand(&with_account(None), &catalog(), &config, now, "alice").is_ok());
    // A cluster default off the list is a misconfiguration, and says so.
    let misconfigured = Config {
        service_account_name: Some("default".into()),
        ..config.clone()
    };
    let denied = expand(
        &with_account(None),
        &catalog(),
        &misconfigured,
        now,
        "alice",
    )
    .expect_err("the defaulted account is checked too");
    assert_eq!(denied.violations[0].field(), "spec.serviceAccountName");
    // Without an allow-list any account passes (the default).
    assert!(
        expand(
            &with_account(Some("admin")),
            &catalog(),
            &Config::default(),
            now,
            "alice"
        )
        .is_ok()
    );
}
