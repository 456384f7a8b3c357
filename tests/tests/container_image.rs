//! The `Dockerfile` builds the image the manifests run. No image can be
//! pulled or built here, so its properties are checked from the file itself,
//! parsed the way Docker reads it (continuation lines, comments, global
//! `ARG`s, stages), and against the workspace and the manifests: a
//! multi-stage build of the `ephemeral-webhook` release binary into a small
//! non-root runtime whose entrypoint is that binary, run as the UID the
//! Deployment expects; and a build context (`.dockerignore`) that still holds
//! a workspace cargo can load.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use ephemeral_testkit::workspace_root;
use serde_json::Value;

/// One Dockerfile instruction: keyword (upper case), its arguments with
/// continuation lines joined, and the line it starts on.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
    line: usize,
}

/// One build stage: its base image (global `ARG`s substituted), its name and
/// its instructions after `FROM`.
#[derive(Debug)]
struct Stage {
    from: String,
    name: Option<String>,
    instructions: Vec<Instruction>,
}

fn parse_instructions(text: &str) -> Vec<Instruction> {
    let mut instructions = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        // Comment lines (also inside a continuation) and blank lines.
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_none()) {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((number + 1, String::new()));
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                joined.push_str(part);
                joined.push(' ');
                pending = Some((start, joined));
            }
            None => {
                joined.push_str(trimmed);
                let (keyword, args) = joined
                    .split_once(char::is_whitespace)
                    .unwrap_or((&joined, ""));
                instructions.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.trim().to_owned(),
                    line: start,
                });
            }
        }
    }
    assert!(
        pending.is_none(),
        "the Dockerfile ends inside a continuation line"
    );
    instructions
}

fn substitute(text: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (name, value) in args {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

fn parse_dockerfile(text: &str) -> Vec<Stage> {
    let mut global_args = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in parse_instructions(text) {
        match instruction.keyword.as_str() {
            "ARG" if stages.is_empty() => {
                let (name, value) = instruction
                    .args
                    .split_once('=')
                    .unwrap_or((&instruction.args, ""));
                global_args.insert(name.to_owned(), value.trim_matches('"').to_owned());
            }
            "FROM" => {
                let words: Vec<&str> = instruction
                    .args
                    .split_whitespace()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let name = match words.as_slice() {
                    [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some((*name).to_owned()),
                    [_] => None,
                    _ => panic!(
                        "line {}: cannot read FROM {}",
                        instruction.line, instruction.args
                    ),
                };
                stages.push(Stage {
                    from: substitute(words[0], &global_args),
                    name,
                    instructions: Vec::new(),
                });
            }
            _ => stages
                .last_mut()
                .unwrap_or_else(|| {
                    panic!(
                        "line {}: {} before the first FROM",
                        instruction.line, instruction.keyword
                    )
                })
                .instructions
                .push(instruction),
        }
    }
    stages
}

fn dockerfile() -> Vec<Stage> {
    let text = fs::read_to_string(workspace_root().join("Dockerfile")).expect("Dockerfile");
    parse_dockerfile(&text)
}

/// A value of a `[section]` of a Cargo.toml, unquoted.
fn cargo_toml_value(file: &str, section: &str, key: &str) -> String {
    let text = fs::read_to_string(workspace_root().join(file)).expect("Cargo.toml");
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == section;
        } else if in_section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return v.trim().trim_matches('"').to_owned();
        }
    }
    panic!("{file} has no {key} in {section}")
}

/// `(major, minor)` of a version such as `1.89` or `1.89.0`.
fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor),
        _ => panic!("{version} is not a version"),
    }
}

/// The Deployment as written in `manifests/base/deployment.yaml`.
fn deployment() -> Value {
    let text = fs::read_to_string(workspace_root().join("manifests/base/deployment.yaml"))
        .expect("manifests/base/deployment.yaml");
    serde_saphyr::from_str(&text).expect("the Deployment is YAML")
}

#[test]
fn parser_reads_stages_continuations_and_args() {
    let stages = parse_dockerfile(
        "# comment\nARG V=1.2\nFROM img:${V} AS one\nRUN a \\\n  # inside\n  b\nfrom other\nUSER 1\n",
    );
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].from, "img:1.2");
    assert_eq!(stages[0].name.as_deref(), Some("one"));
    assert_eq!(stages[0].instructions[0].keyword, "RUN");
    assert_eq!(stages[0].instructions[0].args, "a  b");
    assert_eq!(stages[1].from, "other");
    assert_eq!(stages[1].instructions[0].args, "1");
}

