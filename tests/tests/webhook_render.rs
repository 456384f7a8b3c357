//! The webhook and `render` agree byte for byte: the Environment the real
//! `ephemeral-webhook serve` admits (its JSONPatch applied to the object sent)
//! is exactly the first item `kubectl-ephemeral render -o json` prints for the
//! same object, catalog, time, owner and policy flags. That is the promise of
//! the README: what `render` prints offline is what the cluster gets.
//!
//! Needs the workspace's binaries: `cargo build --workspace` first when this
//! crate's tests run alone.

use std::path::{Path, PathBuf};
use std::process::Command;

use ephemeral_testkit::webhook::{Pki, Webhook, apply_patch, bounded, review};
use ephemeral_testkit::{binary, workspace_root};
use serde_json::{Value, json};

/// The user every request comes from, and the owner render stamps.
const USER: &str = "alice";

/// A webhook configuration and the same flags for `render`.
struct Setup {
    /// `--fixed-now` of the webhook, `--now` of render.
    now: &'static str,
    /// Policy flags given to both.
    flags: &'static [&'static str],
}

/// Defaults, in the morning: default leases run to 19:00 UTC.
const MORNING: Setup = Setup {
    now: "2026-11-21T10:00:00Z",
    flags: &[],
};

/// Defaults, after the cut-off: default leases run to 19:00 tomorrow, and
/// stored leases that ended are kept.
const EVENING: Setup = Setup {
    now: "2026-11-21T19:30:00Z",
    flags: &[],
};

/// A cut-off in a zone and a longer minimum lease, shortly before the cut-off:
/// the default lease is now + 2h, not 18:00.
const POLICY: Setup = Setup {
    now: "2026-11-21T16:30:00Z",
    flags: &[
        "--cutoff",
        "18:00",
        "--zone",
        "Europe/London",
        "--min-lease",
        "2h",
    ],
};

/// A cut-off in a zone west of UTC: the default lease runs to 23:00 UTC.
const WEST: Setup = Setup {
    now: "2026-11-21T16:30:00Z",
    flags: &["--cutoff", "18:00", "--zone", "America/New_York"],
};

/// The `staging` Environment is always on.
const ALWAYS_ON: Setup = Setup {
    now: "2026-11-21T10:00:00Z",
    flags: &["--always-on", "staging"],
};

fn root_path(relative: &str) -> PathBuf {
    workspace_root().join(relative)
}

fn catalog_dir() -> PathBuf {
    root_path("examples/catalog")
}

/// Starts the webhook on the shipped catalog with the setup's clock and flags.
fn start(pki: &Pki, setup: &Setup) -> Webhook {
    start_on(pki, setup, &catalog_dir())
}

/// Starts the webhook on the catalog in `catalog` with the setup's clock and flags.
fn start_on(pki: &Pki, setup: &Setup, catalog: &Path) -> Webhook {
    let mut args = vec![
        "--catalog-dir".to_owned(),
        catalog.display().to_string(),
        "--fixed-now".to_owned(),
        setup.now.to_owned(),
    ];
    args.extend(setup.flags.iter().map(|f| (*f).to_owned()));
    Webhook::start(
        binary("ephemeral-webhook"),
        tempfile::tempdir().unwrap(),
        pki,
        Some(&pki.server_cert(1)),
        args,
    )
}

/// Exit code, stdout and stderr of `kubectl-ephemeral render -f <catalog> -f
/// <file> --now <T> --owner alice -o json <flags>`.
fn run_render(file: &Path, setup: &Setup) -> (i32, String, String) {
    let mut command = Command::new(binary("kubectl-ephemeral"));
    command
        .arg("render")
        .arg("-f")
        .arg(catalog_dir())
        .arg("-f")
        .arg(file)
        .args(["--now", setup.now, "--owner", USER, "-o", "json"])
        .args(setup.flags)
        .current_dir(workspace_root());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("EPHEMERAL_") {
            command.env_remove(name);
        }
    }
    let out = command.output().expect("run kubectl-ephemeral");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The Environment render admits: the first item of its `List`.
fn rendered(file: &Path, setup: &Setup) -> Value {
    let (code, stdout, stderr) = run_render(file, setup);
    assert_eq!(code, 0, "render {} refused:\n{stderr}", file.display());
    let list: Value = serde_json::from_str(&stdout).unwrap();
    let first = list["items"][0].clone();
    assert_eq!(first["kind"], "Environment", "{stdout}");
    first
}

