//! Load benchmark of admission: the real `ephemeral-webhook serve
//! --controller=false --catalog-dir examples/catalog` against two baselines
//! on the same stack, with the same client and the same request, in one run:
//!
//! - **fixed answer**: axum + axum-server + rustls answering a constant
//!   AdmissionReview, the ceiling of the stack;
//! - **minimal webhook**: decodes the review into kube's
//!   `AdmissionRequest<DynamicObject>` and answers a one-label JSONPatch.
//!
//! The client is `wrk` (Debian package `wrk`): `BENCH_THREADS` threads (2)
//! and `BENCH_CONNECTIONS` keep-alive TLS connections (32) on loopback POST
//! the AdmissionReview of a 10-app Environment CREATE (about 1.3 KB) to
//! `/mutate` for `BENCH_SECONDS` (10) per server, after a 2 s warm-up. Every
//! server's answer is checked first. Printed per server: requests per second,
//! latency percentiles (p50, p99, p99.9), errors, and peak RSS (`VmHWM` of
//! `/proc/PID/status`), then the ratios the goals are stated in.
//!
//! Also printed: the server's CPU time per request (user + system, from
//! `/proc/PID/stat` over the measured window), steadier than req/s on a
//! shared machine because it does not count wrk's time.
//!
//! The baselines run in this binary with the webhook's allocator (mimalloc,
//! as its `main.rs` sets), so that the ratios compare the work of the
//! servers, not of allocators.
//!
//! The webhook runs twice: with `RUST_LOG=warn`, and at the default level
//! (`info`, one line per request, written to a file). `BENCH_COMPARE=PATH`
//! adds rows for another `ephemeral-webhook` binary (e.g. a build of an
//! older commit); `BENCH_ROUNDS=N` repeats the whole set N times. The
//! table shows each measure's median over the rounds; the goals' ratios are
//! the medians of each round's ratio (servers of one round run seconds
//! apart, so a drift of the machine's speed between rounds cancels out), with
//! the ratios of the table's medians beside them.
//!
//! `BENCH_INSTRUCTIONS=1` measures something else instead: each server's
//! user-space instructions per request under callgrind (see
//! `instructions.rs`), steady from run to run where req/s is not.
//!
//! Run: `cargo bench -p ephemeral-webhook --bench admission` (release build).
//! The numbers are only comparable within one run on one machine.

mod baseline;
mod instructions;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baseline::Baseline;
use ephemeral_testkit::webhook::{Pki, free_port, handshake, post_request, send, write_cert};
use serde_json::{Value, json};
use tokio_rustls::rustls::pki_types::ServerName;

/// The webhook binary's allocator, for the baselines too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `request.uid` of the benchmark's review (the fixed answer echoes it).
pub const REVIEW_UID: &str = "7c1e6a52-0b0e-4f6e-9a4e-10a9b1e2c3d4";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a valid value")),
        Err(_) => default,
    }
}

