//! `BENCH_INSTRUCTIONS=1`: the user-space instructions each server executes
//! per request, counted by valgrind's callgrind (Debian package `valgrind`)
//! under a light load (1 wrk thread, 4 connections, `BENCH_SECONDS`).
//!
//! Instructions are not time: they leave out the kernel (loopback TCP), the
//! caches and the scheduler. But unlike req/s on a shared machine they come
//! out the same run after run (within 0.1 % here), so they show a change
//! of a few percent that req/s hides in its noise. The count starts after a
//! 2 s warm-up (`callgrind_control -z`) and ends with a dump
//! (`callgrind_control -d`), so start-up is left out.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Kind, Load, Server};

/// `command`, run under callgrind writing its counts to `out` (dumps go to
/// `out.1`, `out.2`, ...).
pub(super) fn under_callgrind(command: &Command, out: &Path) -> Command {
    let mut wrapped = Command::new("valgrind");
    wrapped
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(command.get_program())
        .args(command.get_args())
        .stderr(Stdio::null());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
}

/// Measures each of `kinds` (the second is the minimal webhook) and prints
/// instructions per request and the ratios.
pub(super) fn run(
    kinds: &[Kind],
    dir: &Path,
    load: &Load,
    seconds: u32,
    mut check: impl FnMut(&mut Server),
) {
    for tool in ["valgrind", "callgrind_control"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("{tool} is not installed: apt-get install valgrind");
            std::process::exit(1);
        }
    }
    let light = Load {
        threads: 1,
        connections: 4,
        seconds,
        script: load.script.clone(),
    };
    println!(
        "admission instructions: each server under callgrind, wrk with 1 thread and 4 connections for {seconds} s after a 2 s warm-up; user-space instructions per request"
    );
    let mut rows: Vec<(String, f64)> = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let out = dir.join(format!("callgrind-{i}.out"));
        let mut server = kind.start(dir, Some(&out));
        check(&mut server);
        light.wrk(server.https, 2);
        control(&server, "-z");
        let fields = light.wrk(server.https, seconds);
        control(&server, "-d");
        let requests = fields
            .iter()
            .find(|(k, _)| k == "requests")
            .map(|(_, v)| *v)
            .expect("wrk's request count");
        assert!(requests > 0, "{}: no request answered", server.label);
        let per_request = summary(&dump_of(&out)) as f64 / requests as f64;
        println!(
            "{:<45} {:>9.0} instructions/request ({requests} requests)",
            server.label, per_request
        );
        rows.push((server.label.clone(), per_request));
    }
    let minimal = rows[1].1;
    for (label, per_request) in &rows {
        println!(
            "{label}: {:.2}x the minimal webhook's instructions per request",
            per_request / minimal
        );
    }
}

/// Sends `callgrind_control OPTION` to the server.
fn control(server: &Server, option: &str) {
    let status = Command::new("callgrind_control")
        .arg(option)
        .arg(server.child.id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("callgrind_control runs");
    assert!(status.success(), "callgrind_control {option} failed");
}

/// The first dump of `out`, once callgrind has written it whole.
fn dump_of(out: &Path) -> PathBuf {
    let dump = PathBuf::from(format!("{}.1", out.display()));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let complete = std::fs::read_to_string(&dump)
            .is_ok_and(|text| text.lines().any(|l| l.starts_with("totals:")));
        if complete {
            return dump;
        }
        assert!(Instant::now() < deadline, "no dump at {}", dump.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The instructions a dump counted (its `summary:` line).
fn summary(dump: &Path) -> u64 {
    let text = std::fs::read_to_string(dump).expect("the dump is readable");
    text.lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no summary line in {}", dump.display()))
}
