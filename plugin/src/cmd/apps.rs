//! `add-app`, `set-app`, `remove-app`: JSON patches (RFC 6902) on `spec.apps`.
//!
//! A JSON merge patch cannot change one element of a list, and server-side
//! apply would make `kubectl-ephemeral` the owner of every app it ever
//! touched (and fight the webhook's defaults). So the commands read the
//! environment, find the app's index, and send a JSON patch whose first
//! operation is a `test` that the element at that index still has the app's
//! name: if someone reordered or removed apps in between, the API server
//! refuses the patch instead of changing the wrong app.

use std::io::Write;

use ephemeral_core::Environment;
use ephemeral_core::api::App;
use ephemeral_core::prefix::{prefix_problem, sanitise_branch};
use kube::ResourceExt;
use kube::api::Patch;
use serde_json::{Value, json};

use super::{Ctx, Notes};
use crate::api::{self, display_name};
use crate::cli::{AddAppArgs, RemoveAppArgs, SetAppArgs};
use crate::error::{APPBUNDLES, Error, Target};

async fn get(ctx: &Ctx, name: &str) -> Result<Environment, Error> {
    let ns = ctx.namespace.as_str();
    api::environments(&ctx.client, ns)
        .get(name)
        .await
        .map_err(|e| Error::from_kube(e, Target::environment(name, ns)))
}

async fn send(ctx: &Ctx, name: &str, ops: Value) -> Result<Environment, Error> {
    let ns = ctx.namespace.as_str();
    let patch: json_patch::Patch =
        serde_json::from_value(ops).expect("the operations we build are a JSON patch");
    api::environments(&ctx.client, ns)
        .patch(name, &api::patch_params(), &Patch::<()>::Json(patch))
        .await
        .map_err(|e| Error::from_kube(e, Target::environment(name, ns)))
}

