//! `kubectl ephemeral sets [NAME]`: the EnvironmentSets of a namespace (or
//! every namespace) with their pull requests, or one set in detail. The list
//! reads only the sets: where each pull request stands is in the set's
//! status, written by its controller. One set also reads its Environments
//! (by the label `ephemeral.io/set`) and its Events.

use std::io::Write;

use ephemeral_core::set::{EnvironmentSet, SET_LABEL};
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use super::describe;
use super::{Ctx, Notes};
use crate::api;
use crate::cli::{SetsArgs, SetsFormat};
use crate::error::{ENVIRONMENTSETS, Error, Target};
use crate::output;
use crate::set_view::{self, DescribedSet, Layout};

/// Runs `sets`: one set with NAME, else the list.
pub async fn run(ctx: &Ctx, args: &SetsArgs, out: &mut dyn Write) -> Result<Notes, Error> {
    match &args.name {
        Some(name) => one(ctx, name, args.output, out).await,
        None => list(ctx, args, out).await,
    }
}

async fn one(
    ctx: &Ctx,
    name: &str,
    format: Option<SetsFormat>,
    out: &mut dyn Write,
) -> Result<Notes, Error> {
    let ns = ctx.namespace.as_str();
    let set = api::sets(&ctx.client, ns)
        .get(name)
        .await
        .map_err(|e| Error::from_kube(e, Target::set(name, ns)))?;
    match format {
        None => {
            let selector = format!("{SET_LABEL}={name}");
            let environments = api::environments(&ctx.client, ns)
                .list(&ListParams::default().labels(&selector))
                .await
                .map(|list| list.items)
                .map_err(describe::api_message);
            let events = describe::events(ctx, "EnvironmentSet", name).await;
            let described = DescribedSet {
                set,
                environments,
                events,
            };
            out.write_all(set_view::describe(&described, &ctx.clock).as_bytes())?;
        }
        Some(SetsFormat::Name) => writeln!(out, "{}", api::set_display_name(&set.name_any()))?,
        Some(SetsFormat::Yaml) => output::yaml(out, &to_value(&set))?,
        Some(SetsFormat::Json) => output::json(out, &to_value(&set))?,
    }
    Ok(Notes::new())
}

async fn list(ctx: &Ctx, args: &SetsArgs, out: &mut dyn Write) -> Result<Notes, Error> {
    let sets: Api<EnvironmentSet> = if args.all_namespaces {
        Api::all(ctx.client.clone())
    } else {
        api::sets(&ctx.client, &ctx.namespace)
    };
    let mut params = ListParams::default();
    if let Some(selector) = &args.selector {
        params = params.labels(selector);
    }
    let namespace = (!args.all_namespaces).then_some(ctx.namespace.as_str());
    let items = sets
        .list(&params)
        .await
        .map_err(|e| Error::from_kube(e, Target::collection(ENVIRONMENTSETS, namespace)))?
        .items;
    let mut notes = Notes::new();
    match args.output {
        None if items.is_empty() => notes.push(match namespace {
            Some(ns) => format!("No EnvironmentSets found in namespace {ns}."),
            None => "No EnvironmentSets found.".to_owned(),
        }),
        None => {
            let layout = Layout {
                namespaces: args.all_namespaces,
                colour: ctx.colour,
            };
            out.write_all(set_view::sets_table(&items, layout, &ctx.clock).as_bytes())?;
            let pull_requests = set_view::pull_requests_table(&items, layout);
            if !pull_requests.is_empty() {
                writeln!(out)?;
                out.write_all(pull_requests.as_bytes())?;
            }
        }
        Some(SetsFormat::Name) => {
            for set in &items {
                writeln!(out, "{}", api::set_display_name(&set.name_any()))?;
            }
        }
        Some(format @ (SetsFormat::Yaml | SetsFormat::Json)) => {
            let list = output::list(items.iter().map(to_value).collect());
            if format == SetsFormat::Yaml {
                output::yaml(out, &list)?;
            } else {
                output::json(out, &list)?;
            }
        }
    }
    Ok(notes)
}

fn to_value(set: &EnvironmentSet) -> serde_json::Value {
    serde_json::to_value(set).expect("an EnvironmentSet always serialises")
}