/// The AdmissionReview of a 10-app Environment CREATE against the example
/// catalog: the five templates, each used twice, with branches, a prefix and
/// substitutions.
fn review() -> Value {
    let apps = json!([
        {"name": "checkout", "branch": "feature/new-basket"},
        {"name": "payments"},
        {"name": "web", "imageTagPrefix": "feature-web-2"},
        {"name": "jaeger"},
        {"name": "grafana"},
        {"name": "orders", "template": "checkout", "substitute": {"port": "9090"}},
        {"name": "refunds", "template": "payments", "branch": "fix/refund-rounding"},
        {"name": "admin", "template": "web"},
        {"name": "tracing", "template": "jaeger"},
        {"name": "dashboards", "template": "grafana"}
    ]);
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": REVIEW_UID,
            "kind": {"group": "ephemeral.io", "version": "v1alpha1", "kind": "Environment"},
            "resource": {"group": "ephemeral.io", "version": "v1alpha1", "resource": "environments"},
            "requestKind": {"group": "ephemeral.io", "version": "v1alpha1", "kind": "Environment"},
            "requestResource": {"group": "ephemeral.io", "version": "v1alpha1", "resource": "environments"},
            "name": "alice-basket",
            "namespace": "ephemeral",
            "operation": "CREATE",
            "userInfo": {
                "username": "alice",
                "uid": "5f4b1c1e-8c9d-4c59-a0a4-0e6f1d2c3b4a",
                "groups": ["developers", "system:authenticated"]
            },
            "object": {
                "apiVersion": "ephemeral.io/v1alpha1",
                "kind": "Environment",
                "metadata": {"name": "alice-basket", "namespace": "ephemeral"},
                "spec": {"apps": apps, "substitute": {"tier": "small"}}
            },
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// The wrk script: POST the body file, print one machine-readable line.
fn lua_script(body: &Path) -> String {
    format!(
        r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("{}", "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d errors=%d non2xx=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"#,
        body.display()
    )
}

/// One server under test.
struct Server {
    label: String,
    child: Child,
    https: SocketAddr,
    /// Whether its answer carries a patch.
    patches: bool,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What to start.
#[derive(Clone)]
enum Kind {
    Baseline(Baseline),
    /// An `ephemeral-webhook` binary and its `RUST_LOG`, if any.
    Webhook {
        binary: PathBuf,
        rust_log: Option<&'static str>,
        name: String,
    },
}

impl Kind {
    fn label(&self) -> String {
        match self {
            Kind::Baseline(Baseline::Fixed) => "fixed answer (ceiling)".to_owned(),
            Kind::Baseline(Baseline::Minimal) => "minimal webhook".to_owned(),
            Kind::Webhook { rust_log, name, .. } => match rust_log {
                Some(level) => format!("{name} (RUST_LOG={level})"),
                None => format!("{name} (default level)"),
            },
        }
    }

    /// Starts the server; with `callgrind`, under `valgrind --tool=callgrind`
    /// writing its counts there (see [`instructions`]).
    fn start(&self, dir: &Path, callgrind: Option<&Path>) -> Server {
        let https: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
        let mut command = match self {
            Kind::Baseline(b) => {
                let mut c = Command::new(std::env::current_exe().expect("own path"));
                c.args(["--serve", b.arg(), "--listen", &https.to_string()])
                    .arg("--cert")
                    .arg(&cert)
                    .arg("--key")
                    .arg(&key)
                    .stderr(Stdio::inherit());
                c
            }
            Kind::Webhook {
                binary, rust_log, ..
            } => {
                let admin = format!("127.0.0.1:{}", free_port());
                let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog");
                let log = dir.join(format!("webhook-{}.log", https.port()));
                let mut c = Command::new(binary);
                c.arg("serve")
                    .args(["--listen", &https.to_string(), "--admin-listen", &admin])
                    .arg("--tls-cert-file")
                    .arg(&cert)
                    .arg("--tls-key-file")
                    .arg(&key)
                    .arg("--controller=false")
                    .arg("--catalog-dir")
                    .arg(catalog)
                    .env_remove("KUBECONFIG")
                    .env_remove("RUST_LOG")
                    .stderr(std::fs::File::create(log).expect("log file"));
                for (name, _) in std::env::vars_os() {
                    if name.to_string_lossy().starts_with("EPHEMERAL_") {
                        c.env_remove(name);
                    }
                }
                if let Some(level) = rust_log {
                    c.env("RUST_LOG", level);
                }
                c
            }
        };
        if let Some(out) = callgrind {
            command = instructions::under_callgrind(&command, out);
        }
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.label()));
        Server {
            label: self.label(),
            child,
            https,
            patches: true,
        }
    }
}

/// POSTs the review once over TLS (trusting the test CA): status and body,
/// or `None` while the server cannot answer yet.
async fn post_once(pki: &Pki, addr: SocketAddr, body: &str) -> Option<(u16, String)> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let tls = pki
        .connector()
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .ok()?;
    let mut sender = handshake(tls).await?;
    let (status, body) = send(&mut sender, post_request("/mutate", body.to_owned())).await;
    Some((status.as_u16(), body))
}

/// Waits (at most 30 s) for the server to answer, then checks the answer:
/// HTTP 200, an allowed AdmissionReview for the review's uid, with a patch.
fn check(runtime: &tokio::runtime::Runtime, pki: &Pki, server: &mut Server, body: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, answer) = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            panic!("{} exited before answering: {exit}", server.label);
        }
        let attempt = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), post_once(pki, server.https, body))
                .await
                .ok()
                .flatten()
        });
        if let Some(answer) = attempt {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not answer in 30 s",
            server.label
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let review: Value = serde_json::from_str(&answer)
        .unwrap_or_else(|e| panic!("{}: answer is not JSON ({e}): {answer}", server.label));
    let response = &review["response"];
    assert!(
        status == 200
            && review["kind"] == "AdmissionReview"
            && response["uid"] == REVIEW_UID
            && response["allowed"] == true
            && response["patch"].is_string() == server.patches,
        "{}: unexpected answer (HTTP {status}): {answer}",
        server.label
    );
}