/// A Rust builder stage compiles the release binary of the crate the
/// manifests run; the final stage copies just that binary out of it.
#[test]
fn multi_stage_build_of_the_ephemeral_webhook_release_binary() {
    let stages = dockerfile();
    assert!(stages.len() >= 2, "a multi-stage build: {stages:#?}");
    let runtime = stages.last().unwrap();
    let crate_name = cargo_toml_value("webhook/Cargo.toml", "[package]", "name");
    let bin_name = cargo_toml_value("webhook/Cargo.toml", "[[bin]]", "name");
    assert_eq!(crate_name, "ephemeral-webhook");

    // The runtime stage copies the binary from a named builder stage.
    let copies: Vec<(&str, &str, &str)> = runtime
        .instructions
        .iter()
        .filter(|i| i.keyword == "COPY")
        .filter_map(|i| {
            let words: Vec<&str> = i.args.split_whitespace().collect();
            let from = words.iter().find_map(|w| w.strip_prefix("--from="))?;
            let paths: Vec<&str> = words
                .iter()
                .copied()
                .filter(|w| !w.starts_with("--"))
                .collect();
            match paths.as_slice() {
                [source, dest] => Some((from, *source, *dest)),
                _ => None,
            }
        })
        .collect();
    let (from, source, dest) = copies
        .iter()
        .copied()
        .find(|(_, source, _)| source.rsplit('/').next() == Some(bin_name.as_str()))
        .unwrap_or_else(|| {
            panic!("the last stage copies {bin_name} from a build stage: {copies:?}")
        });
    let builder = stages
        .iter()
        .find(|s| s.name.as_deref() == Some(from))
        .unwrap_or_else(|| panic!("COPY --from={from} names a stage"));
    assert_ne!(
        builder.from, runtime.from,
        "the runtime is not the build image"
    );

    // The builder: a pinned Rust toolchain new enough for the workspace.
    let (image, tag) = builder
        .from
        .rsplit_once(':')
        .expect("the Rust image has a tag");
    assert!(
        image.ends_with("/rust") || image == "rust",
        "builder is a Rust image: {image}"
    );
    assert_ne!(tag, "latest", "the toolchain is pinned");
    let wanted = major_minor(&cargo_toml_value(
        "Cargo.toml",
        "[workspace.package]",
        "rust-version",
    ));
    let toolchain = major_minor(tag.split('-').next().unwrap());
    assert!(
        toolchain >= wanted,
        "the builder's Rust {tag} is at least the workspace's rust-version {wanted:?}"
    );

    // It builds the release binary of that crate with the committed lock
    // file, and the path it copies is where that build puts the binary.
    let build = builder
        .instructions
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("the builder runs cargo build");
    let words: Vec<&str> = build.args.split_whitespace().collect();
    for flag in ["--release", "--locked"] {
        assert!(words.contains(&flag), "cargo build {flag}: {}", build.args);
    }
    assert!(
        words.windows(2).any(|w| w == ["-p", crate_name.as_str()])
            || words.contains(&format!("--package={crate_name}").as_str()),
        "cargo build -p {crate_name}: {}",
        build.args
    );
    let built = format!("target/release/{bin_name}");
    assert!(
        build.args.contains(&built) || source.ends_with(&built),
        "the binary copied out is the one cargo built ({built})"
    );
    if !source.ends_with(&built) {
        // Copied out of a cache mount first: the same path as the COPY source.
        assert!(
            build.args.contains(source),
            "{source} is written by: {}",
            build.args
        );
    }

    // The entrypoint is that binary, in exec form.
    let entrypoint = runtime
        .instructions
        .iter()
        .rfind(|i| i.keyword == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(&entrypoint.args)
        .expect("ENTRYPOINT in exec (JSON) form, so signals reach the binary");
    assert_eq!(
        entrypoint,
        [dest.to_owned()],
        "the entrypoint is the copied binary"
    );
}

/// A small, non-root runtime: distroless (or scratch), a numeric non-root
/// user, the one the Deployment's securityContext names, and the ports the
/// Deployment uses.
#[test]
fn small_non_root_runtime_matching_the_deployment() {
    let stages = dockerfile();
    let runtime = stages.last().unwrap();
    assert!(
        runtime.from.contains("distroless") || runtime.from == "scratch",
        "the runtime is distroless or scratch: {}",
        runtime.from
    );
    assert!(
        !runtime.from.ends_with(":latest") && runtime.from.contains(':'),
        "the runtime image is pinned: {}",
        runtime.from
    );
    assert!(
        runtime
            .instructions
            .iter()
            .all(|i| i.keyword != "RUN" && i.keyword != "ADD"),
        "nothing runs or is downloaded in the runtime stage"
    );
    let user = runtime
        .instructions
        .iter()
        .rfind(|i| i.keyword == "USER")
        .expect("USER in the last stage");
    let (uid, gid) = user.args.split_once(':').unwrap_or((&user.args, ""));
    let uid: u32 = uid
        .parse()
        .unwrap_or_else(|_| panic!("USER {}: numeric, so runAsNonRoot can verify it", user.args));
    assert_ne!(uid, 0, "not root");
    let gid: Option<u32> = (!gid.is_empty()).then(|| gid.parse().expect("numeric group"));

    let deployment = deployment();
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"]["runAsUser"].as_u64(),
        Some(u64::from(uid)),
        "the Deployment runs as the image's user"
    );
    if let Some(gid) = gid {
        assert_eq!(
            pod["securityContext"]["runAsGroup"].as_u64(),
            Some(u64::from(gid))
        );
    }

    let exposed: Vec<u64> = runtime
        .instructions
        .iter()
        .filter(|i| i.keyword == "EXPOSE")
        .flat_map(|i| {
            i.args
                .split_whitespace()
                .map(|p| p.trim_end_matches("/tcp").parse().unwrap())
        })
        .collect();
    let ports: Vec<u64> = pod["containers"][0]["ports"]
        .as_array()
        .expect("container ports")
        .iter()
        .map(|p| p["containerPort"].as_u64().unwrap())
        .collect();
    let mut a = exposed.clone();
    a.sort_unstable();
    let mut b = ports.clone();
    b.sort_unstable();
    assert_eq!(a, b, "EXPOSE the Deployment's container ports");
}