fn index_of(env: &Environment, app: &str) -> Result<usize, Error> {
    env.spec
        .apps
        .iter()
        .position(|a| a.name == app)
        .ok_or_else(|| Error::NoSuchApp {
            env: env.name_any(),
            app: app.to_owned(),
            apps: env
                .spec
                .apps
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn check_prefix(prefix: &str) -> Result<(), Error> {
    match prefix_problem(prefix) {
        Some(problem) => Err(Error::Usage(format!(
            "--prefix '{prefix}' {problem}. Fix: pass a valid image tag prefix, or --branch BRANCH to derive one"
        ))),
        None => Ok(()),
    }
}

/// What an app follows, for messages.
fn follows(app: &App) -> String {
    match (&app.image_tag_prefix, &app.branch) {
        (Some(p), Some(b)) => format!("prefix {p}, branch {b}"),
        (Some(p), None) => format!("prefix {p}"),
        (None, Some(b)) => format!("branch {b}"),
        (None, None) => "no prefix".to_owned(),
    }
}

fn app_after<'a>(env: &'a Environment, app: &str) -> Option<&'a App> {
    env.spec.apps.iter().find(|a| a.name == app)
}

/// The operations that add `app` to `env`.
pub fn add_ops(env: &Environment, app: &App) -> Value {
    let value = serde_json::to_value(app).expect("an App always serialises");
    if env.spec.apps.is_empty() {
        json!([{"op": "add", "path": "/spec/apps", "value": [value]}])
    } else {
        json!([{"op": "add", "path": "/spec/apps/-", "value": value}])
    }
}

/// What `add-app` asks the app to follow: `(prefix, branch)` from
/// `APP=PREFIX`/`APP@BRANCH` or `--prefix`/`--branch`, not both ways.
fn add_follows(args: &AddAppArgs) -> Result<(Option<String>, Option<String>), Error> {
    let in_spec = args.app.prefix.is_some() || args.app.branch.is_some();
    let in_flags = args.prefix.is_some() || args.branch.is_some();
    if in_spec && in_flags {
        return Err(Error::Usage(format!(
            "'{}' already says what to follow. Fix: write APP=PREFIX or APP@BRANCH, or APP with --prefix or --branch, not both",
            args.app.name
        )));
    }
    Ok((
        args.prefix.clone().or_else(|| args.app.prefix.clone()),
        args.branch.clone().or_else(|| args.app.branch.clone()),
    ))
}

/// Checks `add-app`'s arguments without the cluster: what to follow is said
/// once, and a prefix must be a valid tag prefix.
pub fn check_add(args: &AddAppArgs) -> Result<(), Error> {
    match add_follows(args)? {
        (Some(prefix), _) => check_prefix(&prefix),
        _ => Ok(()),
    }
}

/// Runs `add-app`.
pub async fn add(ctx: &Ctx, args: &AddAppArgs, out: &mut dyn Write) -> Result<Notes, Error> {
    check_add(args)?;
    let (prefix, branch) = add_follows(args)?;
    let name = &args.app.name;
    let env = get(ctx, &args.name).await?;
    if app_after(&env, name).is_some() {
        return Err(Error::AppExists {
            env: env.name_any(),
            app: name.clone(),
        });
    }
    let app = App {
        name: name.clone(),
        template: args.template.clone(),
        image_tag_prefix: prefix,
        branch,
        ..App::default()
    };
    let patched = send(ctx, &args.name, add_ops(&env, &app)).await?;
    let what = app_after(&patched, name).map(follows).unwrap_or_default();
    writeln!(
        out,
        "{}: app {name} added ({what})",
        display_name(&patched.name_any()),
    )?;
    Ok(Notes::new())
}

/// The operations that make app number `index` (named `app`) follow a prefix or a branch.
pub fn set_ops(
    env: &Environment,
    index: usize,
    prefix: Option<&str>,
    branch: Option<&str>,
) -> Value {
    let current = &env.spec.apps[index];
    let base = format!("/spec/apps/{index}");
    let mut ops =
        vec![json!({"op": "test", "path": format!("{base}/name"), "value": current.name})];
    match (prefix, branch) {
        (_, Some(branch)) => {
            ops.push(json!({"op": "add", "path": format!("{base}/branch"), "value": branch}));
            // What the webhook derives from the branch; set together so they never conflict.
            ops.push(json!({"op": "add", "path": format!("{base}/imageTagPrefix"), "value": sanitise_branch(branch)}));
        }
        (Some(prefix), None) => {
            ops.push(
                json!({"op": "add", "path": format!("{base}/imageTagPrefix"), "value": prefix}),
            );
            if current.branch.is_some() {
                ops.push(json!({"op": "remove", "path": format!("{base}/branch")}));
            }
        }
        (None, None) => {}
    }
    Value::Array(ops)
}

/// Checks `set-app`'s flags without the cluster: `--prefix`, or the prefix
/// `--branch` gives, must be a valid tag prefix.
pub fn check_set(args: &SetAppArgs) -> Result<(), Error> {
    if let Some(prefix) = &args.prefix {
        check_prefix(prefix)?;
    }
    if let Some(branch) = &args.branch {
        check_prefix(&sanitise_branch(branch)).map_err(|_| {
            Error::Usage(format!(
                "--branch '{branch}' gives no valid image tag prefix ('{}'). Fix: pass --prefix PREFIX",
                sanitise_branch(branch)
            ))
        })?;
    }
    Ok(())
}

/// Runs `set-app`.
pub async fn set(ctx: &Ctx, args: &SetAppArgs, out: &mut dyn Write) -> Result<Notes, Error> {
    check_set(args)?;
    let env = get(ctx, &args.name).await?;
    let index = index_of(&env, &args.app)?;
    let ops = set_ops(&env, index, args.prefix.as_deref(), args.branch.as_deref());
    let patched = send(ctx, &args.name, ops).await?;
    let what = app_after(&patched, &args.app)
        .map(follows)
        .unwrap_or_default();
    writeln!(
        out,
        "{}: app {} now follows {what}",
        display_name(&patched.name_any()),
        args.app
    )?;
    Ok(Notes::new())
}

/// The operations that remove app number `index`.
pub fn remove_ops(env: &Environment, index: usize) -> Value {
    let base = format!("/spec/apps/{index}");
    json!([
        {"op": "test", "path": format!("{base}/name"), "value": env.spec.apps[index].name},
        {"op": "remove", "path": base},
    ])
}

/// Runs `remove-app`. Refuses an app that one of the environment's bundles
/// would add straight back.
pub async fn remove(ctx: &Ctx, args: &RemoveAppArgs, out: &mut dyn Write) -> Result<Notes, Error> {
    let env = get(ctx, &args.name).await?;
    let index = index_of(&env, &args.app)?;
    let ns = ctx.namespace.as_str();
    let mut from = Vec::new();
    for bundle in &env.spec.bundles {
        let found = api::bundles(&ctx.client, ns)
            .get_opt(bundle)
            .await
            .map_err(|e| Error::from_kube(e, Target::collection(APPBUNDLES, Some(ns))))?;
        if found.is_some_and(|b| b.spec.apps.contains(&args.app)) {
            from.push(bundle.as_str());
        }
    }
    if !from.is_empty() {
        return Err(Error::FromBundle {
            env: env.name_any(),
            app: args.app.clone(),
            bundles: from.join(", "),
        });
    }
    let patched = send(ctx, &args.name, remove_ops(&env, index)).await?;
    writeln!(
        out,
        "{}: app {} removed",
        display_name(&patched.name_any()),
        args.app
    )?;
    Ok(Notes::new())
}
