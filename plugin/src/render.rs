//! `kubectl ephemeral render`: offline expansion of Environments, and of the
//! Environments EnvironmentSets would make for a list of pull requests.

use std::io::Write;

use ephemeral_core::config::ConfigError;
use ephemeral_core::set::generate::{self, GenerateError};
use ephemeral_core::set::{EnvironmentSet, PullRequest, filter};
use ephemeral_core::{Denied, Environment, expand};
use jiff::Timestamp;
use kube::ResourceExt;

use crate::cli::{RenderArgs, RenderFormat};
use crate::input::{self, InputError, Origin};
use crate::output::{self, OutputError};

/// Why `render` failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Input could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// An Environment was refused.
    #[error("{origin}: Environment '{name}' is refused:\n{denied}")]
    Denied {
        /// Where the Environment is.
        origin: Origin,
        /// Its name.
        name: String,
        /// Every rule it breaks.
        denied: Denied,
    },
    /// The input holds no Environment.
    #[error(
        "no Environment found in {paths}. Fix: pass files or directories holding apiVersion ephemeral.io/v1alpha1, kind Environment (or EnvironmentSet, with --pull-requests)"
    )]
    NoEnvironment {
        /// The paths given.
        paths: String,
    },
    /// An EnvironmentSet without `--pull-requests`.
    #[error(
        "{origin}: EnvironmentSet '{name}' needs pull requests to render. Fix: pass --pull-requests FILE (a JSON array shaped like GitHub's answer to GET /repos/OWNER/REPO/pulls)"
    )]
    NoPullRequests {
        /// Where the set is.
        origin: Origin,
        /// Its name.
        name: String,
    },
    /// `--pull-requests` without an EnvironmentSet.
    #[error(
        "--pull-requests is given but no EnvironmentSet was found in {paths}. Fix: pass the file holding the EnvironmentSet with -f"
    )]
    NoSet {
        /// The paths given.
        paths: String,
    },
    /// A pull request gets no valid Environment.
    #[error("{origin}: {error}")]
    Generate {
        /// Where the set is.
        origin: Origin,
        /// Why.
        error: Box<GenerateError>,
    },
    /// `--now` is not a time.
    #[error("--now '{0}' is not an RFC 3339 time. Fix: write it like 2026-11-21T09:00:00Z")]
    Now(String),
    /// No owner given and no local user known.
    #[error(
        "cannot tell who you are (USER, LOGNAME and USERNAME are unset, and no passwd entry). Fix: pass --owner NAME"
    )]
    Owner,
    /// A policy flag is wrong.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Output failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl RenderError {
    /// Whether output stopped because its reader went away (`| head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, RenderError::Output(OutputError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            RenderError::Now(_) | RenderError::Config(_) | RenderError::Owner => 2,
            _ => 1,
        }
    }
}

/// The local user: `USER`, `LOGNAME` or `USERNAME`, else (on Unix) the
/// `/etc/passwd` entry of the process's uid.
fn local_user() -> Option<String> {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .or_else(passwd_user)
}

#[cfg(unix)]
fn passwd_user() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid).then(|| name.to_owned())
    })
}

#[cfg(not(unix))]
fn passwd_user() -> Option<String> {
    None
}

/// Runs `render`, writing to `out`; returns warnings for standard error.
pub fn run(args: &RenderArgs, out: &mut impl Write) -> Result<Vec<String>, RenderError> {
    let config = args.policy.to_config()?;
    let now = match &args.now {
        Some(text) => text
            .parse::<Timestamp>()
            .map_err(|_| RenderError::Now(text.clone()))?,
        None => Timestamp::now(),
    };
    let owner = args
        .owner
        .clone()
        .or_else(local_user)
        .ok_or(RenderError::Owner)?;
    let input = input::read(&args.filenames, args.recursive, input::DEFAULT_NAMESPACE)?;
    let catalog = input.catalog_with_image_tags();
    let paths = || {
        args.filenames
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if input.environments.is_empty() && input.sets.is_empty() {
        return Err(RenderError::NoEnvironment { paths: paths() });
    }
    let mut warnings: Vec<String> = input.skipped.iter().map(ToString::to_string).collect();
    let generated = match (&args.pull_requests, input.sets.first()) {
        (None, None) => Vec::new(),
        (None, Some((origin, set))) => {
            return Err(RenderError::NoPullRequests {
                origin: origin.clone(),
                name: set.name_any(),
            });
        }
        (Some(_), None) => return Err(RenderError::NoSet { paths: paths() }),
        (Some(path), Some(_)) => {
            let text = std::fs::read_to_string(path).map_err(|source| InputError::Read {
                path: path.clone(),
                source,
            })?;
            let prs = ephemeral_core::files::pull_requests(path, &text)?;
            let mut generated = Vec::new();
            for (origin, set) in &input.sets {
                for env in environments_of(set, &prs, &mut warnings) {
                    let env = env.map_err(|error| RenderError::Generate {
                        origin: origin.clone(),
                        error: Box::new(error),
                    })?;
                    generated.push((origin.clone(), env));
                }
            }
            generated
        }
    };
    let mut objects = Vec::new();
    for (origin, env) in input.environments.iter().chain(&generated) {
        let expansion =
            expand(env, &catalog, &config, now, &owner).map_err(|denied| RenderError::Denied {
                origin: origin.clone(),
                name: env.name_any(),
                denied,
            })?;
        warnings.extend(
            expansion
                .warnings
                .iter()
                .map(|w| format!("Environment '{}': {w}", env.name_any())),
        );
        objects.push(
            serde_json::to_value(&expansion.environment).expect("an Environment always serialises"),
        );
        objects.extend(expansion.objects.iter().map(|o| o.to_value()));
    }
    match args.output {
        RenderFormat::Yaml => output::yaml_stream(out, &objects)?,
        RenderFormat::Json => output::json_list(out, objects)?,
    }
    Ok(warnings)
}

/// The Environments `set` makes for the open pull requests of `prs` that
/// pass its filters; a warning for each one that does not, and when more
/// match than `maxEnvironments` allows at once.
fn environments_of(
    set: &EnvironmentSet,
    prs: &[PullRequest],
    warnings: &mut Vec<String>,
) -> Vec<Result<Environment, GenerateError>> {
    let name = set.name_any();
    let mut matching = Vec::new();
    for pr in prs {
        if pr.state != "open" {
            warnings.push(format!(
                "EnvironmentSet '{name}': pull request #{}: no Environment: it is {}",
                pr.number, pr.state
            ));
        } else if let Err(exclusion) = filter::check(&set.spec.pull_requests, pr) {
            warnings.push(format!(
                "EnvironmentSet '{name}': pull request #{}: no Environment: {exclusion}",
                pr.number
            ));
        } else {
            matching.push(pr);
        }
    }
    if let Some(max) = set
        .spec
        .max_environments
        .map(|m| usize::try_from(m).unwrap_or(0))
        && matching.len() > max
    {
        warnings.push(format!(
            "EnvironmentSet '{name}': {} pull requests match and maxEnvironments is {max}: in a cluster the newest {} wait, queued",
            matching.len(),
            matching.len() - max
        ));
    }
    matching
        .into_iter()
        .map(|pr| generate::environment(set, pr))
        .collect()
}
