//! `kubectl ephemeral create`.

use std::io::Write;

use ephemeral_core::api::{App, Lease};
use ephemeral_core::lease::rfc3339_utc;
use ephemeral_core::{Environment, api::EnvironmentSpec};
use kube::ResourceExt;

use super::{Ctx, Notes, lease_end};
use crate::api::{self, display_name};
use crate::cli::{CreateArgs, DryRun, ObjectFormat};
use crate::error::{ENVIRONMENTS, Error, Target};
use crate::output;
use crate::summary;
use crate::time::Clock;

/// The Environment to send: from `-f` (if given) plus the flags, in `namespace`
/// unless the file names one (a different `-n` is an error, as in kubectl).
pub fn build(args: &CreateArgs, namespace: &str, clock: &Clock) -> Result<Environment, Error> {
    let mut env = match &args.filename {
        Some(path) => from_file(path, namespace)?,
        None => Environment::new("", EnvironmentSpec::default()),
    };
    if let Some(name) = &args.name {
        env.metadata.name = Some(name.clone());
    }
    let namespace = match (&env.metadata.namespace, &args.kube.namespace) {
        (Some(file), Some(flag)) if file != flag => {
            return Err(Error::Usage(format!(
                "the file puts the environment in namespace \"{file}\" but -n says \"{flag}\". Fix: pass -n {file}, or drop metadata.namespace from the file"
            )));
        }
        (Some(file), _) => file.clone(),
        (None, _) => namespace.to_owned(),
    };
    env.metadata.namespace = Some(namespace);
    for app in &args.apps {
        env.spec.apps.push(App {
            name: app.name.clone(),
            image_tag_prefix: app.prefix.clone(),
            branch: app.branch.clone(),
            ..App::default()
        });
    }
    for bundle in &args.bundles {
        if !env.spec.bundles.contains(bundle) {
            env.spec.bundles.push(bundle.clone());
        }
    }
    if let Some(branch) = &args.source_branch {
        env.spec.source_branch = Some(branch.clone());
    }
    let kept = env.spec.lease.clone().unwrap_or_default();
    let (expire_after, suspend_outside_uptime) = (kept.expire_after, kept.suspend_outside_uptime);
    if let Some(schedule) = &args.schedule {
        env.spec.lease = Some(Lease {
            schedule: Some(schedule.clone()),
            until: None,
            expire_after,
            suspend_outside_uptime,
        });
    } else if let Some(until) = lease_end(&args.lease, clock)? {
        env.spec.lease = Some(Lease {
            until: Some(rfc3339_utc(until)),
            schedule: None,
            expire_after,
            suspend_outside_uptime,
        });
    }
    if env.spec.apps.is_empty() && env.spec.bundles.is_empty() {
        return Err(Error::Usage(
            "an environment needs at least one app. Fix: add --app APP (see kubectl ephemeral templates) or --bundle BUNDLE".to_owned(),
        ));
    }
    Ok(env)
}

/// The one Environment in `path`; without a namespace it is in `namespace`.
fn from_file(path: &std::path::Path, namespace: &str) -> Result<Environment, Error> {
    let input = crate::input::read(&[path.to_path_buf()], false, namespace)?;
    let mut envs = input.environments;
    match envs.len() {
        1 => Ok(envs.remove(0).1),
        n => Err(Error::Usage(format!(
            "{}: holds {n} Environments; create takes a file with exactly one",
            path.display()
        ))),
    }
}

/// Runs `create`.
pub async fn run(ctx: &Ctx, args: &CreateArgs, out: &mut dyn Write) -> Result<Notes, Error> {
    let env = build(args, &ctx.namespace, &ctx.clock)?;
    let namespace = env.namespace().unwrap_or_default();
    let print = |out: &mut dyn Write, env: &Environment, default: Option<ObjectFormat>| {
        let value = serde_json::to_value(env).expect("an Environment always serialises");
        match args.output.or(default) {
            Some(ObjectFormat::Yaml) => output::yaml(out, &value),
            Some(ObjectFormat::Json) => output::json(out, &value),
            None => Ok(()),
        }
    };
    if args.dry_run == Some(DryRun::Client) {
        print(out, &env, Some(ObjectFormat::Yaml))?;
        return Ok(vec![format!(
            "{} created (dry run: nothing was sent)",
            display_name(&env.name_any())
        )]);
    }
    let server_dry_run = args.dry_run == Some(DryRun::Server);
    let created = api::environments(&ctx.client, &namespace)
        .create(&api::post_params(server_dry_run), &env)
        .await
        .map_err(|e| Error::from_kube(e, Target::collection(ENVIRONMENTS, Some(&namespace))))?;
    let name = display_name(&created.name_any());
    if server_dry_run {
        print(out, &created, Some(ObjectFormat::Yaml))?;
        return Ok(vec![format!(
            "{name} created (server dry run: admitted, not stored)"
        )]);
    }
    if args.output.is_some() {
        print(out, &created, None)?;
        return Ok(vec![]);
    }
    writeln!(out, "{name} created")?;
    writeln!(out, "  owner  {}", summary::owner(&created))?;
    writeln!(
        out,
        "  apps   {}",
        summary::app_prefixes(&created).replace(',', ", ")
    )?;
    writeln!(out, "  lease  {}", summary::lease(&created, &ctx.clock))?;
    Ok(vec![format!(
        "Watch it come up: kubectl ephemeral wait {} --for ready -n {namespace}",
        created.name_any()
    )])
}