/// The Environment the webhook admits on `operation` by [`USER`]: the object
/// with the returned JSONPatch applied (the object itself when no patch).
async fn admitted(
    webhook: &Webhook,
    operation: &str,
    object: &Value,
    old: Option<&Value>,
) -> Value {
    let response = webhook
        .admit(
            "/mutate",
            &review(operation, USER, Some(object.clone()), old.cloned()),
        )
        .await;
    assert_eq!(response["allowed"], true, "{response}");
    if response.get("patch").is_some() {
        apply_patch(object, &response)
    } else {
        object.clone()
    }
}

/// An input: a file render reads and the object the webhook gets.
struct Case {
    name: String,
    file: PathBuf,
    object: Value,
}

impl Case {
    /// A shipped YAML file.
    fn file(relative: &str) -> Case {
        let file = root_path(relative);
        let text = std::fs::read_to_string(&file).unwrap();
        Case {
            name: relative.to_owned(),
            object: serde_saphyr::from_str(&text).unwrap(),
            file,
        }
    }

    /// An object written as JSON into `dir`.
    fn object(dir: &Path, name: &str, object: Value) -> Case {
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_string_pretty(&object).unwrap()).unwrap();
        Case {
            name: name.to_owned(),
            file,
            object,
        }
    }
}

/// Every input that both sides admit.
fn cases(dir: &Path) -> Vec<Case> {
    vec![
        Case::file("examples/environments/alice.yaml"),
        Case::file("examples/environments/infra.yaml"),
        Case::file("plugin/tests/fixtures/ok/added-after-cutoff.yaml"),
        Case::file("plugin/tests/fixtures/ok/always-on.yaml"),
        Case::file("plugin/tests/fixtures/ok/late.yaml"),
        Case::object(
            dir,
            "no-annotations",
            json!({
                "apiVersion": "ephemeral.io/v1alpha1",
                "kind": "Environment",
                "metadata": {"name": "plain", "namespace": "ephemeral", "labels": {"team": "web"}},
                "spec": {
                    "apps": [
                        {"name": "web", "branch": "Feature//Upper__case"},
                        {
                            "name": "docs",
                            "kustomization": {
                                "path": "./apps/docs",
                                "sourceRef": {"kind": "GitRepository", "name": "platform", "namespace": "flux-system"}
                            },
                            "substitute": {"docs_theme": "dark"}
                        }
                    ],
                    "lease": {"until": "2026-11-22T09:00:00.5+01:00"}
                }
            }),
        ),
        Case::object(
            dir,
            "generate-name",
            json!({
                "apiVersion": "ephemeral.io/v1alpha1",
                "kind": "Environment",
                "metadata": {"name": "", "generateName": "alice-", "namespace": "ephemeral"},
                "spec": {"apps": [{"name": "checkout", "branch": "fix/1"}], "bundles": ["observability"]}
            }),
        ),
    ]
}

fn text(value: &Value) -> String {
    serde_json::to_string(value).unwrap()
}

/// For every case: the webhook's admitted Environment equals render's, and
/// admitting it again gives no patch.
async fn agree(setup: &Setup) {
    let pki = Pki::new();
    let webhook = start(&pki, setup);
    webhook.wait_ready().await;
    let dir = tempfile::tempdir().unwrap();
    for case in cases(dir.path()) {
        let by_webhook = admitted(&webhook, "CREATE", &case.object, None).await;
        let by_render = rendered(&case.file, setup);
        assert_eq!(
            text(&by_webhook),
            text(&by_render),
            "{}: the webhook (left) and render (right) disagree at {} with {:?}",
            case.name,
            setup.now,
            setup.flags
        );
        let response = webhook
            .admit(
                "/mutate",
                &review("CREATE", USER, Some(by_webhook.clone()), None),
            )
            .await;
        assert_eq!(response["allowed"], true, "{}: {response}", case.name);
        assert!(
            response.get("patch").is_none(),
            "{}: re-admitting the admitted object patched it: {response}",
            case.name
        );
    }
}

#[tokio::test]
async fn webhook_and_render_agree_with_default_policy_in_the_morning() {
    bounded(agree(&MORNING)).await;
}

#[tokio::test]
async fn webhook_and_render_agree_with_default_policy_after_the_cutoff() {
    bounded(agree(&EVENING)).await;
}

#[tokio::test]
async fn webhook_and_render_agree_with_cutoff_zone_and_minimum_lease() {
    bounded(agree(&POLICY)).await;
}

#[tokio::test]
async fn webhook_and_render_agree_with_a_cutoff_west_of_utc() {
    bounded(agree(&WEST)).await;
}

