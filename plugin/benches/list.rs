//! `kubectl ephemeral list` formatting of 1,000 environments: table, wide,
//! and for scale, serialising the same list with serde_json (the baseline,
//! measured in the same run). Prints mean, p50, p99 and environments/s.
//!
//! cargo bench -p kubectl-ephemeral --bench list

use std::hint::black_box;
use std::time::{Duration, Instant};

use ephemeral_core::Environment;
use kubectl_ephemeral::cli::ListFormat;
use kubectl_ephemeral::cmd::list::{Layout, table_text};
use kubectl_ephemeral::time::Clock;
use serde_json::json;

const ENVIRONMENTS: usize = 1_000;
const ROUNDS: usize = 200;

/// Environments as the cluster holds them: owner, uptime, three apps, a status.
fn environments() -> Vec<Environment> {
    (0..ENVIRONMENTS)
        .map(|i| {
            let until = format!("2026-11-{:02}T19:00:00Z", 15 + i % 14);
            let lease = if i % 10 == 0 {
                json!({"schedule": "Mon-Fri 07:00-19:00 Europe/London"})
            } else {
                json!({"until": until})
            };
            serde_json::from_value(json!({
                "apiVersion": "ephemeral.io/v1alpha1", "kind": "Environment",
                "metadata": {"name": format!("env-{i:04}-feature-branch"), "namespace": format!("team-{}", i % 7),
                    "creationTimestamp": "2026-11-20T09:00:00Z",
                    "annotations": {"ephemeral.io/owner": format!("user{}@example.com", i % 50),
                        "downscaler/uptime": format!("2026-11-20T09:00:00+00:00-{}", until.replace('Z', "+00:00"))}},
                "spec": {"apps": [
                    {"name": "checkout", "branch": format!("feature/x-{i}"), "imageTagPrefix": format!("feature-x-{i}")},
                    {"name": "payments", "imageTagPrefix": "main"},
                    {"name": "web", "imageTagPrefix": "main"}],
                    "lease": lease},
                "status": {"readyApps": format!("{}/3", i % 4), "observedGeneration": 1,
                    "conditions": [{"type": "Ready", "status": if i % 4 == 3 { "True" } else { "False" },
                        "reason": "Progressing", "message": "", "lastTransitionTime": "2026-11-20T09:05:00Z"}]}
            }))
            .unwrap()
        })
        .collect()
}

struct Stats {
    mean: Duration,
    p50: Duration,
    p99: Duration,
}

fn measure(mut f: impl FnMut()) -> Stats {
    for _ in 0..10 {
        f();
    }
    let mut samples: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / ROUNDS as u32;
    Stats {
        mean,
        p50: samples[ROUNDS / 2],
        p99: samples[ROUNDS * 99 / 100],
    }
}

fn report(name: &str, s: &Stats, baseline: &Stats) {
    println!(
        "{name:<28} mean {:>8.3} ms   p50 {:>8.3} ms   p99 {:>8.3} ms   {:>10.0} envs/s   {:>5.2}x baseline",
        s.mean.as_secs_f64() * 1e3,
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3,
        ENVIRONMENTS as f64 / s.mean.as_secs_f64(),
        s.mean.as_secs_f64() / baseline.mean.as_secs_f64(),
    );
}

fn main() {
    let envs = environments();
    let clock = Clock::fixed(
        "2026-11-21T12:00:00Z".parse().unwrap(),
        jiff::tz::TimeZone::UTC,
    );
    let layout = |format, colour| Layout {
        format,
        namespaces: true,
        headers: true,
        colour,
    };
    println!("list: {ENVIRONMENTS} environments, {ROUNDS} rounds each");
    let baseline = measure(|| {
        black_box(serde_json::to_vec(black_box(&envs)).unwrap());
    });
    report("baseline: serde_json::to_vec", &baseline, &baseline);
    let table = measure(|| {
        black_box(table_text(
            black_box(&envs),
            layout(ListFormat::Table, false),
            &clock,
        ));
    });
    report("table -A", &table, &baseline);
    let wide = measure(|| {
        black_box(table_text(
            black_box(&envs),
            layout(ListFormat::Wide, false),
            &clock,
        ));
    });
    report("wide -A", &wide, &baseline);
    let colour = measure(|| {
        black_box(table_text(
            black_box(&envs),
            layout(ListFormat::Table, true),
            &clock,
        ));
    });
    report("table -A, coloured", &colour, &baseline);
}
