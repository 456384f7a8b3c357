//! The real-cluster tier's kit: the cluster `tests/cluster/up` started
//! (read from `target/e2e-cluster/env`), `kubectl` as one of its users,
//! polling, and the git repository and registry that feed its Flux.
//!
//! Tests using it are `#[ignore]`d (the README's `cargo test --workspace`
//! stays cluster-free); `.ci/run` runs them with `-- --ignored` after
//! `tests/cluster/up --flux --with-ephemeral`. Without a running cluster
//! [`Cluster::running`] fails with the command that starts one: it never skips.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::workspace_root;

/// A user of the test cluster, as `tests/cluster/up` creates them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    /// `system:masters`.
    Admin,
    /// A developer (group `ephemeral-users`, may use Environments in `previews`).
    Alice,
    /// Another developer in the same group.
    Bob,
}

impl User {
    /// The user name the API server knows.
    pub fn name(self) -> &'static str {
        match self {
            User::Admin => "admin",
            User::Alice => "alice",
            User::Bob => "bob",
        }
    }
}

/// What one command printed.
#[derive(Debug)]
pub struct Output {
    /// Exit status was 0.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Panics with both streams unless the command succeeded.
    #[track_caller]
    pub fn expect_ok(self, what: &str) -> Output {
        assert!(self.ok, "{what} failed:\n{}\n{}", self.stderr, self.stdout);
        self
    }

    /// Standard output as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// The running test cluster.
#[derive(Debug)]
pub struct Cluster {
    vars: BTreeMap<String, String>,
}

/// The namespace the users may work in.
pub const NAMESPACE: &str = "previews";

fn state_dir() -> PathBuf {
    std::env::var_os("EPHEMERAL_CLUSTER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/e2e-cluster"))
}