/// What one wrk run measured.
#[derive(Clone, Debug)]
struct Measured {
    label: String,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    errors: u64,
    hwm_kib: u64,
    /// Server CPU time (user + system) per request, in microseconds.
    cpu_us: f64,
}

struct Load {
    threads: u32,
    connections: u32,
    seconds: u32,
    script: PathBuf,
}

impl Load {
    /// Runs wrk against `addr` for `seconds`; the BENCH line's fields.
    fn wrk(&self, addr: SocketAddr, seconds: u32) -> Vec<(String, u64)> {
        let output = Command::new("wrk")
            .arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{seconds}s"))
            .args(["--timeout", "5s", "-s"])
            .arg(&self.script)
            .arg(format!("https://{addr}/mutate"))
            .stdin(Stdio::null())
            .output()
            .expect("wrk runs (install it: apt-get install wrk)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "wrk failed: {}{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
        let line = stdout
            .lines()
            .find(|l| l.starts_with("BENCH "))
            .unwrap_or_else(|| panic!("no BENCH line in wrk's output:\n{stdout}"));
        line.split_whitespace()
            .skip(1)
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("key=value");
                (k.to_owned(), v.parse().expect("a number"))
            })
            .collect()
    }

    fn measure(&self, server: &Server) -> Measured {
        self.wrk(server.https, 2);
        let pid = server.child.id();
        let cpu_before = cpu_ticks(pid);
        let fields = self.wrk(server.https, self.seconds);
        let cpu_ticks = cpu_ticks(pid) - cpu_before;
        let get = |k: &str| {
            fields
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| panic!("{k} missing"))
        };
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
            .expect("/proc/PID/status");
        let hwm_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmHWM");
        let ms = |us: u64| us as f64 / 1000.0;
        Measured {
            label: server.label.clone(),
            rps: get("requests") as f64 / (get("duration_us") as f64 / 1e6),
            p50_ms: ms(get("p50_us")),
            p99_ms: ms(get("p99_us")),
            p999_ms: ms(get("p999_us")),
            errors: get("errors") + get("non2xx"),
            hwm_kib,
            cpu_us: cpu_ticks as f64 * 1e6 / clock_ticks_per_second() / get("requests") as f64,
        }
    }
}

/// User + system CPU time of process `pid` so far, in clock ticks
/// (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The command name (field 2) may hold spaces; the fields after it do not.
    let after_name = &stat[stat.rfind(')').expect("(comm)") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| -> u64 { fields[n - 3].parse().expect("a tick count") };
    field(14) + field(15)
}

/// `getconf CLK_TCK`: 100 on Linux unless the kernel says otherwise.
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

fn table(rows: &[Measured]) -> String {
    let mut out = format!(
        "{:<44} {:>9} {:>8} {:>8} {:>9} {:>7} {:>10} {:>11}\n",
        "server", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "VmHWM MiB", "CPU us/req"
    );
    for m in rows {
        let _ = writeln!(
            out,
            "{:<44} {:>9.0} {:>8.2} {:>8.2} {:>9.2} {:>7} {:>10.1} {:>11.1}",
            m.label,
            m.rps,
            m.p50_ms,
            m.p99_ms,
            m.p999_ms,
            m.errors,
            m.hwm_kib as f64 / 1024.0,
            m.cpu_us
        );
    }
    out
}

