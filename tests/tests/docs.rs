//! The docs' console transcripts, run against the real binaries (trycmd).
//!
//! Every ```` ```console ```` block of `README.md`, `CONTRIBUTING.md` and
//! `docs/*.md` is a transcript of offline commands: each `$ ` line is run from
//! the workspace root and its output (stdout and stderr together, `...` for
//! lines left out) and exit code (`? 1`; default success) must match. A block
//! with no info string counts as one too, so every other block says what it is
//! (`sh`, `yaml`, `text`). Transcripts that need a cluster are ```` ```text ````
//! blocks, which nothing runs (CONTRIBUTING.md, "Docs").
//!
//! `kubectl` is the real one (`$KUBECTL`, else the first on `PATH`), and finds
//! `kubectl-ephemeral` through a `PATH` that holds only the built binaries and
//! it; `HOME` is empty, `KUBECONFIG` unset and `TZ`, `USER`, `COLUMNS` fixed,
//! so nothing depends on the machine. After a deliberate change of output, rewrite the transcripts with
//! `TRYCMD=overwrite cargo test -p ephemeral-testkit --test docs` and review the diff.

#![cfg(unix)]

use std::path::Path;

use ephemeral_testkit::{binary, kubectl, workspace_root};

/// The pages whose console blocks are run; each must have at least one.
const PAGES: &[&str] = &[
    "README.md",
    "CONTRIBUTING.md",
    "docs/user-guide.md",
    "docs/concepts.md",
    "docs/operations.md",
];

#[test]
fn console_transcripts_in_the_docs_match_the_binaries() {
    let root = workspace_root();
    // The transcripts name files relative to the workspace root (`-f examples/`).
    std::env::set_current_dir(&root).unwrap();

    let bin = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let kubectl = std::fs::canonicalize(kubectl())
        .expect("kubectl is needed for the docs' transcripts: set KUBECTL or put it on PATH");
    std::os::unix::fs::symlink(&kubectl, bin.path().join("kubectl")).unwrap();
    for name in ["kubectl-ephemeral", "ephemeral-webhook"] {
        std::os::unix::fs::symlink(binary(name), bin.path().join(name)).unwrap();
    }

    let cases = trycmd::TestCases::new();
    cases
        .register_bin("kubectl", bin.path().join("kubectl"))
        .register_bin("kubectl-ephemeral", bin.path().join("kubectl-ephemeral"))
        .register_bin("ephemeral-webhook", bin.path().join("ephemeral-webhook"))
        .env("PATH", bin.path().display().to_string())
        .env("HOME", home.path().display().to_string())
        .env("KUBECONFIG", "")
        .env("NO_COLOR", "1")
        .env("TZ", "UTC")
        // clap wraps --help at this width (also when stdout is no terminal).
        .env("COLUMNS", "100")
        .env("USER", "alice")
        .env("LOGNAME", "alice")
        .timeout(std::time::Duration::from_secs(60));
    for page in all_pages(&root) {
        cases.case(root.join(page));
    }
    cases.run();
}

/// The pages above plus every page of `docs/`, so a new page is checked too.
fn all_pages(root: &Path) -> Vec<String> {
    let mut pages: Vec<String> = PAGES.iter().map(|p| p.to_string()).collect();
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let page = format!("docs/{name}");
        if name.ends_with(".md") && !pages.contains(&page) {
            pages.push(page);
        }
    }
    pages
}

/// trycmd skips a page without console blocks; here that is a failure, so
/// turning a checked transcript into ```text by mistake does not go unnoticed.
#[test]
fn every_listed_page_has_a_checked_transcript() {
    let root = workspace_root();
    for page in PAGES {
        let text = std::fs::read_to_string(root.join(page)).unwrap();
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("```console")),
            "{page} has no ```console block: its offline transcripts would go unchecked"
        );
    }
}

/// `.ci/run` runs the README's two commands; they must stay in the README as
/// it runs them.
#[test]
fn the_readme_shows_the_commands_ci_runs() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    for (shown, run) in [
        (
            "\ncargo run -q -p kubectl-ephemeral -- render -R -f examples/\n",
            "cargo run -q --locked -p kubectl-ephemeral -- render -R -f examples/",
        ),
        (
            "\ncargo test --workspace\n",
            "\ncargo test --workspace --locked\n",
        ),
    ] {
        assert!(
            readme.contains(shown),
            "README.md no longer shows {shown:?}"
        );
        assert!(ci.contains(run), ".ci/run no longer runs {run:?}");
    }
}
