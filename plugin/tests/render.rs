//! Snapshot tests of the real `kubectl-ephemeral render` binary.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs render from the workspace root; returns "exit, stderr, stdout" as one text.
fn render(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-ephemeral"))
        .arg("render")
        .args(args)
        .current_dir(root())
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("USERNAME")
        .env("NO_COLOR", "1")
        .output()
        .expect("run kubectl-ephemeral");
    format!(
        "exit: {}\n--- stderr\n{}--- stdout\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    )
}

const MORNING: &str = "2026-11-21T09:00:00Z";

#[test]
fn examples_kustomization_helm_templates_bundles_branch_source_branch_schedule() {
    insta::assert_snapshot!(render(&[
        "-R", "-f", "examples", "--now", MORNING, "--owner", "alice"
    ]));
}

#[test]
fn examples_as_json_list() {
    let text = render(&[
        "-f",
        "examples/catalog",
        "-f",
        "examples/environments/infra.yaml",
        "--now",
        MORNING,
        "--owner",
        "bob",
        "-o",
        "json",
    ]);
    insta::assert_snapshot!(text);
}

#[test]
fn default_lease_near_the_cutoff_gets_the_minimum() {
    insta::assert_snapshot!(render(&[
        "-f",
        "examples/catalog",
        "-f",
        "plugin/tests/fixtures/ok/late.yaml",
        "--now",
        "2026-11-21T18:30:00Z",
        "--owner",
        "carol"
    ]));
}

#[test]
fn default_lease_after_the_cutoff_runs_to_the_next_one() {
    insta::assert_snapshot!(render(&[
        "-f",
        "examples/catalog",
        "-f",
        "plugin/tests/fixtures/ok/late.yaml",
        "--now",
        "2026-11-21T19:30:00Z",
        "--owner",
        "carol"
    ]));
}

#[test]
fn default_lease_in_a_configured_zone_and_cutoff() {
    insta::assert_snapshot!(render(&[
        "-f",
        "examples/catalog",
        "-f",
        "plugin/tests/fixtures/ok/late.yaml",
        "--now",
        "2026-07-01T09:00:00Z",
        "--owner",
        "carol",
        "--zone",
        "Europe/London",
        "--cutoff",
        "18:00"
    ]));
}

#[test]
fn app_added_after_the_cutoff_keeps_the_stored_lease_and_warns() {
    insta::assert_snapshot!(render(&[
        "-f",
        "examples/catalog",
        "-f",
        "plugin/tests/fixtures/ok/added-after-cutoff.yaml",
        "--now",
        "2026-11-21T19:30:00Z",
        "--owner",
        "dave"
    ]));
}

#[test]
fn always_on_environment_gets_the_configured_schedule() {
    insta::assert_snapshot!(render(&[
        "-f",
        "examples/catalog",
        "-f",
        "plugin/tests/fixtures/ok/always-on.yaml",
        "--now",
        MORNING,
        "--owner",
        "ops",
        "--always-on",
        "staging",
        "--always-on-schedule",
        "Mon-Fri 06:00-22:00 Europe/Berlin"
    ]));
}

/// Objects without a namespace are in "default", templates and Environments
/// alike, as `serve --catalog-dir` reads them (render used to refuse this).
#[test]
fn namespace_less_catalog_and_environment_are_in_default() {
    insta::assert_snapshot!(render(&[
        "-f",
        "plugin/tests/fixtures/namespace-less",
        "--now",
        MORNING,
        "--owner",
        "alice"
    ]));
}

#[test]
fn an_environment_set_renders_the_environment_of_each_matching_pull_request() {
    insta::assert_snapshot!(render(&[
        "-f",
        "plugin/tests/fixtures/set",
        "--pull-requests",
        "plugin/tests/fixtures/pull-requests/shop.json",
        "--now",
        MORNING,
        "--owner",
        "system:serviceaccount:ephemeral-system:ephemeral-webhook"
    ]));
}

#[test]
fn an_environment_set_without_pull_requests_is_an_error() {
    insta::assert_snapshot!(render(&[
        "-f",
        "plugin/tests/fixtures/set/set.yaml",
        "--now",
        MORNING,
        "--owner",
        "x"
    ]));
}

#[test]
fn refused_environment_names_every_rule() {
    insta::assert_snapshot!(render(&[
        "-f",
        "examples/catalog",
        "-f",
        "plugin/tests/fixtures/bad/invalid.yaml",
        "--now",
        MORNING,
        "--owner",
        "erin"
    ]));
}

#[test]
fn bad_field_names_file_document_and_path() {
    insta::assert_snapshot!(render(&[
        "-f",
        "plugin/tests/fixtures/bad/bad-field.yaml",
        "--now",
        MORNING,
        "--owner",
        "frank"
    ]));
}

#[test]
fn bad_yaml_names_the_file() {
    insta::assert_snapshot!(render(&[
        "-f",
        "plugin/tests/fixtures/bad/bad-syntax.yaml",
        "--now",
        MORNING,
        "--owner",
        "x"
    ]));
}

#[test]
fn no_environment_is_an_error() {
    insta::assert_snapshot!(render(&[
        "-f",
        "examples/catalog",
        "--now",
        MORNING,
        "--owner",
        "x"
    ]));
}

#[test]
fn missing_file_is_an_error() {
    insta::assert_snapshot!(render(&["-f", "does/not/exist.yaml", "--owner", "x"]));
}

#[test]
fn bad_now_is_a_usage_error() {
    insta::assert_snapshot!(render(&[
        "-f", "examples", "--now", "tomorrow", "--owner", "x"
    ]));
}

#[test]
fn owner_defaults_to_the_local_user() {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-ephemeral"))
        .args([
            "render", "-R", "-f", "examples", "--now", MORNING, "-o", "json",
        ])
        .current_dir(root())
        .env("USER", "zoe")
        .output()
        .unwrap();
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        list["items"][0]["metadata"]["annotations"]["ephemeral.io/owner"],
        "zoe"
    );
    // Without the variables, the passwd entry of the uid is used.
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-ephemeral"))
        .args([
            "render", "-R", "-f", "examples", "--now", MORNING, "-o", "json",
        ])
        .current_dir(root())
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("USERNAME")
        .output()
        .unwrap();
    if cfg!(unix) && std::path::Path::new("/proc/self").exists() {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let owner = list["items"][0]["metadata"]["annotations"]["ephemeral.io/owner"]
            .as_str()
            .unwrap();
        assert!(!owner.is_empty());
    }
}

