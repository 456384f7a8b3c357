//! Benchmark of `expand`: Environments of 1, 10 and 100 apps against a
//! catalog of 120 templates (Kustomization and Helm apps, a third of them on
//! a branch, `sourceBranch` set).
//!
//! Because benchmark machines are noisy, the run ends with a same-run report:
//! the ratio of `expand` to a baseline (serialising the same Environment with
//! `serde_json`), and throughput plus p50/p90/p99 latency of single expands
//! of the 100-app Environment.
//!
//! `cargo bench -p ephemeral-core --bench expand`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use ephemeral_core::api::{
    App, AppBundleSpec, AppTemplateSpec, EnvironmentSpec, HelmSource, ImageRepositoryRef,
    KustomizationSource, SourceRef,
};
use ephemeral_core::flux::{GitRepository, GitRepositorySpec};
use ephemeral_core::{AppBundle, AppTemplate, Catalog, Config, Environment, expand};
use jiff::Timestamp;

const NAMESPACE: &str = "ephemeral";
const FLUX: &str = "flux-system";
const OWNER: &str = "alice@example.com";
const ENV: &str = "bench";
const TEMPLATES: usize = 120;
const SIZES: [usize; 3] = [1, 10, 100];

fn source(kind: &str, name: &str) -> SourceRef {
    SourceRef {
        kind: kind.into(),
        name: name.into(),
        namespace: Some(FLUX.into()),
    }
}

fn template_name(i: usize) -> String {
    format!("svc-{i:03}")
}

/// 120 templates (every third a Helm chart), two bundles, the GitRepository
/// that `sourceBranch` copies, and resolved tags for some ImagePolicies.
fn catalog() -> Catalog {
    let mut catalog = Catalog::default();
    for i in 0..TEMPLATES {
        let name = template_name(i);
        let mut spec = AppTemplateSpec {
            description: Some(format!("Service {i}")),
            image_repository: Some(ImageRepositoryRef {
                name: name.clone(),
                namespace: Some(FLUX.into()),
            }),
            image_tag_prefix: Some("main".into()),
            substitute: BTreeMap::from([
                ("port".into(), "8080".into()),
                ("tier".into(), "small".into()),
            ]),
            ..AppTemplateSpec::default()
        };
        if i % 3 == 2 {
            spec.helm = Some(HelmSource {
                chart: name.clone(),
                version: Some("1.4.x".into()),
                source_ref: source("HelmRepository", "charts"),
                values: Some(serde_json::Map::from_iter([
                    ("replicas".to_owned(), serde_json::json!(1)),
                    (
                        "resources".to_owned(),
                        serde_json::json!({"requests": {"cpu": "50m", "memory": "64Mi"}}),
                    ),
                    ("image".to_owned(), serde_json::json!({"repository": name})),
                ])),
            });
        } else {
            spec.kustomization = Some(KustomizationSource {
                path: format!("./apps/{name}/preview"),
                source_ref: source("GitRepository", "platform"),
            });
        }
        let mut t = AppTemplate::new(&name, spec);
        t.metadata.namespace = Some(NAMESPACE.into());
        catalog.insert_template(t);
        if i % 3 == 1 {
            let child = format!("{ENV}-{name}");
            catalog.insert_image_tag(NAMESPACE, &child, "main-0123456789abcdef-1700000000");
        }
    }
    for (name, apps) in [("observability", [118, 119]), ("payments", [20, 21])] {
        let mut b = AppBundle::new(
            name,
            AppBundleSpec {
                description: None,
                apps: apps.iter().map(|&i| template_name(i)).collect(),
            },
        );
        b.metadata.namespace = Some(NAMESPACE.into());
        catalog.insert_bundle(b);
    }
    let mut git = GitRepository::new(
        "platform",
        GitRepositorySpec {
            url: "https://git.example.com/platform.git".into(),
            interval: "1m".into(),
            timeout: "60s".into(),
            ..GitRepositorySpec::default()
        },
    );
    git.metadata.namespace = Some(FLUX.into());
    catalog.insert_git_repository(git);
    catalog
}

/// An Environment of `apps` template apps, a third of them on a branch.
fn environment(apps: usize) -> Environment {
    let apps = (0..apps)
        .map(|i| App {
            name: template_name(i),
            branch: (i % 3 == 0).then(|| format!("feature/JIRA-{i}_new basket")),
            ..App::default()
        })
        .collect();
    let mut env = Environment::new(
        ENV,
        EnvironmentSpec {
            apps,
            source_branch: Some("feature/infra".into()),
            substitute: BTreeMap::from([("region".into(), "eu-west-1".into())]),
            ..EnvironmentSpec::default()
        },
    );
    env.metadata.namespace = Some(NAMESPACE.into());
    env
}