impl Cluster {
    /// The cluster `tests/cluster/up` started; panics with how to start one
    /// when there is none, or when it lacks a part `needs` names (`flux`,
    /// `ephemeral`).
    pub fn running(needs: &[&str]) -> &'static Cluster {
        static CLUSTER: OnceLock<Cluster> = OnceLock::new();
        let cluster = CLUSTER.get_or_init(|| {
            let path = state_dir().join("env");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!(
                    "no test cluster ({}: {e}): start one with `tests/cluster/up --flux --with-ephemeral`",
                    path.display()
                )
            });
            let vars = text
                .lines()
                .filter_map(|line| line.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
                .collect();
            Cluster { vars }
        });
        let features = cluster.var("E2E_CLUSTER_FEATURES");
        for need in needs {
            assert!(
                features.split_whitespace().any(|f| f == *need),
                "the test cluster runs without {need} (has: {features}): restart it with \
                 `tests/cluster/up --flux --with-ephemeral`"
            );
        }
        cluster
    }

    /// A variable of `target/e2e-cluster/env`.
    #[track_caller]
    pub fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in the cluster's env file"))
    }

    /// The kubeconfig of `user`.
    pub fn kubeconfig(&self, user: User) -> &str {
        self.var(match user {
            User::Admin => "KUBECONFIG_ADMIN",
            User::Alice => "KUBECONFIG_ALICE",
            User::Bob => "KUBECONFIG_BOB",
        })
    }

    /// Runs `kubectl` as `user` (its kubeconfig's namespace is `previews`,
    /// `default` for admin) with `stdin`.
    pub fn kubectl(&self, user: User, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new(crate::kubectl());
        command.env("KUBECONFIG", self.kubeconfig(user));
        run(command.args(args), stdin)
    }

    /// `kubectl apply -f -` of `yaml` as `user`.
    pub fn apply(&self, user: User, yaml: &str) -> Output {
        self.kubectl(user, &["apply", "-f", "-"], Some(yaml))
    }

    /// `kubectl get -o json` as admin in `previews`; `None` when not found.
    pub fn get(&self, kind: &str, name: &str) -> Option<Value> {
        self.get_in(NAMESPACE, kind, name)
    }

    /// `kubectl get -o json` as admin in `namespace`; `None` when not found.
    pub fn get_in(&self, namespace: &str, kind: &str, name: &str) -> Option<Value> {
        let out = self.kubectl(
            User::Admin,
            &[
                "get",
                "-n",
                namespace,
                kind,
                name,
                "-o",
                "json",
                "--ignore-not-found",
                "--show-managed-fields",
            ],
            None,
        );
        assert!(out.ok, "kubectl get {kind}/{name}: {}", out.stderr);
        (!out.stdout.trim().is_empty()).then(|| out.json())
    }

    /// `kubectl ephemeral ARGS` as `user`: the workspace's plugin found by
    /// kubectl on `PATH`, the way a user runs it.
    pub fn plugin(&self, user: User, args: &[&str]) -> Output {
        let bin = crate::binary("kubectl-ephemeral");
        let dir = bin.parent().unwrap();
        let path = std::env::join_paths(std::iter::once(dir.to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap();
        let mut command = Command::new(crate::kubectl());
        command
            .env("KUBECONFIG", self.kubeconfig(user))
            .env("PATH", path)
            .env("NO_COLOR", "1")
            .env("COLUMNS", "200")
            .arg("ephemeral")
            .args(args);
        run(&mut command, None)
    }

    /// Deletes an Environment as admin (if it exists) and waits until it is gone.
    pub fn delete_environment(&self, name: &str) {
        self.kubectl(
            User::Admin,
            &[
                "delete",
                "-n",
                NAMESPACE,
                "environment",
                name,
                "--ignore-not-found",
                "--wait",
                "--timeout=120s",
            ],
            None,
        )
        .expect_ok("deleting an earlier run's Environment");
    }

    /// Asks Flux to reconcile Kustomization `name` in the test namespace now
    /// (what `flux reconcile` does): the `reconcile.fluxcd.io/requestedAt`
    /// annotation set to `token`, which Flux echoes as
    /// `status.lastHandledReconcileAt`.
    pub fn request_reconcile(&self, name: &str, token: &str) {
        self.kubectl(
            User::Admin,
            &[
                "annotate",
                "-n",
                NAMESPACE,
                "--overwrite",
                "kustomization",
                name,
                &format!("reconcile.fluxcd.io/requestedAt={token}"),
            ],
            None,
        )
        .expect_ok("requesting a Flux reconcile");
    }

    /// Pushes `tags` of `repository` to the cluster's registry.
    pub fn push_tags(&self, repository: &str, tags: &[&str]) {
        let script = workspace_root().join("tests/cluster/lib/push-tag");
        let mut command = Command::new(script);
        command.arg(self.var("REGISTRY")).arg(repository).args(tags);
        run(&mut command, None).expect_ok("pushing image tags");
    }

    /// The API requests the ephemeral-webhook's service account made so far,
    /// from the API server's audit log: `(verb, resource, namespace, name)`.
    pub fn webhook_requests(&self) -> Vec<AuditedRequest> {
        let text = std::fs::read_to_string(self.var("AUDIT_LOG")).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|e| e["stage"] == "ResponseComplete")
            .map(|e| AuditedRequest {
                verb: e["verb"].as_str().unwrap_or_default().to_owned(),
                resource: e["objectRef"]["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                subresource: e["objectRef"]["subresource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                name: e["objectRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                uri: e["requestURI"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }
}

/// One request in the API server's audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditedRequest {
    /// `get`, `list`, `watch`, `patch`, `update`, `create`, `delete`.
    pub verb: String,
    /// The resource (plural).
    pub resource: String,
    /// `status` for status writes.
    pub subresource: String,
    /// The object's name (empty for collections).
    pub name: String,
    /// The request URI.
    pub uri: String,
}

fn run(command: &mut Command, stdin: Option<&str>) -> Output {
    let mut child = command
        .current_dir(workspace_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Polls `check` every 500 ms until it returns `Some`, for at most `timeout`;
/// panics naming `what` (and the last value seen, via `check`'s own
/// messages) otherwise.
#[track_caller]
pub fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A clone of the cluster's git repository (`GIT_URL`) to commit to and
/// push from, the way a developer would.
pub struct GitClone {
    dir: tempfile::TempDir,
}

impl GitClone {
    /// Clones the repository (an empty one is fine).
    pub fn new(cluster: &Cluster) -> GitClone {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["clone", "-q", cluster.var("GIT_URL"), "."]);
        git(dir.path(), &["checkout", "-q", "-B", "main"]);
        GitClone { dir }
    }

    /// Writes `content` to `path` in the work tree.
    pub fn write(&self, path: &str, content: &str) -> &GitClone {
        let to = self.dir.path().join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, content).unwrap();
        self
    }

    /// Commits everything and pushes `main` (rebasing onto concurrent pushes).
    pub fn push(&self, message: &str) {
        let dir = self.dir.path();
        git(dir, &["add", "-A"]);
        git(
            dir,
            &[
                "-c",
                "user.name=e2e",
                "-c",
                "user.email=e2e@example.com",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                message,
            ],
        );
        for _ in 0..5 {
            if try_git(dir, &["push", "-q", "origin", "main"]) {
                return;
            }
            let _ = try_git(
                dir,
                &[
                    "-c",
                    "user.name=e2e",
                    "-c",
                    "user.email=e2e@example.com",
                    "pull",
                    "-q",
                    "--rebase",
                    "origin",
                    "main",
                ],
            );
        }
        panic!("could not push to the test repository");
    }
}

fn try_git(dir: &Path, args: &[&str]) -> bool {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git on PATH");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The condition `type` of an object's `status.conditions`.
pub fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}