#[test]
fn stdin_is_read_with_dash() {
    let env = std::fs::read_to_string(root().join("examples/environments/alice.yaml")).unwrap();
    let catalog = std::fs::read_to_string(root().join("examples/catalog/templates.yaml")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-ephemeral"))
        .args([
            "render", "-f", "-", "--now", MORNING, "--owner", "alice", "-o", "json",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{catalog}\n---\n{env}").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "alice");
    assert!(names.contains(&"alice-checkout"));
    assert!(names.contains(&"alice-grafana"));
}

fn help(args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-ephemeral"));
    cmd.args(args).env("COLUMNS", "100");
    for (key, _) in std::env::vars() {
        if key.starts_with("EPHEMERAL_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_texts() {
    insta::assert_snapshot!("help", help(&["--help"]));
    insta::assert_snapshot!("render_help", help(&["render", "--help"]));
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::io::{BufRead, BufReader};
    // Well over a pipe buffer (64 KiB) of output, so writing hits the closed pipe.
    let mut args = vec![
        "render",
        "-f",
        "examples/catalog",
        "--now",
        MORNING,
        "--owner",
        "x",
    ];
    for _ in 0..20 {
        args.extend(["-f", "examples/environments/alice.yaml"]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-ephemeral"))
        .args(&args)
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "---\n");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("error"),
        "{stderr}"
    );
}
