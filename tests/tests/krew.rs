//! `krew/package.sh` packages the plugin for krew: release archives of the
//! real `kubectl-ephemeral` binary with its LICENSE, and the plugin manifest
//! pointing at them. The manifests it writes are checked here by krew's own
//! rules (its manifest validation and the krew-index requirements), against
//! the archives themselves: sha256, `bin` and LICENSE inside.
//!
//! Needs the workspace's binaries (`cargo build --workspace` when this crate's
//! tests run alone), bash, GNU or BSD tar, gzip, and zip/unzip for the
//! windows archive.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ephemeral_testkit::{binary, workspace_root};
use serde_json::{Value, json};

const BASE_URL: &str = "https://downloads.example.test/kubectl-ephemeral/v1.2.3";
const API_VERSION: &str = "krew.googlecontainertools.github.com/v1alpha2";

/// Every platform the template offers: Rust target, os, arch, archive
/// extension, `bin`.
const PLATFORMS: [(&str, &str, &str, &str, &str); 5] = [
    (
        "x86_64-unknown-linux-gnu",
        "linux",
        "amd64",
        "tar.gz",
        "kubectl-ephemeral",
    ),
    (
        "aarch64-unknown-linux-gnu",
        "linux",
        "arm64",
        "tar.gz",
        "kubectl-ephemeral",
    ),
    (
        "x86_64-apple-darwin",
        "darwin",
        "amd64",
        "tar.gz",
        "kubectl-ephemeral",
    ),
    (
        "aarch64-apple-darwin",
        "darwin",
        "arm64",
        "tar.gz",
        "kubectl-ephemeral",
    ),
    (
        "x86_64-pc-windows-msvc",
        "windows",
        "amd64",
        "zip",
        "kubectl-ephemeral.exe",
    ),
];

// ---------------------------------------------------------------- running the script

fn package(args: &[&str]) -> Output {
    let mut command = Command::new("bash");
    command
        .arg(workspace_root().join("krew/package.sh"))
        .args(args)
        .env_remove("KREW_BASE_URL")
        .env_remove("SOURCE_DATE_EPOCH");
    command.output().expect("run krew/package.sh")
}

fn assert_success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "krew/package.sh failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

/// `package.sh archive` of `plugin` (a built `kubectl-ephemeral`) for
/// `target` into `dist`; the archive's path.
fn archive(plugin: &Path, target: &str, version: Option<&str>, dist: &Path) -> PathBuf {
    let mut args = vec![
        "archive",
        "--target",
        target,
        "--binary",
        plugin.to_str().unwrap(),
        "--dist",
        dist.to_str().unwrap(),
    ];
    if let Some(version) = version {
        args.extend(["--version", version]);
    }
    let printed = assert_success(&package(&args));
    PathBuf::from(printed.trim())
}

/// A small stand-in for the binary of another platform (this machine
/// cannot build those): packaging treats every binary alike, and the
/// archives stay small and quick to build.
fn stand_in(dir: &Path) -> PathBuf {
    let path = dir.join("stand-in");
    fs::write(&path, "#!/bin/sh\necho stand-in for kubectl-ephemeral\n").unwrap();
    path
}

