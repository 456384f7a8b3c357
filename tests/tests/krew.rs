//! `krew/package.sh` turns the krew manifest template and a folder of release
//! archives into the manifest users install with `kubectl krew`: each platform
//! gets the URI and sha256 of its own archive, and a missing archive stops
//! the release instead of shipping a placeholder.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use ephemeral_e2e::workspace_root;
use serde_json::Value;

const BASE_URL: &str = "https://downloads.example.test/kubectl-ephemeral/v1.2.3";

/// Every platform the manifest must offer: (os, arch, archive extension, bin,
/// sha256 of the fake archive's content). The sums are fixed test vectors of
/// [`fake_content`], computed independently of the script.
const PLATFORMS: [(&str, &str, &str, &str, &str); 5] = [
    (
        "linux",
        "amd64",
        "tar.gz",
        "kubectl-ephemeral",
        "91d8913589a65946ae37c15f88d00937c0e0a0d79f542a4af2574890c001bdf0",
    ),
    (
        "linux",
        "arm64",
        "tar.gz",
        "kubectl-ephemeral",
        "3b0e140adfd9b353a60a32641a128bfeeddb8e327f6c9e34cd378a233e9fd649",
    ),
    (
        "darwin",
        "amd64",
        "tar.gz",
        "kubectl-ephemeral",
        "dfcb0571cbb30faf77e20392d3e6bb512bbf54b50db2e5be02093a2ac9649c76",
    ),
    (
        "darwin",
        "arm64",
        "tar.gz",
        "kubectl-ephemeral",
        "60cfc91eaa91854cca2786b5ef829cc117be5ca4108e6dbbb5363e90c983b3b5",
    ),
    (
        "windows",
        "amd64",
        "zip",
        "kubectl-ephemeral.exe",
        "b9c46b798e9cb249021581971e38e275a05fb437234b902ffb9e77b84ea26919",
    ),
];

fn fake_content(os: &str, arch: &str) -> String {
    format!("fake kubectl-ephemeral archive for {os}/{arch}\n")
}

fn archive_name(os: &str, arch: &str, ext: &str) -> String {
    format!("kubectl-ephemeral-1.2.3-{os}-{arch}.{ext}")
}

/// A folder with one distinct fake archive per platform.
fn archives() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (os, arch, ext, _, _) in PLATFORMS {
        fs::write(
            dir.path().join(archive_name(os, arch, ext)),
            fake_content(os, arch),
        )
        .expect("write fake archive");
    }
    dir
}

fn package(args: &[&str], archive_dir: &Path, output: Option<&Path>) -> Output {
    let mut command = Command::new("bash");
    command
        .arg(workspace_root().join("krew/package.sh"))
        .args(args)
        .arg(archive_dir);
    if let Some(output) = output {
        command.arg(output);
    }
    command.env_remove("KREW_BASE_URL");
    command.output().expect("run krew/package.sh")
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "krew/package.sh failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Checks the filled-in manifest: krew's shape and, per platform, the URI and
/// sha256 of that platform's archive.
fn assert_manifest(text: &str) {
    assert!(
        !text.contains('@'),
        "a placeholder was left in the manifest:\n{text}"
    );
    let manifest: Value = serde_saphyr::from_str(text).expect("the manifest is YAML");
    assert_eq!(
        manifest["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "ephemeral");
    let spec = &manifest["spec"];
    assert_eq!(spec["version"], "v1.2.3", "krew wants a v-prefixed semver");
    for field in ["shortDescription", "description", "homepage"] {
        assert!(
            spec[field].as_str().is_some_and(|s| !s.trim().is_empty()),
            "spec.{field} is missing"
        );
    }
    let platforms = spec["platforms"].as_array().expect("spec.platforms");
    assert_eq!(platforms.len(), PLATFORMS.len(), "one entry per platform");
    for (os, arch, ext, bin, sha256) in PLATFORMS {
        let matching: Vec<&Value> = platforms
            .iter()
            .filter(|p| {
                let labels = &p["selector"]["matchLabels"];
                labels["os"] == os && labels["arch"] == arch
            })
            .collect();
        assert_eq!(matching.len(), 1, "exactly one entry for {os}/{arch}");
        let entry = matching[0];
        assert_eq!(
            entry["uri"],
            format!("{BASE_URL}/{}", archive_name(os, arch, ext)),
            "uri of {os}/{arch}"
        );
        assert_eq!(entry["sha256"], sha256, "sha256 of {os}/{arch}");
        assert_eq!(entry["bin"], bin, "bin of {os}/{arch}");
    }
}

#[test]
fn fills_in_each_platforms_uri_and_sha256() {
    let dir = archives();
    let output = package(&["--base-url", BASE_URL, "v1.2.3"], dir.path(), None);
    assert_success(&output);
    assert_manifest(&String::from_utf8(output.stdout).expect("UTF-8 manifest"));
}

#[test]
fn writes_the_manifest_to_a_path() {
    let dir = archives();
    let out = dir.path().join("ephemeral.yaml");
    // The version without its `v` names the same archives.
    let output = package(&["--base-url", BASE_URL, "1.2.3"], dir.path(), Some(&out));
    assert_success(&output);
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout when writing to a path"
    );
    assert_manifest(&fs::read_to_string(&out).expect("manifest written"));
}

#[test]
fn missing_archive_fails_and_names_it() {
    let dir = archives();
    let missing = archive_name("darwin", "arm64", "tar.gz");
    fs::remove_file(dir.path().join(&missing)).expect("remove one archive");
    let out = dir.path().join("ephemeral.yaml");
    let output = package(&["--base-url", BASE_URL, "v1.2.3"], dir.path(), Some(&out));
    assert!(
        !output.status.success(),
        "must fail when an archive is missing"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&missing),
        "the error names the missing archive {missing}:\n{stderr}"
    );
    assert!(
        !out.exists(),
        "no manifest is written when an archive is missing"
    );
}