#[tokio::test]
async fn webhook_and_render_agree_on_an_always_on_environment() {
    bounded(agree(&ALWAYS_ON)).await;
}

/// An app added by its owner (UPDATE with oldObject), after the cut-off, to an
/// Environment admitted in the morning: the webhook's result equals render of
/// the modified object (the stored lease and uptime start are kept).
#[tokio::test]
async fn webhook_and_render_agree_on_an_update_by_the_owner() {
    bounded(async {
        let pki = Pki::new();
        let morning = start(&pki, &MORNING);
        let webhook = start(&pki, &EVENING);
        morning.wait_ready().await;
        webhook.wait_ready().await;
        let dir = tempfile::tempdir().unwrap();
        let added = [
            (
                "examples/environments/alice.yaml",
                json!({"name": "web2", "template": "web", "branch": "feature/two"}),
            ),
            ("examples/environments/infra.yaml", json!({"name": "web"})),
        ];
        for (file, app) in added {
            let case = Case::file(file);
            let created = admitted(&morning, "CREATE", &case.object, None).await;
            let mut modified = created.clone();
            modified["spec"]["apps"]
                .as_array_mut()
                .unwrap()
                .push(app.clone());
            let name = format!("{}-updated", created["metadata"]["name"].as_str().unwrap());
            let updated_case = Case::object(dir.path(), &name, modified.clone());

            let by_webhook = admitted(&webhook, "UPDATE", &modified, Some(&created)).await;
            assert_ne!(by_webhook, modified, "{file}: the new app was not expanded");
            let by_render = rendered(&updated_case.file, &EVENING);
            assert_eq!(
                text(&by_webhook),
                text(&by_render),
                "{file} plus {app}: the webhook (left) and render (right) disagree on UPDATE"
            );

            let response = webhook
                .admit(
                    "/mutate",
                    &review("UPDATE", USER, Some(by_webhook.clone()), Some(created)),
                )
                .await;
            assert_eq!(response["allowed"], true, "{response}");
            assert!(response.get("patch").is_none(), "{response}");
        }
    })
    .await;
}

/// An Environment breaking several rules: the webhook denies it (422) and
/// render refuses it (exit 1), naming the same violations.
#[tokio::test]
async fn webhook_and_render_refuse_the_same_violations() {
    bounded(async {
        let pki = Pki::new();
        let webhook = start(&pki, &MORNING);
        webhook.wait_ready().await;
        let case = Case::file("plugin/tests/fixtures/bad/invalid.yaml");

        let response = webhook
            .admit("/mutate", &review("CREATE", USER, Some(case.object), None))
            .await;
        assert_eq!(response["allowed"], false, "{response}");
        assert_eq!(response["status"]["code"], 422, "{response}");
        assert!(response.get("patch").is_none(), "{response}");
        let message = response["status"]["message"].as_str().unwrap();

        let (code, stdout, stderr) = run_render(&case.file, &MORNING);
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(stdout, "");
        let mut lines = stderr.lines();
        let heading = lines.next().unwrap();
        assert!(heading.ends_with("Environment 'erin' is refused:"), "{stderr}");
        let violations: Vec<&str> = lines.collect();
        assert!(violations.len() >= 5, "{stderr}");
        for violation in violations {
            assert!(
                message.lines().any(|l| l == violation),
                "render's violation is not in the webhook's message:\n{violation}\nmessage:\n{message}"
            );
        }
    })
    .await;
}

/// Files without namespaces: `--catalog-dir` loads the namespace-less
/// template into "default", where the API server puts an Environment applied
/// without a namespace in a context without one; render reads both files
/// the same way and prints what the webhook admits (render used to refuse
/// it: "AppTemplate 'checkout' does not exist in namespace 'default'").
#[tokio::test]
async fn webhook_and_render_agree_on_files_without_namespaces() {
    bounded(async {
        let pki = Pki::new();
        let dir = root_path("plugin/tests/fixtures/namespace-less");
        let webhook = start_on(&pki, &MORNING, &dir);
        webhook.wait_ready().await;
        let case = Case::file("plugin/tests/fixtures/namespace-less/environment.yaml");
        assert!(case.object["metadata"].get("namespace").is_none());
        let mut object = case.object.clone();
        object["metadata"]["namespace"] = json!("default");
        let by_webhook = admitted(&webhook, "CREATE", &object, None).await;
        let by_render = rendered(&dir, &MORNING);
        assert_eq!(text(&by_webhook), text(&by_render));
        assert_eq!(by_render["metadata"]["namespace"], "default");
        assert_eq!(by_render["spec"]["apps"][0]["template"], "checkout");
    })
    .await;
}