fn host_target() -> String {
    let output = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

// ---------------------------------------------------------------- krew's rules

fn sha256_hex(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `v` + semantic version 2.0: `vMAJOR.MINOR.PATCH[-pre][+build]`, no
/// leading zeros.
fn is_v_semver(version: &str) -> bool {
    let Some(rest) = version.strip_prefix('v') else {
        return false;
    };
    let (rest, build) = rest
        .split_once('+')
        .map_or((rest, None), |(a, b)| (a, Some(b)));
    let (core, pre) = rest
        .split_once('-')
        .map_or((rest, None), |(a, b)| (a, Some(b)));
    let identifiers_ok = |s: Option<&str>| {
        s.is_none_or(|s| {
            s.split('.').all(|id| {
                !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        })
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        })
        && identifiers_ok(pre)
        && identifiers_ok(build)
}

/// Unpacks a `.tar.gz` or `.zip` into a new temporary folder.
fn unpack(archive: &Path) -> Result<tempfile::TempDir, String> {
    let dir = tempfile::tempdir().unwrap();
    let name = archive.to_string_lossy();
    let output = if name.ends_with(".tar.gz") {
        Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(dir.path())
            .output()
    } else {
        Command::new("unzip")
            .arg("-q")
            .arg(archive)
            .arg("-d")
            .arg(dir.path())
            .output()
    }
    .map_err(|e| format!("cannot unpack {name}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{name} does not unpack: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(dir)
}

/// Whether two selectors (matchLabels only) can match the same platform:
/// they agree on every label both set.
fn overlap(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    a.iter().all(|(k, v)| b.get(k).is_none_or(|w| w == v))
}

/// Everything krew (and the krew-index) would refuse in the manifest at
/// `path`, whose archives are in `archives` under the URIs' file names.
/// Empty when krew would install it.
fn krew_violations(path: &Path, archives: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return vec![format!("cannot read {}: {e}", path.display())],
    };
    let manifest: Value = match serde_saphyr::from_str(&text) {
        Ok(value) => value,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    if manifest["apiVersion"] != API_VERSION {
        bad.push(format!("apiVersion must be {API_VERSION}"));
    }
    if manifest["kind"] != "Plugin" {
        bad.push("kind must be Plugin".to_owned());
    }
    let name = manifest["metadata"]["name"].as_str().unwrap_or_default();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        bad.push(format!(
            "metadata.name {name:?} must be lowercase letters, digits and dashes"
        ));
    }
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    if file_name != format!("{name}.yaml") {
        bad.push(format!(
            "metadata.name {name:?} must equal the file name {file_name:?} without .yaml"
        ));
    }
    let spec = &manifest["spec"];
    let version = spec["version"].as_str().unwrap_or_default();
    if !is_v_semver(version) {
        bad.push(format!(
            "spec.version {version:?} must be a v-prefixed semantic version (v1.2.3)"
        ));
    }
    let short = spec["shortDescription"].as_str().unwrap_or_default();
    if short.trim().is_empty() || short.contains('\n') {
        bad.push("spec.shortDescription must be one non-empty line".to_owned());
    }
    if spec["description"]
        .as_str()
        .is_none_or(|d| d.trim().is_empty())
    {
        bad.push("spec.description is required".to_owned());
    }
    let platforms = spec["platforms"].as_array().cloned().unwrap_or_default();
    if platforms.is_empty() {
        bad.push("spec.platforms must list at least one platform".to_owned());
    }
    let mut selectors = Vec::new();
    for (i, platform) in platforms.iter().enumerate() {
        let at = format!("spec.platforms[{i}]");
        let selector = platform["selector"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        if selector.keys().any(|k| k != "matchLabels") {
            bad.push(format!("{at}.selector may only use matchLabels"));
        }
        let labels: BTreeMap<String, String> = selector
            .get("matchLabels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        if labels.is_empty() || labels.keys().any(|k| k != "os" && k != "arch") {
            bad.push(format!(
                "{at}.selector.matchLabels must use only os and arch: {labels:?}"
            ));
        }
        for (j, other) in selectors.iter().enumerate() {
            if overlap(&labels, other) {
                bad.push(format!(
                    "{at}.selector overlaps spec.platforms[{j}]: {labels:?} and {other:?}"
                ));
            }
        }
        selectors.push(labels);

        let uri = platform["uri"].as_str().unwrap_or_default();
        if !uri.starts_with("https://") && !uri.starts_with("http://") {
            bad.push(format!("{at}.uri {uri:?} must be an http(s) URL"));
        }
        if !(uri.ends_with(".tar.gz") || uri.ends_with(".zip")) {
            bad.push(format!(
                "{at}.uri {uri:?} must be a .tar.gz or .zip archive"
            ));
        }
        let sha256 = platform["sha256"].as_str().unwrap_or_default();
        if sha256.len() != 64
            || !sha256
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            bad.push(format!(
                "{at}.sha256 {sha256:?} must be 64 lowercase hex digits"
            ));
        }
        let bin = platform["bin"].as_str().unwrap_or_default();
        if bin.is_empty() {
            bad.push(format!("{at}.bin is required"));
        }

        // The archive itself.
        let file = uri.rsplit('/').next().unwrap_or_default();
        let archive = archives.join(file);
        if !archive.is_file() {
            bad.push(format!("{at}: archive {file} not found"));
            continue;
        }
        let actual = sha256_hex(&archive);
        if actual != sha256 {
            bad.push(format!(
                "{at}.sha256 is {sha256} but {file} hashes to {actual}"
            ));
        }
        match unpack(&archive) {
            Err(e) => bad.push(format!("{at}: {e}")),
            Ok(dir) => {
                let bin_path = dir.path().join(bin);
                if !bin_path.is_file() {
                    bad.push(format!("{at}.bin {bin} is not in {file}"));
                } else if !file.ends_with(".zip") {
                    use std::os::unix::fs::PermissionsExt as _;
                    let mode = fs::metadata(&bin_path).unwrap().permissions().mode();
                    if mode & 0o111 == 0 {
                        bad.push(format!("{at}.bin {bin} is not executable in {file}"));
                    }
                }
                let has_license = fs::read_dir(dir.path())
                    .unwrap()
                    .filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().starts_with("LICENSE"));
                if !has_license {
                    bad.push(format!("{at}: {file} has no LICENSE file"));
                }
            }
        }
    }
    bad
}

fn assert_valid(path: &Path, archives: &Path) -> Value {
    let bad = krew_violations(path, archives);
    assert!(
        bad.is_empty(),
        "krew would refuse {}:\n{}\n---\n{}",
        path.display(),
        bad.join("\n"),
        fs::read_to_string(path).unwrap_or_default()
    );
    serde_saphyr::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// (os, arch, uri, bin) of each platform of a manifest.
fn platforms_of(manifest: &Value) -> Vec<(String, String, String, String)> {
    manifest["spec"]["platforms"]
        .as_array()
        .expect("platforms")
        .iter()
        .map(|p| {
            let labels = &p["selector"]["matchLabels"];
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                text(&labels["os"]),
                text(&labels["arch"]),
                text(&p["uri"]),
                text(&p["bin"]),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- tests

/// What a developer gets from packaging here: an archive of the host's
/// platform, and a manifest that lists just that platform and installs with
/// `kubectl krew install --manifest=... --archive=...`.
#[test]
fn local_package_passes_krew_validation() {
    let dist = tempfile::tempdir().unwrap();
    let host = host_target();
    let (os, arch) = PLATFORMS
        .iter()
        .find(|(target, ..)| host.replace("-musl", "-gnu") == *target)
        .map(|(_, os, arch, ..)| (*os, *arch))
        .unwrap_or_else(|| panic!("the host {host} is not a platform krew/package.sh packages"));
    let archive = archive(&binary("kubectl-ephemeral"), &host, None, dist.path());
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        archive
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("kubectl-ephemeral-{version}-{os}-{arch}")),
        "archive named by the workspace version and platform: {}",
        archive.display()
    );
    let out = dist.path().join("ephemeral.yaml");
    assert_success(&package(&[
        "manifest",
        "--partial",
        "--base-url",
        BASE_URL,
        dist.path().to_str().unwrap(),
        out.to_str().unwrap(),
    ]));
    let manifest = assert_valid(&out, dist.path());
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o644,
            0o644,
            "the manifest is published as written: {mode:o}"
        );
    }
    assert_eq!(
        manifest["spec"]["version"],
        format!("v{version}"),
        "the version of the workspace's Cargo.toml, v-prefixed"
    );
    assert_eq!(
        platforms_of(&manifest),
        [(
            os.to_owned(),
            arch.to_owned(),
            format!("{BASE_URL}/kubectl-ephemeral-{version}-{os}-{arch}.tar.gz"),
            "kubectl-ephemeral".to_owned()
        )],
        "--partial lists only the platforms that were built"
    );

    // The archive holds the real plugin: it runs and knows its version.
    let unpacked = unpack(&archive).unwrap();
    let output = Command::new(unpacked.path().join("kubectl-ephemeral"))
        .arg("--version")
        .output()
        .expect("the packaged binary runs");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("kubectl-ephemeral {version}")
    );
    assert_eq!(
        fs::read(unpacked.path().join("LICENSE")).unwrap(),
        fs::read(workspace_root().join("LICENSE")).unwrap(),
        "the project's LICENSE"
    );
}

/// A release: CI puts every platform's archive in one folder; the manifest
/// lists them all, each with its own URI and sha256, and passes krew's rules.
#[test]
fn release_manifest_lists_every_platform_and_passes_krew_validation() {
    let dist = tempfile::tempdir().unwrap();
    let plugin = stand_in(dist.path());
    for (target, ..) in PLATFORMS {
        archive(&plugin, target, Some("v1.2.3"), dist.path());
    }
    let out = dist.path().join("ephemeral.yaml");
    let stdout = assert_success(&package(&[
        "manifest",
        "--version",
        "v1.2.3",
        "--base-url",
        BASE_URL,
        dist.path().to_str().unwrap(),
        out.to_str().unwrap(),
    ]));
    assert!(
        stdout.is_empty(),
        "nothing on stdout when writing to a path"
    );
    let manifest = assert_valid(&out, dist.path());
    assert_eq!(manifest["spec"]["version"], "v1.2.3");
    let mut got = platforms_of(&manifest);
    got.sort();
    let mut want: Vec<(String, String, String, String)> = PLATFORMS
        .iter()
        .map(|(_, os, arch, ext, bin)| {
            (
                (*os).to_owned(),
                (*arch).to_owned(),
                format!("{BASE_URL}/kubectl-ephemeral-1.2.3-{os}-{arch}.{ext}"),
                (*bin).to_owned(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(got, want);

    // To stdout, the same manifest.
    let printed = assert_success(&package(&[
        "manifest",
        "--version",
        "1.2.3",
        "--base-url",
        BASE_URL,
        dist.path().to_str().unwrap(),
    ]));
    assert_eq!(printed, fs::read_to_string(&out).unwrap());
}

#[test]
fn archives_are_reproducible() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let plugin = stand_in(a.path());
    for target in ["x86_64-unknown-linux-gnu", "x86_64-pc-windows-msvc"] {
        let first = archive(&plugin, target, None, a.path());
        // A second later, so that a time stamp taken from the clock would differ.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let second = archive(&plugin, target, None, b.path());
        assert_eq!(
            sha256_hex(&first),
            sha256_hex(&second),
            "packaging the same binary twice gives the same {}",
            first.display()
        );
    }
}

#[test]
fn release_with_a_missing_archive_fails_and_names_it() {
    let dist = tempfile::tempdir().unwrap();
    let plugin = stand_in(dist.path());
    for (target, ..) in PLATFORMS {
        archive(&plugin, target, Some("1.2.3"), dist.path());
    }
    let missing = "kubectl-ephemeral-1.2.3-darwin-arm64.tar.gz";
    fs::remove_file(dist.path().join(missing)).unwrap();
    let out = dist.path().join("ephemeral.yaml");
    let output = package(&[
        "manifest",
        "--version",
        "v1.2.3",
        dist.path().to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(
        !output.status.success(),
        "must fail when an archive is missing"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(missing),
        "the error names the missing archive {missing}:\n{stderr}"
    );
    assert!(
        !out.exists(),
        "no manifest is written when an archive is missing"
    );
}

#[test]
fn bad_input_is_refused_with_the_reason() {
    let dist = tempfile::tempdir().unwrap();
    for (args, reason) in [
        (
            vec![
                "manifest",
                "--version",
                "1.2",
                dist.path().to_str().unwrap(),
            ],
            "not a semantic version",
        ),
        (
            vec!["manifest", "--partial", dist.path().to_str().unwrap()],
            "no archive of any platform",
        ),
        (
            vec!["archive", "--target", "riscv64gc-unknown-linux-gnu"],
            "not one krew is packaged for",
        ),
        (vec!["frobnicate"], "unknown command"),
    ] {
        let output = package(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} must fail");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}

/// The validation above is strict: each broken rule is reported.
#[test]
fn krew_rules_catch_broken_manifests() {
    let dist = tempfile::tempdir().unwrap();
    let good_archive = archive(
        &stand_in(dist.path()),
        "x86_64-unknown-linux-gnu",
        Some("1.2.3"),
        dist.path(),
    );
    let good_sha = sha256_hex(&good_archive);
    let uri = format!("{BASE_URL}/kubectl-ephemeral-1.2.3-linux-amd64.tar.gz");
    let platform = |os: &str, arch: &str| {
        json!({
            "selector": {"matchLabels": {"os": os, "arch": arch}},
            "uri": uri, "sha256": good_sha, "bin": "kubectl-ephemeral"
        })
    };
    let good = json!({
        "apiVersion": API_VERSION,
        "kind": "Plugin",
        "metadata": {"name": "ephemeral"},
        "spec": {
            "version": "v1.2.3",
            "shortDescription": "Ephemeral test environments on Flux",
            "description": "Long text.",
            "platforms": [platform("linux", "amd64")]
        }
    });
    let check = |manifest: &Value, file: &str| {
        let path = dist.path().join(file);
        fs::write(&path, serde_json::to_string_pretty(manifest).unwrap()).unwrap();
        krew_violations(&path, dist.path())
    };
    assert_eq!(check(&good, "ephemeral.yaml"), Vec::<String>::new());

    // An archive without LICENSE, and one without the binary.
    let stage = tempfile::tempdir().unwrap();
    fs::write(stage.path().join("kubectl-ephemeral"), "#!/bin/sh\n").unwrap();
    fs::write(stage.path().join("README"), "no license\n").unwrap();
    let tar = |name: &str, file: &str| {
        let status = Command::new("tar")
            .arg("-czf")
            .arg(dist.path().join(name))
            .arg("-C")
            .arg(stage.path())
            .arg(file)
            .status()
            .unwrap();
        assert!(status.success());
        sha256_hex(&dist.path().join(name))
    };
    let no_license_sha = tar("no-license.tar.gz", "kubectl-ephemeral");
    let no_bin_sha = tar("no-bin.tar.gz", "README");

    let upper_sha = good_sha.to_uppercase();
    let mut linux_only = platform("linux", "amd64");
    linux_only["selector"]["matchLabels"]
        .as_object_mut()
        .unwrap()
        .remove("arch");
    type Break = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Break, &str)> = vec![
        (
            "ephemeral.yaml",
            Box::new(|m| m["apiVersion"] = json!("krew.googlecontainertools.github.com/v1alpha1")),
            "apiVersion",
        ),
        (
            "ephemeral.yaml",
            Box::new(|m| m["kind"] = json!("Plugins")),
            "kind",
        ),
        ("other.yaml", Box::new(|_| {}), "file name"),
        (
            "ephemeral.yaml",
            Box::new(|m| m["spec"]["version"] = json!("1.2.3")),
            "v-prefixed",
        ),
        (
            "ephemeral.yaml",
            Box::new(|m| m["spec"]["version"] = json!("v1.02.3")),
            "v-prefixed",
        ),
        (
            "ephemeral.yaml",
            Box::new(|m| m["spec"]["shortDescription"] = json!("")),
            "shortDescription",
        ),
        (
            "ephemeral.yaml",
            Box::new(|m| {
                m["spec"]
                    .as_object_mut()
                    .unwrap()
                    .remove("description")
                    .map(drop)
                    .unwrap_or(())
            }),
            "description",
        ),
        (
            "ephemeral.yaml",
            Box::new(|m| m["spec"]["platforms"] = json!([])),
            "at least one",
        ),
        (
            "ephemeral.yaml",
            Box::new(|m| {
                m["spec"]["platforms"][0]["selector"]["matchLabels"]["libc"] = json!("musl")
            }),
            "only os and arch",
        ),
        (
            "ephemeral.yaml",
            Box::new(|m| m["spec"]["platforms"][0]["selector"]["matchExpressions"] = json!([])),
            "only use matchLabels",
        ),
        (
            "ephemeral.yaml",
            Box::new(move |m| {
                m["spec"]["platforms"]
                    .as_array_mut()
                    .unwrap()
                    .push(linux_only.clone())
            }),
            "overlaps",
        ),
        (
            "ephemeral.yaml",
            Box::new(|m| {
                m["spec"]["platforms"][0]["uri"] =
                    json!(format!("{BASE_URL}/kubectl-ephemeral.tar.bz2"))
            }),
            ".tar.gz or .zip",
        ),
        (
            "ephemeral.yaml",
            Box::new(move |m| m["spec"]["platforms"][0]["sha256"] = json!(upper_sha)),
            "lowercase hex",
        ),
        (
            "ephemeral.yaml",
            Box::new(|m| m["spec"]["platforms"][0]["sha256"] = json!("0".repeat(64))),
            "hashes to",
        ),
        (
            "ephemeral.yaml",
            Box::new(|m| m["spec"]["platforms"][0]["bin"] = json!("kubectl-ephemerall")),
            "is not in",
        ),
        (
            "ephemeral.yaml",
            Box::new(move |m| {
                m["spec"]["platforms"][0]["uri"] = json!(format!("{BASE_URL}/no-license.tar.gz"));
                m["spec"]["platforms"][0]["sha256"] = json!(no_license_sha);
            }),
            "no LICENSE",
        ),
        (
            "ephemeral.yaml",
            Box::new(move |m| {
                m["spec"]["platforms"][0]["uri"] = json!(format!("{BASE_URL}/no-bin.tar.gz"));
                m["spec"]["platforms"][0]["sha256"] = json!(no_bin_sha);
            }),
            "is not in",
        ),
    ];
    for (file, break_it, reason) in cases {
        let mut manifest = good.clone();
        break_it(&mut manifest);
        let bad = check(&manifest, file);
        assert!(
            bad.iter().any(|b| b.contains(reason)),
            "a manifest breaking the {reason:?} rule is refused; got {bad:?} for\n{manifest:#}"
        );
    }
}