fn now() -> Timestamp {
    "2026-11-21T09:15:00Z".parse().unwrap()
}

fn criterion_benches(c: &mut Criterion, catalog: &Catalog, config: &Config) {
    let mut group = c.benchmark_group("expand");
    for n in SIZES {
        let env = environment(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &env, |b, env| {
            b.iter(|| expand(black_box(env), catalog, config, now(), OWNER).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("baseline_serde_json");
    for n in SIZES {
        let env = environment(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &env, |b, env| {
            b.iter(|| serde_json::to_string(black_box(env)).unwrap())
        });
    }
    group.finish();
}

/// Mean time per call of `f`, over `rounds` rounds of `batch` calls.
fn mean_time<R>(rounds: usize, batch: usize, mut f: impl FnMut() -> R) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..batch {
            black_box(f());
        }
        total += start.elapsed();
    }
    total / (rounds * batch) as u32
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() - 1) * p / 100]
}

/// The same-run report: ratios to the baseline and latency percentiles.
fn same_run_report(catalog: &Catalog, config: &Config, full: bool) {
    let (rounds, samples) = if full { (200, 2_000) } else { (2, 20) };
    println!();
    println!("same-run report (expand vs serde_json::to_string of the same Environment)");
    println!("(and, for scale, serialising what expand returns: the Environment and its objects)");
    println!(
        "{:>5}  {:>12}  {:>12}  {:>7}  {:>14}  {:>12}  {:>7}",
        "apps", "expand", "baseline", "ratio", "apps/s", "ser. output", "ratio"
    );
    for n in SIZES {
        let env = environment(n);
        let batch = (1_000 / n).max(1);
        // Warm up, then interleave the two so that noise hits both alike.
        mean_time(rounds / 4 + 1, batch, || {
            expand(&env, catalog, config, now(), OWNER).unwrap()
        });
        let mut expand_total = Duration::ZERO;
        let mut base_total = Duration::ZERO;
        let mut output_total = Duration::ZERO;
        let output = expand(&env, catalog, config, now(), OWNER).unwrap();
        let output = (&output.environment, &output.objects);
        for _ in 0..4 {
            expand_total += mean_time(rounds / 4 + 1, batch, || {
                expand(black_box(&env), catalog, config, now(), OWNER).unwrap()
            });
            base_total += mean_time(rounds / 4 + 1, batch, || {
                serde_json::to_string(black_box(&env)).unwrap()
            });
            output_total += mean_time(rounds / 4 + 1, batch, || {
                serde_json::to_string(black_box(&output)).unwrap()
            });
        }
        let (e, b, o) = (expand_total / 4, base_total / 4, output_total / 4);
        println!(
            "{n:>5}  {:>12}  {:>12}  {:>6.1}x  {:>14.0}  {:>12}  {:>6.2}x",
            format!("{e:.2?}"),
            format!("{b:.2?}"),
            e.as_secs_f64() / b.as_secs_f64(),
            n as f64 / e.as_secs_f64(),
            format!("{o:.2?}"),
            e.as_secs_f64() / o.as_secs_f64(),
        );
    }

    let env = environment(100);
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            black_box(expand(black_box(&env), catalog, config, now(), OWNER).unwrap());
            start.elapsed()
        })
        .collect();
    times.sort();
    let total: Duration = times.iter().sum();
    println!();
    println!(
        "single expands of the 100-app Environment ({samples} samples): \
         p50 {:.2?}  p90 {:.2?}  p99 {:.2?}  max {:.2?}  mean {:.2?}  throughput {:.0} expands/s = {:.0} apps/s",
        percentile(&times, 50),
        percentile(&times, 90),
        percentile(&times, 99),
        times[times.len() - 1],
        total / samples as u32,
        samples as f64 / total.as_secs_f64(),
        100.0 * samples as f64 / total.as_secs_f64(),
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and then
    // criterion runs each benchmark once and the report is a smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let catalog = catalog();
    let config = Config::default();
    let expansion = expand(&environment(100), &catalog, &config, now(), OWNER).unwrap();
    assert_eq!(expansion.environment.spec.apps.len(), 100);
    assert_eq!(expansion.objects.len(), 1 + 100 + 100);

    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    criterion_benches(&mut c, &catalog, &config);
    c.final_summary();

    same_run_report(&catalog, &config, full);
}
