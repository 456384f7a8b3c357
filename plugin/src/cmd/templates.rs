//! `kubectl ephemeral templates`: the catalog an environment can use.

use std::io::Write;

use kube::ResourceExt;
use kube::api::ListParams;

use super::{Ctx, Notes};
use crate::api;
use crate::cli::TemplatesArgs;
use crate::error::{APPBUNDLES, APPTEMPLATES, Error, Target};
use crate::summary::NONE;
use crate::table;

/// Runs `templates`.
pub async fn run(ctx: &Ctx, _args: &TemplatesArgs, out: &mut dyn Write) -> Result<Notes, Error> {
    let ns = ctx.namespace.as_str();
    let templates = api::templates(&ctx.client, ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::from_kube(e, Target::collection(APPTEMPLATES, Some(ns))))?;
    let bundles = api::bundles(&ctx.client, ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::from_kube(e, Target::collection(APPBUNDLES, Some(ns))))?;
    let mut notes = Notes::new();
    if templates.items.is_empty() {
        notes.push(format!("No AppTemplates found in namespace {ns}."));
    } else {
        let rows = templates
            .items
            .iter()
            .map(|t| {
                vec![
                    t.name_any(),
                    if t.spec.helm.is_some() {
                        "HelmRelease"
                    } else {
                        "Kustomization"
                    }
                    .to_owned(),
                    t.spec
                        .image_tag_prefix
                        .clone()
                        .unwrap_or_else(|| NONE.to_owned()),
                    t.spec.description.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.write_all(
            table::render(&["TEMPLATE", "KIND", "PREFIX", "DESCRIPTION"], rows, true).as_bytes(),
        )?;
    }
    if bundles.items.is_empty() {
        notes.push(format!("No AppBundles found in namespace {ns}."));
    } else {
        if !templates.items.is_empty() {
            writeln!(out)?;
        }
        let rows = bundles
            .items
            .iter()
            .map(|b| {
                vec![
                    b.name_any(),
                    b.spec.apps.join(","),
                    b.spec.description.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.write_all(table::render(&["BUNDLE", "APPS", "DESCRIPTION"], rows, true).as_bytes())?;
    }
    Ok(notes)
}
