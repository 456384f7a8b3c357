//! The one test kit of the workspace, and (in `tests/tests/`) the
//! cross-binary end-to-end tests that use it:
//!
//! - [`mock_api`]: the mocked Kubernetes API server of every test that pins
//!   exact requests (declarative exchanges or step by step, RBAC-checked);
//! - [`fake_github`]: a real HTTP fake of GitHub's REST API for EnvironmentSets;
//! - [`webhook`]: driving `ephemeral-webhook serve` over real TLS;
//! - [`cluster`]: the real-cluster harness of `tests/cluster/up`, from the tests;
//! - [`fixtures`]: the example catalog and Environments, built from `examples/`;
//! - [`flux_schema`]: validating objects against the real CRD schemas;
//! - [`rbac`]: whether the manifests' RBAC allows an API request;
//! - where the workspace, its binaries and `kubectl` are.

pub mod cluster;
pub mod fake_github;
pub mod fixtures;
pub mod flux_schema;
pub mod mock_api;
pub mod rbac;
pub mod webhook;

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf()
}

/// The directory cargo put this test's binaries in (`target/debug`).
fn target_dir() -> PathBuf {
    // The test executable is target/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executables live in target/<profile>/deps")
        .to_path_buf()
}

/// Path of a workspace binary (`kubectl-ephemeral`, `ephemeral-webhook`).
///
/// `cargo test --workspace` builds every binary before it runs any test; when
/// this crate's tests are run alone, build them first with `cargo build --workspace`.
pub fn binary(name: &str) -> PathBuf {
    let path = target_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` (or `cargo test --workspace`) first",
        path.display()
    );
    path
}

/// Folder of the upstream Flux CRDs: `$FLUX_CRDS_DIR`, else `../shared/flux-crds`
/// beside the workspace.
pub fn flux_crds_dir() -> PathBuf {
    std::env::var_os("FLUX_CRDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/flux-crds"))
}

/// The kubectl the tests run: `$KUBECTL`, else the first `kubectl` on `PATH`
/// (else plain `kubectl`, which fails to spawn with a clear error).
pub fn kubectl() -> PathBuf {
    std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|dir| dir.join("kubectl"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("kubectl"))
}