// ---------------------------------------------------------------- build context

/// Whether `.dockerignore` leaves `path` (relative, `/`-separated) out. Only
/// the pattern forms the file uses are understood; another form fails the
/// test instead of being misread.
fn ignored(patterns: &[String], path: &str) -> bool {
    let file_name = path.rsplit('/').next().unwrap_or(path);
    patterns.iter().any(|pattern| {
        if let Some(suffix) = pattern.strip_prefix("**/*") {
            assert!(
                !suffix.contains(['*', '?', '[']),
                "unsupported pattern {pattern}"
            );
            file_name.ends_with(suffix)
        } else if let Some(suffix) = pattern.strip_prefix('*') {
            assert!(
                !suffix.contains(['*', '?', '[', '/']),
                "unsupported pattern {pattern}"
            );
            !path.contains('/') && path.ends_with(suffix)
        } else {
            assert!(
                !pattern.contains(['*', '?', '[', '!']),
                "unsupported pattern {pattern}"
            );
            let pattern = pattern.trim_end_matches('/');
            path == pattern || path.starts_with(&format!("{pattern}/"))
        }
    })
}

fn dockerignore() -> Vec<String> {
    fs::read_to_string(workspace_root().join(".dockerignore"))
        .expect(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The build context (the repository's files minus `.dockerignore`) is a
/// workspace cargo can load with the committed lock file, and holds what the
/// Dockerfile copies from it; `target/` and `.git` stay out.
#[test]
fn build_context_holds_the_workspace_and_nothing_heavy() {
    let patterns = dockerignore();
    for heavy in ["target", ".git", "dist"] {
        assert!(
            ignored(&patterns, heavy),
            ".dockerignore leaves out {heavy}"
        );
    }
    let root = workspace_root();
    let listed = Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "-z",
        ])
        .current_dir(&root)
        .output()
        .expect("run git ls-files");
    assert!(listed.status.success(), "git ls-files failed");
    let context = tempfile::tempdir().unwrap();
    let mut copied = 0;
    for file in String::from_utf8(listed.stdout).unwrap().split('\0') {
        if file.is_empty() || ignored(&patterns, file) || !root.join(file).is_file() {
            continue;
        }
        let to = context.path().join(file);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(root.join(file), &to).unwrap();
        copied += 1;
    }
    assert!(copied > 0);
    for stage in dockerfile() {
        for copy in stage.instructions.iter().filter(|i| i.keyword == "COPY") {
            if copy.args.contains("--from=") {
                continue;
            }
            let sources: Vec<&str> = copy.args.split_whitespace().collect();
            for source in &sources[..sources.len() - 1] {
                if *source != "." {
                    assert!(
                        context.path().join(source).exists(),
                        "COPY {source}: not in the build context"
                    );
                }
            }
        }
    }
    assert_cargo_loads(context.path());
}

/// Cargo loads the workspace in `dir` with every member the repository has,
/// and `dir` carries the repository's lock file unchanged.
///
/// `--no-deps` keeps this about the build context: a full `cargo metadata`
/// would need every package of `Cargo.lock` in the local registry, including
/// other platforms' ones a Linux build never downloads, so its outcome would
/// depend on what the machine's cache happens to hold. Whether the lock file
/// resolves is `cargo build --locked`'s job (CI runs it).
fn assert_cargo_loads(dir: &Path) {
    let members = |dir: &Path| -> Vec<String> {
        let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .current_dir(dir)
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .expect("run cargo metadata");
        assert!(
            output.status.success(),
            "cargo cannot load the workspace in {} (is a member left out by .dockerignore?):\n{}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
        let mut names: Vec<String> = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let in_context = members(dir);
    assert!(
        in_context.iter().any(|name| name == "ephemeral-webhook"),
        "the context has the ephemeral-webhook crate: {in_context:?}"
    );
    assert_eq!(
        in_context,
        members(&workspace_root()),
        "the build context holds every workspace member"
    );
    assert_eq!(
        fs::read(dir.join("Cargo.lock")).ok(),
        fs::read(workspace_root().join("Cargo.lock")).ok(),
        "the build context carries the committed Cargo.lock (the Dockerfile builds --locked)"
    );
}
