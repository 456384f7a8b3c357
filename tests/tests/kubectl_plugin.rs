//! The real kubectl finds and runs the plugin, and asks it for completions.
//!
//! Each test puts the built `kubectl-ephemeral` (and the completion symlink
//! `kubectl_complete-ephemeral`) in a fresh directory at the front of `PATH`,
//! with a kubeconfig whose server refuses connections.

#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Output};

use ephemeral_testkit::{binary, kubectl};

struct Plugin {
    dir: tempfile::TempDir,
}

impl Plugin {
    fn install() -> Plugin {
        let dir = tempfile::tempdir().unwrap();
        let plugin = binary("kubectl-ephemeral");
        std::os::unix::fs::symlink(&plugin, dir.path().join("kubectl-ephemeral")).unwrap();
        std::os::unix::fs::symlink(&plugin, dir.path().join("kubectl_complete-ephemeral")).unwrap();
        std::fs::write(
            dir.path().join("kubeconfig"),
            "apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n\
             clusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\n\
             users: [{name: u, user: {token: t}}]\n\
             contexts: [{name: nowhere, context: {cluster: c, user: u, namespace: team-a}}]\n",
        )
        .unwrap();
        Plugin { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        let path = std::env::join_paths(std::iter::once(self.path().to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap();
        Command::new(kubectl())
            .args(args)
            .env("PATH", path)
            .env("KUBECONFIG", self.path().join("kubeconfig"))
            .env("NO_COLOR", "1")
            .output()
            .expect("run kubectl (set KUBECTL or put kubectl on PATH)")
    }
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn kubectl_plugin_list_finds_it() {
    let plugin = Plugin::install();
    let out = plugin.kubectl(&["plugin", "list"]);
    let stdout = text(&out.stdout);
    let ours = plugin.path().join("kubectl-ephemeral");
    assert!(
        stdout.lines().any(|l| l.trim() == ours.to_str().unwrap()),
        "kubectl plugin list does not list {}:\n{stdout}\n{}",
        ours.display(),
        text(&out.stderr)
    );
}

#[test]
fn kubectl_ephemeral_version_runs_it() {
    let plugin = Plugin::install();
    let out = plugin.kubectl(&["ephemeral", "version"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("kubectl-ephemeral {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn exit_codes_and_stderr_pass_through_kubectl() {
    let plugin = Plugin::install();
    // Usage error: 2, usage on stderr.
    let out = plugin.kubectl(&["ephemeral", "extend", "alice"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Usage: kubectl ephemeral extend"));
    // No cluster: 1, and a message that names the server and what to check.
    let out = plugin.kubectl(&["ephemeral", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot reach the Kubernetes API server at https://127.0.0.1:1/"),
        "{stderr}"
    );
    assert!(stderr.contains("kubectl cluster-info"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// kubectl's client minor version (`kubectl version --client -o json`).
fn kubectl_minor() -> Option<u32> {
    let out = Command::new(kubectl())
        .args(["version", "--client", "-o", "json"])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.pointer("/clientVersion/minor")?
        .as_str()?
        .trim_end_matches('+')
        .parse()
        .ok()
}

#[test]
fn kubectl_completes_through_the_plugin() {
    // Plugin completion (kubectl_complete-<plugin>) arrived in kubectl 1.26.
    match kubectl_minor() {
        Some(minor) if minor >= 26 => {}
        other => {
            assert!(
                std::env::var("CI").is_err(),
                "kubectl 1.26+ is needed for plugin completion (found minor {other:?})"
            );
            eprintln!(
                "WARNING: skipping: kubectl 1.26+ is needed for plugin completion (found minor {other:?})"
            );
            return;
        }
    }
    let plugin = Plugin::install();
    // kubectl's own completion entry point asks kubectl_complete-ephemeral.
    let out = plugin.kubectl(&["__complete", "ephemeral", ""]);
    let stdout = text(&out.stdout);
    for sub in [
        "create\t",
        "list\t",
        "describe\t",
        "extend\t",
        "add-app\t",
        "delete\t",
    ] {
        assert!(stdout.contains(sub), "{sub:?} missing:\n{stdout}");
    }
    assert!(
        stdout.lines().last().is_some_and(|l| l.starts_with(":4")),
        "{stdout}"
    );

    let out = plugin.kubectl(&["__complete", "ephemeral", "list", "-o", "w"]);
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("wide\t"), "{stdout}");

    // Environment names need the cluster; unreachable: no candidates, no file names.
    let out = plugin.kubectl(&["__complete", "ephemeral", "describe", ""]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.lines().next().is_some_and(|l| l.starts_with(":4")),
        "{stdout}"
    );
}
