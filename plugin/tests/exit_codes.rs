//! The real binary's exit codes as documented in `--help`: 1 error, 2 wrong
//! usage (also when no cluster is configured), 130 on Ctrl-C.

#![cfg(unix)]

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The plugin with no kubeconfig at all: an empty home, no `KUBECONFIG`,
/// not in a pod.
fn plugin(home: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-ephemeral"));
    cmd.env("HOME", home)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("NO_COLOR", "1");
    cmd
}

fn run(home: &std::path::Path, args: &[&str]) -> Output {
    plugin(home).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn wrong_usage_exits_2_even_without_a_kubeconfig() {
    let home = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            &["extend", "alice", "--until", "teatime"][..],
            "--until: 'teatime' is not a time",
        ),
        (
            &["create", "alice", "--app", "web", "--for", "3q"][..],
            "--for: '3q' is not a duration",
        ),
        (
            &["wait", "alice", "--for", "ready", "--timeout", "soon"][..],
            "--timeout: 'soon' is not a duration",
        ),
        (
            &["delete", "alice", "--wait", "--timeout", "soon"][..],
            "--timeout: 'soon' is not a duration",
        ),
        (
            &["set-app", "alice", "web", "--prefix=-bad"][..],
            "--prefix '-bad' starts with '-'",
        ),
        (
            &["add-app", "alice", "web", "--prefix=-bad"][..],
            "--prefix '-bad' starts with '-'",
        ),
        (
            &["add-app", "alice", "web=-bad"][..],
            "'-bad' starts with '-'",
        ),
        (
            &["add-app", "alice", "web@feature/x", "--prefix=main"][..],
            "'web' already says what to follow",
        ),
        // One set is read from one namespace: -A and -l are for the list.
        (&["sets", "shop-prs", "-A"][..], "cannot be used with"),
        (&["sets", "-o", "wide"][..], "invalid value 'wide'"),
    ] {
        let out = run(home.path(), args);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(says), "{args:?}: {text}");
        assert!(!text.contains("kubeconfig"), "{args:?}: {text}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn no_kubeconfig_exits_1_and_says_what_to_do() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["list"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let default = home.path().join(".kube/config");
    assert_eq!(
        text,
        format!(
            "error: no cluster configured: KUBECONFIG is not set, {} does not exist, and this is not a pod in a cluster. Fix: get a kubeconfig for your cluster (from its admin or your cloud provider's CLI), then pass --kubeconfig PATH or set KUBECONFIG=PATH; `kubectl cluster-info` tells you when it works\n",
            default.display()
        )
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn ctrl_c_exits_130() {
    // An API server that accepts the connection and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: hang\n\
             clusters: [{{name: c, cluster: {{server: \"http://127.0.0.1:{port}\"}}}}]\n\
             users: [{{name: u, user: {{token: t}}}}]\n\
             contexts: [{{name: hang, context: {{cluster: c, user: u}}}}]\n"
        ),
    )
    .unwrap();
    let child = plugin(home.path())
        .args(["wait", "alice", "--for", "ready", "--timeout", "1m"])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the request is on its way, the command is running.
    let (_connection, _) = listener.accept().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}