/// The median of each measure over rounds (peak RSS: the maximum).
fn summarise(label: &str, runs: &[&Measured]) -> Measured {
    let median = |f: fn(&Measured) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(|m| f(m)).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Measured {
        label: label.to_owned(),
        rps: median(|m| m.rps),
        p50_ms: median(|m| m.p50_ms),
        p99_ms: median(|m| m.p99_ms),
        p999_ms: median(|m| m.p999_ms),
        errors: runs.iter().map(|m| m.errors).sum(),
        hwm_kib: runs.iter().map(|m| m.hwm_kib).max().unwrap_or(0),
        cpu_us: median(|m| m.cpu_us),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve") {
        baseline::serve(&args);
        return;
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("wrk is not installed: apt-get install wrk (Debian package wrk)");
        std::process::exit(1);
    }
    let load_threads: u32 = env_or("BENCH_THREADS", 2);
    let connections: u32 = env_or("BENCH_CONNECTIONS", 32);
    let seconds: u32 = env_or("BENCH_SECONDS", 10);
    let rounds: u32 = env_or("BENCH_ROUNDS", 1);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let pki = Pki::new();
    write_cert(dir.path(), &pki.server_cert(1));
    let body = review().to_string();
    let body_file = dir.path().join("review.json");
    std::fs::write(&body_file, &body).unwrap();
    let script = dir.path().join("post.lua");
    std::fs::write(&script, lua_script(&body_file)).unwrap();
    let load = Load {
        threads: load_threads,
        connections,
        seconds,
        script,
    };

    let webhook = PathBuf::from(env!("CARGO_BIN_EXE_ephemeral-webhook"));
    let mut kinds = vec![
        Kind::Baseline(Baseline::Fixed),
        Kind::Baseline(Baseline::Minimal),
        Kind::Webhook {
            binary: webhook.clone(),
            rust_log: Some("warn"),
            name: "ephemeral-webhook".into(),
        },
        Kind::Webhook {
            binary: webhook,
            rust_log: None,
            name: "ephemeral-webhook".into(),
        },
    ];
    if let Ok(other) = std::env::var("BENCH_COMPARE") {
        for rust_log in [Some("warn"), None] {
            kinds.push(Kind::Webhook {
                binary: PathBuf::from(&other),
                rust_log,
                name: "BENCH_COMPARE".into(),
            });
        }
    }

    if std::env::var_os("BENCH_INSTRUCTIONS").is_some() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // The `info` rows measure the log line's cost in time; here only the
        // work per request counts.
        kinds.retain(|k| !matches!(k, Kind::Webhook { rust_log: None, .. }));
        instructions::run(&kinds, dir.path(), &load, seconds, |server| {
            check(&runtime, &pki, server, &body)
        });
        return;
    }
    println!(
        "admission load: wrk, {load_threads} threads, {connections} keep-alive TLS connections on loopback, {seconds} s per server after a 2 s warm-up;\n\
         POST /mutate of a 10-app Environment CREATE ({} bytes); {} CPUs; {rounds} round(s)",
        body.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut all: Vec<Measured> = Vec::new();
    for round in 1..=rounds {
        for kind in &kinds {
            let mut server = kind.start(dir.path(), None);
            check(&runtime, &pki, &mut server, &body);
            let measured = load.measure(&server);
            drop(server);
            if rounds > 1 {
                eprintln!("round {round}: {measured:?}");
            }
            all.push(measured);
        }
    }
    let rows: Vec<Measured> = kinds
        .iter()
        .map(|k| {
            let label = k.label();
            let runs: Vec<&Measured> = all.iter().filter(|m| m.label == label).collect();
            summarise(&label, &runs)
        })
        .collect();
    println!();
    print!("{}", table(&rows));
    println!();
    let (fixed, minimal) = (&rows[0], &rows[1]);
    for (i, m) in rows.iter().enumerate().skip(2) {
        // A round's ratio compares servers measured seconds apart: the median
        // of those is steadier than the ratio of medians when the machine's
        // speed drifts between rounds. Both are printed.
        let per_round = |f: fn(&Measured) -> f64| {
            let mut v: Vec<f64> = all
                .chunks(kinds.len())
                .map(|round| f(&round[i]) / f(&round[1]))
                .collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "{}: {:.0}% of the minimal webhook's throughput (goal >= 70%), p99 {:.2}x its p99 (goal <= 1.5x), medians of the {rounds} rounds' ratios; \
             ratios of the medians: {:.0}%, {:.2}x; {:.0}% of the fixed answer's throughput; peak RSS {:.1} MiB (goal < 40 MiB); {:.2}x the minimal webhook's CPU per request",
            m.label,
            100.0 * per_round(|m| m.rps),
            per_round(|m| m.p99_ms),
            100.0 * m.rps / minimal.rps,
            m.p99_ms / minimal.p99_ms,
            100.0 * m.rps / fixed.rps,
            m.hwm_kib as f64 / 1024.0,
            per_round(|m| m.cpu_us),
        );
    }
    println!(
        "minimal webhook: {:.0}% of the fixed answer's throughput, p99 {:.2}x",
        100.0 * minimal.rps / fixed.rps,
        minimal.p99_ms / fixed.p99_ms
    );
}
