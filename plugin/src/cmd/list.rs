//! `kubectl ephemeral list` (aliases `ls`, `get`).

use std::io::Write;

use ephemeral_core::Environment;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};

use super::{Ctx, Notes};
use crate::api::{self, display_name};
use crate::cli::{ListArgs, ListFormat};
use crate::error::{ENVIRONMENTS, Error, Target};
use crate::output;
use crate::summary;
use crate::table::{self, Paint, paint};
use crate::time::Clock;

/// How to print a list.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// The format.
    pub format: ListFormat,
    /// Add a NAMESPACE column (with `-A`).
    pub namespaces: bool,
    /// Print the header row.
    pub headers: bool,
    /// Colour READY and expired leases.
    pub colour: bool,
}

/// Who the API server says we are (a SelfSubjectReview), for `--mine`.
pub async fn whoami(client: &kube::Client) -> Result<String, Error> {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| match Error::from_kube(e, Target::collection("selfsubjectreviews.authentication.k8s.io", None)) {
            Error::Api { code, message } => Error::Api {
                code,
                message: format!("cannot ask the API server who you are ({message}). Fix: use --owner NAME instead of --mine"),
            },
            other => other,
        })?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .ok_or_else(|| Error::Api {
            code: 200,
            message:
                "the API server did not say who you are. Fix: use --owner NAME instead of --mine"
                    .to_owned(),
        })
}

/// Runs `list`.
pub async fn run(ctx: &Ctx, args: &ListArgs, out: &mut dyn Write) -> Result<Notes, Error> {
    let envs: Api<Environment> = if args.all_namespaces {
        Api::all(ctx.client.clone())
    } else {
        api::environments(&ctx.client, &ctx.namespace)
    };
    let mut params = ListParams::default();
    if let Some(selector) = &args.selector {
        params = params.labels(selector);
    }
    let namespace = (!args.all_namespaces).then_some(ctx.namespace.as_str());
    let list = envs
        .list(&params)
        .await
        .map_err(|e| Error::from_kube(e, Target::collection(ENVIRONMENTS, namespace)))?;
    let owner = match (&args.owner, args.mine) {
        (Some(owner), _) => Some(owner.clone()),
        (None, true) => Some(whoami(&ctx.client).await?),
        (None, false) => None,
    };
    let items: Vec<Environment> = list
        .items
        .into_iter()
        .filter(|e| owner.as_deref().is_none_or(|o| summary::owner(e) == o))
        .collect();
    let mut notes = Notes::new();
    if items.is_empty() && matches!(args.output, ListFormat::Table | ListFormat::Wide) {
        let whose = owner.map(|o| format!(" owned by {o}")).unwrap_or_default();
        notes.push(match namespace {
            Some(ns) => format!("No environments{whose} found in namespace {ns}."),
            None => format!("No environments{whose} found."),
        });
        return Ok(notes);
    }
    let layout = Layout {
        format: args.output,
        namespaces: args.all_namespaces,
        headers: !args.no_headers,
        colour: ctx.colour,
    };
    write(out, &items, layout, &ctx.clock)?;
    Ok(notes)
}

/// Prints environments in a layout. Pure apart from the writer; benchmarked.
pub fn write(
    out: &mut dyn Write,
    items: &[Environment],
    layout: Layout,
    clock: &Clock,
) -> Result<(), Error> {
    match layout.format {
        ListFormat::Table | ListFormat::Wide => {
            out.write_all(table_text(items, layout, clock).as_bytes())?;
        }
        ListFormat::Name => {
            for env in items {
                writeln!(out, "{}", display_name(&env.name_any()))?;
            }
        }
        ListFormat::Yaml | ListFormat::Json => {
            let values = items
                .iter()
                .map(|e| serde_json::to_value(e).expect("an Environment always serialises"))
                .collect();
            let list = output::list(values);
            if layout.format == ListFormat::Yaml {
                output::yaml(out, &list)?;
            } else {
                output::json(out, &list)?;
            }
        }
    }
    Ok(())
}

/// The table: `[NAMESPACE] NAME OWNER APPS READY LEASE AGE [SET PR PREFIXES]`.
pub fn table_text(items: &[Environment], layout: Layout, clock: &Clock) -> String {
    let wide = layout.format == ListFormat::Wide;
    let mut header = Vec::with_capacity(10);
    if layout.namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "OWNER", "APPS", "READY", "LEASE", "AGE"]);
    if wide {
        header.extend(["SET", "PR", "PREFIXES"]);
    }
    let rows = items
        .iter()
        .map(|env| {
            let mut row = Vec::with_capacity(header.len());
            if layout.namespaces {
                row.push(env.namespace().unwrap_or_default());
            }
            let ready = summary::ready(env);
            let ready = match ready {
                "True" => paint(ready, Paint::Green, layout.colour),
                "False" => paint(ready, Paint::Red, layout.colour),
                other => paint(
                    other,
                    Paint::Yellow,
                    layout.colour && other != summary::NONE,
                ),
            };
            let lease = summary::lease(env, clock);
            let lease = if lease.starts_with("expired") {
                paint(&lease, Paint::Red, layout.colour)
            } else {
                lease
            };
            row.extend([
                env.name_any(),
                summary::owner(env).to_owned(),
                summary::ready_apps(env),
                ready,
                lease,
                summary::age(env, clock),
            ]);
            if wide {
                let (set, pr) = summary::set_of(env);
                row.extend([set, pr, summary::app_prefixes(env)]);
            }
            row
        })
        .collect();
    table::render(&header, rows, layout.headers)
}
