//! `kubectl ephemeral render`: offline expansion of Environments.

use std::io::Write;

use ephemeral_core::config::ConfigError;
use ephemeral_core::{Denied, expand};
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
        "no Environment found in {paths}. Fix: pass files or directories holding apiVersion ephemeral.io/v1alpha1, kind Environment"
    )]
    NoEnvironment {
        /// The paths given.
        paths: String,
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
    if input.environments.is_empty() {
        return Err(RenderError::NoEnvironment {
            paths: args
                .filenames
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut warnings: Vec<String> = input.skipped.iter().map(ToString::to_string).collect();
    let mut objects = Vec::new();
    for (origin, env) in &input.environments {
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
